import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { dropsBetween, parseDropsCover, parsePolicyDrops, RecentDrops, topDrops } from "./policy-drops.js";
import type { RuleCounterSample } from "./sink.js";

const deny = (policy: string, packets: number, bytes = packets * 60, rule = "ingress isolated"): RuleCounterSample => ({ policy, rule, action: "deny", packets, bytes });
const allow = (policy: string, packets: number): RuleCounterSample => ({ policy, rule: "ingress allowed", action: "allow", packets, bytes: packets * 60 });

describe("policy drops between two counter readings", () => {
  test("a denying rule's increase is what it dropped; allowing rules and unchanged rules are left out", () => {
    const prev = [deny("NetworkPolicy/a/deny-all", 3), allow("NetworkPolicy/a/deny-all", 5), deny("NetworkPolicy/b/deny-all", 7)];
    const cur = [deny("NetworkPolicy/a/deny-all", 5), allow("NetworkPolicy/a/deny-all", 50), deny("NetworkPolicy/b/deny-all", 7)];
    assert.deepEqual(dropsBetween(prev, cur, 1000, 11_000), {
      from: 1000, to: 11_000,
      drops: [{ policy: "NetworkPolicy/a/deny-all", rule: "ingress isolated", packets: 2, bytes: 120, lastSeenAt: 11_000 }],
    });
  });

  test("a counter that went down (table replaced) counts from 0, never negative", () => {
    const d = dropsBetween([deny("P", 100), deny("Q", 100)], [deny("P", 4), deny("Q", 0)], 0, 10);
    assert.deepEqual(d.drops.map((x) => [x.policy, x.packets, x.bytes]), [["P", 4, 240]]);
  });

  test("a rule not in the previous reading (a new policy) counts from 0", () => {
    assert.deepEqual(dropsBetween([], [deny("New", 3)], 0, 10).drops.map((x) => x.packets), [3]);
  });

  test("the same (policy, rule) under several entries is summed before comparing", () => {
    const d = dropsBetween([deny("P", 1), deny("P", 1)], [deny("P", 2), deny("P", 3)], 0, 10);
    assert.deepEqual(d.drops.map((x) => x.packets), [3]);
  });

  test("top 10 by packets", () => {
    const cur = Array.from({ length: 15 }, (_, i) => deny(`P${i}`, i + 1));
    const d = dropsBetween([], cur, 0, 10).drops;
    assert.equal(d.length, 10);
    assert.deepEqual(d.map((x) => x.packets), [15, 14, 13, 12, 11, 10, 9, 8, 7, 6]);
    assert.deepEqual(topDrops(d, 2).map((x) => x.policy), ["P14", "P13"]);
  });
});

describe("recent drops over a window of readings", () => {
  test("the first reading is only a baseline; later ones sum per rule over the window with the last time seen", () => {
    const r = new RecentDrops(30_000);
    r.observe([deny("P", 100)], 0);
    assert.equal(r.report(), undefined, "one reading says nothing about recent drops");
    r.observe([deny("P", 100)], 10_000);
    assert.deepEqual(r.report(), { drops: [], cover: { from: 0, to: 10_000 } });
    r.observe([deny("P", 103), deny("Q", 1)], 20_000);
    r.observe([deny("P", 105), deny("Q", 1)], 30_000);
    assert.deepEqual(r.report(), {
      drops: [
        { policy: "P", rule: "ingress isolated", packets: 5, bytes: 300, lastSeenAt: 30_000 },
        { policy: "Q", rule: "ingress isolated", packets: 1, bytes: 60, lastSeenAt: 20_000 },
      ],
      cover: { from: 0, to: 30_000 },
    });
    // Intervals older than the window leave: Q's drop (in 10s..20s) is gone at 50s.
    r.observe([deny("P", 105), deny("Q", 1)], 40_000);
    r.observe([deny("P", 105), deny("Q", 1)], 50_000);
    assert.deepEqual(r.report(), {
      drops: [{ policy: "P", rule: "ingress isolated", packets: 2, bytes: 120, lastSeenAt: 30_000 }],
      cover: { from: 20_000, to: 50_000 },
    });
    r.observe([deny("P", 105)], 60_000);
    assert.deepEqual(r.report(), { drops: [], cover: { from: 30_000, to: 60_000 } });
  });

  test("a table replacement between readings is not a negative drop", () => {
    const r = new RecentDrops(60_000);
    r.observe([deny("P", 50)], 0);
    r.observe([], 10_000);
    r.observe([deny("P", 2)], 20_000);
    assert.deepEqual(r.report()!.drops.map((d) => d.packets), [2]);
  });
});

describe("published drops are read leniently", () => {
  test("absent or malformed fields", () => {
    assert.equal(parsePolicyDrops(undefined), undefined);
    assert.equal(parsePolicyDrops("x"), undefined);
    assert.deepEqual(parsePolicyDrops([{ policy: "P", rule: "r", packets: 2, lastSeenAt: 5 }, { policy: 1 }, null]),
      [{ policy: "P", rule: "r", packets: 2, bytes: 0, lastSeenAt: 5 }]);
    assert.deepEqual(parseDropsCover({ from: 1, to: 2 }), { from: 1, to: 2 });
    assert.equal(parseDropsCover({ from: 1 }), undefined);
  });
});
