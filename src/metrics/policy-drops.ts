// Recent policy drops per rule, for the agent's status (and from there the topology page): the
// packets each denying policy rule dropped on this node recently, from successive readings of the
// same nft counters the Prometheus series export (`parseRuleCounters`). Pure: readings and their
// times are passed in.
//
// A reading is compared with the previous one: a rule's increase is what it dropped in between.
// A counter that went down (the table was replaced, which restarts every counter) or a rule not
// in the previous reading counts from 0: never negative. The first reading only sets the baseline
// (its counts are not "recent"). Only rules whose action denies are drops.
import type { RuleCounterSample } from "./sink.js";

/** What one denying policy rule dropped on this node in the reported interval. */
export interface PolicyDrop {
  policy: string;
  rule: string;
  packets: number;
  bytes: number;
  /** The end of the last reading interval in which this rule dropped (ms since the epoch). */
  lastSeenAt: number;
}

/** The drops of one interval between two readings. */
export interface DropInterval {
  from: number;
  to: number;
  /** Only rules that dropped something (packets > 0). */
  drops: PolicyDrop[];
}

/** The interval the published drops cover (ms since the epoch). */
export interface DropsCover {
  from: number;
  to: number;
}

export const DROPS_TOP = 10;

const key = (s: { policy: string; rule: string }): string => JSON.stringify([s.policy, s.rule]);

function denying(samples: readonly RuleCounterSample[]): Map<string, RuleCounterSample> {
  const out = new Map<string, RuleCounterSample>();
  for (const s of samples) {
    if (s.action !== "deny") continue;
    const cur = out.get(key(s));
    if (cur) out.set(key(s), { ...cur, packets: cur.packets + s.packets, bytes: cur.bytes + s.bytes });
    else out.set(key(s), { ...s });
  }
  return out;
}

/** What each denying rule dropped between reading `prev` (at `from`) and reading `cur` (at `to`). */
export function dropsBetween(prev: readonly RuleCounterSample[], cur: readonly RuleCounterSample[], from: number, to: number): DropInterval {
  const before = denying(prev);
  const drops: PolicyDrop[] = [];
  for (const [k, s] of denying(cur)) {
    const p = before.get(k);
    // A reset (table replaced) restarts the counter at 0: what it holds now is new.
    const reset = !p || s.packets < p.packets || s.bytes < p.bytes;
    const packets = reset ? s.packets : s.packets - p.packets;
    const bytes = reset ? s.bytes : s.bytes - p.bytes;
    if (packets > 0) drops.push({ policy: s.policy, rule: s.rule, packets, bytes, lastSeenAt: to });
  }
  return { from, to, drops: topDrops(drops) };
}

/** Most packets first (then newest, then by name), at most `limit`. */
export function topDrops(drops: readonly PolicyDrop[], limit = DROPS_TOP): PolicyDrop[] {
  return [...drops]
    .sort((a, b) => b.packets - a.packets || b.lastSeenAt - a.lastSeenAt || a.policy.localeCompare(b.policy) || a.rule.localeCompare(b.rule))
    .slice(0, limit);
}

/**
 * Keeps the readings' intervals of the last `windowMs` and sums them per rule: what each rule
 * dropped recently. `observe` takes a reading; `report` says what to publish.
 */
export class RecentDrops {
  private prev: { at: number; samples: RuleCounterSample[] } | undefined;
  private intervals: DropInterval[] = [];

  constructor(private readonly windowMs: number, private readonly limit = DROPS_TOP) {}

  /** Takes a reading of the rule counters made at `at`. */
  observe(samples: readonly RuleCounterSample[], at: number): void {
    if (this.prev && at > this.prev.at) this.intervals.push(dropsBetween(this.prev.samples, samples, this.prev.at, at));
    this.prev = { at, samples: [...samples] };
    this.intervals = this.intervals.filter((i) => i.to > at - this.windowMs);
  }

  /** The recent drops (top `limit` by packets) and the interval they cover; undefined before two readings. */
  report(): { drops: PolicyDrop[]; cover: DropsCover } | undefined {
    if (!this.prev || this.intervals.length === 0) return undefined;
    const sums = new Map<string, PolicyDrop>();
    for (const i of this.intervals) {
      for (const d of i.drops) {
        const cur = sums.get(key(d));
        if (cur) sums.set(key(d), { ...cur, packets: cur.packets + d.packets, bytes: cur.bytes + d.bytes, lastSeenAt: Math.max(cur.lastSeenAt, d.lastSeenAt) });
        else sums.set(key(d), { ...d });
      }
    }
    return { drops: topDrops([...sums.values()], this.limit), cover: { from: this.intervals[0]!.from, to: this.prev.at } };
  }
}

/** Reads published drops leniently: entries that are not drops are left out. */
export function parsePolicyDrops(v: unknown): PolicyDrop[] | undefined {
  if (!Array.isArray(v)) return undefined;
  return v.filter((d): d is PolicyDrop => typeof d === "object" && d !== null &&
    typeof (d as PolicyDrop).policy === "string" && typeof (d as PolicyDrop).rule === "string" &&
    typeof (d as PolicyDrop).packets === "number" && typeof (d as PolicyDrop).lastSeenAt === "number")
    .map((d) => ({ policy: d.policy, rule: d.rule, packets: d.packets, bytes: typeof d.bytes === "number" ? d.bytes : 0, lastSeenAt: d.lastSeenAt }));
}

export function parseDropsCover(v: unknown): DropsCover | undefined {
  if (typeof v !== "object" || v === null) return undefined;
  const c = v as DropsCover;
  return typeof c.from === "number" && typeof c.to === "number" ? { from: c.from, to: c.to } : undefined;
}
