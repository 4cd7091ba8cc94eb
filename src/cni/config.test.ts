import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DEFAULT_BRIDGE, parsePluginConfig } from "./config.js";
import { CniError, ErrorCode } from "./errors.js";

const base = { ipam: { type: "trellis-ipam" } };

function assertInvalid(config: Record<string, unknown>, ...fragments: string[]): void {
  assert.throws(() => parsePluginConfig(config), (e: unknown) => {
    assert.ok(e instanceof CniError, `expected a CniError, got ${String(e)}`);
    assert.equal(e.code, ErrorCode.InvalidNetworkConfig);
    for (const f of fragments) assert.ok(e.message.includes(f), `"${e.message}" should mention ${f}`);
    return true;
  });
}

describe("parsePluginConfig", () => {
  it("defaults to routed mode, bridge trellis0 with hairpin, no MTU", () => {
    assert.deepEqual(parsePluginConfig(base), { mode: "routed", bridge: DEFAULT_BRIDGE, hairpinMode: true, ipamType: "trellis-ipam" });
    assert.equal(DEFAULT_BRIDGE, "trellis0");
  });

  it("keeps mode, mtu, bridge, hairpinMode, dns and logFile", () => {
    const cfg = parsePluginConfig({
      ...base, mode: "bridge", mtu: 1450, bridge: "cbr0", hairpinMode: false, dns: { nameservers: ["10.96.0.10"] }, logFile: "/var/log/trellis.log",
    });
    assert.deepEqual(cfg, {
      mode: "bridge", mtu: 1450, bridge: "cbr0", hairpinMode: false, ipamType: "trellis-ipam",
      dns: { nameservers: ["10.96.0.10"] }, logFile: "/var/log/trellis.log",
    });
  });

  it("treats mtu 0 as unset", () => {
    assert.equal(parsePluginConfig({ ...base, mtu: 0 }).mtu, undefined);
  });

  it("rejects each bad value with code 7, naming the field and the value", () => {
    assertInvalid({ ...base, mode: "overlay" }, "mode", '"overlay"', "routed, bridge");
    assertInvalid({ ...base, mtu: 67 }, "mtu", "67");
    assertInvalid({ ...base, mtu: "1500" }, "mtu", '"1500"');
    assertInvalid({ ...base, bridge: "a-very-long-bridge-name" }, "bridge", "longer than 15 bytes");
    assertInvalid({ ...base, bridge: 7 }, "bridge", "not a string");
    assertInvalid({ ...base, hairpinMode: "yes" }, "hairpinMode", '"yes"');
    assertInvalid({ ...base, dns: ["10.96.0.10"] }, "dns");
    assertInvalid({ ...base, logFile: "trellis.log" }, "logFile", "absolute");
  });

  it("keeps routeMetric, 0 included (a metric, not 'unset')", () => {
    assert.equal(parsePluginConfig({ ...base, routeMetric: 100 }).routeMetric, 100);
    assert.equal(parsePluginConfig({ ...base, routeMetric: 0 }).routeMetric, 0);
    assert.equal(parsePluginConfig({ ...base, routeMetric: 4294967295 }).routeMetric, 4294967295);
    assert.equal("routeMetric" in parsePluginConfig(base), false);
  });

  it("rejects a routeMetric that is not a 32-bit unsigned integer, naming field and value", () => {
    assertInvalid({ ...base, routeMetric: -1 }, "routeMetric", "-1", "between 0 and 4294967295");
    assertInvalid({ ...base, routeMetric: 1.5 }, "routeMetric", "1.5");
    assertInvalid({ ...base, routeMetric: "100" }, "routeMetric", '"100"');
    assertInvalid({ ...base, routeMetric: 4294967296 }, "routeMetric", "4294967296");
    assertInvalid({ ...base, routeMetric: null }, "routeMetric", "null");
  });

  it("requires an ipam section naming a plugin binary", () => {
    assertInvalid({}, "ipam", "required");
    assertInvalid({ ipam: {} }, "ipam.type");
    assertInvalid({ ipam: { type: "../bin/evil" } }, "ipam.type", "no '/'");
  });
});
