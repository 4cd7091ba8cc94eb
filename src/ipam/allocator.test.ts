import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { assertCniError } from "../cni/assert-cni-error.js";
import fc from "fast-check";
import { ErrorCode } from "../cni/errors.js";
import { formatIp, mustParseIp, parseCidr, type Ip } from "../model/ip.js";
import { allocate, freeCount, inRange, nextFree, type AllocationInput } from "./allocator.js";
import { rangeOf, type Range, type RangeSet } from "./config.js";

/** A range with host-local's defaults (start .1, end broadcast-1, gateway .1) and optional overrides. */
function range(subnet: string, opts: { rangeStart?: string; rangeEnd?: string; gateway?: string } = {}): Range {
  const c = parseCidr(subnet, true);
  if (!c) throw new Error(`bad subnet ${subnet}`);
  return rangeOf(c, opts);
}

const ip = mustParseIp;

function input(rangeSets: RangeSet[], over: Partial<AllocationInput> = {}): AllocationInput {
  return {
    rangeSets,
    used: new Set(),
    lastReserved: rangeSets.map(() => undefined),
    alreadyHeld: rangeSets.map(() => false),
    requested: [],
    ...over,
  };
}

/** The addresses handed out, as text, in range-set order. */
const allocated = (i: AllocationInput): string[] => allocate(i).map((a) => formatIp(a.ip));


describe("allocate", () => {
  const v4 = [range("10.1.0.0/24")];

  it("hands out .2 first, because .1 is the default gateway", () => {
    assert.deepEqual(allocated(input([v4])), ["10.1.0.2"]);
  });

  it("allocates round-robin after the last reserved address, not the lowest free one", () => {
    assert.deepEqual(allocated(input([v4], { lastReserved: [ip("10.1.0.10")] })), ["10.1.0.11"]);
  });

  it("wraps around to the start of the range after its last address, skipping the gateway", () => {
    assert.deepEqual(allocated(input([v4], { lastReserved: [ip("10.1.0.254")] })), ["10.1.0.2"]);
  });

  it("skips addresses in use and the gateway", () => {
    const used = new Set(["10.1.0.2", "10.1.0.3", "10.1.0.5"]);
    const withGw = [range("10.1.0.0/24", { gateway: "10.1.0.4" })];
    assert.deepEqual(allocated(input([withGw], { used })), ["10.1.0.1"]);
    assert.deepEqual(allocated(input([withGw], { used, lastReserved: [ip("10.1.0.1")] })), ["10.1.0.6"]);
  });

  it("starts at the first range when the last reserved address lies in none of the set's ranges", () => {
    assert.deepEqual(allocated(input([v4], { lastReserved: [ip("192.168.0.9")] })), ["10.1.0.2"]);
  });

  it("honours rangeStart and rangeEnd", () => {
    const narrow = [range("10.1.0.0/24", { rangeStart: "10.1.0.100", rangeEnd: "10.1.0.101" })];
    assert.deepEqual(allocated(input([narrow])), ["10.1.0.100"]);
    assert.deepEqual(allocated(input([narrow], { lastReserved: [ip("10.1.0.100")] })), ["10.1.0.101"]);
    assert.deepEqual(allocated(input([narrow], { lastReserved: [ip("10.1.0.101")] })), ["10.1.0.100"]);
  });

  it("moves on to the next range of a set when the current one is full, and reports that range", () => {
    const set = [range("10.1.0.0/30"), range("10.2.0.0/24")];
    const [a] = allocate(input([set], { used: new Set(["10.1.0.2"]) }));
    assert.equal(formatIp(a!.ip), "10.2.0.2");
    assert.equal(a!.range, set[1]);
    assert.equal(a!.setIndex, 0);
  });

  it("wraps from the last range of a set back to the first", () => {
    const set = [range("10.1.0.0/24"), range("10.2.0.0/24")];
    assert.deepEqual(allocated(input([set], { lastReserved: [ip("10.2.0.254")] })), ["10.1.0.2"]);
  });

  it("gives one address per range set: an IPv4 and an IPv6 set make a dual-stack allocation", () => {
    const sets = [[range("10.1.0.0/24")], [range("2001:db8:1::/64")]];
    const out = allocate(input(sets));
    assert.deepEqual(out.map((a) => [a.setIndex, formatIp(a.ip)]), [[0, "10.1.0.2"], [1, "2001:db8:1::2"]]);
  });

  it("keeps a separate round-robin position per range set", () => {
    const sets = [[range("10.1.0.0/24")], [range("2001:db8:1::/64")]];
    const out = allocated(input(sets, { lastReserved: [ip("10.1.0.7"), ip("2001:db8:1::ff")] }));
    assert.deepEqual(out, ["10.1.0.8", "2001:db8:1::100"]);
  });

  it("honours a requested address, regardless of the round-robin position", () => {
    assert.deepEqual(allocated(input([v4], { lastReserved: [ip("10.1.0.10")], requested: [ip("10.1.0.77")] })), ["10.1.0.77"]);
  });

  it("honours a requested address in one set and allocates normally in the other", () => {
    const sets = [[range("10.1.0.0/24")], [range("2001:db8:1::/64")]];
    assert.deepEqual(allocated(input(sets, { requested: [ip("2001:db8:1::99")] })), ["10.1.0.2", "2001:db8:1::99"]);
  });

  it("honours a requested address even when the attachment already holds one in that set (as host-local does)", () => {
    assert.deepEqual(allocated(input([v4], { alreadyHeld: [true], requested: [ip("10.1.0.9")] })), ["10.1.0.9"]);
  });

  it("refuses a requested address that is the gateway", () => {
    assertCniError(() => allocate(input([v4], { requested: [ip("10.1.0.1")] })), ErrorCode.InvalidNetworkConfig,
      "10.1.0.1", "gateway");
  });

  it("refuses a requested address that is already in use", () => {
    assertCniError(() => allocate(input([v4], { requested: [ip("10.1.0.9")], used: new Set(["10.1.0.9"]) })),
      ErrorCode.InvalidNetworkConfig, "10.1.0.9", "already allocated");
  });

  it("refuses a requested address that lies in no range set, naming the address and the sets", () => {
    assertCniError(() => allocate(input([v4], { requested: [ip("192.168.1.1")] })), ErrorCode.InvalidNetworkConfig,
      "192.168.1.1", "10.1.0.1-10.1.0.254");
  });

  it("refuses a requested address inside the subnet but outside rangeStart..rangeEnd", () => {
    const narrow = [range("10.1.0.0/24", { rangeStart: "10.1.0.100", rangeEnd: "10.1.0.200" })];
    assertCniError(() => allocate(input([narrow], { requested: [ip("10.1.0.50")] })), ErrorCode.InvalidNetworkConfig, "10.1.0.50");
  });

  it("refuses two requested addresses for the same range set", () => {
    assertCniError(() => allocate(input([v4], { requested: [ip("10.1.0.5"), ip("10.1.0.6")] })), ErrorCode.InvalidNetworkConfig,
      "10.1.0.6");
  });

  it("refuses a duplicate allocation when the attachment already holds an address in the set", () => {
    assertCniError(() => allocate(input([v4], { alreadyHeld: [true] })), ErrorCode.InvalidNetworkConfig,
      "duplicate allocation", "10.1.0.1-10.1.0.254");
  });

  it("reports an exhausted pool with code 101, naming the range set", () => {
    const tiny = [range("10.1.0.0/30")];
    assertCniError(() => allocate(input([tiny], { used: new Set(["10.1.0.2"]) })), ErrorCode.PoolExhausted,
      "no IP addresses available", "10.1.0.1-10.1.0.2");
    assert.equal(ErrorCode.PoolExhausted, 101);
  });

  it("names the exhausted set, not the one that still had room", () => {
    const sets = [[range("10.1.0.0/24")], [range("10.9.0.0/30")]];
    assertCniError(() => allocate(input(sets, { used: new Set(["10.9.0.2"]) })), ErrorCode.PoolExhausted, "10.9.0.1-10.9.0.2");
  });

  it("never hands out an address in use or a gateway, and fails only when none is left (property)", () => {
    const set = [range("10.1.0.0/28")]; // .1 (gateway) .. .14
    const hosts = Array.from({ length: 16 }, (_, i) => `10.1.0.${i}`);
    fc.assert(fc.property(fc.subarray(hosts), fc.option(fc.integer({ min: 0, max: 15 })), (usedList, last) => {
      const used = new Set(usedList);
      const lastIp = last === null ? undefined : ip(`10.1.0.${last}`);
      const free = hosts.filter((h) => !used.has(h) && inRange(set[0]!, ip(h)) && h !== "10.1.0.1");
      const found = nextFree(set, used, lastIp);
      if (free.length === 0) {
        assert.equal(found, undefined);
        return;
      }
      assert.ok(found);
      const text = formatIp(found.ip);
      assert.ok(free.includes(text), `${text} should be free`);
      // Round-robin: the answer is the first free address after the last reservation (cyclically),
      // or the first free one from the start when there is no usable last reservation.
      const from = lastIp && inRange(set[0]!, lastIp) ? Number(lastIp.value & 255n) : 0;
      const distance = (h: string): number => (Number(h.split(".")[3]) - from + 15) % 16 + 1;
      const expected = [...free].sort((a, b) => distance(a) - distance(b))[0];
      assert.equal(text, expected);
    }));
  });
});

/** A Set that counts lookups, to see how far nextFree walks. */
class CountingSet extends Set<string> {
  lookups = 0;
  override has(v: string): boolean {
    this.lookups++;
    return super.has(v);
  }
}

describe("nextFree", () => {
  it("terminates on a huge IPv6 range, visiting no more than the unavailable addresses plus one", () => {
    const set = [range("2001:db8::/64")];
    const used = new CountingSet();
    for (let i = 2; i < 1002; i++) used.add(formatIp({ family: 6, value: set[0]!.start.value + BigInt(i - 1) }));
    const found = nextFree(set, used, undefined);
    assert.ok(found);
    assert.equal(formatIp(found.ip), "2001:db8::3ea"); // ::1 is the gateway, ::2..::3e9 are used
    assert.ok(used.lookups <= used.size + set.length + 1, `${used.lookups} lookups`);
  });

  it("wraps from the very last address of a /64 to its start", () => {
    const set = [range("2001:db8::/64")];
    const found = nextFree(set, new Set(), ip("2001:db8::ffff:ffff:ffff:ffff"));
    assert.equal(found && formatIp(found.ip), "2001:db8::2");
  });

  it("gives up after one lap of a small exhausted range", () => {
    const set = [range("10.1.0.0/29")];
    const used = new CountingSet(["10.1.0.2", "10.1.0.3", "10.1.0.4", "10.1.0.5", "10.1.0.6"]);
    assert.equal(nextFree(set, used, ip("10.1.0.4")), undefined);
    assert.ok(used.lookups <= 6, `${used.lookups} lookups`);
  });

  it("returns undefined for an empty set", () => {
    assert.equal(nextFree([], new Set(), undefined), undefined);
  });
});

describe("freeCount", () => {
  it("counts a /24's 254 usable addresses minus the gateway", () => {
    assert.equal(freeCount([range("10.1.0.0/24")], new Set()), 253n);
  });

  it("subtracts addresses in use inside the set, ignoring those outside it and the gateway", () => {
    const used = new Set(["10.1.0.2", "10.1.0.3", "10.1.0.1", "10.9.9.9", "not-an-ip"]);
    assert.equal(freeCount([range("10.1.0.0/24")], used), 251n);
  });

  it("does not subtract a gateway that lies outside rangeStart..rangeEnd", () => {
    assert.equal(freeCount([range("10.1.0.0/24", { rangeStart: "10.1.0.10", rangeEnd: "10.1.0.19" })], new Set()), 10n);
  });

  it("sums the ranges of a set", () => {
    assert.equal(freeCount([range("10.1.0.0/30"), range("10.2.0.0/30")], new Set(["10.2.0.2"])), 1n);
  });

  it("is zero for an exhausted pool and exact for a huge IPv6 one", () => {
    assert.equal(freeCount([range("10.1.0.0/30")], new Set(["10.1.0.2"])), 0n);
    assert.equal(freeCount([range("2001:db8::/64")], new Set()), (1n << 64n) - 2n);
  });
});

describe("inRange", () => {
  it("includes rangeStart and rangeEnd and excludes what lies outside them", () => {
    const r = range("10.1.0.0/24", { rangeStart: "10.1.0.10", rangeEnd: "10.1.0.20" });
    const check = (a: string): boolean => inRange(r, ip(a) as Ip);
    assert.deepEqual(["10.1.0.9", "10.1.0.10", "10.1.0.20", "10.1.0.21", "10.2.0.15"].map(check), [false, true, true, false, false]);
  });
});
