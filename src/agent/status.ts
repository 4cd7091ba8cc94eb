// What each agent publishes about itself (`status/<node>`), and how `trellis nodes` reads it
// together with the node's lease into a view that tells a live agent from a stopped or silent
// one. Pure (the clock is passed in).
import type { ActualDataplane } from "../dataplane/diff.js";
import { VTEP_NAME, type Dataplane, type PeerStatus } from "../dataplane/state.js";
import { cidrCovers, parseCidr } from "../model/ip.js";
import type { Lease } from "../model/lease.js";
import type { BgpNodeStatus } from "../bgp/controller.js";
import { parseDropsCover, parsePolicyDrops, type DropsCover, type PolicyDrop } from "../metrics/policy-drops.js";

/** Whether the kernel of the reporting node holds what its transport to a peer needs. */
export type PeerKernelState = "programmed" | "pending" | "none";

export interface PeerReport extends PeerStatus {
  /** "none": nothing to program (the peer is unreachable by configuration). */
  kernel: PeerKernelState;
}

export interface NodeStatus {
  node: string;
  subnet: string;
  publicIp: string;
  backend: string;
  /**
   * "stopped": the agent ended (its data plane stays as it was). "waiting": it cannot start
   * networking yet, and `problem` says why (e.g. no block assigned to the node).
   */
  state: "running" | "stopped" | "waiting";
  problem?: string;
  /** The first full sync is done and the kernel holds the desired data plane. */
  ready: boolean;
  /** Whether the agent enforces network policy on this node. */
  policy: boolean;
  leaseTtlSeconds: number;
  peers: PeerReport[];
  updatedAt: number;
  /** Why and when it stopped ("SIGTERM"). */
  stopped?: { at: number; why: string };
  /** The bgp backend: BIRD's sessions as this node's BIRD reports them. */
  bgp?: BgpNodeStatus;
  /**
   * Policy enforced: what denying policy rules dropped on this node recently (top 10 by packets),
   * from the nft counters read every ~10 s. Absent from older agents and before two readings.
   */
  policyDrops?: PolicyDrop[];
  /** The interval `policyDrops` covers (ms since the epoch, the agent's clock). */
  policyDropsCover?: DropsCover;
}

/**
 * Per peer, whether `actual` (read back from the kernel) holds the route, and for VXLAN the FDB
 * and neighbour entries, that `desired` has for the peer's block.
 */
export function peerKernelState(desired: Dataplane, peers: readonly PeerStatus[], actual: ActualDataplane): Map<string, PeerKernelState> {
  const out = new Map<string, PeerKernelState>();
  const routes = new Map(actual.routes.map((r) => [r.dst, r]));
  for (const p of peers) {
    if (p.transport === "unreachable") {
      out.set(p.node, "none");
      continue;
    }
    if (p.transport === "bgp") {
      // BIRD's to install: programmed once the BGP table routes the peer's block.
      out.set(p.node, (actual.bgpRoutes ?? []).some((r) => r.dst === p.subnet) ? "programmed" : "pending");
      continue;
    }
    const want = desired.routes.find((r) => r.dst === p.subnet);
    const have = routes.get(p.subnet);
    let ok = !!want && !!have && have.via === want.via && have.dev === want.dev;
    if (ok && want!.dev === VTEP_NAME) {
      const fdb = desired.fdb.find((f) => f.dst === p.publicIp);
      const neigh = desired.neigh.find((n) => n.ip === want!.via);
      ok = !!actual.vtep && !!fdb && !!neigh &&
        actual.fdb.some((f) => f.mac.toLowerCase() === fdb.mac.toLowerCase() && f.dst === fdb.dst) &&
        actual.neigh.some((n) => n.ip === neigh.ip && n.mac.toLowerCase() === neigh.mac.toLowerCase());
    }
    out.set(p.node, ok ? "programmed" : "pending");
  }
  return out;
}

export type AgentState = "ready" | "starting" | "stopped" | "not renewing" | "unknown" | "waiting";

export interface NodeView {
  name: string;
  publicIp: string;
  subnet: string;
  backend: string;
  /** MAC of the node's VTEP (vxlan, cross-subnet). */
  vtepMac?: string;
  agent: AgentState;
  /** One line for people: "stopped by SIGTERM 12s ago", "last renewal 31s ago (every 3s)". */
  agentDetail: string;
  /** Whether the agent enforces network policy (unknown without a status). */
  policy?: boolean;
  lastRenewal: string;
  leaseExpiresAt: string;
  /** The block lies outside the configured pod network (the network was changed with --force). */
  outsideNetwork?: string;
  /** Per peer, as the node itself reports it, with its kernel state. */
  peers: Array<{ node: string; transport: string; kernel?: PeerKernelState; reason?: string }>;
}

const ago = (ms: number): string => `${Math.max(0, Math.round(ms / 1000))}s ago`;

export function nodeView(lease: Lease, status: NodeStatus | undefined, network: string | undefined, now: number): NodeView {
  const ttlMs = status?.leaseTtlSeconds ? status.leaseTtlSeconds * 1000 : Math.max(0, lease.expiresAt - lease.renewedAt);
  const sinceRenewal = now - lease.renewedAt;
  let agent: AgentState;
  let agentDetail: string;
  if (status?.state === "stopped") {
    agent = "stopped";
    agentDetail = `stopped${status.stopped ? ` by ${status.stopped.why} ${ago(now - status.stopped.at)}` : ""}; its data plane stays as it was`;
  } else if (ttlMs > 0 && sinceRenewal > (ttlMs * 2) / 3) {
    // Renewals come every third of the lifetime: two missed ones mean the agent is gone or cut off.
    agent = "not renewing";
    agentDetail = `last renewal ${ago(sinceRenewal)} (due every ${Math.round(ttlMs / 3000)}s)`;
  } else if (!status) {
    agent = "unknown";
    agentDetail = "no status published (an agent of another version, or it has just started)";
  } else {
    agent = status.ready ? "ready" : "starting";
    agentDetail = `${agent}; renewed ${ago(sinceRenewal)}`;
  }
  const net = network ? parseCidr(network) : undefined;
  const block = parseCidr(lease.subnet);
  return {
    name: lease.node, publicIp: lease.publicIp, subnet: lease.subnet, backend: lease.backend, ...(lease.vtepMac ? { vtepMac: lease.vtepMac } : {}),
    agent, agentDetail,
    ...(status ? { policy: status.policy } : {}),
    lastRenewal: new Date(lease.renewedAt).toISOString(),
    leaseExpiresAt: new Date(lease.expiresAt).toISOString(),
    ...(net && block && !cidrCovers(net, block) ? { outsideNetwork: network } : {}),
    peers: (status?.peers ?? []).map((p) => ({
      node: p.node, transport: p.transport, ...(p.kernel ? { kernel: p.kernel } : {}), ...(p.reason ? { reason: p.reason } : {}),
    })),
  };
}

/** A node whose agent runs but holds no block yet (it says why): listed so that it is not invisible. */
export function waitingNodeView(status: NodeStatus, now: number): NodeView {
  return {
    name: status.node, publicIp: status.publicIp || "-", subnet: "-", backend: status.backend || "-",
    agent: "waiting", agentDetail: `waiting (reported ${ago(now - status.updatedAt)}): ${status.problem ?? "no block yet"}`,
    policy: status.policy, lastRenewal: "-", leaseExpiresAt: "-", peers: [],
  };
}

/** Parses a stored status; undefined for anything that is not one. */
export function parseNodeStatus(value: string): NodeStatus | undefined {
  try {
    const v = JSON.parse(value) as Partial<NodeStatus>;
    if (typeof v.node !== "string" || !Array.isArray(v.peers)) return undefined;
    const drops = parsePolicyDrops(v.policyDrops);
    const cover = parseDropsCover(v.policyDropsCover);
    return {
      node: v.node, subnet: String(v.subnet ?? ""), publicIp: String(v.publicIp ?? ""), backend: String(v.backend ?? ""),
      state: v.state === "stopped" || v.state === "waiting" ? v.state : "running", ready: v.ready === true, policy: v.policy === true,
      leaseTtlSeconds: typeof v.leaseTtlSeconds === "number" ? v.leaseTtlSeconds : 0,
      peers: v.peers.filter((p): p is PeerReport => typeof p === "object" && p !== null && typeof (p as PeerReport).node === "string"),
      updatedAt: typeof v.updatedAt === "number" ? v.updatedAt : 0,
      ...(typeof v.problem === "string" ? { problem: v.problem } : {}),
      ...(v.stopped && typeof v.stopped.at === "number" ? { stopped: { at: v.stopped.at, why: String(v.stopped.why) } } : {}),
      ...(v.bgp && typeof v.bgp === "object" && Array.isArray(v.bgp.sessions) ? { bgp: v.bgp } : {}),
      ...(drops ? { policyDrops: drops } : {}),
      ...(drops && cover ? { policyDropsCover: cover } : {}),
    };
  } catch {
    return undefined;
  }
}
