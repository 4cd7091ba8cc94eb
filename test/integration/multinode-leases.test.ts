// Node blocks are leases: a node that is gone loses its block when its lease lapses (or at once
// with `nodes remove`), and every trace of it leaves the other nodes' kernels; many agents racing
// for blocks at once still end up with one distinct block each.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  eventually, LAB_LEASE_TTL_MS, LAB_RESYNC_MS, labSkip, peerRoutes, routes, TestLab, vxlanFdb, vxlanNeighbours, type LabStatus,
} from "../helpers/lab.js";

const skip = labSkip();

describe("a node that is gone (vxlan, 3 nodes x 1 pod)", { skip, timeout: 120_000 }, () => {
  const lab = new TestLab();
  let s: LabStatus;
  before(() => {
    lab.up("--nodes", "3", "--pods-per-node", "1", "--backend", "vxlan");
    s = lab.status();
  });
  after(() => lab.down());

  /** Asserts that nothing on the nodes named in `by` points at `gone` any more. */
  const assertForgotten = (gone: LabStatus["nodes"][number], by: string[]): void => {
    for (const n of s.nodes.filter((x) => by.includes(x.name))) {
      assert.deepEqual(routes(n.netns).filter((r) => r.dst === gone.subnet), [], `${n.name} has no route to ${gone.subnet}`);
      assert.deepEqual(vxlanFdb(n.netns).filter((e) => e.endsWith(` dst ${gone.ip}`)), [], `${n.name} has no FDB entry for ${gone.ip}`);
      assert.deepEqual(vxlanNeighbours(n.netns).filter((e) => e.startsWith(`${gone.subnet.split("/")[0]} `)), [], `${n.name} has no neighbour entry for ${gone.name}`);
    }
  };

  test("whose agent died: its lease lapses within the TTL and the other nodes forget it", async (t) => {
    const node3 = s.nodes.find((n) => n.name === "node3")!;
    assert.ok(peerRoutes(s.nodes[0]!.netns).some((r) => r.startsWith(`${node3.subnet} `)), "node1 routes to node3's block at first");
    lab.agent("kill", "node3");
    const { ms } = await eventually("node3's lease lapses and the others forget it", 25_000, () => {
      assert.deepEqual(lab.nodes().map((n) => n.name).sort(), ["node1", "node2"], "node3's lease is gone");
      assertForgotten(node3, ["node1", "node2"]);
      for (const n of lab.nodes()) assert.deepEqual(n.peers.map((p) => p.node), [n.name === "node1" ? "node2" : "node1"], `${n.name}'s peers`);
    }, 250);
    t.diagnostic(`node3 forgotten ${ms} ms after its agent was killed (lease TTL ${LAB_LEASE_TTL_MS} ms)`);
    assert.ok(ms <= LAB_LEASE_TTL_MS + LAB_RESYNC_MS, `forgotten within the lease TTL (+ one resync), took ${ms} ms`);
    assert.ok(!lab.nodes().some((n) => n.subnet === node3.subnet), `block ${node3.subnet} is free`);
  });

  test("removed with `nodes remove`: its block is free at once, and the other node forgets it", async (t) => {
    const node2 = s.nodes.find((n) => n.name === "node2")!;
    lab.agent("stop", "node2");
    const r = lab.cli("nodes", "remove", "node2");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout + r.stderr, new RegExp(`freed ${node2.subnet.replace(/\./g, "\\.")}`));
    const nodes = lab.nodes();
    assert.deepEqual(nodes.map((n) => n.name), ["node1"], "node2's lease is gone immediately, not after its TTL");
    assert.ok(!nodes.some((n) => n.subnet === node2.subnet), `block ${node2.subnet} is free`);
    // node3's agent is dead since the previous test: its kernel stays as it was, so only node1 is asked.
    const { ms } = await eventually("node1 forgets node2", LAB_LEASE_TTL_MS / 2, () => assertForgotten(node2, ["node1"]));
    t.diagnostic(`node1 forgot node2 ${ms} ms after nodes remove`);
  });
});

describe("20 agents racing for blocks of a small network", { skip, timeout: 180_000 }, () => {
  const lab = new TestLab();
  before(() => {
    // 10.244.0.0/19 in /24 blocks: 31 leasable blocks for 20 nodes, so random choices collide often.
    lab.up("--nodes", "20", "--pods-per-node", "0", "--pod-cidr", "10.244.0.0/19", "--subnet-len", "24");
  });
  after(() => lab.down());

  test("each node leases a distinct block of the network, after a few retries at most", (t) => {
    const nodes = lab.nodes();
    assert.equal(nodes.length, 20, "every node holds a lease");
    const subnets = nodes.map((n) => n.subnet);
    assert.equal(new Set(subnets).size, 20, `20 distinct blocks: ${subnets.sort().join(" ")}`);
    for (const sn of subnets) assert.match(sn, /^10\.244\.([0-9]|[12][0-9]|3[01])\.0\/24$/, `${sn} is a /24 of 10.244.0.0/19`);
    const status = lab.status();
    for (const n of status.nodes) {
      assert.equal(n.subnet, nodes.find((x) => x.name === n.name)?.subnet, `${n.name}'s subnet file names the block it leased`);
    }
    const retries = status.nodes.map((n) => ({ node: n.name, retries: (lab.agentLog(n.name).match(/taken by another node/g) ?? []).length }));
    const total = retries.reduce((a, r) => a + r.retries, 0);
    t.diagnostic(`"taken by another node" retries: ${total} in all; ${retries.filter((r) => r.retries > 0).map((r) => `${r.node}: ${r.retries}`).join(", ") || "none"}`);
    for (const r of retries) assert.ok(r.retries <= 5, `${r.node} needed ${r.retries} retries`);
    for (const n of nodes) assert.equal(n.peers.length, 19, `${n.name} sees every other node`);
  });
});
