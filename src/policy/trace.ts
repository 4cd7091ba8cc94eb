// A packet tracer over the compiled ruleset (the IR the nft script is rendered from): runs a
// packet through the base chain, the verdict maps and the endpoint chains exactly as nftables
// would, and reports the verdict and the path. Unit tests use it to check the compiler against
// the evaluator without root. Pure.
import { cidrContains, parseCidr, parseIp } from "../model/ip.js";
import type { Protocol } from "./model.js";
import { HOST_IF_GLOB } from "./render.js";
import type { Chain, Match, NftSet, Rule, Ruleset } from "./compile.js";

export interface TracePacket {
  hook: "forward" | "input";
  iif: string;
  oif?: string;
  src: string;
  dst: string;
  protocol: Protocol | "ICMP";
  port?: number;
  /** Conntrack state: replies of an allowed connection are "established". */
  ct?: "new" | "established";
  nd?: boolean;
}

export interface TraceResult {
  verdict: "accept" | "drop";
  /** Chains and rule comments visited, in order. */
  path: string[];
  logged: string[];
}

const glob = (pattern: string, name: string): boolean =>
  pattern.endsWith("*") ? name.startsWith(pattern.slice(0, -1)) : pattern === name;

/** "a", "a-b" (addresses) or "n", "n-m" (ports) as a bigint range. */
function range(text: string, parse: (t: string) => bigint | undefined): [bigint, bigint] | undefined {
  const dash = text.indexOf("-", 1);
  const lo = parse(dash > 0 ? text.slice(0, dash) : text);
  const hi = parse(dash > 0 ? text.slice(dash + 1) : text);
  return lo === undefined || hi === undefined ? undefined : [lo, hi];
}

const PROTO_NUMBERS: Record<string, string> = { tcp: "TCP", udp: "UDP", sctp: "SCTP" };

function inProtoPortSet(s: NftSet | undefined, addr: string, protocol: string, port: number | undefined): boolean {
  const ip = parseIp(addr);
  if (!s || !ip || port === undefined) return false;
  return s.elements.some((e) => {
    const [a, proto, p] = e.split(" . ");
    if (PROTO_NUMBERS[proto!] !== protocol) return false;
    const ar = range(a!, (t) => {
      const x = parseIp(t);
      return x && x.family === ip.family ? x.value : undefined;
    });
    const pr = range(p!, (t) => (/^\d+$/.test(t) ? BigInt(t) : undefined));
    return ar !== undefined && pr !== undefined && ip.value >= ar[0] && ip.value <= ar[1] && BigInt(port) >= pr[0] && BigInt(port) <= pr[1];
  });
}

function inSet(s: NftSet | undefined, addr: string, port?: number): boolean {
  if (!s) return false;
  const ip = parseIp(addr);
  if (!ip) return false;
  return s.elements.some((e) => {
    if (s.kind === "interval" && e.includes("-") && !e.includes("/")) {
      const r = range(e, (t) => {
        const x = parseIp(t);
        return x && x.family === ip.family ? x.value : undefined;
      });
      return r !== undefined && ip.value >= r[0] && ip.value <= r[1];
    }
    if (s.kind === "addr-port") {
      const [a, p] = e.split(" . ");
      const x = parseIp(a!);
      return x !== undefined && x.family === ip.family && x.value === ip.value && Number(p) === port;
    }
    if (e.includes("/")) {
      const c = parseCidr(e);
      return c !== undefined && cidrContains(c, ip);
    }
    const x = parseIp(e);
    return x !== undefined && x.family === ip.family && x.value === ip.value;
  });
}

function matches(m: Match, p: TracePacket, sets: Map<string, NftSet>): boolean {
  const fam = p.src.includes(":") ? 6 : 4;
  if (m.family && m.family !== fam) return false;
  if (m.iif && !glob(m.iif, p.iif)) return false;
  if (m.oif && (!p.oif || !glob(m.oif, p.oif))) return false;
  if (m.nd) return Boolean(p.nd);
  if (m.saddrNot && m.saddrNot.some((a) => inSet({ name: "", family: fam, kind: "addr", elements: [a] }, p.src))) return false;
  if (m.saddrSet && !inSet(sets.get(m.saddrSet), p.src)) return false;
  if (m.saddrNotSet && inSet(sets.get(m.saddrNotSet), p.src)) return false;
  if (m.daddrSet && !inSet(sets.get(m.daddrSet), p.dst)) return false;
  if (m.daddrNotSet && inSet(sets.get(m.daddrNotSet), p.dst)) return false;
  if (m.protocol && m.protocol !== p.protocol) return false;
  if (m.daddrPortSet && !inSet(sets.get(m.daddrPortSet), p.dst, p.port)) return false;
  if (m.addrProtoPortSet) {
    const remote = m.addrProtoPortSet.side === "saddr" ? p.src : p.dst;
    if (!inProtoPortSet(sets.get(m.addrProtoPortSet.set), remote, p.protocol, p.port)) return false;
  }
  if (m.dports) {
    const port = p.port ?? -1;
    const ok = m.dports.some((d) => {
      const [a, b] = d.split("-").map(Number);
      return port >= a! && port <= (b ?? a!);
    });
    if (!ok) return false;
  }
  return true;
}

/** Runs `p` through `rs`. */
export function trace(rs: Ruleset, p: TracePacket): TraceResult {
  const sets = new Map(rs.sets.map((s) => [s.name, s]));
  const chains = new Map<string, Chain>(rs.chains.map((c) => [c.name, c]));
  const path: string[] = [];
  const logged: string[] = [];
  const endpoints = new Set(Object.keys(rs.egressMap));

  if (p.ct === "established") return { verdict: "accept", path: ["ct state established,related accept"], logged };
  const isPodIf = (name: string | undefined): boolean => name !== undefined && glob(HOST_IF_GLOB, name);
  if (isPodIf(p.iif) && !endpoints.has(p.iif)) return { verdict: "drop", path: ["fail closed: source endpoint not programmed"], logged };
  if (p.hook === "forward" && isPodIf(p.oif) && !endpoints.has(p.oif!)) {
    return { verdict: "drop", path: ["fail closed: destination endpoint not programmed"], logged };
  }

  /** Runs a chain; "continue" = fell off the end or returned. */
  const run = (name: string, depth: number): "accept" | "drop" | "continue" => {
    const chain = chains.get(name);
    if (!chain || depth > 16) return "continue";
    path.push(`chain ${name}`);
    for (const r of chain.rules as Rule[]) {
      if (!matches(r.match, p, sets)) continue;
      if (r.comment) path.push(r.comment);
      const v = r.verdict;
      if (v === "accept" || v === "drop") return v;
      if (v === "return") return "continue";
      if ("log" in v) {
        logged.push(v.log);
        continue;
      }
      if ("goto" in v) return run(v.goto, depth + 1);
      const sub = run(v.jump, depth + 1);
      if (sub !== "continue") return sub;
    }
    return "continue";
  };

  const egress = rs.egressMap[p.iif];
  if (egress && run(egress, 0) === "drop") return { verdict: "drop", path, logged };
  if (p.hook === "forward" && p.oif) {
    const ingress = rs.ingressMap[p.oif];
    if (ingress && run(ingress, 0) === "drop") return { verdict: "drop", path, logged };
  }
  return { verdict: "accept", path, logged };
}
