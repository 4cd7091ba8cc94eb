import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  bits, cidrContains, cidrCovers, cidrFirst, cidrLast, cidrOf, cidrOverlaps, cidrSize, formatCidr, formatIp,
  ipCompare, mustParseIp, netmask, parseCidr, parseIp, parseIpWithPrefix, subnetAt, subnetCount,
  type Cidr, type Family, type Ip,
} from "./ip.js";

const MAX = { 4: (1n << 32n) - 1n, 6: (1n << 128n) - 1n } as const;

const family = fc.constantFrom<Family>(4, 6);
const ipOf = (f: Family): fc.Arbitrary<Ip> => fc.bigInt({ min: 0n, max: MAX[f] }).map((value) => ({ family: f, value }));
const anyIp = family.chain(ipOf);
const cidrIn = (f: Family, minPrefix = 0): fc.Arbitrary<Cidr> =>
  fc.tuple(ipOf(f), fc.integer({ min: minPrefix, max: bits(f) })).map(([ip, prefix]) => cidrOf(ip, prefix));
const anyCidr = family.chain((f) => cidrIn(f));
/** An address near a prefix (inside, or just outside either end), so both answers get tested. */
const ipNear = (c: Cidr): fc.Arbitrary<Ip> =>
  fc.bigInt({ min: -2n, max: cidrSize(c) + 1n })
    .map((off) => c.network + off)
    .filter((v) => v >= 0n && v <= MAX[c.family])
    .map((value) => ({ family: c.family, value }));
/** Two prefixes of one family, the second often near the first, so that overlap and disjointness both show up. */
const cidrPair = family.chain((f) => cidrIn(f).chain((a) => {
  const near = fc.tuple(fc.integer({ min: 0, max: bits(f) }), fc.bigInt({ min: -3n, max: 3n })).map(([len, shift]) =>
    cidrOf({ family: f, value: (a.network + shift * (1n << BigInt(bits(f) - len))) & MAX[f] }, len));
  return fc.tuple(fc.constant(a), fc.oneof(cidrIn(f), near));
}));

/** An independent RFC 5952 formatter: lowercase, no leading zeros, longest run (>= 2) of zero groups as "::", first on a tie. */
function rfc5952(groups: readonly number[]): string {
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(":");
  return `${hex.slice(0, best).join(":")}::${hex.slice(best + bestLen).join(":")}`;
}

const groupsToValue = (groups: readonly number[]): bigint => groups.reduce((v, g) => (v << 16n) | BigInt(g), 0n);
/** Groups biased towards zero so that runs of zero groups (and ties between runs) are common. */
const ipv6Groups = fc.array(fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 0xffff })), { minLength: 8, maxLength: 8 });

describe("parseIp / formatIp", () => {
  it("round-trips every IPv4 dotted quad and reads it as the big-endian 32-bit value", () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 4, maxLength: 4 }), (octets) => {
      const text = octets.join(".");
      const ip = parseIp(text);
      assert.ok(ip, text);
      assert.equal(ip.family, 4);
      assert.equal(ip.value, octets.reduce((v, o) => (v << 8n) | BigInt(o), 0n));
      assert.equal(formatIp(ip), text);
    }));
  });

  it("formats IPv6 in RFC 5952 canonical form: lowercase, compressed longest zero run, no leading zeros", () => {
    fc.assert(fc.property(ipv6Groups, (groups) => {
      const ip: Ip = { family: 6, value: groupsToValue(groups) };
      assert.equal(formatIp(ip), rfc5952(groups));
    }));
  });

  it("parses any IPv6 spelling (uncompressed, zero-padded, upper case) to the same value as its canonical form", () => {
    fc.assert(fc.property(ipv6Groups, fc.boolean(), fc.boolean(), (groups, pad, upper) => {
      let text = groups.map((g) => (pad ? g.toString(16).padStart(4, "0") : g.toString(16))).join(":");
      if (upper) text = text.toUpperCase();
      const ip = parseIp(text);
      assert.ok(ip, text);
      assert.equal(ip.family, 6);
      assert.equal(ip.value, groupsToValue(groups));
      assert.equal(formatIp(ip), rfc5952(groups));
    }));
  });

  it("round-trips every address value through its canonical text", () => {
    fc.assert(fc.property(anyIp, (ip) => {
      assert.deepEqual(parseIp(formatIp(ip)), ip);
    }));
  });

  it("does not compress a single zero group (RFC 5952 section 4.2.2)", () => {
    assert.equal(formatIp(mustParseIp("2001:db8:0:1:1:1:1:1")), "2001:db8:0:1:1:1:1:1");
    assert.equal(formatIp(mustParseIp("2001:0:0:1:0:0:0:1")), "2001:0:0:1::1");
    assert.equal(formatIp(mustParseIp("2001:db8:0:0:1:0:0:1")), "2001:db8::1:0:0:1");
  });

  it("reads an IPv6 address with a dotted IPv4 tail as the last 32 bits", () => {
    assert.equal(formatIp(mustParseIp("::ffff:10.1.2.3")), "::ffff:a01:203");
    assert.equal(formatIp(mustParseIp("64:ff9b::192.0.2.33")), "64:ff9b::c000:221");
    // RFC 4291 IPv4-compatible form: "::" then the address, not an IPv4-mapped address.
    assert.equal(formatIp(mustParseIp("::1.2.3.4")), "::102:304");
  });

  for (const bad of [
    "", "10.1", "10.1.2", "1.2.3.4.5", "1.2.3.256", "0x0a.1.2.3", "10.0x1.2.3", "010.1.2.3", "1.2.3.04", "00.0.0.0",
    "1e1.2.3.4", " 1.2.3.4", "1.2.3.4 ", "a.b.c.d", "1.2.3.-4", "167772161", "0xa000001", "0",
    "1:2:3:4:5:6:7:8:9", "::1::", "abcd::12345", "fe80::1%eth0", "::ffff:010.1.2.3", "gggg::1", "1.2.3.4/24",
  ]) {
    it(`rejects ${JSON.stringify(bad)}`, () => {
      assert.equal(parseIp(bad), undefined);
    });
  }

  it("mustParseIp names the text it could not parse", () => {
    assert.throws(() => mustParseIp("10.1"), /invalid IP address "10\.1"/);
  });
});

describe("parseCidr / parseIpWithPrefix", () => {
  it("keeps the address and the prefix of an interface address", () => {
    const p = parseIpWithPrefix("10.1.2.3/24");
    assert.ok(p);
    assert.equal(formatIp(p.ip), "10.1.2.3");
    assert.equal(p.prefix, 24);
  });

  it("clears host bits unless strict, and strict rejects exactly the prefixes with host bits set", () => {
    fc.assert(fc.property(family.chain((f) => fc.tuple(ipOf(f), fc.integer({ min: 0, max: bits(f) }))), ([ip, prefix]) => {
      const text = `${formatIp(ip)}/${prefix}`;
      const loose = parseCidr(text);
      assert.deepEqual(loose, cidrOf(ip, prefix));
      const hostBits = ip.value & ~netmask(ip.family, prefix) & MAX[ip.family];
      assert.equal(parseCidr(text, true) === undefined, hostBits !== 0n, text);
    }));
  });

  it("round-trips every prefix through formatCidr", () => {
    fc.assert(fc.property(anyCidr, (c) => {
      assert.deepEqual(parseCidr(formatCidr(c), true), c);
    }));
  });

  for (const bad of [
    "10.1", "10.0.0.0", "10.1/16", "1.2.3.4/33", "::/129", "10.0.0.0/8/1", "10.0.0.0/", "/8", "10.0.0.0/-1", "10.0.0.0/8a",
    "10.0.0.0/1000", "0x0a.1.2.3/32", "010.0.0.0/8", "fe80::%eth0/64", "10.0.0.0 /8",
  ]) {
    it(`rejects ${JSON.stringify(bad)}`, () => {
      assert.equal(parseCidr(bad), undefined);
      assert.equal(parseCidr(bad, true), undefined);
    });
  }

  it("strict parsing rejects host bits (10.0.0.1/24) and accepts the network (10.0.0.0/24)", () => {
    assert.equal(parseCidr("10.0.0.1/24", true), undefined);
    assert.equal(parseCidr("2001:db8::1/64", true), undefined);
    assert.deepEqual(parseCidr("10.0.0.0/24", true), { family: 4, network: 0x0a000000n, prefix: 24 });
    assert.deepEqual(parseCidr("::/0", true), { family: 6, network: 0n, prefix: 0 });
  });
});

describe("CIDR arithmetic", () => {
  it("cidrFirst and cidrLast bound a prefix of cidrSize addresses", () => {
    const c = parseCidr("10.1.0.0/16", true)!;
    assert.equal(formatIp(cidrFirst(c)), "10.1.0.0");
    assert.equal(formatIp(cidrLast(c)), "10.1.255.255");
    assert.equal(cidrSize(c), 65536n);
    fc.assert(fc.property(anyCidr, (x) => {
      assert.equal(cidrLast(x).value - cidrFirst(x).value + 1n, cidrSize(x));
    }));
  });

  it("cidrContains agrees with the numeric range [first, last]", () => {
    fc.assert(fc.property(anyCidr.chain((c) => fc.tuple(fc.constant(c), ipNear(c))), ([c, ip]) => {
      const inside = ip.value >= cidrFirst(c).value && ip.value <= cidrLast(c).value;
      assert.equal(cidrContains(c, ip), inside);
    }));
  });

  it("cidrContains is false across families, even for the same number", () => {
    assert.equal(cidrContains(parseCidr("0.0.0.0/0")!, mustParseIp("::1")), false);
    assert.equal(cidrContains(parseCidr("::/0")!, mustParseIp("0.0.0.1")), false);
  });

  it("cidrOverlaps is symmetric and agrees with overlap of the address intervals", () => {
    fc.assert(fc.property(cidrPair, ([a, b]) => {
      const intervals = cidrFirst(a).value <= cidrLast(b).value && cidrFirst(b).value <= cidrLast(a).value;
      assert.equal(cidrOverlaps(a, b), intervals);
      assert.equal(cidrOverlaps(b, a), cidrOverlaps(a, b));
    }));
  });

  it("cidrOverlaps is false between an IPv4 and an IPv6 prefix", () => {
    assert.equal(cidrOverlaps(parseCidr("0.0.0.0/0")!, parseCidr("::/0")!), false);
  });

  it("cidrCovers holds exactly when the inner interval lies within the outer one", () => {
    fc.assert(fc.property(cidrPair, ([a, b]) => {
      const within = cidrFirst(a).value <= cidrFirst(b).value && cidrLast(b).value <= cidrLast(a).value;
      assert.equal(cidrCovers(a, b), within);
    }));
  });

  it("cidrCovers: 10.0.0.0/8 covers 10.1.0.0/16 and itself, not the other way round", () => {
    const big = parseCidr("10.0.0.0/8")!;
    const small = parseCidr("10.1.0.0/16")!;
    assert.equal(cidrCovers(big, small), true);
    assert.equal(cidrCovers(big, big), true);
    assert.equal(cidrCovers(small, big), false);
  });

  it("subnetAt over subnetCount partitions a prefix: covered, contiguous, non-overlapping, exhaustive", () => {
    const parentAndLen = family.chain((f) => cidrIn(f).chain((c) =>
      fc.tuple(fc.constant(c), fc.integer({ min: c.prefix, max: Math.min(bits(f), c.prefix + 40) }))));
    fc.assert(fc.property(parentAndLen.chain(([c, len]) =>
      fc.tuple(fc.constant(c), fc.constant(len), fc.bigInt({ min: 0n, max: subnetCount(c, len) - 1n }))), ([c, len, i]) => {
      const n = subnetCount(c, len);
      assert.equal(n, 1n << BigInt(len - c.prefix));
      const s = subnetAt(c, len, i);
      assert.equal(s.prefix, len);
      assert.ok(cidrCovers(c, s), `${formatCidr(c)} covers ${formatCidr(s)}`);
      if (i + 1n < n) {
        const next = subnetAt(c, len, i + 1n);
        assert.equal(cidrOverlaps(s, next), false);
        assert.equal(cidrLast(s).value + 1n, cidrFirst(next).value, "no gap between consecutive subnets");
      }
      assert.equal(cidrFirst(subnetAt(c, len, 0n)).value, cidrFirst(c).value, "first subnet starts the parent");
      assert.equal(cidrLast(subnetAt(c, len, n - 1n)).value, cidrLast(c).value, "last subnet ends the parent");
    }));
  });

  it("splits 10.244.0.0/16 into 256 /24 blocks, the 3rd being 10.244.2.0/24", () => {
    const c = parseCidr("10.244.0.0/16", true)!;
    assert.equal(subnetCount(c, 24), 256n);
    assert.equal(formatCidr(subnetAt(c, 24, 2n)), "10.244.2.0/24");
    assert.equal(formatCidr(subnetAt(c, 24, 255n)), "10.244.255.0/24");
  });

  it("subnetCount is 0 for a length shorter than the prefix or longer than the family allows", () => {
    const c = parseCidr("10.244.0.0/16", true)!;
    assert.equal(subnetCount(c, 8), 0n);
    assert.equal(subnetCount(c, 33), 0n);
    assert.equal(subnetCount(c, 16), 1n);
  });

  it("ipCompare orders by family, then numerically", () => {
    assert.ok(ipCompare(mustParseIp("10.0.0.2"), mustParseIp("10.0.0.10")) < 0);
    assert.ok(ipCompare(mustParseIp("255.255.255.255"), mustParseIp("::")) < 0);
    assert.equal(ipCompare(mustParseIp("2001:db8::1"), mustParseIp("2001:DB8:0::1")), 0);
  });
});
