// Gathering the facts `trellis diagnose` judges (verdict.ts): the datastore's view (nodes with
// their leases and agent status as `trellis nodes` shows them, the network config, the policy
// model as `policy explain` sees it), then the kernels. In a lab every node and pod namespace is
// known and read by path (nsenter --net=/run/netns/..., which works from any namespace, also from
// the lab's control namespace after the `--lab` re-exec). On a real cluster (or with
// `--local-node` in a lab) only this node's kernel is read; every other node is judged from the
// status its agent published (reported.ts) — never guessed.
import * as os from "node:os";
import type { Datastore } from "../datastore/types.js";
import { readNodes, type NodeRow } from "../cli/cluster.js";
import { RealDataplaneKernel } from "../kernel/dataplane.js";
import { runAsync, KernelError } from "../kernel/exec.js";
import { linkCounters, pingDf, readLinks, readSysctl, routeGet, type LinkView } from "../kernel/inspect.js";
import { netnsPath, processAlive } from "../kernel/netns.js";
import { VTEP_NAME } from "../dataplane/state.js";
import { CONFIG_KEY, LEASE_PREFIX, STATUS_PREFIX, parseLease, type Lease } from "../model/lease.js";
import { parseNodeStatus, type NodeStatus } from "../agent/status.js";
import type { ReportedNode } from "./reported.js";
import { validateNetworkConfig, type NetworkConfig } from "../model/network.js";
import { evaluate, PolicyIndex } from "../policy/evaluate.js";
import type { Endpoint, PolicyModel, Protocol } from "../policy/model.js";
import { modelFromObjects, OBJECT_PREFIXES } from "../policy/store-model.js";
import type { LabState } from "../lab/lab.js";
import type { ProbeTarget } from "../lab/probe.js";
import type { NodeFacts, PodFacts } from "./path.js";
import type { DiagnoseFacts, NodeNetFacts, PodNetFacts, ProbeFacts } from "./verdict.js";

/** What the datastore says, read once. */
export interface ClusterFacts {
  nodes: NodeRow[];
  config?: NetworkConfig;
  model: PolicyModel;
  /** Each agent's published status (status/<node>), by node. */
  statuses: Map<string, NodeStatus>;
}

export async function readClusterFacts(s: Datastore, warn: (line: string) => void = () => undefined): Promise<ClusterFacts> {
  const [nodes, cfg, objects, leases, statusKvs] = await Promise.all([
    readNodes(s), s.get(CONFIG_KEY), Promise.all(OBJECT_PREFIXES.map((p) => s.list(p))), s.list(LEASE_PREFIX), s.list(STATUS_PREFIX),
  ]);
  const statuses = new Map<string, NodeStatus>();
  for (const kv of statusKvs.items) {
    const st = parseNodeStatus(kv.value);
    if (st) statuses.set(st.node, st);
  }
  const model = modelFromObjects(objects.flatMap((r) => r.items), (key, why) => warn(`ignoring ${key}: ${why}`));
  model.nodes = leases.items.map((kv) => parseLease(kv.key, kv.value)).filter((l) => l !== undefined).map((l) => ({ name: l.node, ips: [l.publicIp] }));
  let config: NetworkConfig | undefined;
  try {
    config = cfg ? validateNetworkConfig(JSON.parse(cfg.value), { onUnknownField: () => undefined }) : undefined;
  } catch {
    config = undefined;
  }
  return { nodes, model, statuses, ...(config ? { config } : {}) };
}

export interface DiagnoseRequest {
  from: string;
  to: string;
  port?: { port: number; protocol: Protocol };
  probe: boolean;
  /** The lab, when diagnosing one (every namespace known). */
  lab?: LabState;
  /**
   * Outside a lab: this node's name (its kernel is the only one read; default the hostname). In a
   * lab: act as if run on this node of a real cluster — read its kernel and its pods through the
   * lab, every other node only from its agent's published status.
   */
  localNode?: string;
  /** The trellis executable (runs the prober inside the source pod). */
  trellisBin: string;
  now: number;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;

/** "NS/POD" (or "POD" in default) → its endpoint; an error names the flag and the value. */
export function resolvePod(model: PolicyModel, ref: string, flag: string): Endpoint {
  const parts = ref.split("/");
  if (parts.length > 2 || parts.some((p) => p === "")) throw new Error(`${flag} "${ref}": use NAMESPACE/POD${flag === "--to" ? " or an IPv4 address" : ""}`);
  const [ns, name] = parts.length === 2 ? parts as [string, string] : ["default", parts[0]!];
  const ep = model.endpoints.find((e) => e.namespace === ns && e.pod === name);
  if (!ep || ep.ips.length === 0) throw new Error(`${flag} "${ref}": no endpoint for pod ${ns}/${name} (is it attached? see trellis get endpoints)`);
  return ep;
}

/** The destination: a pod by name, a pod by address, or an address outside the pod network. */
export function resolveTarget(model: PolicyModel, ref: string): { label: string; ip: string; endpoint?: Endpoint } {
  if (IPV4.test(ref)) {
    const ep = model.endpoints.find((e) => e.ips.includes(ref));
    return { label: ep ? `${ep.namespace}/${ep.pod}` : ref, ip: ref, ...(ep ? { endpoint: ep } : {}) };
  }
  if (/^\d+(\.\d+)*$/.test(ref) || ref.includes(":")) throw new Error(`--to "${ref}": not an IPv4 address`);
  const ep = resolvePod(model, ref, "--to");
  return { label: `${ep.namespace}/${ep.pod}`, ip: ep.ips[0]!, endpoint: ep };
}

function leaseOf(row: NodeRow): Lease {
  return {
    subnet: row.subnet, node: row.name, publicIp: row.publicIp, backend: row.backend as Lease["backend"],
    ...(row.vtepMac ? { vtepMac: row.vtepMac } : {}), renewedAt: Date.parse(row.lastRenewal), expiresAt: Date.parse(row.leaseExpiresAt),
  };
}

/** Whether the node's agent runs: in a lab by its process; elsewhere by its own status report. */
function agentOf(row: NodeRow | undefined, lab: LabState | undefined, node: string): NodeFacts["agent"] {
  if (lab) {
    const pid = lab.pids.find((p) => p.what === `agent ${node}`);
    return pid && processAlive(pid.pid)
      ? { running: true, detail: row?.agentDetail ?? "running" }
      : { running: false, detail: pid ? `pid ${pid.pid} has ended${row ? `; datastore: ${row.agentDetail}` : ""}` : "never started" };
  }
  if (!row) return undefined;
  if (row.agent === "ready" || row.agent === "starting") return { running: true, detail: row.agentDetail };
  if (row.agent === "unknown") return undefined;
  return { running: false, detail: `${row.agent}: ${row.agentDetail}` };
}

/** A node's kernel, read through its namespace path (undefined: this machine's own). */
async function readNodeKernel(name: string, netns: string | undefined, row: NodeRow | undefined, config: NetworkConfig | undefined, dstIp: string):
  Promise<{ facts: Partial<NodeFacts>; net: NodeNetFacts }> {
  const facts: Partial<NodeFacts> = {};
  const net: NodeNetFacts = {};
  const opt = netns ? { netns } : {};
  try {
    const links = readLinks(netns);
    const dp = new RealDataplaneKernel(opt);
    const u = row ? await dp.underlay({ publicIp: row.publicIp }).catch(() => undefined) : undefined;
    const underlay: LinkView | undefined = links.find((l) => l.name === (u?.dev ?? "eth0"));
    if (underlay) {
      net.underlay = underlay;
      facts.underlay = { dev: underlay.name, cidr: u?.cidr ?? underlay.addresses[0] ?? "", mtu: underlay.mtu };
    }
    const vtep = links.find((l) => l.name === VTEP_NAME);
    if (vtep) net.vtep = vtep;
    net.routeGet = routeGet(dstIp, netns);
  } catch (e) {
    net.error = (e as Error).message;
  }
  try {
    facts.forwarding = readSysctl("net.ipv4.ip_forward", netns) === "1";
  } catch {
    // not read: said so
  }
  try {
    facts.dataplane = await new RealDataplaneKernel(opt).read({ bgp: config?.backend.type === "bgp" });
  } catch {
    // not read: said so
  }
  return { facts, net };
}

function readPodNet(netns: string, ifname: string, peerIp: string): PodNetFacts {
  try {
    const iface = readLinks(netns).find((l) => l.name === ifname);
    if (!iface) return { ifname, error: `no interface ${ifname} in its namespace` };
    return { ifname, iface, routeGet: routeGet(peerIp, netns) };
  } catch (e) {
    return { ifname, error: e instanceof KernelError ? e.stderr.trim() || e.message : (e as Error).message };
  }
}

async function runProbe(netns: string, trellisBin: string, t: ProbeTarget, label: string): Promise<ProbeFacts> {
  try {
    const r = await runAsync(trellisBin, ["probe", "connect", "--targets", JSON.stringify([t])], { netns });
    const [res] = JSON.parse(r.stdout) as Array<{ reached: boolean }>;
    return { probe: label, reached: !!res?.reached };
  } catch (e) {
    const stderr = e instanceof KernelError ? e.stderr.trim().split("\n").pop() ?? "" : "";
    return { probe: label, reached: false, error: stderr || (e as Error).message };
  }
}

interface CounterPoint {
  label: string;
  netns: string | undefined;
  dev: string;
  dir: "rx" | "tx";
}

/**
 * Where a test packet passes, in order: the source pod's interface (out), the source node's
 * device towards the destination (out), the destination node's device from the source (in), the
 * destination pod's interface (in, then its reply out), the source pod's interface (the reply in).
 * Points on nodes whose kernel is not read are left out.
 */
function counterPoints(srcName: string, srcPod: { netns: string; ifname: string }, target: { label: string; endpoint?: Endpoint },
  labPod: (ep: Endpoint) => { netns: string; ifname: string } | undefined, srcNode: string,
  nodeNetns: (node: string) => string | undefined | null, nodeNet: ReadonlyMap<string, NodeNetFacts>): CounterPoint[] {
  const points: CounterPoint[] = [{ label: `${srcName} ${srcPod.ifname} out`, netns: srcPod.netns, dev: srcPod.ifname, dir: "tx" }];
  const dstNode = target.endpoint?.node;
  const crossNode = dstNode === undefined || dstNode !== srcNode;
  const out = nodeNet.get(srcNode)?.routeGet;
  const srcNs = nodeNetns(srcNode);
  if (crossNode && srcNs !== null && out && "dev" in out) points.push({ label: `${srcNode} ${out.dev} out`, netns: srcNs, dev: out.dev, dir: "tx" });
  if (dstNode !== undefined) {
    const back = nodeNet.get(dstNode)?.routeGet;
    const dstNs = nodeNetns(dstNode);
    if (crossNode && dstNs !== null && back && "dev" in back) points.push({ label: `${dstNode} ${back.dev} in`, netns: dstNs, dev: back.dev, dir: "rx" });
    const dp = labPod(target.endpoint!);
    if (dp) {
      points.push({ label: `${target.label} ${dp.ifname} in`, netns: dp.netns, dev: dp.ifname, dir: "rx" });
      points.push({ label: `${target.label} ${dp.ifname} out (reply)`, netns: dp.netns, dev: dp.ifname, dir: "tx" });
    }
  }
  points.push({ label: `${srcName} ${srcPod.ifname} in (reply)`, netns: srcPod.netns, dev: srcPod.ifname, dir: "rx" });
  return points;
}

/** Each point's counter now; undefined where it cannot be read. */
function readPoints(points: readonly CounterPoint[]): Array<number | undefined> {
  const byNs = new Map<string, Map<string, { rx: number; tx: number }> | undefined>();
  return points.map((p) => {
    const key = p.netns ?? "";
    if (!byNs.has(key)) {
      try {
        byNs.set(key, linkCounters(p.netns));
      } catch {
        byNs.set(key, undefined);
      }
    }
    return byNs.get(key)?.get(p.dev)?.[p.dir];
  });
}

/** Every fact the verdict needs, read from the datastore view and the kernels that can be reached. */
export async function gatherDiagnoseFacts(req: DiagnoseRequest, cluster: ClusterFacts): Promise<DiagnoseFacts> {
  const { model, config } = cluster;
  const src = resolvePod(model, req.from, "--from");
  const target = resolveTarget(model, req.to);
  const packet = req.port ? `${req.port.port}/${req.port.protocol}` : "ICMP";
  const notChecked: string[] = [];
  // Which nodes' kernels are read here: every node of a lab, else only the local one.
  const here = req.lab && !req.localNode ? undefined : req.localNode ?? os.hostname();
  const readHere = (node: string): boolean => here === undefined || node === here;
  const labPod = (ep: Endpoint): { netns: string; ifname: string } | undefined => {
    if (!readHere(ep.node)) return undefined;
    const p = req.lab?.plan.pods.find((x) => x.namespace === ep.namespace && x.name === ep.pod);
    return p ? { netns: netnsPath(p.netns), ifname: p.ifname } : undefined;
  };
  const nodeNetns = (node: string): string | undefined | null => {
    if (!readHere(node)) return null;
    if (req.lab) {
      const n = req.lab.plan.nodes.find((x) => x.name === node);
      return n ? netnsPath(n.netns) : null;
    }
    return node === (req.localNode ?? os.hostname()) ? undefined : null;
  };

  const nodeNames = [src.node, ...(target.endpoint && target.endpoint.node !== src.node ? [target.endpoint.node] : [])];
  const nodes = new Map<string, NodeFacts>();
  const nodeNet = new Map<string, NodeNetFacts>();
  const reported = new Map<string, ReportedNode>();
  for (const name of nodeNames) {
    const row = cluster.nodes.find((r) => r.name === name);
    const lease = row && row.subnet !== "-" ? leaseOf(row) : undefined;
    const f: NodeFacts = { name, ...(lease ? { lease } : {}) };
    const agent = agentOf(row, readHere(name) ? req.lab : undefined, name);
    if (agent) f.agent = agent;
    // Every node's own report is kept: for a node not read here it stands in for its kernel.
    const st = cluster.statuses.get(name);
    const ttlMs = st?.leaseTtlSeconds ? st.leaseTtlSeconds * 1000 : lease ? Math.max(0, lease.expiresAt - lease.renewedAt) : 0;
    const ns = nodeNetns(name);
    if (st || !readHere(name)) reported.set(name, { ttlMs, ...(st ? { status: st } : {}), ...(lease ? { renewedAt: lease.renewedAt } : {}) });
    if (ns === null && !readHere(name)) {
      // judged from its report (above)
    } else if (ns === null) {
      notChecked.push(req.lab ? `${name}'s kernel (not a node of lab ${req.lab.plan.name})` : `${name}'s kernel (not this node)`);
    } else {
      const dst = name === src.node ? target.ip : src.ips[0]!;
      const { facts, net } = await readNodeKernel(name, ns, row, config, dst);
      Object.assign(f, facts);
      nodeNet.set(name, net);
    }
    nodes.set(name, f);
  }

  const podNet = (ep: Endpoint, peerIp: string): PodNetFacts => {
    const where = labPod(ep);
    if (where) return readPodNet(where.netns, where.ifname, peerIp);
    if (!readHere(ep.node)) return { ifname: ep.ifname, error: `on ${ep.node}, not this node`, attached: { node: ep.node, hostIf: ep.hostIf, ips: ep.ips } };
    return { ifname: ep.ifname, error: req.lab ? "not a pod of the lab" : "outside a lab the pod's namespace path is not known (no CRI access)" };
  };
  const fromNet = podNet(src, target.ip);
  const toNet = target.endpoint ? podNet(target.endpoint, src.ips[0]!) : undefined;
  const fromPod: PodFacts = { name: `${src.namespace}/${src.pod}`, ip: src.ips[0]!, node: src.node };
  const v = evaluate(new PolicyIndex(model), { src: src.ips[0]!, dst: target.ip, protocol: req.port?.protocol ?? "ICMP" as Protocol, port: req.port?.port ?? 0 });
  const policyDetail = [v.egress && `egress: ${v.egress.reason}`, v.ingress && `ingress: ${v.ingress.reason}`].filter(Boolean).join("; ") || "no policy applies";

  let probe: ProbeFacts | undefined;
  if (req.probe) {
    const where = labPod(src);
    const t: ProbeTarget = req.port ? { ip: target.ip, port: req.port.port, protocol: req.port.protocol as ProbeTarget["protocol"] } : { ip: target.ip, protocol: "ICMP" };
    if (where) {
      const points = counterPoints(fromPod.name, where, target, labPod, src.node, nodeNetns, nodeNet);
      const before = readPoints(points);
      probe = await runProbe(where.netns, req.trellisBin, t, packet);
      const after = readPoints(points);
      probe.seen = points.map((p, i) => ({ point: p.label, ...(before[i] !== undefined && after[i] !== undefined ? { delta: after[i]! - before[i]! } : {}) }));
      // The MTU by traffic: one echo as large as the pod's MTU allows, fragmenting forbidden —
      // only where policy lets ICMP through, so that a drop cannot be the policy's.
      const mtu = fromNet.iface?.mtu;
      const icmp = evaluate(new PolicyIndex(model), { src: src.ips[0]!, dst: target.ip, protocol: "ICMP", port: 0 });
      if (mtu && icmp.allowed) {
        const r = pingDf(target.ip, mtu - 28, where.netns);
        probe.fullSize = { bytes: mtu, answered: r.answered, ...(r.error ? { error: r.error } : {}) };
      }
    }
    else notChecked.push(`test packet (${fromPod.name}'s namespace is ${readHere(src.node) ? "not known outside a lab" : `on ${src.node}, not this node`})`);
  }

  return {
    path: {
      from: fromPod,
      to: target.endpoint ? { name: target.label, ip: target.ip, node: target.endpoint.node } : { outside: target.ip },
      nodes, leasesKnown: true, ...(config ? { config } : {}),
      policy: { allowed: v.allowed, detail: policyDetail }, now: req.now,
    },
    target: { label: target.label, ip: target.ip }, packet,
    fromNet, ...(toNet ? { toNet } : {}), nodeNet, ...(probe ? { probe } : {}), notChecked,
    ...(reported.size ? { reported } : {}), agentsFrom: req.lab ? "its process (lab) and its status" : "datastore (its status and lease)",
  };
}
