// Multi-node labs through the built `trellis` executable: every backend connects every pod to
// every pod it should reach (and to the outside through NAT), the kernel holds exactly the routes,
// FDB and neighbour entries the backend calls for, a backend that cannot reach a peer says so and
// installs nothing broken, and the backend can be switched on a running cluster without leftovers.
import assert from "node:assert/strict";
import { nodeDir } from "../../src/lab/lab.js";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import {
  assertDataplane, assertTransports, eventually, hasLink, labNamespaces, labSkip, peerRoutes, routes, TestLab, trellis, VXLAN_DEV, type LabStatus,
} from "../helpers/lab.js";

const skip = labSkip();

/** Check cells name pods as namespace/name; these labs' pods are all in "default". */
const bare = (key: string): string => (key.includes("/") ? key.slice(key.indexOf("/") + 1) : key);

/** A lab check that passed, and how many of its cells were expected to connect. */
function assertCheckPasses(lab: TestLab): { expected: number; cells: number } {
  const { exitCode, report } = lab.check();
  const wrong = report.cells.filter((c) => c.expected !== c.reached);
  assert.deepEqual(wrong, [], "every pair connects exactly when it should");
  assert.equal(report.passed, true);
  assert.equal(exitCode, 0, "lab check exits 0 when everything is as expected");
  return { expected: report.cells.filter((c) => c.expected).length, cells: report.cells.length };
}

/** The outside host has no route to the pod network: a pod reaching it was masqueraded. */
function assertOutsideOnlyThroughNat(lab: TestLab, s: LabStatus): void {
  const outside = `trellis-${lab.name}-out`;
  for (const p of s.pods) {
    const r = spawnSync("ip", ["-n", outside, "route", "get", p.ip], { encoding: "utf8" });
    assert.notEqual(r.status, 0, `the outside has no route back to pod ${p.name} (${p.ip}): ${r.stdout}`);
  }
  const { report } = lab.check();
  for (const p of s.pods) {
    const cell = report.cells.find((c) => bare(c.from) === p.name && c.to === "outside");
    assert.deepEqual(cell && { from: bare(cell.from), to: cell.to, expected: cell.expected, reached: cell.reached },
      { from: p.name, to: "outside", expected: true, reached: true }, `${p.name} reaches the outside`);
  }
}

const reachability = [
  { backend: "vxlan", segments: 1, datastore: "embedded" },
  { backend: "host-gw", segments: 1, datastore: "embedded" },
  { backend: "cross-subnet", segments: 1, datastore: "embedded" },
  { backend: "vxlan", segments: 2, datastore: "embedded" },
  { backend: "cross-subnet", segments: 2, datastore: "embedded" },
  { backend: "vxlan", segments: 1, datastore: "etcd" },
] as const;

for (const { backend, segments, datastore } of reachability) {
  describe(`3 nodes x 2 pods, backend ${backend}, ${segments} segment(s), ${datastore} datastore`, { skip, timeout: 120_000 }, () => {
    const lab = new TestLab();
    let s: LabStatus;
    before(() => {
      lab.up("--nodes", "3", "--pods-per-node", "2", "--backend", backend, "--segments", String(segments), "--datastore", datastore);
      s = lab.status();
    });
    after(() => lab.down());

    test("every pod reaches every other pod, on its node and across nodes", () => {
      assert.equal(s.pods.length, 6);
      assert.equal(new Set(s.nodes.map((n) => n.subnet)).size, 3, "each node leased its own block");
      if (segments === 2) assert.deepEqual(s.nodes.map((n) => n.segment), [1, 2, 1], "nodes are spread over both segments");
      const { expected, cells } = assertCheckPasses(lab);
      assert.equal(expected, cells, "every pair and pod -> outside is expected to connect");
      assert.equal(cells, 6 * 5 + 6);
    });

    test("every pod reaches the outside through NAT", () => {
      assertOutsideOnlyThroughNat(lab, s);
    });

    test("each node's agent made its pods' attachments: the plugin forwarded every ADD to its node's agent", () => {
      for (const n of s.nodes) {
        const log = fs.readFileSync(path.join(nodeDir(lab.name, n.name), "cni.log"), "utf8");
        for (const p of s.pods.filter((x) => x.node === n.name)) {
          assert.ok(n.agentPid, `${n.name} has a running agent`);
          assert.match(log, new RegExp(`trellis\\[agent ${n.agentPid}\\] ADD [^ ]*/${p.ifname}: ${p.ip.split("/")[0]!.replaceAll(".", "\\.")}/`),
            `${n.name}'s agent logged the ADD of ${p.name}`);
        }
      }
    });

    test(`nodes reports each peer's transport as ${backend} calls for`, () => {
      const nodes = lab.nodes();
      assert.deepEqual(nodes.map((n) => n.name).sort(), ["node1", "node2", "node3"]);
      for (const n of nodes) assert.equal(n.subnet, s.nodes.find((x) => x.name === n.name)!.subnet, `${n.name}'s lease is its block`);
      assertTransports(s, nodes, backend);
      if (backend === "cross-subnet" && segments === 2) {
        const node1 = nodes.find((n) => n.name === "node1")!;
        assert.deepEqual(node1.peers.map((p) => `${p.node}:${p.transport}`).sort(), ["node2:vxlan", "node3:host-gw"],
          "direct route to the same-segment peer, VXLAN to the other segment");
      }
    });

    test("each node's kernel holds exactly the routes and VXLAN entries of its peers", () => {
      assertDataplane(s, backend);
    });
  });
}

describe("host-gw across two segments", { skip, timeout: 120_000 }, () => {
  const lab = new TestLab();
  let s: LabStatus;
  before(() => {
    lab.up("--nodes", "3", "--pods-per-node", "2", "--backend", "host-gw", "--segments", "2", "--allow-unreachable");
    s = lab.status();
  });
  after(() => lab.down());

  test("lab up without --allow-unreachable refuses it before making anything", () => {
    const other = new TestLab();
    const r = trellis("lab", "up", "--name", other.name, "--nodes", "3", "--backend", "host-gw", "--segments", "2");
    assert.equal(r.code, 1);
    assert.match(r.stderr, /leaves 2 node pair\(s\) without a path \(host-gw cannot cross segments.*--allow-unreachable/);
    assert.doesNotMatch(r.stderr, /lab down/, "no hint to remove what was never made");
    assert.deepEqual(labNamespaces(other.name), []);
  });

  test("lab status says what the lab will not do", () => {
    assert.ok(s.warnings.some((w) => /2 node pair\(s\) have no path, as asked with --allow-unreachable: host-gw cannot cross segments \(node1 <-> node2, node2 <-> node3\)/.test(w)), s.warnings.join("\n"));
  });

  test("lab check passes as made: every cross-segment pair is counted as unreachable by configuration, with the reason", () => {
    const { report } = lab.check();
    const node = (pod: string): LabStatus["nodes"][number] => s.nodes.find((n) => n.name === s.pods.find((p) => p.name === pod)!.node)!;
    for (const c of report.cells) {
      if (c.to === "outside") continue;
      const same = node(bare(c.from)).segment === node(bare(c.to)).segment;
      assert.equal(c.expected, same, `${c.from} -> ${c.to} is expected iff on one segment`);
      if (!same) assert.match(c.unreachableByConfig ?? "", /host-gw needs nodes on one L2 segment/, `${c.from} -> ${c.to} says why`);
    }
    assert.equal(report.unreachable.cells, 16, "4 pods on segment 1 x 2 on segment 2, both ways");
    assert.equal(report.unreachable.accepted, true);
    assertCheckPasses(lab);
  });

  test("nodes lists cross-segment peers as unreachable, with the reason", () => {
    const nodes = lab.nodes();
    assertTransports(s, nodes, "host-gw");
    const node2 = nodes.find((n) => n.name === "node2")!;
    assert.equal(node2.peers.length, 2);
    for (const p of node2.peers) {
      assert.equal(p.transport, "unreachable");
      assert.match(p.reason ?? "", /not on this node's subnet .*host-gw needs nodes on one L2 segment/, `reason given for ${p.node}`);
    }
  });

  test("no route to an unreachable peer's block is installed; same-segment peers have theirs", () => {
    assertDataplane(s, "host-gw");
    const node1 = s.nodes.find((n) => n.name === "node1")!;
    const node2 = s.nodes.find((n) => n.name === "node2")!;
    const node3 = s.nodes.find((n) => n.name === "node3")!;
    assert.deepEqual(routes(node1.netns).filter((r) => r.dst === node2.subnet), [], "node1 has no route to node2's block");
    assert.deepEqual(peerRoutes(node1.netns), [`${node3.subnet} via ${node3.ip} dev eth0`]);
    assert.deepEqual(peerRoutes(node2.netns), [], "node2 has no peer on its segment");
  });

  test("pods still reach the outside through NAT", () => {
    assertOutsideOnlyThroughNat(lab, s);
  });
});

describe("without NAT outgoing", { skip, timeout: 120_000 }, () => {
  const lab = new TestLab();
  after(() => lab.down());

  test("pods reach each other but not the outside", () => {
    lab.up("--nodes", "2", "--pods-per-node", "1", "--no-nat-outgoing");
    const { report } = lab.check();
    for (const c of report.cells) assert.equal(c.expected, c.to !== "outside", `${c.from} -> ${c.to}`);
    for (const c of report.cells.filter((x) => x.to === "outside")) assert.match(c.unreachableByConfig ?? "", /NAT outgoing is off/);
    assertCheckPasses(lab);
  });
});

describe("switching the backend of a running cluster: vxlan -> host-gw -> vxlan", { skip, timeout: 120_000 }, () => {
  const lab = new TestLab();
  let s: LabStatus;
  before(() => {
    lab.up("--nodes", "3", "--pods-per-node", "2", "--backend", "vxlan");
    s = lab.status();
    assertDataplane(s, "vxlan");
  });
  after(() => lab.down());

  for (const backend of ["host-gw", "vxlan"] as const) {
    test(`to ${backend}: every node converges with no leftovers, and lab check passes`, async () => {
      const set = lab.cli("network", "set", "--backend", backend);
      assert.equal(set.code, 0, set.stderr);
      assert.equal((JSON.parse(lab.cli("network", "show", "-o", "json").stdout) as { backend: { type: string } }).backend.type, backend);
      await eventually(`every node's data plane switched to ${backend}`, 15_000, () => {
        assertDataplane(s, backend);
        assertTransports(s, lab.nodes(), backend);
      });
      for (const n of s.nodes) {
        if (backend === "host-gw") {
          assert.equal(hasLink(n.netns, VXLAN_DEV), false, `${n.name}: the VXLAN device is gone`);
          assert.ok(peerRoutes(n.netns).every((r) => r.endsWith("dev eth0")), `${n.name}: no peer route through the VTEP is left`);
        } else {
          assert.ok(peerRoutes(n.netns).every((r) => r.endsWith(`dev ${VXLAN_DEV}`)), `${n.name}: no direct peer route via eth0 is left`);
        }
      }
      for (const n of lab.nodes()) assert.equal(n.backend, backend, `${n.name}'s lease carries the new backend`);
      assertCheckPasses(lab);
    });
  }
});

describe("lab down of a multi-node lab", { skip, timeout: 60_000 }, () => {
  test("ends its agents and etcd and leaves no namespace behind", () => {
    const lab = new TestLab();
    try {
      lab.up("--nodes", "2", "--pods-per-node", "1", "--backend", "cross-subnet", "--segments", "2", "--datastore", "etcd");
      const agents = lab.status().nodes.map((n) => n.agentPid);
      assert.equal(agents.filter((p) => p !== undefined).length, 2, "both agents run");
      assert.equal(etcdPids(lab.name).length, 1, "the lab's etcd runs");
      lab.down();
      for (const pid of agents) assert.equal(alive(pid!), false, `agent ${pid} has ended`);
      assert.deepEqual(etcdPids(lab.name), [], "the lab's etcd has ended");
      assert.deepEqual(labNamespaces(lab.name), []);
    } finally {
      lab.down();
    }
  });
});

/** Pids of the etcd serving the named lab (its data directory is the lab's). */
const etcdPids = (lab: string): string[] =>
  spawnSync("pgrep", ["-f", `etcd --name lab --data-dir /run/trellis/lab/${lab}/`], { encoding: "utf8" }).stdout.split("\n").filter(Boolean);

/** Whether a process still runs (a zombie waiting for init to reap it has ended). */
function alive(pid: number): boolean {
  try {
    return !/^[ZX]/.test(fs.readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /s, ""));
  } catch {
    return false;
  }
}
