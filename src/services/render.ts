// The services ruleset as `nft -f` scripts, knftables style: every object is declared with `add`
// (a no-op when it exists) and flushed before it is filled, so one script replaces everything
// Trellis' services own in table `inet trellis-svc` atomically;
// renderDelta sends only what changed between two rulesets. Pure.
import { MASQ_MARK, SERVICES_TABLE, SET_HAIRPIN, SLOTS, type AffinitySet, type Chain, type EndpointElement, type EndpointMap, type Rule, type Ruleset, type VerdictMap } from "./compile.js";

const T = `inet ${SERVICES_TABLE}`;
const q = (s: string): string => `"${s.replace(/["\\]/g, "")}"`;
const hex = (n: number): string => `0x${n.toString(16).padStart(8, "0")}`;

export function renderRule(r: Rule): string {
  switch (r.t) {
    case "jump":
      return `jump ${r.chain}`;
    case "goto":
      return `goto ${r.chain}`;
    case "vmap-addr":
      return `${r.ctNew ? "ct state new " : ""}ip daddr . meta l4proto . th dport vmap @${r.map}`;
    case "vmap-node-port":
      return `${r.ctNew ? "ct state new " : ""}fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @${r.map}`;
    case "mark-masq":
      return `meta mark set meta mark | ${hex(MASQ_MARK)}`;
    case "masquerade-marked":
      return `meta mark & ${hex(MASQ_MARK)} == ${hex(MASQ_MARK)} meta mark set meta mark ^ ${hex(MASQ_MARK)} masquerade fully-random`;
    case "hairpin-masq":
      return `ct status dnat ip saddr . ip daddr @${SET_HAIRPIN} masquerade fully-random`;
    case "dnat-map": {
      const p = r.protocol.toLowerCase();
      return `meta l4proto ${p} dnat ip to ${r.key === "addr-port" ? "ip daddr . " : ""}${p} dport . numgen random mod ${SLOTS} map @${r.map}`;
    }
    case "affinity-check":
      return `ip saddr @${r.set} goto ${r.chain}`;
    case "affinity-update":
      return `update @${r.set} { ip saddr }`;
    case "numgen":
      return `numgen random mod ${r.chains.length} vmap { ${r.chains.map((c, i) => `${i} : goto ${c}`).join(", ")} }`;
    case "dnat":
      return `meta l4proto ${r.protocol.toLowerCase()} dnat ip to ${r.ip}:${r.port}`;
    case "reject-tcp":
      return "meta l4proto tcp reject with tcp reset";
    case "reject":
      return "reject";
  }
}

const chainDecl = (c: Chain): string => {
  const parts: string[] = [];
  if (c.hook) parts.push(`type ${c.hook.type} hook ${c.hook.hook} priority ${c.hook.priority}; policy accept;`);
  if (c.comment) parts.push(`comment ${q(c.comment)};`);
  return `add chain ${T} ${c.name}${parts.length ? ` { ${parts.join(" ")} }` : ""}`;
};
const mapType = (m: VerdictMap): string =>
  m.key === "addr-proto-port" ? "type ipv4_addr . inet_proto . inet_service : verdict;" : "type inet_proto . inet_service : verdict;";
const mapDecl = (m: VerdictMap): string => `add map ${T} ${m.name} { ${mapType(m)} }`;
const setDecl = (s: AffinitySet): string => `add set ${T} ${s.name} { type ipv4_addr; flags dynamic,timeout; timeout ${s.timeoutSeconds}s; }`;
const endpointMapDecl = (m: EndpointMap): string => {
  const p = m.protocol.toLowerCase();
  return `add map ${T} ${m.name} { typeof ${m.key === "addr-port" ? "ip daddr . " : ""}${p} dport . numgen random mod ${SLOTS} : ip daddr . ${p} dport; flags interval; }`;
};
const hairpinDecl = `add set ${T} ${SET_HAIRPIN} { type ipv4_addr . ipv4_addr; }`;
const range = (e: { lo: number; hi: number }): string => (e.lo === e.hi ? String(e.lo) : `${e.lo}-${e.hi}`);
const slotKey = (e: EndpointElement): string => `${e.prefix} . ${range(e)}`;
const slotElement = (e: EndpointElement): string => `${slotKey(e)} : ${e.ip} . ${e.port}`;
/** Elements per `add element` line: one huge line of a concatenated interval map overflows nft's netlink buffer (ENOBUFS). */
export const ELEMENTS_PER_LINE = 256;
const chunks = <X>(xs: readonly X[]): X[][] => Array.from({ length: Math.ceil(xs.length / ELEMENTS_PER_LINE) }, (_, i) => xs.slice(i * ELEMENTS_PER_LINE, (i + 1) * ELEMENTS_PER_LINE));
const endpointElements = (m: EndpointMap, es: readonly EndpointElement[]): string[] =>
  chunks(es).map((c) => `add element ${T} ${m.name} { ${c.map(slotElement).join(", ")} }`);
const hairpinElements = (ips: readonly string[]): string[] =>
  ips.length ? [`add element ${T} ${SET_HAIRPIN} { ${ips.map((ip) => `${ip} . ${ip}`).join(", ")} }`] : [];
const ruleLines = (c: Chain): string[] => c.rules.map((r) => `add rule ${T} ${c.name} ${renderRule(r)}`);
const sortedKeys = (o: Record<string, string>): string[] => Object.keys(o).sort();
const elements = (m: VerdictMap, keys: string[]): string[] =>
  keys.length ? [`add element ${T} ${m.name} { ${keys.map((k) => `${k} : ${m.elements[k]}`).join(", ")} }`] : [];

/**
 * Everything the services own, replaced in one transaction. With `previous` (what was applied
 * last), its chains and affinity sets that no longer exist are deleted too. Affinity sets are
 * declared but never flushed: their elements are the clients' live affinities.
 */
export function renderFull(r: Ruleset, previous?: Ruleset): string {
  const now = new Set(r.chains.map((c) => c.name));
  const staleChains = (previous?.chains ?? []).filter((c) => !now.has(c.name));
  const sets = new Set(r.sets.map((s) => s.name));
  const staleSets = (previous?.sets ?? []).filter((s) => !sets.has(s.name));
  const lines = [
    `add table ${T}`,
    ...r.chains.map(chainDecl),
    ...r.maps.map(mapDecl),
    ...r.endpointMaps.map(endpointMapDecl),
    ...r.sets.map(setDecl),
    hairpinDecl,
    ...r.maps.map((m) => `flush map ${T} ${m.name}`),
    ...r.endpointMaps.map((m) => `flush map ${T} ${m.name}`),
    `flush set ${T} ${SET_HAIRPIN}`,
    ...r.chains.map((c) => `flush chain ${T} ${c.name}`),
    ...staleChains.map((c) => `flush chain ${T} ${c.name}`),
    ...staleChains.map((c) => `delete chain ${T} ${c.name}`),
    ...staleSets.map((s) => `delete set ${T} ${s.name}`),
    ...r.chains.flatMap(ruleLines),
    ...r.maps.flatMap((m) => elements(m, sortedKeys(m.elements))),
    ...r.endpointMaps.flatMap((m) => endpointElements(m, m.elements)),
    ...hairpinElements(r.hairpin),
  ];
  return lines.join("\n") + "\n";
}

/**
 * The change from `before` (in the kernel) to `after`: new chains and sets added, chains whose
 * rules changed flushed and refilled, map elements added and deleted one by one, stale chains and
 * sets deleted; untouched chains are not mentioned. A Service added, removed or scaled is element
 * operations only (its frontends in the verdict maps, its endpoints' ranges, the hairpin set),
 * except with ClientIP affinity, whose per-endpoint chains and sets come and go (kube-proxy's
 * layout). Returns undefined when the fixed objects differ (another Trellis version wrote them):
 * then renderFull.
 */
export function renderDelta(before: Ruleset, after: Ruleset): string | undefined {
  // The endpoint maps are fixed objects (one per protocol and key): part of the base, never added or deleted here.
  const base = (r: Ruleset): string => JSON.stringify([
    r.chains.filter((c) => c.hook).map((c) => [c.name, c.hook]), r.maps.map((m) => [m.name, m.key]), r.endpointMaps.map((m) => [m.name, m.protocol, m.key]),
  ]);
  if (base(before) !== base(after)) return undefined;
  const old = new Map(before.chains.map((c) => [c.name, c]));
  const now = new Map(after.chains.map((c) => [c.name, c]));
  const added = after.chains.filter((c) => !old.has(c.name));
  const changed = after.chains.filter((c) => old.has(c.name) && JSON.stringify(old.get(c.name)) !== JSON.stringify(c));
  const removed = before.chains.filter((c) => !now.has(c.name));
  const oldSets = new Set(before.sets.map((s) => s.name));
  const newSets = new Set(after.sets.map((s) => s.name));
  const lines: string[] = [];
  lines.push(...after.sets.filter((s) => !oldSets.has(s.name)).map(setDecl));
  const oldEpMaps = new Map(before.endpointMaps.map((m) => [m.name, m]));
  lines.push(...added.map(chainDecl));
  const oldMaps = new Map(before.maps.map((m) => [m.name, m]));
  const adds: string[] = [];
  for (const m of after.maps) {
    const was = oldMaps.get(m.name)?.elements ?? {};
    const del = sortedKeys(was).filter((k) => m.elements[k] !== was[k]);
    const add = sortedKeys(m.elements).filter((k) => m.elements[k] !== was[k]);
    if (del.length) lines.push(`delete element ${T} ${m.name} { ${del.join(", ")} }`);
    adds.push(...elements(m, add));
  }
  // Endpoint maps: ranges that are gone or point elsewhere deleted, new ones added (deletes first: intervals may not overlap).
  for (const m of after.endpointMaps) {
    const was = oldEpMaps.get(m.name)?.elements ?? [];
    const now = new Set(m.elements.map(slotElement));
    const had = new Set(was.map(slotElement));
    const del = was.filter((e) => !now.has(slotElement(e)));
    for (const c of chunks(del)) lines.push(`delete element ${T} ${m.name} { ${c.map(slotKey).join(", ")} }`);
    adds.push(...endpointElements(m, m.elements.filter((e) => !had.has(slotElement(e)))));
  }
  const hpBefore = new Set(before.hairpin);
  const hpAfter = new Set(after.hairpin);
  const hpGone = before.hairpin.filter((ip) => !hpAfter.has(ip));
  if (hpGone.length) lines.push(`delete element ${T} ${SET_HAIRPIN} { ${hpGone.map((ip) => `${ip} . ${ip}`).join(", ")} }`);
  adds.push(...hairpinElements(after.hairpin.filter((ip) => !hpBefore.has(ip))));
  lines.push(...[...changed, ...removed].map((c) => `flush chain ${T} ${c.name}`));
  lines.push(...[...changed, ...added].flatMap(ruleLines));
  lines.push(...adds);
  lines.push(...removed.map((c) => `delete chain ${T} ${c.name}`));
  lines.push(...before.sets.filter((s) => !newSets.has(s.name)).map((s) => `delete set ${T} ${s.name}`));
  return lines.join("\n") + (lines.length ? "\n" : "");
}
