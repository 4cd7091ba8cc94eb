// The structural-schema checker: each rule the API server enforces is caught, with its path, and
// what the rules allow (int-or-string, preserve-unknown-fields without a type, maps) passes.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Schema } from "./schema.js";
import { structuralSchemaErrors } from "./structural-schema.js";

const root = (spec: Schema): Schema => ({ type: "object", properties: { spec } });
const errorsOf = (spec: Schema): string[] => structuralSchemaErrors(root(spec));
const one = (spec: Schema, re: RegExp): void => {
  const e = errorsOf(spec);
  assert.equal(e.length, 1, `expected one error, got ${JSON.stringify(e)}`);
  assert.match(e[0]!, re);
};

describe("structuralSchemaErrors", () => {
  it("accepts typed objects, maps, arrays, int-or-string and preserve-unknown-fields", () => {
    assert.deepEqual(errorsOf({
      type: "object",
      properties: {
        a: { type: "string", enum: ["x", "y"], default: "x" },
        labels: { type: "object", additionalProperties: { type: "string" } },
        list: { type: "array", items: { type: "integer", minimum: 1 } },
        port: { "x-kubernetes-int-or-string": true },
        port2: { "x-kubernetes-int-or-string": true, anyOf: [{ type: "integer" }, { type: "string" }] },
        free: { "x-kubernetes-preserve-unknown-fields": true },
        checked: { type: "object", properties: { n: { type: "number" } }, allOf: [{ properties: { n: { minimum: 0 } } }] },
      },
    }), []);
  });

  it("every node has a type", () => {
    one({ type: "object", properties: { a: {} } }, /^openAPIV3Schema\.properties\.spec\.properties\.a\.type: must not be empty/);
    one({ type: "array", items: { properties: {} } }, /spec\.items\.type: must not be empty/);
    one({ type: "object", additionalProperties: { description: "x" } }, /spec\.additionalProperties\.type: must not be empty/);
    one({ type: "object", properties: { a: { type: "str" as "string" } } }, /"str" is not one of/);
  });

  it("the root is an object", () => {
    assert.match(structuralSchemaErrors({ type: "string" })[0]!, /root must be of type object/);
  });

  it("an array has items", () => {
    one({ type: "array" }, /spec\.items: an array must specify its items/);
  });

  it("properties and additionalProperties exclude each other; additionalProperties is never false", () => {
    one({ type: "object", properties: { a: { type: "string" } }, additionalProperties: { type: "string" } }, /mutually exclusive/);
    one({ type: "object", additionalProperties: false }, /must not be false/);
  });

  it("int-or-string has no type", () => {
    one({ type: "string", "x-kubernetes-int-or-string": true }, /must be empty with x-kubernetes-int-or-string/);
  });

  it("junctors carry no type, description, default, additionalProperties or nullable, and name only fields specified outside", () => {
    one({ type: "string", anyOf: [{ type: "string" }] }, /anyOf\[0\]\.type: must not be set inside/);
    one({ type: "string", oneOf: [{ description: "x" }] }, /oneOf\[0\]\.description: must not be set inside/);
    one({ type: "object", properties: { a: { type: "string" } }, allOf: [{ properties: { b: { minLength: 1 } } }] },
      /allOf\[0\]\.properties\.b: must also be specified outside allOf/);
    one({ type: "object", properties: { a: { type: "string" } }, not: { properties: { a: { nullable: true } } } }, /not\.properties\.a\.nullable: must not be set inside/);
  });

  it("metadata restricts only name and generateName", () => {
    const withMeta = (metadata: Schema): string[] => structuralSchemaErrors({ type: "object", properties: { metadata } });
    assert.deepEqual(withMeta({ type: "object", properties: { name: { type: "string", enum: ["default"] } } }), []);
    assert.match(withMeta({ type: "object", properties: { labels: { type: "object", additionalProperties: { type: "string" } } } })[0]!, /only restrict name/);
    assert.match(withMeta({ type: "object", required: ["name"], properties: {} })[0]!, /metadata\.required: metadata may only restrict/);
  });

  it("enum values and defaults match their node's type", () => {
    one({ type: "integer", enum: [1, "2"] }, /enum\[1\]: "2" is not of type integer/);
    one({ type: "boolean", default: "true" }, /default: "true" is not of type boolean/);
    one({ type: "string", enum: ["a"], default: "b" }, /default: "b" is not in the enum/);
  });

  it("reports every violation, not just the first", () => {
    assert.equal(errorsOf({ type: "object", properties: { a: {}, b: { type: "array" } } }).length, 2);
  });
});
