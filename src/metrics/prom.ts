// The agent's metrics on a prom-client registry (one per agent, never the global default): the
// event calls of `AgentMetrics` update counters and histograms, the scrape-time sources fill the
// gauges and the rule counters when /metrics is read.
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { countBy, SERIES, type SeriesDef } from "./series.js";
import type { AgentMetrics, MetricSources, SyncArea, SyncErrorKind } from "./sink.js";

type Labels = Record<string, string>;

export class PromAgentMetrics implements AgentMetrics {
  readonly registry = new Registry();
  private sources: Partial<MetricSources> = {};
  private readonly c: Record<string, Counter<string>> = {};
  private readonly h: Record<string, Histogram<string>> = {};

  /** `onSourceError` hears about a scrape-time source that threw (the scrape goes on without it). */
  constructor(private readonly onSourceError: (what: string, e: Error) => void = () => undefined) {
    const counter = (d: SeriesDef): Counter<string> => new Counter({ name: d.name, help: d.help, labelNames: [...d.labels], registers: [this.registry] });
    const histogram = (d: SeriesDef): Histogram<string> =>
      new Histogram({ name: d.name, help: d.help, labelNames: [...d.labels], buckets: [...(d.buckets ?? [])], registers: [this.registry] });
    for (const key of ["reconcileRuns", "reconcileErrors", "driftRepairs", "watchResyncs", "watchErrors", "leaseRenewals", "cniCalls"] as const) {
      this.c[key] = counter(SERIES[key]);
    }
    for (const key of ["reconcileDuration", "policyLatency", "cniDuration"] as const) this.h[key] = histogram(SERIES[key]);
    // Known label sets start at 0, so a first event is a visible increase rather than a new series.
    for (const area of ["routes", "policy"]) {
      this.c.reconcileRuns!.inc({ area }, 0);
      this.c.driftRepairs!.inc({ area }, 0);
      for (const kind of ["read", "apply"]) this.c.reconcileErrors!.inc({ area, kind }, 0);
    }
    for (const result of ["ok", "failed"]) this.c.leaseRenewals!.inc({ result }, 0);
    const self = this;
    const gauge = (d: SeriesDef, fill: (g: Gauge<string>) => void | Promise<void>): void => {
      new Gauge({
        name: d.name, help: d.help, labelNames: [...d.labels], registers: [this.registry],
        async collect() {
          this.reset();
          try {
            await fill(this);
          } catch (e) {
            self.onSourceError(d.name, e as Error);
          }
        },
      });
    };
    gauge(SERIES.leaseExpiry, (g) => {
      const at = this.sources.leaseExpiresAt?.();
      if (at !== undefined) g.set((at - Date.now()) / 1000);
    });
    gauge(SERIES.peers, (g) => {
      for (const { labels, count } of countBy(this.sources.peers?.() ?? [], (p) => [p.transport, p.state]).values()) {
        g.set({ transport: labels[0]!, state: labels[1]! }, count);
      }
    });
    gauge(SERIES.bgpSessions, (g) => {
      for (const { labels, count } of countBy(this.sources.bgpSessions?.() ?? [], (s) => [s]).values()) g.set({ state: labels[0]! }, count);
    });
    gauge(SERIES.policyRules, (g) => {
      const r = this.sources.policyRuleset?.();
      if (r) g.set(r.rules);
    });
    gauge(SERIES.policyElements, (g) => {
      const r = this.sources.policyRuleset?.();
      if (r) g.set(r.elements);
    });
    gauge(SERIES.ipamAddresses, (g) => {
      for (const b of this.sources.ipam?.() ?? []) {
        g.set({ block: b.block, state: "used" }, b.used);
        g.set({ block: b.block, state: "free" }, b.free);
      }
    });
    // nft's counters are the source of truth and only grow (until a table replacement resets them):
    // exported as counters whose value is set from the read, through one read per scrape.
    let pending: Promise<void> | undefined;
    const ruleCounter = (d: SeriesDef, pick: "packets" | "bytes"): void => {
      new Counter({
        name: d.name, help: d.help, labelNames: [...d.labels], registers: [this.registry],
        async collect() {
          if (!pending) {
            pending = self.readRuleCounters().finally(() => queueMicrotask(() => (pending = undefined)));
          }
          await pending;
          this.reset();
          for (const s of self.lastRuleCounters) this.inc({ policy: s.policy, rule: s.rule, action: s.action }, s[pick]);
        },
      });
    };
    ruleCounter(SERIES.rulePackets, "packets");
    ruleCounter(SERIES.ruleBytes, "bytes");
  }

  private lastRuleCounters: Array<{ policy: string; rule: string; action: string; packets: number; bytes: number }> = [];

  private async readRuleCounters(): Promise<void> {
    try {
      this.lastRuleCounters = (await this.sources.policyRuleCounters?.()) ?? [];
    } catch (e) {
      this.onSourceError(SERIES.rulePackets.name, e as Error);
      this.lastRuleCounters = [];
    }
  }

  reconciled(area: SyncArea, seconds: number, errorKinds: SyncErrorKind[]): void {
    this.c.reconcileRuns!.inc({ area });
    this.h.reconcileDuration!.observe({ area }, seconds);
    for (const kind of errorKinds) this.c.reconcileErrors!.inc({ area, kind });
  }

  driftRepaired(area: SyncArea, changes: number): void {
    if (changes > 0) this.c.driftRepairs!.inc({ area }, changes);
  }

  watchResync(watch: string): void {
    this.c.watchResyncs!.inc({ watch });
  }

  watchError(watch: string): void {
    this.c.watchErrors!.inc({ watch });
  }

  leaseRenewal(ok: boolean): void {
    this.c.leaseRenewals!.inc({ result: ok ? "ok" : "failed" });
  }

  policyProgrammed(seconds: number): void {
    this.h.policyLatency!.observe(seconds);
  }

  cniCall(command: string, result: string, seconds: number): void {
    const labels: Labels = { command, result };
    this.c.cniCalls!.inc(labels);
    this.h.cniDuration!.observe({ command }, seconds);
  }

  setSources(s: Partial<MetricSources>): void {
    this.sources = { ...this.sources, ...s };
  }

  /** The Prometheus text exposition of every series. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
