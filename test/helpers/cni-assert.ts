// Assertions on what a plugin process printed, in the terms of the CNI spec.
import assert from "node:assert/strict";
import type { PluginRun } from "./netns.js";

/**
 * Error codes a plugin may use: the spec's table (1-7, 11, 50, 51), 8 (libcni's ErrInvalidNetNS,
 * which runtimes know), and the plugin-specific range 100+ (999 being the generic internal error).
 */
export function isAllowedErrorCode(code: number): boolean {
  return Number.isInteger(code) && ((code >= 1 && code <= 8) || code === 11 || code === 50 || code === 51 || code >= 100);
}

export interface CniErrorOut {
  code: number;
  msg: string;
  details?: string;
  cniVersion?: string;
}

const show = (r: PluginRun): string =>
  `exit ${r.code}${r.signal ? ` (${r.signal})` : ""}\nstdout: ${r.stdout.slice(0, 2000)}\nstderr: ${r.stderr.slice(0, 2000)}`;

/** stdout holds exactly one JSON object (and at most surrounding whitespace); returns it. */
export function singleJsonObject(r: PluginRun): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(r.stdout);
  } catch {
    assert.fail(`stdout is not exactly one JSON document\n${show(r)}`);
  }
  assert.ok(typeof v === "object" && v !== null && !Array.isArray(v), `stdout is not a JSON object\n${show(r)}`);
  return v as Record<string, unknown>;
}

/**
 * The run failed the CNI way: non-zero exit and exactly one error object on stdout with a numeric
 * spec-compatible `code` and a string `msg`. Optionally the code is `expect.code` and the message
 * (with details) matches `expect.msg`.
 */
export function assertCniError(r: PluginRun, expect: { code?: number; msg?: RegExp } = {}): CniErrorOut {
  assert.ok(r.code !== 0 && r.signal === null, `expected a failure exit, got ${show(r)}`);
  const o = singleJsonObject(r);
  assert.equal(typeof o.code, "number", `error has no numeric code\n${show(r)}`);
  assert.equal(typeof o.msg, "string", `error has no string msg\n${show(r)}`);
  assert.ok(isAllowedErrorCode(o.code as number), `error code ${o.code} is not a spec or plugin code\n${show(r)}`);
  if (o.details !== undefined) assert.equal(typeof o.details, "string", `details is not a string\n${show(r)}`);
  if (expect.code !== undefined) assert.equal(o.code, expect.code, `wrong error code\n${show(r)}`);
  if (expect.msg) assert.match(`${o.msg} ${o.details ?? ""}`, expect.msg, `wrong error message\n${show(r)}`);
  return o as unknown as CniErrorOut;
}

/** The run succeeded and printed nothing (DEL, CHECK, GC, STATUS). */
export function assertSilentSuccess(r: PluginRun): void {
  assert.equal(r.code, 0, `expected success, got ${show(r)}`);
  assert.equal(r.stdout, "", `expected empty stdout, got ${show(r)}`);
}

/** The run succeeded with one JSON object on stdout (ADD, VERSION); returns it. */
export function assertJsonSuccess(r: PluginRun): Record<string, unknown> {
  assert.equal(r.code, 0, `expected success, got ${show(r)}`);
  return singleJsonObject(r);
}
