// This node's endpoints, as the CNI plugin registers them: one JSON file per attachment in the
// node's endpoint spool, written at ADD and removed at DEL (atomically: temporary name, rename).
// The agent reads the spool here once for every part that needs it — policy (selector sets,
// publishing to the datastore) and routing (repairing a pod's own host route). inotify tells of
// changes; a slow scan is the safety net for filesystems where it misses some.
import * as fs from "node:fs";
import * as path from "node:path";
import type { Endpoint } from "../policy/model.js";
import { endpointKey, parseEndpoint } from "../policy/store-model.js";

export interface LocalEndpointsOptions {
  node: string;
  dir: string;
  log(line: string): void;
  signal: AbortSignal;
  scanMs?: number;
}

export class LocalEndpoints {
  private readonly current = new Map<string, Endpoint>();
  private readonly listeners: Array<() => void> = [];
  private started = false;

  constructor(private readonly o: LocalEndpointsOptions) {}

  /** Endpoints by datastore key (`endpoints/<node>/<container>/<ifname>`). */
  get all(): ReadonlyMap<string, Endpoint> {
    return this.current;
  }

  /** Calls `fn` after each change of the set (not for the first scan). */
  onChange(fn: () => void): void {
    this.listeners.push(fn);
  }

  /** Reads the spool and starts following it; idempotent. */
  start(): void {
    if (this.started) return;
    this.started = true;
    fs.mkdirSync(this.o.dir, { recursive: true });
    this.scan();
    try {
      fs.watch(this.o.dir, { signal: this.o.signal }, () => this.changed());
    } catch (e) {
      this.o.log(`cannot watch ${this.o.dir} (${(e as Error).message}); scanning it periodically`);
    }
    const timer = setInterval(() => this.changed(), this.o.scanMs ?? 2000);
    timer.unref?.();
    this.o.signal.addEventListener("abort", () => clearInterval(timer), { once: true });
  }

  private changed(): void {
    if (this.scan()) for (const fn of this.listeners) fn();
  }

  /** Reads the spool; true when the set of endpoints changed. */
  private scan(): boolean {
    let names: string[];
    try {
      names = fs.readdirSync(this.o.dir).filter((n) => n.endsWith(".json"));
    } catch {
      names = [];
    }
    const next = new Map<string, Endpoint>();
    for (const n of names) {
      let text: string;
      try {
        text = fs.readFileSync(path.join(this.o.dir, n), "utf8");
      } catch {
        continue;
      }
      const ep = parseEndpoint(text);
      if (ep) next.set(endpointKey({ ...ep, node: this.o.node }), { ...ep, node: this.o.node });
    }
    const same = next.size === this.current.size && [...next].every(([k, v]) => JSON.stringify(this.current.get(k)) === JSON.stringify(v));
    if (same) return false;
    this.current.clear();
    for (const [k, v] of next) this.current.set(k, v);
    return true;
  }
}
