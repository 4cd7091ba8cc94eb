// Truth tables over the evaluator: each NetworkPolicy feature and each rule of the ordered tier,
// with its edge cases, on one small cluster described the way users describe it (policies in YAML).
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { evaluate, PolicyIndex, type Packet, type Verdict } from "./evaluate.js";
import { ModelBuilder, yaml } from "./model-builder.js";
import type { NetworkPolicy } from "./model.js";

const EXT = "203.0.113.5";
const NODE1 = "192.168.0.1";
const NODE2 = "192.168.0.2";

/**
 * prod {env: prod, team: a}: web (n1), api (n1), db (n2, dual stack), tool (n1);
 * dev {env: dev}: web (n2), tool (n2); ops (no labels): mon (n1).
 * Named port "http" is 80 on the web pods and 8080 on api.
 */
function cluster(): ModelBuilder {
  return new ModelBuilder()
    .node("n1", NODE1).node("n2", NODE2)
    .namespace("prod", { env: "prod", team: "a" }).namespace("dev", { env: "dev" }).namespace("ops")
    .pod("prod/web", { labels: { app: "web", tier: "front" }, ports: { http: 80, metrics: 9090 }, ips: "10.244.1.10", node: "n1" })
    .pod("prod/api", { labels: { app: "api", tier: "back" }, ports: { http: 8080, dns: "53/UDP" }, ips: "10.244.1.11", node: "n1" })
    .pod("prod/db", { labels: { app: "db", tier: "back" }, ports: { sql: 5432 }, ips: ["10.244.2.10", "fd00:2::10"], node: "n2" })
    .pod("prod/tool", { labels: { app: "tool" }, ips: "10.244.1.13", node: "n1" })
    .pod("dev/web", { labels: { app: "web", tier: "front" }, ports: { http: 80 }, ips: "10.244.2.11", node: "n2" })
    .pod("dev/tool", { labels: { app: "tool" }, ips: "10.244.2.12", node: "n2" })
    .pod("ops/mon", { labels: { app: "mon" }, ips: "10.244.1.12", node: "n1" });
}

/** `port` is "80/TCP", "53/UDP", "9000/SCTP" or "ICMP". */
function check(b: ModelBuilder, from: string, to: string, port = "80/TCP"): Verdict {
  const [n, proto] = port === "ICMP" ? ["0", "ICMP"] : port.split("/");
  return evaluate(new PolicyIndex(b.build()), { src: b.ip(from), dst: b.ip(to), protocol: (proto ?? "TCP") as Packet["protocol"], port: Number(n) });
}

/** ok = allowed; in / out / both = denied by ingress, by egress, by both. */
type Expect = "ok" | "in" | "out" | "both";
type Row = [from: string, to: string, port: string, expect: Expect];

function describeVerdict(v: Verdict): string {
  return `egress: ${v.egress ? `${v.egress.allowed} (${v.egress.reason})` : "-"}; ingress: ${v.ingress ? `${v.ingress.allowed} (${v.ingress.reason})` : "-"}`;
}

function table(b: ModelBuilder, rows: Row[]): void {
  for (const [from, to, port, expect] of rows) {
    const v = check(b, from, to, port);
    const got: Expect = v.allowed ? "ok"
      : v.ingress?.allowed === false && v.egress?.allowed === false ? "both"
      : v.ingress?.allowed === false ? "in" : "out";
    assert.equal(got, expect, `${from} -> ${to} ${port}: ${describeVerdict(v)}`);
    assert.equal(v.allowed, (v.egress?.allowed ?? true) && (v.ingress?.allowed ?? true));
  }
}

const np = (ns: string, name: string, spec: string): string => yaml`
  apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata:
    name: ${name}
    namespace: ${ns}
  spec:
  ` + spec.split("\n").map((l) => `  ${l}`).join("\n") + "\n";

const tp = (ns: string, name: string, spec: string): string => yaml`
  apiVersion: trellis.dev/v1
  kind: TrellisPolicy
  metadata:
    name: ${name}
    namespace: ${ns}
  spec:
  ` + spec.split("\n").map((l) => `  ${l}`).join("\n") + "\n";

const gtp = (name: string, spec: string): string => yaml`
  apiVersion: trellis.dev/v1
  kind: GlobalTrellisPolicy
  metadata:
    name: ${name}
  spec:
  ` + spec.split("\n").map((l) => `  ${l}`).join("\n") + "\n";

describe("evaluate: no policy", () => {
  it("allows everything, in both directions, and says the pods are not isolated", () => {
    const b = cluster();
    const ends = ["prod/web", "prod/db", "dev/tool", "ops/mon", EXT];
    const rows: Row[] = [];
    for (const a of ends) for (const z of ends) if (a !== z) rows.push([a, z, "80/TCP", "ok"], [a, z, "53/UDP", "ok"]);
    table(b, rows);
    const v = check(b, "prod/web", "prod/db");
    assert.match(v.egress!.reason, /not isolated/);
    assert.match(v.ingress!.reason, /no NetworkPolicy selects prod\/db for ingress/);
  });

  it("has no say for an end that is not a pod", () => {
    const b = cluster();
    assert.equal(check(b, "prod/web", EXT).ingress, undefined);
    assert.equal(check(b, EXT, "prod/web").egress, undefined);
    assert.deepEqual(check(b, EXT, "198.51.100.1"), { allowed: true });
  });
});

describe("evaluate: isolation and policyTypes", () => {
  it("a default-deny (podSelector {}) isolates every pod of its namespace for ingress only", () => {
    const b = cluster().apply(np("prod", "default-deny", "podSelector: {}"));
    assert.deepEqual((b.policies[0] as NetworkPolicy).policyTypes, ["Ingress"]);
    table(b, [
      ["dev/tool", "prod/web", "80/TCP", "in"],
      ["prod/api", "prod/web", "80/TCP", "in"],
      ["prod/web", "prod/db", "5432/TCP", "in"],
      ["prod/web", "dev/web", "80/TCP", "ok"],
      ["prod/web", EXT, "443/TCP", "ok"],
      [EXT, "prod/web", "80/TCP", "in"],
      ["dev/tool", "ops/mon", "80/TCP", "ok"],
    ]);
    const v = check(b, "dev/tool", "prod/web");
    assert.equal(v.ingress!.policy, undefined);
    assert.equal(v.ingress!.rule, undefined);
    assert.match(v.ingress!.reason, /isolated for ingress by NetworkPolicy\/prod\/default-deny/);
  });

  it("policyTypes [Egress] with no egress rules denies all egress and leaves ingress open", () => {
    const b = cluster().apply(np("prod", "no-egress", "podSelector: {}\npolicyTypes: [Egress]"));
    table(b, [
      ["prod/web", "prod/db", "5432/TCP", "out"],
      ["prod/web", EXT, "443/TCP", "out"],
      ["prod/web", "dev/web", "80/TCP", "out"],
      ["dev/tool", "prod/web", "80/TCP", "ok"],
      [EXT, "prod/db", "5432/TCP", "ok"],
      ["dev/web", "dev/tool", "80/TCP", "ok"],
    ]);
  });

  it("without policyTypes, an egress section adds Egress to the always-present Ingress", () => {
    const b = cluster().apply(np("prod", "web-egress", yaml`
      podSelector: {matchLabels: {app: web}}
      egress:
        - to: [{podSelector: {matchLabels: {app: db}}}]`));
    assert.deepEqual((b.policies[0] as NetworkPolicy).policyTypes, ["Ingress", "Egress"]);
    table(b, [
      ["prod/web", "prod/db", "5432/TCP", "ok"],
      ["prod/web", "prod/api", "8080/TCP", "out"],
      ["prod/web", EXT, "443/TCP", "out"],
      ["prod/api", "prod/web", "80/TCP", "in"],
      ["dev/web", "prod/web", "80/TCP", "in"],
      ["prod/api", "prod/db", "5432/TCP", "ok"],
    ]);
  });

  it("without policyTypes and without an egress section, egress is not isolated", () => {
    const b = cluster().apply(np("prod", "web-ingress", yaml`
      podSelector: {matchLabels: {app: web}}
      ingress:
        - from: [{podSelector: {}}]`));
    assert.deepEqual((b.policies[0] as NetworkPolicy).policyTypes, ["Ingress"]);
    table(b, [
      ["prod/web", EXT, "443/TCP", "ok"],
      ["prod/web", "dev/web", "80/TCP", "ok"],
      ["prod/api", "prod/web", "80/TCP", "ok"],
      ["dev/web", "prod/web", "80/TCP", "in"],
    ]);
  });

  it("without policyTypes, an empty egress list does not add Egress (Kubernetes defaults on len(egress) != 0)", () => {
    const b = cluster().apply(np("prod", "web-ingress", "podSelector: {matchLabels: {app: web}}\negress: []"));
    assert.deepEqual((b.policies[0] as NetworkPolicy).policyTypes, ["Ingress"]);
    table(b, [["prod/web", EXT, "443/TCP", "ok"], [EXT, "prod/web", "80/TCP", "in"]]);
  });

  it("isolates only the pods a policy selects, only in the directions of its policyTypes", () => {
    const b = cluster()
      .apply(np("prod", "db-closed", "podSelector: {matchLabels: {app: db}}\npolicyTypes: [Ingress]\ningress: []"))
      .apply(np("prod", "web-closed", "podSelector: {matchLabels: {app: web}}\npolicyTypes: [Egress]\negress: []"));
    table(b, [
      [EXT, "prod/db", "5432/TCP", "in"],
      ["prod/db", EXT, "443/TCP", "ok"],
      [EXT, "prod/web", "80/TCP", "ok"],
      ["prod/web", EXT, "443/TCP", "out"],
      ["prod/web", "prod/db", "5432/TCP", "both"],
      ["dev/web", EXT, "443/TCP", "ok"],
      ["prod/api", "prod/tool", "80/TCP", "ok"],
    ]);
  });
});

describe("evaluate: peers", () => {
  const onDb = (from: string): string => np("prod", "db", `podSelector: {matchLabels: {app: db}}\ningress:\n  - from: ${from}`);

  it("an empty podSelector means every pod of the policy's namespace (not other namespaces, not addresses)", () => {
    table(cluster().apply(onDb("[{podSelector: {}}]")), [
      ["prod/web", "prod/db", "5432/TCP", "ok"],
      ["prod/tool", "prod/db", "5432/TCP", "ok"],
      ["dev/web", "prod/db", "5432/TCP", "in"],
      ["ops/mon", "prod/db", "5432/TCP", "in"],
      [EXT, "prod/db", "5432/TCP", "in"],
    ]);
  });

  it("an empty namespaceSelector means every pod of every namespace (still not addresses)", () => {
    table(cluster().apply(onDb("[{namespaceSelector: {}}]")), [
      ["prod/web", "prod/db", "5432/TCP", "ok"],
      ["dev/web", "prod/db", "5432/TCP", "ok"],
      ["ops/mon", "prod/db", "5432/TCP", "ok"],
      [EXT, "prod/db", "5432/TCP", "in"],
      [NODE2, "prod/api", "80/TCP", "ok"],
    ]);
  });

  it("namespaceSelector and podSelector in ONE peer are ANDed", () => {
    table(cluster().apply(onDb("[{namespaceSelector: {matchLabels: {env: dev}}, podSelector: {matchLabels: {app: tool}}}]")), [
      ["dev/tool", "prod/db", "5432/TCP", "ok"],
      ["dev/web", "prod/db", "5432/TCP", "in"],
      ["prod/tool", "prod/db", "5432/TCP", "in"],
      ["ops/mon", "prod/db", "5432/TCP", "in"],
    ]);
  });

  it("namespaceSelector and podSelector as TWO peers are ORed (the podSelector one in the policy's namespace)", () => {
    table(cluster().apply(onDb("[{namespaceSelector: {matchLabels: {env: dev}}}, {podSelector: {matchLabels: {app: tool}}}]")), [
      ["dev/tool", "prod/db", "5432/TCP", "ok"],
      ["dev/web", "prod/db", "5432/TCP", "ok"],
      ["prod/tool", "prod/db", "5432/TCP", "ok"],
      ["prod/web", "prod/db", "5432/TCP", "in"],
      ["ops/mon", "prod/db", "5432/TCP", "in"],
    ]);
  });

  it("every namespace has the automatic kubernetes.io/metadata.name label, even without labels or a Namespace object", () => {
    table(cluster().apply(onDb("[{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ops}}}]")), [
      ["ops/mon", "prod/db", "5432/TCP", "ok"],
      ["dev/tool", "prod/db", "5432/TCP", "in"],
    ]);
    const b = cluster().pod("ghost/x", { labels: {}, ips: "10.244.1.99", node: "n1" })
      .apply(onDb("[{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ghost}}}]"));
    table(b, [["ghost/x", "prod/db", "5432/TCP", "ok"], ["ops/mon", "prod/db", "5432/TCP", "in"]]);
  });

  it("matchExpressions: In, NotIn (matches when the key is absent), Exists, DoesNotExist", () => {
    const expr = (e: string): ModelBuilder => cluster().apply(onDb(`[{podSelector: {matchExpressions: [${e}]}}]`));
    table(expr("{key: app, operator: In, values: [web, api]}"), [
      ["prod/web", "prod/db", "5432/TCP", "ok"], ["prod/api", "prod/db", "5432/TCP", "ok"], ["prod/tool", "prod/db", "5432/TCP", "in"],
    ]);
    table(expr("{key: tier, operator: NotIn, values: [front]}"), [
      ["prod/web", "prod/db", "5432/TCP", "in"], ["prod/api", "prod/db", "5432/TCP", "ok"], ["prod/tool", "prod/db", "5432/TCP", "ok"],
    ]);
    table(expr("{key: tier, operator: Exists}"), [
      ["prod/web", "prod/db", "5432/TCP", "ok"], ["prod/api", "prod/db", "5432/TCP", "ok"], ["prod/tool", "prod/db", "5432/TCP", "in"],
    ]);
    table(expr("{key: tier, operator: DoesNotExist}"), [
      ["prod/web", "prod/db", "5432/TCP", "in"], ["prod/api", "prod/db", "5432/TCP", "in"], ["prod/tool", "prod/db", "5432/TCP", "ok"],
    ]);
    // matchLabels and matchExpressions of one selector are ANDed.
    table(cluster().apply(onDb("[{podSelector: {matchLabels: {tier: back}, matchExpressions: [{key: app, operator: In, values: [web, api]}]}}]")), [
      ["prod/api", "prod/db", "5432/TCP", "ok"], ["prod/web", "prod/db", "5432/TCP", "in"],
    ]);
    // On namespaces too: ops has no env label, so NotIn matches it.
    table(cluster().apply(onDb("[{namespaceSelector: {matchExpressions: [{key: env, operator: NotIn, values: [prod]}]}}]")), [
      ["dev/tool", "prod/db", "5432/TCP", "ok"], ["ops/mon", "prod/db", "5432/TCP", "ok"], ["prod/web", "prod/db", "5432/TCP", "in"],
    ]);
  });

  it("ipBlock matches addresses in cidr and not in except, pod addresses included", () => {
    table(cluster().apply(onDb("[{ipBlock: {cidr: 10.244.0.0/16, except: [10.244.2.0/24]}}]")), [
      ["prod/web", "prod/db", "5432/TCP", "ok"],
      ["ops/mon", "prod/db", "5432/TCP", "ok"],
      ["dev/web", "prod/db", "5432/TCP", "in"],
      [EXT, "prod/db", "5432/TCP", "in"],
    ]);
    const b = cluster().apply(onDb("[{ipBlock: {cidr: 198.51.100.0/24, except: [198.51.100.0/28]}}, {ipBlock: {cidr: '2001:db8::/32', except: ['2001:db8:bad::/48']}}]"));
    table(b, [
      ["198.51.100.0", "prod/db", "5432/TCP", "in"],
      ["198.51.100.15", "prod/db", "5432/TCP", "in"],
      ["198.51.100.16", "prod/db", "5432/TCP", "ok"],
      ["198.51.100.255", "prod/db", "5432/TCP", "ok"],
      ["198.51.101.0", "prod/db", "5432/TCP", "in"],
      ["198.51.99.255", "prod/db", "5432/TCP", "in"],
      ["prod/web", "prod/db", "5432/TCP", "in"],
      ["2001:db8::1", "fd00:2::10", "5432/TCP", "ok"],
      ["2001:db8:bad::1", "fd00:2::10", "5432/TCP", "in"],
      ["2001:db9::1", "fd00:2::10", "5432/TCP", "in"],
    ]);
  });

  it("egress to an ipBlock reaches a non-pod address; the verdict names the policy and rule", () => {
    const b = cluster().apply(np("prod", "web-out", yaml`
      podSelector: {matchLabels: {app: web}}
      policyTypes: [Egress]
      egress:
        - to: [{ipBlock: {cidr: 10.99.0.0/16}}]
        - to: [{ipBlock: {cidr: 203.0.113.0/24}}]
          ports: [{port: 443}]`));
    table(b, [
      ["prod/web", EXT, "443/TCP", "ok"],
      ["prod/web", EXT, "80/TCP", "out"],
      ["prod/web", "198.51.100.1", "443/TCP", "out"],
      ["prod/web", "prod/db", "443/TCP", "out"],
      ["dev/web", "198.51.100.1", "443/TCP", "ok"],
    ]);
    const v = check(b, "prod/web", EXT, "443/TCP");
    assert.equal(v.ingress, undefined);
    assert.equal(v.egress!.policy, "NetworkPolicy/prod/web-out");
    assert.equal(v.egress!.rule, 1);
  });
});

describe("evaluate: ports", () => {
  const onWeb = (ports: string): ModelBuilder => cluster().apply(np("prod", "web", `podSelector: {matchLabels: {app: web}}\ningress:\n  - ports: ${ports}`));

  it("a number matches that port of that protocol (TCP by default)", () => {
    table(onWeb("[{port: 80}]"), [
      [EXT, "prod/web", "80/TCP", "ok"], [EXT, "prod/web", "81/TCP", "in"], [EXT, "prod/web", "79/TCP", "in"], [EXT, "prod/web", "80/UDP", "in"],
      [EXT, "prod/web", "80/SCTP", "in"],
    ]);
  });

  it("UDP and SCTP match only their protocol", () => {
    table(onWeb("[{protocol: UDP, port: 53}]"), [
      [EXT, "prod/web", "53/UDP", "ok"], [EXT, "prod/web", "53/TCP", "in"], [EXT, "prod/web", "54/UDP", "in"],
    ]);
    table(onWeb("[{protocol: SCTP, port: 9000}]"), [
      [EXT, "prod/web", "9000/SCTP", "ok"], [EXT, "prod/web", "9000/TCP", "in"], [EXT, "prod/web", "9000/UDP", "in"],
    ]);
  });

  it("a protocol without a port matches every port of the protocol", () => {
    table(onWeb("[{protocol: UDP}]"), [
      [EXT, "prod/web", "1/UDP", "ok"], [EXT, "prod/web", "65535/UDP", "ok"], [EXT, "prod/web", "80/TCP", "in"],
    ]);
  });

  it("endPort makes an inclusive range", () => {
    table(onWeb("[{port: 8000, endPort: 8080}]"), [
      [EXT, "prod/web", "7999/TCP", "in"], [EXT, "prod/web", "8000/TCP", "ok"], [EXT, "prod/web", "8040/TCP", "ok"],
      [EXT, "prod/web", "8080/TCP", "ok"], [EXT, "prod/web", "8081/TCP", "in"], [EXT, "prod/web", "8000/UDP", "in"],
    ]);
    table(onWeb("[{port: 8000, endPort: 8000}]"), [[EXT, "prod/web", "8000/TCP", "ok"], [EXT, "prod/web", "8001/TCP", "in"]]);
  });

  it("ICMP matches only rules without ports", () => {
    table(onWeb("[{protocol: TCP}]"), [[EXT, "prod/web", "ICMP", "in"], [EXT, "prod/web", "1/TCP", "ok"]]);
    table(cluster().apply(np("prod", "web", "podSelector: {matchLabels: {app: web}}\ningress:\n  - from: [{ipBlock: {cidr: 0.0.0.0/0}}]")), [
      [EXT, "prod/web", "ICMP", "ok"],
    ]);
    table(cluster().apply(np("prod", "web", "podSelector: {matchLabels: {app: web}}\npolicyTypes: [Egress]")), [["prod/web", EXT, "ICMP", "out"]]);
  });

  it("several ports are a union", () => {
    table(onWeb("[{port: 80}, {protocol: UDP, port: 53}]"), [
      [EXT, "prod/web", "80/TCP", "ok"], [EXT, "prod/web", "53/UDP", "ok"], [EXT, "prod/web", "53/TCP", "in"], [EXT, "prod/web", "80/UDP", "in"],
    ]);
  });

  it("ingress: a named port resolves on each destination pod (http is 80 on web, 8080 on api)", () => {
    const b = cluster().apply(np("prod", "http", yaml`
      podSelector: {matchExpressions: [{key: app, operator: In, values: [web, api]}]}
      ingress:
        - ports: [{port: http}]`));
    table(b, [
      ["dev/tool", "prod/web", "80/TCP", "ok"],
      ["dev/tool", "prod/web", "8080/TCP", "in"],
      ["dev/tool", "prod/api", "8080/TCP", "ok"],
      ["dev/tool", "prod/api", "80/TCP", "in"],
      ["dev/tool", "prod/web", "80/UDP", "in"],
    ]);
  });

  it("egress: a named port resolves on the destination pod; a non-pod destination has no named ports", () => {
    const b = cluster().apply(np("prod", "tool-out", "podSelector: {matchLabels: {app: tool}}\npolicyTypes: [Egress]\negress:\n  - ports: [{port: http}]"));
    table(b, [
      ["prod/tool", "prod/web", "80/TCP", "ok"],
      ["prod/tool", "prod/web", "8080/TCP", "out"],
      ["prod/tool", "prod/api", "8080/TCP", "ok"],
      ["prod/tool", "prod/api", "80/TCP", "out"],
      ["prod/tool", "dev/web", "80/TCP", "ok"],
      ["prod/tool", "prod/db", "80/TCP", "out"],
      ["prod/tool", EXT, "80/TCP", "out"],
    ]);
  });

  it("a named port matches only with its own protocol", () => {
    const udp = cluster().apply(np("prod", "dns", "podSelector: {matchLabels: {app: tool}}\npolicyTypes: [Egress]\negress:\n  - ports: [{protocol: UDP, port: dns}]"));
    table(udp, [["prod/tool", "prod/api", "53/UDP", "ok"], ["prod/tool", "prod/api", "53/TCP", "out"]]);
    const tcp = cluster().apply(np("prod", "dns", "podSelector: {matchLabels: {app: tool}}\npolicyTypes: [Egress]\negress:\n  - ports: [{port: dns}]"));
    table(tcp, [["prod/tool", "prod/api", "53/UDP", "out"], ["prod/tool", "prod/api", "53/TCP", "out"]]);
  });
});

describe("evaluate: rules and policies combine", () => {
  it("several policies selecting one pod are a union; the verdict names the allowing policy and rule", () => {
    const b = cluster()
      .apply(np("prod", "db-from-web", "podSelector: {matchLabels: {app: db}}\ningress:\n  - from: [{podSelector: {matchLabels: {app: web}}}]"))
      .apply(np("prod", "db-from-others", yaml`
        podSelector: {matchLabels: {app: db}}
        ingress:
          - from: [{podSelector: {matchLabels: {app: api}}}]
            ports: [{port: 5432}]
          - from: [{podSelector: {matchLabels: {app: tool}}}]
            ports: [{port: 22}]`));
    table(b, [
      ["prod/web", "prod/db", "22/TCP", "ok"],
      ["prod/api", "prod/db", "5432/TCP", "ok"],
      ["prod/api", "prod/db", "22/TCP", "in"],
      ["prod/tool", "prod/db", "22/TCP", "ok"],
      ["prod/tool", "prod/db", "5432/TCP", "in"],
      ["ops/mon", "prod/db", "5432/TCP", "in"],
    ]);
    const at = (from: string, port: string): [string | undefined, number | undefined] => {
      const v = check(b, from, "prod/db", port).ingress!;
      return [v.policy, v.rule];
    };
    assert.deepEqual(at("prod/web", "22/TCP"), ["NetworkPolicy/prod/db-from-web", 0]);
    assert.deepEqual(at("prod/api", "5432/TCP"), ["NetworkPolicy/prod/db-from-others", 0]);
    assert.deepEqual(at("prod/tool", "22/TCP"), ["NetworkPolicy/prod/db-from-others", 1]);
  });

  it("a rule without from, with from: [], and an empty rule all mean every source", () => {
    for (const rule of ["- ports: [{port: 5432}]", "- from: []\n    ports: [{port: 5432}]"]) {
      table(cluster().apply(np("prod", "db", `podSelector: {matchLabels: {app: db}}\ningress:\n  ${rule}`)), [
        [EXT, "prod/db", "5432/TCP", "ok"], ["dev/tool", "prod/db", "5432/TCP", "ok"], ["dev/tool", "prod/db", "22/TCP", "in"],
      ]);
    }
    table(cluster().apply(np("prod", "db", "podSelector: {matchLabels: {app: db}}\ningress: [{}]")), [
      [EXT, "prod/db", "22/TCP", "ok"], ["dev/tool", "prod/db", "53/UDP", "ok"],
    ]);
    table(cluster().apply(np("prod", "web", "podSelector: {matchLabels: {app: web}}\npolicyTypes: [Egress]\negress:\n  - to: []\n    ports: [{port: 443}]")), [
      ["prod/web", EXT, "443/TCP", "ok"], ["prod/web", "dev/web", "443/TCP", "ok"], ["prod/web", EXT, "80/TCP", "out"],
    ]);
  });

  it("a NetworkPolicy selects only pods of its own namespace", () => {
    table(cluster().apply(np("prod", "web", "podSelector: {matchLabels: {app: web}}")), [
      [EXT, "prod/web", "80/TCP", "in"], [EXT, "dev/web", "80/TCP", "ok"],
    ]);
  });
});

describe("evaluate: own node", () => {
  it("traffic from the pod's own node is allowed even under default-deny; another node's is not", () => {
    const b = cluster().apply(np("prod", "deny", "podSelector: {}\npolicyTypes: [Ingress, Egress]"));
    table(b, [
      [NODE1, "prod/web", "80/TCP", "ok"],
      [NODE2, "prod/web", "80/TCP", "in"],
      [NODE2, "prod/db", "5432/TCP", "ok"],
      [NODE1, "prod/db", "5432/TCP", "in"],
      // Only ingress from the node is exempt: the pod's own egress to its node is policy.
      ["prod/web", NODE1, "10250/TCP", "out"],
    ]);
    assert.match(check(b, NODE1, "prod/web").ingress!.reason, /own node n1/);
  });

  it("comes before the ordered tier too", () => {
    const b = cluster().apply(tp("prod", "deny-all", "order: 1\ningress: [{action: Deny}]"));
    table(b, [[NODE1, "prod/web", "80/TCP", "ok"], [EXT, "prod/web", "80/TCP", "in"]]);
  });
});

describe("evaluate: ordered tier", () => {
  const denyTool = (order: number): string => tp("prod", "deny-tool", `order: ${order}\npodSelector: {matchLabels: {app: db}}\ningress:\n  - action: Deny\n    from: [{podSelector: {matchLabels: {app: tool}}}]`);
  const allowAll = (order: number): string => tp("prod", "allow-all", `order: ${order}\npodSelector: {matchLabels: {app: db}}\ningress:\n  - action: Allow`);

  it("a Deny at a lower order beats an Allow at a higher order; the verdict names policy and rule", () => {
    const b = cluster().apply(denyTool(100)).apply(allowAll(200));
    table(b, [["prod/tool", "prod/db", "5432/TCP", "in"], ["prod/web", "prod/db", "5432/TCP", "ok"], [EXT, "prod/db", "5432/TCP", "ok"]]);
    const denied = check(b, "prod/tool", "prod/db", "5432/TCP").ingress!;
    assert.equal(denied.policy, "TrellisPolicy/prod/deny-tool");
    assert.equal(denied.rule, 0);
    assert.equal(check(b, "prod/web", "prod/db", "5432/TCP").ingress!.policy, "TrellisPolicy/prod/allow-all");
  });

  it("orders compare as numbers (20 before 100), and the default order is 1000", () => {
    table(cluster().apply(denyTool(100)).apply(allowAll(20)), [["prod/tool", "prod/db", "5432/TCP", "ok"]]);
    const byDefault = cluster().apply(tp("prod", "deny-tool", "podSelector: {matchLabels: {app: db}}\ningress: [{action: Deny}]")).apply(allowAll(999));
    table(byDefault, [["prod/tool", "prod/db", "5432/TCP", "ok"]]);
    table(cluster().apply(tp("prod", "deny-tool", "podSelector: {matchLabels: {app: db}}\ningress: [{action: Deny}]")).apply(allowAll(1001)), [
      ["prod/tool", "prod/db", "5432/TCP", "in"],
    ]);
  });

  it("ties of order are broken by name", () => {
    const deny = (name: string): string => tp("prod", name, "order: 100\npodSelector: {matchLabels: {app: db}}\ningress: [{action: Deny}]");
    const allow = (name: string): string => tp("prod", name, "order: 100\npodSelector: {matchLabels: {app: db}}\ningress: [{action: Allow}]");
    const a = cluster().apply(allow("b-allow")).apply(deny("a-deny"));
    table(a, [["prod/web", "prod/db", "5432/TCP", "in"]]);
    assert.equal(check(a, "prod/web", "prod/db").ingress!.policy, "TrellisPolicy/prod/a-deny");
    const z = cluster().apply(deny("b-deny")).apply(allow("a-allow"));
    table(z, [["prod/web", "prod/db", "5432/TCP", "ok"]]);
    assert.equal(check(z, "prod/web", "prod/db").ingress!.policy, "TrellisPolicy/prod/a-allow");
  });

  it("an Allow in the ordered tier overrides a Kubernetes default-deny; Pass hands over to it", () => {
    const b = cluster()
      .apply(np("prod", "default-deny", "podSelector: {}"))
      .apply(tp("prod", "allow-web", yaml`
        order: 10
        podSelector: {matchLabels: {app: db}}
        ingress:
          - action: Allow
            from: [{podSelector: {matchLabels: {app: web}}}]
          - action: Pass`));
    table(b, [
      ["prod/web", "prod/db", "5432/TCP", "ok"],
      ["prod/api", "prod/db", "5432/TCP", "in"],
      ["prod/web", "prod/api", "8080/TCP", "in"],
    ]);
    assert.equal(check(b, "prod/web", "prod/db").ingress!.policy, "TrellisPolicy/prod/allow-web");
    assert.match(check(b, "prod/api", "prod/db").ingress!.reason, /isolated for ingress by NetworkPolicy\/prod\/default-deny/);
  });

  it("Pass skips the remaining ordered policies and lets the NetworkPolicies decide", () => {
    const gate = tp("prod", "gate", yaml`
      order: 10
      podSelector: {matchLabels: {app: db}}
      ingress:
        - action: Pass
          from: [{podSelector: {matchExpressions: [{key: app, operator: In, values: [api, tool]}]}}]
        - action: Allow
          from: [{podSelector: {matchLabels: {app: web}}}]`);
    const later = tp("prod", "later", "order: 20\ningress: [{action: Deny}]");
    const b = cluster().apply(gate).apply(later).apply(np("prod", "allow-tool", "podSelector: {matchLabels: {app: db}}\ningress:\n  - from: [{podSelector: {matchLabels: {app: tool}}}]"));
    table(b, [
      ["prod/web", "prod/db", "5432/TCP", "ok"],
      ["prod/tool", "prod/db", "5432/TCP", "ok"],
      ["prod/api", "prod/db", "5432/TCP", "in"],
      ["ops/mon", "prod/db", "5432/TCP", "in"],
      ["prod/web", "prod/api", "8080/TCP", "in"],
    ]);
    const tool = check(b, "prod/tool", "prod/db", "5432/TCP").ingress!;
    assert.deepEqual([tool.policy, tool.rule], ["NetworkPolicy/prod/allow-tool", 0]);
    assert.deepEqual(tool.logged, ["TrellisPolicy/prod/gate ingress[0] passed to NetworkPolicies"]);
    assert.deepEqual([check(b, "prod/web", "prod/db").ingress!.policy, check(b, "prod/web", "prod/db").ingress!.rule], ["TrellisPolicy/prod/gate", 1]);
    assert.equal(check(b, "ops/mon", "prod/db").ingress!.policy, "TrellisPolicy/prod/later");
    // Passed with no NetworkPolicy selecting the pod: not isolated, allowed.
    const open = cluster().apply(gate).apply(later);
    table(open, [["prod/api", "prod/db", "5432/TCP", "ok"], ["ops/mon", "prod/db", "5432/TCP", "in"]]);
    assert.match(check(open, "prod/api", "prod/db").ingress!.reason, /not isolated/);
  });

  it("Log records the rule and continues", () => {
    const b = cluster()
      .apply(tp("prod", "audit", "order: 10\npodSelector: {matchLabels: {app: db}}\ningress: [{action: Log}]"))
      .apply(tp("prod", "allow-web", "order: 20\npodSelector: {matchLabels: {app: db}}\ningress:\n  - action: Allow\n    from: [{podSelector: {matchLabels: {app: web}}}]"));
    table(b, [["prod/web", "prod/db", "5432/TCP", "ok"], ["prod/tool", "prod/db", "5432/TCP", "in"]]);
    const web = check(b, "prod/web", "prod/db").ingress!;
    assert.deepEqual(web.logged, ["TrellisPolicy/prod/audit ingress[0]"]);
    assert.equal(web.policy, "TrellisPolicy/prod/allow-web");
    assert.deepEqual(check(b, "prod/tool", "prod/db").ingress!.logged, ["TrellisPolicy/prod/audit ingress[0]"]);
  });

  it("a pod selected by an ordered policy with no matching rule is denied (end of tier), even with no NetworkPolicy", () => {
    const b = cluster().apply(tp("prod", "only-web", "order: 10\npodSelector: {matchLabels: {app: db}}\ningress:\n  - action: Allow\n    from: [{podSelector: {matchLabels: {app: web}}}]"));
    table(b, [
      ["prod/web", "prod/db", "5432/TCP", "ok"],
      ["prod/tool", "prod/db", "5432/TCP", "in"],
      [EXT, "prod/db", "5432/TCP", "in"],
      // Only the directions of its policyTypes (here Ingress by default).
      ["prod/db", EXT, "443/TCP", "ok"],
    ]);
    const v = check(b, "prod/tool", "prod/db").ingress!;
    assert.equal(v.policy, undefined);
    assert.match(v.reason, /end of ordered tier/);
    table(cluster().apply(tp("prod", "closed", "podSelector: {matchLabels: {app: db}}")), [["prod/web", "prod/db", "5432/TCP", "in"]]);
  });

  it("ordered egress rules: Deny by ipBlock, then Allow", () => {
    const b = cluster().apply(tp("prod", "egress", yaml`
      policyTypes: [Egress]
      egress:
        - action: Deny
          to: [{ipBlock: {cidr: 0.0.0.0/0, except: [10.244.0.0/16]}}]
        - action: Allow`));
    table(b, [
      ["prod/web", EXT, "443/TCP", "out"], ["prod/web", "dev/web", "80/TCP", "ok"], ["dev/web", EXT, "443/TCP", "ok"], [EXT, "prod/web", "80/TCP", "ok"],
    ]);
  });

  it("types left out are derived as Calico does: egress rules only → Egress, ingress or none → Ingress, both → both", () => {
    // [spec, types derived, denies what comes in to web?, denies what web sends out?]
    const rows: Array<[string, string[], boolean, boolean]> = [
      ["podSelector: {matchLabels: {app: web}}", ["Ingress"], true, false],
      ["podSelector: {matchLabels: {app: web}}\ningress: [{action: Deny}]", ["Ingress"], true, false],
      ["podSelector: {matchLabels: {app: web}}\negress: [{action: Deny}]", ["Egress"], false, true],
      ["podSelector: {matchLabels: {app: web}}\ningress: [{action: Deny}]\negress: [{action: Deny}]", ["Ingress", "Egress"], true, true],
      ["podSelector: {matchLabels: {app: web}}\ningress: []\negress: [{action: Deny}]", ["Egress"], false, true],
      ["podSelector: {matchLabels: {app: web}}\ntypes: [Ingress, Egress]\negress: [{action: Deny}]", ["Ingress", "Egress"], true, true],
      ["podSelector: {matchLabels: {app: web}}\ntypes: [Ingress]\negress: [{action: Deny}]", ["Ingress"], true, false],
      ["podSelector: {matchLabels: {app: web}}\npolicyTypes: [Egress]", ["Egress"], false, true],
    ];
    for (const [spec, types, deniesIn, deniesOut] of rows) {
      for (const doc of [tp("prod", "p", spec), gtp("p", spec)]) {
        const b = cluster().apply(doc);
        assert.deepEqual(b.policies[0]!.policyTypes, types, spec);
        table(b, [[EXT, "prod/web", "80/TCP", deniesIn ? "in" : "ok"], ["prod/web", EXT, "443/TCP", deniesOut ? "out" : "ok"]]);
      }
    }
    assert.throws(() => cluster().apply(tp("prod", "p", "types: [Ingress]\npolicyTypes: [Ingress]")), /give either types or policyTypes/);
  });

  it("the README's dev-cannot-reach-prod does what its name says, and nothing more", () => {
    // The example exactly as the README shows it.
    const readme = fs.readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "README.md"), "utf8");
    const example = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!).find((t) => t.includes("name: dev-cannot-reach-prod"));
    assert.ok(example, "README has the dev-cannot-reach-prod example");
    const b = cluster().apply(example);
    assert.deepEqual(b.policies[0]!.policyTypes, ["Egress"]);
    table(b, [
      ["dev/tool", "prod/db", "5432/TCP", "out"],
      ["dev/web", "prod/web", "80/TCP", "out"],
      ["dev/tool", "dev/web", "80/TCP", "ok"],
      ["prod/web", "dev/web", "80/TCP", "ok"],
      [EXT, "dev/web", "80/TCP", "ok"],
      ["dev/tool", "ops/mon", "80/TCP", "ok"],
    ]);
  });

  it("a TrellisPolicy selects only pods of its namespace; its podSelector-only peers too", () => {
    const b = cluster().apply(tp("prod", "deny-all", "order: 10\ningress: [{action: Deny}]"));
    table(b, [[EXT, "prod/web", "80/TCP", "in"], [EXT, "dev/web", "80/TCP", "ok"], ["dev/tool", "ops/mon", "80/TCP", "ok"]]);
    const peers = cluster().apply(tp("prod", "no-web", yaml`
      podSelector: {matchLabels: {app: db}}
      ingress:
        - action: Deny
          from: [{podSelector: {matchLabels: {app: web}}}]
        - action: Pass`));
    table(peers, [["prod/web", "prod/db", "5432/TCP", "in"], ["dev/web", "prod/db", "5432/TCP", "ok"]]);
  });

  it("a GlobalTrellisPolicy selects across namespaces (narrowed by namespaceSelector), its podSelector-only peers too", () => {
    const b = cluster().apply(gtp("dev-not-to-prod", yaml`
      order: 5
      namespaceSelector: {matchLabels: {env: prod}}
      ingress:
        - action: Deny
          from: [{namespaceSelector: {matchLabels: {env: dev}}}]
        - action: Pass`));
    table(b, [
      ["dev/tool", "prod/db", "5432/TCP", "in"],
      ["dev/web", "prod/web", "80/TCP", "in"],
      ["ops/mon", "prod/db", "5432/TCP", "ok"],
      ["prod/web", "dev/web", "80/TCP", "ok"],
      ["dev/tool", "ops/mon", "80/TCP", "ok"],
    ]);
    const v = check(b, "dev/tool", "prod/db").ingress!;
    assert.deepEqual([v.policy, v.rule], ["GlobalTrellisPolicy/dev-not-to-prod", 0]);

    const peers = cluster().apply(gtp("no-web", yaml`
      podSelector: {matchLabels: {app: db}}
      ingress:
        - action: Deny
          from: [{podSelector: {matchLabels: {app: web}}}]
        - action: Pass`));
    table(peers, [["prod/web", "prod/db", "5432/TCP", "in"], ["dev/web", "prod/db", "5432/TCP", "in"], ["prod/api", "prod/db", "5432/TCP", "ok"]]);

    const everywhere = cluster().apply(gtp("web-closed", "podSelector: {matchLabels: {app: web}}\ningress: [{action: Deny}]"));
    table(everywhere, [[EXT, "prod/web", "80/TCP", "in"], [EXT, "dev/web", "80/TCP", "in"], [EXT, "prod/db", "5432/TCP", "ok"]]);
  });
});
