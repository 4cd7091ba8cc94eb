import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { chooseSubnet, LEASE_PREFIX, leaseKey, leaseValue, parseLease, subnetFromLeaseKey, type Lease } from "./lease.js";
import { validateNetworkConfig, type BackendType, type NetworkConfig } from "./network.js";
import { cidrCovers, formatCidr, formatIp, parseCidr, subnetAt } from "./ip.js";

const octet = fc.integer({ min: 0, max: 255 });
const ipv4 = fc.tuple(octet, octet, octet, octet).map((o) => o.join("."));
const v4Cidr = fc.tuple(fc.bigInt({ min: 0n, max: (1n << 32n) - 1n }), fc.integer({ min: 0, max: 32 }))
  .map(([v, p]) => formatCidr(parseCidr(`${formatIp({ family: 4, value: v })}/${p}`)!));
const mac = fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 6, maxLength: 6 })
  .map((b) => b.map((x) => x.toString(16).padStart(2, "0")).join(":"));
const lease: fc.Arbitrary<Lease> = fc.record({
  subnet: v4Cidr,
  node: fc.string({ minLength: 1, maxLength: 20 }),
  publicIp: ipv4,
  backend: fc.constantFrom<BackendType>("vxlan", "host-gw", "cross-subnet"),
  vtepMac: mac,
  renewedAt: fc.nat(),
  expiresAt: fc.nat(),
}, { requiredKeys: ["subnet", "node", "publicIp", "backend", "renewedAt", "expiresAt"] });

describe("leaseKey / subnetFromLeaseKey", () => {
  it("puts the block in the key with '-' for '/'", () => {
    assert.equal(leaseKey("10.244.3.0/24"), `${LEASE_PREFIX}10.244.3.0-24`);
    assert.equal(leaseKey("10.244.3.0/24"), "/trellis/leases/10.244.3.0-24");
  });

  it("round-trips every IPv4 block", () => {
    fc.assert(fc.property(v4Cidr, (subnet) => {
      assert.equal(subnetFromLeaseKey(leaseKey(subnet)), subnet);
    }));
  });

  it("returns undefined for keys that are not lease keys of a block", () => {
    for (const key of [
      "/trellis/config", "/trellis/leases/", "/trellis/leases/10.244.3.0", "/trellis/leases/10.244.3.1-24",
      "/trellis/leases/10.244.3.0-33", "/trellis/leases/garbage", "/other/leases/10.244.3.0-24", "10.244.3.0-24",
      "/trellis/leases/10.244.3.0/24/x",
    ]) {
      assert.equal(subnetFromLeaseKey(key), undefined, key);
    }
  });
});

describe("parseLease / leaseValue", () => {
  it("round-trips every lease", () => {
    fc.assert(fc.property(lease, (l) => {
      assert.deepEqual(parseLease(leaseKey(l.subnet), leaseValue(l)), l);
    }));
  });

  it("keeps the subnet in the key only", () => {
    const l: Lease = { subnet: "10.244.3.0/24", node: "n1", publicIp: "10.99.1.11", backend: "vxlan", renewedAt: 1, expiresAt: 2 };
    assert.equal(JSON.parse(leaseValue(l)).subnet, undefined);
    // A value claiming another subnet does not move the lease.
    assert.equal(parseLease(leaseKey(l.subnet), JSON.stringify({ ...l, subnet: "10.244.9.0/24" }))?.subnet, "10.244.3.0/24");
  });

  it("defaults missing times to 0 and drops a missing VTEP MAC", () => {
    const l = parseLease("/trellis/leases/10.244.3.0-24", JSON.stringify({ node: "n1", publicIp: "10.99.1.11", backend: "host-gw" }));
    assert.deepEqual(l, { subnet: "10.244.3.0/24", node: "n1", publicIp: "10.99.1.11", backend: "host-gw", renewedAt: 0, expiresAt: 0 });
  });

  it("returns undefined for garbage values and keys", () => {
    const key = "/trellis/leases/10.244.3.0-24";
    const good = { node: "n1", publicIp: "10.99.1.11", backend: "vxlan", vtepMac: "0a:00:00:00:00:01" };
    for (const value of [
      "", "{", "null", "5", "\"lease\"", "[]", "{}", "true",
      JSON.stringify({ ...good, node: 5 }),
      JSON.stringify({ ...good, publicIp: undefined }),
      JSON.stringify({ ...good, backend: null }),
    ]) {
      assert.equal(parseLease(key, value), undefined, value);
    }
    assert.equal(parseLease("/trellis/leases/garbage", JSON.stringify(good)), undefined);
    assert.ok(parseLease(key, JSON.stringify(good)));
  });

  it("refuses a public IP or VTEP MAC that is not one (they end up in ip/bridge batch lines)", () => {
    const key = "/trellis/leases/10.244.3.0-24";
    const good = { node: "n1", publicIp: "10.99.1.11", backend: "vxlan", vtepMac: "0a:00:00:00:00:01" };
    for (const publicIp of ["10.99.1.11\nlink del eth0", "10.99.1.11 dev lo", "", "fd00::1", "10.99.1", "host.example"]) {
      assert.equal(parseLease(key, JSON.stringify({ ...good, publicIp })), undefined, publicIp);
    }
    for (const vtepMac of ["0a:00:00:00:00:01\nlink del eth0", "0a:00:00:00:00", "zz:00:00:00:00:01", 5, null]) {
      assert.equal(parseLease(key, JSON.stringify({ ...good, vtepMac })), undefined, String(vtepMac));
    }
  });

  it("never throws, whatever the key and value", () => {
    fc.assert(fc.property(fc.string(), fc.oneof(fc.string(), fc.json(), lease.map(leaseValue)), (suffix, value) => {
      parseLease(`${LEASE_PREFIX}${suffix}`, value);
      parseLease("/trellis/leases/10.244.3.0-24", value);
    }));
  });
});

const net = (extra: Record<string, unknown> = {}): NetworkConfig => validateNetworkConfig({ network: "10.244.0.0/16", ...extra });
const constant = (v: number) => () => v;

describe("chooseSubnet", () => {
  it("keeps the preferred block when it is free and leasable, whatever random() says", () => {
    for (const r of [0, 0.5, 0.999]) assert.equal(chooseSubnet(net(), new Set(), "10.244.42.0/24", constant(r)), "10.244.42.0/24");
    assert.equal(chooseSubnet(net(), new Set(["10.244.41.0/24"]), "10.244.42.0/24", constant(0)), "10.244.42.0/24");
  });

  it("ignores a preferred block that is taken, outside the network or the leasable range, of the wrong length, or not a block", () => {
    const c = net({ subnetMin: "10.244.10.0/24", subnetMax: "10.244.20.0/24" });
    const first = chooseSubnet(c, new Set(), undefined, constant(0));
    assert.equal(first, "10.244.10.0/24");
    const cases: Array<[string, Set<string>]> = [
      ["10.244.15.0/24", new Set(["10.244.15.0/24"])],
      ["10.245.15.0/24", new Set()],
      ["10.243.15.0/24", new Set()],
      ["10.244.9.0/24", new Set()],
      ["10.244.21.0/24", new Set()],
      ["10.244.15.0/25", new Set()],
      ["10.244.15.0/23", new Set()],
      ["10.244.15.1/24", new Set()],
      ["banana", new Set()],
      ["fd00::/24", new Set()],
    ];
    for (const [preferred, taken] of cases) assert.equal(chooseSubnet(c, taken, preferred, constant(0)), first, preferred);
  });

  it("ignores the network's first block as a preferred block when it is not leasable", () => {
    assert.equal(chooseSubnet(net(), new Set(), "10.244.0.0/24", constant(0)), "10.244.1.0/24");
  });

  it("never returns a taken or unleasable block, and returns undefined only when all are taken", () => {
    // A small network (/20 in /24 blocks: 15 leasable) so that random taken sets often fill it.
    const blocks = Array.from({ length: 16 }, (_, i) => `10.244.${i}.0/24`);
    const arb = fc.record({
      min: fc.integer({ min: 0, max: 15 }),
      span: fc.integer({ min: 0, max: 15 }),
      bounded: fc.boolean(),
      taken: fc.subarray(blocks),
      preferred: fc.option(fc.constantFrom(...blocks, "10.244.16.0/24", "10.244.3.0/25"), { nil: undefined }),
      r: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
    });
    fc.assert(fc.property(arb, ({ min, span, bounded, taken, preferred, r }) => {
      const max = Math.min(15, min + span);
      const c = validateNetworkConfig({
        network: "10.244.0.0/20", ...(bounded ? { subnetMin: blocks[min], subnetMax: blocks[max] } : {}),
      });
      const [lo, hi] = bounded ? [min, max] : [1, 15];
      const takenSet = new Set(taken);
      const leasable = blocks.slice(lo, hi + 1);
      const got = chooseSubnet(c, takenSet, preferred, constant(r));
      if (leasable.every((b) => takenSet.has(b))) {
        assert.equal(got, undefined);
        return;
      }
      assert.ok(got !== undefined, "a free block exists");
      assert.ok(leasable.includes(got), `${got} is leasable`);
      assert.ok(!takenSet.has(got), `${got} is free`);
      if (preferred && leasable.includes(preferred) && !takenSet.has(preferred)) assert.equal(got, preferred);
    }));
  });

  it("returns undefined when the network is full", () => {
    const c = validateNetworkConfig({ network: "10.244.0.0/22" });
    const all = new Set(["10.244.1.0/24", "10.244.2.0/24", "10.244.3.0/24"]);
    assert.equal(chooseSubnet(c, all, undefined, constant(0.5)), undefined);
    assert.equal(chooseSubnet(c, all, "10.244.2.0/24", constant(0.5)), undefined);
    all.delete("10.244.2.0/24");
    for (const r of [0, 0.4, 0.9]) assert.equal(chooseSubnet(c, all, undefined, constant(r)), "10.244.2.0/24");
  });

  it("stays within subnetMin..subnetMax", () => {
    const c = net({ subnetMin: "10.244.100.0/24", subnetMax: "10.244.103.0/24" });
    const range = parseCidr("10.244.100.0/22")!;
    for (let i = 0; i < 50; i++) {
      const got = chooseSubnet(c, new Set(), undefined, constant(i / 50));
      assert.ok(got && cidrCovers(range, parseCidr(got)!), String(got));
    }
    assert.equal(chooseSubnet(c, new Set(["10.244.100.0/24", "10.244.101.0/24", "10.244.103.0/24"]), undefined, constant(0.99)), "10.244.102.0/24");
  });

  it("spreads nodes over the range: different random() values give different blocks", () => {
    const c = net();
    const a = chooseSubnet(c, new Set(), undefined, constant(0));
    const b = chooseSubnet(c, new Set(), undefined, constant(0.5));
    const z = chooseSubnet(c, new Set(), undefined, constant(0.999));
    assert.deepEqual([a, b, z], ["10.244.1.0/24", "10.244.128.0/24", "10.244.255.0/24"]);
    const seen = new Set<string>();
    for (let i = 0; i < 100; i++) seen.add(chooseSubnet(c, new Set(), undefined, constant(i / 100))!);
    assert.equal(seen.size, 100);
  });

  it("walks on from the random start past taken blocks, wrapping around", () => {
    const c = validateNetworkConfig({ network: "10.244.0.0/20" });
    const taken = new Set(["10.244.14.0/24", "10.244.15.0/24"]);
    // Start at the last block (index 15): 15 and then (wrapping) nothing before 1 is leasable.
    assert.equal(chooseSubnet(c, taken, undefined, constant(0.999)), "10.244.1.0/24");
    const net20 = parseCidr("10.244.0.0/20")!;
    assert.equal(chooseSubnet(c, new Set(), undefined, constant(0)), formatCidr(subnetAt(net20, 24, 1n)));
  });
});
