// The etcd datastore: etcd v3 through its JSON gRPC gateway (/v3/...), for clusters of machines.
//
// Why the gateway and not gRPC: it is part of every etcd v3 server, needs only node:http(s) (which
// Node and Bun both implement, TLS client certificates included), and adds no dependency. Keys and
// values travel base64-encoded, int64 fields as decimal strings, zero values are omitted.
//
// Conditional writes are transactions: create compares create_revision == 0; update and guarded
// delete compare mod_revision == expected. A TTL is a lease granted for that one write; writing
// the key again attaches a new lease and the old one is revoked (best effort: an orphaned lease
// only expires). Watches are POST /v3/watch streams of JSON objects; a broken stream is reported
// as {resync} and re-opened from the last delivered revision + 1, with backoff, until aborted.
import * as fs from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import {
  DatastoreError, type Datastore, type KeyValue, type ListResult, type WatchEvent, type WatchMessage,
  type WriteOptions,
} from "./types.js";

export interface EtcdOptions {
  /** Client URLs, tried in turn when one cannot be reached: "http://127.0.0.1:2379", "https://…". */
  endpoints: string[];
  /** PEM files for https endpoints: the CA that signed the servers, our client certificate and key. */
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  /** A request with no answer for this long fails as "unavailable"; default 10 s. */
  requestTimeoutMs?: number;
  /** Watch reconnection backoff: first delay and cap; defaults 100 ms and 5 s. */
  backoffMs?: { initial: number; max: number };
  /**
   * While a watch stream is open, ask its server something this often (a count-only range); no
   * answer within `timeoutMs` means a frozen server or a dead path, and the stream is re-opened
   * (with a resync). A silent stream alone cannot tell "no changes" from "no server": TCP
   * keepalive takes minutes and the gateway has no ping. Defaults 30 s and 5 s; intervalMs 0 = off.
   */
  watchProbe?: { intervalMs: number; timeoutMs: number };
  /** Where problems that reach no caller go (a watch handler threw); default stderr. */
  warn?: (message: string) => void;
}

// ---- wire format ----

interface RawKv { key?: string; value?: string; create_revision?: string; mod_revision?: string; lease?: string }
interface Header { revision?: string }
interface RawEvent { type?: "PUT" | "DELETE"; kv?: RawKv }
interface WatchResult {
  header?: Header; created?: boolean; canceled?: boolean; compact_revision?: string; cancel_reason?: string;
  events?: RawEvent[];
}

const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64");
const unb64 = (s: string | undefined): string => Buffer.from(s ?? "", "base64").toString("utf8");
const num = (s: string | undefined): number => (s === undefined ? 0 : Number(s));

/** The end of the key range holding every key that starts with `prefix` (etcd's clientv3.GetPrefixRangeEnd). */
export function prefixRange(prefix: string): { key: string; range_end: string } {
  if (prefix === "") return { key: b64("\0"), range_end: b64("\0") }; // "\0".."\0" = every key
  const end = Buffer.from(prefix, "utf8");
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i] = end[i]! + 1;
      return { key: b64(prefix), range_end: end.subarray(0, i + 1).toString("base64") };
    }
  }
  return { key: b64(prefix), range_end: b64("\0") }; // all 0xff: every key from prefix on
}

function toKv(raw: RawKv): KeyValue {
  return { key: unb64(raw.key), value: unb64(raw.value), createRevision: num(raw.create_revision), modRevision: num(raw.mod_revision) };
}

/** A watch event from the wire (PUT is the proto default, so its type is omitted). */
export function toWatchEvent(raw: RawEvent): WatchEvent {
  const kv = raw.kv ?? {};
  if (raw.type === "DELETE") return { type: "delete", key: unb64(kv.key), modRevision: num(kv.mod_revision) };
  return { type: "put", kv: toKv(kv) };
}

/**
 * Splits a stream of concatenated (usually newline-separated) JSON objects: the complete objects
 * in `text`, and the incomplete rest to prepend to the next chunk.
 */
export function splitJsonObjects(text: string): { objects: string[]; rest: string } {
  const objects: string[] = [];
  let depth = 0;
  let inString = false;
  let escaped = false;
  let start = -1;
  let consumed = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (escaped) escaped = false;
      else if (c === 0x5c) escaped = true; // backslash
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x7b) { // {
      if (depth === 0) start = i;
      depth++;
    } else if (c === 0x7d && depth > 0) { // }
      depth--;
      if (depth === 0) {
        objects.push(text.slice(start, i + 1));
        consumed = i + 1;
      }
    } else if (depth === 0) consumed = i + 1; // whitespace between objects
  }
  return { objects, rest: text.slice(consumed) };
}

/** gRPC status code (as the gateway reports it) to our error code. */
function grpcCode(code: unknown): DatastoreError["code"] {
  switch (code) {
    case 3: return "invalid"; // INVALID_ARGUMENT
    case 4: case 8: case 14: return "unavailable"; // DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, UNAVAILABLE
    default: return "internal";
  }
}

/** A request that failed before anything reached the server: safe to send elsewhere. */
class NotSentError extends Error {}

/** A request that may have reached the server, then failed: only a read may be sent again. */
class TransportError extends Error {}

interface Timeouts {
  /** Fail when the connection is silent this long (unary requests). */
  idleMs?: number;
  /** Fail when the response has not begun after this long (streams, which may then be silent). */
  responseMs?: number;
}

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });

export class EtcdDatastore implements Datastore {
  readonly kind = "etcd" as const;
  readonly endpoints: readonly URL[];

  private readonly agent: http.Agent;
  private readonly streamAgent: http.Agent;
  private readonly timeoutMs: number;
  private readonly backoff: { initial: number; max: number };
  private readonly probe: { intervalMs: number; timeoutMs: number };
  private readonly warn: (message: string) => void;
  private readonly closing = new AbortController();
  /** Index of the endpoint that answered last; requests start there. */
  private preferred = 0;

  constructor(opts: EtcdOptions) {
    if (opts.endpoints.length === 0) throw new DatastoreError("invalid", "etcd: no endpoints given");
    const urls = opts.endpoints.map((e) => {
      let u: URL;
      try {
        u = new URL(e);
      } catch (cause) {
        throw new DatastoreError("invalid", `etcd: invalid endpoint ${JSON.stringify(e)}`, { cause });
      }
      if (u.protocol !== "http:" && u.protocol !== "https:") throw new DatastoreError("invalid", `etcd: endpoint ${e} is neither http nor https`);
      return u;
    });
    const tls = urls.some((u) => u.protocol === "https:");
    if (tls && urls.some((u) => u.protocol !== "https:")) throw new DatastoreError("invalid", "etcd: endpoints mix http and https");
    this.endpoints = urls;
    this.timeoutMs = opts.requestTimeoutMs ?? 10_000;
    this.backoff = opts.backoffMs ?? { initial: 100, max: 5_000 };
    this.probe = opts.watchProbe ?? { intervalMs: 30_000, timeoutMs: 5_000 };
    this.warn = opts.warn ?? ((m) => process.stderr.write(`trellis datastore etcd: ${m}\n`));
    const read = (what: string, file: string | undefined): Buffer | undefined => {
      if (file === undefined) return undefined;
      try {
        return fs.readFileSync(file);
      } catch (cause) {
        throw new DatastoreError("invalid", `etcd: cannot read ${what} ${file}: ${(cause as Error).message}`, { cause });
      }
    };
    if (tls) {
      const tlsOpts: https.AgentOptions = { ca: read("CA file", opts.caFile), cert: read("certificate file", opts.certFile), key: read("key file", opts.keyFile) };
      this.agent = new https.Agent({ ...tlsOpts, keepAlive: true });
      this.streamAgent = new https.Agent({ ...tlsOpts, keepAlive: false });
    } else {
      if (opts.caFile || opts.certFile || opts.keyFile) throw new DatastoreError("invalid", "etcd: TLS files given for http endpoints (use etcds:// or https://)");
      this.agent = new http.Agent({ keepAlive: true });
      this.streamAgent = new http.Agent({ keepAlive: false });
    }
  }

  // ---- transport ----

  /** Sends one request to one endpoint and resolves with the response (headers received). */
  private send(endpoint: URL, path: string, body: string, agent: http.Agent, timeouts: Timeouts, signal?: AbortSignal): Promise<http.IncomingMessage> {
    const mod = endpoint.protocol === "https:" ? https : http;
    return new Promise((resolve, reject) => {
      let connected = false;
      const req = mod.request({
        protocol: endpoint.protocol, hostname: endpoint.hostname.replace(/^\[|\]$/g, ""), port: endpoint.port || 2379,
        method: "POST", path, agent, signal,
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
      });
      req.on("socket", (sock) => {
        sock.setKeepAlive?.(true, 10_000);
        if (!sock.connecting) {
          connected = true; // a kept-alive socket, open already
          return;
        }
        sock.once(endpoint.protocol === "https:" ? "secureConnect" : "connect", () => { connected = true; });
      });
      const { idleMs, responseMs } = timeouts;
      if (idleMs !== undefined) req.setTimeout(idleMs, () => req.destroy(new Error(`no answer within ${idleMs} ms`)));
      const responseTimer = responseMs === undefined ? undefined
        : setTimeout(() => req.destroy(new Error(`no answer within ${responseMs} ms`)), responseMs);
      req.on("response", (res) => {
        clearTimeout(responseTimer);
        resolve(res);
      });
      req.on("error", (e: NodeJS.ErrnoException) => {
        clearTimeout(responseTimer);
        // Not connected: nothing was sent. A kept-alive socket the server had closed: the server
        // never read the request either (it resets before any byte of a response).
        const notSent = !connected || (req.reusedSocket && e.code === "ECONNRESET");
        reject(notSent ? new NotSentError(e.message, { cause: e }) : new TransportError(e.message, { cause: e }));
      });
      req.end(body);
    });
  }

  /**
   * Runs `attempt` against each endpoint in turn, from the last good one, while the request did
   * not reach a server — or, for reads (`idempotent`), while it failed in transport at all.
   */
  private async failover<T>(what: string, idempotent: boolean, attempt: (endpoint: URL) => Promise<T>): Promise<T> {
    const n = this.endpoints.length;
    const errors: string[] = [];
    for (let i = 0; i < n; i++) {
      const idx = (this.preferred + i) % n;
      const endpoint = this.endpoints[idx]!;
      try {
        const r = await attempt(endpoint);
        this.preferred = idx;
        return r;
      } catch (e) {
        const retry = e instanceof NotSentError || (idempotent && e instanceof TransportError);
        if (!retry) {
          if (e instanceof TransportError) throw new DatastoreError("unavailable", `etcd ${endpoint.origin}${what}: ${e.message}`, { cause: e });
          throw e;
        }
        errors.push(`${endpoint.origin}: ${(e as Error).message}`);
      }
    }
    throw new DatastoreError("unavailable", `etcd ${what}: no endpoint reachable (${errors.join("; ")})`);
  }

  /** POSTs `body` to `path` and returns the JSON answer; gateway errors become DatastoreErrors. */
  private async call<T>(path: string, body: object, idempotent = false): Promise<T & { header?: Header }> {
    if (this.closing.signal.aborted) throw new DatastoreError("unavailable", "etcd datastore is closed");
    const text = JSON.stringify(body);
    return this.failover(path, idempotent, async (endpoint) => {
      const res = await this.send(endpoint, path, text, this.agent, { idleMs: this.timeoutMs });
      let raw = "";
      try {
        res.setEncoding("utf8");
        for await (const chunk of res) raw += chunk as string;
      } catch (e) {
        throw new TransportError((e as Error).message, { cause: e });
      }
      let json: Record<string, unknown>;
      try {
        json = JSON.parse(raw) as Record<string, unknown>;
      } catch (cause) {
        throw new DatastoreError(res.statusCode === 503 ? "unavailable" : "internal", `etcd ${endpoint.origin}${path}: HTTP ${res.statusCode}, not JSON: ${raw.slice(0, 200)}`, { cause });
      }
      if (res.statusCode !== 200 || json.error !== undefined) {
        const msg = (json.message ?? json.error ?? `HTTP ${res.statusCode}`) as string;
        throw new DatastoreError(grpcCode(json.code), `etcd ${endpoint.origin}${path}: ${msg}`);
      }
      return json as T & { header?: Header };
    });
  }

  // ---- leases ----

  private async grant(ttlSeconds: number | undefined): Promise<string | undefined> {
    if (ttlSeconds === undefined) return undefined;
    if (typeof ttlSeconds !== "number" || !Number.isFinite(ttlSeconds) || ttlSeconds <= 0) {
      throw new DatastoreError("invalid", `invalid ttlSeconds ${ttlSeconds}: must be a positive number`);
    }
    const r = await this.call<{ ID?: string }>("/v3/lease/grant", { TTL: String(Math.ceil(ttlSeconds)) });
    if (!r.ID) throw new DatastoreError("internal", "etcd lease grant returned no ID");
    return r.ID;
  }

  /** Best effort: a lease that is not revoked simply expires. */
  private revoke(lease: string | undefined, keep?: string): void {
    if (!lease || lease === "0" || lease === keep) return;
    this.call("/v3/lease/revoke", { ID: lease }, true).catch(() => {});
  }

  // ---- Datastore ----

  async get(key: string): Promise<KeyValue | undefined> {
    checkKey(key);
    const r = await this.call<{ kvs?: RawKv[] }>("/v3/kv/range", { key: b64(key) }, true);
    const kv = r.kvs?.[0];
    return kv ? toKv(kv) : undefined;
  }

  async list(prefix: string): Promise<ListResult> {
    const r = await this.call<{ kvs?: RawKv[] }>("/v3/kv/range", prefixRange(prefix), true);
    return { items: (r.kvs ?? []).map(toKv), revision: num(r.header?.revision) };
  }

  async create(key: string, value: string, opts?: WriteOptions): Promise<KeyValue | undefined> {
    checkKey(key);
    const lease = await this.grant(opts?.ttlSeconds);
    const r = await this.call<{ succeeded?: boolean }>("/v3/kv/txn", {
      compare: [{ target: "CREATE", key: b64(key), create_revision: "0", result: "EQUAL" }],
      success: [{ request_put: { key: b64(key), value: b64(value), ...(lease ? { lease } : {}) } }],
    });
    if (!r.succeeded) {
      this.revoke(lease);
      return undefined;
    }
    const rev = num(r.header?.revision);
    return { key, value, createRevision: rev, modRevision: rev };
  }

  async update(key: string, value: string, expectedModRevision: number, opts?: WriteOptions): Promise<KeyValue | undefined> {
    checkKey(key);
    const lease = await this.grant(opts?.ttlSeconds);
    const r = await this.call<{ succeeded?: boolean; responses?: Array<{ response_put?: { prev_kv?: RawKv & { lease?: string } } }> }>("/v3/kv/txn", {
      compare: [
        { target: "MOD", key: b64(key), mod_revision: String(expectedModRevision), result: "EQUAL" },
        { target: "CREATE", key: b64(key), create_revision: "0", result: "GREATER" }, // exists
      ],
      success: [{ request_put: { key: b64(key), value: b64(value), prev_kv: true, ...(lease ? { lease } : {}) } }],
    });
    if (!r.succeeded) {
      this.revoke(lease);
      return undefined;
    }
    const prev = r.responses?.[0]?.response_put?.prev_kv;
    this.revoke(prev?.lease, lease);
    const rev = num(r.header?.revision);
    return { key, value, createRevision: prev ? num(prev.create_revision) : rev, modRevision: rev };
  }

  async put(key: string, value: string, opts?: WriteOptions): Promise<KeyValue> {
    checkKey(key);
    const lease = await this.grant(opts?.ttlSeconds);
    const r = await this.call<{ prev_kv?: RawKv }>("/v3/kv/put", { key: b64(key), value: b64(value), prev_kv: true, ...(lease ? { lease } : {}) });
    this.revoke(r.prev_kv?.lease, lease);
    const rev = num(r.header?.revision);
    return { key, value, createRevision: r.prev_kv ? num(r.prev_kv.create_revision) : rev, modRevision: rev };
  }

  async delete(key: string, expectedModRevision?: number): Promise<boolean> {
    checkKey(key);
    if (expectedModRevision === undefined) {
      const r = await this.call<{ deleted?: string; prev_kvs?: RawKv[] }>("/v3/kv/deleterange", { key: b64(key), prev_kv: true });
      this.revoke(r.prev_kvs?.[0]?.lease);
      return num(r.deleted) > 0;
    }
    const r = await this.call<{ succeeded?: boolean; responses?: Array<{ response_delete_range?: { deleted?: string; prev_kvs?: RawKv[] } }> }>("/v3/kv/txn", {
      compare: [{ target: "MOD", key: b64(key), mod_revision: String(expectedModRevision), result: "EQUAL" }],
      success: [{ request_delete_range: { key: b64(key), prev_kv: true } }],
    });
    const d = r.responses?.[0]?.response_delete_range;
    this.revoke(d?.prev_kvs?.[0]?.lease);
    return Boolean(r.succeeded) && num(d?.deleted) > 0;
  }

  watch(prefix: string, fromRevision: number, handler: (m: WatchMessage) => void, signal: AbortSignal): void {
    if (signal.aborted || this.closing.signal.aborted) return;
    // One signal for "the caller aborted or the store closed".
    const stop = new AbortController();
    const abort = (): void => stop.abort();
    signal.addEventListener("abort", abort, { once: true });
    this.closing.signal.addEventListener("abort", abort, { once: true });
    const emit = (m: WatchMessage): void => {
      if (stop.signal.aborted) return;
      try {
        handler(m);
      } catch (e) {
        this.warn(`watch handler for prefix ${JSON.stringify(prefix)} threw: ${(e as Error).message}`);
      }
    };
    void this.watchLoop(prefix, Math.max(0, Math.floor(fromRevision)), emit, stop.signal).catch((e: unknown) => {
      this.warn(`watch on prefix ${JSON.stringify(prefix)} stopped: ${(e as Error).message}`);
      emit({ resync: true, reason: `watch stopped: ${(e as Error).message}` });
    }).finally(() => {
      signal.removeEventListener("abort", abort);
      this.closing.signal.removeEventListener("abort", abort);
    });
  }

  /**
   * Keeps a watch stream open from `cursor + 1`. Invariant: every change after `cursor` not yet
   * delivered will be, or a {resync} has been sent since. After a resync the stream resumes from
   * a revision no later than any list the handler makes in response, so nothing is lost.
   */
  private async watchLoop(prefix: string, from: number, emit: (m: WatchMessage) => void, signal: AbortSignal): Promise<void> {
    let cursor = from;
    let delay = this.backoff.initial;
    let down = false; // a resync for the current outage was sent
    while (!signal.aborted) {
      const outcome = await this.watchStream(prefix, cursor, signal, (r) => {
        if (r.created) {
          delay = this.backoff.initial;
          down = false;
        }
        if (r.events && r.events.length > 0) {
          const events = r.events.map(toWatchEvent);
          const last = events[events.length - 1]!;
          cursor = Math.max(cursor, last.type === "put" ? last.kv.modRevision : last.modRevision);
          emit({ events, revision: Math.max(cursor, num(r.header?.revision)) });
        }
      });
      if (signal.aborted) return;
      if (outcome.compactRevision !== undefined) {
        // The changes from cursor+1 on are gone: the handler re-lists; resume at the oldest kept.
        emit({ resync: true, reason: `etcd compacted revisions up to ${outcome.compactRevision}; watch was at ${cursor}` });
        cursor = Math.max(cursor, outcome.compactRevision - 1);
        continue;
      }
      if (!down) {
        emit({ resync: true, reason: `etcd watch stream lost: ${outcome.reason}` });
        down = true;
      }
      await sleep(delay, signal);
      delay = Math.min(delay * 2, this.backoff.max);
    }
  }

  /** One watch stream, until it ends; `onResult` sees every result message. */
  private async watchStream(prefix: string, cursor: number, signal: AbortSignal, onResult: (r: WatchResult) => void): Promise<{ reason: string; compactRevision?: number }> {
    const body = JSON.stringify({ create_request: { ...prefixRange(prefix), start_revision: String(cursor + 1) } });
    let res: http.IncomingMessage;
    let endpoint: URL;
    try {
      ({ res, endpoint } = await this.failover("/v3/watch", true, async (e) =>
        ({ res: await this.send(e, "/v3/watch", body, this.streamAgent, { responseMs: this.timeoutMs }, signal), endpoint: e })));
    } catch (e) {
      return { reason: (e as Error).message };
    }
    if (res.statusCode !== 200) {
      res.resume();
      return { reason: `HTTP ${res.statusCode}` };
    }
    res.setEncoding("utf8");
    let buffered = "";
    const probe = this.startProbe(endpoint, prefix, (why) => res.destroy(new Error(why)));
    try {
      for await (const chunk of res) {
        const { objects, rest } = splitJsonObjects(buffered + (chunk as string));
        buffered = rest;
        for (const text of objects) {
          const msg = JSON.parse(text) as { result?: WatchResult; error?: unknown; message?: string };
          if (msg.error !== undefined || !msg.result) {
            res.destroy();
            return { reason: `etcd: ${msg.message ?? JSON.stringify(msg.error)}` };
          }
          const r = msg.result;
          if (r.canceled) {
            res.destroy();
            if (r.compact_revision !== undefined && num(r.compact_revision) > 0) return { reason: "compacted", compactRevision: num(r.compact_revision) };
            return { reason: `watch canceled by etcd${r.cancel_reason ? `: ${r.cancel_reason}` : ""}` };
          }
          onResult(r);
        }
      }
      return { reason: "stream ended" };
    } catch (e) {
      res.destroy();
      return { reason: (e as Error).message };
    } finally {
      if (probe) clearInterval(probe);
    }
  }

  /** The liveness probe of one watch stream (see EtcdOptions.watchProbe); calls `fail` once it goes unanswered. */
  private startProbe(endpoint: URL, prefix: string, fail: (why: string) => void): ReturnType<typeof setInterval> | undefined {
    const { intervalMs, timeoutMs } = this.probe;
    if (intervalMs <= 0) return undefined;
    const body = JSON.stringify({ ...prefixRange(prefix), count_only: true });
    let inFlight = false;
    return setInterval(() => {
      if (inFlight) return;
      inFlight = true;
      this.send(endpoint, "/v3/kv/range", body, this.agent, { idleMs: timeoutMs })
        .then((r) => {
          r.resume();
          if (r.statusCode !== 200) throw new Error(`HTTP ${r.statusCode}`);
        })
        .catch((e: unknown) => fail(`${endpoint.origin} did not answer a liveness probe: ${(e as Error).message}`))
        .finally(() => { inFlight = false; });
    }, intervalMs);
  }

  async close(): Promise<void> {
    this.closing.abort();
    this.agent.destroy();
    this.streamAgent.destroy();
  }
}

function checkKey(key: string): void {
  if (typeof key !== "string" || key.length === 0) throw new DatastoreError("invalid", `invalid key ${JSON.stringify(key)}: must be a non-empty string`);
}
