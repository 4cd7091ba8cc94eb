import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { endpointSlicesFor } from "./endpoints.js";
import { svc } from "./fixtures.js";
import type { PodInfo } from "./model.js";

const pod = (name: string, over: Partial<PodInfo> = {}): PodInfo => ({
  namespace: "default", name, labels: { app: "web" }, node: "node1", ips: ["10.244.1.5"], attached: true,
  ports: [{ name: "http", containerPort: 8080, protocol: "TCP" }], ...over,
});

describe("endpointSlicesFor", () => {
  const web = svc("web", { ports: [{ name: "http", protocol: "TCP", port: 80, targetPort: "http" }] });
  it("selected pods of the namespace, ready = attached, named port resolved", () => {
    const slices = endpointSlicesFor(web, [
      pod("web-1"), pod("web-2", { ips: ["10.244.2.5"], node: "node2", attached: false }),
      pod("other", { labels: { app: "db" } }), pod("web-x", { namespace: "prod" }),
    ]);
    assert.equal(slices.length, 1);
    assert.deepEqual(slices[0]!.ports, [{ name: "http", protocol: "TCP", port: 8080 }]);
    assert.deepEqual(slices[0]!.endpoints.map((e) => [e.addresses[0], e.ready, e.nodeName, e.pod]), [
      ["10.244.1.5", true, "node1", "default/web-1"], ["10.244.2.5", false, "node2", "default/web-2"],
    ]);
  });
  it("pods without the named port are skipped; different numbers give different slices", () => {
    const slices = endpointSlicesFor(web, [
      pod("a"), pod("b", { ips: ["10.244.1.6"], ports: [] }), pod("c", { ips: ["10.244.1.7"], ports: [{ name: "http", containerPort: 9090, protocol: "TCP" }] }),
      pod("d", { ips: ["10.244.1.8"], ports: [{ name: "http", containerPort: 8080, protocol: "UDP" }] }),
    ]);
    assert.deepEqual(slices.map((s) => [s.ports[0]!.port, s.endpoints.map((e) => e.addresses[0])]), [[8080, ["10.244.1.5"]], [9090, ["10.244.1.7"]]]);
  });
  it("terminating pods are not ready but still serving; no selector → no slices", () => {
    const [s] = endpointSlicesFor(web, [pod("a", { terminating: true })]);
    assert.deepEqual(s!.endpoints[0]!.ready, false);
    assert.deepEqual([s!.endpoints[0]!.serving, s!.endpoints[0]!.terminating], [true, true]);
    assert.deepEqual(endpointSlicesFor(svc("x", { selector: undefined }), [pod("a")]), []);
  });
});
