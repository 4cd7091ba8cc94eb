// An in-process fake Kubernetes API server speaking the documented protocol
// (https://kubernetes.io/docs/reference/using-api/api-concepts/) over HTTP: discovery, the
// built-in resources Trellis reads, CRDs and their custom resources (schema-validated),
// get/list/watch/create/update/patch/delete with resourceVersion semantics, bearer tokens
// and RBAC. Design note: APISERVER.md. The pure parts live in apiserver-*.ts.

import * as http from "node:http";
import { randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import {
  StatusError, alreadyExists, badRequest, conflict, continueExpired, forbidden, invalid, methodNotAllowed, notFound,
  patchFailed, pathNotFound, tooOld, unauthorized, unsupportedMediaType,
} from "./apiserver-errors.js";
import { PatchError, applyJsonPatch, mergePatch, type Json } from "./apiserver-patch.js";
import { authorize, type PolicyRule } from "./apiserver-rbac.js";
import {
  BUILTIN_TYPES, VERBS, apiVersionOf, bucketOf, establishedStatus, nameProblem, typesOfCrd, validateCrd, type ResourceType,
} from "./apiserver-resources.js";
import { applySchema } from "./apiserver-schema.js";
import {
  matchesFields, matchesLabels, parseFieldSelector, parseLabelSelector, selectedName, type FieldSelector, type LabelSelector,
} from "./apiserver-selectors.js";
import { ObjectStore, type StoredEvent } from "./apiserver-store.js";

export type { PolicyRule } from "./apiserver-rbac.js";

export interface ApiUser { token: string; name: string; /** undefined: everything allowed (cluster-admin) */ rules?: PolicyRule[] }
export interface ApiCall { user: string; verb: string; group: string; version: string; resource: string; subresource?: string; namespace?: string; name?: string; code: number }
export interface FakeApiServerOptions {
  host?: string;
  port?: number;
  /** Requests without a valid bearer token get 401 (unless users is undefined: then anonymous admin). */
  users?: ApiUser[];
  /** Events kept for watch resumption (default 1000); an older resourceVersion gets 410. */
  historyLimit?: number;
  /** Default 1000 (the real server: about 60 s). */
  bookmarkIntervalMs?: number;
  onCall?: (c: ApiCall) => void;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === "object" && !Array.isArray(v);
const obj = (v: unknown): Obj => (isObj(v) ? v : {});
const clone = <T>(v: T): T => structuredClone(v);
const meta = (o: Obj): Obj => obj(o.metadata);

const ANONYMOUS: ApiUser = { token: "", name: "system:anonymous" };
const MAX_BODY = 3 * 1024 * 1024;
const PATCH_TYPES = ["application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json"];
const NAMESPACE_SUBRESOURCES = new Set(["status", "finalize"]);
const GENERATE_CHARS = "bcdfghjklmnpqrstvwxz2456789";
const SYSTEM_NAMESPACES = ["default", "kube-system", "kube-public", "kube-node-lease"];

/** What a resource URL names (k8s.io/apiserver RequestInfo). */
interface RequestInfo { group: string; version: string; namespace?: string; resource: string; name?: string; subresource?: string }

interface Watcher { type: ResourceType; namespace?: string; labels: LabelSelector; fields: FieldSelector; res: http.ServerResponse; timers: NodeJS.Timeout[]; unsubscribe: () => void; closed: boolean }

export class FakeApiServer {
  readonly url: string;
  readonly calls: ApiCall[] = [];
  private readonly store: ObjectStore;
  /** Served types by `group/version/resource`. */
  private readonly types = new Map<string, ResourceType>();
  private readonly watchers = new Set<Watcher>();
  private readonly bookmarkMs: number;

  private constructor(private readonly server: http.Server, url: string, private readonly o: FakeApiServerOptions) {
    this.url = url;
    this.store = new ObjectStore(o.historyLimit ?? 1000);
    this.bookmarkMs = o.bookmarkIntervalMs ?? 1000;
    for (const t of BUILTIN_TYPES) this.types.set(`${t.group}/${t.version}/${t.resource}`, t);
    const nsType = BUILTIN_TYPES[0]!;
    const now = new Date().toISOString().replace(/\.\d+Z$/, "Z");
    for (const ns of SYSTEM_NAMESPACES) {
      this.store.put(bucketOf(nsType), ns, namespaceDefaults({ apiVersion: "v1", kind: "Namespace", metadata: { name: ns, uid: randomUUID(), creationTimestamp: now } }));
    }
  }

  static async start(o: FakeApiServerOptions = {}): Promise<FakeApiServer> {
    const server = http.createServer();
    const host = o.host ?? "127.0.0.1";
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(o.port ?? 0, host, () => { server.off("error", reject); resolve(); });
    });
    const addr = server.address() as AddressInfo;
    const h = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
    const s = new FakeApiServer(server, `http://${h}:${addr.port}`, o);
    server.on("request", (req, res) => { s.handle(req, res).catch(() => { if (!res.headersSent) res.writeHead(500); res.end(); }); });
    server.on("clientError", (_e, socket) => socket.destroy());
    return s;
  }

  /** Forget all history: any watch or list from an older resourceVersion now gets 410. */
  compact(): void {
    this.store.compact();
  }

  /** End every open watch stream, as an API server restart would. */
  dropWatches(): void {
    for (const w of [...this.watchers]) this.endWatch(w);
  }

  async close(): Promise<void> {
    this.dropWatches();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  // ---- HTTP ----

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    let call: Omit<ApiCall, "code"> | undefined;
    try {
      const url = new URL(req.url ?? "/", "http://fake");
      const path = url.pathname.replace(/\/+$/, "") || "/";
      const user = this.authenticate(req);
      if (["/healthz", "/readyz", "/livez"].includes(path) || path.startsWith("/healthz/") || path.startsWith("/readyz/") || path.startsWith("/livez/")) {
        if (user === null) throw unauthorized();
        if (req.method !== "GET" && req.method !== "HEAD") throw methodNotAllowed();
        res.writeHead(200, { "Content-Type": "text/plain; charset=utf-8" }).end("ok");
        return;
      }
      if (path === "/version") {
        if (user === null) throw unauthorized();
        return this.sendJson(res, 200, VERSION);
      }
      const discovery = this.discovery(path);
      if (discovery !== undefined) {
        if (!user) throw unauthorized();
        if (req.method !== "GET") throw methodNotAllowed();
        if (discovery === null) throw pathNotFound();
        return this.sendJson(res, 200, discovery);
      }
      const info = parseResourcePath(path);
      if (!info) throw user ? pathNotFound() : unauthorized();
      const verb = verbOf(req.method ?? "GET", info, url.searchParams);
      call = { user: user?.name ?? ANONYMOUS.name, verb: verb ?? String(req.method).toLowerCase(), group: info.group, version: info.version, resource: info.resource };
      if (info.subresource) call.subresource = info.subresource;
      if (info.namespace) call.namespace = info.namespace;
      if (info.name) call.name = info.name;
      if (!user) throw unauthorized();
      const type = this.types.get(`${info.group}/${info.version}/${info.resource}`);
      if (!type) throw pathNotFound();
      if (info.subresource !== undefined && !(info.subresource === "status" && type.statusSubresource)) throw pathNotFound();
      if (!type.namespaced && info.namespace !== undefined && info.resource !== "namespaces") throw pathNotFound();
      if (!verb) throw methodNotAllowed();
      if (type.namespaced && info.namespace === undefined) {
        // a namespaced resource at the cluster scope: only list and watch exist there
        if (info.name !== undefined) throw pathNotFound();
        if (verb !== "list" && verb !== "watch") throw methodNotAllowed();
      }
      const fields = parseFieldSelector(url.searchParams.get("fieldSelector") ?? "", ["metadata.name", "metadata.namespace", ...type.fieldSelectors]);
      // a watch of one named object (the deprecated URL form) is a watch with a name selector
      if (verb === "watch" && info.name !== undefined) fields.push({ field: "metadata.name", op: "=", value: info.name });
      const name = info.name ?? (verb === "list" || verb === "watch" ? selectedName(fields) : undefined);
      const attrs = { verb, group: info.group, resource: info.resource, ...(info.subresource ? { subresource: info.subresource } : {}), ...(name ? { name } : {}) };
      if (!authorize(user.rules, attrs)) throw forbidden({ ...attrs, user: user.name, ...(info.namespace ? { namespace: info.namespace } : {}) });
      // a namespace's own URL names it as the request's namespace, which its object does not have
      const ns = type.namespaced ? info.namespace : undefined;
      await this.serve(req, res, url.searchParams, type, verb, ns, info, fields);
    } catch (e) {
      const err = e instanceof StatusError ? e : new StatusError(500, "InternalError", `Internal error occurred: ${(e as Error).message}`);
      if (!res.headersSent) this.sendJson(res, err.code, err.toStatus());
      else res.end();
    } finally {
      if (call) {
        const c: ApiCall = { ...call, code: res.statusCode };
        this.calls.push(c);
        try { this.o.onCall?.(c); } catch { /* a listener's failure is not the request's */ }
      }
    }
  }

  /** undefined: no Authorization header (anonymous); null: a token that names nobody. */
  private authenticate(req: http.IncomingMessage): ApiUser | null | undefined {
    const users = this.o.users;
    if (users === undefined) return ANONYMOUS;
    const h = req.headers.authorization;
    if (!h) return undefined;
    const m = h.match(/^Bearer\s+(\S+)\s*$/i);
    return (m && users.find((u) => u.token === m[1])) || null;
  }

  private sendJson(res: http.ServerResponse, code: number, body: unknown): void {
    const data = JSON.stringify(body);
    res.writeHead(code, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(data) }).end(data);
  }

  private async readBody(req: http.IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const c of req) {
      n += (c as Buffer).length;
      if (n > MAX_BODY) throw new StatusError(413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728");
      chunks.push(c as Buffer);
    }
    return Buffer.concat(chunks).toString("utf8");
  }

  private async readJson(req: http.IncomingMessage, optional = false): Promise<unknown> {
    const text = await this.readBody(req);
    if (text.trim() === "") {
      if (optional) return undefined;
      throw badRequest("the body of the request was empty");
    }
    try {
      return JSON.parse(text);
    } catch (e) {
      throw badRequest(`couldn't get version/kind; json parse error: ${(e as Error).message}`);
    }
  }

  // ---- discovery ----

  /** undefined: not a discovery path; null: a discovery-shaped path that names nothing. */
  private discovery(path: string): unknown {
    const served = [...this.types.values()];
    if (path === "/api") return { kind: "APIVersions", versions: ["v1"], serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress: this.url.replace(/^http:\/\//, "") }] };
    if (path === "/apis") {
      const groups = new Map<string, string[]>();
      for (const t of served) if (t.group) groups.set(t.group, [...new Set([...(groups.get(t.group) ?? []), t.version])]);
      return { kind: "APIGroupList", apiVersion: "v1", groups: [...groups].map(([g, vs]) => apiGroup(g, vs)) };
    }
    const m = path.match(/^\/(?:api\/(v1)|apis\/([^/]+)(?:\/([^/]+))?)$/);
    if (!m) return undefined;
    const group = m[2] ?? "";
    const version = m[1] ?? m[3];
    if (version === undefined) {
      const vs = [...new Set(served.filter((t) => t.group === group).map((t) => t.version))];
      return vs.length ? { kind: "APIGroup", apiVersion: "v1", ...apiGroup(group, vs) } : null;
    }
    const ts = served.filter((t) => t.group === group && t.version === version);
    if (!ts.length) return null;
    const resources: Obj[] = [];
    for (const t of ts) {
      resources.push({ name: t.resource, singularName: t.singular, namespaced: t.namespaced, kind: t.kind, verbs: [...VERBS], ...(t.shortNames ? { shortNames: t.shortNames } : {}) });
      if (t.statusSubresource) resources.push({ name: `${t.resource}/status`, singularName: "", namespaced: t.namespaced, kind: t.kind, verbs: ["get", "patch", "update"] });
    }
    return { kind: "APIResourceList", apiVersion: "v1", groupVersion: apiVersionOf({ group, version }), resources };
  }

  // ---- resources ----

  private async serve(req: http.IncomingMessage, res: http.ServerResponse, q: URLSearchParams, type: ResourceType, verb: string, ns: string | undefined, info: RequestInfo, fields: FieldSelector): Promise<void> {
    const labels = parseLabelSelector(q.get("labelSelector") ?? "");
    switch (verb) {
      case "get": return this.sendJson(res, 200, this.out(type, this.mustGet(type, ns, info.name!)));
      case "list": return this.sendJson(res, 200, this.list(type, ns, labels, fields, q));
      case "watch": return this.watch(req, res, type, ns, labels, fields, q);
      case "create": {
        const body = await this.readJson(req);
        const warnings: string[] = [];
        const created = this.create(type, ns, body, q.get("fieldValidation"), warnings);
        this.warn(res, warnings);
        return this.sendJson(res, 201, this.out(type, created));
      }
      case "update": {
        const body = await this.readJson(req);
        const warnings: string[] = [];
        const updated = this.update(type, ns, info.name!, info.subresource, () => body, q.get("fieldValidation"), warnings);
        this.warn(res, warnings);
        return this.sendJson(res, 200, this.out(type, updated));
      }
      case "patch": {
        const ct = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
        if (!PATCH_TYPES.includes(ct)) throw unsupportedMediaType(ct, [...PATCH_TYPES, "application/apply-patch+yaml"]);
        const patch = await this.readJson(req);
        const warnings: string[] = [];
        const patched = this.update(type, ns, info.name!, info.subresource, (current) => applyPatch(ct, current, patch), q.get("fieldValidation"), warnings);
        this.warn(res, warnings);
        return this.sendJson(res, 200, this.out(type, patched));
      }
      case "delete": {
        const opts = obj(await this.readJson(req, true));
        return this.sendJson(res, 200, this.out(type, this.delete(type, ns, info.name!, obj(opts.preconditions))));
      }
      case "deletecollection": {
        const items = this.select(type, ns, labels, fields).map(([, o]) => this.out(type, this.delete(type, ns ?? (meta(o).namespace as string | undefined), meta(o).name as string, {}), true));
        return this.sendJson(res, 200, { kind: type.listKind, apiVersion: apiVersionOf(type), metadata: { resourceVersion: String(this.store.rv) }, items });
      }
    }
    throw methodNotAllowed();
  }

  private warn(res: http.ServerResponse, warnings: string[]): void {
    if (warnings.length) res.setHeader("Warning", warnings.map((w) => `299 - ${JSON.stringify(w)}`));
  }

  /** An object as the client sees it: a copy, with the apiVersion it asked for; list items of built-in types carry no kind. */
  private out(type: ResourceType, o: Obj, item = false): Obj {
    const { apiVersion: _a, kind: _k, ...rest } = clone(o);
    if (item && !type.crd) return rest;
    return { apiVersion: apiVersionOf(type), kind: type.kind, ...rest };
  }

  private keyOf(type: ResourceType, ns: string | undefined, name: string): string {
    return type.namespaced ? `${ns ?? ""}/${name}` : name;
  }

  private mustGet(type: ResourceType, ns: string | undefined, name: string): Obj {
    const o = this.store.get(bucketOf(type), this.keyOf(type, ns, name));
    if (!o) throw notFound(type.group, type.resource, name);
    return o;
  }

  private select(type: ResourceType, ns: string | undefined, labels: LabelSelector, fields: FieldSelector, atRv?: number): [string, Obj][] {
    const entries = this.store.entries(bucketOf(type), type.namespaced && ns !== undefined ? `${ns}/` : "", atRv);
    if (entries === null) throw continueExpired();
    return entries.filter(([, o]) => matchesLabels(labels, meta(o).labels as Record<string, string>) && matchesFields(fields, o));
  }

  private list(type: ResourceType, ns: string | undefined, labels: LabelSelector, fields: FieldSelector, q: URLSearchParams): Obj {
    const limit = Number(q.get("limit") ?? "0");
    if (!Number.isInteger(limit) || limit < 0) throw badRequest(`limit: Invalid value: ${JSON.stringify(q.get("limit"))}`);
    let rv = this.store.rv;
    let after: string | undefined;
    const cont = q.get("continue");
    if (cont) {
      const t = decodeContinue(cont);
      if (t.rv < this.store.floorRv && t.rv < this.store.rv) throw continueExpired();
      rv = t.rv;
      after = t.start;
    } else {
      const want = q.get("resourceVersion");
      if (q.get("resourceVersionMatch") === "Exact" && want) {
        const n = parseRv(want);
        if (n > this.store.rv) throw tooLarge(n, this.store.rv);
        if (n < this.store.floorRv) throw tooOld(n, this.store.floorRv);
        rv = n;
      }
    }
    let entries = this.select(type, ns, labels, fields, rv);
    if (after !== undefined) entries = entries.filter(([k]) => k > after!);
    const listMeta: Obj = { resourceVersion: String(rv) };
    if (limit > 0 && entries.length > limit) {
      const page = entries.slice(0, limit);
      listMeta.continue = encodeContinue(rv, page[page.length - 1]![0]);
      if (labels.length === 0 && fields.length === 0) listMeta.remainingItemCount = entries.length - limit;
      entries = page;
    }
    return { kind: type.listKind, apiVersion: apiVersionOf(type), metadata: listMeta, items: entries.map(([, o]) => this.out(type, o, true)) };
  }

  // ---- watch ----

  private watch(req: http.IncomingMessage, res: http.ServerResponse, type: ResourceType, ns: string | undefined, labels: LabelSelector, fields: FieldSelector, q: URLSearchParams): void {
    const rvParam = q.get("resourceVersion") ?? "";
    const from = rvParam === "" || rvParam === "0" ? undefined : parseRv(rvParam);
    const timeout = q.get("timeoutSeconds") ? Number(q.get("timeoutSeconds")) : undefined;
    const w: Watcher = { type, labels, fields, res, timers: [], unsubscribe: () => {}, closed: false, ...(ns !== undefined ? { namespace: ns } : {}) };
    res.writeHead(200, { "Content-Type": "application/json", "Transfer-Encoding": "chunked", "Cache-Control": "no-cache, private" });
    res.flushHeaders();
    this.watchers.add(w);
    res.on("close", () => this.endWatch(w));
    res.on("error", () => this.endWatch(w));
    if (from === undefined) {
      for (const [, o] of this.select(type, ns, labels, fields)) this.send(w, "ADDED", o);
    } else {
      const events = this.store.eventsAfter(from);
      if (events === null) {
        this.sendRaw(w, { type: "ERROR", object: tooOld(from, this.store.floorRv).toStatus() });
        this.endWatch(w);
        return;
      }
      for (const e of events) this.deliver(w, e);
    }
    w.unsubscribe = this.store.subscribe((e) => this.deliver(w, e));
    if (q.get("allowWatchBookmarks") === "true" || q.get("allowWatchBookmarks") === "1") {
      const t = setInterval(() => this.sendRaw(w, { type: "BOOKMARK", object: { kind: type.kind, apiVersion: apiVersionOf(type), metadata: { resourceVersion: String(this.store.rv) } } }), this.bookmarkMs);
      t.unref();
      w.timers.push(t);
    }
    if (timeout !== undefined && Number.isFinite(timeout) && timeout > 0) {
      const t = setTimeout(() => this.endWatch(w), timeout * 1000);
      t.unref();
      w.timers.push(t);
    }
  }

  /** One change as this watcher sees it: selectors are applied to the old and new state, as the watch cache does. */
  private deliver(w: Watcher, e: StoredEvent): void {
    if (w.closed || e.bucket !== bucketOf(w.type)) return;
    if (w.namespace !== undefined && !e.key.startsWith(`${w.namespace}/`)) return;
    const passes = (o: Obj | undefined): boolean => o !== undefined && matchesLabels(w.labels, meta(o).labels as Record<string, string>) && matchesFields(w.fields, o);
    const cur = e.type !== "DELETED" && passes(e.object);
    const old = passes(e.prev);
    if (cur && !old) this.send(w, "ADDED", e.object);
    else if (cur && old) this.send(w, "MODIFIED", e.object);
    else if (!cur && old) {
      // the previous content, with the resourceVersion of the change that made it disappear
      const gone = { ...e.prev!, metadata: { ...meta(e.prev!), resourceVersion: String(e.rv) } };
      this.send(w, "DELETED", gone);
    }
  }

  private send(w: Watcher, type: string, o: Obj): void {
    this.sendRaw(w, { type, object: this.out(w.type, o) });
  }

  private sendRaw(w: Watcher, event: unknown): void {
    if (!w.closed) w.res.write(JSON.stringify(event) + "\n");
  }

  private endWatch(w: Watcher): void {
    if (w.closed) return;
    w.closed = true;
    w.unsubscribe();
    for (const t of w.timers) clearTimeout(t);
    this.watchers.delete(w);
    w.res.end();
  }

  // ---- writes ----

  private create(type: ResourceType, ns: string | undefined, body: unknown, fieldValidation: string | null, warnings: string[]): Obj {
    if (!isObj(body)) throw badRequest("the body of the request must be a JSON object");
    checkTypeMeta(type, body);
    const m = { ...obj(body.metadata) };
    if (type.namespaced) {
      if (m.namespace !== undefined && m.namespace !== "" && m.namespace !== ns) throw badRequest("the namespace of the provided object does not match the namespace sent on the request");
      m.namespace = ns;
    } else delete m.namespace;
    if (!m.name && typeof m.generateName === "string" && m.generateName) {
      let suffix = "";
      for (let i = 0; i < 5; i++) suffix += GENERATE_CHARS[Math.floor(Math.random() * GENERATE_CHARS.length)];
      m.name = m.generateName + suffix;
    }
    const name = typeof m.name === "string" ? m.name : "";
    if (!name) throw invalid(type.group, type.kind, "", [{ type: "FieldValueRequired", field: "metadata.name", detail: "name or generateName is required" }]);
    const problem = nameProblem(type.nameRule, name);
    if (problem) throw invalid(type.group, type.kind, name, [{ type: "FieldValueInvalid", field: "metadata.name", value: name, detail: problem }]);
    if (type.namespaced && !this.store.get(bucketOf(BUILTIN_TYPES[0]!), ns ?? "")) throw notFound("", "namespaces", ns ?? "");
    const key = this.keyOf(type, ns, name);
    if (this.store.get(bucketOf(type), key)) throw alreadyExists(type.group, type.resource, name);
    Object.assign(m, { uid: randomUUID(), creationTimestamp: timestamp(), generation: 1 });
    delete m.resourceVersion; delete m.deletionTimestamp; delete m.deletionGracePeriodSeconds; delete m.selfLink;
    let o: Obj = { ...body, apiVersion: apiVersionOf(type), kind: type.kind, metadata: m };
    if (type.crd && type.statusSubresource) delete o.status;
    o = this.admit(type, o, undefined, fieldValidation, warnings);
    const stored = this.store.put(bucketOf(type), key, o);
    if (type.resource === "customresourcedefinitions" && type.group === "apiextensions.k8s.io") this.serveCrd(stored);
    return stored;
  }

  /** Type-specific defaulting and validation of a new state (`old` undefined on create). */
  private admit(type: ResourceType, o: Obj, old: Obj | undefined, fieldValidation: string | null, warnings: string[]): Obj {
    const name = String(meta(o).name ?? "");
    if (type.resource === "namespaces" && type.group === "") return namespaceDefaults(o);
    if (type.resource === "customresourcedefinitions" && type.group === "apiextensions.k8s.io") {
      const c = clone(o);
      const errs = validateCrd(c);
      if (errs.length) throw invalid(type.group, type.kind, name, errs);
      const group = String(obj(c.spec).group), plural = String(obj(obj(c.spec).names).plural);
      if (!old && [...this.types.values()].some((t) => t.group === group && t.resource === plural)) {
        throw invalid(type.group, type.kind, name, [{ type: "FieldValueInvalid", field: "spec.names.plural", value: plural, detail: "already served" }]);
      }
      return { ...c, status: establishedStatus(c, timestamp()) };
    }
    if (type.crd) {
      const r = applySchema(type.schema, o);
      if (r.unknown.length && fieldValidation === "Strict") {
        throw badRequest(`strict decoding error: ${r.unknown.map((u) => `unknown field "${u}"`).join(", ")}`);
      }
      if (fieldValidation === "Warn") for (const u of r.unknown) warnings.push(`unknown field "${u}"`);
      if (r.errors.length) throw invalid(type.group, type.kind, name, r.errors);
      return r.value;
    }
    return o;
  }

  /** update and patch: `next` computes the wanted state from the current one. */
  private update(type: ResourceType, ns: string | undefined, name: string, sub: string | undefined, next: (current: Obj) => unknown, fieldValidation: string | null, warnings: string[]): Obj {
    const key = this.keyOf(type, ns, name);
    const current = this.mustGet(type, ns, name);
    const body = next(clone(this.out(type, current)));
    if (!isObj(body)) throw badRequest("the body of the request must be a JSON object");
    checkTypeMeta(type, body);
    const bm = obj(body.metadata);
    if (bm.name !== undefined && bm.name !== name) throw badRequest(`the name of the object (${String(bm.name)}) does not match the name on the URL (${name})`);
    if (type.namespaced && bm.namespace !== undefined && bm.namespace !== "" && bm.namespace !== ns) throw badRequest("the namespace of the provided object does not match the namespace sent on the request");
    const cm = meta(current);
    if (bm.resourceVersion !== undefined && bm.resourceVersion !== "" && bm.resourceVersion !== cm.resourceVersion) throw conflict(type.group, type.resource, name);
    let o: Obj;
    if (sub === "status") {
      o = { ...clone(current), status: clone(body.status) };
      if (body.status === undefined) delete o.status;
    } else {
      o = { ...body, apiVersion: apiVersionOf(type), kind: type.kind };
      if (type.statusSubresource) {
        if (current.status === undefined) delete o.status; else o.status = clone(current.status);
      }
      const m: Obj = { ...bm };
      for (const k of ["uid", "creationTimestamp", "namespace", "name", "generation", "deletionTimestamp"]) {
        if (cm[k] === undefined) delete m[k]; else m[k] = cm[k];
      }
      o.metadata = m;
    }
    o = this.admit(type, o, current, fieldValidation, warnings);
    const strip = (x: Obj): string => JSON.stringify({ ...x, metadata: { ...meta(x), resourceVersion: undefined, generation: undefined } });
    if (strip(o) === strip(current)) return current; // no change: no write, no new resourceVersion
    const specOf = (x: Obj): string => { const { metadata: _m, status: _s, ...rest } = x; return JSON.stringify(rest); };
    const generation = Number(cm.generation ?? 1);
    o.metadata = { ...meta(o), generation: specOf(o) !== specOf(current) ? generation + 1 : generation };
    const stored = this.store.put(bucketOf(type), key, o);
    if (type.resource === "customresourcedefinitions" && type.group === "apiextensions.k8s.io") this.serveCrd(stored);
    return stored;
  }

  private delete(type: ResourceType, ns: string | undefined, name: string, pre: Obj): Obj {
    const current = this.mustGet(type, ns, name);
    const cm = meta(current);
    if (pre.uid !== undefined && pre.uid !== null && pre.uid !== cm.uid) {
      throw conflict(type.group, type.resource, name, `Precondition failed: UID in precondition: ${String(pre.uid)}, UID in object meta: ${String(cm.uid)}`);
    }
    if (pre.resourceVersion !== undefined && pre.resourceVersion !== null && pre.resourceVersion !== cm.resourceVersion) {
      throw conflict(type.group, type.resource, name, `Precondition failed: ResourceVersion in precondition: ${String(pre.resourceVersion)}, ResourceVersion in object meta: ${String(cm.resourceVersion)}`);
    }
    if (type.resource === "namespaces" && type.group === "") {
      // the namespace controller's work, done at once: everything in it goes first
      for (const t of this.storageTypes()) {
        if (!t.namespaced) continue;
        for (const [k] of this.store.entries(bucketOf(t), `${name}/`) ?? []) this.store.remove(bucketOf(t), k);
      }
      const gone = this.store.remove(bucketOf(type), name)!;
      return { ...gone, metadata: { ...meta(gone), deletionTimestamp: timestamp() }, spec: { finalizers: ["kubernetes"] }, status: { phase: "Terminating" } };
    }
    const gone = this.store.remove(bucketOf(type), this.keyOf(type, ns, name))!;
    if (type.resource === "customresourcedefinitions" && type.group === "apiextensions.k8s.io") this.unserveCrd(gone);
    return gone;
  }

  /** One type per stored resource (several versions share a bucket). */
  private storageTypes(): ResourceType[] {
    const seen = new Map<string, ResourceType>();
    for (const t of this.types.values()) if (!seen.has(bucketOf(t))) seen.set(bucketOf(t), t);
    return [...seen.values()];
  }

  private serveCrd(crd: Obj): void {
    const name = String(meta(crd).name);
    for (const [k, t] of [...this.types]) if (t.crd === name) this.types.delete(k);
    for (const t of typesOfCrd(crd)) this.types.set(`${t.group}/${t.version}/${t.resource}`, t);
  }

  private unserveCrd(crd: Obj): void {
    const name = String(meta(crd).name);
    const types = [...this.types].filter(([, t]) => t.crd === name);
    if (types[0]) {
      const t = types[0][1];
      for (const [k] of this.store.entries(bucketOf(t)) ?? []) this.store.remove(bucketOf(t), k);
    }
    for (const w of [...this.watchers]) if (w.type.crd === name) this.endWatch(w);
    for (const [k] of types) this.types.delete(k);
  }
}

const VERSION = {
  major: "1", minor: "31", gitVersion: "v1.31.0-trellis-fake", gitCommit: "0000000000000000000000000000000000000000",
  gitTreeState: "clean", buildDate: "2024-08-13T00:00:00Z", goVersion: "go1.22.5", compiler: "gc", platform: "linux/amd64",
};

const timestamp = (): string => new Date().toISOString().replace(/\.\d+Z$/, "Z");

function apiGroup(name: string, versions: string[]): Obj {
  const vs = versions.map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
  return { name, versions: vs, preferredVersion: vs[0] };
}

function namespaceDefaults(o: Obj): Obj {
  const m = meta(o);
  return {
    ...o,
    metadata: { ...m, labels: { ...obj(m.labels), "kubernetes.io/metadata.name": String(m.name) } },
    spec: { finalizers: ["kubernetes"], ...obj(o.spec) },
    status: { phase: "Active", ...obj(o.status) },
  };
}

function checkTypeMeta(type: ResourceType, body: Obj): void {
  if (body.apiVersion !== undefined && body.apiVersion !== apiVersionOf(type)) {
    throw badRequest(`the API version in the data (${String(body.apiVersion)}) does not match the expected API version (${apiVersionOf(type)})`);
  }
  if (body.kind !== undefined && body.kind !== type.kind) throw badRequest(`the kind in the data (${String(body.kind)}) does not match the expected kind (${type.kind})`);
}

function parseRv(s: string): number {
  if (!/^[0-9]+$/.test(s)) throw badRequest(`resourceVersion: Invalid value: ${JSON.stringify(s)}: must be a non-negative integer`);
  return Number(s);
}

function tooLarge(n: number, current: number): StatusError {
  return new StatusError(504, "Timeout", `Too large resource version: ${n}, current: ${current}`, { causes: [{ reason: "ResourceVersionTooLarge", message: "Too large resource version" }], retryAfterSeconds: 1 });
}

/** Continue tokens carry the snapshot's resourceVersion and the last key returned (as the real ones do). */
function encodeContinue(rv: number, lastKey: string): string {
  return Buffer.from(JSON.stringify({ v: "meta.k8s.io/v1", rv, start: lastKey })).toString("base64url");
}
function decodeContinue(token: string): { rv: number; start: string } {
  try {
    const t = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as { v?: unknown; rv?: unknown; start?: unknown };
    if (t.v === "meta.k8s.io/v1" && typeof t.rv === "number" && typeof t.start === "string") return { rv: t.rv, start: t.start };
  } catch { /* fall through */ }
  throw badRequest(`continue key is not valid: ${token}`);
}

/** `/api/v1/namespaces/ns/pods/name/status` → its parts (k8s.io/apiserver's RequestInfoFactory). */
export function parseResourcePath(path: string): RequestInfo | undefined {
  let segs: string[];
  try {
    segs = path.split("/").filter((s) => s !== "").map((s) => decodeURIComponent(s));
  } catch {
    return undefined; // a malformed %-escape names nothing
  }
  let group: string, version: string, rest: string[];
  if (segs[0] === "api" && segs.length >= 3) { group = ""; version = segs[1]!; rest = segs.slice(2); }
  else if (segs[0] === "apis" && segs.length >= 4) { group = segs[1]!; version = segs[2]!; rest = segs.slice(3); }
  else return undefined;
  let namespace: string | undefined;
  if (rest[0] === "namespaces" && rest.length > 1) {
    namespace = rest[1]!;
    if (rest.length > 2 && !NAMESPACE_SUBRESOURCES.has(rest[2]!)) rest = rest.slice(2);
  }
  if (rest.length === 0 || rest.length > 3) return undefined;
  const info: RequestInfo = { group, version, resource: rest[0]! };
  if (namespace !== undefined) info.namespace = namespace;
  if (rest[1] !== undefined) info.name = rest[1];
  if (rest[2] !== undefined) info.subresource = rest[2];
  return info;
}

/** The RBAC verb of a request, or undefined if the method does not apply to that URL (405). */
export function verbOf(method: string, info: RequestInfo, q: URLSearchParams): string | undefined {
  const named = info.name !== undefined;
  const watch = q.get("watch") === "true" || q.get("watch") === "1";
  switch (method) {
    case "GET": return named ? (info.subresource !== undefined || !watch ? "get" : "watch") : watch ? "watch" : "list";
    case "POST": return named ? undefined : "create";
    case "PUT": return named ? "update" : undefined;
    case "PATCH": return named ? "patch" : undefined;
    case "DELETE": return named ? (info.subresource ? undefined : "delete") : "deletecollection";
    default: return undefined;
  }
}

function applyPatch(contentType: string, current: Obj, patch: unknown): unknown {
  try {
    if (contentType === "application/json-patch+json") return applyJsonPatch(current as Json, patch);
    // merge-patch+json, and strategic-merge-patch+json served as a plain merge patch: lists are
    // replaced whole, never merged by key (that needs the Go types' patch strategies)
    if (!isObj(patch)) throw new PatchError("bad-request", "a merge patch must be a JSON object");
    return mergePatch(current as Json, patch as Json);
  } catch (e) {
    if (e instanceof PatchError) throw e.kind === "bad-request" ? badRequest(e.message) : patchFailed(e.message);
    throw e;
  }
}

