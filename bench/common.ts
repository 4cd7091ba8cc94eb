// What the benchmarks (cni-add-del, multinode, policy, bgp) share: their command line, Ctrl-C, the
// private copy of the executables that a run measures, the bookkeeping of what a lab run made
// and the check that it is all gone, and a few helpers for files and text tables. Nothing in
// here measures anything; each benchmark keeps its own method.
//
// The lab code (src/lab/lab.js: policy compiler, datastore clients, ~10 MB of process) is loaded
// only when a lab run needs it: cni-add-del times plugin processes forked from this process, and
// a larger process makes every fork slower.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as delay } from "node:timers/promises";
import { parseArgs, type ParseArgsConfig } from "node:util";
import type { LabTools } from "../src/lab/lab.js";
import { listNetns, netnsPath, processAlive, stopProcess } from "../src/kernel/netns.js";
import { BUILD_CNI, ROOT, TRELLIS_CLI } from "../test/helpers/netns.js";
import { round3 } from "./stats.js";

// ---------------------------------------------------------------------------------------------
// Command line

type Flags = NonNullable<ParseArgsConfig["options"]>;
/** What parseArgs makes of `flags`, typed as precisely as parseArgs types it. */
type Values<F extends Flags> = ReturnType<typeof parseArgs<{ args: string[]; options: F }>>["values"];

/** The options given in `argv` (with their defaults), strictly parsed; --help prints `usage` and exits. */
export function commandLine<const F extends Flags>(argv: string[], usage: string, flags: F): Values<F> {
  const { values } = parseArgs({ args: argv, options: { ...flags, help: { type: "boolean", default: false } } });
  if ((values as { help?: boolean }).help) {
    console.log(usage);
    process.exit(0);
  }
  return values as Values<F>;
}

/** The value of --`name` as a whole number of at least `min`. */
export function wholeNumber(name: string, text: string, min: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min) throw new Error(`--${name} ${JSON.stringify(text)}: a whole number >= ${min} is needed`);
  return n;
}

/** The value of --parts: a comma-separated subset of `all`. */
export function partsOf<P extends string>(text: string, all: readonly P[]): Set<P> {
  const parts = new Set(text.split(",").map((p) => p.trim()).filter(Boolean));
  for (const p of parts) if (!(all as readonly string[]).includes(p)) throw new Error(`--parts: unknown part "${p}" (${all.join(", ")})`);
  return parts as Set<P>;
}

/** Throws unless this process runs as root (lab runs make network namespaces) and every command in `tools` is on PATH. */
export function requireRootAnd(tools: readonly string[]): void {
  if (process.getuid?.() !== 0) throw new Error("cannot run: needs root (network namespaces)");
  for (const tool of tools) {
    if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) throw new Error(`cannot run: ${tool} not found${tool === "iperf3" ? " (apt-get install -y iperf3)" : ""}`);
  }
}

/** Where lab progress goes: stderr, indented, with --verbose; nowhere without. */
export const progress = (verbose: boolean) => (line: string): void => {
  if (verbose) console.error(`    ${line}`);
};

/** A signal that SIGINT (Ctrl-C) or SIGTERM aborts, so that the run stops at the next check and its `finally` cleans up. */
export function interruptSignal(): AbortSignal {
  const ac = new AbortController();
  for (const sig of ["SIGINT", "SIGTERM"] as const) process.once(sig, () => ac.abort(new Error(`interrupted by ${sig}`)));
  return ac.signal;
}

// ---------------------------------------------------------------------------------------------
// Processes and files

/** Runs a command to completion; its stdout, or an error saying how it failed. */
export function run(cmd: string, args: readonly string[], input?: string): string {
  const r = spawnSync(cmd, args, { encoding: "utf8", input, maxBuffer: 256 * 1024 * 1024 });
  if (r.error) throw new Error(`${cmd} ${args.join(" ")}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ").slice(0, 200)} exited ${r.status ?? r.signal}: ${(r.stderr || r.stdout).trim().slice(0, 500)}`);
  return r.stdout;
}

/** `cmd args` run inside a network namespace, as arguments for spawn/run. */
export const inNetns = (netns: string, cmd: string, ...args: string[]): [string, string[]] => ["nsenter", [`--net=${netnsPath(netns)}`, "--", cmd, ...args]];

/** The wall clock (CLOCK_REALTIME, ms): the clock of `ip -ts` and of the agent's log timestamps. */
export const wallNow = (): number => Date.now();

export interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion without blocking the event loop (monitors keep reading). */
export function runAsync(cmd: string, args: readonly string[], signal: AbortSignal, timeoutMs = 60_000): Promise<Finished> {
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
export function ipBatch(netns: string, lines: readonly string[]): void {
  run("ip", ["-n", netns, "-batch", "-"], lines.join("\n") + "\n");
}

export async function waitFor(what: string, timeoutMs: number, signal: AbortSignal, probe: () => boolean, everyMs = 10): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    signal.throwIfAborted();
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await delay(everyMs, undefined, { signal });
  }
}

/** Clock ticks per second, the unit of the CPU times in /proc/<pid>/stat. */
export const CLK_TCK = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim()) || 100;

/** What `file` holds from byte `offset` on ("" if it cannot be read). */
export function readFrom(file: string, offset: number): string {
  try {
    const fd = fs.openSync(file, "r");
    try {
      const buf = Buffer.alloc(Math.max(0, fs.fstatSync(fd).size - offset));
      fs.readSync(fd, buf, 0, buf.length, offset);
      return buf.toString("utf8");
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return "";
  }
}

/** The size of `file` in bytes, 0 if there is none. */
export const sizeOf = (file: string): number => (fs.existsSync(file) ? fs.statSync(file).size : 0);

/**
 * SHA-256 of a file, read 1 MiB at a time. Reading the 111 MB executable in one piece would keep
 * it in this process's memory, and every later fork() (each process a benchmark spawns) would
 * copy its page tables: that once made the /bin/true floor 11 ms instead of 2.
 */
export function sha256File(file: string): string {
  const hash = createHash("sha256");
  const chunk = Buffer.allocUnsafe(1 << 20);
  const fd = fs.openSync(file, "r");
  try {
    for (let n = fs.readSync(fd, chunk); n > 0; n = fs.readSync(fd, chunk)) hash.update(chunk.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest("hex");
}

// ---------------------------------------------------------------------------------------------
// What a lab run made, and the check that it is gone

/** Every lab, namespace, child process and directory a run made, so that `finally` removes exactly that. */
export class Made {
  readonly labs: string[] = [];
  readonly netns: string[] = [];
  readonly children = new Set<ChildProcess>();
  readonly dirs: string[] = [];

  /** A new namespace with its loopback up. */
  createNetns(name: string): string {
    run("ip", ["netns", "add", name]);
    this.netns.push(name);
    run("ip", ["-n", name, "link", "set", "lo", "up"]);
    return name;
  }

  /** Spawns a child we keep an eye on; it is ended (by pid) at cleanup if still running. */
  spawn(cmd: string, args: readonly string[], opts: { env?: NodeJS.ProcessEnv; stdin?: boolean; output?: boolean } = {}): ChildProcess {
    const child = spawn(cmd, args, { stdio: [opts.stdin ? "pipe" : "ignore", opts.output ? "pipe" : "ignore", "ignore"], env: opts.env ?? process.env });
    this.children.add(child);
    child.on("close", () => this.children.delete(child));
    child.on("error", () => undefined);
    return child;
  }

  /** Ends the given children (default: all still running), by pid; the errors. */
  async stopChildren(which: Iterable<ChildProcess> = [...this.children]): Promise<string[]> {
    const errors: string[] = [];
    for (const c of which) {
      if (c.pid !== undefined && c.exitCode === null && c.signalCode === null) {
        try {
          await stopProcess(c.pid, 1000);
        } catch (e) {
          errors.push(`pid ${c.pid}: ${(e as Error).message}`);
        }
      }
    }
    return errors;
  }

  /** Removes the labs made so far, newest first (their namespaces and processes); the errors. */
  async removeLabs(tools: LabTools | undefined, say: (l: string) => void): Promise<string[]> {
    const { labDown } = await import("../src/lab/lab.js");
    const errors: string[] = [];
    for (const lab of [...this.labs].reverse()) {
      try {
        const r = await labDown(lab, tools ?? { cniBinDir: BUILD_CNI }, () => undefined);
        errors.push(...r.errors.map((e) => `lab ${lab}: ${e}`));
        say(`lab ${lab} removed (${r.deletedNetns.length} namespaces)`);
        this.labs.splice(this.labs.indexOf(lab), 1);
      } catch (e) {
        errors.push(`lab ${lab}: ${(e as Error).message}`);
      }
    }
    return errors;
  }

  /** Ends the children, then removes the labs, the namespaces and the directories; the errors. */
  async cleanup(tools: LabTools | undefined, say: (l: string) => void): Promise<string[]> {
    const errors = [...await this.stopChildren(), ...await this.removeLabs(tools, say)];
    for (const ns of this.netns.splice(0).reverse()) {
      const r = spawnSync("ip", ["netns", "del", ns], { encoding: "utf8" });
      if (r.status !== 0 && !/No such file/.test(r.stderr)) errors.push(`namespace ${ns}: ${r.stderr.trim()}`);
    }
    for (const d of this.dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
    return errors;
  }
}

/** The executables a lab run uses, with the trellis executable's size and digest. */
export type CopiedTools = LabTools & { sha256: string; bytes: number };

/**
 * Copies the built executables (trellis, and the plugins in cni/) into a directory of the run,
 * so that a rebuild during the run (`npm run build` in another shell) cannot swap what is measured.
 */
function copyTools(made: Made, bench: string): CopiedTools {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `trlbench-${bench}-`));
  made.dirs.push(dir);
  fs.mkdirSync(path.join(dir, "cni"));
  for (const [from, to] of [[TRELLIS_CLI, "trellis"], [path.join(BUILD_CNI, "trellis"), "cni/trellis"], [path.join(BUILD_CNI, "trellis-ipam"), "cni/trellis-ipam"]] as const) {
    if (!fs.existsSync(from)) throw new Error(`${from} not found: run "npm run build"`);
    fs.copyFileSync(from, path.join(dir, to));
    fs.chmodSync(path.join(dir, to), 0o755);
  }
  const bin = path.join(dir, "trellis");
  return { cniBinDir: path.join(dir, "cni"), trellisBin: bin, sha256: sha256File(bin), bytes: fs.statSync(bin).size };
}

export interface CleanupCheck {
  clean: boolean;
  problems: string[];
}

/**
 * After `made.cleanup`: its errors, and whatever is still there of the run — namespaces whose
 * name holds `tag`, any of the `labs` that still has a state file, children still alive.
 */
async function checkCleanup(tag: string, labs: readonly string[], made: Made, errors: string[]): Promise<CleanupCheck> {
  const { readState } = await import("../src/lab/lab.js");
  const problems = [...errors];
  const left = listNetns().filter((n) => n.includes(tag));
  if (left.length > 0) problems.push(`namespaces left: ${left.join(", ")}`);
  const labsLeft = labs.filter((l) => readState(l));
  if (labsLeft.length > 0) problems.push(`labs left: ${labsLeft.join(", ")}`);
  const running = [...made.children].filter((c) => c.pid !== undefined && processAlive(c.pid));
  if (running.length > 0) problems.push(`processes left: ${running.map((c) => c.pid).join(", ")}`);
  return { clean: problems.length === 0, problems };
}

/**
 * A lab run: copies the executables (their size and digest go into `env`), runs `body`, then, also
 * on error or Ctrl-C, removes everything it made and checks that namespaces holding `tag`, the
 * `labs` and the children are gone. Sets the load average at the end and says how long it took.
 * Returns that check; an error of `body` is thrown again after the cleanup.
 */
export async function labRun(bench: string, env: Environment, tag: string, labs: readonly string[], say: (l: string) => void,
  body: (made: Made, tools: CopiedTools) => Promise<void>): Promise<CleanupCheck> {
  const made = new Made();
  let tools: CopiedTools | undefined;
  let error: unknown;
  let cleanup: CleanupCheck = { clean: false, problems: [] };
  const started = Date.now();
  try {
    tools = copyTools(made, bench);
    env.trellisBinary = { bytes: tools.bytes, sha256: tools.sha256 };
    await body(made, tools);
  } catch (e) {
    error = e;
  } finally {
    const errors = await made.cleanup(tools, say);
    cleanup = await checkCleanup(tag, labs, made, errors);
  }
  env.loadAverage.end = round3(os.loadavg()[0]!);
  console.error(`done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  if (error !== undefined) {
    if (!cleanup.clean) console.error(`cleanup FAILED: ${cleanup.problems.join("; ")}`);
    throw error;
  }
  return cleanup;
}

/** The last line of a report: the run left nothing behind, or what it did leave. */
export const cleanupLine = (c: CleanupCheck): string =>
  c.clean ? "cleanup: everything this run made is gone" : `cleanup PROBLEMS: ${c.problems.join("; ")}`;

// ---------------------------------------------------------------------------------------------
// What a run is traceable to, and where its results go

/** Trimmed stdout of a command run in the repository ("" if it could not run). */
export const commandOutput = (cmd: string, args: string[]): string => spawnSync(cmd, args, { encoding: "utf8", cwd: ROOT }).stdout?.trim() ?? "";

export interface Environment {
  date: string;
  kernel: string;
  cpus: number;
  cpuModel: string;
  node: string;
  git: { commit: string; dirty: boolean };
  /** The trellis executable that was measured (the copy taken at start); filled in by the benchmark. */
  trellisBinary: { bytes: number; sha256: string };
  /** 1-minute load average when the run started and when it ended (set at the end): other work on the machine. */
  loadAverage: { start: number; end: number };
}

/** The machine, the commit and the load now; `tools` (tool versions) go after `node`, as in the results files. */
export function environment<T extends Record<string, string>>(tools: T): Environment & T {
  const base = { date: new Date().toISOString(), kernel: os.release(), cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? "unknown", node: process.version };
  return {
    ...base,
    ...tools,
    git: { commit: commandOutput("git", ["rev-parse", "HEAD"]) || "unknown", dirty: commandOutput("git", ["status", "--porcelain", "--untracked-files=no"]) !== "" },
    trellisBinary: { bytes: 0, sha256: "" },
    loadAverage: { start: round3(os.loadavg()[0]!), end: Number.NaN },
  };
}

/** Writes the results JSON (making its directory) and says where. */
export function writeResults(file: string, data: unknown): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(data, null, 2) + "\n");
  console.log(`\nresults: ${path.relative(process.cwd(), file) || file}`);
}

// ---------------------------------------------------------------------------------------------
// Text output

/** Columns padded to width: the first left-aligned, the others right-aligned; a rule under the header. */
export function table(header: string[], rows: string[][]): string {
  const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]): string => r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join("  ");
  return [line(header), w.map((n) => "-".repeat(n)).join("  "), ...rows.map(line)].join("\n");
}

/** A number with 0, 1 or 2 decimals; "-" for NaN and infinities. */
export const f0 = (x: number): string => (Number.isFinite(x) ? x.toFixed(0) : "-");
export const f1 = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : "-");
export const f2 = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : "-");

/** a / b, NaN unless b > 0. */
export const ratio = (a: number, b: number): number => (b > 0 ? a / b : Number.NaN);

/**
 * A benchmark's helper process (a prober, a client, a server inside a namespace) that takes JSON
 * lines on stdin and answers with JSON lines `{"event": ...}` on stdout. Started through `made`,
 * so it is ended by pid at cleanup.
 */
export class JsonLinesProcess {
  private readonly events: Array<Record<string, unknown>> = [];
  private wake: (() => void) | undefined;
  readonly child: ChildProcess;

  constructor(made: Made, cmd: string, args: readonly string[], private readonly name: string) {
    this.child = made.spawn(cmd, args, { stdin: true, output: true });
    createInterface({ input: this.child.stdout! }).on("line", (line) => {
      try {
        this.events.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        return;
      }
      this.wake?.();
    });
  }

  send(c: Record<string, unknown>): void {
    this.child.stdin!.write(JSON.stringify(c) + "\n");
  }

  /** The next line, which must be `event`; fails after `timeoutMs`, when the process exits, or on abort. */
  async expect(event: string, timeoutMs: number, signal: AbortSignal): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    while (this.events.length === 0) {
      signal.throwIfAborted();
      if (Date.now() > deadline) throw new Error(`${this.name} (pid ${this.child.pid}) said nothing for ${timeoutMs / 1000} s (waiting for "${event}")`);
      if (this.child.exitCode !== null) throw new Error(`${this.name} (pid ${this.child.pid}) exited (${this.child.exitCode}) before "${event}"`);
      await Promise.race([new Promise<void>((r) => (this.wake = r)), delay(200, undefined, { signal })]);
    }
    const e = this.events.shift()!;
    if (e.event !== event) throw new Error(`${this.name}: expected "${event}", got ${JSON.stringify(e).slice(0, 300)}`);
    return e;
  }
}
