// The compiler agrees with the evaluator: random small clusters and policies, random packets
// traced through each node's compiled ruleset, compared with evaluate()'s verdicts per direction.
// Then the properties only the data plane has: anti-spoofing, fail closed, conntrack, set reuse.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { compilePolicy, type Ruleset } from "./compile.js";
import { evaluate, PolicyIndex, type Packet } from "./evaluate.js";
import { ModelBuilder, yaml } from "./model-builder.js";
import { ACTIONS, type Endpoint, type PolicyModel } from "./model.js";
import { renderRuleset, renderSetDelta } from "./render.js";
import { trace, type TracePacket } from "./trace.js";

const EXT = "203.0.113.5";
const NODE_IPS: Record<string, string> = { n1: "192.168.0.1", n2: "192.168.0.2" };

// ---- random models ------------------------------------------------------------------------------

const opt = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(a, { nil: undefined, freq: 3 });
const labelsOf = (o: Record<string, string | undefined>): Record<string, string> =>
  Object.fromEntries(Object.entries(o).filter((e): e is [string, string] => e[1] !== undefined));

const podSelector = fc.constantFrom<object>(
  {}, { matchLabels: { app: "web" } }, { matchLabels: { app: "db" } }, { matchLabels: { tier: "back" } },
  { matchExpressions: [{ key: "app", operator: "In", values: ["web", "api"] }] },
  { matchExpressions: [{ key: "tier", operator: "NotIn", values: ["front"] }] },
  { matchExpressions: [{ key: "app", operator: "Exists" }] },
  { matchExpressions: [{ key: "tier", operator: "DoesNotExist" }] },
);
const namespaceSelector = fc.constantFrom<object>(
  {}, { matchLabels: { env: "x" } }, { matchExpressions: [{ key: "env", operator: "NotIn", values: ["y"] }] },
  { matchLabels: { "kubernetes.io/metadata.name": "a" } }, { matchExpressions: [{ key: "team", operator: "Exists" }] },
);
const ipBlock = fc.constantFrom<object>(
  { cidr: "10.244.0.0/16", except: ["10.244.2.0/24"] },
  { cidr: "203.0.113.0/24" },
  { cidr: "0.0.0.0/0", except: ["10.244.1.0/24", "10.244.1.0/25"] },
  { cidr: "10.244.1.10/32" },
  { cidr: "fd00::/16", except: ["fd00:2::/32"] },
  { cidr: "::/0" },
);
const peer = fc.oneof(
  podSelector.map((p) => ({ podSelector: p })),
  namespaceSelector.map((n) => ({ namespaceSelector: n })),
  fc.tuple(namespaceSelector, podSelector).map(([n, p]) => ({ namespaceSelector: n, podSelector: p })),
  ipBlock.map((b) => ({ ipBlock: b })),
);
const port = fc.constantFrom<object>(
  { port: 80 }, { port: 5432 }, { protocol: "UDP", port: 53 }, { port: 8000, endPort: 8080 }, { protocol: "SCTP" }, { protocol: "TCP" },
  { port: "http" }, { protocol: "UDP", port: "dns" }, { port: "sql" }, { protocol: "UDP", port: "http" },
);
const peers = opt(fc.array(peer, { maxLength: 2 }));
const ports = opt(fc.array(port, { minLength: 1, maxLength: 2 }));
const k8sRule = (key: "from" | "to"): fc.Arbitrary<object> =>
  fc.record({ p: peers, ports }).map(({ p, ports }) => ({ ...(p ? { [key]: p } : {}), ...(ports ? { ports } : {}) }));
const orderedRule = (key: "from" | "to"): fc.Arbitrary<object> =>
  fc.record({ action: fc.constantFrom(...ACTIONS), p: peers, ports }).map(({ action, p, ports }) => ({ action, ...(p ? { [key]: p } : {}), ...(ports ? { ports } : {}) }));
const policyTypes = opt(fc.constantFrom(["Ingress"], ["Egress"], ["Ingress", "Egress"]));

interface PolicyDraft { kind: string; ns: number; order?: number; spec: Record<string, unknown> }
const policy: fc.Arbitrary<PolicyDraft> = fc.oneof(
  fc.record({ ns: fc.nat(2), podSelector, policyTypes, ingress: opt(fc.array(k8sRule("from"), { maxLength: 3 })), egress: opt(fc.array(k8sRule("to"), { maxLength: 3 })) })
    .map(({ ns, ...spec }) => ({ kind: "NetworkPolicy", ns, spec })),
  fc.record({
    ns: fc.nat(2), order: opt(fc.constantFrom(10, 100)), podSelector: opt(podSelector), policyTypes,
    ingress: opt(fc.array(orderedRule("from"), { maxLength: 3 })), egress: opt(fc.array(orderedRule("to"), { maxLength: 3 })),
  }).map(({ ns, ...spec }) => ({ kind: "TrellisPolicy", ns, spec })),
  fc.record({
    order: opt(fc.constantFrom(10, 100)), podSelector: opt(podSelector), namespaceSelector: opt(namespaceSelector), policyTypes,
    ingress: opt(fc.array(orderedRule("from"), { maxLength: 3 })), egress: opt(fc.array(orderedRule("to"), { maxLength: 3 })),
  }).map((spec) => ({ kind: "GlobalTrellisPolicy", ns: 0, spec })),
);

const pod = fc.record({
  ns: fc.nat(2),
  labels: fc.record({ app: opt(fc.constantFrom("web", "db", "api")), tier: opt(fc.constantFrom("front", "back")) }),
  ports: fc.record({ http: opt(fc.constantFrom(80, 8080)), dns: opt(fc.constantFrom("53/UDP", "5353/UDP")), sql: opt(fc.constantFrom(5432)) }),
  node: fc.constantFrom("n1", "n2"),
  v6: fc.boolean(),
});

const scenario = fc.record({
  nsCount: fc.integer({ min: 2, max: 3 }),
  nsLabels: fc.array(fc.record({ env: opt(fc.constantFrom("x", "y")), team: opt(fc.constantFrom("t")) }), { minLength: 3, maxLength: 3 }),
  pods: fc.array(pod, { minLength: 3, maxLength: 6 }),
  policies: fc.array(policy, { minLength: 1, maxLength: 4 }),
  packets: fc.array(fc.record({
    src: fc.nat(), dst: fc.nat(), protocol: fc.constantFrom<Packet["protocol"]>("TCP", "TCP", "UDP", "SCTP", "ICMP"),
    /** Aim at one of the destination pod's container ports (named ports resolve there). */
    aim: fc.boolean(),
    port: fc.constantFrom(53, 80, 80, 5353, 5432, 8000, 8080, 8080, 8081, 9090),
  }), { minLength: 8, maxLength: 24 }),
});

type Scenario = typeof scenario extends fc.Arbitrary<infer T> ? T : never;

function buildModel(s: Scenario): PolicyModel {
  const ns = ["a", "b", "c"].slice(0, s.nsCount);
  const b = new ModelBuilder().node("n1", NODE_IPS.n1!).node("n2", NODE_IPS.n2!);
  ns.forEach((n, i) => b.namespace(n, labelsOf(s.nsLabels[i]!)));
  s.pods.forEach((p, i) => {
    const net = p.node === "n1" ? 1 : 2;
    b.pod(`${ns[p.ns % ns.length]}/pod${i}`, {
      labels: labelsOf(p.labels), ports: labelsOf(p.ports as Record<string, string | undefined>) as never,
      ips: p.v6 ? [`10.244.${net}.${10 + i}`, `fd00:${net}::${10 + i}`] : `10.244.${net}.${10 + i}`, node: p.node, hostIf: `trl${i}`,
    });
  });
  const items = s.policies.map((p, i) => ({
    apiVersion: p.kind === "NetworkPolicy" ? "networking.k8s.io/v1" : "trellis.dev/v1",
    kind: p.kind,
    metadata: { name: `p${i}`, ...(p.kind === "GlobalTrellisPolicy" ? {} : { namespace: ns[p.ns % ns.length] }) },
    spec: p.spec,
  }));
  b.apply(JSON.stringify({ apiVersion: "v1", kind: "List", items }));
  return b.build();
}

const EXTERNAL = ["203.0.113.5", "198.51.100.7", "10.244.1.200", NODE_IPS.n1!, NODE_IPS.n2!, "2001:db8::5", "fd00:1::200"];
const fam = (ip: string): number => (ip.includes(":") ? 6 : 4);
const withoutPass = (logged: string[]): string[] => [...new Set(logged.filter((l) => !l.endsWith("passed to NetworkPolicies")))].sort();

/** Checks every packet of the scenario; returns how many directions were compared. */
function checkScenario(s: Scenario): number {
  const model = buildModel(s);
  const idx = new PolicyIndex(model);
  const rulesets = new Map<string, Ruleset>();
  const rs = (node: string): Ruleset => rulesets.get(node) ?? rulesets.set(node, compilePolicy(model, node)).get(node)!;
  const epOf = (ip: string): Endpoint | undefined => model.endpoints.find((e) => e.ips.includes(ip));
  const addresses = [...model.endpoints.flatMap((e) => e.ips), ...EXTERNAL];
  let compared = 0;
  for (const p of s.packets) {
    const src = addresses[p.src % addresses.length]!;
    const sameFamily = addresses.filter((a) => fam(a) === fam(src) && a !== src);
    const dst = sameFamily[p.dst % sameFamily.length]!;
    const srcEp = epOf(src);
    const dstEp = epOf(dst);
    if (!srcEp && !dstEp) continue;
    if (srcEp && dstEp && srcEp === dstEp) continue;
    const dstPorts = dstEp ? model.pods.find((x) => x.namespace === dstEp.namespace && x.name === dstEp.pod)!.ports : [];
    const aimed = p.aim && dstPorts.length > 0 ? dstPorts[p.port % dstPorts.length]! : undefined;
    const pkt: Packet = aimed ? { src, dst, protocol: aimed.protocol, port: aimed.containerPort }
      : { src, dst, protocol: p.protocol, port: p.protocol === "ICMP" ? 0 : p.port };
    const v = evaluate(idx, pkt);
    const base = { ...pkt, ct: "new" as const };
    const what = (dir: string, t: TracePacket): string =>
      `${dir} ${src} -> ${dst} ${pkt.port}/${pkt.protocol} (${JSON.stringify(v)}) trace ${JSON.stringify(t)}\nmodel: ${JSON.stringify(model.policies)}`;
    if (srcEp) {
      // Egress, on the source's node: forwarded out (to another node or outside), or to this node itself.
      const toSelf = dst === NODE_IPS[srcEp.node];
      const t: TracePacket = toSelf ? { ...base, hook: "input", iif: srcEp.hostIf } : { ...base, hook: "forward", iif: srcEp.hostIf, oif: "eth0" };
      const r = trace(rs(srcEp.node), t);
      assert.equal(r.verdict === "accept", v.egress!.allowed, what("egress", t) + `\npath: ${r.path.join(" | ")}`);
      assert.deepEqual([...new Set(r.logged)].sort(), withoutPass(v.egress!.logged), what("egress log", t));
      compared++;
    }
    if (dstEp && src !== NODE_IPS[dstEp.node]) {
      // Ingress, on the destination's node, arriving from the network. (Traffic from the node
      // itself is locally generated: it never reaches the forward hook.)
      const t: TracePacket = { ...base, hook: "forward", iif: "eth0", oif: dstEp.hostIf };
      const r = trace(rs(dstEp.node), t);
      assert.equal(r.verdict === "accept", v.ingress!.allowed, what("ingress", t) + `\npath: ${r.path.join(" | ")}`);
      assert.deepEqual([...new Set(r.logged)].sort(), withoutPass(v.ingress!.logged), what("ingress log", t));
      compared++;
    }
    if (srcEp && dstEp && srcEp.node === dstEp.node) {
      // Both on one node: one pass through forward, egress then ingress.
      const t: TracePacket = { ...base, hook: "forward", iif: srcEp.hostIf, oif: dstEp.hostIf };
      assert.equal(trace(rs(srcEp.node), t).verdict === "accept", v.allowed, what("local", t));
      compared++;
    }
  }
  return compared;
}

describe("compile agrees with evaluate", () => {
  it("on random models and packets, per direction and end to end", () => {
    let compared = 0;
    fc.assert(fc.property(scenario, (s) => {
      compared += checkScenario(s);
    }), { numRuns: 600 });
    assert.ok(compared > 1000, `only ${compared} directions compared`);
  });

  it("renders every random ruleset to a script of the expected shape", () => {
    fc.assert(fc.property(scenario, (s) => {
      const script = renderRuleset(compilePolicy(buildModel(s), "n1"));
      assert.ok(script.startsWith("table inet trellis\ndelete table inet trellis\ntable inet trellis {\n"));
      assert.ok(!script.includes("undefined"), script);
    }), { numRuns: 100 });
  });
});

// ---- direct tests -------------------------------------------------------------------------------

function cluster(): ModelBuilder {
  return new ModelBuilder()
    .node("n1", NODE_IPS.n1!).node("n2", NODE_IPS.n2!)
    .namespace("prod", { env: "prod" }).namespace("dev", { env: "dev" })
    .pod("prod/web", { labels: { app: "web" }, ports: { http: 80 }, ips: ["10.244.1.10", "fd00:1::10"], node: "n1", hostIf: "trlweb" })
    .pod("prod/api", { labels: { app: "api" }, ports: { http: 8080 }, ips: "10.244.1.11", node: "n1", hostIf: "trlapi" })
    .pod("prod/tool", { labels: { app: "tool" }, ips: ["10.244.1.13", "fd00:1::13"], node: "n1", hostIf: "trltool" })
    .pod("prod/db", { labels: { app: "db" }, ports: { sql: 5432 }, ips: ["10.244.2.10", "fd00:2::10"], node: "n2", hostIf: "trldb" })
    .pod("dev/web", { labels: { app: "web" }, ports: { http: 80 }, ips: "10.244.2.11", node: "n2", hostIf: "trldevweb" });
}

const tcp = (src: string, dst: string, port: number, more: Partial<TracePacket> = {}): TracePacket =>
  ({ hook: "forward", iif: "eth0", src, dst, protocol: "TCP", port, ...more });

const DEFAULT_DENY = yaml`
  apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: deny, namespace: prod}
  spec:
    podSelector: {}
    policyTypes: [Ingress, Egress]
`;

const DB_FROM_WEB = yaml`
  apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: db-from-web, namespace: prod}
  spec:
    podSelector: {matchLabels: {app: db}}
    ingress:
      - from: [{podSelector: {matchLabels: {app: web}}}]
        ports: [{port: sql}]
`;

describe("compile: anti-spoofing", () => {
  it("drops a packet from a pod interface with an address that is not the pod's, even when everything is allowed", () => {
    const b = cluster().apply(yaml`
      apiVersion: trellis.dev/v1
      kind: GlobalTrellisPolicy
      metadata: {name: allow-all}
      spec:
        order: 1
        policyTypes: [Ingress, Egress]
        ingress: [{action: Allow}]
        egress: [{action: Allow}]
    `);
    const rs = compilePolicy(b.build(), "n1");
    assert.equal(trace(rs, tcp("10.244.1.10", EXT, 443, { iif: "trlweb", oif: "eth0" })).verdict, "accept");
    const spoofed = trace(rs, tcp("10.244.1.11", EXT, 443, { iif: "trlweb", oif: "eth0" }));
    assert.equal(spoofed.verdict, "drop");
    assert.ok(spoofed.path.includes("anti-spoofing"), spoofed.path.join(" | "));
    assert.equal(trace(rs, tcp("10.244.1.99", "10.244.1.11", 80, { iif: "trlweb", oif: "trlapi" })).verdict, "drop");
    assert.equal(trace(rs, tcp("10.244.1.99", NODE_IPS.n1!, 22, { hook: "input", iif: "trlweb" })).verdict, "drop");
    assert.equal(trace(rs, tcp("fd00:1::10", "2001:db8::1", 443, { iif: "trlweb", oif: "eth0" })).verdict, "accept");
    assert.equal(trace(rs, tcp("fd00:1::99", "2001:db8::1", 443, { iif: "trlweb", oif: "eth0" })).verdict, "drop");
    // A pod without an IPv6 address sends no IPv6 at all...
    assert.equal(trace(rs, tcp("fd00:1::11", "2001:db8::1", 443, { iif: "trlapi", oif: "eth0" })).verdict, "drop");
    // ...except neighbour discovery, from its link-local address.
    assert.equal(trace(rs, { hook: "input", iif: "trlapi", src: "fe80::1", dst: "ff02::2", protocol: "ICMP", nd: true }).verdict, "accept");
  });

  it("is not applied to traffic arriving from the network", () => {
    const rs = compilePolicy(cluster().build(), "n1");
    assert.equal(trace(rs, tcp("10.244.2.10", "10.244.1.10", 80, { oif: "trlweb" })).verdict, "accept");
  });
});

describe("compile: fail closed and conntrack", () => {
  it("drops traffic from or to a pod interface that is not programmed yet, in both directions", () => {
    const rs = compilePolicy(cluster().build(), "n1");
    assert.deepEqual(Object.keys(rs.egressMap).sort(), ["trlapi", "trltool", "trlweb"]);
    assert.deepEqual(Object.keys(rs.ingressMap).sort(), ["trlapi", "trltool", "trlweb"]);
    assert.equal(trace(rs, tcp("10.244.1.50", EXT, 443, { iif: "trlnew", oif: "eth0" })).verdict, "drop");
    assert.equal(trace(rs, tcp("10.244.1.50", NODE_IPS.n1!, 53, { hook: "input", iif: "trlnew" })).verdict, "drop");
    assert.equal(trace(rs, tcp(EXT, "10.244.1.50", 80, { oif: "trlnew" })).verdict, "drop");
    assert.equal(trace(rs, tcp("10.244.1.10", "10.244.1.50", 80, { iif: "trlweb", oif: "trlnew" })).verdict, "drop");
    // A pod of another node has no chains here: its interface is not on this node.
    assert.equal(trace(rs, tcp("10.244.2.10", EXT, 443, { iif: "trldb", oif: "eth0" })).verdict, "drop");
    // Interfaces that are not pods' are none of our business.
    assert.equal(trace(rs, tcp(EXT, "192.168.1.1", 80, { iif: "eth0", oif: "eth1" })).verdict, "accept");
  });

  it("programs only routed endpoints of this node", () => {
    const b = cluster().pod("prod/bridged", { labels: {}, ips: "10.244.1.20", node: "n1", hostIf: "trlbr", mode: "bridge" });
    assert.deepEqual(Object.keys(compilePolicy(b.build(), "n1").egressMap).sort(), ["trlapi", "trltool", "trlweb"]);
    assert.deepEqual(Object.keys(compilePolicy(b.build(), "n2").egressMap).sort(), ["trldb", "trldevweb"]);
  });

  it("accepts established traffic whatever the policy", () => {
    const rs = compilePolicy(cluster().apply(DEFAULT_DENY).build(), "n1");
    assert.equal(trace(rs, tcp("10.244.1.10", EXT, 443, { iif: "trlweb", oif: "eth0" })).verdict, "drop");
    assert.equal(trace(rs, tcp("10.244.1.10", EXT, 443, { iif: "trlweb", oif: "eth0", ct: "established" })).verdict, "accept");
    assert.equal(trace(rs, tcp(EXT, "10.244.1.10", 80, { oif: "trlweb" })).verdict, "drop");
    assert.equal(trace(rs, tcp(EXT, "10.244.1.10", 80, { oif: "trlweb", ct: "established" })).verdict, "accept");
  });
});

describe("compile: what changes when the cluster changes", () => {
  it("a pod changing labels changes set elements only, not chains", () => {
    const before = cluster().apply(DB_FROM_WEB);
    const after = before.clone();
    after.pods.find((p) => p.name === "tool")!.labels = { app: "web" };
    after.pods.find((p) => p.name === "web" && p.namespace === "prod")!.labels = { app: "frontend" };
    const a = compilePolicy(before.build(), "n2");
    const z = compilePolicy(after.build(), "n2");
    assert.deepEqual(z.chains, a.chains);
    const delta = renderSetDelta(a, z);
    assert.notEqual(delta, undefined);
    const lines = delta!.trim().split("\n").sort();
    assert.equal(lines.length, 4, delta);
    assert.match(lines[0]!, /^add element inet trellis pods4_[0-9a-f]{12} \{ 10\.244\.1\.13 \}$/);
    assert.match(lines[1]!, /^add element inet trellis pods6_[0-9a-f]{12} \{ fd00:1::13 \}$/);
    assert.match(lines[2]!, /^delete element inet trellis pods4_[0-9a-f]{12} \{ 10\.244\.1\.10 \}$/);
    assert.match(lines[3]!, /^delete element inet trellis pods6_[0-9a-f]{12} \{ fd00:1::10 \}$/);
    // And the new ruleset enforces the new membership.
    assert.equal(trace(z, tcp("10.244.1.13", "10.244.2.10", 5432, { oif: "trldb" })).verdict, "accept");
    assert.equal(trace(z, tcp("10.244.1.10", "10.244.2.10", 5432, { oif: "trldb" })).verdict, "drop");
    assert.equal(renderSetDelta(a, compilePolicy(before.build(), "n2")), "");
  });

  it("a new or removed pod elsewhere changes set elements only", () => {
    const before = cluster().apply(DB_FROM_WEB);
    const after = before.clone().pod("prod/web2", { labels: { app: "web" }, ips: "10.244.1.30", node: "n1" });
    const delta = renderSetDelta(compilePolicy(before.build(), "n2"), compilePolicy(after.build(), "n2"));
    assert.match(delta ?? "", /^add element inet trellis pods4_[0-9a-f]{12} \{ 10\.244\.1\.30 \}\n$/);
    const back = renderSetDelta(compilePolicy(after.build(), "n2"), compilePolicy(before.build(), "n2"));
    assert.match(back ?? "", /^delete element inet trellis pods4_[0-9a-f]{12} \{ 10\.244\.1\.30 \}\n$/);
  });

  it("adding a policy, or a local pod changing which policies select it, changes chains", () => {
    const base = cluster().apply(DB_FROM_WEB);
    const a = compilePolicy(base.build(), "n2");
    assert.equal(renderSetDelta(a, compilePolicy(base.clone().apply(DEFAULT_DENY).build(), "n2")), undefined);
    const relabelled = base.clone();
    relabelled.pods.find((p) => p.name === "db")!.labels = { app: "cache" };
    assert.equal(renderSetDelta(a, compilePolicy(relabelled.build(), "n2")), undefined);
  });

  it("equal peers share one set; a global policy's podSelector-only peer is another set", () => {
    const rule = (kind: string, name: string, extra: string): string => yaml`
      apiVersion: ${kind === "NetworkPolicy" ? "networking.k8s.io/v1" : "trellis.dev/v1"}
      kind: ${kind}
      metadata: {name: ${name}${kind === "GlobalTrellisPolicy" ? "" : ", namespace: prod"}}
      spec:
        podSelector: {matchLabels: {app: db}}
        ingress:
          - from: [{podSelector: {matchLabels: {app: web}}}]
            ${extra}
    `;
    const b = cluster()
      .apply(rule("NetworkPolicy", "a", "ports: [{port: 5432}]"))
      .apply(rule("NetworkPolicy", "b", "ports: [{protocol: UDP, port: 53}]"))
      .apply(rule("TrellisPolicy", "c", "action: Pass"))
      .apply(rule("GlobalTrellisPolicy", "d", "action: Pass"));
    const rs = compilePolicy(b.build(), "n2");
    const setOf = (comment: string): string => {
      const r = rs.chains.flatMap((c) => c.rules).find((x) => x.comment?.startsWith(comment) && x.match.family === 4);
      assert.ok(r?.match.saddrSet, `no rule for ${comment}`);
      return r.match.saddrSet;
    };
    const shared = setOf("NetworkPolicy/prod/a");
    assert.equal(setOf("NetworkPolicy/prod/b"), shared);
    assert.equal(setOf("TrellisPolicy/prod/c"), shared);
    const global = setOf("GlobalTrellisPolicy/d");
    assert.notEqual(global, shared);
    const elements = (name: string): string[] => rs.sets.find((s) => s.name === name)!.elements;
    assert.deepEqual(elements(shared), ["10.244.1.10"]);
    assert.deepEqual(elements(global), ["10.244.1.10", "10.244.2.11"]);
    assert.equal(rs.sets.filter((s) => s.name.startsWith("pods4_")).length, 2);
  });

  it("is deterministic: the same model compiles to the same script", () => {
    const b = cluster().apply(DB_FROM_WEB).apply(DEFAULT_DENY);
    assert.equal(renderRuleset(compilePolicy(b.build(), "n1")), renderRuleset(compilePolicy(b.build(), "n1")));
  });
});

describe("compile: address families, ipBlocks, named ports", () => {
  it("IPv6 endpoints get ip6 sets, and IPv6 traffic is enforced with them", () => {
    const rs = compilePolicy(cluster().apply(DB_FROM_WEB).build(), "n2");
    const v6 = rs.sets.filter((s) => s.family === 6 && s.name.startsWith("pods6_"));
    assert.equal(v6.length, 1);
    assert.deepEqual(v6[0]!.elements, ["fd00:1::10"]);
    assert.match(renderRuleset(rs), new RegExp(`set ${v6[0]!.name} \\{ type ipv6_addr; elements = \\{ fd00:1::10 \\} \\}`));
    assert.match(renderRuleset(rs), new RegExp(`ip6 saddr @${v6[0]!.name} meta nfproto|ip6 saddr @${v6[0]!.name} tcp dport \\{ 5432 \\}`));
    assert.equal(trace(rs, tcp("fd00:1::10", "fd00:2::10", 5432, { oif: "trldb" })).verdict, "accept");
    assert.equal(trace(rs, tcp("fd00:1::13", "fd00:2::10", 5432, { oif: "trldb" })).verdict, "drop");
    assert.equal(trace(rs, tcp("fd00:1::10", "fd00:2::10", 5433, { oif: "trldb" })).verdict, "drop");
  });

  it("an ipBlock with overlapping excepts compiles to non-overlapping set elements (nft refuses overlapping intervals)", () => {
    const b = cluster().apply(yaml`
      apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {name: ext, namespace: prod}
      spec:
        podSelector: {matchLabels: {app: web}}
        policyTypes: [Egress]
        egress:
          - to: [{ipBlock: {cidr: 198.51.100.0/24, except: [198.51.100.0/26, 198.51.100.0/25, 198.51.100.1/32, 198.51.100.0/26]}}]
    `);
    const rs = compilePolicy(b.build(), "n1");
    const except = rs.sets.find((s) => s.name.startsWith("except4_"));
    assert.deepEqual(except?.elements, ["198.51.100.0/25"]);
    assert.equal(trace(rs, tcp("10.244.1.10", "198.51.100.1", 443, { iif: "trlweb", oif: "eth0" })).verdict, "drop");
    assert.equal(trace(rs, tcp("10.244.1.10", "198.51.100.127", 443, { iif: "trlweb", oif: "eth0" })).verdict, "drop");
    assert.equal(trace(rs, tcp("10.244.1.10", "198.51.100.128", 443, { iif: "trlweb", oif: "eth0" })).verdict, "accept");
  });

  it("egress named ports compile to (address . port) sets of the destination pods", () => {
    const b = cluster().apply(yaml`
      apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {name: http-out, namespace: prod}
      spec:
        podSelector: {matchLabels: {app: tool}}
        policyTypes: [Egress]
        egress:
          - ports: [{port: http}]
    `);
    const rs = compilePolicy(b.build(), "n1");
    const named = rs.sets.filter((s) => s.kind === "addr-port");
    assert.deepEqual(named.map((s) => [s.family, s.elements]), [
      [4, ["10.244.1.10 . 80", "10.244.1.11 . 8080", "10.244.2.11 . 80"]],
      [6, ["fd00:1::10 . 80"]],
    ]);
    const out = (dst: string, port: number): string => trace(rs, tcp("10.244.1.13", dst, port, { iif: "trltool", oif: "eth0" })).verdict;
    assert.equal(out("10.244.1.10", 80), "accept");
    assert.equal(out("10.244.1.11", 8080), "accept");
    assert.equal(out("10.244.1.11", 80), "drop");
    assert.equal(out(EXT, 80), "drop");
  });

  it("egress named port with an ipBlock peer resolves on the destination pod, as the evaluator does", () => {
    const b = cluster().apply(yaml`
      apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {name: http-block, namespace: prod}
      spec:
        podSelector: {matchLabels: {app: tool}}
        policyTypes: [Egress]
        egress:
          - to: [{ipBlock: {cidr: 10.244.0.0/16, except: [10.244.2.0/24]}}]
            ports: [{port: http}]
    `);
    const model = b.build();
    const rs = compilePolicy(model, "n1");
    const idx = new PolicyIndex(model);
    for (const [dst, port] of [["10.244.1.10", 80], ["10.244.1.11", 8080], ["10.244.1.11", 80], ["10.244.2.11", 80], ["10.244.1.99", 80]] as const) {
      const want = evaluate(idx, { src: "10.244.1.13", dst, protocol: "TCP", port }).egress!.allowed;
      const got = trace(rs, tcp("10.244.1.13", dst, port, { iif: "trltool", oif: "eth0" })).verdict === "accept";
      assert.equal(got, want, `${dst}:${port}`);
    }
    assert.equal(evaluate(idx, { src: "10.244.1.13", dst: "10.244.1.10", protocol: "TCP", port: 80 }).egress!.allowed, true);
  });

  it("ingress named ports resolve on the pod the chain belongs to", () => {
    const b = cluster().apply(yaml`
      apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {name: http-in, namespace: prod}
      spec:
        podSelector: {}
        ingress:
          - ports: [{port: http}]
    `);
    const rs = compilePolicy(b.build(), "n1");
    const inTo = (dst: string, oif: string, port: number): string => trace(rs, tcp(EXT, dst, port, { oif })).verdict;
    assert.equal(inTo("10.244.1.10", "trlweb", 80), "accept");
    assert.equal(inTo("10.244.1.10", "trlweb", 8080), "drop");
    assert.equal(inTo("10.244.1.11", "trlapi", 8080), "accept");
    assert.equal(inTo("10.244.1.11", "trlapi", 80), "drop");
    // A pod without that named port: the rule has nothing to allow.
    assert.equal(inTo("10.244.1.13", "trltool", 80), "drop");
  });
});

describe("compile: ordered tier in chains", () => {
  it("Pass jumps to the pod's Kubernetes chain; the ordered tier ends with a drop; Log rules log and continue", () => {
    const b = cluster().apply(yaml`
      apiVersion: trellis.dev/v1
      kind: TrellisPolicy
      metadata: {name: gate, namespace: prod}
      spec:
        podSelector: {matchLabels: {app: web}}
        ingress:
          - action: Log
          - action: Pass
            from: [{podSelector: {matchLabels: {app: api}}}]
      ---
    ` + DB_FROM_WEB);
    const rs = compilePolicy(b.build(), "n1");
    const chain = rs.chains.find((c) => c.name === rs.ingressMap.trlweb)!;
    assert.deepEqual(chain.rules.at(-1), { match: {}, verdict: "drop", comment: "end of ordered tier" });
    assert.ok(chain.rules.some((r) => typeof r.verdict === "object" && "goto" in r.verdict && r.verdict.goto === `${chain.name}_k8s`));
    const api = trace(rs, tcp("10.244.1.11", "10.244.1.10", 80, { iif: "trlapi", oif: "trlweb" }));
    assert.equal(api.verdict, "accept");
    assert.ok(api.logged.includes("TrellisPolicy/prod/gate ingress[0]"));
    const tool = trace(rs, tcp("10.244.1.13", "10.244.1.10", 80, { iif: "trltool", oif: "trlweb" }));
    assert.equal(tool.verdict, "drop");
    assert.ok(tool.path.includes("end of ordered tier"));
  });
});
