// The objects BGP routing is decided over, as plain data, and their validation (pure): the
// cluster's BGP settings (part of the network config), each node's own settings (labels, AS
// number, route-reflector cluster ID), and external peers — routers Trellis does not run.
// Every refusal names the field and the value; nothing partial is ever stored.
import { cidrContains, parseCidr, parseIp } from "../model/ip.js";
import { findUnknownFields, leaf, map, obj, unknownFieldMessage } from "../model/strict.js";

/** Calico's default private AS: one AS for the whole cluster unless a node says otherwise. */
export const DEFAULT_AS = 64512;
export { BGP_ROUTE_TABLE, BGP_RULE_PREF } from "../dataplane/state.js";
/** The label that makes a node a route reflector. */
export const RR_LABEL = "trellis.dev/route-reflector";
/** The cluster ID of reflectors that do not set one: reflectors with one ID back each other up. */
export const DEFAULT_CLUSTER_ID = "244.0.0.1";

export const NODE_SETTINGS_PREFIX = "/trellis/nodesettings/";
export const BGP_PEER_PREFIX = "/trellis/bgppeers/";

export interface BgpSettings {
  /** The AS of every node that does not set its own. */
  asNumber: number;
  /** Full node-to-node mesh (iBGP); off: nodes peer only with route reflectors and external peers. */
  nodeMesh: boolean;
}

export interface NodeSettings {
  node: string;
  labels: Record<string, string>;
  /** This node's own AS ("AS per rack"). */
  asNumber?: number;
  /** Cluster ID when the node is a route reflector (label trellis.dev/route-reflector=true). */
  routeReflectorClusterId?: string;
}

export interface BgpPeer {
  name: string;
  peerIp: string;
  asNumber: number;
  /** Only this node peers with it. */
  node?: string;
  /** Only nodes with these labels peer with it (neither: every node). */
  nodeSelector?: Record<string, string>;
  /** A file holding the TCP MD5 password (read on the node). */
  passwordFile?: string;
}

export class BgpError extends Error {
  constructor(readonly field: string, readonly value: unknown, why: string, showValue = true) {
    super(`invalid BGP ${field}${showValue ? ` ${JSON.stringify(value)}` : ""}: ${why}`);
    this.name = "BgpError";
  }
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const LABEL_KEY = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** An AS number: 1..4294967295 (4-octet AS numbers, RFC 6793), given as a number or a whole-number string. */
export function validateAsn(v: unknown, field: string): number {
  const n = typeof v === "string" && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > 4294967295) throw new BgpError(field, v, "must be an AS number 1..4294967295");
  return n;
}

/** A route-reflector cluster ID: an IPv4 dotted quad, as BIRD and RFC 4456 write it. */
export function validateClusterId(v: unknown, field: string): string {
  if (typeof v !== "string" || !/^\d{1,3}(\.\d{1,3}){3}$/.test(v) || parseIp(v)?.family !== 4) {
    throw new BgpError(field, v, "must be an IPv4 dotted quad such as 244.0.0.1");
  }
  return v;
}

export function validateLabels(v: unknown, field: string): Record<string, string> {
  if (v === undefined) return {};
  if (!isObj(v)) throw new BgpError(field, v, "must be a map of label: value");
  for (const [k, x] of Object.entries(v)) {
    if (!LABEL_KEY.test(k) || k.length > 316) throw new BgpError(`${field} key`, k, "is not a valid label key");
    if (typeof x !== "string" || x.length > 63 || !LABEL_VALUE.test(x)) throw new BgpError(`${field}.${k}`, x, "is not a valid label value");
  }
  return v as Record<string, string>;
}

export const BGP_SETTINGS_SHAPE = obj({ asNumber: leaf, nodeMesh: leaf });

export function validateBgpSettings(raw: unknown): BgpSettings {
  if (raw === undefined) return { asNumber: DEFAULT_AS, nodeMesh: true };
  if (!isObj(raw)) throw new BgpError("bgp", raw, "must be an object");
  const out: BgpSettings = { asNumber: raw.asNumber === undefined ? DEFAULT_AS : validateAsn(raw.asNumber, "bgp.asNumber"), nodeMesh: true };
  if (raw.nodeMesh !== undefined) {
    if (typeof raw.nodeMesh !== "boolean") throw new BgpError("bgp.nodeMesh", raw.nodeMesh, "must be true or false");
    out.nodeMesh = raw.nodeMesh;
  }
  return out;
}

export const NODE_SETTINGS_SHAPE = obj({ node: leaf, labels: map(), asNumber: leaf, routeReflectorClusterId: leaf });

export function validateNodeSettings(raw: unknown): NodeSettings {
  if (!isObj(raw)) throw new BgpError("node settings", raw, "must be an object");
  const u = findUnknownFields(raw, NODE_SETTINGS_SHAPE)[0];
  if (u) throw new BgpError(u.path, undefined, unknownFieldMessage(u).slice(u.path.length + 2), false);
  if (typeof raw.node !== "string" || !NAME.test(raw.node) || raw.node.length > 253) throw new BgpError("node", raw.node, "must be a node name");
  const out: NodeSettings = { node: raw.node, labels: validateLabels(raw.labels, "labels") };
  if (raw.asNumber !== undefined) out.asNumber = validateAsn(raw.asNumber, "asNumber");
  if (raw.routeReflectorClusterId !== undefined) out.routeReflectorClusterId = validateClusterId(raw.routeReflectorClusterId, "routeReflectorClusterId");
  return out;
}

export const BGP_PEER_SHAPE = obj({ name: leaf, peerIp: leaf, asNumber: leaf, node: leaf, nodeSelector: map(), passwordFile: leaf });

/** Validates an external peer against the pod network (a peer inside it would be a pod, not a router). */
export function validateBgpPeer(raw: unknown, podNetwork: string | undefined): BgpPeer {
  if (!isObj(raw)) throw new BgpError("peer", raw, "must be an object");
  const u = findUnknownFields(raw, BGP_PEER_SHAPE)[0];
  if (u) throw new BgpError(`peer ${u.path}`, undefined, unknownFieldMessage(u).slice(u.path.length + 2), false);
  if (typeof raw.name !== "string" || !NAME.test(raw.name) || raw.name.length > 63) {
    throw new BgpError("peer name", raw.name, "must be lower-case letters, digits, '-' and '.' (at most 63)");
  }
  const ip = typeof raw.peerIp === "string" ? parseIp(raw.peerIp) : undefined;
  if (!ip) throw new BgpError("peer --peer-ip", raw.peerIp, "is not an IP address");
  if (ip.family !== 4) throw new BgpError("peer --peer-ip", raw.peerIp, "only IPv4 peers are supported (the pod network is IPv4)");
  const net = podNetwork ? parseCidr(podNetwork) : undefined;
  if (net && cidrContains(net, ip)) throw new BgpError("peer --peer-ip", raw.peerIp, `lies inside the pod network ${podNetwork}: a router's address must not`);
  const out: BgpPeer = { name: raw.name, peerIp: raw.peerIp as string, asNumber: validateAsn(raw.asNumber, "peer --as") };
  if (raw.node !== undefined && raw.nodeSelector !== undefined) throw new BgpError("peer --node-selector", raw.nodeSelector, "give either --node or --node-selector");
  if (raw.node !== undefined) {
    if (typeof raw.node !== "string" || !NAME.test(raw.node)) throw new BgpError("peer --node", raw.node, "must be a node name");
    out.node = raw.node;
  }
  if (raw.nodeSelector !== undefined) out.nodeSelector = validateLabels(raw.nodeSelector, "peer --node-selector");
  if (raw.passwordFile !== undefined) {
    if (typeof raw.passwordFile !== "string" || !raw.passwordFile.startsWith("/")) throw new BgpError("peer --password-file", raw.passwordFile, "must be an absolute path");
    out.passwordFile = raw.passwordFile;
  }
  return out;
}

export const nodeSettingsKey = (node: string): string => `${NODE_SETTINGS_PREFIX}${node}`;
export const bgpPeerKey = (name: string): string => `${BGP_PEER_PREFIX}${name}`;

/** A stored value, parsed; undefined (never an exception) for one that does not validate. */
export function parseStored<T>(value: string, validate: (raw: unknown) => T): T | undefined {
  try {
    return validate(JSON.parse(value));
  } catch {
    return undefined;
  }
}

export const isRouteReflector = (s: Pick<NodeSettings, "labels"> | undefined): boolean => s?.labels[RR_LABEL] === "true";
