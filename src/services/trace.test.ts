// Verdicts asserted through the tracer over the compiled ruleset: which endpoint a connection is
// DNATed to, whether it is masqueraded, rejected or not a Service at all. No kernel.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { compileServices } from "./compile.js";
import { DNS_SERVICE, DNS_SLICE, ep, NODE, slice, svc, WEB_LOCAL, WEB_SLICE } from "./fixtures.js";
import { tracePacket } from "./trace.js";

const ruleset = (services = [DNS_SERVICE, WEB_LOCAL], slices = [DNS_SLICE, WEB_SLICE]) => compileServices({ node: NODE, services, slices });

describe("tracePacket", () => {
  const r = ruleset();
  it("10.96.0.10:53/udp from pod x → each endpoint by the random pick, no masquerade", () => {
    const got = [0, 1, 2].map((pick) => tracePacket(r, { src: "10.244.1.99", dst: "10.96.0.10", protocol: "UDP", port: 53, from: "pod", pick }));
    assert.deepEqual(got.map((g) => g.verdict === "dnat" && [g.endpoint, g.masquerade]), [["10.244.1.5:53", false], ["10.244.1.6:53", false], ["10.244.2.7:53", false]]);
  });
  it("hairpin: an endpoint reaching itself through its Service is masqueraded", () => {
    const t = tracePacket(r, { src: "10.244.1.5", dst: "10.96.0.10", protocol: "TCP", port: 53, from: "pod", pick: 0 });
    assert.deepEqual(t.verdict === "dnat" && [t.endpoint, t.masquerade], ["10.244.1.5:53", true]);
  });
  it("not a Service port: no verdict of ours", () => {
    assert.equal(tracePacket(r, { src: "10.244.1.99", dst: "10.96.0.10", protocol: "TCP", port: 54, from: "pod" }).verdict, "no-service");
    assert.equal(tracePacket(r, { src: "10.244.1.99", dst: "10.244.2.7", protocol: "UDP", port: 53, from: "pod" }).verdict, "no-service");
  });
  it("NodePort with ETP Local: only the node's endpoint, source kept; not on other addresses", () => {
    for (const pick of [0, 1, 2]) {
      const t = tracePacket(r, { src: "192.0.2.1", dst: "172.18.0.2", protocol: "TCP", port: 30080, from: "outside", pick });
      assert.deepEqual(t.verdict === "dnat" && [t.endpoint, t.masquerade], ["10.244.1.8:8080", false]);
    }
    assert.equal(tracePacket(r, { src: "192.0.2.1", dst: "172.18.0.9", protocol: "TCP", port: 30080, from: "outside" }).verdict, "no-service");
    // ClusterIP traffic to the same Service still reaches every endpoint.
    const t = tracePacket(r, { src: "10.244.1.99", dst: "10.96.0.20", protocol: "TCP", port: 80, from: "pod", pick: 1 });
    assert.equal(t.verdict === "dnat" && t.endpoint, "10.244.2.9:8080");
  });
  it("NodePort with ETP Local and no endpoint on this node: dropped", () => {
    const other = ruleset([WEB_LOCAL], [slice("web", [ep("10.244.2.9", "node2")], [{ name: "http", protocol: "TCP", port: 8080 }])]);
    assert.equal(tracePacket(other, { src: "192.0.2.1", dst: "172.18.0.2", protocol: "TCP", port: 30080, from: "outside" }).verdict, "drop");
  });
  it("NodePort with ETP Cluster: any endpoint, masqueraded", () => {
    const cl = ruleset([{ ...WEB_LOCAL, externalTrafficPolicy: "Cluster" }], [WEB_SLICE]);
    const t = tracePacket(cl, { src: "192.0.2.1", dst: "10.244.1.1", protocol: "TCP", port: 30080, from: "outside", pick: 1 });
    assert.deepEqual(t.verdict === "dnat" && [t.endpoint, t.masquerade], ["10.244.2.9:8080", true]);
    const c = tracePacket(cl, { src: "10.244.1.99", dst: "10.96.0.20", protocol: "TCP", port: 80, from: "pod", pick: 1 });
    assert.deepEqual(c.verdict === "dnat" && [c.endpoint, c.masquerade], ["10.244.2.9:8080", false]);
  });
  it("internalTrafficPolicy Local: ClusterIP traffic only to this node's endpoints; none here → drop", () => {
    const itp = ruleset([{ ...DNS_SERVICE, internalTrafficPolicy: "Local" }], [DNS_SLICE]);
    const eps = [0, 1, 2, 3].map((pick) => tracePacket(itp, { src: "10.244.1.99", dst: "10.96.0.10", protocol: "UDP", port: 53, from: "pod", pick }));
    assert.deepEqual(eps.map((t) => t.verdict === "dnat" && t.endpoint), ["10.244.1.5:53", "10.244.1.6:53", "10.244.1.5:53", "10.244.1.6:53"]);
    const none = ruleset([{ ...DNS_SERVICE, internalTrafficPolicy: "Local" }], [{ ...DNS_SLICE, endpoints: [ep("10.244.2.7", "node2")] }]);
    assert.equal(tracePacket(none, { src: "10.244.1.99", dst: "10.96.0.10", protocol: "UDP", port: 53, from: "pod" }).verdict, "drop");
  });
  it("no endpoints: rejected on the ClusterIP and the NodePort, from pods, outside and the node", () => {
    const empty = ruleset([{ ...WEB_LOCAL, externalTrafficPolicy: "Cluster" }], []);
    assert.equal(tracePacket(empty, { src: "10.244.1.99", dst: "10.96.0.20", protocol: "TCP", port: 80, from: "pod" }).verdict, "reject");
    assert.equal(tracePacket(empty, { src: "172.18.0.2", dst: "10.96.0.20", protocol: "TCP", port: 80, from: "node" }).verdict, "reject");
    const np = tracePacket(empty, { src: "192.0.2.1", dst: "172.18.0.2", protocol: "TCP", port: 30080, from: "outside" });
    assert.deepEqual([np.verdict, np.path.at(-2)], ["reject", "svc_endpoints_check"]);
  });
  it("terminating endpoints only when no ready one", () => {
    const s = svc("d", { clusterIP: "10.96.0.50" });
    const port = [{ name: "", protocol: "TCP" as const, port: 8080 }];
    const term = ep("10.244.1.20", "node1", { ready: false, serving: true, terminating: true });
    const mixed = ruleset([s], [slice("d", [term, ep("10.244.2.21", "node2")], port)]);
    for (const pick of [0, 1]) {
      const t = tracePacket(mixed, { src: "10.244.1.99", dst: "10.96.0.50", protocol: "TCP", port: 80, from: "pod", pick });
      assert.equal(t.verdict === "dnat" && t.endpoint, "10.244.2.21:8080");
    }
    const only = ruleset([s], [slice("d", [term], port)]);
    const t = tracePacket(only, { src: "10.244.1.99", dst: "10.96.0.50", protocol: "TCP", port: 80, from: "pod", pick: 5 });
    assert.equal(t.verdict === "dnat" && t.endpoint, "10.244.1.20:8080");
  });
  it("ClientIP affinity: a known client goes back to its endpoint whatever the pick, and is recorded", () => {
    const s = svc("sticky", { clusterIP: "10.96.0.30", sessionAffinity: "ClientIP" });
    const aff = ruleset([s], [slice("sticky", [ep("10.244.1.10", "node1"), ep("10.244.2.11", "node2")], [{ name: "", protocol: "TCP", port: 8080 }])]);
    const set = "svc_aff_default/sticky/tcp/80__10.244.2.11/8080";
    assert.deepEqual(aff.sets.map((x) => [x.name, x.timeoutSeconds]).find(([n]) => n === set), [set, 10800]);
    const known = tracePacket(aff, { src: "10.244.1.99", dst: "10.96.0.30", protocol: "TCP", port: 80, from: "pod", pick: 0, affinity: { [set]: ["10.244.1.99"] } });
    assert.deepEqual(known.verdict === "dnat" && [known.endpoint, known.affinityUpdated], ["10.244.2.11:8080", set]);
    const fresh = tracePacket(aff, { src: "10.244.1.98", dst: "10.96.0.30", protocol: "TCP", port: 80, from: "pod", pick: 0, affinity: { [set]: ["10.244.1.99"] } });
    assert.equal(fresh.verdict === "dnat" && fresh.endpoint, "10.244.1.10:8080");
  });
});
