// The level-triggered loop shared by the route reconciler and the policy applier: callers only
// mark the state dirty (`kick`); one sync runs at a time; a burst of kicks in one tick becomes one
// sync; a failed sync is retried with exponential backoff; a good one schedules the periodic
// resync that repairs drift. What a sync does is the owner's business.

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

export interface SyncLoopOptions {
  resyncMs: number;
  retryMinMs: number;
  retryMaxMs: number;
  timers?: Timers;
}

export class SyncLoop {
  private dirty = false;
  private running = false;
  private stopped = false;
  private timer: unknown;
  private retryMs: number;
  readonly timers: Timers;

  /**
   * `sync` returns true when the kernel now matches what was wanted, false when it must be
   * retried, undefined when there was nothing to do yet (no desired state: no resync either).
   */
  constructor(private readonly sync: () => Promise<boolean | undefined>, private readonly o: SyncLoopOptions) {
    this.timers = o.timers ?? realTimers;
    this.retryMs = o.retryMinMs;
  }

  /** Asks for a sync soon. Cheap: never runs one inside the caller. */
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
      // Yield first: the caller returns before any kernel access, and a burst of kicks in one
      // tick coalesces into a single sync.
      await Promise.resolve();
      while (this.dirty && !this.stopped) {
        this.dirty = false;
        const ok = await this.sync();
        if (ok === undefined) continue;
        if (ok) {
          this.retryMs = this.o.retryMinMs;
          this.schedule(this.o.resyncMs);
        } else {
          this.schedule(this.retryMs);
          this.retryMs = Math.min(this.retryMs * 2, this.o.retryMaxMs);
        }
      }
    } finally {
      this.running = false;
    }
  }
}
