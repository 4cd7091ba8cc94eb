// Keeps a copy of every datastore object the topology depends on: lists each prefix, then watches
// it from the revision of that list; on `{resync}` lists the prefix again. After each change it
// calls `onChange` once (changes arriving together are coalesced into one call). Cheap handlers:
// the topology itself is computed by whoever asks, from `objects()`.
import type { Datastore, WatchMessage } from "../datastore/types.js";
import { CONFIG_KEY } from "../model/lease.js";
import { TOPOLOGY_PREFIXES } from "./topology.js";

export interface TopologySourceOptions {
  store: Datastore;
  signal: AbortSignal;
  onChange(): void;
  log(line: string): void;
  prefixes?: readonly string[];
}

export class TopologySource {
  private readonly kvs = new Map<string, string>();
  private queued = false;

  constructor(private readonly o: TopologySourceOptions) {}

  /** Lists every prefix and starts watching them; resolves once the first full copy is held. */
  async start(): Promise<void> {
    await Promise.all((this.o.prefixes ?? TOPOLOGY_PREFIXES).map((p) => this.listAndWatch(p)));
  }

  objects(): Array<{ key: string; value: string }> {
    return [...this.kvs.entries()].map(([key, value]) => ({ key, value }));
  }

  /** CONFIG_KEY is a single key: a prefix list would also match keys that merely start with it. */
  private wanted(prefix: string, key: string): boolean {
    return prefix === CONFIG_KEY ? key === CONFIG_KEY : key.startsWith(prefix);
  }

  private async listAndWatch(prefix: string): Promise<void> {
    if (this.o.signal.aborted) return;
    const listed = await this.o.store.list(prefix);
    for (const key of [...this.kvs.keys()]) if (this.wanted(prefix, key)) this.kvs.delete(key);
    for (const kv of listed.items) if (this.wanted(prefix, kv.key)) this.kvs.set(kv.key, kv.value);
    this.changed();
    const watching = new AbortController();
    const stop = (): void => watching.abort();
    this.o.signal.addEventListener("abort", stop, { once: true });
    this.o.store.watch(prefix, listed.revision, (m: WatchMessage) => {
      if ("resync" in m) {
        this.o.log(`watch ${prefix}: ${m.reason}; listing again`);
        watching.abort();
        this.o.signal.removeEventListener("abort", stop);
        this.listAndWatch(prefix).catch((e: Error) => this.o.log(`cannot list ${prefix}: ${e.message}`));
        return;
      }
      for (const ev of m.events) {
        if (ev.type === "put") {
          if (this.wanted(prefix, ev.kv.key)) this.kvs.set(ev.kv.key, ev.kv.value);
        } else if (this.wanted(prefix, ev.key)) {
          this.kvs.delete(ev.key);
        }
      }
      this.changed();
    }, watching.signal);
  }

  private changed(): void {
    if (this.queued) return;
    this.queued = true;
    queueMicrotask(() => {
      this.queued = false;
      if (!this.o.signal.aborted) this.o.onChange();
    });
  }
}
