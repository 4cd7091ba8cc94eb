// The fake API server driven through @kubernetes/client-node, as the agent will drive a real one.
// (A few robustness cases need malformed requests no client sends: those use fetch.)

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import * as k8s from "@kubernetes/client-node";
import { FakeApiServer, type ApiCall, type ApiUser } from "./apiserver.js";

function kubeConfig(url: string, token?: string): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromOptions({
    // client-node 1.x refuses http:// unless skipTLSVerify is set
    clusters: [{ name: "fake", server: url, skipTLSVerify: true }],
    users: [{ name: "u", ...(token ? { token } : {}) }],
    contexts: [{ name: "c", cluster: "fake", user: "u" }],
    currentContext: "c",
  });
  return kc;
}

/** The Status a failed call got: its HTTP code and parsed body. */
async function failure(p: Promise<unknown>): Promise<{ code: number; body: Record<string, any> }> {
  try {
    await p;
  } catch (e) {
    if (!(e instanceof k8s.ApiException)) throw e;
    const body = typeof e.body === "string" && e.body ? JSON.parse(e.body) : (e.body ?? {});
    return { code: e.code, body };
  }
  assert.fail("the call succeeded");
}

const merge = k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch);

/** Watch events collected in order; `next` waits for one matching, without sleeping. */
class Events {
  readonly seen: { type: string; obj: any }[] = [];
  private waiters: { pred: (e: { type: string; obj: any }) => boolean; resolve: (e: { type: string; obj: any }) => void; from: number }[] = [];
  done?: unknown;
  private doneWaiters: (() => void)[] = [];
  readonly push = (type: string, obj: any): void => {
    const e = { type, obj };
    this.seen.push(e);
    this.waiters = this.waiters.filter((w) => (w.pred(e) ? (w.resolve(e), false) : true));
  };
  readonly end = (err: unknown): void => {
    this.done = err ?? null;
    for (const d of this.doneWaiters) d();
  };
  /** The first event after the `from`-th matching `pred`. */
  next(pred: (e: { type: string; obj: any }) => boolean, from = 0): Promise<{ type: string; obj: any }> {
    const hit = this.seen.slice(from).find(pred);
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve) => this.waiters.push({ pred, resolve, from }));
  }
  ended(): Promise<void> {
    return this.done !== undefined ? Promise.resolve() : new Promise((r) => this.doneWaiters.push(r));
  }
  summary(): string[] {
    return this.seen.map((e) => `${e.type} ${e.obj?.metadata?.name ?? e.obj?.metadata?.resourceVersion ?? ""}`);
  }
}

describe("FakeApiServer through @kubernetes/client-node", () => {
  let server: FakeApiServer;
  let kc: k8s.KubeConfig;
  let core: k8s.CoreV1Api;
  const watches: AbortController[] = [];

  before(async () => {
    server = await FakeApiServer.start({ bookmarkIntervalMs: 20 });
    kc = kubeConfig(server.url);
    core = kc.makeApiClient(k8s.CoreV1Api);
  });
  after(async () => {
    for (const w of watches) w.abort();
    await server.close();
  });

  async function watch(path: string, params: Record<string, string | number | boolean | undefined>): Promise<Events> {
    const ev = new Events();
    watches.push(await new k8s.Watch(kc).watch(path, params, ev.push, ev.end));
    return ev;
  }

  test("discovery: version, core and group resource lists", async () => {
    const v = await kc.makeApiClient(k8s.VersionApi).getCode();
    assert.equal(v.major, "1");
    const apis = await kc.makeApiClient(k8s.CoreApi).getAPIVersions();
    assert.deepEqual(apis.versions, ["v1"]);
    const res = await core.getAPIResources();
    const nodes = res.resources.find((r) => r.name === "nodes")!;
    assert.equal(nodes.namespaced, false);
    assert.equal(nodes.kind, "Node");
    assert.ok(nodes.verbs.includes("watch"));
    assert.ok(res.resources.some((r) => r.name === "pods/status" && r.namespaced));
    const groups = await kc.makeApiClient(k8s.ApisApi).getAPIVersions();
    assert.ok(groups.groups.some((g) => g.name === "networking.k8s.io"));
    const np = await kc.makeApiClient(k8s.NetworkingV1Api).getAPIResources();
    assert.ok(np.resources.some((r) => r.name === "networkpolicies" && r.kind === "NetworkPolicy"));
  });

  test("pods: create, get, list everywhere, selectors, errors worded as the real server's", async () => {
    await core.createNamespace({ body: { metadata: { name: "shop", labels: { team: "a" } } } });
    const web = await core.createNamespacedPod({ namespace: "shop", body: { metadata: { name: "web", labels: { app: "web", tier: "front" } }, spec: { nodeName: "n1", containers: [{ name: "c", image: "i" }] } } });
    assert.equal(web.metadata?.namespace, "shop");
    assert.match(web.metadata?.uid ?? "", /^[0-9a-f-]{36}$/);
    assert.ok(web.metadata?.creationTimestamp);
    await core.createNamespacedPod({ namespace: "shop", body: { metadata: { name: "db", labels: { app: "db" } }, spec: { nodeName: "n2", containers: [] } } });
    await core.createNamespacedPod({ namespace: "default", body: { metadata: { name: "web", labels: { app: "web" } }, spec: { nodeName: "n1", containers: [] } } });
    const gen = await core.createNamespacedPod({ namespace: "default", body: { metadata: { generateName: "job-" }, spec: { containers: [] } } });
    assert.match(gen.metadata!.name!, /^job-[a-z0-9]{5}$/);

    const got = await core.readNamespacedPod({ namespace: "shop", name: "web" });
    assert.equal(got.spec?.nodeName, "n1");
    assert.equal(got.metadata?.resourceVersion, web.metadata?.resourceVersion);

    const all = await core.listPodForAllNamespaces();
    assert.equal(all.items.length, 4);
    assert.equal(all.metadata?.resourceVersion, gen.metadata?.resourceVersion, "a list's resourceVersion is the latest");
    const names = (l: k8s.V1PodList): string[] => l.items.map((p) => `${p.metadata?.namespace}/${p.metadata?.name}`).sort();
    assert.deepEqual(names(await core.listPodForAllNamespaces({ labelSelector: "app=web" })), ["default/web", "shop/web"]);
    assert.deepEqual(names(await core.listPodForAllNamespaces({ labelSelector: "app in (web,db),tier!=front" })), ["default/web", "shop/db"]);
    assert.deepEqual(names(await core.listPodForAllNamespaces({ labelSelector: "app,!tier" })), ["default/web", "shop/db"]);
    assert.deepEqual(names(await core.listNamespacedPod({ namespace: "shop", labelSelector: "app notin (web)" })), ["shop/db"]);
    assert.equal((await core.listPodForAllNamespaces({ labelSelector: "app notin (web)" })).items.length, 2, "a pod without the label is not in (web)");
    assert.deepEqual(names(await core.listPodForAllNamespaces({ fieldSelector: "spec.nodeName=n1" })), ["default/web", "shop/web"]);
    assert.deepEqual(names(await core.listPodForAllNamespaces({ fieldSelector: "spec.nodeName==n1,metadata.namespace!=default" })), ["shop/web"]);
    assert.deepEqual(names(await core.listNamespacedPod({ namespace: "shop", fieldSelector: "metadata.name=db" })), ["shop/db"]);

    const nf = await failure(core.readNamespacedPod({ namespace: "shop", name: "nope" }));
    assert.equal(nf.code, 404);
    assert.deepEqual(nf.body, { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message: 'pods "nope" not found', reason: "NotFound", details: { name: "nope", kind: "pods" }, code: 404 });
    const dup = await failure(core.createNamespacedPod({ namespace: "shop", body: { metadata: { name: "web" }, spec: { containers: [] } } }));
    assert.equal(dup.code, 409);
    assert.equal(dup.body.reason, "AlreadyExists");
    assert.equal(dup.body.message, 'pods "web" already exists');
    const nons = await failure(core.createNamespacedPod({ namespace: "ghost", body: { metadata: { name: "web" }, spec: { containers: [] } } }));
    assert.equal(nons.code, 404);
    assert.equal(nons.body.message, 'namespaces "ghost" not found');
    const bad = await failure(core.createNamespacedPod({ namespace: "shop", body: { metadata: { name: "Bad_Name" }, spec: { containers: [] } } }));
    assert.equal(bad.code, 422);
    assert.equal(bad.body.reason, "Invalid");
    assert.match(bad.body.message, /^Pod "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain/);
    assert.equal(bad.body.details.causes[0].field, "metadata.name");
    const unknownField = await failure(core.listPodForAllNamespaces({ fieldSelector: "spec.foo=x" }));
    assert.equal(unknownField.code, 400);
  });

  test("nodes: update conflicts, merge and JSON patches, the status subresource", async () => {
    const n1 = await core.createNode({ body: { metadata: { name: "n1", labels: { zone: "a" } }, spec: { podCIDR: "10.244.1.0/24" }, status: { addresses: [{ type: "InternalIP", address: "172.18.0.2" }] } } });
    const rv1 = n1.metadata!.resourceVersion!;

    const updated = await core.replaceNode({ name: "n1", body: { ...n1, spec: { podCIDR: "10.244.1.0/24", unschedulable: true } } });
    assert.ok(Number(updated.metadata!.resourceVersion) > Number(rv1), "one global counter, increasing");
    const stale = await failure(core.replaceNode({ name: "n1", body: { ...n1, spec: { unschedulable: false } } }));
    assert.equal(stale.code, 409);
    assert.equal(stale.body.reason, "Conflict");
    assert.equal(stale.body.message, 'Operation cannot be fulfilled on nodes "n1": the object has been modified; please apply your changes to the latest version and try again');

    // client-node 1.x picks the first patch type of the operation's list, application/json-patch+json;
    // a merge patch needs the Content-Type header set through setHeaderOptions
    const merged = await core.patchNode({ name: "n1", body: { metadata: { labels: { zone: null, rack: "r1" }, annotations: { "trellis.dev/lease": "x" } } } }, merge);
    assert.deepEqual(merged.metadata?.labels, { rack: "r1" });
    const jp = await core.patchNode({ name: "n1", body: [
      { op: "test", path: "/metadata/annotations/trellis.dev~1lease", value: "x" },
      { op: "replace", path: "/metadata/annotations/trellis.dev~1lease", value: "y" },
      { op: "add", path: "/metadata/labels/a~0b", value: "1" },
    ] });
    assert.deepEqual(jp.metadata?.annotations, { "trellis.dev/lease": "y" });
    assert.equal(jp.metadata?.labels?.["a~b"], "1");
    const failedTest = await failure(core.patchNode({ name: "n1", body: [{ op: "test", path: "/metadata/annotations/trellis.dev~1lease", value: "x" }] }));
    assert.equal(failedTest.code, 422);
    const precond = await failure(core.patchNode({ name: "n1", body: { metadata: { resourceVersion: rv1, labels: { x: "1" } } } }, merge));
    assert.equal(precond.code, 409);
    assert.equal(precond.body.reason, "Conflict");
    const smp = await core.patchNode({ name: "n1", body: { spec: { taints: [{ key: "k", effect: "NoSchedule" }] } } }, k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.StrategicMergePatch));
    assert.equal(smp.spec?.taints?.length, 1);

    // status: only through /status; the main resource ignores it
    const ignored = await core.patchNode({ name: "n1", body: { status: { addresses: [] } } }, merge);
    assert.equal(ignored.status?.addresses?.length, 1);
    const st = await core.patchNodeStatus({ name: "n1", body: { status: { addresses: [{ type: "InternalIP", address: "172.18.0.9" }] }, spec: { podCIDR: "1.2.3.0/24" } } }, merge);
    assert.equal(st.status?.addresses?.[0]?.address, "172.18.0.9");
    assert.equal(st.spec?.podCIDR, "10.244.1.0/24", "a /status write leaves the spec alone");
    const unchanged = await core.patchNode({ name: "n1", body: { metadata: { labels: { rack: "r1" } } } }, merge);
    assert.equal(unchanged.metadata?.resourceVersion, st.metadata?.resourceVersion, "a patch that changes nothing does not write");
  });

  test("delete: preconditions, 404 when absent, namespace deletion takes its objects", async () => {
    await core.createNamespace({ body: { metadata: { name: "tmp" } } });
    const p = await core.createNamespacedPod({ namespace: "tmp", body: { metadata: { name: "a" }, spec: { containers: [] } } });
    await core.createNamespacedPod({ namespace: "tmp", body: { metadata: { name: "b" }, spec: { containers: [] } } });
    const ev = await watch("/api/v1/namespaces/tmp/pods", { resourceVersion: p.metadata!.resourceVersion });
    const wrongUid = await failure(core.deleteNamespacedPod({ namespace: "tmp", name: "a", body: { preconditions: { uid: "nope" } } }));
    assert.equal(wrongUid.code, 409);
    const wrongRv = await failure(core.deleteNamespacedPod({ namespace: "tmp", name: "a", body: { preconditions: { resourceVersion: "1" } } }));
    assert.equal(wrongRv.code, 409);
    await core.deleteNamespacedPod({ namespace: "tmp", name: "a", body: { preconditions: { uid: p.metadata!.uid!, resourceVersion: p.metadata!.resourceVersion! } } });
    assert.equal((await failure(core.deleteNamespacedPod({ namespace: "tmp", name: "a" }))).code, 404);

    await core.deleteNamespace({ name: "tmp" });
    await ev.next((e) => e.type === "DELETED" && e.obj.metadata.name === "b");
    assert.deepEqual(ev.summary(), ["ADDED b", "DELETED a", "DELETED b"]);
    assert.equal((await core.listNamespacedPod({ namespace: "tmp" })).items.length, 0);
    assert.equal((await failure(core.readNamespace({ name: "tmp" }))).code, 404);
  });

  test("list chunking: limit and continue give one consistent snapshot; a compacted one is Expired", async () => {
    await core.createNamespace({ body: { metadata: { name: "many" } } });
    for (let i = 0; i < 5; i++) await core.createNamespacedPod({ namespace: "many", body: { metadata: { name: `p${i}` }, spec: { containers: [] } } });
    const page1 = await core.listNamespacedPod({ namespace: "many", limit: 2 });
    assert.deepEqual(page1.items.map((p) => p.metadata?.name), ["p0", "p1"]);
    assert.equal(page1.metadata?.remainingItemCount, 3);
    await core.deleteNamespacedPod({ namespace: "many", name: "p3" });
    await core.createNamespacedPod({ namespace: "many", body: { metadata: { name: "p5" }, spec: { containers: [] } } });
    const page2 = await core.listNamespacedPod({ namespace: "many", limit: 2, _continue: page1.metadata!._continue! });
    assert.deepEqual(page2.items.map((p) => p.metadata?.name), ["p2", "p3"], "the snapshot of the first page");
    assert.equal(page2.metadata?.resourceVersion, page1.metadata?.resourceVersion);
    const page3 = await core.listNamespacedPod({ namespace: "many", limit: 2, _continue: page2.metadata!._continue! });
    assert.deepEqual(page3.items.map((p) => p.metadata?.name), ["p4"]);
    assert.equal(page3.metadata?._continue, undefined);

    const again = await core.listNamespacedPod({ namespace: "many", limit: 1 });
    await core.deleteNamespacedPod({ namespace: "many", name: "p0" });
    server.compact();
    const expired = await failure(core.listNamespacedPod({ namespace: "many", limit: 1, _continue: again.metadata!._continue! }));
    assert.equal(expired.code, 410);
    assert.equal(expired.body.reason, "Expired");
  });

  test("watch: resume from a resourceVersion, selectors move objects in and out, bookmarks, timeout", async () => {
    await core.createNamespace({ body: { metadata: { name: "w" } } });
    const start = await core.createNamespacedPod({ namespace: "w", body: { metadata: { name: "x", labels: { role: "api" } }, spec: { nodeName: "n1", containers: [] } } });
    const rv0 = start.metadata!.resourceVersion!;
    await core.patchNamespacedPod({ namespace: "w", name: "x", body: { metadata: { labels: { v: "2" } } } }, merge);

    const all = await watch("/api/v1/namespaces/w/pods", { resourceVersion: rv0, allowWatchBookmarks: true });
    const api = await watch("/api/v1/namespaces/w/pods", { labelSelector: "role=api" });
    const onN1 = await watch("/api/v1/pods", { fieldSelector: "spec.nodeName=n1", resourceVersion: rv0 });

    await api.next((e) => e.type === "ADDED");
    await core.patchNamespacedPod({ namespace: "w", name: "x", body: { metadata: { labels: { role: "db" } } } }, merge);
    await core.patchNamespacedPod({ namespace: "w", name: "x", body: { metadata: { labels: { role: "api" } } } }, merge);
    await core.deleteNamespacedPod({ namespace: "w", name: "x" });

    await all.next((e) => e.type === "DELETED");
    assert.deepEqual(all.seen.filter((e) => e.type !== "BOOKMARK").map((e) => e.type), ["MODIFIED", "MODIFIED", "MODIFIED", "DELETED"], "every event after rv0");
    await api.next((e) => e.type === "DELETED", 2);
    assert.deepEqual(api.seen.map((e) => e.type), ["ADDED", "DELETED", "ADDED", "DELETED"]);
    assert.equal(api.seen[1]!.obj.metadata.labels.role, "api", "an object leaving the selection is sent as it was");
    await onN1.next((e) => e.type === "DELETED");
    assert.ok(onN1.seen.every((e) => e.obj.metadata.namespace === "w"));

    const bm = await all.next((e) => e.type === "BOOKMARK");
    assert.match(bm.obj.metadata.resourceVersion, /^\d+$/);
    assert.equal(bm.obj.kind, "Pod");

    const timed = await watch("/api/v1/namespaces/w/pods", { timeoutSeconds: 1 });
    await timed.ended();
    assert.equal(timed.done, null, "the server ends the stream cleanly");
  });

  test("watch from a compacted resourceVersion: an ERROR event with 410, then the stream ends", async () => {
    const ns = await core.createNamespace({ body: { metadata: { name: "old" } } });
    await core.createNamespace({ body: { metadata: { name: "old2" } } });
    server.compact();
    const ev = await watch("/api/v1/namespaces", { resourceVersion: ns.metadata!.resourceVersion });
    await ev.ended();
    assert.equal(ev.seen.length, 1);
    assert.equal(ev.seen[0]!.type, "ERROR");
    assert.equal(ev.seen[0]!.obj.code, 410);
    assert.match(ev.seen[0]!.obj.message, /^too old resource version: \d+ \(\d+\)$/);
  });

  test("informer: lists, watches, and relists after 410 when its watch is dropped", async () => {
    await core.createNamespace({ body: { metadata: { name: "inf" } } });
    await core.createNamespacedPod({ namespace: "inf", body: { metadata: { name: "one" }, spec: { containers: [] } } });
    // count the informer's lists, and let the test wait for the n-th
    let lists = 0;
    const listed: (() => void)[] = [];
    const listFn = async (): Promise<k8s.V1PodList> => {
      const l = await core.listNamespacedPod({ namespace: "inf" });
      lists++;
      listed.splice(0).forEach((f) => f());
      return l;
    };
    const nthList = async (n: number): Promise<void> => { while (lists < n) await new Promise<void>((r) => listed.push(r)); };
    const informer = k8s.makeInformer(kc, "/api/v1/namespaces/inf/pods", listFn);
    const ev = new Events();
    informer.on("add", (o) => ev.push("add", o));
    informer.on("update", (o) => ev.push("update", o));
    informer.on("delete", (o) => ev.push("delete", o));
    informer.on("connect", () => ev.push("connect", {}));
    informer.on("error", (e) => ev.push("error", e));
    await informer.start();
    await ev.next((e) => e.type === "add" && e.obj.metadata.name === "one");
    await core.createNamespacedPod({ namespace: "inf", body: { metadata: { name: "two" }, spec: { containers: [] } } });
    await ev.next((e) => e.type === "add" && e.obj.metadata.name === "two");
    assert.equal(lists, 1);

    // history gone, then the watch dropped (an API server restart): the informer resumes from its
    // list's resourceVersion, gets an ERROR event with 410, and lists again
    server.compact();
    server.dropWatches();
    await nthList(2);
    assert.ok(ev.seen.filter((e) => e.type === "connect").length >= 3, "connect: first list, resumed watch, relist");
    assert.ok(!ev.seen.some((e) => e.type === "error"));
    const watches = server.calls.filter((c) => c.verb === "watch" && c.namespace === "inf");
    assert.ok(watches.length >= 2 && watches.every((c) => c.code === 200));
    // and it watches on from the new list
    await core.deleteNamespacedPod({ namespace: "inf", name: "one" });
    await ev.next((e) => e.type === "delete" && e.obj.metadata.name === "one");
    assert.deepEqual(ev.seen.filter((e) => e.type === "add").map((e) => e.obj.metadata.name), ["one", "two"], "the relist found nothing new");
    await informer.stop();
  });

  describe("custom resources", () => {
    let crds: k8s.ApiextensionsV1Api;
    let custom: k8s.CustomObjectsApi;
    const G = { group: "trellis.dev", version: "v1alpha1", plural: "trellispolicies" };

    before(async () => {
      crds = kc.makeApiClient(k8s.ApiextensionsV1Api);
      custom = kc.makeApiClient(k8s.CustomObjectsApi);
      await core.createNamespace({ body: { metadata: { name: "crs" } } });
    });

    test("a CRD becomes Established and served; its objects are validated, pruned, strict-checked", async () => {
      const crd = await crds.createCustomResourceDefinition({ body: {
        metadata: { name: "trellispolicies.trellis.dev" },
        spec: {
          group: "trellis.dev", scope: "Namespaced",
          names: { plural: "trellispolicies", kind: "TrellisPolicy" },
          versions: [{
            name: "v1alpha1", served: true, storage: true, subresources: { status: {} },
            schema: { openAPIV3Schema: { type: "object", properties: {
              spec: { type: "object", required: ["order"], properties: {
                order: { type: "number", minimum: 0 },
                action: { type: "string", _enum: ["Allow", "Deny"], _default: "Allow" },
                ingress: { type: "array", items: { type: "object", properties: { ports: { type: "array", items: { x_kubernetes_int_or_string: true } } } } },
                labels: { type: "object", additionalProperties: { type: "string" } },
                raw: { type: "object", x_kubernetes_preserve_unknown_fields: true },
              } },
              status: { type: "object", properties: { phase: { type: "string" } } },
            } } },
          }],
        },
      } });
      assert.equal(crd.spec.names.listKind, "TrellisPolicyList");
      assert.ok(crd.status?.conditions?.some((c) => c.type === "Established" && c.status === "True"));
      const groups = await kc.makeApiClient(k8s.ApisApi).getAPIVersions();
      assert.ok(groups.groups.some((g) => g.name === "trellis.dev"));

      const created = await custom.createNamespacedCustomObject({ ...G, namespace: "crs", body: {
        apiVersion: "trellis.dev/v1alpha1", kind: "TrellisPolicy", metadata: { name: "p1" },
        spec: { order: 10, ingres: [], ingress: [{ ports: [80, "http"] }], labels: { a: "b" }, raw: { any: { thing: 1 } } },
        status: { phase: "dropped on create" },
      } });
      assert.deepEqual(created.spec, { order: 10, ingress: [{ ports: [80, "http"] }], labels: { a: "b" }, raw: { any: { thing: 1 } }, action: "Allow" }, "unknown spec.ingres pruned, default applied");
      assert.equal(created.status, undefined);
      assert.equal(created.metadata.generation, 1);

      const bad = await failure(custom.createNamespacedCustomObject({ ...G, namespace: "crs", body: { apiVersion: "trellis.dev/v1alpha1", kind: "TrellisPolicy", metadata: { name: "x" }, spec: { order: "a" } } }));
      assert.equal(bad.code, 422);
      assert.equal(bad.body.message, 'TrellisPolicy.trellis.dev "x" is invalid: spec.order: Invalid value: "a": spec.order in body must be of type number: "string"');
      assert.deepEqual(bad.body.details.causes, [{ reason: "FieldValueTypeInvalid", message: 'Invalid value: "a": spec.order in body must be of type number: "string"', field: "spec.order" }]);
      const two = await failure(custom.createNamespacedCustomObject({ ...G, namespace: "crs", body: { apiVersion: "trellis.dev/v1alpha1", kind: "TrellisPolicy", metadata: { name: "x" }, spec: { action: "Maybe" } } }));
      assert.equal(two.code, 422);
      assert.deepEqual(two.body.details.causes.map((c: { reason: string; field: string }) => `${c.reason} ${c.field}`).sort(), ["FieldValueNotSupported spec.action", "FieldValueRequired spec.order"]);

      const strict = await failure(custom.createNamespacedCustomObject({ ...G, namespace: "crs", fieldValidation: "Strict", body: { apiVersion: "trellis.dev/v1alpha1", kind: "TrellisPolicy", metadata: { name: "s" }, spec: { order: 1, ingres: [] } } }));
      assert.equal(strict.code, 400);
      assert.equal(strict.body.message, 'strict decoding error: unknown field "spec.ingres"');
      const warned = await custom.createNamespacedCustomObjectWithHttpInfo({ ...G, namespace: "crs", fieldValidation: "Warn", body: { apiVersion: "trellis.dev/v1alpha1", kind: "TrellisPolicy", metadata: { name: "w" }, spec: { order: 1, ingres: [] } } });
      assert.equal(warned.httpStatusCode, 201);
      assert.equal(warned.headers["warning"], '299 - "unknown field \\"spec.ingres\\""');

      // generation follows the spec; status only through /status
      const p2 = await custom.patchNamespacedCustomObject({ ...G, namespace: "crs", name: "p1", body: { spec: { order: 11 }, status: { phase: "ignored" } } }, merge);
      assert.equal(p2.metadata.generation, 2);
      assert.equal(p2.status, undefined);
      const s = await custom.patchNamespacedCustomObjectStatus({ ...G, namespace: "crs", name: "p1", body: { status: { phase: "Ready" } } }, merge);
      assert.equal(s.status.phase, "Ready");
      assert.equal(s.metadata.generation, 2);
      const badPatch = await failure(custom.patchNamespacedCustomObject({ ...G, namespace: "crs", name: "p1", body: [{ op: "replace", path: "/spec/order", value: -1 }] }));
      assert.equal(badPatch.code, 422);
      assert.match(badPatch.body.message, /spec.order in body should be greater than or equal to 0/);

      const list = await custom.listNamespacedCustomObject({ ...G, namespace: "crs" });
      assert.equal(list.kind, "TrellisPolicyList");
      assert.deepEqual(list.items.map((i: { metadata: { name: string } }) => i.metadata.name), ["p1", "w"]);
    });

    test("deleting the CRD stops serving it and deletes its objects", async () => {
      const ev = await watch("/apis/trellis.dev/v1alpha1/namespaces/crs/trellispolicies", {});
      await ev.next((e) => e.type === "ADDED" && e.obj.metadata.name === "w");
      await crds.deleteCustomResourceDefinition({ name: "trellispolicies.trellis.dev" });
      await ev.ended();
      assert.deepEqual(ev.summary().slice(-2), ["DELETED p1", "DELETED w"]);
      const gone = await failure(custom.listNamespacedCustomObject({ ...G, namespace: "crs" }));
      assert.equal(gone.code, 404);
      const groups = await kc.makeApiClient(k8s.ApisApi).getAPIVersions();
      assert.ok(!groups.groups.some((g) => g.name === "trellis.dev"));
    });

    test("a cluster-scoped CRD", async () => {
      await crds.createCustomResourceDefinition({ body: {
        metadata: { name: "ippools.trellis.dev" },
        spec: { group: "trellis.dev", scope: "Cluster", names: { plural: "ippools", kind: "IPPool" },
          versions: [{ name: "v1", served: true, storage: true, schema: { openAPIV3Schema: { type: "object", x_kubernetes_preserve_unknown_fields: true } } }] },
      } });
      await custom.createClusterCustomObject({ group: "trellis.dev", version: "v1", plural: "ippools", body: { apiVersion: "trellis.dev/v1", kind: "IPPool", metadata: { name: "default" }, spec: { cidr: "10.244.0.0/16" } } });
      const got = await custom.getClusterCustomObject({ group: "trellis.dev", version: "v1", plural: "ippools", name: "default" });
      assert.equal(got.spec.cidr, "10.244.0.0/16");
      const badCrd = await failure(crds.createCustomResourceDefinition({ body: { metadata: { name: "wrong.trellis.dev" }, spec: { group: "trellis.dev", scope: "Cluster", names: { plural: "things", kind: "Thing" }, versions: [{ name: "v1", served: true, storage: true }] } } }));
      assert.equal(badCrd.code, 422);
    });
  });

  test("network policies", async () => {
    const net = kc.makeApiClient(k8s.NetworkingV1Api);
    await net.createNamespacedNetworkPolicy({ namespace: "default", body: { metadata: { name: "deny" }, spec: { podSelector: {}, policyTypes: ["Ingress"] } } });
    const l = await net.listNetworkPolicyForAllNamespaces();
    assert.deepEqual(l.items.map((p) => p.metadata?.name), ["deny"]);
    const nf = await failure(net.readNamespacedNetworkPolicy({ namespace: "default", name: "x" }));
    assert.equal(nf.body.message, 'networkpolicies.networking.k8s.io "x" not found');
  });
});

describe("FakeApiServer authentication and RBAC", () => {
  const agent: ApiUser = {
    token: "agent-token", name: "system:serviceaccount:kube-system:trellis",
    rules: [
      { apiGroups: [""], resources: ["nodes", "pods", "namespaces"], verbs: ["get", "list", "watch"] },
      { apiGroups: [""], resources: ["nodes/status"], verbs: ["patch"] },
      { apiGroups: [""], resources: ["pods"], verbs: ["delete"], resourceNames: ["mine"] },
    ],
  };
  const admin: ApiUser = { token: "admin-token", name: "admin" };
  let server: FakeApiServer;
  const seen: ApiCall[] = [];
  before(async () => { server = await FakeApiServer.start({ users: [agent, admin], onCall: (c) => seen.push(c) }); });
  after(async () => { await server.close(); });

  test("403 worded as the real authorizer, 401 without or with a wrong token, calls recorded", async () => {
    const asAdmin = kubeConfig(server.url, "admin-token").makeApiClient(k8s.CoreV1Api);
    const asAgent = kubeConfig(server.url, "agent-token").makeApiClient(k8s.CoreV1Api);
    await asAdmin.createNode({ body: { metadata: { name: "n1" } } });
    await asAdmin.createNamespacedPod({ namespace: "default", body: { metadata: { name: "mine" }, spec: { containers: [] } } });
    await asAdmin.createNamespacedPod({ namespace: "default", body: { metadata: { name: "other" }, spec: { containers: [] } } });

    assert.equal((await asAgent.listNode()).items.length, 1);
    await asAgent.patchNodeStatus({ name: "n1", body: { status: { phase: "Running" } } }, merge);
    const denied = await failure(asAgent.patchNode({ name: "n1", body: { metadata: { labels: { a: "b" } } } }, merge));
    assert.equal(denied.code, 403);
    assert.deepEqual(denied.body, {
      kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure",
      message: 'nodes "n1" is forbidden: User "system:serviceaccount:kube-system:trellis" cannot patch resource "nodes" in API group "" at the cluster scope',
      reason: "Forbidden", details: { name: "n1", kind: "nodes" }, code: 403,
    });
    const nsDenied = await failure(asAgent.createNamespacedPod({ namespace: "default", body: { metadata: { name: "p" }, spec: { containers: [] } } }));
    assert.equal(nsDenied.body.message, 'pods is forbidden: User "system:serviceaccount:kube-system:trellis" cannot create resource "pods" in API group "" in the namespace "default"');
    const np = await failure(kubeConfig(server.url, "agent-token").makeApiClient(k8s.NetworkingV1Api).listNetworkPolicyForAllNamespaces());
    assert.equal(np.body.message, 'networkpolicies.networking.k8s.io is forbidden: User "system:serviceaccount:kube-system:trellis" cannot list resource "networkpolicies" in API group "networking.k8s.io" at the cluster scope');
    await asAgent.deleteNamespacedPod({ namespace: "default", name: "mine" });
    assert.equal((await failure(asAgent.deleteNamespacedPod({ namespace: "default", name: "other" }))).code, 403);

    const anon = await failure(kubeConfig(server.url).makeApiClient(k8s.CoreV1Api).listNode());
    assert.equal(anon.code, 401);
    const wrong = await failure(kubeConfig(server.url, "nope").makeApiClient(k8s.CoreV1Api).listNode());
    assert.equal(wrong.code, 401);
    // discovery and /version: any authenticated user
    assert.ok((await kubeConfig(server.url, "agent-token").makeApiClient(k8s.CoreV1Api).getAPIResources()).resources.length > 0);
    assert.equal((await kubeConfig(server.url, "agent-token").makeApiClient(k8s.VersionApi).getCode()).major, "1");

    const byAgent = server.calls.filter((c) => c.user === agent.name).map((c) => `${c.verb} ${c.resource}${c.subresource ? "/" + c.subresource : ""} ${c.name ?? ""} ${c.code}`);
    assert.deepEqual(byAgent, [
      "list nodes  200", "patch nodes/status n1 200", "patch nodes n1 403", "create pods  403", "list networkpolicies  403", "delete pods mine 200", "delete pods other 403",
    ]);
    assert.deepEqual(server.calls.filter((c) => c.code === 401).map((c) => c.user), ["system:anonymous", "system:anonymous"]);
    assert.deepEqual(seen, server.calls);
  });
});

describe("FakeApiServer on malformed requests", () => {
  let server: FakeApiServer;
  before(async () => { server = await FakeApiServer.start(); });
  after(async () => { await server.close(); });
  const call = async (method: string, path: string, body?: string, type = "application/json"): Promise<{ code: number; body: any }> => {
    const r = await fetch(server.url + path, { method, ...(body !== undefined ? { body, headers: { "Content-Type": type } } : {}) });
    return { code: r.status, body: await r.json() };
  };

  test("bad JSON 400, unknown path 404, wrong method 405, unknown patch type 415, and it keeps serving", async () => {
    assert.equal((await call("POST", "/api/v1/namespaces/default/pods", "{nope")).body.reason, "BadRequest");
    assert.equal((await call("POST", "/api/v1/namespaces/default/pods", "[1]")).code, 400);
    assert.equal((await call("GET", "/api/v1/widgets")).code, 404);
    assert.equal((await call("GET", "/nothing/here")).code, 404);
    assert.equal((await call("PUT", "/api/v1/namespaces/default/pods", "{}")).code, 405);
    assert.equal((await call("POST", "/api/v1/namespaces/default/pods/x", "{}")).code, 405);
    assert.equal((await call("GET", "/api/v1/pods?labelSelector=a%20in%20(")).code, 400);
    assert.equal((await call("GET", "/api/v1/pods?watch=1&resourceVersion=abc")).code, 400);
    await call("POST", "/api/v1/nodes", JSON.stringify({ metadata: { name: "n" } }));
    assert.equal((await call("PATCH", "/api/v1/nodes/n", "{}", "application/apply-patch+yaml")).code, 415);
    assert.equal((await call("PATCH", "/api/v1/nodes/n", '[{"op":"jump","path":"/x"}]', "application/json-patch+json")).code, 400);
    assert.equal((await call("GET", "/api/v1/nodes/n")).code, 200);
    assert.equal((await fetch(server.url + "/healthz")).status, 200);
  });
});
