// Named network namespaces (/run/netns/<name>), as the lab uses them.
import * as fs from "node:fs";
import { ipBatch, KernelError, run, runAsync } from "./exec.js";

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

/** One ICMP echo from inside `name` to `ip`; true when answered within the timeout. */
export async function pingFrom(name: string, ip: string, timeoutSeconds = 1): Promise<boolean> {
  const v6 = ip.includes(":");
  try {
    await runAsync("ping", [...(v6 ? ["-6"] : []), "-c", "1", "-W", String(timeoutSeconds), "-q", ip], { netns: netnsPath(name) });
    return true;
  } catch {
    return false;
  }
}

/** Runs an executable inside a namespace with a given environment and stdin. */
export function execIn(name: string, file: string, opts: { env: NodeJS.ProcessEnv; input: string }): { code: number; stdout: string; stderr: string } {
  try {
    const r = run(file, [], { netns: netnsPath(name), env: opts.env, input: opts.input });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    if (e instanceof KernelError) return { code: e.exitCode ?? 1, stdout: e.stdout, stderr: e.stderr };
    throw e;
  }
}
