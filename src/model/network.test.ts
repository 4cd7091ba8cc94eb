import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  checkNodeAddress, ConfigError, DEFAULT_VNI, DEFAULT_VXLAN_PORT, leasableRange, podMtu, validateNetworkConfig, type NetworkConfig,
} from "./network.js";
import { formatCidr, subnetAt } from "./ip.js";

/** Asserts that validating `raw` is refused with a ConfigError naming `field` and `value`, in its properties and its message. */
function refuses(raw: unknown, field: string, value: unknown, why?: RegExp): void {
  assert.throws(() => validateNetworkConfig(raw), (e: unknown) => {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${String(e)}`);
    assert.equal(e.field, field);
    assert.deepEqual(e.value, value);
    assert.ok(e.message.includes(field), e.message);
    if (value !== undefined) assert.ok(e.message.includes(JSON.stringify(value)), e.message);
    if (why) assert.match(e.message, why);
    return true;
  });
}

const base = { network: "10.244.0.0/16" };

describe("validateNetworkConfig: defaults", () => {
  it("fills subnetLen 24, a vxlan backend on VNI 1 / port 8472, and natOutgoing false", () => {
    assert.deepEqual(validateNetworkConfig(base), {
      network: "10.244.0.0/16",
      subnetLen: 24,
      backend: { type: "vxlan", vni: 1, port: 8472 },
      natOutgoing: false,
    });
    assert.equal(DEFAULT_VNI, 1);
    assert.equal(DEFAULT_VXLAN_PORT, 8472);
  });

  it("fills the VNI and port of a backend that names only its type", () => {
    for (const type of ["vxlan", "host-gw", "cross-subnet"] as const) {
      assert.deepEqual(validateNetworkConfig({ ...base, backend: { type } }).backend, { type, vni: 1, port: 8472 });
    }
  });

  it("keeps every valid explicit setting, in canonical form", () => {
    const c = validateNetworkConfig({
      network: "10.32.0.0/12", subnetLen: 26, subnetMin: "10.32.1.0/26", subnetMax: "10.40.0.192/26",
      backend: { type: "cross-subnet", vni: 16777215, port: 4789, mtu: 1400 }, natOutgoing: true,
    });
    assert.deepEqual(c, {
      network: "10.32.0.0/12", subnetLen: 26, subnetMin: "10.32.1.0/26", subnetMax: "10.40.0.192/26",
      backend: { type: "cross-subnet", vni: 16777215, port: 4789, mtu: 1400 }, natOutgoing: true,
    });
  });

  it("accepts the edges of every range", () => {
    assert.equal(validateNetworkConfig({ ...base, subnetLen: 30 }).subnetLen, 30);
    assert.equal(validateNetworkConfig({ ...base, subnetLen: 17 }).subnetLen, 17);
    assert.equal(validateNetworkConfig({ ...base, backend: { type: "vxlan", vni: 1, port: 1 } }).backend.port, 1);
    assert.equal(validateNetworkConfig({ ...base, backend: { type: "vxlan", port: 65535 } }).backend.port, 65535);
    assert.equal(validateNetworkConfig({ ...base, backend: { type: "vxlan", mtu: 576 } }).backend.mtu, 576);
    assert.equal(validateNetworkConfig({ ...base, natOutgoing: false }).natOutgoing, false);
    // Min == max: exactly one leasable block.
    const one = validateNetworkConfig({ ...base, subnetMin: "10.244.7.0/24", subnetMax: "10.244.7.0/24" });
    assert.equal(one.subnetMin, one.subnetMax);
  });

  it("does not modify its input", () => {
    const raw = { network: "10.244.0.0/16", backend: { type: "host-gw" } };
    const copy = structuredClone(raw);
    validateNetworkConfig(raw);
    assert.deepEqual(raw, copy);
  });
});

describe("validateNetworkConfig: refusals name the field and the value", () => {
  it("refuses a config that is not an object", () => {
    for (const raw of [null, undefined, "10.244.0.0/16", 42, [base]]) refuses(raw, "config", raw, /not an object/);
  });

  it("refuses a missing or non-CIDR network", () => {
    refuses({}, "network", undefined, /missing/);
    refuses({ network: 10 }, "network", 10);
    for (const n of ["10.244.0.0", "10.244.0.0/33", "10.244.0.0/", "ten/8", "", "10.244.0.0/16/1", "010.244.0.0/16"]) {
      refuses({ network: n }, "network", n, /not a CIDR/);
    }
  });

  it("refuses a network with host bits set", () => {
    refuses({ network: "10.244.1.0/16" }, "network", "10.244.1.0/16", /host bits/);
    refuses({ network: "10.244.0.1/24", subnetLen: 26 }, "network", "10.244.0.1/24");
  });

  it("refuses an IPv6 network", () => {
    refuses({ network: "fd00:10:244::/48", subnetLen: 64 }, "network", "fd00:10:244::/48", /IPv4/);
  });

  it("refuses networks that overlap a reserved range, whichever contains the other", () => {
    const cases: Array<[string, RegExp]> = [
      ["127.0.0.0/16", /127\.0\.0\.0\/8/],
      ["126.0.0.0/7", /127\.0\.0\.0\/8/],
      ["169.254.0.0/20", /169\.254\.0\.0\/16/],
      ["169.0.0.0/8", /169\.254\.0\.0\/16/],
      ["224.1.0.0/16", /224\.0\.0\.0\/4/],
      ["0.0.0.0/16", /0\.0\.0\.0\/8/],
      ["240.0.0.0/16", /240\.0\.0\.0\/4/],
      ["255.255.0.0/16", /240\.0\.0\.0\/4/],
      ["0.0.0.0/1", /0\.0\.0\.0\/8/],
    ];
    for (const [network, reserved] of cases) refuses({ network, subnetLen: 24 }, "network", network, reserved);
  });

  it("accepts networks just beside the reserved ranges", () => {
    for (const network of ["1.0.0.0/16", "126.0.0.0/8", "128.0.0.0/16", "169.253.0.0/16", "169.255.0.0/16", "223.255.0.0/16", "192.168.0.0/16"]) {
      assert.equal(validateNetworkConfig({ network }).network, network);
    }
  });

  it("refuses a subnetLen that is not longer than the network's prefix, above 30, or not an integer", () => {
    refuses({ network: "10.244.0.0/24" }, "subnetLen", 24, /longer than the network's \/24/);
    refuses({ ...base, subnetLen: 16 }, "subnetLen", 16);
    refuses({ ...base, subnetLen: 8 }, "subnetLen", 8);
    refuses({ ...base, subnetLen: 31 }, "subnetLen", 31, /at most 30/);
    refuses({ ...base, subnetLen: 32 }, "subnetLen", 32);
    refuses({ ...base, subnetLen: 24.5 }, "subnetLen", 24.5);
    refuses({ ...base, subnetLen: "24" }, "subnetLen", "24");
  });

  it("refuses subnetMin/subnetMax of the wrong length, not a CIDR, or with host bits", () => {
    for (const k of ["subnetMin", "subnetMax"] as const) {
      refuses({ ...base, [k]: "10.244.1.0/25" }, k, "10.244.1.0/25", /must be a \/24 block/);
      refuses({ ...base, [k]: "10.244.0.0/16" }, k, "10.244.0.0/16");
      refuses({ ...base, [k]: "10.244.1.1/24" }, k, "10.244.1.1/24");
      refuses({ ...base, [k]: "banana" }, k, "banana");
      refuses({ ...base, [k]: 7 }, k, 7);
    }
  });

  it("refuses subnetMin/subnetMax outside the network", () => {
    refuses({ ...base, subnetMin: "10.245.0.0/24" }, "subnetMin", "10.245.0.0/24", /outside the network 10\.244\.0\.0\/16/);
    refuses({ ...base, subnetMax: "10.243.255.0/24" }, "subnetMax", "10.243.255.0/24", /outside/);
  });

  it("refuses subnetMin after subnetMax", () => {
    refuses({ ...base, subnetMin: "10.244.9.0/24", subnetMax: "10.244.8.0/24" }, "subnetMin", "10.244.9.0/24", /after subnetMax 10\.244\.8\.0\/24/);
  });

  it("refuses an unknown or missing backend type, and a backend that is not an object", () => {
    refuses({ ...base, backend: { type: "udp" } }, "backend.type", "udp", /one of vxlan, host-gw, cross-subnet/);
    refuses({ ...base, backend: { type: "VXLAN" } }, "backend.type", "VXLAN");
    refuses({ ...base, backend: {} }, "backend.type", undefined, /unknown backend/);
    refuses({ ...base, backend: "vxlan" }, "backend", "vxlan", /not an object/);
    refuses({ ...base, backend: null }, "backend", null);
    refuses({ ...base, backend: [] }, "backend", []);
  });

  it("refuses a VNI of 0, above 16777215, or not an integer", () => {
    for (const vni of [0, -1, 16777216, 1.5, "1"]) refuses({ ...base, backend: { type: "vxlan", vni } }, "backend.vni", vni, /1\.\.16777215/);
  });

  it("refuses a port out of range", () => {
    for (const port of [0, -1, 65536, 8472.5, "8472"]) refuses({ ...base, backend: { type: "vxlan", port } }, "backend.port", port, /1\.\.65535/);
  });

  it("refuses an MTU below 576 (or above 65535, or not an integer)", () => {
    for (const mtu of [575, 0, -1, 65536, 1400.5, "1400"]) refuses({ ...base, backend: { type: "host-gw", mtu } }, "backend.mtu", mtu, /576/);
  });

  it("refuses a natOutgoing that is not a boolean", () => {
    for (const v of ["true", 1, 0, null]) refuses({ ...base, natOutgoing: v }, "natOutgoing", v, /true or false/);
  });

  it("takes a serviceCIDR and nodePortRange, and refuses ones that are not ranges or overlap the pod network", () => {
    const c = validateNetworkConfig({ ...base, serviceCIDR: "10.100.0.0/16", nodePortRange: "31000-31999" });
    assert.deepEqual([c.serviceCIDR, c.nodePortRange], ["10.100.0.0/16", "31000-31999"]);
    for (const v of ["10.100.0.1/16", "fd00::/64", "10.0.0.0/31", 7]) refuses({ ...base, serviceCIDR: v }, "serviceCIDR", v);
    refuses({ ...base, serviceCIDR: base.network }, "serviceCIDR", base.network, /overlaps the pod network/);
    for (const v of ["30000", "0-10", "32767-30000", "30000-70000", 30000]) refuses({ ...base, nodePortRange: v }, "nodePortRange", v, /lo-hi/);
  });
});

const cfg = (over: Partial<NetworkConfig> = {}): NetworkConfig => ({ ...validateNetworkConfig(base), ...over });

describe("leasableRange", () => {
  it("skips the network's first block by default and ends at its last", () => {
    const r = leasableRange(cfg());
    assert.equal(formatCidr(r.network), "10.244.0.0/16");
    assert.equal(r.first, 1n);
    assert.equal(r.last, 255n);
    assert.equal(formatCidr(subnetAt(r.network, 24, r.first)), "10.244.1.0/24");
    assert.equal(formatCidr(subnetAt(r.network, 24, r.last)), "10.244.255.0/24");
  });

  it("does not skip the first block when the network has only two", () => {
    const r = leasableRange(validateNetworkConfig({ network: "10.244.0.0/23" }));
    assert.deepEqual([r.first, r.last], [0n, 1n]);
  });

  it("honours subnetMin and subnetMax, including a subnetMin at the first block", () => {
    const r = leasableRange(validateNetworkConfig({ ...base, subnetMin: "10.244.10.0/24", subnetMax: "10.244.20.0/24" }));
    assert.deepEqual([r.first, r.last], [10n, 20n]);
    const z = leasableRange(validateNetworkConfig({ ...base, subnetMin: "10.244.0.0/24" }));
    assert.deepEqual([z.first, z.last], [0n, 255n]);
  });

  it("counts blocks of other lengths", () => {
    const r = leasableRange(validateNetworkConfig({ network: "10.244.0.0/16", subnetLen: 26, subnetMax: "10.244.1.64/26" }));
    assert.deepEqual([r.first, r.last], [1n, 5n]);
  });
});

describe("checkNodeAddress", () => {
  it("refuses a node address inside the pod network, naming both", () => {
    const why = checkNodeAddress(cfg(), "10.244.3.7");
    assert.ok(why);
    assert.match(why, /10\.244\.3\.7/);
    assert.match(why, /10\.244\.0\.0\/16/);
  });

  it("accepts addresses outside it (and leaves unparsable ones to others)", () => {
    for (const ip of ["10.243.255.255", "10.245.0.0", "192.168.1.10", "fd00::1", "nonsense"]) assert.equal(checkNodeAddress(cfg(), ip), undefined);
  });
});

describe("podMtu", () => {
  it("takes 50 bytes off the underlay for vxlan and cross-subnet, nothing for host-gw", () => {
    assert.equal(podMtu(cfg(), 1500), 1450);
    assert.equal(podMtu(cfg({ backend: { type: "cross-subnet", vni: 1, port: 8472 } }), 9000), 8950);
    assert.equal(podMtu(cfg({ backend: { type: "host-gw", vni: 1, port: 8472 } }), 1500), 1500);
  });

  it("uses an explicit MTU whatever the backend and underlay", () => {
    for (const type of ["vxlan", "host-gw", "cross-subnet"] as const) {
      assert.equal(podMtu(cfg({ backend: { type, vni: 1, port: 8472, mtu: 1300 } }), 9000), 1300);
    }
  });
});
