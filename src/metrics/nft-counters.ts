// Per policy rule packet/byte counters from a listing of the policy table (`nft list table inet
// trellis`). The compiler puts a `counter` on every rule that stands for a policy rule, and the
// rule's comment says which one (see src/policy/compile.ts):
//
//   ordered tier (TrellisPolicy, GlobalTrellisPolicy):  comment "<Kind>/<ns>/<name> ingress[2]"
//   Kubernetes tier (chain in_<id>_k8s / out_<id>_k8s): "allowed on any port", "allowed ports",
//     then the chain's last rule "isolated by <Kind>/<ns>/<name>, ..." (the policies selecting the pod)
//
// A policy rule is many nft rules (one per pod it selects, per port group, per family): they are
// summed into one sample per (policy, rule, action). Pure.
import type { RuleCounterSample } from "./sink.js";

const COUNTER = /\bcounter packets (\d+) bytes (\d+)/;
const COMMENT = /\bcomment "((?:[^"\\]|\\.)*)"\s*$/;
const ORDERED = /^(\S+) (ingress|egress)\[(\d+)\]$/;

/** The policy action an nft rule's verdict stands for. */
export function actionOf(ruleText: string): string {
  if (/\blog prefix\b/.test(ruleText)) return "log";
  if (/\bdrop\b/.test(ruleText)) return "deny";
  if (/\bgoto\b/.test(ruleText)) return "pass";
  if (/\b(return|accept)\b/.test(ruleText)) return "allow";
  return "other";
}

export function parseRuleCounters(listing: string): RuleCounterSample[] {
  const sums = new Map<string, RuleCounterSample>();
  const add = (s: RuleCounterSample): void => {
    const k = JSON.stringify([s.policy, s.rule, s.action]);
    const cur = sums.get(k);
    if (cur) {
      cur.packets += s.packets;
      cur.bytes += s.bytes;
    } else sums.set(k, { ...s });
  };
  let chain = "";
  // Kubernetes-tier allow counters wait for their chain's "isolated by" rule, which names the policies.
  let pendingAllows: Array<{ rule: string; packets: number; bytes: number }> = [];
  for (const raw of listing.split("\n")) {
    const line = raw.trim();
    const c = /^chain (\S+) \{$/.exec(line);
    if (c) {
      chain = c[1]!;
      pendingAllows = [];
      continue;
    }
    const counter = COUNTER.exec(line);
    const comment = COMMENT.exec(line)?.[1]?.replace(/\\(.)/g, "$1");
    if (!counter || comment === undefined) continue;
    const packets = Number(counter[1]);
    const bytes = Number(counter[2]);
    const ordered = ORDERED.exec(comment);
    if (ordered) {
      add({ policy: ordered[1]!, rule: `${ordered[2]}[${ordered[3]}]`, action: actionOf(line), packets, bytes });
      continue;
    }
    const dir = chain.startsWith("in_") ? "ingress" : chain.startsWith("out_") ? "egress" : undefined;
    if (!dir || !chain.endsWith("_k8s")) continue;
    if (comment === "allowed on any port" || comment === "allowed ports") {
      pendingAllows.push({ rule: `${dir} allowed`, packets, bytes });
    } else if (comment.startsWith("isolated by ")) {
      const policy = comment.slice("isolated by ".length);
      add({ policy, rule: `${dir} isolated`, action: "deny", packets, bytes });
      for (const a of pendingAllows) add({ policy, rule: a.rule, action: "allow", packets: a.packets, bytes: a.bytes });
      pendingAllows = [];
    }
  }
  return [...sums.values()].sort((a, b) => a.policy.localeCompare(b.policy) || a.rule.localeCompare(b.rule) || a.action.localeCompare(b.action));
}

/** Rules and set elements in a compiled ruleset (the ruleset-size gauges). */
export function rulesetSize(r: { sets: Array<{ elements: unknown[] }>; chains: Array<{ rules: unknown[] }> }): { rules: number; elements: number } {
  return { rules: r.chains.reduce((n, c) => n + c.rules.length, 0), elements: r.sets.reduce((n, s) => n + s.elements.length, 0) };
}
