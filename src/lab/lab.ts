// Building, inspecting and removing a lab cluster. The layout comes from plan.ts; namespaces and
// links are made through the kernel seam; pods are attached through LabRuntime, i.e. by the real
// plugin executables; agents (and etcd) are real processes started inside lab namespaces. The
// state file records every namespace and process as soon as it exists, so `lab down` removes a
// half-built lab as completely as a whole one.
import * as fs from "node:fs";
import * as path from "node:path";
import YAML from "yaml";
import { CRDS } from "../k8s/crds.js";
import { AGENT_RULES } from "../k8s/rbac.js";
import { APISERVER_PORT, kubeFiles, labNodeObjects, writeKubeFiles } from "./kube.js";
import {
  createNetns, deleteNetns, execIn, ipBatchIn, listNetns, netnsExists, netnsPath, processAlive, spawnDetachedIn, stopProcess, sysctlGetIn, sysctlIn,
} from "../kernel/netns.js";
import { LabRuntime } from "./runtime.js";
import { KernelError, runAsync } from "../kernel/exec.js";
import { RealDataplaneKernel } from "../kernel/dataplane.js";
import { RealBirdKernel } from "../kernel/bird.js";
import { RR_LABEL } from "../bgp/model.js";
import { LAB_SEGMENT_LABEL, startTors, torVtysh } from "./tor.js";
import { parseProtocols } from "../bgp/bird-status.js";
import { diagnosePath, type NodeFacts, type PodFacts } from "../diagnose/path.js";
import type { NodeRow } from "../cli/cluster.js";
import type { Lease } from "../model/lease.js";
import type { NetworkConfig } from "../model/network.js";
import { evaluate, PolicyIndex } from "../policy/evaluate.js";
import type { PolicyModel, Protocol } from "../policy/model.js";
import type { ProbeTarget, ServiceProbeResult } from "./probe.js";
import type { ServicesInput } from "../services/controller.js";
import { judgeServiceProbe, serviceProbeJobs, type CheckPod, type ServiceCheckCell, type ServiceProbeJob } from "./service-check.js";
import {
  LAB_NAME_RE, labNetnsPrefix, labObjects, labWarnings, nodeConflist, planLab, unreachableNodePairs, type LabTor, type LabNode, type LabOptions, type LabPlan, type LabPod,
} from "./plan.js";

export const LAB_ROOT = "/run/trellis/lab";
/** Lease lifetime of lab agents: short, so that a removed node disappears within seconds. */
export const LAB_LEASE_TTL = 10;
/** Lab agents' periodic kernel resync (drift repair), unless `lab up --resync` says otherwise. */
export const LAB_RESYNC_SECONDS = 5;

export interface LabState {
  plan: LabPlan;
  createdAt: string;
  /** Namespaces made so far, in creation order. */
  netns: string[];
  /** Pod name -> addresses from its CNI result. */
  podIps: Record<string, string[]>;
  /** The lab's datastore, when it runs agents. */
  datastoreUrl?: string;
  /** Processes the lab started (agents, etcd), by pid, so that `lab down` ends exactly those. */
  pids: Array<{ what: string; pid: number }>;
}

export interface LabTools {
  /** Directory holding the trellis and trellis-ipam plugin executables. */
  cniBinDir: string;
  /** The trellis executable (agent and CLI). */
  trellisBin: string;
}

export type Progress = (line: string) => void;

/** A lab's directory. The name is checked first: it becomes a path that `lab down` removes. */
export function labDir(name: string): string {
  if (!LAB_NAME_RE.test(name)) throw new Error(`invalid lab name ${JSON.stringify(name)}: use 1-12 lower-case letters and digits, starting with a letter`);
  return path.join(LAB_ROOT, name);
}
const stateFile = (name: string): string => path.join(labDir(name), "state.json");
export const nodeDir = (lab: string, node: string): string => path.join(labDir(lab), node);
export const subnetFileOf = (lab: string, node: string): string => path.join(nodeDir(lab, node), "subnet.env");
export const cniSocketOf = (lab: string, node: string): string => path.join(nodeDir(lab, node), "cni.sock");
/** Where a node's agent keeps BIRD's files (bgp backend): config, control socket, pid file, log. */
export const birdDirOf = (lab: string, node: string): string => path.join(nodeDir(lab, node), "bird");

/** Whether anything of a lab named `name` exists: its state, its directory, or a namespace with its prefix. */
export function labExists(name: string): boolean {
  if (!LAB_NAME_RE.test(name)) return false;
  return fs.existsSync(labDir(name)) || listNetns().some((n) => n.startsWith(labNetnsPrefix(name)));
}

/** The lab's state, or an error saying there is no such lab (every command on a lab starts here). */
export function requireState(name: string): LabState {
  labDir(name); // an invalid name is said to be one
  const s = readState(name);
  if (!s) throw new Error(`no lab named ${name} (see "trellis lab list")`);
  return s;
}

export function readState(name: string): LabState | undefined {
  if (!LAB_NAME_RE.test(name)) return undefined;
  try {
    const s = JSON.parse(fs.readFileSync(stateFile(name), "utf8")) as LabState;
    s.pids ??= [];
    return s;
  } catch {
    return undefined;
  }
}

function writeState(s: LabState): void {
  fs.mkdirSync(labDir(s.plan.name), { recursive: true });
  const tmp = `${stateFile(s.plan.name)}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(s, null, 2));
  fs.renameSync(tmp, stateFile(s.plan.name));
}

function runtimeFor(plan: LabPlan, node: string, cniBinDir: string): LabRuntime {
  const n = plan.nodes.find((x) => x.name === node)!;
  const dir = nodeDir(plan.name, node);
  return new LabRuntime(n.netns, path.join(dir, "net.d"), path.join(dir, "results"), [cniBinDir]);
}

/** Pods are keyed by namespace/name (spec labs may reuse a name in two namespaces). */
export const podKey = (p: Pick<LabPod, "namespace" | "name">): string => `${p.namespace}/${p.name}`;

const podArgs = (p: LabPod): Record<string, string> => ({
  IgnoreUnknown: "1",
  K8S_POD_NAMESPACE: p.namespace,
  K8S_POD_NAME: p.name,
  K8S_POD_INFRA_CONTAINER_ID: p.containerId,
});

/** Runs the trellis CLI inside a lab namespace (the datastore may only be reachable there). */
function trellisIn(netns: string, bin: string, args: string[], input?: string): { ok: boolean; out: string } {
  const r = execIn(netns, bin, args, { input });
  // The child's own "trellis: " prefix goes: the message is ours to wrap, and main adds one prefix.
  return { ok: r.code === 0, out: r.code === 0 ? r.stdout : (r.stderr || r.stdout).trim().replace(/^trellis: /gm, "") };
}

async function waitFor<T>(what: string, timeoutMs: number, probe: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function labUp(opts: LabOptions, tools: LabTools, progress: Progress): Promise<LabState> {
  const plan = planLab(opts);
  if (readState(plan.name) || listNetns().some((n) => n.startsWith(labNetnsPrefix(plan.name)))) {
    throw new Error(`lab ${plan.name} already exists (see "trellis lab status --name ${plan.name}"): choose another --name`);
  }
  for (const bin of ["trellis", "trellis-ipam"]) {
    if (!fs.existsSync(path.join(tools.cniBinDir, bin))) throw new Error(`${bin} not found in ${tools.cniBinDir}: run "npm run build"`);
  }
  const agents = plan.backend !== "none";
  const readyMs = (opts.readySeconds ?? 30) * 1000;
  if (agents && !fs.existsSync(tools.trellisBin)) throw new Error(`trellis executable ${tools.trellisBin} not found: run "npm run build"`);
  const state: LabState = { plan, createdAt: new Date().toISOString(), netns: [], podIps: {}, pids: [] };
  writeState(state);
  const steps = 3 + plan.nodes.length + (agents ? 2 : 0) + plan.pods.length;
  let step = 0;
  const say = (what: string): void => progress(`[${++step}/${steps}] ${what}`);
  const made = (ns: string): void => {
    createNetns(ns);
    state.netns.push(ns);
    writeState(state);
  };

  say(`underlay: ${plan.segments.map((s) => `${s.netns} (${s.cidr})`).join(", ")}`);
  for (const seg of plan.segments) {
    made(seg.netns);
    ipBatchIn(seg.netns, [`link add ${plan.bridge} type bridge`, `link set ${plan.bridge} up`]);
  }
  say(`router ${plan.routerNetns} and outside ${plan.outsideNetns} (${plan.outsideIp})`);
  made(plan.routerNetns);
  made(plan.outsideNetns);
  // Every veth is made inside a lab namespace and its far end moved into another lab namespace:
  // nothing of the lab ever exists in the machine's own namespace.
  for (const seg of plan.segments) plugIntoSegment(plan, seg.index, plan.routerNetns, `seg${seg.index}`, `rt`, `${seg.gateway}/24`);
  ipBatchIn(plan.routerNetns, [`link add out0 type veth peer name eth0 netns ${netnsPath(plan.outsideNetns)}`, "addr add 203.0.113.1/24 dev out0", "link set out0 up"]);
  sysctlIn(plan.routerNetns, { "net.ipv4.ip_forward": "1" });
  ipBatchIn(plan.outsideNetns, [`addr add ${plan.outsideIp}/24 dev eth0`, "link set eth0 up", "route add 10.99.0.0/16 via 203.0.113.1"]);

  say(agents ? `control plane ${plan.controlNetns} (${plan.controlIp}, datastore ${plan.datastore})` : "no agents (--backend none): fixed blocks per node");
  if (agents) {
    made(plan.controlNetns);
    plugIntoSegment(plan, 1, plan.controlNetns, "eth0", "cp", `${plan.controlIp}/24`);
    ipBatchIn(plan.controlNetns, [`route add default via ${plan.segments[0]!.gateway}`]);
    state.datastoreUrl = plan.datastore === "etcd" ? startEtcd(plan, state)
      : plan.datastore === "kubernetes" ? await startApiServer(plan, state, tools, progress) : `embedded://${path.join(labDir(plan.name), "datastore")}`;
    writeState(state);
  }

  for (const node of plan.nodes) {
    say(`node ${node.name}: ${node.netns}, eth0 ${node.ip} on segment ${node.segment}`);
    made(node.netns);
    plugIntoSegment(plan, node.segment, node.netns, "eth0", node.switchPort, node.ip);
    ipBatchIn(node.netns, [`route add default via ${plan.segments[node.segment - 1]!.gateway}`]);
    sysctlIn(node.netns, { "net.ipv4.ip_forward": "1" });
    const dir = nodeDir(plan.name, node.name);
    fs.mkdirSync(path.join(dir, "net.d"), { recursive: true });
    const conf = nodeConflist(plan, node, { dataDir: path.join(dir, "ipam"), logFile: path.join(dir, "cni.log"), subnetFile: subnetFileOf(plan.name, node.name),
      agentSocket: cniSocketOf(plan.name, node.name) });
    // On Kubernetes the agent installs it once ready (--cni-conf-template/--cni-conf-file), as the DaemonSet's does.
    fs.writeFileSync(plan.datastore === "kubernetes" ? cniTemplateOf(plan.name, node.name) : path.join(dir, "net.d", "10-trellis.conflist"), JSON.stringify(conf, null, 2) + "\n");
  }

  if (agents) {
    say(`network ${plan.podNetwork}, backend ${plan.backend}, natOutgoing ${plan.natOutgoing}`);
    const init = [...datastoreArgs(state), "network", "init", "--cidr", plan.podNetwork, "--subnet-len", String(plan.subnetLen),
      "--backend", plan.backend, plan.natOutgoing ? "--nat-outgoing" : "--no-nat-outgoing", ...(plan.bgp && !plan.bgp.nodeMesh ? ["--no-node-mesh"] : [])];
    let last = "";
    // On Kubernetes the agents store it themselves (--network-init), as the DaemonSet's do.
    if (plan.datastore !== "kubernetes") await waitFor("the datastore to accept the network config", 30_000, () => {
      const r = trellisIn(plan.controlNetns, tools.trellisBin, init);
      last = r.out;
      return r.ok || /already initialised/.test(r.out) ? true : undefined;
    }).catch((e: Error) => {
      throw new Error(`${e.message}: ${last}`);
    });
    if (plan.bgp) setUpBgp(state, tools, progress);
    say(`agents on ${plan.nodes.length} node(s)`);
    for (const node of plan.nodes) startAgent(plan, state, node, tools.trellisBin);
    for (const node of plan.nodes) {
      const conflist = path.join(nodeDir(plan.name, node.name), "net.d", "10-trellis.conflist");
      await waitFor(`the agent on ${node.name} to ${plan.datastore === "kubernetes" ? "be ready and install the CNI config" : "lease a block"} (see ${path.join(nodeDir(plan.name, node.name), "agent.log")})`, readyMs,
        () => (fs.existsSync(plan.datastore === "kubernetes" ? conflist : subnetFileOf(plan.name, node.name)) ? true : undefined));
    }
    if (plan.pods.some((p) => p.labels !== undefined) || plan.services) {
      // One `trellis apply`, the operator's own path: Services get their ClusterIP there.
      const services = plan.services ?? [];
      const r = trellisIn(plan.controlNetns, tools.trellisBin, [...datastoreArgs(state), "apply", "-f", "-"],
        [...labObjects(plan), ...services].map((d) => JSON.stringify(d)).join("\n---\n"));
      if (!r.ok) throw new Error(`cannot apply the spec's namespaces, pods and services: ${r.out}`);
      progress(`applied ${plan.namespaces.length} namespace(s), ${plan.pods.length} pod(s)${services.length ? ` and ${services.length} service object(s)` : ""}`);
    }
  }

  for (const pod of plan.pods) {
    made(pod.netns);
    const ips = attachPod(state, pod, tools);
    say(`pod ${pod.namespace}/${pod.name} on ${pod.node}: ${ips.join(", ")}${pod.ports?.length ? ` (serving ${pod.ports.map((x) => `${x.port}/${x.protocol}`).join(", ")})` : ""}`);
  }
  if (agents) {
    await waitFor("every agent to see every other node", readyMs, () => (converged(state, tools.trellisBin) ? true : undefined));
    // The first view of the datastore, kept so that `lab check` works during a later outage.
    readClusterView(state, tools.trellisBin);
    const pairs = unreachableNodePairs(plan).length;
    progress(`all agents see all nodes and have programmed their routes${pairs ? `; ${pairs} node pair(s) have no path by configuration (see the warning)` : ""}`);
  }
  return state;
}

/**
 * A bgp lab's routing, before the agents start: route reflectors labelled, and with --tor one FRR
 * router per segment (its own AS) peering with its segment's nodes (one AS per segment, "AS per
 * rack") and, over a spine, with the other ToRs.
 */
function setUpBgp(state: LabState, tools: LabTools, progress: Progress): void {
  const { plan } = state;
  const bgp = plan.bgp!;
  const cli = (args: string[]): void => {
    const r = trellisIn(plan.controlNetns, tools.trellisBin, [...datastoreArgs(state), ...args]);
    if (!r.ok) throw new Error(`trellis ${args.join(" ")}: ${r.out}`);
  };
  for (const rr of bgp.reflectors) cli(["nodes", "label", rr, `${RR_LABEL}=true`]);
  if (bgp.reflectors.length) progress(`route reflectors: ${bgp.reflectors.join(", ")}${bgp.nodeMesh ? " (the node mesh stays on)" : ", node mesh off"}`);
  for (const [node, as] of Object.entries(bgp.nodeAs)) cli(["nodes", "set", node, "--as", String(as)]);
  if (bgp.tors.length === 0) return;
  for (const n of plan.nodes) cli(["nodes", "label", n.name, `${LAB_SEGMENT_LABEL}=${n.segment}`]);
  for (const t of bgp.tors) {
    cli(["bgp", "peer", "add", `tor${t.segment}`, "--peer-ip", t.ip, "--as", String(t.asNumber), "--node-selector", `${LAB_SEGMENT_LABEL}=${t.segment}`]);
  }
  startTors(state, labDir(plan.name), () => writeState(state), progress);
}

/** CNI ADD for a pod whose namespace exists, then its probe servers; returns its addresses. */
function attachPod(state: LabState, pod: LabPod, tools: LabTools): string[] {
  const plan = state.plan;
  const result = runtimeFor(plan, pod.node, tools.cniBinDir).add({ containerId: pod.containerId, netns: pod.netns, ifname: pod.ifname, args: podArgs(pod) });
  const ips = ((result.ips ?? []) as Array<{ address: string }>).map((i) => i.address.split("/")[0]!);
  state.podIps[podKey(pod)] = ips;
  if (pod.ports && pod.ports.length > 0) {
    const list = (proto: string): string => pod.ports!.filter((x) => x.protocol === proto).map((x) => x.port).join(",");
    const pid = spawnDetachedIn(pod.netns, tools.trellisBin, ["probe", "serve", "--tcp", list("TCP"), "--udp", list("UDP"), "--id", podKey(pod)],
      path.join(nodeDir(plan.name, pod.node), `probe-${pod.namespace}-${pod.name}.log`));
    state.pids.push({ what: `probe ${podKey(pod)}`, pid });
  }
  writeState(state);
  return ips;
}

/**
 * Adds a pod to a running lab, as a runtime would: the Pod object first (when it has labels or
 * ports, like the API server holding it before the kubelet runs it), then the namespace and CNI ADD.
 */
export function labPodAdd(name: string, pod: { namespace: string; name: string; node: string; labels?: Record<string, string>; ports?: LabPod["ports"] },
  tools: LabTools): { pod: LabPod; ips: string[] } {
  const state = requireState(name);
  const plan = state.plan;
  if (!plan.nodes.some((n) => n.name === pod.node)) throw new Error(`lab ${name} has no node ${pod.node}`);
  if (plan.pods.some((p) => p.namespace === pod.namespace && p.name === pod.name)) throw new Error(`pod ${pod.namespace}/${pod.name} already exists`);
  const used = new Set(plan.pods.map((p) => p.netns));
  let j = 1;
  while (used.has(`${labNetnsPrefix(name)}${pod.node}-p${j}`)) j++;
  const p: LabPod = {
    name: pod.name, namespace: pod.namespace, node: pod.node, netns: `${labNetnsPrefix(name)}${pod.node}-p${j}`,
    containerId: `lab-${name}-${pod.namespace}-${pod.name}`, ifname: "eth0", labels: pod.labels ?? {}, ports: pod.ports ?? [],
  };
  if (state.datastoreUrl) {
    const objs = labObjects({ ...plan, pods: [p], namespaces: plan.namespaces.some((n) => n.name === p.namespace) ? [] : [{ name: p.namespace, labels: {} }] });
    const r = trellisIn(plan.controlNetns, tools.trellisBin, [...datastoreArgs(state), "apply", "-f", "-"], objs.map((d) => JSON.stringify(d)).join("\n---\n"));
    if (!r.ok) throw new Error(`cannot apply pod ${pod.namespace}/${pod.name}: ${r.out}`);
  }
  if (!plan.namespaces.some((n) => n.name === p.namespace)) plan.namespaces.push({ name: p.namespace, labels: {} });
  plan.pods.push(p);
  createNetns(p.netns);
  state.netns.push(p.netns);
  writeState(state);
  return { pod: p, ips: attachPod(state, p, tools) };
}

/**
 * `trellis apply` of objects (Services, EndpointSlices, policies...) in a running lab's datastore,
 * run inside the lab as `trellis --lab NAME apply -f` is: the same code path, the same output.
 */
export function labApply(name: string, text: string, tools: Pick<LabTools, "trellisBin">): string {
  const state = requireState(name);
  if (!state.datastoreUrl) throw new Error(`lab ${name} runs no agents (--backend none): it has no datastore to apply objects to`);
  const r = trellisIn(state.plan.controlNetns, tools.trellisBin, [...datastoreArgs(state), "apply", "-f", "-"], text);
  if (!r.ok) throw new Error(`cannot apply: ${r.out}`);
  return r.out;
}

/** CNI DEL of a lab pod, then its namespace and probe server go. */
export async function labPodDelete(name: string, ref: { namespace: string; name: string }, tools: Pick<LabTools, "cniBinDir">): Promise<void> {
  const state = requireState(name);
  const pod = state.plan.pods.find((p) => p.namespace === ref.namespace && p.name === ref.name);
  if (!pod) throw new Error(`lab ${name} has no pod ${ref.namespace}/${ref.name}`);
  const probe = state.pids.find((x) => x.what === `probe ${podKey(pod)}`);
  if (probe) await stopProcess(probe.pid);
  runtimeFor(state.plan, pod.node, tools.cniBinDir).del({ containerId: pod.containerId, netns: pod.netns, ifname: pod.ifname, args: podArgs(pod) });
  deleteNetns(pod.netns);
  state.plan.pods = state.plan.pods.filter((p) => p !== pod);
  state.pids = state.pids.filter((x) => x !== probe);
  state.netns = state.netns.filter((n) => n !== pod.netns);
  delete state.podIps[podKey(pod)];
  writeState(state);
}

/** A veth from `netns` (named `ifname` there) to a port on segment `seg`'s switch. */
function plugIntoSegment(plan: LabPlan, seg: number, netns: string, ifname: string, port: string, cidr: string): void {
  const sw = plan.segments[seg - 1]!.netns;
  ipBatchIn(sw, [
    `link add ${port} type veth peer name ${ifname} netns ${netnsPath(netns)}`,
    `link set ${port} master ${plan.bridge}`,
    `link set ${port} up`,
  ]);
  ipBatchIn(netns, [`addr add ${cidr} dev ${ifname}`, `link set ${ifname} up`]);
}

/**
 * The global options that name the lab's datastore for a CLI run inside the lab: as the admin,
 * or (with `agent`) as a node's agent — on Kubernetes with the agents' service-account token.
 */
export function datastoreArgs(state: LabState, agent?: string): string[] {
  if (state.plan.datastore === "kubernetes") {
    const f = kubeFiles(labDir(state.plan.name));
    return ["--datastore", "kubernetes", "--kubeconfig", agent ? f.agent : f.admin];
  }
  return ["--datastore", state.datastoreUrl!];
}

const cniTemplateOf = (lab: string, node: string): string => path.join(nodeDir(lab, node), "cni-template.conflist");

/** The TrellisNetwork a Kubernetes lab's agents create if none exists (the DaemonSet's ConfigMap). */
function writeNetworkInit(plan: LabPlan): string {
  const file = path.join(kubeFiles(labDir(plan.name)).dir, "network.yaml");
  const spec: Record<string, unknown> = {
    network: plan.podNetwork, subnetLen: plan.subnetLen, backend: { type: plan.backend }, natOutgoing: plan.natOutgoing, blocks: "assigned",
    ...(plan.bgp && !plan.bgp.nodeMesh ? { bgp: { nodeMesh: false } } : {}),
  };
  fs.writeFileSync(file, YAML.stringify({ apiVersion: "trellis.dev/v1", kind: "TrellisNetwork", metadata: { name: "default" }, spec }));
  return file;
}

/** The fake API server in the control-plane namespace, with the CRDs and a Node per lab node. */
async function startApiServer(plan: LabPlan, state: LabState, tools: LabTools, progress: Progress): Promise<string> {
  const f = kubeFiles(labDir(plan.name));
  writeKubeFiles(f, plan.controlIp, AGENT_RULES);
  const pid = spawnDetachedIn(plan.controlNetns, tools.trellisBin, ["lab", "apiserver", "--listen", `${plan.controlIp}:${APISERVER_PORT}`, "--users", f.users, "--calls", f.calls], f.log);
  state.pids.push({ what: "apiserver", pid });
  writeState(state);
  await waitFor(`the API server to listen (see ${f.log})`, 30_000, () => (fs.existsSync(f.log) && fs.readFileSync(f.log, "utf8").includes("listening") ? true : undefined));
  const objects = [...CRDS, ...labNodeObjects(plan)].map((o) => YAML.stringify(o)).join("---\n");
  const r = trellisIn(plan.controlNetns, tools.trellisBin, ["lab", "kube-apply", "--kubeconfig", f.admin, "-f", "-"], objects);
  if (!r.ok) throw new Error(`cannot install the CRDs and Nodes: ${r.out}`);
  progress(`API server http://${plan.controlIp}:${APISERVER_PORT} (kubeconfig ${f.admin}); CRDs installed, ${plan.nodes.length} Node(s) with spec.podCIDR`);
  return "kubernetes";
}

function startEtcd(plan: LabPlan, state: LabState): string {
  const dir = path.join(labDir(plan.name), "etcd");
  fs.mkdirSync(dir, { recursive: true });
  const client = `http://${plan.controlIp}:2379`;
  const peer = `http://${plan.controlIp}:2380`;
  const pid = spawnDetachedIn(plan.controlNetns, "etcd", [
    "--name", "lab", "--data-dir", path.join(dir, "data"), "--listen-client-urls", client, "--advertise-client-urls", client,
    "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", `lab=${peer}`,
  ], path.join(dir, "etcd.log"));
  state.pids.push({ what: "etcd", pid });
  return `etcd://${plan.controlIp}:2379`;
}

/** Where a lab node's agent serves /metrics, /healthz and /readyz: loopback inside the node's namespace. */
export const LAB_METRICS_ADDR = "127.0.0.1:9091";

export function startAgent(plan: LabPlan, state: LabState, node: LabNode, trellisBin: string): number {
  const dir = nodeDir(plan.name, node.name);
  fs.mkdirSync(dir, { recursive: true });
  const env = { ...process.env };
  delete env.NODE_EXTRA_CA_CERTS;
  const pid = spawnDetachedIn(node.netns, trellisBin, [
    ...datastoreArgs(state, node.name), "agent", "--node", node.name,
    ...(plan.datastore === "kubernetes" ? ["--network-init", writeNetworkInit(plan), "--cni-conf-template", cniTemplateOf(plan.name, node.name),
      "--cni-conf-file", path.join(dir, "net.d", "10-trellis.conflist")] : []), "--iface", "eth0",
    "--subnet-file", subnetFileOf(plan.name, node.name), "--lease-ttl", String(plan.leaseTtlSeconds ?? LAB_LEASE_TTL), "--resync", String(plan.resyncSeconds ?? LAB_RESYNC_SECONDS),
    "--endpoint-dir", path.join(dir, "endpoints"), "--cni-socket", cniSocketOf(plan.name, node.name), "--bird-dir", birdDirOf(plan.name, node.name),
    "--metrics-addr", LAB_METRICS_ADDR, "--ipam-data-dir", path.join(dir, "ipam"),
    // Tests and benchmarks read the lab's agent logs line by line: the human format.
    "--log-format", "text",
    // Policy cannot be enforced for bridge-mode pods (the plugin would refuse them): none then.
    ...(plan.mode === "bridge" ? ["--no-policy"] : []),
  ], path.join(dir, "agent.log"), env);
  state.pids = state.pids.filter((p) => p.what !== `agent ${node.name}`);
  state.pids.push({ what: `agent ${node.name}`, pid });
  writeState(state);
  return pid;
}

/** Stops a lab node's agent (the data plane stays as it is); SIGKILL with `kill`. */
export async function stopAgent(state: LabState, node: string, kill = false): Promise<number | undefined> {
  const p = state.pids.find((x) => x.what === `agent ${node}`);
  if (!p || !processAlive(p.pid)) return undefined;
  if (kill) process.kill(p.pid, "SIGKILL");
  await stopProcess(p.pid);
  return p.pid;
}

/** Stops or starts the lab's etcd (same data directory), to test datastore outages. */
export async function etcdControl(state: LabState, action: "stop" | "start"): Promise<number> {
  if (state.plan.datastore !== "etcd") throw new Error(`lab ${state.plan.name} uses the ${state.plan.datastore} datastore, not etcd`);
  const p = state.pids.find((x) => x.what === "etcd");
  if (action === "stop") {
    if (p && processAlive(p.pid)) await stopProcess(p.pid);
    return p?.pid ?? 0;
  }
  if (p && processAlive(p.pid)) return p.pid;
  state.pids = state.pids.filter((x) => x.what !== "etcd");
  startEtcd(state.plan, state);
  writeState(state);
  return state.pids.find((x) => x.what === "etcd")!.pid;
}

export function saveState(s: LabState): void {
  writeState(s);
}

/** Whether every node reports every other node as a peer, programmed in its kernel (or unreachable by configuration). */
function converged(state: LabState, trellisBin: string): boolean {
  const r = trellisIn(state.plan.controlNetns, trellisBin, [...datastoreArgs(state), "nodes", "-o", "json"]);
  if (!r.ok) return false;
  const nodes = (JSON.parse(r.out) as { nodes: NodeRow[] }).nodes;
  return nodes.length === state.plan.nodes.length &&
    nodes.every((n) => n.peers.length === nodes.length - 1 && n.peers.every((p) => p.kernel !== "pending"));
}

export interface LabDownReport {
  deletedNetns: string[];
  errors: string[];
}

/** Removes everything the lab made: processes (by pid), pods (CNI DEL first), namespaces, files. */
export async function labDown(name: string, tools: Pick<LabTools, "cniBinDir">, progress: Progress): Promise<LabDownReport> {
  // Nothing of that name at all is an error: a typo must not read as "it is down".
  labDir(name); // refuses a name that is not a lab name before anything else
  if (!labExists(name)) throw new Error(`no lab named ${name} (see "trellis lab list")`);
  const state = readState(name);
  const errors: string[] = [];
  if (state) {
    for (const p of state.pids) {
      if (!processAlive(p.pid)) continue;
      await stopProcess(p.pid);
      progress(`stopped ${p.what} (pid ${p.pid})`);
    }
    // The agents' BIRDs outlive agent restarts (their routes stay in place): each is found by the
    // pid file in its node's directory, and ended after its agent (which would start it again).
    for (const n of state.plan.nodes) {
      const pid = new RealBirdKernel(birdDirOf(name, n.name)).pid();
      if (pid === undefined) continue;
      await stopProcess(pid);
      progress(`stopped BIRD of ${n.name} (pid ${pid})`);
    }
    for (const pod of state.plan.pods) {
      if (!netnsExists(pod.netns) && !state.podIps[podKey(pod)]) continue;
      try {
        runtimeFor(state.plan, pod.node, tools.cniBinDir).del({ containerId: pod.containerId, netns: pod.netns, ifname: pod.ifname, args: podArgs(pod) });
      } catch (e) {
        if (netnsExists(state.plan.nodes.find((n) => n.name === pod.node)?.netns ?? "")) errors.push(`pod ${pod.name}: ${(e as Error).message}`);
      }
    }
    progress(`CNI DEL done for ${Object.keys(state.podIps).length} pod(s)`);
  }
  // Every namespace whose name carries the lab's prefix is the lab's: pods first, switches last.
  const ours = listNetns().filter((n) => n.startsWith(labNetnsPrefix(name)));
  const order = (n: string): number => (/-p\d+$/.test(n) ? 0 : /-sw\d*$/.test(n) ? 2 : 1);
  ours.sort((a, b) => order(a) - order(b));
  const deleted: string[] = [];
  for (const ns of ours) {
    try {
      if (deleteNetns(ns)) deleted.push(ns);
    } catch (e) {
      errors.push(`namespace ${ns}: ${(e as Error).message}`);
    }
  }
  progress(`deleted ${deleted.length} namespace(s)`);
  fs.rmSync(labDir(name), { recursive: true, force: true });
  return { deletedNetns: deleted, errors };
}

export interface LabStatus {
  /** bgp labs with --tor: each ToR router and its sessions. */
  tors?: Array<{ name: string; netns: string; ip: string; spineIp: string; asNumber: number; bgp?: LabBgpSession[] }>;
  backend: string;
  datastore?: string;
  /** What this lab will not do (bridge mode: no policy; node pairs without a path). */
  warnings: string[];
  /** The host outside the cluster (behind the lab's router): where NodePorts are reached from. */
  outside: { netns: string; ip: string };
  /** `metrics`: the agent's /metrics (and /healthz, /readyz) address, reachable inside the node's netns. */
  nodes: Array<{ name: string; netns: string; ip: string; segment: number; subnet: string; agentPid?: number; metrics?: string; bgp?: LabBgpSession[] }>;
  pods: Array<{ name: string; namespace: string; node: string; netns: string; ip: string; ifname: string }>;
}

function nodeSubnet(lab: string, n: LabNode): string {
  if (n.podCidr) return n.podCidr;
  try {
    return /TRELLIS_SUBNET=(\S+)/.exec(fs.readFileSync(subnetFileOf(lab, n.name), "utf8"))?.[1] ?? "";
  } catch {
    return "";
  }
}

/** One BGP session as a lab's node (BIRD) or ToR (FRR) reports it. */
export interface LabBgpSession {
  peer: string;
  address: string;
  state: string;
  received?: number;
  exported?: number;
}

/** A node's BIRD sessions, read through its control socket (BIRD's own words); [] without BIRD. */
async function nodeBgpSessions(lab: string, node: string): Promise<LabBgpSession[] | undefined> {
  const bird = new RealBirdKernel(birdDirOf(lab, node));
  if (bird.pid() === undefined) return undefined;
  try {
    return parseProtocols(await bird.show(["protocols", "all"])).filter((p) => p.proto === "BGP").map((p) => ({
      peer: p.description ?? p.name, address: p.neighborAddress ?? "", state: p.bgpState ?? p.state,
      ...(p.routes ? { received: p.routes.imported + p.routes.filtered, exported: p.routes.exported } : {}),
    }));
  } catch {
    return undefined;
  }
}

/** A ToR's FRR sessions (`show bgp summary json`). */
function torBgpSessions(lab: string, tor: LabTor): LabBgpSession[] | undefined {
  try {
    const j = JSON.parse(torVtysh(labDir(lab), tor, "show bgp summary json")) as {
      ipv4Unicast?: { peers?: Record<string, { desc?: string; state?: string; pfxRcd?: number; pfxSnt?: number }> };
    };
    return Object.entries(j.ipv4Unicast?.peers ?? {}).map(([address, p]) => ({
      peer: p.desc ?? address, address, state: p.state ?? "", ...(p.pfxRcd !== undefined ? { received: p.pfxRcd } : {}),
      ...(p.pfxSnt !== undefined ? { exported: p.pfxSnt } : {}),
    }));
  } catch {
    return undefined;
  }
}

export async function labStatus(name: string): Promise<LabStatus> {
  const state = requireState(name);
  const bgp = state.plan.bgp;
  return {
    backend: state.plan.backend,
    ...(state.datastoreUrl ? { datastore: state.datastoreUrl } : {}),
    warnings: labWarnings(state.plan),
    outside: { netns: state.plan.outsideNetns, ip: state.plan.outsideIp },
    nodes: await Promise.all(state.plan.nodes.map(async (n) => {
      const pid = state.pids.find((p) => p.what === `agent ${n.name}`)?.pid;
      const sessions = bgp ? await nodeBgpSessions(name, n.name) : undefined;
      return {
        name: n.name, netns: n.netns, ip: n.ip.split("/")[0]!, segment: n.segment, subnet: nodeSubnet(name, n),
        ...(pid !== undefined && processAlive(pid) ? { agentPid: pid } : {}),
        ...(state.datastoreUrl ? { metrics: LAB_METRICS_ADDR } : {}),
        ...(sessions ? { bgp: sessions } : {}),
      };
    })),
    ...(bgp?.tors.length ? {
      tors: bgp.tors.map((t) => {
        const sessions = torBgpSessions(name, t);
        return { name: `tor${t.segment}`, netns: t.netns, ip: t.ip, spineIp: t.spineIp, asNumber: t.asNumber, ...(sessions ? { bgp: sessions } : {}) };
      }),
    } : {}),
    pods: state.plan.pods
      .filter((p) => state.podIps[podKey(p)])
      .map((p) => ({ name: p.name, namespace: p.namespace, node: p.node, netns: p.netns, ip: state.podIps[podKey(p)]![0] ?? "", ifname: p.ifname })),
  };
}

export function listLabs(): string[] {
  try {
    return fs.readdirSync(LAB_ROOT).filter((n) => readState(n));
  } catch {
    return [];
  }
}

export type Verdict = "ok" | "FAIL" | "blocked" | "UNEXPECTED" | "unreachable";

export interface CheckCell {
  from: string;
  to: string;
  /** "ICMP", or "80/TCP" for a declared port. */
  probe: string;
  expected: boolean;
  reached: boolean;
  /** Why it is expected or not (topology, or the policy verdict from explain). */
  why: string;
  /** Set when the configuration leaves this pair without a path: why (host-gw across segments, no agents, no NAT). */
  unreachableByConfig?: string;
  /** Whether the lab was made to be so (--backend none, --allow-unreachable, no NAT for the outside); else the check fails. */
  accepted?: boolean;
  /** For a path that should connect and does not: the first broken hop found (src/diagnose). */
  cause?: string;
}

export interface CheckReport {
  pods: string[];
  /** Destinations: the pods, then "outside" when the lab has one. */
  targets: string[];
  cells: CheckCell[];
  /** Cells whose pair the configuration leaves without a path, and whether the lab was made to be so (all of them). */
  unreachable: { cells: number; accepted: boolean; reasons: string[] };
  /** Things the check saw that do not fail it but must be said (a stopped agent, a stale policy model). */
  warnings: string[];
  /** Each Service port probed from one pod of each node: which endpoints answered ("3/3"), which never did. */
  services: ServiceCheckCell[];
  passed: boolean;
}

export const OUTSIDE = "outside";

/** What the lab's datastore says: the policy model (as explain sees it), the nodes, the network config. */
interface ClusterView {
  at: string;
  model: PolicyModel;
  nodes: NodeRow[];
  config?: NetworkConfig;
  /** Services and their slices (stored or derived) as the agents compile them; absent when they could not be read. */
  services?: ServicesInput;
  /** Why the Services could not be read. */
  servicesError?: string;
}

const viewCacheFile = (lab: string): string => path.join(labDir(lab), "cluster-view.json");

/**
 * The cluster as the lab's datastore describes it, read inside the lab (where its datastore is).
 * The last good view is kept, so that during a datastore outage the check still runs — against
 * that view, and saying so.
 */
function readClusterView(state: LabState, trellisBin: string): { view?: ClusterView; stale?: string } {
  if (!state.datastoreUrl) return {};
  const ds = datastoreArgs(state);
  const model = trellisIn(state.plan.controlNetns, trellisBin, [...ds, "policy", "model"]);
  const nodes = model.ok ? trellisIn(state.plan.controlNetns, trellisBin, [...ds, "nodes", "-o", "json"]) : model;
  const config = nodes.ok ? trellisIn(state.plan.controlNetns, trellisBin, [...ds, "network", "show", "-o", "json"]) : nodes;
  if (model.ok && nodes.ok && config.ok) {
    // Services are read apart: a datastore that cannot list them still gets its pod paths checked.
    const services = trellisIn(state.plan.controlNetns, trellisBin, [...ds, "services", "model"]);
    const view: ClusterView = {
      at: new Date().toISOString(), model: JSON.parse(model.out) as PolicyModel,
      nodes: (JSON.parse(nodes.out) as { nodes: NodeRow[] }).nodes, config: JSON.parse(config.out) as NetworkConfig,
      ...(services.ok ? { services: JSON.parse(services.out) as ServicesInput } : { servicesError: firstLine(services.out) }),
    };
    try {
      fs.writeFileSync(viewCacheFile(state.plan.name), JSON.stringify(view));
    } catch {
      // a cache only
    }
    return { view };
  }
  const why = firstLine([model, nodes, config].find((r) => !r.ok)!.out);
  try {
    const view = JSON.parse(fs.readFileSync(viewCacheFile(state.plan.name), "utf8")) as ClusterView;
    return { view, stale: `the datastore cannot be read (${why}): expectations come from the policy model as of ${view.at} and may be stale; the data plane is probed as it is` };
  } catch {
    throw new Error(`cannot read the lab's datastore, and no earlier view of it is kept: ${why}`);
  }
}

const firstLine = (text: string): string => text.split("\n").find((l) => l.trim() !== "")?.trim() ?? text;

/**
 * Why the configuration gives pods on `a` no path to pods on `b`, or undefined. Each agent's
 * own report of its peers decides (it sees the live config); the plan is the fallback.
 */
function configReason(plan: LabPlan, view: ClusterView | undefined, a: string, b: string): string | undefined {
  if (a === b) return undefined;
  if (plan.backend === "none") return "no agents (--backend none): pods reach only their own node";
  const reported = view?.nodes.find((n) => n.name === a)?.peers.find((p) => p.node === b);
  if (reported) return reported.transport === "unreachable" ? reported.reason ?? "reported unreachable by its agent" : undefined;
  return unreachableNodePairs(plan).find((u) => (u.a === a && u.b === b) || (u.a === b && u.b === a))?.why;
}

/**
 * Probes every ordered pod pair on every port the destination declares (ICMP when it declares
 * none) and each pod -> outside, and compares with what should happen: the configuration (a pair
 * it leaves without a path is counted and named, and fails the check unless the lab was made
 * that way on purpose) and the policy verdict computed by the same evaluator as `explain`. Each
 * path that should connect and does not is walked hop by hop to name its first broken hop.
 */
export async function labCheck(name: string, tools: LabTools, parallel = 8): Promise<CheckReport> {
  const trellisBin = tools.trellisBin;
  const state = requireState(name);
  const plan = state.plan;
  const pods = plan.pods.filter((p) => state.podIps[podKey(p)]?.length);
  const { view, stale } = readClusterView(state, trellisBin);
  const idx = view ? new PolicyIndex(view.model) : undefined;
  const natOutgoing = view?.config?.natOutgoing ?? plan.natOutgoing;
  // A pair the configuration leaves without a path fails the check unless it was asked for:
  // --backend none (no agents) and --allow-unreachable for pod pairs, NAT off for the outside.
  const pairsAccepted = plan.backend === "none" || !!plan.allowUnreachable;
  type Job = { from: LabPod; to?: LabPod; target: ProbeTarget; unreachable?: string; accepted?: boolean; topoWhy: string };
  const perSource = new Map<LabPod, Job[]>();
  for (const from of pods) {
    const jobs: Job[] = [];
    for (const to of pods) {
      if (to === from) continue;
      const ip = state.podIps[podKey(to)]![0]!;
      const unreachable = configReason(plan, view, from.node, to.node);
      const base = { from, to, ...(unreachable ? { unreachable, accepted: pairsAccepted } : {}), topoWhy: unreachable ? `unreachable by configuration: ${unreachable}` : "" };
      const declared = to.ports ?? [];
      if (declared.length === 0) jobs.push({ ...base, target: { ip, protocol: "ICMP" } });
      for (const port of declared) jobs.push({ ...base, target: { ip, port: port.port, protocol: port.protocol } });
    }
    const outside = plan.backend === "none" ? "no agents (--backend none): no NAT" : !natOutgoing ? "NAT outgoing is off: the outside has no route to pods" : undefined;
    jobs.push({ from, target: { ip: plan.outsideIp, protocol: "ICMP" }, ...(outside ? { unreachable: outside, accepted: true } : {}), topoWhy: outside ? `unreachable by configuration: ${outside}` : "" });
    perSource.set(from, jobs);
  }
  const verdictOf = (j: Job): { allowed: boolean; why: string } => {
    if (!idx) return { allowed: true, why: "no policy model (no agents)" };
    const v = evaluate(idx, { src: state.podIps[podKey(j.from)]![0]!, dst: j.target.ip, protocol: j.target.protocol as Protocol, port: j.target.port ?? 0 });
    return { allowed: v.allowed, why: [v.egress && `egress: ${v.egress.reason}`, v.ingress && `ingress: ${v.ingress.reason}`].filter(Boolean).join("; ") || "no policy applies" };
  };
  const cells: Array<CheckCell & { job: Job }> = [];
  await eachWithin(parallel, [...perSource.keys()], async (from) => {
    const jobs = perSource.get(from)!;
    const results = await probeFrom(from.netns, trellisBin, jobs.map((j) => j.target));
    jobs.forEach((j, i) => {
      const policy = verdictOf(j);
      const expected = !j.unreachable && policy.allowed;
      const err = results[i]?.error;
      const why = j.unreachable ? j.topoWhy : policy.why;
      cells.push({
        job: j, from: podKey(from), to: j.to ? podKey(j.to) : OUTSIDE, probe: j.target.port ? `${j.target.port}/${j.target.protocol}` : "ICMP",
        expected, reached: results[i]?.reached ?? false, why: err ? `${err}; ${why}` : why,
        ...(j.unreachable ? { unreachableByConfig: j.unreachable, accepted: !!j.accepted } : {}),
      });
    });
  });

  // Every path that should connect and does not: its first broken hop, from the kernel's state.
  const failed = cells.filter((c) => c.expected && !c.reached && !c.why.startsWith("prober failed"));
  if (failed.length > 0) {
    const gather = new FactGatherer(state, view, tools.cniBinDir);
    for (const c of failed) {
      const j = c.job;
      const d = diagnosePath({
        from: gather.pod(j.from), to: j.to ? gather.pod(j.to) : { outside: plan.outsideIp },
        nodes: await gather.nodes([j.from.node, ...(j.to ? [j.to.node] : [])]), leasesKnown: !!view && !stale,
        ...(view?.config ? { config: view.config } : {}), policy: { allowed: verdictOf(j).allowed, detail: verdictOf(j).why }, now: Date.now(),
      });
      c.cause = d.cause;
    }
  }

  const services = view?.services && idx ? await checkServices(state, view.model, view.services, idx, trellisBin, parallel) : [];

  const order = new Map(pods.map((p, i) => [podKey(p), i]));
  const out: CheckCell[] = cells.map(({ job: _job, ...c }) => c);
  out.sort((a, b) => (order.get(a.from)! - order.get(b.from)!) || ((order.get(a.to) ?? 1e9) - (order.get(b.to) ?? 1e9)) || a.probe.localeCompare(b.probe));
  const unreachableCells = out.filter((c) => c.unreachableByConfig);
  const accepted = unreachableCells.every((c) => c.accepted);
  const warnings = [...labWarnings(plan)];
  if (stale) warnings.push(stale);
  if (view?.servicesError) warnings.push(`Services not checked: they could not be read (${view.servicesError})`);
  for (const n of plan.nodes) {
    const p = state.pids.find((x) => x.what === `agent ${n.name}`);
    if (p && !processAlive(p.pid)) warnings.push(`the agent of ${n.name} is not running (pid ${p.pid}): its data plane stays as it was, but nothing repairs it or follows changes`);
  }
  return {
    pods: pods.map(podKey),
    targets: [...pods.map(podKey), OUTSIDE],
    cells: out,
    unreachable: { cells: unreachableCells.length, accepted, reasons: [...new Set(unreachableCells.map((c) => c.unreachableByConfig!))] },
    warnings,
    services,
    passed: out.every((c) => c.expected === c.reached) && accepted && services.every((c) => c.passed),
  };
}

/**
 * Probes every TCP/UDP Service port from one pod of each node (service-check.ts decides what and
 * what should answer): one prober process per source pod, each target a Service probe.
 */
async function checkServices(state: LabState, model: PolicyModel, input: ServicesInput, idx: PolicyIndex, trellisBin: string,
  parallel: number): Promise<ServiceCheckCell[]> {
  const plan = state.plan;
  const pods: CheckPod[] = plan.pods.filter((p) => state.podIps[podKey(p)]?.length).map((p) => ({
    key: podKey(p), ip: state.podIps[podKey(p)]![0]!, node: p.node, serves: (p.ports ?? []).map((x) => `${x.port}/${x.protocol}`),
  }));
  if (pods.length === 0 || input.services.length === 0) return [];
  const jobs = serviceProbeJobs(pods, model, input, idx);
  const bySource = new Map<string, ServiceProbeJob[]>();
  for (const j of jobs) bySource.set(j.from.key, [...(bySource.get(j.from.key) ?? []), j]);
  const cells: ServiceCheckCell[] = [];
  await eachWithin(parallel, [...bySource.keys()], async (key) => {
    const mine = bySource.get(key)!;
    const netns = plan.pods.find((p) => podKey(p) === key)!.netns;
    const results = await probeFrom(netns, trellisBin, mine.map((j) => j.target)) as Array<ServiceProbeResult | { reached: false; error?: string }>;
    mine.forEach((j, i) => {
      const r = results[i];
      cells.push(judgeServiceProbe(j, r && "answered" in r ? r : { error: (r as { error?: string } | undefined)?.error ?? "no result from the prober" }, pods));
    });
  });
  const order = new Map(jobs.map((j, i) => [`${j.from.key} ${j.explanation.service} ${j.target.port}/${j.target.protocol}`, i]));
  return cells.sort((a, b) => order.get(`${a.from} ${a.service} ${a.probe}`)! - order.get(`${b.from} ${b.service} ${b.probe}`)!);
}

/** Reads the facts a path diagnosis needs from the lab's kernels, each node and pod at most once. */
class FactGatherer {
  private readonly nodeFacts = new Map<string, NodeFacts>();
  private readonly podFacts = new Map<string, PodFacts>();

  constructor(private readonly state: LabState, private readonly view: ClusterView | undefined, private readonly cniBinDir: string) {}

  pod(p: LabPod): PodFacts {
    const key = podKey(p);
    let f = this.podFacts.get(key);
    if (!f) {
      let cniCheck: PodFacts["cniCheck"];
      try {
        runtimeFor(this.state.plan, p.node, this.cniBinDir).check({ containerId: p.containerId, netns: p.netns, ifname: p.ifname, args: podArgs(p) });
        cniCheck = { ok: true };
      } catch (e) {
        cniCheck = { ok: false, error: (e as Error).message };
      }
      f = { name: key, ip: this.state.podIps[key]![0]!, node: p.node, cniCheck };
      this.podFacts.set(key, f);
    }
    return f;
  }

  async nodes(names: string[]): Promise<Map<string, NodeFacts>> {
    const out = new Map<string, NodeFacts>();
    for (const name of names) {
      let f = this.nodeFacts.get(name);
      if (!f) {
        f = await this.readNode(name);
        this.nodeFacts.set(name, f);
      }
      out.set(name, f);
    }
    return out;
  }

  private async readNode(name: string): Promise<NodeFacts> {
    const n = this.state.plan.nodes.find((x) => x.name === name)!;
    const f: NodeFacts = { name, underlay: { dev: "eth0", cidr: n.ip, mtu: 1500 } };
    const pid = this.state.pids.find((x) => x.what === `agent ${name}`);
    const row = this.view?.nodes.find((x) => x.name === name);
    if (this.state.plan.backend !== "none") {
      f.agent = pid && processAlive(pid.pid)
        ? { running: true, detail: row?.agentDetail ?? "running" }
        : { running: false, detail: pid ? `pid ${pid.pid} has ended${row ? `; datastore: ${row.agentDetail}` : ""}` : "never started" };
    }
    if (row) {
      f.lease = {
        subnet: row.subnet, node: row.name, publicIp: row.publicIp, backend: row.backend as Lease["backend"],
        ...(row.vtepMac ? { vtepMac: row.vtepMac } : {}), renewedAt: Date.parse(row.lastRenewal), expiresAt: Date.parse(row.leaseExpiresAt),
      };
    }
    try {
      f.forwarding = sysctlGetIn(n.netns, "net.ipv4.ip_forward") === "1";
    } catch {
      // not read: the diagnosis says so
    }
    try {
      f.dataplane = await new RealDataplaneKernel({ netns: netnsPath(n.netns) }).read({ bgp: this.view?.config?.backend.type === "bgp" });
    } catch {
      // not read
    }
    return f;
  }
}

/** Runs `fn` on every item, at most `limit` at a time. */
async function eachWithin<T>(limit: number, items: readonly T[], fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** One prober process inside the source pod probes all its targets concurrently. */
async function probeFrom(netns: string, trellisBin: string, targets: ProbeTarget[]): Promise<Array<{ reached: boolean; error?: string }>> {
  try {
    const r = await runAsync(trellisBin, ["probe", "connect", "--targets", JSON.stringify(targets)], { netns: netnsPath(netns) });
    return JSON.parse(r.stdout) as Array<{ reached: boolean }>;
  } catch (e) {
    // A prober that failed proves nothing about the paths: say so in every cell it owned.
    return targets.map(() => ({ reached: false, error: `prober failed: ${proberError(e)}` }));
  }
}

/** A failed prober's error as whole lines (its stderr's last non-empty line says why), never cut mid-line. */
function proberError(e: unknown): string {
  const stderr = e instanceof KernelError ? e.stderr : "";
  const lines = stderr.split("\n").map((l) => l.trim()).filter(Boolean);
  return lines.length > 0 ? lines[lines.length - 1]! : firstLine((e as Error).message);
}

export function verdict(c: CheckCell): Verdict {
  if (c.unreachableByConfig && !c.reached) return "unreachable";
  if (c.expected) return c.reached ? "ok" : "FAIL";
  return c.reached ? "UNEXPECTED" : "blocked";
}

