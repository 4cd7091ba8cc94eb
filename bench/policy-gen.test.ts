import assert from "node:assert/strict";
import { test } from "node:test";
import { compilePolicy } from "../src/policy/compile.js";
import { ModelBuilder } from "../src/policy/model-builder.js";
import { parseDocuments } from "../src/policy/parse.js";
import {
  canonicalElement, cniAddTime, documents, elementPoint, jsonElement, manyPolicies, parsePolicyLines, podDoc, tableFromNftJson, uncovered,
  wallPolicies, wallRule, WALL_ALLOW,
} from "./policy-gen.js";

test("manyPolicies: n valid NetworkPolicies, unique names, the marker block only in the last", () => {
  const docs = manyPolicies(200, "p1r1", 1);
  const parsed = parseDocuments(documents(docs));
  assert.equal(parsed.length, 200);
  assert.equal(new Set(parsed.map((p) => (p.object as { name: string }).name)).size, 200);
  const withMarker = docs.filter((d) => JSON.stringify(d).includes("192.0.2."));
  assert.deepEqual(withMarker, [docs[199]]);
  // Varied: pod, namespace, combined and ipBlock peers; TCP, UDP, ranges and named ports.
  const text = JSON.stringify(docs);
  for (const s of ["namespaceSelector", "ipBlock", "endPort", "\"UDP\"", "\"http\"", "Egress"]) assert.ok(text.includes(s), s);
});

test("wallPolicies: policies x rules ingress rules, then the allowing policy last in sort order, in both kinds", () => {
  for (const kind of ["NetworkPolicy", "TrellisPolicy"] as const) {
    const docs = wallPolicies(3, 4, "w", kind, [8080, 5201]);
    const parsed = parseDocuments(documents(docs));
    assert.equal(parsed.length, 4);
    assert.ok(parsed.every((p) => p.kind === kind));
    const rules = parsed.slice(0, 3).map((p) => (p.object as { ingress: unknown[] }).ingress.length);
    assert.deepEqual(rules, [4, 4, 4]);
    const names = parsed.map((p) => (p.object as { name: string }).name);
    assert.equal(names[3], WALL_ALLOW);
    assert.deepEqual([...names].sort(), names);
    if (kind === "TrellisPolicy") assert.ok(parsed.every((p) => (p.object as { ingress: Array<{ action: string }> }).ingress.every((r) => r.action === "Allow")));
  }
  // The client's peer label (p7) is a pod-selector rule; the last rule of a policy has no ports.
  assert.deepEqual(wallRule(0, 7, 100).peer, { podSelector: { matchLabels: { peer: "p7" } } });
  assert.equal(wallRule(0, 99, 100).ports, undefined);
});

/** srv (app=srv) on n2, cli (peer=p7, role=allowed) on n1, as the benchmark's lab. */
const labModel = (): ModelBuilder => new ModelBuilder().namespace("bench", { team: "bench" })
  .pod("bench/srv", { labels: { app: "srv" }, ports: { http: 8080 }, ips: "10.244.2.2", node: "n2", hostIf: "trlsrv" })
  .pod("bench/cli", { labels: { app: "cli", role: "allowed", peer: "p7" }, ips: "10.244.1.2", node: "n1", hostIf: "trlcli" });

test("the wall as NetworkPolicies flattens: a few rules, the client allowed through the port set only; as TrellisPolicies it stays linear", () => {
  const np = compilePolicy(labModel().apply(documents(wallPolicies(10, 20, "w", "NetworkPolicy", [8080, 5201]))).build(), "n2");
  const chain = np.ingressMap.trlsrv!;
  const k8s = np.chains.find((c) => c.name === `${chain}_k8s`)!;
  assert.equal(k8s.rules.length, 5);
  const set = (prefix: string): string[] => np.sets.find((s) => s.name.startsWith(prefix) && s.name.endsWith("_ingress"))!.elements.map(canonicalElement);
  const any = set("k8sany4_");
  const ports = set("k8sport4_");
  assert.equal(any.length, 10, "one ports-less block per policy");
  assert.ok(ports.length > 10 * 15, `${ports.length} elements`);
  const cli = (port: number): string => canonicalElement(`10.244.1.2 . tcp . ${port}`);
  assert.deepEqual(uncovered(ports, [cli(8080), cli(5201), cli(10007)]), []);
  assert.deepEqual(uncovered(ports, [cli(8081)]), [cli(8081)]);
  assert.deepEqual(uncovered(any, [canonicalElement("10.244.1.2")]), [canonicalElement("10.244.1.2")]);
  const ordered = compilePolicy(labModel().apply(documents(wallPolicies(10, 20, "w", "TrellisPolicy", [8080, 5201]))).build(), "n2");
  const rules = ordered.chains.find((c) => c.name === chain)!.rules.length;
  // Per policy 4 pod-selector rules (k = 3, 7, 11, 15: IPv4 and IPv6) and 16 ipBlock rules (IPv4 only); zz-allow (2 ports x 2 families); the drop.
  assert.equal(rules, 10 * (4 * 2 + 16) + 4 + 1);
});

test("podDoc is a valid Pod with labels and named ports", () => {
  const [p] = parseDocuments(documents([podDoc("srv", { app: "srv" }, [{ name: "http", port: 8080, protocol: "TCP" }])]));
  assert.equal(p?.kind, "Pod");
  assert.deepEqual(p?.object, { namespace: "bench", name: "srv", labels: { app: "srv" }, ports: [{ name: "http", containerPort: 8080, protocol: "TCP" }] });
});

test("agent policy lines: time, node, full or delta, the applier's ms", () => {
  const log = [
    "2026-11-22T12:00:00.100Z agent[node2] starting (datastore embedded)",
    "2026-11-22T12:00:01.250Z agent[node2] policy: table replaced in 812 ms",
    "2026-11-22T12:00:02.000Z agent[node2] policy: set elements updated in 31 ms",
    "2026-11-22T12:00:03.000Z agent[node2] policy sync failed (will retry): nft: boom",
  ].join("\n");
  assert.deepEqual(parsePolicyLines(log), [
    { atMs: Date.UTC(2026, 10, 22, 12, 0, 1, 250), node: "node2", kind: "full", ms: 812 },
    { atMs: Date.UTC(2026, 10, 22, 12, 0, 2, 0), node: "node2", kind: "delta", ms: 31 },
  ]);
});

test("cni.log: the ADD line of one container", () => {
  const log = [
    "2026-11-22T11:35:16.636Z trellis[17729] ADD lab-x-bench-ep1/eth0: 10.244.84.2/32 on trlfa5e5b80c93",
    "2026-11-22T11:35:17.001Z trellis[17730] ADD lab-x-bench-ep10/eth0: 10.244.84.3/32 on trl0000",
  ].join("\n");
  assert.equal(cniAddTime(log, "lab-x-bench-ep10"), Date.UTC(2026, 10, 22, 11, 35, 17, 1));
  assert.equal(cniAddTime(log, "lab-x-bench-ep1"), Date.UTC(2026, 10, 22, 11, 35, 16, 636));
  assert.equal(cniAddTime(log, "lab-x-bench-ep2"), undefined);
});

test("set elements: the compiler's text and nft's JSON (prefixes, ranges, plain values) compare by content", () => {
  assert.equal(canonicalElement("100.64.0.0-100.64.15.255 . tcp . 10000-10009"), jsonElement({ concat: [{ prefix: { addr: "100.64.0.0", len: 20 } }, "tcp", { range: [10000, 10009] }] }));
  assert.equal(canonicalElement("10.0.0.1 . tcp . 8080"), jsonElement({ concat: ["10.0.0.1", "tcp", 8080] }));
  assert.equal(canonicalElement("10.0.0.2-10.0.0.7 . udp . 5"), jsonElement({ concat: [{ range: ["10.0.0.2", "10.0.0.7"] }, "udp", 5] }));
  assert.equal(canonicalElement("100.96.0.0/24"), jsonElement({ prefix: { addr: "100.96.0.0", len: 24 } }));
  assert.equal(canonicalElement("100.96.0.0-100.96.0.255"), canonicalElement("100.96.0.0/24"));
  assert.equal(canonicalElement("fd00::1 . 80"), jsonElement({ elem: { val: { concat: ["fd00::1", 80] } } }));
  assert.equal(elementPoint(canonicalElement("100.64.0.0/20 . tcp . 10000-10009")), "100.64.0.0 . tcp . 10000");
  assert.equal(elementPoint(canonicalElement("192.0.2.1 . tcp . 9999")), "192.0.2.1 . tcp . 9999");
});

test("uncovered: a box is covered by disjoint pieces only when they fill it", () => {
  const outer = ["10.0.0.0-10.0.0.127 . tcp . 80-89", "10.0.0.128-10.0.0.255 . tcp . 80-85", "10.0.0.128-10.0.0.255 . tcp . 86-89", "10.0.1.0/24"].map(canonicalElement);
  const c = (t: string): string => canonicalElement(t);
  assert.deepEqual(uncovered(outer, [c("10.0.0.0/24 . tcp . 80-89"), c("10.0.0.200 . tcp . 86"), c("10.0.1.7")]), []);
  assert.deepEqual(uncovered(outer, [c("10.0.0.0/24 . tcp . 80-90")]), [c("10.0.0.0/24 . tcp . 80-90")]);
  assert.deepEqual(uncovered(outer, [c("10.0.0.0/24 . udp . 80")]), [c("10.0.0.0/24 . udp . 80")]);
  assert.deepEqual(uncovered(outer, [c("10.0.0.0/23")]), [c("10.0.0.0/23")]);
});

test("tableFromNftJson: sets with their elements, rules per chain", () => {
  const json = JSON.stringify({
    nftables: [
      { metainfo: { version: "1.0.6" } },
      { table: { family: "inet", name: "trellis" } },
      { set: { family: "inet", name: "k8sport4_x_ingress", table: "trellis", type: ["ipv4_addr", "inet_proto", "inet_service"], elem: [{ concat: ["10.0.0.1", "tcp", 80] }] } },
      { set: { family: "inet", name: "k8sany4_x_ingress", table: "trellis", type: "ipv4_addr" } },
      { chain: { family: "inet", table: "trellis", name: "in_x_k8s" } },
      { chain: { family: "inet", table: "trellis", name: "in_y" } },
      { rule: { family: "inet", table: "trellis", chain: "in_x_k8s", expr: [] } },
      { rule: { family: "inet", table: "trellis", chain: "in_x_k8s", expr: [] } },
    ],
  });
  const t = tableFromNftJson(json);
  assert.deepEqual(t.sets.get("k8sport4_x_ingress"), [canonicalElement("10.0.0.1 . tcp . 80")]);
  assert.deepEqual(t.sets.get("k8sany4_x_ingress"), []);
  assert.equal(t.rules.get("in_x_k8s"), 2);
  assert.equal(t.rules.get("in_y"), 0);
});
