// A cache of every object under some key prefixes, kept current from the datastore: listed at
// one revision, then watched from it; a watch that reports "resync" (compaction, a lost
// connection) is answered by listing that prefix again, retried until a list succeeds. Each
// controller that reads stored objects (policy, BGP) keeps one and recomputes from it on change.
import type { Datastore, KeyValue, WatchMessage } from "./types.js";

export interface WatchedObjectsOptions {
  store: Datastore;
  prefixes: readonly string[];
  /** Called after every change the cache took in (not for the first list). */
  onChange(): void;
  log(line: string): void;
  signal: AbortSignal;
  /** Metrics: a watch of `prefix` reported a resync; a list after one failed. */
  onResync?(prefix: string): void;
  onListError?(prefix: string): void;
}

export class WatchedObjects {
  private readonly items = new Map<string, KeyValue>();

  constructor(private readonly o: WatchedObjectsOptions) {}

  /** Objects by key. */
  get all(): ReadonlyMap<string, KeyValue> {
    return this.items;
  }

  /** Lists every prefix, then watches each from the newest revision listed. */
  async start(): Promise<void> {
    let revision = 0;
    for (const prefix of this.o.prefixes) {
      const r = await this.o.store.list(prefix);
      for (const kv of r.items) this.items.set(kv.key, kv);
      revision = Math.max(revision, r.revision);
    }
    for (const prefix of this.o.prefixes) {
      this.o.store.watch(prefix, revision, (m) => this.onWatch(prefix, m), this.o.signal);
    }
  }

  private onWatch(prefix: string, m: WatchMessage): void {
    if ("resync" in m) {
      this.o.onResync?.(prefix);
      this.relist(prefix, 500);
      return;
    }
    for (const ev of m.events) {
      if (ev.type === "put") this.items.set(ev.kv.key, ev.kv);
      else this.items.delete(ev.key);
    }
    this.o.onChange();
  }

  /** The changes in between may be gone (compaction): only a list brings the prefix back in line. */
  private relist(prefix: string, delayMs: number): void {
    void this.o.store.list(prefix).then((r) => {
      for (const k of [...this.items.keys()]) if (k.startsWith(prefix)) this.items.delete(k);
      for (const kv of r.items) this.items.set(kv.key, kv);
      this.o.onChange();
    }, (e: unknown) => {
      this.o.onListError?.(prefix);
      this.o.log(`cannot list ${prefix}: ${(e as Error).message}; retrying in ${delayMs} ms`);
      setTimeout(() => {
        if (!this.o.signal.aborted) this.relist(prefix, Math.min(delayMs * 2, 5_000));
      }, delayMs).unref?.();
    });
  }
}
