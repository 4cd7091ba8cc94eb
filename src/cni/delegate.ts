// Delegation to an IPAM plugin (SPEC "Delegated plugins"): found by name in CNI_PATH, run with the
// same environment (only CNI_COMMAND changed) and the complete stdin configuration; its stderr is
// forwarded, its error JSON passed up with the code it chose.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { CniError, ErrorCode } from "./errors.js";
import type { Command, Env } from "./request.js";
import { parseResult, type Result } from "./result.js";

/** First regular file named `type` in the CNI_PATH directories, or a CniError. */
export function findPlugin(type: string, dirs: readonly string[]): string {
  if (type.includes("/")) throw new CniError(ErrorCode.InvalidNetworkConfig, `invalid plugin name "${type}": contains '/'`);
  for (const dir of dirs) {
    const p = path.join(dir, type);
    try {
      if (fs.statSync(p).isFile()) return p;
    } catch {
      // not in this directory
    }
  }
  throw new CniError(ErrorCode.InvalidNetworkConfig, `failed to find plugin "${type}" in path [${dirs.join(" ")}]`);
}

export interface DelegateCall {
  command: Exclude<Command, "VERSION">;
  pluginPath: string;
  env: Env;
  stdin: string;
  cniVersion: string;
  stderr(text: string): void;
}

/** Runs the delegate; returns its parsed result for ADD, undefined otherwise. */
export function runDelegate(call: DelegateCall): Result | undefined {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(call.env)) if (v !== undefined) env[k] = v;
  env.CNI_COMMAND = call.command;
  const r = spawnSync(call.pluginPath, [], { env, input: call.stdin, encoding: "utf8", maxBuffer: 16 * 1024 * 1024 });
  if (r.stderr) call.stderr(r.stderr);
  const name = path.basename(call.pluginPath);
  if (r.error) {
    throw new CniError(ErrorCode.DelegateFailure, `cannot run IPAM plugin ${name}`, r.error.message);
  }
  const stdout = (r.stdout ?? "").trim();
  if (r.status !== 0) {
    let parsed: { code?: unknown; msg?: unknown; details?: unknown } | undefined;
    try {
      parsed = JSON.parse(stdout);
    } catch {
      parsed = undefined;
    }
    if (parsed && typeof parsed.code === "number" && typeof parsed.msg === "string") {
      throw new CniError(parsed.code, `${name}: ${parsed.msg}`, typeof parsed.details === "string" ? parsed.details : "");
    }
    const why = r.signal ? `killed by ${r.signal}` : `exit code ${r.status}`;
    throw new CniError(ErrorCode.DelegateFailure, `IPAM plugin ${name} failed (${why})`, (r.stderr || stdout).slice(0, 2000));
  }
  if (call.command !== "ADD") return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(stdout);
  } catch (e) {
    throw new CniError(ErrorCode.DecodingFailure, `IPAM plugin ${name} printed no valid result`, `${(e as Error).message}: ${stdout.slice(0, 500)}`);
  }
  return parseResult(raw, call.cniVersion);
}
