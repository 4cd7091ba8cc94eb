// The BGP controller: keeps BIRD on this node configured for the cluster as the datastore
// describes it, and reports BIRD's sessions. Level-triggered like the other controllers: inputs
// (network config, leases, node settings, external peers) only replace the desired state; one
// sync at a time renders bird.conf (pure), has BIRD's own parser check it, swaps it in atomically
// and applies it with `birdc configure` — never a restart, which would drop every session. A
// config BIRD refuses (it should never happen) is reported with BIRD's message and the previous
// one stays in force. BIRD found dead is started again; the kernel keeps its routes meanwhile and
// the peers keep theirs (graceful restart).
import * as fs from "node:fs";
import type { Datastore } from "../datastore/types.js";
import { WatchedObjects } from "../datastore/watched.js";
import { SyncLoop } from "../dataplane/sync-loop.js";
import type { BirdKernel } from "../kernel/bird.js";
import type { Lease } from "../model/lease.js";
import type { NetworkConfig } from "../model/network.js";
import { renderBirdConf } from "./bird-conf.js";
import { parseFilteredRoutes, parseProtocols, type BirdProtocol } from "./bird-status.js";
import {
  BGP_PEER_PREFIX, NODE_SETTINGS_PREFIX, parseStored, validateBgpPeer, validateNodeSettings, type BgpPeer, type NodeSettings,
} from "./model.js";
import { planBgp, type BgpPlan, type SessionKind } from "./topology.js";

export interface BgpInputs {
  config: NetworkConfig;
  self: Lease;
  underlayCidr: string;
  leases: readonly Lease[];
}

/** One session as `trellis bgp status` shows it. */
export interface BgpSessionStatus {
  peer: string;
  peerIp: string;
  type: SessionKind;
  protocol: string;
  /** BIRD's BGP state (Established, Active, Connect, Idle, ...), or "missing" when BIRD has no such protocol. */
  state: string;
  since: string;
  lastError?: string;
  received: number;
  exported: number;
  /** Prefixes the peer announced that are not pod-network blocks: ignored. */
  rejected: string[];
}

export interface BgpNodeStatus {
  asNumber: number;
  routerId: string;
  clusterId?: string;
  birdPid?: number;
  /** Set while BIRD refuses the newest config (the previous one is in force). */
  configError?: string;
  sessions: BgpSessionStatus[];
}

export interface BgpControllerOptions {
  node: string;
  store: Datastore;
  bird: BirdKernel;
  log(line: string): void;
  signal: AbortSignal;
  resyncMs: number;
  /** How often BIRD's sessions are read (status, rejected prefixes). */
  statusMs?: number;
  /** Called when what BIRD reports changed (sessions, routes): the agent republishes and re-reads its kernel. */
  onChange(): void;
  readFile?(file: string): string;
}

export class BgpController {
  private readonly stored: WatchedObjects;
  private inputs: BgpInputs | undefined;
  private plan: BgpPlan | undefined;
  private planKey = "";
  private written = "";
  private configError: string | undefined;
  private statusNow: BgpNodeStatus | undefined;
  private lastStatusText = "";
  private readonly reportedRejects = new Set<string>();
  private readonly loop: SyncLoop;
  private started = false;
  private statusTimer: ReturnType<typeof setInterval> | undefined;

  constructor(private readonly o: BgpControllerOptions) {
    this.loop = new SyncLoop(() => this.sync(), { resyncMs: o.resyncMs, retryMinMs: 500, retryMaxMs: 10_000 });
    this.stored = new WatchedObjects({
      store: o.store, prefixes: [NODE_SETTINGS_PREFIX, BGP_PEER_PREFIX], onChange: () => this.replan(), log: (l) => o.log(`bgp: ${l}`), signal: o.signal,
    });
    o.signal.addEventListener("abort", () => {
      this.loop.stop();
      if (this.statusTimer) clearInterval(this.statusTimer);
    }, { once: true });
  }

  /** Lists and watches node settings and external peers. */
  async start(): Promise<void> {
    await this.stored.start();
    this.started = true;
    this.replan();
    this.statusTimer = setInterval(() => void this.poll(), this.o.statusMs ?? 2000);
    this.statusTimer.unref?.();
  }

  /** The cluster as the agent sees it; undefined when the backend is not bgp (BIRD is then stopped). */
  update(inputs: BgpInputs | undefined): void {
    this.inputs = inputs;
    this.replan();
  }

  /** Recomputes the plan (pure, cheap) and asks for a sync; tells the agent when peers' reachability changed. */
  private replan(): void {
    const before = JSON.stringify([...(this.plan?.peers ?? [])]);
    const inputs = this.inputs;
    if (!inputs || inputs.config.backend.type !== "bgp") {
      this.plan = undefined;
    } else {
      const { nodes, peers } = this.settings();
      this.plan = planBgp({
        self: { name: inputs.self.node, underlayCidr: inputs.underlayCidr, block: inputs.self.subnet },
        nodes: inputs.leases.map((l) => ({ name: l.node, ip: l.publicIp })), settings: inputs.config.bgp!, nodeSettings: nodes, peers,
      });
    }
    // Only a changed plan needs BIRD's attention (a peer's lease renewal changes nothing here);
    // BIRD's health and sessions are looked at on the status timer and the periodic resync.
    const key = JSON.stringify([this.plan, inputs?.config.network, inputs?.config.subnetLen]);
    if (this.started && key !== this.planKey) this.loop.kick();
    this.planKey = key;
    if (JSON.stringify([...(this.plan?.peers ?? [])]) !== before) this.o.onChange();
  }

  /** Per other node: reached over BGP, or unreachable with the reason (from the current plan). */
  peerTransports(): ReadonlyMap<string, { transport: "bgp" | "unreachable"; reason?: string }> | undefined {
    return this.plan?.peers;
  }

  status(): BgpNodeStatus | undefined {
    return this.statusNow;
  }

  /** What the status timer runs: reads BIRD's sessions, and starts BIRD again if it is gone. */
  poll(): Promise<void> {
    return this.readStatus();
  }

  /** For tests: resolves once no sync is running or pending. */
  settled(): Promise<void> {
    return this.loop.idle();
  }

  private settings(): { nodes: Map<string, NodeSettings>; peers: BgpPeer[] } {
    const nodes = new Map<string, NodeSettings>();
    const peers: BgpPeer[] = [];
    for (const [key, kv] of this.stored.all) {
      if (key.startsWith(NODE_SETTINGS_PREFIX)) {
        const s = parseStored(kv.value, validateNodeSettings);
        if (s) nodes.set(s.node, s);
      } else {
        const p = parseStored(kv.value, (raw) => validateBgpPeer(raw, this.inputs?.config.network));
        if (p) peers.push(p);
      }
    }
    return { nodes, peers };
  }

  private async sync(): Promise<boolean | undefined> {
    if (!this.started) return undefined;
    const bird = this.o.bird;
    const plan = this.plan;
    if (!plan || !this.inputs) {
      if (bird.pid() !== undefined) {
        this.o.log("bgp: the backend is no longer bgp: stopping BIRD (it withdraws its routes)");
        await bird.down();
        this.written = "";
        this.o.onChange();
      }
      return undefined;
    }
    const { config } = this.inputs;
    const passwords = new Map<string, string>();
    for (const s of plan.sessions) {
      if (!s.passwordFile) continue;
      try {
        passwords.set(s.passwordFile, (this.o.readFile ?? ((f) => fs.readFileSync(f, "utf8")))(s.passwordFile).trim());
      } catch (e) {
        this.o.log(`bgp: cannot read the password file of peer ${s.peerName} (${(e as Error).message}); retrying`);
        return false;
      }
    }
    let text: string;
    try {
      text = renderBirdConf({ plan, podNetwork: config.network, subnetLen: config.subnetLen, logFile: bird.files.log, passwords });
    } catch (e) {
      this.reportConfigError((e as Error).message);
      await this.readStatus();
      return true;
    }
    try {
      const running = bird.pid();
      // A config left by an earlier BIRD means its routes are in the kernel: recover gracefully.
      const recovering = running === undefined && fs.existsSync(bird.files.conf);
      if (text !== this.written || running === undefined) {
        fs.mkdirSync(bird.files.dir, { recursive: true, mode: 0o700 });
        const tmp = `${bird.files.conf}.new`;
        fs.writeFileSync(tmp, text, { mode: 0o600 });
        const refused = await bird.check(tmp);
        if (refused) {
          fs.rmSync(tmp, { force: true });
          this.reportConfigError(`BIRD refuses the new config (${refused}); the previous one stays in force`);
          await this.readStatus();
          return true;
        }
        fs.renameSync(tmp, bird.files.conf);
        if (running === undefined) {
          const pid = await bird.start(recovering);
          this.o.log(`bgp: started BIRD (pid ${pid})${recovering ? " in graceful-restart recovery" : ""}, AS ${plan.asNumber}, ${plan.sessions.length} session(s)`);
        } else {
          const answer = await bird.configure();
          if (answer) {
            this.reportConfigError(`birdc configure: ${answer}`);
            return false;
          }
          this.o.log(`bgp: BIRD reconfigured: ${plan.sessions.map((s) => `${s.protocol} (${s.kind})`).join(", ") || "no sessions"}`);
        }
        this.written = text;
        this.configError = undefined;
      }
      await this.readStatus();
      return true;
    } catch (e) {
      this.o.log(`bgp: ${(e as Error).message}; retrying`);
      return false;
    }
  }

  private reportConfigError(message: string): void {
    if (this.configError !== message) this.o.log(`bgp: ${message}`);
    this.configError = message;
  }

  /** Reads BIRD's sessions into the status; reports prefixes refused by the import filter once each. */
  private async readStatus(): Promise<void> {
    const plan = this.plan;
    const bird = this.o.bird;
    const pid = plan ? bird.pid() : undefined;
    if (!plan) {
      this.statusNow = undefined;
    } else if (pid === undefined) {
      if (this.written) {
        this.o.log("bgp: BIRD is not running: starting it again (the kernel keeps its routes meanwhile; peers keep theirs: graceful restart)");
        this.written = "";
        this.loop.kick();
      }
      this.statusNow = this.statusOf(plan, [], undefined);
    } else {
      try {
        const protocols = parseProtocols(await bird.show(["protocols", "all"]));
        const rejected = new Map<string, string[]>();
        for (const p of protocols) {
          if (p.proto !== "BGP" || !p.routes?.filtered) continue;
          const list = parseFilteredRoutes(await bird.show(["route", "filtered", "protocol", p.name]));
          rejected.set(p.name, list);
          for (const prefix of list) {
            if (this.reportedRejects.has(`${p.name} ${prefix}`)) continue;
            this.reportedRejects.add(`${p.name} ${prefix}`);
            this.o.log(`bgp: ${p.description ?? p.name} announced ${prefix}, which is not a pod-network block: ignored`);
          }
        }
        this.statusNow = this.statusOf(plan, protocols, pid, rejected);
      } catch (e) {
        this.o.log(`bgp: cannot read BIRD's sessions: ${(e as Error).message}`);
        return;
      }
    }
    const text = JSON.stringify(this.statusNow);
    if (text !== this.lastStatusText) {
      this.lastStatusText = text;
      this.o.onChange();
    }
  }

  private statusOf(plan: BgpPlan, protocols: BirdProtocol[], pid: number | undefined, rejected = new Map<string, string[]>()): BgpNodeStatus {
    return {
      asNumber: plan.asNumber, routerId: plan.ip, ...(plan.clusterId ? { clusterId: plan.clusterId } : {}),
      ...(pid !== undefined ? { birdPid: pid } : {}), ...(this.configError ? { configError: this.configError } : {}),
      sessions: plan.sessions.map((s) => {
        const p = protocols.find((x) => x.name === s.protocol);
        return {
          peer: s.peerName, peerIp: s.peerIp, type: s.kind, protocol: s.protocol,
          state: p ? p.bgpState ?? p.info ?? p.state : pid === undefined ? "BIRD not running" : "missing",
          since: p?.since ?? "", ...(p?.lastError ? { lastError: p.lastError } : {}),
          received: (p?.routes?.imported ?? 0) + (p?.routes?.filtered ?? 0), exported: p?.routes?.exported ?? 0,
          rejected: rejected.get(s.protocol) ?? [],
        };
      }),
    };
  }
}
