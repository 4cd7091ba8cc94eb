// The Kubernetes datastore, driven through the official client against the fake API server
// (src/k8s/apiserver.ts), which speaks the documented protocol: the Datastore conformance suite,
// then what only this store does — keys that are views of Nodes, Pods and policies, CAS through
// resourceVersion, a watch that survives 410 Gone, and the errors an operator sees.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import * as k8s from "@kubernetes/client-node";
import { datastoreConformance, WatchRecorder } from "../datastore/conformance.js";
import { DatastoreError, type WatchEvent } from "../datastore/types.js";
import { FakeApiServer } from "./apiserver.js";
import { ADMIN, AGENT, eventually, kubeConfig, startServer } from "./test-server.js";
import { CRDS } from "./crds.js";
import { KubernetesDatastore } from "./datastore.js";
import { AGENT_RULES } from "./rbac.js";
import { entriesOf, targetOf, valueObjectName } from "./mapping.js";


describe("kubernetes datastore", () => {
  let server: FakeApiServer;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server.close();
  });

  datastoreConformance("kubernetes (fake API server, agent's RBAC)", async () => ({
    store: await KubernetesDatastore.open({ kubeConfig: kubeConfig(server.url, AGENT), sweepIntervalMs: 100, log: () => undefined }),
  }), { ttlSeconds: 1, timeoutMs: 5000 });
});

describe("kubernetes datastore: keys are views of Kubernetes objects", () => {
  let server: FakeApiServer;
  let admin: k8s.KubeConfig;
  let core: k8s.CoreV1Api;
  let store: KubernetesDatastore;
  const logs: string[] = [];
  before(async () => {
    server = await startServer();
    admin = kubeConfig(server.url, ADMIN);
    core = admin.makeApiClient(k8s.CoreV1Api);
    await core.createNode({ body: { metadata: { name: "n1", labels: { rack: "a" } }, spec: { podCIDR: "10.244.1.0/24", podCIDRs: ["10.244.1.0/24"] } } });
    await core.createNode({ body: { metadata: { name: "n2" }, spec: {} } });
    await core.createNamespace({ body: { metadata: { name: "prod", labels: { env: "prod" } } } });
    await core.createNamespacedPod({ namespace: "prod", body: { metadata: { name: "web", labels: { app: "web" } }, spec: { nodeName: "n1", containers: [{ name: "c", image: "x", ports: [{ name: "http", containerPort: 80 }] }] } } });
    await admin.makeApiClient(k8s.NetworkingV1Api).createNamespacedNetworkPolicy({ namespace: "prod", body: {
      metadata: { name: "from-web" }, spec: { podSelector: {}, ingress: [{ _from: [{ podSelector: { matchLabels: { app: "web" } } }] }] },
    } });
    store = await KubernetesDatastore.open({ kubeConfig: kubeConfig(server.url, AGENT), sweepIntervalMs: 100, log: (l) => logs.push(l) });
  });
  after(async () => {
    await store?.close();
    await server.close();
  });

  test("Pods, Namespaces and Nodes appear as the keys the agent and the policy engine read", async () => {
    const pod = JSON.parse((await store.get("/trellis/pods/prod/web"))!.value);
    assert.deepEqual(pod.metadata, { name: "web", namespace: "prod", labels: { app: "web" } });
    assert.deepEqual(pod.spec.containers, [{ name: "c", ports: [{ name: "http", containerPort: 80 }] }]);
    assert.equal(JSON.parse((await store.get("/trellis/namespaces/prod"))!.value).metadata.labels.env, "prod");
    assert.equal((await store.get("/trellis/assignedblocks/n1"))?.value, "10.244.1.0/24");
    assert.equal(await store.get("/trellis/assignedblocks/n2"), undefined, "a Node without podCIDR has no assigned block");
    assert.deepEqual(JSON.parse((await store.get("/trellis/nodesettings/n1"))!.value), { node: "n1", labels: { rack: "a" } });
  });

  test("objects listed (the client's model classes) and watched (plain JSON) give the same value: `from`, not `_from`", async () => {
    const listed = JSON.parse((await store.get("/trellis/policies/NetworkPolicy/prod/from-web"))!.value);
    assert.deepEqual(listed.spec.ingress, [{ from: [{ podSelector: { matchLabels: { app: "web" } } }] }]);
  });

  test("a pod's label change arrives as a put of its key (policy follows labels)", async () => {
    const from = (await store.list("/trellis/pods/")).revision;
    const w = new WatchRecorder(store, "/trellis/pods/", from);
    await core.patchNamespacedPod({ namespace: "prod", name: "web", body: { metadata: { labels: { app: "web", tier: "front" } } } },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch));
    await w.until(() => w.events.some((e) => e.type === "put" && JSON.parse(e.kv.value).metadata.labels.tier === "front"), 5000, "label change");
    w.stop();
  });

  test("a lease of a Node's podCIDR lives in the Node's annotations; create is create-if-absent", async () => {
    const lease = JSON.stringify({ node: "n1", publicIp: "192.168.1.1", backend: "vxlan", renewedAt: 1, expiresAt: 2 });
    const kv = await store.create("/trellis/leases/10.244.1.0-24", lease);
    assert.ok(kv);
    assert.equal(await store.create("/trellis/leases/10.244.1.0-24", lease), undefined, "second create loses");
    const node = await core.readNode({ name: "n1" });
    assert.equal(JSON.parse(node.metadata!.annotations!["trellis.dev/lease"]!).subnet, "10.244.1.0/24");
    assert.equal(node.metadata!.annotations!["trellis.dev/public-ip"], "192.168.1.1");
    const again = await store.update("/trellis/leases/10.244.1.0-24", lease.replace('"renewedAt":1', '"renewedAt":5'), kv.modRevision);
    assert.ok(again && again.modRevision > kv.modRevision);
    assert.equal(await store.update("/trellis/leases/10.244.1.0-24", lease, kv.modRevision), undefined, "stale revision loses");
    // Another change of the Node (a label) does not make the lease's CAS fail.
    await core.patchNode({ name: "n1", body: { metadata: { labels: { rack: "a", zone: "z" } } } }, k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch));
    const third = await store.update("/trellis/leases/10.244.1.0-24", lease, again.modRevision);
    assert.ok(third, "a Node change elsewhere is not a conflict on the lease");
    assert.ok(await store.delete("/trellis/leases/10.244.1.0-24"));
    assert.equal((await core.readNode({ name: "n1" })).metadata!.annotations?.["trellis.dev/lease"], undefined);
  });

  test("a block no Node has as podCIDR is leased as a TrellisValue (Trellis allocates it); a deleted Node frees it", async () => {
    const lease = JSON.stringify({ node: "n2", publicIp: "192.168.1.2", backend: "vxlan", renewedAt: 1, expiresAt: 2 });
    assert.ok(await store.create("/trellis/leases/10.244.7.0-24", lease));
    const custom = admin.makeApiClient(k8s.CustomObjectsApi);
    const name = valueObjectName("/trellis/leases/10.244.7.0-24");
    const obj = (await custom.getClusterCustomObject({ group: "trellis.dev", version: "v1", plural: "trellisvalues", name })) as { spec: { key: string } };
    assert.equal(obj.spec.key, "/trellis/leases/10.244.7.0-24");
    await core.deleteNode({ name: "n2" });
    await eventually("the lease of a deleted node to be freed", async () => (await store.get("/trellis/leases/10.244.7.0-24")) === undefined);
    assert.ok(logs.some((l) => l.includes("freed /trellis/leases/10.244.7.0-24: Node n2 was deleted")), logs.join("\n"));
  });

  test("node settings are written as the Node's labels and trellis.dev/ annotations", async () => {
    await store.put("/trellis/nodesettings/n1", JSON.stringify({ node: "n1", labels: { rack: "b" }, asNumber: 65001 }));
    const node = await core.readNode({ name: "n1" });
    assert.deepEqual(node.metadata!.labels, { rack: "b" });
    assert.equal(node.metadata!.annotations!["trellis.dev/as-number"], "65001");
    await assert.rejects(store.put("/trellis/nodesettings/nope", "{}"), (e: unknown) => e instanceof DatastoreError && /no Node named "nope"/.test(e.message));
    await assert.rejects(store.put("/trellis/assignedblocks/n1", "10.244.9.0/24"), /spec.podCIDR/);
  });

  test("an agent's status becomes its Node's NetworkUnavailable condition", async () => {
    await store.put("/trellis/status/n1", JSON.stringify({ node: "n1", state: "waiting", problem: "no block", ready: false, peers: [] }));
    await eventually("condition True", async () => (await core.readNode({ name: "n1" })).status?.conditions?.some((c) => c.type === "NetworkUnavailable" && c.status === "True" && c.message === "no block") ?? false);
    await store.put("/trellis/status/n1", JSON.stringify({ node: "n1", state: "running", ready: true, peers: [] }));
    await eventually("condition False", async () => (await core.readNode({ name: "n1" })).status?.conditions?.some((c) => c.type === "NetworkUnavailable" && c.status === "False" && c.reason === "TrellisIsUp") ?? false);
  });

  test("the agent's credentials may not write policies: RBAC's refusal names verb, resource and namespace", async () => {
    const np = { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name: "deny", namespace: "prod" }, spec: { podSelector: {} } };
    await assert.rejects(store.put("/trellis/policies/NetworkPolicy/prod/deny", JSON.stringify(np)),
      (e: unknown) => e instanceof DatastoreError && /create networkpolicies prod\/deny: forbidden by RBAC: .*cannot create resource "networkpolicies"/.test(e.message));
  });

  test("policies written through the store (as an admin: `trellis apply`) are Kubernetes objects, and back", async () => {
    const store = await KubernetesDatastore.open({ kubeConfig: admin, sweepIntervalMs: 0, log: () => undefined });
    after(() => store.close());
    const np = { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name: "deny", namespace: "prod" }, spec: { podSelector: {}, policyTypes: ["Ingress"] } };
    await store.put("/trellis/policies/NetworkPolicy/prod/deny", JSON.stringify(np));
    const got = await admin.makeApiClient(k8s.NetworkingV1Api).readNamespacedNetworkPolicy({ namespace: "prod", name: "deny" });
    assert.deepEqual(got.spec?.policyTypes, ["Ingress"]);
    const tp = { apiVersion: "trellis.dev/v1", kind: "GlobalTrellisPolicy", metadata: { name: "g" }, spec: { order: 10, podSelector: {}, egress: [{ action: "Deny", to: [{ ipBlock: { cidr: "10.0.0.0/8" } }] }] } };
    await store.put("/trellis/policies/GlobalTrellisPolicy/g", JSON.stringify(tp));
    assert.equal(JSON.parse((await store.get("/trellis/policies/GlobalTrellisPolicy/g"))!.value).spec.order, 10);
    assert.ok(await store.delete("/trellis/policies/GlobalTrellisPolicy/g"));
    await assert.rejects(store.put("/trellis/policies/GlobalTrellisPolicy/bad", JSON.stringify({ ...tp, spec: { order: "first" } })),
      (e: unknown) => e instanceof DatastoreError && e.code === "invalid" && /spec.order/.test(e.message), "the CRD's schema refuses it");
  });

  test("an existing Pod or NetworkPolicy written through the store is replaced (the view's timestamps are not sent back)", async () => {
    const store = await KubernetesDatastore.open({ kubeConfig: admin, sweepIntervalMs: 0, log: () => undefined });
    after(() => store.close());
    await core.createNamespacedPod({ namespace: "prod", body: { metadata: { name: "relabel", labels: { a: "1" } }, spec: { containers: [{ name: "c", image: "x" }] },
      status: { conditions: [{ type: "Ready", status: "True", lastTransitionTime: new Date() }] } } });
    await eventually("the pod in the view", async () => (await store.get("/trellis/pods/prod/relabel")) !== undefined);
    await store.put("/trellis/pods/prod/relabel", JSON.stringify({ apiVersion: "v1", kind: "Pod", metadata: { name: "relabel", namespace: "prod", labels: { a: "2" } } }));
    assert.deepEqual((await core.readNamespacedPod({ namespace: "prod", name: "relabel" })).metadata?.labels, { a: "2" });
    const np = { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name: "from-web", namespace: "prod" }, spec: { podSelector: {}, policyTypes: ["Ingress"] } };
    await store.put("/trellis/policies/NetworkPolicy/prod/from-web", JSON.stringify(np));
    assert.deepEqual((await admin.makeApiClient(k8s.NetworkingV1Api).readNamespacedNetworkPolicy({ namespace: "prod", name: "from-web" })).spec?.policyTypes, ["Ingress"]);
  });

  test("a watch survives 410 Gone: what changed while it relisted arrives as puts and deletes", async () => {
    await core.createNamespacedPod({ namespace: "prod", body: { metadata: { name: "gone", labels: { a: "1" } }, spec: { containers: [{ name: "c", image: "x" }] } } });
    await eventually("pod gone to appear", async () => (await store.get("/trellis/pods/prod/gone")) !== undefined);
    const from = (await store.list("/trellis/pods/")).revision;
    const w = new WatchRecorder(store, "/trellis/pods/", from);
    server.compact();
    server.dropWatches();
    await core.deleteNamespacedPod({ namespace: "prod", name: "gone" });
    await core.createNamespacedPod({ namespace: "prod", body: { metadata: { name: "new" }, spec: { containers: [{ name: "c", image: "x" }] } } });
    await w.until(() => w.events.some((e: WatchEvent) => e.type === "delete" && e.key === "/trellis/pods/prod/gone") &&
      w.events.some((e: WatchEvent) => e.type === "put" && e.kv.key === "/trellis/pods/prod/new"), 10000, "delete and put after 410");
    assert.ok(!w.messages.some((m) => "resync" in m), "no resync is needed by the watcher");
    w.stop();
  });
});

describe("kubernetes datastore: failures name the resource and verb", () => {
  test("a kubeconfig that does not exist", async () => {
    await assert.rejects(KubernetesDatastore.open({ kubeconfig: "/nonexistent/kubeconfig" }), (e: unknown) => e instanceof DatastoreError && /\/nonexistent\/kubeconfig/.test(e.message));
  });

  test("credentials the server does not accept: open fails after its timeout, having said why", async () => {
    const server = await startServer();
    const logs: string[] = [];
    try {
      await assert.rejects(KubernetesDatastore.open({ kubeConfig: kubeConfig(server.url, "wrong"), syncTimeoutMs: 1500, log: (l) => logs.push(l) }),
        (e: unknown) => e instanceof DatastoreError && e.code === "unavailable" && /could not list/.test(e.message));
      assert.ok(logs.some((l) => /list nodes: unauthorized/.test(l)), logs.join("\n"));
    } finally {
      await server.close();
    }
  });

  test("RBAC that forbids a resource: the log names the resource and verb", async () => {
    const server = await FakeApiServer.start({ users: [{ token: "t", name: "limited", rules: AGENT_RULES.filter((r) => !r.resources.includes("pods")) }] });
    const ext = kubeConfig(server.url, "t");
    const logs: string[] = [];
    try {
      await assert.rejects(KubernetesDatastore.open({ kubeConfig: ext, syncTimeoutMs: 1500, log: (l) => logs.push(l) }));
      assert.ok(logs.some((l) => /list pods: forbidden by RBAC: .*cannot list resource "pods"/.test(l)), logs.join("\n"));
    } finally {
      await server.close();
    }
  });

  test("an API server that is down at start: retried with backoff until it answers", async () => {
    const server = await startServer();
    const url = server.url;
    await server.close();
    const logs: string[] = [];
    await assert.rejects(KubernetesDatastore.open({ kubeConfig: kubeConfig(url, AGENT), syncTimeoutMs: 1500, log: (l) => logs.push(l) }),
      (e: unknown) => e instanceof DatastoreError && e.code === "unavailable");
    assert.ok(logs.some((l) => /API server unreachable/.test(l) && /retrying with backoff/.test(l)), logs.join("\n"));
  });
});

describe("kubernetes mapping (pure)", () => {
  test("every key of the Trellis key space has one target", () => {
    assert.equal(targetOf("/trellis/config").type, "object");
    assert.deepEqual(targetOf("/trellis/leases/10.244.1.0-24"), { type: "lease", block: "10.244.1.0/24" });
    assert.equal(targetOf("/trellis/assignedblocks/n1").type, "read-only");
    assert.deepEqual(targetOf("/trellis/nodesettings/n1"), { type: "node-settings", node: "n1" });
    assert.equal(targetOf("/trellis/endpoints/n1/abc/eth0").type, "value");
    assert.equal(targetOf("/trellis/pods/prod/web").type, "object");
  });

  test("TrellisValue names are DNS subdomains, readable and distinct for distinct keys", () => {
    const names = ["/trellis/endpoints/n1/ABC/eth0", "/trellis/endpoints/n1/abc/eth0", "conf-1/ü", "/trellis/status/n1"].map(valueObjectName);
    for (const n of names) assert.match(n, /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
    assert.equal(new Set(names).size, names.length);
    assert.match(names[3]!, /^status-n1\./);
  });

  test("a Node provides its settings, its assigned block and its lease", () => {
    const keys = entriesOf("nodes", {
      metadata: { name: "n1", labels: { a: "b" }, annotations: { "trellis.dev/lease": JSON.stringify({ subnet: "10.244.1.0/24", node: "n1" }), "trellis.dev/lease-expires-at": "99" } },
      spec: { podCIDRs: ["fd00::/64", "10.244.1.0/24"] },
    });
    assert.deepEqual(keys.map((k) => k.key), ["/trellis/nodesettings/n1", "/trellis/assignedblocks/n1", "/trellis/leases/10.244.1.0-24"]);
    assert.equal(keys[1]!.value, "10.244.1.0/24", "the IPv4 one of a dual-stack Node");
    assert.equal(keys[2]!.expiresAt, 99);
  });
});
