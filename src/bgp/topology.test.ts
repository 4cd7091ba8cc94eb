// Who peers with whom, as in Calico: the node mesh, route reflectors with the mesh off, external
// peers by node or selector, per-node AS numbers; nodes behind a router reached only through
// routers that carry pod routes, else reported unreachable with the reason.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DEFAULT_AS, RR_LABEL, type BgpPeer, type NodeSettings } from "./model.js";
import { planBgp, type BgpPlan } from "./topology.js";

const nodes = [
  { name: "node1", ip: "10.99.1.11" }, { name: "node2", ip: "10.99.1.12" }, { name: "node3", ip: "10.99.1.13" }, { name: "node4", ip: "10.99.2.14" },
];
const rr = (node: string, clusterId?: string): NodeSettings => ({ node, labels: { [RR_LABEL]: "true" }, ...(clusterId ? { routeReflectorClusterId: clusterId } : {}) });

function plan(self: string, o: { mesh?: boolean; settings?: NodeSettings[]; peers?: BgpPeer[]; only?: string[] } = {}): BgpPlan {
  const me = nodes.find((n) => n.name === self)!;
  return planBgp({
    self: { name: self, underlayCidr: `${me.ip}/24`, block: "10.244.1.0/24" },
    nodes: nodes.filter((n) => !o.only || o.only.includes(n.name)),
    settings: { asNumber: DEFAULT_AS, nodeMesh: o.mesh ?? true },
    nodeSettings: new Map((o.settings ?? []).map((s) => [s.node, s])),
    peers: o.peers ?? [],
  });
}
const sessions = (p: BgpPlan): string[] => p.sessions.map((s) => `${s.protocol} ${s.kind} ${s.peerIp} AS${s.peerAs}${s.rrClient ? " rr-client" : ""}`);

describe("planBgp", () => {
  it("node mesh: a session to every node on this node's subnet, one AS", () => {
    const p = plan("node1", { only: ["node1", "node2", "node3"] });
    assert.deepEqual(sessions(p), ["node_node2 mesh 10.99.1.12 AS64512", "node_node3 mesh 10.99.1.13 AS64512"]);
    assert.deepEqual([...p.peers], [["node2", { transport: "bgp" }], ["node3", { transport: "bgp" }]]);
    assert.equal(p.clusterId, undefined);
  });

  it("a node behind a router: no session to it; unreachable without external peers, reached through them with", () => {
    const alone = plan("node1");
    assert.ok(!alone.sessions.some((s) => s.peerName === "node4"));
    assert.equal(alone.peers.get("node4")?.transport, "unreachable");
    assert.match(alone.peers.get("node4")?.reason ?? "", /10\.99\.2\.14 is not on this node's subnet 10\.99\.1\.11\/24: BGP between nodes on different segments needs routers that carry the pod routes/);
    const tor: BgpPeer = { name: "tor1", peerIp: "10.99.1.3", asNumber: 65101 };
    const routed = plan("node1", { peers: [tor] });
    assert.deepEqual(routed.peers.get("node4"), { transport: "bgp" });
    assert.deepEqual(sessions(routed).at(-1), "peer_tor1 external 10.99.1.3 AS65101");
  });

  it("mesh off: reflectors peer with every node (clients marked) and each other; clients only with reflectors", () => {
    const settings = [rr("node1"), rr("node2", "10.0.0.7")];
    const o = { mesh: false, settings, only: ["node1", "node2", "node3"] };
    const r1 = plan("node1", o);
    assert.deepEqual(sessions(r1), ["node_node2 reflector 10.99.1.12 AS64512", "node_node3 rr-client 10.99.1.13 AS64512 rr-client"]);
    assert.equal(r1.clusterId, "244.0.0.1", "the default cluster ID");
    assert.equal(plan("node2", o).clusterId, "10.0.0.7");
    const client = plan("node3", o);
    assert.deepEqual(sessions(client), ["node_node1 reflector 10.99.1.11 AS64512", "node_node2 reflector 10.99.1.12 AS64512"]);
    assert.deepEqual([...client.peers.values()].map((x) => x.transport), ["bgp", "bgp"]);
  });

  it("mesh off and nothing to learn from: every peer unreachable, with the reason", () => {
    const p = plan("node1", { mesh: false, only: ["node1", "node2"] });
    assert.deepEqual(p.sessions, []);
    assert.match(p.peers.get("node2")?.reason ?? "", /the node mesh is off and this node has no route reflector or external peer/);
  });

  it("per-node AS numbers: a session to a node of another AS is eBGP to that AS", () => {
    const p = plan("node1", { only: ["node1", "node2"], settings: [{ node: "node2", labels: {}, asNumber: 65002 }, { node: "node1", labels: {}, asNumber: 65001 }] });
    assert.equal(p.asNumber, 65001);
    assert.deepEqual(sessions(p), ["node_node2 mesh 10.99.1.12 AS65002"]);
  });

  it("external peers: every node, one node, or the nodes a selector picks; an off-link one is marked", () => {
    const peers: BgpPeer[] = [
      { name: "all", peerIp: "10.99.1.1", asNumber: 65000 },
      { name: "only2", peerIp: "10.99.1.2", asNumber: 65000, node: "node2" },
      { name: "rack-a", peerIp: "10.99.1.3", asNumber: 65000, nodeSelector: { rack: "a" } },
      { name: "far", peerIp: "192.0.2.1", asNumber: 65000 },
    ];
    const settings: NodeSettings[] = [{ node: "node1", labels: { rack: "a" } }];
    assert.deepEqual(plan("node1", { peers, settings, only: ["node1"] }).sessions.map((s) => s.peerName), ["all", "far", "rack-a"]);
    assert.deepEqual(plan("node2", { peers, settings, only: ["node2"] }).sessions.map((s) => s.peerName), ["all", "far", "only2"]);
    assert.equal(plan("node1", { peers, only: ["node1"] }).sessions.find((s) => s.peerName === "far")?.offLink, true);
  });

  it("BIRD protocol names are symbols, unique even when names sanitise alike", () => {
    const p = planBgp({
      self: { name: "a", underlayCidr: "10.0.0.1/24", block: "10.244.1.0/24" },
      nodes: [{ name: "a", ip: "10.0.0.1" }, { name: "node-1", ip: "10.0.0.2" }, { name: "node.1", ip: "10.0.0.3" }],
      settings: { asNumber: 1, nodeMesh: true }, nodeSettings: new Map(), peers: [],
    });
    assert.deepEqual(p.sessions.map((s) => s.protocol), ["node_node_1", "node_node_1_2"]);
  });
});
