// The path walk names the first broken hop, in the order a packet and its reply depend on them,
// and never counts a hop whose facts are missing as fine. One healthy two-node VXLAN cluster,
// then each fault class on its own: agent stopped, lease gone or expired, CNI CHECK failing,
// route / FDB / neighbour entry missing (either way), forwarding off, NAT, policy.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { desiredState, vtepMacFor } from "../backends/desired.js";
import type { ActualDataplane } from "../dataplane/diff.js";
import type { Lease } from "../model/lease.js";
import { validateNetworkConfig, type NetworkConfig } from "../model/network.js";
import { diagnosePath, type NodeFacts, type PathFacts, type PodFacts } from "./path.js";

const NOW = 1_800_000_000_000;
const config = (backend = "vxlan", natOutgoing = true): NetworkConfig => validateNetworkConfig({ network: "10.244.0.0/16", backend: { type: backend }, natOutgoing });
const lease = (node: string, subnet: string, ip: string, over: Partial<Lease> = {}): Lease => ({
  subnet, node, publicIp: ip, backend: "vxlan", vtepMac: vtepMacFor(node), renewedAt: NOW - 2000, expiresAt: NOW + 8000, ...over,
});

/** A node whose kernel holds exactly what its agent would program for `peers`. */
function healthyNode(self: Lease, peers: Lease[], c: NetworkConfig): NodeFacts {
  const underlay = { dev: "eth0", cidr: `${self.publicIp}/24`, mtu: 1500 };
  const d = desiredState({ config: c, self, peers, underlay, podMtu: 1450 });
  const dataplane: ActualDataplane = { ...structuredClone(d.dataplane), natState: c.natOutgoing ? "ours" : "absent" };
  return { name: self.node, agent: { running: true, detail: "ready" }, lease: self, underlay, forwarding: true, dataplane };
}

function cluster(c = config()): { facts: PathFacts; n1: NodeFacts; n2: NodeFacts; a: PodFacts; b: PodFacts } {
  const l1 = lease("node1", "10.244.1.0/24", "10.99.1.11");
  const l2 = lease("node2", "10.244.2.0/24", "10.99.1.12");
  const n1 = healthyNode(l1, [l2], c);
  const n2 = healthyNode(l2, [l1], c);
  const a: PodFacts = { name: "default/a", ip: "10.244.1.2", node: "node1", cniCheck: { ok: true } };
  const b: PodFacts = { name: "default/b", ip: "10.244.2.2", node: "node2", cniCheck: { ok: true } };
  const facts: PathFacts = {
    from: a, to: b, nodes: new Map([["node1", n1], ["node2", n2]]), leasesKnown: true, config: c,
    policy: { allowed: true, detail: "no policy applies" }, now: NOW,
  };
  return { facts, n1, n2, a, b };
}

describe("diagnosePath", () => {
  it("a healthy path has no broken hop, and says what it checked and what it did not", () => {
    const d = diagnosePath(cluster().facts);
    assert.equal(d.broken, undefined);
    assert.ok(d.hops.every((h) => h.ok === true), JSON.stringify(d.hops));
    assert.match(d.cause, /^no broken hop found \(checked: agents, leases, CNI CHECK of the pods, routes both ways, forwarding, the policy model; not checked: the nftables ruleset/);
  });

  it("names each fault by its real cause", () => {
    const cases: Array<[string, (c: ReturnType<typeof cluster>) => void, RegExp]> = [
      ["agent stopped", (c) => void (c.n2.agent = { running: false, detail: "pid 42 has ended" }), /^agent on node2 is not running \(pid 42 has ended\)/],
      ["lease gone", (c) => void delete c.n2.lease, /^node2 holds no lease: its block is gone/],
      ["lease expired", (c) => void (c.n2.lease = { ...c.n2.lease!, expiresAt: NOW - 3000 }), /^node2's lease on 10\.244\.2\.0\/24 expired 3s ago/],
      ["pod host route gone", (c) => void (c.b.cniCheck = { ok: false, error: "host route 10.244.2.2/32 dev trl1 missing" }), /^CNI CHECK of default\/b fails: host route 10\.244\.2\.2\/32 dev trl1 missing/],
      ["route missing", (c) => void (c.n1.dataplane!.routes = []), /^node1 has no route to node2's block 10\.244\.2\.0\/24 \(expected via 10\.244\.2\.0 dev trellis\.vxlan onlink\)/],
      ["FDB entry missing", (c) => void (c.n1.dataplane!.fdb = []), /^node1's trellis\.vxlan has no FDB entry for node2 \([0-9a-f:]+ -> 10\.99\.1\.12\)/],
      ["neighbour missing", (c) => void (c.n1.dataplane!.neigh = []), /^node1's trellis\.vxlan has no neighbour entry 10\.244\.2\.0 -> /],
      ["reply route missing", (c) => void (c.n2.dataplane!.routes = []), /^reply: node2 has no route to node1's block 10\.244\.1\.0\/24/],
      ["forwarding off at the source", (c) => void (c.n1.forwarding = false), /^node1 does not forward IPv4 \(net\.ipv4\.ip_forward=0\)/],
      ["forwarding off at the destination", (c) => void (c.n2.forwarding = false), /^node2 does not forward IPv4/],
      ["policy deny", (c) => void (c.facts.policy = { allowed: false, detail: "ingress: denied by NetworkPolicy/default/deny" }), /^denied by policy: ingress: denied by NetworkPolicy\/default\/deny/],
    ];
    for (const [what, inject, cause] of cases) {
      const c = cluster();
      inject(c);
      const d = diagnosePath(c.facts);
      assert.match(d.cause, cause, what);
      assert.equal(d.hops.filter((h) => h.ok === false).length, 1, `${what}: exactly one broken hop`);
    }
  });

  it("reports the first broken hop in path order when several are broken", () => {
    const c = cluster();
    c.n1.forwarding = false;
    c.n1.dataplane!.fdb = [];
    c.a.cniCheck = { ok: false, error: "interface eth0 not found" };
    assert.match(diagnosePath(c.facts).cause, /^CNI CHECK of default\/a fails/);
  });

  it("host-gw: the route via the peer's underlay address; a peer off the segment is unreachable by configuration", () => {
    const c = cluster(config("host-gw"));
    assert.equal(diagnosePath(c.facts).broken, undefined);
    c.n1.dataplane!.routes = [{ dst: "10.244.2.0/24", via: "10.99.1.99", dev: "eth0", onlink: false }];
    assert.match(diagnosePath(c.facts).cause, /^node1 routes 10\.244\.2\.0\/24 via 10\.99\.1\.99 dev eth0, expected via 10\.99\.1\.12 dev eth0/);
    const far = cluster(config("host-gw"));
    far.n2.lease = { ...far.n2.lease!, publicIp: "10.99.2.12" };
    assert.match(diagnosePath(far.facts).cause, /^node1 cannot reach node2 by configuration: 10\.99\.2\.12 is not on this node's subnet/);
  });

  it("facts that could not be read are 'not established', never counted as fine", () => {
    const c = cluster();
    c.facts.leasesKnown = false;
    delete c.n1.dataplane;
    delete c.n2.forwarding;
    const d = diagnosePath(c.facts);
    assert.equal(d.broken, undefined);
    assert.match(d.cause, /not established: lease node1, lease node2, route node1 -> node2, forwarding node2/);
  });

  it("to the outside: NAT on the source node is a hop; with NAT off the outside is unreachable", () => {
    const c = cluster();
    c.facts.to = { outside: "203.0.113.100" };
    assert.equal(diagnosePath(c.facts).broken, undefined);
    c.n1.dataplane!.natState = "absent";
    assert.match(diagnosePath(c.facts).cause, /^node1's NAT table is absent/);
    const off = cluster(config("vxlan", false));
    off.facts.to = { outside: "203.0.113.100" };
    assert.match(diagnosePath(off.facts).cause, /^NAT outgoing is off/);
  });

  it("pods on one node: no transport hop, forwarding once", () => {
    const c = cluster();
    c.facts.to = { ...c.b, node: "node1" };
    const d = diagnosePath(c.facts);
    assert.deepEqual(d.hops.map((h) => h.hop), ["agent node1", "lease node1", "pod default/a", "pod default/b", "forwarding node1", "policy"]);
  });
});
