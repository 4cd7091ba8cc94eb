// The diagnose verdict over hand-made facts: a healthy VXLAN pair is REACHABLE, and each fault
// kind on its own — route, FDB or neighbour entry missing, agent stopped, lease expired, policy
// drop, MTU black hole, pod interface down, test packet unanswered — is named on the first line.
// A pair whose kernels could not be read is UNKNOWN, listing what was not checked, never REACHABLE.
// A node not read here is judged from its agent's published status: programmed, pending, stale,
// missing, stopped (and cross-checked against its kernel where both are known).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { desiredState, vtepMacFor } from "../backends/desired.js";
import type { ActualDataplane } from "../dataplane/diff.js";
import type { Lease } from "../model/lease.js";
import { validateNetworkConfig, type NetworkConfig } from "../model/network.js";
import type { NodeStatus } from "../agent/status.js";
import type { NodeFacts } from "./path.js";
import { diagnose, lastSeen, mtuHop, renderDiagnosis, type DiagnoseFacts, type NodeNetFacts, type PodNetFacts } from "./verdict.js";

const NOW = 1_800_000_000_000;
const config = (backend = "vxlan"): NetworkConfig => validateNetworkConfig({ network: "10.244.0.0/16", backend: { type: backend }, natOutgoing: true });
const lease = (node: string, subnet: string, ip: string): Lease => ({
  subnet, node, publicIp: ip, backend: "vxlan", vtepMac: vtepMacFor(node), renewedAt: NOW - 2000, expiresAt: NOW + 8000,
});

function node(self: Lease, peer: Lease, c: NetworkConfig): NodeFacts {
  const underlay = { dev: "eth0", cidr: `${self.publicIp}/24`, mtu: 1500 };
  const d = desiredState({ config: c, self, peers: [peer], underlay, podMtu: 1450 });
  const dataplane: ActualDataplane = { ...structuredClone(d.dataplane), natState: "ours" };
  return { name: self.node, agent: { running: true, detail: "ready" }, lease: self, underlay, forwarding: true, dataplane };
}

const podNet = (ip: string, peer: string): PodNetFacts => ({
  ifname: "eth0", iface: { name: "eth0", mtu: 1450, up: true, addresses: [`${ip}/32`] }, routeGet: { dst: peer, dev: "eth0", via: "169.254.1.1" },
});
const nodeNet = (vxlan: boolean, dst: string, peerIp: string): NodeNetFacts => ({
  underlay: { name: "eth0", mtu: 1500, up: true, addresses: [] },
  ...(vxlan ? { vtep: { name: "trellis.vxlan", mtu: 1450, up: true, addresses: [] } } : {}),
  routeGet: vxlan ? { dst, dev: "trellis.vxlan" } : { dst, dev: "eth0", via: peerIp },
});

function pair(c = config()): { f: DiagnoseFacts; n1: NodeFacts; n2: NodeFacts } {
  const l1 = lease("node1", "10.244.1.0/24", "10.99.1.11");
  const l2 = lease("node2", "10.244.2.0/24", "10.99.1.12");
  const n1 = node(l1, l2, c);
  const n2 = node(l2, l1, c);
  const vx = c.backend.type === "vxlan";
  const f: DiagnoseFacts = {
    path: {
      from: { name: "prod/web", ip: "10.244.1.2", node: "node1" }, to: { name: "prod/api", ip: "10.244.2.2", node: "node2" },
      nodes: new Map([["node1", n1], ["node2", n2]]), leasesKnown: true, config: c,
      policy: { allowed: true, detail: "ingress: no NetworkPolicy selects prod/api for ingress (not isolated)" }, now: NOW,
    },
    target: { label: "prod/api", ip: "10.244.2.2" }, packet: "80/TCP",
    fromNet: podNet("10.244.1.2", "10.244.2.2"), toNet: podNet("10.244.2.2", "10.244.1.2"),
    nodeNet: new Map([["node1", nodeNet(vx, "10.244.2.2", "10.99.1.12")], ["node2", nodeNet(vx, "10.244.1.2", "10.99.1.11")]]),
    probe: { probe: "80/TCP", reached: true }, notChecked: [],
  };
  return { f, n1, n2 };
}

describe("diagnose verdict", () => {
  it("a healthy vxlan pair is REACHABLE, every hop ok, in path order", () => {
    const v = diagnose(pair().f);
    assert.equal(v.verdict, "REACHABLE");
    assert.match(v.summary, /^REACHABLE: prod\/web \(10\.244\.1\.2\) -> prod\/api \(10\.244\.2\.2\) 80\/TCP: every hop checked is in place; a test packet was answered$/);
    assert.ok(v.hops.every((h) => h.status === "ok"), JSON.stringify(v.hops));
    assert.deepEqual(v.hops.map((h) => h.hop), [
      "agent node1", "lease node1", "agent node2", "lease node2", "pod prod/web", "pod prod/api", "route node1 -> node2", "route node2 -> node1",
      "forwarding node1", "forwarding node2", "mtu", "route get node1", "route get node2", "policy", "probe",
    ]);
    assert.equal(renderDiagnosis(v).split("\n")[0], v.summary);
  });

  it("a healthy host-gw pair has no encapsulation overhead", () => {
    const v = diagnose(pair(config("host-gw")).f);
    assert.equal(v.verdict, "REACHABLE", v.summary);
    assert.deepEqual(v.warnings, []);
    assert.match(v.hops.find((h) => h.hop === "mtu")!.detail, /^pod MTU 1450; node1 eth0 1500; node2 eth0 1500: full-size/);
  });

  it("names each fault kind on the first line", () => {
    const cases: Array<[string, (p: ReturnType<typeof pair>) => void, RegExp]> = [
      ["route missing on the destination node (the reply)", (p) => void (p.n2.dataplane!.routes = []),
        /^BROKEN: reply: node2 has no route to node1's block 10\.244\.1\.0\/24 .* — the agent on node2 should have programmed it; is it running\?/],
      ["route missing on the source node", (p) => void (p.n1.dataplane!.routes = []), /^BROKEN: node1 has no route to node2's block 10\.244\.2\.0\/24/],
      ["FDB entry missing", (p) => void (p.n1.dataplane!.fdb = []), /^BROKEN: node1's trellis\.vxlan has no FDB entry for node2 .* — the agent on node1 should/],
      ["neighbour entry missing", (p) => void (p.n1.dataplane!.neigh = []), /^BROKEN: node1's trellis\.vxlan has no neighbour entry 10\.244\.2\.0/],
      ["agent stopped", (p) => void (p.n2.agent = { running: false, detail: "stopped by SIGTERM 3s ago" }), /^BROKEN: agent on node2 is not running \(stopped by SIGTERM 3s ago\) — restart it/],
      ["lease expired", (p) => void (p.n2.lease = { ...p.n2.lease!, expiresAt: NOW - 4000 }), /^BROKEN: node2's lease on 10\.244\.2\.0\/24 expired 4s ago/],
      ["policy drop", (p) => void (p.f.path.policy = { allowed: false, detail: "ingress: denied: isolated for ingress by NetworkPolicy prod/default-deny and no rule allows it" }),
        /^BROKEN: policy drop \(80\/TCP\): denied by policy: ingress: denied: isolated for ingress by NetworkPolicy prod\/default-deny .* — see trellis policy explain --from prod\/web --to prod\/api/],
      ["MTU black hole (underlay lowered)", (p) => void (p.f.nodeNet.get("node2")!.underlay!.mtu = 1300),
        /^BROKEN: MTU black hole: node2's underlay eth0 has MTU 1300, below pod MTU 1450 \+ 50 VXLAN overhead = 1500/],
      ["pod interface down", (p) => void (p.f.fromNet!.iface!.up = false), /^BROKEN: prod\/web's interface eth0 is down/],
      ["pod without its address", (p) => void (p.f.toNet!.iface!.addresses = []), /^BROKEN: prod\/api's interface eth0 does not hold its address 10\.244\.2\.2/],
      ["pod without a route", (p) => void (p.f.fromNet!.routeGet = { dst: "10.244.2.2", error: "Network is unreachable" }), /^BROKEN: prod\/web has no route to 10\.244\.2\.2: Network is unreachable/],
      ["forwarding off", (p) => void (p.n2.forwarding = false), /^BROKEN: node2 does not forward IPv4/],
      ["test packet unanswered, nothing else broken", (p) => void (p.f.probe = { probe: "80/TCP", reached: false }),
        /^BROKEN: test packet 80\/TCP from prod\/web to prod\/api \(10\.244\.2\.2\) got no answer — every hop checked looks right/],
    ];
    for (const [what, inject, first] of cases) {
      const p = pair();
      inject(p);
      const v = diagnose(p.f);
      assert.equal(v.verdict, "BROKEN", what);
      assert.match(v.summary, first, what);
      assert.equal(renderDiagnosis(v).split("\n")[0], v.summary, what);
    }
  });

  it("a test packet is last seen where the counters along the path stop rising", () => {
    const seen = [
      { point: "prod/web eth0 out", delta: 2 }, { point: "node1 trellis.vxlan out", delta: 2 }, { point: "node2 trellis.vxlan in", delta: 0 },
      { point: "prod/api eth0 in", delta: 0 },
    ];
    assert.equal(lastSeen(seen), "last seen at node1 trellis.vxlan out (+2); not seen at node2 trellis.vxlan in");
    assert.equal(lastSeen([{ point: "prod/web eth0 out", delta: 0 }]), "not seen at prod/web eth0 out");
    assert.equal(lastSeen([{ point: "a", delta: 1 }, { point: "b" }, { point: "c", delta: 0 }]), "last seen at a (+1); not seen at c");
    assert.equal(lastSeen([{ point: "a", delta: 1 }, { point: "b", delta: 1 }]), undefined);
    const p = pair();
    p.f.path.policy = { allowed: false, detail: "ingress: denied" };
    p.f.probe = { probe: "80/TCP", reached: false, seen };
    const v = diagnose(p.f);
    assert.match(v.summary, /^BROKEN: policy drop/);
    assert.match(v.hops.find((h) => h.hop === "probe")!.detail, /got no answer \(last seen at node1 trellis\.vxlan out \(\+2\); not seen at node2 trellis\.vxlan in\)$/);
  });

  it("a full-size echo lost while a small packet got through is an MTU black hole proven by traffic", () => {
    const p = pair();
    p.f.probe = { probe: "80/TCP", reached: true, fullSize: { bytes: 1450, answered: false } };
    const v = diagnose(p.f);
    assert.match(v.summary, /^BROKEN: MTU black hole: a full-size packet \(1450 bytes, Don't Fragment\) from prod\/web to 10\.244\.2\.2 got no answer while a small one did — lower the pod MTU/);
    p.f.probe = { probe: "80/TCP", reached: true, fullSize: { bytes: 1450, answered: true } };
    assert.equal(diagnose(p.f).verdict, "REACHABLE");
    p.f.probe = { probe: "80/TCP", reached: false, fullSize: { bytes: 1450, answered: false } };
    assert.ok(!diagnose(p.f).hops.some((h) => h.hop === "probe mtu"), "no MTU evidence when nothing got through");
  });

  it("the first broken hop in path order wins", () => {
    const p = pair();
    p.f.nodeNet.get("node1")!.underlay!.mtu = 1000;
    p.n1.dataplane!.fdb = [];
    p.n2.agent = { running: false, detail: "gone" };
    assert.match(diagnose(p.f).summary, /^BROKEN: agent on node2 is not running/);
  });

  it("a node routing the peer pod by its default route is a warning", () => {
    const p = pair();
    p.f.nodeNet.get("node2")!.routeGet = { dst: "10.244.1.2", dev: "eth0", via: "10.99.1.1" };
    const v = diagnose(p.f);
    assert.equal(v.verdict, "REACHABLE", v.summary);
    assert.match(v.hops.find((h) => h.hop === "route get node2")!.detail, /via 10\.99\.1\.1 dev eth0: neither through trellis\.vxlan nor directly to node1 \(10\.99\.1\.11\)/);
    const hg = pair(config("host-gw"));
    hg.f.nodeNet.get("node1")!.routeGet = { dst: "10.244.2.2", dev: "eth0", via: "10.99.1.12" };
    assert.equal(diagnose(hg.f).hops.find((h) => h.hop === "route get node1")!.status, "ok");
  });

  it("a VTEP smaller than the pod MTU is a warning, not a break", () => {
    const p = pair();
    p.f.nodeNet.get("node1")!.vtep!.mtu = 1400;
    const v = diagnose(p.f);
    assert.equal(v.verdict, "REACHABLE", v.summary);
    assert.match(v.summary, /\(1 warning\(s\)\)$/);
    assert.equal(mtuHop(p.f).status, "warn");
  });

  it("kernels not read make it UNKNOWN and say what was not checked, never REACHABLE", () => {
    const p = pair();
    for (const n of [p.n1, p.n2]) {
      delete n.dataplane;
      delete n.forwarding;
      delete n.underlay;
    }
    p.f.nodeNet = new Map();
    p.f.fromNet = { ifname: "eth0", error: "outside a lab the pod's namespace path is not known" };
    delete p.f.toNet;
    delete p.f.probe;
    p.f.notChecked = ["node2's kernel (not this node; no agent API yet)"];
    const v = diagnose(p.f);
    assert.equal(v.verdict, "UNKNOWN");
    assert.match(v.summary, /^UNKNOWN: .*no broken hop found, but not checked: node2's kernel \(not this node; no agent API yet\), pod prod\/web/);
    assert.ok(v.hops.some((h) => h.hop === "mtu" && h.status === "unknown"));
  });

  it("a broken hop is named even when others are unknown", () => {
    const p = pair();
    p.f.fromNet = { ifname: "eth0", error: "not read" };
    p.n2.agent = { running: false, detail: "not renewing" };
    assert.match(diagnose(p.f).summary, /^BROKEN: agent on node2 is not running \(not renewing\)/);
  });
});

/** node1 read from its kernel; node2 only from its agent's published status (a real cluster, as seen from node1). */
function remotePair(status: Partial<NodeStatus> | undefined): { f: DiagnoseFacts; n2: NodeFacts } {
  const p = pair();
  delete p.n2.dataplane;
  delete p.n2.forwarding;
  delete p.n2.underlay;
  (p.f.nodeNet as Map<string, NodeNetFacts>).delete("node2");
  delete p.f.probe;
  p.f.toNet = { ifname: "eth0", error: "on node2, not this node", attached: { node: "node2", hostIf: "trl1234", ips: ["10.244.2.2"] } };
  const st: NodeStatus | undefined = status && {
    node: "node2", subnet: "10.244.2.0/24", publicIp: "10.99.1.12", backend: "vxlan", state: "running", ready: true, policy: true, leaseTtlSeconds: 10,
    peers: [{ node: "node1", subnet: "10.244.1.0/24", publicIp: "10.99.1.11", transport: "vxlan", kernel: "programmed" }], updatedAt: NOW - 4000, ...status,
  };
  p.f.reported = new Map([["node2", { ttlMs: 10_000, renewedAt: NOW - 45_000, ...(st ? { status: st } : {}) }]]);
  return { f: p.f, n2: p.n2 };
}

describe("diagnose verdict with the other node's facts from its published status", () => {
  const hop = (v: ReturnType<typeof diagnose>, name: string) => v.hops.find((h) => h.hop === name)!;

  it("programmed: REACHABLE, node2's hops say they were reported by its agent, its pod, forwarding and MTU are listed as only checkable there", () => {
    const v = diagnose(remotePair({}).f);
    assert.equal(v.verdict, "REACHABLE", v.summary);
    assert.equal(hop(v, "agent node2").status, "ok");
    assert.equal(hop(v, "agent node2").evidence, "reported by node2's agent 4 s ago");
    const back = hop(v, "route node2 -> node1");
    assert.equal(back.status, "ok");
    assert.equal(back.detail, "reply: node2 reports its route/FDB/neighbour entries to node1's block 10.244.1.0/24 programmed in its kernel (vxlan, as of its last sync)");
    assert.equal(back.evidence, "reported by node2's agent 4 s ago");
    assert.equal(hop(v, "route node1 -> node2").evidence, "kernel");
    assert.equal(hop(v, "pod prod/api").status, "unknown");
    assert.match(hop(v, "pod prod/api").detail, /attached on node2 \(host side trl1234, 10\.244\.2\.2\); its namespace: not checked \(on node2\)/);
    assert.deepEqual(v.outOfReach, ["pod prod/api (on node2)", "forwarding node2 (on node2)", "mtu (on node2)"]);
    assert.deepEqual(v.notChecked, []);
    assert.match(v.summary, /every hop checked is in place; only checkable on the other node, not checked: pod prod\/api \(on node2\), forwarding node2/);
    assert.match(renderDiagnosis(v), /route node2 -> node1 +reply: node2 reports .*  \[reported by node2's agent 4 s ago\]/);
  });

  it("pending: BROKEN naming what node2 has not programmed, from its report", () => {
    const v = diagnose(remotePair({ peers: [{ node: "node1", subnet: "10.244.1.0/24", publicIp: "10.99.1.11", transport: "vxlan", kernel: "pending" }] }).f);
    assert.equal(v.verdict, "BROKEN");
    assert.equal(v.broken, "route node2 -> node1");
    assert.equal(v.summary, "BROKEN: reply: node2 reports its route/FDB/neighbour entries to node1's block 10.244.1.0/24 not programmed in its kernel (vxlan)" +
      " — the agent on node2 should have programmed it: see its log and trellis nodes");
  });

  it("unreachable, an unknown peer or an old block in the report are broken", () => {
    const un = diagnose(remotePair({ peers: [{ node: "node1", subnet: "10.244.1.0/24", publicIp: "10.99.1.11", transport: "unreachable", reason: "different subnet", kernel: "none" }] }).f);
    assert.match(un.summary, /^BROKEN: reply: node2 reports node1 unreachable: different subnet/);
    assert.match(diagnose(remotePair({ peers: [] }).f).summary, /^BROKEN: reply: node2 reports no peer node1/);
    const old = diagnose(remotePair({ peers: [{ node: "node1", subnet: "10.244.9.0/24", publicIp: "10.99.1.11", transport: "vxlan", kernel: "programmed" }] }).f);
    assert.match(old.summary, /^BROKEN: reply: node2 reports node1 with block 10\.244\.9\.0\/24, but node1 holds 10\.244\.1\.0\/24/);
  });

  it("stale: a report older than the lease TTL is unknown — neither ok nor broken — and the answer UNKNOWN", () => {
    const v = diagnose(remotePair({ updatedAt: NOW - 45_000 }).f);
    assert.equal(v.verdict, "UNKNOWN", v.summary);
    assert.equal(hop(v, "agent node2").status, "unknown");
    assert.equal(hop(v, "agent node2").detail, "unknown: node2's agent has not reported for 45 s (older than the lease TTL of 10 s)");
    assert.equal(hop(v, "route node2 -> node1").status, "unknown");
    assert.match(v.summary, /^UNKNOWN: .*not checked: agent node2, route node2 -> node1$/);
  });

  it("missing: no status published is unknown, saying how long the lease has not been renewed", () => {
    const v = diagnose(remotePair(undefined).f);
    assert.equal(v.verdict, "UNKNOWN", v.summary);
    assert.equal(hop(v, "agent node2").detail, "unknown: node2's agent has not reported (no status/node2 in the datastore; its lease was last renewed 45 s ago)");
    assert.equal(hop(v, "route node2 -> node1").status, "unknown");
  });

  it("stopped: BROKEN agent stopped, from the status alone (also when the report is old)", () => {
    const v = diagnose(remotePair({ state: "stopped", ready: false, stopped: { at: NOW - 3000, why: "SIGTERM" } }).f);
    assert.equal(v.verdict, "BROKEN");
    assert.equal(v.summary, "BROKEN: agent on node2 stopped (by SIGTERM 3 s ago), as it reported; its data plane stays as it was" +
      " — restart it; its routes stay, but nothing repairs drift or follows peers while it is down");
    assert.equal(diagnose(remotePair({ state: "stopped", updatedAt: NOW - 60_000 }).f).broken, "agent node2");
  });

  it("a node still starting is a warning; a waiting one is broken", () => {
    const v = diagnose(remotePair({ ready: false }).f);
    assert.equal(v.verdict, "REACHABLE", v.summary);
    assert.equal(hop(v, "agent node2").status, "warn");
    assert.match(diagnose(remotePair({ state: "waiting", problem: "no block" }).f).summary, /^BROKEN: agent on node2 is waiting, as it reported: no block/);
  });

  it("a node read from its kernel is judged from its kernel, even with a report (a lab)", () => {
    const p = pair();
    p.f.reported = new Map([["node2", { ttlMs: 10_000 }]]);
    assert.equal(diagnose(p.f).verdict, "REACHABLE");
    assert.equal(diagnose(p.f).hops.find((h) => h.hop === "route node2 -> node1")!.evidence, "kernel");
  });

  it("in a lab the report is cross-checked against the kernel: agreement ok, disagreement a warning", () => {
    const status = (kernel: "programmed" | "pending"): NodeStatus => ({
      node: "node2", subnet: "10.244.2.0/24", publicIp: "10.99.1.12", backend: "vxlan", state: "running", ready: true, policy: true, leaseTtlSeconds: 10,
      peers: [{ node: "node1", subnet: "10.244.1.0/24", publicIp: "10.99.1.11", transport: "vxlan", kernel }], updatedAt: NOW - 1000,
    });
    const p = pair();
    p.f.reported = new Map([["node2", { ttlMs: 10_000, status: status("programmed") }]]);
    let v = diagnose(p.f);
    assert.equal(v.verdict, "REACHABLE", v.summary);
    assert.equal(hop(v, "report node2 -> node1").status, "ok");
    p.f.reported = new Map([["node2", { ttlMs: 10_000, status: status("pending") }]]);
    v = diagnose(p.f);
    assert.equal(v.verdict, "REACHABLE", v.summary);
    assert.match(hop(v, "report node2 -> node1").detail, /reports its route to node1 pending, but its kernel holds it/);
    p.f.reported = new Map([["node2", { ttlMs: 10_000, status: status("programmed") }]]);
    p.n2.dataplane!.routes = [];
    v = diagnose(p.f);
    assert.match(v.summary, /^BROKEN: reply: node2 has no route to node1's block/);
    assert.equal(hop(v, "report node2 -> node1").status, "warn");
  });
});
