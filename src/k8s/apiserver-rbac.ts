// RBAC authorization of one request against a user's PolicyRules, with the matching rules of
// k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac (rbac/v1 helpers): pure.

export interface PolicyRule { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }

export interface ResourceAttributes { verb: string; group: string; resource: string; subresource?: string; name?: string }

function verbMatches(r: PolicyRule, verb: string): boolean {
  return r.verbs.some((v) => v === "*" || v === verb);
}
function groupMatches(r: PolicyRule, group: string): boolean {
  return r.apiGroups.some((g) => g === "*" || g === group);
}
/** `*` matches all; `pods/status` exactly; `*\/status` any resource's status subresource. */
function resourceMatches(r: PolicyRule, resource: string, subresource?: string): boolean {
  const combined = subresource ? `${resource}/${subresource}` : resource;
  return r.resources.some((x) => x === "*" || x === combined || (subresource !== undefined && x === `*/${subresource}`));
}
function nameMatches(r: PolicyRule, name?: string): boolean {
  if (!r.resourceNames || r.resourceNames.length === 0) return true;
  return name !== undefined && name !== "" && r.resourceNames.includes(name);
}

/** Allowed if any rule matches; `rules` undefined means everything is allowed (cluster-admin). */
export function authorize(rules: readonly PolicyRule[] | undefined, a: ResourceAttributes): boolean {
  if (rules === undefined) return true;
  return rules.some((r) => verbMatches(r, a.verb) && groupMatches(r, a.group) && resourceMatches(r, a.resource, a.subresource) && nameMatches(r, a.name));
}
