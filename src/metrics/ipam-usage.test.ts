import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ipamUsage } from "./ipam-usage.js";

describe("IPAM usage of a block", () => {
  test("counts reservation files inside the block; free excludes network, gateway and broadcast", () => {
    const names = ["10.244.3.2", "10.244.3.3", "10.244.4.2", "lock", "last_reserved_ip.0", "10.244.3.2", "fd00::2"];
    assert.deepEqual(ipamUsage("10.244.3.0/24", names), { block: "10.244.3.0/24", used: 2, free: 251 });
    assert.deepEqual(ipamUsage("10.244.3.0/24", []), { block: "10.244.3.0/24", used: 0, free: 253 });
  });

  test("IPv6 blocks, and a bad block is an error naming it", () => {
    assert.deepEqual(ipamUsage("fd00::/120", ["fd00::2", "10.244.3.2"]), { block: "fd00::/120", used: 1, free: 253 });
    assert.throws(() => ipamUsage("10.244.3.1/24", []), /IPAM block "10.244.3.1\/24" is not a CIDR/);
  });
});
