// The datastore contract shared by the embedded store (one machine) and etcd (a cluster).
//
// A flat, ordered key space with revisions, like etcd v3: every change bumps one global revision;
// each key remembers the revision that created it and the one that last changed it. Writers that
// must not lose a race use create (only if absent) or update (only if unchanged since the revision
// they read) — e.g. two nodes leasing the same subnet: exactly one create succeeds. Keys written
// with a TTL disappear (with a delete event) when not renewed in time. Watchers get every change
// after a revision, in order; when the store cannot guarantee that (compaction, lost connection)
// it says "resync" and the watcher lists afresh.

export interface KeyValue {
  key: string;
  value: string;
  createRevision: number;
  modRevision: number;
}

export type WatchEvent =
  | { type: "put"; kv: KeyValue }
  | { type: "delete"; key: string; modRevision: number };

/** What a watch handler receives: changes in revision order, or a request to re-list. */
export type WatchMessage = { events: WatchEvent[]; revision: number } | { resync: true; reason: string };

export interface ListResult {
  items: KeyValue[];
  /** The store's revision at the time of the read: watch from revision + 1 to miss nothing. */
  revision: number;
}

export interface WriteOptions {
  /** The key is deleted this many seconds after the write unless written again. */
  ttlSeconds?: number;
}

export interface Datastore {
  readonly kind: "embedded" | "etcd" | "kubernetes";
  get(key: string): Promise<KeyValue | undefined>;
  /** Every key starting with `prefix`, in key order. */
  list(prefix: string): Promise<ListResult>;
  /** Writes `key` only if it does not exist; undefined if it does. */
  create(key: string, value: string, opts?: WriteOptions): Promise<KeyValue | undefined>;
  /** Writes `key` only if its modRevision is still `expectedModRevision`; undefined otherwise. */
  update(key: string, value: string, expectedModRevision: number, opts?: WriteOptions): Promise<KeyValue | undefined>;
  /** Writes `key` unconditionally. */
  put(key: string, value: string, opts?: WriteOptions): Promise<KeyValue>;
  /** Deletes `key` (only if unchanged since `expectedModRevision`, when given); false if nothing was deleted. */
  delete(key: string, expectedModRevision?: number): Promise<boolean>;
  /**
   * Calls `handler` with every change to keys under `prefix` after `fromRevision` (exclusive),
   * until `signal` aborts. Never throws to the caller: failures become `{resync}` messages and the
   * watch keeps trying to reconnect in the background.
   */
  watch(prefix: string, fromRevision: number, handler: (m: WatchMessage) => void, signal: AbortSignal): void;
  close(): Promise<void>;
}

export class DatastoreError extends Error {
  readonly code: "unavailable" | "invalid" | "internal";
  constructor(code: DatastoreError["code"], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "DatastoreError";
    this.code = code;
  }
}
