// The lab's layout as plain data: which namespaces, which addresses, which pods. Pure.
//
//   switch namespace  trellis-<lab>-sw   bridge "br0": the underlay segment every node plugs into
//   node namespaces   trellis-<lab>-<node>   eth0 on the underlay (10.99.1.<10+i>/24); the node's
//                                            "host" namespace, where the CNI plugin runs
//   pod namespaces    trellis-<lab>-<node>-p<j>  attached by the real plugin, as a runtime does
//
// Every name starts with "trellis-<lab>-", so a lab's leftovers can always be found by name and
// nothing else on the machine is ever touched.
import { CniError, ErrorCode } from "../cni/errors.js";
import { MODES, type Mode } from "../cni/config.js";

export interface LabOptions {
  name: string;
  nodes: number;
  podsPerNode: number;
  mode: Mode;
}

export interface LabNode {
  name: string;
  netns: string;
  /** Underlay address with prefix, e.g. 10.99.1.11/24. */
  ip: string;
  /** Port on the switch bridge. */
  switchPort: string;
  /** The node's pod block. */
  podCidr: string;
}

export interface LabPod {
  name: string;
  namespace: string;
  node: string;
  netns: string;
  containerId: string;
  ifname: string;
}

export interface LabPlan {
  name: string;
  mode: Mode;
  switchNetns: string;
  bridge: string;
  underlayCidr: string;
  podNetwork: string;
  nodes: LabNode[];
  pods: LabPod[];
}

export const LAB_NAME_RE = /^[a-z][a-z0-9]{0,11}$/;
export const MAX_NODES = 50;
export const MAX_PODS_PER_NODE = 100;
export const NETNS_PREFIX = "trellis-";

const invalid = (field: string, value: unknown, why: string): CniError =>
  new CniError(ErrorCode.InvalidNetworkConfig, `invalid lab option ${field} ${JSON.stringify(value)}: ${why}`);

export function validateLabOptions(o: LabOptions): void {
  if (!LAB_NAME_RE.test(o.name)) throw invalid("--name", o.name, "use 1-12 lower-case letters and digits, starting with a letter");
  if (!Number.isInteger(o.nodes) || o.nodes < 1 || o.nodes > MAX_NODES) throw invalid("--nodes", o.nodes, `must be 1..${MAX_NODES}`);
  if (!Number.isInteger(o.podsPerNode) || o.podsPerNode < 0 || o.podsPerNode > MAX_PODS_PER_NODE) {
    throw invalid("--pods-per-node", o.podsPerNode, `must be 0..${MAX_PODS_PER_NODE}`);
  }
  if (!(MODES as readonly string[]).includes(o.mode)) throw invalid("--mode", o.mode, `must be one of ${MODES.join(", ")}`);
}

export const labNetnsPrefix = (lab: string): string => `${NETNS_PREFIX}${lab}-`;

export function planLab(o: LabOptions): LabPlan {
  validateLabOptions(o);
  const prefix = labNetnsPrefix(o.name);
  const nodes: LabNode[] = [];
  const pods: LabPod[] = [];
  for (let i = 1; i <= o.nodes; i++) {
    const name = `node${i}`;
    nodes.push({ name, netns: `${prefix}${name}`, ip: `10.99.1.${10 + i}/24`, switchPort: `port${i}`, podCidr: `10.244.${i}.0/24` });
    for (let j = 1; j <= o.podsPerNode; j++) {
      pods.push({
        name: `${name}-pod${j}`,
        namespace: "default",
        node: name,
        netns: `${prefix}${name}-p${j}`,
        containerId: `lab-${o.name}-${name}-pod${j}`,
        ifname: "eth0",
      });
    }
  }
  return {
    name: o.name,
    mode: o.mode,
    switchNetns: `${prefix}sw`,
    bridge: "br0",
    underlayCidr: "10.99.1.0/24",
    podNetwork: "10.244.0.0/16",
    nodes,
    pods,
  };
}

/** The network configuration list each lab node's runtime reads (one plugin: trellis). */
export function nodeConflist(plan: LabPlan, node: LabNode, dataDir: string, logFile: string): Record<string, unknown> {
  return {
    cniVersion: "1.1.0",
    name: "trellis",
    plugins: [
      {
        type: "trellis",
        mode: plan.mode,
        logFile,
        ipam: { type: "trellis-ipam", dataDir, ranges: [[{ subnet: node.podCidr }]] },
      },
    ],
  };
}

/** Which pod pairs must reach each other: for now, pods on the same node. */
export function expectReachable(from: LabPod, to: LabPod): boolean {
  return from.node === to.node;
}
