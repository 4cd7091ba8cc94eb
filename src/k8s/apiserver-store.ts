// The fake API server's storage: objects by resource and key, one global resourceVersion
// counter (as etcd's revision), and a bounded history of changes for watch resumption and
// consistent paged lists. In memory; no HTTP here.

type Obj = Record<string, unknown>;

export type EventType = "ADDED" | "MODIFIED" | "DELETED";

/** One committed change. For DELETED, `object` is the last state with the deletion's resourceVersion. */
export interface StoredEvent { rv: number; bucket: string; key: string; type: EventType; object: Obj; prev?: Obj }

const setRv = (o: Obj, rv: number): Obj => {
  const meta = { ...((o.metadata as Obj | undefined) ?? {}), resourceVersion: String(rv) };
  return { ...o, metadata: meta };
};

export class ObjectStore {
  /** The last committed resourceVersion. */
  rv = 0;
  /** History is complete for every change after this resourceVersion; older ones are forgotten. */
  floorRv = 0;
  private history: StoredEvent[] = [];
  private readonly buckets = new Map<string, Map<string, Obj>>();
  private readonly listeners = new Set<(e: StoredEvent) => void>();

  constructor(private readonly historyLimit: number) {}

  private bucket(b: string): Map<string, Obj> {
    let m = this.buckets.get(b);
    if (!m) { m = new Map(); this.buckets.set(b, m); }
    return m;
  }

  get(bucket: string, key: string): Obj | undefined {
    return this.buckets.get(bucket)?.get(key);
  }

  /** Creates or replaces; returns the stored object (with its new resourceVersion). */
  put(bucket: string, key: string, obj: Obj): Obj {
    const prev = this.get(bucket, key);
    const stored = setRv(obj, ++this.rv);
    this.bucket(bucket).set(key, stored);
    this.record({ rv: this.rv, bucket, key, type: prev ? "MODIFIED" : "ADDED", object: stored, ...(prev ? { prev } : {}) });
    return stored;
  }

  /** Deletes; returns the object as the DELETED event carries it, or undefined if absent. */
  remove(bucket: string, key: string): Obj | undefined {
    const prev = this.get(bucket, key);
    if (!prev) return undefined;
    this.buckets.get(bucket)!.delete(key);
    const object = setRv(prev, ++this.rv);
    this.record({ rv: this.rv, bucket, key, type: "DELETED", object, prev });
    return object;
  }

  private record(e: StoredEvent): void {
    this.history.push(e);
    while (this.history.length > this.historyLimit) this.floorRv = this.history.shift()!.rv;
    for (const l of [...this.listeners]) l(e);
  }

  /** Entries of a bucket sorted by key, optionally those under `prefix` only, at `atRv` (undefined: now; null: history too short). */
  entries(bucket: string, prefix = "", atRv?: number): [string, Obj][] | null {
    let m = this.buckets.get(bucket) ?? new Map<string, Obj>();
    if (atRv !== undefined && atRv < this.rv) {
      if (atRv < this.floorRv) return null;
      m = new Map(m);
      for (let i = this.history.length - 1; i >= 0 && this.history[i]!.rv > atRv; i--) {
        const e = this.history[i]!;
        if (e.bucket !== bucket) continue;
        if (e.prev) m.set(e.key, e.prev); else m.delete(e.key);
      }
    }
    return [...m.entries()].filter(([k]) => k.startsWith(prefix)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }

  /** Every change after `rv`, or null if some were forgotten. */
  eventsAfter(rv: number): StoredEvent[] | null {
    if (rv < this.floorRv) return null;
    return this.history.filter((e) => e.rv > rv);
  }

  /** Forget all history: reads and watches from any resourceVersion before now get 410. */
  compact(): void {
    this.history = [];
    this.floorRv = this.rv;
  }

  subscribe(fn: (e: StoredEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
}
