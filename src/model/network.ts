// The cluster network configuration, as stored in the datastore and set by `trellis network init`.
// Pure validation: a bad config is refused with the field and value named, and nothing is stored.
import {
  cidrContains, cidrCovers, cidrOverlaps, formatCidr, parseCidr, parseIp, subnetCount, type Cidr,
} from "./ip.js";
import { findUnknownFields, leaf, obj, unknownFieldMessage } from "./strict.js";
import { BGP_SETTINGS_SHAPE, BgpError, validateBgpSettings, type BgpSettings } from "../bgp/model.js";

export const BACKENDS = ["vxlan", "host-gw", "cross-subnet", "bgp"] as const;
export type BackendType = (typeof BACKENDS)[number];

export interface BackendConfig {
  type: BackendType;
  /** VXLAN network identifier (vxlan, cross-subnet). */
  vni: number;
  /** VXLAN UDP port (vxlan, cross-subnet). */
  port: number;
  /** Pod MTU; default: underlay MTU minus the encapsulation overhead. */
  mtu?: number;
}

export interface NetworkConfig {
  /** The cluster's pod network, e.g. 10.244.0.0/16. */
  network: string;
  /** Prefix length of each node's block, e.g. 24. */
  subnetLen: number;
  /** First and last block that may be leased (defaults: the first and last block of the network). */
  subnetMin?: string;
  subnetMax?: string;
  backend: BackendConfig;
  /** Masquerade pod traffic that leaves the pod network. */
  natOutgoing: boolean;
  /** BGP settings (used by the bgp backend; kept across backend switches). */
  bgp?: BgpSettings;
  /**
   * Who gives nodes their blocks. "trellis" (the default): each agent leases a free block itself.
   * "assigned": a node takes only the block assigned to it under `assignedblocks/<node>` (on
   * Kubernetes, the Node's spec.podCIDR from kube-controller-manager --allocate-node-cidrs, as
   * Flannel does) and waits, reporting why, while it has none. Omitted means "trellis".
   */
  blocks?: BlockMode;
  /** Where ClusterIPs are allocated from (default 10.96.0.0/12; must not overlap the pod network). */
  serviceCIDR?: string;
  /** NodePorts, "lo-hi" (default 30000-32767). */
  nodePortRange?: string;
}

export const DEFAULT_SERVICE_CIDR_TEXT = "10.96.0.0/12";
export const DEFAULT_NODE_PORT_RANGE_TEXT = "30000-32767";

/** The node port range of a config as numbers. */
export function nodePortRangeOf(c: Pick<NetworkConfig, "nodePortRange">): [number, number] {
  const [lo, hi] = (c.nodePortRange ?? DEFAULT_NODE_PORT_RANGE_TEXT).split("-").map(Number);
  return [lo!, hi!];
}

export const BLOCK_MODES = ["trellis", "assigned"] as const;
export type BlockMode = (typeof BLOCK_MODES)[number];

export const DEFAULT_VNI = 1;
export const DEFAULT_VXLAN_PORT = 8472;
export const VXLAN_OVERHEAD = 50;

export class ConfigError extends Error {
  constructor(readonly field: string, readonly value: unknown, why: string, showValue = true) {
    super(`invalid network config: ${field}${showValue ? ` ${JSON.stringify(value)}` : ""}: ${why}`);
    this.name = "ConfigError";
  }
}

/** Address ranges a pod network must never overlap. */
const RESERVED: Array<[string, string]> = [
  ["0.0.0.0/8", "\"this\" network"],
  ["127.0.0.0/8", "loopback"],
  ["169.254.0.0/16", "link-local (Trellis uses 169.254.1.1 as the pods' gateway)"],
  ["224.0.0.0/4", "multicast"],
  ["240.0.0.0/4", "reserved"],
];

const isInt = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v);

/** Every field a network config may have (strict input: anything else is refused). */
export const NETWORK_CONFIG_SHAPE = obj({
  network: leaf, subnetLen: leaf, subnetMin: leaf, subnetMax: leaf, natOutgoing: leaf, blocks: leaf,
  serviceCIDR: leaf, nodePortRange: leaf,
  backend: obj({ type: leaf, vni: leaf, port: leaf, mtu: leaf }),
  bgp: BGP_SETTINGS_SHAPE,
});

export interface ValidateOptions {
  /**
   * Called for each unknown field instead of refusing the config: the agent reading a config that
   * a newer CLI stored keeps working with the fields it knows. What users give is always strict.
   */
  onUnknownField?(message: string): void;
}

export function validateNetworkConfig(raw: unknown, opts: ValidateOptions = {}): NetworkConfig {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new ConfigError("config", raw, "not an object");
  const r = raw as Record<string, unknown>;
  for (const u of findUnknownFields(r, NETWORK_CONFIG_SHAPE)) {
    if (!opts.onUnknownField) throw new ConfigError(u.path, undefined, unknownFieldMessage(u).slice(u.path.length + 2), false);
    opts.onUnknownField(unknownFieldMessage(u));
  }
  if (typeof r.network !== "string") throw new ConfigError("network", r.network, "missing; a CIDR such as 10.244.0.0/16");
  const network = parseCidr(r.network, true);
  if (!network) throw new ConfigError("network", r.network, "not a CIDR with the host bits zero");
  if (network.family !== 4) throw new ConfigError("network", r.network, "only IPv4 pod networks are supported for now");
  for (const [cidr, what] of RESERVED) {
    if (cidrOverlaps(network, parseCidr(cidr)!)) throw new ConfigError("network", r.network, `overlaps ${cidr} (${what})`);
  }
  const subnetLen = r.subnetLen ?? 24;
  if (!isInt(subnetLen) || subnetLen <= network.prefix || subnetLen > 30) {
    throw new ConfigError("subnetLen", subnetLen, `must be longer than the network's /${network.prefix} (at least two node blocks) and at most 30`);
  }
  const out: NetworkConfig = {
    network: formatCidr(network),
    subnetLen,
    backend: validateBackend(r.backend),
    natOutgoing: false,
  };
  for (const k of ["subnetMin", "subnetMax"] as const) {
    if (r[k] === undefined) continue;
    const c = typeof r[k] === "string" ? parseCidr(r[k] as string, true) : undefined;
    if (!c || c.prefix !== subnetLen) throw new ConfigError(k, r[k], `must be a /${subnetLen} block`);
    if (!cidrCovers(network, c)) throw new ConfigError(k, r[k], `outside the network ${formatCidr(network)}`);
    out[k] = formatCidr(c);
  }
  if (out.subnetMin && out.subnetMax && parseCidr(out.subnetMin)!.network > parseCidr(out.subnetMax)!.network) {
    throw new ConfigError("subnetMin", out.subnetMin, `is after subnetMax ${out.subnetMax}`);
  }
  if (r.natOutgoing !== undefined) {
    if (typeof r.natOutgoing !== "boolean") throw new ConfigError("natOutgoing", r.natOutgoing, "must be true or false");
    out.natOutgoing = r.natOutgoing;
  }
  if (r.blocks !== undefined) {
    if (typeof r.blocks !== "string" || !(BLOCK_MODES as readonly string[]).includes(r.blocks)) {
      throw new ConfigError("blocks", r.blocks, `one of ${BLOCK_MODES.join(", ")}`);
    }
    if (r.blocks !== "trellis") out.blocks = r.blocks as BlockMode;
  }
  if (r.serviceCIDR !== undefined) {
    const c = typeof r.serviceCIDR === "string" ? parseCidr(r.serviceCIDR, true) : undefined;
    if (!c || c.family !== 4) throw new ConfigError("serviceCIDR", r.serviceCIDR, "not an IPv4 CIDR with the host bits zero, e.g. 10.96.0.0/12");
    if (c.prefix > 30) throw new ConfigError("serviceCIDR", r.serviceCIDR, "too small: at most /30");
    if (cidrOverlaps(c, network)) throw new ConfigError("serviceCIDR", r.serviceCIDR, `overlaps the pod network ${formatCidr(network)}`);
    for (const [cidr, what] of RESERVED) {
      if (cidrOverlaps(c, parseCidr(cidr)!)) throw new ConfigError("serviceCIDR", r.serviceCIDR, `overlaps ${cidr} (${what})`);
    }
    out.serviceCIDR = formatCidr(c);
  }
  if (r.nodePortRange !== undefined) {
    const m = typeof r.nodePortRange === "string" ? /^(\d+)-(\d+)$/.exec(r.nodePortRange) : null;
    const lo = m ? Number(m[1]) : NaN;
    const hi = m ? Number(m[2]) : NaN;
    if (!m || lo < 1 || hi > 65535 || lo > hi) throw new ConfigError("nodePortRange", r.nodePortRange, "must be \"lo-hi\" with 1 <= lo <= hi <= 65535, e.g. 30000-32767");
    out.nodePortRange = `${lo}-${hi}`;
  }
  if (r.bgp !== undefined || out.backend.type === "bgp") {
    try {
      out.bgp = validateBgpSettings(r.bgp);
    } catch (e) {
      if (e instanceof BgpError) throw new ConfigError(e.field, e.value, e.message.replace(/^.*: /, ""));
      throw e;
    }
  }
  return out;
}

function validateBackend(raw: unknown): BackendConfig {
  const b = (raw === undefined ? { type: "vxlan" } : raw) as Record<string, unknown>;
  if (typeof b !== "object" || b === null || Array.isArray(b)) throw new ConfigError("backend", raw, "not an object");
  if (typeof b.type !== "string" || !(BACKENDS as readonly string[]).includes(b.type)) {
    throw new ConfigError("backend.type", b.type, `unknown backend; one of ${BACKENDS.join(", ")}`);
  }
  const vni = b.vni ?? DEFAULT_VNI;
  if (!isInt(vni) || vni < 1 || vni > 0xffffff) throw new ConfigError("backend.vni", vni, "must be 1..16777215");
  const port = b.port ?? DEFAULT_VXLAN_PORT;
  if (!isInt(port) || port < 1 || port > 65535) throw new ConfigError("backend.port", port, "must be 1..65535");
  const out: BackendConfig = { type: b.type as BackendType, vni, port };
  if (b.mtu !== undefined) {
    if (!isInt(b.mtu) || b.mtu < 576 || b.mtu > 65535) throw new ConfigError("backend.mtu", b.mtu, "must be 576..65535");
    out.mtu = b.mtu;
  }
  return out;
}

/** The blocks that may be leased, as [first, last] indexes into the network's blocks. */
export function leasableRange(c: NetworkConfig): { network: Cidr; first: bigint; last: bigint } {
  const network = parseCidr(c.network)!;
  const size = 1n << BigInt(32 - c.subnetLen);
  const count = subnetCount(network, c.subnetLen);
  const index = (s: string | undefined, dflt: bigint): bigint => (s ? (parseCidr(s)!.network - network.network) / size : dflt);
  // Like Flannel, skip the network's first block by default: its .0/.1 look like the network's own.
  // Blocks assigned by someone else (Kubernetes gives the first node the first block) may be any.
  const skipFirst = c.blocks !== "assigned" && count > 2n;
  return { network, first: index(c.subnetMin, skipFirst ? 1n : 0n), last: index(c.subnetMax, count - 1n) };
}

/** Refuses a node whose own address lies inside the pod network (it would route to itself). */
export function checkNodeAddress(c: NetworkConfig, nodeIp: string): string | undefined {
  const ip = parseIp(nodeIp);
  if (ip && cidrContains(parseCidr(c.network)!, ip)) return `node address ${nodeIp} lies inside the pod network ${c.network}`;
  return undefined;
}

/** MTU for pods: configured, else the underlay's minus the encapsulation the backend may use. */
export function podMtu(c: NetworkConfig, underlayMtu: number): number {
  if (c.backend.mtu) return c.backend.mtu;
  // host-gw and bgp route pod packets as they are; vxlan (and cross-subnet, which may) encapsulate.
  return c.backend.type === "host-gw" || c.backend.type === "bgp" ? underlayMtu : underlayMtu - VXLAN_OVERHEAD;
}

/** Whether `block` is a block this config may lease (right length, inside the network and subnetMin..subnetMax). */
export function isLeasable(c: NetworkConfig, block: string): boolean {
  const b = parseCidr(block, true);
  if (!b || b.family !== 4 || b.prefix !== c.subnetLen) return false;
  const { network, first, last } = leasableRange(c);
  if (!cidrCovers(network, b)) return false;
  const i = (b.network - network.network) / (1n << BigInt(32 - c.subnetLen));
  return i >= first && i <= last;
}

/**
 * What changing `from` into `to` does to the nodes holding `leases`: the blocks the new config
 * could not have leased are stranded. Undefined when no lease is. Pure.
 */
export function strandedBy(to: NetworkConfig, leases: ReadonlyArray<{ node: string; subnet: string }>): string | undefined {
  const stranded = leases.filter((l) => !isLeasable(to, l.subnet));
  if (stranded.length === 0) return undefined;
  const names = stranded.slice(0, 5).map((l) => `${l.node} ${l.subnet}`).join(", ") + (stranded.length > 5 ? ", ..." : "");
  return `${stranded.length} of ${leases.length} node(s) hold blocks the new addressing (${to.network}, /${to.subnetLen} blocks) cannot have (${names}). ` +
    "Running agents keep their blocks and the old network, and log that they need a restart; a restarted agent takes a block of the new " +
    "network and frees its old one, and its existing pods keep addresses of the old network until they are re-created. Until every agent " +
    "has restarted, nodes on the old and the new network cannot reach each other's pods";
}
