// Building, inspecting and removing a lab cluster. The layout comes from plan.ts; the namespaces
// and links are made through the kernel seam; pods are attached through LabRuntime, i.e. by the
// real plugin executables. The state file records every namespace as soon as it exists, so
// `lab down` removes a half-built lab as completely as a whole one.
import * as fs from "node:fs";
import * as path from "node:path";
import { createNetns, deleteNetns, ipBatchIn, listNetns, netnsExists, pingFrom, sysctlIn } from "../kernel/netns.js";
import { LabRuntime } from "./runtime.js";
import { expectReachable, labNetnsPrefix, nodeConflist, planLab, type LabOptions, type LabPlan, type LabPod } from "./plan.js";

export const LAB_ROOT = "/run/trellis/lab";

export interface LabState {
  plan: LabPlan;
  createdAt: string;
  /** Namespaces made so far, in creation order. */
  netns: string[];
  /** Pod name -> addresses from its CNI result. */
  podIps: Record<string, string[]>;
}

export type Progress = (line: string) => void;

export const labDir = (name: string): string => path.join(LAB_ROOT, name);
const stateFile = (name: string): string => path.join(labDir(name), "state.json");
const nodeDir = (lab: string, node: string): string => path.join(labDir(lab), node);

export function readState(name: string): LabState | undefined {
  try {
    return JSON.parse(fs.readFileSync(stateFile(name), "utf8")) as LabState;
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

const podArgs = (p: LabPod): Record<string, string> => ({
  IgnoreUnknown: "1",
  K8S_POD_NAMESPACE: p.namespace,
  K8S_POD_NAME: p.name,
  K8S_POD_INFRA_CONTAINER_ID: p.containerId,
});

export function labUp(opts: LabOptions, cniBinDir: string, progress: Progress): LabState {
  const plan = planLab(opts);
  if (readState(plan.name) || listNetns().some((n) => n.startsWith(labNetnsPrefix(plan.name)))) {
    throw new Error(`lab ${plan.name} already exists: run "trellis lab down --name ${plan.name}" first`);
  }
  for (const bin of ["trellis", "trellis-ipam"]) {
    if (!fs.existsSync(path.join(cniBinDir, bin))) throw new Error(`${bin} not found in ${cniBinDir}: run "npm run build"`);
  }
  const state: LabState = { plan, createdAt: new Date().toISOString(), netns: [], podIps: {} };
  writeState(state);
  const steps = 1 + plan.nodes.length + plan.pods.length;
  let step = 0;
  const say = (what: string): void => progress(`[${++step}/${steps}] ${what}`);
  const made = (ns: string): void => {
    state.netns.push(ns);
    writeState(state);
  };

  say(`underlay switch ${plan.switchNetns} (bridge ${plan.bridge}, ${plan.underlayCidr})`);
  createNetns(plan.switchNetns);
  made(plan.switchNetns);
  ipBatchIn(plan.switchNetns, [`link add ${plan.bridge} type bridge`, `link set ${plan.bridge} up`]);

  for (const node of plan.nodes) {
    say(`node ${node.name}: namespace ${node.netns}, eth0 ${node.ip}`);
    createNetns(node.netns);
    made(node.netns);
    // The veth is made in the switch namespace and its node end moved into the node namespace:
    // nothing of the lab ever exists in the machine's own namespace.
    ipBatchIn(plan.switchNetns, [
      `link add ${node.switchPort} type veth peer name eth0 netns /run/netns/${node.netns}`,
      `link set ${node.switchPort} master ${plan.bridge}`,
      `link set ${node.switchPort} up`,
    ]);
    ipBatchIn(node.netns, [`addr add ${node.ip} dev eth0`, "link set eth0 up"]);
    sysctlIn(node.netns, { "net.ipv4.ip_forward": "1" });
    const dir = nodeDir(plan.name, node.name);
    fs.mkdirSync(path.join(dir, "net.d"), { recursive: true });
    fs.writeFileSync(path.join(dir, "net.d", "10-trellis.conflist"),
      JSON.stringify(nodeConflist(plan, node, path.join(dir, "ipam"), path.join(dir, "cni.log")), null, 2) + "\n");
  }

  for (const pod of plan.pods) {
    createNetns(pod.netns);
    made(pod.netns);
    const result = runtimeFor(plan, pod.node, cniBinDir).add({ containerId: pod.containerId, netns: pod.netns, ifname: pod.ifname, args: podArgs(pod) });
    const ips = ((result.ips ?? []) as Array<{ address: string }>).map((i) => i.address.split("/")[0]!);
    state.podIps[pod.name] = ips;
    writeState(state);
    say(`pod ${pod.namespace}/${pod.name} on ${pod.node}: ${ips.join(", ")}`);
  }
  return state;
}

export interface LabDownReport {
  deletedNetns: string[];
  errors: string[];
}

/** Removes everything the lab made: pods (CNI DEL first, as a runtime would), namespaces, files. */
export function labDown(name: string, cniBinDir: string, progress: Progress): LabDownReport {
  const state = readState(name);
  const errors: string[] = [];
  if (state) {
    for (const pod of state.plan.pods) {
      if (!netnsExists(pod.netns) && !state.podIps[pod.name]) continue;
      try {
        runtimeFor(state.plan, pod.node, cniBinDir).del({ containerId: pod.containerId, netns: pod.netns, ifname: pod.ifname, args: podArgs(pod) });
        progress(`pod ${pod.name}: CNI DEL done`);
      } catch (e) {
        if (netnsExists(state.plan.nodes.find((n) => n.name === pod.node)?.netns ?? "")) {
          errors.push(`pod ${pod.name}: ${(e as Error).message}`);
        }
      }
    }
  }
  // Every namespace whose name carries the lab's prefix is the lab's: pods first, switch last.
  const ours = listNetns().filter((n) => n.startsWith(labNetnsPrefix(name)));
  const order = (n: string): number => (/-p\d+$/.test(n) ? 0 : n.endsWith("-sw") ? 2 : 1);
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
  nodes: Array<{ name: string; netns: string; ip: string; podCidr: string }>;
  pods: Array<{ name: string; namespace: string; node: string; netns: string; ip: string; ifname: string }>;
}

export function labStatus(name: string): LabStatus {
  const state = readState(name);
  if (!state) throw new Error(`no lab named ${name} (see "trellis lab list")`);
  return {
    nodes: state.plan.nodes.map((n) => ({ name: n.name, netns: n.netns, ip: n.ip.split("/")[0]!, podCidr: n.podCidr })),
    pods: state.plan.pods
      .filter((p) => state.podIps[p.name])
      .map((p) => ({ name: p.name, namespace: p.namespace, node: p.node, netns: p.netns, ip: state.podIps[p.name]![0] ?? "", ifname: p.ifname })),
  };
}

export function listLabs(): string[] {
  try {
    return fs.readdirSync(LAB_ROOT).filter((n) => readState(n));
  } catch {
    return [];
  }
}

export type Verdict = "ok" | "FAIL" | "blocked" | "UNEXPECTED";

export interface CheckCell {
  from: string;
  to: string;
  expected: boolean;
  reached: boolean;
}

export interface CheckReport {
  pods: string[];
  cells: CheckCell[];
  passed: boolean;
}

/** Probes every ordered pod pair (ICMP) with bounded parallelism and compares with expectations. */
export async function labCheck(name: string, parallel = 16): Promise<CheckReport> {
  const state = readState(name);
  if (!state) throw new Error(`no lab named ${name}`);
  const pods = state.plan.pods.filter((p) => state.podIps[p.name]?.length);
  const jobs: Array<{ from: LabPod; to: LabPod; ip: string }> = [];
  for (const from of pods) for (const to of pods) if (from !== to) jobs.push({ from, to, ip: state.podIps[to.name]![0]! });
  const cells: CheckCell[] = new Array(jobs.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const i = next++;
      const j = jobs[i]!;
      // Unreachable pairs cost the whole timeout; pairs that must connect get a retry.
      let reached = await pingFrom(j.from.netns, j.ip, 1);
      const expected = expectReachable(j.from, j.to);
      if (!reached && expected) reached = await pingFrom(j.from.netns, j.ip, 1);
      cells[i] = { from: j.from.name, to: j.to.name, expected, reached };
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, jobs.length) }, worker));
  return { pods: pods.map((p) => p.name), cells, passed: cells.every((c) => c.expected === c.reached) };
}

export function verdict(c: CheckCell): Verdict {
  if (c.expected) return c.reached ? "ok" : "FAIL";
  return c.reached ? "UNEXPECTED" : "blocked";
}
