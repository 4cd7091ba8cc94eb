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
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as delay } from "node:timers/promises";
import { labUp, nodeDir, startAgent, stopAgent, subnetFileOf, type LabState, type LabTools } from "../src/lab/lab.js";
import type { LabBackend, LabDatastore, LabNode } from "../src/lab/plan.js";
import { netnsPath, processAlive, stopProcess } from "../src/kernel/netns.js";
import { ROOT, uniq } from "../test/helpers/netns.js";
import {
  cleanupLine, CLK_TCK, commandLine, commandOutput, environment, f1, f2, inNetns as nsenter, interruptSignal, labRun, partsOf, progress, ratio, readFrom,
  requireRootAnd, run, sizeOf, table, wholeNumber, writeResults, type CleanupCheck, type Environment, type Made,
} from "./common.js";
import {
  netlinkSubscribed, parseAgentStart, parseIperfJson, parseMonitorRouteLine, parsePingSummary, parsePingTimes, parseProcStat, parseVmRssKiB,
  type CpuTicks, type RouteEvent,
} from "./probes.js";
import { median, percentile, rotate, round3, summarize, type Summary } from "./stats.js";

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
// Processes, namespaces and clocks

/** The wall clock (CLOCK_REALTIME, ms): the clock of `ip -ts` and of the agent's log timestamps. */
const wallNow = (): number => Date.now();

interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion without blocking the event loop (monitors keep reading). */
function runAsync(cmd: string, args: readonly string[], signal: AbortSignal, timeoutMs = 60_000): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], signal, timeout: timeoutMs, killSignal: "SIGKILL" });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.on("error", (e) => {
      if (e.name !== "AbortError") reject(new Error(`${cmd} ${args.join(" ")}: ${e.message}`));
    });
    child.on("close", (code) => (signal.aborted ? reject(signal.reason) : resolve({ code, stdout, stderr })));
  });
}

/** `ip -batch` inside a namespace; every line must succeed. */
function ipBatch(netns: string, lines: readonly string[]): void {
  run("ip", ["-n", netns, "-batch", "-"], lines.join("\n") + "\n");
}

async function waitFor(what: string, timeoutMs: number, signal: AbortSignal, probe: () => boolean, everyMs = 10): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    signal.throwIfAborted();
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await delay(everyMs, undefined, { signal });
  }
}

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

/** `ip -ts monitor route` in one node namespace, kept running for the whole part. */
class RouteMonitor {
  readonly events: RouteEvent[] = [];
  readonly child: ChildProcess;

  constructor(made: Made, readonly node: string, readonly netns: string) {
    // -ts prints local time without a zone: UTC makes it comparable with Date.now().
    this.child = made.spawn("ip", ["-ts", "-n", netns, "monitor", "route"], { env: { ...process.env, TZ: "UTC" }, output: true });
    createInterface({ input: this.child.stdout! }).on("line", (line) => {
      const ev = parseMonitorRouteLine(line);
      if (ev && ev.proto === PEER_ROUTE_PROTO) this.events.push(ev);
    });
  }

  /** Resolves once the monitor's netlink socket has joined its multicast groups. */
  async ready(signal: AbortSignal): Promise<void> {
    const pid = this.child.pid;
    if (pid === undefined) throw new Error(`ip monitor in ${this.netns} did not start`);
    await waitFor(`ip monitor in ${this.netns} to listen`, 5000, signal, () => {
      try {
        const inodes = new Set<string>();
        for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
          const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
          if (m) inodes.add(m[1]!);
        }
        return netlinkSubscribed(fs.readFileSync(`/proc/${pid}/net/netlink`, "utf8"), inodes);
      } catch {
        return false;
      }
    });
  }

  /** The first event for `dst` at or after `fromMs` that adds (or, with `deleted`, removes) it. */
  first(dst: string, fromMs: number, deleted: boolean): RouteEvent | undefined {
    return this.events.find((e) => e.dst === dst && e.deleted === deleted && e.atMs >= fromMs);
  }
}

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
    const monitors = state.plan.nodes.filter((n) => n !== newcomer).map((n) => new RouteMonitor(made, n.name, n.netns));
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

type PathId = "trellis-vxlan" | "hand-vxlan" | "trellis-host-gw" | "hand-host-gw" | "veth";

interface DataPath {
  id: PathId;
  label: string;
  src: string;
  dst: string;
  dstIp: string;
  /** MTU of the sending pod's eth0. */
  mtu: number;
  /** nftables tables in the source node's namespace while measured (Trellis: NAT, policy). */
  nftTables: string[];
}

interface DataSample {
  round: number;
  path: PathId;
  gbps: number;
  retransmits: number;
  /** ICMP RTT per echo, µs. */
  rttP50Us: number;
  rttP99Us: number;
  rttAvgUs: number;
  pingLoss: number;
}

const nftTables = (netns: string): string[] =>
  run(...nsenter(netns, "nft", "list", "tables")).split("\n").map((l) => l.replace(/^table\s+/, "").trim()).filter(Boolean);

const eth0Mtu = (netns: string): number => (JSON.parse(run("ip", ["-n", netns, "-j", "link", "show", "dev", "eth0"])) as Array<{ mtu: number }>)[0]!.mtu;

async function trellisPath(made: Made, tools: LabTools, name: string, backend: "vxlan" | "host-gw", say: (l: string) => void): Promise<DataPath> {
  const s = await lab(made, tools, name, 2, 1, backend, "embedded", say);
  const [src, dst] = [s.plan.pods.find((p) => p.node === "node1")!, s.plan.pods.find((p) => p.node === "node2")!];
  // Pods are keyed "namespace/name" (older labs: by name).
  const dstIp = (s.podIps[`${dst.namespace}/${dst.name}`] ?? s.podIps[dst.name])?.[0];
  if (!dstIp) throw new Error(`lab ${name}: pod ${dst.name} has no address`);
  const node1 = s.plan.nodes.find((n) => n.name === "node1")!.netns;
  return { id: `trellis-${backend}`, label: `trellis ${backend}`, src: src.netns, dst: dst.netns, dstIp, mtu: eth0Mtu(src.netns), nftTables: nftTables(node1) };
}

/**
 * The path a Trellis lab builds, made by hand with `ip`: pod —veth (routed: /32, 169.254.1.1
 * pinned to ee:ee:ee:ee:ee:ee)— node —underlay bridge in a switch namespace— node —veth— pod;
 * between the nodes a VTEP with static FDB/neighbour entries and an onlink route (vxlan), or a
 * plain route via the peer node (host-gw). No agent, no nftables.
 */
function handPath(made: Made, tag: string, kind: "vxlan" | "host-gw"): DataPath {
  const k = kind === "vxlan" ? "vx" : "hg";
  const ns = (s: string): string => made.createNetns(`trellis-bench-${tag}-${k}-${s}`);
  const sw = ns("sw");
  const nodes = [1, 2].map((i) => ({ i, netns: ns(`n${i}`), pod: ns(`p${i}`), ip: `10.99.1.${10 + i}`, vtepMac: `02:b5:00:00:00:0${i}` }));
  const mtu = kind === "vxlan" ? 1450 : 1500;
  ipBatch(sw, ["link add br0 type bridge", "link set br0 up"]);
  for (const n of nodes) {
    ipBatch(sw, [`link add port${n.i} type veth peer name eth0 netns ${netnsPath(n.netns)}`, `link set port${n.i} master br0`, `link set port${n.i} up`]);
    ipBatch(n.netns, [`addr add ${n.ip}/24 dev eth0`, "link set eth0 up"]);
    run(...nsenter(n.netns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"));
    const podIp = `10.244.${n.i}.2`;
    ipBatch(n.netns, [
      `link add trlbench mtu ${mtu} address ee:ee:ee:ee:ee:ee type veth peer name eth0 mtu ${mtu} netns ${netnsPath(n.pod)}`,
      "link set trlbench up",
      `route add ${podIp}/32 dev trlbench scope link`,
    ]);
    ipBatch(n.pod, [
      `addr add ${podIp}/32 dev eth0`, "link set eth0 up",
      "neigh add 169.254.1.1 lladdr ee:ee:ee:ee:ee:ee dev eth0 nud permanent", "route add default via 169.254.1.1 dev eth0 onlink",
    ]);
    if (kind === "vxlan") {
      ipBatch(n.netns, [
        `link add bench.vxlan mtu 1450 address ${n.vtepMac} type vxlan id 1 local ${n.ip} dev eth0 dstport 8472 nolearning`,
        `addr add 10.244.${n.i}.0/32 dev bench.vxlan`, "link set bench.vxlan up",
      ]);
    }
  }
  for (const [a, b] of [[nodes[0]!, nodes[1]!], [nodes[1]!, nodes[0]!]] as const) {
    if (kind === "vxlan") {
      run("bridge", ["-n", a.netns, "fdb", "append", b.vtepMac, "dev", "bench.vxlan", "dst", b.ip, "self", "permanent"]);
      ipBatch(a.netns, [
        `neigh add 10.244.${b.i}.0 lladdr ${b.vtepMac} dev bench.vxlan nud permanent`,
        `route add 10.244.${b.i}.0/24 via 10.244.${b.i}.0 dev bench.vxlan onlink`,
      ]);
    } else {
      ipBatch(a.netns, [`route add 10.244.${b.i}.0/24 via ${b.ip} dev eth0`]);
    }
  }
  return { id: `hand-${kind}`, label: `by hand, ${kind}`, src: nodes[0]!.pod, dst: nodes[1]!.pod, dstIp: "10.244.2.2", mtu: eth0Mtu(nodes[0]!.pod), nftTables: nftTables(nodes[0]!.netns) };
}

/** Two namespaces joined by one veth pair: the ceiling of every path above. */
function vethPath(made: Made, tag: string): DataPath {
  const a = made.createNetns(`trellis-bench-${tag}-veth-a`);
  const b = made.createNetns(`trellis-bench-${tag}-veth-b`);
  ipBatch(a, [`link add eth0 type veth peer name eth0 netns ${netnsPath(b)}`, "addr add 10.250.0.1/24 dev eth0", "link set eth0 up"]);
  ipBatch(b, ["addr add 10.250.0.2/24 dev eth0", "link set eth0 up"]);
  return { id: "veth", label: "veth pair", src: a, dst: b, dstIp: "10.250.0.2", mtu: eth0Mtu(a), nftTables: nftTables(a) };
}

/** ICMP RTT from the source pod, per echo: median and 99th percentile (µs), and lost echoes. */
async function pingRtt(p: DataPath, count: number, signal: AbortSignal): Promise<{ p50Us: number; p99Us: number; avgUs: number; loss: number }> {
  const r = await runAsync(...nsenter(p.src, "ping", "-n", "-c", String(count), "-i", "0.005", "-W", "1", p.dstIp), signal);
  const s = parsePingSummary(r.stdout);
  const times = parsePingTimes(r.stdout).sort((a, b) => a - b);
  if (!s || times.length === 0) throw new Error(`${p.label}: ping ${p.dstIp} from ${p.src} got no answer: ${(r.stderr || r.stdout).trim().slice(-300)}`);
  const us = (ms: number): number => round3(ms * 1000);
  return { p50Us: us(percentile(times, 50)), p99Us: us(percentile(times, 99)), avgUs: us(s.avgMs), loss: s.sent - s.received };
}

async function iperf(made: Made, p: DataPath, seconds: number, signal: AbortSignal): Promise<{ gbps: number; retransmits: number }> {
  const port = "5201";
  const [cmd, args] = nsenter(p.dst, "iperf3", "-s", "-1", "-B", p.dstIp, "-p", port);
  const server = made.spawn(cmd, args);
  try {
    await waitFor(`iperf3 server in ${p.dst}`, 5000, signal, () => {
      const out = spawnSync(...nsenter(p.dst, "ss", "-Hltn", `sport = :${port}`), { encoding: "utf8" }).stdout ?? "";
      if (server.exitCode !== null) throw new Error(`iperf3 server in ${p.dst} exited ${server.exitCode}`);
      return out.trim() !== "";
    }, 20);
    const r = await runAsync(...nsenter(p.src, "iperf3", "-c", p.dstIp, "-p", port, "-t", String(seconds), "-O", "1", "-J"), signal, (seconds + 30) * 1000);
    const res = parseIperfJson(r.stdout);
    return { gbps: res.receivedBps / 1e9, retransmits: res.retransmits };
  } finally {
    if (server.pid !== undefined && server.exitCode === null) await stopProcess(server.pid, 1000);
  }
}

async function measureDataplane(paths: DataPath[], made: Made, o: Options, signal: AbortSignal): Promise<DataSample[]> {
  for (const p of paths) {
    const r = await pingRtt(p, 3, signal);
    if (r.loss === 3) throw new Error(`${p.label}: ${p.dstIp} unreachable from ${p.src}`);
  }
  const samples: DataSample[] = [];
  for (let round = 0; round < o.rounds; round++) {
    for (const p of rotate(paths, round)) {
      const ping = await pingRtt(p, o.pings, signal);
      const tp = await iperf(made, p, o.seconds, signal);
      samples.push({
        round: round + 1, path: p.id, gbps: round3(tp.gbps), retransmits: tp.retransmits,
        rttP50Us: ping.p50Us, rttP99Us: ping.p99Us, rttAvgUs: ping.avgUs, pingLoss: ping.loss,
      });
      console.error(`  round ${round + 1}/${o.rounds} ${p.label.padEnd(16)} ${tp.gbps.toFixed(2)} Gbit/s, RTT p50 ${ping.p50Us.toFixed(0)} µs`);
    }
  }
  return samples;
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
  path: PathId;
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
    const hand = p.id.startsWith("trellis-") ? per.get(p.id.replace("trellis-", "hand-") as PathId) : undefined;
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
