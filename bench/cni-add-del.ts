// Pod network setup latency (perf-anchors §2): CNI ADD and DEL of the trellis plugin, in routed
// and in bridge mode, against the reference bridge + host-local plugins, side by side in one run.
//
// Every figure is the wall time of one plugin process as a runtime sees it (spawn to exit).
// Implementations are interleaved pod by pod in rotating order so that a noisy machine hurts each
// of them alike; each has its own throw-away "host" namespace, so nothing touches the machine's
// root namespace. Correctness is checked while measuring (every ADD returns an address, no
// address is handed out twice, DEL leaves nothing behind) and the run cleans up after itself.
// Method, caveats and how to run: bench/README.md.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import { isIP } from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import {
  addressFiles,
  BUILD_CNI,
  cni,
  cniAsync,
  integrationSkip,
  ipJson,
  linkNames,
  NetnsPool,
  REFERENCE_CNI,
  ROOT,
  startCniService,
  TRELLIS,
  TRELLIS_CLI,
  TRELLIS_IPAM,
  type CniService,
  type Netns,
  type PluginCall,
  type PluginRun,
} from "../test/helpers/netns.js";
import {
  renderJson,
  renderText,
  type CleanupCheck,
  type Environment,
  type ImplRun,
  type RunReport,
  type Samples,
  type StartupRun,
  type ThroughputRound,
} from "./report.js";
import { CLK_TCK, commandLine, commandOutput, environment, interruptSignal, sha256File, wholeNumber, writeResults } from "./common.js";
import { rotate, round3 } from "./stats.js";

// ---------------------------------------------------------------------------------------------
// What is compared

type ImplId = "trellis" | "trellis-agent" | "trellis-bridge" | "reference";

interface ImplSpec {
  id: ImplId;
  label: string;
  binary: string;
  /** CNI_PATH given to the plugin: where it finds its IPAM plugin. */
  cniPath: string;
  network: string;
  subnet: string;
}

const IMPLS: readonly ImplSpec[] = [
  { id: "trellis", label: "trellis (routed)", binary: TRELLIS, cniPath: BUILD_CNI, network: "bench-trellis", subnet: "10.201.0.0/16" },
  {
    id: "trellis-agent",
    label: "trellis (routed, via node agent)",
    binary: TRELLIS,
    cniPath: BUILD_CNI,
    network: "bench-trellis-agent",
    subnet: "10.204.0.0/16",
  },
  { id: "trellis-bridge", label: "trellis (bridge)", binary: TRELLIS, cniPath: BUILD_CNI, network: "bench-trellis-bridge", subnet: "10.202.0.0/16" },
  {
    id: "reference",
    label: "reference bridge+host-local",
    binary: path.join(REFERENCE_CNI, "bridge"),
    cniPath: REFERENCE_CNI,
    network: "bench-reference",
    subnet: "10.203.0.0/16",
  },
];

/** The network configuration (stdin) of one implementation, its IPAM state kept in `dataDir`. */
function networkConfig(spec: ImplSpec, dataDir: string): Record<string, unknown> {
  const ranges = [[{ subnet: spec.subnet }]];
  const base = { cniVersion: "1.0.0", name: spec.network };
  // agentSocket "": the plugin does all the work in its own process, whatever runs on the host.
  switch (spec.id) {
    case "trellis":
      return { ...base, type: "trellis", agentSocket: "", ipam: { type: "trellis-ipam", dataDir, ranges } };
    case "trellis-agent":
      return { ...base, type: "trellis", agentSocket: agentSocketIn(dataDir), ipam: { type: "trellis-ipam", dataDir, ranges } };
    case "trellis-bridge":
      return { ...base, type: "trellis", mode: "bridge", agentSocket: "", ipam: { type: "trellis-ipam", dataDir, ranges } };
    case "reference":
      return { ...base, type: "bridge", isGateway: true, ipam: { type: "host-local", dataDir, ranges } };
  }
}

/** Where the node-side service of the "via node agent" implementation listens. */
const agentSocketIn = (dataDir: string): string => path.join(dataDir, "cni.sock");

/** An implementation made ready to run: its host namespace, pod namespaces and IPAM directory. */
interface Impl extends ImplSpec {
  host: Netns;
  pods: Netns[];
  dataDir: string;
  stdin: Record<string, unknown>;
}

const IFNAME = "eth0";

// ---------------------------------------------------------------------------------------------
// Options

interface Options {
  pods: number;
  warmup: number;
  inFlight: number;
  rounds: number;
  startupRuns: number;
  out: string;
}

const USAGE = `usage: node dist/bench/cni-add-del.js [options]   (as root, after npm run build)
  --pods N          measured pods per implementation (default 100)
  --warmup N        uncounted warm-up pods per implementation (default 5)
  --in-flight N     concurrent ADDs in the throughput phase (default 4)
  --rounds N        throughput rounds per implementation, median reported (default 3)
  --startup-runs N  runs per executable for the start-up cost (default 50)
  --out FILE        JSON results (default bench/results/cni-add-del.json)`;

function parseOptions(argv: string[]): Options {
  const values = commandLine(argv, USAGE, {
    pods: { type: "string", default: "100" },
    warmup: { type: "string", default: "5" },
    "in-flight": { type: "string", default: "4" },
    rounds: { type: "string", default: "3" },
    "startup-runs": { type: "string", default: "50" },
    out: { type: "string", default: path.join(ROOT, "bench", "results", "cni-add-del.json") },
  });
  const int = wholeNumber;
  return {
    pods: int("pods", values.pods, 1),
    warmup: int("warmup", values.warmup, 0),
    inFlight: int("in-flight", values["in-flight"], 1),
    rounds: int("rounds", values.rounds, 1),
    startupRuns: int("startup-runs", values["startup-runs"], 1),
    out: path.resolve(values.out),
  };
}

// ---------------------------------------------------------------------------------------------
// Calling plugins and checking what they did

/** Milliseconds since `t0` (from process.hrtime.bigint()). */
const msSince = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e6;

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * CPU time (user + system) of this process's children that have exited and been reaped, in ms:
 * fields cutime and cstime of /proc/self/stat. That covers the plugin and everything it waited
 * for (its `ip` or IPAM processes). One reading is only accurate to a clock tick, but the mean
 * over a hundred calls is accurate. Unlike wall time, it hardly changes when other work on the
 * machine keeps the plugin waiting for a CPU.
 */
function childCpuMs(): number {
  const stat = fs.readFileSync("/proc/self/stat", "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state); cutime and cstime are fields 16 and 17.
  return ((Number(fields[13]) + Number(fields[14])) * 1000) / CLK_TCK;
}

/** One plugin call: its wall time, spawn to exit, and the CPU it and its children used. */
function timedCall(call: PluginCall): { run: PluginRun; ms: number; cpuMs: number } {
  const cpu0 = childCpuMs();
  const t0 = process.hrtime.bigint();
  const run = cni(call);
  const ms = msSince(t0);
  return { run, ms, cpuMs: childCpuMs() - cpu0 };
}

/**
 * The call a runtime makes. The helper gives the plugin a minimal environment (PATH and the CNI_*
 * variables), so nothing from this shell, such as NODE_EXTRA_CA_CERTS, reaches the plugins.
 */
function pluginCall(impl: Impl, command: "ADD" | "DEL", containerId: string, pod: Netns): PluginCall {
  return {
    binary: impl.binary,
    command,
    hostNetns: impl.host.name,
    containerId,
    netns: pod.path,
    ifname: IFNAME,
    cniPath: impl.cniPath,
    config: impl.stdin,
  };
}

function failure(what: string, run: PluginRun): Error {
  const why = run.stderr.trim() || run.stdout.trim() || "(no output)";
  const how = run.signal ? `was killed by ${run.signal}` : `exited ${run.code}`;
  return new Error(`${what} ${how}: ${why.slice(0, 2000)}`);
}

/** The pod's address from an ADD result, or an error saying what was wrong with the result. */
function addedAddress(run: PluginRun, what: string): string {
  if (run.code !== 0) throw failure(what, run);
  const ips = run.json?.ips;
  const first = Array.isArray(ips) ? (ips[0] as { address?: unknown } | undefined) : undefined;
  const address = typeof first?.address === "string" ? first.address.split("/")[0]! : "";
  if (isIP(address) === 0) throw new Error(`${what} printed no result with an address: ${run.stdout.trim().slice(0, 500)}`);
  return address;
}

/** Addresses currently held, each by one pod: taking an address twice is an error. */
class AddressBook {
  private readonly owner = new Map<string, string>();
  private readonly seen = new Set<string>();
  /** Successful ADDs, one address each. */
  taken = 0;

  take(address: string, who: string): void {
    const prev = this.owner.get(address);
    if (prev) throw new Error(`duplicate address ${address}: given to ${prev} and to ${who}`);
    this.owner.set(address, who);
    this.seen.add(address);
    this.taken++;
  }

  /** Different addresses handed out over the whole run. */
  get distinct(): number {
    return this.seen.size;
  }

  releaseAll(): void {
    this.owner.clear();
  }
}

/** After DEL of every pod: no pod interface, no host veth and no address reservation may remain. */
function assertReleased(impl: Impl): void {
  const problems: string[] = [];
  const hostLeft = linkNames(impl.host.name).filter((n) => n.startsWith("trl") || n.startsWith("veth"));
  const hostVeths = ipJson<Array<{ ifname: string }>>(impl.host.name, ["link", "show", "type", "veth"]).map((l) => l.ifname);
  const left = [...new Set([...hostLeft, ...hostVeths])];
  if (left.length > 0) problems.push(`host namespace still has ${left.join(", ")}`);
  for (const pod of impl.pods) {
    const podLeft = linkNames(pod.name).filter((n) => n !== "lo");
    if (podLeft.length > 0) problems.push(`${pod.name} still has ${podLeft.join(", ")}`);
  }
  const reserved = addressFiles(path.join(impl.dataDir, impl.network));
  if (reserved.length > 0) problems.push(`IPAM still reserves ${reserved.length} address(es): ${reserved.slice(0, 5).join(", ")}`);
  if (problems.length > 0) throw new Error(`${impl.label}: DEL left state behind: ${problems.join("; ")}`);
}

// ---------------------------------------------------------------------------------------------
// Phase 1: start-up cost of the bare executables

interface StartupProbe {
  id: string;
  label: string;
  call: PluginCall;
}

function startupProbes(impls: Impl[]): StartupProbe[] {
  const trellis = impls.find((i) => i.id === "trellis")!;
  const version = (binary: string): PluginCall => ({ binary, command: "VERSION", config: "" });
  return [
    { id: "true", label: "/bin/true (spawn floor)", call: version("/bin/true") },
    { id: "nsenter-true", label: "nsenter --net=host -- /bin/true", call: { ...version("/bin/true"), hostNetns: trellis.host.name } },
    { id: "trellis", label: "trellis VERSION", call: version(trellis.binary) },
    { id: "bridge", label: "reference bridge VERSION", call: version(path.join(REFERENCE_CNI, "bridge")) },
    { id: "host-local", label: "reference host-local VERSION", call: version(path.join(REFERENCE_CNI, "host-local")) },
  ];
}

async function measureStartup(probes: StartupProbe[], runs: number, signal: AbortSignal): Promise<Map<string, Samples>> {
  const samples = new Map(probes.map((p) => [p.id, { ms: [] as number[], cpuMs: [] as number[] }]));
  const warmup = 3;
  for (let i = 0; i < warmup + runs; i++) {
    for (const probe of rotate(probes, i)) {
      const { run, ms, cpuMs } = timedCall(probe.call);
      if (run.code !== 0) throw failure(probe.label, run);
      if (i >= warmup) {
        samples.get(probe.id)!.ms.push(ms);
        samples.get(probe.id)!.cpuMs.push(cpuMs);
      }
    }
    await tick();
    signal.throwIfAborted();
  }
  return samples;
}

// ---------------------------------------------------------------------------------------------
// Phase 2: sequential ADD, then sequential DEL, interleaved pod by pod

interface Latencies {
  add: Samples;
  del: Samples;
}

async function measureSequential(impls: Impl[], opts: Options, book: AddressBook, signal: AbortSignal): Promise<Map<ImplId, Latencies>> {
  const samples = (): Samples => ({ ms: [], cpuMs: [] });
  const out = new Map(impls.map((i) => [i.id, { add: samples(), del: samples() }]));
  const record = (s: Samples, ms: number, cpuMs: number): void => {
    s.ms.push(ms);
    s.cpuMs.push(cpuMs);
  };
  const total = opts.warmup + opts.pods;
  const containerId = (i: number): string => `seq-${i}`;

  for (let i = 0; i < total; i++) {
    for (const impl of rotate(impls, i)) {
      const { run, ms, cpuMs } = timedCall(pluginCall(impl, "ADD", containerId(i), impl.pods[i]!));
      book.take(addedAddress(run, `${impl.label} ADD pod ${i}`), `${impl.id}/${containerId(i)}`);
      if (i >= opts.warmup) record(out.get(impl.id)!.add, ms, cpuMs);
    }
    await tick();
    signal.throwIfAborted();
  }

  for (let i = 0; i < total; i++) {
    for (const impl of rotate(impls, i)) {
      const { run, ms, cpuMs } = timedCall(pluginCall(impl, "DEL", containerId(i), impl.pods[i]!));
      if (run.code !== 0) throw failure(`${impl.label} DEL pod ${i}`, run);
      if (i >= opts.warmup) record(out.get(impl.id)!.del, ms, cpuMs);
    }
    await tick();
    signal.throwIfAborted();
  }
  book.releaseAll();
  for (const impl of impls) assertReleased(impl);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Phase 3: throughput with several ADDs (then DELs) in flight

/** Runs job(0..count-1) with at most `width` running at once; returns results and elapsed seconds. */
async function inFlight<T>(count: number, width: number, job: (i: number) => Promise<T>): Promise<{ results: T[]; seconds: number }> {
  const results: T[] = new Array<T>(count);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      results[i] = await job(i);
    }
  };
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: Math.min(width, count) }, worker));
  return { results, seconds: msSince(t0) / 1000 };
}

async function timedAsync(call: PluginCall): Promise<{ run: PluginRun; ms: number }> {
  const t0 = process.hrtime.bigint();
  const run = await cniAsync(call);
  return { run, ms: msSince(t0) };
}

async function throughputRound(impl: Impl, round: number, opts: Options, book: AddressBook): Promise<ThroughputRound> {
  const count = opts.pods;
  const containerId = (i: number): string => `tput${round}-${i}`;
  const cpu0 = childCpuMs();
  const adds = await inFlight(count, opts.inFlight, (i) => timedAsync(pluginCall(impl, "ADD", containerId(i), impl.pods[i]!)));
  const addCpuMs = (childCpuMs() - cpu0) / count;
  adds.results.forEach((r, i) => book.take(addedAddress(r.run, `${impl.label} ADD pod ${i} (in flight)`), `${impl.id}/${containerId(i)}`));
  const dels = await inFlight(count, opts.inFlight, (i) => timedAsync(pluginCall(impl, "DEL", containerId(i), impl.pods[i]!)));
  dels.results.forEach((r, i) => {
    if (r.run.code !== 0) throw failure(`${impl.label} DEL pod ${i} (in flight)`, r.run);
  });
  book.releaseAll();
  assertReleased(impl);
  return { addPodsPerSec: count / adds.seconds, delPodsPerSec: count / dels.seconds, addMs: adds.results.map((r) => r.ms), addCpuMs };
}

async function measureThroughput(impls: Impl[], opts: Options, book: AddressBook, signal: AbortSignal): Promise<Map<ImplId, ThroughputRound[]>> {
  const out = new Map(impls.map((i) => [i.id, [] as ThroughputRound[]]));
  for (let round = 0; round < opts.rounds; round++) {
    for (const impl of rotate(impls, round)) {
      out.get(impl.id)!.push(await throughputRound(impl, round, opts, book));
      signal.throwIfAborted();
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Setup, cleanup and the check that cleanup worked

/** trl* and veth* links of the namespace the benchmark itself runs in (the machine's root). */
function ownLinks(): Set<string> {
  const links = JSON.parse(spawnSync("ip", ["-j", "link", "show"], { encoding: "utf8" }).stdout || "[]") as Array<{ ifname: string }>;
  return new Set(links.map((l) => l.ifname).filter((n) => n.startsWith("trl") || n.startsWith("veth")));
}

type TempDirs = Array<{ dir: string; remove(): void }>;

function makeTempDir(dirs: TempDirs, prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  dirs.push({ dir, remove: () => fs.rmSync(dir, { recursive: true, force: true }) });
  return dir;
}

/** The CLI's name in the snapshot directory (the plugin is also called "trellis"). */
const SNAPSHOT_CLI = "trellis-cli";

/**
 * Copies the built trellis executables into a private directory, so that a rebuild while the
 * benchmark runs (`npm run build` in another shell) cannot swap them under it.
 */
function snapshotBuild(dirs: TempDirs): string {
  const dir = makeTempDir(dirs, "trlbench-bin-");
  for (const file of [TRELLIS, TRELLIS_IPAM]) fs.copyFileSync(file, path.join(dir, path.basename(file)));
  fs.copyFileSync(TRELLIS_CLI, path.join(dir, SNAPSHOT_CLI));
  return dir;
}

function prepare(pool: NetnsPool, opts: Options, dirs: TempDirs, env: Environment): { impls: Impl[]; bin: string } {
  const total = opts.warmup + opts.pods;
  const bin = snapshotBuild(dirs);
  const measured = path.join(bin, path.basename(TRELLIS));
  env.trellisBinary = { bytes: fs.statSync(measured).size, sha256: sha256File(measured) };
  const impls = IMPLS.map((spec) => {
    const data = makeTempDir(dirs, `trlbench-${spec.id}-`);
    const host = pool.create(`${spec.id}-host`);
    const pods = Array.from({ length: total }, (_, i) => pool.create(`${spec.id}-pod${i}`));
    const own = spec.cniPath === BUILD_CNI ? { binary: path.join(bin, path.basename(spec.binary)), cniPath: bin } : {};
    return { ...spec, ...own, host, pods, dataDir: data, stdin: networkConfig(spec, data) };
  });
  return { impls, bin };
}

/** The node-side service (`trellis cni serve`) in the host namespace of the "via node agent" run. */
async function startServices(impls: Impl[], bin: string, services: CniService[]): Promise<void> {
  for (const impl of impls.filter((i) => i.id === "trellis-agent")) {
    services.push(await startCniService(impl.host.name, agentSocketIn(impl.dataDir), path.join(bin, SNAPSHOT_CLI)));
  }
}

function checkCleanup(tag: string, dirs: Array<{ dir: string }>, linksBefore: Set<string>): CleanupCheck {
  const problems: string[] = [];
  const netns = spawnSync("ip", ["netns", "list"], { encoding: "utf8" }).stdout.split("\n").filter((l) => l.includes(tag));
  if (netns.length > 0) problems.push(`namespaces left: ${netns.map((l) => l.split(" ")[0]).join(", ")}`);
  const left = dirs.filter((d) => fs.existsSync(d.dir)).map((d) => d.dir);
  if (left.length > 0) problems.push(`temporary directories left: ${left.join(", ")}`);
  const newLinks = [...ownLinks()].filter((n) => !linksBefore.has(n));
  if (newLinks.length > 0) problems.push(`new trl*/veth links in the root namespace: ${newLinks.join(", ")}`);
  return { clean: problems.length === 0, problems };
}

// ---------------------------------------------------------------------------------------------
// What the run is traceable to

/** The versions of Bun (which compiled the executables) and of the reference plugins. */
function toolVersions(): { bun: string; referencePlugins: string } {
  let bun = "unknown";
  try {
    bun = (JSON.parse(fs.readFileSync(path.join(ROOT, "node_modules", "bun", "package.json"), "utf8")) as { version: string }).version;
  } catch {
    // not installed the usual way: leave "unknown"
  }
  return { bun, referencePlugins: commandOutput("dpkg-query", ["-W", "-f", "${Package} ${Version}", "containernetworking-plugins"]) || "unknown" };
}

/** The implementation as the JSON records it: the binary it was built as, no temporary paths. */
function implRun(impl: Impl, seq: Latencies, throughput: ThroughputRound[]): ImplRun {
  const builtAs = IMPLS.find((s) => s.id === impl.id)!.binary;
  return {
    id: impl.id,
    label: impl.label,
    reference: impl.id === "reference",
    binary: builtAs.startsWith(ROOT + path.sep) ? `${path.relative(ROOT, builtAs)} (copied at start)` : builtAs,
    config: JSON.parse(JSON.stringify(impl.stdin).replaceAll(impl.dataDir, "<tmp>")) as unknown,
    add: seq.add,
    del: seq.del,
    throughput,
  };
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const opts = parseOptions(process.argv.slice(2));
  const skip = integrationSkip();
  if (skip) throw new Error(`cannot run: ${skip}`);
  for (const bin of ["bridge", "host-local"]) {
    if (!fs.existsSync(path.join(REFERENCE_CNI, bin))) throw new Error(`cannot run: reference plugin ${path.join(REFERENCE_CNI, bin)} not found`);
  }
  if (opts.pods < 100) console.error(`note: --pods ${opts.pods} < 100, so p99 is close to the maximum`);

  const signal = interruptSignal();

  const env: Environment = environment(toolVersions());
  const linksBefore = ownLinks();
  const pool = new NetnsPool();
  const dirs: TempDirs = [];
  const book = new AddressBook();
  const services: CniService[] = [];
  let measured: { impls: ImplRun[]; startup: StartupRun[] } | undefined;
  let error: unknown;
  try {
    console.error(`preparing ${IMPLS.length} host and ${IMPLS.length * (opts.warmup + opts.pods)} pod namespaces...`);
    const { impls, bin } = prepare(pool, opts, dirs, env);
    await startServices(impls, bin, services);
    const probes = startupProbes(impls);
    console.error("start-up cost...");
    const startup = await measureStartup(probes, opts.startupRuns, signal);
    console.error("sequential ADD, then DEL...");
    const sequential = await measureSequential(impls, opts, book, signal);
    console.error(`throughput, ${opts.inFlight} in flight...`);
    const throughput = await measureThroughput(impls, opts, book, signal);
    measured = {
      impls: impls.map((impl) => implRun(impl, sequential.get(impl.id)!, throughput.get(impl.id)!)),
      startup: probes.map((p) => ({ id: p.id, label: p.label, ...startup.get(p.id)! })),
    };
  } catch (e) {
    error = e;
  } finally {
    for (const s of services) await s.stop();
    pool.cleanup();
    for (const d of dirs) d.remove();
  }
  const cleanup = checkCleanup(pool.tag, dirs, linksBefore);
  env.loadAverage.end = round3(os.loadavg()[0]!);
  if (error !== undefined || !measured) {
    if (!cleanup.clean) console.error(`cleanup FAILED: ${cleanup.problems.join("; ")}`);
    throw error;
  }
  const { pods, warmup, inFlight, rounds, startupRuns } = opts;
  const report: RunReport = {
    env,
    options: { pods, warmup, inFlight, rounds, startupRuns },
    ...measured,
    checks: { adds: book.taken, addresses: book.distinct, cleanup },
  };
  console.log(renderText(report));
  writeResults(opts.out, renderJson(report));
  return cleanup.clean ? 0 : 1;
}

main().then(
  (code) => (process.exitCode = code),
  (e: unknown) => {
    console.error(`cni-add-del: ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 1;
  },
);
