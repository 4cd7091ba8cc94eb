// Structural-schema handling of custom resources, in the order the real server applies it
// (apiextensions-apiserver): prune unknown fields, apply defaults, then validate. Pure.

import type { FieldError } from "./apiserver-errors.js";

/** The subset of an openAPIV3Schema (JSONSchemaProps) this server understands. */
export interface Schema {
  type?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  enum?: unknown[];
  items?: Schema;
  additionalProperties?: Schema | boolean;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: boolean;
  exclusiveMaximum?: boolean;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  pattern?: string;
  nullable?: boolean;
  default?: unknown;
  "x-kubernetes-preserve-unknown-fields"?: boolean;
  "x-kubernetes-int-or-string"?: boolean;
}

export interface SchemaResult {
  /** The value with unknown fields pruned and defaults applied. */
  value: Record<string, unknown>;
  errors: FieldError[];
  /** Paths of pruned fields (`spec.ingres`), for fieldValidation=Strict/Warn. */
  unknown: string[];
}

type Obj = Record<string, unknown>;
const isObject = (v: unknown): v is Obj => v !== null && typeof v === "object" && !Array.isArray(v);

function jsonType(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  return typeof v;
}

function typeMatches(type: string, v: unknown): boolean {
  switch (type) {
    case "object": return isObject(v);
    case "array": return Array.isArray(v);
    case "string": return typeof v === "string";
    case "boolean": return typeof v === "boolean";
    case "integer": return typeof v === "number" && Number.isInteger(v);
    case "number": return typeof v === "number";
    default: return true;
  }
}

const join = (path: string, key: string): string => (path ? `${path}.${key}` : key);

class Walker {
  errors: FieldError[] = [];
  unknown: string[] = [];

  private invalid(path: string, value: unknown, detail: string): void {
    this.errors.push({ type: "FieldValueInvalid", field: path, value, detail });
  }

  private checkScalar(s: Schema, v: unknown, path: string): void {
    if (s.enum && !s.enum.some((e) => JSON.stringify(e) === JSON.stringify(v))) {
      this.errors.push({ type: "FieldValueNotSupported", field: path, value: v, detail: `supported values: ${s.enum.map((e) => JSON.stringify(e)).join(", ")}` });
    }
    if (typeof v === "number") {
      if (s.minimum !== undefined && (s.exclusiveMinimum ? v <= s.minimum : v < s.minimum)) this.invalid(path, v, `${path} in body should be greater than ${s.exclusiveMinimum ? "" : "or equal to "}${s.minimum}`);
      if (s.maximum !== undefined && (s.exclusiveMaximum ? v >= s.maximum : v > s.maximum)) this.invalid(path, v, `${path} in body should be less than ${s.exclusiveMaximum ? "" : "or equal to "}${s.maximum}`);
    }
    if (typeof v === "string") {
      const len = [...v].length;
      if (s.minLength !== undefined && len < s.minLength) this.invalid(path, v, `${path} in body should be at least ${s.minLength} chars long`);
      if (s.maxLength !== undefined && len > s.maxLength) this.errors.push({ type: "FieldValueTooLong", field: path, value: v, detail: `may not be more than ${s.maxLength} bytes` });
      if (s.pattern !== undefined) {
        let re: RegExp | undefined;
        try { re = new RegExp(s.pattern, "u"); } catch { re = undefined; }
        if (re && !re.test(v)) this.invalid(path, v, `${path} in body should match '${s.pattern}'`);
      }
    }
    if (Array.isArray(v)) {
      if (s.minItems !== undefined && v.length < s.minItems) this.invalid(path, v, `${path} in body should have at least ${s.minItems} items`);
      if (s.maxItems !== undefined && v.length > s.maxItems) this.errors.push({ type: "FieldValueTooLong", field: path, value: v, detail: `must have at most ${s.maxItems} items` });
    }
  }

  walk(s: Schema, v: unknown, path: string): unknown {
    if (v === null) {
      if (!s.nullable && s.type) this.errors.push({ type: "FieldValueTypeInvalid", field: path, value: v, detail: `${path} in body must be of type ${s.type}: "null"` });
      return v;
    }
    if (s["x-kubernetes-int-or-string"]) {
      if (!(typeof v === "string" || (typeof v === "number" && Number.isInteger(v)))) {
        this.errors.push({ type: "FieldValueTypeInvalid", field: path, value: v, detail: `${path} in body must be of type integer,string: "${jsonType(v)}"` });
        return v;
      }
      this.checkScalar(s, v, path);
      return v;
    }
    if (s.type && !typeMatches(s.type, v)) {
      this.errors.push({ type: "FieldValueTypeInvalid", field: path, value: v, detail: `${path} in body must be of type ${s.type}: "${jsonType(v)}"` });
      return v;
    }
    this.checkScalar(s, v, path);
    if (isObject(v)) return this.walkObject(s, v, path);
    if (Array.isArray(v)) return s.items ? v.map((x, i) => this.walk(s.items!, x, `${path}[${i}]`)) : v;
    return v;
  }

  walkObject(s: Schema, v: Obj, path: string): Obj {
    const preserve = s["x-kubernetes-preserve-unknown-fields"] === true || s.additionalProperties === true;
    const props = s.properties ?? {};
    const extra = isObject(s.additionalProperties) ? (s.additionalProperties as Schema) : undefined;
    const out: Obj = {};
    for (const [k, x] of Object.entries(v)) {
      const p = Object.prototype.hasOwnProperty.call(props, k) ? props[k] : extra;
      if (p) out[k] = this.walk(p, x, join(path, k));
      else if (preserve) out[k] = x;
      else this.unknown.push(join(path, k));
    }
    for (const [k, p] of Object.entries(props)) {
      if (!(k in out) && p.default !== undefined) out[k] = structuredClone(p.default);
    }
    for (const r of s.required ?? []) {
      if (!(r in out)) this.errors.push({ type: "FieldValueRequired", field: join(path, r) });
    }
    return out;
  }
}

/** Prunes, defaults and validates a custom resource; `apiVersion`, `kind` and `metadata` are the server's business. */
export function applySchema(schema: Schema | undefined, obj: Obj): SchemaResult {
  const { apiVersion, kind, metadata, ...rest } = obj;
  const head: Obj = {};
  if (apiVersion !== undefined) head.apiVersion = apiVersion;
  if (kind !== undefined) head.kind = kind;
  if (metadata !== undefined) head.metadata = metadata;
  if (!schema) return { value: { ...head, ...rest }, errors: [], unknown: [] };
  const props = { ...(schema.properties ?? {}) };
  delete props.apiVersion; delete props.kind; delete props.metadata;
  const root: Schema = { ...schema, properties: props, required: (schema.required ?? []).filter((r) => !["apiVersion", "kind", "metadata"].includes(r)) };
  const w = new Walker();
  const body = w.walkObject(root, rest, "");
  return { value: { ...head, ...body }, errors: w.errors, unknown: w.unknown };
}
