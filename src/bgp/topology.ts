// Who peers with whom (pure): from the cluster's BGP settings, every node's settings and the
// external peers, the BGP sessions of one node and, per other node, whether its pods can be
// reached and why not. As in Calico:
//
// - node mesh (default): every node peers with every other node, one AS (iBGP) unless a node
//   sets its own (then that session is eBGP);
// - mesh off: nodes labelled trellis.dev/route-reflector=true reflect; every other node peers only
//   with them (and they with each other);
// - external peers (routers Trellis does not run, e.g. a rack's ToR) peer with every node, the
//   nodes a selector picks, or one node.
//
// Sessions between nodes are made only to nodes on this node's own underlay subnet: BIRD installs
// a learned route only through a directly connected next hop (`gateway direct`), so a session to a
// node behind a router would bring a route that black-holes. Nodes on other segments are reached
// through external peers (the routers carry the pod routes), or are reported unreachable.
import { onLink } from "../backends/desired.js";
import { DEFAULT_CLUSTER_ID, isRouteReflector, type BgpPeer, type BgpSettings, type NodeSettings } from "./model.js";

export type SessionKind = "mesh" | "reflector" | "rr-client" | "external";

export interface BgpSession {
  /** BIRD protocol name (unique, [A-Za-z0-9_]). */
  protocol: string;
  kind: SessionKind;
  /** The node or external peer's name. */
  peerName: string;
  peerIp: string;
  peerAs: number;
  /** This node reflects the peer's routes (it is a route reflector and the peer its client). */
  rrClient?: boolean;
  passwordFile?: string;
  /** The peer is not on this node's subnet (external peers only: a warning, its routes cannot be used). */
  offLink?: boolean;
}

export interface BgpSelf {
  name: string;
  /** Underlay address with prefix, e.g. 10.99.1.11/24. */
  underlayCidr: string;
  /** This node's pod block. */
  block: string;
}

export interface BgpPlan {
  name: string;
  ip: string;
  asNumber: number;
  /** Set when this node is a route reflector. */
  clusterId?: string;
  block: string;
  sessions: BgpSession[];
  /** Per other node: "bgp", or "unreachable" with the reason. */
  peers: Map<string, { transport: "bgp" | "unreachable"; reason?: string }>;
}

/** A BIRD symbol from a name: letters, digits and underscores, with a prefix so it can never be a keyword. */
const symbol = (prefix: string, name: string): string => `${prefix}_${name.replace(/[^A-Za-z0-9]/g, "_")}`;

/** Whether an external peer applies to a node: its --node, its --node-selector, or (neither) every node. */
export function peerApplies(p: BgpPeer, node: string, labels: Readonly<Record<string, string>>): boolean {
  if (p.node !== undefined) return p.node === node;
  if (p.nodeSelector !== undefined) return Object.entries(p.nodeSelector).every(([k, v]) => labels[k] === v);
  return true;
}

export function planBgp(input: {
  self: BgpSelf;
  nodes: ReadonlyArray<{ name: string; ip: string }>;
  settings: BgpSettings;
  nodeSettings: ReadonlyMap<string, NodeSettings>;
  peers: readonly BgpPeer[];
}): BgpPlan {
  const { self, settings } = input;
  const ip = self.underlayCidr.split("/")[0]!;
  const mine = input.nodeSettings.get(self.name);
  const asOf = (node: string): number => input.nodeSettings.get(node)?.asNumber ?? settings.asNumber;
  const selfRR = isRouteReflector(mine);
  const plan: BgpPlan = {
    name: self.name, ip, asNumber: asOf(self.name), block: self.block, sessions: [], peers: new Map(),
    ...(selfRR ? { clusterId: mine?.routeReflectorClusterId ?? DEFAULT_CLUSTER_ID } : {}),
  };
  const used = new Set<string>();
  const unique = (name: string): string => {
    let n = name;
    for (let i = 2; used.has(n); i++) n = `${name}_${i}`;
    used.add(n);
    return n;
  };

  const externals = input.peers.filter((p) => peerApplies(p, self.name, mine?.labels ?? {})).sort((a, b) => a.name.localeCompare(b.name));
  const others = input.nodes.filter((n) => n.name !== self.name).sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }));
  const reflectors = others.filter((n) => isRouteReflector(input.nodeSettings.get(n.name)) && onLink(self.underlayCidr, n.ip));

  for (const n of others) {
    if (!onLink(self.underlayCidr, n.ip)) {
      plan.peers.set(n.name, externals.length > 0
        ? { transport: "bgp" }
        : { transport: "unreachable", reason: `${n.ip} is not on this node's subnet ${self.underlayCidr}: BGP between nodes on different segments needs routers that carry the pod routes (external peers, e.g. per-segment ToRs)` });
      continue;
    }
    const peerRR = isRouteReflector(input.nodeSettings.get(n.name));
    let kind: SessionKind | undefined;
    if (settings.nodeMesh) kind = "mesh";
    else if (selfRR) kind = peerRR ? "reflector" : "rr-client";
    else if (peerRR) kind = "reflector";
    if (kind) {
      plan.sessions.push({
        protocol: unique(symbol("node", n.name)), kind, peerName: n.name, peerIp: n.ip, peerAs: asOf(n.name),
        ...(kind === "rr-client" ? { rrClient: true } : {}),
      });
    }
    const reached = settings.nodeMesh || selfRR || reflectors.length > 0 || externals.length > 0;
    plan.peers.set(n.name, reached ? { transport: "bgp" } : {
      transport: "unreachable", reason: "the node mesh is off and this node has no route reflector or external peer to learn routes from",
    });
  }
  for (const p of externals) {
    plan.sessions.push({
      protocol: unique(symbol("peer", p.name)), kind: "external", peerName: p.name, peerIp: p.peerIp, peerAs: p.asNumber,
      ...(p.passwordFile ? { passwordFile: p.passwordFile } : {}), ...(onLink(self.underlayCidr, p.peerIp) ? {} : { offLink: true }),
    });
  }
  return plan;
}
