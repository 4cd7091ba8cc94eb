// Policy model -> nftables ruleset for one node, as plain data (IR) that renders to one `nft -f`
// script and that a packet tracer can run. Pure.
//
// Shape (table `inet trellis`, owned by the agent):
//   forward/input hooks: conntrack established/related accepted first; a packet from or to a pod
//   interface (trl*) whose endpoint is not programmed yet is dropped (fail closed); otherwise the
//   verdict maps keyed by interface jump to the pod's own egress chain (iifname) and ingress chain
//   (oifname). Those chains `return` when allowed and `drop` when denied.
//   Peers (pod and namespace selectors, ipBlocks) are nft sets: a pod joining a selector changes
//   one set element, not a rule, and a lookup costs the same for 1 or 10 000 members.
//   Named ports on egress become sets of (address . port) of the destination pods.
//   Each egress chain starts with anti-spoofing: a source address that is not the pod's is dropped.
import { createHash } from "node:crypto";
import { cidrCovers, formatCidr, parseCidr, parseIp } from "../model/ip.js";
import { boxElement, disjointBoxes, fullRange, intervalElement, mergeIntervals, subtract, type Box, type Interval } from "./flatten.js";
import { k8sSelects, orderedSelects, peerMatches, PolicyIndex, sortedOrdered, type Direction } from "./evaluate.js";
import { selectorKey } from "./selector.js";
import { policyId, type Endpoint, type NetworkPolicy, type OrderedRule, type Pod, type PolicyModel, type PolicyPeer, type PolicyPort, type Protocol } from "./model.js";

export const POLICY_TABLE = "trellis";

export type Family = 4 | 6;

/** A set of addresses (plain, or intervals for ipBlocks) or of address . port pairs. */
export interface NftSet {
  name: string;
  family: Family;
  kind: "addr" | "interval" | "addr-port" | "addr-proto-port";
  elements: string[];
}

/** What a rule matches on; every present field must match. */
export interface Match {
  iif?: string;
  oif?: string;
  family?: Family;
  /** Source/destination address in set (or not in set). */
  saddrSet?: string;
  daddrSet?: string;
  saddrNotSet?: string;
  daddrNotSet?: string;
  /** Source address must NOT be one of these (anti-spoofing). */
  saddrNot?: string[];
  /** Destination (address . port) in set, with the protocol. */
  daddrPortSet?: string;
  /** (remote address . protocol . destination port) in an interval set: the flattened Kubernetes tier. */
  addrProtoPortSet?: { set: string; side: "saddr" | "daddr" };
  protocol?: Protocol;
  /** Destination ports: single ports or ranges "a-b". */
  dports?: string[];
  /** IPv6 neighbour discovery (solicitations and advertisements). */
  nd?: boolean;
}

export type Verdict = "accept" | "drop" | "return" | { jump: string } | { goto: string } | { log: string };

export interface Rule {
  match: Match;
  verdict: Verdict;
  comment?: string;
  /** An nft `counter` on the rule: it stands for a policy rule (metrics read it by its comment). */
  counter?: boolean;
}

export interface Chain {
  name: string;
  rules: Rule[];
}

export interface Ruleset {
  sets: NftSet[];
  /** Interfaces of programmed endpoints -> their egress / ingress chains. */
  egressMap: Record<string, string>;
  ingressMap: Record<string, string>;
  chains: Chain[];
}

const h = (s: string): string => createHash("sha256").update(s).digest("hex").slice(0, 12);
const familyOf = (ip: string): Family => (ip.includes(":") ? 6 : 4);

/** Builds the ruleset that enforces `model` for the endpoints on `node`. */
export function compilePolicy(model: PolicyModel, node: string): Ruleset {
  const idx = new PolicyIndex(model);
  const sets = new Map<string, NftSet>();
  const chains: Chain[] = [];
  const egressMap: Record<string, string> = {};
  const ingressMap: Record<string, string> = {};
  const podsWithIps = model.endpoints.map((ep) => ({ ep, pod: idx.podByIp.get(canonicalKey(ep.ips[0] ?? ""))?.pod })).filter((x) => x.pod);

  /** The set of pod addresses matching a peer (namespaced relative to policyNs), one per family. */
  function peerSet(peer: PolicyPeer, policyNs: string | undefined, family: Family): string {
    const key = `${policyNs ?? "*"}|${peer.namespaceSelector ? selectorKey(peer.namespaceSelector) : "-"}|${selectorKey(peer.podSelector)}`;
    const name = `pods${family}_${h(key)}`;
    if (!sets.has(name)) {
      const elements = podsWithIps.filter((x) => peerMatches(idx, peer, policyNs, x.ep.ips[0]!, x.pod))
        .flatMap((x) => x.ep.ips.map((ip) => ip.split("/")[0]!)).filter((ip) => familyOf(ip) === family);
      sets.set(name, { name, family, kind: "addr", elements: [...new Set(elements)].sort() });
    }
    return name;
  }

  function blockSets(peer: PolicyPeer, family: Family): { inSet: string; exceptSet?: string } | undefined {
    const b = peer.ipBlock!;
    const c = parseCidr(b.cidr)!;
    if (c.family !== family) return undefined;
    const name = `block${family}_${h(b.cidr)}`;
    if (!sets.has(name)) sets.set(name, { name, family, kind: "interval", elements: [normalizeCidr(b.cidr)] });
    if (!b.except || b.except.length === 0) return { inSet: name };
    const xname = `except${family}_${h(`${b.cidr}|${[...b.except].sort().join(",")}`)}`;
    if (!sets.has(xname)) {
      // nft refuses overlapping intervals in one set: keep only excepts no other except covers.
      const all = b.except.map((e) => parseCidr(e)!);
      const kept = all.filter((x, i) => !all.some((y, j) => cidrCovers(y, x) && (y.prefix < x.prefix || j < i)));
      sets.set(xname, { name: xname, family, kind: "interval", elements: kept.map((x) => normalizeCidr(formatCidr(x))).sort() });
    }
    return { inSet: name, exceptSet: xname };
  }

  /** Destination pods' (address . port) for a named port, among the pods a peer selects. */
  function namedPortSet(peer: PolicyPeer | undefined, policyNs: string | undefined, portName: string, protocol: Protocol, family: Family): string {
    const key = `${peer ? `${policyNs ?? "*"}|${selectorKey(peer.namespaceSelector)}|${selectorKey(peer.podSelector)}` : "any"}|${portName}|${protocol}`;
    const name = `named${family}_${h(key)}`;
    if (!sets.has(name)) {
      const elements: string[] = [];
      for (const x of podsWithIps) {
        if (peer && !peerMatches(idx, peer, policyNs, x.ep.ips[0]!, x.pod)) continue;
        const cp = x.pod!.ports.find((p) => p.name === portName && p.protocol === protocol);
        if (!cp) continue;
        for (const ip of x.ep.ips) if (familyOf(ip) === family) elements.push(`${ip.split("/")[0]} . ${cp.containerPort}`);
      }
      sets.set(name, { name, family, kind: "addr-port", elements: [...new Set(elements)].sort() });
    }
    return name;
  }

  /**
   * The nft rules for one policy rule in one direction: one rule per (peer, family, protocol) so
   * that each is a conjunction; together they are the union the policy means.
   */
  function ruleMatches(dir: Direction, self: Pod, rule: { peers: PolicyPeer[] | undefined; ports: PolicyPort[] | undefined },
    policyNs: string | undefined): Match[] {
    const out: Match[] = [];
    const peers: Array<PolicyPeer | undefined> = rule.peers && rule.peers.length > 0 ? rule.peers : [undefined];
    const ports: Array<PolicyPort | undefined> = rule.ports && rule.ports.length > 0 ? rule.ports : [undefined];
    for (const family of [4, 6] as const) {
      for (const peer of peers) {
        const base: Match = { family };
        if (peer?.ipBlock) {
          const b = blockSets(peer, family);
          if (!b) continue;
          if (dir === "egress") {
            base.daddrSet = b.inSet;
            if (b.exceptSet) base.daddrNotSet = b.exceptSet;
          } else {
            base.saddrSet = b.inSet;
            if (b.exceptSet) base.saddrNotSet = b.exceptSet;
          }
        } else if (peer) {
          const s = peerSet(peer, policyNs, family);
          if (dir === "egress") base.daddrSet = s;
          else base.saddrSet = s;
        }
        for (const port of ports) {
          if (!port) {
            out.push({ ...base });
            continue;
          }
          const m: Match = { ...base, protocol: port.protocol };
          if (port.port === undefined) {
            out.push(m);
          } else if (typeof port.port === "number") {
            out.push({ ...m, dports: [port.endPort && port.endPort !== port.port ? `${port.port}-${port.endPort}` : String(port.port)] });
          } else if (dir === "ingress") {
            // Named port on ingress: resolved on this pod, the destination.
            const cp = self.ports.find((p) => p.name === port.port && p.protocol === port.protocol);
            if (cp) out.push({ ...m, dports: [String(cp.containerPort)] });
          } else {
            // Named port on egress: resolved on the destination pod. For an ipBlock peer, any pod
            // with that port, and the address must also be in the block.
            if (peer?.ipBlock) {
              out.push({ ...m, daddrPortSet: namedPortSet(undefined, policyNs, port.port, port.protocol, family) });
              continue;
            }
            const s = namedPortSet(peer, policyNs, port.port, port.protocol, family);
            const { daddrSet: _ignored, ...rest } = m;
            out.push({ ...rest, daddrPortSet: s });
          }
        }
      }
    }
    return out;
  }

  /** Remote addresses a peer stands for, as intervals of one family. */
  function peerIntervals(peer: PolicyPeer | undefined, policyNs: string, family: Family): Interval[] {
    if (!peer) return [fullRange(family)];
    if (peer.ipBlock) {
      const c = parseCidr(peer.ipBlock.cidr)!;
      if (c.family !== family) return [];
      const iv = (x: NonNullable<ReturnType<typeof parseCidr>>): Interval => ({ lo: x.network, hi: x.network + (1n << BigInt((family === 4 ? 32 : 128) - x.prefix)) - 1n });
      return subtract(iv(c), (peer.ipBlock.except ?? []).map((e) => parseCidr(e)!).filter((x) => x.family === family).map(iv));
    }
    return podsWithIps.filter((x) => peerMatches(idx, peer, policyNs, x.ep.ips[0]!, x.pod))
      .flatMap((x) => x.ep.ips.map((ip) => parseIp(ip.split("/")[0]!)!)).filter((ip) => ip.family === family)
      .map((ip) => ({ lo: ip.value, hi: ip.value }));
  }

  /** What the selecting NetworkPolicies allow for `pod` in one direction and family. */
  function allowedSpace(dir: Direction, self: Pod, selecting: NetworkPolicy[], family: Family): { any: Interval[]; boxes: Box[] } {
    const any: Interval[] = [];
    const boxes: Box[] = [];
    for (const p of selecting) {
      for (const rule of dir === "ingress" ? p.ingress : p.egress) {
        const peers: Array<PolicyPeer | undefined> = rule.peers && rule.peers.length > 0 ? rule.peers : [undefined];
        for (const peer of peers) {
          const addrs = peerIntervals(peer, p.namespace, family);
          if (addrs.length === 0) continue;
          if (!rule.ports || rule.ports.length === 0) {
            any.push(...addrs);
            continue;
          }
          for (const port of rule.ports) {
            if (port.port === undefined || typeof port.port === "number") {
              const range: Interval = port.port === undefined ? { lo: 0n, hi: 65535n } : { lo: BigInt(port.port), hi: BigInt(port.endPort ?? port.port) };
              for (const a of addrs) boxes.push({ addr: a, protocol: port.protocol, port: range });
            } else if (dir === "ingress") {
              // Named port on ingress: resolved on this pod, the destination.
              const cp = self.ports.find((x) => x.name === port.port && x.protocol === port.protocol);
              if (cp) for (const a of addrs) boxes.push({ addr: a, protocol: port.protocol, port: { lo: BigInt(cp.containerPort), hi: BigInt(cp.containerPort) } });
            } else {
              // Named port on egress: resolved on each destination pod among the peer's addresses.
              for (const x of podsWithIps) {
                const cp = x.pod!.ports.find((q) => q.name === port.port && q.protocol === port.protocol);
                if (!cp) continue;
                for (const ip of x.ep.ips) {
                  const v = parseIp(ip.split("/")[0]!)!;
                  if (v.family !== family || !addrs.some((a) => v.value >= a.lo && v.value <= a.hi)) continue;
                  boxes.push({ addr: { lo: v.value, hi: v.value }, protocol: port.protocol, port: { lo: BigInt(cp.containerPort), hi: BigInt(cp.containerPort) } });
                }
              }
            }
          }
        }
      }
    }
    return { any, boxes };
  }

  function directionChain(ep: Endpoint, pod: Pod, dir: Direction): Chain {
    const id = h(`${ep.containerId}/${ep.ifname}`);
    const name = `${dir === "egress" ? "out" : "in"}_${id}`;
    const k8sName = `${name}_k8s`;
    const rules: Rule[] = [];
    if (dir === "egress") {
      // IPv6 neighbour discovery uses link-local sources; it only ever reaches the node itself.
      rules.push({ match: { family: 6, nd: true }, verdict: "return", comment: "neighbour discovery" });
      for (const family of [4, 6] as const) {
        const own = ep.ips.map((i) => i.split("/")[0]!).filter((i) => familyOf(i) === family);
        // Anti-spoofing: only the pod's own addresses may leave its interface.
        rules.push({ match: own.length ? { family, saddrNot: own } : { family }, verdict: "drop", comment: "anti-spoofing" });
      }
    }
    const type = dir === "ingress" ? "Ingress" : "Egress";
    const ordered = sortedOrdered(model.policies).filter((p) => p.policyTypes.includes(type) && orderedSelects(idx, p, pod));
    for (const p of ordered) {
      const list: OrderedRule[] = dir === "ingress" ? p.ingress : p.egress;
      list.forEach((r, i) => {
        const where = `${policyId(p)} ${dir}[${i}]`;
        const verdict: Verdict = r.action === "Allow" ? "return" : r.action === "Deny" ? "drop" : r.action === "Pass" ? { goto: k8sName } : { log: where };
        for (const m of ruleMatches(dir, pod, r, p.kind === "TrellisPolicy" ? p.namespace : undefined)) rules.push({ match: m, verdict, comment: where, counter: true });
      });
    }
    if (ordered.length > 0) rules.push({ match: {}, verdict: "drop", comment: "end of ordered tier" });
    else rules.push({ match: {}, verdict: { goto: k8sName } });
    chains.push({ name, rules });

    const k8s: Rule[] = [];
    const selecting = model.policies.filter((p): p is NetworkPolicy => p.kind === "NetworkPolicy" && p.policyTypes.includes(type) && k8sSelects(p, pod))
      .sort((a, b) => policyId(a).localeCompare(policyId(b)));
    if (selecting.length === 0) {
      k8s.push({ match: {}, verdict: "return", comment: "not isolated" });
    } else {
      // The union of every selecting policy's rules, as two lookups per family (flatten.ts).
      const side = dir === "egress" ? "daddr" : "saddr";
      for (const family of [4, 6] as const) {
        const { any, boxes } = allowedSpace(dir, pod, selecting, family);
        const anyName = `k8sany${family}_${id}_${dir}`;
        const portName = `k8sport${family}_${id}_${dir}`;
        sets.set(anyName, { name: anyName, family, kind: "interval", elements: mergeIntervals(any).map((i) => intervalElement(i, family)) });
        sets.set(portName, { name: portName, family, kind: "addr-proto-port", elements: disjointBoxes(boxes).map((b) => boxElement(b, family)) });
        k8s.push({ match: { family, [side === "daddr" ? "daddrSet" : "saddrSet"]: anyName }, verdict: "return", comment: "allowed on any port", counter: true });
        k8s.push({ match: { family, addrProtoPortSet: { set: portName, side } }, verdict: "return", comment: "allowed ports", counter: true });
      }
      k8s.push({ match: {}, verdict: "drop", comment: `isolated by ${selecting.map(policyId).join(", ")}`.slice(0, 120), counter: true });
    }
    chains.push({ name: k8sName, rules: k8s });
    return { name, rules };
  }

  for (const ep of model.endpoints) {
    if (ep.node !== node || ep.mode !== "routed") continue;
    const ref = idx.podByIp.get(canonicalKey(ep.ips[0] ?? ""));
    if (!ref) continue;
    egressMap[ep.hostIf] = directionChain(ep, ref.pod, "egress").name;
    ingressMap[ep.hostIf] = directionChain(ep, ref.pod, "ingress").name;
  }
  return { sets: [...sets.values()].sort((a, b) => a.name.localeCompare(b.name)), egressMap, ingressMap, chains };
}

const canonicalKey = (ip: string): string => {
  const p = parseIp(ip.split("/")[0]!);
  return p ? `${p.family}:${p.value}` : ip;
};

/** nft wants host bits cleared; a full-length prefix is written as a plain address. */
function normalizeCidr(c: string): string {
  const x = parseCidr(c)!;
  const text = formatCidr(x);
  return x.prefix === (x.family === 4 ? 32 : 128) ? text.split("/")[0]! : text;
}
