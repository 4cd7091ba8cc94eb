// The resource types the fake API server serves: the built-in ones, and those a
// CustomResourceDefinition defines (validated here as the real server does). Pure.

import type { FieldError } from "./apiserver-errors.js";
import type { Schema } from "./apiserver-schema.js";

export interface ResourceType {
  group: string;
  version: string;
  /** Plural, as in the URL: `pods`. */
  resource: string;
  kind: string;
  listKind: string;
  singular: string;
  namespaced: boolean;
  /** Has a `/status` subresource: writes to it change only `.status`, writes to the object never do. */
  statusSubresource: boolean;
  shortNames?: string[];
  /** Field selectors supported besides metadata.name and metadata.namespace. */
  fieldSelectors: readonly string[];
  nameRule: "subdomain" | "label";
  /** Custom resources only: the version's openAPIV3Schema, and the CRD's name. */
  schema?: Schema;
  crd?: string;
}

export const VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"] as const;

/** Objects of one resource share storage across its versions: the bucket is group/resource. */
export const bucketOf = (t: { group: string; resource: string }): string => `${t.group}/${t.resource}`;
export const apiVersionOf = (t: { group: string; version: string }): string => (t.group ? `${t.group}/${t.version}` : t.version);

function builtin(group: string, resource: string, kind: string, namespaced: boolean, extra: Partial<ResourceType> = {}): ResourceType {
  return {
    group, version: "v1", resource, kind, listKind: `${kind}List`, singular: kind.toLowerCase(), namespaced,
    statusSubresource: false, fieldSelectors: [], nameRule: "subdomain", ...extra,
  };
}

export const BUILTIN_TYPES: readonly ResourceType[] = [
  builtin("", "namespaces", "Namespace", false, { statusSubresource: true, nameRule: "label", shortNames: ["ns"], fieldSelectors: ["status.phase"] }),
  builtin("", "nodes", "Node", false, { statusSubresource: true, shortNames: ["no"], fieldSelectors: ["spec.unschedulable"] }),
  builtin("", "pods", "Pod", true, { statusSubresource: true, shortNames: ["po"], fieldSelectors: ["spec.nodeName", "spec.serviceAccountName", "status.phase", "status.podIP"] }),
  builtin("", "events", "Event", true, { shortNames: ["ev"], fieldSelectors: ["involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid", "reason", "type", "source"] }),
  builtin("", "services", "Service", true, { statusSubresource: true, shortNames: ["svc"], nameRule: "label" }),
  builtin("", "endpoints", "Endpoints", true, { singular: "endpoints", shortNames: ["ep"] }),
  builtin("discovery.k8s.io", "endpointslices", "EndpointSlice", true),
  builtin("networking.k8s.io", "networkpolicies", "NetworkPolicy", true, { shortNames: ["netpol"] }),
  builtin("apiextensions.k8s.io", "customresourcedefinitions", "CustomResourceDefinition", false, { statusSubresource: true, shortNames: ["crd", "crds"] }),
];

const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** The real server's message for an invalid object name, or undefined if it is valid. */
export function nameProblem(rule: "subdomain" | "label", name: string): string | undefined {
  if (rule === "label") {
    if (name.length > 63) return "must be no more than 63 characters";
    if (!LABEL.test(name)) return "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
    return undefined;
  }
  if (name.length > 253) return "must be no more than 253 characters";
  if (!SUBDOMAIN.test(name)) return "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
  return undefined;
}

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Obj) : {});
const str = (v: unknown): string => (typeof v === "string" ? v : "");

/** Validates a CRD as the real server does for the fields this server uses; fills names' defaults in place. */
export function validateCrd(crd: Obj): FieldError[] {
  const errs: FieldError[] = [];
  const spec = obj(crd.spec);
  const names = obj(spec.names);
  const group = str(spec.group), plural = str(names.plural), kind = str(names.kind);
  const name = str(obj(crd.metadata).name);
  if (!group) errs.push({ type: "FieldValueRequired", field: "spec.group" });
  else if (!group.includes(".")) errs.push({ type: "FieldValueInvalid", field: "spec.group", value: group, detail: "should be a domain with at least one dot" });
  if (!plural) errs.push({ type: "FieldValueRequired", field: "spec.names.plural" });
  else if (nameProblem("label", plural)) errs.push({ type: "FieldValueInvalid", field: "spec.names.plural", value: plural, detail: nameProblem("label", plural) });
  if (!kind) errs.push({ type: "FieldValueRequired", field: "spec.names.kind" });
  if (group && plural && name !== `${plural}.${group}`) errs.push({ type: "FieldValueInvalid", field: "metadata.name", value: name, detail: 'must be spec.names.plural+"."+spec.group' });
  if (spec.scope !== "Namespaced" && spec.scope !== "Cluster") errs.push({ type: "FieldValueNotSupported", field: "spec.scope", value: spec.scope ?? "", detail: 'supported values: "Cluster", "Namespaced"' });
  const versions = Array.isArray(spec.versions) ? spec.versions.map(obj) : [];
  if (versions.length === 0) errs.push({ type: "FieldValueRequired", field: "spec.versions", detail: "must have exactly one version marked as storage version" });
  else if (versions.filter((v) => v.storage === true).length !== 1) errs.push({ type: "FieldValueInvalid", field: "spec.versions", value: versions.map((v) => v.name), detail: "must have exactly one version marked as storage version" });
  versions.forEach((v, i) => {
    if (!str(v.name) || nameProblem("label", str(v.name))) errs.push({ type: "FieldValueInvalid", field: `spec.versions[${i}].name`, value: v.name ?? "", detail: "must be a valid DNS label" });
  });
  if (kind) {
    if (!names.singular) names.singular = kind.toLowerCase();
    if (!names.listKind) names.listKind = `${kind}List`;
  }
  return errs;
}

/** The served types of a (valid) CRD, one per served version. */
export function typesOfCrd(crd: Obj): ResourceType[] {
  const spec = obj(crd.spec);
  const names = obj(spec.names);
  const versions = Array.isArray(spec.versions) ? spec.versions.map(obj) : [];
  return versions.filter((v) => v.served !== false).map((v) => ({
    group: str(spec.group),
    version: str(v.name),
    resource: str(names.plural),
    kind: str(names.kind),
    listKind: str(names.listKind) || `${str(names.kind)}List`,
    singular: str(names.singular) || str(names.kind).toLowerCase(),
    namespaced: spec.scope === "Namespaced",
    statusSubresource: obj(v.subresources).status !== undefined,
    ...(Array.isArray(names.shortNames) ? { shortNames: names.shortNames.map(String) } : {}),
    fieldSelectors: [],
    nameRule: "subdomain" as const,
    schema: obj(v.schema).openAPIV3Schema as Schema | undefined,
    crd: str(obj(crd.metadata).name),
  }));
}

/** The CRD's status once accepted: names accepted, Established=True. */
export function establishedStatus(crd: Obj, now: string): Obj {
  const spec = obj(crd.spec);
  const versions = Array.isArray(spec.versions) ? spec.versions.map(obj) : [];
  const storage = versions.find((v) => v.storage === true);
  const prev = obj(crd.status);
  const stored = Array.isArray(prev.storedVersions) ? prev.storedVersions.map(String) : [];
  if (storage && !stored.includes(str(storage.name))) stored.push(str(storage.name));
  return {
    conditions: [
      { type: "NamesAccepted", status: "True", lastTransitionTime: now, reason: "NoConflicts", message: "no conflicts found" },
      { type: "Established", status: "True", lastTransitionTime: now, reason: "InitialNamesAccepted", message: "the initial names have been accepted" },
    ],
    acceptedNames: structuredClone(spec.names ?? {}),
    storedVersions: stored,
  };
}
