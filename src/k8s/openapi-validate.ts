// Validates a value against the subset of OpenAPI v3 that Trellis' CRDs use (schema.ts), the way
// the API server treats a custom object under `kubectl apply` (strict field validation, the
// default since Kubernetes 1.27): a field the schema does not list is an error, not silently
// pruned. Used by the tests to show that what users write is accepted and that a misspelled field
// is refused. Pure.
//
// Covered: type, properties, additionalProperties (a schema), required, items, enum, minimum,
// maximum, minLength, maxLength, minItems, maxItems, pattern, nullable, x-kubernetes-int-or-string,
// x-kubernetes-preserve-unknown-fields; `format` is accepted and not checked (Trellis' schemas use
// only int64, which says how wide an integer is). Not covered (Trellis' schemas do not use them):
// allOf, anyOf, oneOf, not, multipleOf, CEL rules — a schema using them fails here loudly.
import type { Schema } from "./schema.js";

const SUPPORTED = new Set<string>([
  "type", "description", "properties", "additionalProperties", "required", "items", "enum", "default", "minimum", "maximum",
  "minLength", "maxLength", "minItems", "maxItems", "pattern", "format", "nullable", "x-kubernetes-int-or-string",
  "x-kubernetes-preserve-unknown-fields", "x-kubernetes-list-type", "x-kubernetes-map-type",
]);

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const join = (path: string, k: string): string => (path ? `${path}.${k}` : k);

/** Every way `value` breaks `schema`, as kubectl would print them (`spec.ingres: unknown field`). Empty = valid. */
export function schemaErrors(value: unknown, schema: Schema, path = ""): string[] {
  const out: string[] = [];
  check(value, schema, path, out);
  return out;
}

/**
 * A whole custom object, as the API server treats it: `metadata` is ObjectMeta (checked by the
 * server's own validation, not the schema), of which the schema may restrict only name and
 * generateName; everything else follows the schema.
 */
export function customObjectErrors(obj: Record<string, unknown>, schema: Schema): string[] {
  const { metadata, ...rest } = obj;
  const out = schemaErrors(rest, schema);
  const restrict = schema.properties?.metadata?.properties ?? {};
  if (typeof metadata !== "object" || metadata === null || Array.isArray(metadata)) return [...out, "metadata: must be an object"];
  for (const [k, s] of Object.entries(restrict)) {
    const v = (metadata as Record<string, unknown>)[k];
    if (v !== undefined) check(v, s, `metadata.${k}`, out);
  }
  return out;
}

function check(v: unknown, s: Schema, path: string, out: string[]): void {
  for (const k of Object.keys(s)) if (!SUPPORTED.has(k)) throw new Error(`${path || "<root>"}: schema keyword ${k} is not supported by this validator`);
  const at = path || "<root>";
  if (v === null) {
    if (!s.nullable) out.push(`${at}: must not be null`);
    return;
  }
  if (s["x-kubernetes-int-or-string"]) {
    if ((typeof v === "number" && Number.isInteger(v)) || typeof v === "string") checkValue(v, s, at, out);
    else out.push(`${at}: ${JSON.stringify(v)}: must be an integer or a string`);
    return;
  }
  switch (s.type) {
    case "object": {
      if (!isObj(v)) return void out.push(`${at}: ${JSON.stringify(v)}: must be an object`);
      for (const r of s.required ?? []) if (v[r] === undefined) out.push(`${join(path, r)}: required`);
      for (const [k, x] of Object.entries(v)) {
        const sub = s.properties && Object.hasOwn(s.properties, k) ? s.properties[k] : typeof s.additionalProperties === "object" ? s.additionalProperties : undefined;
        if (sub) check(x, sub, join(path, k), out);
        else if (!s["x-kubernetes-preserve-unknown-fields"] && s.additionalProperties !== true) out.push(`${join(path, k)}: unknown field`);
      }
      return;
    }
    case "array": {
      if (!Array.isArray(v)) return void out.push(`${at}: ${JSON.stringify(v)}: must be an array`);
      if (s.minItems !== undefined && v.length < s.minItems) out.push(`${at}: must have at least ${s.minItems} item(s)`);
      if (s.maxItems !== undefined && v.length > s.maxItems) out.push(`${at}: must have at most ${s.maxItems} item(s)`);
      if (s.items) v.forEach((x, i) => check(x, s.items!, `${path}[${i}]`, out));
      return;
    }
    case "string":
      if (typeof v !== "string") return void out.push(`${at}: ${JSON.stringify(v)}: must be a string`);
      return checkValue(v, s, at, out);
    case "integer":
      if (typeof v !== "number" || !Number.isInteger(v)) return void out.push(`${at}: ${JSON.stringify(v)}: must be an integer`);
      return checkValue(v, s, at, out);
    case "number":
      if (typeof v !== "number" || !Number.isFinite(v)) return void out.push(`${at}: ${JSON.stringify(v)}: must be a number`);
      return checkValue(v, s, at, out);
    case "boolean":
      if (typeof v !== "boolean") out.push(`${at}: ${JSON.stringify(v)}: must be a boolean`);
      return;
    case undefined:
      if (s["x-kubernetes-preserve-unknown-fields"]) return;
      throw new Error(`${at}: schema node without a type`);
  }
}

function checkValue(v: string | number, s: Schema, at: string, out: string[]): void {
  if (s.enum && !s.enum.includes(v)) out.push(`${at}: ${JSON.stringify(v)}: must be one of ${s.enum.map((e) => JSON.stringify(e)).join(", ")}`);
  if (typeof v === "number") {
    if (s.minimum !== undefined && v < s.minimum) out.push(`${at}: ${v}: must be at least ${s.minimum}`);
    if (s.maximum !== undefined && v > s.maximum) out.push(`${at}: ${v}: must be at most ${s.maximum}`);
    return;
  }
  if (s.minLength !== undefined && v.length < s.minLength) out.push(`${at}: ${JSON.stringify(v)}: must be at least ${s.minLength} characters`);
  if (s.maxLength !== undefined && v.length > s.maxLength) out.push(`${at}: ${JSON.stringify(v)}: must be at most ${s.maxLength} characters`);
  if (s.pattern !== undefined && !new RegExp(s.pattern).test(v)) out.push(`${at}: ${JSON.stringify(v)}: must match ${s.pattern}`);
}
