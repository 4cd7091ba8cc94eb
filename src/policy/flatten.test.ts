// The interval arithmetic behind the flattened Kubernetes tier: merged intervals, subtraction,
// and the cut of overlapping (address, protocol, port) boxes into disjoint ones — which nft
// requires of an interval set of concatenations — checked against brute force over small spaces.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { mustParseIp } from "../model/ip.js";
import { boxElement, disjointBoxes, fullRange, intervalElement, mergeIntervals, subtract, type Box, type Interval } from "./flatten.js";

// ---- small spaces, so that random intervals overlap often and points can be enumerated ----------

const ADDR_MAX = 63;
const PORT_MAX = 15;
const PROTOCOLS = ["TCP", "UDP", "SCTP"] as const;

const interval = (max: number): fc.Arbitrary<Interval> =>
  fc.tuple(fc.integer({ min: 0, max }), fc.integer({ min: 0, max })).map(([a, b]) => ({ lo: BigInt(Math.min(a, b)), hi: BigInt(Math.max(a, b)) }));
const box: fc.Arbitrary<Box> = fc.record({ addr: interval(ADDR_MAX), protocol: fc.constantFrom(...PROTOCOLS), port: interval(PORT_MAX) });

const inI = (i: Interval, x: bigint): boolean => x >= i.lo && x <= i.hi;
const inBox = (b: Box, a: bigint, protocol: string, p: bigint): boolean => b.protocol === protocol && inI(b.addr, a) && inI(b.port, p);
const overlaps = (a: Interval, b: Interval): boolean => a.lo <= b.hi && b.lo <= a.hi;
const range = (max: number): bigint[] => Array.from({ length: max + 1 }, (_, i) => BigInt(i));
const key = (i: Interval): string => `${i.lo}-${i.hi}`;

describe("mergeIntervals", () => {
  it("covers the same points with sorted, disjoint, non-adjacent intervals, without touching its input", () => {
    fc.assert(fc.property(fc.array(interval(ADDR_MAX), { maxLength: 12 }), (list) => {
      const copy = structuredClone(list);
      const out = mergeIntervals(list);
      assert.deepEqual(list, copy, "input changed");
      for (const x of range(ADDR_MAX + 1)) assert.equal(out.some((i) => inI(i, x)), list.some((i) => inI(i, x)), `point ${x}`);
      for (const i of out) assert.ok(i.lo <= i.hi);
      // Sorted, and a gap of at least one between neighbours (adjacent ones would have been merged).
      for (let k = 1; k < out.length; k++) assert.ok(out[k - 1]!.hi + 1n < out[k]!.lo, JSON.stringify(out.map(key)));
    }), { numRuns: 500 });
  });

  it("examples", () => {
    const iv = (lo: number, hi: number): Interval => ({ lo: BigInt(lo), hi: BigInt(hi) });
    assert.deepEqual(mergeIntervals([]), []);
    assert.deepEqual(mergeIntervals([iv(5, 9), iv(0, 3), iv(4, 4)]), [iv(0, 9)]);
    assert.deepEqual(mergeIntervals([iv(0, 3), iv(5, 9)]), [iv(0, 3), iv(5, 9)]);
    assert.deepEqual(mergeIntervals([iv(0, 10), iv(2, 3)]), [iv(0, 10)]);
  });
});

describe("subtract", () => {
  it("keeps exactly the points of `a` outside every cut, as disjoint pieces inside `a`", () => {
    fc.assert(fc.property(interval(ADDR_MAX), fc.array(interval(ADDR_MAX), { maxLength: 6 }), (a, cut) => {
      const out = subtract(a, cut);
      for (const x of range(ADDR_MAX + 1)) {
        const want = inI(a, x) && !cut.some((c) => inI(c, x));
        assert.equal(out.filter((i) => inI(i, x)).length, want ? 1 : 0, `point ${x}: ${JSON.stringify(out.map(key))}`);
      }
      for (const i of out) assert.ok(i.lo <= i.hi && i.lo >= a.lo && i.hi <= a.hi);
    }), { numRuns: 500 });
  });

  it("examples: an ipBlock minus overlapping excepts", () => {
    const c = (t: string, bits: number): Interval => {
      const lo = mustParseIp(t).value;
      return { lo, hi: lo + (1n << BigInt(32 - bits)) - 1n };
    };
    // 198.51.100.0/24 except /26, /25, .1/32: only the upper half is left.
    assert.deepEqual(subtract(c("198.51.100.0", 24), [c("198.51.100.0", 26), c("198.51.100.0", 25), c("198.51.100.1", 32)]), [c("198.51.100.128", 25)]);
    assert.deepEqual(subtract(c("10.0.0.0", 8), []), [c("10.0.0.0", 8)]);
    assert.deepEqual(subtract(c("10.0.0.0", 8), [c("0.0.0.0", 0)]), []);
    assert.deepEqual(subtract(c("10.0.0.0", 8), [c("10.1.0.0", 16)]).map((i) => intervalElement(i, 4)), ["10.0.0.0-10.0.255.255", "10.2.0.0-10.255.255.255"]);
  });
});

describe("disjointBoxes", () => {
  const boxes = fc.array(box, { maxLength: 10 });

  it("(a) output boxes are pairwise disjoint per protocol", () => {
    fc.assert(fc.property(boxes, (input) => {
      const out = disjointBoxes(input);
      for (let i = 0; i < out.length; i++) {
        for (let j = i + 1; j < out.length; j++) {
          const a = out[i]!;
          const b = out[j]!;
          assert.ok(a.protocol !== b.protocol || !overlaps(a.addr, b.addr) || !overlaps(a.port, b.port),
            `${boxElement(a, 4)} and ${boxElement(b, 4)} overlap`);
        }
      }
    }), { numRuns: 500 });
  });

  it("(b) a point is covered by the output iff it is covered by the input (every point of a small space)", () => {
    fc.assert(fc.property(boxes, (input) => {
      const out = disjointBoxes(input);
      for (const protocol of PROTOCOLS) {
        for (const a of range(ADDR_MAX + 1)) {
          for (const p of range(PORT_MAX + 1)) {
            assert.equal(out.some((b) => inBox(b, a, protocol, p)), input.some((b) => inBox(b, a, protocol, p)), `${a} ${protocol} ${p}`);
          }
        }
      }
    }), { numRuns: 200 });
  });

  it("(b) the same for random points in the full IPv4 and IPv6 spaces and all ports", () => {
    const big = (bits: number): fc.Arbitrary<Interval> =>
      fc.tuple(fc.bigUintN(bits), fc.bigUintN(bits)).map(([a, b]) => (a <= b ? { lo: a, hi: b } : { lo: b, hi: a }));
    const port = fc.tuple(fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 65535 })).map(([a, b]) => ({ lo: BigInt(Math.min(a, b)), hi: BigInt(Math.max(a, b)) }));
    for (const bits of [32, 128]) {
      const bigBox = fc.record({ addr: fc.oneof(big(bits), fc.constant(fullRange(bits === 32 ? 4 : 6))), protocol: fc.constantFrom(...PROTOCOLS), port });
      fc.assert(fc.property(fc.array(bigBox, { maxLength: 8 }), fc.array(fc.tuple(fc.bigUintN(bits), fc.constantFrom(...PROTOCOLS), fc.integer({ min: 0, max: 65535 })), { maxLength: 50 }),
        (input, points) => {
          const out = disjointBoxes(input);
          // Points on the boxes' corners, where off-by-one errors live, and random ones.
          const corners = input.flatMap((b) => [b.addr.lo, b.addr.hi].flatMap((a) => [b.port.lo, b.port.hi].map((p) => [a, b.protocol, p] as const)));
          for (const [a, protocol, p] of [...corners, ...points.map(([a, pr, p]) => [a, pr, BigInt(p)] as const)]) {
            assert.equal(out.some((b) => inBox(b, a, protocol, p)), input.some((b) => inBox(b, a, protocol, p)), `${a} ${protocol} ${p}`);
          }
          for (const b of out) assert.ok(b.addr.lo <= b.addr.hi && b.port.lo <= b.port.hi);
        }), { numRuns: 300 });
    }
  });

  it("(c) neighbouring address pieces with equal port sets are merged; output size stays bounded", () => {
    fc.assert(fc.property(boxes, (input) => {
      const out = disjointBoxes(input);
      for (const protocol of PROTOCOLS) {
        const n = input.filter((b) => b.protocol === protocol).length;
        const mine = out.filter((b) => b.protocol === protocol);
        // Address pieces, in order, each with its (sorted, merged) port ranges.
        const pieces: Array<{ addr: Interval; ports: Interval[] }> = [];
        for (const b of mine) {
          const last = pieces[pieces.length - 1];
          if (last && last.addr.lo === b.addr.lo && last.addr.hi === b.addr.hi) last.ports.push(b.port);
          else pieces.push({ addr: b.addr, ports: [b.port] });
        }
        for (let k = 0; k < pieces.length; k++) {
          const p = pieces[k]!;
          assert.deepEqual(p.ports.map(key), mergeIntervals(p.ports).map(key), "ports of a piece are sorted and merged");
          const q = pieces[k + 1];
          if (!q) continue;
          assert.ok(p.addr.hi < q.addr.lo, "pieces sorted and disjoint");
          if (p.addr.hi + 1n === q.addr.lo) assert.notDeepEqual(p.ports.map(key), q.ports.map(key), `neighbours ${key(p.addr)} ${key(q.addr)} not merged`);
        }
        // n boxes have at most 2n edges, so at most 2n-1 address pieces, each with at most n port ranges.
        if (n === 0) assert.equal(mine.length, 0);
        else assert.ok(pieces.length <= 2 * n - 1 && mine.length <= (2 * n - 1) * n, `${mine.length} boxes from ${n}`);
      }
    }), { numRuns: 500 });
  });

  it("is canonical: the order of the input does not matter, and a second pass changes nothing", () => {
    const withShuffle = boxes.chain((b) => fc.tuple(fc.constant(b), fc.shuffledSubarray(b, { minLength: b.length, maxLength: b.length })));
    fc.assert(fc.property(withShuffle, ([input, shuffled]) => {
      const out = disjointBoxes(input);
      const text = (l: Box[]): string[] => l.map((b) => boxElement(b, 4));
      assert.deepEqual(text(disjointBoxes(shuffled)), text(out));
      assert.deepEqual(text(disjointBoxes(out)), text(out));
    }), { numRuns: 300 });
  });

  it("examples: overlapping boxes are cut; equal neighbours merge; protocols never mix", () => {
    const v4 = (a: string, b = a): Interval => ({ lo: mustParseIp(a).value, hi: mustParseIp(b).value });
    const p = (lo: number, hi = lo): Interval => ({ lo: BigInt(lo), hi: BigInt(hi) });
    const out = disjointBoxes([
      { addr: v4("10.0.0.0", "10.0.0.255"), protocol: "TCP", port: p(80) },
      { addr: v4("10.0.0.128", "10.0.1.255"), protocol: "TCP", port: p(81, 90) },
      { addr: v4("10.0.1.0", "10.0.1.255"), protocol: "TCP", port: p(80) },
      { addr: v4("10.0.0.5"), protocol: "UDP", port: p(53) },
      { addr: v4("10.0.0.6"), protocol: "UDP", port: p(53) },
    ]).map((b) => boxElement(b, 4));
    assert.deepEqual(out, [
      "10.0.0.0-10.0.0.127 . tcp . 80",
      "10.0.0.128-10.0.1.255 . tcp . 80-90",
      "10.0.0.5-10.0.0.6 . udp . 53",
    ]);
    assert.deepEqual(disjointBoxes([]), []);
  });
});

describe("nft element text", () => {
  it("intervalElement: a single address, or lo-hi", () => {
    const v = (t: string): bigint => mustParseIp(t).value;
    assert.equal(intervalElement({ lo: v("10.0.0.1"), hi: v("10.0.0.1") }, 4), "10.0.0.1");
    assert.equal(intervalElement({ lo: v("10.0.0.0"), hi: v("10.0.0.255") }, 4), "10.0.0.0-10.0.0.255");
    assert.equal(intervalElement(fullRange(4), 4), "0.0.0.0-255.255.255.255");
    assert.equal(intervalElement({ lo: v("fd00:1::10"), hi: v("fd00:1::10") }, 6), "fd00:1::10");
    assert.equal(intervalElement({ lo: v("2001:db8:2::"), hi: v("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff") }, 6), "2001:db8:2::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff");
    assert.equal(intervalElement(fullRange(6), 6), "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
  });

  it("boxElement: address . protocol (lower case) . port or port range", () => {
    const v = (t: string): bigint => mustParseIp(t).value;
    assert.equal(boxElement({ addr: { lo: v("10.0.0.1"), hi: v("10.0.0.1") }, protocol: "TCP", port: { lo: 80n, hi: 80n } }, 4), "10.0.0.1 . tcp . 80");
    assert.equal(boxElement({ addr: { lo: v("10.0.0.0"), hi: v("10.0.0.9") }, protocol: "UDP", port: { lo: 8000n, hi: 8080n } }, 4), "10.0.0.0-10.0.0.9 . udp . 8000-8080");
    assert.equal(boxElement({ addr: fullRange(4), protocol: "SCTP", port: { lo: 0n, hi: 65535n } }, 4), "0.0.0.0-255.255.255.255 . sctp . 0-65535");
    assert.equal(boxElement({ addr: { lo: v("fd00:1::10"), hi: v("fd00:1::10") }, protocol: "TCP", port: { lo: 5432n, hi: 5432n } }, 6), "fd00:1::10 . tcp . 5432");
  });

  it("fullRange spans the family's whole address space", () => {
    assert.deepEqual(fullRange(4), { lo: 0n, hi: 0xffffffffn });
    assert.deepEqual(fullRange(6), { lo: 0n, hi: (1n << 128n) - 1n });
  });
});
