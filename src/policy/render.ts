// The policy IR as an `nft -f` script: the whole table, replaced in one atomic transaction, or
// just set-element changes when only memberships moved. Pure.
import { POLICY_TABLE, type Match, type NftSet, type Rule, type Ruleset, type Verdict } from "./compile.js";

export const HOST_IF_GLOB = "trl*";

const q = (s: string): string => `"${s.replace(/["\\]/g, "")}"`;
const comment = (c: string | undefined): string => (c ? ` comment ${q(c.slice(0, 120))}` : "");

const setType = (s: NftSet): string => {
  const addr = s.family === 4 ? "ipv4_addr" : "ipv6_addr";
  if (s.kind === "addr-port") return `type ${addr} . inet_service;`;
  if (s.kind === "addr-proto-port") return `type ${addr} . inet_proto . inet_service; flags interval;`;
  return s.kind === "interval" ? `type ${addr}; flags interval;` : `type ${addr};`;
};

function renderSet(s: NftSet): string {
  const elements = s.elements.length > 0 ? ` elements = { ${s.elements.join(", ")} }` : "";
  return `  set ${s.name} { ${setType(s)}${elements} }`;
}

const l4 = (p: string): string => p.toLowerCase();

export function renderMatch(m: Match): string {
  const parts: string[] = [];
  const ipk = m.family === 6 ? "ip6" : "ip";
  if (m.iif) parts.push(`iifname ${q(m.iif)}`);
  if (m.oif) parts.push(`oifname ${q(m.oif)}`);
  const usesAddr = m.saddrSet || m.daddrSet || m.saddrNotSet || m.daddrNotSet || m.saddrNot || m.daddrPortSet || m.addrProtoPortSet;
  if (m.family && !usesAddr && !m.nd) parts.push(`meta nfproto ${m.family === 6 ? "ipv6" : "ipv4"}`);
  if (m.saddrNot) parts.push(`${ipk} saddr != { ${m.saddrNot.join(", ")} }`);
  if (m.saddrSet) parts.push(`${ipk} saddr @${m.saddrSet}`);
  if (m.saddrNotSet) parts.push(`${ipk} saddr != @${m.saddrNotSet}`);
  if (m.daddrSet) parts.push(`${ipk} daddr @${m.daddrSet}`);
  if (m.daddrNotSet) parts.push(`${ipk} daddr != @${m.daddrNotSet}`);
  if (m.addrProtoPortSet) parts.push(`${ipk} ${m.addrProtoPortSet.side} . meta l4proto . th dport @${m.addrProtoPortSet.set}`);
  if (m.nd) {
    parts.push("icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert }");
  } else if (m.daddrPortSet && m.protocol) {
    parts.push(`meta l4proto ${l4(m.protocol)} ${ipk} daddr . ${l4(m.protocol)} dport @${m.daddrPortSet}`);
  } else if (m.protocol && m.dports) {
    parts.push(`${l4(m.protocol)} dport { ${m.dports.join(", ")} }`);
  } else if (m.protocol) {
    parts.push(`meta l4proto ${l4(m.protocol)}`);
  }
  return parts.join(" ");
}

function renderVerdict(v: Verdict): string {
  if (typeof v === "string") return v;
  if ("jump" in v) return `jump ${v.jump}`;
  if ("goto" in v) return `goto ${v.goto}`;
  return `log prefix ${q(`trellis ${v.log}: `.slice(0, 127))}`;
}

export function renderRule(r: Rule): string {
  return `    ${[renderMatch(r.match), r.counter ? "counter" : "", renderVerdict(r.verdict)].filter(Boolean).join(" ")}${comment(r.comment)}`;
}

function mapElements(m: Record<string, string>): string {
  const e = Object.entries(m).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${q(k)} : jump ${v}`);
  return e.length > 0 ? ` elements = { ${e.join(", ")} }` : "";
}

/** The base chains every node has, whatever the policies: conntrack first, then fail closed. */
function baseChains(): string[] {
  const g = q(HOST_IF_GLOB);
  return [
    "  chain forward {",
    "    type filter hook forward priority filter; policy accept;",
    "    ct state established,related accept",
    "    ct state invalid drop",
    `    iifname ${g} iifname != @endpoints drop comment "fail closed: endpoint not programmed yet"`,
    `    oifname ${g} oifname != @endpoints drop comment "fail closed: endpoint not programmed yet"`,
    "    iifname vmap @egress",
    "    oifname vmap @ingress",
    "  }",
    "  chain input {",
    "    type filter hook input priority filter; policy accept;",
    "    ct state established,related accept",
    `    iifname ${g} iifname != @endpoints drop comment "fail closed: endpoint not programmed yet"`,
    "    iifname vmap @egress",
    "  }",
  ];
}

/**
 * A script that replaces the whole table atomically (nothing is ever half-applied). With a
 * `generation`, the table carries it in the one-element set `generation`, which lets the agent
 * check cheaply that the table is still the one it wrote before sending a delta.
 */
export function renderRuleset(r: Ruleset, generation?: number): string {
  const ifs = Object.keys(r.egressMap).sort();
  const lines = [
    `table inet ${POLICY_TABLE}`,
    `delete table inet ${POLICY_TABLE}`,
    `table inet ${POLICY_TABLE} {`,
    ...(generation !== undefined ? [`  set generation { type mark; elements = { ${generation >>> 0} } }`] : []),
    ...r.sets.map(renderSet),
    `  set endpoints { type ifname;${ifs.length ? ` elements = { ${ifs.map(q).join(", ")} }` : ""} }`,
    `  map egress { type ifname : verdict;${mapElements(r.egressMap)} }`,
    `  map ingress { type ifname : verdict;${mapElements(r.ingressMap)} }`,
  ];
  for (const c of r.chains) lines.push(`  chain ${c.name} {`, ...c.rules.map(renderRule), "  }");
  lines.push(...baseChains(), "}");
  return lines.join("\n") + "\n";
}

/**
 * When two rulesets differ only in set elements, the change as element additions and removals in
 * one transaction: a pod joining a selector touches one element, not the rules.
 */
export function renderSetDelta(before: Ruleset, after: Ruleset): string | undefined {
  const shape = (r: Ruleset): string => JSON.stringify({
    sets: r.sets.map((s) => [s.name, s.family, s.kind]), chains: r.chains, e: r.egressMap, i: r.ingressMap,
  });
  if (shape(before) !== shape(after)) return undefined;
  const lines: string[] = [];
  const old = new Map(before.sets.map((s) => [s.name, new Set(s.elements)]));
  for (const s of after.sets) {
    const was = old.get(s.name) ?? new Set<string>();
    const now = new Set(s.elements);
    const add = s.elements.filter((e) => !was.has(e));
    const del = [...was].filter((e) => !now.has(e));
    if (del.length) lines.push(`delete element inet ${POLICY_TABLE} ${s.name} { ${del.join(", ")} }`);
    if (add.length) lines.push(`add element inet ${POLICY_TABLE} ${s.name} { ${add.join(", ")} }`);
  }
  return lines.join("\n") + (lines.length ? "\n" : "");
}
