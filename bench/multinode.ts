// Multi-node benchmark (perf-anchors §1.5, §3, §5): what a cluster of Trellis nodes costs and how
// fast it reacts, measured in lab clusters of network namespaces and compared, in the same run,
// with the same data path built by hand and with a bare veth pair.
//
//   1. convergence: a node's agent starts -> every peer has a route to its block (embedded and
//      etcd datastores, side by side, iterations interleaved);
//   2. idle cost: RSS and CPU of 10 idle agents per datastore (and of etcd);
//   3. data plane: pod -> pod across nodes, vxlan and host-gw, Trellis vs hand-built vs veth,
//      TCP throughput (iperf3) and ICMP RTT (ping), rounds interleaved in rotating order.
//
// Every namespace, lab and process this script makes is removed or ended (by pid) in `finally`,
// also on error or Ctrl-C. There are no timing thresholds: it measures, people judge.
// Method and caveats: bench/README.md.
import * as fs from "node:fs";
import * as path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { labUp, nodeDir, startAgent, stopAgent, subnetFileOf, type LabState, type LabTools } from "../src/lab/lab.js";
import type { LabBackend, LabDatastore, LabNode } from "../src/lab/plan.js";
import { processAlive } from "../src/kernel/netns.js";
import { ROOT, uniq } from "../test/helpers/netns.js";
import {
  cleanupLine, CLK_TCK, commandLine, commandOutput, environment, f1, f2, interruptSignal, labRun, partsOf, progress, ratio, readFrom,
  requireRootAnd, run, runAsync, sizeOf, table, waitFor, wallNow, wholeNumber, writeResults, type CleanupCheck, type Environment, type Made,
} from "./common.js";
import { handPath, labPath, measureDataplane, vethPath, type DataPath, type DataSample } from "./paths.js";
import { parseAgentStart, parseProcStat, parseVmRssKiB, type CpuTicks } from "./probes.js";
import { RouteMonitor } from "./route-monitor.js";
import { median, rotate, round3, summarize, type Summary } from "./stats.js";

// Plugins, agents and tools we start get a clean environment (a runtime would not pass this on).
delete process.env.NODE_EXTRA_CA_CERTS;

const PEER_ROUTE_PROTO = "202";
const PARTS = ["convergence", "resources", "dataplane"] as const;
type Part = (typeof PARTS)[number];

interface Options {
  nodes: number;
  iterations: number;
  warmup: number;
  idleSeconds: number;
  rounds: number;
  seconds: number;
  pings: number;
  parts: Set<Part>;
  out: string;
  verbose: boolean;
}

const USAGE = `usage: node dist/bench/multinode.js [options]   (as root, after npm run build)
  --nodes N          nodes of the convergence labs (default 10; the last one is the newcomer)
  --iterations N     measured convergence iterations per datastore (default 20)
  --warmup N         unmeasured iterations first (default 1)
  --idle-seconds S   idle window for agent CPU (default 25)
  --rounds N         data-plane rounds, paths in rotating order (default 3)
  --seconds S        iperf3 -t per measurement, after 1 s omitted (default 4)
  --pings N          ICMP echoes per RTT measurement, 5 ms apart (default 200)
  --parts LIST       comma-separated: ${PARTS.join(",")} (default all)
  --out FILE         results JSON (default bench/results/multinode.json)
  --verbose          show lab progress`;

function parseOptions(argv: string[]): Options {
  const values = commandLine(argv, USAGE, {
    nodes: { type: "string", default: "10" },
    iterations: { type: "string", default: "20" },
    warmup: { type: "string", default: "1" },
    "idle-seconds": { type: "string", default: "25" },
    rounds: { type: "string", default: "3" },
    seconds: { type: "string", default: "4" },
    pings: { type: "string", default: "200" },
    parts: { type: "string", default: PARTS.join(",") },
    out: { type: "string", default: path.join(ROOT, "bench", "results", "multinode.json") },
    verbose: { type: "boolean", default: false },
  });
  const int = wholeNumber;
  return {
    nodes: int("nodes", values.nodes, 2),
    iterations: int("iterations", values.iterations, 1),
    warmup: int("warmup", values.warmup, 0),
    idleSeconds: int("idle-seconds", values["idle-seconds"], 1),
    rounds: int("rounds", values.rounds, 1),
    seconds: int("seconds", values.seconds, 1),
    pings: int("pings", values.pings, 1),
    parts: partsOf(values.parts, PARTS),
    out: path.resolve(values.out),
    verbose: values.verbose,
  };
}

// ---------------------------------------------------------------------------------------------
// Labs

/** Brings a lab up, recording its name first so that a half-built lab is removed too. */
async function lab(made: Made, tools: LabTools, name: string, nodes: number, pods: number, backend: LabBackend, datastore: LabDatastore,
  say: (l: string) => void): Promise<LabState> {
  made.labs.push(name);
  const t = Date.now();
  const s = await labUp({ name, nodes, podsPerNode: pods, mode: "routed", backend, datastore }, tools, say);
  console.error(`  lab ${name}: ${nodes} nodes x ${pods} pods, ${backend}, ${datastore} datastore, up in ${Date.now() - t} ms`);
  return s;
}

// ---------------------------------------------------------------------------------------------
// 1. Convergence

interface ConvLab {
  datastore: LabDatastore;
  state: LabState;
  newcomer: LabNode;
  monitors: RouteMonitor[];
}

interface ConvSample {
  datastore: LabDatastore;
  iteration: number;
  warmup: boolean;
  block: string;
  /** From just before the agent was spawned (t0) to the last peer's route, ms. */
  convergenceMs: number;
  /** t0 -> each peer's route, ms. */
  perPeerMs: Record<string, number>;
  /** t0 -> the agent logged "starting" (process start, datastore client open), ms. */
  agentStartingMs: number;
  /** t0 -> the agent logged its lease, ms. */
  agentLeasedMs: number;
  /** `nodes remove` spawned -> the last peer deleted its route, ms. */
  removalMs: number;
}

const blockOf = (lab: string, node: string): string => {
  const m = /TRELLIS_SUBNET=(\S+)/.exec(fs.readFileSync(subnetFileOf(lab, node), "utf8"));
  if (!m) throw new Error(`no TRELLIS_SUBNET in ${subnetFileOf(lab, node)}`);
  return m[1]!;
};

async function convergenceIteration(c: ConvLab, iteration: number, warmup: boolean, tools: LabTools, signal: AbortSignal): Promise<ConvSample> {
  const { state, newcomer: node, monitors } = c;
  const labName = state.plan.name;
  await stopAgent(state, node.name);
  const block = blockOf(labName, node.name);

  // Take the node out of the cluster and wait until no peer routes to it any more.
  const tRemove = wallNow();
  const rm = await runAsync(tools.trellisBin, ["--lab", labName, "nodes", "remove", node.name], signal);
  if (rm.code !== 0) throw new Error(`trellis --lab ${labName} nodes remove ${node.name} exited ${rm.code}: ${rm.stderr.trim()}`);
  await waitFor(`every peer in ${labName} to drop its route to ${block}`, 20_000, signal, () => monitors.every((m) => m.first(block, tRemove, true)));
  for (const m of monitors) {
    const left = run("ip", ["-n", m.netns, "route", "show", "exact", block, "proto", PEER_ROUTE_PROTO]).trim();
    if (left) throw new Error(`${m.node} still has a route to removed ${block}: ${left}`);
  }
  const removalMs = Math.max(...monitors.map((m) => m.first(block, tRemove, true)!.atMs)) - tRemove;

  // Start the agent again and wait for every peer's route to its block.
  const log = path.join(nodeDir(labName, node.name), "agent.log");
  const offset = sizeOf(log);
  const t0 = wallNow();
  startAgent(state.plan, state, node, tools.trellisBin);
  let wanted = block;
  await waitFor(`every peer in ${labName} to route to ${node.name}'s block`, 20_000, signal, () => {
    if (monitors.every((m) => m.first(wanted, t0, false))) return true;
    // The agent normally takes its old block back (its subnet file); follow it if it did not.
    wanted = parseAgentStart(readFrom(log, offset), node.name).block ?? wanted;
    return false;
  });
  // The agent's log lines may reach the file after its lease reached the peers.
  let started = parseAgentStart(readFrom(log, offset), node.name);
  await waitFor(`"starting" and lease lines in ${log}`, 10_000, signal, () => {
    started = parseAgentStart(readFrom(log, offset), node.name);
    return started.startingMs !== undefined && started.leasedMs !== undefined;
  }, 20);
  const perPeerMs: Record<string, number> = {};
  for (const m of monitors) perPeerMs[m.node] = round3(m.first(wanted, t0, false)!.atMs - t0);
  return {
    datastore: c.datastore, iteration, warmup, block: wanted,
    convergenceMs: round3(Math.max(...Object.values(perPeerMs))),
    perPeerMs,
    agentStartingMs: round3(started.startingMs! - t0),
    agentLeasedMs: round3(started.leasedMs! - t0),
    removalMs: round3(removalMs),
  };
}

async function startConvergenceLabs(made: Made, tools: LabTools, tag: string, o: Options, say: (l: string) => void, signal: AbortSignal): Promise<ConvLab[]> {
  const labs: ConvLab[] = [];
  for (const [datastore, suffix] of [["embedded", "ce"], ["etcd", "cx"]] as const) {
    const state = await lab(made, tools, `b${tag}${suffix}`, o.nodes, 0, "vxlan", datastore, say);
    const newcomer = state.plan.nodes[state.plan.nodes.length - 1]!;
    const monitors = state.plan.nodes.filter((n) => n !== newcomer).map((n) => new RouteMonitor(made, n.name, n.netns, (ev) => ev.proto === PEER_ROUTE_PROTO));
    for (const m of monitors) await m.ready(signal);
    labs.push({ datastore, state, newcomer, monitors });
  }
  return labs;
}

async function measureConvergence(labs: ConvLab[], o: Options, tools: LabTools, signal: AbortSignal): Promise<ConvSample[]> {
  const samples: ConvSample[] = [];
  const total = o.warmup + o.iterations;
  for (let i = 0; i < total; i++) {
    for (const c of rotate(labs, i)) {
      const s = await convergenceIteration(c, i - o.warmup + 1, i < o.warmup, tools, signal);
      samples.push(s);
      if (o.verbose) console.error(`  ${c.datastore} #${s.iteration}: ${s.convergenceMs.toFixed(1)} ms (agent "starting" ${s.agentStartingMs.toFixed(0)}, lease ${s.agentLeasedMs.toFixed(0)})`);
    }
    if (!o.verbose && (i + 1) % 5 === 0) console.error(`  ${i + 1}/${total} iterations`);
  }
  return samples;
}

// ---------------------------------------------------------------------------------------------
// 2. Idle resources

interface ProcessUsage {
  what: string;
  pid: number;
  /** VmRSS samples over the window, KiB. */
  rssKiB: number[];
  /** CPU over the window, % of one core: the process itself, and with the children it reaped. */
  cpuPct: number;
  cpuWithChildrenPct: number;
}

interface IdleResult {
  datastore: LabDatastore;
  windowSeconds: number;
  agents: ProcessUsage[];
  etcd?: ProcessUsage;
}

const ticks = (pid: number): CpuTicks => parseProcStat(fs.readFileSync(`/proc/${pid}/stat`, "utf8"));
const rss = (pid: number): number => parseVmRssKiB(fs.readFileSync(`/proc/${pid}/status`, "utf8")) ?? Number.NaN;

async function measureIdle(labs: ConvLab[], seconds: number, signal: AbortSignal): Promise<IdleResult[]> {
  const procs = labs.flatMap((c) => c.state.pids
    .filter((p) => (p.what.startsWith("agent ") || p.what === "etcd") && processAlive(p.pid))
    .map((p) => ({ datastore: c.datastore, what: p.what, pid: p.pid })));
  await delay(2000, undefined, { signal }); // let the last restart's syncs finish
  const start = new Map(procs.map((p) => [p.pid, ticks(p.pid)]));
  const samples = new Map<number, number[]>(procs.map((p) => [p.pid, []]));
  const t0 = wallNow();
  const steps = Math.max(1, Math.round(seconds / 5));
  for (let i = 0; i < steps; i++) {
    await delay((seconds * 1000) / steps, undefined, { signal });
    for (const p of procs) samples.get(p.pid)!.push(rss(p.pid));
  }
  const elapsedS = (wallNow() - t0) / 1000;
  const usage = (p: { what: string; pid: number }): ProcessUsage => {
    const a = start.get(p.pid)!;
    const b = ticks(p.pid);
    const own = b.utime + b.stime - a.utime - a.stime;
    const kids = b.cutime + b.cstime - a.cutime - a.cstime;
    return {
      what: p.what, pid: p.pid, rssKiB: samples.get(p.pid)!,
      cpuPct: round3(((own / CLK_TCK) / elapsedS) * 100),
      cpuWithChildrenPct: round3((((own + kids) / CLK_TCK) / elapsedS) * 100),
    };
  };
  return labs.map((c) => {
    const mine = procs.filter((p) => p.datastore === c.datastore);
    const etcd = mine.find((p) => p.what === "etcd");
    return {
      datastore: c.datastore, windowSeconds: round3(elapsedS),
      agents: mine.filter((p) => p.what !== "etcd").map(usage),
      ...(etcd ? { etcd: usage(etcd) } : {}),
    };
  });
}

// ---------------------------------------------------------------------------------------------
// 3. Data plane



async function trellisPath(made: Made, tools: LabTools, name: string, backend: "vxlan" | "host-gw", say: (l: string) => void): Promise<DataPath> {
  const s = await lab(made, tools, name, 2, 1, backend, "embedded", say);
  return labPath(s, `trellis-${backend}`, `trellis ${backend}`);
}


// ---------------------------------------------------------------------------------------------
// Output

/** The versions of the tools measured with. */
const toolVersions = (): { iperf3: string; etcd: string } => ({
  iperf3: commandOutput("iperf3", ["--version"]).split("\n")[0] ?? "unknown",
  etcd: commandOutput("etcd", ["--version"]).split("\n")[0] ?? "unknown",
});

const mean = (xs: readonly number[]): number => summarize(xs).mean;
const mib = (kib: number): number => kib / 1024;

interface ConvSummary {
  datastore: LabDatastore;
  convergence: Summary;
  agentStarting: Summary;
  /** When the agent's lease call returned (its log line's timestamp); peers may see the lease earlier. */
  agentLeased: Summary;
  /** t0 -> the first peer's route: the lease is visible and one peer has reacted. */
  firstPeer: Summary;
  /** Last peer's route - first peer's route. */
  spread: Summary;
  removal: Summary;
}

function summarizeConvergence(samples: ConvSample[]): ConvSummary[] {
  const ds = [...new Set(samples.map((s) => s.datastore))];
  return ds.map((d) => {
    const m = samples.filter((s) => s.datastore === d && !s.warmup);
    return {
      datastore: d,
      convergence: summarize(m.map((s) => s.convergenceMs)),
      agentStarting: summarize(m.map((s) => s.agentStartingMs)),
      agentLeased: summarize(m.map((s) => s.agentLeasedMs)),
      firstPeer: summarize(m.map((s) => Math.min(...Object.values(s.perPeerMs)))),
      spread: summarize(m.map((s) => s.convergenceMs - Math.min(...Object.values(s.perPeerMs)))),
      removal: summarize(m.map((s) => s.removalMs)),
    };
  });
}

interface PathSummary {
  path: string;
  label: string;
  mtu: number;
  gbps: { median: number; min: number; max: number };
  /** Per round the median RTT of its echoes; then the median over rounds. */
  rttP50Us: { median: number; min: number; max: number };
  vsHand?: { throughput: number; rtt: number };
  vsVeth: { throughput: number; rtt: number };
}

function summarizeDataplane(paths: DataPath[], samples: DataSample[]): PathSummary[] {
  const stat = (xs: number[]): { median: number; min: number; max: number } => ({ median: round3(median(xs)), min: Math.min(...xs), max: Math.max(...xs) });
  const per = new Map(paths.map((p) => {
    const s = samples.filter((x) => x.path === p.id);
    return [p.id, { gbps: stat(s.map((x) => x.gbps)), rtt: stat(s.map((x) => x.rttP50Us)) }] as const;
  }));
  const veth = per.get("veth");
  return paths.map((p) => {
    const me = per.get(p.id)!;
    const hand = p.id.startsWith("trellis-") ? per.get(p.id.replace("trellis-", "hand-")) : undefined;
    return {
      path: p.id, label: p.label, mtu: p.mtu, gbps: me.gbps, rttP50Us: me.rtt,
      ...(hand ? { vsHand: { throughput: round3(ratio(me.gbps.median, hand.gbps.median)), rtt: round3(ratio(me.rtt.median, hand.rtt.median)) } } : {}),
      vsVeth: { throughput: round3(ratio(me.gbps.median, veth?.gbps.median ?? Number.NaN)), rtt: round3(ratio(me.rtt.median, veth?.rtt.median ?? Number.NaN)) },
    };
  });
}

interface Report {
  env: Environment & ReturnType<typeof toolVersions>;
  options: Omit<Options, "parts" | "out" | "verbose"> & { parts: Part[] };
  convergence?: { samples: ConvSample[]; summary: ConvSummary[] };
  idle?: IdleResult[];
  dataplane?: { paths: DataPath[]; samples: DataSample[]; summary: PathSummary[] };
  cleanup: CleanupCheck;
}

function renderText(r: Report): string {
  const out: string[] = [];
  const e = r.env;
  out.push(`Multi-node benchmark, ${e.date}: ${e.cpus} x ${e.cpuModel}, Linux ${e.kernel}, ${e.iperf3}, ${e.etcd}`);
  out.push(`trellis ${e.git.commit.slice(0, 10)}${e.git.dirty ? " + uncommitted changes" : ""} (executable sha256 ${e.trellisBinary.sha256.slice(0, 12)}); load average (1 min) ${f2(e.loadAverage.start)} at start, ${f2(e.loadAverage.end)} at end`);
  if (r.convergence) {
    const n = r.options.nodes;
    out.push("", `Convergence, ${n} nodes (vxlan): node${n}'s agent spawned -> all ${n - 1} peers have its route (ms; ${r.options.iterations} iterations per datastore, interleaved; nearest-rank p99, i.e. the max below 100 samples)`);
    out.push(table(["datastore", "n", "p50", "p99", "max", "mean", "agent 'starting' p50/p99", "lease logged p50/p99", "first peer p50/p99", "last-first p50/p99"],
      r.convergence.summary.map((s) => [
        s.datastore, String(s.convergence.n), f1(s.convergence.p50), f1(s.convergence.p99), f1(s.convergence.max), f1(s.convergence.mean),
        `${f1(s.agentStarting.p50)} / ${f1(s.agentStarting.p99)}`, `${f1(s.agentLeased.p50)} / ${f1(s.agentLeased.p99)}`,
        `${f1(s.firstPeer.p50)} / ${f1(s.firstPeer.p99)}`, `${f1(s.spread.p50)} / ${f1(s.spread.p99)}`,
      ])));
    out.push("(all from t0; 'lease logged' is when the agent's lease call returned, which can be after peers already saw the lease)");
    out.push("", "Node removal: `trellis nodes remove` spawned -> every peer deleted the route (ms; includes the CLI's own start-up)");
    out.push(table(["datastore", "n", "p50", "p99", "max"],
      r.convergence.summary.map((s) => [s.datastore, String(s.removal.n), f1(s.removal.p50), f1(s.removal.p99), f1(s.removal.max)])));
  }
  if (r.idle) {
    out.push("", `Idle cost of the agents (${r.options.nodes} per datastore, ${f1(r.idle[0]?.windowSeconds ?? Number.NaN)} s window; CPU in % of one core)`);
    const rows: string[][] = [];
    for (const i of r.idle) {
      const rssAgent = i.agents.map((a) => mib(mean(a.rssKiB)));
      const cpu = i.agents.map((a) => a.cpuPct);
      const cpuKids = i.agents.map((a) => a.cpuWithChildrenPct);
      rows.push([`${i.datastore}: agent`, String(i.agents.length), f1(mean(rssAgent)), f1(Math.max(...rssAgent)), f2(mean(cpu)), f2(Math.max(...cpu)), f2(mean(cpuKids)), f2(Math.max(...cpuKids))]);
      if (i.etcd) rows.push(["etcd (for context)", "1", f1(mib(mean(i.etcd.rssKiB))), f1(mib(Math.max(...i.etcd.rssKiB))), f2(i.etcd.cpuPct), f2(i.etcd.cpuPct), f2(i.etcd.cpuWithChildrenPct), f2(i.etcd.cpuWithChildrenPct)]);
    }
    out.push(table(["process", "n", "RSS MiB mean", "max", "CPU % mean", "max", "CPU+children % mean", "max"], rows));
  }
  if (r.dataplane) {
    out.push("", `Data plane, pod -> pod across 2 nodes: 1 TCP stream (iperf3 -t ${r.options.seconds} -O 1) and ICMP RTT (p50 of ${r.options.pings} pings, 5 ms apart); median of ${r.options.rounds} interleaved rounds (min-max)`);
    out.push(table(["path", "pod MTU", "Gbit/s", "(min-max)", "vs hand", "vs veth", "RTT p50 µs", "(min-max)", "RTT vs hand", "RTT vs veth"],
      r.dataplane.summary.map((s) => [
        s.label, String(s.mtu), f2(s.gbps.median), `(${f2(s.gbps.min)}-${f2(s.gbps.max)})`, s.vsHand ? f2(s.vsHand.throughput) : "", f2(s.vsVeth.throughput),
        f1(s.rttP50Us.median), `(${f1(s.rttP50Us.min)}-${f1(s.rttP50Us.max)})`, s.vsHand ? f2(s.vsHand.rtt) : "", f2(s.vsVeth.rtt),
      ])));
    out.push(`nftables tables on the sending node: ${r.dataplane.paths.map((p) => `${p.label}: ${p.nftTables.length ? p.nftTables.join(", ") : "none"}`).join("; ")}`);
  }
  out.push("", cleanupLine(r.cleanup));
  return out.join("\n");
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const o = parseOptions(process.argv.slice(2));
  requireRootAnd(["iperf3", "ping", "ss", "nsenter", ...(o.parts.has("convergence") || o.parts.has("resources") ? ["etcd"] : [])]);
  const signal = interruptSignal();
  const say = progress(o.verbose);

  const env = environment(toolVersions());
  const tag = uniq().slice(0, 6);
  const report: Report = {
    env,
    options: { nodes: o.nodes, iterations: o.iterations, warmup: o.warmup, idleSeconds: o.idleSeconds, rounds: o.rounds, seconds: o.seconds, pings: o.pings, parts: [...o.parts] },
    cleanup: { clean: false, problems: [] },
  };
  report.cleanup = await labRun("multinode", env, tag, ["ce", "cx", "vx", "hg"].map((s) => `b${tag}${s}`), say, async (made, tools) => {
    if (o.parts.has("convergence") || o.parts.has("resources")) {
      console.error(`convergence labs (${o.nodes} nodes each, embedded and etcd)...`);
      const labs = await startConvergenceLabs(made, tools, tag, o, say, signal);
      if (o.parts.has("convergence")) {
        console.error(`convergence: ${o.warmup} + ${o.iterations} iterations per datastore, interleaved...`);
        const samples = await measureConvergence(labs, o, tools, signal);
        report.convergence = { samples, summary: summarizeConvergence(samples) };
      }
      if (o.parts.has("resources")) {
        console.error(`idle agents: ${o.idleSeconds} s window...`);
        report.idle = await measureIdle(labs, o.idleSeconds, signal);
      }
      const stopErrors = [...await made.stopChildren(labs.flatMap((c) => c.monitors.map((m) => m.child))), ...await made.removeLabs(tools, say)];
      if (stopErrors.length > 0) throw new Error(`cannot remove the convergence labs: ${stopErrors.join("; ")}`);
    }

    if (o.parts.has("dataplane")) {
      console.error("data plane: trellis labs (vxlan, host-gw), hand-built paths, veth pair...");
      const paths: DataPath[] = [];
      paths.push(await trellisPath(made, tools, `b${tag}vx`, "vxlan", say));
      paths.push(handPath(made, tag, "vxlan"));
      paths.push(await trellisPath(made, tools, `b${tag}hg`, "host-gw", say));
      paths.push(handPath(made, tag, "host-gw"));
      paths.push(vethPath(made, tag));
      const samples = await measureDataplane(paths, made, o, signal);
      report.dataplane = { paths, samples, summary: summarizeDataplane(paths, samples) };
    }
  });
  console.log(renderText(report));
  writeResults(o.out, report);
  return report.cleanup.clean ? 0 : 1;
}

main().then((code) => process.exit(code), (e: unknown) => {
  console.error(`multinode benchmark failed: ${(e as Error).message}`);
  process.exit(1);
});
