import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { desiredState, onLink, peerTransport, usesVxlan, vtepAddress, vtepMacFor, type DesiredInput, type Underlay } from "./desired.js";
import { validateNetworkConfig, type BackendType } from "../model/network.js";
import type { Lease } from "../model/lease.js";
import { VTEP_NAME } from "../dataplane/state.js";

const underlay: Underlay = { dev: "eth0", cidr: "10.99.1.11/24", mtu: 1500 };

const lease = (node: string, subnet: string, publicIp: string, backend: BackendType = "vxlan", vtepMac: string | null = vtepMacFor(node)): Lease => ({
  subnet, node, publicIp, backend, ...(vtepMac ? { vtepMac } : {}), renewedAt: 0, expiresAt: 0,
});

const self = lease("n1", "10.244.1.0/24", "10.99.1.11");
/** On the node's underlay subnet. */
const near = lease("n2", "10.244.2.0/24", "10.99.1.12");
/** Behind a router. */
const far = lease("n3", "10.244.3.0/24", "10.99.2.13");

function input(type: BackendType, peers: Lease[], extra: Record<string, unknown> = {}): DesiredInput {
  return {
    config: validateNetworkConfig({ network: "10.244.0.0/16", backend: { type, vni: 7, port: 4789 }, ...extra }),
    self: lease(self.node, self.subnet, self.publicIp, type),
    peers,
    underlay,
    podMtu: 1450,
  };
}

describe("desiredState: vxlan", () => {
  const d = desiredState(input("vxlan", [far, near]));

  it("wants one VTEP: VNI, port, local IP and device from config and underlay, the pod MTU, the node's MAC, its block's network address /32", () => {
    assert.deepEqual(d.dataplane.vtep, {
      name: VTEP_NAME, vni: 7, port: 4789, localIp: "10.99.1.11", dev: "eth0", mtu: 1450, mac: vtepMacFor("n1"), address: "10.244.1.0/32",
    });
  });

  it("uses the MAC the node's lease advertises when there is one", () => {
    const i = input("vxlan", []);
    i.self = { ...i.self, vtepMac: "0a:11:22:33:44:55" };
    assert.equal(desiredState(i).dataplane.vtep?.mac, "0a:11:22:33:44:55");
  });

  it("per peer (on-link or not): an FDB entry MAC -> public IP, a neighbour VTEP address -> MAC, a route via the VTEP address onlink", () => {
    assert.deepEqual(d.dataplane.fdb, [
      { mac: vtepMacFor("n2"), dst: "10.99.1.12" },
      { mac: vtepMacFor("n3"), dst: "10.99.2.13" },
    ]);
    assert.deepEqual(d.dataplane.neigh, [
      { ip: "10.244.2.0", mac: vtepMacFor("n2") },
      { ip: "10.244.3.0", mac: vtepMacFor("n3") },
    ]);
    assert.deepEqual(d.dataplane.routes, [
      { dst: "10.244.2.0/24", via: "10.244.2.0", dev: VTEP_NAME, onlink: true },
      { dst: "10.244.3.0/24", via: "10.244.3.0", dev: VTEP_NAME, onlink: true },
    ]);
    assert.deepEqual(d.peers.map((p) => [p.node, p.subnet, p.publicIp, p.transport, p.reason]), [
      ["n2", "10.244.2.0/24", "10.99.1.12", "vxlan", undefined],
      ["n3", "10.244.3.0/24", "10.99.2.13", "vxlan", undefined],
    ]);
  });

  it("reports a peer without a VTEP MAC as unreachable, with the reason, and wants nothing for it", () => {
    const hg = lease("n4", "10.244.4.0/24", "10.99.1.14", "host-gw", null);
    const r = desiredState(input("vxlan", [near, hg]));
    const p = r.peers.find((x) => x.node === "n4");
    assert.equal(p?.transport, "unreachable");
    assert.match(p?.reason ?? "", /n4 has no VTEP/);
    assert.match(p?.reason ?? "", /host-gw/);
    assert.deepEqual(r.dataplane.routes.map((x) => x.dst), ["10.244.2.0/24"]);
    assert.equal(r.dataplane.fdb.length, 1);
    assert.equal(r.dataplane.neigh.length, 1);
  });

  it("wants no NAT unless natOutgoing", () => {
    assert.equal(d.dataplane.nat, undefined);
  });
});

describe("desiredState: host-gw", () => {
  const d = desiredState(input("host-gw", [far, near]));

  it("wants no VTEP and no FDB/neighbour entries", () => {
    assert.equal(d.dataplane.vtep, undefined);
    assert.deepEqual(d.dataplane.fdb, []);
    assert.deepEqual(d.dataplane.neigh, []);
  });

  it("routes an on-link peer's block via its public IP on the underlay device", () => {
    assert.deepEqual(d.dataplane.routes, [{ dst: "10.244.2.0/24", via: "10.99.1.12", dev: "eth0", onlink: false }]);
    assert.equal(d.peers.find((p) => p.node === "n2")?.transport, "host-gw");
  });

  it("gives an off-link peer no route and reports it unreachable, naming host-gw and the subnet", () => {
    const p = d.peers.find((x) => x.node === "n3");
    assert.equal(p?.transport, "unreachable");
    assert.match(p?.reason ?? "", /host-gw/);
    assert.match(p?.reason ?? "", /10\.99\.1\.11\/24/);
    assert.match(p?.reason ?? "", /10\.99\.2\.13/);
    assert.ok(!d.dataplane.routes.some((r) => r.dst === far.subnet));
  });

  it("does not need the peers' VTEP MACs", () => {
    const r = desiredState(input("host-gw", [lease("n2", "10.244.2.0/24", "10.99.1.12", "host-gw", null)]));
    assert.equal(r.peers[0]?.transport, "host-gw");
  });
});

describe("desiredState: cross-subnet", () => {
  const d = desiredState(input("cross-subnet", [far, near]));

  it("always wants the VTEP", () => {
    assert.equal(d.dataplane.vtep?.vni, 7);
    assert.equal(desiredState(input("cross-subnet", [])).dataplane.vtep?.name, VTEP_NAME);
    assert.equal(desiredState(input("cross-subnet", [near])).dataplane.vtep?.name, VTEP_NAME);
  });

  it("routes on-link peers directly and tunnels to the others", () => {
    assert.deepEqual(d.dataplane.routes, [
      { dst: "10.244.2.0/24", via: "10.99.1.12", dev: "eth0", onlink: false },
      { dst: "10.244.3.0/24", via: "10.244.3.0", dev: VTEP_NAME, onlink: true },
    ]);
    assert.deepEqual(d.dataplane.fdb, [{ mac: vtepMacFor("n3"), dst: "10.99.2.13" }]);
    assert.deepEqual(d.dataplane.neigh, [{ ip: "10.244.3.0", mac: vtepMacFor("n3") }]);
    assert.deepEqual(d.peers.map((p) => p.transport), ["host-gw", "vxlan"]);
  });

  it("reports an off-link peer without a VTEP as unreachable", () => {
    const r = desiredState(input("cross-subnet", [lease("n3", "10.244.3.0/24", "10.99.2.13", "host-gw", null)]));
    assert.equal(r.peers[0]?.transport, "unreachable");
    assert.deepEqual(r.dataplane.routes, []);
  });
});

describe("desiredState: which leases count", () => {
  for (const type of ["vxlan", "host-gw", "cross-subnet"] as const) {
    it(`${type}: excludes the node's own lease, a stale lease of its own, and a peer claiming its block`, () => {
      const r = desiredState(input(type, [
        near,
        lease("n1", "10.244.1.0/24", "10.99.1.11"),
        lease("n1", "10.244.9.0/24", "10.99.1.11"),
        lease("n5", "10.244.1.0/24", "10.99.1.15"),
      ]));
      assert.deepEqual(r.peers.map((p) => p.node), ["n2"]);
      assert.deepEqual(r.dataplane.routes.map((x) => x.dst), ["10.244.2.0/24"]);
    });

    it(`${type}: never routes a lease that is not a block of the pod network (e.g. 0.0.0.0/0)`, () => {
      const bogus = [
        lease("x1", "0.0.0.0/0", "10.99.1.21"),
        lease("x2", "10.245.2.0/24", "10.99.1.22"),
        lease("x3", "10.244.8.0/25", "10.99.1.23"),
        lease("x4", "10.0.0.0/8", "10.99.1.24"),
      ];
      const r = desiredState(input(type, [near, ...bogus]));
      assert.deepEqual(r.dataplane.routes.map((x) => x.dst), ["10.244.2.0/24"]);
      assert.equal(r.dataplane.fdb.length, type === "vxlan" ? 1 : 0);
      for (const b of bogus) {
        const p = r.peers.find((x) => x.node === b.node);
        assert.equal(p?.transport, "unreachable", b.subnet);
        assert.match(p?.reason ?? "", /not a \/24 block of the pod network 10\.244\.0\.0\/16/);
      }
    });

    it(`${type}: does not depend on the order of the peers`, () => {
      const peers = [near, far, lease("n4", "10.244.4.0/24", "10.99.1.14"), lease("n5", "10.244.10.0/24", "10.99.3.15")];
      const want = desiredState(input(type, peers));
      fc.assert(fc.property(fc.shuffledSubarray(peers, { minLength: peers.length }), (shuffled) => {
        assert.deepEqual(desiredState(input(type, shuffled)), want);
      }));
    });
  }

  it("sets NAT for the pod network when natOutgoing, for every backend", () => {
    for (const type of ["vxlan", "host-gw", "cross-subnet"] as const) {
      assert.deepEqual(desiredState(input(type, [near], { natOutgoing: true })).dataplane.nat, { podNetwork: "10.244.0.0/16" });
      assert.equal(desiredState(input(type, [near], { natOutgoing: false })).dataplane.nat, undefined);
    }
  });
});

describe("vtepMacFor", () => {
  const macRe = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

  it("is stable, locally administered and unicast for every node name", () => {
    fc.assert(fc.property(fc.string(), (node) => {
      const m = vtepMacFor(node);
      assert.match(m, macRe);
      assert.equal(vtepMacFor(node), m);
      const first = parseInt(m.slice(0, 2), 16);
      assert.equal(first & 0x02, 0x02, "locally administered");
      assert.equal(first & 0x01, 0, "unicast");
    }));
  });

  it("differs between nodes", () => {
    const names = Array.from({ length: 200 }, (_, i) => `node-${i}`);
    assert.equal(new Set(names.map(vtepMacFor)).size, names.length);
    assert.notEqual(vtepMacFor("n1"), vtepMacFor("n2"));
  });

  it("does not change between releases (peers hold it in their FDB)", () => {
    assert.equal(vtepMacFor("n1"), "1e:44:fa:48:07:f6");
  });
});

describe("helpers", () => {
  it("vtepAddress is the block's network address", () => {
    assert.equal(vtepAddress("10.244.3.0/24"), "10.244.3.0");
    assert.equal(vtepAddress("10.244.3.64/26"), "10.244.3.64");
  });

  it("onLink says whether an address is on the underlay's subnet", () => {
    assert.equal(onLink("10.99.1.11/24", "10.99.1.12"), true);
    assert.equal(onLink("10.99.1.11/24", "10.99.1.255"), true);
    assert.equal(onLink("10.99.1.11/24", "10.99.2.12"), false);
    assert.equal(onLink("10.99.1.11/16", "10.99.2.12"), true);
    assert.equal(onLink("10.99.1.11/32", "10.99.1.12"), false);
    assert.equal(onLink("10.99.1.11/24", "fd00::1"), false);
    assert.equal(onLink("10.99.1.11/24", "garbage"), false);
    assert.equal(onLink("garbage", "10.99.1.12"), false);
  });

  it("usesVxlan for vxlan and cross-subnet only", () => {
    const c = (type: BackendType) => validateNetworkConfig({ network: "10.244.0.0/16", backend: { type } });
    assert.deepEqual((["vxlan", "host-gw", "cross-subnet"] as const).map((t) => usesVxlan(c(t))), [true, false, true]);
  });

  it("peerTransport chooses per peer", () => {
    const c = (type: BackendType) => validateNetworkConfig({ network: "10.244.0.0/16", backend: { type } });
    assert.equal(peerTransport(c("cross-subnet"), underlay.cidr, near).transport, "host-gw");
    assert.equal(peerTransport(c("cross-subnet"), underlay.cidr, far).transport, "vxlan");
    assert.equal(peerTransport(c("vxlan"), underlay.cidr, near).transport, "vxlan");
    assert.equal(peerTransport(c("host-gw"), underlay.cidr, far).transport, "unreachable");
  });
});
