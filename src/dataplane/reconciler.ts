// Level-triggered reconciliation (the felix pattern): callers only replace the desired state and
// mark it dirty; one sync runs at a time; a sync reads the kernel back, diffs, applies, and
// schedules a retry when anything failed. A periodic resync repairs drift (a route deleted by
// hand comes back). Nothing is written before the first desired state arrives — which the agent
// only provides after its first full datastore sync — so a restart never tears anything down.
import type { DataplaneKernel } from "../kernel/dataplane.js";
import { diffDataplane, type ActualDataplane, type Step } from "./diff.js";
import { SyncLoop, type Timers } from "./sync-loop.js";
import type { Dataplane } from "./state.js";

export { realTimers, type Timers } from "./sync-loop.js";

export interface ReconcilerOptions {
  resyncMs: number;
  retryMinMs: number;
  retryMaxMs: number;
  log(line: string): void;
  timers?: Timers;
  /**
   * Called after each sync with the steps applied, what the kernel held before them and the
   * desired state they were computed for (status, metrics and tests).
   */
  onSync?(r: { steps: Step[]; errors: string[]; ms: number; actual?: ActualDataplane; desired: Dataplane }): void;
}

export class Reconciler {
  private desired: Dataplane | undefined;
  private readonly loop: SyncLoop;
  private readonly timers: Timers;
  syncs = 0;

  constructor(private readonly kernel: DataplaneKernel, private readonly opts: ReconcilerOptions) {
    this.loop = new SyncLoop(() => (this.desired ? this.syncOnce(this.desired) : Promise.resolve(undefined)), opts);
    this.timers = this.loop.timers;
  }

  /** Replaces the desired state and asks for a sync soon. Cheap: no kernel access here. */
  setDesired(d: Dataplane): void {
    this.desired = d;
    this.loop.kick();
  }

  /** Asks for a sync (e.g. on a timer or a signal). */
  kick(): void {
    this.loop.kick();
  }

  stop(): void {
    this.loop.stop();
  }

  /** Resolves when no sync is running and none is pending (after stop(), none ever is). */
  idle(): Promise<void> {
    return this.loop.idle();
  }

  private async syncOnce(desired: Dataplane): Promise<boolean> {
    const started = this.timers.now();
    let steps: Step[] = [];
    let errors: string[] = [];
    let actual: ActualDataplane | undefined;
    try {
      actual = await this.kernel.read({ bgp: !!desired.rule, v6PodRoutes: (desired.podRoutes ?? []).some((r) => r.dst.includes(":")) });
      steps = diffDataplane(desired, actual);
      if (steps.length > 0) errors = await this.kernel.apply(steps);
    } catch (e) {
      errors = [(e as Error).message];
    }
    this.syncs++;
    const ms = this.timers.now() - started;
    if (steps.length > 0) this.opts.log(`sync: ${steps.length} change(s) in ${ms} ms${errors.length ? `, ${errors.length} failed` : ""}`);
    for (const e of errors) this.opts.log(`sync error (will retry): ${e}`);
    this.opts.onSync?.({ steps, errors, ms, desired, ...(actual ? { actual } : {}) });
    return errors.length === 0;
  }
}
