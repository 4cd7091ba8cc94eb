// `policy explain --to-service`: where a connection to a Service port may land, and the policy
// verdict for each landing place. Policy sees the packet after the Service's DNAT, so each
// endpoint is evaluated with its own address and port (the target port), not the ClusterIP and
// the service port. The endpoints are the services compiler's own choice (usableEndpoints): the
// ready ones, else the serving terminating ones; with internalTrafficPolicy Local only those on the
// source's node. `lab check` asks the same question for each Service it probes. Pure.
import { usableEndpoints } from "../services/compile.js";
import type { ServicesInput } from "../services/controller.js";
import type { EndpointSlice, Service, ServicePort } from "../services/model.js";
import { evaluate, PolicyIndex, type DirectionVerdict, type Verdict } from "./evaluate.js";
import { PROTOCOLS, type PolicyModel, type Protocol } from "./model.js";

export interface ServiceEndpointVerdict {
  ip: string;
  /** The endpoint's port: what policy sees. */
  port: number;
  pod?: string;
  node?: string;
  allowed: boolean;
  egress?: DirectionVerdict;
  ingress?: DirectionVerdict;
}

export interface NotChosenEndpoint {
  ip: string;
  port: number;
  pod?: string;
  node?: string;
  why: string;
}

export interface ServiceExplanation {
  /** "namespace/name". */
  service: string;
  clusterIP: string;
  servicePort: { name: string; port: number; protocol: Protocol; targetPort: number | string };
  src: string;
  /** The source pod's node, when the source is a pod. */
  srcNode?: string;
  internalTrafficPolicy: Service["internalTrafficPolicy"];
  /**
   * endpoints: the connection lands on one of `endpoints` (each with its verdict);
   * rejected: no usable endpoint at all, refused at once (TCP reset, ICMP port unreachable);
   * dropped: internalTrafficPolicy Local and none on the source's node.
   */
  outcome: "endpoints" | "rejected" | "dropped";
  endpoints: ServiceEndpointVerdict[];
  /** Endpoints of the port that are never chosen from this source, and why. */
  notChosen: NotChosenEndpoint[];
  /** Some endpoint would accept it. */
  allowed: boolean;
}

/** "ns/name" or "name" (namespace default). */
export function serviceRef(ref: string): { namespace: string; name: string } {
  const [namespace, name] = ref.includes("/") ? ref.split("/", 2) as [string, string] : ["default", ref];
  if (!namespace || !name) throw new Error(`--to-service ${JSON.stringify(ref)}: use NAMESPACE/NAME`);
  return { namespace, name };
}

const portText = (p: ServicePort): string => `${p.name ? `${p.name} ` : ""}${p.port}/${p.protocol}`;

/** The Service named `ref`, or an error naming it and the Services of its namespace. */
export function findService(input: ServicesInput, ref: string): Service {
  const { namespace, name } = serviceRef(ref);
  const svc = input.services.find((s) => s.namespace === namespace && s.name === name);
  if (svc) return svc;
  const others = input.services.filter((s) => s.namespace === namespace).map((s) => s.name);
  throw new Error(`--to-service ${ref}: no Service ${namespace}/${name} with a ClusterIP ` +
    `(${others.length ? `Services in ${namespace}: ${others.join(", ")}` : `no Service in namespace ${namespace}`}; headless Services have no ClusterIP to explain)`);
}

/**
 * The service port `text` names: a number (`80`, `80/TCP`) or a port name (`http`); `protocol`
 * narrows it. A number without a protocol is the port of that number when there is one, else its
 * TCP one. An error names spec.ports, the value asked and the ports the Service has.
 */
export function findServicePort(svc: Service, text: string, protocol?: string): ServicePort {
  const m = /^(\d{1,5})(?:\/([A-Za-z]+))?$/.exec(text);
  const suffix = m?.[2]?.toUpperCase();
  const proto = protocol?.toUpperCase();
  for (const p of [suffix, proto]) {
    if (p !== undefined && !(PROTOCOLS as readonly string[]).includes(p)) throw new Error(`--protocol ${JSON.stringify(p)}: must be one of ${PROTOCOLS.join(", ")}`);
  }
  if (suffix && proto && suffix !== proto) throw new Error(`--port ${text} and --protocol ${protocol} disagree: give the protocol once`);
  const want = suffix ?? proto;
  const candidates = svc.ports.filter((p) => (m ? p.port === Number(m[1]) : p.name === text) && (want === undefined || p.protocol === want));
  const chosen = candidates.length === 1 ? candidates[0] : candidates.find((p) => p.protocol === "TCP");
  if (chosen) return chosen;
  throw new Error(`Service ${svc.namespace}/${svc.name}: spec.ports has no port ${JSON.stringify(`${text}${want && !suffix ? `/${want}` : ""}`)} ` +
    `(it has ${svc.ports.map(portText).join(", ") || "no ports"})`);
}

/** The endpoint's pod, from the slice's targetRef, else from Trellis' endpoint records. */
function podOf(model: PolicyModel, slices: readonly EndpointSlice[], svc: Service, ip: string): string | undefined {
  for (const s of slices) {
    if (s.namespace !== svc.namespace || s.service !== svc.name) continue;
    const e = s.endpoints.find((x) => x.addresses[0] === ip && x.pod);
    if (e) return e.pod;
  }
  const e = model.endpoints.find((x) => x.ips.includes(ip));
  return e ? `${e.namespace}/${e.pod}` : undefined;
}

/** Where a connection from `src` to one service port lands, and each landing place's policy verdict. */
export function explainServicePort(model: PolicyModel, input: ServicesInput, svc: Service, port: ServicePort, src: string,
  idx: PolicyIndex = new PolicyIndex(model)): ServiceExplanation {
  const srcNode = model.endpoints.find((e) => e.ips.includes(src))?.node;
  const all = usableEndpoints(svc, port, input.slices);
  const local = svc.internalTrafficPolicy === "Local" && srcNode !== undefined ? usableEndpoints(svc, port, input.slices, srcNode) : all;
  const chosen = new Set(local.map((e) => `${e.ip}:${e.port}`));
  const usable = new Set(all.map((e) => `${e.ip}:${e.port}`));
  const endpoints: ServiceEndpointVerdict[] = local.map((e) => {
    const v: Verdict = evaluate(idx, { src, dst: e.ip, protocol: port.protocol, port: e.port });
    const pod = podOf(model, input.slices, svc, e.ip);
    return {
      ip: e.ip, port: e.port, ...(pod ? { pod } : {}), ...(e.nodeName ? { node: e.nodeName } : {}), allowed: v.allowed,
      ...(v.egress ? { egress: v.egress } : {}), ...(v.ingress ? { ingress: v.ingress } : {}),
    };
  });
  const notChosen: NotChosenEndpoint[] = [];
  for (const s of input.slices) {
    if (s.namespace !== svc.namespace || s.service !== svc.name) continue;
    const sp = s.ports.find((p) => p.name === port.name && p.protocol === port.protocol);
    if (!sp) continue;
    for (const e of s.endpoints) {
      const ip = e.addresses[0];
      if (!ip || chosen.has(`${ip}:${sp.port}`) || notChosen.some((x) => x.ip === ip && x.port === sp.port)) continue;
      const why = usable.has(`${ip}:${sp.port}`) ? `on ${e.nodeName ?? "another node"}, not ${srcNode} (internalTrafficPolicy Local)`
        : e.terminating ? (e.serving ? "terminating (chosen only when no endpoint is ready)" : "terminating, not serving")
        : e.ready ? "not chosen while ready endpoints exist" : "not ready";
      const pod = e.pod ?? podOf(model, input.slices, svc, ip);
      notChosen.push({ ip, port: sp.port, ...(pod ? { pod } : {}), ...(e.nodeName ? { node: e.nodeName } : {}), why });
    }
  }
  return {
    service: `${svc.namespace}/${svc.name}`, clusterIP: svc.clusterIP ?? "", src, ...(srcNode ? { srcNode } : {}),
    servicePort: { name: port.name, port: port.port, protocol: port.protocol, targetPort: port.targetPort },
    internalTrafficPolicy: svc.internalTrafficPolicy,
    outcome: all.length === 0 ? "rejected" : local.length === 0 ? "dropped" : "endpoints",
    endpoints, notChosen, allowed: endpoints.some((e) => e.allowed),
  };
}

/** `explain --to-service REF --port P [--protocol X]` from the source address `src`. */
export function explainToService(model: PolicyModel, input: ServicesInput, q: { service: string; port: string; protocol?: string; src: string }): ServiceExplanation {
  const svc = findService(input, q.service);
  return explainServicePort(model, input, svc, findServicePort(svc, q.port, q.protocol), q.src);
}

function direction(d: DirectionVerdict | undefined, what: string): string {
  if (!d) return `      ${what}: not a pod, no policy applies`;
  return `      ${what}: ${d.allowed ? "ALLOW" : "DENY"} — ${d.reason}${d.logged.length ? `\n        logged: ${d.logged.join("; ")}` : ""}`;
}

/** The text form of an explanation; `from` is how the user named the source. */
export function renderServiceExplanation(e: ServiceExplanation, from: string): string {
  const p = e.servicePort;
  const head = `${from} (${e.src}) -> Service ${e.service} (${e.clusterIP}) ${p.port}/${p.protocol}` +
    `${p.name ? ` (port ${p.name}` : " ("}${p.name ? ", " : ""}targetPort ${p.targetPort})`;
  const lines: string[] = [];
  if (e.outcome === "rejected") lines.push(`${head}: REJECTED — no usable endpoint: the connection is refused at once (TCP reset / ICMP port unreachable)`);
  else if (e.outcome === "dropped") lines.push(`${head}: DROPPED — internalTrafficPolicy Local and no usable endpoint on ${e.srcNode}`);
  else {
    const n = e.endpoints.filter((x) => x.allowed).length;
    lines.push(`${head}: ${n === e.endpoints.length ? "ALLOWED" : n === 0 ? "DENIED" : "PARTLY ALLOWED"} — ${n} of ${e.endpoints.length} endpoint(s) accept it; each connection lands on one of them:`);
    for (const x of e.endpoints) {
      lines.push(`  ${x.ip}:${x.port}${x.pod ? ` ${x.pod}` : ""}${x.node ? ` on ${x.node}` : ""}: ${x.allowed ? "ALLOWED" : "DENIED"}`);
      lines.push(direction(x.egress, "egress "), direction(x.ingress, "ingress"));
    }
  }
  for (const x of e.notChosen) lines.push(`  never chosen: ${x.ip}:${x.port}${x.pod ? ` ${x.pod}` : ""}${x.node ? ` on ${x.node}` : ""} (${x.why})`);
  lines.push("  policy sees the packet after the Service's DNAT: each endpoint's own address and port; replies of an allowed connection are always allowed (conntrack)");
  return lines.join("\n");
}
