// The lab's layout as plain data: which namespaces, which addresses, which pods. Pure.
//
//   switches   trellis-<lab>-sw<S>      bridge "br0": underlay segment S (10.99.S.0/24)
//   router     trellis-<lab>-rt         10.99.S.1 on every segment; 203.0.113.1 towards "outside";
//                                       knows nothing of the pod network (a plain L3 network)
//   outside    trellis-<lab>-out        203.0.113.100: stands for the internet (NAT tests); routes
//                                       only the underlay back, so un-NATed pod traffic gets no reply
//   control    trellis-<lab>-cp         10.99.1.2 on segment 1: runs etcd with --datastore etcd
//   nodes      trellis-<lab>-nodeN      eth0 10.99.S.(10+N), default via the router; the node's
//                                       "host" namespace, where the CNI plugin and the agent run
//   pods       trellis-<lab>-nodeN-pJ   attached by the real plugin, as a runtime does
//
// Nodes are spread over the segments round-robin. Every name starts with "trellis-<lab>-", so a
// lab's leftovers can always be found by name and nothing else on the machine is ever touched.
import { CniError, ErrorCode } from "../cni/errors.js";
import { MODES, type Mode } from "../cni/config.js";
import { BACKENDS, type BackendType } from "../model/network.js";

export const LAB_BACKENDS = ["none", ...BACKENDS] as const;
export type LabBackend = (typeof LAB_BACKENDS)[number];
export const LAB_DATASTORES = ["embedded", "etcd", "kubernetes"] as const;
export type LabDatastore = (typeof LAB_DATASTORES)[number];

/** A lab described in YAML (`lab up --spec FILE`): nodes, namespaces, and pods with labels and ports. */
export interface LabSpec {
  nodes?: number;
  segments?: number;
  backend?: LabBackend;
  mode?: Mode;
  datastore?: LabDatastore;
  natOutgoing?: boolean;
  podCidr?: string;
  subnetLen?: number;
  allowUnreachable?: boolean;
  tor?: boolean;
  routeReflectors?: number;
  nodeMesh?: boolean;
  namespaces?: Array<{ name: string; labels?: Record<string, string> }>;
  pods: Array<{ name: string; namespace?: string; node: string; labels?: Record<string, string>; ports?: LabPort[] }>;
  /** Service (and EndpointSlice) documents, applied by `lab up` as `trellis apply` would. */
  services?: Array<Record<string, unknown>>;
}

export interface LabPort {
  name?: string;
  port: number;
  protocol: "TCP" | "UDP" | "SCTP";
}

export interface LabOptions {
  name: string;
  nodes: number;
  podsPerNode: number;
  mode: Mode;
  /** "none": no agents, each node gets a fixed block and pods only reach their own node. */
  backend?: LabBackend;
  segments?: number;
  datastore?: LabDatastore;
  natOutgoing?: boolean;
  /** Pod network and node block length given to `network init` (with agents). */
  podNetwork?: string;
  subnetLen?: number;
  /** Pods (with namespaces, labels, ports) instead of podsPerNode anonymous pods. */
  spec?: LabSpec;
  /** Build a topology that leaves node pairs without a path (host-gw across segments) all the same. */
  allowUnreachable?: boolean;
  /** Agents' periodic kernel resync, seconds (default 5). Long values keep injected faults for tests. */
  resyncSeconds?: number;
  /**
   * Agents' lease TTL, seconds (default 10: a removed node disappears within seconds). Large labs
   * on a small machine need more: an agent starved of CPU for a TTL loses its lease, and every
   * peer then drops and re-adds it (for bgp: a BGP session torn down and set up again).
   */
  leaseTtlSeconds?: number;
  /** How long `lab up` waits for every agent to lease a block and for all of them to converge, seconds (default 30). */
  readySeconds?: number;
  /** bgp: a ToR router (FRR) per segment peering with its segment's nodes and the other ToRs. */
  tor?: boolean;
  /** bgp: the first K nodes are route reflectors. */
  routeReflectors?: number;
  /** bgp: the node-to-node mesh (default on). */
  nodeMesh?: boolean;
}

export interface LabNode {
  name: string;
  netns: string;
  /** Underlay address with prefix, e.g. 10.99.1.11/24. */
  ip: string;
  segment: number;
  /** Port on the segment's switch bridge. */
  switchPort: string;
  /** Fixed pod block (backend none); with agents the block comes from the agent's lease. */
  podCidr?: string;
}

export interface LabPod {
  name: string;
  namespace: string;
  node: string;
  netns: string;
  containerId: string;
  ifname: string;
  labels?: Record<string, string>;
  ports?: LabPort[];
}

export interface LabSegment {
  index: number;
  netns: string;
  cidr: string;
  gateway: string;
}

export interface LabPlan {
  name: string;
  mode: Mode;
  backend: LabBackend;
  datastore: LabDatastore;
  natOutgoing: boolean;
  bridge: string;
  segments: LabSegment[];
  routerNetns: string;
  outsideNetns: string;
  outsideIp: string;
  controlNetns: string;
  controlIp: string;
  podNetwork: string;
  subnetLen: number;
  nodes: LabNode[];
  pods: LabPod[];
  namespaces: Array<{ name: string; labels: Record<string, string> }>;
  /** The spec's Service and EndpointSlice documents (applied by `lab up` with the pods). */
  services?: Array<Record<string, unknown>>;
  /** The user asked for this topology although it leaves node pairs without a path. */
  allowUnreachable?: boolean;
  /** Agents' periodic kernel resync, seconds (absent: 5). */
  resyncSeconds?: number;
  /** Agents' lease TTL, seconds (absent: 10). */
  leaseTtlSeconds?: number;
  /** bgp only. */
  bgp?: LabBgp;
}

/** A bgp lab's routing: mesh or not, reflectors, and per-segment ToRs (FRR) with their AS numbers. */
export interface LabBgp {
  nodeMesh: boolean;
  /** Nodes that are route reflectors. */
  reflectors: string[];
  tors: LabTor[];
  /** Per node, its AS when it is not the cluster's (ToR labs: one AS per segment, "AS per rack"). */
  nodeAs: Record<string, number>;
}

export interface LabTor {
  segment: number;
  netns: string;
  /** Its address on the segment (nodes peer with it) and on the spine (ToRs peer with each other). */
  ip: string;
  spineIp: string;
  asNumber: number;
}

export const LAB_NAME_RE = /^[a-z][a-z0-9]{0,11}$/;
export const MAX_NODES = 50;
export const MAX_PODS_PER_NODE = 100;
export const MAX_SEGMENTS = 4;
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
  if (o.backend !== undefined && !(LAB_BACKENDS as readonly string[]).includes(o.backend)) {
    throw invalid("--backend", o.backend, `must be one of ${LAB_BACKENDS.join(", ")}`);
  }
  const segs = o.segments ?? 1;
  if (!Number.isInteger(segs) || segs < 1 || segs > MAX_SEGMENTS) throw invalid("--segments", segs, `must be 1..${MAX_SEGMENTS}`);
  if (o.datastore !== undefined && !(LAB_DATASTORES as readonly string[]).includes(o.datastore)) {
    throw invalid("--datastore", o.datastore, `must be one of ${LAB_DATASTORES.join(", ")}`);
  }
  if (o.resyncSeconds !== undefined && (!Number.isInteger(o.resyncSeconds) || o.resyncSeconds < 1 || o.resyncSeconds > 86400)) {
    throw invalid("--resync", o.resyncSeconds, "must be 1..86400 seconds");
  }
  if (o.leaseTtlSeconds !== undefined && (!Number.isInteger(o.leaseTtlSeconds) || o.leaseTtlSeconds < 3 || o.leaseTtlSeconds > 86400)) {
    throw invalid("--lease-ttl", o.leaseTtlSeconds, "must be 3..86400 seconds");
  }
  if (o.readySeconds !== undefined && (!Number.isInteger(o.readySeconds) || o.readySeconds < 1 || o.readySeconds > 3600)) {
    throw invalid("--ready-timeout", o.readySeconds, "must be 1..3600 seconds");
  }
  const bgpFlag = o.tor ? "--tor" : o.routeReflectors !== undefined ? "--route-reflectors" : o.nodeMesh === false ? "--no-node-mesh" : undefined;
  if (bgpFlag && o.backend !== "bgp") throw invalid(bgpFlag, true, "needs --backend bgp");
  if (o.routeReflectors !== undefined && (!Number.isInteger(o.routeReflectors) || o.routeReflectors < 1 || o.routeReflectors > o.nodes)) {
    throw invalid("--route-reflectors", o.routeReflectors, `must be 1..${o.nodes} (the number of nodes)`);
  }
  if (o.backend === "none" && (o.datastore === "etcd" || o.datastore === "kubernetes")) throw invalid("--datastore", o.datastore, "needs agents: choose a --backend");
  if (o.backend === "none" && (o.podNetwork !== undefined || o.subnetLen !== undefined)) {
    throw invalid("--pod-cidr", o.podNetwork ?? o.subnetLen, "needs agents: without them each node has a fixed 10.244.N.0/24");
  }
}

export const labNetnsPrefix = (lab: string): string => `${NETNS_PREFIX}${lab}-`;

export function planLab(o: LabOptions): LabPlan {
  validateLabOptions(o);
  const prefix = labNetnsPrefix(o.name);
  const backend = o.backend ?? "vxlan";
  const segments: LabSegment[] = [];
  for (let s = 1; s <= (o.segments ?? 1); s++) {
    segments.push({ index: s, netns: `${prefix}sw${s}`, cidr: `10.99.${s}.0/24`, gateway: `10.99.${s}.1` });
  }
  const nodes: LabNode[] = [];
  const pods: LabPod[] = [];
  for (let i = 1; i <= o.nodes; i++) {
    const name = `node${i}`;
    const segment = ((i - 1) % segments.length) + 1;
    const node: LabNode = { name, netns: `${prefix}${name}`, ip: `10.99.${segment}.${10 + i}/24`, segment, switchPort: `port${i}` };
    if (backend === "none") node.podCidr = `10.244.${i}.0/24`;
    nodes.push(node);
    for (let j = 1; !o.spec && j <= o.podsPerNode; j++) {
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
  if (o.spec) {
    const perNode = new Map<string, number>();
    o.spec.pods.forEach((p, i) => {
      const node = nodes.find((n) => n.name === p.node);
      if (!node) throw invalid(`spec pods[${i}].node`, p.node, `no such node (the lab has ${nodes.map((n) => n.name).join(", ")})`);
      const ns = p.namespace ?? "default";
      if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(p.name) || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(ns)) {
        throw invalid(`spec pods[${i}]`, `${ns}/${p.name}`, "namespace and name must be lower-case DNS labels");
      }
      if (pods.some((x) => x.namespace === ns && x.name === p.name)) throw invalid(`spec pods[${i}]`, `${ns}/${p.name}`, "appears twice");
      for (const [k, port] of (p.ports ?? []).entries()) {
        if (!Number.isInteger(port.port) || port.port < 1 || port.port > 65535) throw invalid(`spec pods[${i}].ports[${k}].port`, port.port, "must be 1..65535");
        if (!["TCP", "UDP", "SCTP"].includes(port.protocol)) throw invalid(`spec pods[${i}].ports[${k}].protocol`, port.protocol, "must be TCP, UDP or SCTP");
      }
      const j = (perNode.get(node.name) ?? 0) + 1;
      perNode.set(node.name, j);
      pods.push({
        name: p.name, namespace: ns, node: node.name, netns: `${prefix}${node.name}-p${j}`, containerId: `lab-${o.name}-${ns}-${p.name}`,
        ifname: "eth0", labels: p.labels ?? {}, ports: p.ports ?? [],
      });
    });
  }
  const namespaces = (o.spec?.namespaces ?? []).map((n) => ({ name: n.name, labels: n.labels ?? {} }));
  for (const p of pods) if (!namespaces.some((n) => n.name === p.namespace)) namespaces.push({ name: p.namespace, labels: {} });
  const plan: LabPlan = {
    namespaces,
    name: o.name,
    mode: o.mode,
    backend,
    datastore: o.datastore ?? "embedded",
    natOutgoing: o.natOutgoing ?? backend !== "none",
    bridge: "br0",
    segments,
    routerNetns: `${prefix}rt`,
    outsideNetns: `${prefix}out`,
    outsideIp: "203.0.113.100",
    controlNetns: `${prefix}cp`,
    controlIp: "10.99.1.2",
    podNetwork: o.podNetwork ?? "10.244.0.0/16",
    subnetLen: o.subnetLen ?? 24,
    nodes,
    pods,
    ...(o.allowUnreachable ? { allowUnreachable: true } : {}),
    ...(o.resyncSeconds !== undefined ? { resyncSeconds: o.resyncSeconds } : {}),
    ...(o.leaseTtlSeconds !== undefined ? { leaseTtlSeconds: o.leaseTtlSeconds } : {}),
    ...(o.spec?.services?.length ? { services: o.spec.services } : {}),
  };
  if (plan.services && backend === "none") {
    throw invalid("spec services", `${plan.services.length} document(s)`, "Services need agents (a datastore and the services controller): not with --backend none");
  }
  if (backend === "bgp") {
    plan.bgp = {
      nodeMesh: o.nodeMesh ?? true,
      reflectors: nodes.slice(0, o.routeReflectors ?? 0).map((n) => n.name),
      tors: o.tor ? segments.map((seg) => ({
        segment: seg.index, netns: `${prefix}tor${seg.index}`, ip: `10.99.${seg.index}.3`, spineIp: `10.98.0.${seg.index}`, asNumber: 65100 + seg.index,
      })) : [],
      // ToR labs: with the mesh, one AS per segment ("AS per rack": iBGP inside the rack, eBGP to
      // its ToR); without it, one AS per node, so that a rack's ToR can hand one node's block to
      // another of the same rack (eBGP would refuse a path holding the receiver's own AS).
      nodeAs: o.tor ? Object.fromEntries(nodes.map((n, i) => [n.name, (o.nodeMesh ?? true) ? 65000 + n.segment : 65200 + i + 1])) : {},
    };
  }
  const unreachable = unreachableNodePairs(plan);
  if (unreachable.length > 0 && !plan.allowUnreachable) {
    throw invalid("--backend", backend, `leaves ${unreachable.length} node pair(s) without a path (${unreachable[0]!.why}: ` +
      `${unreachable.slice(0, 4).map((u) => `${u.a} <-> ${u.b}`).join(", ")}${unreachable.length > 4 ? ", ..." : ""}); ` +
      "use --backend cross-subnet or vxlan, or --allow-unreachable to build it anyway");
  }
  return plan;
}

/**
 * Node pairs whose pods this configuration cannot connect, and why: host-gw across segments (the
 * router between segments knows nothing of pod blocks). `--backend none` is not listed: with no
 * agents, pods reaching only their own node is what was asked for.
 */
export function unreachableNodePairs(plan: Pick<LabPlan, "backend" | "nodes" | "bgp">): Array<{ a: string; b: string; why: string }> {
  const out: Array<{ a: string; b: string; why: string }> = [];
  for (const [i, a] of plan.nodes.entries()) {
    for (const b of plan.nodes.slice(i + 1)) {
      const why = pairWithoutPath(plan, a, b, new Map(plan.nodes.map((n) => [n.name, n.segment])));
      if (why) out.push({ a: a.name, b: b.name, why });
    }
  }
  return out;
}

function pairWithoutPath(plan: Pick<LabPlan, "backend" | "bgp">, a: LabNode, b: LabNode, segmentOf: Map<string, number>): string | undefined {
  const segments = `(${a.name} on segment ${a.segment}, ${b.name} on ${b.segment})`;
  if (plan.backend === "host-gw" && a.segment !== b.segment) return `host-gw cannot cross segments ${segments}`;
  if (plan.backend !== "bgp" || !plan.bgp || plan.bgp.tors.length > 0) return undefined;
  if (a.segment !== b.segment) return `BGP needs routers that carry the pod routes to cross segments (--tor) ${segments}`;
  if (!plan.bgp.nodeMesh && !plan.bgp.reflectors.some((r) => segmentOf.get(r) === a.segment)) {
    return `the node mesh is off and segment ${a.segment} has no route reflector (--route-reflectors) or ToR (--tor)`;
  }
  return undefined;
}

/** What this lab will not do, said at `lab up` and shown by `lab status`. */
export function labWarnings(plan: LabPlan): string[] {
  const out: string[] = [];
  if (plan.backend === "none") out.push("no agents (--backend none): pods reach only pods of their own node, and no network policy is enforced");
  else if (plan.mode === "bridge") out.push("bridge mode: network policy is NOT enforced (agents run with --no-policy: bridged traffic bypasses the nftables forward hook)");
  const pairs = unreachableNodePairs(plan);
  if (pairs.length > 0) {
    out.push(`${pairs.length} node pair(s) have no path, as asked with --allow-unreachable: ${pairs[0]!.why.replace(/ \(.*/, "")} (${pairs.map((p) => `${p.a} <-> ${p.b}`).join(", ")})`);
  }
  return out;
}

/** The network configuration list each lab node's runtime reads (one plugin: trellis). */
export function nodeConflist(
  plan: LabPlan,
  node: LabNode,
  dir: { dataDir: string; logFile: string; subnetFile: string; agentSocket: string },
): Record<string, unknown> {
  const ipam: Record<string, unknown> = { type: "trellis-ipam", dataDir: dir.dataDir };
  if (node.podCidr) ipam.ranges = [[{ subnet: node.podCidr }]];
  else ipam.subnetFile = dir.subnetFile;
  // Nodes with an agent forward calls to it; nodes without never try the host's default socket.
  const agentSocket = node.podCidr ? "" : dir.agentSocket;
  return {
    cniVersion: "1.1.0",
    name: "trellis",
    plugins: [{ type: "trellis", mode: plan.mode, logFile: dir.logFile, agentSocket, ipam }],
  };
}

export type { BackendType };

/** The Namespace and Pod objects a spec lab applies (what the Kubernetes API would hold). */
export function labObjects(plan: LabPlan): Array<Record<string, unknown>> {
  const docs: Array<Record<string, unknown>> = plan.namespaces.map((n) => ({
    apiVersion: "v1", kind: "Namespace", metadata: { name: n.name, labels: n.labels },
  }));
  for (const p of plan.pods) {
    docs.push({
      apiVersion: "v1", kind: "Pod", metadata: { name: p.name, namespace: p.namespace, labels: p.labels ?? {} },
      spec: { containers: [{ name: "app", ports: (p.ports ?? []).map((x) => ({ ...(x.name ? { name: x.name } : {}), containerPort: x.port, protocol: x.protocol })) }] },
    });
  }
  return docs;
}
