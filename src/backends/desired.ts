// From the lease set to the node's desired data plane, per backend. Pure.
//
// vxlan (Flannel's default): one VTEP per node, `nolearning`; for every peer a static FDB entry
// (peer VTEP MAC -> peer underlay IP), a permanent neighbour entry (peer VTEP address -> MAC) and a
// route to the peer's block via the peer's VTEP address, `onlink`. Static entries rather than
// learning or multicast: the datastore already knows every peer, so there is nothing to learn,
// no flooding, and the first packet to a new peer is never lost to resolution.
//
// host-gw: a route to the peer's block via the peer's underlay address. Only valid when the peer
// is on a directly connected subnet; otherwise the route would be refused or, worse, installed
// via a gateway that drops it — so such a peer is reported unreachable and gets no route.
//
// cross-subnet (Flannel DirectRouting, Calico CrossSubnet): host-gw for peers on the node's own
// underlay subnet, vxlan for the others, chosen per peer.
//
// bgp (Calico's routing mode): no overlay and no routes of the agent's own to peers — BIRD learns
// every peer's block over BGP and installs it in a table of Trellis' own (src/bgp). Here: a rule
// sending pod-network traffic to that table, and a blackhole for the node's own block.
import { createHash } from "node:crypto";
import { cidrContains, cidrCovers, cidrFirst, formatCidr, formatIp, parseCidr, parseIp, parseIpWithPrefix } from "../model/ip.js";
import type { Lease } from "../model/lease.js";
import type { NetworkConfig } from "../model/network.js";
import { BGP_ROUTE_TABLE, BGP_RULE_PREF, emptyDataplane, VTEP_NAME, type Dataplane, type PeerStatus, type Transport } from "../dataplane/state.js";

export interface Underlay {
  /** The interface carrying node-to-node traffic. */
  dev: string;
  /** Its address with prefix, e.g. 10.99.1.11/24. */
  cidr: string;
  mtu: number;
}

export interface DesiredInput {
  config: NetworkConfig;
  self: Lease;
  peers: readonly Lease[];
  underlay: Underlay;
  /** Pod MTU (the VTEP's MTU). */
  podMtu: number;
}

export interface Desired {
  dataplane: Dataplane;
  peers: PeerStatus[];
}

/** A stable, locally administered MAC for a node's VTEP, so peers' entries survive restarts. */
export function vtepMacFor(node: string): string {
  const h = createHash("sha256").update(`trellis-vtep/${node}`).digest();
  const bytes = [(h[0]! & 0xfe) | 0x02, h[1]!, h[2]!, h[3]!, h[4]!, h[5]!];
  return bytes.map((b) => b.toString(16).padStart(2, "0")).join(":");
}

/** The VTEP's address: the network address of the node's block (never handed to a pod). */
export function vtepAddress(subnet: string): string {
  return formatIp(cidrFirst(parseCidr(subnet)!));
}

export const usesVxlan = (c: NetworkConfig): boolean => c.backend.type === "vxlan" || c.backend.type === "cross-subnet";

/** Whether `ip` is on the underlay's own subnet (reachable without a router). */
export function onLink(underlayCidr: string, ip: string): boolean {
  const u = parseIpWithPrefix(underlayCidr);
  const p = parseIp(ip);
  if (!u || !p) return false;
  return cidrContains(parseCidr(underlayCidr)!, p);
}

export function peerTransport(c: NetworkConfig, underlayCidr: string, peer: Lease): { transport: Transport; reason?: string } {
  const direct = onLink(underlayCidr, peer.publicIp);
  const vxlan = (): { transport: Transport; reason?: string } =>
    peer.vtepMac ? { transport: "vxlan" } : { transport: "unreachable", reason: `peer ${peer.node} has no VTEP (it runs backend ${peer.backend})` };
  switch (c.backend.type) {
    case "host-gw":
      return direct
        ? { transport: "host-gw" }
        : {
          transport: "unreachable",
          reason: `${peer.publicIp} is not on this node's subnet ${underlayCidr}: host-gw needs nodes on one L2 segment (use cross-subnet or vxlan)`,
        };
    case "vxlan":
      return vxlan();
    case "cross-subnet":
      return direct ? { transport: "host-gw" } : vxlan();
    case "bgp":
      // BIRD learns and installs the route; which peers it can reach is the BGP plan's to say.
      return { transport: "bgp" };
  }
}

export function desiredState(input: DesiredInput): Desired {
  const { config, self, underlay } = input;
  const dp = emptyDataplane();
  const localIp = underlay.cidr.split("/")[0]!;
  if (usesVxlan(config)) {
    dp.vtep = {
      name: VTEP_NAME,
      vni: config.backend.vni,
      port: config.backend.port,
      localIp,
      dev: underlay.dev,
      mtu: input.podMtu,
      mac: self.vtepMac ?? vtepMacFor(self.node),
      address: `${vtepAddress(self.subnet)}/32`,
    };
  }
  const peers: PeerStatus[] = [];
  const sorted = [...input.peers].filter((p) => p.node !== self.node && p.subnet !== self.subnet)
    .sort((a, b) => a.subnet.localeCompare(b.subnet));
  const network = parseCidr(config.network)!;
  for (const peer of sorted) {
    // A lease for anything but a block of the pod network (say 0.0.0.0/0) must never become a route.
    const block = parseCidr(peer.subnet);
    const t = block && block.prefix === config.subnetLen && cidrCovers(network, block)
      ? peerTransport(config, underlay.cidr, peer)
      : { transport: "unreachable" as const, reason: `lease ${peer.subnet} is not a /${config.subnetLen} block of the pod network ${config.network}` };
    peers.push({ node: peer.node, subnet: peer.subnet, publicIp: peer.publicIp, transport: t.transport, ...(t.reason ? { reason: t.reason } : {}) });
    if (t.transport === "host-gw") {
      dp.routes.push({ dst: peer.subnet, via: peer.publicIp, dev: underlay.dev, onlink: false });
    } else if (t.transport === "vxlan" && dp.vtep && peer.vtepMac) {
      const peerVtep = vtepAddress(peer.subnet);
      dp.fdb.push({ mac: peer.vtepMac, dst: peer.publicIp });
      dp.neigh.push({ ip: peerVtep, mac: peer.vtepMac });
      dp.routes.push({ dst: peer.subnet, via: peerVtep, dev: VTEP_NAME, onlink: true });
    }
  }
  if (config.natOutgoing) dp.nat = { podNetwork: config.network };
  if (config.backend.type === "bgp") {
    // Unused addresses of our own block stop here; learned blocks are in BIRD's table, which
    // pod-network traffic looks up first (our block is never in it, so it falls through to main).
    dp.blackholes = [self.subnet];
    dp.rule = { pref: BGP_RULE_PREF, to: formatCidr(network), table: BGP_ROUTE_TABLE };
  }
  return { dataplane: dp, peers };
}
