// BGP through BIRD, in real labs through the built `trellis` executable: pods on every node reach
// each other through BIRD-learned routes — over the node mesh, through two route reflectors with
// the mesh off, and across two segments through FRR ToR routers — with no VXLAN device anywhere.
// A reflector lost keeps every route; BIRD killed -9 and the agent restarted under a 10 ms ping
// lose nothing (graceful restart); a removed node's block is withdrawn everywhere; a prefix
// outside the pod network announced by a router is never installed; `trellis bgp status` says
// what `birdc show protocols` says. BIRD parses every golden bird.conf.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { parseProtocols } from "../../src/bgp/bird-status.js";
import { processAlive } from "../../src/kernel/netns.js";
import { eventually, hasLink, labNamespaces, labSkip, startPing, TestLab, trellis, VXLAN_DEV, type LabStatus } from "../helpers/lab.js";
import { sh } from "../helpers/netns.js";

const skip = labSkip() ?? (spawnSync("bird", ["--version"]).status === 0 ? undefined : "needs BIRD 2 (Debian bird2)");
const torSkip = skip ?? (fs.existsSync("/usr/lib/frr/bgpd") ? undefined : "needs FRR (Debian frr)");

const BGP_TABLE = "203";
/** src/bgp/golden, from dist/test/integration. */
const GOLDEN_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "src", "bgp", "golden");
const birdDir = (lab: TestLab, node: string): string => path.join(lab.nodeDir(node), "bird");
const birdc = (lab: TestLab, node: string, ...args: string[]): string => sh("birdc", ["-s", path.join(birdDir(lab, node), "bird.ctl"), ...args]);
const birdPid = (lab: TestLab, node: string): number => Number(fs.readFileSync(path.join(birdDir(lab, node), "bird.pid"), "utf8").trim());

/** Destinations of the unicast routes BIRD installed in a node's BGP table. */
function bgpRoutes(netns: string): Array<{ dst: string; gateway?: string; dev?: string }> {
  const r = spawnSync("ip", ["-n", netns, "-j", "-4", "route", "show", "table", BGP_TABLE], { encoding: "utf8" });
  if (r.status !== 0) return [];
  return (JSON.parse(r.stdout || "[]") as Array<{ dst: string; type?: string; gateway?: string; dev?: string }>).filter((x) => (x.type ?? "unicast") === "unicast");
}

/** Every node's BGP table holds every other node's block. */
function assertFullRoutes(s: LabStatus, via?: (node: LabStatus["nodes"][number], peer: LabStatus["nodes"][number]) => string): void {
  for (const n of s.nodes) {
    const got = bgpRoutes(n.netns);
    for (const p of s.nodes.filter((x) => x !== n)) {
      const r = got.find((x) => x.dst === p.subnet);
      assert.ok(r, `${n.name}'s BGP table routes ${p.name}'s block ${p.subnet}: ${JSON.stringify(got)}`);
      if (via) assert.equal(r.gateway, via(n, p), `${n.name} -> ${p.name} next hop`);
    }
  }
}

function assertNoOverlay(s: LabStatus): void {
  for (const n of s.nodes) assert.equal(hasLink(n.netns, VXLAN_DEV), false, `${n.name} has no VXLAN device`);
}

function assertCheckPasses(lab: TestLab): void {
  const { exitCode, report } = lab.check();
  const wrong = report.cells.filter((c) => c.expected !== c.reached).map((c) => `${c.from} -> ${c.to}: ${c.cause ?? c.why}`);
  assert.deepEqual(wrong, [], "every path is as expected");
  assert.equal(report.unreachable.cells, 0, "no pair unreachable by configuration");
  assert.equal(exitCode, 0);
}

describe("BIRD takes every golden bird.conf", { skip }, () => {
  for (const file of fs.readdirSync(GOLDEN_DIR).filter((f) => f.endsWith(".conf"))) {
    test(file, () => {
      const r = spawnSync("bird", ["-p", "-c", path.join(GOLDEN_DIR, file)], { encoding: "utf8" });
      assert.equal(r.status, 0, `bird -p ${file}: ${r.stderr}`);
    });
  }
});

describe("bgp node mesh (3 nodes x 2 pods)", { skip, timeout: 240_000 }, () => {
  const lab = new TestLab();
  let s: LabStatus;
  before(async () => {
    lab.up("--nodes", "3", "--pods-per-node", "2", "--backend", "bgp");
    s = lab.status();
    await eventually("every node learned every other block", 30_000, () => assertFullRoutes(s), 250);
  });
  after(() => lab.down());

  test("every pod pair connects through BIRD-learned routes, next hop the peer node, no overlay", () => {
    assertFullRoutes(s, (_n, p) => p.ip);
    assertNoOverlay(s);
    assertCheckPasses(lab);
    for (const n of lab.nodes()) {
      assert.deepEqual(n.peers.map((p) => [p.transport, p.kernel]), [["bgp", "programmed"], ["bgp", "programmed"]], n.name);
    }
  });

  test("each node drops unused addresses of its own block, and sends pod traffic to the BGP table", () => {
    for (const n of s.nodes) {
      const main = JSON.parse(sh("ip", ["-n", n.netns, "-j", "route", "show", n.subnet])) as Array<{ type?: string; protocol?: string }>;
      assert.deepEqual(main.map((r) => [r.type, r.protocol]), [["blackhole", "202"]], `${n.name}: blackhole for ${n.subnet}`);
      assert.match(sh("ip", ["-n", n.netns, "rule", "show", "pref", "2030"]), /2030:\s+from all to 10\.244\.0\.0\/16 lookup 203/);
    }
  });

  test("bgp status agrees with birdc show protocols on every node", async () => {
    await eventually("bgp status shows every session established", 20_000, () => {
      const st = JSON.parse(lab.cli("bgp", "status", "-o", "json").stdout) as { nodes: Array<{ node: string; bgp?: { sessions: Array<{ peerIp: string; state: string; type: string; received: number }> } }> };
      assert.equal(st.nodes.length, 3);
      for (const n of st.nodes) {
        const bird = parseProtocols(birdc(lab, n.node, "show", "protocols", "all")).filter((p) => p.proto === "BGP");
        const mine = (n.bgp?.sessions ?? []).map((x) => `${x.peerIp} ${x.state} ${x.type}`).sort();
        assert.deepEqual(mine, bird.map((p) => `${p.neighborAddress} ${p.bgpState} mesh`).sort(), `${n.node}: bgp status vs birdc`);
        assert.ok(n.bgp!.sessions.every((x) => x.state === "Established" && x.received === 1), `${n.node}: ${JSON.stringify(n.bgp)}`);
      }
    }, 500);
    assert.match(lab.cli("bgp", "status").stdout, /^NODE\s+PEER\s+ADDRESS\s+TYPE\s+STATE/);
  });

  test("BIRD killed -9 and the agent restarted under a 10 ms ping: nothing lost (graceful restart)", async (t) => {
    const from = lab.podOn("node1");
    const to = lab.podOn("node2");
    const ping = startPing(from.netns, to.ip, 0.01, 500);
    await eventually("the ping gets replies", 5_000, () => assert.ok(ping.replies() > 0));
    process.kill(birdPid(lab, "node2"), "SIGKILL");
    lab.agent("kill", "node2");
    lab.agent("start", "node2");
    await eventually("node2's agent has started BIRD again", 20_000, () => assert.match(birdc(lab, "node2", "show", "status"), /Daemon is up and running/));
    const stats = await ping.done;
    t.diagnostic(`ping across the BIRD and agent restart: ${stats.received}/${stats.transmitted}`);
    assert.equal(stats.received, stats.transmitted, "no packet lost");
    await eventually("every route is back to normal", 30_000, () => assertFullRoutes(lab.status()), 500);
  });

  test("a node removed: its block is withdrawn everywhere", async () => {
    const node3 = s.nodes.find((n) => n.name === "node3")!;
    lab.agent("stop", "node3");
    const r = lab.cli("nodes", "remove", "node3");
    assert.equal(r.code, 0, r.stderr);
    await eventually("node1 and node2 no longer route node3's block", 15_000, () => {
      for (const n of s.nodes.filter((x) => x !== node3)) assert.ok(!bgpRoutes(n.netns).some((x) => x.dst === node3.subnet), n.name);
    }, 250);
  });
});

describe("bgp with two route reflectors and the mesh off (4 nodes x 1 pod)", { skip, timeout: 240_000 }, () => {
  const lab = new TestLab();
  let s: LabStatus;
  before(async () => {
    lab.up("--nodes", "4", "--pods-per-node", "1", "--backend", "bgp", "--route-reflectors", "2", "--no-node-mesh");
    s = lab.status();
    await eventually("every node learned every other block", 30_000, () => assertFullRoutes(s), 250);
  });
  after(() => lab.down());

  test("clients peer only with the reflectors, reflectors with everyone; all pairs connect, next hop the block's own node", () => {
    const sessions = (node: string): string[] => parseProtocols(birdc(lab, node, "show", "protocols", "all")).filter((p) => p.proto === "BGP").map((p) => p.neighborAddress!).sort();
    const ip = (node: string): string => s.nodes.find((n) => n.name === node)!.ip;
    assert.deepEqual(sessions("node3"), [ip("node1"), ip("node2")].sort());
    assert.deepEqual(sessions("node4"), [ip("node1"), ip("node2")].sort());
    assert.deepEqual(sessions("node1"), [ip("node2"), ip("node3"), ip("node4")].sort());
    assertFullRoutes(s, (_n, p) => p.ip);
    assertCheckPasses(lab);
  });

  test("one reflector lost: every route is kept", async () => {
    lab.agent("stop", "node1");
    process.kill(birdPid(lab, "node1"), "SIGKILL");
    const ping = startPing(lab.podOn("node3").netns, lab.podOn("node4").ip, 0.05, 100);
    const stats = await ping.done;
    assert.equal(stats.received, stats.transmitted, "node3 -> node4 without loss while node1 is gone");
    for (const n of s.nodes.filter((x) => x.name !== "node1")) {
      for (const p of s.nodes.filter((x) => x !== n && x.name !== "node1")) {
        assert.ok(bgpRoutes(n.netns).some((x) => x.dst === p.subnet), `${n.name} still routes ${p.name}'s block`);
      }
    }
  });
});

describe("bgp across two segments through FRR ToRs, mesh off (4 nodes x 1 pod)", { skip: torSkip, timeout: 240_000 }, () => {
  const lab = new TestLab();
  let s: LabStatus;
  before(async () => {
    lab.up("--nodes", "4", "--pods-per-node", "1", "--backend", "bgp", "--segments", "2", "--tor", "--no-node-mesh");
    s = lab.status();
    await eventually("every node learned every other block", 40_000, () => assertFullRoutes(s), 250);
  });
  after(() => lab.down());

  test("the routers carry the pod routes: next hop the node's ToR (or, on its own segment, the node itself), no overlay, every pair connects", () => {
    // FRR keeps a next hop on the receiver's own subnet (a third-party next hop): no hairpin via the ToR.
    assertFullRoutes(s, (n, p) => (n.segment === p.segment ? p.ip : `10.99.${n.segment}.3`));
    assertNoOverlay(s);
    assertCheckPasses(lab);
  });

  test("lab status lists each node's and each ToR's sessions", () => {
    const st = lab.status();
    for (const n of st.nodes) assert.deepEqual(n.bgp?.map((x) => x.state), ["Established"], `${n.name}: one session, to its ToR`);
    assert.equal(st.tors?.length, 2);
    for (const t of st.tors!) assert.ok(t.bgp && t.bgp.length === 3 && t.bgp.every((x) => x.state === "Established"), `${t.name}: ${JSON.stringify(t.bgp)}`);
  });

  test("a prefix outside the pod network announced by a ToR is ignored, reported, and never installed", async () => {
    const tor = lab.status().tors![0]!;
    const vtysh = (cmd: string[]): string => sh("ip", ["netns", "exec", tor.netns, "vtysh", "--vty_socket", path.join(`/run/trellis/lab/${lab.name}`, "tor1"),
      ...cmd.flatMap((c) => ["-c", c])]);
    vtysh(["configure terminal", "router bgp 65101", "no bgp network import-check", "address-family ipv4 unicast", "network 192.168.77.0/24"]);
    await eventually("bgp status reports the rejected prefix", 20_000, () => {
      const st = JSON.parse(lab.cli("bgp", "status", "--node", "node1", "-o", "json").stdout) as { nodes: Array<{ bgp?: { sessions: Array<{ rejected: string[] }> } }> };
      assert.deepEqual(st.nodes[0]!.bgp!.sessions[0]!.rejected, ["192.168.77.0/24"]);
    }, 500);
    for (const n of s.nodes) {
      const all = sh("ip", ["-n", n.netns, "route", "show", "table", "all"]);
      assert.doesNotMatch(all, /192\.168\.77\.0/, `${n.name} installed nothing of it`);
    }
    assert.match(lab.agentLog("node1"), /announced 192\.168\.77\.0\/24, which is not a pod-network block: ignored/);
  });

  test("lab down stops every BIRD and FRR daemon it started, by pid, and leaves nothing behind", () => {
    const state = JSON.parse(fs.readFileSync(`/run/trellis/lab/${lab.name}/state.json`, "utf8")) as { pids: Array<{ what: string; pid: number }> };
    const frr = state.pids.filter((p) => /^(zebra|bgpd) tor\d$/.test(p.what)).map((p) => p.pid);
    const birds = s.nodes.map((n) => birdPid(lab, n.name));
    assert.equal(frr.length, 4, "zebra and bgpd on each of the two ToRs");
    const r = trellis("lab", "down", "--name", lab.name);
    assert.equal(r.code, 0, r.stderr);
    for (const pid of [...frr, ...birds]) assert.equal(processAlive(pid), false, `pid ${pid} has ended`);
    assert.deepEqual(labNamespaces(lab.name), []);
    assert.equal(fs.existsSync(`/run/trellis/lab/${lab.name}`), false);
  });
});
