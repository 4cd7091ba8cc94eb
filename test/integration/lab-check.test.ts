// `lab check` tells the truth, through the built `trellis` executable: each fault injected into
// a real lab's kernel (forwarding off, a pod's host route deleted, an FDB entry deleted, an agent
// stopped until its lease lapses) makes the paths it breaks FAIL with that fault named as the
// cause, and a policy deny is named as the reason a path is closed. The agents run with a long
// resync so that they do not repair a fault before the check sees it. A topology that leaves
// pairs without a path never passes unless the lab was made that way on purpose, and `nodes`
// shows an agent's liveness and each peer's kernel state.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { eventually, labSkip, peerRoutes, TestLab, vxlanFdb, VXLAN_DEV, type CheckReport, type LabStatus } from "../helpers/lab.js";
import { sh } from "../helpers/netns.js";

const skip = labSkip();

/** The FAIL cells of a report, as "from -> to: cause". */
const failures = (r: CheckReport): string[] => r.cells.filter((c) => c.expected && !c.reached).map((c) => `${c.from} -> ${c.to}: ${c.cause ?? "(no cause)"}`);

describe("lab check names the real cause of each fault (vxlan, 2 nodes x 1 pod, resync 1 h)", { skip, timeout: 240_000 }, () => {
  const lab = new TestLab();
  let s: LabStatus;
  let a: LabStatus["pods"][number];
  let b: LabStatus["pods"][number];
  before(() => {
    lab.up("--nodes", "2", "--pods-per-node", "1", "--backend", "vxlan", "--resync", "3600");
    s = lab.status();
    a = lab.podOn("node1");
    b = lab.podOn("node2");
  });
  after(() => lab.down());
  const node = (name: string): LabStatus["nodes"][number] => s.nodes.find((n) => n.name === name)!;

  /** Runs the check, expects it to fail on exactly the paths between the two pods, and returns the causes. */
  function failingBetweenPods(): string[] {
    const { exitCode, report } = lab.check();
    assert.equal(exitCode, 1, "lab check exits 1");
    assert.equal(report.passed, false);
    const failed = report.cells.filter((c) => c.expected && !c.reached);
    assert.ok(failed.length > 0, "some path fails");
    for (const c of failed) assert.ok(c.cause, `${c.from} -> ${c.to} has a cause`);
    return failures(report);
  }

  function passes(): CheckReport {
    const { exitCode, report } = lab.check();
    assert.equal(exitCode, 0, `lab check passes:\n${failures(report).join("\n")}`);
    return report;
  }

  test("a healthy lab passes, and nodes shows ready agents with programmed peers", () => {
    passes();
    for (const n of lab.nodes()) {
      assert.equal(n.agent, "ready", `${n.name}: ${n.agentDetail}`);
      assert.equal(n.policy, true);
      assert.deepEqual(n.peers.map((p) => [p.transport, p.kernel]), [["vxlan", "programmed"]], `${n.name}'s peer`);
    }
  });

  test("forwarding off on a node is named", () => {
    sh("ip", ["netns", "exec", node("node2").netns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=0"]);
    try {
      const causes = failingBetweenPods();
      assert.ok(causes.some((c) => /node2 does not forward IPv4 \(net\.ipv4\.ip_forward=0\)/.test(c)), causes.join("\n"));
      assert.ok(causes.every((c) => /does not forward/.test(c)), causes.join("\n"));
    } finally {
      sh("ip", ["netns", "exec", node("node2").netns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
    }
    passes();
  });

  test("a pod's host route deleted is named through the plugin's CNI CHECK", () => {
    const route = `${b.ip}/32`;
    const dev = JSON.parse(sh("ip", ["-n", node("node2").netns, "-j", "route", "show", route]))[0].dev as string;
    sh("ip", ["-n", node("node2").netns, "route", "del", route]);
    try {
      const causes = failingBetweenPods();
      const want = new RegExp(`CNI CHECK of ${b.namespace}/${b.name} fails: .*host route ${route.replace(/\./g, "\\.")} dev ${dev} missing`);
      assert.ok(causes.some((c) => want.test(c)), causes.join("\n"));
    } finally {
      sh("ip", ["-n", node("node2").netns, "route", "replace", route, "dev", dev, "scope", "link", "proto", "201"]);
    }
    passes();
  });

  test("an FDB entry deleted on a node is named", () => {
    const entry = vxlanFdb(node("node1").netns).find((e) => e.endsWith(` dst ${node("node2").ip}`))!;
    const mac = entry.split(" ")[0]!;
    sh("bridge", ["-n", node("node1").netns, "fdb", "del", mac, "dev", VXLAN_DEV, "dst", node("node2").ip]);
    try {
      const causes = failingBetweenPods();
      assert.ok(causes.some((c) => c.includes(`node1's ${VXLAN_DEV} has no FDB entry for node2 (${mac} -> ${node("node2").ip})`)), causes.join("\n"));
    } finally {
      sh("bridge", ["-n", node("node1").netns, "fdb", "append", mac, "dev", VXLAN_DEV, "dst", node("node2").ip, "self", "permanent"]);
    }
    passes();
  });

  test("a policy deny closes the path, and the check names the policy (and passes: that is what was asked)", () => {
    const deny = [{ apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name: "deny-in", namespace: "default" }, spec: { podSelector: {} } }];
    lab.apply(deny);
    try {
      const report = passes();
      const closed = report.cells.filter((c) => c.to !== "outside");
      assert.ok(closed.length > 0);
      for (const c of closed) {
        assert.equal(c.expected, false);
        assert.equal(c.reached, false, `${c.from} -> ${c.to} is closed in the kernel too`);
        assert.match(c.why, /NetworkPolicy\/default\/deny-in/, `${c.from} -> ${c.to}`);
      }
    } finally {
      lab.deleteObjects(deny);
    }
  });

  test("an agent stopped until its lease lapses: nodes says stopped, and the check names the agent", async () => {
    lab.agent("stop", "node2");
    const n2 = lab.nodes().find((n) => n.name === "node2")!;
    assert.equal(n2.agent, "stopped");
    assert.match(n2.agentDetail, /^stopped by SIGTERM \d+s ago; its data plane stays as it was$/);
    // Peers drop their routes to a node whose lease lapsed (lab lease TTL: 10 s).
    await eventually("node1 drops its route to node2's block", 20_000, () =>
      assert.deepEqual(peerRoutes(node("node1").netns).filter((r) => r.startsWith(`${node("node2").subnet} `)), []), 250);
    const { exitCode, report } = lab.check();
    assert.equal(exitCode, 1);
    const causes = failures(report);
    assert.ok(causes.some((c) => /agent on node2 is not running/.test(c)), causes.join("\n"));
    assert.ok(report.warnings.some((w) => /the agent of node2 is not running/.test(w)), report.warnings.join("\n"));
    lab.agent("start", "node2");
    await eventually("node2 is back and every route with it", 30_000, () => passes(), 500);
  });
});

describe("a topology that leaves pairs without a path", { skip, timeout: 180_000 }, () => {
  const lab = new TestLab();
  before(() => lab.up("--nodes", "2", "--pods-per-node", "1", "--backend", "vxlan", "--segments", "2"));
  after(() => lab.down());

  test("never passes when the lab was not made that way: a live switch to host-gw across segments fails the check, naming why", async () => {
    lab.check();
    const set = lab.cli("network", "set", "--backend", "host-gw");
    assert.equal(set.code, 0, set.stderr);
    await eventually("both agents report each other unreachable", 15_000, () => {
      for (const n of lab.nodes()) assert.deepEqual(n.peers.map((p) => p.transport), ["unreachable"], n.name);
    }, 250);
    const { exitCode, report } = lab.check();
    assert.equal(exitCode, 1, "lab check fails");
    assert.equal(report.passed, false);
    const pairs = report.cells.filter((c) => c.to !== "outside");
    assert.equal(pairs.length, 2, "both pod pairs are counted");
    for (const c of pairs) {
      assert.equal(c.expected, false);
      assert.match(c.unreachableByConfig ?? "", /host-gw needs nodes on one L2 segment/, `${c.from} -> ${c.to}`);
    }
    assert.deepEqual([report.unreachable.cells, report.unreachable.accepted], [2, false]);
  });
});
