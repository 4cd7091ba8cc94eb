import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AllocationError, allocateAll, allocateClusterIP, allocateNodePort, duplicateClusterIPs, duplicateNodePorts } from "./allocate.js";
import { svc } from "./fixtures.js";

describe("allocateClusterIP", () => {
  it("lowest free address, never the network address, deterministic", () => {
    assert.equal(allocateClusterIP([]), "10.96.0.1");
    assert.equal(allocateClusterIP(["10.96.0.1", "10.96.0.2"]), "10.96.0.3");
    assert.equal(allocateClusterIP(new Set(["10.96.0.2", "10.96.0.1"])), "10.96.0.3");
  });
  it("never the broadcast address; error when full", () => {
    assert.equal(allocateClusterIP(["10.0.0.1"], "10.0.0.0/30"), "10.0.0.2");
    assert.throws(() => allocateClusterIP(["10.0.0.1", "10.0.0.2"], "10.0.0.0/30"), (e: unknown) => e instanceof AllocationError && e.code === "cidr-full" && /10\.0\.0\.0\/30 is full/.test(e.message));
  });
});

describe("allocateNodePort", () => {
  it("lowest free port of the range; error when full", () => {
    assert.equal(allocateNodePort([30000, 30002]), 30001);
    assert.throws(() => allocateNodePort([5, 6], [5, 6]), /NodePort range 5-6 is full/);
  });
});

describe("duplicates and allocateAll", () => {
  it("detects a ClusterIP or NodePort held twice", () => {
    assert.deepEqual(duplicateClusterIPs([svc("a"), svc("b"), svc("c", { clusterIP: "10.96.0.11" })]), [{ value: "10.96.0.10", services: ["default/a", "default/b"] }]);
    const np = (n: string) => svc(n, { type: "NodePort", ports: [{ name: "", protocol: "TCP", port: 80, targetPort: 80, nodePort: 30080 }] });
    assert.deepEqual(duplicateNodePorts([np("a"), np("b")]), [{ value: "30080/TCP", services: ["default/a", "default/b"] }]);
    assert.throws(() => allocateAll([svc("a"), svc("b")]), /ClusterIP 10\.96\.0\.10 is held by default\/a and default\/b/);
  });
  it("fills what is missing, in name order whatever the input order", () => {
    const a = svc("a", { clusterIP: undefined });
    const b = svc("b", { clusterIP: undefined, type: "NodePort" });
    const c = svc("c", { clusterIP: "10.96.0.1" });
    const one = allocateAll([a, b, c]);
    const two = allocateAll([c, b, a]);
    assert.deepEqual(one, two);
    assert.deepEqual(one.map((s) => [s.name, s.clusterIP, s.ports[0]!.nodePort]), [["a", "10.96.0.2", undefined], ["b", "10.96.0.3", 30000], ["c", "10.96.0.1", undefined]]);
  });
});
