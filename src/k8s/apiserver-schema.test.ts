import assert from "node:assert/strict";
import { test } from "node:test";
import { applySchema, type Schema } from "./apiserver-schema.js";

const schema: Schema = {
  type: "object",
  properties: {
    spec: {
      type: "object",
      required: ["order"],
      properties: {
        order: { type: "integer", minimum: 0, maximum: 1000 },
        name: { type: "string", minLength: 1, maxLength: 5, pattern: "^[a-z]+$" },
        action: { type: "string", enum: ["Allow", "Deny"], default: "Allow" },
        port: { "x-kubernetes-int-or-string": true },
        tags: { type: "array", items: { type: "string" }, maxItems: 2 },
        labels: { type: "object", additionalProperties: { type: "string" } },
        free: { type: "object", "x-kubernetes-preserve-unknown-fields": true, properties: { n: { type: "number" } } },
        opt: { type: "string", nullable: true },
      },
    },
  },
};
const cr = (spec: unknown): Record<string, unknown> => ({ apiVersion: "x.dev/v1", kind: "X", metadata: { name: "a", junk: 1 }, spec });

test("schema: prunes unknown fields, keeps preserved ones, applies defaults; metadata is not its business", () => {
  const r = applySchema(schema, { ...cr({ order: 1, nope: 1, labels: { a: "b" }, free: { n: 1, any: { x: 1 } }, tags: ["a"] }), top: 1 });
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.unknown.sort(), ["spec.nope", "top"]);
  assert.deepEqual(r.value, { apiVersion: "x.dev/v1", kind: "X", metadata: { name: "a", junk: 1 }, spec: { order: 1, labels: { a: "b" }, free: { n: 1, any: { x: 1 } }, tags: ["a"], action: "Allow" } });
});

test("schema: errors worded as the real server's, one cause per field", () => {
  const errs = (spec: unknown): string[] => applySchema(schema, cr(spec)).errors.map((e) => `${e.type} ${e.field} ${e.detail ?? ""}`.trim());
  assert.deepEqual(errs({ order: "a" }), ['FieldValueTypeInvalid spec.order spec.order in body must be of type integer: "string"']);
  assert.deepEqual(errs({ order: 1.5 }), ['FieldValueTypeInvalid spec.order spec.order in body must be of type integer: "number"']);
  assert.deepEqual(errs({}), ["FieldValueRequired spec.order"]);
  assert.deepEqual(errs({ order: -1 }), ["FieldValueInvalid spec.order spec.order in body should be greater than or equal to 0"]);
  assert.deepEqual(errs({ order: 1001 }), ["FieldValueInvalid spec.order spec.order in body should be less than or equal to 1000"]);
  assert.deepEqual(errs({ order: 1, action: "Maybe" }), ['FieldValueNotSupported spec.action supported values: "Allow", "Deny"']);
  assert.deepEqual(errs({ order: 1, name: "" }), ["FieldValueInvalid spec.name spec.name in body should be at least 1 chars long", "FieldValueInvalid spec.name spec.name in body should match '^[a-z]+$'"]);
  assert.deepEqual(errs({ order: 1, name: "abcdef" }), ["FieldValueTooLong spec.name may not be more than 5 bytes"]);
  assert.deepEqual(errs({ order: 1, name: "A" }), ["FieldValueInvalid spec.name spec.name in body should match '^[a-z]+$'"]);
  assert.deepEqual(errs({ order: 1, port: 80 }), []);
  assert.deepEqual(errs({ order: 1, port: "http" }), []);
  assert.equal(errs({ order: 1, port: true }).length, 1);
  assert.deepEqual(errs({ order: 1, tags: ["a", 1] }), ['FieldValueTypeInvalid spec.tags[1] spec.tags[1] in body must be of type string: "integer"']);
  assert.equal(errs({ order: 1, tags: ["a", "b", "c"] }).length, 1);
  assert.deepEqual(errs({ order: 1, labels: { a: 1 } }), ['FieldValueTypeInvalid spec.labels.a spec.labels.a in body must be of type string: "integer"']);
  assert.deepEqual(errs({ order: 1, opt: null }), []);
  assert.equal(errs({ order: null }).length, 1);
});

test("schema: no schema keeps everything", () => {
  const o = cr({ anything: 1 });
  assert.deepEqual(applySchema(undefined, o), { value: o, errors: [], unknown: [] });
});
