// What `trellis apply` does for Services and EndpointSlices before anything is written: the API
// server's part where there is none. Validation against the network config (service CIDR,
// NodePort range, not the pod network), duplicates refused, EndpointSlices must name a Service,
// ClusterIPs and NodePorts allocated (lowest free) and RESERVED in the datastore with a
// create-if-absent key each, so two concurrent applies can never hold one address or port:
//   /trellis/serviceips/<ip>     value {"service": "ns/name", "at": ms}
//   /trellis/nodeports/<port>    (one port for both protocols, as the API server allocates)
// The caller writes the objects, then calls `commit()` (frees what the Services no longer hold)
// or, when a write failed, `rollback()` (frees what this apply reserved): nothing half-applied.
import { cidrOverlaps, parseCidr } from "../model/ip.js";
import { CONFIG_KEY } from "../model/lease.js";
import { DEFAULT_SERVICE_CIDR_TEXT, nodePortRangeOf, validateNetworkConfig, type NetworkConfig } from "../model/network.js";
import type { Datastore } from "../datastore/types.js";
import type { Parsed } from "../policy/parse.js";
import { allocateClusterIP, allocateNodePort, duplicateClusterIPs, duplicateNodePorts } from "./allocate.js";
import { SERVICE_PREFIX } from "./controller.js";
import type { Service } from "./model.js";
import { parseService } from "./parse.js";

export const SERVICE_IP_PREFIX = "/trellis/serviceips/";
export const NODE_PORT_PREFIX = "/trellis/nodeports/";
/** A reservation whose Service does not exist is taken over only after this long (its apply may still be writing). */
export const RESERVATION_GRACE_MS = 60_000;

type ServiceDoc = Parsed & { kind: "Service" };
type Reservation = { key: string; modRevision: number };

export interface ServicesApply {
  /** After every object is written: frees the reservations the applied Services no longer hold. */
  commit(): Promise<void>;
  /** After a failed write: frees what this apply reserved. */
  rollback(): Promise<void>;
}

const svcKey = (s: { namespace: string; name: string }): string => `${s.namespace}/${s.name}`;
const fail = (s: { namespace: string; name: string }, field: string, value: unknown, why: string): never => {
  throw new Error(`Service ${svcKey(s)}: ${field} ${JSON.stringify(value)}: ${why}`);
};

/** The network config as the agents read it (unknown fields tolerated), or undefined when none is stored. */
async function networkConfig(store: Datastore): Promise<NetworkConfig | undefined> {
  const kv = await store.get(CONFIG_KEY);
  return kv ? validateNetworkConfig(JSON.parse(kv.value), { onUnknownField: () => {} }) : undefined;
}

/**
 * Checks and allocates for the Services and EndpointSlices in `docs` (other kinds are left alone),
 * filling allocated values into the documents to be stored. Throws, having reserved nothing that
 * stays, on: a ClusterIP outside the service CIDR or held by another Service, a NodePort outside
 * the range or held, a service CIDR overlapping the pod network, an EndpointSlice naming a Service
 * that neither exists nor is in `docs`. With `allocate: false` (the Kubernetes datastore: its API
 * server allocates) only the checks that need no reservation run.
 */
export async function prepareServices(store: Datastore, docs: Parsed[], opts: { allocate: boolean }): Promise<ServicesApply> {
  const services = docs.filter((d): d is ServiceDoc => d.kind === "Service");
  const slices = docs.filter((d): d is Parsed & { kind: "EndpointSlice" } => d.kind === "EndpointSlice");
  const none: ServicesApply = { commit: async () => {}, rollback: async () => {} };
  if (services.length === 0 && slices.length === 0) return none;

  const config = await networkConfig(store);
  const serviceCidr = config?.serviceCIDR ?? DEFAULT_SERVICE_CIDR_TEXT;
  const nodePortRange = nodePortRangeOf(config ?? {});
  if (config && services.length > 0 && cidrOverlaps(parseCidr(serviceCidr)!, parseCidr(config.network)!)) {
    throw new Error(`network config serviceCIDR ${JSON.stringify(serviceCidr)}${config.serviceCIDR ? "" : " (the default)"}: overlaps the pod network ${config.network}; set another with \`trellis network set --service-cidr\``);
  }
  // Parsed at first with the defaults: again with this cluster's range and CIDR.
  for (const d of services) d.object = parseService(d.raw, { serviceCidr, nodePortRange });
  for (const c of duplicateClusterIPs(services.map((d) => d.object))) throw new Error(`spec.clusterIP ${JSON.stringify(c.value)}: given to ${c.services.join(" and ")} in one apply`);
  for (const c of duplicateNodePorts(services.map((d) => d.object))) throw new Error(`spec.ports[].nodePort ${c.value}: given to ${c.services.join(" and ")} in one apply`);

  const stored = new Map<string, Service>();
  for (const kv of (await store.list(SERVICE_PREFIX)).items) {
    try {
      const s = parseService(JSON.parse(kv.value), { serviceCidr, nodePortRange });
      stored.set(svcKey(s), s);
    } catch {
      // An invalid stored Service holds nothing.
    }
  }
  const applying = new Set(services.map((d) => svcKey(d.object)));
  for (const d of slices) {
    const s = d.object;
    if (!stored.has(`${s.namespace}/${s.service}`) && !applying.has(`${s.namespace}/${s.service}`)) {
      throw new Error(`EndpointSlice ${s.namespace}/${s.name}: metadata.labels["kubernetes.io/service-name"] ${JSON.stringify(s.service)}: no Service ${s.namespace}/${s.service} exists (apply it first, or in the same file)`);
    }
  }
  if (!opts.allocate || services.length === 0) return none;

  const reserved: Reservation[] = [];
  const release = async (rs: Reservation[]): Promise<void> => {
    for (const r of rs) await store.delete(r.key, r.modRevision).catch(() => false);
  };
  try {
    // Values other stored Services hold, besides reservations (Services stored before reservations existed).
    const heldIps = new Map<string, string>();
    const heldPorts = new Map<number, string>();
    for (const [k, s] of stored) {
      if (applying.has(k)) continue;
      if (s.clusterIP && s.clusterIP !== "None") heldIps.set(s.clusterIP, k);
      for (const p of s.ports) if (p.nodePort !== undefined) heldPorts.set(p.nodePort, k);
    }
    const reservedIps = new Set((await store.list(SERVICE_IP_PREFIX)).items.map((kv) => kv.key.slice(SERVICE_IP_PREFIX.length)));
    const reservedPorts = new Set((await store.list(NODE_PORT_PREFIX)).items.map((kv) => Number(kv.key.slice(NODE_PORT_PREFIX.length))));

    /** Reserves `key` for service `me`: true when it is now (or already was) mine. */
    const reserve = async (key: string, me: string): Promise<boolean> => {
      const value = JSON.stringify({ service: me, at: Date.now() });
      for (let attempt = 0; attempt < 3; attempt++) {
        const made = await store.create(key, value);
        if (made) {
          reserved.push({ key, modRevision: made.modRevision });
          return true;
        }
        const cur = await store.get(key);
        if (!cur) continue;
        let owner: { service?: string; at?: number } = {};
        try { owner = JSON.parse(cur.value) as typeof owner; } catch { /* unreadable: treated as stale */ }
        if (owner.service === me) return true;
        const ownerLives = owner.service !== undefined && (stored.has(owner.service) || Date.now() - (owner.at ?? 0) < RESERVATION_GRACE_MS);
        if (ownerLives) return false;
        const taken = await store.update(key, value, cur.modRevision);
        if (taken) {
          reserved.push({ key, modRevision: taken.modRevision });
          return true;
        }
      }
      return false;
    };

    for (const d of [...services].sort((a, b) => svcKey(a.object).localeCompare(svcKey(b.object)))) {
      const s = d.object;
      const me = svcKey(s);
      const before = stored.get(me);
      // ClusterIP: as given; else as stored under this name; else the lowest free one.
      if (s.clusterIP !== "None") {
        const given = s.clusterIP;
        let ip = given ?? (before?.clusterIP && before.clusterIP !== "None" ? before.clusterIP : undefined);
        for (;;) {
          if (ip !== undefined) {
            const other = heldIps.get(ip);
            if (other && other !== me) {
              if (given) fail(s, "spec.clusterIP", ip, `already allocated to Service ${other}`);
            } else if (await reserve(`${SERVICE_IP_PREFIX}${ip}`, me)) break;
            else if (given) fail(s, "spec.clusterIP", ip, "already allocated to another Service (reserved in the datastore)");
            reservedIps.add(ip);
          }
          ip = allocateClusterIP(new Set([...heldIps.keys(), ...reservedIps]), serviceCidr);
        }
        setClusterIP(d, ip);
      }
      if (s.type === "NodePort") {
        for (const [i, p] of s.ports.entries()) {
          const given = p.nodePort;
          let port = given ?? before?.ports.find((q) => q.name === p.name && q.protocol === p.protocol)?.nodePort;
          for (;;) {
            if (port !== undefined) {
              const other = heldPorts.get(port);
              if (other && other !== me) {
                if (given !== undefined) fail(s, `spec.ports[${i}].nodePort`, port, `already allocated to Service ${other}`);
              } else if (await reserve(`${NODE_PORT_PREFIX}${port}`, me)) break;
              else if (given !== undefined) fail(s, `spec.ports[${i}].nodePort`, port, "already allocated to another Service (reserved in the datastore)");
              reservedPorts.add(port);
            }
            port = allocateNodePort(new Set([...heldPorts.keys(), ...reservedPorts, ...s.ports.flatMap((q) => (q.nodePort !== undefined ? [q.nodePort] : []))]), nodePortRange);
          }
          setNodePort(d, i, port);
        }
      }
    }
  } catch (e) {
    await release(reserved);
    throw e;
  }
  return {
    rollback: () => release(reserved),
    commit: async () => {
      // Addresses and ports an applied Service held before and holds no more (one listing for all).
      const holds = new Map(services.map((d) => [svcKey(d.object),
        new Set([d.object.clusterIP, ...d.object.ports.map((p) => p.nodePort)].filter((x) => x !== undefined).map(String))]));
      await releaseWhere(store, (owner, value) => holds.get(owner)?.has(value) === false);
    },
  };
}

/** Frees the reservations of Service `ns/name`, after it is deleted. */
export function releaseHeldBy(store: Datastore, service: string): Promise<void> {
  return releaseWhere(store, (owner) => owner === service);
}

/** Frees every reservation whose owner and value (the address or port) `drop` accepts. */
async function releaseWhere(store: Datastore, drop: (owner: string, value: string) => boolean): Promise<void> {
  for (const prefix of [SERVICE_IP_PREFIX, NODE_PORT_PREFIX]) {
    for (const kv of (await store.list(prefix)).items) {
      let owner: string | undefined;
      try { owner = (JSON.parse(kv.value) as { service?: string }).service; } catch { continue; }
      if (owner !== undefined && drop(owner, kv.key.slice(prefix.length))) await store.delete(kv.key, kv.modRevision);
    }
  }
}

function setClusterIP(d: ServiceDoc, ip: string): void {
  d.object = { ...d.object, clusterIP: ip };
  const spec = d.raw!.spec as Record<string, unknown>;
  d.raw!.spec = { ...spec, clusterIP: ip, clusterIPs: [ip] };
}

function setNodePort(d: ServiceDoc, i: number, port: number): void {
  d.object = { ...d.object, ports: d.object.ports.map((p, j) => (j === i ? { ...p, nodePort: port } : p)) };
  const spec = d.raw!.spec as Record<string, unknown>;
  const ports = (spec.ports as Array<Record<string, unknown>>).map((p, j) => (j === i ? { ...p, nodePort: port } : p));
  d.raw!.spec = { ...spec, ports };
}

