// The agent's services side (issue 12, first wiring): watches Services, EndpointSlices, Pods and
// Trellis' endpoint records in the datastore, derives the EndpointSlices of Services with a
// selector (when none is stored for them), compiles this node's ruleset and applies it with one
// `nft -f` that replaces table `inet trellis-svc` whole. The last Service gone: the table is
// deleted. No Service at all (and none seen since start): no nft call, nothing in the kernel.
import type { Datastore } from "../datastore/types.js";
import { WatchedObjects } from "../datastore/watched.js";
import type { ServicesKernel } from "../kernel/services.js";
import { ENDPOINT_PREFIX, modelFromObjects, POD_PREFIX } from "../policy/store-model.js";
import { compileServices, SERVICES_TABLE } from "./compile.js";
import { endpointSlicesFor } from "./endpoints.js";
import type { EndpointSlice, PodInfo, Service } from "./model.js";
import { parseEndpointSlice, parseService } from "./parse.js";
import { renderFull } from "./render.js";

export const SERVICE_PREFIX = "/trellis/services/";
export const ENDPOINTSLICE_PREFIX = "/trellis/endpointslices/";

export interface ServicesInput {
  services: Service[];
  slices: EndpointSlice[];
}

/** Services (allocated, not headless) and their slices from stored objects: stored slices, else derived ones. Pure. */
export function servicesFromObjects(kvs: Iterable<{ key: string; value: string }>, invalid: (key: string, why: string) => void): ServicesInput {
  const services: Service[] = [];
  const stored: EndpointSlice[] = [];
  const other: Array<{ key: string; value: string }> = [];
  for (const kv of kvs) {
    try {
      if (kv.key.startsWith(SERVICE_PREFIX)) {
        const s = parseService(JSON.parse(kv.value));
        if (s.clusterIP && s.clusterIP !== "None") services.push(s);
        else if (!s.clusterIP) invalid(kv.key, "no clusterIP allocated");
      } else if (kv.key.startsWith(ENDPOINTSLICE_PREFIX)) {
        stored.push(parseEndpointSlice(JSON.parse(kv.value)));
      } else other.push(kv);
    } catch (e) {
      invalid(kv.key, (e as Error).message);
    }
  }
  const slices = [...stored];
  if (services.some((s) => s.selector)) {
    const model = modelFromObjects(other, invalid);
    const pods: PodInfo[] = [];
    for (const p of model.pods) {
      const eps = model.endpoints.filter((e) => e.namespace === p.namespace && e.pod === p.name);
      if (eps.length === 0) continue;
      pods.push({
        namespace: p.namespace, name: p.name, labels: p.labels, node: eps[0]!.node, ips: eps.flatMap((e) => e.ips),
        ports: p.ports.map((x) => ({ ...(x.name ? { name: x.name } : {}), containerPort: x.containerPort, protocol: x.protocol })), attached: true,
      });
    }
    for (const s of services) {
      if (!s.selector) continue;
      if (stored.some((x) => x.namespace === s.namespace && x.service === s.name)) continue;
      slices.push(...endpointSlicesFor(s, pods));
    }
  }
  return { services, slices };
}

/** The script that replaces the services table with `script`'s content (or deletes it: undefined). */
export function replaceScript(body: string | undefined): string {
  const t = `inet ${SERVICES_TABLE}`;
  return body === undefined ? `delete table ${t}\n` : `add table ${t}\ndelete table ${t}\n${body}`;
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
}

export class ServicesSync {
  private readonly stored: WatchedObjects;
  private started = false;
  private pending = false;
  private running = false;
  /** What the kernel holds: undefined = no table of ours (never made, or deleted). */
  private applied: string | undefined;
  private readonly reported = new Map<string, string>();

  constructor(private readonly o: ServicesSyncOptions) {
    this.stored = new WatchedObjects({
      store: o.store, prefixes: [SERVICE_PREFIX, ENDPOINTSLICE_PREFIX, POD_PREFIX, ENDPOINT_PREFIX],
      onChange: () => this.recompute(), log: o.log, signal: o.signal,
    });
  }

  async start(): Promise<void> {
    await this.stored.start();
    this.started = true;
    this.recompute();
  }

  /** The script this node's table should be made of now; undefined without a Service. */
  desired(): string | undefined {
    const input = servicesFromObjects(this.stored.all.values(), (key, why) => {
      if (this.reported.get(key) === why) return;
      this.reported.set(key, why);
      this.o.log(`services: ignoring ${key}: ${why}`);
    });
    if (input.services.length === 0) return undefined;
    const ruleset = compileServices({ node: { name: this.o.node, addresses: this.o.nodeIps() }, services: input.services, slices: input.slices });
    return renderFull(ruleset);
  }

  private recompute(): void {
    if (!this.started || this.pending || this.o.signal.aborted) return;
    this.pending = true;
    queueMicrotask(() => {
      this.pending = false;
      void this.sync();
    });
  }

  private async sync(): Promise<void> {
    if (this.running) {
      this.pending = true;
      setTimeout(() => { this.pending = false; this.recompute(); }, 20).unref?.();
      return;
    }
    this.running = true;
    try {
      const want = this.desired();
      if (want === this.applied) return;
      // Nothing of ours in the kernel and nothing wanted: no nft call at all.
      if (want === undefined) {
        await this.o.kernel.apply(replaceScript(undefined));
        this.applied = undefined;
        this.o.log(`services: no Service left, table inet ${SERVICES_TABLE} deleted`);
        return;
      }
      await this.o.kernel.apply(replaceScript(want));
      this.applied = want;
      this.o.log(`services: table inet ${SERVICES_TABLE} programmed`);
    } catch (e) {
      this.o.log(`services: cannot apply (${(e as Error).message}); retrying`);
      setTimeout(() => this.recompute(), this.o.retryMs ?? 1000).unref?.();
    } finally {
      this.running = false;
    }
  }
}
