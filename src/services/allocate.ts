// ClusterIP and NodePort allocation, pure: the apiserver's job, done here so Trellis can run
// Services without one. Deterministic: the lowest free value, given the set in use (a store that
// allocates concurrently must reserve the result, as host-local reserves an IP by file).
import { cidrFirst, cidrLast, cidrSize, formatIp, parseCidr, parseIp } from "../model/ip.js";
import { DEFAULT_NODE_PORT_RANGE, DEFAULT_SERVICE_CIDR, type Service } from "./model.js";

export class AllocationError extends Error {
  constructor(readonly code: "cidr-full" | "range-full" | "duplicate-cluster-ip" | "duplicate-node-port", message: string) {
    super(message);
    this.name = "AllocationError";
  }
}

/**
 * The lowest address of `serviceCidr` that is neither its network nor its broadcast address nor
 * in `used`. Throws AllocationError("cidr-full") when there is none.
 */
export function allocateClusterIP(used: Iterable<string>, serviceCidr = DEFAULT_SERVICE_CIDR): string {
  const cidr = parseCidr(serviceCidr, true);
  if (!cidr || cidr.family !== 4) throw new Error(`service CIDR ${JSON.stringify(serviceCidr)} is not an IPv4 CIDR`);
  const taken = new Set<bigint>();
  for (const u of used) {
    const ip = parseIp(u);
    if (ip && ip.family === 4) taken.add(ip.value);
  }
  const first = cidrFirst(cidr).value + 1n;
  const last = cidrLast(cidr).value - 1n;
  if (cidrSize(cidr) >= 4n) {
    for (let v = first; v <= last; v++) if (!taken.has(v)) return formatIp({ family: 4, value: v });
  }
  throw new AllocationError("cidr-full", `service CIDR ${serviceCidr} is full: no ClusterIP left to allocate`);
}

/** The lowest port of the range not in `used`. Throws AllocationError("range-full"). */
export function allocateNodePort(used: Iterable<number>, range: readonly [number, number] = DEFAULT_NODE_PORT_RANGE): number {
  const taken = new Set(used);
  for (let p = range[0]; p <= range[1]; p++) if (!taken.has(p)) return p;
  throw new AllocationError("range-full", `NodePort range ${range[0]}-${range[1]} is full: no port left to allocate`);
}

export interface Conflict {
  value: string;
  /** "namespace/name" of each Service holding it (two or more). */
  services: string[];
}

const key = (s: Service): string => `${s.namespace}/${s.name}`;

/** ClusterIPs held by more than one Service. */
export function duplicateClusterIPs(services: readonly Service[]): Conflict[] {
  const by = new Map<string, string[]>();
  for (const s of services) if (s.clusterIP && s.clusterIP !== "None") by.set(s.clusterIP, [...(by.get(s.clusterIP) ?? []), key(s)]);
  return [...by].filter(([, v]) => v.length > 1).map(([value, v]) => ({ value, services: v.sort() })).sort((a, b) => a.value.localeCompare(b.value));
}

/** NodePorts (per protocol, "30080/TCP") held by more than one Service. */
export function duplicateNodePorts(services: readonly Service[]): Conflict[] {
  const by = new Map<string, string[]>();
  for (const s of services) for (const p of s.ports) {
    if (p.nodePort === undefined) continue;
    const k = `${p.nodePort}/${p.protocol}`;
    const list = by.get(k) ?? [];
    if (!list.includes(key(s))) list.push(key(s));
    by.set(k, list);
  }
  return [...by].filter(([, v]) => v.length > 1).map(([value, v]) => ({ value, services: v.sort() })).sort((a, b) => a.value.localeCompare(b.value));
}

/**
 * Every Service with its ClusterIP and (type NodePort) NodePorts filled in, in the order of
 * `namespace/name` so the result does not depend on the order given. Throws on a duplicate
 * ClusterIP or NodePort among those already set.
 */
export function allocateAll(services: readonly Service[], opts: { serviceCidr?: string; nodePortRange?: readonly [number, number] } = {}): Service[] {
  const dupIp = duplicateClusterIPs(services)[0];
  if (dupIp) throw new AllocationError("duplicate-cluster-ip", `ClusterIP ${dupIp.value} is held by ${dupIp.services.join(" and ")}`);
  const dupNp = duplicateNodePorts(services)[0];
  if (dupNp) throw new AllocationError("duplicate-node-port", `NodePort ${dupNp.value} is held by ${dupNp.services.join(" and ")}`);
  const usedIps = new Set(services.flatMap((s) => (s.clusterIP ? [s.clusterIP] : [])));
  // A NodePort is taken for both protocols when allocating (as the apiserver's allocator does).
  const usedPorts = new Set(services.flatMap((s) => s.ports.flatMap((p) => (p.nodePort !== undefined ? [p.nodePort] : []))));
  const sorted = [...services].sort((a, b) => key(a).localeCompare(key(b)));
  return sorted.map((s) => {
    const out: Service = { ...s, ports: s.ports.map((p) => ({ ...p })) };
    if (!out.clusterIP) {
      out.clusterIP = allocateClusterIP(usedIps, opts.serviceCidr);
      usedIps.add(out.clusterIP);
    }
    if (out.type === "NodePort") {
      for (const p of out.ports) {
        if (p.nodePort !== undefined) continue;
        p.nodePort = allocateNodePort(usedPorts, opts.nodePortRange);
        usedPorts.add(p.nodePort);
      }
    }
    return out;
  });
}
