import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Reconciler, type ReconcilerOptions, type Timers } from "./reconciler.js";
import { VTEP_NAME, type Dataplane } from "./state.js";
import type { Step } from "./diff.js";
import { FakeDataplaneKernel } from "../kernel/fake-dataplane.js";

/** A manual clock: timers only run when the test fires them. */
class ManualTimers implements Timers {
  private time = 0;
  private nextId = 1;
  private readonly pending = new Map<number, { fn: () => void; at: number; ms: number }>();

  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.pending.set(id, { fn, at: this.time + ms, ms });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }

  now(): number {
    return this.time;
  }

  /** The delays of the timers still pending, in the order they were set. */
  delays(): number[] {
    return [...this.pending.values()].map((t) => t.ms);
  }

  /** Advances the clock to the earliest pending timer and runs it; returns its delay. */
  fireNext(): number {
    const next = [...this.pending.entries()].sort((a, b) => a[1].at - b[1].at)[0];
    assert.ok(next, "no timer pending");
    this.pending.delete(next[0]);
    this.time = next[1].at;
    next[1].fn();
    return next[1].ms;
  }
}

const dp = (peers: number[], vtep = true): Dataplane => ({
  ...(vtep
    ? { vtep: { name: VTEP_NAME, vni: 1, port: 8472, localIp: "10.99.1.11", dev: "eth0", mtu: 1450, mac: "0a:00:00:00:00:01", address: "10.244.1.0/32" } }
    : {}),
  routes: peers.map((n) => ({ dst: `10.244.${n}.0/24`, via: `10.244.${n}.0`, dev: VTEP_NAME, onlink: true })),
  fdb: peers.map((n) => ({ mac: `0a:00:00:00:00:${String(n).padStart(2, "0")}`, dst: `10.99.1.${n}` })),
  neigh: peers.map((n) => ({ ip: `10.244.${n}.0`, mac: `0a:00:00:00:00:${String(n).padStart(2, "0")}` })),
});

interface Rig {
  kernel: FakeDataplaneKernel;
  timers: ManualTimers;
  r: Reconciler;
  logs: string[];
  syncs: Array<{ steps: Step[]; errors: string[] }>;
}

function rig(opts: Partial<ReconcilerOptions> = {}): Rig {
  const kernel = new FakeDataplaneKernel();
  const timers = new ManualTimers();
  const logs: string[] = [];
  const syncs: Array<{ steps: Step[]; errors: string[] }> = [];
  const r = new Reconciler(kernel, {
    resyncMs: 60_000, retryMinMs: 100, retryMaxMs: 1_000, log: (l) => logs.push(l), timers,
    onSync: (s) => syncs.push({ steps: s.steps, errors: s.errors }), ...opts,
  });
  return { kernel, timers, r, logs, syncs };
}

const ops = (k: FakeDataplaneKernel): string[] => k.calls.map((c) => c.op);
const routeDsts = (k: FakeDataplaneKernel): string[] => k.state.routes.map((r) => r.dst).sort();

describe("Reconciler", () => {
  it("does not touch the kernel before the first desired state, even when kicked", async () => {
    const { kernel, timers, r } = rig();
    r.kick();
    await r.idle();
    assert.deepEqual(kernel.calls, []);
    assert.deepEqual(timers.delays(), []);
    assert.equal(r.syncs, 0);
  });

  it("does not touch the kernel inside setDesired itself (handlers stay cheap)", async () => {
    const { kernel, r } = rig();
    r.setDesired(dp([2]));
    assert.deepEqual(kernel.calls, []);
    await r.idle();
    assert.deepEqual(ops(kernel), ["read", "apply"]);
  });

  it("runs exactly one sync per setDesired: read, then apply, then a resync is scheduled", async () => {
    const { kernel, timers, r, syncs } = rig();
    r.setDesired(dp([2, 3]));
    await r.idle();
    assert.deepEqual(ops(kernel), ["read", "apply"]);
    assert.equal(r.syncs, 1);
    assert.deepEqual(routeDsts(kernel), ["10.244.2.0/24", "10.244.3.0/24"]);
    assert.deepEqual(syncs[0]?.errors, []);
    assert.deepEqual(timers.delays(), [60_000]);
  });

  it("reads but does not apply when the kernel already matches", async () => {
    const { kernel, r, logs } = rig();
    r.setDesired(dp([2]));
    await r.idle();
    r.setDesired(dp([2]));
    await r.idle();
    assert.deepEqual(ops(kernel), ["read", "apply", "read"]);
    assert.equal(logs.length, 1, "a sync with nothing to do is not logged");
  });

  it("coalesces a burst of setDesired calls into one sync of the last state", async () => {
    const { kernel, r } = rig();
    r.setDesired(dp([2]));
    r.setDesired(dp([3]));
    r.setDesired(dp([4, 5]));
    await r.idle();
    assert.deepEqual(ops(kernel), ["read", "apply"]);
    assert.deepEqual(routeDsts(kernel), ["10.244.4.0/24", "10.244.5.0/24"]);
  });

  it("runs one sync at a time; updates during a sync are coalesced into one more sync of the last state", async () => {
    const { kernel, r } = rig();
    const release = kernel.hold();
    r.setDesired(dp([2]));
    // Let the first sync start and block in the kernel.
    while (kernel.calls.length === 0) await new Promise((res) => setImmediate(res));
    r.setDesired(dp([3]));
    r.setDesired(dp([4]));
    r.setDesired(dp([5]));
    for (let i = 0; i < 10; i++) await new Promise((res) => setImmediate(res));
    assert.deepEqual(ops(kernel), ["read"], "no second sync while the first is running");
    release();
    await r.idle();
    assert.equal(kernel.maxInFlight, 1);
    assert.deepEqual(ops(kernel), ["read", "apply", "read", "apply"]);
    assert.deepEqual(routeDsts(kernel), ["10.244.5.0/24"]);
    const applied = kernel.appliedSteps.flat().map((s) => (s.tool === "nft" ? s.script : s.line)).join("\n");
    assert.ok(!applied.includes("10.244.3.0") && !applied.includes("10.244.4.0"), "intermediate states are never applied");
  });

  it("retries a failed apply with exponential backoff capped at retryMaxMs, then resets it after a success", async () => {
    const { kernel, timers, r, logs } = rig();
    kernel.failNextApply("ip: RTNETLINK answers: Network is unreachable", 6);
    r.setDesired(dp([2]));
    await r.idle();
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      assert.equal(timers.delays().length, 1, "exactly one timer pending");
      delays.push(timers.fireNext());
      await r.idle();
    }
    assert.deepEqual(delays, [100, 200, 400, 800, 1000, 1000]);
    assert.deepEqual(routeDsts(kernel), ["10.244.2.0/24"], "the 7th attempt succeeded");
    assert.equal(r.syncs, 7);
    assert.ok(logs.some((l) => l === "sync error (will retry): ip: RTNETLINK answers: Network is unreachable"), logs.join("\n"));
    assert.deepEqual(timers.delays(), [60_000], "after a success: the resync, not a retry");
    // A new failure starts again from retryMinMs.
    kernel.failNextApply("boom");
    r.setDesired(dp([3]));
    await r.idle();
    assert.deepEqual(timers.delays(), [100]);
  });

  it("retries when reading the kernel fails, without applying anything", async () => {
    const { kernel, timers, r, syncs } = rig();
    kernel.failNextRead("ip: Cannot open netlink socket");
    r.setDesired(dp([2]));
    await r.idle();
    assert.deepEqual(ops(kernel), ["read"]);
    assert.deepEqual(syncs[0]?.errors, ["ip: Cannot open netlink socket"]);
    assert.deepEqual(timers.delays(), [100]);
    timers.fireNext();
    await r.idle();
    assert.deepEqual(ops(kernel), ["read", "read", "apply"]);
    assert.deepEqual(routeDsts(kernel), ["10.244.2.0/24"]);
  });

  it("repairs drift at the periodic resync, with only the steps the drift needs", async () => {
    const { kernel, timers, r } = rig();
    r.setDesired(dp([2, 3, 4]));
    await r.idle();
    kernel.state.routes = kernel.state.routes.filter((x) => x.dst !== "10.244.3.0/24");
    kernel.state.fdb.push({ mac: "0a:00:00:00:00:99", dst: "10.99.1.99" });
    assert.equal(timers.fireNext(), 60_000);
    await r.idle();
    assert.deepEqual(kernel.appliedSteps.at(-1), [
      { tool: "ip", line: `route replace 10.244.3.0/24 via 10.244.3.0 dev ${VTEP_NAME} onlink proto 202` },
      { tool: "bridge", line: `fdb del 0a:00:00:00:00:99 dev ${VTEP_NAME} dst 10.99.1.99 self` },
    ]);
    assert.deepEqual(routeDsts(kernel), ["10.244.2.0/24", "10.244.3.0/24", "10.244.4.0/24"]);
    assert.deepEqual(timers.delays(), [60_000], "the next resync is scheduled, and only one");
    // A resync with nothing drifted only reads.
    timers.fireNext();
    await r.idle();
    assert.deepEqual(ops(kernel).slice(-2), ["apply", "read"]);
  });

  it("keeps a single timer pending however many syncs ran", async () => {
    const { timers, r } = rig();
    for (let i = 2; i < 7; i++) {
      r.setDesired(dp([i]));
      await r.idle();
    }
    assert.deepEqual(timers.delays(), [60_000]);
  });

  // These bound their time: idle() must resolve after stop() even when an update arrived, and a
  // regression should fail rather than hang.
  it("stop() cancels the pending resync and prevents further syncs", { timeout: 5_000 }, async () => {
    const { kernel, timers, r } = rig();
    r.setDesired(dp([2]));
    await r.idle();
    r.stop();
    assert.deepEqual(timers.delays(), []);
    r.setDesired(dp([3]));
    r.kick();
    await r.idle();
    assert.deepEqual(ops(kernel), ["read", "apply"]);
    assert.deepEqual(routeDsts(kernel), ["10.244.2.0/24"]);
  });

  it("stop() during a sync lets it finish but schedules nothing after it", { timeout: 5_000 }, async () => {
    const { kernel, timers, r } = rig();
    kernel.failNextApply("boom");
    const release = kernel.hold();
    r.setDesired(dp([2]));
    while (kernel.calls.length === 0) await new Promise((res) => setImmediate(res));
    r.setDesired(dp([3]));
    r.stop();
    release();
    await r.idle();
    assert.deepEqual(ops(kernel), ["read", "apply"]);
    assert.deepEqual(timers.delays(), [], "no retry after stop");
  });

  it("stop() before the first sync starts means the kernel is never touched", { timeout: 5_000 }, async () => {
    const { kernel, timers, r } = rig();
    r.setDesired(dp([2]));
    r.stop();
    await r.idle();
    assert.deepEqual(kernel.calls, []);
    assert.deepEqual(timers.delays(), []);
  });

  it("reports each sync: steps, errors and duration, and logs failures", async () => {
    const { kernel, r, syncs, logs } = rig();
    kernel.failNextApply("boom");
    r.setDesired(dp([2], false));
    await r.idle();
    assert.equal(syncs.length, 1);
    assert.deepEqual(syncs[0]?.errors, ["boom"]);
    assert.equal(syncs[0]?.steps.length, 1);
    assert.deepEqual(logs, ["sync: 1 change(s) in 0 ms, 1 failed", "sync error (will retry): boom"]);
  });
});
