// Level-triggered reconciliation (the felix pattern): callers only replace the desired state and
// mark it dirty; one sync runs at a time; a sync reads the kernel back, diffs, applies, and
// schedules a retry when anything failed. A periodic resync repairs drift (a route deleted by
// hand comes back). Nothing is written before the first desired state arrives — which the agent
// only provides after its first full datastore sync — so a restart never tears anything down.
import type { DataplaneKernel } from "../kernel/dataplane.js";
import { diffDataplane, type Step } from "./diff.js";
import type { Dataplane } from "./state.js";

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  now(): number;
}

export const realTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
  now: () => Date.now(),
};

export interface ReconcilerOptions {
  resyncMs: number;
  retryMinMs: number;
  retryMaxMs: number;
  log(line: string): void;
  timers?: Timers;
  /** Called after each sync with the steps applied (for metrics and tests). */
  onSync?(r: { steps: Step[]; errors: string[]; ms: number }): void;
}

export class Reconciler {
  private desired: Dataplane | undefined;
  private dirty = false;
  private running = false;
  private timer: unknown;
  private retryMs: number;
  private stopped = false;
  private readonly timers: Timers;
  syncs = 0;

  constructor(private readonly kernel: DataplaneKernel, private readonly opts: ReconcilerOptions) {
    this.timers = opts.timers ?? realTimers;
    this.retryMs = opts.retryMinMs;
  }

  /** Replaces the desired state and asks for a sync soon. Cheap: no kernel access here. */
  setDesired(d: Dataplane): void {
    this.desired = d;
    this.kick();
  }

  /** Asks for a sync (e.g. on a timer or a signal). */
  kick(): void {
    this.dirty = true;
    if (!this.running && !this.stopped) void this.loop();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
  }

  /** Resolves when no sync is running and none is pending (after stop(), none ever is). */
  async idle(): Promise<void> {
    while (this.running || (this.dirty && !this.stopped)) await new Promise((r) => setImmediate(r));
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = this.timers.setTimeout(() => {
      this.timer = undefined;
      this.kick();
    }, ms);
  }

  private async loop(): Promise<void> {
    this.running = true;
    try {
      // Yield first: the caller's handler returns before any kernel access, and a burst of updates
      // in one tick coalesces into a single sync.
      await Promise.resolve();
      while (this.dirty && !this.stopped) {
        this.dirty = false;
        if (!this.desired) continue;
        const ok = await this.syncOnce(this.desired);
        if (ok) {
          this.retryMs = this.opts.retryMinMs;
          this.schedule(this.opts.resyncMs);
        } else {
          this.schedule(this.retryMs);
          this.retryMs = Math.min(this.retryMs * 2, this.opts.retryMaxMs);
        }
      }
    } finally {
      this.running = false;
    }
  }

  private async syncOnce(desired: Dataplane): Promise<boolean> {
    const started = this.timers.now();
    let steps: Step[] = [];
    let errors: string[] = [];
    try {
      const actual = await this.kernel.read();
      steps = diffDataplane(desired, actual);
      if (steps.length > 0) errors = await this.kernel.apply(steps);
    } catch (e) {
      errors = [(e as Error).message];
    }
    this.syncs++;
    const ms = this.timers.now() - started;
    if (steps.length > 0) this.opts.log(`sync: ${steps.length} change(s) in ${ms} ms${errors.length ? `, ${errors.length} failed` : ""}`);
    for (const e of errors) this.opts.log(`sync error (will retry): ${e}`);
    this.opts.onSync?.({ steps, errors, ms });
    return errors.length === 0;
  }
}
