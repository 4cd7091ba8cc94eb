// Services and EndpointSlices on the Kubernetes datastore: objects as a real cluster serves them
// (`kubectl get -o json` of kind/kubeadm clusters: server-filled metadata, managedFields,
// clusterIPs, ipFamilies, internalTrafficPolicy, status.loadBalancer, targetRef, conditions,
// zone, `endpoints: null`) become the keys the services controller reads, and what they hold is
// what src/services/parse.ts accepts; then the same through the official client against the fake
// API server: list and watch, a write by `trellis apply` (an admin) and back, and the agent's
// credentials that may only read.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import * as k8s from "@kubernetes/client-node";
import { WatchRecorder } from "../datastore/conformance.js";
import { DatastoreError } from "../datastore/types.js";
import { parseEndpointSlice, parseService } from "../services/parse.js";
import { ENDPOINTSLICE_PREFIX, SERVICE_PREFIX } from "../services/controller.js";
import type { FakeApiServer } from "./apiserver.js";
import { ADMIN, AGENT, eventually, kubeConfig, startServer } from "./test-server.js";
import { CRDS } from "./crds.js";
import { KubernetesDatastore } from "./datastore.js";
import { entriesOf, keepAllocated, targetOf, type ApiObject } from "./mapping.js";
import { AGENT_RULES } from "./rbac.js";

const MANAGED = [{ apiVersion: "v1", fieldsType: "FieldsV1", fieldsV1: { "f:spec": { "f:ports": {} } }, manager: "kubectl-client-side-apply", operation: "Update", time: "2024-05-02T09:14:07Z" }];

/** `kubectl get svc web -o json` on a kind cluster (v1.30): a ClusterIP Service applied with kubectl. */
const REAL_CLUSTERIP_SERVICE = {
  apiVersion: "v1",
  kind: "Service",
  metadata: {
    annotations: { "kubectl.kubernetes.io/last-applied-configuration": "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"annotations\":{},\"name\":\"web\",\"namespace\":\"shop\"},\"spec\":{\"ports\":[{\"name\":\"http\",\"port\":80,\"targetPort\":\"http\"}],\"selector\":{\"app\":\"web\"}}}\n" },
    creationTimestamp: "2024-05-02T09:14:07Z",
    labels: { app: "web" },
    managedFields: MANAGED,
    name: "web",
    namespace: "shop",
    resourceVersion: "48213",
    uid: "0b3c4a52-7a0e-4d39-9d5e-3c3f6f1b2a11",
  },
  spec: {
    clusterIP: "10.96.143.7",
    clusterIPs: ["10.96.143.7"],
    internalTrafficPolicy: "Cluster",
    ipFamilies: ["IPv4"],
    ipFamilyPolicy: "SingleStack",
    ports: [{ name: "http", port: 80, protocol: "TCP", targetPort: "http", appProtocol: "http" }],
    selector: { app: "web" },
    sessionAffinity: "None",
    type: "ClusterIP",
  },
  status: { loadBalancer: {} },
};

/** A NodePort Service with ClientIP affinity, as served (defaults filled in by the API server). */
const REAL_NODEPORT_SERVICE = {
  apiVersion: "v1",
  kind: "Service",
  metadata: { creationTimestamp: "2024-05-02T09:20:00Z", name: "shop-np", namespace: "shop", resourceVersion: "48301", uid: "5d2e9c0e-1111-4c51-b0aa-7e0c4bd8e001" },
  spec: {
    clusterIP: "10.96.20.4", clusterIPs: ["10.96.20.4"], externalTrafficPolicy: "Cluster", internalTrafficPolicy: "Cluster",
    ipFamilies: ["IPv4"], ipFamilyPolicy: "SingleStack",
    ports: [{ name: "http", nodePort: 30080, port: 80, protocol: "TCP", targetPort: 8080 }, { name: "metrics", nodePort: 31090, port: 9090, protocol: "TCP", targetPort: 9090 }],
    selector: { app: "web" }, sessionAffinity: "ClientIP", sessionAffinityConfig: { clientIP: { timeoutSeconds: 10800 } }, type: "NodePort",
  },
  status: { loadBalancer: {} },
};

/** `kubectl get endpointslice -o json`: written by the cluster's endpointslice controller. */
const REAL_SLICE = {
  addressType: "IPv4",
  apiVersion: "discovery.k8s.io/v1",
  endpoints: [
    {
      addresses: ["10.244.1.5"], conditions: { ready: true, serving: true, terminating: false }, nodeName: "kind-worker",
      targetRef: { kind: "Pod", name: "web-7d4b9c8f6d-x2k8p", namespace: "shop", uid: "c1a4e3b2-2b7e-4d0a-9f57-0d8c2b6e4f10" }, zone: "eu-west-1a",
    },
    {
      addresses: ["10.244.2.9"], conditions: { ready: false, serving: true, terminating: true }, nodeName: "kind-worker2",
      targetRef: { kind: "Pod", name: "web-7d4b9c8f6d-q9w7z", namespace: "shop", uid: "8f0d7b7a-5c8e-4d9b-a6c4-1b2e3f4a5b6c" },
      hints: { forZones: [{ name: "eu-west-1b" }] },
    },
  ],
  kind: "EndpointSlice",
  metadata: {
    annotations: { "endpoints.kubernetes.io/last-change-trigger-time": "2024-05-02T09:14:09Z" },
    creationTimestamp: "2024-05-02T09:14:07Z",
    generateName: "web-",
    generation: 3,
    labels: { "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io", "kubernetes.io/service-name": "web", app: "web" },
    managedFields: [{ apiVersion: "discovery.k8s.io/v1", fieldsType: "FieldsV1", fieldsV1: {}, manager: "kube-controller-manager", operation: "Update", time: "2024-05-02T09:14:09Z" }],
    name: "web-8fkqz",
    namespace: "shop",
    ownerReferences: [{ apiVersion: "v1", blockOwnerDeletion: true, controller: true, kind: "Service", name: "web", uid: "0b3c4a52-7a0e-4d39-9d5e-3c3f6f1b2a11" }],
    resourceVersion: "48250",
    uid: "e2d9a4f1-3f7c-4b1e-8a55-90c1d2e3f4a5",
  },
  ports: [{ name: "http", port: 8080, protocol: "TCP", appProtocol: "http" }],
};

/** A slice of a Service whose pods are all gone: Go writes the empty list as null. */
const EMPTY_SLICE = {
  addressType: "IPv4", apiVersion: "discovery.k8s.io/v1", endpoints: null, kind: "EndpointSlice",
  metadata: { generateName: "empty-", labels: { "kubernetes.io/service-name": "empty" }, name: "empty-abcde", namespace: "shop", resourceVersion: "7", uid: "u" },
  ports: null,
};

const only = (es: ReturnType<typeof entriesOf>) => {
  assert.equal(es.length, 1);
  return es[0]!;
};

describe("kubernetes mapping of Services and EndpointSlices (pure)", () => {
  test("a Service as a real cluster serves it is /trellis/services/<ns>/<name>, and parses", () => {
    const e = only(entriesOf("services", REAL_CLUSTERIP_SERVICE as ApiObject));
    assert.equal(e.key, `${SERVICE_PREFIX}shop/web`);
    const doc = JSON.parse(e.value) as Record<string, unknown>;
    assert.deepEqual(doc.metadata, { name: "web", namespace: "shop", labels: { app: "web" } }, "server-filled metadata is not Trellis' input");
    assert.equal(doc.status, undefined);
    assert.deepEqual(parseService(doc), {
      namespace: "shop", name: "web", type: "ClusterIP", clusterIP: "10.96.143.7", ports: [{ name: "http", protocol: "TCP", port: 80, targetPort: "http" }],
      selector: { app: "web" }, sessionAffinity: "None", affinityTimeoutSeconds: 10800, externalTrafficPolicy: "Cluster", internalTrafficPolicy: "Cluster",
    });
  });

  test("the unreduced objects parse too (every field a real API server sends is known to the strict parser)", () => {
    assert.equal(parseService(REAL_CLUSTERIP_SERVICE).clusterIP, "10.96.143.7");
    assert.deepEqual(parseService(REAL_NODEPORT_SERVICE).ports.map((p) => p.nodePort), [30080, 31090]);
    assert.equal(parseEndpointSlice(REAL_SLICE).endpoints.length, 2);
    assert.equal(parseEndpointSlice(EMPTY_SLICE).endpoints.length, 0);
  });

  test("a NodePort Service keeps its nodePorts, affinity and traffic policy", () => {
    const s = parseService(JSON.parse(only(entriesOf("services", REAL_NODEPORT_SERVICE as ApiObject)).value));
    assert.equal(s.type, "NodePort");
    assert.deepEqual(s.ports.map((p) => [p.port, p.nodePort, p.targetPort]), [[80, 30080, 8080], [9090, 31090, 9090]]);
    assert.equal(s.sessionAffinity, "ClientIP");
    assert.equal(s.externalTrafficPolicy, "Cluster");
  });

  test("an EndpointSlice is /trellis/endpointslices/<ns>/<name>: endpoints with conditions, nodes and pods", () => {
    const e = only(entriesOf("endpointslices", REAL_SLICE as ApiObject));
    assert.equal(e.key, `${ENDPOINTSLICE_PREFIX}shop/web-8fkqz`);
    const doc = JSON.parse(e.value) as Record<string, unknown>;
    assert.deepEqual(Object.keys(doc).sort(), ["addressType", "apiVersion", "endpoints", "kind", "metadata", "ports"]);
    assert.deepEqual(parseEndpointSlice(doc), {
      namespace: "shop", name: "web-8fkqz", service: "web", addressType: "IPv4",
      endpoints: [
        { addresses: ["10.244.1.5"], ready: true, serving: true, terminating: false, nodeName: "kind-worker", pod: "shop/web-7d4b9c8f6d-x2k8p" },
        { addresses: ["10.244.2.9"], ready: false, serving: true, terminating: true, nodeName: "kind-worker2", pod: "shop/web-7d4b9c8f6d-q9w7z" },
      ],
      ports: [{ name: "http", protocol: "TCP", port: 8080 }],
    });
  });

  test("a slice without endpoints (null, as Go encodes it) has the same value as one listed through the client (absent)", () => {
    const fromWatch = only(entriesOf("endpointslices", EMPTY_SLICE as unknown as ApiObject)).value;
    const { endpoints: _e, ports: _p, ...listed } = EMPTY_SLICE;
    assert.equal(only(entriesOf("endpointslices", listed as ApiObject)).value, fromWatch);
    assert.deepEqual(parseEndpointSlice(JSON.parse(fromWatch)).endpoints, []);
  });

  test("writes of these keys go to the objects; a write keeps what the API server allocated", () => {
    const t = targetOf(`${SERVICE_PREFIX}shop/web`);
    assert.ok(t.type === "object" && t.resource === "services" && t.namespace === "shop" && t.name === "web");
    const built = t.build(JSON.stringify(REAL_CLUSTERIP_SERVICE));
    assert.deepEqual(Object.keys(built.metadata!).sort(), ["annotations", "labels", "name", "namespace"], "server fields are not sent back");
    assert.equal(built.status, undefined);
    const s = targetOf(`${ENDPOINTSLICE_PREFIX}shop/web-8fkqz`);
    assert.ok(s.type === "object" && s.resource === "endpointslices");
    assert.equal(targetOf(`${SERVICE_PREFIX}shop`).type, "value", "not a Service key: a TrellisValue");

    // `trellis apply` of the Service without the allocated values: the ClusterIP and NodePorts stay.
    const applied = { apiVersion: "v1", kind: "Service", metadata: { name: "shop-np", namespace: "shop" },
      spec: { type: "NodePort", selector: { app: "web" }, ports: [{ name: "http", port: 80, targetPort: 8080 }, { name: "metrics", port: 9090, nodePort: 31999 }] } };
    const kept = keepAllocated(REAL_NODEPORT_SERVICE as ApiObject, applied as ApiObject);
    assert.equal(kept.spec!.clusterIP, "10.96.20.4");
    assert.deepEqual(kept.spec!.clusterIPs, ["10.96.20.4"]);
    assert.deepEqual((kept.spec!.ports as Array<{ nodePort?: number }>).map((p) => p.nodePort), [30080, 31999], "a nodePort given is the one asked for");
    const moved = keepAllocated(REAL_NODEPORT_SERVICE as ApiObject, { ...applied, spec: { ...applied.spec, clusterIP: "10.96.0.9" } } as ApiObject);
    assert.equal(moved.spec!.clusterIPs, undefined, "another clusterIP asked for: the old clusterIPs are not carried over (the server says it is immutable)");
    const asClusterIP = keepAllocated(REAL_NODEPORT_SERVICE as ApiObject, { ...applied, spec: { ...applied.spec, type: "ClusterIP", ports: [{ name: "http", port: 80 }] } } as ApiObject);
    assert.equal((asClusterIP.spec!.ports as Array<{ nodePort?: number }>)[0]!.nodePort, undefined, "a ClusterIP Service gets no nodePort back");
  });
});


/** A served object written back as created: server fields a client may not send on create removed. */
function asCreated<T extends { metadata: Record<string, unknown> }>(o: T): T {
  const { resourceVersion: _rv, uid: _u, creationTimestamp: _c, managedFields: _m, generation: _g, ...metadata } = o.metadata;
  return { ...o, metadata } as T;
}

describe("kubernetes datastore: Services and EndpointSlices through the official client (fake API server)", () => {
  let server: FakeApiServer;
  let admin: k8s.KubeConfig;
  let core: k8s.CoreV1Api;
  let discovery: k8s.DiscoveryV1Api;
  let store: KubernetesDatastore;
  before(async () => {
    server = await startServer();
    admin = kubeConfig(server.url, ADMIN);
    core = admin.makeApiClient(k8s.CoreV1Api);
    discovery = admin.makeApiClient(k8s.DiscoveryV1Api);
    await core.createNamespace({ body: { metadata: { name: "shop" } } });
    // Written before the agent starts: they arrive by its first list (the client's model classes).
    await core.createNamespacedService({ namespace: "shop", body: asCreated(REAL_CLUSTERIP_SERVICE) as unknown as k8s.V1Service });
    await discovery.createNamespacedEndpointSlice({ namespace: "shop", body: asCreated(REAL_SLICE) as unknown as k8s.V1EndpointSlice });
    store = await KubernetesDatastore.open({ kubeConfig: kubeConfig(server.url, AGENT), sweepIntervalMs: 0, log: () => undefined });
  });
  after(async () => {
    await store?.close();
    await server.close();
  });

  test("discovery serves discovery.k8s.io/v1 endpointslices (namespaced, every verb)", async () => {
    const list = await admin.makeApiClient(k8s.ApisApi).getAPIVersions();
    assert.ok(list.groups.some((g) => g.name === "discovery.k8s.io" && g.versions.some((v) => v.version === "v1")));
    const res = await discovery.getAPIResources();
    const slices = res.resources.find((r) => r.name === "endpointslices");
    assert.equal(slices?.kind, "EndpointSlice");
    assert.equal(slices?.namespaced, true);
    assert.deepEqual([...(slices?.verbs ?? [])].sort(), ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]);
  });

  test("listed objects (the client's model classes) are the keys the controller reads, and parse", async () => {
    const svc = parseService(JSON.parse((await store.get(`${SERVICE_PREFIX}shop/web`))!.value));
    assert.equal(svc.clusterIP, "10.96.143.7");
    assert.deepEqual(svc.ports, [{ name: "http", protocol: "TCP", port: 80, targetPort: "http" }]);
    const slice = parseEndpointSlice(JSON.parse((await store.get(`${ENDPOINTSLICE_PREFIX}shop/web-8fkqz`))!.value));
    assert.equal(slice.service, "web");
    assert.deepEqual(slice.endpoints.map((e) => [e.addresses[0], e.ready, e.serving, e.terminating, e.nodeName, e.pod]),
      [["10.244.1.5", true, true, false, "kind-worker", "shop/web-7d4b9c8f6d-x2k8p"], ["10.244.2.9", false, true, true, "kind-worker2", "shop/web-7d4b9c8f6d-q9w7z"]]);
  });

  test("a listed and a watched object give the same value", async () => {
    const listedSvc = (await store.get(`${SERVICE_PREFIX}shop/web`))!.value;
    const listedSlice = (await store.get(`${ENDPOINTSLICE_PREFIX}shop/web-8fkqz`))!.value;
    const other = await KubernetesDatastore.open({ kubeConfig: kubeConfig(server.url, AGENT), sweepIntervalMs: 0, log: () => undefined });
    try {
      // The second store lists too; a change makes the first one receive a watch event of the whole object.
      await core.patchNamespacedService({ namespace: "shop", name: "web", body: { metadata: { annotations: { touched: "1" } } } },
        k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch));
      await discovery.patchNamespacedEndpointSlice({ namespace: "shop", name: "web-8fkqz", body: { metadata: { annotations: { touched: "1" } } } },
        k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch));
      await new Promise((r) => setTimeout(r, 200));
      assert.equal((await store.get(`${SERVICE_PREFIX}shop/web`))!.value, listedSvc, "an annotation is not Trellis' input: nothing changed");
      assert.equal((await store.get(`${ENDPOINTSLICE_PREFIX}shop/web-8fkqz`))!.value, listedSlice);
      assert.equal((await other.get(`${SERVICE_PREFIX}shop/web`))!.value, listedSvc);
    } finally {
      await other.close();
    }
  });

  test("the endpointslice controller's changes arrive as puts and deletes of the slice's key", async () => {
    const from = (await store.list(ENDPOINTSLICE_PREFIX)).revision;
    const w = new WatchRecorder(store, ENDPOINTSLICE_PREFIX, from);
    const key = `${ENDPOINTSLICE_PREFIX}shop/web-8fkqz`;
    const cur = await discovery.readNamespacedEndpointSlice({ namespace: "shop", name: "web-8fkqz" });
    await discovery.replaceNamespacedEndpointSlice({ namespace: "shop", name: "web-8fkqz", body: { ...cur, endpoints: [cur.endpoints![0]!] } });
    await w.until(() => w.events.some((e) => e.type === "put" && e.kv.key === key && parseEndpointSlice(JSON.parse(e.kv.value)).endpoints.length === 1), 5000, "one endpoint left");
    await discovery.deleteNamespacedEndpointSlice({ namespace: "shop", name: "web-8fkqz" });
    await w.until(() => w.events.some((e) => e.type === "delete" && e.key === key), 5000, "slice deleted");
    w.stop();
  });

  test("the agent's credentials only read them: a write is refused by RBAC, naming verb and resource", async () => {
    const svc = { apiVersion: "v1", kind: "Service", metadata: { name: "mine", namespace: "shop" }, spec: { clusterIP: "10.96.0.60", ports: [{ port: 80 }] } };
    await assert.rejects(store.put(`${SERVICE_PREFIX}shop/mine`, JSON.stringify(svc)),
      (e: unknown) => e instanceof DatastoreError && /create services shop\/mine: forbidden by RBAC/.test(e.message));
  });

  test("`trellis apply` (an admin's store) creates a Service and an EndpointSlice; re-applying keeps the allocated ClusterIP", async () => {
    const adminStore = await KubernetesDatastore.open({ kubeConfig: admin, sweepIntervalMs: 0, log: () => undefined });
    try {
      const svc = { apiVersion: "v1", kind: "Service", metadata: { name: "api", namespace: "shop" }, spec: { clusterIP: "10.96.0.50", selector: { app: "api" }, ports: [{ name: "http", port: 80, targetPort: 8080 }] } };
      await adminStore.put(`${SERVICE_PREFIX}shop/api`, JSON.stringify(svc));
      const got = await core.readNamespacedService({ namespace: "shop", name: "api" });
      assert.equal(got.spec?.clusterIP, "10.96.0.50");
      // The document again, without the clusterIP: the address the server holds stays (as a real server's update does).
      const { clusterIP: _ip, ...noIp } = svc.spec;
      await adminStore.put(`${SERVICE_PREFIX}shop/api`, JSON.stringify({ ...svc, spec: { ...noIp, ports: [{ name: "http", port: 80, targetPort: 8081 }] } }));
      const again = await core.readNamespacedService({ namespace: "shop", name: "api" });
      assert.equal(again.spec?.clusterIP, "10.96.0.50");
      assert.equal(again.spec?.ports?.[0]?.targetPort, 8081);
      await eventually("the agent's view to have it", async () => parseService(JSON.parse((await store.get(`${SERVICE_PREFIX}shop/api`))?.value ?? "null") ?? {}).ports[0]?.targetPort === 8081);

      const slice = { apiVersion: "discovery.k8s.io/v1", kind: "EndpointSlice", metadata: { name: "api-1", namespace: "shop", labels: { "kubernetes.io/service-name": "api" } },
        addressType: "IPv4", endpoints: [{ addresses: ["10.244.2.3"], nodeName: "node2" }], ports: [{ name: "http", port: 8081, protocol: "TCP" }] };
      await adminStore.put(`${ENDPOINTSLICE_PREFIX}shop/api-1`, JSON.stringify(slice));
      const s = await discovery.readNamespacedEndpointSlice({ namespace: "shop", name: "api-1" });
      assert.deepEqual(s.endpoints?.[0]?.addresses, ["10.244.2.3"]);
      await eventually("the agent's view to have the slice", async () => (await store.get(`${ENDPOINTSLICE_PREFIX}shop/api-1`)) !== undefined);
      assert.ok(await adminStore.delete(`${ENDPOINTSLICE_PREFIX}shop/api-1`));
      assert.ok(await adminStore.delete(`${SERVICE_PREFIX}shop/api`));
      await assert.rejects(core.readNamespacedService({ namespace: "shop", name: "api" }), (e: unknown) => (e as { code?: number }).code === 404);
    } finally {
      await adminStore.close();
    }
  });
});
