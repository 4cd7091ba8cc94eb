// policy explain --to-service: the endpoints a connection may land on, each with the verdict on
// the DNATed packet (endpoint address and target port), and clear errors for what does not exist.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ep, slice, svc } from "../services/fixtures.js";
import { explainToService, findServicePort, renderServiceExplanation } from "./explain-service.js";
import type { PolicyModel } from "./model.js";
import { parseDocuments } from "./parse.js";

function model(extra = ""): PolicyModel {
  const m: PolicyModel = { namespaces: [{ name: "default", labels: {} }], pods: [], endpoints: [], policies: [] };
  const pods = [["client", "10.244.1.2", "node1", "client"], ["web-a", "10.244.1.3", "node1", "web"], ["web-b", "10.244.2.3", "node2", "web"]];
  const docs = pods.map(([name, , , app]) => JSON.stringify({ apiVersion: "v1", kind: "Pod", metadata: { name, namespace: "default", labels: { app } }, spec: { containers: [] } }));
  for (const p of parseDocuments(docs.join("\n---\n") + (extra ? `\n---\n${extra}` : ""))) {
    if (p.kind === "Pod") m.pods.push(p.object);
    else if (p.kind === "NetworkPolicy") m.policies.push(p.object);
  }
  m.endpoints = pods.map(([pod, ip, node]) => ({ namespace: "default", pod: pod!, node: node!, containerId: pod!, ifname: "eth0", hostIf: "x", ips: [ip!], mode: "routed" as const }));
  return m;
}

const WEB = svc("web", { clusterIP: "10.96.0.1", ports: [{ name: "http", protocol: "TCP", port: 80, targetPort: 8080 }, { name: "dns", protocol: "UDP", port: 53, targetPort: 5353 }] });
const SLICE = slice("web", [ep("10.244.1.3", "node1"), ep("10.244.2.3", "node2"), ep("10.244.2.9", "node2", { ready: false, serving: false })],
  [{ name: "http", protocol: "TCP", port: 8080 }, { name: "dns", protocol: "UDP", port: 5353 }]);
const INPUT = { services: [WEB], slices: [SLICE] };
// Ingress to web on 8080 only: a rule on the service port (80) would not match the DNATed packet.
const ONLY_8080 = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-8080, namespace: default}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{ports: [{port: 8080}]}]
`;

describe("explainToService", () => {
  it("lists the usable endpoints with their verdicts, evaluated on the endpoint's port, and the not-ready one as never chosen", () => {
    const e = explainToService(model(ONLY_8080), INPUT, { service: "default/web", port: "80", src: "10.244.1.2" });
    assert.equal(e.outcome, "endpoints");
    assert.deepEqual(e.endpoints.map((x) => [x.ip, x.port, x.pod, x.node, x.allowed]), [
      ["10.244.1.3", 8080, "default/web-a", "node1", true], ["10.244.2.3", 8080, "default/web-b", "node2", true],
    ]);
    assert.deepEqual(e.notChosen.map((x) => [x.ip, x.why]), [["10.244.2.9", "not ready"]]);
    // UDP 53 -> 5353: the policy allows only 8080, so both endpoints deny.
    const dns = explainToService(model(ONLY_8080), INPUT, { service: "web", port: "dns", src: "10.244.1.2" });
    assert.deepEqual([dns.servicePort.port, dns.servicePort.protocol, dns.allowed], [53, "UDP", false]);
    assert.match(dns.endpoints[0]!.ingress!.reason, /web-8080/);
    const text = renderServiceExplanation(e, "default/client");
    assert.match(text, /^default\/client \(10\.244\.1\.2\) -> Service default\/web \(10\.96\.0\.1\) 80\/TCP \(port http, targetPort 8080\): ALLOWED/);
    assert.match(text, /never chosen: 10\.244\.2\.9:8080 on node2 \(not ready\)/);
  });
  it("internalTrafficPolicy Local: only the source node's endpoints; none there: dropped", () => {
    const local = { services: [{ ...WEB, internalTrafficPolicy: "Local" as const }], slices: [SLICE] };
    const e = explainToService(model(), local, { service: "default/web", port: "80/TCP", src: "10.244.1.2" });
    assert.deepEqual(e.endpoints.map((x) => x.ip), ["10.244.1.3"]);
    assert.match(e.notChosen.find((x) => x.ip === "10.244.2.3")!.why, /internalTrafficPolicy Local/);
    const noLocal = { services: local.services, slices: [slice("web", [ep("10.244.2.3", "node2")], SLICE.ports)] };
    assert.equal(explainToService(model(), noLocal, { service: "default/web", port: "80", src: "10.244.1.2" }).outcome, "dropped");
  });
  it("no usable endpoint: rejected", () => {
    const e = explainToService(model(), { services: [WEB], slices: [] }, { service: "default/web", port: "80", src: "10.244.1.2" });
    assert.deepEqual([e.outcome, e.endpoints, e.allowed], ["rejected", [], false]);
    assert.match(renderServiceExplanation(e, "x"), /REJECTED — no usable endpoint/);
  });
  it("errors name the Service, the field and value, and list what exists", () => {
    assert.throws(() => explainToService(model(), INPUT, { service: "default/nope", port: "80", src: "10.244.1.2" }),
      /--to-service default\/nope: no Service default\/nope with a ClusterIP \(Services in default: web;/);
    assert.throws(() => explainToService(model(), INPUT, { service: "shop/web", port: "80", src: "10.244.1.2" }), /no Service in namespace shop/);
    assert.throws(() => explainToService(model(), INPUT, { service: "default/web", port: "81", src: "10.244.1.2" }),
      /Service default\/web: spec\.ports has no port "81" \(it has http 80\/TCP, dns 53\/UDP\)/);
    assert.throws(() => explainToService(model(), INPUT, { service: "default/web", port: "80", protocol: "UDP", src: "10.244.1.2" }),
      /spec\.ports has no port "80\/UDP"/);
    assert.throws(() => findServicePort(WEB, "80/TCP", "UDP"), /--port 80\/TCP and --protocol UDP disagree/);
    assert.throws(() => findServicePort(WEB, "80", "ICMP"), /--protocol "ICMP": must be one of TCP, UDP, SCTP/);
  });
  it("a number without protocol finds the one port of that number, else its TCP one", () => {
    assert.equal(findServicePort(WEB, "53").protocol, "UDP");
    const both = svc("dns", { ports: [{ name: "u", protocol: "UDP", port: 53, targetPort: 53 }, { name: "t", protocol: "TCP", port: 53, targetPort: 53 }] });
    assert.equal(findServicePort(both, "53").name, "t");
    assert.equal(findServicePort(both, "53", "udp").name, "u");
  });
});
