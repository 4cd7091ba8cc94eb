// Named network namespaces (/run/netns/<name>), as the lab uses them.
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import { ipBatch, KernelError, run } from "./exec.js";

export const netnsPath = (name: string): string => `/run/netns/${name}`;

export function netnsExists(name: string): boolean {
  return fs.existsSync(netnsPath(name));
}

export function listNetns(): string[] {
  try {
    return fs.readdirSync("/run/netns");
  } catch {
    return [];
  }
}

/** Creates a namespace with its loopback up. */
export function createNetns(name: string): void {
  run("ip", ["netns", "add", name]);
  ipBatch(["link set lo up"], { netns: netnsPath(name) });
}

/** Deletes a namespace (and with it every interface inside); false if it did not exist. */
export function deleteNetns(name: string): boolean {
  try {
    run("ip", ["netns", "del", name]);
    return true;
  } catch (e) {
    if (e instanceof KernelError && /No such file|not found|does not exist/i.test(e.stderr)) return false;
    throw e;
  }
}

/** `ip -batch` in a named namespace. */
export function ipBatchIn(name: string, lines: readonly string[]): void {
  ipBatch(lines, { netns: netnsPath(name) });
}

/** Writes /proc/sys values inside a namespace (sysctl -w via nsenter). */
export function sysctlIn(name: string, settings: Record<string, string>): void {
  const args = ["-q", "-w", ...Object.entries(settings).map(([k, v]) => `${k}=${v}`)];
  run("sysctl", args, { netns: netnsPath(name) });
}

/** Reads one /proc/sys value inside a namespace (`sysctl -n` via nsenter). */
export function sysctlGetIn(name: string, key: string): string {
  return run("sysctl", ["-n", key], { netns: netnsPath(name) }).stdout.trim();
}

/** Runs an executable inside a namespace with a given environment and stdin. */
export function execIn(name: string, file: string, args: readonly string[], opts: { env?: NodeJS.ProcessEnv; input?: string } = {}):
  { code: number; stdout: string; stderr: string } {
  try {
    const r = run(file, args, { netns: netnsPath(name), env: opts.env, input: opts.input });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    if (e instanceof KernelError) return { code: e.exitCode ?? 1, stdout: e.stdout, stderr: e.stderr };
    throw e;
  }
}

/** Runs a program inside a namespace on this terminal (stdio inherited); returns its exit code. */
export function execAttachedIn(name: string, file: string, args: readonly string[], env?: NodeJS.ProcessEnv): number {
  return spawnSync("nsenter", [`--net=${netnsPath(name)}`, "--", file, ...args], { stdio: "inherit", env: env ?? process.env }).status ?? 1;
}

/**
 * Starts a long-running program inside a namespace, detached, with stdout and stderr appended to
 * `logFile`; returns its pid (nsenter execs the program, so the pid is the program's own).
 */
export function spawnDetachedIn(name: string, file: string, args: readonly string[], logFile: string, env?: NodeJS.ProcessEnv): number {
  const out = fs.openSync(logFile, "a");
  try {
    const child = spawn("nsenter", [`--net=${netnsPath(name)}`, "--", file, ...args], {
      detached: true, stdio: ["ignore", out, out], env: env ?? process.env,
    });
    child.unref();
    if (child.pid === undefined) throw new Error(`cannot start ${file} in ${name}`);
    return child.pid;
  } finally {
    fs.closeSync(out);
  }
}

/**
 * Whether a process still runs. A zombie has ended: the processes the lab starts are detached, so
 * their parent is init, which may take seconds to reap them (or never, in a container whose init
 * does not reap) — waiting for the pid to vanish would stall `lab down` and agent restarts.
 */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // "pid (comm) S ...": the state follows the last ")" (comm may itself contain parentheses).
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(")") + 2));
  } catch {
    return false;
  }
}

/** Ends a process we started: SIGTERM, then SIGKILL after `graceMs`. Resolves when it is gone. */
export async function stopProcess(pid: number, graceMs = 3000): Promise<void> {
  if (!processAlive(pid)) return;
  process.kill(pid, "SIGTERM");
  const deadline = Date.now() + graceMs;
  while (processAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (processAlive(pid)) {
    process.kill(pid, "SIGKILL");
    while (processAlive(pid)) await new Promise((r) => setTimeout(r, 20));
  }
}
