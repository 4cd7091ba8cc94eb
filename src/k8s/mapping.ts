// How Trellis' key space maps onto Kubernetes objects, both ways. Pure: no client, no clock.
//
// The agent, the policy engine and the CLI speak the Datastore contract (src/datastore/types.ts):
// keys under /trellis/. On Kubernetes those keys are views of API objects:
//
//   key                                   object (read)                        write goes to
//   /trellis/config                       TrellisNetwork "default" .spec       the same object
//   /trellis/namespaces/<ns>              Namespace                            Namespace
//   /trellis/pods/<ns>/<name>             Pod (labels, container ports)        Pod
//   /trellis/policies/NetworkPolicy/..    networking.k8s.io/v1 NetworkPolicy   the same
//   /trellis/services/<ns>/<name>         v1 Service (spec as served)          the same (create/replace; the
//                                                                              API server allocates ClusterIPs)
//   /trellis/endpointslices/<ns>/<name>   discovery.k8s.io/v1 EndpointSlice    the same (normally written by
//                                                                              the cluster's endpointslice controller)
//   /trellis/policies/TrellisPolicy/..    TrellisPolicy (trellis.dev/v1)       the same
//   /trellis/policies/GlobalTrellisPolicy GlobalTrellisPolicy                  the same
//   /trellis/bgppeers/<name>              TrellisBGPPeer                       the same
//   /trellis/nodesettings/<node>          Node labels + trellis.dev/ annots.   patch of the Node
//   /trellis/assignedblocks/<node>        Node spec.podCIDR                    (read-only: the cluster assigns it)
//   /trellis/leases/<block>               Node annotation trellis.dev/lease    patch of the Node, when the
//                                         (or a TrellisValue)                  block is that Node's podCIDR
//   anything else (endpoints, status,     TrellisValue {key, value}            TrellisValue
//   leases Trellis allocates itself)
//
// A TTL is an absolute expiry in an annotation (trellis.dev/expires-at, and for a lease in a
// Node trellis.dev/lease-expires-at), swept by every adapter (src/k8s/datastore.ts).
import { createHash } from "node:crypto";
import YAML from "yaml";
import { KEY_ROOT } from "../model/lease.js";

import { GROUP, NETWORK_OBJECT_NAME, VERSION } from "./crds.js";

export { GROUP, VERSION };
export const ANN_LEASE = "trellis.dev/lease";
export const ANN_LEASE_EXPIRES = "trellis.dev/lease-expires-at";
export const ANN_EXPIRES = "trellis.dev/expires-at";
export const ANN_PUBLIC_IP = "trellis.dev/public-ip";
export const ANN_BACKEND = "trellis.dev/backend";
export const ANN_VTEP_MAC = "trellis.dev/vtep-mac";
export const ANN_AS_NUMBER = "trellis.dev/as-number";
export const ANN_RR_CLUSTER_ID = "trellis.dev/route-reflector-cluster-id";
/** The name of the TrellisNetwork that holds the network config. */
export const NETWORK_OBJECT = NETWORK_OBJECT_NAME;

export interface ResourceDef {
  /** The plural resource name, as in RBAC rules and URLs. */
  resource: string;
  group: string;
  version: string;
  kind: string;
  namespaced: boolean;
}

const core = (resource: string, kind: string, namespaced: boolean): ResourceDef => ({ resource, group: "", version: "v1", kind, namespaced });
const own = (resource: string, kind: string, namespaced: boolean): ResourceDef => ({ resource, group: GROUP, version: VERSION, kind, namespaced });

export const RESOURCES = {
  nodes: core("nodes", "Node", false),
  namespaces: core("namespaces", "Namespace", false),
  pods: core("pods", "Pod", true),
  networkpolicies: { resource: "networkpolicies", group: "networking.k8s.io", version: "v1", kind: "NetworkPolicy", namespaced: true },
  services: core("services", "Service", true),
  endpointslices: { resource: "endpointslices", group: "discovery.k8s.io", version: "v1", kind: "EndpointSlice", namespaced: true },
  trellisnetworks: own("trellisnetworks", "TrellisNetwork", false),
  trellispolicies: own("trellispolicies", "TrellisPolicy", true),
  globaltrellispolicies: own("globaltrellispolicies", "GlobalTrellisPolicy", false),
  trellisbgppeers: own("trellisbgppeers", "TrellisBGPPeer", false),
  trellisvalues: own("trellisvalues", "TrellisValue", false),
} as const satisfies Record<string, ResourceDef>;
export type ResourceName = keyof typeof RESOURCES;

export const apiVersionOf = (r: ResourceDef): string => (r.group ? `${r.group}/${r.version}` : r.version);
/** The collection's path across all namespaces: what lists and watches use. */
export const collectionPath = (r: ResourceDef): string => `${r.group ? `/apis/${r.group}` : "/api"}/${r.version}/${r.resource}`;

/** The parts of an API object the mapping reads. */
export interface ApiObject {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string; namespace?: string; resourceVersion?: string; uid?: string;
    labels?: Record<string, string>; annotations?: Record<string, string>;
    [k: string]: unknown;
  };
  spec?: Record<string, unknown> & { podCIDR?: string; podCIDRs?: string[] };
  status?: Record<string, unknown>;
  [k: string]: unknown;
}

/** One key an object provides. */
export interface Entry {
  key: string;
  value: string;
  /** Absolute expiry, ms since the epoch. */
  expiresAt?: number;
}

const P = {
  config: `${KEY_ROOT}config`,
  namespaces: `${KEY_ROOT}namespaces/`,
  pods: `${KEY_ROOT}pods/`,
  policies: `${KEY_ROOT}policies/`,
  services: `${KEY_ROOT}services/`,
  endpointslices: `${KEY_ROOT}endpointslices/`,
  bgppeers: `${KEY_ROOT}bgppeers/`,
  nodesettings: `${KEY_ROOT}nodesettings/`,
  assigned: `${KEY_ROOT}assignedblocks/`,
  leases: `${KEY_ROOT}leases/`,
};

const expiry = (text: string | undefined): number | undefined => {
  if (text === undefined || !/^\d+$/.test(text)) return undefined;
  return Number(text);
};

/** The node's IPv4 pod CIDR (spec.podCIDRs, else spec.podCIDR). */
export function nodePodCidr(node: ApiObject): string | undefined {
  const all = [...(Array.isArray(node.spec?.podCIDRs) ? node.spec!.podCIDRs : []), ...(typeof node.spec?.podCIDR === "string" ? [node.spec.podCIDR] : [])];
  return all.find((c) => typeof c === "string" && c.includes("."));
}

const blockKey = (cidr: string): string => `${P.leases}${cidr.replace("/", "-")}`;

/**
 * A Pod, Namespace, policy, Service or EndpointSlice reduced to what Trellis reads, as the document
 * `trellis apply` would store: metadata is name, namespace and labels only (what the server fills
 * in — uid, resourceVersion, managedFields, annotations — is not Trellis' input), no status.
 */
function document(kind: string, apiVersion: string, o: ApiObject, spec: unknown, body: Record<string, unknown> = {}): string {
  const m = o.metadata ?? {};
  const metadata: Record<string, unknown> = { name: m.name };
  if (m.namespace) metadata.namespace = m.namespace;
  if (m.labels && Object.keys(m.labels).length) metadata.labels = m.labels;
  return JSON.stringify({ apiVersion, kind, metadata, ...body, ...(spec === undefined ? {} : { spec }) });
}

/**
 * An EndpointSlice's body (it has no spec): addressType, endpoints and ports as served. Go's
 * encoder writes an empty list as `null` (a slice without endpoints), the client's model classes
 * drop it: both are given as [] so a listed and a watched slice have the same value.
 */
function sliceBody(o: ApiObject): Record<string, unknown> {
  return {
    addressType: o.addressType,
    endpoints: Array.isArray(o.endpoints) ? o.endpoints : [],
    ports: Array.isArray(o.ports) ? o.ports : [],
  };
}

function podSpec(o: ApiObject): Record<string, unknown> {
  const containers = Array.isArray(o.spec?.containers) ? (o.spec!.containers as Array<Record<string, unknown>>) : [];
  return {
    containers: containers.map((c) => ({
      name: c.name,
      ...(Array.isArray(c.ports) && c.ports.length ? {
        ports: (c.ports as Array<Record<string, unknown>>).map((p) => ({
          ...(p.name ? { name: p.name } : {}), containerPort: p.containerPort, ...(p.protocol ? { protocol: p.protocol } : {}),
        })),
      } : {}),
    })),
    ...(typeof o.spec?.nodeName === "string" ? { nodeName: o.spec.nodeName } : {}),
  };
}

/** Every key an object of resource `r` provides (none for objects Trellis does not read). */
export function entriesOf(r: ResourceName, o: ApiObject): Entry[] {
  const m = o.metadata ?? {};
  const name = m.name ?? "";
  const ann = m.annotations ?? {};
  switch (r) {
    case "namespaces":
      return [{ key: `${P.namespaces}${name}`, value: document("Namespace", "v1", o, undefined) }];
    case "pods":
      return [{ key: `${P.pods}${m.namespace}/${name}`, value: document("Pod", "v1", o, podSpec(o)) }];
    case "networkpolicies":
      return [{ key: `${P.policies}NetworkPolicy/${m.namespace}/${name}`, value: document("NetworkPolicy", "networking.k8s.io/v1", o, o.spec ?? {}) }];
    case "services":
      return [{ key: `${P.services}${m.namespace}/${name}`, value: document("Service", "v1", o, o.spec ?? {}) }];
    case "endpointslices":
      return [{ key: `${P.endpointslices}${m.namespace}/${name}`, value: document("EndpointSlice", "discovery.k8s.io/v1", o, undefined, sliceBody(o)) }];
    case "trellispolicies":
      return [{ key: `${P.policies}TrellisPolicy/${m.namespace}/${name}`, value: document("TrellisPolicy", `${GROUP}/${VERSION}`, o, o.spec ?? {}) }];
    case "globaltrellispolicies":
      return [{ key: `${P.policies}GlobalTrellisPolicy/${name}`, value: document("GlobalTrellisPolicy", `${GROUP}/${VERSION}`, o, o.spec ?? {}) }];
    case "trellisnetworks":
      return name === NETWORK_OBJECT ? [{ key: P.config, value: JSON.stringify(o.spec ?? {}) }] : [];
    case "trellisbgppeers":
      return [{ key: `${P.bgppeers}${name}`, value: JSON.stringify({ name, ...(o.spec ?? {}) }) }];
    case "trellisvalues": {
      const key = o.spec?.key;
      const value = o.spec?.value;
      if (typeof key !== "string" || typeof value !== "string" || valueObjectName(key) !== name) return [];
      const exp = expiry(ann[ANN_EXPIRES]);
      return [{ key, value, ...(exp !== undefined ? { expiresAt: exp } : {}) }];
    }
    case "nodes": {
      const out: Entry[] = [];
      const settings: Record<string, unknown> = { node: name, labels: m.labels ?? {} };
      if (ann[ANN_AS_NUMBER] !== undefined) settings.asNumber = /^\d+$/.test(ann[ANN_AS_NUMBER]) ? Number(ann[ANN_AS_NUMBER]) : ann[ANN_AS_NUMBER];
      if (ann[ANN_RR_CLUSTER_ID] !== undefined) settings.routeReflectorClusterId = ann[ANN_RR_CLUSTER_ID];
      out.push({ key: `${P.nodesettings}${name}`, value: JSON.stringify(settings) });
      const cidr = nodePodCidr(o);
      if (cidr) out.push({ key: `${P.assigned}${name}`, value: cidr });
      const lease = ann[ANN_LEASE];
      if (lease !== undefined) {
        try {
          const v = JSON.parse(lease) as { subnet?: unknown };
          if (typeof v.subnet === "string") {
            const { subnet, ...rest } = v;
            const exp = expiry(ann[ANN_LEASE_EXPIRES]);
            out.push({ key: blockKey(subnet as string), value: JSON.stringify(rest), ...(exp !== undefined ? { expiresAt: exp } : {}) });
          }
        } catch {
          // Not JSON: not a lease (nothing of it is shown).
        }
      }
      return out;
    }
  }
}

/** A TrellisValue's name for a key: readable, a DNS subdomain, unique by the key's hash. */
export function valueObjectName(key: string): string {
  const readable = key.replace(/^\/trellis\//, "").toLowerCase().replace(/[^a-z0-9.-]+/g, "-").replace(/^[-.]+|[-.]+$/g, "").slice(0, 200);
  const hash = createHash("sha256").update(key).digest("hex").slice(0, 12);
  return `${readable ? `${readable}.` : ""}${hash}`.replace(/\.\.+/g, ".").replace(/-\./g, ".");
}

/** Where a write of `key` goes. */
export type Target =
  | { type: "object"; resource: ResourceName; namespace?: string; name: string; build: (value: string) => ApiObject }
  | { type: "node-settings"; node: string }
  | { type: "lease"; block: string }
  | { type: "read-only"; why: string }
  | { type: "value"; name: string };

function parseDoc(value: string, what: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = YAML.parse(value, { maxAliasCount: 100 });
  } catch (e) {
    throw new Error(`${what}: not YAML or JSON (${(e as Error).message})`);
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) throw new Error(`${what}: not an object`);
  return doc as Record<string, unknown>;
}

/** The document stored by `trellis apply` as the API object to write (metadata kept as given, minus server fields). */
function fromDocument(r: ResourceName, namespace: string | undefined, name: string) {
  return (value: string): ApiObject => {
    const doc = parseDoc(value, `${RESOURCES[r].kind} ${namespace ? `${namespace}/` : ""}${name}`);
    const meta = (typeof doc.metadata === "object" && doc.metadata !== null ? doc.metadata : {}) as Record<string, unknown>;
    const { resourceVersion: _rv, uid: _uid, creationTimestamp: _ct, generation: _g, managedFields: _mf, selfLink: _sl, ...keep } = meta;
    const out: ApiObject = { ...doc, apiVersion: apiVersionOf(RESOURCES[r]), kind: RESOURCES[r].kind, metadata: { ...keep, name, ...(namespace ? { namespace } : {}) } };
    if (r === "pods") {
      const spec = (out.spec ?? {}) as Record<string, unknown>;
      // The API requires a container; a pod written by the lab or `trellis apply` may have none.
      if (!Array.isArray(spec.containers) || spec.containers.length === 0) spec.containers = [{ name: "main", image: "trellis.dev/none" }];
      for (const c of spec.containers as Array<Record<string, unknown>>) c.image ??= "trellis.dev/none";
      out.spec = spec;
    }
    delete out.status;
    return out;
  };
}

export function targetOf(key: string): Target {
  const rest = (p: string): string[] | undefined => (key.startsWith(p) ? key.slice(p.length).split("/") : undefined);
  if (key === P.config) {
    return {
      type: "object", resource: "trellisnetworks", name: NETWORK_OBJECT,
      build: (value) => ({ apiVersion: `${GROUP}/${VERSION}`, kind: "TrellisNetwork", metadata: { name: NETWORK_OBJECT }, spec: parseDoc(value, "network config") }),
    };
  }
  let parts = rest(P.namespaces);
  if (parts?.length === 1 && parts[0]) return { type: "object", resource: "namespaces", name: parts[0], build: fromDocument("namespaces", undefined, parts[0]) };
  parts = rest(P.pods);
  if (parts?.length === 2 && parts[0] && parts[1]) return { type: "object", resource: "pods", namespace: parts[0], name: parts[1], build: fromDocument("pods", parts[0], parts[1]) };
  parts = rest(P.policies);
  if (parts) {
    const [kind, a, b] = parts;
    if (kind === "NetworkPolicy" && a && b && parts.length === 3) return { type: "object", resource: "networkpolicies", namespace: a, name: b, build: fromDocument("networkpolicies", a, b) };
    if (kind === "TrellisPolicy" && a && b && parts.length === 3) return { type: "object", resource: "trellispolicies", namespace: a, name: b, build: fromDocument("trellispolicies", a, b) };
    if (kind === "GlobalTrellisPolicy" && a && parts.length === 2) return { type: "object", resource: "globaltrellispolicies", name: a, build: fromDocument("globaltrellispolicies", undefined, a) };
  }
  parts = rest(P.services);
  if (parts?.length === 2 && parts[0] && parts[1]) return { type: "object", resource: "services", namespace: parts[0], name: parts[1], build: fromDocument("services", parts[0], parts[1]) };
  parts = rest(P.endpointslices);
  if (parts?.length === 2 && parts[0] && parts[1]) {
    return { type: "object", resource: "endpointslices", namespace: parts[0], name: parts[1], build: fromDocument("endpointslices", parts[0], parts[1]) };
  }
  parts = rest(P.bgppeers);
  if (parts?.length === 1 && parts[0]) {
    const name = parts[0];
    return {
      type: "object", resource: "trellisbgppeers", name,
      build: (value) => {
        const { name: _n, ...spec } = parseDoc(value, `BGP peer ${name}`);
        return { apiVersion: `${GROUP}/${VERSION}`, kind: "TrellisBGPPeer", metadata: { name }, spec };
      },
    };
  }
  parts = rest(P.nodesettings);
  if (parts?.length === 1 && parts[0]) return { type: "node-settings", node: parts[0] };
  parts = rest(P.assigned);
  if (parts) return { type: "read-only", why: "a node's assigned block is its Node's spec.podCIDR, set by the cluster (kube-controller-manager --allocate-node-cidrs)" };
  parts = rest(P.leases);
  if (parts?.length === 1 && /^[0-9.]+-\d+$/.test(parts[0]!)) return { type: "lease", block: parts[0]!.replace(/-(\d+)$/, "/$1") };
  return { type: "value", name: valueObjectName(key) };
}

/**
 * A Service replacing `existing`: what the API server allocated (spec.clusterIP/clusterIPs, each
 * port's nodePort, healthCheckNodePort) and the new document leaves unset is
 * kept, as the API server itself does on update (its patchAllocatedValues): re-applying a Service
 * written without a clusterIP keeps its address. Ports are matched by name, else by port and protocol.
 */
export function keepAllocated(existing: ApiObject, next: ApiObject): ApiObject {
  const old = existing.spec ?? {};
  const spec: Record<string, unknown> = { ...(next.spec ?? {}) };
  const unset = (v: unknown): boolean => v === undefined || v === null || v === "";
  const oldType = old.type ?? "ClusterIP";
  if (oldType !== "ExternalName" && (spec.type ?? "ClusterIP") !== "ExternalName") {
    if (unset(spec.clusterIP) && !unset(old.clusterIP)) spec.clusterIP = old.clusterIP;
    if (unset(spec.clusterIPs) && Array.isArray(old.clusterIPs) && old.clusterIPs[0] === spec.clusterIP) spec.clusterIPs = old.clusterIPs;
  }
  if (unset(spec.healthCheckNodePort) && !unset(old.healthCheckNodePort) && spec.type === oldType) spec.healthCheckNodePort = old.healthCheckNodePort;
  const oldPorts = Array.isArray(old.ports) ? (old.ports as Array<Record<string, unknown>>) : [];
  if (Array.isArray(spec.ports) && (spec.type === "NodePort" || spec.type === "LoadBalancer")) {
    spec.ports = (spec.ports as Array<Record<string, unknown>>).map((p) => {
      if (!unset(p.nodePort) && p.nodePort !== 0) return p;
      const was = oldPorts.find((q) => (p.name ? q.name === p.name : q.port === p.port && (q.protocol ?? "TCP") === (p.protocol ?? "TCP")));
      return was && typeof was.nodePort === "number" ? { ...p, nodePort: was.nodePort } : p;
    });
  }
  return { ...next, spec };
}

/** The TrellisValue object for a key. */
export function valueObject(key: string, value: string, expiresAt: number | undefined): ApiObject {
  return {
    apiVersion: `${GROUP}/${VERSION}`, kind: "TrellisValue",
    metadata: { name: valueObjectName(key), ...(expiresAt !== undefined ? { annotations: { [ANN_EXPIRES]: String(expiresAt) } } : {}) },
    spec: { key, value },
  };
}

/**
 * The merge patch that makes a Node provide `settings` (labels, AS number, reflector cluster ID),
 * given the Node as it is: labels that the settings no longer have are removed.
 */
export function nodeSettingsPatch(node: ApiObject, settings: { labels?: Record<string, string>; asNumber?: number; routeReflectorClusterId?: string }): Record<string, unknown> {
  const labels: Record<string, string | null> = {};
  const want = settings.labels ?? {};
  for (const k of Object.keys(node.metadata?.labels ?? {})) if (!(k in want)) labels[k] = null;
  for (const [k, v] of Object.entries(want)) if (node.metadata?.labels?.[k] !== v) labels[k] = v;
  const annotations: Record<string, string | null> = {
    [ANN_AS_NUMBER]: settings.asNumber === undefined ? null : String(settings.asNumber),
    [ANN_RR_CLUSTER_ID]: settings.routeReflectorClusterId ?? null,
  };
  return { metadata: { resourceVersion: node.metadata?.resourceVersion, labels, annotations } };
}

/** The merge patch that writes (or, with value undefined, removes) a Node's lease annotations. */
export function nodeLeasePatch(node: ApiObject, block: string | undefined, value: string | undefined, expiresAt: number | undefined): Record<string, unknown> {
  if (value === undefined || block === undefined) {
    return { metadata: { resourceVersion: node.metadata?.resourceVersion, annotations: { [ANN_LEASE]: null, [ANN_LEASE_EXPIRES]: null } } };
  }
  const lease = JSON.parse(value) as Record<string, unknown>;
  const annotations: Record<string, string | null> = {
    [ANN_LEASE]: JSON.stringify({ subnet: block, ...lease }),
    [ANN_LEASE_EXPIRES]: expiresAt === undefined ? null : String(expiresAt),
    // For people and other tools (`kubectl describe node`), as Flannel publishes its own.
    [ANN_PUBLIC_IP]: typeof lease.publicIp === "string" ? lease.publicIp : null,
    [ANN_BACKEND]: typeof lease.backend === "string" ? lease.backend : null,
    [ANN_VTEP_MAC]: typeof lease.vtepMac === "string" ? lease.vtepMac : null,
  };
  return { metadata: { resourceVersion: node.metadata?.resourceVersion, annotations } };
}

/** Whether resourceVersion `a` is older than `b` (both etcd revisions as decimal strings; unknown: no). */
export function olderThan(a: string | undefined, b: string | undefined): boolean {
  if (!a || !b || !/^\d+$/.test(a) || !/^\d+$/.test(b)) return false;
  return BigInt(a) < BigInt(b);
}
