// `trellis network ...`, `trellis nodes` and `trellis agent`: cluster-wide commands that talk to a
// datastore, chosen with --datastore URL or --lab NAME (a lab's own datastore).
import { Command, Option } from "commander";
import * as fs from "node:fs";
import { Agent } from "../agent/agent.js";
import { DEFAULT_HEALTH_ADDR, parseListenAddr, probeHealth, serveHealth } from "../agent/health.js";
import { checkCniTemplate, installCniConfig, networkInit, readNetworkInit } from "../agent/install.js";
import { nodeView, parseNodeStatus, waitingNodeView, type NodeStatus, type NodeView } from "../agent/status.js";
import { serveCniCalls, SOCKET_GROUP_HELP } from "./cni.js";
import { DEFAULT_AGENT_SOCKET } from "../cni/wire.js";
import { openDatastore, type OpenOptions } from "../datastore/open.js";
import type { Datastore } from "../datastore/types.js";
import { RealDataplaneKernel } from "../kernel/dataplane.js";
import { RealPolicyKernel } from "../kernel/policy.js";
import { RealServicesKernel } from "../kernel/services.js";
import { RealBirdKernel } from "../kernel/bird.js";
import { requireState } from "../lab/lab.js";
import { CONFIG_KEY, LEASE_PREFIX, parseLease, STATUS_PREFIX } from "../model/lease.js";
import {
  BACKENDS, BLOCK_MODES, ConfigError, DEFAULT_NODE_PORT_RANGE_TEXT, DEFAULT_SERVICE_CIDR_TEXT, strandedBy, validateNetworkConfig, type NetworkConfig,
} from "../model/network.js";
import { formatOutput, outputOption, printTable, type OutputFormat } from "./table.js";
import { PromAgentMetrics } from "../metrics/prom.js";
import { cniCommandLabel } from "../metrics/series.js";
import { DEFAULT_METRICS_ADDR, fetchMetrics, serveMetrics } from "../metrics/server.js";
import { createLogger } from "../log/logger.js";
import { parseLogFormat, parseLogLevel, type LogFormat, type LogLevel } from "../log/classify.js";

export interface GlobalOptions {
  datastore?: string;
  lab?: string;
  etcdCa?: string;
  etcdCert?: string;
  etcdKey?: string;
  kubeconfig?: string;
}

/** How to open the datastore the global options name. */
export const storeOptions = (g: GlobalOptions, log?: (line: string) => void): OpenOptions =>
  ({ caFile: g.etcdCa, certFile: g.etcdCert, keyFile: g.etcdKey, kubeconfig: g.kubeconfig, ...(log ? { log } : {}) });

export const DEFAULT_SUBNET_FILE = "/run/trellis/subnet.env";
export const DEFAULT_ENDPOINT_DIR = "/run/trellis/endpoints";
export const DEFAULT_BIRD_DIR = "/run/trellis/bird";
/** host-local's and trellis-ipam's default `dataDir`. */
export const DEFAULT_IPAM_DATA_DIR = "/var/lib/cni/networks";

/** The datastore URL the global options name. */
export function datastoreUrl(g: GlobalOptions): string {
  if (g.datastore && g.lab) throw new Error("give either --datastore or --lab, not both");
  if (g.lab) {
    const s = requireState(g.lab);
    if (!s.datastoreUrl) throw new Error(`lab ${g.lab} has no datastore (it was made without agents)`);
    return s.datastoreUrl;
  }
  if (g.datastore) return g.datastore;
  if (process.env.TRELLIS_DATASTORE) return process.env.TRELLIS_DATASTORE;
  throw new Error("no datastore: pass --datastore URL (embedded:///dir, etcd://host:2379, kubernetes) or --lab NAME");
}

export async function withStore<T>(g: GlobalOptions, fn: (s: Datastore) => Promise<T>): Promise<T> {
  const store = await openDatastore(datastoreUrl(g), storeOptions(g));
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

const int = (name: string) => (v: string): number => {
  if (!/^\d+$/.test(v)) throw new Error(`${name} "${v}" is not a whole number`);
  return Number(v);
};

function configFromFlags(base: Record<string, unknown>, o: Record<string, unknown>): NetworkConfig {
  const raw: Record<string, unknown> = { ...base };
  if (o.cidr !== undefined) raw.network = o.cidr;
  if (o.subnetLen !== undefined) raw.subnetLen = o.subnetLen;
  if (o.subnetMin !== undefined) raw.subnetMin = o.subnetMin;
  if (o.subnetMax !== undefined) raw.subnetMax = o.subnetMax;
  if (o.natOutgoing !== undefined) raw.natOutgoing = o.natOutgoing;
  if (o.blocks !== undefined) raw.blocks = o.blocks;
  if (o.serviceCidr !== undefined) raw.serviceCIDR = o.serviceCidr;
  if (o.nodePortRange !== undefined) raw.nodePortRange = o.nodePortRange;
  if (o.as !== undefined || o.nodeMesh !== undefined) {
    const bgp = { ...((base.bgp as Record<string, unknown>) ?? {}) };
    if (o.as !== undefined) bgp.asNumber = o.as;
    if (o.nodeMesh !== undefined) bgp.nodeMesh = o.nodeMesh;
    raw.bgp = bgp;
  }
  const backend = { ...((base.backend as Record<string, unknown>) ?? {}) };
  if (o.backend !== undefined) backend.type = o.backend;
  if (o.vni !== undefined) backend.vni = o.vni;
  if (o.port !== undefined) backend.port = o.port;
  if (o.mtu !== undefined) backend.mtu = o.mtu;
  if (Object.keys(backend).length > 0) raw.backend = backend;
  return validateNetworkConfig(raw);
}

function showConfig(c: NetworkConfig, output: string): string {
  if (output !== "table") return formatOutput(c, output).trimEnd();
  return printTable(["FIELD", "VALUE"], [
    ["network", c.network],
    ["subnetLen", String(c.subnetLen)],
    ["subnetMin", c.subnetMin ?? "(first block)"],
    ["subnetMax", c.subnetMax ?? "(last block)"],
    ["backend", c.backend.type],
    ["vni", String(c.backend.vni)],
    ["port", String(c.backend.port)],
    ["mtu", c.backend.mtu ? String(c.backend.mtu) : "(underlay MTU - overhead)"],
    ["natOutgoing", String(c.natOutgoing)],
    ["blocks", c.blocks ?? "trellis"],
    ["serviceCIDR", c.serviceCIDR ?? `${DEFAULT_SERVICE_CIDR_TEXT} (default)`],
    ["nodePortRange", c.nodePortRange ?? `${DEFAULT_NODE_PORT_RANGE_TEXT} (default)`],
    ...(c.bgp ? [["bgp.asNumber", String(c.bgp.asNumber)], ["bgp.nodeMesh", String(c.bgp.nodeMesh)]] : []),
  ]);
}

export function networkCommand(globals: () => GlobalOptions): Command {
  const network = new Command("network").description("the cluster's pod network configuration");
  const addFlags = (c: Command): Command => c
    .option("--cidr <cidr>", "pod network, e.g. 10.244.0.0/16")
    .option("--subnet-len <n>", "prefix length of each node's block", int("--subnet-len"))
    .option("--subnet-min <cidr>", "first block that may be leased")
    .option("--subnet-max <cidr>", "last block that may be leased")
    .addOption(new Option("--backend <type>", "how nodes are connected").choices(BACKENDS))
    .option("--vni <n>", "VXLAN network identifier", int("--vni"))
    .option("--port <n>", "VXLAN UDP port", int("--port"))
    .option("--mtu <n>", "pod MTU (default: underlay MTU - 50 for VXLAN)", int("--mtu"))
    .option("--service-cidr <cidr>", "where ClusterIPs are allocated (default 10.96.0.0/12)")
    .option("--node-port-range <lo-hi>", "NodePorts (default 30000-32767)")
    .option("--nat-outgoing", "masquerade pod traffic leaving the pod network")
    .option("--no-nat-outgoing", "do not masquerade")
    .addOption(new Option("--blocks <source>", "trellis: agents lease free blocks; assigned: each node takes the block assigned to it (on Kubernetes its Node's spec.podCIDR)").choices(BLOCK_MODES))
    .option("--as <asn>", "bgp: the cluster's AS number (default 64512; a node may set its own)")
    .option("--node-mesh", "bgp: every node peers with every other node (the default)")
    .option("--no-node-mesh", "bgp: nodes peer only with route reflectors and external peers");

  /**
   * Refuses a config that strands live leases (blocks it could not have leased) unless --force;
   * with --force, says what will happen. Nothing is written when refused.
   */
  async function guardAddressing(s: Datastore, prev: Record<string, unknown>, next: NetworkConfig, force: unknown): Promise<void> {
    if (prev.network === next.network && (prev.subnetLen ?? 24) === next.subnetLen && prev.subnetMin === next.subnetMin && prev.subnetMax === next.subnetMax) return;
    const leases = (await s.list(LEASE_PREFIX)).items.map((kv) => parseLease(kv.key, kv.value)).filter((l) => l !== undefined);
    const stranded = strandedBy(next, leases);
    if (!stranded) {
      if (leases.length > 0) process.stderr.write("note: running agents keep the addressing they started with until they are restarted\n");
      return;
    }
    if (!force) throw new Error(`refused: ${stranded}. Nothing was changed; run it again with --force to do it anyway`);
    process.stderr.write(`warning: ${stranded}\n`);
  }

  addFlags(network.command("init"))
    .description("store the cluster network configuration (refused if one exists, unless --force)")
    .option("--force", "replace an existing configuration (even one whose nodes hold blocks the new one cannot have)")
    .action(async (o: Record<string, unknown>) => {
      const c = configFromFlags({ backend: { type: "vxlan" } }, o);
      if (o.cidr === undefined) throw new ConfigError("--cidr", undefined, "is required");
      await withStore(globals(), async (s) => {
        const created = await s.create(CONFIG_KEY, JSON.stringify(c));
        if (!created) {
          if (!o.force) throw new Error("the network is already initialised: use `trellis network set` to change it, or --force");
          const old = await s.get(CONFIG_KEY);
          await guardAddressing(s, old ? JSON.parse(old.value) as Record<string, unknown> : {}, c, o.force);
          await s.put(CONFIG_KEY, JSON.stringify(c));
        }
      });
      process.stdout.write(showConfig(c, "table") + "\n");
    });

  addFlags(network.command("set"))
    .description("change fields of the stored configuration (e.g. switch --backend on a running cluster)")
    .option("--force", "change the network or block length even though nodes hold blocks it cannot have (explains what happens)")
    .action(async (o: Record<string, unknown>) => {
      const c = await withStore(globals(), async (s) => {
        const kv = await s.get(CONFIG_KEY);
        if (!kv) throw new Error("the network is not initialised: run `trellis network init` first");
        const prev = JSON.parse(kv.value) as Record<string, unknown>;
        const next = configFromFlags(prev, o);
        await guardAddressing(s, prev, next, o.force);
        if (!(await s.update(CONFIG_KEY, JSON.stringify(next), kv.modRevision))) throw new Error("the configuration changed meanwhile; try again");
        return next;
      });
      process.stdout.write(showConfig(c, "table") + "\n");
    });

  network.command("show")
    .description("show the stored configuration")
    .addOption(outputOption())
    .action(async (o: { output: string }) => {
      const kv = await withStore(globals(), (s) => s.get(CONFIG_KEY));
      if (!kv) throw new Error("the network is not initialised: run `trellis network init`");
      const c = validateNetworkConfig(JSON.parse(kv.value), { onUnknownField: (m) => process.stderr.write(`warning: stored config: ${m} (not known to this version)\n`) });
      process.stdout.write(showConfig(c, o.output) + "\n");
    });
  return network;
}

export type NodeRow = NodeView;

/** Every node with a lease, as its lease and its own status report describe it (agent state, peers' kernel state). */
export async function readNodes(s: Datastore, now = Date.now()): Promise<NodeRow[]> {
  const [leases, statuses, config] = await Promise.all([s.list(LEASE_PREFIX), s.list(STATUS_PREFIX), s.get(CONFIG_KEY)]);
  const status = new Map<string, NodeStatus>();
  for (const kv of statuses.items) {
    const v = parseNodeStatus(kv.value);
    if (v) status.set(v.node, v);
  }
  let network: string | undefined;
  try {
    network = config ? validateNetworkConfig(JSON.parse(config.value), { onUnknownField: () => undefined }).network : undefined;
  } catch {
    network = undefined;
  }
  const held = leases.items.map((kv) => parseLease(kv.key, kv.value)).filter((l) => l !== undefined);
  const withLease = new Set(held.map((l) => l.node));
  const waiting = [...status.values()].filter((st) => st.state === "waiting" && !withLease.has(st.node)).map((st) => waitingNodeView(st, now));
  return [...held.map((l) => nodeView(l, status.get(l.node), network, now)), ...waiting]
    .sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }));
}

const KERNEL_MARK: Record<string, string> = { programmed: "", pending: "(pending)", none: "" };

export function renderNodes(rows: NodeRow[], now = Date.now()): string {
  const peerText = (r: NodeRow): string => r.peers.length === 0 ? "-" :
    r.peers.map((p) => `${p.node}:${p.transport}${p.kernel ? KERNEL_MARK[p.kernel] : ""}`).join(" ");
  const secs = (iso: string): number => Math.round((Date.parse(iso) - now) / 1000);
  const since = (iso: string): string => Number.isNaN(Date.parse(iso)) ? "-" : `${-secs(iso)}s ago`;
  const until = (iso: string): string => Number.isNaN(Date.parse(iso)) ? "-" : secs(iso) >= 0 ? `in ${secs(iso)}s` : `${-secs(iso)}s ago`;
  const lines = [printTable(["NODE", "PUBLIC IP", "SUBNET", "BACKEND", "AGENT", "LAST RENEWAL", "LEASE EXPIRES", "PEERS (transport)"],
    rows.map((r) => [
      r.name, r.publicIp, r.subnet, r.backend, r.agent, since(r.lastRenewal), until(r.leaseExpiresAt), peerText(r),
    ]))];
  const notes: string[] = [];
  for (const r of rows) {
    if (r.agent !== "ready") notes.push(`${r.name}: agent ${r.agentDetail}`);
    if (r.policy === false) notes.push(`${r.name}: network policy is NOT enforced (agent runs with --no-policy)`);
    if (r.outsideNetwork) notes.push(`${r.name}: block ${r.subnet} is outside the pod network ${r.outsideNetwork} (the network was changed): restart its agent, then re-create its pods`);
    for (const p of r.peers) {
      if (p.reason) notes.push(`${r.name} -> ${p.node}: unreachable: ${p.reason}`);
      else if (p.kernel === "pending") notes.push(`${r.name} -> ${p.node}: not yet programmed in ${r.name}'s kernel`);
    }
  }
  if (notes.length) lines.push("", ...notes.map((n) => `  ${n}`));
  return lines.join("\n");
}

export function nodesCommand(globals: () => GlobalOptions): Command {
  const nodes = new Command("nodes").description("the cluster's nodes");
  nodes.command("remove <name>")
    .description("forget a node that is gone for good: frees its block now instead of when its lease lapses")
    .action(async (name: string) => {
      const removed = await withStore(globals(), async (s) => {
        const leases = await s.list(LEASE_PREFIX);
        const mine = leases.items.filter((kv) => parseLease(kv.key, kv.value)?.node === name);
        for (const kv of mine) await s.delete(kv.key, kv.modRevision);
        await s.delete(`${STATUS_PREFIX}${name}`);
        return mine.map((kv) => parseLease(kv.key, kv.value)!.subnet);
      });
      if (removed.length === 0) throw new Error(`no node named ${name} holds a lease`);
      process.stdout.write(`removed ${name}; freed ${removed.join(", ")} (a running agent of that node would lease again)\n`);
    });
  nodes.command("list", { isDefault: true })
    .description("nodes with their block, address, backend, agent state, last renewal, per-peer transport and kernel state")
    .addOption(outputOption())
    .action(async (o: { output: OutputFormat }) => {
      const rows = await withStore(globals(), (s) => readNodes(s));
      process.stdout.write(o.output === "table" ? renderNodes(rows) + "\n" : formatOutput({ nodes: rows }, o.output));
    });
  return nodes;
}

function probeCommand(): Command {
  return new Command("probe")
    .description("ask the agent on this machine whether it is live or ready (exit 0 or 1; for kubelet's exec probes)")
    .option("--live", "the agent's loops turn (GET /healthz)")
    .option("--ready", "this node's pods can be networked (GET /readyz)")
    .option("--health-addr <host:port>", "the agent's --health-addr", DEFAULT_HEALTH_ADDR)
    .action(async (o: { live?: boolean; ready?: boolean; healthAddr: string }) => {
      if (!o.live === !o.ready) throw new Error("give one of --live or --ready");
      const [ok, said] = await probeHealth(o.healthAddr, o.live ? "live" : "ready");
      process.stdout.write(`${said}\n`);
      process.exitCode = ok ? 0 : 1;
    });
}

function metricsCommand(): Command {
  return new Command("metrics")
    .description("print the metrics of the agent on this machine (GET /metrics, Prometheus text format)")
    .option("--metrics-addr <host:port>", "the agent's --metrics-addr", DEFAULT_METRICS_ADDR)
    .action(async (o: { metricsAddr: string }) => {
      process.stdout.write(await fetchMetrics(o.metricsAddr));
    });
}

export function agentCommand(globals: () => GlobalOptions): Command {
  return new Command("agent")
    .addCommand(probeCommand())
    .addCommand(metricsCommand())
    .description("run the node agent: lease this node's block and connect it to every other node")
    .option("--node <name>", "this node's name (required)")
    .option("--iface <name>", "underlay interface (default: the default route's)")
    .option("--public-ip <ip>", "underlay address to publish (default: the interface's)")
    .option("--subnet-file <path>", "where the CNI plugin reads this node's block", DEFAULT_SUBNET_FILE)
    .option("--lease-ttl <seconds>", "lease lifetime; renewed every third of it", int("--lease-ttl"), 300)
    .option("--resync <seconds>", "periodic full resync of the kernel state", int("--resync"), 10)
    .option("--endpoint-dir <path>", "where the CNI plugin registers this node's endpoints", DEFAULT_ENDPOINT_DIR)
    .option("--no-policy", "do not enforce network policy on this node")
    .option("--no-services", "do not serve ClusterIP/NodePort Services on this node (e.g. kube-proxy does)")
    .option("--cni-socket <path>", "serve the CNI plugin's calls on this socket (the plugin's agentSocket)", DEFAULT_AGENT_SOCKET)
    .option("--no-cni-socket", "do not serve CNI calls (the plugin then does all the work itself)")
    .option("--bird-dir <dir>", "bgp backend: where BIRD's config, control socket, pid file and log live", DEFAULT_BIRD_DIR)
    .option("--cni-socket-group <group>", SOCKET_GROUP_HELP)
    .option("--network-init <file>", "store this network config (a TrellisNetwork object or a bare config) if the cluster has none")
    .option("--cni-conf-template <file>", "the CNI config list to install once this agent is ready (with --cni-conf-file)")
    .option("--cni-conf-file <file>", "where to install it, atomically, e.g. /etc/cni/net.d/10-trellis.conflist")
    .option("--health-addr <host:port>", "serve GET /healthz and /readyz here (\"\": not at all)", DEFAULT_HEALTH_ADDR)
    .option("--metrics-addr <host:port>", "serve GET /metrics (Prometheus), /healthz and /readyz here (\"\": not at all)", DEFAULT_METRICS_ADDR)
    .option("--ipam-data-dir <dir>", "the CNI IPAM data directory, read for the IPAM metrics", DEFAULT_IPAM_DATA_DIR)
    .option("--log-level <level>", "debug, info, warn or error", parseLogLevel, "info" as LogLevel)
    .option("--log-format <format>", "json (one JSON object per line) or text (a human line)", parseLogFormat, "json" as LogFormat)
    .action(async (o: {
      node: string; iface?: string; publicIp?: string; subnetFile: string; leaseTtl: number; resync: number; endpointDir: string; policy: boolean; services: boolean;
      cniSocket: string | false; cniSocketGroup?: string; birdDir: string; networkInit?: string; cniConfTemplate?: string; cniConfFile?: string;
      healthAddr: string; metricsAddr: string; ipamDataDir: string; logLevel: LogLevel; logFormat: LogFormat;
    }) => {
      if (!o.node) throw new Error("required option '--node <name>' not specified");
      if (!o.cniConfTemplate !== !o.cniConfFile) throw new Error("--cni-conf-template and --cni-conf-file go together");
      // Bad files are refused before anything starts.
      const cniText = o.cniConfTemplate ? checkCniTemplate(o.cniConfTemplate) : undefined;
      if (o.networkInit) readNetworkInit(o.networkInit, fs.readFileSync(o.networkInit, "utf8"));
      if (o.healthAddr) parseListenAddr(o.healthAddr);
      if (o.metricsAddr) parseListenAddr(o.metricsAddr, "--metrics-addr");
      const logger = createLogger({ node: o.node, level: o.logLevel, format: o.logFormat });
      const log = logger.log;
      const metrics = new PromAgentMetrics((what, e) => logger.warn("metrics", `cannot read ${what}: ${e.message}`));
      const ac = new AbortController();
      for (const sig of ["SIGTERM", "SIGINT"] as const) {
        process.once(sig, () => {
          log(`${sig}: stopping; the data plane stays as it is`);
          ac.abort(sig);
        });
      }
      const store = await openDatastore(datastoreUrl(globals()), storeOptions(globals(), log));
      log(`starting (datastore ${store.kind})`);
      if (o.networkInit) await networkInit(store, o.networkInit, log);
      const cni = o.cniSocket ? await serveCniCalls(o.cniSocket, log, o.cniSocketGroup, (cmd, result, s) => metrics.cniCall(cniCommandLabel(cmd), result, s)) : undefined;
      const onReady = (): void => {
        log("ready: this node's pods can be networked");
        if (cniText && o.cniConfFile) {
          try {
            log(installCniConfig(cniText, o.cniConfFile) ? `installed the CNI config ${o.cniConfFile}` : `the CNI config ${o.cniConfFile} is current`);
          } catch (e) {
            log(`cannot install the CNI config ${o.cniConfFile}: ${(e as Error).message}`);
          }
        }
      };
      const agent = new Agent({
        onReady,
        node: o.node, store, kernel: new RealDataplaneKernel(), iface: o.iface, publicIp: o.publicIp, subnetFile: o.subnetFile,
        leaseTtlSeconds: o.leaseTtl, resyncMs: o.resync * 1000, log, signal: ac.signal, endpointDir: o.endpointDir,
        bird: new RealBirdKernel(o.birdDir), metrics, ipamDataDir: o.ipamDataDir,
        ...(o.policy ? { policy: { kernel: new RealPolicyKernel() } } : {}),
        ...(o.services ? { services: { kernel: new RealServicesKernel() } } : {}),
      });
      // Health endpoints are for probes: an address taken (two agents in one namespace) is logged, not fatal.
      // The metrics server answers /healthz and /readyz too: given the same address, it alone listens.
      const health = o.healthAddr && o.healthAddr !== o.metricsAddr ? await serveHealth(o.healthAddr, () => agent.health()).catch((e: Error) => {
        log(`${e.message}; no health endpoints`);
        return undefined;
      }) : undefined;
      const metricsServer = o.metricsAddr ? await serveMetrics(o.metricsAddr, metrics, () => agent.health()).then((s) => {
        log(`metrics: serving GET /metrics, /healthz and /readyz on ${o.metricsAddr}`);
        return s;
      }, (e: Error) => {
        logger.warn("agent", `${e.message}; no metrics endpoint`);
        return undefined;
      }) : undefined;
      try {
        await agent.run();
      } catch (e) {
        if (!ac.signal.aborted) logger.error("agent", (e as Error).message);
        throw e;
      } finally {
        metricsServer?.close();
        health?.close();
        await cni?.close();
        await store.close();
      }
    });
}
