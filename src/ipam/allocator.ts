// The address allocator: which address to give, decided over plain data. Pure.
//
// Same algorithm as the reference host-local, so both can share a data directory and behave the
// same: one address per range set; an address a runtime asked for is honoured if it is free and
// not a gateway; otherwise round-robin starting just after the last address reserved in that set,
// skipping gateways and addresses in use, wrapping across the set's ranges. Round-robin (rather
// than lowest-free) keeps a released address out of circulation for as long as possible, so a
// stale client of a deleted pod is unlikely to reach a new pod at the same address.
import { CniError, ErrorCode } from "../cni/errors.js";
import { cidrContains, formatIp, ipAdd, ipCompare, ipEqual, parseIp, type Ip } from "../model/ip.js";
import type { Range, RangeSet } from "./config.js";

export interface AllocationInput {
  rangeSets: readonly RangeSet[];
  /** Addresses already reserved (by anyone), as canonical text. */
  used: ReadonlySet<string>;
  /** Per range set: the address reserved last (`last_reserved_ip.<i>`), if known. */
  lastReserved: ReadonlyArray<Ip | undefined>;
  /** Per range set: whether this attachment already holds an address in it. */
  alreadyHeld: ReadonlyArray<boolean>;
  /** Addresses the runtime asked for (each must fall into some set). */
  requested: readonly Ip[];
}

export interface Allocation {
  setIndex: number;
  ip: Ip;
  range: Range;
}

const isGateway = (set: RangeSet, ip: Ip): boolean => set.some((r) => ipEqual(r.gateway, ip));
export const inRange = (r: Range, ip: Ip): boolean =>
  cidrContains(r.subnet, ip) && ipCompare(ip, r.start) >= 0 && ipCompare(ip, r.end) <= 0;

export const describeSet = (set: RangeSet): string =>
  set.map((r) => `${formatIp(r.start)}-${formatIp(r.end)}`).join(",");

/** Returns one allocation per range set, or throws a CniError naming the set that failed. */
export function allocate(input: AllocationInput): Allocation[] {
  const out: Allocation[] = [];
  const pending = [...input.requested];
  input.rangeSets.forEach((set, setIndex) => {
    const reqIdx = pending.findIndex((ip) => set.some((r) => inRange(r, ip)));
    if (reqIdx >= 0) {
      const ip = pending.splice(reqIdx, 1)[0]!;
      const text = formatIp(ip);
      if (isGateway(set, ip)) {
        throw new CniError(ErrorCode.InvalidNetworkConfig, `requested IP ${text} is the gateway of range set ${describeSet(set)}`);
      }
      if (input.used.has(text)) {
        throw new CniError(ErrorCode.InvalidNetworkConfig, `requested IP ${text} is already allocated`);
      }
      out.push({ setIndex, ip, range: set.find((r) => inRange(r, ip))! });
      return;
    }
    if (input.alreadyHeld[setIndex]) {
      throw new CniError(ErrorCode.InvalidNetworkConfig,
        `duplicate allocation is not allowed: this container and interface already hold an address in ${describeSet(set)}`);
    }
    const found = nextFree(set, input.used, input.lastReserved[setIndex]);
    if (!found) {
      throw new CniError(ErrorCode.PoolExhausted, `no IP addresses available in range set: ${describeSet(set)}`);
    }
    out.push({ setIndex, ...found });
  });
  if (pending.length > 0) {
    throw new CniError(ErrorCode.InvalidNetworkConfig, `failed to allocate all requested IPs: ${pending.map(formatIp).join(", ")}`,
      `no range set contains them: ${input.rangeSets.map(describeSet).join("; ")}`);
  }
  return out;
}

/**
 * Round-robin search in one range set. Starts just after `last` when it lies in the set, else at
 * the first range's start. Visits at most as many addresses as can be unavailable (used + gateways)
 * plus one, so it also terminates on a huge IPv6 range.
 */
export function nextFree(set: RangeSet, used: ReadonlySet<string>, last: Ip | undefined): { ip: Ip; range: Range } | undefined {
  if (set.length === 0) return undefined;
  let rangeIdx = 0;
  let cursor = set[0]!.start;
  if (last) {
    const i = set.findIndex((r) => inRange(r, last));
    if (i >= 0) {
      rangeIdx = i;
      cursor = last;
      [rangeIdx, cursor] = advance(set, rangeIdx, cursor);
    }
  }
  const total = set.reduce((n, r) => n + (r.end.value - r.start.value + 1n), 0n);
  const budget = BigInt(used.size + set.length + 1);
  const steps = total < budget ? total : budget;
  for (let n = 0n; n < steps; n++) {
    if (!isGateway(set, cursor) && !used.has(formatIp(cursor))) return { ip: cursor, range: set[rangeIdx]! };
    [rangeIdx, cursor] = advance(set, rangeIdx, cursor);
  }
  return undefined;
}

function advance(set: RangeSet, rangeIdx: number, ip: Ip): [number, Ip] {
  const r = set[rangeIdx]!;
  if (ipCompare(ip, r.end) < 0) return [rangeIdx, ipAdd(ip, 1n)];
  const next = (rangeIdx + 1) % set.length;
  return [next, set[next]!.start];
}

/** Number of addresses a set can still hand out (for STATUS). Gateways inside the ranges excluded. */
export function freeCount(set: RangeSet, used: ReadonlySet<string>): bigint {
  let n = 0n;
  for (const r of set) {
    n += r.end.value - r.start.value + 1n;
    if (inRange(r, r.gateway)) n -= 1n;
  }
  for (const text of used) {
    const ip = parseIp(text);
    if (ip && !isGateway(set, ip) && set.some((r) => inRange(r, ip))) n -= 1n;
  }
  return n < 0n ? 0n : n;
}
