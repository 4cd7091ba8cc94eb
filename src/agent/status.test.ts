// Liveness you can see: `trellis nodes` tells a ready agent from a stopped, silent or starting
// one, from its lease and its own status; each peer carries its kernel state as the reporting
// node read it back. Also the agent's own pod host routes, and the addressing guard.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { desiredState, vtepMacFor } from "../backends/desired.js";
import type { ActualDataplane } from "../dataplane/diff.js";
import type { Lease } from "../model/lease.js";
import { strandedBy, validateNetworkConfig } from "../model/network.js";
import { podHostRoutes } from "./agent.js";
import { nodeView, parseNodeStatus, peerKernelState, type NodeStatus } from "./status.js";

const NOW = 1_800_000_000_000;
const lease = (over: Partial<Lease> = {}): Lease => ({
  subnet: "10.244.1.0/24", node: "node1", publicIp: "10.99.1.11", backend: "vxlan", renewedAt: NOW - 2000, expiresAt: NOW + 8000, ...over,
});
const status = (over: Partial<NodeStatus> = {}): NodeStatus => ({
  node: "node1", subnet: "10.244.1.0/24", publicIp: "10.99.1.11", backend: "vxlan", state: "running", ready: true, policy: true,
  leaseTtlSeconds: 10, peers: [], updatedAt: NOW - 2000, ...over,
});

describe("nodeView: the agent's state", () => {
  it("ready while it renews and reports ready", () => {
    const v = nodeView(lease(), status(), "10.244.0.0/16", NOW);
    assert.equal(v.agent, "ready");
    assert.equal(v.agentDetail, "ready; renewed 2s ago");
    assert.equal(v.lastRenewal, new Date(NOW - 2000).toISOString());
  });
  it("stopped by SIGTERM: said, with when, although the lease still runs", () => {
    const v = nodeView(lease(), status({ state: "stopped", ready: false, stopped: { at: NOW - 12_000, why: "SIGTERM" } }), undefined, NOW);
    assert.equal(v.agent, "stopped");
    assert.equal(v.agentDetail, "stopped by SIGTERM 12s ago; its data plane stays as it was");
  });
  it("not renewing once two renewals are missed (killed, or cut off from the datastore)", () => {
    assert.equal(nodeView(lease({ renewedAt: NOW - 6000 }), status(), undefined, NOW).agent, "ready", "one third late is fine");
    const v = nodeView(lease({ renewedAt: NOW - 7000 }), status(), undefined, NOW);
    assert.equal(v.agent, "not renewing");
    assert.equal(v.agentDetail, "last renewal 7s ago (due every 3s)");
  });
  it("starting until its first full sync; unknown without a status", () => {
    assert.equal(nodeView(lease(), status({ ready: false }), undefined, NOW).agent, "starting");
    assert.equal(nodeView(lease(), undefined, undefined, NOW).agent, "unknown");
  });
  it("whether it enforces policy, and a block outside a changed network", () => {
    assert.equal(nodeView(lease(), status({ policy: false }), undefined, NOW).policy, false);
    assert.equal(nodeView(lease(), status(), "10.50.0.0/16", NOW).outsideNetwork, "10.50.0.0/16");
    assert.equal(nodeView(lease(), status(), "10.244.0.0/16", NOW).outsideNetwork, undefined);
  });
  it("a stored status is read defensively", () => {
    assert.equal(parseNodeStatus("not json"), undefined);
    assert.equal(parseNodeStatus(JSON.stringify({ node: 1 })), undefined);
    assert.deepEqual(parseNodeStatus(JSON.stringify({ node: "n", peers: [] }))?.state, "running");
  });
  it("policy drops: absent from an older agent's status, read with the interval they cover when present", () => {
    const old = parseNodeStatus(JSON.stringify({ node: "n", peers: [] }))!;
    assert.equal(old.policyDrops, undefined);
    assert.equal(old.policyDropsCover, undefined);
    const drop = { policy: "NetworkPolicy/a/deny-all", rule: "ingress isolated", packets: 3, bytes: 180, lastSeenAt: 5 };
    const s = parseNodeStatus(JSON.stringify({ node: "n", peers: [], policyDrops: [drop, { bogus: true }], policyDropsCover: { from: 1, to: 5 } }))!;
    assert.deepEqual(s.policyDrops, [drop]);
    assert.deepEqual(s.policyDropsCover, { from: 1, to: 5 });
    assert.equal(parseNodeStatus(JSON.stringify({ node: "n", peers: [], policyDrops: "nonsense" }))!.policyDrops, undefined);
  });
});

describe("peerKernelState: what the reporting node's kernel holds per peer", () => {
  const config = validateNetworkConfig({ network: "10.244.0.0/16", backend: { type: "cross-subnet" } });
  const self = lease({ vtepMac: vtepMacFor("node1") });
  const near = lease({ node: "node2", subnet: "10.244.2.0/24", publicIp: "10.99.1.12", vtepMac: vtepMacFor("node2") });
  const far = lease({ node: "node3", subnet: "10.244.3.0/24", publicIp: "10.99.2.13", vtepMac: vtepMacFor("node3") });
  const d = desiredState({ config, self, peers: [near, far], underlay: { dev: "eth0", cidr: "10.99.1.11/24", mtu: 1500 }, podMtu: 1450 });
  const full: ActualDataplane = { ...structuredClone(d.dataplane), natState: "absent" };

  it("programmed when route (and for VXLAN FDB and neighbour) are there", () => {
    assert.deepEqual([...peerKernelState(d.dataplane, d.peers, full)], [["node2", "programmed"], ["node3", "programmed"]]);
  });
  it("pending when anything of it is missing", () => {
    assert.deepEqual(peerKernelState(d.dataplane, d.peers, { ...full, routes: full.routes.filter((r) => r.dst !== near.subnet) }).get("node2"), "pending");
    assert.deepEqual(peerKernelState(d.dataplane, d.peers, { ...full, fdb: [] }).get("node3"), "pending");
    assert.deepEqual(peerKernelState(d.dataplane, d.peers, { ...full, neigh: [] }).get("node3"), "pending");
    assert.deepEqual(peerKernelState(d.dataplane, d.peers, { ...full, neigh: [] }).get("node2"), "programmed", "host-gw needs no neighbour");
  });
  it("none for a peer unreachable by configuration", () => {
    assert.equal(peerKernelState(d.dataplane, [{ ...d.peers[0]!, transport: "unreachable" }], full).get("node2"), "none");
  });
});

describe("podHostRoutes: the host routes the agent keeps for its routed pods", () => {
  it("one per address (/32, /128) on the pod's host veth; bridge-mode pods have none", () => {
    const ep = (hostIf: string, ips: string[], mode: "routed" | "bridge" = "routed") =>
      ({ namespace: "d", pod: hostIf, node: "n", containerId: hostIf, ifname: "eth0", hostIf, ips, mode });
    assert.deepEqual(podHostRoutes([ep("trl2", ["10.244.1.3", "fd00::3"]), ep("trl1", ["10.244.1.2"]), ep("br1", ["10.244.1.9"], "bridge")]), [
      { dst: "10.244.1.2/32", dev: "trl1" }, { dst: "10.244.1.3/32", dev: "trl2" }, { dst: "fd00::3/128", dev: "trl2" },
    ]);
  });
});

describe("strandedBy: changing the addressing of a cluster with live leases", () => {
  const leases = [{ node: "node1", subnet: "10.244.1.0/24" }, { node: "node2", subnet: "10.244.7.0/24" }];
  it("names the nodes whose blocks the new config could not have leased, and what will happen", () => {
    const s = strandedBy(validateNetworkConfig({ network: "10.50.0.0/16" }), leases);
    assert.match(s ?? "", /^2 of 2 node\(s\) hold blocks the new addressing \(10\.50\.0\.0\/16, \/24 blocks\) cannot have \(node1 10\.244\.1\.0\/24, node2 10\.244\.7\.0\/24\)/);
    assert.match(s ?? "", /cannot reach each other's pods/);
    assert.match(strandedBy(validateNetworkConfig({ network: "10.244.0.0/16", subnetLen: 25 }), leases) ?? "", /2 of 2/);
    assert.match(strandedBy(validateNetworkConfig({ network: "10.244.0.0/16", subnetMax: "10.244.5.0/24" }), leases) ?? "", /1 of 2 .*node2 10\.244\.7\.0\/24/);
  });
  it("nothing when every block stays leasable (a wider network, the same block length)", () => {
    assert.equal(strandedBy(validateNetworkConfig({ network: "10.244.0.0/15" }), leases), undefined);
    assert.equal(strandedBy(validateNetworkConfig({ network: "10.50.0.0/16" }), []), undefined);
  });
});

describe("trellis nodes: a node whose agent waits for a block", () => {
  it("is listed with the reason it waits, not left out", async () => {
    const { EmbeddedDatastore } = await import("../datastore/embedded.js");
    const { readNodes, renderNodes } = await import("../cli/cluster.js");
    const fs = await import("node:fs");
    const os = await import("node:os");
    const path = await import("node:path");
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "trellis-nodes-"));
    const store = await EmbeddedDatastore.open(dir, { sweepIntervalMs: 0 });
    try {
      await store.put("/trellis/leases/10.244.1.0-24", JSON.stringify({ ...lease(), subnet: undefined }));
      await store.put("/trellis/status/node1", JSON.stringify(status()));
      const problem = "no block is assigned to node node2 (network config blocks: assigned; on Kubernetes the Node has no spec.podCIDR)";
      await store.put("/trellis/status/node2", JSON.stringify(status({ node: "node2", subnet: "", state: "waiting", ready: false, problem, updatedAt: NOW - 5000 })));
      const rows = await readNodes(store, NOW);
      assert.deepEqual(rows.map((r) => [r.name, r.subnet, r.agent]), [["node1", "10.244.1.0/24", "ready"], ["node2", "-", "waiting"]]);
      assert.equal(rows[1]!.agentDetail, `waiting (reported 5s ago): ${problem}`);
      const table = renderNodes(rows, NOW);
      assert.match(table, /node2\s+10\.99\.1\.11\s+-\s+vxlan\s+waiting\s+-\s+-/);
      assert.ok(table.includes(`node2: agent waiting (reported 5s ago): ${problem}`));
    } finally {
      await store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
