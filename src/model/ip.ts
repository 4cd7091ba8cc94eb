// IP addresses and CIDR prefixes as plain values.
//
// Parsing and canonical text come from ipaddr.js (a small, long-maintained library that knows
// every IPv4/IPv6 notation); arithmetic is done on bigint so that IPv4 and IPv6 share one code
// path and nothing overflows. Every function here is pure.
import ipaddr from "ipaddr.js";

export type Family = 4 | 6;

export interface Ip {
  readonly family: Family;
  /** The address as an unsigned integer (32 or 128 bits). */
  readonly value: bigint;
}

export interface Cidr {
  readonly family: Family;
  /** Network address (host bits cleared). */
  readonly network: bigint;
  readonly prefix: number;
}

/** An address together with the prefix length of its subnet, e.g. 10.1.2.3/24. */
export interface IpWithPrefix {
  readonly ip: Ip;
  readonly prefix: number;
}

export const bits = (family: Family): number => (family === 4 ? 32 : 128);

/** Four decimal octets without leading zeros (as Go's net.ParseIP has required since Go 1.17). */
const DOTTED_QUAD = /^(0|[1-9]\d{0,2})(\.(0|[1-9]\d{0,2})){3}$/;

export function parseIp(text: string): Ip | undefined {
  if (typeof text !== "string") return undefined;
  // ipaddr.js accepts legacy IPv4 forms ("10.1", "0x0a.1.2.3", "167772161") and reads "010.1.2.3"
  // as octal (8.1.2.3); CNI configs and the kernel do not. The same applies to an IPv6 address's
  // dotted tail.
  if (!text.includes(":") || text.includes(".")) {
    const tail = text.slice(text.lastIndexOf(":") + 1);
    if (!DOTTED_QUAD.test(tail)) return undefined;
    // ipaddr.js reads "::1.2.3.4" as ::ffff:1.2.3.4; RFC 4291 (and the kernel) mean ::102:304.
    if (text === `::${tail}`) text = `::0:${tail}`;
  }
  if (!ipaddr.isValid(text)) return undefined;
  let addr = ipaddr.parse(text);
  if (addr.kind() === "ipv6" && text.includes("%")) return undefined;
  const bytes = addr.toByteArray();
  let value = 0n;
  for (const b of bytes) value = (value << 8n) | BigInt(b);
  return { family: addr.kind() === "ipv4" ? 4 : 6, value };
}

export function mustParseIp(text: string): Ip {
  const ip = parseIp(text);
  if (!ip) throw new Error(`invalid IP address "${text}"`);
  return ip;
}

/** Parses "10.1.0.0/16". With `strict`, host bits must be zero (like host-local's subnet check). */
export function parseCidr(text: string, strict = false): Cidr | undefined {
  const parsed = parseIpWithPrefix(text);
  if (!parsed) return undefined;
  const c = cidrOf(parsed.ip, parsed.prefix);
  if (strict && c.network !== parsed.ip.value) return undefined;
  return c;
}

export function parseIpWithPrefix(text: string): IpWithPrefix | undefined {
  if (typeof text !== "string") return undefined;
  const slash = text.indexOf("/");
  if (slash < 0 || slash !== text.lastIndexOf("/")) return undefined;
  const ip = parseIp(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  if (!ip || !/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  if (prefix > bits(ip.family)) return undefined;
  return { ip, prefix };
}

export function cidrOf(ip: Ip, prefix: number): Cidr {
  return { family: ip.family, network: ip.value & netmask(ip.family, prefix), prefix };
}

export function netmask(family: Family, prefix: number): bigint {
  const width = BigInt(bits(family));
  const all = (1n << width) - 1n;
  return all ^ ((1n << (width - BigInt(prefix))) - 1n);
}

export function cidrSize(c: Cidr): bigint {
  return 1n << BigInt(bits(c.family) - c.prefix);
}

export function cidrFirst(c: Cidr): Ip {
  return { family: c.family, value: c.network };
}

export function cidrLast(c: Cidr): Ip {
  return { family: c.family, value: c.network + cidrSize(c) - 1n };
}

export function cidrContains(c: Cidr, ip: Ip): boolean {
  return c.family === ip.family && (ip.value & netmask(c.family, c.prefix)) === c.network;
}

export function cidrOverlaps(a: Cidr, b: Cidr): boolean {
  if (a.family !== b.family) return false;
  const p = Math.min(a.prefix, b.prefix);
  const m = netmask(a.family, p);
  return (a.network & m) === (b.network & m);
}

/** True when `inner` lies entirely within `outer`. */
export function cidrCovers(outer: Cidr, inner: Cidr): boolean {
  return outer.family === inner.family && outer.prefix <= inner.prefix &&
    (inner.network & netmask(outer.family, outer.prefix)) === outer.network;
}

export function ipAdd(ip: Ip, n: bigint): Ip {
  return { family: ip.family, value: ip.value + n };
}

export function ipEqual(a: Ip, b: Ip): boolean {
  return a.family === b.family && a.value === b.value;
}

export function ipCompare(a: Ip, b: Ip): number {
  if (a.family !== b.family) return a.family - b.family;
  return a.value < b.value ? -1 : a.value > b.value ? 1 : 0;
}

/** Canonical text: dotted quad for IPv4, RFC 5952 compressed form for IPv6. */
export function formatIp(ip: Ip): string {
  if (ip.family === 4) {
    const v = Number(ip.value);
    return `${(v >>> 24) & 255}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
  }
  const bytes: number[] = [];
  for (let i = 15; i >= 0; i--) bytes.push(Number((ip.value >> BigInt(i * 8)) & 255n));
  return ipaddr.fromByteArray(bytes).toString();
}

export function formatCidr(c: Cidr): string {
  return `${formatIp(cidrFirst(c))}/${c.prefix}`;
}

export function formatIpWithPrefix(a: IpWithPrefix): string {
  return `${formatIp(a.ip)}/${a.prefix}`;
}

/** Splits `c` into subnets of length `len`; yields the i-th one (0-based). */
export function subnetAt(c: Cidr, len: number, index: bigint): Cidr {
  return { family: c.family, network: c.network + (index << BigInt(bits(c.family) - len)), prefix: len };
}

/** Number of subnets of length `len` in `c` (0 when len is shorter than the prefix). */
export function subnetCount(c: Cidr, len: number): bigint {
  if (len < c.prefix || len > bits(c.family)) return 0n;
  return 1n << BigInt(len - c.prefix);
}
