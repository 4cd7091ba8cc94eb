// Reading Services and EndpointSlices (decoded YAML/JSON objects) into the services model, with
// the validation the API server applies and strict fields (model/strict.ts): an unknown field is
// refused with its path and the closest known name. Errors name the object, the field and the
// value. Pure.
import { cidrContains, cidrFirst, cidrLast, ipEqual, parseCidr, parseIp } from "../model/ip.js";
import { findUnknownFields, leaf, list, map, obj, unknownFieldMessage } from "../model/strict.js";
import {
  DEFAULT_AFFINITY_TIMEOUT, DEFAULT_NODE_PORT_RANGE, DEFAULT_SERVICE_CIDR, PROTOCOLS, SERVICE_NAME_LABEL,
  type EndpointSlice, type Protocol, type Service, type ServicePort, type SliceEndpoint, type SlicePort, type TrafficPolicy,
} from "./model.js";

export class ServiceError extends Error {
  constructor(readonly object: string, readonly field: string, readonly value: unknown, why: string, showValue = true) {
    super(`${object}: ${field}${showValue ? ` ${JSON.stringify(value)}` : ""}: ${why}`);
    this.name = "ServiceError";
  }
}

export interface ServiceParseOptions {
  /** The service CIDR ClusterIPs must lie in (10.96.0.0/12 by default). */
  serviceCidr?: string;
  /** Inclusive NodePort range (30000-32767 by default). */
  nodePortRange?: readonly [number, number];
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const PORT_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const isPortName = (v: unknown): v is string => typeof v === "string" && PORT_NAME.test(v) && v.length <= 15 && /[a-z]/.test(v);
const isPort = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v >= 1 && v <= 65535;

const OBJECT_META = obj({
  name: leaf, generateName: leaf, namespace: leaf, uid: leaf, resourceVersion: leaf, generation: leaf, creationTimestamp: leaf,
  deletionTimestamp: leaf, deletionGracePeriodSeconds: leaf, labels: map(), annotations: map(), ownerReferences: leaf,
  finalizers: leaf, managedFields: leaf, selfLink: leaf,
});
const TOP = (fields: Record<string, ReturnType<typeof obj>>) => obj({ apiVersion: leaf, kind: leaf, metadata: OBJECT_META, status: leaf, ...fields });

export const SERVICE_SHAPE = TOP({
  spec: obj({
    type: leaf, clusterIP: leaf, clusterIPs: leaf, ipFamilies: leaf, ipFamilyPolicy: leaf, selector: map(),
    ports: list(obj({ name: leaf, protocol: leaf, port: leaf, targetPort: leaf, nodePort: leaf, appProtocol: leaf })),
    sessionAffinity: leaf, sessionAffinityConfig: obj({ clientIP: obj({ timeoutSeconds: leaf }) }),
    externalTrafficPolicy: leaf, internalTrafficPolicy: leaf, publishNotReadyAddresses: leaf, externalIPs: leaf,
    externalName: leaf, loadBalancerIP: leaf, loadBalancerSourceRanges: leaf, loadBalancerClass: leaf,
    allocateLoadBalancerNodePorts: leaf, healthCheckNodePort: leaf, trafficDistribution: leaf,
  }),
});
export const ENDPOINT_SLICE_SHAPE = obj({
  apiVersion: leaf, kind: leaf, metadata: OBJECT_META, addressType: leaf,
  endpoints: list(obj({
    addresses: leaf, conditions: obj({ ready: leaf, serving: leaf, terminating: leaf }), nodeName: leaf, hostname: leaf,
    targetRef: obj({ kind: leaf, namespace: leaf, name: leaf, uid: leaf, apiVersion: leaf, resourceVersion: leaf, fieldPath: leaf }),
    zone: leaf, hints: leaf, deprecatedTopology: leaf,
  })),
  ports: list(obj({ name: leaf, protocol: leaf, port: leaf, appProtocol: leaf })),
});

class Ctx {
  constructor(readonly object: string) {}
  fail(field: string, value: unknown, why: string): never {
    throw new ServiceError(this.object, field, value, why);
  }
  obj(v: unknown, field: string): Obj | undefined {
    if (v === undefined || v === null) return undefined;
    return isObj(v) ? v : this.fail(field, v, "must be an object");
  }
  list(v: unknown, field: string): unknown[] {
    if (v === undefined || v === null) return [];
    return Array.isArray(v) ? v : this.fail(field, v, "must be a list");
  }
  oneOf<T extends string>(v: unknown, field: string, allowed: readonly T[], dflt: T): T {
    if (v === undefined) return dflt;
    return allowed.includes(v as T) ? (v as T) : this.fail(field, v, `must be ${allowed.join(" or ")}`);
  }
}

function header(doc: unknown, kind: string, apiVersion: string, shape: ReturnType<typeof obj>): { c: Ctx; d: Obj; name: string; namespace: string; labels: Record<string, string> } {
  if (!isObj(doc)) throw new ServiceError(kind, "document", doc, "must be an object");
  const m = isObj(doc.metadata) ? doc.metadata : {};
  const namespace = m.namespace ?? "default";
  const c = new Ctx(`${kind} ${String(namespace)}/${String(m.name ?? "?")}`);
  if (doc.kind !== kind) c.fail("kind", doc.kind, `must be ${kind}`);
  if (doc.apiVersion !== apiVersion) c.fail("apiVersion", doc.apiVersion, `must be ${apiVersion}`);
  const unknown = findUnknownFields(doc, shape)[0];
  if (unknown) throw new ServiceError(c.object, unknown.path, undefined, unknownFieldMessage(unknown).slice(unknown.path.length + 2), false);
  const name = m.name;
  if (typeof name !== "string" || !DNS_LABEL.test(name) || name.length > 63) c.fail("metadata.name", name, "must be a lower-case DNS label");
  if (typeof namespace !== "string" || !DNS_LABEL.test(namespace) || namespace.length > 63) c.fail("metadata.namespace", namespace, "must be a lower-case DNS label");
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(c.obj(m.labels, "metadata.labels") ?? {})) {
    if (typeof v !== "string") c.fail(`metadata.labels.${k}`, v, "must be a string");
    labels[k] = v as string;
  }
  return { c, d: doc, name: name as string, namespace: namespace as string, labels };
}

/** A v1 Service. ClusterIP and NodePort types only (a LoadBalancer or ExternalName is refused, not ignored). */
export function parseService(doc: unknown, opts: ServiceParseOptions = {}): Service {
  const { c, d, name, namespace } = header(doc, "Service", "v1", SERVICE_SHAPE);
  const cidrText = opts.serviceCidr ?? DEFAULT_SERVICE_CIDR;
  const cidr = parseCidr(cidrText, true);
  if (!cidr || cidr.family !== 4) throw new Error(`service CIDR ${JSON.stringify(cidrText)} is not an IPv4 CIDR`);
  const [npLo, npHi] = opts.nodePortRange ?? DEFAULT_NODE_PORT_RANGE;
  const spec = c.obj(d.spec, "spec") ?? c.fail("spec", d.spec, "is required");
  const type = c.oneOf(spec.type, "spec.type", ["ClusterIP", "NodePort"] as const, "ClusterIP");

  let clusterIP: string | undefined;
  const ips = c.list(spec.clusterIPs, "spec.clusterIPs");
  if (ips.length > 1) c.fail("spec.clusterIPs", ips, "only one (IPv4) ClusterIP is supported");
  if (spec.clusterIP !== undefined && spec.clusterIP !== "" && ips.length === 1 && ips[0] !== spec.clusterIP) {
    c.fail("spec.clusterIPs", ips, `must start with spec.clusterIP ${JSON.stringify(spec.clusterIP)}`);
  }
  const ipText = spec.clusterIP !== undefined && spec.clusterIP !== "" ? spec.clusterIP : ips[0];
  const ipField = spec.clusterIP !== undefined && spec.clusterIP !== "" ? "spec.clusterIP" : "spec.clusterIPs[0]";
  if (ipText === "None") {
    if (type !== "ClusterIP") c.fail(ipField, ipText, "a headless Service (None) must be of type ClusterIP");
    clusterIP = "None";
  } else if (ipText !== undefined && ipText !== "") {
    const ip = typeof ipText === "string" ? parseIp(ipText) : undefined;
    if (!ip || ip.family !== 4) c.fail(ipField, ipText, "must be an IPv4 address");
    if (!ip || !cidrContains(cidr, ip) || ipEqual(ip, cidrFirst(cidr)) || ipEqual(ip, cidrLast(cidr))) {
      c.fail(ipField, ipText, `is not a usable address of the service CIDR ${cidrText}`);
    }
    clusterIP = ipText as string;
  }

  const rawPorts = c.list(spec.ports, "spec.ports");
  if (rawPorts.length === 0 && clusterIP !== "None") c.fail("spec.ports", spec.ports, "needs at least one port");
  const ports: ServicePort[] = rawPorts.map((p, i) => {
    const f = `spec.ports[${i}]`;
    const o = c.obj(p, f) ?? c.fail(f, p, "must be an object");
    const name = o.name ?? "";
    if (rawPorts.length > 1 && !isPortName(name)) c.fail(`${f}.name`, o.name, "is required when there are several ports: a lower-case name of at most 15 characters");
    if (name !== "" && !isPortName(name)) c.fail(`${f}.name`, name, "must be a lower-case name of at most 15 characters");
    const protocol = c.oneOf(o.protocol, `${f}.protocol`, PROTOCOLS, "TCP");
    if (!isPort(o.port)) c.fail(`${f}.port`, o.port, "must be 1..65535");
    let targetPort: number | string = o.port as number;
    if (o.targetPort !== undefined) {
      if (typeof o.targetPort === "number") {
        if (!isPort(o.targetPort)) c.fail(`${f}.targetPort`, o.targetPort, "must be 1..65535");
      } else if (!isPortName(o.targetPort)) {
        c.fail(`${f}.targetPort`, o.targetPort, "must be a port number 1..65535 or a container port name");
      }
      targetPort = o.targetPort as number | string;
    }
    const out: ServicePort = { name: name as string, protocol, port: o.port as number, targetPort };
    if (o.nodePort !== undefined && o.nodePort !== 0) {
      if (type !== "NodePort") c.fail(`${f}.nodePort`, o.nodePort, "may only be set on a Service of type NodePort");
      if (typeof o.nodePort !== "number" || !Number.isInteger(o.nodePort) || o.nodePort < npLo || o.nodePort > npHi) {
        c.fail(`${f}.nodePort`, o.nodePort, `must be in the NodePort range ${npLo}-${npHi}`);
      }
      out.nodePort = o.nodePort as number;
    }
    return out;
  });
  const seen = new Map<string, number>();
  ports.forEach((p, i) => {
    if (seen.has(p.name)) c.fail(`spec.ports[${i}].name`, p.name, `is already the name of spec.ports[${seen.get(p.name)}]`);
    seen.set(p.name, i);
    const same = ports.findIndex((q) => q.port === p.port && q.protocol === p.protocol);
    if (same < i) c.fail(`spec.ports[${i}].port`, p.port, `${p.protocol} port is already spec.ports[${same}]`);
    const np = p.nodePort === undefined ? -1 : ports.findIndex((q) => q.nodePort === p.nodePort && q.protocol === p.protocol);
    if (np >= 0 && np < i) c.fail(`spec.ports[${i}].nodePort`, p.nodePort, `${p.protocol} nodePort is already spec.ports[${np}]`);
  });

  let selector: Record<string, string> | undefined;
  if (spec.selector !== undefined && spec.selector !== null) {
    selector = {};
    for (const [k, v] of Object.entries(c.obj(spec.selector, "spec.selector") ?? {})) {
      if (typeof v !== "string") c.fail(`spec.selector.${k}`, v, "must be a string");
      selector[k] = v as string;
    }
  }
  const sessionAffinity = c.oneOf(spec.sessionAffinity, "spec.sessionAffinity", ["None", "ClientIP"] as const, "None");
  const cfg = c.obj(spec.sessionAffinityConfig, "spec.sessionAffinityConfig");
  const timeout = c.obj(cfg?.clientIP, "spec.sessionAffinityConfig.clientIP")?.timeoutSeconds ?? DEFAULT_AFFINITY_TIMEOUT;
  if (typeof timeout !== "number" || !Number.isInteger(timeout) || timeout < 1 || timeout > 86400) {
    c.fail("spec.sessionAffinityConfig.clientIP.timeoutSeconds", timeout, "must be 1..86400");
  }
  if (cfg !== undefined && sessionAffinity !== "ClientIP") c.fail("spec.sessionAffinityConfig", cfg, "needs sessionAffinity ClientIP");
  const tp = ["Cluster", "Local"] as const;
  const externalTrafficPolicy: TrafficPolicy = c.oneOf(spec.externalTrafficPolicy, "spec.externalTrafficPolicy", tp, "Cluster");
  if (spec.externalTrafficPolicy !== undefined && type !== "NodePort") {
    c.fail("spec.externalTrafficPolicy", spec.externalTrafficPolicy, "may only be set on a Service of type NodePort");
  }
  const internalTrafficPolicy: TrafficPolicy = c.oneOf(spec.internalTrafficPolicy, "spec.internalTrafficPolicy", tp, "Cluster");
  return {
    namespace, name, type, ...(clusterIP !== undefined ? { clusterIP } : {}), ports, ...(selector ? { selector } : {}),
    sessionAffinity, affinityTimeoutSeconds: timeout as number, externalTrafficPolicy, internalTrafficPolicy,
  };
}

const bool = (c: Ctx, v: unknown, field: string, dflt: boolean): boolean =>
  v === undefined || v === null ? dflt : typeof v === "boolean" ? v : c.fail(field, v, "must be true or false");

/** A discovery.k8s.io/v1 EndpointSlice of addressType IPv4, labelled with its Service's name. */
export function parseEndpointSlice(doc: unknown): EndpointSlice {
  const { c, d, name, namespace, labels } = header(doc, "EndpointSlice", "discovery.k8s.io/v1", ENDPOINT_SLICE_SHAPE);
  const service = labels[SERVICE_NAME_LABEL];
  if (service === undefined || !DNS_LABEL.test(service)) c.fail(`metadata.labels.${SERVICE_NAME_LABEL}`, service, "must name the Service (a DNS label)");
  if (d.addressType !== "IPv4") c.fail("addressType", d.addressType, "must be IPv4 (the only family Trellis' services support)");
  const ports: SlicePort[] = c.list(d.ports, "ports").map((p, i) => {
    const o = c.obj(p, `ports[${i}]`) ?? c.fail(`ports[${i}]`, p, "must be an object");
    const pname = o.name ?? "";
    if (pname !== "" && !isPortName(pname)) c.fail(`ports[${i}].name`, pname, "must be a lower-case name of at most 15 characters");
    if (!isPort(o.port)) c.fail(`ports[${i}].port`, o.port, "must be 1..65535");
    return { name: pname as string, protocol: c.oneOf(o.protocol, `ports[${i}].protocol`, PROTOCOLS, "TCP") as Protocol, port: o.port as number };
  });
  ports.forEach((p, i) => {
    const j = ports.findIndex((q) => q.name === p.name);
    if (j < i) c.fail(`ports[${i}].name`, p.name, `is already the name of ports[${j}]`);
  });
  const endpoints: SliceEndpoint[] = c.list(d.endpoints, "endpoints").map((e, i) => {
    const f = `endpoints[${i}]`;
    const o = c.obj(e, f) ?? c.fail(f, e, "must be an object");
    const addresses = c.list(o.addresses, `${f}.addresses`);
    if (addresses.length === 0) c.fail(`${f}.addresses`, o.addresses, "needs at least one address");
    addresses.forEach((a, j) => {
      const ip = typeof a === "string" ? parseIp(a) : undefined;
      if (!ip || ip.family !== 4) c.fail(`${f}.addresses[${j}]`, a, "must be an IPv4 address");
    });
    const cond = c.obj(o.conditions, `${f}.conditions`) ?? {};
    const terminating = bool(c, cond.terminating, `${f}.conditions.terminating`, false);
    // Kubernetes: an absent ready means ready (unless terminating); absent serving means as ready.
    const ready = bool(c, cond.ready, `${f}.conditions.ready`, !terminating);
    const serving = bool(c, cond.serving, `${f}.conditions.serving`, ready);
    const out: SliceEndpoint = { addresses: addresses as string[], ready, serving, terminating };
    if (o.nodeName !== undefined) {
      if (typeof o.nodeName !== "string" || !DNS_SUBDOMAIN.test(o.nodeName)) c.fail(`${f}.nodeName`, o.nodeName, "must be a node name");
      out.nodeName = o.nodeName as string;
    }
    const ref = c.obj(o.targetRef, `${f}.targetRef`);
    if (ref && ref.kind === "Pod" && typeof ref.name === "string") out.pod = `${String(ref.namespace ?? namespace)}/${ref.name}`;
    return out;
  });
  return { namespace, name, service: service as string, addressType: "IPv4", endpoints, ports };
}
