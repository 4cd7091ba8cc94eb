// Network policy benchmark (perf-anchors §4): how long Trellis takes to program policy, how fast a
// label change is enforced, what a large ruleset costs pods on the data path, and how soon a new
// pod's endpoint is programmed — in one 2-node lab (vxlan, embedded datastore), side by side:
//
//   1. program: 1000 NetworkPolicies in one `apply -f -` -> every node's table holds the effect of
//      the last one (one element of a pod's flattened ingress set, `nft get element`), then the
//      whole table is checked against the compiler's output and sampled policies' effects (and
//      the same for their removal); in-process: parse, compile, render, and `nft -f` / `nft list`
//      of the rendered script in a throw-away namespace, to show where the time goes;
//   2. label: 10k NetworkPolicy rules on the destination, a Pod re-applied with a label that moves
//      it into the allowing selector -> a TCP probe that was dropped connects (and whether the
//      agent sent only set elements);
//   3. dataplane: pod -> pod across nodes with (a) no policy objects, (b) the 10k NetworkPolicy
//      rules, flattened into two set lookups, and (c) the same 10k rules as TrellisPolicies (the
//      ordered tier, still one nft rule per rule), rounds interleaved (a b c, c b a, ...): ICMP RTT,
//      new-connection request/response time, one TCP stream;
//   4. endpoint: `lab pod add` -> the plugin's ADD result (cni.log) -> the interface is in the
//      node's `endpoints` set, with and without the 10k rules in place.
//
// Every lab, namespace and process this script makes is removed (processes ended by pid) in
// `finally`, also on error or Ctrl-C. No timing thresholds: it measures, people judge.
// Method and caveats: bench/README.md.
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { podHostIfName } from "../src/cni/attachment.js";
import { labUp, nodeDir, type LabState, type LabTools } from "../src/lab/lab.js";
import { labObjects, type LabNode, type LabPod } from "../src/lab/plan.js";
import { stopProcess } from "../src/kernel/netns.js";
import { compilePolicy, type Ruleset } from "../src/policy/compile.js";
import type { PolicyModel } from "../src/policy/model.js";
import { parseDocuments } from "../src/policy/parse.js";
import { renderRuleset, renderSetDelta } from "../src/policy/render.js";
import { ENDPOINT_PREFIX, modelFromObjects, type ParseCache } from "../src/policy/store-model.js";
import { ROOT, uniq } from "../test/helpers/netns.js";
import {
  cleanupLine, CLK_TCK, commandLine, commandOutput, environment, f0, f1, f2, inNetns as inNs, interruptSignal, JsonLinesProcess, labRun, partsOf, progress, ratio, readFrom,
  requireRootAnd, run, sizeOf, table, wholeNumber, writeResults, type CleanupCheck, type Environment, type Made,
} from "./common.js";
import {
  BENCH_NS, canonicalElement, cniAddTime, documents, elementPoint, manyPolicies, parsePolicyLines, podDoc, policyFailures, tableFromNftJson, uncovered,
  wallPolicies, type Doc, type Element, type PolicyLogLine, type TableView, type WallKind,
} from "./policy-gen.js";
import { parseIperfJson, parsePingTimes, parseProcStat } from "./probes.js";
import { median, round3, summarize, type Summary } from "./stats.js";

// Plugins, agents and tools we start get a clean environment (a runtime would not pass this on).
delete process.env.NODE_EXTRA_CA_CERTS;

const PARTS = ["program", "label", "dataplane", "endpoint"] as const;
type Part = (typeof PARTS)[number];

interface Options {
  policies: number;
  runs: number;
  wallPolicies: number;
  wallRules: number;
  flips: number;
  rounds: number;
  seconds: number;
  pings: number;
  rr: number;
  pods: number;
  podsWall: number;
  ordered: boolean;
  parts: Set<Part>;
  out: string;
  verbose: boolean;
}

const USAGE = `usage: node dist/bench/policy.js [options]   (as root, after npm run build)
  --policies N        part 1: NetworkPolicies applied in one apply -f - (default 1000)
  --runs N            part 1: apply/remove runs (default 3)
  --wall-policies N   parts 2-4: policies on the server pod (default 100) ...
  --wall-rules N      ... with this many ingress rules each (default 100: 10 000 rules)
  --flips N           part 2: timed label changes (default 3)
  --rounds N          part 3: rounds of (no policy, 10k NetworkPolicy rules, 10k ordered rules), order alternating (default 2)
  --skip-ordered      part 3: leave out the ordered-tier setup (c)
  --seconds S         part 3: iperf3 -t, after 1 s omitted (default 4)
  --pings N           part 3: ICMP echoes 2 ms apart (default 500)
  --rr N              part 3: connect+response transactions (default 500)
  --pods N            part 4: pods added with no policy objects, alternating nodes (default 10)
  --pods-wall N       part 4: pods added with the 10k rules in place (default 2)
  --parts LIST        comma-separated: ${PARTS.join(",")} (default all)
  --out FILE          results JSON (default bench/results/policy.json)
  --verbose           show lab progress and every sample`;

function parseOptions(argv: string[]): Options {
  const values = commandLine(argv, USAGE, {
    policies: { type: "string", default: "1000" },
    runs: { type: "string", default: "3" },
    "wall-policies": { type: "string", default: "100" },
    "wall-rules": { type: "string", default: "100" },
    flips: { type: "string", default: "3" },
    rounds: { type: "string", default: "2" },
    seconds: { type: "string", default: "4" },
    pings: { type: "string", default: "500" },
    rr: { type: "string", default: "500" },
    pods: { type: "string", default: "10" },
    "pods-wall": { type: "string", default: "2" },
    "skip-ordered": { type: "boolean", default: false },
    parts: { type: "string", default: PARTS.join(",") },
    out: { type: "string", default: path.join(ROOT, "bench", "results", "policy.json") },
    verbose: { type: "boolean", default: false },
  });
  const int = wholeNumber;
  return {
    policies: int("policies", values.policies, 2),
    runs: int("runs", values.runs, 1),
    wallPolicies: int("wall-policies", values["wall-policies"], 1),
    wallRules: int("wall-rules", values["wall-rules"], 1),
    flips: int("flips", values.flips, 1),
    rounds: int("rounds", values.rounds, 1),
    seconds: int("seconds", values.seconds, 1),
    pings: int("pings", values.pings, 1),
    rr: int("rr", values.rr, 1),
    pods: int("pods", values.pods, 0),
    podsWall: int("pods-wall", values["pods-wall"], 0),
    ordered: !values["skip-ordered"],
    parts: partsOf(values.parts, PARTS),
    out: path.resolve(values.out),
    verbose: values.verbose,
  };
}

// ---------------------------------------------------------------------------------------------
// Processes

interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Wall clock (ms) just before the spawn and when the process had exited. */
  startMs: number;
  endMs: number;
}

/** Runs a command to completion without blocking the event loop (pollers keep running). */
function runAsync(cmd: string, args: readonly string[], signal: AbortSignal, input?: string, timeoutMs = 300_000): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const startMs = Date.now();
    const child = spawn(cmd, args, { stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"], signal, timeout: timeoutMs, killSignal: "SIGKILL" });
    let stdout = "";
    let stderr = "";
    child.stdout!.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    if (input !== undefined) {
      child.stdin!.on("error", () => undefined);
      child.stdin!.end(input);
    }
    child.on("error", (e) => {
      if (e.name !== "AbortError") reject(new Error(`${cmd} ${args.join(" ")}: ${e.message}`));
    });
    child.on("close", (code) => (signal.aborted ? reject(signal.reason) : resolve({ code, stdout, stderr, startMs, endMs: Date.now() })));
  });
}

/** Polls `probe` back to back until it holds; the wall clock when it first did. */
async function pollUntil(what: string, timeoutMs: number, signal: AbortSignal, probe: () => Promise<boolean>, everyMs = 0): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    signal.throwIfAborted();
    if (await probe()) return Date.now();
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    if (everyMs > 0) await delay(everyMs, undefined, { signal });
  }
}

/** The TCP prober (policy-prober.ts) running in the client pod's namespace. */
class Prober extends JsonLinesProcess {
  constructor(made: Made, netns: string) {
    super(made, ...inNs(netns, process.execPath, path.join(ROOT, "dist", "bench", "policy-prober.js")), "the prober");
  }
}

// ---------------------------------------------------------------------------------------------
// The lab and how the benchmark talks to it

const SRV_PORT = 8080;
const IPERF_PORT = 5201;
const CLI_LABELS = (role: "allowed" | "denied"): Record<string, string> => ({ app: "cli", role, peer: "p7", grp: "g3" });

interface Ctx {
  o: Options;
  made: Made;
  tools: LabTools;
  signal: AbortSignal;
  state: LabState;
  lab: string;
  nodes: LabNode[];
  srv: LabPod;
  cli: LabPod;
  srvIp: string;
  cliIp: string;
  /** The model as the datastore holds it before any policy (from `trellis policy model`). */
  baseModel: PolicyModel;
  say(l: string): void;
}

const agentLog = (c: Ctx, node: string): string => path.join(nodeDir(c.lab, node), "agent.log");
const nodeOf = (c: Ctx, name: string): LabNode => c.nodes.find((n) => n.name === name)!;

/** The trellis CLI against the lab, as a user runs it; stdin for `apply -f -`. */
async function trellis(c: Ctx, args: string[], input?: string): Promise<Finished> {
  const r = await runAsync(c.tools.trellisBin, args, c.signal, input);
  if (r.code !== 0) throw new Error(`trellis ${args.join(" ")} exited ${r.code}: ${(r.stderr || r.stdout).trim().slice(0, 800)}`);
  return r;
}

const nft = (netns: string, args: string[], signal: AbortSignal, input?: string): Promise<Finished> => runAsync(...inNs(netns, "nft", ...args), signal, input);

/** The agent log lines "policy: ..." of `node` written after `offset`, from `fromMs` on. */
function policyLines(c: Ctx, node: string, offset: number, fromMs: number): PolicyLogLine[] {
  return parsePolicyLines(readFrom(agentLog(c, node), offset)).filter((l) => l.atMs >= fromMs);
}

/** Waits for the applier's first line logged at or after `atMs` (the sync a change at `atMs` caused). */
async function syncLineAfter(c: Ctx, node: string, offset: number, atMs: number, timeoutMs = 120_000): Promise<PolicyLogLine> {
  let found: PolicyLogLine | undefined;
  await pollUntil(`${node}'s agent to log its policy sync (${agentLog(c, node)})`, timeoutMs, c.signal, async () => {
    found = policyLines(c, node, offset, atMs)[0];
    return found !== undefined;
  }, 20).catch((e: Error) => {
    throw new Error(`${e.message}; ${policyFailures(readFrom(agentLog(c, node), offset)).slice(-3).join(" | ")}`);
  });
  return found!;
}

/**
 * The applier's syncs on `node` from `fromMs` up to the one that wrote what a poll saw at `seenMs`.
 * That sync logs after its write and its read-back, so usually after `seenMs`; when the poll was
 * late (a busy machine), it logged before. The benchmark waits a while for a line after `seenMs`
 * and otherwise takes the lines up to it. Empty when the agent logged nothing (a no-op sync).
 */
async function syncsUntil(c: Ctx, node: string, offset: number, fromMs: number, seenMs: number): Promise<PolicyLogLine[]> {
  let lines = policyLines(c, node, offset, fromMs);
  const waitMs = Math.max(2000, 2 * Math.max(0, ...lines.map((l) => l.ms)));
  const deadline = Date.now() + waitMs;
  for (;;) {
    const after = lines.findIndex((l) => l.atMs >= seenMs);
    if (after >= 0) return lines.slice(0, after + 1);
    if (Date.now() > deadline) return lines;
    await delay(20, undefined, { signal: c.signal });
    lines = policyLines(c, node, offset, fromMs);
  }
}

/**
 * How the benchmark recognises that a node has programmed (or removed) a whole batch: an effect
 * only the batch's last object has. The CLI writes (and deletes) the objects in order and the
 * agent sees them in order, so once that effect is in the table, so is every earlier object.
 *   - element: a point of the last policy's flattened set (`k8sport4_<chain>_<dir>` or
 *     `k8sany4_…`) that no other object of the batch covers, checked with `nft get element`
 *     (one lookup, whatever the size of the set or the table);
 *   - set: a named set only the last object makes (an ordered policy's peer set `pods4_…`).
 */
type Marker = { kind: "element"; set: string; point: string } | { kind: "set"; set: string };

const describeMarker = (m: Marker): string => (m.kind === "element" ? `{ ${m.point} } in ${m.set}` : `set ${m.set}`);

async function markerPresent(c: Ctx, netns: string, m: Marker): Promise<boolean> {
  const args = m.kind === "element" ? ["get", "element", "inet", "trellis", m.set, `{ ${m.point} }`] : ["list", "set", "inet", "trellis", m.set];
  return (await nft(netns, args, c.signal)).code === 0;
}

const policiesOf = (d: Doc[]): PolicyModel["policies"] => parseDocuments(documents(d)).map((p) => p.object) as PolicyModel["policies"];
const policyKey = (p: { kind: string; name: string; namespace?: string }): string => `${p.kind}/${p.namespace ?? ""}/${p.name}`;

/**
 * The marker of `docs` on `node`, derived with the compiler in this process (the same code as the
 * agent's) from `model` (the datastore's now): the last object with every other stored policy,
 * against all the others.
 */
function markerFor(model: PolicyModel, docs: Doc[], node: string): Marker {
  const batch = policiesOf(docs);
  const keys = new Set(batch.map(policyKey));
  const others = model.policies.filter((p) => !keys.has(policyKey(p)));
  const last = compilePolicy({ ...model, policies: [...others, ...batch.slice(-1)] }, node);
  const rest = compilePolicy({ ...model, policies: [...others, ...batch.slice(0, -1)] }, node);
  const restSets = new Map(rest.sets.map((s) => [s.name, s.elements.map(canonicalElement)]));
  for (const s of last.sets.filter((x) => /^k8s(port|any)4_/.test(x.name))) {
    for (const e of s.elements.map(canonicalElement)) {
      const point = canonicalElement(elementPoint(e));
      if (uncovered(restSets.get(s.name) ?? [], [point]).length === 1) return { kind: "element", set: s.name, point: elementPoint(e) };
    }
  }
  const own = last.sets.find((s) => s.family === 4 && !s.name.startsWith("k8s") && !restSets.has(s.name));
  if (own) return { kind: "set", set: own.name };
  throw new Error(`the last object of the batch has no effect of its own on ${node}: cannot recognise the batch`);
}

/** The model as the datastore holds it now (`trellis policy model`, the agent's own code). */
async function currentModel(c: Ctx): Promise<PolicyModel> {
  return JSON.parse((await trellis(c, ["--lab", c.lab, "policy", "model"])).stdout) as PolicyModel;
}

/** The node's policy table, read with `nft -j list table`. */
async function nodeTable(c: Ctx, netns: string): Promise<TableView> {
  const r = await nft(netns, ["-j", "list", "table", "inet", "trellis"], c.signal);
  if (r.code !== 0) throw new Error(`nft -j list table: ${r.stderr.trim()}`);
  return tableFromNftJson(r.stdout);
}

async function setUp(o: Options, made: Made, tools: LabTools, signal: AbortSignal, tag: string, say: (l: string) => void): Promise<Ctx> {
  const lab = `bp${tag}`;
  made.labs.push(lab);
  const t = Date.now();
  const state = await labUp({
    name: lab, nodes: 2, podsPerNode: 0, mode: "routed", backend: "vxlan", datastore: "embedded",
    spec: {
      namespaces: [{ name: BENCH_NS, labels: { team: BENCH_NS } }],
      pods: [
        { name: "srv", namespace: BENCH_NS, node: "node2", labels: { app: "srv", grp: "g5" }, ports: [{ name: "http", port: SRV_PORT, protocol: "TCP" }] },
        { name: "cli", namespace: BENCH_NS, node: "node1", labels: CLI_LABELS("allowed") },
      ],
    },
  }, tools, say);
  const pod = (name: string): LabPod => state.plan.pods.find((p) => p.name === name)!;
  const ip = (p: LabPod): string => {
    const v = state.podIps[`${p.namespace}/${p.name}`]?.[0];
    if (!v) throw new Error(`pod ${p.namespace}/${p.name} has no address`);
    return v;
  };
  const c: Ctx = {
    o, made, tools, signal, state, lab, nodes: state.plan.nodes, srv: pod("srv"), cli: pod("cli"), srvIp: ip(pod("srv")), cliIp: ip(pod("cli")),
    baseModel: { namespaces: [], pods: [], endpoints: [], policies: [] }, say,
  };
  console.error(`  lab ${lab}: 2 nodes (vxlan, embedded datastore), srv on node2 ${c.srvIp}:${SRV_PORT}, cli on node1 ${c.cliIp}; up in ${Date.now() - t} ms`);
  // The agents publish their endpoints; wait until the datastore has both (the model then is the agents').
  await pollUntil("both endpoints in the datastore", 30_000, signal, async () => {
    const m = JSON.parse((await trellis(c, ["--lab", lab, "policy", "model"])).stdout) as PolicyModel;
    c.baseModel = m;
    return m.endpoints.length >= 2;
  }, 200);
  return c;
}

// ---------------------------------------------------------------------------------------------
// 1. Programming policies, and where the time goes

interface ProgramSample {
  what: "1000-policies" | Exclude<Setup, "none">;
  op: "apply" | "delete";
  run: number;
  objects: number;
  /** apply/delete spawned -> the CLI exited, ms. */
  cliMs: number;
  /** apply/delete spawned -> each node's table holds (or no longer holds) the last object's effect, ms. */
  nodeMs: Record<string, number>;
  /** The latest of the nodes. */
  programmedMs: number;
  /** The applier's syncs per node until then: how many, and the last one's own figure. */
  syncs: Record<string, { count: number; full: number; lastMs: number }>;
  /** apply/delete spawned -> the node's agent logged that last sync (after its write), ms: the agent's side of `nodeMs`, without the poll's resolution. */
  loggedMs: Record<string, number>;
  /** What the poll looked for, per node. */
  marker: Record<string, string>;
  /** The untimed check that followed (verifyBatch). */
  verified: Record<string, Verified>;
}

/** Pause between two `nft get element` polls while a batch is programmed (seconds long): the pollers share the CPUs with the agents. */
const PROGRAM_POLL_MS = 50;

/** Applies (or deletes) `docs` in one CLI call, waits until every node in `nodes` shows it through its marker, then checks the tables. */
async function programBatch(c: Ctx, what: ProgramSample["what"], op: ProgramSample["op"], run: number, docs: Doc[], nodes: LabNode[]): Promise<ProgramSample> {
  const base = await currentModel(c);
  const markers = new Map(nodes.map((n) => [n.name, markerFor(base, docs, n.name)]));
  const offsets = new Map(nodes.map((n) => [n.name, sizeOf(agentLog(c, n.name))]));
  const t0 = Date.now();
  const cli = trellis(c, ["--lab", c.lab, op, "-f", "-"], documents(docs));
  const want = op === "apply";
  const seen = await Promise.all(nodes.map((n) => pollUntil(`${n.name} to ${want ? "program" : "remove"} ${docs.length} ${what} objects (${describeMarker(markers.get(n.name)!)})`,
    300_000, c.signal, async () => (await markerPresent(c, n.netns, markers.get(n.name)!)) === want, PROGRAM_POLL_MS)));
  const done = await cli;
  const syncs: ProgramSample["syncs"] = {};
  const nodeMs: Record<string, number> = {};
  const loggedMs: Record<string, number> = {};
  const lines = await Promise.all(nodes.map((n, i) => syncsUntil(c, n.name, offsets.get(n.name)!, t0, seen[i]!)));
  for (const [i, n] of nodes.entries()) {
    const l = lines[i]!;
    syncs[n.name] = { count: l.length, full: l.filter((x) => x.kind === "full").length, lastMs: l[l.length - 1]?.ms ?? Number.NaN };
    nodeMs[n.name] = seen[i]! - t0;
    loggedMs[n.name] = l.length > 0 ? l[l.length - 1]!.atMs - t0 : Number.NaN;
  }
  const verified: Record<string, Verified> = {};
  for (const n of nodes) verified[n.name] = await verifyBatch(c, docs, n, want);
  return {
    what, op, run, objects: docs.length, cliMs: done.endMs - t0, nodeMs, programmedMs: Math.max(...Object.values(nodeMs)), syncs, loggedMs,
    marker: Object.fromEntries([...markers].map(([n, m]) => [n, describeMarker(m)])), verified,
  };
}

/** What the untimed check of one node found: the table equals the compiler's output, and the sampled policies' effects are in it. */
interface Verified {
  /** Sets and chains compared with the compiler's output for the datastore's model (all equal, or the benchmark stops). */
  sets: number;
  chains: number;
  /** Policies of the batch checked one by one: each one's own set elements are covered by the node's sets. */
  sampled: number;
  /** The destination pod's ingress chain (srv on node2, cli on node1): nft rules, and the elements of its sets. */
  ingress: { chain: string; rules: number; tierRules: number; elements: Record<string, number> } | undefined;
}

const SAMPLES = 8;

/**
 * Untimed, after a batch: (1) the node's whole table, read with `nft -j`, holds exactly the sets
 * (element by element, compared by content) and the number of rules per chain that the compiler
 * makes from the datastore's model; (2) for a sample of the batch's policies (the first, the
 * last and evenly spaced ones), each one's own set elements, compiled alone, are covered by the
 * node's sets — or, after a delete, no policy of the batch is left in the datastore.
 */
async function verifyBatch(c: Ctx, docs: Doc[], node: LabNode, present: boolean): Promise<Verified> {
  const model = await currentModel(c);
  const batch = policiesOf(docs);
  const id = policyKey;
  const stored = new Set(model.policies.map(id));
  const inStore = batch.filter((p) => stored.has(id(p))).length;
  if (inStore !== (present ? batch.length : 0)) throw new Error(`${node.name}: the datastore holds ${inStore} of the ${batch.length} objects, expected ${present ? "all" : "none"}`);
  const want = compilePolicy(model, node.name);
  const got = await nodeTable(c, node.netns);
  const problems: string[] = [];
  for (const s of want.sets) {
    const have = got.sets.get(s.name);
    const exp = s.elements.map(canonicalElement).sort();
    if (!have) problems.push(`set ${s.name} missing`);
    else if (have.length !== exp.length || have.some((e, i) => e !== exp[i])) problems.push(`set ${s.name}: ${have.length} elements, expected ${exp.length}`);
  }
  const wanted = new Set(want.sets.map((s) => s.name));
  for (const name of got.sets.keys()) if (/^(k8s|pods|block|except|named)/.test(name) && !wanted.has(name)) problems.push(`set ${name} left over`);
  for (const ch of want.chains) if (got.rules.get(ch.name) !== ch.rules.length) problems.push(`chain ${ch.name}: ${got.rules.get(ch.name) ?? "no"} rules, expected ${ch.rules.length}`);
  let sampled = 0;
  if (present) {
    const base = { ...model, policies: model.policies.filter((p) => !batch.some((b) => id(b) === id(p))) };
    const n = Math.min(SAMPLES, batch.length);
    const picks = [...new Set(Array.from({ length: n }, (_, i) => Math.round((i * (batch.length - 1)) / Math.max(1, n - 1))))];
    for (const i of picks) {
      const alone = compilePolicy({ ...base, policies: [batch[i]!] }, node.name);
      for (const s of alone.sets) {
        const have = got.sets.get(s.name) ?? [];
        const missing = s.name.startsWith("k8s") ? uncovered(have, s.elements.map(canonicalElement)) : s.elements.map(canonicalElement).filter((e) => !have.includes(e));
        if (!got.sets.has(s.name) || missing.length > 0) problems.push(`${id(batch[i]!)}: ${missing.length} element(s) of ${s.name} not in the table`);
      }
      sampled++;
    }
  }
  if (problems.length > 0) throw new Error(`${node.name}'s table differs from the compiler's (${problems.length}): ${problems.slice(0, 4).join("; ")}`);
  // The pod on this node that the batches target: srv on node2, cli on node1.
  const pod = node.name === c.srv.node ? c.srv : c.cli;
  const ep = model.endpoints.find((e) => e.namespace === BENCH_NS && e.pod === pod.name && e.node === node.name);
  const chain = ep ? want.ingressMap[ep.hostIf] : undefined;
  const suffix = chain ? `${chain.slice(3)}_ingress` : "";
  return {
    sets: want.sets.length, chains: want.chains.length, sampled,
    ingress: chain ? {
      chain, rules: got.rules.get(chain) ?? 0, tierRules: got.rules.get(`${chain}_k8s`) ?? 0,
      elements: Object.fromEntries([...got.sets].filter(([name]) => name.startsWith("k8s") && name.endsWith(suffix)).map(([name, e]) => [name.split("_")[0]!, e.length])),
    } : undefined,
  };
}

async function measureProgram(c: Ctx): Promise<ProgramSample[]> {
  const samples: ProgramSample[] = [];
  for (let r = 1; r <= c.o.runs; r++) {
    const prefix = `p1r${r}`;
    const docs = manyPolicies(c.o.policies, prefix, r);
    const a = await programBatch(c, "1000-policies", "apply", r, docs, c.nodes);
    const d = await programBatch(c, "1000-policies", "delete", r, docs, c.nodes);
    samples.push(a, d);
    console.error(`  run ${r}/${c.o.runs}: apply -> programmed ${a.programmedMs} ms (CLI ${a.cliMs} ms; syncs ${Object.values(a.syncs).map((s) => s.count).join("/")}), delete -> removed ${d.programmedMs} ms; tables checked`);
  }
  return samples;
}

interface Breakdown {
  workload: string;
  objects: number;
  /** nft rules in the rendered script (all chains of the node), sets, their elements, script size. */
  rules: number;
  sets: number;
  elements: number;
  scriptKiB: number;
  /** p50 ms over the repetitions. */
  cliParseMs: number;
  /** The agent's model from every stored object with an empty parse cache (start-up, or the first sight of a batch). */
  agentModelMs: number;
  /** The same with the cache warm (a recompute after one object changed: only that one is parsed). */
  agentModelWarmMs: number;
  compileMs: number;
  renderMs: number;
  nftLoadMs: number;
  nftReplaceMs: number;
  /** The applier's check before each sync: `nft list set … generation`. */
  nftGenerationMs: number;
  /** The deep drift check, at most once a minute: `nft list table`. */
  nftListMs: number;
  /** Label change: a set-element delta, rendered and applied (NetworkPolicy wall only). */
  deltaRenderMs?: number;
  nftDeltaMs?: number;
}

const timeIt = <T>(fn: () => T): [T, number] => {
  const t = performance.now();
  const v = fn();
  return [v, performance.now() - t];
};

/**
 * Where one sync's time goes, in this process: what the CLI parses, what the agent parses (every
 * stored object cold; with its parse cache warm, only what changed), compile and render for
 * node2, then `nft -f` of the script (first load and atomic replacement), the applier's
 * generation check and the deep `nft list table` in a throw-away namespace.
 */
async function breakdown(c: Ctx, workload: string, docs: Doc[], nftNs: string, reps: number, parseReps: number): Promise<Breakdown> {
  const text = documents(docs);
  const cliParse: number[] = [];
  const agentModel: number[] = [];
  const agentWarm: number[] = [];
  const compile: number[] = [];
  const render: number[] = [];
  const kvs = [
    ...labObjects(c.state.plan).map((d, i) => ({ key: `/trellis/base/${i}`, value: JSON.stringify(d) })),
    ...docs.map((d, i) => ({ key: `/trellis/policies/bench/${i}`, value: JSON.stringify(d) })),
    ...c.baseModel.endpoints.map((e, i) => ({ key: `${ENDPOINT_PREFIX}${e.node}/${i}`, value: JSON.stringify(e) })),
  ];
  const fail = (k: string, why: string): never => {
    throw new Error(`${k}: ${why}`);
  };
  let ruleset: Ruleset | undefined;
  let model: PolicyModel | undefined;
  let script = "";
  for (let i = 0; i < reps; i++) {
    // Parsing 10k rules takes a while: once is enough to see it.
    if (i < parseReps) {
      cliParse.push(timeIt(() => parseDocuments(text))[1]);
      const cache: ParseCache = new Map();
      const [m, ms] = timeIt(() => modelFromObjects(kvs, fail, cache));
      agentModel.push(ms);
      // One object changed (the client's Pod, as in part 2): the agent parses only that one.
      const changed = kvs.map((kv) => (kv.key === kvs[0]!.key ? { ...kv, value: kv.value.replace(/}$/, ' }') } : kv));
      agentWarm.push(timeIt(() => modelFromObjects(changed, fail, cache))[1]);
      model = { ...m, nodes: c.baseModel.nodes ?? [] };
    }
    const [r, cms] = timeIt(() => compilePolicy(model!, "node2"));
    compile.push(cms);
    const [s, rms] = timeIt(() => renderRuleset(r, i + 1));
    render.push(rms);
    ruleset = r;
    script = s;
  }
  const load: number[] = [];
  const replace: number[] = [];
  const generation: number[] = [];
  const list: number[] = [];
  for (let i = 0; i < reps + 1; i++) {
    const r = await nft(nftNs, ["-f", "-"], c.signal, script);
    if (r.code !== 0) throw new Error(`nft -f of the ${workload} script: ${r.stderr.trim().slice(0, 500)}`);
    (i === 0 ? load : replace).push(r.endMs - r.startMs);
    const g = await nft(nftNs, ["list", "set", "inet", "trellis", "generation"], c.signal);
    if (g.code !== 0) throw new Error(`nft list set generation: ${g.stderr.trim()}`);
    generation.push(g.endMs - g.startMs);
    // Listing a large table takes seconds; the agent does it at most once a minute: two samples.
    if (i < 2) {
      const l = await nft(nftNs, ["list", "table", "inet", "trellis"], c.signal);
      if (l.code !== 0) throw new Error(`nft list table: ${l.stderr.trim()}`);
      list.push(l.endMs - l.startMs);
    }
  }
  const out: Breakdown = {
    workload, objects: docs.length, rules: ruleset!.chains.reduce((a, ch) => a + ch.rules.length, 0), sets: ruleset!.sets.length + 1,
    elements: ruleset!.sets.reduce((a, x) => a + x.elements.length, 0), scriptKiB: round3(Buffer.byteLength(script) / 1024),
    cliParseMs: round3(median(cliParse)), agentModelMs: round3(median(agentModel)), agentModelWarmMs: round3(median(agentWarm)),
    compileMs: round3(median(compile)), renderMs: round3(median(render)),
    nftLoadMs: round3(load[0]!), nftReplaceMs: round3(median(replace)), nftGenerationMs: round3(median(generation)), nftListMs: round3(median(list)),
  };
  if (workload.startsWith("wall")) {
    // The label change of part 2: the client's label moves it into zz-allow's selector.
    const models = (["denied", "allowed"] as const).map((role) => compilePolicy({
      ...model!, pods: model!.pods.map((p) => (p.namespace === BENCH_NS && p.name === c.cli.name ? { ...p, labels: CLI_LABELS(role) } : p)),
    }, "node2"));
    const deltaRender: number[] = [];
    const deltas: string[] = [];
    for (let i = 0; i < reps; i++) {
      const [d1, ms] = timeIt(() => renderSetDelta(models[0]!, models[1]!));
      deltaRender.push(ms);
      deltas[0] = d1 ?? "";
      deltas[1] = renderSetDelta(models[1]!, models[0]!) ?? "";
    }
    if (!deltas[0] || !deltas[1]) throw new Error("the label change is not a set-element delta in this process either");
    const base = await nft(nftNs, ["-f", "-"], c.signal, renderRuleset(models[0]!));
    if (base.code !== 0) throw new Error(`nft -f (denied): ${base.stderr.trim()}`);
    const apply: number[] = [];
    for (let i = 0; i < reps * 2; i++) {
      const r = await nft(nftNs, ["-f", "-"], c.signal, deltas[i % 2]!);
      if (r.code !== 0) throw new Error(`nft -f (delta): ${r.stderr.trim()}`);
      apply.push(r.endMs - r.startMs);
    }
    out.deltaRenderMs = round3(median(deltaRender));
    out.nftDeltaMs = round3(median(apply));
  }
  await nft(nftNs, ["delete", "table", "inet", "trellis"], c.signal);
  return out;
}

// ---------------------------------------------------------------------------------------------
// 2. Label change -> enforcement

interface FlipSample {
  flip: number;
  /** Pod re-applied (CLI spawned) -> the first new connection that got through, ms. */
  enforceMs: number;
  /** That connection attempt's start -> t0 (how close to the change it was fired), ms. */
  attemptStartedAfterMs: number;
  cliMs: number;
  /** The node2 applier's first sync after the change: full table or set elements, its own ms, when it logged. */
  agent: { kind: "full" | "delta"; ms: number; loggedAfterMs: number };
  /** The way back (role=denied), untimed by a probe that waits: when node2 logged its sync. */
  denyAgent: { kind: "full" | "delta"; ms: number };
}

async function applyCliLabels(c: Ctx, role: "allowed" | "denied"): Promise<Finished> {
  return trellis(c, ["--lab", c.lab, "apply", "-f", "-"], documents([podDoc(c.cli.name, CLI_LABELS(role))]));
}

async function measureFlips(c: Ctx, prober: Prober): Promise<FlipSample[]> {
  const node2 = nodeOf(c, c.srv.node);
  const samples: FlipSample[] = [];
  for (let f = 1; f <= c.o.flips; f++) {
    // Deny: the client leaves the allowing selector; wait until the agent has written it and read it back.
    let offset = sizeOf(agentLog(c, node2.name));
    let t0 = Date.now();
    await applyCliLabels(c, "denied");
    prober.send({ op: "untilClosed", ip: c.srvIp, port: SRV_PORT, timeoutMs: 180_000 });
    await prober.expect("closed", 200_000, c.signal);
    const deny = await syncLineAfter(c, node2.name, offset, t0);

    // Allow, timed: a new connection every 10 ms from before the change until one connects.
    prober.send({ op: "untilOpen", ip: c.srvIp, port: SRV_PORT, timeoutMs: 180_000 });
    await prober.expect("armed", 10_000, c.signal);
    offset = sizeOf(agentLog(c, node2.name));
    t0 = Date.now();
    const cli = applyCliLabels(c, "allowed");
    const open = await prober.expect("open", 200_000, c.signal);
    const done = await cli;
    const allow = await syncLineAfter(c, node2.name, offset, t0);
    const s: FlipSample = {
      flip: f, enforceMs: Number(open.atMs) - t0, attemptStartedAfterMs: Number(open.startedMs) - t0, cliMs: done.endMs - t0,
      agent: { kind: allow.kind, ms: allow.ms, loggedAfterMs: allow.atMs - t0 }, denyAgent: { kind: deny.kind, ms: deny.ms },
    };
    samples.push(s);
    console.error(`  flip ${f}/${c.o.flips}: label change -> connection through ${s.enforceMs} ms (agent: ${s.agent.kind === "delta" ? "set elements" : "full table"} in ${s.agent.ms} ms; CLI ${s.cliMs} ms)`);
  }
  return samples;
}

// ---------------------------------------------------------------------------------------------
// 3. Data plane with and without the rules

/** (a) no policy objects, (b) the NetworkPolicy wall (flattened), (c) the same rules as TrellisPolicies (ordered tier). */
type Setup = "none" | "wall" | "ordered";

interface DataSample {
  round: number;
  setup: Setup;
  /** ICMP echo srv -> cli, per-packet RTT (the flow is established after the first echo), µs. */
  pingP50Us: number;
  pingAvgUs: number;
  pingLoss: number;
  /** New TCP connection + the server's line + close, per transaction, µs: every SYN passes the policy chain. */
  rrP50Us: number;
  rrP99Us: number;
  rrMeanUs: number;
  rrFailed: number;
  /** One TCP stream, end.sum_received. */
  gbps: number;
  retransmits: number;
  /** node2's agent (and the nft processes it ran) during this round, % of one core. */
  agentCpuPct: number;
}

const SETUP_LABEL: Record<Setup, string> = { none: "no policy", wall: "wall", ordered: "ordered" };

function cpuTicks(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  try {
    const t = parseProcStat(fs.readFileSync(`/proc/${pid}/stat`, "utf8"));
    return t.utime + t.stime + t.cutime + t.cstime;
  } catch {
    return Number.NaN;
  }
}

async function iperf(c: Ctx): Promise<{ gbps: number; retransmits: number }> {
  const server = c.made.spawn(...inNs(c.srv.netns, "iperf3", "-s", "-1", "-B", c.srvIp, "-p", String(IPERF_PORT)));
  try {
    await pollUntil("iperf3 to listen", 10_000, c.signal, async () =>
      run("ss", ["-N", c.srv.netns, "-Hltn", `sport = :${IPERF_PORT}`]).trim() !== "", 20);
    const r = await runAsync(...inNs(c.cli.netns, "iperf3", "-c", c.srvIp, "-p", String(IPERF_PORT), "-t", String(c.o.seconds), "-O", "1", "-J"), c.signal, undefined, (c.o.seconds + 30) * 1000);
    const res = parseIperfJson(r.stdout);
    return { gbps: res.receivedBps / 1e9, retransmits: res.retransmits };
  } finally {
    if (server.pid !== undefined && server.exitCode === null) await stopProcess(server.pid, 1000);
  }
}

async function dataRound(c: Ctx, prober: Prober, round: number, setup: Setup): Promise<DataSample> {
  const agentPid = c.state.pids.find((p) => p.what === `agent ${c.srv.node}`)?.pid;
  // A few unrecorded transactions first: the prober's and the server's code paths warm up.
  prober.send({ op: "rr", ip: c.srvIp, port: SRV_PORT, count: 20 });
  await prober.expect("rr", 60_000, c.signal);
  const cpu0 = cpuTicks(agentPid);
  const t0 = Date.now();
  // srv -> cli: NetworkPolicy cannot admit ICMP without admitting every port, which would let the
  // client's SYNs stop at the first lookup; the echoes after the first are established either way.
  const ping = await runAsync(...inNs(c.srv.netns, "ping", "-c", String(c.o.pings), "-i", "0.002", "-W", "1", c.cliIp), c.signal);
  const times = parsePingTimes(ping.stdout).map((ms) => ms * 1000);
  prober.send({ op: "rr", ip: c.srvIp, port: SRV_PORT, count: c.o.rr });
  const rr = await prober.expect("rr", 300_000, c.signal);
  const us = (rr.us as number[]) ?? [];
  const tp = await iperf(c);
  const cpuPct = ((cpuTicks(agentPid) - cpu0) / CLK_TCK / ((Date.now() - t0) / 1000)) * 100;
  const rrS = summarize(us);
  const s: DataSample = {
    round, setup, pingP50Us: round3(median(times)), pingAvgUs: round3(summarize(times).mean), pingLoss: c.o.pings - times.length,
    rrP50Us: round3(rrS.p50), rrP99Us: round3(rrS.p99), rrMeanUs: round3(rrS.mean), rrFailed: Number(rr.failed ?? 0),
    gbps: round3(tp.gbps), retransmits: tp.retransmits, agentCpuPct: round3(cpuPct),
  };
  console.error(`  round ${round} ${SETUP_LABEL[setup].padEnd(9)}: ping p50 ${s.pingP50Us.toFixed(0)} µs, connect+response p50 ${s.rrP50Us.toFixed(0)} µs, ${s.gbps.toFixed(2)} Gbit/s; node2 agent ${s.agentCpuPct.toFixed(0)} % CPU`);
  return s;
}

// ---------------------------------------------------------------------------------------------
// 4. CNI ADD -> endpoint programmed

interface EndpointSample {
  setup: Setup;
  pod: string;
  node: string;
  /** The plugin's ADD line (cni.log) -> the host interface is in the node's `endpoints` set, ms. */
  addToProgrammedMs: number;
  /** `lab pod add` spawned -> programmed (includes the Pod object's apply and the runtime), ms. */
  podAddToProgrammedMs: number;
  agent: { kind: "full" | "delta"; ms: number } | undefined;
}

async function addPod(c: Ctx, setup: Setup, name: string, node: LabNode): Promise<EndpointSample> {
  const containerId = `lab-${c.lab}-${BENCH_NS}-${name}`;
  const hostIf = podHostIfName(containerId, "eth0");
  const cniLog = path.join(nodeDir(c.lab, node.name), "cni.log");
  const cniOffset = sizeOf(cniLog);
  const agentOffset = sizeOf(agentLog(c, node.name));
  const t0 = Date.now();
  const add = trellis(c, ["lab", "pod", "add", "--name", c.lab, "--pod", `${BENCH_NS}/${name}`, "--node", node.name, "--labels", "app=extra"]);
  // Back-to-back `nft list set` in the node: each takes a few ms, which bounds the resolution.
  const seenMs = await pollUntil(`${hostIf} in ${node.name}'s endpoints set`, 300_000, c.signal, async () => {
    const r = await nft(node.netns, ["list", "set", "inet", "trellis", "endpoints"], c.signal);
    return r.code === 0 && r.stdout.includes(`"${hostIf}"`);
  }, 5);
  await add;
  const addMs = cniAddTime(readFrom(cniLog, cniOffset), containerId);
  if (addMs === undefined) throw new Error(`no ADD line for ${containerId} in ${cniLog}`);
  const line = (await syncsUntil(c, node.name, agentOffset, t0, seenMs)).pop();
  return {
    setup, pod: name, node: node.name, addToProgrammedMs: seenMs - addMs, podAddToProgrammedMs: seenMs - t0,
    agent: line ? { kind: line.kind, ms: line.ms } : undefined,
  };
}

async function measureEndpoints(c: Ctx, setup: Setup, count: number, first: number): Promise<EndpointSample[]> {
  const out: EndpointSample[] = [];
  for (let i = 0; i < count; i++) {
    const node = c.nodes[i % c.nodes.length]!;
    const s = await addPod(c, setup, `ep${first + i}`, node);
    out.push(s);
    if (c.o.verbose) console.error(`  ${s.pod} on ${s.node}: ADD -> programmed ${s.addToProgrammedMs} ms (pod add -> programmed ${s.podAddToProgrammedMs} ms)`);
  }
  console.error(`  ${count} pods (${setup === "none" ? "no policy" : "wall in place"}): ADD -> programmed p50 ${summarize(out.map((s) => s.addToProgrammedMs)).p50} ms`);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Output

/** The versions of the tools measured with. */
const toolVersions = (): { nft: string; iperf3: string } => ({
  nft: commandOutput("nft", ["--version"]),
  iperf3: commandOutput("iperf3", ["--version"]).split("\n")[0] ?? "unknown",
});

/** One wall (b or c) as node2 holds it: the policy rules, and what they became on srv's ingress side. */
interface WallReport {
  kind: WallKind;
  samples: ProgramSample[];
  /** Rules in the policy objects (the walls' rules and zz-allow's one). */
  policyRules: number;
  /** From the first apply's check: srv's ingress chain on node2 (nft rules; the k8s tier's rules; the elements of srv's flattened sets). */
  srv?: Verified["ingress"];
}

interface Report {
  env: Environment & ReturnType<typeof toolVersions>;
  options: Omit<Options, "parts" | "out" | "verbose"> & { parts: Part[] };
  lab?: { name: string; srv: string; cli: string };
  program?: { samples: ProgramSample[]; breakdown: Breakdown[] };
  wall?: WallReport;
  ordered?: WallReport;
  label?: { samples: FlipSample[]; summary: Summary };
  dataplane?: { samples: DataSample[] };
  endpoint?: { samples: EndpointSample[] };
  cleanup: CleanupCheck;
}

const wallLabel = (r: Report, w: WallReport | undefined): string =>
  `${r.options.wallPolicies}x${r.options.wallRules} ${w?.kind === "TrellisPolicy" ? "TrellisPolicy" : "NetworkPolicy"} rules`;

const chainShape = (v: Verified["ingress"]): string => {
  if (!v) return "?";
  const el = Object.entries(v.elements).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(", ");
  return `${v.rules} nft rules in ${v.chain} + ${v.tierRules} in its k8s tier${el ? `; set elements: ${el}` : ""}`;
};
const srvShape = (w: WallReport | undefined): string => chainShape(w?.srv);

function renderText(r: Report): string {
  const out: string[] = [];
  const e = r.env;
  out.push(`Policy benchmark, ${e.date}: ${e.cpus} x ${e.cpuModel}, Linux ${e.kernel}, ${e.nft}, ${e.iperf3}`);
  out.push(`trellis ${e.git.commit.slice(0, 10)}${e.git.dirty ? " + uncommitted changes" : ""} (executable sha256 ${e.trellisBinary.sha256.slice(0, 12)}); load average (1 min) ${f2(e.loadAverage.start)} at start, ${f2(e.loadAverage.end)} at end`);
  out.push("Lab: 2 nodes (vxlan, embedded datastore); srv on node2, cli on node1; times in ms, p50 = median (nearest rank), p99 = nearest rank (the max below 100 samples)");

  const programRows = (samples: ProgramSample[], label: string): string[][] => (["apply", "delete"] as const).flatMap((op) => {
    const s = samples.filter((x) => x.op === op);
    if (s.length === 0) return [];
    const st = summarize(s.map((x) => x.programmedMs));
    const nodes = Object.keys(s[0]!.nodeMs);
    return [[
      `${label}: ${op === "apply" ? "apply -> programmed" : "delete -> removed"}`, String(st.n), f0(st.p50), f0(st.min), f0(st.max),
      f0(median(s.map((x) => x.cliMs))), nodes.map((n) => f0(median(s.map((x) => x.nodeMs[n]!)))).join(" / "),
      nodes.map((n) => f0(median(s.map((x) => x.loggedMs[n]!)))).join(" / "),
      nodes.map((n) => f1(median(s.map((x) => x.syncs[n]!.count)))).join(" / "),
      nodes.map((n) => f0(median(s.map((x) => x.syncs[n]!.lastMs)))).join(" / "),
    ]];
  });
  if (r.program || r.wall || r.ordered) {
    out.push("", "1. Programming policy: one `trellis apply -f -` (or delete) spawned -> the last object's own effect is in (or gone from) each node's table (`nft get element` / `nft list set`, every 50 ms);");
    out.push("   then, untimed: each node's whole table (nft -j) equals the compiler's output for the datastore's model, and 8 sampled policies' own elements are covered");
    const rows = [...(r.program ? programRows(r.program.samples, `${r.options.policies} NetworkPolicies`) : []),
      ...(r.wall ? programRows(r.wall.samples, `${wallLabel(r, r.wall)} (node2)`) : []),
      ...(r.ordered ? programRows(r.ordered.samples, `${wallLabel(r, r.ordered)} (node2)`) : [])];
    out.push(table(["batch", "n", "p50", "min", "max", "CLI exit p50", "per node p50", "agent logged it p50", "agent syncs p50", "last sync's own ms p50"], rows));
    const p1 = r.program?.samples.find((x) => x.op === "apply");
    if (p1) {
      out.push(`   ${r.options.policies} policies, as checked after the first apply: ${Object.entries(p1.verified).map(([n, v]) => `${n} ${v.sets} sets and ${v.chains} chains equal, ${v.sampled} policies sampled; ` +
        `${n === "node2" ? "srv" : "cli"}'s ingress ${chainShape(v.ingress)}`).join("; ")}`);
      out.push(`   markers: ${Object.entries(p1.marker).map(([n, m]) => `${n} ${m}`).join("; ")}`);
    }
  }
  if (r.program) {
    out.push("", "   Where the time goes (in this Node.js process, for node2; p50 of 3, of 2 for the walls, whose parse is timed once; nft in a throw-away namespace).");
    out.push("   The agent (a Bun executable) parses only the stored objects that changed (warm cache); each sync checks the table's generation set, then writes the whole table or only set elements;");
    out.push("   the full listing (nft list) is the drift check, at most once a minute.");
    out.push(table(["workload", "objects", "nft rules", "sets", "elements", "script KiB", "CLI parse", "agent parse cold", "warm", "compile", "render", "nft -f new", "nft -f replace", "generation", "nft list", "delta render", "nft -f delta"],
      r.program.breakdown.map((b) => [
        b.workload, String(b.objects), String(b.rules), String(b.sets), String(b.elements), f0(b.scriptKiB), f1(b.cliParseMs), f1(b.agentModelMs), f1(b.agentModelWarmMs),
        f1(b.compileMs), f1(b.renderMs), f1(b.nftLoadMs), f1(b.nftReplaceMs), f1(b.nftGenerationMs), f1(b.nftListMs),
        b.deltaRenderMs !== undefined ? f2(b.deltaRenderMs) : "", b.nftDeltaMs !== undefined ? f1(b.nftDeltaMs) : "",
      ])));
    const agentSide = (b: Breakdown): number => b.agentModelWarmMs + b.compileMs + b.renderMs + b.nftGenerationMs + b.nftReplaceMs;
    out.push(`   one full sync after a change, estimated (agent parse warm + compile + render + generation check + replace): ${r.program.breakdown.map((b) => `${b.workload} ${f0(agentSide(b))} ms`).join("; ")}`);
    out.push("   reference (perf-anchors §4.3, same kind of VM): nft full load of N linear rules 32 ms at 1 000, 361 ms at 10 000; nft set full load 45 ms at 10 000; one `nft add element` ≈ 8 ms");
  }
  for (const w of [r.wall, r.ordered]) {
    if (w) out.push(`   ${wallLabel(r, w)} (${w.policyRules} in the objects) -> srv's ingress on node2: ${srvShape(w)}`);
  }
  if (r.label) {
    const s = r.label.samples;
    const kinds = s.map((x) => x.agent.kind);
    out.push("", `2. Label change -> enforcement, ${wallLabel(r, r.wall)} in place: Pod re-applied (CLI spawned) -> a new TCP connection cli -> srv:${SRV_PORT} that was dropped gets through (a new SYN every 10 ms)`);
    out.push(table(["n", "p50", "p99", "min", "max", "CLI exit p50", "agent update", "agent's own ms p50", "agent logged p50"], [[
      String(r.label.summary.n), f0(r.label.summary.p50), f0(r.label.summary.p99), f0(r.label.summary.min), f0(r.label.summary.max),
      f0(median(s.map((x) => x.cliMs))), `${kinds.filter((k) => k === "delta").length} set elements, ${kinds.filter((k) => k === "full").length} full`,
      f0(median(s.map((x) => x.agent.ms))), f0(median(s.map((x) => x.agent.loggedAfterMs))),
    ]]));
  }
  if (r.dataplane) {
    const s = r.dataplane.samples;
    const has = (setup: Setup): boolean => s.some((x) => x.setup === setup);
    const stat = (setup: Setup, f: (x: DataSample) => number): number => median(s.filter((x) => x.setup === setup).map(f));
    const row = (setup: Setup, label: string): string[] => [label, String(s.filter((x) => x.setup === setup).length),
      f1(stat(setup, (x) => x.pingP50Us)), f1(stat(setup, (x) => x.rrP50Us)), f1(stat(setup, (x) => x.rrP99Us)), f2(stat(setup, (x) => x.gbps)), f0(stat(setup, (x) => x.agentCpuPct))];
    const rat = (setup: Setup, f: (x: DataSample) => number): string => f2(ratio(stat(setup, f), stat("none", f)));
    const ratioRow = (setup: Setup, label: string): string[] => [label, "", rat(setup, (x) => x.pingP50Us), rat(setup, (x) => x.rrP50Us), rat(setup, (x) => x.rrP99Us), rat(setup, (x) => x.gbps), ""];
    out.push("", `3. Data plane cli (node1) -> srv (node2): ping srv -> cli ${r.options.pings} x 2 ms (p50 per echo), ${r.options.rr} new connections + response (probe server), iperf3 1 stream ${r.options.seconds} s; median of ${r.options.rounds} interleaved rounds`);
    out.push(`   (b) ${wallLabel(r, r.wall)}, flattened: srv's ingress ${srvShape(r.wall)}`);
    if (has("ordered")) out.push(`   (c) ${wallLabel(r, r.ordered)}, ordered tier: srv's ingress ${srvShape(r.ordered)}`);
    const rows = [row("none", "(a) no policy objects"), row("wall", "(b) NetworkPolicy wall (flattened)")];
    if (has("ordered")) rows.push(row("ordered", "(c) TrellisPolicy wall (ordered, linear)"));
    rows.push(ratioRow("wall", "ratio (b)/(a)"));
    if (has("ordered")) rows.push(ratioRow("ordered", "ratio (c)/(a)"));
    out.push(table(["setup", "rounds", "ping p50 µs", "connect+resp p50 µs", "p99 µs", "Gbit/s", "node2 agent CPU %"], rows));
  }
  if (r.endpoint) {
    const s = r.endpoint.samples;
    const rows: string[][] = [];
    for (const setup of ["none", "wall"] as const) {
      for (const node of [...new Set(s.map((x) => x.node))].sort()) {
        const m = s.filter((x) => x.setup === setup && x.node === node);
        if (m.length === 0) continue;
        const st = summarize(m.map((x) => x.addToProgrammedMs));
        rows.push([`${setup === "none" ? "no policy" : `${wallLabel(r, r.wall)} on node2`}, pods on ${node}`, String(st.n), f0(st.p50), f0(st.p99), f0(st.max),
          f0(summarize(m.map((x) => x.podAddToProgrammedMs)).p50), m.map((x) => (x.agent ? (x.agent.kind === "full" ? "F" : "d") : "?")).join("")]);
      }
    }
    out.push("", "4. New pod: the plugin's ADD result (cni.log) -> its interface is in the node's `endpoints` set (its chains are written in the same transaction; polled with nft)");
    out.push(table(["setup", "n", "p50", "p99", "max", "`lab pod add` -> programmed p50", "agent update (F full, d delta)"], rows));
  }
  out.push("", cleanupLine(r.cleanup));
  return out.join("\n");
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const o = parseOptions(process.argv.slice(2));
  requireRootAnd(["nft", "iperf3", "ping", "ss", "nsenter"]);
  if (!fs.existsSync(path.join(ROOT, "dist", "bench", "policy-prober.js"))) throw new Error("dist/bench/policy-prober.js not found: run npm run build");
  const signal = interruptSignal();
  const say = progress(o.verbose);

  const env = environment(toolVersions());
  const tag = uniq().slice(0, 6);
  const report: Report = {
    env,
    options: {
      policies: o.policies, runs: o.runs, wallPolicies: o.wallPolicies, wallRules: o.wallRules, flips: o.flips, rounds: o.rounds, seconds: o.seconds,
      pings: o.pings, rr: o.rr, pods: o.pods, podsWall: o.podsWall, ordered: o.ordered, parts: [...o.parts],
    },
    cleanup: { clean: false, problems: [] },
  };
  report.cleanup = await labRun("policy", env, tag, [`bp${tag}`], say, async (made, tools) => {
    console.error("lab: 2 nodes, srv and cli...");
    const c = await setUp(o, made, tools, signal, tag, say);
    report.lab = { name: c.lab, srv: `${c.srvIp}:${SRV_PORT} on ${c.srv.node}`, cli: `${c.cliIp} on ${c.cli.node}` };
    const prober = new Prober(made, c.cli.netns);
    await prober.expect("ready", 30_000, signal);
    const wallDocs = wallPolicies(o.wallPolicies, o.wallRules, "w", "NetworkPolicy", [SRV_PORT, IPERF_PORT]);
    const orderedDocs = wallPolicies(o.wallPolicies, o.wallRules, "o", "TrellisPolicy", [SRV_PORT, IPERF_PORT]);
    const docsOf = (setup: Exclude<Setup, "none">): Doc[] => (setup === "wall" ? wallDocs : orderedDocs);
    const node2 = nodeOf(c, c.srv.node);
    const needWall = o.parts.has("label") || o.parts.has("dataplane") || (o.parts.has("endpoint") && o.podsWall > 0);
    const useOrdered = o.ordered && o.parts.has("dataplane");

    if (o.parts.has("program")) {
      console.error(`1. programming ${o.policies} NetworkPolicies, ${o.runs} runs...`);
      const samples = await measureProgram(c);
      console.error("   where the time goes (in-process compile/render, nft in a throw-away namespace)...");
      const nftNs = made.createNetns(`trellis-bench-${tag}-nft`);
      const bd = [await breakdown(c, `${o.policies} policies`, manyPolicies(o.policies, "p1r0", 0), nftNs, 3, 3)];
      if (needWall) bd.push(await breakdown(c, `wall ${o.wallPolicies}x${o.wallRules} NetworkPolicy`, wallDocs, nftNs, 2, 1));
      if (useOrdered) bd.push(await breakdown(c, `ordered ${o.wallPolicies}x${o.wallRules} TrellisPolicy`, orderedDocs, nftNs, 2, 1));
      report.program = { samples, breakdown: bd };
    }

    // Rounds of part 3 go (a b c), (c b a), ... so each wall is applied and removed as few times as possible.
    const dataSamples: DataSample[] = [];
    const endpointSamples: EndpointSample[] = [];
    let podNo = 1;
    const setups: Setup[] = useOrdered ? ["none", "wall", "ordered"] : ["none", "wall"];
    const order: Setup[] = [];
    for (let i = 0; i < (o.parts.has("dataplane") ? o.rounds : 1); i++) order.push(...(i % 2 === 0 ? setups : [...setups].reverse()));
    let current: Setup = "none";
    const runs: Record<Exclude<Setup, "none">, number> = { wall: 0, ordered: 0 };
    let labelDone = false;
    let endpointsDone: Record<Setup, boolean> = { none: false, wall: false, ordered: true };
    const transition = async (setup: Exclude<Setup, "none">, op: "apply" | "delete"): Promise<void> => {
      const what = setup === "wall" ? "NetworkPolicy wall" : "TrellisPolicy (ordered) wall";
      console.error(`${op === "apply" ? "applying" : "removing"} the ${o.wallPolicies}x${o.wallRules}-rule ${what} on srv...`);
      const s = await programBatch(c, setup, op, op === "apply" ? ++runs[setup] : runs[setup], docsOf(setup), [node2]);
      console.error(`  ${op} -> ${op === "apply" ? "programmed" : "removed"} on node2 in ${s.programmedMs} ms (CLI ${s.cliMs} ms, ${s.syncs[node2.name]!.count} syncs); table checked`);
      const key = setup === "wall" ? "wall" : "ordered";
      report[key] ??= { kind: setup === "wall" ? "NetworkPolicy" : "TrellisPolicy", samples: [], policyRules: o.wallPolicies * o.wallRules + 1 };
      report[key]!.samples.push(s);
      if (op === "apply" && report[key]!.srv === undefined) {
        report[key]!.srv = s.verified[node2.name]!.ingress;
        console.error(`  srv's ingress on node2: ${srvShape(report[key])}`);
      }
    };
    for (const [i, setup] of order.entries()) {
      if (setup !== current) {
        if (!needWall) break;
        if (current !== "none") await transition(current, "delete");
        if (setup !== "none") await transition(setup, "apply");
        current = setup;
      }
      if (o.parts.has("dataplane")) {
        if (i === 0) console.error(`3. data plane, ${o.rounds} rounds...`);
        dataSamples.push(await dataRound(c, prober, Math.floor(i / setups.length) + 1, setup));
      }
      if (setup === "wall" && o.parts.has("label") && !labelDone) {
        console.error(`2. label change -> enforcement, ${o.flips} flips with the NetworkPolicy wall in place...`);
        const samples = await measureFlips(c, prober);
        report.label = { samples, summary: summarize(samples.map((x) => x.enforceMs)) };
        labelDone = true;
      }
      if (o.parts.has("endpoint") && !endpointsDone[setup]) {
        const n = setup === "none" ? o.pods : o.podsWall;
        if (n > 0) {
          console.error(`4. CNI ADD -> endpoint programmed, ${n} pods (${setup === "none" ? "no policy" : "the NetworkPolicy wall in place"})...`);
          endpointSamples.push(...await measureEndpoints(c, setup, n, podNo));
          podNo += n;
        }
        endpointsDone = { ...endpointsDone, [setup]: true };
      }
      if (!needWall) break;
    }
    if (dataSamples.length) report.dataplane = { samples: dataSamples };
    if (endpointSamples.length) report.endpoint = { samples: endpointSamples };
    prober.send({ op: "exit" });
  });
  console.log(renderText(report));
  writeResults(o.out, report);
  return report.cleanup.clean ? 0 : 1;
}

main().then((code) => process.exit(code), (e: unknown) => {
  console.error(`policy benchmark failed: ${(e as Error).message}`);
  process.exit(1);
});
