// Why does a packet from pod A not reach B? A walk along the path over facts read from the
// kernel and the datastore, in the order the packet (and its reply) depends on them:
//
//   1. the agents of both nodes run, and their leases are fresh (else peers drop their routes);
//   2. the CNI CHECK of both pods passes (interface, addresses, routes, the host route);
//   3. the source node routes to the destination's block (VXLAN: route, FDB and neighbour entry),
//      and the destination node routes back to the source's block (the reply);
//   4. forwarding is on in both nodes;
//   5. NAT (to the outside) and the policy verdict.
//
// The first hop found broken is the cause; a hop whose facts could not be read is "not
// established" and said so, never counted as fine. Pure: gathering the facts is the caller's
// (the lab does it through the kernel seam; `trellis diagnose` will do it on a real cluster).
import { desiredState } from "../backends/desired.js";
import type { ActualDataplane } from "../dataplane/diff.js";
import { VTEP_NAME } from "../dataplane/state.js";
import type { Lease } from "../model/lease.js";
import { podMtu, type NetworkConfig } from "../model/network.js";

export interface NodeFacts {
  name: string;
  /** Whether its agent process runs, with a line on its state; undefined = not known. */
  agent?: { running: boolean; detail: string };
  /** Its lease; undefined with `leasesKnown` = it holds none. */
  lease?: Lease;
  /** The node's underlay interface and address (to compute the routes it should have). */
  underlay?: { dev: string; cidr: string; mtu: number };
  /** net.ipv4.ip_forward; undefined = not read. */
  forwarding?: boolean;
  /** What Trellis owns in the node's kernel (routes, VTEP, FDB, neighbours, NAT); undefined = not read. */
  dataplane?: ActualDataplane;
}

export interface PodFacts {
  /** "namespace/name". */
  name: string;
  ip: string;
  node: string;
  /** Result of the plugin's CHECK; undefined = not run. */
  cniCheck?: { ok: true } | { ok: false; error: string };
}

export interface PathFacts {
  from: PodFacts;
  to: PodFacts | { outside: string };
  nodes: ReadonlyMap<string, NodeFacts>;
  /** Whether the datastore's leases were read (else no lease fact is known). */
  leasesKnown: boolean;
  config?: NetworkConfig;
  /** The policy verdict for this packet, with the deciding rule. */
  policy?: { allowed: boolean; detail: string };
  now: number;
}

export interface Hop {
  hop: string;
  /** true: in place; false: broken; undefined: not established (facts missing). */
  ok: boolean | undefined;
  detail: string;
}

export interface Diagnosis {
  /** One line: the first broken hop, or what was checked when none was found. */
  cause: string;
  /** The hop named in `cause` (undefined when nothing was found broken). */
  broken?: string;
  hops: Hop[];
}

const ago = (ms: number): string => `${Math.round(Math.abs(ms) / 1000)}s ${ms >= 0 ? "ago" : "from now"}`;

function agentHops(n: NodeFacts, leasesKnown: boolean, now: number): Hop[] {
  const hops: Hop[] = [];
  hops.push(n.agent
    ? { hop: `agent ${n.name}`, ok: n.agent.running, detail: n.agent.running ? `agent on ${n.name} runs` : `agent on ${n.name} is not running (${n.agent.detail})` }
    : { hop: `agent ${n.name}`, ok: undefined, detail: `agent on ${n.name}: not known whether it runs` });
  if (!leasesKnown) {
    hops.push({ hop: `lease ${n.name}`, ok: undefined, detail: `lease of ${n.name}: not known (the datastore could not be read)` });
  } else if (!n.lease) {
    hops.push({ hop: `lease ${n.name}`, ok: false, detail: `${n.name} holds no lease: its block is gone from the datastore, so every peer removed its route to it` });
  } else if (n.lease.expiresAt < now) {
    hops.push({ hop: `lease ${n.name}`, ok: false, detail: `${n.name}'s lease on ${n.lease.subnet} expired ${ago(now - n.lease.expiresAt)}: peers remove their routes to it` });
  } else {
    hops.push({ hop: `lease ${n.name}`, ok: true, detail: `${n.name} holds ${n.lease.subnet} (renewed ${ago(now - n.lease.renewedAt)})` });
  }
  return hops;
}

function cniHop(p: PodFacts): Hop {
  if (!p.cniCheck) return { hop: `pod ${p.name}`, ok: undefined, detail: `CNI CHECK of ${p.name}: not run` };
  return p.cniCheck.ok
    ? { hop: `pod ${p.name}`, ok: true, detail: `CNI CHECK of ${p.name} passes` }
    : { hop: `pod ${p.name}`, ok: false, detail: `CNI CHECK of ${p.name} fails: ${p.cniCheck.error}` };
}

/** Whether `from`'s kernel holds what its transport to `to`'s block needs (route; VXLAN: FDB and neighbour). */
function transportHop(from: NodeFacts, to: NodeFacts, config: NetworkConfig | undefined): Hop {
  const hop = `route ${from.name} -> ${to.name}`;
  if (!config || !from.lease || !to.lease || !from.underlay) {
    return { hop, ok: undefined, detail: `route from ${from.name} to ${to.name}'s block: not established (config, leases or underlay unknown)` };
  }
  const d = desiredState({ config, self: from.lease, peers: [to.lease], underlay: from.underlay, podMtu: podMtu(config, from.underlay.mtu) });
  const peer = d.peers[0]!;
  if (peer.transport === "unreachable") return { hop, ok: false, detail: `${from.name} cannot reach ${to.name} by configuration: ${peer.reason}` };
  if (!from.dataplane) return { hop, ok: undefined, detail: `route from ${from.name} to ${to.lease.subnet}: ${from.name}'s kernel state was not read` };
  if (peer.transport === "bgp") {
    const rule = d.dataplane.rule!;
    if (!(from.dataplane.rules ?? []).some((r) => r.pref === rule.pref && r.to === rule.to && r.table === rule.table)) {
      return { hop, ok: false, detail: `${from.name} has no rule sending pod-network traffic to the BGP table (pref ${rule.pref} to ${rule.to} lookup ${rule.table})` };
    }
    const learned = (from.dataplane.bgpRoutes ?? []).find((r) => r.dst === to.lease!.subnet);
    if (!learned) {
      return { hop, ok: false, detail: `${from.name}'s BGP table (${rule.table}) has no route to ${to.name}'s block ${to.lease.subnet}: its BIRD has not learned it (see trellis bgp status)` };
    }
    return { hop, ok: true, detail: `${from.name} routes ${to.lease.subnet} via ${learned.via ?? "?"}${learned.dev ? ` dev ${learned.dev}` : ""} (learned over BGP)` };
  }
  const want = d.dataplane.routes.find((r) => r.dst === to.lease!.subnet)!;
  const have = from.dataplane.routes.find((r) => r.dst === want.dst);
  const expected = `via ${want.via} dev ${want.dev}${want.onlink ? " onlink" : ""}`;
  if (!have) return { hop, ok: false, detail: `${from.name} has no route to ${to.name}'s block ${want.dst} (expected ${expected})` };
  if (have.via !== want.via || have.dev !== want.dev) {
    return { hop, ok: false, detail: `${from.name} routes ${want.dst} via ${have.via} dev ${have.dev}, expected ${expected}` };
  }
  if (want.dev === VTEP_NAME) {
    const fdb = d.dataplane.fdb[0]!;
    const neigh = d.dataplane.neigh[0]!;
    if (!from.dataplane.vtep) return { hop, ok: false, detail: `${from.name} has no VXLAN device ${VTEP_NAME}` };
    if (!from.dataplane.fdb.some((f) => f.mac.toLowerCase() === fdb.mac.toLowerCase() && f.dst === fdb.dst)) {
      return { hop, ok: false, detail: `${from.name}'s ${VTEP_NAME} has no FDB entry for ${to.name} (${fdb.mac} -> ${fdb.dst}): frames to it go nowhere` };
    }
    if (!from.dataplane.neigh.some((n) => n.ip === neigh.ip && n.mac.toLowerCase() === neigh.mac.toLowerCase())) {
      return { hop, ok: false, detail: `${from.name}'s ${VTEP_NAME} has no neighbour entry ${neigh.ip} -> ${neigh.mac} for ${to.name}` };
    }
    return { hop, ok: true, detail: `${from.name} routes ${want.dst} ${expected}, with FDB and neighbour entries for ${to.name}` };
  }
  return { hop, ok: true, detail: `${from.name} routes ${want.dst} ${expected}` };
}

function forwardingHop(n: NodeFacts): Hop {
  const hop = `forwarding ${n.name}`;
  if (n.forwarding === undefined) return { hop, ok: undefined, detail: `forwarding on ${n.name}: not read` };
  return n.forwarding
    ? { hop, ok: true, detail: `${n.name} forwards IPv4` }
    : { hop, ok: false, detail: `${n.name} does not forward IPv4 (net.ipv4.ip_forward=0): pod traffic stops there` };
}

/** The hops of the path from `facts.from` to `facts.to`, in order, and the first broken one. */
export function diagnosePath(facts: PathFacts): Diagnosis {
  const src = facts.nodes.get(facts.from.node) ?? { name: facts.from.node };
  const dstPod = "outside" in facts.to ? undefined : facts.to;
  const dst = dstPod ? facts.nodes.get(dstPod.node) ?? { name: dstPod.node } : undefined;
  const crossNode = !!dst && dst.name !== src.name;
  const hops: Hop[] = [];

  hops.push(...agentHops(src, facts.leasesKnown, facts.now));
  if (crossNode) hops.push(...agentHops(dst!, facts.leasesKnown, facts.now));
  hops.push(cniHop(facts.from));
  if (dstPod) hops.push(cniHop(dstPod));
  if (crossNode) {
    hops.push(transportHop(src, dst!, facts.config));
    const back = transportHop(dst!, src, facts.config);
    hops.push({ ...back, detail: `reply: ${back.detail}` });
  }
  hops.push(forwardingHop(src));
  if (crossNode) hops.push(forwardingHop(dst!));
  if (!dstPod && facts.config) {
    const nat = src.dataplane?.natState;
    hops.push(!facts.config.natOutgoing
      ? { hop: `nat ${src.name}`, ok: false, detail: "NAT outgoing is off: the outside has no route back to pod addresses" }
      : nat === undefined ? { hop: `nat ${src.name}`, ok: undefined, detail: `NAT on ${src.name}: not read` }
      : { hop: `nat ${src.name}`, ok: nat === "ours", detail: nat === "ours" ? `${src.name} masquerades pod traffic leaving the pod network` : `${src.name}'s NAT table is ${nat}` });
  }
  if (facts.policy) {
    hops.push({ hop: "policy", ok: facts.policy.allowed, detail: `${facts.policy.allowed ? "allowed" : "denied"} by policy: ${facts.policy.detail}` });
  }

  const broken = hops.find((h) => h.ok === false);
  if (broken) return { cause: broken.detail, broken: broken.hop, hops };
  const unknown = hops.filter((h) => h.ok === undefined);
  const checked = "agents, leases, CNI CHECK of the pods, routes both ways, forwarding" + (dstPod ? "" : ", NAT") + (facts.policy ? ", the policy model" : "");
  return {
    cause: `no broken hop found (checked: ${checked}; not checked: the nftables ruleset on the nodes and the underlay between them)` +
      (unknown.length ? `; not established: ${unknown.map((h) => h.hop).join(", ")}` : ""),
    hops,
  };
}
