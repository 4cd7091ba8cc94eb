// Keeps the node's policy table equal to the compiled ruleset, level-triggered like the route
// reconciler: callers replace the desired ruleset; one sync at a time reads the table back and
// applies. A change that only moves set members is sent as element additions/removals; anything
// else replaces the whole table in one `nft -f` transaction, so no packet ever sees a half-made
// policy. Drift is repaired by a full replacement: a table deleted or replaced by someone else is
// seen at once (its `generation` set no longer holds our number; reading that set costs the same
// for 10 or 20 000 rules), rules edited inside an intact table within a minute (a full listing
// compared with the one seen after our last write; listing a large table takes seconds, so never
// on the hot path).
import { createHash } from "node:crypto";
import { SyncLoop } from "../dataplane/sync-loop.js";
import type { PolicyKernel } from "../kernel/policy.js";
import type { Ruleset } from "./compile.js";
import { renderRuleset, renderSetDelta } from "./render.js";

// Rule counters count packets: their values are not part of what was written.
const digest = (s: string | undefined): string =>
  createHash("sha256").update(s === undefined ? "<none>" : s.replace(/\bcounter packets \d+ bytes \d+/g, "counter")).digest("hex");

export interface ApplierOptions {
  resyncMs: number;
  log(line: string): void;
  /** After each sync that wrote (or found current) `ruleset`; `drift`: the table had to be replaced because it differed. */
  onApplied?(r: { full: boolean; ms: number; ruleset: Ruleset; drift: boolean }): void;
  /** After each sync attempt that did kernel work or failed (metrics). */
  onSync?(r: { ms: number; error?: string }): void;
}

export class PolicyApplier {
  private desired: Ruleset | undefined;
  private applied: Ruleset | undefined;
  private generation = Math.floor(Math.random() * 0x7fffffff);
  private readonly loop: SyncLoop;
  /** Deep check: the listing's digest, taken at the first resync after our last write. */
  private baseline: string | undefined;
  private lastDeepCheck = 0;

  constructor(private readonly kernel: PolicyKernel, private readonly o: ApplierOptions) {
    this.loop = new SyncLoop(() => (this.desired ? this.syncOnce(this.desired) : Promise.resolve(undefined)),
      { resyncMs: o.resyncMs, retryMinMs: 500, retryMaxMs: 10_000 });
  }

  setDesired(r: Ruleset): void {
    this.desired = r;
    this.loop.kick();
  }

  kick(): void {
    this.loop.kick();
  }

  stop(): void {
    this.loop.stop();
  }

  /** Resolves once the kernel holds the latest desired ruleset (or a sync failed and waits to retry). */
  settled(): Promise<void> {
    return this.loop.idle();
  }

  /**
   * Is the kernel's table still the one we last wrote? Cheap check every time: its generation
   * number. Deep check at most once a minute: the whole listing against the one seen at the first
   * check after our last write (catches rules edited by hand inside an intact table).
   */
  private async intact(): Promise<boolean> {
    if (!this.applied || (await this.kernel.generation()) !== this.generation) return false;
    if (Date.now() - this.lastDeepCheck < DEEP_CHECK_MS) return true;
    this.lastDeepCheck = Date.now();
    const d = digest(await this.kernel.listing());
    if (this.baseline === undefined) this.baseline = d;
    return d === this.baseline;
  }

  private async syncOnce(want: Ruleset): Promise<boolean> {
    const started = Date.now();
    try {
      const intact = await this.intact();
      if (intact && this.applied === want) {
        this.o.onSync?.({ ms: Date.now() - started });
        return true;
      }
      const delta = intact ? renderSetDelta(this.applied!, want) : undefined;
      const drift = this.applied !== undefined && !intact;
      let full = false;
      let script: string;
      if (delta !== undefined) {
        script = delta;
      } else {
        if (drift) this.o.log("policy table differs from what was written (drift): replacing it");
        full = true;
        this.generation = (this.generation + 1) % 0x7fffffff;
        script = renderRuleset(want, this.generation);
      }
      if (script.trim() !== "") {
        await this.kernel.apply(script);
        this.baseline = undefined;
        this.lastDeepCheck = Date.now();
      }
      this.applied = want;
      const ms = Date.now() - started;
      this.o.onApplied?.({ full, ms, ruleset: want, drift });
      this.o.onSync?.({ ms });
      if (script.trim() !== "") this.o.log(`policy: ${full ? "table replaced" : "set elements updated"} in ${ms} ms`);
      return true;
    } catch (e) {
      this.o.log(`policy sync failed (will retry): ${(e as Error).message}`);
      this.o.onSync?.({ ms: Date.now() - started, error: (e as Error).message });
      return false;
    }
  }
}

const DEEP_CHECK_MS = 60_000;
