// Every series the agent exports: name, type, help and label names in one place (the README's
// "Metrics and health" table is this list). Prometheus naming: `trellis_` prefix, base units
// (`_seconds`, `_bytes`), `_total` on counters; labels only take a handful of values each.

export type SeriesType = "counter" | "gauge" | "histogram";

export interface SeriesDef {
  name: string;
  type: SeriesType;
  help: string;
  labels: readonly string[];
  buckets?: readonly number[];
}

const SYNC_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] as const;
const CNI_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

export const SERIES = {
  reconcileRuns: { name: "trellis_reconcile_runs_total", type: "counter", labels: ["area"], help: "Reconcile runs (area: routes = routes/VTEP/NAT reconciler, policy = nftables applier, services = Services table)." },
  reconcileDuration: { name: "trellis_reconcile_duration_seconds", type: "histogram", labels: ["area"], buckets: SYNC_BUCKETS, help: "Duration of one reconcile run: read the kernel back, diff, apply." },
  reconcileErrors: { name: "trellis_reconcile_errors_total", type: "counter", labels: ["area", "kind"], help: "Failed reconcile runs by kind (read: the kernel could not be read; apply: a change was refused). Retried with backoff." },
  driftRepairs: { name: "trellis_kernel_drift_repairs_total", type: "counter", labels: ["area"], help: "Kernel changes a periodic resync had to make because the kernel no longer held what was programmed (policy, services: table replacements)." },
  watchResyncs: { name: "trellis_datastore_watch_resyncs_total", type: "counter", labels: ["watch"], help: "Datastore watches that reported a resync (compaction, lost connection) and were answered by listing again." },
  watchErrors: { name: "trellis_datastore_watch_errors_total", type: "counter", labels: ["watch"], help: "Failed datastore lists after a watch resync (retried with backoff)." },
  leaseRenewals: { name: "trellis_lease_renewals_total", type: "counter", labels: ["result"], help: "Renewals of this node's lease (result: ok, failed)." },
  leaseExpiry: { name: "trellis_lease_expiry_seconds", type: "gauge", labels: [], help: "Seconds until this node's lease expires (negative: expired)." },
  peers: { name: "trellis_peers", type: "gauge", labels: ["transport", "state"], help: "Peer nodes by transport (vxlan, host-gw, bgp, unreachable) and kernel state (programmed, pending, none)." },
  policyLatency: { name: "trellis_policy_programming_seconds", type: "histogram", labels: [], buckets: SYNC_BUCKETS, help: "Seconds from a policy-relevant change observed (object, endpoint) to the nftables transaction applied." },
  policyRules: { name: "trellis_policy_ruleset_rules", type: "gauge", labels: [], help: "Rules in the programmed nftables policy table." },
  policyElements: { name: "trellis_policy_ruleset_set_elements", type: "gauge", labels: [], help: "Set elements in the programmed nftables policy table." },
  rulePackets: { name: "trellis_policy_rule_packets_total", type: "counter", labels: ["policy", "rule", "action"], help: "Packets matched by a policy rule (nft counters, summed over this node's pods)." },
  ruleBytes: { name: "trellis_policy_rule_bytes_total", type: "counter", labels: ["policy", "rule", "action"], help: "Bytes matched by a policy rule (nft counters, summed over this node's pods)." },
  cniCalls: { name: "trellis_cni_calls_total", type: "counter", labels: ["command", "result"], help: "CNI calls served over the agent's socket by command (ADD, DEL, CHECK, STATUS, GC, VERSION) and result (ok, error, fallback, refused)." },
  cniDuration: { name: "trellis_cni_call_duration_seconds", type: "histogram", labels: ["command"], buckets: CNI_BUCKETS, help: "Time the agent spent on one CNI call." },
  ipamAddresses: { name: "trellis_ipam_addresses", type: "gauge", labels: ["block", "state"], help: "IPAM addresses of this node's block by state (used, free); free excludes network, gateway and broadcast addresses." },
  bgpSessions: { name: "trellis_bgp_sessions", type: "gauge", labels: ["state"], help: "BGP sessions of this node's BIRD by state (Established, Active, Connect, Idle, ...)." },
} as const satisfies Record<string, SeriesDef>;

export type SeriesKey = keyof typeof SERIES;

const CNI_COMMANDS = new Set(["ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION"]);

/** A CNI command as a label value: one of the spec's commands, else "other" (keeps cardinality bounded). */
export const cniCommandLabel = (c: string | undefined): string => (c && CNI_COMMANDS.has(c) ? c : "other");

/** Counts of peers by (transport, state): the gauge's label sets. */
export function countBy<T>(items: readonly T[], key: (t: T) => string[]): Map<string, { labels: string[]; count: number }> {
  const out = new Map<string, { labels: string[]; count: number }>();
  for (const it of items) {
    const labels = key(it);
    const k = JSON.stringify(labels);
    const cur = out.get(k);
    if (cur) cur.count++;
    else out.set(k, { labels, count: 1 });
  }
  return out;
}
