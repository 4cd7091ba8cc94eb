// The three patch formats the fake API server accepts, as pure functions over JSON values:
// JSON merge patch (RFC 7386) and JSON patch (RFC 6902, JSON pointers per RFC 6901).
// Strategic merge patch is served as a merge patch: lists are replaced, never merged by key
// (the real server merges some lists, e.g. containers by name, using Go struct tags we do not have).

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

export class PatchError extends Error {
  constructor(readonly kind: "bad-request" | "failed", message: string) {
    super(message);
    this.name = "PatchError";
  }
}

const isObject = (v: unknown): v is { [k: string]: Json } => v !== null && typeof v === "object" && !Array.isArray(v);

/** RFC 7386: objects merge recursively, `null` removes, anything else replaces. */
export function mergePatch(target: Json | undefined, patch: Json): Json {
  if (!isObject(patch)) return structuredClone(patch);
  const out: { [k: string]: Json } = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else setKey(out, k, mergePatch(out[k], v));
  }
  return out;
}

/** An own property even for "__proto__" (a key in a document, never the prototype). */
function setKey(o: { [k: string]: Json }, k: string, v: Json): void {
  Object.defineProperty(o, k, { value: v, writable: true, enumerable: true, configurable: true });
}

export interface JsonPatchOp { op: string; path: string; value?: Json; from?: string }

/** `/metadata/annotations/trellis.dev~1lease` → ["metadata", "annotations", "trellis.dev/lease"]. */
export function parsePointer(p: string): string[] {
  if (p === "") return [];
  if (!p.startsWith("/")) throw new PatchError("bad-request", `invalid JSON pointer "${p}": must start with "/"`);
  return p.slice(1).split("/").map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
}

function deepEqual(a: Json | undefined, b: Json | undefined): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a), kb = Object.keys(b);
    return ka.length === kb.length && ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && deepEqual(a[k], b[k]));
  }
  return false;
}

function arrayIndex(tok: string, len: number, forAdd: boolean, path: string): number {
  if (forAdd && tok === "-") return len;
  if (!/^(0|[1-9][0-9]*)$/.test(tok)) throw new PatchError("failed", `invalid array index "${tok}" in path "${path}"`);
  const i = Number(tok);
  if (i > len || (!forAdd && i === len)) throw new PatchError("failed", `array index ${i} out of bounds in path "${path}"`);
  return i;
}

/** The container of a pointer's last token, and that token. */
function parentOf(doc: Json, path: string): { parent: Json; key: string } {
  const toks = parsePointer(path);
  if (toks.length === 0) throw new PatchError("failed", `path "${path}" names the whole document`);
  let cur: Json = doc;
  for (const t of toks.slice(0, -1)) {
    if (Array.isArray(cur)) cur = cur[arrayIndex(t, cur.length, false, path)]!;
    else if (isObject(cur) && Object.prototype.hasOwnProperty.call(cur, t)) cur = cur[t]!;
    else throw new PatchError("failed", `doc is missing path: "${path}"`);
  }
  return { parent: cur, key: toks[toks.length - 1]! };
}

function getAt(doc: Json, path: string): Json {
  if (path === "") return doc;
  const { parent, key } = parentOf(doc, path);
  if (Array.isArray(parent)) return parent[arrayIndex(key, parent.length, false, path)]!;
  if (isObject(parent) && Object.prototype.hasOwnProperty.call(parent, key)) return parent[key]!;
  throw new PatchError("failed", `doc is missing path: "${path}"`);
}

function removeAt(doc: Json, path: string): Json {
  const { parent, key } = parentOf(doc, path);
  if (Array.isArray(parent)) return parent.splice(arrayIndex(key, parent.length, false, path), 1)[0]!;
  if (isObject(parent) && Object.prototype.hasOwnProperty.call(parent, key)) {
    const v = parent[key]!;
    delete parent[key];
    return v;
  }
  throw new PatchError("failed", `unable to remove nonexistent key: ${key}: missing value`);
}

function addAt(doc: Json, path: string, value: Json): Json {
  if (path === "") return value;
  const { parent, key } = parentOf(doc, path);
  if (Array.isArray(parent)) parent.splice(arrayIndex(key, parent.length, true, path), 0, value);
  else if (isObject(parent)) setKey(parent, key, value);
  else throw new PatchError("failed", `doc is missing path: "${path}"`);
  return doc;
}

function replaceAt(doc: Json, path: string, value: Json): Json {
  if (path === "") return value;
  const { parent, key } = parentOf(doc, path);
  if (Array.isArray(parent)) parent[arrayIndex(key, parent.length, false, path)] = value;
  else if (isObject(parent) && Object.prototype.hasOwnProperty.call(parent, key)) parent[key] = value;
  else throw new PatchError("failed", `replace operation does not apply: doc is missing key: ${path}: missing value`);
  return doc;
}

/** RFC 6902, applied to a copy; throws PatchError("bad-request") for a malformed patch, ("failed") when it does not apply. */
export function applyJsonPatch(doc: Json, ops: unknown): Json {
  if (!Array.isArray(ops)) throw new PatchError("bad-request", "json: cannot unmarshal object into Go value of type jsonpatch.Patch");
  let out = structuredClone(doc);
  for (const raw of ops) {
    if (!isObject(raw) || typeof raw.op !== "string" || typeof raw.path !== "string") throw new PatchError("bad-request", `invalid JSON patch operation: ${JSON.stringify(raw)}`);
    const op = raw as unknown as JsonPatchOp;
    const needValue = (): Json => {
      if (!Object.prototype.hasOwnProperty.call(raw, "value")) throw new PatchError("bad-request", `${op.op} operation: missing value`);
      return structuredClone(raw.value!);
    };
    const from = (): string => {
      if (typeof op.from !== "string") throw new PatchError("bad-request", `${op.op} operation: missing from`);
      return op.from;
    };
    switch (op.op) {
      case "add": out = addAt(out, op.path, needValue()); break;
      case "remove": removeAt(out, op.path); break;
      case "replace": out = replaceAt(out, op.path, needValue()); break;
      case "move": {
        const f = from();
        if (op.path.startsWith(f + "/")) throw new PatchError("failed", `cannot move "${f}" into its own child "${op.path}"`);
        const v = removeAt(out, f);
        out = addAt(out, op.path, v);
        break;
      }
      case "copy": out = addAt(out, op.path, structuredClone(getAt(out, from()))); break;
      case "test": {
        const want = needValue();
        let got: Json | undefined;
        try { got = getAt(out, op.path); } catch { got = undefined; }
        if (!deepEqual(got, want)) throw new PatchError("failed", `testing value ${op.path} failed: test failed`);
        break;
      }
      default: throw new PatchError("bad-request", `Unexpected kind: ${op.op}`);
    }
  }
  return out;
}
