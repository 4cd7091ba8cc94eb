// The subset of OpenAPI v3 (as CustomResourceDefinitions spell it) that Trellis' CRDs use, as a
// plain type, with small builders so that crds.ts reads like the schema it renders. Pure.
//
// The type is a structural subset of kubernetes-models' IJSONSchemaProps (the CRD objects are
// typed with the upstream model in crds.ts), so what compiles here is accepted there.

/** A JSON value other than null (what the upstream model's JSON type admits). */
export type JsonValue = string | number | boolean | object;

export type SchemaType = "object" | "array" | "string" | "integer" | "number" | "boolean";

export interface Schema {
  type?: SchemaType;
  description?: string;
  properties?: Record<string, Schema>;
  /** A map's value schema; `false` is refused by the API server for structural schemas. */
  additionalProperties?: Schema | boolean;
  required?: string[];
  items?: Schema;
  enum?: JsonValue[];
  default?: JsonValue;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  pattern?: string;
  format?: string;
  nullable?: boolean;
  allOf?: Schema[];
  anyOf?: Schema[];
  oneOf?: Schema[];
  not?: Schema;
  "x-kubernetes-int-or-string"?: boolean;
  "x-kubernetes-preserve-unknown-fields"?: boolean;
  "x-kubernetes-embedded-resource"?: boolean;
  "x-kubernetes-list-type"?: "atomic" | "set" | "map";
  "x-kubernetes-map-type"?: "atomic" | "granular";
}

type Extra = Omit<Schema, "type" | "properties" | "items">;

export const str = (extra: Extra = {}): Schema => ({ type: "string", ...extra });
export const int = (extra: Extra = {}): Schema => ({ type: "integer", ...extra });
export const num = (extra: Extra = {}): Schema => ({ type: "number", ...extra });
export const bool = (extra: Extra = {}): Schema => ({ type: "boolean", ...extra });
export const arr = (items: Schema, extra: Extra = {}): Schema => ({ type: "array", items, ...extra });
/** An object with exactly these fields (anything else is pruned, and refused by strict field validation). */
export const object = (properties: Record<string, Schema>, extra: Extra = {}): Schema => ({ type: "object", properties, ...extra });
/** An object with free keys (labels), each value of schema `of`. */
export const mapOf = (of: Schema, extra: Extra = {}): Schema => ({ type: "object", additionalProperties: of, ...extra });
/** A port: a number or a name (IntOrString). */
export const intOrString = (extra: Extra = {}): Schema => ({ "x-kubernetes-int-or-string": true, ...extra });
