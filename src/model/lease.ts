// Node leases: which node holds which pod block, and how to reach it. Pure.
//
// A lease lives at `leases/<block>` ("10.244.3.0-24"), so "is this block taken?" is a key lookup
// and taking a free block is a create-if-absent: two nodes racing for one block can never both
// win. The value says who holds it and how peers reach it (underlay address, VTEP MAC).
import { formatCidr, parseCidr, parseIp, subnetAt } from "./ip.js";
import { leasableRange, type BackendType, type NetworkConfig } from "./network.js";

export const KEY_ROOT = "/trellis/";
export const CONFIG_KEY = `${KEY_ROOT}config`;
export const LEASE_PREFIX = `${KEY_ROOT}leases/`;
export const STATUS_PREFIX = `${KEY_ROOT}status/`;
/**
 * `assignedblocks/<node>`: the block given to a node by someone else (network config `blocks:
 * assigned`); the value is the block's CIDR. On Kubernetes it is the Node's spec.podCIDR.
 */
export const ASSIGNED_PREFIX = `${KEY_ROOT}assignedblocks/`;

export interface Lease {
  subnet: string;
  node: string;
  /** The node's underlay address, which peers route or tunnel to. */
  publicIp: string;
  backend: BackendType;
  /** MAC of the node's VXLAN device (vxlan, cross-subnet). */
  vtepMac?: string;
  /** When the holder last renewed it (ms since epoch) and when it lapses without renewal. */
  renewedAt: number;
  expiresAt: number;
}

export const leaseKey = (subnet: string): string => `${LEASE_PREFIX}${subnet.replace("/", "-")}`;

export function subnetFromLeaseKey(key: string): string | undefined {
  if (!key.startsWith(LEASE_PREFIX)) return undefined;
  const text = key.slice(LEASE_PREFIX.length).replace(/-(\d+)$/, "/$1");
  const c = parseCidr(text, true);
  return c ? formatCidr(c) : undefined;
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/** Parses a stored lease; undefined (not an exception) for a value that is not one, so one bad key cannot stop a node. */
export function parseLease(key: string, value: string): Lease | undefined {
  const subnet = subnetFromLeaseKey(key);
  if (!subnet) return undefined;
  try {
    const v = JSON.parse(value) as Partial<Lease>;
    if (typeof v.node !== "string" || typeof v.publicIp !== "string" || typeof v.backend !== "string") return undefined;
    // Both end up in `ip -batch` / `bridge -batch` lines: a value such as "10.0.0.1\nlink del eth0" must not get there.
    if (parseIp(v.publicIp)?.family !== 4) return undefined;
    if (v.vtepMac !== undefined && (typeof v.vtepMac !== "string" || !MAC.test(v.vtepMac))) return undefined;
    return {
      subnet,
      node: v.node,
      publicIp: v.publicIp,
      backend: v.backend,
      ...(typeof v.vtepMac === "string" ? { vtepMac: v.vtepMac } : {}),
      renewedAt: typeof v.renewedAt === "number" ? v.renewedAt : 0,
      expiresAt: typeof v.expiresAt === "number" ? v.expiresAt : 0,
    };
  } catch {
    return undefined;
  }
}

export function leaseValue(l: Lease): string {
  const { subnet: _subnet, ...rest } = l;
  return JSON.stringify(rest);
}

/**
 * Picks a block for a node. Keeps `preferred` (the node's previous block) when it is still free
 * and leasable; otherwise a random free block, so that nodes starting together rarely collide on
 * the same create. Undefined when the network is full.
 */
export function chooseSubnet(c: NetworkConfig, taken: ReadonlySet<string>, preferred: string | undefined, random: () => number): string | undefined {
  const { network, first, last } = leasableRange(c);
  if (preferred) {
    const p = parseCidr(preferred, true);
    if (p && p.prefix === c.subnetLen && !taken.has(formatCidr(p))) {
      const size = 1n << BigInt(32 - c.subnetLen);
      const i = (p.network - network.network) / size;
      if (p.network >= network.network && i >= first && i <= last) return formatCidr(p);
    }
  }
  const count = last - first + 1n;
  if (count <= 0n) return undefined;
  const start = first + BigInt(Math.floor(random() * Number(count))) % count;
  for (let n = 0n; n < count; n++) {
    const i = first + ((start - first + n) % count);
    const s = formatCidr(subnetAt(network, c.subnetLen, i));
    if (!taken.has(s)) return s;
  }
  return undefined;
}
