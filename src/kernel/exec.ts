// The one place that starts kernel tools (ip, bridge, nft, nsenter, sysctl, bird).
//
// Calls are synchronous: the CNI plugin is a short-lived process that does one thing at a time,
// and spawnSync avoids the event-loop round trips of spawn(). Long-running daemons (the agent)
// use runAsync. A failed command becomes a KernelError carrying the command, its exit code and
// its stderr, so messages can say exactly what the kernel refused.
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { skippable, type NetOp } from "./ops.js";

export class KernelError extends Error {
  readonly command: string;
  readonly exitCode: number | null;
  readonly stderr: string;
  readonly stdout: string;
  private readonly failedLine: number | undefined;
  constructor(command: string, exitCode: number | null, stderr: string, stdout = "", failedLine?: number) {
    const why = stderr.trim().split("\n").filter(Boolean).slice(-3).join("; ") || `exit code ${exitCode}`;
    super(`${command}: ${why}`);
    this.name = "KernelError";
    this.command = command;
    this.exitCode = exitCode;
    this.stderr = stderr;
    this.stdout = stdout;
    this.failedLine = failedLine;
  }
  /** For a batch (ip -batch or netlink): the 1-based operation that failed, if known. */
  get failedBatchLine(): number | undefined {
    if (this.failedLine !== undefined) return this.failedLine;
    const m = /Command failed -:(\d+)/.exec(this.stderr);
    return m ? Number(m[1]) : undefined;
  }
  get notFound(): boolean {
    return /Cannot find device|does not exist|No such (device|file|process)|not found/i.test(this.stderr);
  }
  get exists(): boolean {
    return /File exists/i.test(this.stderr);
  }
}

export interface RunOptions {
  /** Network namespace path to run in, via `nsenter --net=<path>`. */
  netns?: string;
  /** Text written to the command's stdin. */
  input?: string;
  /** Environment of the command (default: this process's). */
  env?: NodeJS.ProcessEnv;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

function argv(cmd: string, args: readonly string[], netns?: string): [string, string[]] {
  return netns ? ["nsenter", [`--net=${netns}`, "--", cmd, ...args]] : [cmd, [...args]];
}

const show = (cmd: string, args: readonly string[], netns?: string): string =>
  `${netns ? `nsenter --net=${netns} ` : ""}${cmd} ${args.join(" ")}`.trim();

/** Runs a command to completion; throws KernelError on a non-zero exit. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): RunResult {
  const [file, fullArgs] = argv(cmd, args, opts.netns);
  const r = spawnSync(file, fullArgs, {
    input: opts.input,
    env: opts.env,
    encoding: "utf8",
    stdio: ["pipe", "pipe", "pipe"],
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error) throw new KernelError(show(cmd, args, opts.netns), null, String(r.error.message));
  if (r.status !== 0) throw new KernelError(show(cmd, args, opts.netns), r.status, r.stderr ?? "", r.stdout ?? "");
  return { stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

/** The asynchronous form, for long-lived processes that must not block their event loop. */
export function runAsync(cmd: string, args: readonly string[], opts: RunOptions & { signal?: AbortSignal } = {}): Promise<RunResult> {
  const [file, fullArgs] = argv(cmd, args, opts.netns);
  return new Promise((resolve, reject) => {
    const child = spawn(file, fullArgs, { stdio: ["pipe", "pipe", "pipe"], signal: opts.signal, env: opts.env });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.on("error", (e) => reject(new KernelError(show(cmd, args, opts.netns), null, e.message)));
    child.on("close", (code) => {
      if (code === 0) resolve({ stdout, stderr });
      else reject(new KernelError(show(cmd, args, opts.netns), code, stderr, stdout));
    });
    // A command that exits without reading its input (an error, or nothing to read) closes the
    // pipe: that EPIPE is not ours to crash on — the exit code says what happened.
    child.stdin.on("error", () => undefined);
    child.stdin.end(opts.input ?? "");
  });
}

/**
 * How to run `ip` inside the namespace at `path`: a namespace under /run/netns (where runtimes
 * and `ip netns add` put them) can be named with `ip -n`, which saves starting nsenter (~2.5 ms
 * per call); any other path (/proc/<pid>/ns/net, ...) goes through nsenter.
 */
export function ipNetnsArgs(path: string | undefined): { args: string[]; netns?: string } {
  if (!path) return { args: [] };
  const m = /^(?:\/var)?\/run\/netns\/([^/]+)$/.exec(path);
  if (m && existsSync(`/var/run/netns/${m[1]}`)) return { args: ["-n", m[1]!] };
  return { args: [], netns: path };
}

/**
 * Runs `ip -batch -` with the given lines (one `ip` process for many operations). It stops at the
 * first failing line, unless `force`: then every line runs and each failure is reported on stderr.
 */
export function ipBatch(lines: readonly string[], opts: { netns?: string; json?: boolean; family?: 4 | 6; force?: boolean } = {}): string {
  if (lines.length === 0) return "";
  const ns = ipNetnsArgs(opts.netns);
  const args = [...ns.args, ...(opts.json ? ["-j"] : []), ...(opts.family ? [`-${opts.family}`] : []), ...(opts.force ? ["-force"] : []), "-batch", "-"];
  return run("ip", args, { netns: ns.netns, input: lines.join("\n") + "\n" }).stdout;
}

/** Each failed line (1-based) of an `ip -force -batch`, with what `ip` printed about it just before. */
export function batchFailures(stderr: string): Array<{ line: number; message: string }> {
  const out: Array<{ line: number; message: string }> = [];
  let said: string[] = [];
  for (const text of stderr.split("\n")) {
    const m = /^Command failed -:(\d+)$/.exec(text.trim());
    if (m) {
      out.push({ line: Number(m[1]), message: said.join("\n") });
      said = [];
    } else if (text.trim() !== "") {
      said.push(text.trim());
    }
  }
  return out;
}

/**
 * Reads the error of an `ip -force -batch` of `ops`: when the only failures are `skipIfExists`
 * operations that found their object already there ("File exists"), returns their 0-based
 * indexes; otherwise throws a KernelError for the first other failure, naming its line, as a batch
 * without -force would have.
 */
export function skippedInForcedBatch(ops: readonly NetOp[], e: KernelError): number[] {
  const failures = batchFailures(e.stderr);
  if (failures.length === 0) throw e;
  const real = failures.find((f) => !(ops[f.line - 1] && skippable(ops[f.line - 1]!) && /File exists/i.test(f.message)));
  if (real) throw new KernelError(e.command, e.exitCode, `${real.message}\nCommand failed -:${real.line}\n`, e.stdout, real.line);
  return failures.map((f) => f.line - 1);
}
