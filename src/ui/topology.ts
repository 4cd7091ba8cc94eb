// What the topology page shows, computed from datastore objects alone (leases, agent status
// reports, the network config, endpoints, pods, BGP peers and node settings). Pure: the server
// lists and watches the datastore and calls `topologyFromObjects` again after every change; the
// page only draws what this returns. The clock is passed in (agent state depends on lease age).
import { nodeView, parseNodeStatus, waitingNodeView, type AgentState, type NodeStatus, type PeerKernelState } from "../agent/status.js";
import { BGP_PEER_PREFIX, NODE_SETTINGS_PREFIX, isRouteReflector, parseStored, validateBgpPeer, validateNodeSettings } from "../bgp/model.js";
import { CONFIG_KEY, LEASE_PREFIX, STATUS_PREFIX, parseLease } from "../model/lease.js";
import { validateNetworkConfig, type NetworkConfig } from "../model/network.js";
import { ENDPOINT_PREFIX, NAMESPACE_PREFIX, POD_PREFIX, modelFromObjects } from "../policy/store-model.js";

/** Every prefix (or key) whose objects the page depends on: what the server lists and watches. */
export const TOPOLOGY_PREFIXES = [LEASE_PREFIX, STATUS_PREFIX, POD_PREFIX, ENDPOINT_PREFIX, NAMESPACE_PREFIX, CONFIG_KEY, BGP_PEER_PREFIX, NODE_SETTINGS_PREFIX] as const;

export interface TopologyPod {
  namespace: string;
  name: string;
  ips: string[];
  /** From the stored Pod object; empty when there is none (a pod made without `trellis apply`). */
  labels: Record<string, string>;
}

export interface TopologyBgpSession {
  peer: string;
  peerIp: string;
  type: string;
  state: string;
  lastError?: string;
}

export interface TopologyNode {
  name: string;
  subnet: string;
  publicIp: string;
  backend: string;
  agent: AgentState;
  agentDetail: string;
  policy?: boolean;
  routeReflector: boolean;
  /** BIRD's sessions as this node reports them (bgp backend only). */
  bgp?: { asNumber: number; routerId: string; configError?: string; sessions: TopologyBgpSession[] };
  pods: TopologyPod[];
  /** What denying policy rules dropped on this node recently, as its agent reports it (absent: not reported). */
  drops?: { seconds: number; rules: TopologyDrop[] };
}

/** One denying policy rule's recent drops on a node. */
export interface TopologyDrop {
  policy: string;
  rule: string;
  packets: number;
  bytes: number;
  lastSeenAt: number;
  /** Seconds between the last reading that saw drops and the snapshot. */
  agoSeconds: number;
}

/** "problem": the reporting node says the peer is unreachable, or its kernel does not hold the path yet. */
export type LinkHealth = "ok" | "pending" | "unreachable" | "unknown";

/** One direction of a node pair, as `from` reports it. */
export interface TopologyLink {
  id: string;
  from: string;
  to: string;
  transport: string;
  kernel?: PeerKernelState;
  reason?: string;
  health: LinkHealth;
}

export interface TopologyNetwork {
  cidr: string;
  backend: string;
  subnetLen: number;
  /** The pod MTU: configured, or derived by each agent from its underlay. */
  mtu: string;
}

export interface Topology {
  network?: TopologyNetwork;
  nodes: TopologyNode[];
  links: TopologyLink[];
  /** External BGP peers (bgppeers/). */
  bgpPeers: Array<{ name: string; peerIp: string; asNumber: number; node?: string }>;
  /** Pods attached on nodes that hold no lease (left over, or their node was removed). */
  orphanPods: Array<TopologyPod & { node: string }>;
  /**
   * Recent policy drops per rule across nodes, newest first then most packets. `seconds`: the
   * longest interval any node's report covers; `reporting`: the nodes that publish drops; `note`:
   * what to say when there are none.
   */
  drops: { seconds: number; reporting: string[]; rows: Array<TopologyDrop & { node: string }>; note: string };
  /** Objects that could not be read, with why: shown, not fatal. */
  problems: string[];
}

/** What the drops panel says when no node reports policy drops at all. */
export const NO_DROPS_REPORTED = "no node reports policy drops (policy not enforced, an older agent, or its first counter readings are not done yet)";

function dropsOf(st: NodeStatus | undefined, now: number): TopologyNode["drops"] {
  if (!st?.policyDrops) return undefined;
  const seconds = st.policyDropsCover ? Math.max(0, Math.round((st.policyDropsCover.to - st.policyDropsCover.from) / 1000)) : 0;
  return {
    seconds,
    rules: st.policyDrops.map((d) => ({ policy: d.policy, rule: d.rule, packets: d.packets, bytes: d.bytes, lastSeenAt: d.lastSeenAt, agoSeconds: Math.max(0, Math.round((now - d.lastSeenAt) / 1000)) })),
  };
}

function allDrops(nodes: readonly TopologyNode[]): Topology["drops"] {
  const reporting = nodes.filter((n) => n.drops).map((n) => n.name);
  const seconds = Math.max(0, ...nodes.map((n) => n.drops?.seconds ?? 0));
  const rows = nodes.flatMap((n) => (n.drops?.rules ?? []).map((d) => ({ node: n.name, ...d })))
    .sort((a, b) => b.lastSeenAt - a.lastSeenAt || b.packets - a.packets || byName(a.node, b.node) || a.policy.localeCompare(b.policy) || a.rule.localeCompare(b.rule));
  const note = rows.length > 0 ? "" : reporting.length > 0 ? `none in the last ${seconds} s` : NO_DROPS_REPORTED;
  return { seconds, reporting, rows, note };
}

function mtuText(c: NetworkConfig): string {
  if (c.backend.mtu) return String(c.backend.mtu);
  return c.backend.type === "host-gw" || c.backend.type === "bgp" ? "underlay MTU (no encapsulation)" : "underlay MTU - 50 (VXLAN)";
}

function linkHealth(p: { transport: string; kernel?: PeerKernelState; reason?: string }): LinkHealth {
  if (p.transport === "unreachable" || p.reason) return "unreachable";
  if (p.kernel === "pending") return "pending";
  if (p.kernel === "programmed") return "ok";
  return "unknown";
}

const byName = (a: string, b: string): number => a.localeCompare(b, undefined, { numeric: true });

export function topologyFromObjects(kvs: Iterable<{ key: string; value: string }>, now: number): Topology {
  const problems: string[] = [];
  const all = [...kvs];
  const under = (prefix: string): Array<{ key: string; value: string }> => all.filter((kv) => kv.key.startsWith(prefix));

  let config: NetworkConfig | undefined;
  const configKv = all.find((kv) => kv.key === CONFIG_KEY);
  if (configKv) {
    try {
      config = validateNetworkConfig(JSON.parse(configKv.value), { onUnknownField: () => undefined });
    } catch (e) {
      problems.push(`${CONFIG_KEY}: ${(e as Error).message}`);
    }
  }

  const statuses = new Map<string, NodeStatus>();
  for (const kv of under(STATUS_PREFIX)) {
    const st = parseNodeStatus(kv.value);
    if (st) statuses.set(st.node, st);
    else problems.push(`${kv.key}: not a node status`);
  }
  const leases = under(LEASE_PREFIX).map((kv) => parseLease(kv.key, kv.value)).filter((l) => l !== undefined);
  const withLease = new Set(leases.map((l) => l.node));
  const views = [
    ...leases.map((l) => nodeView(l, statuses.get(l.node), config?.network, now)),
    ...[...statuses.values()].filter((st) => st.state === "waiting" && !withLease.has(st.node)).map((st) => waitingNodeView(st, now)),
  ].sort((a, b) => byName(a.name, b.name));

  const model = modelFromObjects([...under(ENDPOINT_PREFIX), ...under(POD_PREFIX), ...under(NAMESPACE_PREFIX)],
    (key, why) => problems.push(`${key}: ${why}`), undefined, () => undefined);
  const labels = new Map(model.pods.map((p) => [`${p.namespace}/${p.name}`, p.labels]));
  const podsOn = new Map<string, TopologyPod[]>();
  const seen = new Set<string>();
  for (const ep of model.endpoints) {
    const id = `${ep.node}/${ep.namespace}/${ep.pod}`;
    const pods = podsOn.get(ep.node) ?? [];
    podsOn.set(ep.node, pods);
    const existing = pods.find((p) => p.namespace === ep.namespace && p.name === ep.pod);
    if (existing && seen.has(id)) {
      existing.ips.push(...ep.ips.filter((ip) => !existing.ips.includes(ip)));
      continue;
    }
    seen.add(id);
    pods.push({ namespace: ep.namespace, name: ep.pod, ips: [...ep.ips], labels: { ...(labels.get(`${ep.namespace}/${ep.pod}`) ?? {}) } });
  }
  for (const pods of podsOn.values()) pods.sort((a, b) => byName(`${a.namespace}/${a.name}`, `${b.namespace}/${b.name}`));

  const settings = new Map(under(NODE_SETTINGS_PREFIX).map((kv) => parseStored(kv.value, validateNodeSettings)).filter((s) => s !== undefined).map((s) => [s.node, s]));
  const nodeNames = new Set(views.map((v) => v.name));
  const nodes: TopologyNode[] = views.map((v) => {
    const bgp = statuses.get(v.name)?.bgp;
    const drops = dropsOf(statuses.get(v.name), now);
    return {
      name: v.name, subnet: v.subnet, publicIp: v.publicIp, backend: v.backend, agent: v.agent, agentDetail: v.agentDetail,
      ...(v.policy !== undefined ? { policy: v.policy } : {}),
      routeReflector: isRouteReflector(settings.get(v.name)),
      ...(bgp ? {
        bgp: {
          asNumber: bgp.asNumber, routerId: bgp.routerId, ...(bgp.configError ? { configError: bgp.configError } : {}),
          sessions: bgp.sessions.map((s) => ({ peer: s.peer, peerIp: s.peerIp, type: s.type, state: s.state, ...(s.lastError ? { lastError: s.lastError } : {}) })),
        },
      } : {}),
      pods: podsOn.get(v.name) ?? [],
      ...(drops ? { drops } : {}),
    };
  });

  // Links only between nodes that are shown: a report about a removed node is stale.
  const links: TopologyLink[] = views.flatMap((v) => v.peers.filter((p) => nodeNames.has(p.node) && p.node !== v.name).map((p) => ({
    id: `${v.name}->${p.node}`, from: v.name, to: p.node, transport: p.transport,
    ...(p.kernel ? { kernel: p.kernel } : {}), ...(p.reason ? { reason: p.reason } : {}), health: linkHealth(p),
  })));

  const bgpPeers = under(BGP_PEER_PREFIX).map((kv) => parseStored(kv.value, (raw) => validateBgpPeer(raw, config?.network)))
    .filter((p) => p !== undefined)
    .map((p) => ({ name: p.name, peerIp: p.peerIp, asNumber: p.asNumber, ...(p.node ? { node: p.node } : {}) }))
    .sort((a, b) => byName(a.name, b.name));

  const orphanPods = [...podsOn.entries()].filter(([node]) => !nodeNames.has(node)).flatMap(([node, pods]) => pods.map((p) => ({ ...p, node })));

  return {
    ...(config ? { network: { cidr: config.network, backend: config.backend.type, subnetLen: config.subnetLen, mtu: mtuText(config) } } : {}),
    nodes, links, bgpPeers, orphanPods, drops: allDrops(nodes), problems,
  };
}
