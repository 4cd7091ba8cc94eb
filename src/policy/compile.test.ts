// The compiler agrees with the evaluator: random small clusters and policies, random packets
// traced through each node's compiled ruleset, compared with evaluate()'s verdicts per direction.
// Then the properties only the data plane has: anti-spoofing, fail closed, conntrack, set reuse,
// and the flattened Kubernetes tier: disjoint interval-set elements, and a constant number of
// rules however many NetworkPolicy rules select a pod.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { cidrSize, formatIp, mustParseIp, parseCidr } from "../model/ip.js";
import { compilePolicy, type Chain, type NftSet, type Ruleset } from "./compile.js";
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

  it("renders every random ruleset to a script of the expected shape, with disjoint interval-set elements", () => {
    fc.assert(fc.property(scenario, (s) => {
      const rs = compilePolicy(buildModel(s), "n1");
      const script = renderRuleset(rs);
      assert.ok(script.startsWith("table inet trellis\ndelete table inet trellis\ntable inet trellis {\n"));
      assert.ok(!script.includes("undefined"), script);
      for (const set of rs.sets) if (set.kind === "interval" || set.kind === "addr-proto-port") assertDisjoint(set.elements);
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

/** The flattened Kubernetes tier of one interface and direction: its chain and its two sets per family. */
function k8sTier(rs: Ruleset, hostIf: string, dir: "ingress" | "egress"): {
  chain: Chain; set(kind: "any" | "port", family: 4 | 6): NftSet; elements(kind: "any" | "port", family: 4 | 6): string[];
} {
  const base = dir === "ingress" ? rs.ingressMap[hostIf] : rs.egressMap[hostIf];
  assert.ok(base, `no ${dir} chain for ${hostIf}`);
  const chain = rs.chains.find((c) => c.name === `${base}_k8s`);
  assert.ok(chain, `no chain ${base}_k8s`);
  const id = base.replace(/^(in|out)_/, "");
  const set = (kind: "any" | "port", family: 4 | 6): NftSet => {
    const name = `k8s${kind}${family}_${id}_${dir}`;
    const s = rs.sets.find((x) => x.name === name);
    assert.ok(s, `no set ${name}`);
    return s;
  };
  return { chain, set, elements: (kind, family) => set(kind, family).elements };
}

/** An interval-set element ("a", "a/len", "a-b", "a . proto . p", "a-b . proto . p-q") as ranges. */
function parseElement(e: string): { addr: [bigint, bigint]; protocol?: string; port?: [bigint, bigint] } {
  const [a, protocol, p] = e.split(" . ");
  const r = (t: string, parse: (x: string) => bigint): [bigint, bigint] => {
    const dash = t.indexOf("-", 1);
    return dash > 0 ? [parse(t.slice(0, dash)), parse(t.slice(dash + 1))] : [parse(t), parse(t)];
  };
  const ip = (x: string): bigint => mustParseIp(x).value;
  const c = a!.includes("/") ? parseCidr(a!) : undefined;
  const addr: [bigint, bigint] = c ? [c.network, c.network + cidrSize(c) - 1n] : r(a!, ip);
  return { addr, ...(protocol ? { protocol, port: r(p!, BigInt) } : {}) };
}

/** No two elements of an interval set share a point (nft refuses such sets). */
function assertDisjoint(elements: string[]): void {
  const parsed = elements.map((e) => ({ e, ...parseElement(e) })).sort((a, b) => (a.addr[0] < b.addr[0] ? -1 : a.addr[0] > b.addr[0] ? 1 : 0));
  const meet = (x: [bigint, bigint], y: [bigint, bigint]): boolean => x[0] <= y[1] && y[0] <= x[1];
  for (let i = 0; i < parsed.length; i++) {
    const a = parsed[i]!;
    // Sorted by first address: only the following elements that start inside `a` can meet it.
    for (let j = i + 1; j < parsed.length && parsed[j]!.addr[0] <= a.addr[1]; j++) {
      const b = parsed[j]!;
      const overlap = a.protocol === b.protocol && (!a.port || meet(a.port, b.port!));
      assert.ok(!overlap, `${a.e} and ${b.e} overlap`);
    }
  }
}

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
    // The flattened tier of db's ingress: (address . protocol . port) elements move, per family.
    const db = k8sTier(a, "trldb", "ingress");
    const port4 = db.set("port", 4).name;
    const port6 = db.set("port", 6).name;
    assert.match(port4, /^k8sport4_[0-9a-f]{12}_ingress$/);
    assert.deepEqual(delta!.trim().split("\n").sort(), [
      `add element inet trellis ${port4} { 10.244.1.13 . tcp . 5432 }`,
      `add element inet trellis ${port6} { fd00:1::13 . tcp . 5432 }`,
      `delete element inet trellis ${port4} { 10.244.1.10 . tcp . 5432 }`,
      `delete element inet trellis ${port6} { fd00:1::10 . tcp . 5432 }`,
    ]);
    // And the new ruleset enforces the new membership.
    assert.equal(trace(z, tcp("10.244.1.13", "10.244.2.10", 5432, { oif: "trldb" })).verdict, "accept");
    assert.equal(trace(z, tcp("10.244.1.10", "10.244.2.10", 5432, { oif: "trldb" })).verdict, "drop");
    assert.equal(renderSetDelta(a, compilePolicy(before.build(), "n2")), "");
  });

  it("a new or removed pod elsewhere changes set elements only", () => {
    const before = cluster().apply(DB_FROM_WEB);
    const after = before.clone().pod("prod/web2", { labels: { app: "web" }, ips: "10.244.1.30", node: "n1" });
    const port4 = k8sTier(compilePolicy(before.build(), "n2"), "trldb", "ingress").set("port", 4).name;
    const delta = renderSetDelta(compilePolicy(before.build(), "n2"), compilePolicy(after.build(), "n2"));
    assert.equal(delta, `add element inet trellis ${port4} { 10.244.1.30 . tcp . 5432 }\n`);
    const back = renderSetDelta(compilePolicy(after.build(), "n2"), compilePolicy(before.build(), "n2"));
    assert.equal(back, `delete element inet trellis ${port4} { 10.244.1.30 . tcp . 5432 }\n`);
    // A pod next to an allowed address joins it as one range element: the old element goes, the merged one comes.
    const next = before.clone().pod("prod/web3", { labels: { app: "web" }, ips: "10.244.1.11", node: "n1" });
    next.pods.splice(next.pods.findIndex((p) => p.name === "api"), 1);
    next.endpoints.splice(next.endpoints.findIndex((e) => e.pod === "api"), 1);
    const merged = compilePolicy(next.build(), "n2");
    assert.deepEqual(k8sTier(merged, "trldb", "ingress").elements("port", 4), ["10.244.1.10-10.244.1.11 . tcp . 5432"]);
    assert.equal(renderSetDelta(compilePolicy(before.build(), "n2"), merged),
      `delete element inet trellis ${port4} { 10.244.1.10 . tcp . 5432 }\nadd element inet trellis ${port4} { 10.244.1.10-10.244.1.11 . tcp . 5432 }\n`);
  });

  it("adding a policy, or a local pod changing which policies select it, changes chains", () => {
    const base = cluster().apply(DB_FROM_WEB);
    const a = compilePolicy(base.build(), "n2");
    assert.equal(renderSetDelta(a, compilePolicy(base.clone().apply(DEFAULT_DENY).build(), "n2")), undefined);
    const relabelled = base.clone();
    relabelled.pods.find((p) => p.name === "db")!.labels = { app: "cache" };
    assert.equal(renderSetDelta(a, compilePolicy(relabelled.build(), "n2")), undefined);
  });

  it("equal peers share one set in the ordered tier; a global policy's podSelector-only peer is another set", () => {
    const ordered = (kind: string, name: string, action: string): string => yaml`
      apiVersion: trellis.dev/v1
      kind: ${kind}
      metadata: {name: ${name}${kind === "GlobalTrellisPolicy" ? "" : ", namespace: prod"}}
      spec:
        podSelector: {matchLabels: {app: db}}
        ingress:
          - from: [{podSelector: {matchLabels: {app: web}}}]
            action: ${action}
    `;
    const b = cluster()
      .apply(ordered("TrellisPolicy", "c", "Pass"))
      .apply(ordered("TrellisPolicy", "e", "Log"))
      .apply(ordered("GlobalTrellisPolicy", "d", "Pass"))
      .apply(DB_FROM_WEB);
    const rs = compilePolicy(b.build(), "n2");
    const setOf = (comment: string): string => {
      const r = rs.chains.flatMap((c) => c.rules).find((x) => x.comment?.startsWith(comment) && x.match.family === 4);
      assert.ok(r?.match.saddrSet, `no rule for ${comment}`);
      return r.match.saddrSet;
    };
    const shared = setOf("TrellisPolicy/prod/c");
    assert.equal(setOf("TrellisPolicy/prod/e"), shared);
    const global = setOf("GlobalTrellisPolicy/d");
    assert.notEqual(global, shared);
    const elements = (name: string): string[] => rs.sets.find((s) => s.name === name)!.elements;
    assert.deepEqual(elements(shared), ["10.244.1.10"]);
    assert.deepEqual(elements(global), ["10.244.1.10", "10.244.2.11"]);
    // The NetworkPolicy's equal peer needs no set of its own: it is part of the flattened tier.
    assert.equal(rs.sets.filter((s) => s.name.startsWith("pods4_")).length, 2);
    assert.deepEqual(k8sTier(rs, "trldb", "ingress").elements("port", 4), ["10.244.1.10 . tcp . 5432"]);
  });

  it("more NetworkPolicy rules add set elements, never nft rules: the Kubernetes tier is 2 rules per family and a drop", () => {
    const np = (name: string, rules: string): string => yaml`
      apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {name: ${name}, namespace: prod}
      spec:
        podSelector: {matchLabels: {app: db}}
        ingress: ${rules}
    `;
    const shape = (rs: Ruleset): unknown => k8sTier(rs, "trldb", "ingress").chain.rules.map((r) => [r.match, r.verdict]);
    const one = compilePolicy(cluster().apply(np("a", "[{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 5432}]}]")).build(), "n2");
    const many = compilePolicy(cluster()
      .apply(np("a", "[{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 5432}]}]"))
      .apply(np("b", "[{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{protocol: UDP, port: 53}]}]"))
      .apply(np("c", "[{from: [{namespaceSelector: {matchLabels: {env: dev}}}]}, {from: [{ipBlock: {cidr: 192.0.2.0/24}}], ports: [{port: 443}, {port: 8000, endPort: 8100}]}]"))
      .apply(np("d", "[{from: [{podSelector: {matchLabels: {app: tool}}}, {ipBlock: {cidr: \"2001:db8::/32\"}}], ports: [{protocol: SCTP}]}]"))
      .build(), "n2");
    for (const rs of [one, many]) {
      const tier = k8sTier(rs, "trldb", "ingress");
      assert.equal(tier.chain.rules.length, 5);
      assert.deepEqual(tier.chain.rules.at(-1)?.verdict, "drop");
    }
    assert.deepEqual(shape(many), shape(one));
    const tier = k8sTier(many, "trldb", "ingress");
    assert.deepEqual(tier.elements("any", 4), ["10.244.2.11"]);
    assert.deepEqual(tier.elements("port", 4), [
      "10.244.1.13 . sctp . 0-65535", "10.244.1.10 . tcp . 5432", "192.0.2.0-192.0.2.255 . tcp . 443", "192.0.2.0-192.0.2.255 . tcp . 8000-8100", "10.244.1.10 . udp . 53",
    ]);
    assert.deepEqual(tier.elements("port", 6), [
      "2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff . sctp . 0-65535", "fd00:1::13 . sctp . 0-65535", "fd00:1::10 . tcp . 5432", "fd00:1::10 . udp . 53",
    ]);
    const inDb = (src: string, protocol: TracePacket["protocol"], port: number): string =>
      trace(many, { hook: "forward", iif: "eth0", oif: "trldb", src, dst: src.includes(":") ? "fd00:2::10" : "10.244.2.10", protocol, port }).verdict;
    assert.equal(inDb("10.244.1.10", "UDP", 53), "accept");
    assert.equal(inDb("10.244.1.10", "TCP", 53), "drop");
    assert.equal(inDb("192.0.2.9", "TCP", 8050), "accept");
    assert.equal(inDb("192.0.2.9", "TCP", 8101), "drop");
    assert.equal(inDb("10.244.2.11", "ICMP", 0), "accept");
    assert.equal(inDb("2001:db8:5::1", "SCTP", 7), "accept");
    assert.equal(inDb("2001:db8:5::1", "TCP", 7), "drop");
  });

  it("is deterministic: the same model compiles to the same script", () => {
    const b = cluster().apply(DB_FROM_WEB).apply(DEFAULT_DENY);
    assert.equal(renderRuleset(compilePolicy(b.build(), "n1")), renderRuleset(compilePolicy(b.build(), "n1")));
  });
});

describe("compile: address families, ipBlocks, named ports", () => {
  it("IPv6 endpoints get ip6 sets, and IPv6 traffic is enforced with them", () => {
    const rs = compilePolicy(cluster().apply(DB_FROM_WEB).build(), "n2");
    const db = k8sTier(rs, "trldb", "ingress");
    const port6 = db.set("port", 6);
    const any6 = db.set("any", 6);
    assert.deepEqual([port6.family, any6.family], [6, 6]);
    assert.match(port6.name, /^k8sport6_[0-9a-f]{12}_ingress$/);
    assert.deepEqual(port6.elements, ["fd00:1::10 . tcp . 5432"]);
    assert.deepEqual(any6.elements, []);
    const script = renderRuleset(rs);
    assert.ok(script.includes(`  set ${port6.name} { type ipv6_addr . inet_proto . inet_service; flags interval; elements = { fd00:1::10 . tcp . 5432 } }\n`), script);
    assert.ok(script.includes(`  set ${any6.name} { type ipv6_addr; flags interval; }\n`), script);
    assert.ok(script.includes(`    ip6 saddr . meta l4proto . th dport @${port6.name} counter return`), script);
    assert.ok(script.includes(`    ip6 saddr @${any6.name} counter return`), script);
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
          - to:
              - {ipBlock: {cidr: 198.51.0.0/16, except: [198.51.100.0/26, 198.51.100.0/25]}}
              - {ipBlock: {cidr: 198.51.100.0/24, except: [198.51.100.64/26]}}
            ports: [{port: 443}, {port: 400, endPort: 500}, {protocol: UDP}]
      ---
      apiVersion: trellis.dev/v1
      kind: TrellisPolicy
      metadata: {name: log-ext, namespace: prod}
      spec:
        podSelector: {matchLabels: {app: web}}
        policyTypes: [Egress]
        egress:
          - action: Log
            to: [{ipBlock: {cidr: 198.51.100.0/24, except: [198.51.100.0/26, 198.51.100.0/25, 198.51.100.1/32, 198.51.100.0/26]}}]
          - action: Pass
    `);
    const model = b.build();
    const rs = compilePolicy(model, "n1");
    // The ordered tier keeps its ipBlock sets: only the except no other except covers.
    const except = rs.sets.find((s) => s.name.startsWith("except4_"));
    assert.deepEqual(except?.elements, ["198.51.100.0/25"]);
    // The flattened tier: the union of both rules, cut into disjoint pieces.
    const web = k8sTier(rs, "trlweb", "egress");
    assert.deepEqual(web.elements("any", 4), ["198.51.100.128-198.51.100.255"]);
    assert.deepEqual(web.elements("port", 4), [
      "198.51.0.0-198.51.100.63 . tcp . 400-500", "198.51.100.128-198.51.255.255 . tcp . 400-500",
      "198.51.0.0-198.51.100.63 . udp . 0-65535", "198.51.100.128-198.51.255.255 . udp . 0-65535",
    ]);
    for (const s of rs.sets.filter((x) => x.kind === "interval" || x.kind === "addr-proto-port")) assertDisjoint(s.elements);
    const out = (dst: string, protocol: TracePacket["protocol"], port: number): string =>
      trace(rs, { hook: "forward", iif: "trlweb", oif: "eth0", src: "10.244.1.10", dst, protocol, port }).verdict;
    assert.equal(out("198.51.100.1", "TCP", 443), "accept");
    assert.equal(out("198.51.100.1", "TCP", 80), "drop");
    assert.equal(out("198.51.100.100", "TCP", 443), "drop");
    assert.equal(out("198.51.100.127", "UDP", 53), "drop");
    assert.equal(out("198.51.100.128", "TCP", 80), "accept");
    assert.equal(out("198.51.100.255", "ICMP", 0), "accept");
    assert.equal(out("198.51.7.7", "UDP", 9), "accept");
    assert.equal(out("198.51.7.7", "SCTP", 443), "drop");
    const idx = new PolicyIndex(model);
    for (const dst of ["198.51.0.0", "198.51.99.255", "198.51.100.0", "198.51.100.63", "198.51.100.64", "198.51.100.127", "198.51.100.128", "198.51.255.255", "198.52.0.0"]) {
      for (const [protocol, port] of [["TCP", 400], ["TCP", 443], ["TCP", 501], ["UDP", 1], ["SCTP", 443], ["ICMP", 0]] as const) {
        assert.equal(out(dst, protocol, port) === "accept", evaluate(idx, { src: "10.244.1.10", dst, protocol, port }).egress!.allowed, `${dst} ${protocol} ${port}`);
      }
    }
  });

  it("egress named ports compile to (address . protocol . port) elements of the destination pods", () => {
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
    const tool = k8sTier(rs, "trltool", "egress");
    assert.deepEqual(tool.elements("port", 4), ["10.244.1.10 . tcp . 80", "10.244.1.11 . tcp . 8080", "10.244.2.11 . tcp . 80"]);
    assert.deepEqual(tool.elements("port", 6), ["fd00:1::10 . tcp . 80"]);
    assert.deepEqual([tool.elements("any", 4), tool.elements("any", 6)], [[], []]);
    assert.deepEqual(rs.sets.filter((s) => s.kind === "addr-port"), [], "no ordered-tier named-port sets");
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

describe("compile: the Kubernetes tier at scale", () => {
  /** mulberry32: a small seeded generator, so that the model is the same on every run. */
  const prng = (seed: number): (() => number) => () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };

  it("100 NetworkPolicies × 20 rules per direction selecting one pod: its chains still have 5 rules, and the tracer agrees with evaluate()", () => {
    const rnd = prng(20261122);
    const int = (n: number): number => Math.floor(rnd() * n);
    const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
    const APPS = ["web", "api", "db", "cache", "none"];

    const b = cluster().pod("prod/target", {
      labels: { app: "target" }, ports: { http: 8443, dns: "5353/UDP", sig: "9000/SCTP" }, ips: ["10.244.1.50", "fd00:1::50"], node: "n1", hostIf: "trltarget",
    });
    for (let i = 0; i < 24; i++) {
      const net = 1 + (i % 2);
      b.pod(`${i % 3 === 0 ? "dev" : "prod"}/p${i}`, {
        labels: { app: pick(APPS), ...(i % 4 === 0 ? { tier: "back" } : {}) },
        ports: { http: pick([80, 8080]), ...(i % 2 ? { dns: "53/UDP" } : {}), ...(i % 5 === 0 ? { sig: "9000/SCTP" } : {}) } as never,
        ips: i % 3 ? [`10.244.${net}.${100 + i}`, `fd00:${net}::${100 + i}`] : `10.244.${net}.${100 + i}`, node: `n${net}`,
      });
    }

    // Peers: pod and namespace selectors, and ipBlocks (with excepts) that overlap each other;
    // mostly narrow, so that the union of 2000 rules does not allow nearly everything.
    const SELECTOR_APPS = [...APPS, "batch", "queue", "auth"];
    const narrowBlock = (): { cidr: string; except?: string[] } => {
      switch (int(5)) {
        case 0: return { cidr: `10.244.${1 + int(2)}.${100 + int(30)}/32` };
        case 1: {
          const [net, at] = [pick(["192.0.2", "198.51.100"]), 16 * int(16)];
          return { cidr: `${net}.${at}/28`, ...(rnd() < 0.5 ? { except: [`${net}.${at + 4 * int(4)}/30`] } : {}) };
        }
        case 2: {
          const net = `10.${int(2)}.${int(4)}`;
          return { cidr: `${net}.0/24`, except: [`${net}.${16 * int(16)}/28`] };
        }
        case 3: {
          const n = int(8);
          return { cidr: `2001:db8:${n}::/48`, except: [`2001:db8:${n}:${int(4)}::/64`] };
        }
        default: {
          // The pods' addresses fd00:n::100 to fd00:n::123 (hexadecimal), in blocks of 16.
          const at = `fd00:${1 + int(2)}::1${int(3)}`;
          return { cidr: `${at}0/124`, except: [`${at}${int(10)}/128`] };
        }
      }
    };
    const peer = (): object => {
      const r = rnd();
      if (r < 0.4) return { podSelector: { matchLabels: { app: pick(SELECTOR_APPS) } } };
      if (r < 0.5) return { podSelector: { matchExpressions: [{ key: "app", operator: "In", values: [pick(SELECTOR_APPS), pick(SELECTOR_APPS)] }] } };
      if (r < 0.6) return { namespaceSelector: { matchLabels: { env: pick(["dev", "prod"]) } }, podSelector: { matchLabels: { app: pick(SELECTOR_APPS) } } };
      return { ipBlock: narrowBlock() };
    };
    const PORTS = Array.from({ length: 40 }, (_, i) => 1000 + 37 * i);
    const port = (): object => pick<object>([
      { port: pick(PORTS) }, { port: pick(PORTS) }, { protocol: "UDP", port: pick(PORTS) }, { protocol: "SCTP", port: pick(PORTS) },
      { port: 8000 + int(50), endPort: 8050 + int(20) }, { port: "http" }, { protocol: "UDP", port: "dns" }, { protocol: "SCTP", port: "sig" },
      { protocol: "SCTP" },
    ]);
    const broad = (): object => pick<object>([
      { ipBlock: { cidr: "10.0.0.0/8", except: [`10.${int(4)}.0.0/16`, `10.244.${int(4)}.0/24`] } }, { namespaceSelector: { matchLabels: { env: "dev" } } },
      { ipBlock: { cidr: "2001:db8::/32", except: [`2001:db8:${int(8)}::/48`] } },
    ]);
    // Every rule has peers or ports (a rule with neither allows everything, and the test would say nothing).
    const rule = (key: "from" | "to"): object => {
      const r = rnd();
      if (r < 0.05) return { [key]: [peer()] }; // every port
      if (r < 0.1) return { [key]: [broad()], ports: [{ port: pick(PORTS) }] };
      if (r < 0.12) return { ports: [{ port: pick(PORTS) }] }; // every peer
      return { [key]: Array.from({ length: 1 + int(2) }, peer), ports: Array.from({ length: 1 + int(3) }, port) };
    };
    const items = Array.from({ length: 100 }, (_, i) => ({
      apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name: `np${i}`, namespace: "prod" },
      spec: {
        podSelector: { matchLabels: { app: "target" } }, policyTypes: ["Ingress", "Egress"],
        ingress: Array.from({ length: 20 }, () => rule("from")), egress: Array.from({ length: 20 }, () => rule("to")),
      },
    }));
    b.apply(JSON.stringify({ apiVersion: "v1", kind: "List", items }));
    const model = b.build();
    assert.equal(model.policies.length, 100);
    const rs = compilePolicy(model, "n1");

    for (const dir of ["ingress", "egress"] as const) {
      const tier = k8sTier(rs, "trltarget", dir);
      assert.equal(tier.chain.rules.length, 5, `${dir}: ${tier.chain.rules.length} rules`);
      for (const family of [4, 6] as const) for (const kind of ["any", "port"] as const) assertDisjoint(tier.elements(kind, family));
    }

    // Packets to and from the pod: every pod address, the edges of every ipBlock and except, and others.
    const edges = model.policies.flatMap((p) => (p.kind === "NetworkPolicy" ? [...p.ingress, ...p.egress] : []))
      .flatMap((r) => r.peers ?? []).flatMap((p) => (p.ipBlock ? [p.ipBlock.cidr, ...(p.ipBlock.except ?? [])] : []))
      .map((c) => parseCidr(c)!).flatMap((c) => [c.network - 1n, c.network, c.network + cidrSize(c) - 1n, c.network + cidrSize(c)]
        .filter((v) => v >= 0n && v < 1n << BigInt(c.family === 4 ? 32 : 128)).map((value) => formatIp({ family: c.family, value })));
    const remotes = [...new Set([...model.endpoints.flatMap((e) => e.ips), ...edges, EXT, "10.9.9.9", "2001:db8:7::1", "2001:db9::1"])]
      .filter((a) => !["10.244.1.50", "fd00:1::50", NODE_IPS.n1].includes(a));
    const idx = new PolicyIndex(model);
    const verdicts = { accept: 0, drop: 0 };
    for (let i = 0; i < 300; i++) {
      const remote = pick(remotes);
      const self = remote.includes(":") ? "fd00:1::50" : "10.244.1.50";
      const protocol = pick(["TCP", "TCP", "UDP", "SCTP", "ICMP"] as const);
      const port = protocol === "ICMP" ? 0 : rnd() < 0.5 ? pick(PORTS) : pick([1, 53, 80, 5353, 8000, 8049, 8050, 8069, 8070, 8080, 8443, 9000, int(65536)]);
      const ingress = i % 2 === 0;
      const pkt = ingress ? { src: remote, dst: self, protocol, port } : { src: self, dst: remote, protocol, port };
      const want = ingress ? evaluate(idx, pkt).ingress!.allowed : evaluate(idx, pkt).egress!.allowed;
      const t: TracePacket = ingress ? { ...pkt, hook: "forward", iif: "eth0", oif: "trltarget" } : { ...pkt, hook: "forward", iif: "trltarget", oif: "eth0" };
      const got = trace(rs, t);
      assert.equal(got.verdict === "accept", want, `${ingress ? "ingress" : "egress"} ${JSON.stringify(pkt)}: ${got.path.join(" | ")}`);
      verdicts[got.verdict]++;
    }
    // Both verdicts occur often enough for the comparison to mean something.
    assert.ok(verdicts.accept > 50 && verdicts.drop > 50, JSON.stringify(verdicts));
  });
});
