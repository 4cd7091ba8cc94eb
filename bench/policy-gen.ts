// Pure parts of the policy benchmark (bench/policy.ts): the objects it applies, and parsers for the
// agent's and the plugin's log lines. Plain data in, plain data out (policy-gen.test.ts).

export type Doc = Record<string, unknown>;

/** The Kubernetes namespace the benchmark's pods and policies live in. */
export const BENCH_NS = "bench";

const np = (name: string, spec: Doc): Doc => ({
  apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name, namespace: BENCH_NS }, spec,
});

/**
 * Part 1: `n` NetworkPolicies with varied pod selectors, peers (pod labels, namespace labels, both,
 * ipBlocks) and ports (numbers, ranges, UDP, a named port), every one selecting the benchmark's
 * pods on every node. The last one's peer (`marker: <marker>`) is used by no other policy, so the
 * set it creates on a node shows that the node has programmed the whole batch: the apply writes
 * the objects in order and the agent sees them in order.
 */
export function manyPolicies(n: number, prefix: string, marker: string): Doc[] {
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
    // A named port resolves only on pods that declare it: a numeric port beside it keeps a rule
    // of every policy on every selected pod (the benchmark checks that each node names them all).
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
    podSelector: {}, ingress: [{ from: [{ podSelector: { matchLabels: { marker } } }], ports: [{ protocol: "TCP", port: 9999 }] }],
  }));
  return docs;
}

/** The last policy of `wallPolicies`: the one rule that admits the client (label role=allowed). */
export const WALL_ALLOW = "zz-allow";

/**
 * Parts 2 and 3: `policies` NetworkPolicies on the server pod (app=srv) with `rules` ingress rules
 * each — one peer (`peer: p<k>`) and one port that nothing listens on — then `zz-allow`, which
 * admits every port from pods labelled role=allowed. The policies sort before `zz-allow`, so a
 * new connection to the server passes every other rule before the one that admits it. The client
 * carries `peer: p7`, so one rule in a hundred matches its address and fails only on the port.
 */
export function wallPolicies(policies: number, rules: number, prefix: string): Doc[] {
  const docs: Doc[] = [];
  for (let j = 0; j < policies; j++) {
    const ingress: Doc[] = [];
    for (let k = 0; k < rules; k++) {
      ingress.push({ from: [{ podSelector: { matchLabels: { peer: `p${k % 100}` } } }], ports: [{ protocol: "TCP", port: 10000 + ((j * rules + k) % 50000) }] });
    }
    docs.push(np(`${prefix}-${String(j).padStart(3, "0")}`, { podSelector: { matchLabels: { app: "srv" } }, ingress }));
  }
  docs.push(np(WALL_ALLOW, { podSelector: { matchLabels: { app: "srv" } }, ingress: [{ from: [{ podSelector: { matchLabels: { role: "allowed" } } }] }] }));
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
    if (at < 0 || !/^\S+ trellis\[\d+\]$/.test(line.slice(0, at))) continue;
    const ms = Date.parse(line.slice(0, line.indexOf(" ")));
    if (!Number.isNaN(ms)) return ms;
  }
  return undefined;
}

/** Distinct policy ids named in rule comments of an `nft list` output, e.g. "NetworkPolicy/bench/p1-0001". */
export function policiesInListing(listing: string, prefix: string): Set<string> {
  const out = new Set<string>();
  const re = /comment "(NetworkPolicy\/[^ "]+)/g;
  for (const m of listing.matchAll(re)) if (m[1]!.startsWith(prefix)) out.add(m[1]!);
  return out;
}

/** Rules in one chain of an `nft list` output (lines between `chain NAME {` and its `}`), not counting the hook line. */
export function chainRuleCount(listing: string, chain: string): number {
  const lines = listing.split("\n");
  const start = lines.findIndex((l) => l.trim() === `chain ${chain} {`);
  if (start < 0) return 0;
  let n = 0;
  for (let i = start + 1; i < lines.length; i++) {
    const t = lines[i]!.trim();
    if (t === "}") break;
    if (t !== "" && !t.startsWith("type ")) n++;
  }
  return n;
}
