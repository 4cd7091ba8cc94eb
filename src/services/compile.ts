// Services + EndpointSlices -> the nftables ruleset of one node, as plain data (rendered by
// render.ts to one `nft -f` script, run by trace.ts without a kernel). Pure.
//
// Layout (every object prefixed `svc_`, in its own table `inet trellis-svc`; policy replaces `inet trellis` whole):
//   svc_nat_prerouting (nat, prerouting, dstnat) and svc_nat_output (nat, output, -100) jump to
//   svc_services, which makes ONE verdict-map lookup per packet:
//     ip daddr . meta l4proto . th dport vmap @svc_cluster_ips     (ClusterIP:port -> chain)
//     fib daddr type local ... meta l4proto . th dport vmap @svc_node_ports   (NodePort -> chain)
//   The frontend's chain is shared by every Service of its protocol (svc_dnat_tcp, ...) and
//   picks an endpoint with ONE rule:
//     meta l4proto tcp dnat ip to ip daddr . tcp dport . numgen random mod 2^20 map @svc_endpoints_tcp
//   where the interval map holds, per frontend, each endpoint's equal share of the range (only
//   this node's endpoints for internalTrafficPolicy Local); NodePorts likewise through
//   svc_nodeport_dnat_<p> / svc_nodeport_endpoints_<p>, keyed by the port alone (ETP Local: local
//   endpoints), or first through svc_nodeport_masq_dnat_<p>, which marks them for masquerade (ETP
//   Cluster). So a Service added, removed or scaled changes only elements. ClientIP affinity keeps
//   kube-proxy's layout instead: svc_sp_<ns>/<name>/<proto>/<port> (svc_spl_... local only) checks
//   per-endpoint timed sets, then `numgen ... vmap` to per-endpoint chains
//   (svc_ep_<service port>__<ip>/<port>) that record the client and DNAT; svc_ext_... marks
//   NodePort traffic of an ETP Cluster service for masquerade, then goes to svc_sp_....
//   svc_nat_postrouting masquerades hairpin traffic (source and DNATed destination are one
//   endpoint: set svc_hairpin) and what was marked (mark 0x4000, as kube-proxy).
//   No usable endpoint: the ClusterIP/NodePort is an element of svc_no_endpoints /
//   svc_no_endpoint_node_ports instead, checked by filter chains at priority -110 on input,
//   forward and output for new connections: `goto svc_reject` (tcp reset, icmp port-unreachable)
//   or `drop` when the only endpoints are elsewhere and the traffic policy is Local.
import { formatIp, parseIp } from "../model/ip.js";
import { PROTOCOLS, type EndpointSlice, type Protocol, type Service, type ServicePort } from "./model.js";

export const SERVICES_TABLE = "trellis-svc";
export const MASQ_MARK = 0x4000;

/** One statement line of a chain. */
export type Rule =
  | { t: "jump"; chain: string }
  | { t: "goto"; chain: string }
  /** [ct state new] ip daddr . meta l4proto . th dport vmap @map */
  | { t: "vmap-addr"; map: string; ctNew?: boolean }
  /** [ct state new] fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @map */
  | { t: "vmap-node-port"; map: string; ctNew?: boolean }
  | { t: "mark-masq" }
  | { t: "masquerade-marked" }
  /** ct status dnat ip saddr . ip daddr @svc_hairpin masquerade: an endpoint that reached itself through its Service. */
  | { t: "hairpin-masq" }
  /**
   * meta l4proto <p> dnat ip to [ip daddr .] <p> dport . numgen random mod SLOTS map @map: the
   * endpoint of this frontend (ClusterIP:port, or NodePort) whose slot range holds the number.
   */
  | { t: "dnat-map"; protocol: Protocol; map: string; key: "addr-port" | "port" }
  /** ip saddr @set goto chain */
  | { t: "affinity-check"; set: string; chain: string }
  /** update @set { ip saddr } */
  | { t: "affinity-update"; set: string }
  /** numgen random mod N vmap { i : goto chains[i] } */
  | { t: "numgen"; chains: string[] }
  | { t: "dnat"; protocol: Protocol; ip: string; port: number }
  | { t: "reject-tcp" }
  | { t: "reject" };

export interface Chain {
  name: string;
  /** Base chains only. */
  hook?: { type: "nat" | "filter"; hook: "prerouting" | "input" | "forward" | "output" | "postrouting"; priority: string };
  rules: Rule[];
  comment?: string;
}

export interface VerdictMap {
  name: string;
  key: "addr-proto-port" | "proto-port";
  /** "10.96.0.10 . udp . 53" -> "goto svc_sp_..." | "drop" */
  elements: Record<string, string>;
}

/** A dynamic set of client addresses with a timeout (ClientIP session affinity). */
export interface AffinitySet {
  name: string;
  timeoutSeconds: number;
}

/**
 * The endpoints of every frontend of one protocol in ONE interval map, keyed by the frontend
 * (`ClusterIP . port`, or the NodePort alone) and a range of `numgen random mod SLOTS`: endpoint i
 * of N owns slots [floor(i·SLOTS/N), floor((i+1)·SLOTS/N) − 1]. Scaling rewrites only elements;
 * the number of maps does not grow with the Services (the kernel lists sets in O(sets²): 10k
 * per-Service maps made every `nft -f` cost seconds).
 */
export interface EndpointMap {
  name: string;
  /** Its data type names the protocol (`ip daddr . tcp dport`): nft 1.0 cannot read back `th dport` maps used after `meta l4proto`. */
  protocol: Protocol;
  key: "addr-port" | "port";
  /** `prefix` is "10.96.0.10 . 53" (addr-port) or "30080" (port). */
  elements: EndpointElement[];
}

export interface EndpointElement {
  prefix: string;
  lo: number;
  hi: number;
  ip: string;
  port: number;
}

export interface Ruleset {
  /** The node this ruleset is for, and its addresses (what `fib daddr type local` matches). */
  node: { name: string; addresses: string[] };
  maps: VerdictMap[];
  endpointMaps: EndpointMap[];
  sets: AffinitySet[];
  /** Addresses of this node's endpoints: set svc_hairpin holds `ip . ip` for each (masquerade when a pod reaches itself). */
  hairpin: string[];
  chains: Chain[];
}

/** The numgen range endpoint maps divide among their endpoints (2^20: the bias of an uneven split is below 1e-6). */
export const SLOTS = 1 << 20;

/** The slot ranges of N endpoints, in order. */
export function slotRanges(n: number): Array<{ lo: number; hi: number }> {
  return Array.from({ length: n }, (_, i) => ({ lo: Math.floor((i * SLOTS) / n), hi: Math.floor(((i + 1) * SLOTS) / n) - 1 }));
}

export interface CompileInput {
  node: { name: string; addresses: string[] };
  /** Services with their ClusterIPs (and NodePorts) allocated; headless ones are skipped. */
  services: readonly Service[];
  slices: readonly EndpointSlice[];
}

export const MAP_CLUSTER_IPS = "svc_cluster_ips";
export const MAP_NODE_PORTS = "svc_node_ports";
export const MAP_NO_ENDPOINTS = "svc_no_endpoints";
export const MAP_NO_ENDPOINT_NODE_PORTS = "svc_no_endpoint_node_ports";
export const SET_HAIRPIN = "svc_hairpin";
/** The shared objects per protocol: endpoint maps and the chains that DNAT through them. */
export const endpointMapName = (p: Protocol, key: "addr-port" | "port"): string => `svc_${key === "port" ? "nodeport_" : ""}endpoints_${p.toLowerCase()}`;
export const dnatChainName = (p: Protocol, key: "addr-port" | "port"): string => `svc_${key === "port" ? "nodeport_" : ""}dnat_${p.toLowerCase()}`;
/** NodePort traffic of an ETP Cluster Service: marked for masquerade, then DNATed. */
export const extChainName = (p: Protocol): string => `svc_nodeport_masq_dnat_${p.toLowerCase()}`;
export const CHAIN_SERVICES = "svc_services";
export const CHAIN_MARK_MASQ = "svc_mark_masq";
export const CHAIN_REJECT = "svc_reject";
export const CHAIN_ENDPOINTS_CHECK = "svc_endpoints_check";

const l4 = (p: Protocol): string => p.toLowerCase();
/** "default/web/tcp/http" (the port number when the port has no name). */
export const servicePortId = (s: Service, p: ServicePort): string => `${s.namespace}/${s.name}/${l4(p.protocol)}/${p.name || String(p.port)}`;

/** An endpoint as a service port uses it. */
export interface UsableEndpoint {
  ip: string;
  port: number;
  nodeName?: string;
}

/**
 * The endpoints a service port sends to, from its slices: the ready ones; when none is ready,
 * the serving terminating ones (so connections drain during a rollout, as kube-proxy does).
 * Sorted by address so that index i of numgen is stable.
 */
export function usableEndpoints(service: Service, port: ServicePort, slices: readonly EndpointSlice[], onlyNode?: string): UsableEndpoint[] {
  const ready = new Map<string, UsableEndpoint>();
  const terminating = new Map<string, UsableEndpoint>();
  for (const s of slices) {
    if (s.namespace !== service.namespace || s.service !== service.name) continue;
    const sp = s.ports.find((p) => p.name === port.name && p.protocol === port.protocol);
    if (!sp) continue;
    for (const e of s.endpoints) {
      if (onlyNode !== undefined && e.nodeName !== onlyNode) continue;
      const ip = e.addresses[0];
      if (!ip) continue;
      const ep: UsableEndpoint = { ip, port: sp.port, ...(e.nodeName ? { nodeName: e.nodeName } : {}) };
      const k = `${ip}:${sp.port}`;
      if (e.ready) ready.set(k, ep);
      else if (e.serving && e.terminating) terminating.set(k, ep);
    }
  }
  const pick = ready.size > 0 ? ready : terminating;
  const num = (ip: string): bigint => parseIp(ip)?.value ?? 0n;
  return [...pick.values()].sort((a, b) => (num(a.ip) < num(b.ip) ? -1 : num(a.ip) > num(b.ip) ? 1 : a.port - b.port));
}

function baseChains(): Chain[] {
  const check = (hook: "input" | "forward" | "output"): Chain => ({
    name: `svc_filter_${hook}`, hook: { type: "filter", hook, priority: "-110" }, rules: [{ t: "jump", chain: CHAIN_ENDPOINTS_CHECK }],
  });
  return [
    { name: "svc_nat_prerouting", hook: { type: "nat", hook: "prerouting", priority: "dstnat" }, rules: [{ t: "jump", chain: CHAIN_SERVICES }] },
    { name: "svc_nat_output", hook: { type: "nat", hook: "output", priority: "-100" }, rules: [{ t: "jump", chain: CHAIN_SERVICES }] },
    { name: "svc_nat_postrouting", hook: { type: "nat", hook: "postrouting", priority: "srcnat" }, rules: [{ t: "hairpin-masq" }, { t: "masquerade-marked" }] },
    check("input"),
    check("forward"),
    check("output"),
    { name: CHAIN_SERVICES, rules: [{ t: "vmap-addr", map: MAP_CLUSTER_IPS }, { t: "vmap-node-port", map: MAP_NODE_PORTS }] },
    {
      name: CHAIN_ENDPOINTS_CHECK,
      rules: [{ t: "vmap-addr", map: MAP_NO_ENDPOINTS, ctNew: true }, { t: "vmap-node-port", map: MAP_NO_ENDPOINT_NODE_PORTS, ctNew: true }],
    },
    { name: CHAIN_MARK_MASQ, rules: [{ t: "mark-masq" }] },
    { name: CHAIN_REJECT, rules: [{ t: "reject-tcp" }, { t: "reject" }] },
    ...PROTOCOLS.flatMap((p): Chain[] => [
      { name: dnatChainName(p, "addr-port"), rules: [{ t: "dnat-map", protocol: p, map: endpointMapName(p, "addr-port"), key: "addr-port" }] },
      { name: dnatChainName(p, "port"), rules: [{ t: "dnat-map", protocol: p, map: endpointMapName(p, "port"), key: "port" }] },
      { name: extChainName(p), rules: [{ t: "jump", chain: CHAIN_MARK_MASQ }, { t: "goto", chain: dnatChainName(p, "port") }] },
    ]),
  ];
}

export function compileServices(input: CompileInput): Ruleset {
  const clusterIps: Record<string, string> = {};
  const nodePorts: Record<string, string> = {};
  const noEndpoints: Record<string, string> = {};
  const noEndpointNodePorts: Record<string, string> = {};
  const chains = new Map<string, Chain>();
  const sets = new Map<string, AffinitySet>();
  const endpointMaps = new Map<string, EndpointMap>();
  for (const p of PROTOCOLS) {
    for (const key of ["addr-port", "port"] as const) endpointMaps.set(endpointMapName(p, key), { name: endpointMapName(p, key), protocol: p, key, elements: [] });
  }
  const hairpin = new Set<string>();
  const services = [...input.services].sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`));
  // Slices by Service, once: a Service's endpoints are then found without scanning every slice.
  const slicesOf = new Map<string, EndpointSlice[]>();
  for (const sl of input.slices) {
    const k = `${sl.namespace}/${sl.service}`;
    const list = slicesOf.get(k);
    if (list) list.push(sl);
    else slicesOf.set(k, [sl]);
  }

  for (const svc of services) {
    if (!svc.clusterIP || svc.clusterIP === "None") continue;
    const ip = parseIp(svc.clusterIP);
    if (!ip || ip.family !== 4) continue;
    const clusterIp = formatIp(ip);
    for (const port of svc.ports) {
      const id = servicePortId(svc, port);
      const affinity = svc.sessionAffinity === "ClientIP";
      const mine = slicesOf.get(`${svc.namespace}/${svc.name}`) ?? [];
      const all = usableEndpoints(svc, port, mine);
      const local = usableEndpoints(svc, port, mine, input.node.name);
      for (const e of all) if (e.nodeName === undefined || e.nodeName === input.node.name) hairpin.add(e.ip);
      const addrKey = `${clusterIp} . ${l4(port.protocol)} . ${port.port}`;
      const npKey = port.nodePort !== undefined && svc.type === "NodePort" ? `${l4(port.protocol)} . ${port.nodePort}` : undefined;
      const label = `${svc.namespace}/${svc.name}:${port.name || port.port}`;
      const internal = svc.internalTrafficPolicy === "Local" ? local : all;
      const external = svc.externalTrafficPolicy === "Local" ? local : all;

      // Where a frontend's traffic goes: the shared DNAT chain of its protocol (its endpoints are
      // elements of that protocol's map), or, with ClientIP affinity, this port's own chains.
      let clusterTarget: string;
      let nodePortTarget: string | undefined;
      if (!affinity) {
        const slots = (prefix: string, map: string, eps: UsableEndpoint[]): void => {
          endpointMaps.get(map)!.elements.push(...slotRanges(eps.length).map((r, i) => ({ prefix, ...r, ip: eps[i]!.ip, port: eps[i]!.port })));
        };
        slots(`${clusterIp} . ${port.port}`, endpointMapName(port.protocol, "addr-port"), internal);
        clusterTarget = dnatChainName(port.protocol, "addr-port");
        if (npKey) {
          slots(String(port.nodePort), endpointMapName(port.protocol, "port"), external);
          nodePortTarget = svc.externalTrafficPolicy === "Local" ? dnatChainName(port.protocol, "port") : extChainName(port.protocol);
        }
      } else {
        const epChain = (e: UsableEndpoint): string => {
          const name = `svc_ep_${id}__${e.ip}/${e.port}`;
          if (!chains.has(name)) {
            const set = `svc_aff_${id}__${e.ip}/${e.port}`;
            sets.set(set, { name: set, timeoutSeconds: svc.affinityTimeoutSeconds });
            chains.set(name, { name, rules: [{ t: "affinity-update", set }, { t: "dnat", protocol: port.protocol, ip: e.ip, port: e.port }] });
          }
          return name;
        };
        const selection = (name: string, eps: UsableEndpoint[], comment: string): string => {
          const targets = eps.map(epChain);
          const rules: Rule[] = eps.map((e, i) => ({ t: "affinity-check", set: `svc_aff_${id}__${e.ip}/${e.port}`, chain: targets[i]! }));
          if (targets.length) rules.push({ t: "numgen", chains: targets });
          chains.set(name, { name, rules, comment });
          return name;
        };
        clusterTarget = svc.internalTrafficPolicy === "Local" ? selection(`svc_spl_${id}`, local, `${label} local endpoints`) : selection(`svc_sp_${id}`, all, `${label} endpoints`);
        if (npKey) {
          if (svc.externalTrafficPolicy === "Local") nodePortTarget = selection(`svc_spl_${id}`, local, `${label} local endpoints`);
          else {
            const sp = selection(`svc_sp_${id}`, all, `${label} endpoints`);
            nodePortTarget = `svc_ext_${id}`;
            chains.set(nodePortTarget, { name: nodePortTarget, rules: [{ t: "jump", chain: CHAIN_MARK_MASQ }, { t: "goto", chain: sp }], comment: `${label} from outside: masquerade` });
          }
        }
      }

      // ClusterIP traffic.
      if (all.length === 0) noEndpoints[addrKey] = `goto ${CHAIN_REJECT}`;
      else if (internal.length === 0) noEndpoints[addrKey] = "drop";
      else clusterIps[addrKey] = `goto ${clusterTarget}`;

      // NodePort traffic, on every local address of the node.
      if (npKey) {
        if (all.length === 0) noEndpointNodePorts[npKey] = `goto ${CHAIN_REJECT}`;
        else if (external.length === 0) noEndpointNodePorts[npKey] = "drop";
        else nodePorts[npKey] = `goto ${nodePortTarget}`;
      }
    }
  }
  const byName = <T extends { name: string }>(xs: Iterable<T>): T[] => [...xs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const num = (a: string): bigint => parseIp(a)?.value ?? 0n;
  return {
    node: { name: input.node.name, addresses: [...input.node.addresses] },
    maps: [
      { name: MAP_CLUSTER_IPS, key: "addr-proto-port", elements: clusterIps },
      { name: MAP_NODE_PORTS, key: "proto-port", elements: nodePorts },
      { name: MAP_NO_ENDPOINTS, key: "addr-proto-port", elements: noEndpoints },
      { name: MAP_NO_ENDPOINT_NODE_PORTS, key: "proto-port", elements: noEndpointNodePorts },
    ],
    endpointMaps: byName(endpointMaps.values()),
    sets: byName(sets.values()),
    hairpin: [...hairpin].sort((a, b) => (num(a) < num(b) ? -1 : num(a) > num(b) ? 1 : 0)),
    chains: [...baseChains(), ...byName(chains.values())],
  };
}
