// What the agent's controllers report to metrics: plain method calls on an interface whose
// default does nothing, so the cores stay pure and need no registry in their tests. Values read
// at scrape time (lease expiry, peers, BGP sessions, ruleset size, rule counters, IPAM) are
// "sources": functions the agent registers, called only when /metrics is scraped.

export type SyncArea = "routes" | "policy" | "services";
/** Why a sync failed: the kernel could not be read, or some of its changes were refused. */
export type SyncErrorKind = "read" | "apply";

export interface PeerSample {
  transport: string;
  /** programmed | pending | none (the peer's kernel state as read back). */
  state: string;
}

export interface RuleCounterSample {
  policy: string;
  rule: string;
  action: string;
  packets: number;
  bytes: number;
}

export interface IpamBlockSample {
  block: string;
  used: number;
  free: number;
}

export interface MetricSources {
  /** When this node's lease expires (ms since the epoch); undefined without a lease. */
  leaseExpiresAt(): number | undefined;
  peers(): PeerSample[];
  /** BIRD's BGP sessions' states (Established, Active, ...). */
  bgpSessions(): string[];
  /** The programmed policy ruleset's size. */
  policyRuleset(): { rules: number; elements: number } | undefined;
  /** Per policy rule packet/byte counters read from nftables. */
  policyRuleCounters(): Promise<RuleCounterSample[]>;
  /** IPAM addresses used and free in this node's block. */
  ipam(): IpamBlockSample[];
}

export interface AgentMetrics {
  /** One reconcile run (route reconciler or policy applier), its duration and its failures. */
  reconciled(area: SyncArea, seconds: number, errorKinds: SyncErrorKind[]): void;
  /** Changes a periodic resync had to make because the kernel drifted from what was programmed. */
  driftRepaired(area: SyncArea, changes: number): void;
  /** A datastore watch reported "resync" (compaction, lost connection) and was answered by a list. */
  watchResync(watch: string): void;
  /** A datastore list/watch call failed (retried). */
  watchError(watch: string): void;
  leaseRenewal(ok: boolean): void;
  /** Seconds from a policy-relevant object change observed to the nft transaction applied. */
  policyProgrammed(seconds: number): void;
  /** One CNI call served over the agent's socket. */
  cniCall(command: string, result: string, seconds: number): void;
  /** Registers (or replaces) scrape-time sources. */
  setSources(s: Partial<MetricSources>): void;
}

export const noopMetrics: AgentMetrics = {
  reconciled: () => undefined,
  driftRepaired: () => undefined,
  watchResync: () => undefined,
  watchError: () => undefined,
  leaseRenewal: () => undefined,
  policyProgrammed: () => undefined,
  cniCall: () => undefined,
  setSources: () => undefined,
};
