// The Kubernetes API server as a Datastore (src/datastore/types.ts), through the official client.
//
// One reflector per resource Trellis reads (list, then watch from the list's resourceVersion
// with bookmarks; 410 Gone → list again; any other failure → retry with backoff) feeds one
// in-memory view of the key space (src/k8s/mapping.ts says which object provides which key).
// The view has its own revision counter: every change of a key's value, whoever caused it, gets
// the next revision, and the view keeps a log of recent changes so that watches resume from a
// revision exactly as with etcd. A relist is diffed against the view, so consumers see the puts
// and deletes that happened while the watch was down — never a resync unless they fall behind
// the log. Writes go to the API server (compare-and-swap through resourceVersion preconditions,
// "create" through AlreadyExists) and the object it returns is folded into the view at once, so
// a writer reads its own write; the watch event for it later changes nothing.
//
// resourceVersions are compared as numbers only to drop a watch event older than what a write
// already returned (both are etcd revisions on every API server in use; anything else is treated
// as newer). Nothing here is known to the agent, the plugin or the policy engine.
import { setMaxListeners } from "node:events";
import * as k8s from "@kubernetes/client-node";
import { DatastoreError, type Datastore, type KeyValue, type ListResult, type WatchEvent, type WatchMessage, type WriteOptions } from "../datastore/types.js";
import { STATUS_PREFIX } from "../model/lease.js";
import {
  ANN_LEASE, apiVersionOf, collectionPath, entriesOf, keepAllocated, nodeLeasePatch, nodePodCidr, nodeSettingsPatch, olderThan, RESOURCES, targetOf,
  valueObject, valueObjectName, type ApiObject, type Entry, type ResourceName,
} from "./mapping.js";

export interface KubernetesDatastoreOptions {
  /** A kubeconfig file; without it the pod's service account (in-cluster) is used. */
  kubeconfig?: string;
  /** A ready KubeConfig (tests). */
  kubeConfig?: k8s.KubeConfig;
  /** How often expired keys are looked for (ms). Default 1000. */
  sweepIntervalMs?: number;
  /** Changes kept for watches that resume from a revision. Default 10000. */
  logLimit?: number;
  /** How long `open` waits for the first list of every resource (ms). Default 30000. */
  syncTimeoutMs?: number;
  log?: (line: string) => void;
  now?: () => number;
}

/** Which resources the datastore reads; every one is listed and watched. */
const READ: ResourceName[] = ["nodes", "namespaces", "pods", "networkpolicies", "services", "endpointslices", "trellisnetworks", "trellispolicies", "globaltrellispolicies", "trellisbgppeers", "trellisvalues"];

interface Held extends KeyValue {
  expiresAt?: number;
  /** The object providing it: "nodes//n1". */
  source: string;
}

type Obj = ApiObject & { metadata: NonNullable<ApiObject["metadata"]> };

/**
 * An object the client returned, as the API server's JSON. KubernetesObjectApi hands back the
 * generated model classes of built-in kinds, whose properties are the JSON names except for
 * reserved words (`from` is `_from`, `continue` is `_continue`) and Dates for timestamps; the
 * watch hands back plain JSON. One shape for both: `_x` keys renamed back (no JSON key of these
 * kinds, label and annotation keys included, can start with "_"), Dates as strings.
 */
export function plain<T>(o: T): T {
  const fix = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(fix);
    if (v === null || typeof v !== "object") return v;
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) if (x !== undefined) out[k.startsWith("_") ? k.slice(1) : k] = fix(x);
    return out;
  };
  return fix(JSON.parse(JSON.stringify(o))) as T;
}

const objId = (r: ResourceName, o: ApiObject): string => `${r}/${o.metadata?.namespace ?? ""}/${o.metadata?.name ?? ""}`;

function statusOf(e: unknown): number | undefined {
  const x = e as { code?: unknown; statusCode?: unknown };
  if (typeof x?.code === "number") return x.code;
  if (typeof x?.statusCode === "number") return x.statusCode;
  return undefined;
}

function messageOf(e: unknown): string {
  const x = e as { body?: unknown; message?: string };
  if (typeof x?.body === "string") {
    try {
      const s = JSON.parse(x.body) as { message?: string };
      if (s.message) return s.message;
    } catch {
      // not a Status
    }
  }
  if (x?.body && typeof x.body === "object" && typeof (x.body as { message?: unknown }).message === "string") return (x.body as { message: string }).message;
  return x?.message ?? String(e);
}

const NETWORK_ERROR = /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN|EPIPE|socket hang up|fetch failed|network|timed? ?out/i;

/** A failed API call as the datastore's error: names the verb and resource, and what the server said. */
function apiError(verb: string, what: string, e: unknown): DatastoreError {
  const code = statusOf(e);
  const msg = messageOf(e);
  if (code === 401) return new DatastoreError("unavailable", `kubernetes: ${verb} ${what}: unauthorized (the kubeconfig's credentials are not accepted): ${msg}`, { cause: e });
  if (code === 403) return new DatastoreError("unavailable", `kubernetes: ${verb} ${what}: forbidden by RBAC: ${msg}`, { cause: e });
  if (code === 422 || code === 400) return new DatastoreError("invalid", `kubernetes: ${verb} ${what}: rejected by the API server: ${msg}`, { cause: e });
  if (code === undefined && NETWORK_ERROR.test(`${msg} ${(e as { code?: unknown })?.code ?? ""}`)) {
    return new DatastoreError("unavailable", `kubernetes: ${verb} ${what}: API server unreachable: ${msg}`, { cause: e });
  }
  // Not an answer from the server and not a network failure: a bug of ours or of the client.
  if (code === undefined) return new DatastoreError("internal", `kubernetes: ${verb} ${what}: ${msg}`, { cause: e });
  return new DatastoreError("unavailable", `kubernetes: ${verb} ${what}: ${code} ${msg}`, { cause: e });
}

export class KubernetesDatastore implements Datastore {
  readonly kind = "kubernetes" as const;
  private rev = 0;
  private readonly held = new Map<string, Held>();
  /** Per object: the keys it provides now and the resourceVersion they come from. */
  private readonly objects = new Map<string, { rv?: string; keys: Set<string>; obj: Obj }>();
  /** Keys provided by more than one object: the others, revealed when the first goes. */
  private readonly shadowed = new Map<string, Map<string, Entry>>();
  private readonly log: Array<{ rev: number; event: WatchEvent }> = [];
  private readonly watchers = new Set<{ prefix: string; handler: (m: WatchMessage) => void }>();
  private readonly synced = new Set<ResourceName>();
  private readonly abort = new AbortController();
  private readonly objectsApi: k8s.KubernetesObjectApi;
  private readonly coreApi: k8s.CoreV1Api;
  private readonly watcher: k8s.Watch;
  private readonly now: () => number;
  private readonly say: (line: string) => void;
  private sweeper: ReturnType<typeof setInterval> | undefined;

  private constructor(readonly kc: k8s.KubeConfig, private readonly o: KubernetesDatastoreOptions) {
    this.objectsApi = k8s.KubernetesObjectApi.makeApiClient(kc);
    this.coreApi = kc.makeApiClient(k8s.CoreV1Api);
    this.watcher = new k8s.Watch(kc);
    // One abort listener per reflector's watch, more than the default warning threshold of 10.
    setMaxListeners(READ.length + 10, this.abort.signal);
    this.now = o.now ?? Date.now;
    this.say = o.log ?? ((l) => process.stderr.write(`${l}\n`));
  }

  /** Loads the credentials, lists every resource once (retrying while the server is away) and starts watching. */
  static async open(o: KubernetesDatastoreOptions = {}): Promise<KubernetesDatastore> {
    let kc = o.kubeConfig;
    if (!kc) {
      kc = new k8s.KubeConfig();
      try {
        if (o.kubeconfig) kc.loadFromFile(o.kubeconfig);
        else kc.loadFromCluster();
      } catch (e) {
        throw new DatastoreError("invalid", `kubernetes: cannot load ${o.kubeconfig ? `kubeconfig ${o.kubeconfig}` : "the in-cluster service account"}: ${(e as Error).message}`);
      }
      if (!kc.getCurrentCluster()) {
        throw new DatastoreError("invalid", o.kubeconfig ? `kubernetes: kubeconfig ${o.kubeconfig} names no cluster (current-context ${JSON.stringify(kc.getCurrentContext())})`
          : "kubernetes: not in a pod (KUBERNETES_SERVICE_HOST is unset) and no --kubeconfig given");
      }
    }
    const s = new KubernetesDatastore(kc, o);
    for (const r of READ) void s.reflect(r);
    const deadline = Date.now() + (o.syncTimeoutMs ?? 30_000);
    while (s.synced.size < READ.length) {
      if (Date.now() > deadline) {
        const missing = READ.filter((r) => !s.synced.has(r));
        await s.close();
        throw new DatastoreError("unavailable", `kubernetes: could not list ${missing.join(", ")} within ${Math.round((o.syncTimeoutMs ?? 30_000) / 1000)}s (see the errors above)`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    const every = o.sweepIntervalMs ?? 1000;
    if (every > 0) s.sweeper = setInterval(() => void s.sweepExpired(), every);
    return s;
  }

  // ---- reading -------------------------------------------------------------------------------

  private visible(kv: Held | undefined): KeyValue | undefined {
    if (!kv || (kv.expiresAt !== undefined && kv.expiresAt <= this.now())) return undefined;
    return { key: kv.key, value: kv.value, createRevision: kv.createRevision, modRevision: kv.modRevision };
  }

  async get(key: string): Promise<KeyValue | undefined> {
    return this.visible(this.held.get(key));
  }

  async list(prefix: string): Promise<ListResult> {
    const items: KeyValue[] = [];
    for (const kv of this.held.values()) {
      if (!kv.key.startsWith(prefix)) continue;
      const v = this.visible(kv);
      if (v) items.push(v);
    }
    items.sort((a, b) => Buffer.compare(Buffer.from(a.key), Buffer.from(b.key)));
    return { items, revision: this.rev };
  }

  watch(prefix: string, fromRevision: number, handler: (m: WatchMessage) => void, signal: AbortSignal): void {
    const w = { prefix, handler };
    const oldest = this.log.length ? this.log[0]!.rev : this.rev + 1;
    if (fromRevision + 1 < oldest && fromRevision < this.rev) {
      queueMicrotask(() => handler({ resync: true, reason: `revision ${fromRevision} is older than the ${this.log.length} changes kept` }));
    } else {
      const missed = this.log.filter((e) => e.rev > fromRevision && keyOf(e.event).startsWith(prefix)).map((e) => e.event);
      if (missed.length) {
        const revision = this.rev;
        queueMicrotask(() => handler({ events: missed, revision }));
      }
    }
    this.watchers.add(w);
    signal.addEventListener("abort", () => this.watchers.delete(w), { once: true });
  }

  // ---- the view ------------------------------------------------------------------------------

  private emit(events: WatchEvent[]): void {
    if (events.length === 0) return;
    for (const event of events) this.log.push({ rev: eventRev(event), event });
    const limit = this.o.logLimit ?? 10_000;
    if (this.log.length > limit) this.log.splice(0, this.log.length - limit);
    const revision = this.rev;
    for (const w of this.watchers) {
      const mine = events.filter((e) => keyOf(e).startsWith(w.prefix));
      if (mine.length) queueMicrotask(() => this.watchers.has(w) && w.handler({ events: mine, revision }));
    }
  }

  private setKey(source: string, e: Entry, out: WatchEvent[]): void {
    const cur = this.held.get(e.key);
    if (cur && cur.source !== source) {
      // Another object provides this key already (a lease both as Node annotation and TrellisValue): keep the first.
      let m = this.shadowed.get(e.key);
      if (!m) this.shadowed.set(e.key, (m = new Map()));
      m.set(source, e);
      return;
    }
    if (cur && cur.value === e.value && cur.expiresAt === e.expiresAt) return;
    const rev = ++this.rev;
    const kv: Held = { key: e.key, value: e.value, createRevision: cur ? cur.createRevision : rev, modRevision: rev, source, ...(e.expiresAt !== undefined ? { expiresAt: e.expiresAt } : {}) };
    this.held.set(e.key, kv);
    out.push({ type: "put", kv: { key: kv.key, value: kv.value, createRevision: kv.createRevision, modRevision: kv.modRevision } });
  }

  private dropKey(source: string, key: string, out: WatchEvent[]): void {
    this.shadowed.get(key)?.delete(source);
    const cur = this.held.get(key);
    if (!cur || cur.source !== source) return;
    this.held.delete(key);
    const rev = ++this.rev;
    out.push({ type: "delete", key, modRevision: rev });
    const next = this.shadowed.get(key);
    const first = next?.entries().next();
    if (first && !first.done) {
      next!.delete(first.value[0]);
      this.setKey(first.value[0], first.value[1], out);
    }
  }

  /** Folds an object's current state (or its deletion) into the view. */
  private ingest(r: ResourceName, o: ApiObject, deleted: boolean, out: WatchEvent[]): void {
    const id = objId(r, o);
    const prev = this.objects.get(id);
    const rv = o.metadata?.resourceVersion;
    if (prev && olderThan(rv, prev.rv)) return; // a watch event older than a write's answer already folded in
    const entries = deleted ? [] : entriesOf(r, o);
    const keys = new Set(entries.map((e) => e.key));
    for (const k of prev?.keys ?? []) if (!keys.has(k)) this.dropKey(id, k, out);
    for (const e of entries) this.setKey(id, e, out);
    if (deleted) this.objects.delete(id);
    else this.objects.set(id, { rv, keys, obj: o as Obj });
  }

  private apply(r: ResourceName, o: ApiObject, deleted = false): void {
    const out: WatchEvent[] = [];
    this.ingest(r, o, deleted, out);
    this.emit(out);
  }

  /** A fresh list of `r`: objects gone since are deleted, the rest folded in. */
  private replaceAll(r: ResourceName, items: ApiObject[]): void {
    const out: WatchEvent[] = [];
    const now = new Set(items.map((o) => objId(r, o)));
    for (const [id, x] of [...this.objects]) if (id.startsWith(`${r}/`) && !now.has(id)) this.ingest(r, x.obj, true, out);
    for (const o of items) {
      // A relist is the truth: drop the resourceVersion guard for it.
      const prev = this.objects.get(objId(r, o));
      if (prev) prev.rv = undefined;
      this.ingest(r, o, false, out);
    }
    this.emit(out);
  }

  // ---- reflectors ----------------------------------------------------------------------------

  private async listAll(r: ResourceName): Promise<{ items: ApiObject[]; resourceVersion: string }> {
    const def = RESOURCES[r];
    const items: ApiObject[] = [];
    let cont: string | undefined;
    let resourceVersion = "";
    do {
      const page = await this.objectsApi.list<k8s.KubernetesObject>(apiVersionOf(def), def.kind, undefined, undefined, undefined, undefined, undefined, undefined, 500, cont);
      items.push(...(page.items as ApiObject[]).map((o) => ({ ...plain(o), apiVersion: apiVersionOf(def), kind: def.kind })));
      cont = page.metadata?._continue || undefined;
      resourceVersion = page.metadata?.resourceVersion ?? "";
    } while (cont);
    return { items, resourceVersion };
  }

  private async reflect(r: ResourceName): Promise<void> {
    let rv = "";
    let backoff = 500;
    let failing: string | undefined;
    const path = collectionPath(RESOURCES[r]);
    while (!this.abort.signal.aborted) {
      try {
        if (!rv) {
          const l = await this.listAll(r);
          this.replaceAll(r, l.items);
          rv = l.resourceVersion;
          this.synced.add(r);
        }
        if (failing) this.say(`kubernetes: ${r}: list and watch work again`);
        failing = undefined;
        rv = await this.watchOnce(r, path, rv);
        backoff = 500;
      } catch (e) {
        if (this.abort.signal.aborted) return;
        if (statusOf(e) === 410) {
          rv = "";
          continue;
        }
        const why = apiError(rv ? "watch" : "list", r, e).message;
        if (why !== failing) this.say(`${why}; retrying with backoff (the data plane stays as it is)`);
        failing = why;
        await new Promise((res) => setTimeout(res, backoff).unref?.());
        backoff = Math.min(backoff * 2, 30_000);
      }
    }
  }

  /** One watch stream from `rv`; resolves with the last resourceVersion seen ("" after 410: list again). */
  private watchOnce(r: ResourceName, path: string, from: string): Promise<string> {
    let rv = from;
    return new Promise<string>((resolve, reject) => {
      let req: AbortController | undefined;
      const stop = (): void => req?.abort();
      this.abort.signal.addEventListener("abort", stop, { once: true });
      const finish = (err: unknown): void => {
        this.abort.signal.removeEventListener("abort", stop);
        if (err && statusOf(err) !== 410) reject(err);
        else resolve(err ? "" : rv);
      };
      this.watcher.watch(path, { resourceVersion: rv, allowWatchBookmarks: true, timeoutSeconds: 300 }, (phase, obj: ApiObject) => {
        if (phase === "ERROR") {
          const code = (obj as { code?: number }).code;
          if (code === 410) rv = "";
          return;
        }
        if (phase !== "BOOKMARK") this.apply(r, obj, phase === "DELETED");
        if (rv !== "" && obj?.metadata?.resourceVersion) rv = obj.metadata.resourceVersion;
      }, (err) => finish(err ?? (rv === "" ? { code: 410 } : null))).then((c) => {
        req = c;
        if (this.abort.signal.aborted) c.abort();
      }, reject);
    });
  }

  // ---- writing -------------------------------------------------------------------------------

  private checkWrite(key: string, opts?: WriteOptions): number | undefined {
    if (typeof key !== "string" || key === "") throw new DatastoreError("invalid", "key must be a non-empty string");
    const ttl = opts?.ttlSeconds;
    if (ttl === undefined) return undefined;
    if (typeof ttl !== "number" || !Number.isFinite(ttl) || ttl <= 0) throw new DatastoreError("invalid", `ttlSeconds ${String(ttl)} is not a positive number`);
    return this.now() + ttl * 1000;
  }

  private node(name: string): Obj | undefined {
    return this.objects.get(`nodes//${name}`)?.obj;
  }

  /** The Node whose podCIDR is `block` (a lease of it lives in that Node's annotations). */
  private nodeWithBlock(block: string, value: string | undefined): Obj | undefined {
    let holder: string | undefined;
    try {
      holder = value ? (JSON.parse(value) as { node?: string }).node : undefined;
    } catch {
      holder = undefined;
    }
    for (const [id, x] of this.objects) {
      if (!id.startsWith("nodes/")) continue;
      if (nodePodCidr(x.obj) === block && (holder === undefined || holder === x.obj.metadata.name)) return x.obj;
    }
    return undefined;
  }

  /** Writes; `expected`: undefined = unconditional, CREATE = only if absent, n = only if at modRevision n. */
  private async write(key: string, value: string, expected: number | undefined, opts?: WriteOptions): Promise<KeyValue | undefined> {
    const expiresAt = this.checkWrite(key, opts);
    const cur = this.visible(this.held.get(key));
    if (expected === CREATE && cur) return undefined;
    if (expected !== undefined && expected !== CREATE && cur?.modRevision !== expected) return undefined;
    const t = targetOf(key);
    if (t.type === "read-only") throw new DatastoreError("invalid", `cannot write ${key}: ${t.why}`);
    const heldSource = this.held.get(key)?.source;
    if (t.type === "lease" && (heldSource?.startsWith("nodes/") || (!heldSource && this.nodeWithBlock(t.block, value)))) {
      const node = heldSource ? this.objects.get(heldSource)!.obj : this.nodeWithBlock(t.block, value)!;
      return this.patchNodeKey(key, node.metadata.name!, expected, (n) => nodeLeasePatch(n, t.block, value, expiresAt));
    }
    if (t.type === "node-settings") {
      if (!this.node(t.node)) throw new DatastoreError("invalid", `cannot write ${key}: there is no Node named ${JSON.stringify(t.node)}`);
      let settings: { labels?: Record<string, string>; asNumber?: number; routeReflectorClusterId?: string };
      try {
        settings = JSON.parse(value) as typeof settings;
      } catch {
        throw new DatastoreError("invalid", `cannot write ${key}: not JSON`);
      }
      return this.patchNodeKey(key, t.node, expected, (n) => nodeSettingsPatch(n, settings));
    }
    let obj: ApiObject;
    let r: ResourceName;
    if (t.type === "object") {
      try {
        obj = t.build(value);
      } catch (e) {
        throw new DatastoreError("invalid", `cannot write ${key}: ${(e as Error).message}`);
      }
      r = t.resource;
    } else {
      obj = valueObject(key, value, expiresAt);
      r = "trellisvalues";
    }
    const what = `${RESOURCES[r].resource} ${obj.metadata?.namespace ? `${obj.metadata.namespace}/` : ""}${obj.metadata?.name}`;
    const typed = (o: ApiObject): ApiObject => ({ ...plain(o), apiVersion: apiVersionOf(RESOURCES[r]), kind: RESOURCES[r].kind });
    for (let attempt = 0; ; attempt++) {
      const existing = this.objects.get(objId(r, obj))?.obj;
      try {
        let res: ApiObject;
        if (!existing) {
          res = (await this.objectsApi.create(obj as k8s.KubernetesObject)) as ApiObject;
        } else {
          // Replace the object this view has seen: a resourceVersion precondition, so nobody's change is lost.
          // Timestamps and managedFields are the server's (an update keeps them); they are also left
          // out because the client serialises built-in kinds through its model classes, which want
          // Dates where this view holds the JSON's strings.
          const { creationTimestamp: _ct, deletionTimestamp: _dt, managedFields: _mf, ...keep } = existing.metadata;
          let body: ApiObject = { ...obj, metadata: { ...obj.metadata, resourceVersion: keep.resourceVersion } };
          if (r !== "trellisvalues") body.metadata = { ...keep, ...obj.metadata, resourceVersion: keep.resourceVersion };
          // A Pod's spec is immutable: only what Trellis reads from its metadata (labels) changes
          // (its status is not written by an update).
          if (r === "pods") {
            const { status: _st, ...pod } = existing;
            body = { ...pod, metadata: { ...keep, labels: obj.metadata?.labels ?? {} } };
          }
          // What the API server allocated (ClusterIP, NodePorts) stays unless the document names it.
          if (r === "services") body = keepAllocated(existing, body);
          res = (await this.objectsApi.replace(body as k8s.KubernetesObject)) as ApiObject;
        }
        this.apply(r, typed(res));
        break;
      } catch (e) {
        const code = statusOf(e);
        if ((code === 409 || code === 404) && expected !== undefined) return undefined;
        if ((code === 409 || code === 404) && attempt < 5) {
          // An unconditional write that lost a race: fold in what is there now and write again.
          const fresh = await this.objectsApi.read(obj as k8s.KubernetesObject as never).catch(() => undefined);
          if (fresh) this.apply(r, typed(fresh as ApiObject));
          else if (existing) this.apply(r, existing, true);
          continue;
        }
        throw apiError(existing ? "update" : "create", what, e);
      }
    }
    const kv = this.visible(this.held.get(key));
    if (!kv) throw new DatastoreError("internal", `kubernetes: wrote ${what} but it does not provide ${key} (its fields were dropped by the API server?)`);
    if (key.startsWith(STATUS_PREFIX)) void this.reportNodeCondition(value);
    return kv;
  }

  /**
   * An agent's status, shown on its Node as the NetworkUnavailable condition (the one kubelet
   * and the scheduler read, and that Flannel and Calico set): False once the agent is ready,
   * True while it waits (with its reason, e.g. no podCIDR). Best effort; only changes are written.
   */
  private async reportNodeCondition(statusValue: string): Promise<void> {
    let st: { node?: string; state?: string; ready?: boolean; problem?: string };
    try {
      st = JSON.parse(statusValue) as typeof st;
    } catch {
      return;
    }
    const node = st.node ? this.node(st.node) : undefined;
    if (!node) return;
    const unavailable = st.state === "waiting" || (st.state === "running" && !st.ready) ? "True" : st.state === "running" ? "False" : undefined;
    if (!unavailable) return;
    const reason = st.state === "waiting" ? "TrellisWaiting" : unavailable === "True" ? "TrellisStarting" : "TrellisIsUp";
    const message = st.problem ?? (unavailable === "False" ? "Trellis networks this node's pods" : "Trellis is programming this node");
    const conditions = (node.status?.conditions ?? []) as Array<{ type: string; status: string; reason?: string; message?: string }>;
    const cur = conditions.find((c) => c.type === "NetworkUnavailable");
    if (cur && cur.status === unavailable && cur.reason === reason && cur.message === message) return;
    const now = new Date(this.now()).toISOString();
    const condition = { type: "NetworkUnavailable", status: unavailable, reason, message, lastHeartbeatTime: now, lastTransitionTime: cur?.status === unavailable ? undefined : now };
    const others = conditions.filter((c) => c.type !== "NetworkUnavailable");
    try {
      const res = await this.coreApi.patchNodeStatus({ name: node.metadata.name!, body: { status: { conditions: [...others, condition] } } },
        k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch));
      this.apply("nodes", { ...(plain(res) as ApiObject), apiVersion: "v1", kind: "Node" });
    } catch (e) {
      this.say(apiError("patch", `nodes/status ${node.metadata.name}`, e).message);
    }
  }

  /** A key a Node provides, written by a merge patch with the Node's resourceVersion as precondition. */
  private async patchNodeKey(key: string, nodeName: string, expected: number | undefined, patch: (node: Obj) => Record<string, unknown>): Promise<KeyValue | undefined> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const node = attempt === 0 ? this.node(nodeName) : plain((await this.coreApi.readNode({ name: nodeName })) as unknown as Obj);
      if (!node) throw new DatastoreError("invalid", `cannot write ${key}: there is no Node named ${JSON.stringify(nodeName)}`);
      if (attempt > 0) {
        // The Node changed since this view saw it: only retry if the change left this key alone.
        const now = entriesOf("nodes", node).find((e) => e.key === key);
        const seen = this.held.get(key);
        if (expected !== undefined && (now?.value !== seen?.value || (expected === CREATE) !== !now)) return undefined;
      }
      try {
        const p = patch(node) as { metadata: Record<string, unknown> };
        const res = (await this.objectsApi.patch({ apiVersion: "v1", kind: "Node", ...p, metadata: { ...p.metadata, name: nodeName } } as k8s.KubernetesObject,
          undefined, undefined, undefined, undefined, k8s.PatchStrategy.MergePatch)) as ApiObject;
        this.apply("nodes", { ...plain(res), apiVersion: "v1", kind: "Node" });
        return this.visible(this.held.get(key)) ?? { key, value: "", createRevision: this.rev, modRevision: this.rev };
      } catch (e) {
        if (statusOf(e) === 409) continue;
        throw apiError("patch", `nodes ${nodeName}`, e);
      }
    }
    return undefined;
  }

  async create(key: string, value: string, opts?: WriteOptions): Promise<KeyValue | undefined> {
    return this.write(key, value, CREATE, opts);
  }

  async update(key: string, value: string, expectedModRevision: number, opts?: WriteOptions): Promise<KeyValue | undefined> {
    if (!(expectedModRevision > 0)) {
      this.checkWrite(key, opts);
      return undefined;
    }
    return this.write(key, value, expectedModRevision, opts);
  }

  async put(key: string, value: string, opts?: WriteOptions): Promise<KeyValue> {
    const kv = await this.write(key, value, undefined, opts);
    if (!kv) throw new DatastoreError("internal", `kubernetes: put of ${key} did not take`);
    return kv;
  }

  async delete(key: string, expectedModRevision?: number): Promise<boolean> {
    this.checkWrite(key);
    const cur = this.held.get(key);
    if (!cur) return false;
    if (expectedModRevision !== undefined && cur.modRevision !== expectedModRevision) return false;
    const t = targetOf(key);
    if (t.type === "read-only") throw new DatastoreError("invalid", `cannot delete ${key}: ${t.why}`);
    const x = this.objects.get(cur.source);
    if (!x) return false;
    const [r] = cur.source.split("/") as [ResourceName];
    if (r === "nodes") {
      if (t.type !== "lease") throw new DatastoreError("invalid", `cannot delete ${key}: it is part of Node ${x.obj.metadata.name} (delete the Node, or change its labels)`);
      const kv = await this.patchNodeKey(key, x.obj.metadata.name!, expectedModRevision ?? cur.modRevision, (n) => nodeLeasePatch(n, undefined, undefined, undefined));
      return kv !== undefined;
    }
    const what = `${r} ${x.obj.metadata.namespace ? `${x.obj.metadata.namespace}/` : ""}${x.obj.metadata.name}`;
    try {
      await this.objectsApi.delete({ apiVersion: apiVersionOf(RESOURCES[r]), kind: RESOURCES[r].kind, metadata: { name: x.obj.metadata.name, namespace: x.obj.metadata.namespace } },
        undefined, undefined, undefined, undefined, undefined, { preconditions: { resourceVersion: x.obj.metadata.resourceVersion } } as k8s.V1DeleteOptions);
    } catch (e) {
      const code = statusOf(e);
      if (code === 404 || (code === 409 && expectedModRevision !== undefined)) return false;
      if (code === 409) return this.delete(key);
      throw apiError("delete", what, e);
    }
    this.apply(r, x.obj, true);
    return true;
  }

  /** Deletes every expired key (each guarded by its revision, so concurrent sweepers delete once). */
  async sweepExpired(): Promise<void> {
    const now = this.now();
    for (const kv of [...this.held.values()]) {
      if (kv.expiresAt === undefined || kv.expiresAt > now) continue;
      try {
        await this.delete(kv.key, kv.modRevision);
      } catch (e) {
        this.say(`kubernetes: could not delete expired ${kv.key}: ${(e as Error).message}`);
      }
    }
    await this.freeBlocksOfDeletedNodes();
  }

  /** A lease Trellis allocated itself (a TrellisValue) whose Node was deleted frees its block. */
  private async freeBlocksOfDeletedNodes(): Promise<void> {
    const nodes = [...this.objects.keys()].filter((id) => id.startsWith("nodes/"));
    if (nodes.length === 0) return; // a cluster without Node objects (tests): nothing to go by
    for (const kv of [...this.held.values()]) {
      if (!kv.source.startsWith("trellisvalues/") || targetOf(kv.key).type !== "lease") continue;
      let holder: string | undefined;
      try {
        holder = (JSON.parse(kv.value) as { node?: string }).node;
      } catch {
        continue;
      }
      if (holder && !this.node(holder)) {
        if (await this.delete(kv.key, kv.modRevision).catch(() => false)) this.say(`kubernetes: freed ${kv.key}: Node ${holder} was deleted`);
      }
    }
  }

  async close(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    this.abort.abort();
    this.watchers.clear();
  }

  /** For tests: the TrellisValue name a key is stored under. */
  static objectNameOf(key: string): string {
    return valueObjectName(key);
  }
}

/** `write`'s "only if absent" (revisions start at 1; an update naming revision 0 or less never matches). */
const CREATE = -1;
const keyOf = (e: WatchEvent): string => (e.type === "put" ? e.kv.key : e.key);
const eventRev = (e: WatchEvent): number => (e.type === "put" ? e.kv.modRevision : e.modRevision);
export { ANN_LEASE };
