import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { EmbeddedDatastore } from "../datastore/embedded.js";
import { ServicesSync, servicesFromObjects, SERVICE_PREFIX } from "./controller.js";

const web = { apiVersion: "v1", kind: "Service", metadata: { name: "web", namespace: "shop" },
  spec: { clusterIP: "10.96.0.10", selector: { app: "web" }, ports: [{ name: "http", port: 80, protocol: "TCP", targetPort: "http" }] } };
const pod = { apiVersion: "v1", kind: "Pod", metadata: { name: "web-1", namespace: "shop", labels: { app: "web" } },
  spec: { containers: [{ name: "c", ports: [{ name: "http", containerPort: 8080, protocol: "TCP" }] }] } };
const endpoint = { namespace: "shop", pod: "web-1", node: "node2", containerId: "c1", ifname: "eth0", hostIf: "trl1", ips: ["10.244.2.5"], mode: "routed" };

const until = async (cond: () => boolean): Promise<void> => {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond());
};

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

describe("ServicesSync", () => {
  it("makes no nft call without a Service; replaces the table on change; deletes it with the last Service", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "svc-sync-"));
    const store = await EmbeddedDatastore.open(dir, { sweepIntervalMs: 0 });
    const ac = new AbortController();
    const scripts: string[] = [];
    try {
      await store.put("/trellis/pods/shop/web-1", JSON.stringify(pod));
      await store.put("/trellis/endpoints/node2/c1/eth0", JSON.stringify(endpoint));
      const sync = new ServicesSync({ node: "node1", nodeIps: () => ["172.18.0.2"], store, log: () => {}, signal: ac.signal,
        kernel: { apply: async (s) => { scripts.push(s); } } });
      await sync.start();
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(scripts, [], "no Service: nothing sent to the kernel");
      await store.put(`${SERVICE_PREFIX}shop/web`, JSON.stringify(web));
      await until(() => scripts.length === 1);
      assert.match(scripts[0]!, /^add table inet trellis-svc\ndelete table inet trellis-svc\nadd table inet trellis-svc\n/);
      assert.match(scripts[0]!, /dnat ip to 10\.244\.2\.5:8080/);
      await store.delete(`${SERVICE_PREFIX}shop/web`);
      await until(() => scripts.length === 2);
      assert.equal(scripts[1], "delete table inet trellis-svc\n");
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(scripts.length, 2);
    } finally {
      ac.abort();
      await store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
