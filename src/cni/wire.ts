// The plugin ↔ node agent protocol: one CNI call per connection on a unix socket. Pure.
//
// Why it exists: most of a CNI call's time is the plugin process starting. When the node's
// agent is running, the plugin executable only forwards what the runtime gave it (environment and
// stdin) to the agent, which has the plugin's code loaded and warm, and prints what comes back.
// With no agent — or one that cannot serve this call — the plugin does the work itself; both paths
// run the same handlers, so the result is the same.
//
// Framing: the client writes one JSON request and shuts down its write side; the server answers
// with one JSON reply and closes. A reply is either the call's outcome (exit code, stdout, stderr)
// or `fallback` with a reason — the server did nothing and the client must run the call itself.

export const WIRE_VERSION = 1;

/** Where the plugin looks for the agent when the network config does not say (`agentSocket`). */
export const DEFAULT_AGENT_SOCKET = "/run/trellis/cni.sock";

/** Requests larger than this are refused (a network config is a few kilobytes). */
export const MAX_REQUEST_BYTES = 4 * 1024 * 1024;

export interface WireRequest {
  v: number;
  /** The plugin's whole environment as the runtime set it. */
  env: Record<string, string>;
  /** The network configuration exactly as read from stdin. */
  stdin: string;
  /** The caller's network namespace, as /proc/thread-self/ns/net reads (`net:[4026531993]`). */
  netns: string;
}

export type WireReply =
  | { v: number; code: number; stdout: string; stderr: string }
  | { v: number; fallback: string };

/**
 * The socket to try for this network config: `agentSocket` when it is an absolute path, the
 * default when the key is absent or stdin is not JSON (the agent then reports the decoding error
 * the same way the plugin would), and undefined — run in-process — when it is "" or not a usable
 * path (the in-process plugin then rejects the bad value with its field name).
 */
export function agentSocketFor(stdin: string): string | undefined {
  let config: unknown;
  try {
    config = JSON.parse(stdin);
  } catch {
    return DEFAULT_AGENT_SOCKET;
  }
  if (typeof config !== "object" || config === null || !("agentSocket" in config)) return DEFAULT_AGENT_SOCKET;
  const socket = (config as { agentSocket: unknown }).agentSocket;
  return typeof socket === "string" && socket.startsWith("/") ? socket : undefined;
}

/** The cniVersion a config asks for, for an error the client itself must report. */
export function requestedVersion(stdin: string, fallback: string): string {
  try {
    const v = (JSON.parse(stdin) as { cniVersion?: unknown }).cniVersion;
    return typeof v === "string" && v !== "" ? v : fallback;
  } catch {
    return fallback;
  }
}

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null && !Array.isArray(x);

/** Parses a request, or says which field is wrong. */
export function decodeRequest(text: string): WireRequest | { error: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    return { error: `request is not JSON: ${(e as Error).message}` };
  }
  if (!isObject(raw)) return { error: "request is not a JSON object" };
  if (raw.v !== WIRE_VERSION) return { error: `request version ${JSON.stringify(raw.v)}, this agent speaks ${WIRE_VERSION}` };
  if (!isObject(raw.env) || !Object.values(raw.env).every((v) => typeof v === "string")) {
    return { error: "request env must be an object of strings" };
  }
  if (typeof raw.stdin !== "string") return { error: "request stdin must be a string" };
  if (typeof raw.netns !== "string") return { error: "request netns must be a string" };
  return { v: WIRE_VERSION, env: raw.env as Record<string, string>, stdin: raw.stdin, netns: raw.netns };
}

/** Parses a reply, or says what was wrong with it. */
export function decodeReply(text: string): WireReply | { error: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    return { error: text === "" ? "no reply (connection closed)" : `reply is not JSON: ${(e as Error).message}` };
  }
  if (!isObject(raw)) return { error: "reply is not a JSON object" };
  if (raw.v !== WIRE_VERSION) return { error: `reply version ${JSON.stringify(raw.v)}, this plugin speaks ${WIRE_VERSION}` };
  if (typeof raw.fallback === "string") return { v: WIRE_VERSION, fallback: raw.fallback };
  if (typeof raw.code !== "number" || !Number.isInteger(raw.code) || raw.code < 0 || raw.code > 255) {
    return { error: `reply code ${JSON.stringify(raw.code)} is not an exit code` };
  }
  if (typeof raw.stdout !== "string" || typeof raw.stderr !== "string") return { error: "reply stdout and stderr must be strings" };
  return { v: WIRE_VERSION, code: raw.code, stdout: raw.stdout, stderr: raw.stderr };
}
