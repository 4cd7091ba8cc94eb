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
  config: unknown;
  extraEnv?: Record<string, string>;
}

function callArgs(c: PluginCall): { file: string; args: string[]; env: Record<string, string>; input: string } {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin",
    CNI_COMMAND: c.command,
    CNI_PATH: c.cniPath ?? `${BUILD_CNI}:${REFERENCE_CNI}`,
    ...c.extraEnv,
  };
  if (c.containerId !== undefined) env.CNI_CONTAINERID = c.containerId;
  if (c.netns !== undefined) env.CNI_NETNS = c.netns;
  if (c.ifname !== undefined) env.CNI_IFNAME = c.ifname;
  if (c.cniArgs !== undefined) env.CNI_ARGS = c.cniArgs;
  const input = typeof c.config === "string" ? c.config : JSON.stringify(c.config);
  if (c.hostNetns) return { file: "nsenter", args: [`--net=/run/netns/${c.hostNetns}`, "--", c.binary], env, input };
  return { file: c.binary, args: [], env, input };
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
  const { file, args, env, input } = callArgs(c);
  const r = spawnSync(file, args, { env, input, encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, json: parse(r.stdout) };
}

/** The asynchronous form, for concurrency tests; `onSpawn` gets the child (to kill it). */
export function cniAsync(c: PluginCall, onSpawn?: (pid: number) => void): Promise<PluginRun> {
  const { file, args, env, input } = callArgs(c);
  return new Promise((resolve) => {
    const child = spawn(file, args, { env });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.on("close", (code) => resolve({ code, stdout, stderr, json: parse(stdout) }));
    if (child.pid !== undefined) onSpawn?.(child.pid);
    child.stdin.on("error", () => undefined);
    child.stdin.end(input);
  });
}

/** `ip -j ...` inside a namespace (by name), parsed. */
export function ipJson<T = unknown>(netns: string, args: string[]): T {
  return JSON.parse(sh("ip", ["-n", netns, "-j", ...args]) || "[]") as T;
}
