// The embedded datastore: a directory that the agents of ONE machine share, with no server.
//
// On disk (see DESIGN.md for the reasoning):
//
//   <dir>/lock            flock(2) around every read-modify-write (src/datastore/lock.ts)
//   <dir>/snapshot.json   {revision, log, kvs}: the state at `revision`, written tmp+fsync+rename
//   <dir>/log.<base>      JSON lines, one record per revision after <base>, appended with one
//                         write(2) per change batch and fsync'd; the last line of a log that was
//                         compacted is a "seal" record naming the next log
//
// Every process keeps the whole state in memory and catches up by reading the current log from
// the offset it has reached; it consumes complete lines only, so a record being written (or torn
// by a crash) is never half-applied. Writers take the lock, catch up, cut a torn tail, decide,
// append, and catch up again (one code path applies every change, their own included). Watchers
// are served from an in-memory history of recent changes; fs.watch (inotify) on the directory
// wakes readers within milliseconds, a short poll covers filesystems without it.
import * as fs from "node:fs";
import * as path from "node:path";
import { defaultLocker, type Locker, type LockerFactory } from "./lock.js";
import {
  DatastoreError, type Datastore, type KeyValue, type ListResult, type WatchEvent, type WatchMessage,
  type WriteOptions,
} from "./types.js";

export interface EmbeddedOptions {
  /** Makes the lock; default flock(2) under Bun, an in-process lock under Node (see lock.ts). */
  locker?: LockerFactory;
  /** Milliseconds since the epoch, for TTLs. Default Date.now. */
  now?: () => number;
  /** How often this process deletes expired keys; default 500 ms; 0 = only by `sweepExpired()`. */
  sweepIntervalMs?: number;
  /** While something watches: how often the log is re-read in case inotify missed a change; default 150 ms; 0 = never. */
  pollIntervalMs?: number;
  /** Use fs.watch (inotify) to wake watchers; default true. */
  fsWatch?: boolean;
  /** fsync the log after each append and the snapshot before its rename; default true. */
  fsync?: boolean;
  /** Compact the log into a snapshot once it holds this many records (and at least as many as live keys); default 10000. */
  compactAfterRecords?: number;
  /** How many recent changes each process keeps for watchers that start behind; default 10000. */
  historyLimit?: number;
  /** Where problems that reach no caller go (a watch handler threw, a sweep failed); default stderr. */
  warn?: (message: string) => void;
}

type LogRecord =
  | { rev: number; op: "put"; key: string; value: string; createRev: number; expiresAt?: number }
  | { rev: number; op: "delete"; key: string }
  | { rev: number; op: "seal"; next: string };

interface SnapshotKv { key: string; value: string; createRev: number; modRev: number; expiresAt?: number }
interface Snapshot { format: 1; revision: number; log: string; kvs: SnapshotKv[] }

interface Entry { kv: KeyValue; expiresAt?: number }

interface OpenLog { name: string; base: number; fd: number; offset: number; records: number }

interface Watcher {
  prefix: string;
  /** Every change up to this revision has been delivered (or superseded by a resync). */
  cursor: number;
  handler: (m: WatchMessage) => void;
}

const SNAPSHOT = "snapshot.json";
const TRAILING_REFRESH_MS = 10;
const LOCK = "lock";
const LOG_RE = /^log\.(\d+)$/;
const logName = (base: number): string => `log.${base}`;

const errCode = (e: unknown): string | undefined => (e as NodeJS.ErrnoException | undefined)?.code;

/** A record parsed from one log line, or undefined when the line is not a valid record. */
export function parseLogRecord(line: string): LogRecord | undefined {
  let r: unknown;
  try {
    r = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof r !== "object" || r === null) return undefined;
  const o = r as Record<string, unknown>;
  if (typeof o.rev !== "number" || !Number.isSafeInteger(o.rev) || o.rev < 0) return undefined;
  switch (o.op) {
    case "put":
      if (typeof o.key !== "string" || typeof o.value !== "string" || typeof o.createRev !== "number") return undefined;
      if (o.expiresAt !== undefined && typeof o.expiresAt !== "number") return undefined;
      return o as LogRecord;
    case "delete":
      return typeof o.key === "string" ? (o as LogRecord) : undefined;
    case "seal":
      return typeof o.next === "string" && LOG_RE.test(o.next) ? (o as LogRecord) : undefined;
    default:
      return undefined;
  }
}

function checkKey(key: string): void {
  if (typeof key !== "string" || key.length === 0) throw new DatastoreError("invalid", `invalid key ${JSON.stringify(key)}: must be a non-empty string`);
}

function checkTtl(opts: WriteOptions | undefined): number | undefined {
  const ttl = opts?.ttlSeconds;
  if (ttl === undefined) return undefined;
  if (typeof ttl !== "number" || !Number.isFinite(ttl) || ttl <= 0) throw new DatastoreError("invalid", `invalid ttlSeconds ${ttl}: must be a positive number`);
  return ttl;
}

/**
 * Key order of etcd: by UTF-8 bytes, which is code point order. UTF-16 code units agree with it
 * except that surrogates (U+D800–DFFF, the halves of code points above U+FFFF) must sort after
 * U+E000–FFFF; the first differing unit decides, so remap just those two ranges.
 */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

function codePointRank(unit: number): number {
  if (unit >= 0xd800 && unit <= 0xdfff) return unit + 0x2000;
  if (unit >= 0xe000) return unit - 0x800;
  return unit;
}

function writeAll(fd: number, buf: Buffer): void {
  let done = 0;
  while (done < buf.length) done += fs.writeSync(fd, buf, done, buf.length - done);
}

function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, "r");
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

export class EmbeddedDatastore implements Datastore {
  readonly kind = "embedded" as const;
  readonly dir: string;

  private readonly locker: Locker;
  private readonly now: () => number;
  private readonly fsyncOn: boolean;
  private readonly compactAfter: number;
  private readonly historyLimit: number;
  private readonly pollIntervalMs: number;
  private readonly useFsWatch: boolean;
  private readonly warn: (message: string) => void;

  private state = new Map<string, Entry>();
  private ttlKeys = new Set<string>();
  private revision = 0;
  private history: Array<{ rev: number; ev: WatchEvent }> = [];
  /** The history holds every change after this revision. */
  private historyStart = 0;
  private log: OpenLog | undefined;
  private readonly watchers = new Set<Watcher>();
  private sweepTimer: ReturnType<typeof setInterval> | undefined;
  private pollTimer: ReturnType<typeof setInterval> | undefined;
  private fsWatcher: fs.FSWatcher | undefined;
  private trailingTimer: ReturnType<typeof setTimeout> | undefined;
  private refreshQueued = false;
  private deliverQueued = false;
  /** How many expired keys the current (or last) locked write deleted. */
  private lastExpired = 0;
  private closed = false;

  private constructor(dir: string, opts: EmbeddedOptions) {
    this.dir = dir;
    this.locker = (opts.locker ?? defaultLocker())(path.join(dir, LOCK));
    this.now = opts.now ?? Date.now;
    this.fsyncOn = opts.fsync ?? true;
    this.compactAfter = Math.max(1, opts.compactAfterRecords ?? 10_000);
    this.historyLimit = Math.max(1, opts.historyLimit ?? 10_000);
    this.pollIntervalMs = opts.pollIntervalMs ?? 150;
    this.useFsWatch = opts.fsWatch ?? true;
    this.warn = opts.warn ?? ((m) => process.stderr.write(`trellis datastore ${dir}: ${m}\n`));
    const sweepMs = opts.sweepIntervalMs ?? 500;
    if (sweepMs > 0) {
      this.sweepTimer = setInterval(() => {
        this.sweepExpired().catch((e: unknown) => this.warn(`TTL sweep failed: ${(e as Error).message}`));
      }, sweepMs);
      this.sweepTimer.unref?.();
    }
  }

  /** Opens (creating it if needed) the store in `dir`. */
  static async open(dir: string, opts: EmbeddedOptions = {}): Promise<EmbeddedDatastore> {
    const abs = path.resolve(dir);
    try {
      fs.mkdirSync(abs, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw new DatastoreError("unavailable", `cannot create datastore directory ${abs}: ${(e as Error).message}`, { cause: e });
    }
    const store = new EmbeddedDatastore(abs, opts);
    try {
      await store.init();
    } catch (e) {
      await store.close();
      if (e instanceof DatastoreError) throw e;
      throw new DatastoreError("unavailable", `cannot open datastore ${abs}: ${(e as Error).message}`, { cause: e });
    }
    return store;
  }

  private async init(): Promise<void> {
    if (!fs.existsSync(path.join(this.dir, SNAPSHOT))) {
      const release = await this.locker.acquire();
      try {
        if (!fs.existsSync(path.join(this.dir, SNAPSHOT))) {
          const logs = fs.readdirSync(this.dir).filter((f) => LOG_RE.test(f) && f !== logName(0));
          if (logs.length > 0) {
            // Starting afresh would silently drop what those logs hold on top of a lost snapshot.
            throw new DatastoreError("internal", `${path.join(this.dir, SNAPSHOT)} is missing but ${logs.join(", ")} exist: refusing to start an empty store over them`);
          }
          fs.closeSync(fs.openSync(path.join(this.dir, logName(0)), "a", 0o600));
          this.writeSnapshot({ format: 1, revision: 0, log: logName(0), kvs: [] });
        }
      } finally {
        release();
      }
    }
    this.load();
  }

  // ---- reading the files ----

  private readSnapshot(): Snapshot {
    const file = path.join(this.dir, SNAPSHOT);
    let s: Snapshot;
    try {
      s = JSON.parse(fs.readFileSync(file, "utf8")) as Snapshot;
    } catch (e) {
      if (e instanceof SyntaxError) throw new DatastoreError("internal", `${file} is not valid JSON: ${e.message}`, { cause: e });
      throw e;
    }
    if (s.format !== 1 || !Number.isSafeInteger(s.revision) || !LOG_RE.test(s.log) || !Array.isArray(s.kvs)) {
      throw new DatastoreError("internal", `${file} is not a trellis datastore snapshot`);
    }
    return s;
  }

  private writeSnapshot(s: Snapshot): void {
    const file = path.join(this.dir, SNAPSHOT);
    const tmp = `${file}.tmp`;
    const fd = fs.openSync(tmp, "w", 0o600);
    try {
      writeAll(fd, Buffer.from(JSON.stringify(s)));
      if (this.fsyncOn) fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
    if (this.fsyncOn) fsyncDir(this.dir);
  }

  private openLogFd(name: string): number | undefined {
    try {
      return fs.openSync(path.join(this.dir, name), fs.constants.O_RDWR | fs.constants.O_APPEND);
    } catch (e) {
      if (errCode(e) === "ENOENT") return undefined;
      throw e;
    }
  }

  /** (Re)loads everything from the snapshot and its log; watchers that were behind get a resync. */
  private load(): void {
    for (let attempt = 0; ; attempt++) {
      const snap = this.readSnapshot();
      const fd = this.openLogFd(snap.log);
      if (fd === undefined) {
        // Compacted between reading the snapshot and opening its log: read the new snapshot.
        if (attempt < 100) continue;
        throw new DatastoreError("internal", `log ${snap.log} named by ${SNAPSHOT} does not exist`);
      }
      if (this.log) fs.closeSync(this.log.fd);
      this.log = { name: snap.log, base: snap.revision, fd, offset: 0, records: 0 };
      this.state = new Map();
      this.ttlKeys = new Set();
      for (const k of snap.kvs) {
        const kv: KeyValue = Object.freeze({ key: k.key, value: k.value, createRevision: k.createRev, modRevision: k.modRev });
        this.state.set(k.key, k.expiresAt === undefined ? { kv } : { kv, expiresAt: k.expiresAt });
        if (k.expiresAt !== undefined) this.ttlKeys.add(k.key);
      }
      this.revision = snap.revision;
      this.history = [];
      this.historyStart = snap.revision;
      // Watchers behind the snapshot get a resync (no-op for those already past it).
      this.scheduleDeliver();
      this.catchUp();
      return;
    }
  }

  /** Applies every complete record appended since the last read, then serves the watchers. */
  private catchUp(): void {
    const before = this.revision;
    for (;;) {
      const log = this.log!;
      const size = fs.fstatSync(log.fd).size;
      if (size < log.offset) {
        // Only a torn tail past every complete line is ever cut; shrinking below it means the
        // file was replaced or damaged by something else. Start again from the snapshot.
        this.warn(`${log.name} shrank below offset ${log.offset}; reloading`);
        this.load();
        return;
      }
      if (size === log.offset) break;
      const buf = Buffer.alloc(size - log.offset);
      let got = 0;
      while (got < buf.length) {
        const n = fs.readSync(log.fd, buf, got, buf.length - got, log.offset + got);
        if (n === 0) break;
        got += n;
      }
      let pos = 0;
      let sealedTo: string | undefined;
      for (;;) {
        const nl = buf.indexOf(0x0a, pos);
        if (nl < 0 || nl >= got) break;
        const line = buf.toString("utf8", pos, nl);
        log.offset += nl + 1 - pos;
        pos = nl + 1;
        const rec = parseLogRecord(line);
        if (!rec) {
          if (line.trim() !== "") this.warn(`skipping an invalid record in ${log.name}: ${line.slice(0, 200)}`);
          continue;
        }
        if (rec.op === "seal") {
          sealedTo = rec.next;
          break;
        }
        log.records++;
        this.apply(rec);
      }
      if (sealedTo === undefined) break;
      const fd = this.openLogFd(sealedTo);
      if (fd === undefined) {
        // Compacted twice while this process was not looking: the changes in between are gone.
        this.load();
        return;
      }
      fs.closeSync(log.fd);
      this.log = { name: sealedTo, base: this.revision, fd, offset: 0, records: 0 };
    }
    if (this.revision !== before) this.scheduleDeliver();
  }

  /**
   * Serves every watcher in a microtask: handlers never run inside a store call or under the
   * lock, and a slow handler delays no other process.
   */
  private scheduleDeliver(): void {
    if (this.deliverQueued || this.watchers.size === 0) return;
    this.deliverQueued = true;
    queueMicrotask(() => {
      this.deliverQueued = false;
      for (const w of this.watchers) this.deliver(w);
    });
  }

  private apply(rec: Exclude<LogRecord, { op: "seal" }>): void {
    if (rec.rev <= this.revision) return; // already applied (a duplicate line); never happens under the lock
    this.revision = rec.rev;
    let ev: WatchEvent;
    if (rec.op === "put") {
      const kv: KeyValue = Object.freeze({ key: rec.key, value: rec.value, createRevision: rec.createRev, modRevision: rec.rev });
      if (rec.expiresAt === undefined) {
        this.state.set(rec.key, { kv });
        this.ttlKeys.delete(rec.key);
      } else {
        this.state.set(rec.key, { kv, expiresAt: rec.expiresAt });
        this.ttlKeys.add(rec.key);
      }
      ev = { type: "put", kv };
    } else {
      this.state.delete(rec.key);
      this.ttlKeys.delete(rec.key);
      ev = { type: "delete", key: rec.key, modRevision: rec.rev };
    }
    this.history.push({ rev: rec.rev, ev });
    if (this.history.length > this.historyLimit * 2) {
      const drop = this.history.length - this.historyLimit;
      this.historyStart = this.history[drop - 1]!.rev;
      this.history.splice(0, drop);
    }
  }

  // ---- watchers ----

  private deliver(w: Watcher): void {
    if (w.cursor >= this.revision) return;
    let msg: WatchMessage | undefined;
    if (w.cursor < this.historyStart) {
      msg = { resync: true, reason: `changes after revision ${w.cursor} are no longer kept (history starts after ${this.historyStart})` };
    } else {
      // First history entry after the cursor (the history is sorted by revision).
      let lo = 0;
      let hi = this.history.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (this.history[mid]!.rev <= w.cursor) lo = mid + 1;
        else hi = mid;
      }
      const events: WatchEvent[] = [];
      for (let i = lo; i < this.history.length; i++) {
        const { ev } = this.history[i]!;
        if ((ev.type === "put" ? ev.kv.key : ev.key).startsWith(w.prefix)) events.push(ev);
      }
      if (events.length > 0) msg = { events, revision: this.revision };
    }
    w.cursor = this.revision;
    if (!msg) return;
    try {
      w.handler(msg);
    } catch (e) {
      this.warn(`watch handler for prefix ${JSON.stringify(w.prefix)} threw: ${(e as Error).message}`);
    }
  }

  /** Reads the log (coalesced: many inotify events in one tick cost one read). */
  private scheduleRefresh(): void {
    if (this.refreshQueued || this.closed) return;
    this.refreshQueued = true;
    setImmediate(() => {
      this.refreshQueued = false;
      this.refresh();
    });
  }

  private refresh(): void {
    if (this.closed) return;
    try {
      this.catchUp();
    } catch (e) {
      this.warn(`cannot read the log: ${(e as Error).message}`);
    }
  }

  private startWatching(): void {
    if (this.useFsWatch && !this.fsWatcher) {
      try {
        this.fsWatcher = fs.watch(this.dir, { persistent: true }, () => {
          this.scheduleRefresh();
          // Bun drops a change event that follows the previous one within ~1 ms (it treats it as
          // a duplicate), so a write right after another could go unnoticed until the poll. One
          // more read shortly after the last event closes that gap.
          if (this.trailingTimer) clearTimeout(this.trailingTimer);
          this.trailingTimer = setTimeout(() => {
            this.trailingTimer = undefined;
            this.refresh();
          }, TRAILING_REFRESH_MS);
        });
        this.fsWatcher.on("error", (e: Error) => {
          this.warn(`fs.watch failed, polling only: ${e.message}`);
          this.fsWatcher?.close();
          this.fsWatcher = undefined;
        });
      } catch (e) {
        this.warn(`fs.watch unavailable, polling only: ${(e as Error).message}`);
      }
    }
    if (this.pollIntervalMs > 0 && !this.pollTimer) this.pollTimer = setInterval(() => this.refresh(), this.pollIntervalMs);
  }

  private stopWatching(): void {
    this.fsWatcher?.close();
    this.fsWatcher = undefined;
    if (this.trailingTimer) clearTimeout(this.trailingTimer);
    this.trailingTimer = undefined;
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = undefined;
  }

  watch(prefix: string, fromRevision: number, handler: (m: WatchMessage) => void, signal: AbortSignal): void {
    if (this.closed || signal.aborted) return;
    const w: Watcher = { prefix, cursor: Math.max(0, Math.floor(fromRevision)), handler };
    this.watchers.add(w);
    this.startWatching();
    signal.addEventListener("abort", () => {
      this.watchers.delete(w);
      if (this.watchers.size === 0) this.stopWatching();
    }, { once: true });
    // The backlog goes out asynchronously (never from inside watch()), through the same cursor
    // as live changes, so order holds whichever comes first.
    queueMicrotask(() => {
      if (!this.watchers.has(w)) return;
      this.refresh();
      this.deliver(w);
    });
  }

  // ---- reads ----

  private assertOpen(): void {
    if (this.closed) throw new DatastoreError("unavailable", `datastore ${this.dir} is closed`);
  }

  private read(): void {
    this.assertOpen();
    try {
      this.catchUp();
    } catch (e) {
      if (e instanceof DatastoreError) throw e;
      throw new DatastoreError("unavailable", `cannot read datastore ${this.dir}: ${(e as Error).message}`, { cause: e });
    }
  }

  async get(key: string): Promise<KeyValue | undefined> {
    this.read();
    return this.state.get(key)?.kv;
  }

  async list(prefix: string): Promise<ListResult> {
    this.read();
    const items: KeyValue[] = [];
    for (const [k, e] of this.state) if (k.startsWith(prefix)) items.push(e.kv);
    items.sort((a, b) => compareKeys(a.key, b.key));
    return { items, revision: this.revision };
  }

  /** The store's current revision (after reading what other processes appended). */
  async currentRevision(): Promise<number> {
    this.read();
    return this.revision;
  }

  // ---- writes ----

  /**
   * Runs `decide` under the lock on an up-to-date state: torn tail cut, expired keys deleted.
   * `decide` gets the next revision and returns the records to append and the result.
   */
  private async mutate<T>(decide: (next: number) => { records: LogRecord[]; result: T }, forceCompact = false): Promise<T> {
    this.assertOpen();
    const release = await this.locker.acquire();
    try {
      this.catchUp();
      this.cutTornTail();
      const expired = this.expiredDeletes(this.revision + 1);
      this.lastExpired = expired.length;
      if (expired.length > 0) this.append(expired);
      const { records, result } = decide(this.revision + 1);
      if (records.length > 0) this.append(records);
      const log = this.log!;
      if (forceCompact || log.records >= Math.max(this.compactAfter, this.state.size)) {
        try {
          this.compactLocked();
        } catch (e) {
          // The change itself is written; a failed compaction is retried by the next write.
          if (forceCompact) throw e;
          this.warn(`compaction failed: ${(e as Error).message}`);
        }
      }
      return result;
    } catch (e) {
      if (e instanceof DatastoreError) throw e;
      throw new DatastoreError("unavailable", `cannot write datastore ${this.dir}: ${(e as Error).message}`, { cause: e });
    } finally {
      release();
    }
  }

  /** Under the lock nobody is writing, so bytes after the last complete line are a torn record. */
  private cutTornTail(): void {
    const log = this.log!;
    const size = fs.fstatSync(log.fd).size;
    if (size > log.offset) {
      this.warn(`discarding ${size - log.offset} bytes of a torn record at the end of ${log.name}`);
      fs.ftruncateSync(log.fd, log.offset);
    }
  }

  private expiredDeletes(firstRev: number): LogRecord[] {
    const now = this.now();
    const keys: string[] = [];
    for (const key of this.ttlKeys) {
      const at = this.state.get(key)?.expiresAt;
      if (at !== undefined && at <= now) keys.push(key);
    }
    return keys.sort(compareKeys).map((key, i) => ({ rev: firstRev + i, op: "delete", key }));
  }

  /** One write(2) for the batch, fsync, then read it back like any other process would. */
  private append(records: LogRecord[]): void {
    const log = this.log!;
    const buf = Buffer.from(records.map((r) => `${JSON.stringify(r)}\n`).join(""));
    try {
      writeAll(log.fd, buf);
      if (this.fsyncOn) fs.fsyncSync(log.fd);
    } catch (e) {
      try {
        fs.ftruncateSync(log.fd, log.offset);
      } catch {
        // the next writer cuts the torn tail
      }
      throw new DatastoreError("unavailable", `cannot append to ${path.join(this.dir, log.name)}: ${(e as Error).message}`, { cause: e });
    }
    this.catchUp();
  }

  /** The record of a put and the KeyValue it makes. */
  private putRecord(rev: number, key: string, value: string, ttl: number | undefined, prev: Entry | undefined): { records: LogRecord[]; result: KeyValue } {
    const createRev = prev ? prev.kv.createRevision : rev;
    const rec: LogRecord = { rev, op: "put", key, value, createRev };
    if (ttl !== undefined) rec.expiresAt = this.now() + Math.round(ttl * 1000);
    return { records: [rec], result: Object.freeze({ key, value, createRevision: createRev, modRevision: rev }) };
  }

  async create(key: string, value: string, opts?: WriteOptions): Promise<KeyValue | undefined> {
    checkKey(key);
    const ttl = checkTtl(opts);
    return this.mutate((rev) => {
      if (this.state.has(key)) return { records: [], result: undefined };
      return this.putRecord(rev, key, value, ttl, undefined);
    });
  }

  async update(key: string, value: string, expectedModRevision: number, opts?: WriteOptions): Promise<KeyValue | undefined> {
    checkKey(key);
    const ttl = checkTtl(opts);
    return this.mutate((rev) => {
      const prev = this.state.get(key);
      if (!prev || prev.kv.modRevision !== expectedModRevision) return { records: [], result: undefined };
      return this.putRecord(rev, key, value, ttl, prev);
    });
  }

  async put(key: string, value: string, opts?: WriteOptions): Promise<KeyValue> {
    checkKey(key);
    const ttl = checkTtl(opts);
    return this.mutate((rev) => this.putRecord(rev, key, value, ttl, this.state.get(key)));
  }

  async delete(key: string, expectedModRevision?: number): Promise<boolean> {
    checkKey(key);
    return this.mutate((rev) => {
      const prev = this.state.get(key);
      if (!prev || (expectedModRevision !== undefined && prev.kv.modRevision !== expectedModRevision)) {
        return { records: [], result: false };
      }
      return { records: [{ rev, op: "delete", key }], result: true };
    });
  }

  /**
   * Deletes every key whose TTL has run out (one revision each, so watchers see delete events).
   * Runs by itself every `sweepIntervalMs`; tests with an injected clock call it directly.
   * Returns how many keys this call deleted.
   */
  async sweepExpired(): Promise<number> {
    if (this.closed) return 0;
    this.read();
    if (this.expiredDeletes(0).length === 0) return 0;
    // mutate deletes expired keys itself before deciding.
    return this.mutate(() => ({ records: [], result: this.lastExpired }));
  }

  /** Writes a snapshot of the current state and starts a new log (normally done automatically). */
  async compact(): Promise<void> {
    await this.mutate(() => ({ records: [], result: undefined }), true);
  }

  /**
   * Under the lock, caught up. The order keeps every crash point consistent: (1) the new, empty
   * log exists; (2) the old log is sealed, pointing at it; (3) the snapshot names the new log;
   * (4) logs older than the one just sealed go (readers still following it can finish it).
   */
  private compactLocked(): void {
    const old = this.log!;
    const rev = this.revision;
    if (rev === old.base) return;
    const next = logName(rev);
    const fd = fs.openSync(path.join(this.dir, next), fs.constants.O_RDWR | fs.constants.O_APPEND | fs.constants.O_CREAT | fs.constants.O_TRUNC, 0o600);
    try {
      if (this.fsyncOn) fsyncDir(this.dir);
      writeAll(old.fd, Buffer.from(`${JSON.stringify({ rev, op: "seal", next })}\n`));
      if (this.fsyncOn) fs.fsyncSync(old.fd);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
    const kvs: SnapshotKv[] = [];
    for (const e of this.state.values()) {
      const k: SnapshotKv = { key: e.kv.key, value: e.kv.value, createRev: e.kv.createRevision, modRev: e.kv.modRevision };
      if (e.expiresAt !== undefined) k.expiresAt = e.expiresAt;
      kvs.push(k);
    }
    kvs.sort((a, b) => compareKeys(a.key, b.key));
    fs.closeSync(old.fd);
    this.log = { name: next, base: rev, fd, offset: 0, records: 0 };
    this.writeSnapshot({ format: 1, revision: rev, log: next, kvs });
    for (const f of fs.readdirSync(this.dir)) {
      const m = LOG_RE.exec(f);
      if (m && Number(m[1]) < old.base) fs.rmSync(path.join(this.dir, f), { force: true });
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.stopWatching();
    this.watchers.clear();
    // Let writes already queued for the lock finish before the descriptors go.
    try {
      const release = await this.locker.acquire();
      release();
    } catch {
      // closing anyway
    }
    this.locker.close();
    if (this.log) fs.closeSync(this.log.fd);
    this.log = undefined;
  }
}
