// lab check for Services without a lab: which probes are planned from which pods, what each should
// see (policy-aware, on the DNATed packet), and the judgement of what a probe saw.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PolicyIndex } from "../policy/evaluate.js";
import type { PolicyModel } from "../policy/model.js";
import { parseDocuments } from "../policy/parse.js";
import { ep, slice, svc } from "../services/fixtures.js";
import type { ProbeTarget, ServiceProbeResult } from "./probe.js";
import { parseAnswer } from "./probe.js";
import { attemptsFor, judgeServiceProbe, serviceProbeJobs, serviceSummary, type CheckPod } from "./service-check.js";

const PODS: CheckPod[] = [
  { key: "default/client1", ip: "10.244.1.2", node: "node1", serves: [] },
  { key: "default/web-a", ip: "10.244.1.3", node: "node1", serves: ["8080/TCP"] },
  { key: "default/client2", ip: "10.244.2.2", node: "node2", serves: [] },
  { key: "default/web-b", ip: "10.244.2.3", node: "node2", serves: ["8080/TCP"] },
  { key: "default/web-c", ip: "10.244.2.4", node: "node2", serves: ["8080/TCP"] },
];

function model(policies = ""): PolicyModel {
  const pod = (name: string, labels: Record<string, string>) => ({ apiVersion: "v1", kind: "Pod", metadata: { name, namespace: "default", labels }, spec: { containers: [] } });
  const docs = [pod("client1", { app: "client" }), pod("client2", { app: "client" }), pod("web-a", { app: "web" }), pod("web-b", { app: "web", slot: "b" }), pod("web-c", { app: "web" })]
    .map((d) => JSON.stringify(d)).join("\n---\n") + (policies ? `\n---\n${policies}` : "");
  const m: PolicyModel = { namespaces: [{ name: "default", labels: {} }], pods: [], endpoints: [], policies: [] };
  for (const p of parseDocuments(docs)) {
    if (p.kind === "Pod") m.pods.push(p.object);
    else if (p.kind !== "Namespace" && p.kind !== "Service" && p.kind !== "EndpointSlice") m.policies.push(p.object);
  }
  m.endpoints = PODS.map((p) => ({ namespace: "default", pod: p.key.split("/")[1]!, node: p.node, containerId: p.key, ifname: "eth0", hostIf: "x", ips: [p.ip], mode: "routed" as const }));
  return m;
}

const WEB = svc("web", { clusterIP: "10.96.0.1", selector: undefined, ports: [{ name: "http", protocol: "TCP", port: 80, targetPort: 8080 }] });
const WEB_SLICE = slice("web", [ep("10.244.1.3", "node1"), ep("10.244.2.3", "node2"), ep("10.244.2.4", "node2", { ready: false, serving: false })],
  [{ name: "http", protocol: "TCP", port: 8080 }]);
const EMPTY = svc("empty", { clusterIP: "10.96.0.2", ports: [{ name: "", protocol: "UDP", port: 53, targetPort: 53 }] });
const BLOCK_B = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b-from-web, namespace: default}
spec:
  podSelector: {matchLabels: {slot: b}}
  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}]}]
`;

const result = (t: ProbeTarget, answered: Record<string, number>, over: Partial<ServiceProbeResult> = {}): ServiceProbeResult =>
  ({ ip: t.ip, port: t.port!, protocol: t.protocol as "TCP", attempts: 6, answered, refused: 0, timedOut: 0, ms: 12, ...over });

describe("serviceProbeJobs", () => {
  it("one probe per Service port and node, from a pod of that node that is not an endpoint; the ready endpoints are expected", () => {
    const m = model();
    const jobs = serviceProbeJobs(PODS, m, { services: [WEB], slices: [WEB_SLICE] }, new PolicyIndex(m));
    assert.deepEqual(jobs.map((j) => [j.from.key, j.target.ip, j.target.port, j.target.protocol, j.target.expect, j.target.attempts]), [
      ["default/client1", "10.96.0.1", 80, "TCP", ["10.244.1.3", "10.244.2.3"], 40],
      ["default/client2", "10.96.0.1", 80, "TCP", ["10.244.1.3", "10.244.2.3"], 40],
    ]);
  });
  it("an endpoint closed by policy from the source is not expected (policy sees the endpoint's port, 8080)", () => {
    const m = model(BLOCK_B);
    const [job] = serviceProbeJobs(PODS, m, { services: [WEB], slices: [WEB_SLICE] }, new PolicyIndex(m));
    assert.deepEqual(job!.target.expect, ["10.244.1.3"]);
    const b = job!.explanation.endpoints.find((e) => e.ip === "10.244.2.3")!;
    assert.equal(b.allowed, false);
    assert.match(b.ingress!.reason, /NetworkPolicy\/default\/b-from-web/);
  });
  it("a Service without endpoints expects nothing to answer, in a few attempts", () => {
    const m = model();
    const jobs = serviceProbeJobs(PODS, m, { services: [EMPTY], slices: [] }, new PolicyIndex(m));
    assert.deepEqual(jobs.map((j) => [j.explanation.outcome, j.target.expect, j.target.attempts, j.target.protocol]), [
      ["rejected", [], 3, "UDP"], ["rejected", [], 3, "UDP"],
    ]);
    assert.equal(attemptsFor(0, 2), 5);
  });
  it("when every pod of a node is an endpoint, one of them probes and its own endpoint is not judged", () => {
    const m = model();
    const pods = PODS.filter((p) => p.key !== "default/client1");
    const jobs = serviceProbeJobs(pods, m, { services: [WEB], slices: [WEB_SLICE] }, new PolicyIndex(m));
    assert.equal(jobs[0]!.from.key, "default/web-a");
    assert.deepEqual(jobs[0]!.target.expect, ["10.244.2.3"]);
    const cell = judgeServiceProbe(jobs[0]!, result(jobs[0]!.target, { "10.244.1.3": 2, "10.244.2.3": 3 }), pods);
    assert.equal(cell.passed, true, cell.failures.join("\n"));
    assert.equal(cell.endpoints.find((e) => e.endpoint === "10.244.1.3:8080")!.expect, "self");
  });
});

describe("judgeServiceProbe", () => {
  const m = model();
  const [job] = serviceProbeJobs(PODS, m, { services: [WEB], slices: [WEB_SLICE] }, new PolicyIndex(m));
  it("every ready endpoint answered, the not-ready one never: passes, 2/2", () => {
    const c = judgeServiceProbe(job!, result(job!.target, { "10.244.1.3": 4, "10.244.2.3": 2 }), PODS);
    assert.deepEqual([c.passed, c.reached, c.from, c.service, c.probe], [true, "2/2", "default/client1", "default/web", "80/TCP"]);
    assert.deepEqual(c.endpoints.map((e) => [e.endpoint, e.pod ?? "", e.expect, e.answers]), [
      ["10.244.1.3:8080", "default/web-a", "answers", 4], ["10.244.2.3:8080", "default/web-b", "answers", 2], ["10.244.2.4:8080", "default/web-c", "never", 0],
    ]);
    assert.equal(serviceSummary(c), "2/2 reached, 1 never chosen (not ready)");
  });
  it("a ready endpoint that never answered fails, naming it", () => {
    const c = judgeServiceProbe(job!, result(job!.target, { "10.244.1.3": 40 }, { attempts: 40, timedOut: 0 }), PODS);
    assert.equal(c.passed, false);
    assert.equal(c.reached, "1/2");
    assert.deepEqual(c.failures, ["endpoint 10.244.2.3:8080 (default/web-b on node2) never answered in 40 attempt(s) (0 timed out, 0 refused)"]);
  });
  it("the not-ready endpoint answering fails; so does an address that is no endpoint", () => {
    const c = judgeServiceProbe(job!, result(job!.target, { "10.244.1.3": 1, "10.244.2.3": 1, "10.244.2.4": 1, "10.244.9.9": 1 }), PODS);
    assert.equal(c.passed, false);
    assert.deepEqual(c.failures, [
      "answered by 10.244.9.9 1 time(s), which is not an endpoint of default/web 80/TCP",
      "endpoint 10.244.2.4:8080 (default/web-c on node2) answered 1 time(s) but should not (not ready)",
    ]);
  });
  it("an endpoint closed by policy that answers is a leak", () => {
    const pm = model(BLOCK_B);
    const [j] = serviceProbeJobs(PODS, pm, { services: [WEB], slices: [WEB_SLICE] }, new PolicyIndex(pm));
    const ok = judgeServiceProbe(j!, result(j!.target, { "10.244.1.3": 3 }, { timedOut: 3 }), PODS);
    assert.deepEqual([ok.passed, ok.reached, serviceSummary(ok)], [true, "1/1", "1/1 reached, 1 closed by policy, 1 never chosen (not ready)"]);
    const leak = judgeServiceProbe(j!, result(j!.target, { "10.244.1.3": 3, "10.244.2.3": 1 }), PODS);
    assert.equal(leak.passed, false);
    assert.match(leak.failures[0]!, /^endpoint 10\.244\.2\.3:8080 \(default\/web-b on node2\) answered 1 time\(s\) but should not \(policy: .*b-from-web/);
  });
  it("no usable endpoint: refused at once passes; a timeout fails", () => {
    const [e] = serviceProbeJobs(PODS, m, { services: [EMPTY], slices: [] }, new PolicyIndex(m));
    const ok = judgeServiceProbe(e!, result(e!.target, {}, { attempts: 3, refused: 3 }), PODS);
    assert.deepEqual([ok.passed, serviceSummary(ok)], [true, "refused (no endpoint)"]);
    const slow = judgeServiceProbe(e!, result(e!.target, {}, { attempts: 3, timedOut: 3 }), PODS);
    assert.deepEqual(slow.failures, ["no usable endpoint: every connection should be refused at once, but 3 of 3 timed out"]);
  });
  it("an endpoint whose pod does not serve the target port is named with a hint", () => {
    const pods = PODS.map((p) => (p.key === "default/web-b" ? { ...p, serves: [] } : p));
    const c = judgeServiceProbe(job!, result(job!.target, { "10.244.1.3": 40 }, { attempts: 40, timedOut: 20 }), pods);
    assert.match(c.failures[0]!, /its pod serves no 8080\/TCP \(declare it in the pod's ports\)$/);
  });
  it("a prober that failed fails every cell it owned, with its error", () => {
    const c = judgeServiceProbe(job!, { error: "prober failed: boom" }, PODS);
    assert.deepEqual([c.passed, c.failures, c.reached], [false, ["prober failed: boom"], "0/2"]);
  });
});

describe("parseAnswer", () => {
  it("reads the source seen, the answering address and the name; older servers say only the source", () => {
    assert.deepEqual(parseAnswer("trellis ::ffff:10.244.1.2 ::ffff:10.244.2.3 default/web-b\n"), { seenAs: "10.244.1.2", answeredBy: "10.244.2.3", name: "default/web-b" });
    assert.deepEqual(parseAnswer("trellis 10.244.1.2\n"), { seenAs: "10.244.1.2" });
    assert.deepEqual(parseAnswer("hello"), {});
  });
});
