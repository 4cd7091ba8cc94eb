// The agent's policy side: publishes this node's endpoints, watches namespaces, pods, policies and
// every node's endpoints, joins them into the policy model, compiles the node's ruleset and hands
// it to the applier.
//
// Endpoints reach the agent through a spool directory on the node: the CNI plugin writes one file
// per attachment (ADD) and removes it (DEL). The agent programs its own endpoints straight from
// there — no datastore round trip between a pod's ADD and its rules — and publishes them in the
// datastore (`endpoints/<node>/<container>/<ifname>`) for the other nodes' selector sets. ADD never
// waits for the datastore, so pods start during an outage too (fail closed until programmed).
import type { Datastore } from "../datastore/types.js";
import { WatchedObjects } from "../datastore/watched.js";
import type { PolicyKernel } from "../kernel/policy.js";
import { PolicyApplier } from "../policy/applier.js";
import { compilePolicy } from "../policy/compile.js";
import type { Endpoint, PolicyModel } from "../policy/model.js";
import { ENDPOINT_PREFIX, modelFromObjects, OBJECT_PREFIXES, type ParseCache } from "../policy/store-model.js";
import type { LocalEndpoints } from "./local-endpoints.js";
import type { Ruleset } from "../policy/compile.js";
import { noopMetrics, type AgentMetrics } from "../metrics/sink.js";
import { parseRuleCounters, rulesetSize } from "../metrics/nft-counters.js";

export { endpointFileName } from "./endpoint-file.js";

export interface PolicySyncOptions {
  node: string;
  nodeIps: () => string[];
  store: Datastore;
  kernel: PolicyKernel;
  /** This node's endpoints, from the plugin's spool. */
  local: LocalEndpoints;
  resyncMs: number;
  log(line: string): void;
  signal: AbortSignal;
  metrics?: AgentMetrics;
}

export class PolicySync {
  private readonly stored: WatchedObjects;
  private readonly published = new Map<string, string>();
  readonly applier: PolicyApplier;
  private started = false;
  private pending = false;
  private warnedBridge = new Set<string>();

  /** Metrics: when the oldest change not yet in a compiled ruleset was observed; each ruleset's oldest change. */
  private changeAt: number | undefined;
  private pendingSince: number | undefined;
  private readonly since = new WeakMap<Ruleset, number>();
  private programmed: Ruleset | undefined;

  constructor(private readonly o: PolicySyncOptions) {
    const m = o.metrics ?? noopMetrics;
    this.applier = new PolicyApplier(o.kernel, {
      resyncMs: o.resyncMs, log: o.log,
      onSync: (r) => m.reconciled("policy", r.ms / 1000, r.error ? ["apply"] : []),
      onApplied: (r) => {
        this.programmed = r.ruleset;
        if (r.drift) m.driftRepaired("policy", 1);
        const t = this.since.get(r.ruleset);
        if (t === undefined) return;
        this.since.delete(r.ruleset);
        if (this.pendingSince === t) this.pendingSince = undefined;
        m.policyProgrammed((Date.now() - t) / 1000);
      },
    });
    m.setSources({
      policyRuleset: () => (this.programmed ? rulesetSize(this.programmed) : undefined),
      policyRuleCounters: async () => parseRuleCounters((await o.kernel.listing()) ?? ""),
    });
    this.stored = new WatchedObjects({
      store: o.store, prefixes: OBJECT_PREFIXES, onChange: () => this.recompute(), log: o.log, signal: o.signal,
      onResync: () => m.watchResync("policy"), onListError: () => m.watchError("policy"),
    });
    o.signal.addEventListener("abort", () => this.applier.stop(), { once: true });
  }

  async start(): Promise<void> {
    await this.stored.start();
    this.o.local.start();
    this.started = true;
    this.recompute();
    this.o.local.onChange(() => {
      this.recompute();
      void this.publishLocal();
    });
    void this.publishLocal();
  }

  /** Makes the datastore's endpoints of this node equal to the spool. */
  private async publishLocal(): Promise<void> {
    const { store } = this.o;
    try {
      for (const [key, ep] of this.o.local.all) {
        const value = JSON.stringify(ep);
        if (this.published.get(key) === value && this.stored.all.get(key)?.value === value) continue;
        await store.put(key, value);
        this.published.set(key, value);
      }
      const mine = `${ENDPOINT_PREFIX}${this.o.node}/`;
      for (const key of [...this.stored.all.keys()]) {
        if (key.startsWith(mine) && !this.o.local.all.has(key)) {
          await store.delete(key);
          this.published.delete(key);
        }
      }
    } catch (e) {
      this.o.log(`cannot publish endpoints (${(e as Error).message}); will retry`);
      setTimeout(() => void this.publishLocal(), 1000).unref?.();
    }
  }

  /** The policy model as the datastore and the local spool know it. */
  model(): PolicyModel {
    // This node's own endpoints come from the spool (authoritative, and faster than a round trip).
    const mine = `${ENDPOINT_PREFIX}${this.o.node}/`;
    const kvs = [...this.stored.all.values()].filter((kv) => !kv.key.startsWith(mine));
    const keys = new Set(kvs.map((kv) => kv.key));
    for (const k of this.parsed.keys()) if (!keys.has(k)) this.parsed.delete(k);
    const model = modelFromObjects(kvs, (key, why) => this.invalid(key, why), this.parsed, (key, why) => this.o.log(`stored object ${key}: ${why}`));
    model.endpoints.push(...this.o.local.all.values());
    model.nodes = [{ name: this.o.node, ips: this.o.nodeIps() }];
    return model;
  }

  private readonly reported = new Map<string, string>();
  private readonly parsed: ParseCache = new Map();

  private invalid(key: string, why: string): void {
    if (this.reported.get(key) === why) return;
    this.reported.set(key, why);
    this.o.log(`ignoring invalid object ${key}: ${why}`);
  }

  /** Recomputes the ruleset (coalescing bursts into one compile per tick). Cheap for callers. */
  private recompute(): void {
    this.changeAt ??= Date.now();
    if (!this.started || this.pending) return;
    this.pending = true;
    queueMicrotask(() => {
      this.pending = false;
      const model = this.model();
      for (const ep of model.endpoints) {
        if (ep.node === this.o.node && ep.mode === "bridge" && !this.warnedBridge.has(ep.hostIf)) {
          this.warnedBridge.add(ep.hostIf);
          this.o.log(`endpoint ${ep.namespace}/${ep.pod} is in bridge mode: network policy is not enforced for it`);
        }
      }
      const ruleset = compilePolicy(model, this.o.node);
      // A ruleset replacing one not yet programmed carries that one's older change along.
      const since = Math.min(this.pendingSince ?? Infinity, this.changeAt ?? Date.now());
      this.changeAt = undefined;
      this.pendingSince = since;
      this.since.set(ruleset, since);
      this.applier.setDesired(ruleset);
    });
  }
}
