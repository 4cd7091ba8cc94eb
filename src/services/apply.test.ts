// `trellis apply` for Services, where Trellis is the API server: checks against the network
// config, allocation with datastore reservations (two concurrent applies never share a ClusterIP
// or NodePort), and nothing left reserved by an apply that failed.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { EmbeddedDatastore } from "../datastore/embedded.js";
import { CONFIG_KEY } from "../model/lease.js";
import { objectKey, parseDocuments, type Parsed } from "../policy/parse.js";
import { NODE_PORT_PREFIX, prepareServices, releaseHeldBy, SERVICE_IP_PREFIX } from "./apply.js";

const service = (name: string, spec: Record<string, unknown> = {}): Record<string, unknown> => ({
  apiVersion: "v1", kind: "Service", metadata: { name, namespace: "shop" },
  spec: { selector: { app: name }, ports: [{ name: "http", port: 80, protocol: "TCP", targetPort: 8080 }], ...spec },
});
const docs = (...objs: unknown[]): Parsed[] => parseDocuments(objs.map((o) => JSON.stringify(o)).join("\n---\n"), "test");
const spec = (d: Parsed): Record<string, unknown> => d.raw!.spec as Record<string, unknown>;

describe("prepareServices (apply without an API server)", () => {
  let dir: string;
  let store: EmbeddedDatastore;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "svc-apply-"));
    store = await EmbeddedDatastore.open(dir, { sweepIntervalMs: 0 });
    await store.put(CONFIG_KEY, JSON.stringify({ network: "10.244.0.0/16", serviceCIDR: "10.100.0.0/24", nodePortRange: "31000-31002" }));
  });
  after(async () => {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  /** Apply as the CLI does: prepare, write, commit. */
  const apply = async (ds: Parsed[]): Promise<void> => {
    const p = await prepareServices(store, ds, { allocate: true });
    for (const d of ds) await store.put(objectKey(d), JSON.stringify(d.raw));
    await p.commit();
  };
  const reservations = async (): Promise<string[]> =>
    [...(await store.list(SERVICE_IP_PREFIX)).items, ...(await store.list(NODE_PORT_PREFIX)).items].map((kv) => kv.key).sort();

  it("allocates the lowest free ClusterIP of the configured service CIDR and NodePorts of the range, written into the object", async () => {
    const [d] = docs(service("web", { type: "NodePort" }));
    await apply([d!]);
    assert.equal(spec(d!).clusterIP, "10.100.0.1");
    assert.deepEqual(spec(d!).clusterIPs, ["10.100.0.1"]);
    assert.equal((spec(d!).ports as Array<{ nodePort: number }>)[0]!.nodePort, 31000);
    assert.deepEqual(await reservations(), ["/trellis/nodeports/31000", "/trellis/serviceips/10.100.0.1"]);
  });

  it("re-applying a Service keeps its ClusterIP and NodePort", async () => {
    const [d] = docs(service("web", { type: "NodePort" }));
    await apply([d!]);
    assert.equal(spec(d!).clusterIP, "10.100.0.1");
    assert.equal((spec(d!).ports as Array<{ nodePort: number }>)[0]!.nodePort, 31000);
  });

  it("two concurrent applies never get the same ClusterIP or NodePort", async () => {
    const a = docs(service("a", { type: "NodePort" }));
    const b = docs(service("b", { type: "NodePort" }));
    await Promise.all([apply(a), apply(b)]);
    assert.notEqual(spec(a[0]!).clusterIP, spec(b[0]!).clusterIP);
    const np = (d: Parsed): number => (spec(d).ports as Array<{ nodePort: number }>)[0]!.nodePort;
    assert.notEqual(np(a[0]!), np(b[0]!));
    assert.deepEqual(new Set([np(a[0]!), np(b[0]!)]), new Set([31001, 31002]));
  });

  it("refuses, naming the field and value, and reserves nothing: a held ClusterIP, a NodePort out of range or held, a full range", async () => {
    const before = await reservations();
    const refuses = async (ds: Parsed[], re: RegExp): Promise<void> => {
      await assert.rejects(prepareServices(store, ds, { allocate: true }), re);
      assert.deepEqual(await reservations(), before, "nothing reserved");
    };
    await refuses(docs(service("x", { clusterIP: "10.100.0.1" })), /Service shop\/x: spec\.clusterIP "10\.100\.0\.1": already allocated to Service shop\/web/);
    await refuses(docs(service("x", { clusterIP: "10.96.0.10" })), /spec\.clusterIP "10\.96\.0\.10".*service CIDR 10\.100\.0\.0\/24/);
    await refuses(docs(service("x", { type: "NodePort", ports: [{ port: 80, nodePort: 30080 }] })), /spec\.ports\[0\]\.nodePort.*30080/);
    await refuses(docs(service("x", { type: "NodePort", ports: [{ port: 80, nodePort: 31000 }] })), /spec\.ports\[0\]\.nodePort 31000: already allocated to Service shop\/web/);
    await refuses(docs(service("x", { type: "NodePort" })), /NodePort range 31000-31002 is full/);
    await refuses(docs(service("x", { clusterIP: "10.100.0.9" }), service("y", { clusterIP: "10.100.0.9" })), /spec\.clusterIP "10\.100\.0\.9": given to shop\/x and shop\/y/);
    // A port outside 1..65535 is refused when the file is parsed, before the datastore is opened.
    assert.throws(() => docs(service("x", { ports: [{ port: 70000 }] })), /Service shop\/x: spec\.ports\[0\]\.port 70000: must be 1\.\.65535/);
  });

  it("an EndpointSlice must name a Service that exists or comes in the same apply", async () => {
    const slice = (svc: string) => ({
      apiVersion: "discovery.k8s.io/v1", kind: "EndpointSlice", addressType: "IPv4",
      metadata: { name: `${svc}-1`, namespace: "shop", labels: { "kubernetes.io/service-name": svc } },
      endpoints: [{ addresses: ["10.244.1.5"] }], ports: [{ name: "http", port: 8080, protocol: "TCP" }],
    });
    await assert.rejects(prepareServices(store, docs(slice("ghost")), { allocate: true }),
      /EndpointSlice shop\/ghost-1: metadata\.labels\["kubernetes\.io\/service-name"\] "ghost": no Service shop\/ghost exists/);
    await prepareServices(store, docs(slice("web")), { allocate: true });
    const both = docs(service("late"), slice("late"));
    const p = await prepareServices(store, both, { allocate: true });
    await p.rollback();
  });

  it("rollback frees what the apply reserved; deleting a Service frees what it held", async () => {
    const ds = docs(service("tmp"));
    const p = await prepareServices(store, ds, { allocate: true });
    assert.ok((await reservations()).includes(`/trellis/serviceips/${spec(ds[0]!).clusterIP}`));
    await p.rollback();
    assert.ok(!(await reservations()).includes(`/trellis/serviceips/${spec(ds[0]!).clusterIP}`));
    await releaseHeldBy(store, "shop/a");
    assert.ok(!(await reservations()).some((k) => k.endsWith(String(spec(docs(service("a"))[0]!).clusterIP))));
  });

  it("a service CIDR overlapping the pod network is refused, naming serviceCIDR", async () => {
    const d2 = fs.mkdtempSync(path.join(os.tmpdir(), "svc-apply2-"));
    const s2 = await EmbeddedDatastore.open(d2, { sweepIntervalMs: 0 });
    try {
      await s2.put(CONFIG_KEY, JSON.stringify({ network: "10.96.0.0/16" }));
      await assert.rejects(prepareServices(s2, docs(service("web")), { allocate: true }), /serviceCIDR "10\.96\.0\.0\/12" \(the default\): overlaps the pod network 10\.96\.0\.0\/16/);
    } finally {
      await s2.close();
      fs.rmSync(d2, { recursive: true, force: true });
    }
  });
});
