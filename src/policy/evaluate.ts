// The policy semantics, once, as a pure evaluator: which verdict a packet gets in each direction,
// and which policy and rule decided it. `trellis policy explain` prints this; the nftables
// compiler implements exactly this order; the truth-table tests pin it down.
//
// Evaluation order, per direction (egress at the source pod, ingress at the destination pod):
//  1. Traffic to a pod from its own node is allowed (kubelet health probes).
//  2. Ordered policies (TrellisPolicy in the pod's namespace, GlobalTrellisPolicy) that select the
//     pod for this direction, by ascending `order`, then by name; within a policy, rules in order.
//     The first matching rule decides: Allow → allowed, Deny → denied, Pass → skip the remaining
//     ordered policies and go to step 3; Log → record and continue. If at least one ordered policy
//     selected the pod and no rule decided, the packet is denied (end of tier).
//  3. Kubernetes NetworkPolicies in the pod's namespace that select the pod for this direction:
//     none → allowed (the pod is not isolated); otherwise allowed iff some rule of some such policy
//     matches (union), else denied.
// A packet is allowed when both directions allow it (a direction whose end is not a pod has no
// say). Replies of allowed connections are always allowed (conntrack).
import { cidrContains, parseCidr, parseIp } from "../model/ip.js";
import { selectorMatches } from "./selector.js";
import {
  policyId, type Endpoint, type LabelSelector, type NetworkPolicy, type OrderedPolicy, type Pod, type PolicyModel, type PolicyPeer, type PolicyPort,
  type Protocol,
} from "./model.js";

export interface Packet {
  src: string;
  dst: string;
  /** ICMP matches only rules without ports, as in Kubernetes. */
  protocol: Protocol | "ICMP";
  port: number;
}

export type Direction = "ingress" | "egress";

export interface DirectionVerdict {
  allowed: boolean;
  /** The policy and rule that decided, or why no rule did. */
  reason: string;
  policy?: string;
  rule?: number;
  /** Log rules that matched on the way. */
  logged: string[];
}

export interface Verdict {
  allowed: boolean;
  egress?: DirectionVerdict;
  ingress?: DirectionVerdict;
}

export interface PodRef {
  pod: Pod;
  endpoint?: Endpoint;
}

/** Indexes over a model, built once per evaluation batch. */
export class PolicyIndex {
  readonly podByIp = new Map<string, PodRef>();
  readonly nsLabels = new Map<string, Record<string, string>>();
  readonly nodeIps = new Map<string, Set<string>>();
  readonly pods: Pod[];

  constructor(readonly model: PolicyModel) {
    this.pods = model.pods;
    for (const ns of model.namespaces) this.nsLabels.set(ns.name, { ...ns.labels });
    const podByName = new Map(model.pods.map((p) => [`${p.namespace}/${p.name}`, p]));
    for (const ep of model.endpoints) {
      const pod = podByName.get(`${ep.namespace}/${ep.pod}`) ?? { namespace: ep.namespace, name: ep.pod, labels: {}, ports: [] };
      for (const ip of ep.ips) this.podByIp.set(canonical(ip), { pod, endpoint: ep });
    }
    for (const n of model.nodes ?? []) this.nodeIps.set(n.name, new Set(n.ips.map(canonical)));
  }

  namespaceLabels(ns: string): Record<string, string> {
    // A namespace that was never applied still exists implicitly, with the automatic name label.
    return { "kubernetes.io/metadata.name": ns, ...(this.nsLabels.get(ns) ?? {}) };
  }
}

const canonical = (ip: string): string => {
  const p = parseIp(ip.split("/")[0]!);
  return p ? `${p.family}:${p.value}` : ip;
};

function inIpBlock(ip: string, block: { cidr: string; except?: string[] }): boolean {
  const p = parseIp(ip);
  const c = parseCidr(block.cidr);
  if (!p || !c || !cidrContains(c, p)) return false;
  return !(block.except ?? []).some((e) => {
    const x = parseCidr(e);
    return x !== undefined && cidrContains(x, p);
  });
}

/** Whether `remote` (a pod, or just an address) is one of the rule's peers. */
export function peerMatches(idx: PolicyIndex, peer: PolicyPeer, policyNs: string | undefined, remoteIp: string, remote: Pod | undefined): boolean {
  if (peer.ipBlock) return inIpBlock(remoteIp, peer.ipBlock);
  if (!remote) return false;
  if (peer.namespaceSelector) {
    if (!selectorMatches(peer.namespaceSelector, idx.namespaceLabels(remote.namespace))) return false;
  } else if (policyNs !== undefined && remote.namespace !== policyNs) {
    // podSelector alone means "in the policy's own namespace" (global policies: any namespace).
    return false;
  }
  return peer.podSelector ? selectorMatches(peer.podSelector, remote.labels) : true;
}

/** Whether the packet's protocol and port match; named ports resolve on the destination pod. */
export function portMatches(ports: PolicyPort[] | undefined, pkt: Packet, dstPod: Pod | undefined): boolean {
  if (!ports || ports.length === 0) return true;
  return ports.some((p) => {
    if (p.protocol !== pkt.protocol) return false;
    if (p.port === undefined) return true;
    if (typeof p.port === "number") return pkt.port >= p.port && pkt.port <= (p.endPort ?? p.port);
    const named = dstPod?.ports.find((cp) => cp.name === p.port && cp.protocol === pkt.protocol);
    return named !== undefined && named.containerPort === pkt.port;
  });
}

function ruleMatches(idx: PolicyIndex, rule: { peers: PolicyPeer[] | undefined; ports: PolicyPort[] | undefined }, policyNs: string | undefined,
  remoteIp: string, remote: Pod | undefined, pkt: Packet, dstPod: Pod | undefined): boolean {
  const peersOk = !rule.peers || rule.peers.length === 0 || rule.peers.some((p) => peerMatches(idx, p, policyNs, remoteIp, remote));
  return peersOk && portMatches(rule.ports, pkt, dstPod);
}

export function orderedSelects(idx: PolicyIndex, p: OrderedPolicy, pod: Pod): boolean {
  if (p.kind === "TrellisPolicy" && p.namespace !== pod.namespace) return false;
  if (p.namespaceSelector && !selectorMatches(p.namespaceSelector, idx.namespaceLabels(pod.namespace))) return false;
  return selectorMatches(p.podSelector as LabelSelector, pod.labels);
}

export const k8sSelects = (p: NetworkPolicy, pod: Pod): boolean => p.namespace === pod.namespace && selectorMatches(p.podSelector, pod.labels);

const typeOf = (d: Direction): "Ingress" | "Egress" => (d === "ingress" ? "Ingress" : "Egress");

/** Plain code-point order: the same everywhere, whatever the locale. */
const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Ordered policies by ascending order, then by name (then kind/namespace, to be total). */
export function sortedOrdered(policies: readonly PolicyModel["policies"][number][]): OrderedPolicy[] {
  return policies.filter((p): p is OrderedPolicy => p.kind !== "NetworkPolicy")
    .sort((a, b) => a.order - b.order || cmp(a.name, b.name) || cmp(policyId(a), policyId(b)));
}

/** The verdict for `pod` in one direction; `remoteIp`/`remote` is the other end. */
export function evaluateDirection(idx: PolicyIndex, dir: Direction, self: PodRef, remoteIp: string, remote: Pod | undefined, pkt: Packet): DirectionVerdict {
  const logged: string[] = [];
  const pod = self.pod;
  const dstPod = dir === "ingress" ? pod : remote;
  if (dir === "ingress" && self.endpoint && idx.nodeIps.get(self.endpoint.node)?.has(canonical(remoteIp))) {
    return { allowed: true, reason: `from the pod's own node ${self.endpoint.node} (health probes are always allowed)`, logged };
  }
  const ordered = sortedOrdered(idx.model.policies).filter((p) => p.policyTypes.includes(typeOf(dir)) && orderedSelects(idx, p, pod));
  let passed = false;
  tier: for (const p of ordered) {
    const rules = dir === "ingress" ? p.ingress : p.egress;
    for (const [i, r] of rules.entries()) {
      if (!ruleMatches(idx, r, p.kind === "TrellisPolicy" ? p.namespace : undefined, remoteIp, remote, pkt, dstPod)) continue;
      const where = `${policyId(p)} ${dir}[${i}]`;
      if (r.action === "Log") {
        logged.push(where);
        continue;
      }
      if (r.action === "Pass") {
        passed = true;
        logged.push(`${where} passed to NetworkPolicies`);
        break tier;
      }
      return { allowed: r.action === "Allow", reason: `${r.action} by ${where}`, policy: policyId(p), rule: i, logged };
    }
  }
  if (ordered.length > 0 && !passed) {
    return { allowed: false, reason: `denied: selected by ${ordered.map(policyId).join(", ")} and no rule matched (end of ordered tier)`, logged };
  }
  const k8s = idx.model.policies.filter((p): p is NetworkPolicy => p.kind === "NetworkPolicy" && p.policyTypes.includes(typeOf(dir)) && k8sSelects(p, pod))
    .sort((a, b) => policyId(a).localeCompare(policyId(b)));
  if (k8s.length === 0) return { allowed: true, reason: `no NetworkPolicy selects ${pod.namespace}/${pod.name} for ${dir} (not isolated)`, logged };
  for (const p of k8s) {
    const rules = dir === "ingress" ? p.ingress : p.egress;
    for (const [i, r] of rules.entries()) {
      if (ruleMatches(idx, r, p.namespace, remoteIp, remote, pkt, dstPod)) {
        return { allowed: true, reason: `allowed by ${policyId(p)} ${dir}[${i}]`, policy: policyId(p), rule: i, logged };
      }
    }
  }
  return { allowed: false, reason: `denied: isolated for ${dir} by ${k8s.map(policyId).join(", ")} and no rule allows it`, logged };
}

export function evaluate(idx: PolicyIndex, pkt: Packet): Verdict {
  const src = idx.podByIp.get(canonical(pkt.src));
  const dst = idx.podByIp.get(canonical(pkt.dst));
  const out: Verdict = { allowed: true };
  if (src) out.egress = evaluateDirection(idx, "egress", src, pkt.dst, dst?.pod, pkt);
  if (dst) out.ingress = evaluateDirection(idx, "ingress", dst, pkt.src, src?.pod, pkt);
  out.allowed = (out.egress?.allowed ?? true) && (out.ingress?.allowed ?? true);
  return out;
}
