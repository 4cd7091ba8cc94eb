// The hops of a node whose kernel this diagnosis cannot read (another node of a real cluster, or
// one named remote with `--local-node` in a lab): judged from what that node's agent published
// about itself in the datastore (`status/<node>`, src/agent/status.ts) — its state, and per peer
// the transport and whether its own kernel holds the route (VXLAN: and the FDB and neighbour
// entries) as of its last sync. Never guessed: a missing report, or one older than the lease TTL,
// is "unknown", never ok and never broken. Pure (the clock is in the arguments).
import type { NodeStatus } from "../agent/status.js";
import type { Lease } from "../model/lease.js";

/** What the datastore holds about a node whose kernel is not read here. */
export interface ReportedNode {
  /** Its agent's published status; undefined = none in the datastore. */
  status?: NodeStatus;
  /** How long a report stays current (the lease TTL; agents republish every third of it), ms. */
  ttlMs: number;
  /** When its lease was last renewed (to say how long a node without status has been silent). */
  renewedAt?: number;
}

export type HopStatus = "ok" | "broken" | "warn" | "unknown";

export interface ReportedHop {
  hop: string;
  status: HopStatus;
  detail: string;
  evidence: string;
}

const secs = (ms: number): string => `${Math.max(0, Math.round(ms / 1000))} s`;

/** "reported by node2's agent 4 s ago". */
export const reportedBy = (node: string, status: NodeStatus, now: number): string => `reported by ${node}'s agent ${secs(now - status.updatedAt)} ago`;

/** Why a report cannot be used (missing or stale), or undefined when it is current or says stopped. */
export function unusable(node: string, r: ReportedNode, now: number): string | undefined {
  if (!r.status) {
    return `unknown: ${node}'s agent has not reported (no status/${node} in the datastore` +
      `${r.renewedAt !== undefined ? `; its lease was last renewed ${secs(now - r.renewedAt)} ago` : ""})`;
  }
  if (r.status.state === "stopped") return undefined;
  const age = now - r.status.updatedAt;
  if (age > r.ttlMs) return `unknown: ${node}'s agent has not reported for ${secs(age)} (older than the lease TTL of ${secs(r.ttlMs)})`;
  return undefined;
}

/** Whether the node's agent runs, by its own report. */
export function reportedAgentHop(node: string, r: ReportedNode, now: number): ReportedHop {
  const hop = `agent ${node}`;
  const why = unusable(node, r, now);
  if (why || !r.status) return { hop, status: "unknown", detail: why!, evidence: "datastore (no current report)" };
  const s = r.status;
  const evidence = reportedBy(node, s, now);
  if (s.state === "stopped") {
    return { hop, status: "broken", detail: `agent on ${node} stopped${s.stopped ? ` (by ${s.stopped.why} ${secs(now - s.stopped.at)} ago)` : ""}, as it reported; its data plane stays as it was`, evidence };
  }
  if (s.state === "waiting") return { hop, status: "broken", detail: `agent on ${node} is waiting, as it reported: ${s.problem ?? "no block yet"}`, evidence };
  const bgp = s.bgp ? `; BGP sessions established: ${s.bgp.sessions.filter((x) => x.state === "Established").length}/${s.bgp.sessions.length}` : "";
  if (!s.ready) return { hop, status: "warn", detail: `agent on ${node} runs but reports its first full sync not done${bgp}`, evidence };
  return { hop, status: "ok", detail: `agent on ${node} runs and is ready${bgp}`, evidence };
}

/**
 * Whether `node`'s kernel holds what its transport to `peer`'s block needs, as `node`'s agent
 * reported it after its last sync (a change made in the kernel since is seen at its next sync).
 */
export function reportedRouteHop(node: string, peer: string, peerLease: Lease | undefined, r: ReportedNode, now: number): ReportedHop {
  const hop = `route ${node} -> ${peer}`;
  const why = unusable(node, r, now);
  if (why || !r.status) return { hop, status: "unknown", detail: `route from ${node} to ${peer}'s block: ${why}`, evidence: "datastore (no current report)" };
  const s = r.status;
  const evidence = reportedBy(node, s, now);
  const p = s.peers.find((x) => x.node === peer);
  if (!p) return { hop, status: "broken", detail: `${node} reports no peer ${peer}: its agent has not programmed a route to ${peer}'s block`, evidence };
  if (peerLease && p.subnet !== peerLease.subnet) {
    return { hop, status: "broken", detail: `${node} reports ${peer} with block ${p.subnet}, but ${peer} holds ${peerLease.subnet}: its route goes to the old block`, evidence };
  }
  if (p.transport === "unreachable") return { hop, status: "broken", detail: `${node} reports ${peer} unreachable: ${p.reason ?? "no reason given"}`, evidence };
  const what = p.transport === "vxlan" ? "route/FDB/neighbour entries" : p.transport === "bgp" ? "route (learned over BGP)" : "route";
  if (p.kernel === "pending") {
    return { hop, status: "broken", detail: `${node} reports its ${what} to ${peer}'s block ${p.subnet} not programmed in its kernel (${p.transport})`, evidence };
  }
  if (p.kernel === "programmed") {
    return { hop, status: "ok", detail: `${node} reports its ${what} to ${peer}'s block ${p.subnet} programmed in its kernel (${p.transport}, as of its last sync)`, evidence };
  }
  return { hop, status: "unknown", detail: `${node} reports no kernel state for ${peer}'s block ${p.subnet} (${p.transport}, kernel ${p.kernel ?? "not said"})`, evidence };
}

/**
 * In a lab, where `node`'s kernel is read as well: does its agent's report agree with the kernel
 * read? Undefined when there is no current report about `peer` to compare. A disagreement is a
 * warning (the report is as of the agent's last sync: a change since shows at its next one).
 */
export function crossCheckHop(node: string, peer: string, kernelOk: boolean, r: ReportedNode, now: number): ReportedHop | undefined {
  if (unusable(node, r, now) || !r.status || r.status.state === "stopped") return undefined;
  const p = r.status.peers.find((x) => x.node === peer);
  if (!p || (p.kernel !== "programmed" && p.kernel !== "pending")) return undefined;
  const hop = `report ${node} -> ${peer}`;
  const evidence = reportedBy(node, r.status, now);
  if ((p.kernel === "programmed") === kernelOk) return { hop, status: "ok", detail: `${node}'s agent reports the same (${p.kernel})`, evidence };
  return {
    hop, status: "warn", evidence,
    detail: kernelOk
      ? `${node}'s agent reports its route to ${peer} pending, but its kernel holds it (its last sync failed, or it has not synced since)`
      : `${node}'s agent reports its route to ${peer} programmed as of its last sync, but its kernel does not hold it now: changed since (its next sync repairs it)`,
  };
}
