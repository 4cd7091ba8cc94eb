// Helpers for integration tests and benchmarks: uniquely named network namespaces that are always
// removed, and running the built plugin executables exactly as a runtime does (env + stdin).
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
export const BUILD_CNI = path.join(ROOT, "build", "cni");
export const TRELLIS = path.join(BUILD_CNI, "trellis");
export const TRELLIS_IPAM = path.join(BUILD_CNI, "trellis-ipam");
export const TRELLIS_CLI = path.join(ROOT, "build", "trellis");
/** Where Debian's containernetworking-plugins puts the reference plugins. */
export const REFERENCE_CNI = "/usr/lib/cni";

export const isRoot = (): boolean => process.getuid?.() === 0;

/** Skip reason for tests that need root and the built executables; undefined when they can run. */
export function integrationSkip(): string | undefined {
  if (!isRoot()) return "needs root (network namespaces)";
  if (!fs.existsSync(TRELLIS)) return "needs the built executables (npm run build)";
  return undefined;
}

/** A short random tag for names: namespaces, container ids, network names. */
export const uniq = (): string => randomBytes(4).toString("hex");

export function sh(cmd: string, args: string[], input?: string): string {
  const r = spawnSync(cmd, args, { encoding: "utf8", input });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

export interface Netns {
  name: string;
  path: string;
}

/**
 * Creates namespaces named "trltest-<tag>-<suffix>" and returns a cleanup function that removes
 * them (and so every interface in them). Call the cleanup in `finally` / `after`.
 */
export class NetnsPool {
  readonly tag = uniq();
  private readonly made: string[] = [];

  create(suffix: string): Netns {
    const name = `trltest-${this.tag}-${suffix}`;
    sh("ip", ["netns", "add", name]);
    this.made.push(name);
    sh("ip", ["-n", name, "link", "set", "lo", "up"]);
    return { name, path: `/run/netns/${name}` };
  }

  cleanup(): void {
    for (const name of this.made.splice(0).reverse()) {
      spawnSync("ip", ["netns", "del", name]);
    }
  }
}

/** A temporary directory removed by the returned function. */
export function tempDir(prefix = "trltest-"): { dir: string; remove(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

export interface PluginRun {
  code: number | null;
  /** The signal that ended the process, if it was killed. */
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON, or undefined when empty / not JSON. */
  json: Record<string, unknown> | undefined;
}

export interface PluginCall {
  binary: string;
  command: string;
  /** Namespace (by name) to run the plugin in: the "host" of the pod. */
  hostNetns?: string;
  containerId?: string;
  netns?: string;
  ifname?: string;
  cniPath?: string;
  cniArgs?: string;
  /** stdin: a string is sent as is, anything else as JSON. Ignored unless `stdin` is "config". */
  config?: unknown;
  /**
   * What the plugin's stdin is: "config" (default) the configuration, then EOF; "none" /dev/null;
   * "open" a pipe that never delivers data nor EOF, like a terminal nobody types into (async only).
   */
  stdin?: "config" | "none" | "open";
  /** Environment variables set (or, with the value undefined, removed) after the CNI_* ones. */
  extraEnv?: Record<string, string | undefined>;
  /** Kill the plugin with SIGKILL after this many milliseconds. */
  timeoutMs?: number;
  /**
   * A command that execs the plugin (e.g. `setpriv --reuid=65534 ...`), run after entering the
   * host namespace; it must exec, not fork, so that the spawned pid is the plugin's.
   */
  wrapper?: readonly string[];
  /** Kill the plugin with SIGKILL when this signal aborts (async only). */
  signal?: AbortSignal;
}

function callArgs(c: PluginCall): { file: string; args: string[]; env: Record<string, string>; input: string } {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin",
    CNI_COMMAND: c.command,
    CNI_PATH: c.cniPath ?? `${BUILD_CNI}:${REFERENCE_CNI}`,
  };
  if (c.containerId !== undefined) env.CNI_CONTAINERID = c.containerId;
  if (c.netns !== undefined) env.CNI_NETNS = c.netns;
  if (c.ifname !== undefined) env.CNI_IFNAME = c.ifname;
  if (c.cniArgs !== undefined) env.CNI_ARGS = c.cniArgs;
  for (const [k, v] of Object.entries(c.extraEnv ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  const input = c.config === undefined ? "" : typeof c.config === "string" ? c.config : JSON.stringify(c.config);
  const command = [...(c.wrapper ?? []), c.binary];
  if (c.hostNetns) return { file: "nsenter", args: [`--net=/run/netns/${c.hostNetns}`, "--", ...command], env, input };
  return { file: command[0]!, args: command.slice(1), env, input };
}

const parse = (stdout: string): Record<string, unknown> | undefined => {
  try {
    const v = JSON.parse(stdout);
    return typeof v === "object" && v !== null ? v : undefined;
  } catch {
    return undefined;
  }
};

/** Runs a plugin synchronously as a runtime would. */
export function cni(c: PluginCall): PluginRun {
  if (c.stdin === "open" || c.signal) throw new Error("cni(): stdin \"open\" and signal need cniAsync()");
  const { file, args, env, input } = callArgs(c);
  const r = spawnSync(file, args, {
    env,
    input: c.stdin === "none" ? undefined : input,
    stdio: [c.stdin === "none" ? "ignore" : "pipe", "pipe", "pipe"],
    encoding: "utf8",
    timeout: c.timeoutMs,
    killSignal: "SIGKILL",
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error && r.status === null && r.signal === null) throw r.error;
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr, json: parse(r.stdout) };
}

/** The asynchronous form, for concurrency tests; `onSpawn` gets the child's pid. */
export function cniAsync(c: PluginCall, onSpawn?: (pid: number) => void): Promise<PluginRun> {
  const { file, args, env, input } = callArgs(c);
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      env,
      stdio: [c.stdin === "none" ? "ignore" : "pipe", "pipe", "pipe"],
      signal: c.signal,
      timeout: c.timeoutMs,
      killSignal: "SIGKILL",
    });
    let stdout = "";
    let stderr = "";
    let spawnError: Error | undefined;
    child.stdout!.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    // An abort is reported here and then as a normal close with signal SIGKILL.
    child.on("error", (e) => {
      if (e.name !== "AbortError") spawnError = e;
    });
    child.on("close", (code, signal) => {
      child.stdin?.destroy(); // an "open" stdin is ours to close
      if (spawnError && code === null && signal === null) reject(spawnError);
      else resolve({ code, signal, stdout, stderr, json: parse(stdout) });
    });
    if (child.pid !== undefined) onSpawn?.(child.pid);
    if (child.stdin) {
      child.stdin.on("error", () => undefined);
      if (c.stdin !== "open") child.stdin.end(input);
    }
  });
}

/** `ip -j ...` inside a namespace (by name), parsed. */
export function ipJson<T = unknown>(netns: string, args: string[]): T {
  return JSON.parse(sh("ip", ["-n", netns, "-j", ...args]) || "[]") as T;
}

/** Names of the links in a namespace (by name). */
export function linkNames(netns: string): string[] {
  return ipJson<Array<{ ifname: string }>>(netns, ["link", "show"]).map((l) => l.ifname);
}

/** Names of the trellis host interfaces ("trl…") in a namespace. */
export const trlLinks = (netns: string): string[] => linkNames(netns).filter((n) => n.startsWith("trl"));

/**
 * Files of an IPAM network directory (<dataDir>/<network>) that reserve an address, i.e. all but
 * `lock` and `last_reserved_ip.*`; [] when the directory does not exist.
 */
export function addressFiles(networkDir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(networkDir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw e;
  }
  return names.filter((n) => n !== "lock" && !n.startsWith("last_reserved_ip.")).sort();
}

/** Pids of the processes whose network namespace is the named one. */
export function processesIn(netns: string): number[] {
  const ino = fs.statSync(`/run/netns/${netns}`).ino;
  const out: number[] = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (fs.readlinkSync(`/proc/${entry}/ns/net`) === `net:[${ino}]`) out.push(Number(entry));
    } catch {
      // the process is gone, or not ours to look at
    }
  }
  return out;
}

/**
 * Waits until no process runs in the namespace any more: a killed plugin's children (an `ip -batch`
 * it started) finish on their own, and only then is the host's state final.
 */
export async function waitUntilIdle(netns: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pids = processesIn(netns);
    if (pids.length === 0) return;
    if (Date.now() > deadline) throw new Error(`processes still running in ${netns}: ${pids.join(" ")}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * `ping -c1 -W1` from inside a namespace, retried a few times: the first packet can be lost while
 * the kernel resolves neighbours (and, for IPv6, while link-local addresses finish DAD).
 */
export function ping(fromNetns: string, to: string, attempts = 5): boolean {
  const family = to.includes(":") ? "-6" : "-4";
  for (let i = 0; i < attempts; i++) {
    const r = spawnSync("ip", ["netns", "exec", fromNetns, "ping", family, "-c1", "-W1", to], { encoding: "utf8" });
    if (r.status === 0) return true;
  }
  return false;
}

/** A `trellis cni serve` process started by a test or benchmark, ended by its pid. */
export interface CniService {
  pid: number;
  socketPath: string;
  /** What the service wrote to stdout/stderr so far. */
  output(): string;
  /** SIGTERM, then waits for the process to exit (SIGKILL after 5 s). */
  stop(): Promise<void>;
}

/**
 * Starts `trellis cni serve --socket socketPath [args...]` inside the named namespace — the
 * node-side service the plugin forwards its calls to — and waits until it listens.
 */
export async function startCniService(hostNetns: string, socketPath: string, cli = TRELLIS_CLI, args: readonly string[] = []): Promise<CniService> {
  const env = { ...process.env };
  delete env.NODE_EXTRA_CA_CERTS;
  const child = spawn("nsenter", [`--net=/run/netns/${hostNetns}`, "--", cli, "cni", "serve", "--socket", socketPath, ...args], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (out += d));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const pid = child.pid!;
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  };
  const deadline = Date.now() + 10_000;
  while (!out.includes("serving CNI calls")) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`trellis cni serve did not start: ${out.trim() || "(no output)"}`);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  return { pid, socketPath, output: () => out, stop };
}
