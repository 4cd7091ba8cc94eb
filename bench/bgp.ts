// BGP benchmark (issue 9): what the bgp backend — BIRD on every node, configured by the agent —
// costs and how fast it reacts, measured in lab clusters and compared, in the same run, with a
// reference:
//
//   1. convergence: a node joins (its agent starts and starts its BIRD) -> every peer routes to
//      its block, in kernel table 203; bgp node mesh, bgp with route reflectors and the mesh off,
//      and vxlan (the reference), iterations interleaved; where the time goes (agent, BIRD start,
//      the peers' reconfiguration, the sessions);
//   2. data plane: pod -> pod across two nodes over BIRD's routes vs the same forwarding path by
//      hand (a static route via the peer node; no BIRD, no nftables) and vs Trellis host-gw (the
//      same agent and ruleset, the route in the main table); one TCP stream (iperf3) and ICMP
//      RTT (ping), rounds in rotating order;
//   3. resources: RSS and CPU of BIRD and of the agent on every node of an idle node mesh of 10
//      and of 30 nodes (a BIRD has one session per peer).
//
// Every namespace, lab and process this script makes is removed or ended (by pid) in `finally`,
// also on error or Ctrl-C. There are no timing thresholds: it measures, people judge.
// Method and caveats: bench/README.md.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { parseProtocols } from "../src/bgp/bird-status.js";
import { birdFiles } from "../src/kernel/bird.js";
import { processAlive, stopProcess } from "../src/kernel/netns.js";
import { birdDirOf, labUp, nodeDir, readState, startAgent, stopAgent, subnetFileOf, type LabState, type LabTools } from "../src/lab/lab.js";
import type { LabNode, LabOptions } from "../src/lab/plan.js";
import { ROOT, uniq } from "../test/helpers/netns.js";
import {
  cleanupLine, CLK_TCK, commandLine, environment, f0, f1, f2, interruptSignal, labRun, partsOf, progress, ratio, readFrom, requireRootAnd, run,
  runAsync, sizeOf, table, waitFor, wallNow, wholeNumber, writeResults, type CleanupCheck, type Environment, type Made,
} from "./common.js";
import { handPath, labPath, measureDataplane, type DataPath, type DataSample } from "./paths.js";
import { parseAgentStart, parseBirdMemoryTotal, parseProcStat, parseVmRssKiB, reconfiguredWith, type CpuTicks, type RouteEvent } from "./probes.js";
import { RouteMonitor } from "./route-monitor.js";
import { median, rotate, round3, summarize, type Summary } from "./stats.js";

// Plugins, agents and tools we start get a clean environment (a runtime would not pass this on).
delete process.env.NODE_EXTRA_CA_CERTS;

/** Where BIRD installs the pod routes it learned (src/bgp/DESIGN.md), and with which protocol. */
const BGP_TABLE = "203";
const BIRD_PROTO = "bird";
/** The agent's own routes (vxlan, host-gw) in the main table. */
const AGENT_PROTO = "202";

const PARTS = ["convergence", "dataplane", "resources"] as const;
type Part = (typeof PARTS)[number];

interface Options {
  nodes: number;
  iterations: number;
  warmup: number;
  reflectors: number;
  joinTimeoutSeconds: number;
  rounds: number;
  seconds: number;
  pings: number;
  resourceNodes: number[];
  idleSeconds: number;
  leaseTtl: number;
  resync: number;
  readyTimeout: number;
  parts: Set<Part>;
  out: string;
  verbose: boolean;
}

const USAGE = `usage: node dist/bench/bgp.js [options]   (as root, after npm run build)
  --nodes N              nodes of each convergence lab (default 10; the last one joins)
  --iterations N         measured joins per setup (default 10)
  --warmup N             unmeasured joins per setup first (default 1)
  --reflectors K         route reflectors of the bgp-rr setup (default 2; the first K nodes)
  --join-timeout S       how long one join may take before the run fails (default 120)
  --rounds N             data-plane rounds, paths in rotating order (default 3)
  --seconds S            iperf3 -t per measurement, after 1 s omitted (default 4)
  --pings N              ICMP echoes per RTT measurement, 5 ms apart (default 200)
  --resource-nodes LIST  node-mesh sizes of the resource part (default 10,30)
  --idle-seconds S       idle window for RSS and CPU (default 20)
  --lease-ttl S          agents' lease TTL in every lab (default 300, the agent's own default; the lab's is 10)
  --resync S             agents' kernel resync in every lab (default 10, the agent's own default; the lab's is 5)
  --ready-timeout S      how long a lab may take to come up and converge (default 300)
  --parts LIST           comma-separated: ${PARTS.join(",")} (default all)
  --out FILE             results JSON (default bench/results/bgp.json)
  --verbose              show lab progress and every join`;

function parseOptions(argv: string[]): Options {
  const v = commandLine(argv, USAGE, {
    nodes: { type: "string", default: "10" },
    iterations: { type: "string", default: "10" },
    warmup: { type: "string", default: "1" },
    reflectors: { type: "string", default: "2" },
    "join-timeout": { type: "string", default: "120" },
    rounds: { type: "string", default: "3" },
    seconds: { type: "string", default: "4" },
    pings: { type: "string", default: "200" },
    "resource-nodes": { type: "string", default: "10,30" },
    "idle-seconds": { type: "string", default: "20" },
    "lease-ttl": { type: "string", default: "300" },
    resync: { type: "string", default: "10" },
    "ready-timeout": { type: "string", default: "300" },
    parts: { type: "string", default: PARTS.join(",") },
    out: { type: "string", default: path.join(ROOT, "bench", "results", "bgp.json") },
    verbose: { type: "boolean", default: false },
  });
  const int = wholeNumber;
  const o: Options = {
    nodes: int("nodes", v.nodes, 3),
    iterations: int("iterations", v.iterations, 1),
    warmup: int("warmup", v.warmup, 0),
    reflectors: int("reflectors", v.reflectors, 1),
    joinTimeoutSeconds: int("join-timeout", v["join-timeout"], 1),
    rounds: int("rounds", v.rounds, 1),
    seconds: int("seconds", v.seconds, 1),
    pings: int("pings", v.pings, 1),
    resourceNodes: v["resource-nodes"].split(",").map((x) => int("resource-nodes", x.trim(), 2)),
    idleSeconds: int("idle-seconds", v["idle-seconds"], 1),
    leaseTtl: int("lease-ttl", v["lease-ttl"], 3),
    resync: int("resync", v.resync, 1),
    readyTimeout: int("ready-timeout", v["ready-timeout"], 1),
    parts: partsOf(v.parts, PARTS),
    out: path.resolve(v.out),
    verbose: v.verbose,
  };
  // The joining node must be a client, and at least one other client must learn its route through a reflector.
  if (o.reflectors > o.nodes - 2) throw new Error(`--reflectors ${o.reflectors}: at most --nodes - 2 (${o.nodes - 2})`);
  return o;
}

// ---------------------------------------------------------------------------------------------
// Labs, BIRD, kernel tables

/** What every lab of this run gives its agents, and how long `lab up` may wait for them. */
const agentSettings = (o: Options): Pick<LabOptions, "leaseTtlSeconds" | "resyncSeconds" | "readySeconds"> =>
  ({ leaseTtlSeconds: o.leaseTtl, resyncSeconds: o.resync, readySeconds: o.readyTimeout });

/** Brings a lab up, recording its name first so that a half-built lab is removed too. */
async function lab(made: Made, tools: LabTools, opts: LabOptions, say: (l: string) => void): Promise<LabState> {
  made.labs.push(opts.name);
  const t = Date.now();
  const s = await labUp(opts, tools, say);
  const bgp = opts.backend === "bgp" ? `, ${opts.nodeMesh === false ? "no mesh" : "mesh"}${opts.routeReflectors ? `, ${opts.routeReflectors} reflectors` : ""}` : "";
  console.error(`  lab ${opts.name}: ${opts.nodes} nodes x ${opts.podsPerNode} pods, ${opts.backend}${bgp}, up in ${Date.now() - t} ms`);
  return s;
}

const blockOf = (lab: string, node: string): string => {
  const m = /TRELLIS_SUBNET=(\S+)/.exec(fs.readFileSync(subnetFileOf(lab, node), "utf8"));
  if (!m) throw new Error(`no TRELLIS_SUBNET in ${subnetFileOf(lab, node)}`);
  return m[1]!;
};

const birdFilesOf = (lab: string, node: string): ReturnType<typeof birdFiles> => birdFiles(birdDirOf(lab, node));

/** The pid of a node's BIRD (its pid file, the process alive), as `lab down` finds it. */
function birdPid(lab: string, node: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(birdFilesOf(lab, node).pid, "utf8").trim());
    return Number.isInteger(pid) && pid > 0 && processAlive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * `birdc -s <node's control socket> ARGS`. Not through the kernel seam's runAsync, which writes to
 * the child's stdin: under Node (this process), a child that exits before that write gets an
 * unhandled EPIPE that ends the whole run, `finally` and its cleanup included.
 */
async function birdc(lab: string, node: string, args: readonly string[], signal: AbortSignal): Promise<string> {
  const r = await runAsync("birdc", ["-s", birdFilesOf(lab, node).ctl, ...args], signal, 15_000);
  if (r.code !== 0) throw new Error(`birdc ${args.join(" ")} on ${node} of ${lab} exited ${r.code}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

/** `birdc down` (BIRD withdraws its routes from the kernel and its peers, and exits); by pid if it is still there after 5 s. */
async function birdDown(lab: string, node: string, signal: AbortSignal): Promise<void> {
  const pid = birdPid(lab, node);
  if (pid === undefined) return;
  await birdc(lab, node, ["down"], signal).catch(() => undefined);
  await waitFor(`BIRD of ${node} in ${lab} (pid ${pid}) to exit`, 5000, signal, () => !processAlive(pid), 20).catch(() => stopProcess(pid));
}

/** Destinations of the routes in a node's BGP table. */
const bgpTable = (netns: string): string[] =>
  (JSON.parse(run("ip", ["-n", netns, "-j", "-4", "route", "show", "table", BGP_TABLE]) || "[]") as Array<{ dst: string }>).map((r) => r.dst);

/** BIRD's BGP sessions on a node (`birdc show protocols`), undefined if BIRD does not answer. */
async function birdSessions(lab: string, node: string, signal: AbortSignal): Promise<Array<{ name: string; up: boolean; since: string }> | undefined> {
  try {
    return parseProtocols(await birdc(lab, node, ["show", "protocols"], signal)).filter((p) => p.proto === "BGP")
      .map((p) => ({ name: p.name, up: p.info.startsWith("Established"), since: p.since }));
  } catch (e) {
    if (signal.aborted) throw e;
    return undefined;
  }
}

/** BIRD prints its local time without a zone; it runs on this machine with this environment, so JS's local time reads it back. */
const birdTimeMs = (since: string): number => new Date(since.replace(" ", "T")).getTime();

/** How often agents of a lab logged that their lease lapsed and was taken again (a starved agent; every peer then re-adds it). */
function leaseLapses(state: LabState): number {
  let n = 0;
  for (const node of state.plan.nodes) {
    const log = readFrom(path.join(nodeDir(state.plan.name, node.name), "agent.log"), 0);
    n += (log.match(/ changed or lapsed in the datastore/g) ?? []).length;
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// 1. Convergence: a node joins

const SETUPS = ["bgp-mesh", "bgp-rr", "vxlan"] as const;
type SetupId = (typeof SETUPS)[number];

interface JoinLab {
  setup: SetupId;
  label: string;
  state: LabState;
  newcomer: LabNode;
  /** Monitors in the other nodes: the newcomer's block appears (or goes). */
  peers: RouteMonitor[];
  /** bgp: a monitor in the newcomer itself, which learns every peer's block again. */
  self?: RouteMonitor;
  /** bgp: the nodes the newcomer has a session with (all peers with the mesh, the reflectors without). */
  partners: string[];
}

interface JoinSample {
  setup: SetupId;
  iteration: number;
  warmup: boolean;
  block: string;
  /** t0 (just before the agent is spawned) -> the last peer's route to the block, ms. */
  convergenceMs: number;
  /** t0 -> each peer's route, ms. */
  perPeerMs: Record<string, number>;
  /** t0 -> the agent logged "starting" / its lease, ms. */
  agentStartingMs: number;
  agentLeasedMs: number;
  /** bgp: t0 -> the agent logged `bgp: started BIRD` (BIRD's control socket answers), ms; the sessions of its first config. */
  birdStartedMs?: number;
  birdSessionsAtStart?: number;
  /** bgp: t0 -> each session partner's agent logged a BIRD config holding the newcomer's session, ms. */
  partnerConfiguredMs?: Record<string, number>;
  /** bgp: t0 -> the newcomer's own BGP table got its first / its last peer block, ms. */
  newcomerFirstRouteMs?: number;
  newcomerAllRoutesMs?: number;
  /** bgp: t0 -> when the newcomer's BIRD says its sessions went up ("Since", whole seconds: +-1 s), ms. */
  sessionsUpMs?: { first: number; last: number; sessions: number };
  /** `nodes remove` spawned -> the last peer deleted its route, ms. */
  removalMs: number;
}

async function startJoinLabs(made: Made, tools: LabTools, tag: string, o: Options, say: (l: string) => void, signal: AbortSignal): Promise<JoinLab[]> {
  const labs: JoinLab[] = [];
  const setups: Array<{ setup: SetupId; suffix: string; label: string; opts: Partial<LabOptions> }> = [
    { setup: "bgp-mesh", suffix: "gm", label: "bgp, node mesh", opts: { backend: "bgp" } },
    { setup: "bgp-rr", suffix: "gr", label: `bgp, ${o.reflectors} reflectors, no mesh`, opts: { backend: "bgp", routeReflectors: o.reflectors, nodeMesh: false } },
    { setup: "vxlan", suffix: "vx", label: "vxlan (reference)", opts: { backend: "vxlan" } },
  ];
  for (const s of setups) {
    const state = await lab(made, tools, {
      name: `b${tag}${s.suffix}`, nodes: o.nodes, podsPerNode: 0, mode: "routed", datastore: "embedded", ...agentSettings(o), ...s.opts,
    }, say);
    const newcomer = state.plan.nodes[state.plan.nodes.length - 1]!;
    const bgp = s.opts.backend === "bgp";
    const keep = bgp
      ? (ev: RouteEvent): boolean => ev.table === BGP_TABLE && ev.proto === BIRD_PROTO
      : (ev: RouteEvent): boolean => ev.table === undefined && ev.proto === AGENT_PROTO;
    const peers = state.plan.nodes.filter((n) => n !== newcomer).map((n) => new RouteMonitor(made, n.name, n.netns, keep));
    const self = bgp ? new RouteMonitor(made, newcomer.name, newcomer.netns, keep) : undefined;
    for (const m of [...peers, ...(self ? [self] : [])]) await m.ready(signal);
    const partners = !bgp ? [] : state.plan.bgp!.nodeMesh ? peers.map((m) => m.node) : state.plan.bgp!.reflectors;
    labs.push({ setup: s.setup, label: s.label, state, newcomer, peers, ...(self ? { self } : {}), partners });
  }
  return labs;
}

async function joinIteration(c: JoinLab, iteration: number, warmup: boolean, tools: LabTools, o: Options, signal: AbortSignal): Promise<JoinSample> {
  const { state, newcomer: node, peers } = c;
  const labName = state.plan.name;
  const bgp = c.self !== undefined;
  const timeoutMs = o.joinTimeoutSeconds * 1000;
  await stopAgent(state, node.name);
  const block = blockOf(labName, node.name);

  // Take the node out of the cluster and wait until no peer routes to it any more. With bgp its
  // BIRD still runs: the peers' agents drop its session from their BIRD's config, which withdraws
  // the route.
  const tRemove = wallNow();
  const rm = await runAsync(tools.trellisBin, ["--lab", labName, "nodes", "remove", node.name], signal);
  if (rm.code !== 0) throw new Error(`trellis --lab ${labName} nodes remove ${node.name} exited ${rm.code}: ${rm.stderr.trim()}`);
  await waitFor(`every peer in ${labName} to drop its route to ${block}`, timeoutMs, signal, () => peers.every((m) => m.first(block, tRemove, true)));
  for (const m of peers) {
    const left = run("ip", ["-n", m.netns, "route", "show", "exact", block, ...(bgp ? ["table", BGP_TABLE] : ["proto", AGENT_PROTO])]).trim();
    if (left) throw new Error(`${m.node} still has a route to removed ${block}: ${left}`);
  }
  const removalMs = Math.max(...peers.map((m) => m.first(block, tRemove, true)!.atMs)) - tRemove;

  if (bgp) {
    // A new node has no BIRD yet: end this one (`birdc down`: it withdraws its kernel routes and
    // exits) and remove its config, so that the agent starts BIRD afresh — not in graceful-restart
    // recovery, which is what an agent finding an old config does.
    await birdDown(labName, node.name, signal);
    if (birdPid(labName, node.name) !== undefined) throw new Error(`BIRD of ${node.name} in ${labName} did not stop`);
    fs.rmSync(birdFilesOf(labName, node.name).conf, { force: true });
    await waitFor(`${node.name}'s BGP table to be empty`, 10_000, signal, () => bgpTable(node.netns).length === 0, 50);
  }

  // Start the agent again and wait for every peer's route to its block.
  const logOf = (n: string): string => path.join(nodeDir(labName, n), "agent.log");
  const offsets = new Map(state.plan.nodes.map((n) => [n.name, sizeOf(logOf(n.name))]));
  const log = logOf(node.name);
  const t0 = wallNow();
  startAgent(state.plan, state, node, tools.trellisBin);
  let wanted = block;
  await waitFor(`every peer in ${labName} to route to ${node.name}'s block`, timeoutMs, signal, () => {
    if (peers.every((m) => m.first(wanted, t0, false))) return true;
    // The agent normally takes its old block back (its subnet file); follow it if it did not.
    wanted = parseAgentStart(readFrom(log, offsets.get(node.name)!), node.name).block ?? wanted;
    return false;
  });
  const perPeerMs: Record<string, number> = {};
  for (const m of peers) perPeerMs[m.node] = round3(m.first(wanted, t0, false)!.atMs - t0);

  const sample: JoinSample = {
    setup: c.setup, iteration, warmup, block: wanted, convergenceMs: round3(Math.max(...Object.values(perPeerMs))), perPeerMs,
    agentStartingMs: Number.NaN, agentLeasedMs: Number.NaN, removalMs: round3(removalMs),
  };

  if (bgp) {
    // The newcomer's side: it learns every peer's block again through its own sessions.
    const others = state.plan.nodes.filter((n) => n !== node).map((n) => blockOf(labName, n.name));
    await waitFor(`${node.name} in ${labName} to route to every peer`, timeoutMs, signal, () => others.every((b) => c.self!.first(b, t0, false)));
    const learned = others.map((b) => c.self!.first(b, t0, false)!.atMs - t0);
    sample.newcomerFirstRouteMs = round3(Math.min(...learned));
    sample.newcomerAllRoutesMs = round3(Math.max(...learned));
    // Each session partner reconfigured its BIRD with the newcomer's session (logged after `birdc configure` returned).
    const partnerConfiguredMs: Record<string, number> = {};
    await waitFor(`${c.partners.join(", ")} in ${labName} to log a BIRD config with node_${node.name}`, 10_000, signal, () => {
      for (const p of c.partners) {
        const at = reconfiguredWith(readFrom(logOf(p), offsets.get(p)!), p, `node_${node.name}`);
        if (at !== undefined) partnerConfiguredMs[p] = round3(at - t0);
      }
      return Object.keys(partnerConfiguredMs).length === c.partners.length;
    }, 50);
    sample.partnerConfiguredMs = partnerConfiguredMs;
    const sessions = await birdSessions(labName, node.name, signal);
    const up = (sessions ?? []).filter((s) => s.up).map((s) => birdTimeMs(s.since) - t0);
    if (up.length > 0) sample.sessionsUpMs = { first: round3(Math.min(...up)), last: round3(Math.max(...up)), sessions: up.length };
  }

  // The agent's log lines may reach the file after its lease reached the peers.
  let started = parseAgentStart(readFrom(log, offsets.get(node.name)!), node.name);
  await waitFor(`"starting" and lease lines in ${log}`, 10_000, signal, () => {
    started = parseAgentStart(readFrom(log, offsets.get(node.name)!), node.name);
    return started.startingMs !== undefined && started.leasedMs !== undefined && (!bgp || started.birdStartedMs !== undefined);
  }, 20);
  sample.agentStartingMs = round3(started.startingMs! - t0);
  sample.agentLeasedMs = round3(started.leasedMs! - t0);
  if (bgp) {
    sample.birdStartedMs = round3(started.birdStartedMs! - t0);
    sample.birdSessionsAtStart = started.birdSessions!;
  }
  return sample;
}

async function measureJoins(labs: JoinLab[], o: Options, tools: LabTools, signal: AbortSignal): Promise<JoinSample[]> {
  const samples: JoinSample[] = [];
  const total = o.warmup + o.iterations;
  for (let i = 0; i < total; i++) {
    for (const c of rotate(labs, i)) {
      const s = await joinIteration(c, i - o.warmup + 1, i < o.warmup, tools, o, signal);
      samples.push(s);
      if (o.verbose) {
        console.error(`  ${c.setup} #${s.iteration}: ${f0(s.convergenceMs)} ms (lease ${f0(s.agentLeasedMs)}` +
          `${s.birdStartedMs !== undefined ? `, BIRD up ${f0(s.birdStartedMs)}, partners configured ${f0(Math.max(...Object.values(s.partnerConfiguredMs ?? {})))}, newcomer's first route ${f0(s.newcomerFirstRouteMs!)}` : ""}; removal ${f0(s.removalMs)})`);
      }
    }
    if (!o.verbose) console.error(`  ${i + 1}/${total} rounds of joins`);
  }
  return samples;
}

// ---------------------------------------------------------------------------------------------
// 2. Data plane


/** A 2-node lab with one pod per node; the path pod on node1 -> pod on node2. */
async function trellisPath(made: Made, tools: LabTools, name: string, backend: "bgp" | "host-gw", o: Options, say: (l: string) => void): Promise<DataPath> {
  const s = await lab(made, tools, { name, nodes: 2, podsPerNode: 1, mode: "routed", backend, datastore: "embedded", ...agentSettings(o) }, say);
  const path = labPath(s, `trellis-${backend}`, `trellis ${backend}`);
  const node1 = s.plan.nodes.find((n) => n.name === "node1")!.netns;
  if (backend === "bgp") {
    // The path must be BIRD's: node2's block in node1's table 203, and no other route to it.
    const block = blockOf(name, "node2");
    if (!bgpTable(node1).includes(block)) throw new Error(`lab ${name}: node1's table ${BGP_TABLE} has no route to ${block}`);
    const main = run("ip", ["-n", node1, "route", "show", "exact", block]).trim();
    if (main) throw new Error(`lab ${name}: node1's main table routes ${block} too: ${main}`);
  }
  return path;
}

// ---------------------------------------------------------------------------------------------
// 3. Resources of an idle node mesh

interface NodeUsage {
  node: string;
  sessions: number;
  birdPid: number;
  agentPid: number;
  /** VmRSS samples over the window, KiB. */
  birdRssKiB: number[];
  agentRssKiB: number[];
  /** BIRD's own data (`birdc show memory`, Total, effective) at the end of the window, KiB. */
  birdMemoryKiB: number;
  /** CPU over the window, % of one core; the agent's with the children it reaped (birdc, ip, nft, bird -p). */
  birdCpuPct: number;
  agentCpuPct: number;
  agentCpuWithChildrenPct: number;
}

interface ResourceRun {
  nodes: number;
  settings: { leaseTtlSeconds: number; resyncSeconds: number };
  /** Lab up (agents lease, every node sees every other), then every session established, ms. */
  upMs?: number;
  establishedMs?: number;
  windowSeconds?: number;
  perNode?: NodeUsage[];
  /** Leases that lapsed and were taken again, over the whole life of the lab (0 on a machine that keeps up). */
  leaseLapses?: number;
  /** Sessions not established at the end of the window (a session that flapped would show here). */
  sessionsDownAtEnd?: number;
  /** What went wrong, when the lab could not be brought up or measured: said, not hidden. */
  error?: string;
  loadAverage: { start: number; end: number };
}

const ticks = (pid: number): CpuTicks => parseProcStat(fs.readFileSync(`/proc/${pid}/stat`, "utf8"));
const rss = (pid: number): number => parseVmRssKiB(fs.readFileSync(`/proc/${pid}/status`, "utf8")) ?? Number.NaN;
const load1 = (): number => round3(os.loadavg()[0]!);

/** Every node's BIRD has `expected` sessions, all established; the number of sessions that are not. */
async function sessionsDown(labName: string, nodes: readonly LabNode[], expected: number, signal: AbortSignal): Promise<number> {
  let down = 0;
  for (const n of nodes) {
    const s = await birdSessions(labName, n.name, signal);
    down += s === undefined ? expected : Math.max(0, expected - s.filter((x) => x.up).length);
  }
  return down;
}

async function measureMesh(made: Made, tools: LabTools, tag: string, n: number, o: Options, say: (l: string) => void, signal: AbortSignal): Promise<ResourceRun> {
  const out: ResourceRun = { nodes: n, settings: { leaseTtlSeconds: o.leaseTtl, resyncSeconds: o.resync }, loadAverage: { start: load1(), end: Number.NaN } };
  const name = `b${tag}r${n}`;
  try {
    let t = Date.now();
    const state = await lab(made, tools, {
      name, nodes: n, podsPerNode: 0, mode: "routed", backend: "bgp", datastore: "embedded", ...agentSettings(o),
    }, say);
    out.upMs = Date.now() - t;
    t = Date.now();
    let down: number;
    const deadline = Date.now() + o.readyTimeout * 1000;
    for (;;) {
      down = await sessionsDown(name, state.plan.nodes, n - 1, signal);
      if (down === 0) break;
      if (Date.now() > deadline) throw new Error(`${down} of ${n * (n - 1)} BGP sessions still not established after ${o.readyTimeout} s`);
      await delay(1000, undefined, { signal });
    }
    out.establishedMs = Date.now() - t;
    await delay(5000, undefined, { signal }); // let the last reconfigurations and status reads finish

    const procs = state.plan.nodes.map((node) => {
      const agent = state.pids.find((p) => p.what === `agent ${node.name}`)?.pid;
      const bird = birdPid(name, node.name);
      if (agent === undefined || !processAlive(agent) || bird === undefined) throw new Error(`${node.name} in ${name}: agent or BIRD not running`);
      return { node: node.name, agent, bird };
    });
    const start = new Map(procs.flatMap((p) => [[p.agent, ticks(p.agent)], [p.bird, ticks(p.bird)]] as const));
    const rssOf = new Map<number, number[]>(procs.flatMap((p) => [[p.agent, []], [p.bird, []]] as const));
    const t0 = wallNow();
    const steps = Math.max(1, Math.round(o.idleSeconds / 5));
    for (let i = 0; i < steps; i++) {
      await delay((o.idleSeconds * 1000) / steps, undefined, { signal });
      for (const [pid, xs] of rssOf) xs.push(rss(pid));
    }
    const elapsedS = (wallNow() - t0) / 1000;
    const end = new Map([...start.keys()].map((pid) => [pid, ticks(pid)]));
    const pct = (pid: number, kids: boolean): number => {
      const a = start.get(pid)!;
      const b = end.get(pid)!;
      const used = b.utime + b.stime - a.utime - a.stime + (kids ? b.cutime + b.cstime - a.cutime - a.cstime : 0);
      return round3(((used / CLK_TCK) / elapsedS) * 100);
    };
    out.windowSeconds = round3(elapsedS);
    out.perNode = [];
    for (const p of procs) {
      const mem = parseBirdMemoryTotal(await birdc(name, p.node, ["show", "memory"], signal));
      const sessions = (await birdSessions(name, p.node, signal)) ?? [];
      out.perNode.push({
        node: p.node, sessions: sessions.length, birdPid: p.bird, agentPid: p.agent,
        birdRssKiB: rssOf.get(p.bird)!, agentRssKiB: rssOf.get(p.agent)!, birdMemoryKiB: round3((mem ?? Number.NaN) / 1024),
        birdCpuPct: pct(p.bird, false), agentCpuPct: pct(p.agent, false), agentCpuWithChildrenPct: pct(p.agent, true),
      });
    }
    out.sessionsDownAtEnd = await sessionsDown(name, state.plan.nodes, n - 1, signal);
    out.leaseLapses = leaseLapses(state);
  } catch (e) {
    if (signal.aborted) throw e;
    out.error = (e as Error).message;
    const state = readState(name);
    if (state) out.leaseLapses = leaseLapses(state);
    console.error(`  ${n}-node mesh FAILED: ${out.error}${out.leaseLapses ? ` (${out.leaseLapses} lease lapses in its agents' logs)` : ""}`);
  } finally {
    const errors = await made.removeLabs(tools, say);
    if (errors.length > 0) throw new Error(`cannot remove lab ${name}: ${errors.join("; ")}`);
    out.loadAverage.end = load1();
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Output

const toolVersions = (): { bird: string; iperf3: string } => {
  const first = (cmd: string, args: string[]): string => {
    const r = spawnSync(cmd, args, { encoding: "utf8" });
    return `${r.stdout ?? ""}${r.stderr ?? ""}`.trim().split("\n")[0] ?? "unknown";
  };
  return { bird: first("bird", ["--version"]), iperf3: first("iperf3", ["--version"]) };
};

const mean = (xs: readonly number[]): number => summarize(xs).mean;
const mib = (kib: number): number => kib / 1024;
const maxOf = (r: Record<string, number> | undefined): number => (r && Object.keys(r).length ? Math.max(...Object.values(r)) : Number.NaN);

interface JoinSummary {
  setup: SetupId;
  label: string;
  convergence: Summary;
  vsReference: { p50: number; p99: number };
  agentStarting: Summary;
  agentLeased: Summary;
  birdStarted?: Summary;
  /** The last session partner's BIRD took a config with the newcomer's session. */
  partnersConfigured?: Summary;
  newcomerFirstRoute?: Summary;
  newcomerAllRoutes?: Summary;
  firstPeer: Summary;
  /** Last peer's route - max(BIRD started, partners configured): what the sessions themselves took. */
  sessions?: Summary;
  removal: Summary;
}

function summarizeJoins(labs: JoinLab[], samples: JoinSample[]): JoinSummary[] {
  const measured = (s: SetupId): JoinSample[] => samples.filter((x) => x.setup === s && !x.warmup);
  const reference = summarize(measured("vxlan").map((s) => s.convergenceMs));
  return labs.map((c) => {
    const m = measured(c.setup);
    const bgp = c.setup !== "vxlan";
    const conv = summarize(m.map((s) => s.convergenceMs));
    return {
      setup: c.setup, label: c.label, convergence: conv,
      vsReference: { p50: round3(ratio(conv.p50, reference.p50)), p99: round3(ratio(conv.p99, reference.p99)) },
      agentStarting: summarize(m.map((s) => s.agentStartingMs)),
      agentLeased: summarize(m.map((s) => s.agentLeasedMs)),
      firstPeer: summarize(m.map((s) => Math.min(...Object.values(s.perPeerMs)))),
      removal: summarize(m.map((s) => s.removalMs)),
      ...(bgp ? {
        birdStarted: summarize(m.map((s) => s.birdStartedMs!)),
        partnersConfigured: summarize(m.map((s) => maxOf(s.partnerConfiguredMs))),
        newcomerFirstRoute: summarize(m.map((s) => s.newcomerFirstRouteMs!)),
        newcomerAllRoutes: summarize(m.map((s) => s.newcomerAllRoutesMs!)),
        sessions: summarize(m.map((s) => s.convergenceMs - Math.max(s.birdStartedMs!, maxOf(s.partnerConfiguredMs)))),
      } : {}),
    };
  });
}

interface PathSummary {
  path: string;
  label: string;
  mtu: number;
  gbps: { median: number; min: number; max: number };
  rttP50Us: { median: number; min: number; max: number };
}

function summarizeDataplane(paths: DataPath[], samples: DataSample[]): { paths: PathSummary[]; ratios: Array<{ what: string; throughput: number; rtt: number }> } {
  const stat = (xs: number[]): { median: number; min: number; max: number } => ({ median: round3(median(xs)), min: Math.min(...xs), max: Math.max(...xs) });
  const summary = paths.map((p) => {
    const s = samples.filter((x) => x.path === p.id);
    return { path: p.id, label: p.label, mtu: p.mtu, gbps: stat(s.map((x) => x.gbps)), rttP50Us: stat(s.map((x) => x.rttP50Us)) };
  });
  const by = new Map(summary.map((s) => [s.path, s]));
  const ratios: Array<{ what: string; throughput: number; rtt: number }> = [];
  for (const [a, b, what] of [
    ["trellis-bgp", "hand-host-gw", "trellis bgp / by hand"],
    ["trellis-host-gw", "hand-host-gw", "trellis host-gw / by hand"],
    ["trellis-bgp", "trellis-host-gw", "trellis bgp / trellis host-gw"],
  ] as const) {
    const x = by.get(a);
    const y = by.get(b);
    if (x && y) ratios.push({ what, throughput: round3(ratio(x.gbps.median, y.gbps.median)), rtt: round3(ratio(x.rttP50Us.median, y.rttP50Us.median)) });
  }
  return { paths: summary, ratios };
}

interface ResourceSummary {
  nodes: number;
  sessionsPerNode: number;
  birdRssMiB: { mean: number; max: number };
  birdMemoryKiB: { mean: number; max: number };
  birdCpuPct: { mean: number; max: number };
  agentRssMiB: { mean: number; max: number };
  agentCpuPct: { mean: number; max: number };
  agentCpuWithChildrenPct: { mean: number; max: number };
}

function summarizeResources(runs: ResourceRun[]): { rows: ResourceSummary[]; growth?: { from: number; to: number; ratios: Record<string, number>; birdMemoryPerPeerKiB: number; birdRssPerPeerKiB: number } } {
  const mm = (xs: number[]): { mean: number; max: number } => ({ mean: round3(mean(xs)), max: round3(Math.max(...xs)) });
  const rows = runs.filter((r) => r.perNode && r.perNode.length > 0).map((r) => {
    const p = r.perNode!;
    return {
      nodes: r.nodes, sessionsPerNode: round3(mean(p.map((x) => x.sessions))),
      birdRssMiB: mm(p.map((x) => mib(mean(x.birdRssKiB)))), birdMemoryKiB: mm(p.map((x) => x.birdMemoryKiB)), birdCpuPct: mm(p.map((x) => x.birdCpuPct)),
      agentRssMiB: mm(p.map((x) => mib(mean(x.agentRssKiB)))), agentCpuPct: mm(p.map((x) => x.agentCpuPct)),
      agentCpuWithChildrenPct: mm(p.map((x) => x.agentCpuWithChildrenPct)),
    };
  });
  if (rows.length < 2) return { rows };
  const [a, b] = [rows[0]!, rows[rows.length - 1]!];
  const extraPeers = b.sessionsPerNode - a.sessionsPerNode;
  return {
    rows,
    growth: {
      from: a.nodes, to: b.nodes,
      ratios: {
        birdRss: round3(ratio(b.birdRssMiB.mean, a.birdRssMiB.mean)), birdMemory: round3(ratio(b.birdMemoryKiB.mean, a.birdMemoryKiB.mean)),
        birdCpu: round3(ratio(b.birdCpuPct.mean, a.birdCpuPct.mean)), agentRss: round3(ratio(b.agentRssMiB.mean, a.agentRssMiB.mean)),
        agentCpu: round3(ratio(b.agentCpuPct.mean, a.agentCpuPct.mean)), agentCpuWithChildren: round3(ratio(b.agentCpuWithChildrenPct.mean, a.agentCpuWithChildrenPct.mean)),
      },
      birdMemoryPerPeerKiB: round3((b.birdMemoryKiB.mean - a.birdMemoryKiB.mean) / extraPeers),
      birdRssPerPeerKiB: round3(((b.birdRssMiB.mean - a.birdRssMiB.mean) * 1024) / extraPeers),
    },
  };
}

interface Report {
  env: Environment & ReturnType<typeof toolVersions>;
  options: Omit<Options, "parts" | "out" | "verbose"> & { parts: Part[] };
  convergence?: { samples: JoinSample[]; summary: JoinSummary[]; leaseLapses: Record<string, number>; loadAverage: { start: number; end: number } };
  dataplane?: { paths: DataPath[]; samples: DataSample[]; summary: ReturnType<typeof summarizeDataplane>; loadAverage: { start: number; end: number } };
  resources?: { runs: ResourceRun[]; summary: ReturnType<typeof summarizeResources>; note: string };
  cleanup: CleanupCheck;
}

const pq = (s: Summary | undefined): string => (s ? `${f0(s.p50)} / ${f0(s.p99)}` : "-");

function renderText(r: Report): string {
  const out: string[] = [];
  const e = r.env;
  out.push(`BGP benchmark, ${e.date}: ${e.cpus} x ${e.cpuModel}, Linux ${e.kernel}, ${e.bird}, ${e.iperf3}`);
  out.push(`trellis ${e.git.commit.slice(0, 10)}${e.git.dirty ? " + uncommitted changes" : ""} (executable sha256 ${e.trellisBinary.sha256.slice(0, 12)}); load average (1 min) ${f2(e.loadAverage.start)} at start, ${f2(e.loadAverage.end)} at end`);
  if (r.convergence) {
    const n = r.options.nodes;
    out.push("", `Convergence, ${n} nodes: node${n}'s agent spawned (t0) -> all ${n - 1} peers route to its block (ms; ${r.options.iterations} joins per setup, interleaved; nearest-rank p99 = the max below 100 samples; agents with lease TTL ${r.options.leaseTtl} s, resync ${r.options.resync} s)`);
    out.push(table(["setup", "n", "p50", "p99", "max", "mean", "p50 vs vxlan", "p99 vs vxlan"],
      r.convergence.summary.map((s) => [s.label, String(s.convergence.n), f0(s.convergence.p50), f0(s.convergence.p99), f0(s.convergence.max), f0(s.convergence.mean),
        f2(s.vsReference.p50), f2(s.vsReference.p99)])));
    out.push("", "Where the time goes (ms from t0, p50 / p99): bgp routes appear in table 203 (proto bird), vxlan's in the main table (proto 202)");
    out.push(table(["setup", "agent 'starting'", "lease logged", "BIRD up", "partners configured", "newcomer 1st route", "first peer", "last peer", "last peer - configured", "newcomer all routes"],
      r.convergence.summary.map((s) => [s.label, pq(s.agentStarting), pq(s.agentLeased), pq(s.birdStarted), pq(s.partnersConfigured), pq(s.newcomerFirstRoute),
        pq(s.firstPeer), pq(s.convergence), pq(s.sessions), pq(s.newcomerAllRoutes)])));
    out.push("('partners configured': the last node the newcomer has a session with logged a BIRD config holding it; 'last peer - configured': from the later of that and 'BIRD up' to the last peer's route — the BGP sessions' own time)");
    const since = r.convergence.samples.filter((s) => !s.warmup && s.sessionsUpMs);
    if (since.length) {
      const sl = summarize(since.map((s) => s.sessionsUpMs!.last));
      out.push(`BIRD's own 'Since' of the newcomer's sessions (whole seconds, so +-1 s): the last one up at p50 ${f0(sl.p50)} ms from t0`);
    }
    out.push("", "Node removal: `trellis nodes remove` spawned -> every peer deleted the route (ms; includes the CLI's start-up)");
    out.push(table(["setup", "n", "p50", "p99", "max"], r.convergence.summary.map((s) => [s.label, String(s.removal.n), f0(s.removal.p50), f0(s.removal.p99), f0(s.removal.max)])));
    const lapses = Object.entries(r.convergence.leaseLapses).filter(([, v]) => v > 0);
    if (lapses.length) out.push(`WARNING: leases lapsed during the joins (starved agents; peers re-added them): ${lapses.map(([k, v]) => `${k} ${v}`).join(", ")}`);
  }
  if (r.dataplane) {
    out.push("", `Data plane, pod -> pod across 2 nodes: 1 TCP stream (iperf3 -t ${r.options.seconds} -O 1) and ICMP RTT (p50 of ${r.options.pings} pings, 5 ms apart); median of ${r.options.rounds} interleaved rounds (min-max)`);
    out.push(table(["path", "pod MTU", "Gbit/s", "(min-max)", "RTT p50 µs", "(min-max)"],
      r.dataplane.summary.paths.map((s) => [s.label, String(s.mtu), f2(s.gbps.median), `(${f2(s.gbps.min)}-${f2(s.gbps.max)})`, f1(s.rttP50Us.median), `(${f1(s.rttP50Us.min)}-${f1(s.rttP50Us.max)})`])));
    out.push(table(["ratio", "throughput", "RTT"], r.dataplane.summary.ratios.map((x) => [x.what, f2(x.throughput), f2(x.rtt)])));
    out.push(`nftables tables on the sending node: ${r.dataplane.paths.map((p) => `${p.label}: ${p.nftTables.length ? p.nftTables.join(", ") : "none"}`).join("; ")}`);
  }
  if (r.resources) {
    const s0 = r.resources.runs[0]?.settings;
    out.push("", `Resources of an idle bgp node mesh, per node (${f0(r.resources.runs.find((x) => x.windowSeconds)?.windowSeconds ?? Number.NaN)} s window; agents with lease TTL ${s0?.leaseTtlSeconds} s, resync ${s0?.resyncSeconds} s; CPU in % of one core; mean / max over the nodes)`);
    out.push(table(["nodes", "sessions/node", "BIRD RSS MiB", "BIRD own data KiB", "BIRD CPU %", "agent RSS MiB", "agent CPU %", "agent+children CPU %"],
      r.resources.summary.rows.map((x) => [String(x.nodes), f0(x.sessionsPerNode), `${f2(x.birdRssMiB.mean)} / ${f2(x.birdRssMiB.max)}`, `${f0(x.birdMemoryKiB.mean)} / ${f0(x.birdMemoryKiB.max)}`,
        `${f2(x.birdCpuPct.mean)} / ${f2(x.birdCpuPct.max)}`, `${f1(x.agentRssMiB.mean)} / ${f1(x.agentRssMiB.max)}`, `${f2(x.agentCpuPct.mean)} / ${f2(x.agentCpuPct.max)}`,
        `${f2(x.agentCpuWithChildrenPct.mean)} / ${f2(x.agentCpuWithChildrenPct.max)}`])));
    const g = r.resources.summary.growth;
    if (g) {
      out.push(`ratio ${g.to}/${g.from} of the means: BIRD RSS ${f2(g.ratios.birdRss!)}, BIRD own data ${f2(g.ratios.birdMemory!)}, BIRD CPU ${f2(g.ratios.birdCpu!)}, agent RSS ${f2(g.ratios.agentRss!)}, agent CPU ${f2(g.ratios.agentCpu!)} (with children ${f2(g.ratios.agentCpuWithChildren!)})`);
      out.push(`per extra peer: BIRD own data +${f1(g.birdMemoryPerPeerKiB)} KiB, BIRD RSS +${f1(g.birdRssPerPeerKiB)} KiB`);
    }
    for (const x of r.resources.runs) {
      const notes = [
        x.error ? `FAILED: ${x.error}` : `up in ${f1((x.upMs ?? Number.NaN) / 1000)} s, all sessions established ${f1((x.establishedMs ?? Number.NaN) / 1000)} s later`,
        `${x.leaseLapses ?? "?"} lease lapses`, ...(x.sessionsDownAtEnd ? [`${x.sessionsDownAtEnd} sessions down at the end of the window`] : []),
        `load average ${f1(x.loadAverage.start)} -> ${f1(x.loadAverage.end)}`,
      ];
      out.push(`${x.nodes} nodes: ${notes.join("; ")}`);
    }
  }
  out.push("", cleanupLine(r.cleanup));
  return out.join("\n");
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const o = parseOptions(process.argv.slice(2));
  requireRootAnd(["bird", "birdc", "iperf3", "ping", "ss", "nsenter"]);
  const signal = interruptSignal();
  const say = progress(o.verbose);

  const env = environment(toolVersions());
  const tag = uniq().slice(0, 6);
  const { parts, out: _out, verbose: _verbose, ...rest } = o;
  const report: Report = { env, options: { ...rest, parts: [...parts] }, cleanup: { clean: false, problems: [] } };
  const labNames = ["gm", "gr", "vx", "dg", "dh", ...o.resourceNodes.map((n) => `r${n}`)].map((s) => `b${tag}${s}`);
  report.cleanup = await labRun("bgp", env, tag, labNames, say, async (made, tools) => {
    if (o.parts.has("convergence")) {
      const load = { start: load1(), end: Number.NaN };
      console.error(`convergence: three ${o.nodes}-node labs (bgp mesh, bgp with ${o.reflectors} reflectors and no mesh, vxlan)...`);
      const labs = await startJoinLabs(made, tools, tag, o, say, signal);
      console.error(`convergence: ${o.warmup} + ${o.iterations} joins per setup, interleaved...`);
      const samples = await measureJoins(labs, o, tools, signal);
      load.end = load1();
      report.convergence = {
        samples, summary: summarizeJoins(labs, samples), loadAverage: load,
        leaseLapses: Object.fromEntries(labs.map((c) => [c.setup, leaseLapses(c.state)])),
      };
      const errors = [...await made.stopChildren(labs.flatMap((c) => [...c.peers, ...(c.self ? [c.self] : [])].map((m) => m.child))), ...await made.removeLabs(tools, say)];
      if (errors.length > 0) throw new Error(`cannot remove the convergence labs: ${errors.join("; ")}`);
    }

    if (o.parts.has("dataplane")) {
      const load = { start: load1(), end: Number.NaN };
      console.error("data plane: trellis labs (bgp, host-gw) and the hand-built host-gw path...");
      const paths = [
        await trellisPath(made, tools, `b${tag}dg`, "bgp", o, say),
        handPath(made, tag, "host-gw"),
        await trellisPath(made, tools, `b${tag}dh`, "host-gw", o, say),
      ];
      const samples = await measureDataplane(paths, made, o, signal);
      load.end = load1();
      report.dataplane = { paths, samples, summary: summarizeDataplane(paths, samples), loadAverage: load };
      const errors = await made.removeLabs(tools, say);
      if (errors.length > 0) throw new Error(`cannot remove the data-plane labs: ${errors.join("; ")}`);
    }

    if (o.parts.has("resources")) {
      const runs: ResourceRun[] = [];
      for (const n of o.resourceNodes) {
        console.error(`resources: idle bgp node mesh of ${n} nodes (lease TTL ${o.leaseTtl} s, resync ${o.resync} s), ${o.idleSeconds} s window...`);
        runs.push(await measureMesh(made, tools, tag, n, o, say, signal));
      }
      report.resources = {
        runs, summary: summarizeResources(runs),
        note: `every lab with lease TTL ${o.leaseTtl} s and resync ${o.resync} s: with the lab's defaults (10 s, 5 s) a 30-node lab did not settle on the ` +
          "2-vCPU VM (leases lapsed under the start-up load and every peer dropped and re-added the node); see bench/README.md, bgp",
      };
    }
  });
  console.log(renderText(report));
  writeResults(o.out, report);
  return report.cleanup.clean ? 0 : 1;
}

main().then((code) => process.exit(code), (e: unknown) => {
  console.error(`bgp benchmark failed: ${(e as Error).message}`);
  process.exit(1);
});
