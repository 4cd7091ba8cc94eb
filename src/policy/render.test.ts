// The nft script: one atomic replacement of the table, base chains in a fixed safe order, every
// match kind rendered as nft expects it; set-only changes as element deltas. One optional test
// hands a rendered script to the real nft in a throwaway network namespace (root only).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { compilePolicy, type Match, type Ruleset } from "./compile.js";
import { ModelBuilder, yaml } from "./model-builder.js";
import { renderMatch, renderRule, renderRuleset, renderSetDelta } from "./render.js";

/**
 * A cluster with every kind of match: pod and namespace selectors, ipBlocks with except, named
 * ports, ranges, Log/Pass/Deny — in the ordered tier (rules over shared sets) and in the flattened
 * Kubernetes tier (interval sets of addresses and of address . protocol . port).
 */
function richModel(): ModelBuilder {
  return new ModelBuilder().node("n1", "192.168.0.1").namespace("prod", { env: "prod" })
    .pod("prod/web", { labels: { app: "web" }, ports: { http: 80, dns: "53/UDP", sig: "9000/SCTP" }, ips: ["10.244.1.10", "fd00:1::10"], node: "n1", hostIf: "trlweb" })
    .pod("prod/api", { labels: { app: "api" }, ports: { http: 8080 }, ips: "10.244.1.11", node: "n1", hostIf: "trlapi" })
    .pod("prod/db", { labels: { app: "db" }, ips: "10.244.2.10", node: "n2", hostIf: "trldb" })
    // Right below 10.2.0.0, where an ipBlock's range of the Kubernetes tier starts.
    .pod("prod/edge", { labels: { app: "edge" }, ips: "10.1.255.255", node: "n2", hostIf: "trledge" })
    .apply(yaml`
      apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {name: np, namespace: prod}
      spec:
        podSelector: {}
        policyTypes: [Ingress, Egress]
        ingress:
          - from:
              - podSelector: {matchLabels: {app: web}}
              - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16, 10.1.0.0/24]}
              - ipBlock: {cidr: "2001:db8::/32", except: ["2001:db8:1::/48"]}
            ports: [{port: http}, {port: 8000, endPort: 8080}, {protocol: UDP, port: 53}, {protocol: SCTP, port: 9000}, {protocol: SCTP}]
        egress:
          - to: [{namespaceSelector: {}}]
            ports: [{port: http}, {protocol: UDP, port: dns}, {protocol: SCTP, port: sig}]
          - to: [{ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8]}}]
            ports: [{port: http}, {port: 443}]
          - ports: [{protocol: UDP}]
          - to: [{ipBlock: {cidr: 192.0.2.0/24}}, {ipBlock: {cidr: "2001:db8:ff::/48"}}]
      ---
      apiVersion: trellis.dev/v1
      kind: TrellisPolicy
      metadata: {name: tp, namespace: prod}
      spec:
        order: 10
        policyTypes: [Ingress, Egress]
        ingress:
          - action: Log
          - action: Deny
            from: [{ipBlock: {cidr: 203.0.113.0/24}}]
          - action: Deny
            from:
              - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16, 10.1.0.0/24]}
              - ipBlock: {cidr: "2001:db8::/32", except: ["2001:db8:1::/48"]}
            ports: [{protocol: UDP, port: 5353}]
          - action: Pass
            from: [{podSelector: {matchLabels: {app: web}}}]
            ports: [{port: http}, {port: 8000, endPort: 8080}, {protocol: SCTP}]
          - action: Pass
        egress:
          - action: Allow
            to: [{podSelector: {matchLabels: {app: api}}}]
            ports: [{port: http}]
          - action: Log
            to: [{namespaceSelector: {}}]
            ports: [{port: http}, {protocol: UDP, port: dns}]
          - action: Pass
    `);
}

const chainBody = (script: string, name: string): string[] => {
  const lines = script.split("\n");
  const start = lines.indexOf(`  chain ${name} {`);
  assert.ok(start >= 0, `no chain ${name}`);
  return lines.slice(start + 1, lines.indexOf("  }", start));
};

describe("renderRuleset", () => {
  const rs = compilePolicy(richModel().build(), "n1");
  const script = renderRuleset(rs);
  const lines = script.split("\n");

  it("is a complete atomic replacement of the table", () => {
    // Create-if-missing, delete, recreate: one transaction, whether or not the table existed.
    assert.deepEqual(lines.slice(0, 3), ["table inet trellis", "delete table inet trellis", "table inet trellis {"]);
    assert.ok(script.endsWith("\n}\n"));
    assert.equal(lines.filter((l) => l.startsWith("table ") || l.startsWith("delete ")).length, 3);
    assert.equal(lines.filter((l) => /^(add|insert|flush) /.test(l)).length, 0);
  });

  it("has base chains that accept conntrack first, then fail closed, then dispatch by verdict maps", () => {
    assert.deepEqual(chainBody(script, "forward"), [
      "    type filter hook forward priority filter; policy accept;",
      "    ct state established,related accept",
      "    ct state invalid drop",
      '    iifname "trl*" iifname != @endpoints drop comment "fail closed: endpoint not programmed yet"',
      '    oifname "trl*" oifname != @endpoints drop comment "fail closed: endpoint not programmed yet"',
      "    iifname vmap @egress",
      "    oifname vmap @ingress",
    ]);
    assert.deepEqual(chainBody(script, "input"), [
      "    type filter hook input priority filter; policy accept;",
      "    ct state established,related accept",
      '    iifname "trl*" iifname != @endpoints drop comment "fail closed: endpoint not programmed yet"',
      "    iifname vmap @egress",
    ]);
  });

  it("lists the programmed interfaces in the endpoints set and the verdict maps", () => {
    assert.ok(lines.includes('  set endpoints { type ifname; elements = { "trlapi", "trlweb" } }'));
    assert.ok(lines.includes(`  map egress { type ifname : verdict; elements = { "trlapi" : jump ${rs.egressMap.trlapi}, "trlweb" : jump ${rs.egressMap.trlweb} } }`));
    assert.ok(lines.includes(`  map ingress { type ifname : verdict; elements = { "trlapi" : jump ${rs.ingressMap.trlapi}, "trlweb" : jump ${rs.ingressMap.trlweb} } }`));
    const empty = renderRuleset(compilePolicy({ namespaces: [], pods: [], endpoints: [], policies: [] }, "n1"));
    assert.ok(empty.includes("  set endpoints { type ifname; }\n  map egress { type ifname : verdict; }\n  map ingress { type ifname : verdict; }\n"));
  });

  it("declares every set before any rule uses it, and every jump/goto target exists", () => {
    const firstChain = lines.findIndex((l) => l.startsWith("  chain "));
    const declared = new Set(lines.slice(0, firstChain).map((l) => /^ {2}(?:set|map) (\S+) /.exec(l)?.[1]).filter(Boolean));
    const used = new Set([...script.matchAll(/@(\w+)/g)].map((m) => m[1]));
    for (const u of used) assert.ok(declared.has(u), `@${u} used but not declared`);
    const chains = new Set([...script.matchAll(/^ {2}chain (\S+) \{$/gm)].map((m) => m[1]));
    for (const [, target] of script.matchAll(/(?:jump|goto) (\w+)/g)) assert.ok(chains.has(target), `no chain ${target}`);
  });

  it("renders sets with their types", () => {
    const kinds = (re: RegExp): string[] => lines.filter((l) => re.test(l));
    // Ordered tier: shared peer sets.
    assert.ok(kinds(/^ {2}set pods4_\w+ \{ type ipv4_addr; elements = \{ [\d., ]+ \} \}$/).length > 0);
    assert.ok(kinds(/^ {2}set pods6_\w+ \{ type ipv6_addr; elements = \{ fd00:1::10 \} \}$/).length > 0);
    assert.ok(kinds(/^ {2}set pods6_\w+ \{ type ipv6_addr; \}$/).length > 0, "an empty set has no elements clause");
    assert.match(kinds(/^ {2}set except4_\w+ /).find((l) => l.includes("10.1.0.0/16"))!, /\{ type ipv4_addr; flags interval; elements = \{ 10\.1\.0\.0\/16 \} \}$/);
    assert.equal(kinds(/^ {2}set block6_\w+ \{ type ipv6_addr; flags interval; elements = \{ 2001:db8::\/32 \} \}$/).length, 1);
    assert.ok(kinds(/^ {2}set named4_\w+ \{ type ipv4_addr \. inet_service; elements = \{ 10\.244\.1\.10 \. 80, 10\.244\.1\.11 \. 8080 \} \}$/).length > 0);
    assert.ok(kinds(/^ {2}set named6_\w+ \{ type ipv6_addr \. inet_service; \}$/).length > 0, "an empty set has no elements clause");
    // Kubernetes tier: per chain and family, addresses allowed on any port, and address . protocol . port boxes.
    const web = rs.ingressMap.trlweb!.replace(/^in_/, "");
    const webOut = rs.egressMap.trlweb!.replace(/^out_/, "");
    assert.ok(lines.includes(`  set k8sany4_${web}_ingress { type ipv4_addr; flags interval; }`));
    assert.ok(lines.includes(`  set k8sany4_${webOut}_egress { type ipv4_addr; flags interval; elements = { 192.0.2.0-192.0.2.255 } }`));
    assert.ok(lines.includes(`  set k8sany6_${webOut}_egress { type ipv6_addr; flags interval; elements = { 2001:db8:ff::-2001:db8:ff:ffff:ffff:ffff:ffff:ffff } }`));
    assert.ok(lines.includes(`  set k8sport4_${web}_ingress { type ipv4_addr . inet_proto . inet_service; flags interval; elements = { ${[
      "10.0.0.0-10.0.255.255 . sctp . 0-65535", "10.2.0.0-10.255.255.255 . sctp . 0-65535",
      "10.0.0.0-10.0.255.255 . tcp . 80", "10.0.0.0-10.0.255.255 . tcp . 8000-8080", "10.2.0.0-10.255.255.255 . tcp . 80", "10.2.0.0-10.255.255.255 . tcp . 8000-8080",
      "10.0.0.0-10.0.255.255 . udp . 53", "10.2.0.0-10.255.255.255 . udp . 53",
    ].join(", ")} } }`), kinds(/k8sport4_/).join("\n"));
    assert.ok(lines.includes(`  set k8sport6_${webOut}_egress { type ipv6_addr . inet_proto . inet_service; flags interval; elements = { ${[
      "fd00:1::10 . sctp . 9000", "fd00:1::10 . tcp . 80", "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff . udp . 0-65535",
    ].join(", ")} } }`), kinds(/k8sport6_/).join("\n"));
    // Every set of the Kubernetes tier belongs to a chain of this node, two per family and direction.
    const k8s = kinds(/^ {2}set k8s(any|port)[46]_/);
    assert.equal(k8s.length, Object.keys(rs.egressMap).length * 2 * 2 * 2);
  });

  it("renders the Kubernetes tier as two lookups per family and a drop", () => {
    const web = rs.ingressMap.trlweb!;
    const id = web.replace(/^in_/, "");
    assert.deepEqual(chainBody(script, `${web}_k8s`), [
      `    ip saddr @k8sany4_${id}_ingress counter return comment "allowed on any port"`,
      `    ip saddr . meta l4proto . th dport @k8sport4_${id}_ingress counter return comment "allowed ports"`,
      `    ip6 saddr @k8sany6_${id}_ingress counter return comment "allowed on any port"`,
      `    ip6 saddr . meta l4proto . th dport @k8sport6_${id}_ingress counter return comment "allowed ports"`,
      '    counter drop comment "isolated by NetworkPolicy/prod/np"',
    ]);
    const out = rs.egressMap.trlweb!;
    assert.match(chainBody(script, `${out}_k8s`)[1]!, /^ {4}ip daddr \. meta l4proto \. th dport @k8sport4_\w+_egress counter return/);
  });
});

describe("renderMatch", () => {
  const cases: Array<[string, Match, string]> = [
    ["nothing", {}, ""],
    ["interfaces", { iif: "trl1", oif: "eth0" }, 'iifname "trl1" oifname "eth0"'],
    ["family alone", { family: 6 }, "meta nfproto ipv6"],
    ["a port", { family: 4, protocol: "TCP", dports: ["80"] }, "meta nfproto ipv4 tcp dport { 80 }"],
    ["ports and a range", { family: 6, protocol: "UDP", dports: ["53", "8000-8080"] }, "meta nfproto ipv6 udp dport { 53, 8000-8080 }"],
    ["SCTP port", { family: 4, protocol: "SCTP", dports: ["9000"] }, "meta nfproto ipv4 sctp dport { 9000 }"],
    ["protocol alone", { family: 4, protocol: "UDP" }, "meta nfproto ipv4 meta l4proto udp"],
    ["peer set and range", { family: 4, saddrSet: "pods4_a", protocol: "TCP", dports: ["8000-8080"] }, "ip saddr @pods4_a tcp dport { 8000-8080 }"],
    ["egress peer set, v6", { family: 6, daddrSet: "pods6_a" }, "ip6 daddr @pods6_a"],
    ["named port concat set", { family: 4, protocol: "TCP", daddrPortSet: "named4_a" }, "meta l4proto tcp ip daddr . tcp dport @named4_a"],
    ["named port concat set, v6 SCTP", { family: 6, protocol: "SCTP", daddrPortSet: "named6_a" }, "meta l4proto sctp ip6 daddr . sctp dport @named6_a"],
    ["ipBlock with except (egress)", { family: 4, daddrSet: "block4_a", daddrNotSet: "except4_b" }, "ip daddr @block4_a ip daddr != @except4_b"],
    ["ipBlock with except (ingress), v6, port", { family: 6, saddrSet: "block6_a", saddrNotSet: "except6_b", protocol: "UDP", dports: ["53"] },
      "ip6 saddr @block6_a ip6 saddr != @except6_b udp dport { 53 }"],
    ["ipBlock with except and a named port", { family: 4, daddrSet: "block4_a", daddrNotSet: "except4_b", protocol: "TCP", daddrPortSet: "named4_c" },
      "ip daddr @block4_a ip daddr != @except4_b meta l4proto tcp ip daddr . tcp dport @named4_c"],
    ["anti-spoofing", { family: 4, saddrNot: ["10.0.0.1", "10.0.0.2"] }, "ip saddr != { 10.0.0.1, 10.0.0.2 }"],
    ["anti-spoofing v6", { family: 6, saddrNot: ["fd00::1"] }, "ip6 saddr != { fd00::1 }"],
    ["neighbour discovery", { family: 6, nd: true }, "icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert }"],
    ["flattened tier, ingress", { family: 4, addrProtoPortSet: { set: "k8sport4_a_ingress", side: "saddr" } }, "ip saddr . meta l4proto . th dport @k8sport4_a_ingress"],
    ["flattened tier, egress, v6", { family: 6, addrProtoPortSet: { set: "k8sport6_a_egress", side: "daddr" } }, "ip6 daddr . meta l4proto . th dport @k8sport6_a_egress"],
    ["flattened tier, any port", { family: 6, saddrSet: "k8sany6_a_ingress" }, "ip6 saddr @k8sany6_a_ingress"],
  ];
  for (const [name, m, want] of cases) {
    it(name, () => assert.equal(renderMatch(m), want));
  }
});

describe("renderRule", () => {
  it("renders each verdict, and comments without quotes, at most 120 characters", () => {
    assert.equal(renderRule({ match: {}, verdict: "drop" }), "    drop");
    assert.equal(renderRule({ match: { family: 4 }, verdict: "accept" }), "    meta nfproto ipv4 accept");
    assert.equal(renderRule({ match: {}, verdict: "return", comment: 'say "hi"' }), '    return comment "say hi"');
    assert.equal(renderRule({ match: {}, verdict: { jump: "c1" } }), "    jump c1");
    assert.equal(renderRule({ match: {}, verdict: { goto: "c1_k8s" } }), "    goto c1_k8s");
    assert.equal(renderRule({ match: {}, verdict: { log: "TrellisPolicy/ns/p ingress[0]" } }), '    log prefix "trellis TrellisPolicy/ns/p ingress[0]: "');
    const long = renderRule({ match: {}, verdict: "drop", comment: "x".repeat(300) });
    assert.equal(long, `    drop comment "${"x".repeat(120)}"`);
    const prefix = /log prefix "([^"]*)"/.exec(renderRule({ match: {}, verdict: { log: "y".repeat(300) } }))![1]!;
    assert.ok(prefix.length <= 127);
  });
});

/** richModel with db and edge joining app=web, and web leaving it. */
function relabelled(): ModelBuilder {
  const b = richModel();
  b.pods.find((p) => p.name === "db")!.labels = { app: "web" };
  b.pods.find((p) => p.name === "edge")!.labels = { app: "web" };
  b.pods.find((p) => p.name === "web")!.labels = { app: "frontend" };
  return b;
}

describe("renderSetDelta", () => {
  const base = richModel();
  const before = compilePolicy(base.build(), "n1");

  it("is empty when nothing changed", () => {
    assert.equal(renderSetDelta(before, compilePolicy(base.build(), "n1")), "");
  });

  it("deletes then adds elements, per set, when only memberships moved", () => {
    const delta = renderSetDelta(before, compilePolicy(relabelled().build(), "n1"))!;
    // Ordered tier: the peer {podSelector: app=web}, one set per family, named after the selector.
    const v4 = before.sets.find((s) => s.name.startsWith("pods4_") && s.elements.join() === "10.244.1.10")!.name;
    const v6 = v4.replace("pods4_", "pods6_");
    // Kubernetes tier of web's and api's ingress: edge (10.1.255.255) now has the same ports as the
    // range above it, so that range grows by one address (one element out, one in, per box); web's
    // IPv6 address leaves.
    const grown = (ports: string[]): string[] => [
      `delete element inet trellis %s { ${ports.map((p) => `10.2.0.0-10.255.255.255 . ${p}`).join(", ")} }`,
      `add element inet trellis %s { ${ports.map((p) => `10.1.255.255-10.255.255.255 . ${p}`).join(", ")} }`,
    ];
    const id = (hostIf: string): string => before.ingressMap[hostIf]!.replace(/^in_/, "");
    const blocks: Array<[string, string[]]> = [
      [`k8sport4_${id("trlweb")}_ingress`, grown(["sctp . 0-65535", "tcp . 80", "tcp . 8000-8080", "udp . 53"])],
      [`k8sport4_${id("trlapi")}_ingress`, grown(["sctp . 0-65535", "tcp . 8000-8080", "udp . 53"])],
      [`k8sport6_${id("trlweb")}_ingress`, ["delete element inet trellis %s { fd00:1::10 . sctp . 0-65535, fd00:1::10 . tcp . 80, fd00:1::10 . tcp . 8000-8080, fd00:1::10 . udp . 53 }"]],
      [`k8sport6_${id("trlapi")}_ingress`, ["delete element inet trellis %s { fd00:1::10 . sctp . 0-65535, fd00:1::10 . tcp . 8000-8080, fd00:1::10 . udp . 53 }"]],
      [v4, ["delete element inet trellis %s { 10.244.1.10 }", "add element inet trellis %s { 10.1.255.255, 10.244.2.10 }"]],
      [v6, ["delete element inet trellis %s { fd00:1::10 }"]],
    ];
    const want = blocks.sort(([a], [b]) => a.localeCompare(b)).flatMap(([name, ls]) => ls.map((l) => l.replace("%s", name)));
    assert.equal(delta, [...want, ""].join("\n"));
  });

  it("is undefined when chains, maps or the list of sets change", () => {
    const more = base.clone().pod("prod/new", { labels: {}, ips: "10.244.1.50", node: "n1", hostIf: "trlnew" });
    assert.equal(renderSetDelta(before, compilePolicy(more.build(), "n1")), undefined);
    const withSet: Ruleset = { ...before, sets: [...before.sets, { name: "pods4_extra", family: 4, kind: "addr", elements: [] }] };
    assert.equal(renderSetDelta(before, withSet), undefined);
  });
});

describe("nft accepts the script", () => {
  const root = process.getuid?.() === 0;
  const nft = spawnSync("nft", ["--version"]).status === 0;
  const ip = spawnSync("ip", ["-V"]).status === 0;
  it("in a throwaway network namespace: the full script, a set delta, and the full script again", { skip: !root || !nft || !ip ? "needs root, nft and ip" : false }, () => {
    const ns = `trltest-${randomBytes(4).toString("hex")}`;
    const run = (args: string[], input?: string): void => {
      const r = spawnSync("ip", ["netns", "exec", ns, ...args], { input, encoding: "utf8" });
      assert.equal(r.status, 0, `${args.join(" ")}: ${r.stderr}\n${input ?? ""}`);
    };
    const add = spawnSync("ip", ["netns", "add", ns], { encoding: "utf8" });
    assert.equal(add.status, 0, add.stderr);
    try {
      const before = compilePolicy(richModel().build(), "n1");
      const after = compilePolicy(relabelled().build(), "n1");
      const delta = renderSetDelta(before, after)!;
      // The delta replaces range elements of the Kubernetes tier by overlapping ones in one transaction.
      assert.match(delta, /^delete element inet trellis k8sport4_\w+ \{ 10\.2\.0\.0-10\.255\.255\.255 \. sctp/m);
      assert.match(delta, /^add element inet trellis k8sport4_\w+ \{ 10\.1\.255\.255-10\.255\.255\.255 \. sctp/m);
      run(["nft", "-c", "-f", "-"], renderRuleset(before));
      run(["nft", "-f", "-"], renderRuleset(before));
      const webPorts = `k8sport4_${before.ingressMap.trlweb!.replace(/^in_/, "")}_ingress`;
      /** Is the (address . protocol . port) in the kernel's set? Asks the kernel, not our text. */
      const has = (set: string, element: string): boolean =>
        spawnSync("ip", ["netns", "exec", ns, "nft", "get", "element", "inet", "trellis", set, `{ ${element} }`], { encoding: "utf8" }).status === 0;
      assert.equal(has(webPorts, "10.1.255.255 . tcp . 80"), false);
      assert.equal(has(webPorts, "10.2.0.0 . tcp . 80"), true);
      run(["nft", "-f", "-"], delta);
      assert.equal(has(webPorts, "10.1.255.255 . tcp . 80"), true);
      assert.equal(has(webPorts, "10.1.255.254 . tcp . 80"), false);
      assert.equal(has(webPorts, "10.1.255.255 . tcp . 81"), false);
      assert.equal(has(webPorts, "10.255.255.255 . udp . 53"), true);
      assert.equal(has(webPorts, "10.255.255.255 . udp . 54"), false);
      const sets = (): string => {
        const listed = spawnSync("ip", ["netns", "exec", ns, "nft", "-j", "list", "table", "inet", "trellis"], { encoding: "utf8" });
        assert.equal(listed.status, 0, listed.stderr);
        const objects = (JSON.parse(listed.stdout) as { nftables: Array<{ set?: { name: string; elem?: unknown[] } }> }).nftables;
        return JSON.stringify(objects.flatMap((o) => (o.set ? [[o.set.name, (o.set.elem ?? []).map((e) => JSON.stringify(e)).sort()]] : []))
          .sort(([a], [b]) => String(a).localeCompare(String(b))));
      };
      const afterDelta = sets();
      assert.match(afterDelta, /10\.1\.255\.255/);
      assert.match(afterDelta, /10\.244\.2\.10/);
      // The delta leaves the kernel with exactly the sets the full script of the new ruleset writes.
      run(["nft", "-f", "-"], renderRuleset(after));
      assert.equal(sets(), afterDelta);
    } finally {
      spawnSync("ip", ["netns", "del", ns]);
    }
  });
});
