// Keeps the node's policy table equal to the compiled ruleset, level-triggered like the route
// reconciler: callers replace the desired ruleset; one sync at a time reads the table back and
// applies. A change that only moves set members is sent as element additions/removals; anything
// else replaces the whole table in one `nft -f` transaction, so no packet ever sees a half-made
// policy. Drift (the table edited or deleted by hand) is detected by comparing the listing with
// the one taken right after our last write, and repaired by a full replacement.
import { createHash } from "node:crypto";
import type { PolicyKernel } from "../kernel/policy.js";
import type { Ruleset } from "./compile.js";
import { renderRuleset, renderSetDelta } from "./render.js";

const digest = (s: string | undefined): string => createHash("sha256").update(s ?? "<none>").digest("hex");

export interface ApplierOptions {
  resyncMs: number;
  log(line: string): void;
  onApplied?(r: { full: boolean; ms: number }): void;
}

export class PolicyApplier {
  private desired: Ruleset | undefined;
  private applied: Ruleset | undefined;
  private appliedListing: string | undefined;
  private dirty = false;
  private running = false;
  private stopped = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private waiters: Array<() => void> = [];

  constructor(private readonly kernel: PolicyKernel, private readonly o: ApplierOptions) {}

  setDesired(r: Ruleset): void {
    this.desired = r;
    this.kick();
  }

  kick(): void {
    this.dirty = true;
    if (!this.running && !this.stopped) void this.loop();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /** Resolves once the kernel holds the latest desired ruleset. */
  settled(): Promise<void> {
    if (!this.running && !this.dirty) return Promise.resolve();
    return new Promise((r) => this.waiters.push(r));
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.kick(), ms);
    this.timer.unref?.();
  }

  private async loop(): Promise<void> {
    this.running = true;
    await Promise.resolve();
    try {
      while (this.dirty && !this.stopped) {
        this.dirty = false;
        if (!this.desired) continue;
        const ok = await this.syncOnce(this.desired);
        this.schedule(ok ? this.o.resyncMs : 500);
      }
    } finally {
      this.running = false;
      for (const w of this.waiters.splice(0)) w();
    }
  }

  private async syncOnce(want: Ruleset): Promise<boolean> {
    const started = Date.now();
    try {
      const listing = await this.kernel.listing();
      const intact = this.applied !== undefined && digest(listing) === digest(this.appliedListing);
      let full = true;
      let script: string;
      if (intact && this.applied === want) return true;
      const delta = intact ? renderSetDelta(this.applied!, want) : undefined;
      if (delta !== undefined) {
        full = false;
        script = delta;
      } else {
        if (this.applied !== undefined && !intact) this.o.log("policy table differs from what was written (drift): replacing it");
        script = renderRuleset(want);
      }
      if (script.trim() !== "") await this.kernel.apply(script);
      this.applied = want;
      this.appliedListing = await this.kernel.listing();
      const ms = Date.now() - started;
      this.o.onApplied?.({ full, ms });
      if (script.trim() !== "") this.o.log(`policy: ${full ? "table replaced" : "set elements updated"} in ${ms} ms`);
      return true;
    } catch (e) {
      this.o.log(`policy sync failed (will retry): ${(e as Error).message}`);
      return false;
    }
  }
}
