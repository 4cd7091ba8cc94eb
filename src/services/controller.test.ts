import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { EmbeddedDatastore } from "../datastore/embedded.js";
import { compileServices } from "./compile.js";
import { ServicesSync, servicesFromObjects, SERVICE_PREFIX, syncScript, newParseCache } from "./controller.js";
import { DNS_SERVICE, DNS_SLICE, NODE } from "./fixtures.js";

const web = { apiVersion: "v1", kind: "Service", metadata: { name: "web", namespace: "shop" },
  spec: { clusterIP: "10.96.0.10", selector: { app: "web" }, ports: [{ name: "http", port: 80, protocol: "TCP", targetPort: "http" }] } };
const pod = { apiVersion: "v1", kind: "Pod", metadata: { name: "web-1", namespace: "shop", labels: { app: "web" } },
  spec: { containers: [{ name: "c", ports: [{ name: "http", containerPort: 8080, protocol: "TCP" }] }] } };
const endpoint = { namespace: "shop", pod: "web-1", node: "node2", containerId: "c1", ifname: "eth0", hostIf: "trl1", ips: ["10.244.2.5"], mode: "routed" };

const pod2 = { ...pod, metadata: { ...pod.metadata, name: "web-2" } };
const endpoint2 = { ...endpoint, pod: "web-2", node: "node1", containerId: "c2", hostIf: "trl2", ips: ["10.244.1.7"] };

/** A kernel that records scripts; `next()` resolves with the next one applied (no polling, no sleeps). */
function recordingKernel() {
  const scripts: string[] = [];
  const waiting: Array<(s: string) => void> = [];
  return {
    scripts,
    next: (): Promise<string> => new Promise((resolve) => waiting.push(resolve)),
    kernel: { apply: async (s: string) => { scripts.push(s); waiting.shift()?.(s); }, tableExists: async () => false },
  };
}

describe("servicesFromObjects", () => {
  it("derives a slice from pods and endpoint records for a Service with a selector", () => {
    const r = servicesFromObjects([
      { key: `${SERVICE_PREFIX}shop/web`, value: JSON.stringify(web) },
      { key: "/trellis/pods/shop/web-1", value: JSON.stringify(pod) },
      { key: "/trellis/endpoints/node2/c1/eth0", value: JSON.stringify(endpoint) },
    ], (k, why) => assert.fail(`${k}: ${why}`));
    assert.equal(r.services.length, 1);
    assert.deepEqual(r.slices.map((s) => [s.service, s.endpoints.map((e) => [e.addresses[0], e.nodeName, e.ready]), s.ports.map((p) => p.port)]),
      [["web", [["10.244.2.5", "node2", true]], [8080]]]);
  });
});

describe("servicesFromObjects with a parse cache", () => {
  it("reuses the parse of an unchanged object, parses a changed one, forgets a deleted one", () => {
    const cache = newParseCache();
    const kv = { key: `${SERVICE_PREFIX}shop/web`, value: JSON.stringify(web) };
    const fail = (k: string, why: string): never => assert.fail(`${k}: ${why}`);
    const first = servicesFromObjects([kv], fail, cache).services[0];
    assert.equal(servicesFromObjects([kv], fail, cache).services[0], first, "the same parsed object");
    const changed = { ...kv, value: JSON.stringify({ ...web, spec: { ...web.spec, clusterIP: "10.96.0.11" } }) };
    assert.equal(servicesFromObjects([changed], fail, cache).services[0]!.clusterIP, "10.96.0.11");
    servicesFromObjects([], fail, cache);
    assert.equal(cache.services.size, 0);
  });
});

describe("ServicesSync", () => {
  it("no Service: no nft call; first Service: the table replaced whole; endpoints scaled: elements only; last Service gone: the table deleted", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "svc-sync-"));
    const store = await EmbeddedDatastore.open(dir, { sweepIntervalMs: 0 });
    const ac = new AbortController();
    const k = recordingKernel();
    try {
      await store.put("/trellis/pods/shop/web-1", JSON.stringify(pod));
      await store.put("/trellis/endpoints/node2/c1/eth0", JSON.stringify(endpoint));
      const sync = new ServicesSync({ node: "node1", nodeIps: () => ["172.18.0.2"], store, log: () => {}, signal: ac.signal, kernel: k.kernel });
      await sync.start();
      await sync.idle();
      assert.deepEqual(k.scripts, [], "no Service: nothing sent to the kernel");

      let next = k.next();
      await store.put(`${SERVICE_PREFIX}shop/web`, JSON.stringify(web));
      const full = await next;
      assert.match(full, /^add table inet trellis-svc\ndelete table inet trellis-svc\nadd table inet trellis-svc\n/);
      assert.match(full, /^add element inet trellis-svc svc_endpoints_tcp \{ 10\.96\.0\.10 \. 80 \. 0-1048575 : 10\.244\.2\.5 \. 8080 \}$/m);

      next = k.next();
      await store.put("/trellis/pods/shop/web-2", JSON.stringify(pod2));
      await store.put("/trellis/endpoints/node1/c2/eth0", JSON.stringify(endpoint2));
      // The pod record alone changes nothing (no nft call); its endpoint record makes it an endpoint.
      const delta = await next;
      for (const line of delta.trim().split("\n")) assert.match(line, /^(add|delete) element /, line);
      assert.match(delta, /^add element inet trellis-svc svc_hairpin \{ 10\.244\.1\.7 \. 10\.244\.1\.7 \}$/m);

      next = k.next();
      await store.delete(`${SERVICE_PREFIX}shop/web`);
      assert.equal(await next, "add table inet trellis-svc\ndelete table inet trellis-svc\n");
      const sent = k.scripts.length;
      await store.delete("/trellis/pods/shop/web-1");
      await sync.idle();
      assert.equal(k.scripts.length, sent, "no Service left: no further nft call");
    } finally {
      ac.abort();
      await store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("an apply that fails is retried as a whole-table replacement", () => {
    const one = compileServices({ node: NODE, services: [DNS_SERVICE], slices: [DNS_SLICE] });
    const two = compileServices({ node: NODE, services: [DNS_SERVICE], slices: [{ ...DNS_SLICE, endpoints: DNS_SLICE.endpoints.slice(1) }] });
    assert.equal(syncScript(undefined, undefined, false).kind, "none");
    assert.equal(syncScript(undefined, undefined, true).kind, "delete");
    assert.equal(syncScript(undefined, two, true).kind, "full");
    assert.equal(syncScript(one, two, true).kind, "delta");
    assert.equal(syncScript(two, two, true).kind, "none");
  });
});
