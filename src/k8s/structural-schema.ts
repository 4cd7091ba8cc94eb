// Whether a CRD's OpenAPI schema is structural, as the API server requires of every
// apiextensions.k8s.io/v1 CustomResourceDefinition (and as pruning and strict field validation
// rely on). The rules, from the Kubernetes documentation ("Specifying a structural schema") and
// the apiextensions validation:
//
//   1. every node has a non-empty `type` (object, array, string, integer, number, boolean), except
//      a node with `x-kubernetes-int-or-string: true` (no type) or with
//      `x-kubernetes-preserve-unknown-fields: true` (type may be left out);
//   2. an array has `items`;
//   3. `properties` and `additionalProperties` are not both set, and `additionalProperties` is
//      never `false` (pruning already drops unknown fields);
//   4. inside allOf / anyOf / oneOf / not: no `type`, `description`, `default`,
//      `additionalProperties`, `nullable`; every field or item named there is also specified
//      outside (the only exception: int-or-string's anyOf [{type: integer}, {type: string}]);
//   5. at the root, `metadata` may only restrict `name` and `generateName`;
//   6. `x-kubernetes-int-or-string` has no `type`; `x-kubernetes-embedded-resource` is an object.
//
// Also reported, though the API server would only warn or fail later: an enum value or default of
// the wrong type for its node. Pure; returns every violation with its path (empty = structural).
import type { Schema } from "./schema.js";

const TYPES = new Set(["object", "array", "string", "integer", "number", "boolean"]);
const FORBIDDEN_IN_JUNCTORS = ["type", "description", "default", "additionalProperties", "nullable"] as const;

/** Every way `schema` is not structural, as `path: why` (the root's path is `openAPIV3Schema`). */
export function structuralSchemaErrors(schema: Schema, path = "openAPIV3Schema"): string[] {
  const errors: string[] = [];
  if (schema.type !== "object") errors.push(`${path}.type: the root must be of type object`);
  walk(schema, path, errors, false);
  const meta = schema.properties?.metadata;
  if (meta) checkMetadata(meta, `${path}.properties.metadata`, errors);
  return errors;
}

function walk(s: Schema, path: string, errors: string[], inJunctor: boolean): void {
  const intOrString = s["x-kubernetes-int-or-string"] === true;
  const preserve = s["x-kubernetes-preserve-unknown-fields"] === true;
  if (inJunctor) {
    for (const k of FORBIDDEN_IN_JUNCTORS) if (s[k] !== undefined) errors.push(`${path}.${k}: must not be set inside allOf/anyOf/oneOf/not`);
  } else if (intOrString) {
    if (s.type !== undefined) errors.push(`${path}.type: must be empty with x-kubernetes-int-or-string`);
  } else if (s.type === undefined) {
    if (!preserve) errors.push(`${path}.type: must not be empty (structural schemas type every node)`);
  } else if (!TYPES.has(s.type)) {
    errors.push(`${path}.type: ${JSON.stringify(s.type)} is not one of ${[...TYPES].join(", ")}`);
  }
  if (s.type === "array" && !inJunctor && s.items === undefined) errors.push(`${path}.items: an array must specify its items`);
  if (s.properties !== undefined && s.additionalProperties !== undefined) {
    errors.push(`${path}: properties and additionalProperties are mutually exclusive`);
  }
  if (s.additionalProperties === false) errors.push(`${path}.additionalProperties: must not be false (unknown fields are pruned)`);
  if (s["x-kubernetes-embedded-resource"] === true && s.type !== "object") errors.push(`${path}: x-kubernetes-embedded-resource needs type object`);
  if (s.type !== undefined && TYPES.has(s.type) && !inJunctor) {
    s.enum?.forEach((v, i) => matchesType(v, s) || errors.push(`${path}.enum[${i}]: ${JSON.stringify(v)} is not of type ${s.type}`));
    if (s.default !== undefined && !matchesType(s.default, s)) errors.push(`${path}.default: ${JSON.stringify(s.default)} is not of type ${s.type}`);
    if (s.default !== undefined && s.enum && !s.enum.includes(s.default)) errors.push(`${path}.default: ${JSON.stringify(s.default)} is not in the enum`);
  }

  for (const [k, sub] of Object.entries(s.properties ?? {})) walk(sub, `${path}.properties.${k}`, errors, inJunctor);
  if (typeof s.additionalProperties === "object") walk(s.additionalProperties, `${path}.additionalProperties`, errors, inJunctor);
  if (s.items) walk(s.items, `${path}.items`, errors, inJunctor);

  const junctors: Array<[string, Schema[]]> = [
    ["allOf", s.allOf ?? []], ["anyOf", s.anyOf ?? []], ["oneOf", s.oneOf ?? []], ["not", s.not ? [s.not] : []],
  ];
  for (const [name, list] of junctors) {
    list.forEach((j, i) => {
      const jPath = `${path}.${name}${name === "not" ? "" : `[${i}]`}`;
      if (intOrString && name === "anyOf" && isIntOrStringBranch(j)) return;
      walk(j, jPath, errors, true);
      for (const k of Object.keys(j.properties ?? {})) {
        if (!s.properties || !Object.hasOwn(s.properties, k)) errors.push(`${jPath}.properties.${k}: must also be specified outside ${name}`);
      }
      if (j.items && !s.items) errors.push(`${jPath}.items: must also be specified outside ${name}`);
    });
  }
}

/** int-or-string may spell itself anyOf [{type: integer}, {type: string}]: the one typed junctor allowed. */
const isIntOrStringBranch = (j: Schema): boolean =>
  (j.type === "integer" || j.type === "string") && Object.keys(j).length === 1;

function checkMetadata(meta: Schema, path: string, errors: string[]): void {
  for (const k of Object.keys(meta)) {
    if (k !== "type" && k !== "properties") errors.push(`${path}.${k}: metadata may only restrict name and generateName`);
  }
  for (const [k, sub] of Object.entries(meta.properties ?? {})) {
    if (k !== "name" && k !== "generateName") errors.push(`${path}.properties.${k}: metadata may only restrict name and generateName`);
    else if (sub.type !== "string") errors.push(`${path}.properties.${k}.type: must be string`);
  }
}

function matchesType(v: unknown, s: Schema): boolean {
  if (v === null) return s.nullable === true;
  switch (s.type) {
    case "string": return typeof v === "string";
    case "integer": return typeof v === "number" && Number.isInteger(v);
    case "number": return typeof v === "number";
    case "boolean": return typeof v === "boolean";
    case "array": return Array.isArray(v);
    case "object": return typeof v === "object" && !Array.isArray(v);
    default: return true;
  }
}
