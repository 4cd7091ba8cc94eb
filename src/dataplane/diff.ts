// Reconciliation as a pure function: desired data plane + what the kernel has -> the smallest list
// of steps that makes the kernel match. Only objects Trellis owns appear in `actual` (our VTEP,
// routes with our protocol number, entries on our VTEP, our nft table), so nothing else can ever
// be changed or removed.
import {
  AGENT_ROUTE_PROTO, NAT_TABLE, POD_ROUTE_PROTO, VTEP_NAME, type Dataplane, type FdbSpec, type NeighSpec, type RouteSpec, type RuleSpec, type VtepSpec,
} from "./state.js";

export interface ActualDataplane extends Dataplane {
  /** Whether our VTEP is administratively up and holds its address. */
  vtepUp?: boolean;
  vtepAddresses?: string[];
  /** NAT table: absent, as we wrote it (with that pod network), or changed by someone. */
  natState: "absent" | "ours" | "drifted";
  /** Names of the node's links, when read: a pod route is only put back on a veth that exists. */
  links?: string[];
  /** Our policy-routing rules (those with our preference), as read. */
  rules?: RuleSpec[];
  /** Unicast routes in the BGP table (what BIRD installed), by destination. */
  bgpRoutes?: Array<{ dst: string; via?: string; dev?: string }>;
}

export type Step =
  | { tool: "ip"; line: string }
  | { tool: "bridge"; line: string }
  | { tool: "nft"; script: string };

const routeKey = (r: RouteSpec): string => r.dst;
const sameRoute = (a: RouteSpec, b: RouteSpec): boolean => a.dst === b.dst && a.via === b.via && a.dev === b.dev && a.onlink === b.onlink;
const fdbKey = (f: FdbSpec): string => `${f.mac.toLowerCase()}>${f.dst}`;
const neighKey = (n: NeighSpec): string => n.ip;

export function natScript(podNetwork: string | undefined): string {
  const lines = [`table ip ${NAT_TABLE}`, `delete table ip ${NAT_TABLE}`];
  if (podNetwork) {
    lines.push(
      `table ip ${NAT_TABLE} {`,
      "  chain postrouting {",
      "    type nat hook postrouting priority srcnat; policy accept;",
      `    ip saddr ${podNetwork} ip daddr ${podNetwork} return comment "trellis: pod to pod, never masqueraded"`,
      `    ip saddr ${podNetwork} ip daddr != 224.0.0.0/4 masquerade comment "trellis: nat outgoing"`,
      "  }",
      "}",
    );
  }
  return lines.join("\n") + "\n";
}

const vtepCreate = (v: VtepSpec): string[] => [
  `link add ${v.name} mtu ${v.mtu} address ${v.mac} type vxlan id ${v.vni} local ${v.localIp} dev ${v.dev} dstport ${v.port} nolearning`,
  `addr replace ${v.address} dev ${v.name}`,
  `link set ${v.name} up`,
];

export function diffDataplane(desired: Dataplane, actual: ActualDataplane): Step[] {
  const ip = (line: string): Step => ({ tool: "ip", line });
  const br = (line: string): Step => ({ tool: "bridge", line });
  const creates: Step[] = [];
  const entries: Step[] = [];
  const routes: Step[] = [];
  const removals: Step[] = [];
  const late: Step[] = [];

  // The VTEP first: entries and routes depend on it.
  const dv = desired.vtep;
  const av = actual.vtep;
  let vtepRecreated = false;
  // Setting the VTEP down (to change its MAC) makes the kernel flush its neighbours and the routes
  // through it; the FDB's permanent entries survive.
  let vtepFlushed = false;
  if (dv && !av) {
    creates.push(...vtepCreate(dv).map(ip));
    vtepRecreated = true;
  } else if (dv && av) {
    if (av.vni !== dv.vni || av.port !== dv.port || av.localIp !== dv.localIp || av.dev !== dv.dev) {
      creates.push(ip(`link del ${VTEP_NAME}`), ...vtepCreate(dv).map(ip));
      vtepRecreated = true;
    } else {
      if (av.mac.toLowerCase() !== dv.mac.toLowerCase()) {
        creates.push(ip(`link set ${dv.name} down`), ip(`link set ${dv.name} address ${dv.mac}`));
        vtepFlushed = true;
      }
      if (av.mtu !== dv.mtu) creates.push(ip(`link set ${dv.name} mtu ${dv.mtu}`));
      if (!(actual.vtepAddresses ?? []).includes(dv.address)) creates.push(ip(`addr replace ${dv.address} dev ${dv.name}`));
      for (const a of actual.vtepAddresses ?? []) if (a !== dv.address) creates.push(ip(`addr del ${a} dev ${dv.name}`));
      if (!actual.vtepUp || av.mac.toLowerCase() !== dv.mac.toLowerCase()) creates.push(ip(`link set ${dv.name} up`));
    }
  }

  // FDB and neighbour entries live on the VTEP (a recreated VTEP has none).
  const actualFdb = vtepRecreated ? [] : actual.fdb;
  const actualNeigh = vtepRecreated || vtepFlushed ? [] : actual.neigh;
  if (dv) {
    const haveFdb = new Set(actualFdb.map(fdbKey));
    for (const f of desired.fdb) if (!haveFdb.has(fdbKey(f))) entries.push(br(`fdb append ${f.mac} dev ${dv.name} dst ${f.dst} self permanent`));
    const wantFdb = new Set(desired.fdb.map(fdbKey));
    for (const f of actualFdb) if (!wantFdb.has(fdbKey(f))) removals.push(br(`fdb del ${f.mac} dev ${VTEP_NAME} dst ${f.dst} self`));
    const haveNeigh = new Map(actualNeigh.map((n) => [neighKey(n), n]));
    for (const n of desired.neigh) {
      const h = haveNeigh.get(neighKey(n));
      if (!h || h.mac.toLowerCase() !== n.mac.toLowerCase()) entries.push(ip(`neigh replace ${n.ip} lladdr ${n.mac} dev ${dv.name} nud permanent`));
    }
    const wantNeigh = new Set(desired.neigh.map(neighKey));
    for (const n of actualNeigh) if (!wantNeigh.has(neighKey(n))) removals.push(ip(`neigh del ${n.ip} dev ${VTEP_NAME}`));
  }

  // Routes: replace what is missing or different, remove ours that are no longer wanted.
  const haveRoutes = new Map(actual.routes.map((r) => [routeKey(r), r]));
  for (const r of desired.routes) {
    const h = haveRoutes.get(routeKey(r));
    if (!h || !sameRoute(h, r) || ((vtepRecreated || vtepFlushed) && r.dev === VTEP_NAME)) {
      routes.push(ip(`route replace ${r.dst} via ${r.via} dev ${r.dev}${r.onlink ? " onlink" : ""} proto ${AGENT_ROUTE_PROTO}`));
    }
  }
  const wantRoutes = new Set(desired.routes.map(routeKey));
  const routeRemovals = actual.routes.filter((r) => !wantRoutes.has(routeKey(r)))
    .map((r) => ip(`route del ${r.dst} proto ${AGENT_ROUTE_PROTO}`));

  if (!dv && av) late.push(ip(`link del ${VTEP_NAME}`));

  // Blackholes (bgp: the node's own block) and the rule to the BGP table.
  const haveBlackholes = new Set(actual.blackholes ?? []);
  for (const b of desired.blackholes ?? []) if (!haveBlackholes.has(b)) routes.push(ip(`route replace blackhole ${b} proto ${AGENT_ROUTE_PROTO}`));
  const wantBlackholes = new Set(desired.blackholes ?? []);
  for (const b of actual.blackholes ?? []) if (!wantBlackholes.has(b)) removals.push(ip(`route del blackhole ${b} proto ${AGENT_ROUTE_PROTO}`));
  const sameRule = (a: RuleSpec, b: RuleSpec): boolean => a.pref === b.pref && a.to === b.to && a.table === b.table;
  const want = desired.rule;
  for (const r of actual.rules ?? []) if (!want || !sameRule(r, want)) removals.push(ip(`rule del pref ${r.pref} to ${r.to} lookup ${r.table}`));
  if (want && !(actual.rules ?? []).some((r) => sameRule(r, want))) routes.push(ip(`rule add pref ${want.pref} to ${want.to} lookup ${want.table}`));

  // Pod host routes: put back what went missing, on veths that still exist; never remove any
  // (a pod's DEL takes its route away with its veth).
  const links = actual.links ? new Set(actual.links) : undefined;
  const havePod = new Set((actual.podRoutes ?? []).map((r) => `${r.dst}>${r.dev}`));
  for (const r of desired.podRoutes ?? []) {
    if (havePod.has(`${r.dst}>${r.dev}`) || (links && !links.has(r.dev))) continue;
    routes.push(ip(`route replace ${r.dst} dev ${r.dev} scope link proto ${POD_ROUTE_PROTO}`));
  }

  // NAT: the whole table is replaced atomically whenever it is not exactly ours.
  const natWanted = desired.nat?.podNetwork;
  if (natWanted) {
    if (actual.natState !== "ours" || actual.nat?.podNetwork !== natWanted) late.push({ tool: "nft", script: natScript(natWanted) });
  } else if (actual.natState !== "absent") {
    late.push({ tool: "nft", script: natScript(undefined) });
  }

  // Order: stop routing to what goes away, create, fill the VTEP, route, clean up, tear down.
  return [...routeRemovals, ...creates, ...entries, ...routes, ...removals, ...late];
}
