// Reading the objects users write (Kubernetes-style YAML or JSON, several documents per file) into
// the policy model, with the validation the Kubernetes API server applies. Pure (text in). An
// invalid object is refused with the object, the field path and the value named; a file with any
// invalid document yields no objects at all, so nothing partial is ever stored.
import { parseYamlDocuments } from "../model/input.js";
import { cidrCovers, parseCidr } from "../model/ip.js";
import { findUnknownFields, leaf, list, map, obj, unknownFieldMessage, type Shape } from "../model/strict.js";
import {
  ACTIONS, PROTOCOLS, type Action, type ContainerPort, type IPBlock, type LabelSelector, type LabelSelectorRequirement, type Namespace,
  type NetworkPolicy, type NetworkPolicyRule, type OrderedPolicy, type OrderedRule, type Pod, type PolicyPeer, type PolicyPort, type Protocol,
} from "./model.js";
import type { EndpointSlice, Service } from "../services/model.js";
import { parseEndpointSlice, parseService } from "../services/parse.js";

export class PolicyError extends Error {
  constructor(readonly object: string, readonly field: string, readonly value: unknown, why: string, showValue = true) {
    super(`${object}: ${field}${showValue ? ` ${JSON.stringify(value)}` : ""}: ${why}`);
    this.name = "PolicyError";
  }
}

/** What to do with a field no shape knows: refuse the object (what users write) or tell and go on (what is stored). */
export interface ParseOptions {
  /** Called for each unknown field instead of refusing the object: stored objects written by an older version stay in force. */
  onUnknownField?(object: string, message: string): void;
}

export type Parsed = (
  | { kind: "Namespace"; object: Namespace }
  | { kind: "Pod"; object: Pod }
  | { kind: "NetworkPolicy"; object: NetworkPolicy }
  | { kind: "TrellisPolicy" | "GlobalTrellisPolicy"; object: OrderedPolicy }
  | { kind: "Service"; object: Service }
  | { kind: "EndpointSlice"; object: EndpointSlice }
) & {
  /** The document as written (stored as is, so what `get` shows is what the user applied). */
  raw?: Record<string, unknown>;
};

export const KINDS: Record<string, string> = {
  Namespace: "v1",
  Pod: "v1",
  NetworkPolicy: "networking.k8s.io/v1",
  TrellisPolicy: "trellis.dev/v1",
  GlobalTrellisPolicy: "trellis.dev/v1",
};

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const PORT_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

/** Validation context for one object: builds errors that name the object and field. */
class Ctx {
  constructor(readonly object: string) {}
  fail(field: string, value: unknown, why: string): never {
    throw new PolicyError(this.object, field, value, why);
  }
  obj(v: unknown, field: string, optional = false): Obj | undefined {
    if (v === undefined || v === null) return optional ? undefined : this.fail(field, v, "is required");
    return isObj(v) ? v : this.fail(field, v, "must be an object");
  }
  list(v: unknown, field: string): unknown[] | undefined {
    if (v === undefined || v === null) return undefined;
    return Array.isArray(v) ? v : this.fail(field, v, "must be a list");
  }
}

const isLabelKey = (k: string): boolean => {
  const name = k.includes("/") ? k.slice(k.indexOf("/") + 1) : k;
  const prefix = k.includes("/") ? k.slice(0, k.indexOf("/")) : "";
  return LABEL_NAME.test(name) && name.length <= 63 && (!prefix || (DNS_SUBDOMAIN.test(prefix) && prefix.length <= 253));
};
const isLabelValue = (v: unknown): v is string => typeof v === "string" && v.length <= 63 && LABEL_VALUE.test(v);

export function validateLabels(c: Ctx, v: unknown, field: string): Record<string, string> {
  const o = c.obj(v, field, true) ?? {};
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(o)) {
    if (!isLabelKey(k)) c.fail(`${field} key`, k, "is not a valid label key");
    if (!isLabelValue(val)) c.fail(`${field}.${k}`, val, "is not a valid label value");
    out[k] = val;
  }
  return out;
}

function validateSelector(c: Ctx, v: unknown, field: string): LabelSelector {
  const o = c.obj(v, field)!;
  const sel: LabelSelector = {};
  if (o.matchLabels !== undefined) sel.matchLabels = validateLabels(c, o.matchLabels, `${field}.matchLabels`);
  const exprs = c.list(o.matchExpressions, `${field}.matchExpressions`);
  if (exprs) {
    sel.matchExpressions = exprs.map((e, i): LabelSelectorRequirement => {
      const f = `${field}.matchExpressions[${i}]`;
      const x = c.obj(e, f)!;
      if (typeof x.key !== "string" || !isLabelKey(x.key)) c.fail(`${f}.key`, x.key, "must be a valid label key");
      const op = x.operator;
      if (op !== "In" && op !== "NotIn" && op !== "Exists" && op !== "DoesNotExist") {
        c.fail(`${f}.operator`, op, "must be In, NotIn, Exists or DoesNotExist");
      }
      const values = c.list(x.values, `${f}.values`);
      if ((op === "In" || op === "NotIn") && (!values || values.length === 0)) c.fail(`${f}.values`, x.values, `must be non-empty for ${op}`);
      if ((op === "Exists" || op === "DoesNotExist") && values && values.length > 0) c.fail(`${f}.values`, values, `must be empty for ${op}`);
      values?.forEach((s, j) => isLabelValue(s) || c.fail(`${f}.values[${j}]`, s, "is not a valid label value"));
      return { key: x.key as string, operator: op, ...(values ? { values: values as string[] } : {}) };
    });
  }
  for (const k of Object.keys(o)) if (k !== "matchLabels" && k !== "matchExpressions") c.fail(`${field}.${k}`, o[k], "unknown field");
  return sel;
}

function validateIpBlock(c: Ctx, v: unknown, field: string): IPBlock {
  const o = c.obj(v, field)!;
  const cidr = typeof o.cidr === "string" ? parseCidr(o.cidr) : undefined;
  if (!cidr) c.fail(`${field}.cidr`, o.cidr, "must be a CIDR");
  const out: IPBlock = { cidr: o.cidr as string };
  const except = c.list(o.except, `${field}.except`);
  if (except) {
    out.except = except.map((e, i) => {
      const x = typeof e === "string" ? parseCidr(e) : undefined;
      if (!x) c.fail(`${field}.except[${i}]`, e, "must be a CIDR");
      if (!cidrCovers(cidr!, x!) || x!.prefix <= cidr!.prefix) c.fail(`${field}.except[${i}]`, e, `must be strictly inside ${o.cidr}`);
      return e as string;
    });
  }
  return out;
}

function validatePeers(c: Ctx, v: unknown, field: string): PolicyPeer[] | undefined {
  const list = c.list(v, field);
  if (!list) return undefined;
  return list.map((p, i) => {
    const f = `${field}[${i}]`;
    const o = c.obj(p, f)!;
    const peer: PolicyPeer = {};
    if (o.podSelector !== undefined) peer.podSelector = validateSelector(c, o.podSelector, `${f}.podSelector`);
    if (o.namespaceSelector !== undefined) peer.namespaceSelector = validateSelector(c, o.namespaceSelector, `${f}.namespaceSelector`);
    if (o.ipBlock !== undefined) peer.ipBlock = validateIpBlock(c, o.ipBlock, `${f}.ipBlock`);
    if (!peer.podSelector && !peer.namespaceSelector && !peer.ipBlock) c.fail(f, p, "needs podSelector, namespaceSelector or ipBlock");
    if (peer.ipBlock && (peer.podSelector || peer.namespaceSelector)) c.fail(f, p, "ipBlock cannot be combined with selectors");
    return peer;
  });
}

function validatePorts(c: Ctx, v: unknown, field: string): PolicyPort[] | undefined {
  const list = c.list(v, field);
  if (!list) return undefined;
  return list.map((p, i) => {
    const f = `${field}[${i}]`;
    const o = c.obj(p, f)!;
    const protocol = (o.protocol ?? "TCP") as Protocol;
    if (!PROTOCOLS.includes(protocol)) c.fail(`${f}.protocol`, o.protocol, "must be TCP, UDP or SCTP");
    const out: PolicyPort = { protocol };
    if (o.port !== undefined) {
      if (typeof o.port === "number") {
        if (!Number.isInteger(o.port) || o.port < 1 || o.port > 65535) c.fail(`${f}.port`, o.port, "must be 1..65535");
      } else if (typeof o.port !== "string" || !PORT_NAME.test(o.port) || o.port.length > 15 || !/[a-z]/.test(o.port)) {
        c.fail(`${f}.port`, o.port, "must be a port number or a port name (lower-case, at most 15 characters)");
      }
      out.port = o.port as number | string;
    }
    if (o.endPort !== undefined) {
      if (typeof out.port !== "number") c.fail(`${f}.endPort`, o.endPort, "needs a numeric port");
      if (typeof o.endPort !== "number" || !Number.isInteger(o.endPort) || o.endPort < (out.port as number) || o.endPort > 65535) {
        c.fail(`${f}.endPort`, o.endPort, `must be ${out.port}..65535`);
      }
      out.endPort = o.endPort as number;
    }
    return out;
  });
}

// The fields each kind may have (strict input, model/strict.ts). Kubernetes kinds carry every
// field of their upstream schema down to the level Trellis reads; below that a field is a leaf
// (a Pod's `affinity` is not Trellis' business, so its inside is not checked here).
const OBJECT_META = obj({
  name: leaf, generateName: leaf, namespace: leaf, uid: leaf, resourceVersion: leaf, generation: leaf, creationTimestamp: leaf,
  deletionTimestamp: leaf, deletionGracePeriodSeconds: leaf, labels: map(), annotations: map(), ownerReferences: leaf,
  finalizers: leaf, managedFields: leaf, selfLink: leaf,
});
const SELECTOR = obj({
  matchLabels: map(),
  matchExpressions: list(obj({ key: leaf, operator: leaf, values: leaf })),
});
const PEER = obj({ podSelector: SELECTOR, namespaceSelector: SELECTOR, ipBlock: obj({ cidr: leaf, except: leaf }) });
const PORT = obj({ protocol: leaf, port: leaf, endPort: leaf });
const CONTAINER = obj({
  name: leaf, image: leaf, command: leaf, args: leaf, workingDir: leaf, ports: list(obj({ name: leaf, containerPort: leaf, protocol: leaf, hostIP: leaf, hostPort: leaf })),
  envFrom: leaf, env: leaf, resources: leaf, resizePolicy: leaf, restartPolicy: leaf, volumeMounts: leaf, volumeDevices: leaf,
  livenessProbe: leaf, readinessProbe: leaf, startupProbe: leaf, lifecycle: leaf, terminationMessagePath: leaf,
  terminationMessagePolicy: leaf, imagePullPolicy: leaf, securityContext: leaf, stdin: leaf, stdinOnce: leaf, tty: leaf,
});
const POD_SPEC = obj({
  containers: list(CONTAINER), initContainers: list(CONTAINER), ephemeralContainers: leaf, volumes: leaf, restartPolicy: leaf,
  terminationGracePeriodSeconds: leaf, activeDeadlineSeconds: leaf, dnsPolicy: leaf, dnsConfig: leaf, nodeSelector: leaf,
  serviceAccountName: leaf, serviceAccount: leaf, automountServiceAccountToken: leaf, nodeName: leaf, hostNetwork: leaf,
  hostPID: leaf, hostIPC: leaf, hostUsers: leaf, shareProcessNamespace: leaf, securityContext: leaf, imagePullSecrets: leaf,
  hostname: leaf, subdomain: leaf, setHostnameAsFQDN: leaf, affinity: leaf, schedulerName: leaf, tolerations: leaf,
  hostAliases: leaf, priorityClassName: leaf, priority: leaf, preemptionPolicy: leaf, readinessGates: leaf,
  runtimeClassName: leaf, enableServiceLinks: leaf, overhead: leaf, topologySpreadConstraints: leaf, os: leaf,
  schedulingGates: leaf, resourceClaims: leaf, resources: leaf,
});
const ORDERED_RULE = (peers: "from" | "to"): Shape => obj({ action: leaf, [peers]: list(PEER), ports: list(PORT) });
const ORDERED_SPEC = obj({
  order: leaf, podSelector: SELECTOR, namespaceSelector: SELECTOR, types: leaf, policyTypes: leaf,
  ingress: list(ORDERED_RULE("from")), egress: list(ORDERED_RULE("to")),
});
const TOP = (spec: Shape): Record<string, Shape> => ({ apiVersion: leaf, kind: leaf, metadata: OBJECT_META, spec, status: leaf });

/** Every field each kind may have: what `apply` accepts and nothing more. */
export const SHAPES: Readonly<Record<string, Shape>> = {
  Namespace: obj(TOP(obj({ finalizers: leaf }))),
  Pod: obj(TOP(POD_SPEC)),
  NetworkPolicy: obj(TOP(obj({
    podSelector: SELECTOR, policyTypes: leaf,
    ingress: list(obj({ from: list(PEER), ports: list(PORT) })),
    egress: list(obj({ to: list(PEER), ports: list(PORT) })),
  }))),
  TrellisPolicy: obj(TOP(ORDERED_SPEC)),
  GlobalTrellisPolicy: obj(TOP(ORDERED_SPEC)),
};

const NAMESPACED: Record<string, boolean> = { Namespace: false, Pod: true, NetworkPolicy: true, TrellisPolicy: true, GlobalTrellisPolicy: false };

/** How errors name an object: "NetworkPolicy prod/web", "Namespace prod". */
function objectLabel(doc: Obj, kind: string): string {
  const m = isObj(doc.metadata) ? doc.metadata : {};
  const ns = m.namespace ?? "default";
  return `${kind} ${NAMESPACED[kind] ? `${String(ns)}/` : ""}${String(m.name ?? "?")}`;
}

function meta(doc: Obj, kind: string, namespaced: boolean): { name: string; namespace: string; labels: Record<string, string>; c: Ctx } {
  const m = isObj(doc.metadata) ? doc.metadata : {};
  const name = m.name;
  const nsRaw = m.namespace ?? (namespaced ? "default" : undefined);
  const c = new Ctx(objectLabel(doc, kind));
  if (typeof name !== "string" || !DNS_SUBDOMAIN.test(name) || name.length > 253) c.fail("metadata.name", name, "must be a lower-case DNS name");
  // A namespace name is a DNS label (pods refer to it in metadata.namespace).
  if (kind === "Namespace" && (!DNS_LABEL.test(name as string) || (name as string).length > 63)) c.fail("metadata.name", name, "must be a lower-case DNS label");
  if (namespaced && (typeof nsRaw !== "string" || !DNS_LABEL.test(nsRaw) || nsRaw.length > 63)) {
    c.fail("metadata.namespace", nsRaw, "must be a lower-case DNS label");
  }
  const labels = validateLabels(c, m.labels, "metadata.labels");
  return { name: name as string, namespace: (nsRaw as string) ?? "", labels, c };
}

type PolicyType = "Ingress" | "Egress";

function typeList(c: Ctx, v: unknown, field: string): PolicyType[] | undefined {
  const list = c.list(v, field);
  if (!list || list.length === 0) return undefined;
  const out: PolicyType[] = [];
  for (const t of list) {
    if (t !== "Ingress" && t !== "Egress") c.fail(field, t, "must be Ingress or Egress");
    if (!out.includes(t)) out.push(t);
  }
  return out;
}

const hasRules = (spec: Obj, field: "ingress" | "egress"): boolean => Array.isArray(spec[field]) && spec[field].length > 0;

/** NetworkPolicy: an absent or empty list is defaulted as Kubernetes does — Ingress, plus Egress when there are egress rules. */
function networkPolicyTypes(c: Ctx, spec: Obj): PolicyType[] {
  return typeList(c, spec.policyTypes, "spec.policyTypes") ?? (hasRules(spec, "egress") ? ["Ingress", "Egress"] : ["Ingress"]);
}

/**
 * TrellisPolicy / GlobalTrellisPolicy: `types` (Calico's name; `policyTypes` is accepted too, not
 * both). Absent, it is derived as Calico does: egress rules only → Egress; ingress rules, or no
 * rules at all → Ingress; both → Ingress, Egress. So an egress-only policy never touches what
 * comes in to the pods it selects.
 */
function orderedPolicyTypes(c: Ctx, spec: Obj): PolicyType[] {
  if (spec.types !== undefined && spec.policyTypes !== undefined) {
    c.fail("spec.policyTypes", spec.policyTypes, "give either types or policyTypes (the same field), not both");
  }
  const given = spec.types !== undefined ? typeList(c, spec.types, "spec.types") : typeList(c, spec.policyTypes, "spec.policyTypes");
  if (given) return given;
  const ingress = hasRules(spec, "ingress");
  const egress = hasRules(spec, "egress");
  if (egress && !ingress) return ["Egress"];
  return egress ? ["Ingress", "Egress"] : ["Ingress"];
}

/** Kinds validated by the services parser (src/services/parse.ts), strictly, with its own shapes. */
export const SERVICE_KINDS: Record<string, string> = { Service: "v1", EndpointSlice: "discovery.k8s.io/v1" };

function parseOne(doc: Obj, opts: ParseOptions): Parsed {
  const kind = doc.kind;
  if (kind === "Service") return { kind, object: parseService(doc) };
  if (kind === "EndpointSlice") return { kind, object: parseEndpointSlice(doc) };
  if (typeof kind !== "string" || !(kind in KINDS)) {
    throw new PolicyError("document", "kind", kind, `must be one of ${[...Object.keys(KINDS), ...Object.keys(SERVICE_KINDS)].join(", ")}`);
  }
  if (doc.apiVersion !== KINDS[kind]) throw new PolicyError(kind, "apiVersion", doc.apiVersion, `must be ${KINDS[kind]}`);
  for (const u of findUnknownFields(doc, SHAPES[kind]!)) {
    const object = objectLabel(doc, kind);
    if (!opts.onUnknownField) throw new PolicyError(object, u.path, undefined, unknownFieldMessage(u).slice(u.path.length + 2), false);
    opts.onUnknownField(object, unknownFieldMessage(u));
  }
  switch (kind) {
    case "Namespace": {
      const m = meta(doc, kind, false);
      return { kind, object: { name: m.name, labels: m.labels } };
    }
    case "Pod": {
      const m = meta(doc, kind, true);
      const spec = m.c.obj(doc.spec, "spec", true) ?? {};
      const ports: ContainerPort[] = [];
      (m.c.list(spec.containers, "spec.containers") ?? []).forEach((ctr, i) => {
        const co = m.c.obj(ctr, `spec.containers[${i}]`)!;
        (m.c.list(co.ports, `spec.containers[${i}].ports`) ?? []).forEach((p, j) => {
          const f = `spec.containers[${i}].ports[${j}]`;
          const po = m.c.obj(p, f)!;
          const n = po.containerPort;
          if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > 65535) m.c.fail(`${f}.containerPort`, n, "must be 1..65535");
          const protocol = (po.protocol ?? "TCP") as Protocol;
          if (!PROTOCOLS.includes(protocol)) m.c.fail(`${f}.protocol`, po.protocol, "must be TCP, UDP or SCTP");
          const cp: ContainerPort = { containerPort: n as number, protocol };
          if (po.name !== undefined) {
            if (typeof po.name !== "string" || !PORT_NAME.test(po.name) || po.name.length > 15 || !/[a-z]/.test(po.name)) {
              m.c.fail(`${f}.name`, po.name, "must be a port name (lower-case, at most 15 characters)");
            }
            if (ports.some((x) => x.name === po.name)) m.c.fail(`${f}.name`, po.name, "is used twice in this pod");
            cp.name = po.name as string;
          }
          ports.push(cp);
        });
      });
      return { kind, object: { namespace: m.namespace, name: m.name, labels: m.labels, ports } };
    }
    case "NetworkPolicy": {
      const m = meta(doc, kind, true);
      const spec = m.c.obj(doc.spec, "spec")!;
      const rules = (field: "ingress" | "egress", peerKey: "from" | "to"): NetworkPolicyRule[] =>
        (m.c.list(spec[field], `spec.${field}`) ?? []).map((r, i) => {
          const o = m.c.obj(r, `spec.${field}[${i}]`)!;
          return { peers: validatePeers(m.c, o[peerKey], `spec.${field}[${i}].${peerKey}`), ports: validatePorts(m.c, o.ports, `spec.${field}[${i}].ports`) };
        });
      const np: NetworkPolicy = {
        kind, namespace: m.namespace, name: m.name,
        podSelector: validateSelector(m.c, spec.podSelector, "spec.podSelector"),
        policyTypes: networkPolicyTypes(m.c, spec),
        ingress: rules("ingress", "from"),
        egress: rules("egress", "to"),
      };
      return { kind, object: np };
    }
    case "TrellisPolicy":
    case "GlobalTrellisPolicy": {
      const global = kind === "GlobalTrellisPolicy";
      const m = meta(doc, kind, !global);
      const spec = m.c.obj(doc.spec, "spec")!;
      const order = spec.order ?? 1000;
      if (typeof order !== "number" || !Number.isFinite(order)) m.c.fail("spec.order", spec.order, "must be a number");
      const rules = (field: "ingress" | "egress", peerKey: "from" | "to"): OrderedRule[] =>
        (m.c.list(spec[field], `spec.${field}`) ?? []).map((r, i) => {
          const f = `spec.${field}[${i}]`;
          const o = m.c.obj(r, f)!;
          if (!ACTIONS.includes(o.action as Action)) m.c.fail(`${f}.action`, o.action, `must be one of ${ACTIONS.join(", ")}`);
          return { action: o.action as Action, peers: validatePeers(m.c, o[peerKey], `${f}.${peerKey}`), ports: validatePorts(m.c, o.ports, `${f}.ports`) };
        });
      const op: OrderedPolicy = {
        kind, name: m.name, order: order as number,
        podSelector: spec.podSelector === undefined ? {} : validateSelector(m.c, spec.podSelector, "spec.podSelector"),
        policyTypes: orderedPolicyTypes(m.c, spec),
        ingress: rules("ingress", "from"),
        egress: rules("egress", "to"),
      };
      if (!global) op.namespace = m.namespace;
      if (spec.namespaceSelector !== undefined) {
        if (!global) m.c.fail("spec.namespaceSelector", spec.namespaceSelector, "only a GlobalTrellisPolicy selects across namespaces");
        op.namespaceSelector = validateSelector(m.c, spec.namespaceSelector, "spec.namespaceSelector");
      }
      return { kind, object: op };
    }
  }
  throw new PolicyError("document", "kind", kind, "unsupported");
}

/** Validates one object already decoded (e.g. a stored JSON value): the fast path for the agent. */
export function parseObject(doc: unknown, source = "input", opts: ParseOptions = {}): Parsed {
  if (!isObj(doc)) throw new PolicyError(source, "document", doc, "must be an object");
  return { ...parseOne(doc, opts), raw: doc };
}

/** Parses every document of a YAML or JSON text (`---` separated, or a `kind: List`). */
export function parseDocuments(text: string, source = "input", opts: ParseOptions = {}): Parsed[] {
  const docs: unknown[] = [];
  // One JSON object (what the datastore holds) needs no YAML parser, which is far slower.
  if (text.startsWith("{")) {
    try {
      const v = JSON.parse(text) as unknown;
      if (isObj(v) && v.kind !== "List") return [parseObject(v, source, opts)];
    } catch {
      // not JSON after all: the YAML parser reports it
    }
  }
  for (const v of parseYamlDocuments(text, source)) {
    if (isObj(v) && v.kind === "List" && Array.isArray(v.items)) docs.push(...v.items);
    else docs.push(v);
  }
  return docs.map((d, i) => {
    if (!isObj(d)) throw new PolicyError(`${source} document ${i + 1}`, "document", d, "must be an object");
    return { ...parseOne(d, opts), raw: d };
  });
}

/** Datastore key of an object. */
export function objectKey(p: Parsed): string {
  switch (p.kind) {
    case "Namespace":
      return `/trellis/namespaces/${p.object.name}`;
    case "Pod":
      return `/trellis/pods/${p.object.namespace}/${p.object.name}`;
    case "NetworkPolicy":
      return `/trellis/policies/NetworkPolicy/${p.object.namespace}/${p.object.name}`;
    case "TrellisPolicy":
      return `/trellis/policies/TrellisPolicy/${p.object.namespace}/${p.object.name}`;
    case "GlobalTrellisPolicy":
      return `/trellis/policies/GlobalTrellisPolicy/${p.object.name}`;
    case "Service":
      return `/trellis/services/${p.object.namespace}/${p.object.name}`;
    case "EndpointSlice":
      return `/trellis/endpointslices/${p.object.namespace}/${p.object.name}`;
  }
}
