// "Why can A not reach B?" as one verdict over facts already gathered (facts.ts): the hops of
// path.ts (agents, leases, routes both ways with FDB and neighbour entries, forwarding, policy),
// extended with what `trellis diagnose` reads beyond `lab check`: the pods' own interfaces and
// routing decisions (inside their namespaces), each node's `ip route get`, the MTU along the path
// and an optional test packet. Pure: no kernel, no clock (the time is in the facts).
//
// Each hop is ok, broken, warn or unknown. The first broken hop, in path order, is the answer's
// first line ("BROKEN: ..."); with none broken and every hop established the first line is
// "REACHABLE: ..."; with none broken but some hop not established it is "UNKNOWN: ..." and names
// what could not be checked — a hop whose facts are missing is never counted as fine.
import { VTEP_NAME } from "../dataplane/state.js";
import { VXLAN_OVERHEAD } from "../model/network.js";
import type { LinkView, RouteDecision } from "../kernel/inspect.js";
import { diagnosePath, type Hop, type PathFacts } from "./path.js";
import { crossCheckHop, reportedAgentHop, reportedRouteHop, type HopStatus, type ReportedNode } from "./reported.js";

export type { HopStatus, ReportedNode };

export interface DiagnoseHop {
  hop: string;
  status: HopStatus;
  detail: string;
  /** Where the evidence came from: "kernel", "reported by node2's agent 4 s ago", "datastore", ... */
  evidence?: string;
  /**
   * Set on an unknown hop that only the named other node could check (its pod's namespace, its
   * forwarding, its underlay MTU): out of reach from here by design, listed, not counted as fine,
   * but not what makes the answer UNKNOWN.
   */
  notHere?: string;
}

/** What was read inside a pod's network namespace; undefined fields were not read. */
export interface PodNetFacts {
  /** The pod's interface (by the endpoint's ifname, eth0 in labs); undefined with `error`. */
  iface?: LinkView;
  ifname: string;
  /** `ip route get <peer>` inside the pod. */
  routeGet?: RouteDecision;
  /** Why the namespace could not be read (e.g. not this node, no netns path known). */
  error?: string;
  /** Where the pod is attached, by its endpoint record (for a pod on a node not read here). */
  attached?: { node: string; hostIf: string; ips: string[] };
}

/** What was read in a node's own namespace beyond path.ts's NodeFacts. */
export interface NodeNetFacts {
  /** The underlay link as read (its real MTU). */
  underlay?: LinkView;
  /** The VXLAN device, when there is one. */
  vtep?: LinkView;
  /** `ip route get <destination pod>` on the node. */
  routeGet?: RouteDecision;
  error?: string;
}

export interface ProbeFacts {
  /** "ICMP" or "80/TCP". */
  probe: string;
  reached: boolean;
  error?: string;
  /**
   * Interface packet counters along the path, in the order the test packet (then its reply)
   * passes them, as the increase seen over the probe; undefined = not read. Shared links may
   * also count other traffic, so an increase is a hint, no increase is evidence.
   */
  seen?: Array<{ point: string; delta?: number }>;
  /** A full-size echo (pod MTU, Don't Fragment) sent after the test packet; undefined = not sent. */
  fullSize?: { bytes: number; answered: boolean; error?: string };
}

/** "last seen at X; never at Y": where along the path the test packet's counters stop rising. */
export function lastSeen(seen: ReadonlyArray<{ point: string; delta?: number }>): string | undefined {
  const firstMissing = seen.findIndex((p) => p.delta === 0);
  if (firstMissing < 0) return undefined;
  const before = seen.slice(0, firstMissing).filter((p) => p.delta !== undefined && p.delta > 0).pop();
  return before ? `last seen at ${before.point} (+${before.delta}); not seen at ${seen[firstMissing]!.point}` : `not seen at ${seen[firstMissing]!.point}`;
}

export interface DiagnoseFacts {
  path: PathFacts;
  /** The destination as the user named it ("prod/api" or an address) and its address. */
  target: { label: string; ip: string };
  /** "ICMP" or "80/TCP": what the policy verdict (and the probe) is about. */
  packet: string;
  fromNet?: PodNetFacts;
  toNet?: PodNetFacts;
  nodeNet: ReadonlyMap<string, NodeNetFacts>;
  probe?: ProbeFacts;
  /** Hops the gatherer could not reach at all, said as such ("node3's kernel (not a node of lab L)"). */
  notChecked: string[];
  /**
   * Each node's agent's published status (reported.ts). A node whose kernel is not read here is
   * judged from it; a node both read and reported (a lab) is judged from its kernel, and the
   * report is cross-checked against it.
   */
  reported?: ReadonlyMap<string, ReportedNode>;
  /** Where the agent hops' evidence came from when not from a report ("lab process and its status"). */
  agentsFrom?: string;
}

export interface DiagnoseVerdict {
  verdict: "REACHABLE" | "BROKEN" | "UNKNOWN";
  /** The first line: "BROKEN: <first broken hop> — <hint>" or "REACHABLE: ..." or "UNKNOWN: ...". */
  summary: string;
  /** The hop named in the summary when broken. */
  broken?: string;
  hops: DiagnoseHop[];
  warnings: string[];
  notChecked: string[];
  /** Hops only another node could check ("forwarding node2 (on node2)"): listed, never counted as fine. */
  outOfReach: string[];
}

const statusOf = (h: Hop): HopStatus => (h.ok === true ? "ok" : h.ok === false ? "broken" : "unknown");

/** The pod's own hop: its interface up with its address, and its routing decision towards the peer. */
function podHop(label: string, ip: string, net: PodNetFacts | undefined, remote: ReadonlyMap<string, ReportedNode> | undefined): DiagnoseHop {
  const hop = `pod ${label}`;
  if (net?.attached && remote?.has(net.attached.node)) {
    const a = net.attached;
    return {
      hop, status: "unknown", notHere: a.node, evidence: "datastore (endpoint record)",
      detail: `${label} is attached on ${a.node} (host side ${a.hostIf}, ${a.ips.join(", ")}); its namespace: not checked (on ${a.node})`,
    };
  }
  if (!net || net.error || !net.iface) return { hop, status: "unknown", detail: `${label}'s network namespace: not checked${net?.error ? ` (${net.error})` : ""}` };
  const i = net.iface;
  if (!i.up) return { hop, status: "broken", detail: `${label}'s interface ${i.name} is down` };
  if (!i.addresses.some((a) => a.split("/")[0] === ip)) {
    return { hop, status: "broken", detail: `${label}'s interface ${i.name} does not hold its address ${ip} (has ${i.addresses.join(", ") || "none"})` };
  }
  const r = net.routeGet;
  if (!r) return { hop, status: "ok", detail: `${label}: ${i.name} up, ${i.addresses.join(", ")}, MTU ${i.mtu}` };
  if ("error" in r) return { hop, status: "broken", detail: `${label} has no route to ${r.dst}: ${r.error}` };
  if (r.dev !== i.name) return { hop, status: "broken", detail: `${label} routes ${r.dst} via dev ${r.dev}, not its interface ${i.name}` };
  return { hop, status: "ok", detail: `${label}: ${i.name} up, ${i.addresses.join(", ")}, MTU ${i.mtu}; route get ${r.dst}: ${r.via ? `via ${r.via} ` : ""}dev ${r.dev}` };
}

/**
 * The node's own routing decision for the pod on the other side: evidence, broken when the kernel
 * has none, a warning when it leaves neither through the VTEP nor directly to the peer node
 * (e.g. by the default route, when the route to the peer's block is gone). Under BGP a router in
 * between is normal, so only the absence of a route counts there.
 */
function nodeRouteHop(node: string, net: NodeNetFacts | undefined, dstIp: string, peer: { name: string; ip?: string } | undefined, bgp: boolean): DiagnoseHop | undefined {
  const r = net?.routeGet;
  if (!r) return undefined;
  const hop = `route get ${node}`;
  if ("error" in r) return { hop, status: "broken", detail: `${node} has no route to ${dstIp}: ${r.error}` };
  const said = `${node}: ip route get ${dstIp}: ${r.via ? `via ${r.via} ` : ""}dev ${r.dev}${r.src ? ` src ${r.src}` : ""}`;
  if (peer && !bgp && r.dev !== VTEP_NAME && (!peer.ip || r.via !== peer.ip)) {
    return { hop, status: "warn", detail: `${said}: neither through ${VTEP_NAME} nor directly to ${peer.name}${peer.ip ? ` (${peer.ip})` : ""} — its default route?` };
  }
  return { hop, status: "ok", detail: said };
}

/**
 * MTU along the path. A pod sends up to its interface's MTU; each node must carry that plus the
 * encapsulation overhead (VXLAN: 50 bytes) over its underlay link. An underlay smaller than that
 * drops full-size packets while the pods, whose MTU says otherwise, never learn it: a black hole.
 */
export function mtuHop(facts: DiagnoseFacts): DiagnoseHop {
  const hop = "mtu";
  const podMtu = facts.fromNet?.iface?.mtu ?? facts.toNet?.iface?.mtu;
  const nodes = [facts.path.from.node, ...("node" in facts.path.to && facts.path.to.node !== facts.path.from.node ? [facts.path.to.node] : [])];
  const src = facts.path.nodes.get(facts.path.from.node);
  const dstSubnet = "node" in facts.path.to ? facts.path.nodes.get(facts.path.to.node)?.lease?.subnet : undefined;
  const viaVtep = !!dstSubnet && (src?.dataplane?.routes.some((r) => r.dst === dstSubnet && r.dev === VTEP_NAME) ?? false);
  const vxlan = viaVtep || (nodes.length > 1 && facts.path.config?.backend.type === "vxlan");
  const overhead = vxlan ? VXLAN_OVERHEAD : 0;
  if (podMtu === undefined) return { hop, status: "unknown", detail: "MTU: not checked (no pod interface read)" };
  const parts: string[] = [`pod MTU ${podMtu}`];
  const problems: string[] = [];
  const unknown: string[] = [];
  for (const n of nodes) {
    const net = facts.nodeNet.get(n);
    if (!net?.underlay) {
      unknown.push(`${n}'s underlay`);
      continue;
    }
    parts.push(`${n} ${net.underlay.name} ${net.underlay.mtu}${vxlan && net.vtep ? `, ${net.vtep.name} ${net.vtep.mtu}` : ""}`);
    if (net.underlay.mtu < podMtu + overhead) {
      problems.push(`MTU black hole: ${n}'s underlay ${net.underlay.name} has MTU ${net.underlay.mtu}, below pod MTU ${podMtu}${overhead ? ` + ${overhead} VXLAN overhead = ${podMtu + overhead}` : ""}: ` +
        `full-size packets between the pods are dropped and the pods are not told (their MTU says ${podMtu})`);
    } else if (vxlan && net.vtep && net.vtep.mtu + overhead > net.underlay.mtu) {
      problems.push(`MTU black hole: ${n}'s ${net.vtep.name} has MTU ${net.vtep.mtu}, above its underlay ${net.underlay.name} ${net.underlay.mtu} - ${overhead}`);
    }
  }
  if (problems.length) return { hop, status: "broken", detail: problems[0]! };
  const warn: string[] = [];
  for (const n of nodes) {
    const v = facts.nodeNet.get(n)?.vtep;
    if (vxlan && v && v.mtu < podMtu) warn.push(`${n}'s ${v.name} MTU ${v.mtu} is below pod MTU ${podMtu}: larger packets need path-MTU discovery`);
  }
  if (warn.length) return { hop, status: "warn", detail: `${warn.join("; ")} (${parts.join("; ")})` };
  const remote = nodes.filter((n) => !facts.nodeNet.has(n) && facts.reported?.has(n));
  if (unknown.length && remote.length === unknown.length) {
    return { hop, status: "unknown", notHere: remote.join(", "), detail: `MTU: ${parts.join("; ")}; not checked: ${unknown.join(", ")} (on ${remote.join(", ")}: its agent does not report it)` };
  }
  if (unknown.length) return { hop, status: "unknown", detail: `MTU: ${parts.join("; ")}; not read: ${unknown.join(", ")}` };
  return { hop, status: "ok", detail: `${parts.join("; ")}${overhead ? ` (VXLAN overhead ${overhead})` : ""}: full-size pod packets fit` };
}

/** What an operator should look at next, for the hop found broken. */
function hint(hop: DiagnoseHop, facts: DiagnoseFacts): string {
  const d = hop.detail;
  const node = /^(?:reply: )?(?:route from )?(\S+?)(?:'s| has| routes| does| reports)/.exec(d)?.[1];
  if (hop.hop.startsWith("agent ")) return `restart it; its routes stay, but nothing repairs drift or follows peers while it is down`;
  if (hop.hop.startsWith("lease ")) return `its agent must renew it (is it running? see trellis nodes)`;
  if (/reports its .* not programmed|reports no peer/.test(d)) return `the agent on ${node ?? "that node"} should have programmed it: see its log and trellis nodes`;
  if (/no route to .*block|routes .* expected|no FDB entry|no neighbour entry|no VXLAN device|BGP table/.test(d)) {
    return `the agent on ${node ?? "that node"} should have programmed it; is it running? (trellis nodes)`;
  }
  if (hop.hop === "mtu" || hop.hop === "probe mtu") return "lower the pod MTU (network config) or raise the underlay MTU, then re-create the pods";
  if (hop.hop === "policy") return `see trellis policy explain --from ${facts.path.from.name} ${"node" in facts.path.to ? `--to ${facts.path.to.name}` : `--to-ip ${facts.target.ip}`}`;
  if (hop.hop.startsWith("forwarding ")) return "set net.ipv4.ip_forward=1 on it";
  if (hop.hop === "probe") return "every hop checked looks right: the nftables ruleset or the underlay in between drops it";
  return "";
}

/** Where a hop's evidence came from, for hops not judged from a report (those say it themselves). */
function evidenceOf(h: DiagnoseHop, facts: DiagnoseFacts): string {
  if (h.hop.startsWith("agent ")) return facts.agentsFrom ?? "datastore (its status and lease)";
  if (h.hop.startsWith("lease ")) return "datastore (lease)";
  if (h.hop === "policy") return "policy model (datastore)";
  if (h.hop.startsWith("probe")) return "test packet";
  if (h.hop === "mtu" && h.notHere) return "kernel (this node only)";
  if (h.status === "unknown") return "not read";
  if (h.hop.startsWith("pod ")) return h.detail.startsWith("CNI CHECK") ? "CNI CHECK" : "kernel (pod's namespace)";
  return "kernel";
}

/** Facts → the ordered hops, the first broken one, and the one-line answer. */
export function diagnose(facts: DiagnoseFacts): DiagnoseVerdict {
  const base = diagnosePath(facts.path);
  const from = facts.path.from;
  const toPod = "node" in facts.path.to ? facts.path.to : undefined;
  const hops: DiagnoseHop[] = [];
  for (const h of base.hops) {
    // The pod's CNI CHECK hop is unknown when not run; the pod's namespace read replaces it then.
    if (h.hop === `pod ${from.name}` && h.ok === undefined) {
      hops.push(podHop(from.name, from.ip, facts.fromNet, facts.reported));
      continue;
    }
    if (toPod && h.hop === `pod ${toPod.name}` && h.ok === undefined) {
      hops.push(podHop(toPod.name, toPod.ip, facts.toNet, facts.reported));
      continue;
    }
    // A node not read here: its agent's own report stands in for its kernel (reported.ts).
    const remote = (n: string): ReportedNode | undefined => (facts.nodeNet.has(n) ? undefined : facts.reported?.get(n));
    const agentOf = /^agent (.+)$/.exec(h.hop)?.[1];
    if (agentOf && remote(agentOf)) {
      hops.push(reportedAgentHop(agentOf, remote(agentOf)!, facts.path.now));
      continue;
    }
    const route = /^route (\S+) -> (\S+)$/.exec(h.hop);
    if (route && h.ok === undefined && remote(route[1]!)) {
      const r = reportedRouteHop(route[1]!, route[2]!, facts.path.nodes.get(route[2]!)?.lease, remote(route[1]!)!, facts.path.now);
      hops.push(h.detail.startsWith("reply: ") ? { ...r, detail: `reply: ${r.detail}` } : r);
      continue;
    }
    const rep = route && h.ok !== undefined ? facts.reported?.get(route[1]!) : undefined;
    if (rep) {
      // Read from the kernel and reported too (a lab): the report cross-checked against the kernel.
      hops.push({ hop: h.hop, status: statusOf(h), detail: h.detail });
      const x = crossCheckHop(route![1]!, route![2]!, h.ok === true, rep, facts.path.now);
      if (x) hops.push(x);
      continue;
    }
    const fwd = /^forwarding (.+)$/.exec(h.hop)?.[1];
    if (fwd && h.ok === undefined && remote(fwd)) {
      hops.push({ hop: h.hop, status: "unknown", notHere: fwd, evidence: "none", detail: `forwarding on ${fwd}: not checked (on ${fwd}: its agent does not report it)` });
      continue;
    }
    if (h.hop === "policy") {
      hops.push(mtuHop(facts));
      const cross = !!toPod && toPod.node !== from.node;
      const bgp = facts.path.config?.backend.type === "bgp";
      for (const n of [from.node, ...(cross ? [toPod!.node] : [])]) {
        const other = n === from.node ? toPod?.node : from.node;
        const peer = cross && other ? { name: other, ...(facts.path.nodes.get(other)?.lease ? { ip: facts.path.nodes.get(other)!.lease!.publicIp } : {}) } : undefined;
        const r = nodeRouteHop(n, facts.nodeNet.get(n), n === from.node ? facts.target.ip : from.ip, peer, bgp);
        if (r) hops.push(r);
      }
      hops.push({ hop: "policy", status: statusOf(h), detail: h.ok === false ? `policy drop (${facts.packet}): ${h.detail}` : `${facts.packet}: ${h.detail}` });
      continue;
    }
    hops.push({ hop: h.hop, status: statusOf(h), detail: h.detail });
  }
  if (!hops.some((h) => h.hop === "mtu")) hops.push(mtuHop(facts));
  if (!facts.path.policy) hops.push({ hop: "policy", status: "unknown", detail: "policy verdict: not established (no policy model)" });
  if (facts.probe) {
    const p = facts.probe;
    hops.push(p.reached
      ? { hop: "probe", status: "ok", detail: `test packet ${p.probe} from ${from.name} to ${facts.target.label} (${facts.target.ip}) was answered` }
      : { hop: "probe", status: p.error ? "unknown" : "broken", detail: p.error ? `test packet ${p.probe}: the prober failed: ${p.error}` :
        `test packet ${p.probe} from ${from.name} to ${facts.target.label} (${facts.target.ip}) got no answer${p.seen && lastSeen(p.seen) ? ` (${lastSeen(p.seen)})` : ""}` });
  }
  // A full-size echo proves the MTU only where a small packet got through.
  const full = facts.probe?.reached ? facts.probe.fullSize : undefined;
  if (full && !full.error) {
    hops.push(full.answered
      ? { hop: "probe mtu", status: "ok", detail: `a full-size packet (${full.bytes} bytes, Don't Fragment) from ${from.name} was answered` }
      : { hop: "probe mtu", status: "broken", detail: `MTU black hole: a full-size packet (${full.bytes} bytes, Don't Fragment) from ${from.name} to ${facts.target.ip} got no answer while a small one did` });
  } else if (full?.error) {
    hops.push({ hop: "probe mtu", status: "unknown", detail: `full-size packet: ${full.error}` });
  }
  for (const h of hops) h.evidence ??= evidenceOf(h, facts);
  const warnings = hops.filter((h) => h.status === "warn").map((h) => h.detail);
  const notChecked = [...facts.notChecked, ...hops.filter((h) => h.status === "unknown" && !h.notHere).map((h) => h.hop)];
  const outOfReach = hops.filter((h) => h.status === "unknown" && h.notHere).map((h) => `${h.hop} (on ${h.notHere})`);
  const broken = hops.find((h) => h.status === "broken");
  if (broken) {
    const hnt = hint(broken, facts);
    return { verdict: "BROKEN", summary: `BROKEN: ${broken.detail}${hnt ? ` — ${hnt}` : ""}`, broken: broken.hop, hops, warnings, notChecked, outOfReach };
  }
  const what = `${from.name} (${from.ip}) -> ${facts.target.label} (${facts.target.ip}) ${facts.packet}`;
  if (notChecked.length) {
    return { verdict: "UNKNOWN", summary: `UNKNOWN: ${what}: no broken hop found, but not checked: ${notChecked.join(", ")}`, hops, warnings, notChecked, outOfReach };
  }
  const probed = facts.probe ? "; a test packet was answered" : "";
  const elsewhere = outOfReach.length ? `; only checkable on the other node, not checked: ${outOfReach.join(", ")}` : "";
  return {
    verdict: "REACHABLE",
    summary: `REACHABLE: ${what}: every hop checked is in place${probed}${warnings.length ? ` (${warnings.length} warning(s))` : ""}${elsewhere}`,
    hops, warnings, notChecked, outOfReach,
  };
}

/** The verdict as text: the summary line, then one line per hop. */
export function renderDiagnosis(v: DiagnoseVerdict): string {
  const mark: Record<HopStatus, string> = { ok: "ok", broken: "BROKEN", warn: "warn", unknown: "??" };
  const lines = [v.summary, ...v.hops.map((h) => `  ${mark[h.status].padEnd(6)} ${h.hop.padEnd(24)} ${h.detail}${h.evidence ? `  [${h.evidence}]` : ""}`)];
  if (v.notChecked.length) lines.push(`  not checked: ${v.notChecked.join("; ")}`);
  return lines.join("\n") + "\n";
}
