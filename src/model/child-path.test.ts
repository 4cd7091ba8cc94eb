import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { badChildName, childPath } from "./child-path.js";

describe("a file directly inside a directory", () => {
  test("plain names are joined", () => {
    assert.equal(childPath("/var/lib/cni/networks", "k8s-pod-network"), "/var/lib/cni/networks/k8s-pod-network");
    assert.equal(childPath("/run/trellis/endpoints", "c0ffee_eth0.json"), "/run/trellis/endpoints/c0ffee_eth0.json");
    assert.equal(badChildName("..."), undefined, "three dots is an ordinary name");
  });

  for (const name of ["", ".", "..", "../x", "a/b", "/etc/passwd", "x\0y", "x".repeat(256)]) {
    test(`${JSON.stringify(name.slice(0, 20))}${name.length > 20 ? "..." : ""} is refused`, () => {
      assert.throws(() => childPath("/var/lib/cni/networks", name), /refusing a path outside \/var\/lib\/cni\/networks/);
    });
  }
});
