// Services benchmark (issue 12, item 7): what an EndpointSlice change costs until the kernel has
// it, and what a Service costs a connection, with 1k and 10k Services — side by side with what
// kube-proxy's iptables mode (on iptables-nft) does with the same Services, in one run:
//
//   1. change: in private namespaces, the full ruleset of N Services (2 endpoints each) is loaded
//      (Trellis: compileServices + renderFull + `nft -f`; kube-proxy: its nat table by
//      `iptables-restore --noflush`), then one Service at a time gains or loses an endpoint, and
//      each change is timed from the new slices to `nft -f` / `iptables-restore` having returned:
//        trellis delta      compileServices + renderDelta + nft -f (the path being measured)
//        trellis full       compileServices + renderFull + nft -f (our own full re-render)
//        kube-proxy full    render + iptables-restore of the whole nat table (a full sync)
//        kube-proxy partial render + iptables-restore of KUBE-SERVICES and the changed chains
//                           (what kube-proxy >= 1.28 does on an endpoint change)
//      After each change (not timed) the changed Service's chain is read back from the kernel.
//   2. conn: TCP connections per second from client namespaces to a server namespace (veth pairs),
//      every connection new (connect, "GET\n", answer, RST), through the Service's DNAT: direct to
//      the endpoint, Trellis with 1 and with N Services, kube-proxy with 1 and with N Services (its
//      target Service half-way down KUBE-SERVICES and last), variants interleaved round by round.
//
// Everything runs in namespaces this script creates (named trlsvc-<tag>-*); nothing is done in the
// root namespace. Namespaces and processes (ended by pid) are removed in `finally`, also on error
// or Ctrl-C. No timing thresholds: it measures, people judge. Method and caveats: bench/README.md.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { listNetns, netnsPath, processAlive } from "../src/kernel/netns.js";
import { compileServices, servicePortId, type Ruleset } from "../src/services/compile.js";
import type { EndpointSlice } from "../src/services/model.js";
import { renderDelta, renderFull } from "../src/services/render.js";
import { ROOT, uniq } from "../test/helpers/netns.js";
import {
  commandLine, commandOutput, environment, f0, f1, f2, interruptSignal, JsonLinesProcess, Made, partsOf, ratio, requireRootAnd, table, wholeNumber, writeResults,
} from "./common.js";
import { parseProcStat } from "./probes.js";
import {
  applyChange, benchServices, clusterIpOf, endpointChanges, KUBE_PROXY_JUMPS, kubeProxyFullRestore, kubeProxyPartialRestore, restoreCounts,
  SERVER_IPS, SERVER_PORT, SERVICE_PORT, servicePortName, svcChain, type BenchServices,
} from "./services-gen.js";
import { median, rotate, round3, summarize, type Summary } from "./stats.js";

const PARTS = ["change", "conn"] as const;
type Part = (typeof PARTS)[number];

interface Options {
  sizes: number[];
  changes: number;
  full: number[];
  rounds: number;
  warmup: number;
  conns: number;
  parts: Set<Part>;
  out: string;
  verbose: boolean;
}

const USAGE = `usage: node dist/bench/services.js [options]   (as root, after npm run build)
  --sizes LIST     numbers of Services, comma-separated (default 1000,10000); part 2 uses the largest
  --changes N      part 1: endpoint changes timed per size, add/remove alternating (default 10)
  --full LIST      part 1: how many of those changes also time the two full re-syncs, per size
                   (default 5,0: at 10k one full re-sync takes minutes; the initial loads are always timed)
  --rounds N       part 2: measured rounds, every variant once per round, order rotating (default 12)
  --warmup N       part 2: rounds run first and dropped (default 1)
  --conns N        part 2: connections per variant per round (default 1000)
  --parts LIST     comma-separated: ${PARTS.join(",")} (default all)
  --quick          a smoke run: --sizes 200,2000 --changes 4 --full 2,1 --rounds 3 --conns 200
  --out FILE       results JSON (default bench/results/services.json)
  --verbose        every sample on stderr`;

function parseOptions(argv: string[]): Options {
  const v = commandLine(argv, USAGE, {
    sizes: { type: "string", default: "1000,10000" },
    changes: { type: "string", default: "10" },
    full: { type: "string", default: "5,0" },
    rounds: { type: "string", default: "12" },
    warmup: { type: "string", default: "1" },
    conns: { type: "string", default: "1000" },
    parts: { type: "string", default: PARTS.join(",") },
    quick: { type: "boolean", default: false },
    out: { type: "string", default: path.join(ROOT, "bench", "results", "services.json") },
    verbose: { type: "boolean", default: false },
  });
  const q = v.quick;
  const list = (name: string, text: string, min: number): number[] => text.split(",").map((x) => wholeNumber(name, x.trim(), min));
  const o: Options = {
    sizes: list("sizes", q ? "200,2000" : v.sizes, 2),
    changes: wholeNumber("changes", q ? "4" : v.changes, 1),
    full: list("full", q ? "2,1" : v.full, 0),
    rounds: wholeNumber("rounds", q ? "3" : v.rounds, 1),
    warmup: wholeNumber("warmup", v.warmup, 0),
    conns: wholeNumber("conns", q ? "200" : v.conns, 1),
    parts: partsOf(v.parts, PARTS),
    out: path.resolve(v.out),
    verbose: v.verbose,
  };
  if (o.full.length !== o.sizes.length) throw new Error(`--full has ${o.full.length} values for ${o.sizes.length} sizes`);
  return o;
}

// ---------------------------------------------------------------------------------------------
// Running things inside a namespace, with wall and CPU time

/** Wall time (ms) of one child process, and its user and system CPU (ms, to a clock tick). */
interface Applied {
  ms: number;
  userMs: number;
  sysMs: number;
}

const TICK_MS = 1000 / (Number(commandOutput("getconf", ["CLK_TCK"])) || 100);
const childTicks = (): { u: number; s: number } => {
  const t = parseProcStat(fs.readFileSync("/proc/self/stat", "utf8"));
  return { u: t.cutime, s: t.cstime };
};

/** `cmd args` in namespace `ns`, stdin `input`, run to completion; throws unless it exits 0. */
function inNs(ns: string, cmd: string, args: readonly string[], input?: string): Applied & { stdout: string } {
  const before = childTicks();
  const t0 = performance.now();
  const r = spawnSync("nsenter", [`--net=${netnsPath(ns)}`, "--", cmd, ...args], { input, encoding: "utf8", maxBuffer: 1 << 28 });
  const ms = performance.now() - t0;
  const after = childTicks();
  if (r.error) throw new Error(`${cmd} in ${ns}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ").slice(0, 120)} in ${ns} exited ${r.status ?? r.signal}: ${(r.stderr || r.stdout).trim().slice(0, 600)}`);
  return { ms, userMs: (after.u - before.u) * TICK_MS, sysMs: (after.s - before.s) * TICK_MS, stdout: r.stdout };
}

const applied = (a: Applied): Applied => ({ ms: round3(a.ms), userMs: round3(a.userMs), sysMs: round3(a.sysMs) });
const timed = <T>(f: () => T): [T, number] => {
  const t0 = performance.now();
  const v = f();
  return [v, round3(performance.now() - t0)];
};

const NODE = { name: "node1", addresses: ["10.244.0.1"] };
const compile = (b: BenchServices, slices: readonly EndpointSlice[] = b.slices): Ruleset => compileServices({ node: NODE, services: b.services, slices });

// ---------------------------------------------------------------------------------------------
// Part 1: an EndpointSlice change until the kernel has it

/** Loading the full ruleset into an empty namespace (once per size and system). */
interface Load {
  trellis: { compileMs: number; renderMs: number; nft: Applied; scriptBytes: number; chains: number; rules: number };
  kubeProxy: { renderMs: number; restore: Applied; bytes: number; chains: number; rules: number };
}

interface ChangeSample {
  change: number;
  op: "add" | "remove";
  service: string;
  endpoints: number;
  /** compileServices of every Service with the new slices (shared by both Trellis variants). */
  compileMs: number;
  delta: { renderMs: number; nft: Applied; lines: number };
  partial: { renderMs: number; restore: Applied; rules: number };
  full?: { renderMs: number; nft: Applied };
  kubeFull?: { renderMs: number; restore: Applied };
  /** Order the two systems ran in (they alternate). */
  order: string;
}

interface SizeResult {
  services: number;
  targets: number[];
  load: Load;
  samples: ChangeSample[];
}

/** Reads the changed Service back: the TCP endpoint map must hold `endpoints` ranges for its ClusterIP, naming the changed address when it was added. */
function verifyTrellis(ns: string, b: BenchServices, index: number, endpoints: number, ip: string, op: "add" | "remove"): void {
  const s = b.services[index]!;
  const map = "svc_endpoints_tcp";
  const out = inNs(ns, "nft", ["list", "map", "inet", "trellis-svc", map]).stdout;
  const mine = (/elements = \{([^}]*)\}/.exec(out)?.[1] ?? "").split(",").map((x) => x.trim()).filter((x) => x.startsWith(`${s.clusterIP} . ${s.ports[0]!.port} . `));
  if (mine.length !== endpoints || mine.some((x) => x.includes(`: ${ip} `)) !== (op === "add")) throw new Error(`${ns}: ${map} does not show the change (${op} ${ip}):\n${mine.join("\n")}`);
}

function verifyKubeProxy(ns: string, b: BenchServices, index: number, endpoints: number, ip: string, op: "add" | "remove"): void {
  const s = b.services[index]!;
  const chain = svcChain(servicePortName(s, s.ports[0]!.name), "tcp");
  const out = inNs(ns, "iptables", ["-t", "nat", "-S", chain]).stdout;
  const seps = out.split("\n").filter((l) => / -j KUBE-SEP-/.test(l)).length;
  if (seps !== endpoints || out.includes(`${ip}:`) !== (op === "add")) throw new Error(`${ns}: ${chain} does not show the change (${op} ${ip}):\n${out}`);
}

/** Loads both rulesets of `b` (timed) into two empty namespaces; the kube-proxy base jumps are not timed. */
function loadBoth(trellisNs: string, kubeNs: string, b: BenchServices): { load: Load; ruleset: Ruleset } {
  const [ruleset, compileMs] = timed(() => compile(b));
  const [script, renderMs] = timed(() => renderFull(ruleset));
  const nft = inNs(trellisNs, "nft", ["-f", "-"], script);
  for (const j of KUBE_PROXY_JUMPS) inNs(kubeNs, "iptables", ["-t", "nat", ...j]);
  const [text, kRenderMs] = timed(() => kubeProxyFullRestore(b.services, b.slices));
  const restore = inNs(kubeNs, "iptables-restore", ["--noflush"], text);
  const rules = ruleset.chains.reduce((n, c) => n + c.rules.length, 0);
  return {
    ruleset,
    load: {
      trellis: { compileMs, renderMs, nft: applied(nft), scriptBytes: script.length, chains: ruleset.chains.length, rules },
      kubeProxy: { renderMs: kRenderMs, restore: applied(restore), bytes: text.length, ...restoreCounts(text) },
    },
  };
}

function targetsFor(n: number): number[] {
  return n === 1 ? [0] : [Math.floor(n / 2), n - 1];
}

async function measureChanges(n: number, fullSamples: number, o: Options, trellisNs: string, kubeNs: string, signal: AbortSignal): Promise<SizeResult> {
  const targets = targetsFor(n);
  const b = benchServices(n, 2, targets);
  console.error(`1. ${n} Services: loading both rulesets...`);
  const { load, ruleset } = loadBoth(trellisNs, kubeNs, b);
  console.error(`   loaded: nft -f ${f0(load.trellis.nft.ms)} ms (${load.trellis.chains} chains, ${load.trellis.rules} rules), ` +
    `iptables-restore ${f0(load.kubeProxy.restore.ms)} ms (${load.kubeProxy.chains} chains, ${load.kubeProxy.rules} rules)`);
  let before = ruleset;
  let slices = b.slices;
  const samples: ChangeSample[] = [];
  for (const [i, change] of endpointChanges(n, o.changes, targets).entries()) {
    signal.throwIfAborted();
    const after = applyChange(slices, change);
    const endpoints = after[change.index]!.endpoints.length;
    const svcName = b.services[change.index]!.name;
    const sample: Partial<ChangeSample> = { change: i + 1, op: change.op, service: svcName, endpoints };
    let afterRs: Ruleset | undefined;
    const trellis = (): void => {
      const [rs, compileMs] = timed(() => compile(b, after));
      const [script, renderMs] = timed(() => renderDelta(before, rs));
      if (script === undefined) throw new Error("renderDelta: base chains differ (a full sync would be needed)");
      sample.compileMs = compileMs;
      sample.delta = { renderMs, nft: applied(inNs(trellisNs, "nft", ["-f", "-"], script)), lines: script.split("\n").length - 1 };
      afterRs = rs;
      if (i < fullSamples) {
        // The table already holds `after`; a full re-render flushes and refills every chain and map all the same.
        const [full, fullRenderMs] = timed(() => renderFull(rs));
        sample.full = { renderMs: fullRenderMs, nft: applied(inNs(trellisNs, "nft", ["-f", "-"], full)) };
      }
    };
    const kube = (): void => {
      const [text, renderMs] = timed(() => kubeProxyPartialRestore(b.services, slices, after, new Set([svcName])));
      sample.partial = { renderMs, restore: applied(inNs(kubeNs, "iptables-restore", ["--noflush"], text)), rules: restoreCounts(text).rules };
      if (i < fullSamples) {
        const [full, fullRenderMs] = timed(() => kubeProxyFullRestore(b.services, after));
        sample.kubeFull = { renderMs: fullRenderMs, restore: applied(inNs(kubeNs, "iptables-restore", ["--noflush"], full)) };
      }
    };
    if (i % 2 === 0) {
      trellis();
      kube();
      sample.order = "trellis, kube-proxy";
    } else {
      kube();
      trellis();
      sample.order = "kube-proxy, trellis";
    }
    verifyTrellis(trellisNs, b, change.index, endpoints, change.ip, change.op);
    verifyKubeProxy(kubeNs, b, change.index, endpoints, change.ip, change.op);
    before = afterRs!;
    slices = after;
    const s = sample as ChangeSample;
    samples.push(s);
    if (o.verbose) {
      console.error(`   ${s.change} ${s.op} ${s.service}: compile ${f1(s.compileMs)} + delta ${f1(s.delta.renderMs)} + nft ${f1(s.delta.nft.ms)} ms; ` +
        `kube-proxy partial ${f1(s.partial.renderMs)} + ${f1(s.partial.restore.ms)} ms` +
        (s.full ? `; full nft ${f0(s.full.nft.ms)}, iptables-restore ${f0(s.kubeFull!.restore.ms)} ms` : ""));
    }
  }
  return { services: n, targets, load, samples };
}

// ---------------------------------------------------------------------------------------------
// Part 2: connections through a Service

/** A client or server process (services-conn.ts) in a namespace, speaking JSON lines. */
class Peer extends JsonLinesProcess {
  constructor(made: Made, ns: string, args: string[]) {
    super(made, "nsenter", [`--net=${netnsPath(ns)}`, "--", process.execPath, path.join(ROOT, "dist", "bench", "services-conn.js"), ...args], `services-conn ${args[0]}`);
  }
}

interface ConnVariant {
  id: string;
  label: string;
  /** Which client namespace (and so which ruleset) the connections leave from. */
  client: string;
  ip: string;
  port: number;
  /** Addresses that may answer. */
  expect: readonly string[];
}

interface ConnRound {
  round: number;
  variant: string;
  connsPerSec: number;
  us: number[];
  failed: number;
  servers: Record<string, number>;
}

/** The namespaces of part 2: a server, and client namespaces each joined to it by its own veth pair. */
interface Topology {
  server: string;
  clients: Record<"direct" | "trellis1" | "trellisN" | "kube1" | "kubeN", string>;
}

function buildTopology(made: Made, tag: string): Topology {
  const server = made.createNetns(`trlsvc-${tag}-srv`);
  // The endpoint addresses on the server's loopback (this kernel has no dummy driver).
  for (const ip of SERVER_IPS) inNs(server, "ip", ["addr", "add", `${ip}/32`, "dev", "lo"]);
  const names = ["direct", "trellis1", "trellisN", "kube1", "kubeN"] as const;
  const clients = {} as Topology["clients"];
  names.forEach((name, i) => {
    const ns = made.createNetns(`trlsvc-${tag}-${name}`);
    const net = `10.244.${100 + i}`;
    // Made inside the client namespace with its peer straight in the server's: nothing in the root namespace.
    inNs(ns, "ip", ["link", "add", "eth0", "type", "veth", "peer", "name", `c${i}`, "netns", server]);
    inNs(ns, "ip", ["addr", "add", `${net}.1/24`, "dev", "eth0"]);
    inNs(ns, "ip", ["link", "set", "eth0", "up"]);
    inNs(ns, "ip", ["route", "add", "default", "via", `${net}.2`]);
    inNs(server, "ip", ["addr", "add", `${net}.2/24`, "dev", `c${i}`]);
    inNs(server, "ip", ["link", "set", `c${i}`, "up"]);
    clients[name] = ns;
  });
  return { server, clients };
}

async function measureConns(o: Options, topo: Topology, n: number, made: Made, signal: AbortSignal): Promise<{ variants: ConnVariant[]; rounds: ConnRound[] }> {
  const [mid, last] = targetsFor(n) as [number, number];
  const c = topo.clients;
  const ep = (ns: string): Omit<ConnVariant, "id" | "label"> => ({ client: ns, ip: SERVER_IPS[0], port: SERVER_PORT, expect: [SERVER_IPS[0]] });
  const svc = (ns: string, index: number): Omit<ConnVariant, "id" | "label"> => ({ client: ns, ip: clusterIpOf(index), port: SERVICE_PORT, expect: SERVER_IPS });
  const k = n >= 1000 ? `${n / 1000}k` : String(n);
  const variants: ConnVariant[] = [
    { id: "direct", label: "direct to the endpoint, no rules", ...ep(c.direct) },
    { id: "trellis-1", label: "trellis, 1 Service", ...svc(c.trellis1, 0) },
    { id: "trellis-n-mid", label: `trellis, ${k} Services (target half-way)`, ...svc(c.trellisN, mid) },
    { id: "trellis-n-last", label: `trellis, ${k} Services (target last)`, ...svc(c.trellisN, last) },
    { id: "trellis-n-direct", label: `direct, trellis ${k} table loaded`, ...ep(c.trellisN) },
    { id: "kube-1", label: "kube-proxy iptables, 1 Service", ...svc(c.kube1, 0) },
    { id: "kube-n-mid", label: `kube-proxy iptables, ${k} (target half-way)`, ...svc(c.kubeN, mid) },
    { id: "kube-n-last", label: `kube-proxy iptables, ${k} (target last)`, ...svc(c.kubeN, last) },
    { id: "kube-n-direct", label: `direct, kube-proxy ${k} chain loaded`, ...ep(c.kubeN) },
  ];
  const server = new Peer(made, topo.server, ["server", String(SERVER_PORT)]);
  await server.expect("listening", 10_000, signal);
  const clients = new Map<string, Peer>();
  for (const ns of new Set(variants.map((v) => v.client))) {
    const p = new Peer(made, ns, ["client"]);
    await p.expect("ready", 10_000, signal);
    clients.set(ns, p);
  }
  const rounds: ConnRound[] = [];
  const total = o.warmup + o.rounds;
  console.error(`2. connections: ${variants.length} variants x ${o.conns} connections, ${o.warmup} warm-up + ${o.rounds} rounds...`);
  for (let r = 0; r < total; r++) {
    for (const v of rotate(variants, r)) {
      signal.throwIfAborted();
      const p = clients.get(v.client)!;
      p.send({ op: "rr", ip: v.ip, port: v.port, count: o.conns });
      const e = await p.expect("rr", 120_000, signal);
      const us = e.us as number[];
      const servers = e.servers as Record<string, number>;
      const failed = e.failed as number;
      const wrong = Object.keys(servers).filter((s) => !v.expect.includes(s));
      if (wrong.length > 0) throw new Error(`${v.label}: answered by ${wrong.join(", ")}, expected ${v.expect.join(" or ")}`);
      if (failed > 0) console.error(`   ${v.label}: ${failed} of ${o.conns} connections failed in round ${r + 1}`);
      const sample: ConnRound = { round: r - o.warmup + 1, variant: v.id, connsPerSec: round3(us.length / ((e.elapsedUs as number) / 1e6)), us, failed, servers };
      if (r >= o.warmup) rounds.push(sample);
      if (o.verbose) console.error(`   round ${r + 1} ${v.id}: ${f0(sample.connsPerSec)} conn/s, p50 ${f0(summarize(us).p50)} µs`);
    }
  }
  for (const p of clients.values()) p.send({ op: "exit" });
  return { variants, rounds };
}

// ---------------------------------------------------------------------------------------------
// Report

interface Report {
  benchmark: "services";
  env: Record<string, unknown>;
  options: Omit<Options, "parts" | "out"> & { parts: Part[] };
  change?: SizeResult[];
  conn?: { services: number; variants: ConnVariant[]; rounds: ConnRound[] };
  cleanup: { clean: boolean; problems: string[] };
}

const sum = (xs: Array<number | undefined>): number => xs.reduce<number>((a, x) => a + (x ?? 0), 0);
const totalOf = {
  delta: (s: ChangeSample): number => s.compileMs + s.delta.renderMs + s.delta.nft.ms,
  full: (s: ChangeSample): number | undefined => (s.full ? s.compileMs + s.full.renderMs + s.full.nft.ms : undefined),
  partial: (s: ChangeSample): number => s.partial.renderMs + s.partial.restore.ms,
  kubeFull: (s: ChangeSample): number | undefined => (s.kubeFull ? s.kubeFull.renderMs + s.kubeFull.restore.ms : undefined),
};
const defined = (xs: Array<number | undefined>): number[] => xs.filter((x): x is number => x !== undefined);
const rnd = (s: Summary): Summary => ({ n: s.n, p50: round3(s.p50), p99: round3(s.p99), mean: round3(s.mean), min: round3(s.min), max: round3(s.max) });

/** Per size: summaries of every path, in ms, and the ratios of the p50s. */
export function changeSummary(r: SizeResult): Record<string, unknown> {
  const S = (xs: number[]): Summary => rnd(summarize(xs));
  const ss = r.samples;
  const delta = S(ss.map(totalOf.delta));
  const full = S(defined(ss.map(totalOf.full)));
  const partial = S(ss.map(totalOf.partial));
  const kubeFull = S(defined(ss.map(totalOf.kubeFull)));
  const deltaNft = S(ss.map((s) => s.delta.nft.ms));
  const partialRestore = S(ss.map((s) => s.partial.restore.ms));
  const fullNft = S(defined(ss.map((s) => s.full?.nft.ms)));
  const kubeFullRestore = S(defined(ss.map((s) => s.kubeFull?.restore.ms)));
  return {
    services: r.services,
    trellisDelta: { total: delta, compile: S(ss.map((s) => s.compileMs)), render: S(ss.map((s) => s.delta.renderMs)), nft: deltaNft, nftCpuMeanMs: round3(sum(ss.map((s) => s.delta.nft.userMs + s.delta.nft.sysMs)) / ss.length) },
    trellisFull: { total: full, nft: fullNft },
    kubeProxyPartial: { total: partial, restore: partialRestore },
    kubeProxyFull: { total: kubeFull, restore: kubeFullRestore },
    ratiosP50: {
      deltaToKubeProxyPartial: round3(ratio(delta.p50, partial.p50)),
      deltaToKubeProxyFull: round3(ratio(delta.p50, kubeFull.p50)),
      deltaToTrellisFull: round3(ratio(delta.p50, full.p50)),
      deltaNftToPartialRestore: round3(ratio(deltaNft.p50, partialRestore.p50)),
    },
  };
}

export function connSummary(c: NonNullable<Report["conn"]>): Array<Record<string, unknown>> {
  const per = (id: string): { cps: number; us: Summary } => {
    const rs = c.rounds.filter((r) => r.variant === id);
    return { cps: median(rs.map((r) => r.connsPerSec)), us: summarize(rs.flatMap((r) => r.us)) };
  };
  const direct = per("direct");
  return c.variants.map((v) => {
    const x = per(v.id);
    const one = v.id.startsWith("trellis-n") ? per("trellis-1") : v.id.startsWith("kube-n") ? per("kube-1") : undefined;
    return {
      id: v.id, label: v.label, connsPerSecMedian: round3(x.cps), perConnUs: rnd(x.us),
      connsPerSecToDirect: round3(ratio(x.cps, direct.cps)), p50UsMinusDirect: round3(x.us.p50 - direct.us.p50),
      ...(one ? { connsPerSecToOneService: round3(ratio(x.cps, one.cps)), p50UsMinusOneService: round3(x.us.p50 - one.us.p50) } : {}),
    };
  });
}

function renderText(r: Report): string {
  const out: string[] = [];
  const e = r.env as { date: string; kernel: string; cpus: number; nft: string; iptables: string; git: { commit: string; dirty: boolean }; loadAverage: { start: number; end: number } };
  out.push(`Services benchmark, ${e.date}: kernel ${e.kernel}, ${e.cpus} CPU, ${e.nft}, ${e.iptables}`);
  out.push(`trellis ${e.git.commit.slice(0, 10)}${e.git.dirty ? " + uncommitted changes" : ""}; load average ${e.loadAverage.start} at start, ${e.loadAverage.end} at end`);
  for (const s of r.change ?? []) {
    const x = changeSummary(s) as Record<string, Record<string, Summary> & { ratiosP50?: never }>;
    const l = s.load;
    out.push("");
    out.push(`1. EndpointSlice change -> in the kernel, ${s.services} Services (2 endpoints each), ${s.samples.length} changes (ms)`);
    out.push(`   initial load into an empty namespace: trellis compile ${f0(l.trellis.compileMs)} + render ${f0(l.trellis.renderMs)} + nft -f ${f0(l.trellis.nft.ms)} ` +
      `(${l.trellis.chains} chains, ${l.trellis.rules} rules); kube-proxy render ${f0(l.kubeProxy.renderMs)} + iptables-restore ${f0(l.kubeProxy.restore.ms)} (${l.kubeProxy.chains} chains, ${l.kubeProxy.rules} rules)`);
    const row = (label: string, s2: Summary | undefined): string[] => [label, String(s2?.n ?? 0), f1(s2?.p50 ?? NaN), f1(s2?.p99 ?? NaN), f1(s2?.mean ?? NaN)];
    out.push(table(["path", "n", "p50", "p99", "mean"], [
      row("trellis delta: compile+render+nft", x.trellisDelta!.total),
      row("  of which compileServices", x.trellisDelta!.compile),
      row("  of which renderDelta", x.trellisDelta!.render),
      row("  of which nft -f", x.trellisDelta!.nft),
      row("trellis full re-render: total", x.trellisFull!.total),
      row("  of which nft -f", x.trellisFull!.nft),
      row("kube-proxy partial: total", x.kubeProxyPartial!.total),
      row("  of which iptables-restore", x.kubeProxyPartial!.restore),
      row("kube-proxy full: total", x.kubeProxyFull!.total),
      row("  of which iptables-restore", x.kubeProxyFull!.restore),
    ]));
    const rt = (changeSummary(s).ratiosP50 as Record<string, number>);
    out.push(`   p50 ratios: delta / kube-proxy partial ${f2(rt.deltaToKubeProxyPartial!)}, / kube-proxy full ${f2(rt.deltaToKubeProxyFull!)}, / trellis full ${f2(rt.deltaToTrellisFull!)}; ` +
      `nft -f of the delta / iptables-restore partial ${f2(rt.deltaNftToPartialRestore!)}`);
  }
  if (r.conn) {
    out.push("");
    out.push(`2. New TCP connections, one at a time, ${r.options.conns} per variant per round, ${r.options.rounds} rounds interleaved (${r.options.warmup} warm-up dropped)`);
    const rows = connSummary(r.conn).map((x) => {
      const us = x.perConnUs as Summary;
      return [x.label as string, f0(x.connsPerSecMedian as number), f0(us.p50), f0(us.p99), f2(x.connsPerSecToDirect as number), f1(x.p50UsMinusDirect as number),
        x.connsPerSecToOneService === undefined ? "" : f2(x.connsPerSecToOneService as number)];
    });
    out.push(table(["variant", "conn/s", "µs p50", "µs p99", "conn/s / direct", "p50 − direct µs", "conn/s N / 1"], rows));
  }
  out.push("");
  out.push(r.cleanup.clean ? "cleanup: every namespace and process of this run is gone" : `cleanup PROBLEMS: ${r.cleanup.problems.join("; ")}`);
  return out.join("\n");
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const o = parseOptions(process.argv.slice(2));
  requireRootAnd(["nsenter", "ip", "nft", "iptables", "iptables-restore"]);
  const iptVersion = commandOutput("iptables-restore", ["--version"]);
  if (!/nf_tables/.test(iptVersion)) throw new Error(`iptables-restore is not iptables-nft: ${iptVersion}`);
  const { trellisBinary: _unused, ...env } = environment({ nft: commandOutput("nft", ["--version"]), iptables: iptVersion });
  const signal = interruptSignal();
  const tag = uniq();
  const made = new Made();
  const report: Report = {
    benchmark: "services", env,
    options: { sizes: o.sizes, changes: o.changes, full: o.full, rounds: o.rounds, warmup: o.warmup, conns: o.conns, verbose: o.verbose, parts: [...o.parts] },
    cleanup: { clean: false, problems: [] },
  };
  const started = Date.now();
  let error: unknown;
  try {
    const largest = Math.max(...o.sizes);
    const topo = buildTopology(made, tag);
    if (o.parts.has("change")) {
      report.change = [];
      for (const [i, n] of o.sizes.entries()) {
        // The largest size runs in part 2's client namespaces, which then keep its rulesets.
        const pair = n === largest
          ? [topo.clients.trellisN, topo.clients.kubeN] as const
          : [made.createNetns(`trlsvc-${tag}-t${n}`), made.createNetns(`trlsvc-${tag}-k${n}`)] as const;
        report.change.push(await measureChanges(n, o.full[i]!, o, pair[0], pair[1], signal));
        if (n !== largest) for (const ns of pair) spawnSync("ip", ["netns", "del", ns]);
      }
    }
    if (o.parts.has("conn")) {
      if (!o.parts.has("change")) {
        console.error(`loading ${largest} Services for part 2...`);
        loadBoth(topo.clients.trellisN, topo.clients.kubeN, benchServices(largest, 2, targetsFor(largest)));
      }
      loadBoth(topo.clients.trellis1, topo.clients.kube1, benchServices(1, 2, [0]));
      report.conn = { services: largest, ...await measureConns(o, topo, largest, made, signal) };
    }
  } catch (e) {
    error = e;
  } finally {
    const problems = await made.cleanup(undefined, () => undefined);
    const left = listNetns().filter((n) => n.includes(tag));
    if (left.length > 0) problems.push(`namespaces left: ${left.join(", ")}`);
    const alive = [...made.children].filter((c) => c.pid !== undefined && processAlive(c.pid));
    if (alive.length > 0) problems.push(`processes left: ${alive.map((c) => c.pid).join(", ")}`);
    report.cleanup = { clean: problems.length === 0, problems };
  }
  (report.env as { loadAverage: { end: number } }).loadAverage.end = round3((await import("node:os")).loadavg()[0]!);
  console.error(`done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  if (error !== undefined) {
    if (!report.cleanup.clean) console.error(`cleanup FAILED: ${report.cleanup.problems.join("; ")}`);
    throw error;
  }
  console.log(renderText(report));
  writeResults(o.out, {
    ...report,
    summary: { change: report.change?.map(changeSummary), conn: report.conn ? connSummary(report.conn) : undefined },
  });
  return report.cleanup.clean ? 0 : 1;
}

main().then((code) => process.exit(code), (e: unknown) => {
  console.error(`services benchmark failed: ${(e as Error).message}`);
  process.exit(1);
});
