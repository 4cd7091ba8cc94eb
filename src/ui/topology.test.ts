import { test } from "node:test";
import assert from "node:assert/strict";
import { topologyFromObjects, NO_DROPS_REPORTED } from "./topology.js";
import { CONFIG_KEY, leaseKey, STATUS_PREFIX } from "../model/lease.js";

const NOW = 1_000_000;
const lease = (node: string, subnet: string, ip: string) => ({
  key: leaseKey(subnet), value: JSON.stringify({ node, publicIp: ip, backend: "vxlan", renewedAt: NOW - 1000, expiresAt: NOW + 9000 }),
});
const status = (node: string, subnet: string, peers: unknown[], extra: Record<string, unknown> = {}) => ({
  key: `${STATUS_PREFIX}${node}`,
  value: JSON.stringify({ node, subnet, publicIp: "", backend: "vxlan", state: "running", ready: true, policy: true, leaseTtlSeconds: 10, peers, updatedAt: NOW, ...extra }),
});
const config = { key: CONFIG_KEY, value: JSON.stringify({ network: "10.244.0.0/16", backend: { type: "vxlan" } }) };
const endpoint = (node: string, pod: string, ip: string) => ({
  key: `/trellis/endpoints/${node}/c-${pod}/eth0`,
  value: JSON.stringify({ namespace: "default", pod, node, containerId: `c-${pod}`, ifname: "eth0", hostIf: "trl1", ips: [ip], mode: "routed" }),
});
const podObject = (name: string, labels: Record<string, string>) => ({
  key: `/trellis/pods/default/${name}`,
  value: JSON.stringify({ apiVersion: "v1", kind: "Pod", metadata: { namespace: "default", name, labels } }),
});

const peer = (node: string, subnet: string, kernel: string, extra: Record<string, unknown> = {}) =>
  ({ node, subnet, publicIp: "192.168.0.9", transport: "vxlan", kernel, ...extra });

const cluster = [
  config,
  lease("node1", "10.244.1.0/24", "192.168.0.11"),
  lease("node2", "10.244.2.0/24", "192.168.0.12"),
  status("node1", "10.244.1.0/24", [peer("node2", "10.244.2.0/24", "programmed")]),
  status("node2", "10.244.2.0/24", [peer("node1", "10.244.1.0/24", "pending")]),
  endpoint("node1", "web", "10.244.1.5"),
  endpoint("node2", "db", "10.244.2.5"),
  podObject("web", { app: "web" }),
];

test("nodes carry block, address and agent state; links carry transport and kernel state per direction", () => {
  const t = topologyFromObjects(cluster, NOW);
  assert.deepEqual(t.nodes.map((n) => [n.name, n.subnet, n.publicIp, n.agent]),
    [["node1", "10.244.1.0/24", "192.168.0.11", "ready"], ["node2", "10.244.2.0/24", "192.168.0.12", "ready"]]);
  assert.deepEqual(t.links.map((l) => [l.id, l.transport, l.kernel, l.health]),
    [["node1->node2", "vxlan", "programmed", "ok"], ["node2->node1", "vxlan", "pending", "pending"]]);
  assert.deepEqual(t.network, { cidr: "10.244.0.0/16", backend: "vxlan", subnetLen: 24, mtu: "underlay MTU - 50 (VXLAN)" });
  assert.deepEqual(t.drops, { seconds: 0, reporting: [], rows: [], note: NO_DROPS_REPORTED }, "agents that publish no drops (older ones)");
  assert.ok(t.nodes.every((n) => n.drops === undefined));
});

test("recent policy drops: per node as its agent reports them, and across nodes newest first, then most packets", () => {
  const drop = (policy: string, packets: number, lastSeenAt: number) => ({ policy, rule: "ingress isolated", packets, bytes: packets * 60, lastSeenAt });
  const t = topologyFromObjects([
    config,
    lease("node1", "10.244.1.0/24", "192.168.0.11"),
    lease("node2", "10.244.2.0/24", "192.168.0.12"),
    status("node1", "10.244.1.0/24", [], { policyDrops: [drop("NetworkPolicy/a/deny-all", 9, NOW - 20_000)], policyDropsCover: { from: NOW - 60_000, to: NOW - 5000 } }),
    status("node2", "10.244.2.0/24", [], {
      policyDrops: [drop("NetworkPolicy/b/deny-all", 2, NOW - 5000), drop("GlobalTrellisPolicy/dev-not-to-prod", 7, NOW - 5000)],
      policyDropsCover: { from: NOW - 45_000, to: NOW - 5000 },
    }),
  ], NOW);
  assert.deepEqual(t.nodes[0]!.drops, {
    seconds: 55, rules: [{ policy: "NetworkPolicy/a/deny-all", rule: "ingress isolated", packets: 9, bytes: 540, lastSeenAt: NOW - 20_000, agoSeconds: 20 }],
  });
  assert.deepEqual(t.drops.rows.map((r) => [r.node, r.policy, r.packets, r.agoSeconds]), [
    ["node2", "GlobalTrellisPolicy/dev-not-to-prod", 7, 5],
    ["node2", "NetworkPolicy/b/deny-all", 2, 5],
    ["node1", "NetworkPolicy/a/deny-all", 9, 20],
  ]);
  assert.deepEqual([t.drops.seconds, t.drops.reporting, t.drops.note], [55, ["node1", "node2"], ""]);
});

test("no recent drops on nodes that report them: \"none in the last N s\"", () => {
  const t = topologyFromObjects([
    config, lease("node1", "10.244.1.0/24", "192.168.0.11"),
    status("node1", "10.244.1.0/24", [], { policyDrops: [], policyDropsCover: { from: NOW - 60_000, to: NOW } }),
  ], NOW);
  assert.deepEqual(t.nodes[0]!.drops, { seconds: 60, rules: [] });
  assert.deepEqual(t.drops, { seconds: 60, reporting: ["node1"], rows: [], note: "none in the last 60 s" });
});

test("pods come from endpoints, labels from the stored Pod (none when there is no Pod object)", () => {
  const t = topologyFromObjects(cluster, NOW);
  assert.deepEqual(t.nodes[0]!.pods, [{ namespace: "default", name: "web", ips: ["10.244.1.5"], labels: { app: "web" } }]);
  assert.deepEqual(t.nodes[1]!.pods, [{ namespace: "default", name: "db", ips: ["10.244.2.5"], labels: {} }]);
});

test("a removed node disappears with its links; its pods are listed as orphans", () => {
  const t = topologyFromObjects(cluster.filter((kv) => kv.key !== leaseKey("10.244.2.0/24") && kv.key !== `${STATUS_PREFIX}node2`), NOW);
  assert.deepEqual(t.nodes.map((n) => n.name), ["node1"]);
  assert.deepEqual(t.links, []);
  assert.deepEqual(t.orphanPods.map((p) => `${p.node}/${p.name}`), ["node2/db"]);
});

test("unreachable peers are marked; configured MTU is shown; BGP sessions per node", () => {
  const t = topologyFromObjects([
    { key: CONFIG_KEY, value: JSON.stringify({ network: "10.244.0.0/16", backend: { type: "bgp", mtu: 1400 } }) },
    lease("node1", "10.244.1.0/24", "192.168.0.11"),
    lease("node2", "10.244.2.0/24", "192.168.1.12"),
    status("node1", "10.244.1.0/24", [peer("node2", "10.244.2.0/24", "none", { transport: "unreachable", reason: "different subnet" })], {
      bgp: { asNumber: 64512, routerId: "192.168.0.11", sessions: [{ peer: "node2", peerIp: "192.168.1.12", type: "mesh", protocol: "n_node2", state: "Active", since: "", received: 0, exported: 0, rejected: [] }] },
    }),
  ], NOW);
  assert.equal(t.network?.mtu, "1400");
  assert.deepEqual(t.links.map((l) => [l.id, l.transport, l.health, l.reason]), [["node1->node2", "unreachable", "unreachable", "different subnet"]]);
  assert.deepEqual(t.nodes[0]!.bgp?.sessions, [{ peer: "node2", peerIp: "192.168.1.12", type: "mesh", state: "Active" }]);
  assert.equal(t.nodes[1]!.agent, "unknown");
});

test("a stale lease shows the agent as not renewing; bad objects are reported, not fatal", () => {
  const t = topologyFromObjects([
    { key: leaseKey("10.244.1.0/24"), value: JSON.stringify({ node: "node1", publicIp: "192.168.0.11", backend: "vxlan", renewedAt: NOW - 60_000, expiresAt: NOW + 1 }) },
    { key: `${STATUS_PREFIX}x`, value: "not json" },
  ], NOW);
  assert.equal(t.nodes[0]!.agent, "not renewing");
  assert.equal(t.problems.length, 1);
});
