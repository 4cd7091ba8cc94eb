import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import { compileServices } from "../src/services/compile.js";
import { renderDelta } from "../src/services/render.js";
import {
  applyChange, base32, benchServices, clusterIpOf, endpointChanges, kubeProxyFullRestore, kubeProxyPartialRestore, restoreCounts, SERVER_IPS,
  sepChain, servicePortName, svcChain,
} from "./services-gen.js";

test("base32 is RFC 4648 (Go's StdEncoding)", () => {
  const enc = (s: string): string => base32(new TextEncoder().encode(s));
  assert.equal(enc("f"), "MY");
  assert.equal(enc("foobar"), "MZXW6YTBOI");
});

test("kube-proxy chain names: KUBE-SVC-/KUBE-SEP- + 16 base32 characters of sha256", () => {
  // The value kube-proxy's proxier_test.go expects for ns1/svc1:p80 over TCP.
  assert.equal(svcChain("ns1/svc1:p80", "TCP"), "KUBE-SVC-XPGD46QRK7WJZT7O");
  const digest = createHash("sha256").update("ns1/svc1:p80tcp10.180.0.1:80").digest();
  assert.equal(sepChain("ns1/svc1:p80", "tcp", "10.180.0.1:80"), `KUBE-SEP-${base32(digest).slice(0, 16)}`);
});

test("benchServices: n Services with distinct ClusterIPs, the targets' endpoints are the server", () => {
  const b = benchServices(5, 2, [2, 4]);
  assert.equal(new Set(b.services.map((s) => s.clusterIP)).size, 5);
  assert.equal(b.services[3]!.clusterIP, clusterIpOf(3));
  assert.deepEqual(b.slices[2]!.endpoints.map((e) => e.addresses[0]), [...SERVER_IPS]);
  assert.ok(b.slices[0]!.endpoints.every((e) => !SERVER_IPS.includes(e.addresses[0] as never)));
});

test("endpointChanges: add then remove on one service, never a target; applying a pair restores the slices", () => {
  const changes = endpointChanges(10, 6, [3, 9]);
  assert.deepEqual(changes.map((c) => c.op), ["add", "remove", "add", "remove", "add", "remove"]);
  assert.ok(changes.every((c) => c.index !== 3 && c.index !== 9));
  const b = benchServices(10, 2, [3, 9]);
  const added = applyChange(b.slices, changes[0]!);
  assert.equal(added[changes[0]!.index]!.endpoints.length, 3);
  assert.deepEqual(applyChange(added, changes[1]!), b.slices);
  assert.throws(() => applyChange(b.slices, changes[1]!), /changes nothing/);
});

test("an endpoint change is a small delta for Trellis: element operations on that Service's frontend (and the hairpin set) only", () => {
  const b = benchServices(50, 2);
  const node = { name: "node1", addresses: ["10.244.0.1"] };
  const [c] = endpointChanges(50, 1);
  const before = compileServices({ node, services: b.services, slices: b.slices });
  const after = compileServices({ node, services: b.services, slices: applyChange(b.slices, c!) });
  const delta = renderDelta(before, after)!;
  const ip = b.services[c!.index]!.clusterIP!;
  for (const l of delta.split("\n").filter(Boolean)) {
    assert.match(l, /^(add|delete) element inet trellis-svc /, l);
    assert.ok(l.includes(`{ ${ip} . `) || l.includes(" svc_hairpin "), l);
  }
});

test("kube-proxy full restore: one linear KUBE-SERVICES rule per service port, statistic probabilities 1/(n-i), DNAT per endpoint", () => {
  const b = benchServices(3, 2);
  const text = kubeProxyFullRestore(b.services, b.slices);
  const lines = text.split("\n");
  assert.equal(lines[0], "*nat");
  assert.equal(lines.at(-2), "COMMIT");
  const svcRules = lines.filter((l) => l.startsWith("-A KUBE-SERVICES "));
  // 3 service ports in order, then the NodePorts rule last.
  assert.equal(svcRules.length, 4);
  const spn = servicePortName(b.services[1]!, "http");
  const chain = svcChain(spn, "tcp");
  assert.equal(svcRules[1], `-A KUBE-SERVICES -m comment --comment "${spn} cluster IP" -p tcp -d ${clusterIpOf(1)}/32 -m tcp --dport 80 -j ${chain}`);
  assert.match(svcRules[3]!, /-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS$/);
  const svc = lines.filter((l) => l.startsWith(`-A ${chain} `));
  assert.equal(svc.length, 3);
  assert.match(svc[0]!, /! -s 10\.240\.0\.0\/12 -j KUBE-MARK-MASQ$/);
  assert.match(svc[1]!, /-m statistic --mode random --probability 0\.5000000000 -j KUBE-SEP-/);
  assert.doesNotMatch(svc[2]!, /statistic/);
  const ep = b.slices[1]!.endpoints[0]!.addresses[0]!;
  const sep = sepChain(spn, "tcp", `${ep}:8080`);
  assert.ok(lines.includes(`:${sep} - [0:0]`));
  assert.ok(lines.includes(`-A ${sep} -m comment --comment ${spn} -p tcp -m tcp -j DNAT --to-destination ${ep}:8080`));
  // Chains: 4 top-level + per service 1 SVC + 2 SEP; rules: 4 top + 4 KUBE-SERVICES + per service 3 + 2x2.
  assert.deepEqual(restoreCounts(text), { chains: 4 + 3 * 3, rules: 4 + 4 + 3 * 7 });
});

test("kube-proxy partial restore: every KUBE-SERVICES rule again, the changed chains, the stale SEP chain deleted", () => {
  const b = benchServices(4, 2);
  const [add, remove] = endpointChanges(4, 2);
  const added = applyChange(b.slices, add!);
  const name = b.services[add!.index]!.name;
  const spn = servicePortName(b.services[add!.index]!, "http");
  const newSep = sepChain(spn, "tcp", `${add!.ip}:8080`);

  const up = kubeProxyPartialRestore(b.services, b.slices, added, new Set([name])).split("\n");
  assert.equal(up.filter((l) => l.startsWith("-A KUBE-SERVICES ")).length, 5);
  assert.ok(up.includes(`:${newSep} - [0:0]`));
  assert.equal(up.filter((l) => l.startsWith(`-A ${svcChain(spn, "tcp")} `)).length, 4);
  assert.match(up.find((l) => l.includes("probability 0.3333333333"))!, /KUBE-SEP-/);
  // No other service's own chains.
  const other = svcChain(servicePortName(b.services[(add!.index + 1) % 4]!, "http"), "tcp");
  assert.ok(!up.some((l) => l.startsWith(`:${other}`) || l.startsWith(`-A ${other}`)));

  const down = kubeProxyPartialRestore(b.services, added, applyChange(added, remove!), new Set([name])).split("\n");
  assert.ok(down.includes(`:${newSep} - [0:0]`), "flushed before -X");
  assert.ok(down.includes(`-X ${newSep}`));
  assert.ok(!down.some((l) => l.startsWith(`-A ${newSep}`)));
});
