// The agent's services side (issue 12, first wiring): watches Services, EndpointSlices, Pods and
// Trellis' endpoint records in the datastore, derives the EndpointSlices of Services with a
// selector (when none is stored for them), compiles this node's ruleset and applies it with one
// `nft -f`: the first time a replacement of table `inet trellis-svc` whole, then only the
// difference (renderDelta: an endpoint change is element operations). The last Service gone: the
// table is deleted. No Service at all (and none seen since start): no nft call, nothing in the kernel.
import type { Datastore } from "../datastore/types.js";
import { WatchedObjects } from "../datastore/watched.js";
import type { ServicesKernel } from "../kernel/services.js";
import type { AgentMetrics } from "../metrics/sink.js";
import { ENDPOINT_PREFIX, modelFromObjects, POD_PREFIX, type ParseCache as ObjectParseCache } from "../policy/store-model.js";
import { compileServices, SERVICES_TABLE, type Ruleset } from "./compile.js";
import { endpointSlicesFor } from "./endpoints.js";
import type { EndpointSlice, PodInfo, Service } from "./model.js";
import { parseEndpointSlice, parseService } from "./parse.js";
import { renderDelta, renderFull } from "./render.js";

export const SERVICE_PREFIX = "/trellis/services/";
export const ENDPOINTSLICE_PREFIX = "/trellis/endpointslices/";

export interface ServicesInput {
  services: Service[];
  slices: EndpointSlice[];
}

/**
 * How the agents read stored Services: any IPv4 ClusterIP and any NodePort. Whoever allocated
 * them checked the range (`trellis apply` against the network config, or the Kubernetes API server
 * against its own --service-cluster-ip-range, which Trellis cannot see).
 */
export const STORED_SERVICE_OPTIONS = { serviceCidr: "0.0.0.0/0", nodePortRange: [1, 65535] } as const;

/**
 * Parses by key, reused while the stored value is the same, so a change re-parses one object, not
 * all: Services and EndpointSlices here, pods and namespaces in the policy model's own cache.
 */
export interface ParseCache {
  services: Map<string, { value: string; parsed: Service | EndpointSlice }>;
  objects: ObjectParseCache;
}
export const newParseCache = (): ParseCache => ({ services: new Map(), objects: new Map() });

/**
 * Services (allocated, not headless) and their slices from stored objects: stored slices, else
 * derived ones. Pure, but for `cache` (given: parses are reused, and it is left holding exactly
 * the objects seen this time).
 */
export function servicesFromObjects(kvs: Iterable<{ key: string; value: string }>, invalid: (key: string, why: string) => void, cache?: ParseCache): ServicesInput {
  const services: Service[] = [];
  const stored: EndpointSlice[] = [];
  const other: Array<{ key: string; value: string }> = [];
  const seen = new Set<string>();
  const parsed = <T extends Service | EndpointSlice>(kv: { key: string; value: string }, parse: (v: unknown) => T): T => {
    seen.add(kv.key);
    const hit = cache?.services.get(kv.key);
    if (hit && hit.value === kv.value) return hit.parsed as T;
    const p = parse(JSON.parse(kv.value));
    cache?.services.set(kv.key, { value: kv.value, parsed: p });
    return p;
  };
  for (const kv of kvs) {
    try {
      if (kv.key.startsWith(SERVICE_PREFIX)) {
        const s = parsed(kv, (v) => parseService(v, STORED_SERVICE_OPTIONS));
        if (s.clusterIP && s.clusterIP !== "None") services.push(s);
        else if (!s.clusterIP) invalid(kv.key, "no clusterIP allocated");
      } else if (kv.key.startsWith(ENDPOINTSLICE_PREFIX)) {
        stored.push(parsed(kv, parseEndpointSlice));
      } else other.push(kv);
    } catch (e) {
      invalid(kv.key, (e as Error).message);
    }
  }
  if (cache) {
    const others = new Set(other.map((kv) => kv.key));
    for (const k of cache.services.keys()) if (!seen.has(k)) cache.services.delete(k);
    for (const k of cache.objects.keys()) if (!others.has(k)) cache.objects.delete(k);
  }
  const slices = [...stored];
  if (services.some((s) => s.selector)) {
    const model = modelFromObjects(other, invalid, cache?.objects);
    // Indexed once (a change at 10k Services must not cost Services × pods).
    const endpointsOf = new Map<string, typeof model.endpoints>();
    for (const e of model.endpoints) {
      const k = `${e.namespace}/${e.pod}`;
      const list = endpointsOf.get(k);
      if (list) list.push(e);
      else endpointsOf.set(k, [e]);
    }
    const podsIn = new Map<string, PodInfo[]>();
    for (const p of model.pods) {
      const eps = endpointsOf.get(`${p.namespace}/${p.name}`) ?? [];
      if (eps.length === 0) continue;
      const info: PodInfo = {
        namespace: p.namespace, name: p.name, labels: p.labels, node: eps[0]!.node, ips: eps.flatMap((e) => e.ips),
        ports: p.ports.map((x) => ({ ...(x.name ? { name: x.name } : {}), containerPort: x.containerPort, protocol: x.protocol })), attached: true,
      };
      const list = podsIn.get(p.namespace);
      if (list) list.push(info);
      else podsIn.set(p.namespace, [info]);
    }
    const hasStored = new Set(stored.map((x) => `${x.namespace}/${x.service}`));
    for (const s of services) {
      if (!s.selector || hasStored.has(`${s.namespace}/${s.name}`)) continue;
      slices.push(...endpointSlicesFor(s, podsIn.get(s.namespace) ?? []));
    }
  }
  return { services, slices };
}

/** The script that replaces the services table with `script`'s content (or deletes it: undefined). */
export function replaceScript(body: string | undefined): string {
  const t = `inet ${SERVICES_TABLE}`;
  // `add` first: deleting a table that is not there (any more) is not an error then.
  return `add table ${t}\ndelete table ${t}\n${body ?? ""}`;
}

/**
 * What to send to bring the kernel from `applied` (what this agent last applied; undefined = no
 * table of ours, or unknown) to `want` (undefined = no Service). Pure.
 * - nothing of ours and nothing wanted: no script at all;
 * - the last Service gone: delete the table;
 * - first sync (or after a failed apply): replace the table whole in one transaction;
 * - else renderDelta: endpoint changes are element operations (see DESIGN.md).
 */
export function syncScript(applied: Ruleset | undefined, want: Ruleset | undefined, tableExists: boolean): { script: string; kind: "none" | "delete" | "full" | "delta" } {
  if (want === undefined) return tableExists ? { script: replaceScript(undefined), kind: "delete" } : { script: "", kind: "none" };
  if (applied === undefined) return { script: replaceScript(renderFull(want)), kind: "full" };
  const delta = renderDelta(applied, want);
  if (delta === undefined) return { script: renderFull(want, applied), kind: "full" };
  return { script: delta, kind: delta === "" ? "none" : "delta" };
}

export interface ServicesSyncOptions {
  node: string;
  nodeIps: () => string[];
  store: Datastore;
  kernel: ServicesKernel;
  log(line: string): void;
  signal: AbortSignal;
  /** Retry delay after a failed apply. */
  retryMs?: number;
  metrics?: AgentMetrics;
  /** How often to check that the table is still there (someone's `nft flush ruleset`); 0: never. */
  resyncMs?: number;
}

export class ServicesSync {
  private readonly stored: WatchedObjects;
  private started = false;
  private queued = false;
  /** Syncs run one after another on this chain; `idle()` waits for it. */
  private tail: Promise<void> = Promise.resolve();
  /** What the kernel holds as far as this agent knows: undefined = nothing known (never applied, or an apply failed). */
  private applied: Ruleset | undefined;
  /** Whether a table of ours may exist (applied once, not deleted since). */
  private tableExists = false;
  private readonly reported = new Map<string, string>();
  private readonly parsed = newParseCache();

  constructor(private readonly o: ServicesSyncOptions) {
    this.stored = new WatchedObjects({
      store: o.store, prefixes: [SERVICE_PREFIX, ENDPOINTSLICE_PREFIX, POD_PREFIX, ENDPOINT_PREFIX],
      onChange: () => this.recompute(), log: o.log, signal: o.signal,
    });
  }

  async start(): Promise<void> {
    await this.stored.start();
    // A table left by an earlier agent: replaced at the first sync, or deleted if no Service is left.
    this.tableExists = await this.o.kernel.tableExists(SERVICES_TABLE).catch(() => true);
    this.started = true;
    this.recompute();
    if (this.o.resyncMs) this.scheduleCheck(this.o.resyncMs);
  }

  /** Drift: our table gone while Services exist (a flushed ruleset) → replaced whole at once. */
  private scheduleCheck(ms: number): void {
    const t = setTimeout(() => {
      if (this.o.signal.aborted) return;
      this.tail = this.tail.then(async () => {
        if (this.applied === undefined) return;
        if (await this.o.kernel.tableExists(SERVICES_TABLE).catch(() => true)) return;
        this.o.log(`services: table inet ${SERVICES_TABLE} is gone from the kernel; programming it again`);
        this.applied = undefined;
        this.tableExists = false;
        this.o.metrics?.driftRepaired("services", 1);
        this.recompute();
      }).finally(() => this.scheduleCheck(ms));
    }, ms);
    t.unref?.();
  }

  /** Resolves once every change seen so far has been applied (or has failed). */
  idle(): Promise<void> {
    return this.tail;
  }

  /** This node's ruleset now; undefined without a Service. */
  desired(): Ruleset | undefined {
    const input = servicesFromObjects(this.stored.all.values(), (key, why) => {
      if (this.reported.get(key) === why) return;
      this.reported.set(key, why);
      this.o.log(`services: ignoring ${key}: ${why}`);
    }, this.parsed);
    if (input.services.length === 0) return undefined;
    return compileServices({ node: { name: this.o.node, addresses: this.o.nodeIps() }, services: input.services, slices: input.slices });
  }

  private recompute(): void {
    if (!this.started || this.queued || this.o.signal.aborted) return;
    this.queued = true;
    this.tail = this.tail.then(async () => {
      this.queued = false;
      await this.sync();
    });
  }

  private async sync(): Promise<void> {
    if (this.o.signal.aborted) return;
    const want = this.desired();
    const { script, kind } = syncScript(this.applied, want, this.tableExists);
    if (kind === "none") return;
    const started = performance.now();
    try {
      await this.o.kernel.apply(script);
      this.o.metrics?.reconciled("services", (performance.now() - started) / 1000, []);
      this.applied = want;
      this.tableExists = want !== undefined;
      this.o.log(kind === "delete" ? `services: no Service left, table inet ${SERVICES_TABLE} deleted`
        : `services: table inet ${SERVICES_TABLE} ${kind === "full" ? "programmed" : "updated"} (${kind}, ${script.split("\n").length - 1} lines)`);
    } catch (e) {
      // The kernel's state is not known now: the next attempt replaces the table whole.
      this.applied = undefined;
      this.tableExists = true;
      this.o.metrics?.reconciled("services", (performance.now() - started) / 1000, ["apply"]);
      this.o.log(`services: cannot apply (${(e as Error).message}); retrying`);
      setTimeout(() => this.recompute(), this.o.retryMs ?? 1000).unref?.();
    }
  }
}
