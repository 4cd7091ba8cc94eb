// A packet tracer over the compiled services ruleset (not the kernel): runs a new connection's
// first packet through the nat chains (prerouting, or output for the node itself), then, when no
// DNAT happened, through the endpoints check of the filter hooks, exactly as the rendered rules
// would. So "10.96.0.10:53/udp from pod x -> endpoint y" is asserted without root. Pure.
import { parseIp } from "../model/ip.js";
import { CHAIN_ENDPOINTS_CHECK, type Chain, type Rule, type Ruleset } from "./compile.js";
import type { Protocol } from "./model.js";

export interface TracePacket {
  src: string;
  dst: string;
  protocol: Protocol;
  port: number;
  /** A pod of this node or something off the node arrive through prerouting; the node itself through output. */
  from: "pod" | "outside" | "node";
  /** Which endpoint `numgen random` lands on: the index among the service port's endpoints (taken mod N). 0 by default. */
  pick?: number;
  /** Client addresses already in each affinity set (the sets' live state). */
  affinity?: Readonly<Record<string, readonly string[]>>;
}

export type TraceResult =
  | { verdict: "dnat"; endpoint: string; masquerade: boolean; path: string[]; affinityUpdated?: string }
  | { verdict: "reject" | "drop"; path: string[] }
  | { verdict: "no-service"; path: string[] };

type Outcome = { t: "continue" } | { t: "return" } | { t: "dnat"; endpoint: string } | { t: "verdict"; v: "reject" | "drop" | "accept" };

export function tracePacket(r: Ruleset, p: TracePacket): TraceResult {
  const chains = new Map<string, Chain>(r.chains.map((c) => [c.name, c]));
  const maps = new Map(r.maps.map((m) => [m.name, m]));
  const endpointMaps = new Map(r.endpointMaps.map((m) => [m.name, m]));
  const path: string[] = [];
  const state = { marked: false, affinityUpdated: undefined as string | undefined };
  const isLocal = r.node.addresses.includes(p.dst);
  const dstIp = parseIp(p.dst);
  const loopback = dstIp?.family === 4 && dstIp.value >> 24n === 127n;
  const proto = p.protocol.toLowerCase();

  const verdictOf = (v: string): Outcome => {
    const [kw, target] = v.split(" ");
    if (kw === "drop") return { t: "verdict", v: "drop" };
    if (kw === "accept") return { t: "verdict", v: "accept" };
    if ((kw === "goto" || kw === "jump") && target) {
      const o = run(target);
      if (kw === "jump" && (o.t === "return" || o.t === "continue")) return { t: "continue" };
      return o.t === "continue" ? { t: "return" } : o;
    }
    throw new Error(`trace: verdict ${v} not understood`);
  };

  const step = (rule: Rule): Outcome => {
    switch (rule.t) {
      case "jump":
      case "goto":
        return verdictOf(`${rule.t} ${rule.chain}`);
      case "vmap-addr":
      case "vmap-node-port": {
        if (rule.t === "vmap-node-port" && (!isLocal || loopback)) return { t: "continue" };
        const key = rule.t === "vmap-addr" ? `${p.dst} . ${proto} . ${p.port}` : `${proto} . ${p.port}`;
        const v = maps.get(rule.map)?.elements[key];
        return v === undefined ? { t: "continue" } : verdictOf(v);
      }
      case "mark-masq":
        state.marked = true;
        return { t: "continue" };
      case "masquerade-marked":
        return { t: "continue" };
      case "hairpin-masq":
        return { t: "continue" };
      case "dnat-map": {
        if (rule.protocol !== p.protocol) return { t: "continue" };
        const prefix = rule.key === "addr-port" ? `${p.dst} . ${p.port}` : String(p.port);
        const eps = (endpointMaps.get(rule.map)?.elements ?? []).filter((e) => e.prefix === prefix).sort((a, b) => a.lo - b.lo);
        const e = eps[(p.pick ?? 0) % Math.max(eps.length, 1)];
        // An empty map: the lookup misses, the rule does not match.
        return e ? { t: "dnat", endpoint: `${e.ip}:${e.port}` } : { t: "continue" };
      }
      case "affinity-check":
        return p.affinity?.[rule.set]?.includes(p.src) ? verdictOf(`goto ${rule.chain}`) : { t: "continue" };
      case "affinity-update":
        state.affinityUpdated = rule.set;
        return { t: "continue" };
      case "numgen": {
        const target = rule.chains[(p.pick ?? 0) % rule.chains.length];
        return target ? verdictOf(`goto ${target}`) : { t: "continue" };
      }
      case "dnat":
        return rule.protocol === p.protocol ? { t: "dnat", endpoint: `${rule.ip}:${rule.port}` } : { t: "continue" };
      case "reject-tcp":
        return p.protocol === "TCP" ? { t: "verdict", v: "reject" } : { t: "continue" };
      case "reject":
        return { t: "verdict", v: "reject" };
    }
  };

  function run(name: string): Outcome {
    const c = chains.get(name);
    if (!c) throw new Error(`trace: chain ${name} does not exist`);
    path.push(name);
    for (const rule of c.rules) {
      const o = step(rule);
      if (o.t !== "continue") return o;
    }
    return { t: "continue" };
  }

  const nat = run(p.from === "node" ? "svc_nat_output" : "svc_nat_prerouting");
  if (nat.t === "dnat") {
    // Postrouting: hairpin (the source is the endpoint itself, an element of svc_hairpin) or marked.
    const hairpin = r.hairpin.includes(p.src) && nat.endpoint.startsWith(`${p.src}:`);
    return { verdict: "dnat", endpoint: nat.endpoint, masquerade: state.marked || hairpin, path, ...(state.affinityUpdated ? { affinityUpdated: state.affinityUpdated } : {}) };
  }
  // No DNAT: the filter hooks (input for the node's addresses, forward otherwise, output from the node).
  path.push(p.from === "node" ? "svc_filter_output" : isLocal ? "svc_filter_input" : "svc_filter_forward");
  const check = run(CHAIN_ENDPOINTS_CHECK);
  if (check.t === "verdict" && check.v !== "accept") return { verdict: check.v, path };
  return { verdict: "no-service", path };
}
