// The node agent: leases this node's pod block, publishes how to reach it, watches every other
// node's lease and keeps the kernel's routes / VTEP / NAT in line with them.
//
// Handlers only update in-memory state and hand a freshly computed desired data plane to the
// reconciler; all kernel work happens there, after the first full datastore sync. Stopping the
// agent (or losing the datastore) freezes the data plane as it is: pods keep talking.
import * as fs from "node:fs";
import * as path from "node:path";
import { desiredState, usesVxlan, vtepMacFor, type Desired, type Underlay } from "../backends/desired.js";
import type { Datastore, KeyValue, WatchMessage } from "../datastore/types.js";
import type { DataplaneKernel } from "../kernel/dataplane.js";
import { ASSIGNED_PREFIX, CONFIG_KEY, chooseSubnet, LEASE_PREFIX, leaseKey, leaseValue, parseLease, STATUS_PREFIX, type Lease } from "../model/lease.js";
import { checkNodeAddress, isLeasable, podMtu, validateNetworkConfig, type NetworkConfig } from "../model/network.js";
import { Reconciler } from "../dataplane/reconciler.js";
import type { ActualDataplane } from "../dataplane/diff.js";
import type { Dataplane, PodRouteSpec } from "../dataplane/state.js";
import type { Endpoint } from "../policy/model.js";
import { parseSubnetFile } from "../ipam/config.js";
import { formatCidr, parseCidr } from "../model/ip.js";
import type { PolicyKernel } from "../kernel/policy.js";
import { PolicySync } from "./policy-sync.js";
import { ServicesSync } from "../services/controller.js";
import type { ServicesKernel } from "../kernel/services.js";
import { LocalEndpoints } from "./local-endpoints.js";
import { peerKernelState, type NodeStatus, type PeerKernelState, type PeerReport } from "./status.js";
import { BgpController } from "../bgp/controller.js";
import type { BirdKernel } from "../kernel/bird.js";
import { noopMetrics, type AgentMetrics } from "../metrics/sink.js";
import { ipamUsage, readIpamNames } from "../metrics/ipam-usage.js";
import { parseRuleCounters } from "../metrics/nft-counters.js";
import { RecentDrops } from "../metrics/policy-drops.js";

export type { NodeStatus } from "./status.js";

export interface AgentOptions {
  node: string;
  store: Datastore;
  kernel: DataplaneKernel;
  iface?: string;
  publicIp?: string;
  /** Where the CNI plugin reads this node's block and MTU. */
  subnetFile: string;
  leaseTtlSeconds: number;
  resyncMs: number;
  log(line: string): void;
  /** Aborting stops the agent; a string reason ("SIGTERM") is published as why it stopped. */
  signal: AbortSignal;
  /** Where the CNI plugin registers this node's endpoints (policy, and pod host route repair). */
  endpointDir: string;
  /** Network policy enforcement (nftables). */
  policy?: { kernel: PolicyKernel };
  /** Serve ClusterIP/NodePort Services (table inet trellis-svc); absent: this node leaves them to something else (kube-proxy). */
  services?: { kernel: ServicesKernel };
  /** BIRD for the bgp backend (its files' directory); without it a bgp backend cannot route. */
  bird?: BirdKernel;
  /** Called once, when the agent first becomes ready (see `health`): e.g. to install the CNI config. */
  onReady?: () => void;
  /** Where this node's metrics go (default: nowhere). */
  metrics?: AgentMetrics;
  /** The CNI IPAM data directory (`<dir>/<network>/<ip>`), read for the IPAM metrics. */
  ipamDataDir?: string;
  /** How often the policy rule counters are read for the status' recent drops (default 10 s, never less). */
  policyDropsEveryMs?: number;
}

/** Policy drops: counters read every 10 s at most, summed over the last minute. */
export const POLICY_DROPS_EVERY_MS = 10_000;
export const POLICY_DROPS_WINDOW_MS = 60_000;

export interface AgentHealth {
  /** The agent's loops turn (a kernel sync happened recently, or it is still starting). */
  live: boolean;
  /** Pods on this node can be networked: block held, first full sync done, policy programmed. */
  ready: boolean;
  reason: string;
}

export class Agent {
  private config: NetworkConfig | undefined;
  private underlay: Underlay | undefined;
  private lease: Lease | undefined;
  private leaseRevision = 0;
  private readonly leases = new Map<string, Lease>();
  private readonly reconciler: Reconciler;
  private readonly local: LocalEndpoints;
  private synced = false;
  private lastPeerReport = "";
  private renewTimer: ReturnType<typeof setTimeout> | undefined;
  /** Since when the datastore has been unreachable (undefined: it answers). */
  private storeDownSince: number | undefined;
  private desired: Desired | undefined;
  private desiredKey = "";
  private kernelState = new Map<string, PeerKernelState>();
  private ready = false;
  private lastStatus = "";
  policy: PolicySync | undefined;
  private bgp: BgpController | undefined;

  private readonly m: AgentMetrics;
  /** The desired state of the last sync that ended without errors (a later sync of it with changes repairs drift). */
  private cleanDesired: Dataplane | undefined;

  constructor(private readonly o: AgentOptions) {
    this.m = o.metrics ?? noopMetrics;
    this.m.setSources({
      leaseExpiresAt: () => this.lease?.expiresAt,
      peers: () => (this.desired?.peers ?? []).map((p) => ({ transport: p.transport, state: this.kernelState.get(p.node) ?? "pending" })),
      bgpSessions: () => (this.bgp?.status()?.sessions ?? []).map((s) => s.state),
      ipam: () => (o.ipamDataDir && this.lease ? [ipamUsage(this.lease.subnet, readIpamNames(o.ipamDataDir))] : []),
    });
    this.reconciler = new Reconciler(o.kernel, {
      resyncMs: o.resyncMs, retryMinMs: 200, retryMaxMs: 10_000, log: (l) => o.log(l), onSync: (r) => this.afterSync(r),
    });
    this.local = new LocalEndpoints({ node: o.node, dir: o.endpointDir, log: o.log, signal: o.signal });
    o.signal.addEventListener("abort", () => this.stop(), { once: true });
  }

  get subnet(): string | undefined {
    return this.lease?.subnet;
  }

  /** Runs until the signal aborts. */
  async run(): Promise<void> {
    const { store, log } = this.o;
    this.config = await this.waitForConfig();
    this.phase = "leasing a block";
    const u = await this.o.kernel.underlay({ iface: this.o.iface, publicIp: this.o.publicIp });
    log(`underlay: ${u.dev} ${u.cidr} mtu ${u.mtu} (${u.why})`);
    const bad = checkNodeAddress(this.config, u.cidr.split("/")[0]!);
    if (bad) throw new Error(bad);
    this.underlay = { dev: u.dev, cidr: u.cidr, mtu: u.mtu };

    await this.acquireLease();
    this.writeSubnetFile();

    const listed = await store.list(LEASE_PREFIX);
    this.replaceLeases(listed.items);
    this.local.start();
    this.local.onChange(() => this.recompute());
    if (this.o.bird) {
      this.bgp = new BgpController({
        node: this.o.node, store, bird: this.o.bird, log, signal: this.o.signal, resyncMs: this.o.resyncMs,
        onChange: () => {
          this.recompute(true);
          this.reconciler.kick();
          void this.publishStatus();
        },
      });
      await this.bgp.start();
    }
    this.synced = true;
    this.recompute();
    store.watch(LEASE_PREFIX, listed.revision, (m) => this.onLeaseWatch(m), this.o.signal);
    const cfg = await store.get(CONFIG_KEY);
    store.watch(CONFIG_KEY, Math.max(listed.revision, cfg?.modRevision ?? 0), (m) => this.onConfigWatch(m), this.o.signal);
    this.scheduleRenew();
    if (this.o.policy) {
      this.policy = new PolicySync({
        node: this.o.node, nodeIps: () => [this.underlay!.cidr.split("/")[0]!], store, kernel: this.o.policy.kernel,
        local: this.local, resyncMs: this.o.resyncMs, log, signal: this.o.signal, metrics: this.m,
      });
      await this.policy.start();
      log(`network policy: enforcing with nftables table inet trellis; endpoints from ${this.o.endpointDir}`);
      this.scheduleDropsReading(0);
    } else {
      log("network policy: NOT enforced on this node (--no-policy)");
    }
    if (this.o.services) await new ServicesSync({ node: this.o.node, nodeIps: () => [this.underlay!.cidr.split("/")[0]!], store, kernel: this.o.services.kernel, log, signal: this.o.signal, resyncMs: this.o.resyncMs, metrics: this.m }).start();
    else log("services: NOT served on this node (--no-services)");
    this.started = true;
    this.maybeAnnounceReady();
    if (!this.o.signal.aborted) {
      await new Promise<void>((resolve) => this.o.signal.addEventListener("abort", () => resolve(), { once: true }));
    }
    // Say that this agent stopped (its data plane stays): `trellis nodes` must not show it as live.
    const why = typeof this.o.signal.reason === "string" ? this.o.signal.reason : "a stop request";
    await Promise.race([this.publishStatus({ at: Date.now(), why }), new Promise((r) => setTimeout(r, 2000).unref())]);
  }

  private phase = "waiting for the network config";
  private started = false;
  private lastSyncAt = 0;
  private readyAnnounced = false;

  /** What the health endpoints report (pure over the agent's state and the clock). */
  health(now = Date.now()): AgentHealth {
    const stale = Math.max(3 * this.o.resyncMs, 60_000);
    if (this.started && this.lastSyncAt > 0 && now - this.lastSyncAt > stale) {
      return { live: false, ready: false, reason: `no kernel sync for ${Math.round((now - this.lastSyncAt) / 1000)}s` };
    }
    if (!this.lease) return { live: true, ready: false, reason: this.phase };
    if (!this.ready) return { live: true, ready: false, reason: "first kernel sync not done" };
    if (!this.started) return { live: true, ready: false, reason: "network policy not yet programmed" };
    return { live: true, ready: true, reason: `ready: ${this.lease.subnet}` };
  }

  private maybeAnnounceReady(): void {
    if (this.readyAnnounced || !this.health().ready) return;
    this.readyAnnounced = true;
    this.writeSubnetFile();
    this.o.onReady?.();
  }

  private stop(): void {
    if (this.renewTimer) clearTimeout(this.renewTimer);
    if (this.dropsTimer) clearTimeout(this.dropsTimer);
    this.reconciler.stop();
  }

  /** A stored field this version does not know is logged and ignored (another version wrote it). */
  private readonly storedConfigOptions = { onUnknownField: (m: string) => this.o.log(`network config: ${m}; ignored by this agent version`) };

  private async waitForConfig(): Promise<NetworkConfig> {
    let warned = false;
    for (;;) {
      try {
        const kv = await this.o.store.get(CONFIG_KEY);
        if (kv) return validateNetworkConfig(JSON.parse(kv.value), this.storedConfigOptions);
        if (!warned) this.o.log("no network config in the datastore yet: run `trellis network init`; waiting");
      } catch (e) {
        if (!warned) this.o.log(`cannot read the network config (${(e as Error).message}); retrying`);
      }
      warned = true;
      if (this.o.signal.aborted) throw new Error("stopped");
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  private previousSubnet(): string | undefined {
    try {
      const first = parseSubnetFile(fs.readFileSync(this.o.subnetFile, "utf8"), this.o.subnetFile).subnets[0];
      return first ? formatCidr(first) : undefined;
    } catch {
      return undefined;
    }
  }

  private leaseFor(subnet: string): Lease {
    const c = this.config!;
    const now = Date.now();
    return {
      subnet,
      node: this.o.node,
      publicIp: this.underlay!.cidr.split("/")[0]!,
      backend: c.backend.type,
      ...(usesVxlan(c) ? { vtepMac: vtepMacFor(this.o.node) } : {}),
      renewedAt: now,
      expiresAt: now + this.o.leaseTtlSeconds * 1000,
    };
  }

  /** Keeps this node's block if it still holds it (or held it before a restart), else takes a free one. */
  private async acquireLease(): Promise<void> {
    if (this.config!.blocks === "assigned") return this.acquireAssigned();
    const { store, log } = this.o;
    for (let attempt = 1; ; attempt++) {
      const listed = await store.list(LEASE_PREFIX);
      const all = listed.items.map((kv) => ({ kv, lease: parseLease(kv.key, kv.value) }));
      const mine = all.find((x) => x.lease?.node === this.o.node);
      const ttl = { ttlSeconds: this.o.leaseTtlSeconds };
      if (mine?.lease && isLeasable(this.config!, mine.lease.subnet)) {
        const l = this.leaseFor(mine.lease.subnet);
        const kv = await store.update(mine.kv.key, leaseValue(l), mine.kv.modRevision, ttl);
        if (kv) return this.took(l, kv, "kept its lease");
        continue;
      }
      const taken = new Set(all.filter((x) => x.lease).map((x) => x.lease!.subnet));
      const subnet = chooseSubnet(this.config!, taken, this.previousSubnet(), Math.random);
      if (!subnet) throw new Error(`no free block of /${this.config!.subnetLen} left in ${this.config!.network}`);
      const l = this.leaseFor(subnet);
      const kv = await store.create(leaseKey(subnet), leaseValue(l), ttl);
      if (kv) {
        // A block this node held that the network no longer has is freed: one lease per node.
        if (mine?.lease) {
          await store.delete(mine.kv.key, mine.kv.modRevision);
          log(`freed ${mine.lease.subnet}, which lies outside the network ${this.config!.network}/${this.config!.subnetLen}`);
        }
        return this.took(l, kv, "leased a new block");
      }
      log(`block ${subnet} was taken by another node just now; trying again (attempt ${attempt})`);
    }
  }

  /**
   * `blocks: assigned`: the node leases exactly the block assigned to it, and waits — saying why
   * in its status, so `trellis nodes` (and on Kubernetes the Node's condition) shows it — while it
   * has none, the assigned block is not one of the network's, or another node holds it.
   */
  private async acquireAssigned(): Promise<void> {
    const { store, log, node } = this.o;
    let said = "";
    for (;;) {
      const [assigned, leases] = await Promise.all([store.get(`${ASSIGNED_PREFIX}${node}`), store.list(LEASE_PREFIX)]);
      const block = assigned ? parseCidr(assigned.value.trim(), true) : undefined;
      const subnet = block ? formatCidr(block) : undefined;
      let problem: string | undefined;
      if (!assigned) problem = `no block is assigned to node ${node} (network config blocks: assigned; on Kubernetes the Node has no spec.podCIDR: is kube-controller-manager running with --allocate-node-cidrs?)`;
      else if (!subnet) problem = `the block assigned to node ${node} is not a CIDR: ${JSON.stringify(assigned.value)}`;
      else if (!isLeasable(this.config!, subnet)) {
        problem = `the block assigned to node ${node}, ${subnet}, is not a /${this.config!.subnetLen} block of the pod network ${this.config!.network} (on Kubernetes: --cluster-cidr and --node-cidr-mask-size must match the network config)`;
      }
      const mine = leases.items.map((kv) => ({ kv, lease: parseLease(kv.key, kv.value) })).filter((x) => x.lease?.node === node);
      const current = subnet ? leases.items.find((kv) => kv.key === leaseKey(subnet)) : undefined;
      const holder = current ? parseLease(current.key, current.value)?.node : undefined;
      if (!problem && holder !== undefined && holder !== node) problem = `the block assigned to node ${node}, ${subnet}, is leased by node ${holder}`;
      if (!problem) {
        const l = this.leaseFor(subnet!);
        const ttl = { ttlSeconds: this.o.leaseTtlSeconds };
        const kv = current ? await store.update(current.key, leaseValue(l), current.modRevision, ttl) : await store.create(leaseKey(subnet!), leaseValue(l), ttl);
        if (kv) {
          for (const old of mine.filter((x) => x.kv.key !== kv.key)) await store.delete(old.kv.key, old.kv.modRevision);
          return this.took(l, kv, current ? "kept its assigned block" : "leased its assigned block");
        }
        continue;
      }
      this.phase = `waiting: ${problem}`;
      if (problem !== said) log(`waiting: ${problem}`);
      said = problem;
      await this.publishWaiting(problem);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 2000);
        this.o.signal.addEventListener("abort", () => { clearTimeout(t); resolve(); }, { once: true });
      });
      if (this.o.signal.aborted) throw new Error("stopped");
    }
  }

  private async publishWaiting(problem: string): Promise<void> {
    const s: NodeStatus = {
      node: this.o.node, subnet: "", publicIp: this.underlay?.cidr.split("/")[0] ?? "", backend: this.config?.backend.type ?? "",
      state: "waiting", problem, ready: false, policy: !!this.o.policy, leaseTtlSeconds: this.o.leaseTtlSeconds, peers: [], updatedAt: Date.now(),
    };
    try {
      await this.o.store.put(`${STATUS_PREFIX}${this.o.node}`, JSON.stringify(s), { ttlSeconds: this.o.leaseTtlSeconds });
    } catch (e) {
      this.o.log(`cannot publish status: ${(e as Error).message}`);
    }
  }

  private took(l: Lease, kv: KeyValue, how: string): void {
    this.lease = l;
    this.leaseRevision = kv.modRevision;
    this.leases.set(l.subnet, l);
    this.o.log(`${how}: ${l.subnet} (public IP ${l.publicIp}, backend ${l.backend}${l.vtepMac ? `, VTEP MAC ${l.vtepMac}` : ""}, ttl ${this.o.leaseTtlSeconds}s)`);
  }

  private writeSubnetFile(): void {
    const mtu = podMtu(this.config!, this.underlay!.mtu);
    const text = [
      "# written by the trellis agent: this node's pod block, read by the CNI plugin",
      `TRELLIS_NETWORK=${this.config!.network}`,
      `TRELLIS_SUBNET=${this.lease!.subnet}`,
      `TRELLIS_MTU=${mtu}`,
      `TRELLIS_NODE=${this.o.node}`,
      `TRELLIS_ENDPOINT_DIR=${this.o.endpointDir}`,
      // The plugin refuses bridge-mode pods where policy is enforced (bridged traffic escapes it).
      `TRELLIS_POLICY=${this.o.policy ? "on" : "off"}`,
      // CNI STATUS fails (code 50) until the first full sync: the runtime reports NetworkReady then.
      `TRELLIS_READY=${this.readyAnnounced ? "true" : "false"}`,
      "",
    ].join("\n");
    fs.mkdirSync(path.dirname(this.o.subnetFile), { recursive: true });
    const tmp = `${this.o.subnetFile}.tmp`;
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, this.o.subnetFile);
  }

  private scheduleRenew(): void {
    const every = Math.max(1000, (this.o.leaseTtlSeconds * 1000) / 3);
    this.renewTimer = setTimeout(() => {
      void this.renew().finally(() => {
        if (!this.o.signal.aborted) this.scheduleRenew();
      });
    }, every);
  }

  private async renew(): Promise<void> {
    if (!this.lease) return;
    const l = this.leaseFor(this.lease.subnet);
    try {
      const kv = await this.o.store.update(leaseKey(l.subnet), leaseValue(l), this.leaseRevision, { ttlSeconds: this.o.leaseTtlSeconds });
      this.m.leaseRenewal(true);
      if (this.storeDownSince !== undefined) {
        this.o.log(`datastore reachable again after ${Math.round((Date.now() - this.storeDownSince) / 1000)}s; lease ${l.subnet} renewed`);
        this.storeDownSince = undefined;
      }
      if (kv) {
        this.lease = l;
        this.leaseRevision = kv.modRevision;
      } else {
        this.o.log(`lease ${l.subnet} changed or lapsed in the datastore: taking it again`);
        await this.acquireLease();
        if (this.lease.subnet !== l.subnet) this.o.log(`WARNING: this node's block moved from ${l.subnet} to ${this.lease.subnet}; pods keep their old addresses until restarted`);
        this.writeSubnetFile();
        this.recompute();
      }
      this.lastPublished = 0;
      await this.publishStatus();
    } catch (e) {
      // The datastore is unreachable: keep the data plane as it is and try again later.
      this.m.leaseRenewal(false);
      if (this.storeDownSince === undefined) {
        this.storeDownSince = Date.now();
        this.o.log(`datastore unreachable (${(e as Error).message}): cannot renew lease ${l.subnet}; the data plane stays as it is, retrying`);
      } else {
        this.o.log(`cannot renew lease ${l.subnet}: ${(e as Error).message} (datastore unreachable for ${Math.round((Date.now() - this.storeDownSince) / 1000)}s)`);
      }
    }
  }

  private replaceLeases(items: KeyValue[]): void {
    this.leases.clear();
    for (const kv of items) {
      const l = parseLease(kv.key, kv.value);
      if (l) this.leases.set(l.subnet, l);
    }
  }

  private onLeaseWatch(m: WatchMessage): void {
    if ("resync" in m) {
      this.m.watchResync("leases");
      this.o.log(`lease watch: ${m.reason}; listing again`);
      this.relistLeases();
      return;
    }
    for (const ev of m.events) {
      if (ev.type === "put") {
        const l = parseLease(ev.kv.key, ev.kv.value);
        if (l) this.leases.set(l.subnet, l);
        if (l && this.lease && l.subnet === this.lease.subnet) this.leaseRevision = ev.kv.modRevision;
      } else {
        const subnet = [...this.leases.keys()].find((s) => leaseKey(s) === ev.key);
        if (subnet) this.leases.delete(subnet);
      }
    }
    this.recompute();
  }

  /**
   * After a watch resync the changes in between may be gone (compaction): only a list brings the
   * lease set back in line, so a failed list is retried until one succeeds (or the agent stops).
   */
  private relistLeases(delayMs = 500): void {
    void this.o.store.list(LEASE_PREFIX).then((r) => {
      this.replaceLeases(r.items);
      this.recompute();
    }, (e: unknown) => {
      this.m.watchError("leases");
      this.o.log(`cannot list leases: ${(e as Error).message}; retrying in ${delayMs} ms`);
      setTimeout(() => {
        if (!this.o.signal.aborted) this.relistLeases(Math.min(delayMs * 2, 5_000));
      }, delayMs).unref();
    });
  }

  private onConfigWatch(m: WatchMessage): void {
    if ("resync" in m) {
      // A change may have been missed: read the config afresh (retrying while the store is away).
      this.m.watchResync("config");
      const reread = (delayMs: number): void => {
        void this.o.store.get(CONFIG_KEY).then((kv) => kv && this.applyConfig(kv.value), () => {
          this.m.watchError("config");
          setTimeout(() => !this.o.signal.aborted && reread(Math.min(delayMs * 2, 5_000)), delayMs).unref();
        });
      };
      reread(500);
      return;
    }
    for (const ev of m.events) if (ev.type === "put") this.applyConfig(ev.kv.value);
  }

  private applyConfig(value: string): void {
    try {
      const next = validateNetworkConfig(JSON.parse(value), this.storedConfigOptions);
      if (next.network !== this.config!.network || next.subnetLen !== this.config!.subnetLen) {
        this.o.log(`network changed to ${next.network}/${next.subnetLen}: restart the agents to re-lease blocks; keeping ${this.config!.network}`);
        return;
      }
      if (JSON.stringify(next) === JSON.stringify(this.config)) return;
      this.o.log(`network config changed: backend ${this.config!.backend.type} -> ${next.backend.type}, natOutgoing ${next.natOutgoing}`);
      this.config = next;
      this.writeSubnetFile();
      void this.renewNow();
      this.recompute();
    } catch (e) {
      this.o.log(`ignoring invalid network config: ${(e as Error).message}`);
    }
  }

  private async renewNow(): Promise<void> {
    if (this.renewTimer) clearTimeout(this.renewTimer);
    await this.renew();
    if (!this.o.signal.aborted) this.scheduleRenew();
  }

  /**
   * Recomputes the desired data plane from the current lease set: cheap, no kernel access.
   * `fromBgp`: the BGP controller asked (its plan changed), so it is not told again.
   */
  private recompute(fromBgp = false): void {
    if (!this.synced || !this.config || !this.lease || !this.underlay) return;
    const peers = [...this.leases.values()].filter((l) => l.subnet !== this.lease!.subnet);
    const d = desiredState({
      config: this.config, self: this.lease, peers, underlay: this.underlay, podMtu: podMtu(this.config, this.underlay.mtu),
    });
    d.dataplane.podRoutes = podHostRoutes(this.local.all.values());
    if (!fromBgp) {
      this.bgp?.update(this.config.backend.type === "bgp"
        ? { config: this.config, self: this.lease, underlayCidr: this.underlay.cidr, leases: [...this.leases.values()] } : undefined);
    }
    if (this.config.backend.type === "bgp") {
      // Which peers BGP can reach is the BGP plan's to say (nodes behind routers need external peers).
      const plan = this.bgp?.peerTransports();
      d.peers = d.peers.map((p) => {
        if (p.transport === "unreachable") return p;
        const t = plan?.get(p.node) ?? { transport: "unreachable" as const, reason: this.bgp ? "not yet planned" : "this agent runs without BIRD (--no-bgp)" };
        return { ...p, transport: t.transport, ...(t.reason ? { reason: t.reason } : {}) };
      });
    }
    // Only a changed desired state starts a sync (a peer's renewal changes nothing here); drift
    // is repaired by the periodic resync.
    const key = JSON.stringify(d);
    if (key !== this.desiredKey) {
      this.desiredKey = key;
      this.desired = d;
      this.reconciler.setDesired(d.dataplane);
    }
    const report = JSON.stringify(d.peers);
    if (report !== this.lastPeerReport) {
      this.lastPeerReport = report;
      for (const p of d.peers) {
        this.o.log(`peer ${p.node} ${p.subnet} via ${p.publicIp}: ${p.transport}${p.reason ? ` (${p.reason})` : ""}`);
      }
      void this.publishStatus();
    }
  }

  /** After each sync: which peers the kernel now serves, published when that changes. */
  private afterSync(r: { steps: unknown[]; errors: string[]; ms: number; actual?: ActualDataplane; desired?: Dataplane }): void {
    this.m.reconciled("routes", r.ms / 1000, r.errors.length === 0 ? [] : [r.actual ? "apply" : "read"]);
    if (r.desired && r.desired === this.cleanDesired && r.steps.length > 0) this.m.driftRepaired("routes", r.steps.length);
    if (r.errors.length === 0) this.cleanDesired = r.desired;
    const d = this.desired;
    if (!d || !r.actual || r.desired !== d.dataplane) return;
    // A sync that applied everything without an error leaves the kernel as desired; otherwise —
    // and always for BGP peers, whose routes BIRD installs — what the read found is what is known.
    const read = peerKernelState(d.dataplane, d.peers, r.actual);
    this.kernelState = new Map(d.peers.map((p) => [p.node,
      p.transport === "bgp" || r.errors.length > 0 ? read.get(p.node)! : p.transport === "unreachable" ? "none" : "programmed"]));
    this.lastSyncAt = Date.now();
    if (r.errors.length === 0) this.ready = true;
    this.maybeAnnounceReady();
    void this.publishStatus();
  }

  private async publishStatus(stopped?: NodeStatus["stopped"]): Promise<void> {
    if (!this.lease) return;
    const peers: PeerReport[] = (this.desired?.peers ?? []).map((p) => ({ ...p, kernel: this.kernelState.get(p.node) ?? "pending" }));
    const s: NodeStatus = {
      node: this.o.node, subnet: this.lease.subnet, publicIp: this.lease.publicIp, backend: this.lease.backend,
      state: stopped ? "stopped" : "running", ready: this.ready && !stopped, policy: !!this.o.policy, leaseTtlSeconds: this.o.leaseTtlSeconds,
      peers, updatedAt: Date.now(), ...(stopped ? { stopped } : {}),
    };
    const bgp = this.bgp?.status();
    if (bgp) s.bgp = bgp;
    const drops = this.o.policy ? this.drops.report() : undefined;
    if (drops) {
      s.policyDrops = drops.drops;
      s.policyDropsCover = drops.cover;
    }
    // The drops' interval moves with every reading: only changed drops make a status worth writing.
    const text = JSON.stringify({ ...s, updatedAt: 0, policyDropsCover: undefined });
    // Renewals republish (the key has the lease's lifetime); otherwise only changes are written.
    if (text === this.lastStatus && !stopped && Date.now() - this.lastPublished < (this.o.leaseTtlSeconds * 1000) / 3) return;
    try {
      await this.o.store.put(`${STATUS_PREFIX}${this.o.node}`, JSON.stringify(s), { ttlSeconds: this.o.leaseTtlSeconds });
      this.lastStatus = text;
      this.lastPublished = Date.now();
    } catch (e) {
      if (this.storeDownSince === undefined) this.o.log(`cannot publish status: ${(e as Error).message}`);
    }
  }

  private lastPublished = 0;

  private readonly drops = new RecentDrops(POLICY_DROPS_WINDOW_MS);
  private dropsTimer: ReturnType<typeof setTimeout> | undefined;
  private publishedDrops = "";
  private dropsReadFailed = false;

  /**
   * Reads the policy rule counters (the table listing the metrics read too) every ~10 s; the
   * status is republished only when the recent drops changed, so never more often than that.
   */
  private scheduleDropsReading(delayMs: number): void {
    if (this.o.signal.aborted || !this.o.policy) return;
    const every = Math.max(POLICY_DROPS_EVERY_MS, this.o.policyDropsEveryMs ?? 0);
    this.dropsTimer = setTimeout(() => {
      void this.readDrops().finally(() => this.scheduleDropsReading(every));
    }, delayMs);
    this.dropsTimer.unref?.();
  }

  private async readDrops(): Promise<void> {
    try {
      const samples = parseRuleCounters((await this.o.policy!.kernel.listing()) ?? "");
      this.dropsReadFailed = false;
      this.drops.observe(samples, Date.now());
    } catch (e) {
      if (!this.dropsReadFailed) this.o.log(`cannot read the policy rule counters: ${(e as Error).message}`);
      this.dropsReadFailed = true;
      return;
    }
    const r = this.drops.report();
    const text = JSON.stringify(r?.drops);
    if (r && text !== this.publishedDrops) {
      this.publishedDrops = text;
      await this.publishStatus();
    }
  }

  /** For tests and benchmarks: resolves once the kernel matches the current desired state. */
  async settled(): Promise<void> {
    await this.reconciler.idle();
  }
}

/** Host routes of this node's routed-mode pods: one per address, on the pod's host veth. */
export function podHostRoutes(endpoints: Iterable<Endpoint>): PodRouteSpec[] {
  const out: PodRouteSpec[] = [];
  for (const ep of endpoints) {
    if (ep.mode !== "routed") continue;
    for (const ip of ep.ips) out.push({ dst: `${ip}/${ip.includes(":") ? 128 : 32}`, dev: ep.hostIf });
  }
  return out.sort((a, b) => a.dst.localeCompare(b.dst));
}
