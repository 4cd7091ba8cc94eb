// The policy model from datastore objects (namespaces, pods, policies, endpoints). Pure.
import type { Endpoint, Namespace, Pod, PolicyModel, PolicyObject } from "./model.js";
import { parseDocuments } from "./parse.js";

export const NAMESPACE_PREFIX = "/trellis/namespaces/";
export const POD_PREFIX = "/trellis/pods/";
export const POLICY_PREFIX = "/trellis/policies/";
export const ENDPOINT_PREFIX = "/trellis/endpoints/";
export const OBJECT_PREFIXES = [NAMESPACE_PREFIX, POD_PREFIX, POLICY_PREFIX, ENDPOINT_PREFIX] as const;

export const endpointKey = (e: Pick<Endpoint, "node" | "containerId" | "ifname">): string =>
  `${ENDPOINT_PREFIX}${e.node}/${e.containerId}/${e.ifname}`;

export function parseEndpoint(text: string): Endpoint | undefined {
  try {
    const e = JSON.parse(text) as Partial<Endpoint>;
    if (typeof e.namespace !== "string" || typeof e.pod !== "string" || typeof e.node !== "string" || typeof e.containerId !== "string" ||
      typeof e.ifname !== "string" || typeof e.hostIf !== "string" || !Array.isArray(e.ips)) return undefined;
    return {
      namespace: e.namespace, pod: e.pod, node: e.node, containerId: e.containerId, ifname: e.ifname, hostIf: e.hostIf,
      ips: e.ips.filter((x): x is string => typeof x === "string"), mode: e.mode === "bridge" ? "bridge" : "routed",
    };
  } catch {
    return undefined;
  }
}

/** Parsed objects by key and value, so that a recompute only parses what changed. */
export type ParseCache = Map<string, { value: string; parsed: ReturnType<typeof parseDocuments> | Error }>;

/**
 * Builds the model; objects that no longer validate are reported through `invalid` and skipped.
 * A stored field this version does not know (written by another version: `apply` refuses them)
 * is reported through `warn` and the object used without it.
 */
export function modelFromObjects(kvs: Iterable<{ key: string; value: string }>, invalid: (key: string, why: string) => void,
  cache?: ParseCache, warn: (key: string, why: string) => void = invalid): PolicyModel {
  const model: PolicyModel = { namespaces: [], pods: [], endpoints: [], policies: [] };
  const namespaces: Namespace[] = model.namespaces;
  const pods: Pod[] = model.pods;
  const policies: PolicyObject[] = model.policies;
  for (const { key, value } of kvs) {
    if (key.startsWith(ENDPOINT_PREFIX)) {
      const ep = parseEndpoint(value);
      if (ep) model.endpoints.push(ep);
      else invalid(key, "not an endpoint record");
      continue;
    }
    let parsed = cache?.get(key)?.value === value ? cache.get(key)!.parsed : undefined;
    if (!parsed) {
      try {
        parsed = parseDocuments(value, key, { onUnknownField: (_object, message) => warn(key, `${message}; the field is ignored`) });
      } catch (e) {
        parsed = e as Error;
      }
      cache?.set(key, { value, parsed });
    }
    if (parsed instanceof Error) {
      invalid(key, parsed.message);
      continue;
    }
    for (const p of parsed) {
      if (p.kind === "Namespace") namespaces.push(p.object);
      else if (p.kind === "Pod") pods.push(p.object);
      else if (p.kind === "Service" || p.kind === "EndpointSlice") continue;
      else policies.push(p.object);
    }
  }
  return model;
}
