import assert from "node:assert/strict";
import { test } from "node:test";
import { parseDocuments } from "../src/policy/parse.js";
import { chainRuleCount, cniAddTime, documents, manyPolicies, parsePolicyLines, podDoc, policiesInListing, wallPolicies, WALL_ALLOW } from "./policy-gen.js";

test("manyPolicies: n valid NetworkPolicies, unique names, the marker peer only in the last", () => {
  const docs = manyPolicies(200, "p1r1", "r1");
  const parsed = parseDocuments(documents(docs));
  assert.equal(parsed.length, 200);
  assert.equal(new Set(parsed.map((p) => (p.object as { name: string }).name)).size, 200);
  const withMarker = docs.filter((d) => JSON.stringify(d).includes('"marker"'));
  assert.deepEqual(withMarker, [docs[199]]);
  // Varied: pod, namespace, combined and ipBlock peers; TCP, UDP, ranges and named ports.
  const text = JSON.stringify(docs);
  for (const s of ["namespaceSelector", "ipBlock", "endPort", "\"UDP\"", "\"http\"", "Egress"]) assert.ok(text.includes(s), s);
});

test("wallPolicies: policies x rules ingress rules, then the allowing policy last in sort order", () => {
  const docs = wallPolicies(3, 4, "w");
  const parsed = parseDocuments(documents(docs));
  assert.equal(parsed.length, 4);
  const rules = parsed.slice(0, 3).map((p) => (p.object as { ingress: unknown[] }).ingress.length);
  assert.deepEqual(rules, [4, 4, 4]);
  const names = parsed.map((p) => (p.object as { name: string }).name);
  assert.equal(names[3], WALL_ALLOW);
  assert.deepEqual([...names].sort(), names);
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

test("nft listing: policy ids in comments, rules of one chain", () => {
  const listing = [
    "table inet trellis {",
    "\tchain in_abc_k8s {",
    '\t\tip saddr @pods4_1 tcp dport 10000 return comment "NetworkPolicy/bench/w-000 ingress[0]"',
    '\t\tip saddr @pods4_2 tcp dport 10001 return comment "NetworkPolicy/bench/w-000 ingress[1]"',
    '\t\tip saddr @pods4_3 return comment "NetworkPolicy/bench/zz-allow ingress[0]"',
    '\t\tdrop comment "isolated by ..."',
    "\t}",
    "\tchain forward {",
    "\t\ttype filter hook forward priority filter; policy accept;",
    "\t\tct state established,related accept",
    "\t}",
    "}",
  ].join("\n");
  assert.deepEqual([...policiesInListing(listing, "NetworkPolicy/bench/w-")], ["NetworkPolicy/bench/w-000"]);
  assert.equal(chainRuleCount(listing, "in_abc_k8s"), 4);
  assert.equal(chainRuleCount(listing, "forward"), 1);
  assert.equal(chainRuleCount(listing, "nope"), 0);
});
