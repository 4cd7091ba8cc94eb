// The agents' promises under trouble, through the built `trellis` executable: an agent crash and
// restart is hitless and keeps the node's block; drift made by hand is repaired within the resync
// period; a datastore outage freezes the data plane (pods keep talking) and the agents pick up
// where they left off once it is back.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  assertDataplane, eventually, LAB_RESYNC_MS, labSkip, peerRoutes, startPing, TestLab, vxlanFdb, vxlanNeighbours, VXLAN_DEV, type LabStatus,
} from "../helpers/lab.js";
import { sh } from "../helpers/netns.js";

const skip = labSkip();

describe("agent crash and drift repair (vxlan, 3 nodes x 2 pods)", { skip, timeout: 120_000 }, () => {
  const lab = new TestLab();
  let s: LabStatus;
  before(() => {
    lab.up("--nodes", "3", "--pods-per-node", "2", "--backend", "vxlan");
    s = lab.status();
  });
  after(() => lab.down());

  test("an agent killed with SIGKILL and restarted loses no packet and keeps its block", async (t) => {
    const from = lab.podOn("node1");
    const to = lab.podOn("node2");
    const before = lab.node("node2");
    const logBefore = lab.agentLog("node2").length;
    // 400 pings 10 ms apart: about 4 s (more on a busy machine), spanning the kill and the restart.
    const ping = startPing(from.netns, to.ip, 0.01, 400);
    await eventually("the ping gets its first replies", 5_000, () => assert.ok(ping.replies() > 0));

    lab.agent("kill", "node2");
    assert.equal(lab.node("node2").agentPid, undefined, "node2's agent is gone");
    lab.agent("start", "node2");
    const restarted = lab.node("node2").agentPid;
    assert.ok(restarted !== undefined && restarted !== before.agentPid, "a new agent runs on node2");
    await eventually("the restarted agent has taken its lease again", 10_000, () =>
      assert.match(lab.agentLog("node2").slice(logBefore), /kept its lease: \S+/));
    assert.ok(ping.running(), "the ping was still running after the restarted agent took over (the test spans the restart)");

    const stats = await ping.done;
    t.diagnostic(`ping across the restart: ${stats.received}/${stats.transmitted} replies`);
    assert.equal(stats.transmitted, 400);
    assert.equal(stats.received, stats.transmitted, "no packet lost");
    assert.equal(lab.node("node2").subnet, before.subnet, "the restarted agent keeps the node's block");
    assert.match(lab.agentLog("node2").slice(logBefore), new RegExp(`kept its lease: ${before.subnet.replace(/\./g, "\\.")}`));
    assertDataplane(lab.status(), "vxlan");
  });

  test("a peer route, FDB entry and neighbour entry deleted by hand are restored within the resync period", async (t) => {
    const node1 = s.nodes.find((n) => n.name === "node1")!;
    const node2 = s.nodes.find((n) => n.name === "node2")!;
    const routesBefore = peerRoutes(node1.netns);
    const fdbBefore = vxlanFdb(node1.netns);
    const neighBefore = vxlanNeighbours(node1.netns);
    const fdb = fdbBefore.find((e) => e.endsWith(` dst ${node2.ip}`))!;
    const gw = node2.subnet.split("/")[0]!;

    sh("ip", ["-n", node1.netns, "route", "del", node2.subnet]);
    sh("bridge", ["-n", node1.netns, "fdb", "del", fdb.split(" ")[0]!, "dev", VXLAN_DEV, "dst", node2.ip]);
    sh("ip", ["-n", node1.netns, "neigh", "del", gw, "dev", VXLAN_DEV]);
    assert.ok(!peerRoutes(node1.netns).some((r) => r.startsWith(`${node2.subnet} `)), "the route is gone");

    const { ms } = await eventually("node1's agent restores what was deleted", 12_000, () => {
      assert.deepEqual(peerRoutes(node1.netns), routesBefore);
      assert.deepEqual(vxlanFdb(node1.netns), fdbBefore);
      assert.deepEqual(vxlanNeighbours(node1.netns), neighBefore);
    });
    t.diagnostic(`restored after ${ms} ms`);
    assert.ok(ms <= LAB_RESYNC_MS + 1_000, `restored within the resync period (${LAB_RESYNC_MS} ms), took ${ms} ms`);
    const ping = startPing(lab.podOn("node1").netns, lab.podOn("node2").ip, 0.2, 3);
    assert.equal((await ping.done).received, 3, "node1's pods reach node2's again");
  });

  test("a pod's own host route deleted by hand is put back by its node's agent within the resync period", async (t) => {
    const pod = lab.podOn("node2");
    const node2 = s.nodes.find((n) => n.name === "node2")!;
    const hostRoute = (): Array<{ dev: string; protocol?: string }> => JSON.parse(sh("ip", ["-n", node2.netns, "-j", "route", "show", `${pod.ip}/32`])) as never;
    const before = hostRoute();
    assert.equal(before.length, 1);
    sh("ip", ["-n", node2.netns, "route", "del", `${pod.ip}/32`]);
    assert.deepEqual(hostRoute(), []);
    const { ms } = await eventually("node2's agent puts the pod's host route back", 12_000, () => assert.deepEqual(hostRoute(), before));
    t.diagnostic(`restored after ${ms} ms`);
    assert.ok(ms <= LAB_RESYNC_MS + 1_000, `restored within the resync period (${LAB_RESYNC_MS} ms), took ${ms} ms`);
    assert.match(lab.agentLog("node2"), /sync: \d+ change\(s\)/);
    const ping = startPing(lab.podOn("node1").netns, pod.ip, 0.2, 3);
    assert.equal((await ping.done).received, 3, "the pod is reachable again");
  });
});

describe("datastore outage (etcd, vxlan, 3 nodes x 2 pods)", { skip, timeout: 180_000 }, () => {
  const lab = new TestLab();
  let s: LabStatus;
  before(() => {
    lab.up("--nodes", "3", "--pods-per-node", "2", "--backend", "vxlan", "--datastore", "etcd");
    s = lab.status();
  });
  after(() => lab.down());

  test("with etcd down for 30 s, pods on different nodes keep talking and the data plane stays", async (t) => {
    const routesBefore = s.nodes.map((n) => peerRoutes(n.netns));
    lab.etcd("stop");
    assert.notEqual(lab.cli("nodes").code, 0, "the datastore is really down");
    // 150 pings 200 ms apart: 30 s of outage, in both directions between node pairs.
    const pings = [
      startPing(lab.podOn("node1").netns, lab.podOn("node2").ip, 0.2, 150),
      startPing(lab.podOn("node2").netns, lab.podOn("node3").ip, 0.2, 150),
      startPing(lab.podOn("node3").netns, lab.podOn("node1").ip, 0.2, 150),
    ];
    const stats = await Promise.all(pings.map((p) => p.done));
    t.diagnostic(`replies during the outage: ${stats.map((x) => `${x.received}/${x.transmitted}`).join(", ")}`);
    for (const x of stats) {
      assert.equal(x.transmitted, 150);
      assert.equal(x.received, x.transmitted, "no packet lost while the datastore was down");
    }
    assert.deepEqual(s.nodes.map((n) => peerRoutes(n.netns)), routesBefore, "no route was touched");
    assertDataplane(s, "vxlan");
    // lab check still probes the data plane, against the last view of the datastore, and says so.
    const { exitCode, report } = lab.check();
    assert.equal(exitCode, 0, "lab check passes during the outage");
    assert.ok(report.warnings.some((w) => /the datastore cannot be read .*expectations come from the policy model as of .* and may be stale/.test(w)),
      report.warnings.join("\n"));
    assert.notEqual(lab.cli("nodes").code, 0, "the datastore was down the whole time");
  });

  test("once etcd is back, the agents renew their leases, say so, and follow a config change", async () => {
    lab.etcd("start");
    await eventually("every node's lease is in the datastore again", 20_000, () => {
      const nodes = lab.nodes();
      assert.deepEqual(nodes.map((n) => `${n.name} ${n.subnet}`).sort(), s.nodes.map((n) => `${n.name} ${n.subnet}`).sort());
      for (const n of nodes) assert.ok(Date.parse(n.leaseExpiresAt) > Date.now(), `${n.name}'s lease is current`);
    }, 250);
    for (const n of s.nodes) {
      const log = lab.agentLog(n.name);
      assert.match(log, /datastore unreachable \(.*\): cannot renew lease .*; the data plane stays as it is, retrying/, `${n.name} said the datastore was away`);
      assert.match(log, /datastore reachable again after \d+s; lease \S+ renewed/, `${n.name} said it is back`);
    }
    // The agents' config watches reconnected: a backend switch reaches every node.
    const set = lab.cli("network", "set", "--backend", "host-gw");
    assert.equal(set.code, 0, set.stderr);
    await eventually("every node switched to host-gw", 15_000, () => assertDataplane(s, "host-gw"));
    const { exitCode } = lab.check();
    assert.equal(exitCode, 0, "lab check passes under host-gw");
  });

  test("and their lease watches too: a node removed after the outage leaves every other node", async () => {
    const node3 = s.nodes.find((n) => n.name === "node3")!;
    lab.agent("stop", "node3");
    const removed = lab.cli("nodes", "remove", "node3");
    assert.equal(removed.code, 0, removed.stderr);
    await eventually("node1 and node2 drop their route to node3's block", 5_000, () => {
      for (const n of s.nodes.filter((x) => x !== node3)) {
        assert.deepEqual(peerRoutes(n.netns).filter((r) => r.startsWith(`${node3.subnet} `)), [], `${n.name}`);
      }
    });
  });
});
