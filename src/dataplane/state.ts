// The node's data plane as plain data: what the agent wants (desired) and what the kernel has
// (actual), in the same shape so that reconciliation is a pure diff.

/** Name of the VXLAN device (VTEP) Trellis owns on every node. */
export const VTEP_NAME = "trellis.vxlan";
/** Route protocol number of the routes the agent installs (201 is the plugin's pod routes). */
export const AGENT_ROUTE_PROTO = 202;
/** Route protocol number of a pod's own host route, made by the plugin (cni/attachment.ts ROUTE_PROTO). */
export const POD_ROUTE_PROTO = 201;
/** Kernel routing table BIRD writes learned pod routes to (the bgp backend): ours alone. */
export const BGP_ROUTE_TABLE = 203;
/** Priority of our rule sending pod-network traffic to that table (before the main table's 32766). */
export const BGP_RULE_PREF = 2030;
/** nftables table the agent owns for NAT. */
export const NAT_TABLE = "trellis-nat";

export interface VtepSpec {
  name: string;
  vni: number;
  port: number;
  /** Underlay address the tunnel is sourced from, and its device. */
  localIp: string;
  dev: string;
  mtu: number;
  mac: string;
  /** The VTEP's own address, e.g. the node block's network address as /32. */
  address: string;
}

export interface RouteSpec {
  dst: string;
  via: string;
  dev: string;
  onlink: boolean;
}

/** A static forwarding entry on the VTEP: frames for `mac` go to the peer's underlay address. */
export interface FdbSpec {
  mac: string;
  dst: string;
}

/** A permanent neighbour on the VTEP: the peer VTEP's address resolves to its MAC. */
export interface NeighSpec {
  ip: string;
  mac: string;
}

/**
 * A routed-mode pod's own host route (`10.244.1.5/32 dev trl…`): the plugin makes it at ADD and
 * it goes with the veth at DEL; the agent only puts back one that went missing, never removes one.
 */
export interface PodRouteSpec {
  dst: string;
  dev: string;
}

/** A policy-routing rule of ours: traffic to `to` looks up `table` (the BGP backend's table). */
export interface RuleSpec {
  pref: number;
  to: string;
  table: number;
}

export interface NatSpec {
  podNetwork: string;
}

export interface Dataplane {
  vtep?: VtepSpec;
  routes: RouteSpec[];
  fdb: FdbSpec[];
  neigh: NeighSpec[];
  nat?: NatSpec;
  /** Host routes of this node's routed-mode pods, from the endpoint spool (repaired, never removed). */
  podRoutes?: PodRouteSpec[];
  /** Blocks dropped here when no more specific route exists (bgp: this node's own block). */
  blackholes?: string[];
  /** bgp: pod-network traffic looks up the table BIRD fills. */
  rule?: RuleSpec;
}

export type Transport = "vxlan" | "host-gw" | "bgp" | "unreachable";

export interface PeerStatus {
  node: string;
  subnet: string;
  publicIp: string;
  transport: Transport;
  reason?: string;
}

export const emptyDataplane = (): Dataplane => ({ routes: [], fdb: [], neigh: [] });
