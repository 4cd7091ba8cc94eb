// Pure parts of the policy benchmark (bench/policy.ts): the objects it applies, parsers for the
// agent's and the plugin's log lines, and nft set elements compared by content. Plain data in,
// plain data out (policy-gen.test.ts).
import { cidrSize, formatIp, parseCidr, parseIp } from "../src/model/ip.js";

export type Doc = Record<string, unknown>;

/** The Kubernetes namespace the benchmark's pods and policies live in. */
export const BENCH_NS = "bench";

const np = (name: string, spec: Doc): Doc => ({
  apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name, namespace: BENCH_NS }, spec,
});

/**
 * Part 1: `n` NetworkPolicies with varied pod selectors, peers (pod labels, namespace labels, both,
 * ipBlocks) and ports (numbers, ranges, UDP, a named port), every one selecting the benchmark's
 * pods on every node. The last one admits TCP 9999 from `192.0.2.<run>/32` (TEST-NET-1), which no
 * other policy covers: that one element of a pod's flattened ingress set (`k8sport4_…`) shows
 * that a node has programmed the whole batch, because the apply writes the objects in order and
 * the agent sees them in order (and the delete removes them in the same order).
 */
export function manyPolicies(n: number, prefix: string, run: number): Doc[] {
  const docs: Doc[] = [];
  const selectors: Doc[] = [
    {},
    { matchExpressions: [{ key: "app", operator: "In", values: ["srv", "cli"] }] },
    { matchExpressions: [{ key: "app", operator: "Exists" }] },
  ];
  for (let i = 0; i < n - 1; i++) {
    const peer: Doc = [
      { podSelector: { matchLabels: { grp: `g${i % 100}` } } },
      { namespaceSelector: { matchLabels: { team: `t${i % 20}` } } },
      { namespaceSelector: { matchLabels: { team: BENCH_NS } }, podSelector: { matchLabels: { grp: `g${i % 50}` } } },
      { ipBlock: { cidr: `172.16.${i % 256}.0/24` } },
    ][i % 4]!;
    const ports: Doc[] = i % 11 === 0 ? [{ protocol: "TCP", port: "http" }, { protocol: "TCP", port: 1000 + i }]
      : i % 7 === 0 ? [{ protocol: "TCP", port: 3000 + (i % 50), endPort: 3010 + (i % 50) }]
        : i % 5 === 0 ? [{ protocol: "UDP", port: 2000 + (i % 100) }]
          : [{ protocol: "TCP", port: 1000 + i }];
    const spec: Doc = { podSelector: selectors[i % selectors.length], ingress: [{ from: [peer], ports }] };
    if (i % 10 === 0) {
      spec.policyTypes = ["Ingress", "Egress"];
      spec.egress = [{ to: [{ podSelector: { matchLabels: { app: "srv" } } }], ports: [{ protocol: "TCP", port: 8080 }] }];
    }
    docs.push(np(`${prefix}-${String(i).padStart(4, "0")}`, spec));
  }
  docs.push(np(`${prefix}-${String(n - 1).padStart(4, "0")}`, {
    podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: `192.0.2.${run % 256}/32` } }], ports: [{ protocol: "TCP", port: 9999 }] }],
  }));
  return docs;
}

/** The last policy of `wallPolicies`: the one that admits the client (label role=allowed) on the measured ports. */
export const WALL_ALLOW = "zz-allow";

/**
 * Rule `k` of wall policy `j` (of `rules` per policy): its one peer and its ports. Every policy
 * repeats the same peers in the same positions with other ports, as policies written per service
 * do:
 *   - the last rule: an ipBlock `100.96+.x.0/24` without ports (allowed on every port: the `any` set);
 *   - k % 4 = 3: a pod selector `peer: p<k>` (the client carries `peer: p7`, so its address gets
 *     one port per policy, none of them one it listens on);
 *   - otherwise an ipBlock in 100.64.0.0/16: a /20 when k % 10 = 0, else a /24 inside one of those
 *     /20s, so the address ranges overlap and the compiler has to cut them into disjoint pieces.
 * Ports: TCP 10000 + (j·rules + k) mod 50000, UDP when k % 8 = 5, a range of 10 when k % 9 = 1.
 */
export function wallRule(j: number, k: number, rules: number): { peer: Doc; ports?: Doc[] } {
  if (k === rules - 1 && rules > 1) return { peer: { ipBlock: { cidr: `100.${96 + ((j >> 7) & 31)}.${(j & 127) * 2}.0/24` } } };
  const port = 10000 + ((j * rules + k) % 50000);
  const ports: Doc[] = [k % 8 === 5 ? { protocol: "UDP", port } : k % 9 === 1 ? { protocol: "TCP", port, endPort: Math.min(65535, port + 9) } : { protocol: "TCP", port }];
  if (k % 4 === 3) return { peer: { podSelector: { matchLabels: { peer: `p${k % 100}` } } }, ports };
  const cidr = k % 10 === 0 ? `100.64.${(Math.floor(k / 10) % 16) * 16}.0/20` : `100.64.${k % 256}.0/24`;
  return { peer: { ipBlock: { cidr } }, ports };
}

export type WallKind = "NetworkPolicy" | "TrellisPolicy";

/**
 * Parts 2-4: `policies` policies on the server pod (app=srv) with `rules` ingress rules each
 * (`wallRule`), then `zz-allow`, which admits pods labelled role=allowed on `allowPorts` (TCP)
 * only: so the client is not in the `any` set and each of its new connections needs both lookups
 * of the flattened tier. As NetworkPolicies the rules are a union the compiler flattens into two
 * sets; as TrellisPolicies (all order 100, every rule `Allow`, so the same policy) they form the
 * ordered tier, which stays one nft rule per (rule, peer, port, family), walked in order: the
 * policies sort before `zz-allow`, so a new connection passes every other rule first.
 */
export function wallPolicies(policies: number, rules: number, prefix: string, kind: WallKind, allowPorts: readonly number[]): Doc[] {
  const ordered = kind === "TrellisPolicy";
  const doc = (name: string, ingress: Doc[]): Doc => ordered
    ? {
      apiVersion: "trellis.dev/v1", kind, metadata: { name, namespace: BENCH_NS },
      spec: { order: 100, podSelector: { matchLabels: { app: "srv" } }, ingress: ingress.map((r) => ({ action: "Allow", ...r })) },
    }
    : np(name, { podSelector: { matchLabels: { app: "srv" } }, ingress });
  const docs: Doc[] = [];
  for (let j = 0; j < policies; j++) {
    const ingress: Doc[] = [];
    for (let k = 0; k < rules; k++) {
      const r = wallRule(j, k, rules);
      ingress.push({ from: [r.peer], ...(r.ports ? { ports: r.ports } : {}) });
    }
    docs.push(doc(`${prefix}-${String(j).padStart(3, "0")}`, ingress));
  }
  docs.push(doc(WALL_ALLOW, [{ from: [{ podSelector: { matchLabels: { role: "allowed" } } }], ports: allowPorts.map((port) => ({ protocol: "TCP", port })) }]));
  return docs;
}

/** A Pod object as `lab up` applies it (labels, declared container ports). */
export function podDoc(name: string, labels: Record<string, string>, ports: Array<{ name?: string; port: number; protocol: string }> = []): Doc {
  return {
    apiVersion: "v1", kind: "Pod", metadata: { name, namespace: BENCH_NS, labels },
    spec: { containers: [{ name: "app", ports: ports.map((p) => ({ ...(p.name ? { name: p.name } : {}), containerPort: p.port, protocol: p.protocol })) }] },
  };
}

/** Several objects as one `apply -f -` input. */
export const documents = (docs: readonly Doc[]): string => docs.map((d) => JSON.stringify(d)).join("\n---\n") + "\n";

/** One "policy: ..." line of an agent log: when it was written, and what the applier did. */
export interface PolicyLogLine {
  atMs: number;
  node: string;
  /** full = the whole table replaced; delta = only set elements changed. */
  kind: "full" | "delta";
  /** The applier's own figure: read back, write, read back again. */
  ms: number;
}

const POLICY_LINE = /^(\S+) agent\[([^\]]+)\] policy: (table replaced|set elements updated) in (\d+) ms/;

/** The applier's lines of an agent log (`<ISO time> agent[<node>] policy: table replaced in 12 ms`). */
export function parsePolicyLines(text: string): PolicyLogLine[] {
  const out: PolicyLogLine[] = [];
  for (const line of text.split("\n")) {
    const m = POLICY_LINE.exec(line);
    if (!m) continue;
    const atMs = Date.parse(m[1]!);
    if (Number.isNaN(atMs)) continue;
    out.push({ atMs, node: m[2]!, kind: m[3] === "table replaced" ? "full" : "delta", ms: Number(m[4]) });
  }
  return out;
}

/** Lines of an agent log that report a failed policy sync (the benchmark shows them when it times out). */
export const policyFailures = (text: string): string[] => text.split("\n").filter((l) => /policy sync failed|ignoring invalid object/.test(l));

/** When the plugin logged its ADD of `containerId`/`ifname` (cni.log: `<ISO time> trellis[<pid>] ADD <cid>/<if>: ...`), ms. */
export function cniAddTime(text: string, containerId: string, ifname = "eth0"): number | undefined {
  const needle = ` ADD ${containerId}/${ifname}:`;
  for (const line of text.split("\n")) {
    const at = line.indexOf(needle);
    if (at < 0 || !/^\S+ trellis\[(agent )?\d+\]$/.test(line.slice(0, at))) continue;
    const ms = Date.parse(line.slice(0, line.indexOf(" ")));
    if (!Number.isNaN(ms)) return ms;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// nft set elements, compared by what they contain (nft prints a range that is a prefix as a
// prefix, a one-address range as the address, and so on).

/**
 * One set element, canonical: its " . "-separated parts, addresses and numbers as "lo-hi"
 * (decimal), protocol and other names as written. The same for the compiler's element text
 * ("10.0.0.1-10.0.0.7 . tcp . 80-89") and for `nft -j` elements.
 */
export type Element = string;

function canonicalPart(p: string): string {
  const t = p.trim();
  const addr = (a: string): { family: number; value: bigint } => {
    const ip = parseIp(a);
    if (!ip) throw new Error(`set element part "${t}": not an address`);
    return ip;
  };
  if (t.includes("/")) {
    const c = parseCidr(t);
    if (!c) throw new Error(`set element part "${t}": not a prefix`);
    return `${c.family}:${c.network}-${c.network + cidrSize(c) - 1n}`;
  }
  if (/^\d+(-\d+)?$/.test(t)) {
    const [lo, hi = lo] = t.split("-");
    return `#${lo}-${hi}`;
  }
  if (t.includes(".") || t.includes(":")) {
    const dash = t.indexOf("-");
    const lo = addr(dash < 0 ? t : t.slice(0, dash));
    const hi = dash < 0 ? lo : addr(t.slice(dash + 1));
    return `${lo.family}:${lo.value}-${hi.value}`;
  }
  return t.replace(/^"|"$/g, "").toLowerCase();
}

/** A compiler element ("a-b . tcp . p-q", "10.0.0.0/24", "10.0.0.1 . 8080") in canonical form. */
export const canonicalElement = (text: string): Element => text.split(" . ").map(canonicalPart).join(" . ");

function jsonPart(p: unknown): string {
  if (typeof p === "string") return canonicalPart(p);
  if (typeof p === "number") return `#${p}-${p}`;
  if (p && typeof p === "object") {
    const o = p as { prefix?: { addr: string; len: number }; range?: [unknown, unknown] };
    if (o.prefix) return canonicalPart(`${o.prefix.addr}/${o.prefix.len}`);
    if (o.range) return typeof o.range[0] === "number" ? `#${o.range[0]}-${o.range[1] as number}` : canonicalPart(`${String(o.range[0])}-${String(o.range[1])}`);
  }
  throw new Error(`set element part ${JSON.stringify(p)}: unknown form`);
}

/** One element of a set in `nft -j` output, canonical. */
export function jsonElement(e: unknown): Element {
  let v = e;
  if (v && typeof v === "object" && "elem" in (v as object)) v = (v as { elem: { val: unknown } }).elem.val;
  if (v && typeof v === "object" && "concat" in (v as object)) return (v as { concat: unknown[] }).concat.map(jsonPart).join(" . ");
  return jsonPart(v);
}

/** What `nft -j list table` shows of a table: every set's elements (canonical, sorted) and every chain's rule count. */
export interface TableView {
  sets: Map<string, Element[]>;
  rules: Map<string, number>;
}

export function tableFromNftJson(text: string): TableView {
  const out: TableView = { sets: new Map(), rules: new Map() };
  const items = (JSON.parse(text) as { nftables: Array<Record<string, unknown>> }).nftables;
  for (const it of items) {
    if (it.set) {
      const s = it.set as { name: string; elem?: unknown[] };
      out.sets.set(s.name, (s.elem ?? []).map(jsonElement).sort());
    } else if (it.chain) {
      const ch = it.chain as { name: string };
      if (!out.rules.has(ch.name)) out.rules.set(ch.name, 0);
    } else if (it.rule) {
      const r = it.rule as { chain: string };
      out.rules.set(r.chain, (out.rules.get(r.chain) ?? 0) + 1);
    }
  }
  return out;
}

interface Rect {
  key: string;
  a: [bigint, bigint];
  b: [bigint, bigint];
}

/** An element as a rectangle: (address range) x (port range), keyed by family and protocol; a one-part element has the port range [0, 0]. */
function rect(e: Element): Rect {
  const parts = e.split(" . ");
  const range = (p: string): [bigint, bigint] => {
    const [lo, hi] = p.replace(/^(\d+:|#)/, "").split("-");
    return [BigInt(lo!), BigInt(hi!)];
  };
  const family = parts[0]!.split(":")[0]!;
  if (parts.length === 1) return { key: family, a: range(parts[0]!), b: [0n, 0n] };
  if (parts.length === 3) return { key: `${family} ${parts[1]}`, a: range(parts[0]!), b: range(parts[2]!) };
  if (parts.length === 2) return { key: family, a: range(parts[0]!), b: range(parts[1]!) };
  throw new Error(`element "${e}": not an address, address . port or address . protocol . port`);
}

/**
 * The elements of `inner` that the union of `outer` does not cover entirely. `outer` must be
 * disjoint, as nft keeps interval sets (then the covered area of a rectangle is the sum of its
 * intersections).
 */
export function uncovered(outer: readonly Element[], inner: readonly Element[]): Element[] {
  const byKey = new Map<string, Rect[]>();
  for (const r of outer.map(rect)) (byKey.get(r.key) ?? byKey.set(r.key, []).get(r.key)!).push(r);
  const len = (x: [bigint, bigint]): bigint => x[1] - x[0] + 1n;
  const meet = (x: [bigint, bigint], y: [bigint, bigint]): bigint => {
    const lo = x[0] > y[0] ? x[0] : y[0];
    const hi = x[1] < y[1] ? x[1] : y[1];
    return hi >= lo ? hi - lo + 1n : 0n;
  };
  return inner.filter((e) => {
    const r = rect(e);
    let area = 0n;
    for (const o of byKey.get(r.key) ?? []) area += meet(r.a, o.a) * meet(r.b, o.b);
    return area !== len(r.a) * len(r.b);
  });
}

/** A point of an element (its lowest address, protocol and port) as nft element text, for `nft get element`. */
export function elementPoint(e: Element): string {
  return e.split(" . ").map((p) => {
    const m = /^(4|6):(\d+)-/.exec(p);
    if (m) return formatIp({ family: Number(m[1]) as 4 | 6, value: BigInt(m[2]!) });
    if (p.startsWith("#")) return p.slice(1).split("-")[0]!;
    return p;
  }).join(" . ");
}
