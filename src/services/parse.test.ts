import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseEndpointSlice, parseService } from "./parse.js";

const base = (spec: Record<string, unknown>, meta: Record<string, unknown> = {}) => ({ apiVersion: "v1", kind: "Service", metadata: { name: "web", namespace: "prod", ...meta }, spec });

describe("parseService", () => {
  it("reads a NodePort Service with defaults filled in", () => {
    const s = parseService(base({ type: "NodePort", selector: { app: "web" }, ports: [{ port: 80, targetPort: "http", nodePort: 30080 }] }));
    assert.deepEqual(s, {
      namespace: "prod", name: "web", type: "NodePort", ports: [{ name: "", protocol: "TCP", port: 80, targetPort: "http", nodePort: 30080 }],
      selector: { app: "web" }, sessionAffinity: "None", affinityTimeoutSeconds: 10800, externalTrafficPolicy: "Cluster", internalTrafficPolicy: "Cluster",
    });
  });
  it("session affinity timeout from sessionAffinityConfig", () => {
    const s = parseService(base({ ports: [{ port: 80 }], sessionAffinity: "ClientIP", sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } } }));
    assert.equal(s.affinityTimeoutSeconds, 60);
    assert.equal(s.ports[0]!.targetPort, 80);
  });
  it("unknown field: path and suggestion", () => {
    assert.throws(() => parseService(base({ ports: [{ port: 80, targetPrt: 8080 }] })), /Service prod\/web: spec\.ports\[0\]\.targetPrt: unknown field \(did you mean targetPort\?\)/);
    assert.throws(() => parseService(base({ ports: [{ port: 80 }], sessionAfinity: "ClientIP" })), /spec\.sessionAfinity: unknown field \(did you mean sessionAffinity\?\)/);
  });
  it("port outside 1..65535", () => {
    assert.throws(() => parseService(base({ ports: [{ port: 70000 }] })), /spec\.ports\[0\]\.port 70000: must be 1\.\.65535/);
    assert.throws(() => parseService(base({ ports: [{ port: 80, targetPort: 0 }] })), /spec\.ports\[0\]\.targetPort 0: must be 1\.\.65535/);
  });
  it("nodePort outside the range (a parameter)", () => {
    const doc = base({ type: "NodePort", ports: [{ port: 80, nodePort: 8080 }] });
    assert.throws(() => parseService(doc), /spec\.ports\[0\]\.nodePort 8080: must be in the NodePort range 30000-32767/);
    assert.equal(parseService(doc, { nodePortRange: [8000, 9000] }).ports[0]!.nodePort, 8080);
    assert.throws(() => parseService(base({ ports: [{ port: 80, nodePort: 30080 }] })), /nodePort 30080: may only be set on a Service of type NodePort/);
  });
  it("clusterIP outside the service CIDR (a parameter), network and broadcast refused", () => {
    assert.throws(() => parseService(base({ clusterIP: "10.200.0.1", ports: [{ port: 80 }] })), /spec\.clusterIP "10\.200\.0\.1": is not a usable address of the service CIDR 10\.96\.0\.0\/12/);
    assert.throws(() => parseService(base({ clusterIP: "10.96.0.0", ports: [{ port: 80 }] })), /is not a usable address/);
    assert.equal(parseService(base({ clusterIP: "10.200.0.1", ports: [{ port: 80 }] }), { serviceCidr: "10.200.0.0/16" }).clusterIP, "10.200.0.1");
    assert.equal(parseService(base({ clusterIP: "None", ports: [] })).clusterIP, "None");
    assert.throws(() => parseService(base({ clusterIP: "10.96.0.5", clusterIPs: ["10.96.0.6"], ports: [{ port: 80 }] })), /clusterIPs/);
  });
  it("duplicate port name, missing names with several ports, duplicate port", () => {
    assert.throws(() => parseService(base({ ports: [{ name: "http", port: 80 }, { name: "http", port: 81 }] })), /spec\.ports\[1\]\.name "http": is already the name of spec\.ports\[0\]/);
    assert.throws(() => parseService(base({ ports: [{ port: 80 }, { name: "b", port: 81 }] })), /spec\.ports\[0\]\.name undefined: is required/);
    assert.throws(() => parseService(base({ ports: [{ name: "a", port: 80 }, { name: "b", port: 80 }] })), /spec\.ports\[1\]\.port 80: TCP port is already/);
  });
  it("enumerations name the value", () => {
    assert.throws(() => parseService(base({ type: "LoadBalancer", ports: [{ port: 80 }] })), /spec\.type "LoadBalancer": must be ClusterIP or NodePort/);
    assert.throws(() => parseService(base({ ports: [{ port: 80, protocol: "ICMP" }] })), /spec\.ports\[0\]\.protocol "ICMP": must be TCP or UDP or SCTP/);
    assert.throws(() => parseService(base({ ports: [{ port: 80 }], internalTrafficPolicy: "Node" })), /internalTrafficPolicy "Node"/);
  });
});

describe("parseEndpointSlice", () => {
  const slice = (over: Record<string, unknown> = {}) => ({
    apiVersion: "discovery.k8s.io/v1", kind: "EndpointSlice", addressType: "IPv4",
    metadata: { name: "web-abc", namespace: "prod", labels: { "kubernetes.io/service-name": "web" } },
    endpoints: [{ addresses: ["10.244.1.5"], conditions: { ready: true }, nodeName: "node1", targetRef: { kind: "Pod", name: "web-1" } }],
    ports: [{ name: "http", protocol: "TCP", port: 8080 }], ...over,
  });
  it("reads conditions with Kubernetes defaults", () => {
    const s = parseEndpointSlice(slice());
    assert.deepEqual(s.endpoints[0], { addresses: ["10.244.1.5"], ready: true, serving: true, terminating: false, nodeName: "node1", pod: "prod/web-1" });
    assert.equal(s.service, "web");
    const t = parseEndpointSlice(slice({ endpoints: [{ addresses: ["10.244.1.6"], conditions: { serving: true, terminating: true } }] }));
    assert.deepEqual(t.endpoints[0], { addresses: ["10.244.1.6"], ready: false, serving: true, terminating: true });
  });
  it("refuses what it cannot use, naming field and value", () => {
    assert.throws(() => parseEndpointSlice(slice({ addressType: "IPv6" })), /addressType "IPv6": must be IPv4/);
    assert.throws(() => parseEndpointSlice(slice({ ports: [{ name: "a", port: 0 }] })), /ports\[0\]\.port 0: must be 1\.\.65535/);
    assert.throws(() => parseEndpointSlice(slice({ ports: [{ name: "a", port: 1 }, { name: "a", port: 2 }] })), /ports\[1\]\.name "a": is already/);
    assert.throws(() => parseEndpointSlice(slice({ endpoints: [{ addresses: ["10.244.1.5"], conditon: {} }] })), /endpoints\[0\]\.conditon: unknown field \(did you mean conditions\?\)/);
    assert.throws(() => parseEndpointSlice(slice({ metadata: { name: "x" } })), /kubernetes\.io\/service-name/);
  });
});
