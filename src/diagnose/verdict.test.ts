// The diagnose verdict over hand-made facts: a healthy VXLAN pair is REACHABLE, and each fault
// kind on its own — route, FDB or neighbour entry missing, agent stopped, lease expired, policy
// drop, MTU black hole, pod interface down, test packet unanswered — is named on the first line.
// A pair whose kernels could not be read is UNKNOWN, listing what was not checked, never REACHABLE.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { desiredState, vtepMacFor } from "../backends/desired.js";
import type { ActualDataplane } from "../dataplane/diff.js";
import type { Lease } from "../model/lease.js";
import { validateNetworkConfig, type NetworkConfig } from "../model/network.js";
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
