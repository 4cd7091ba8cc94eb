// The agent's access to the Kubernetes API, declared as data (the ClusterRole in
// deploy/trellis.yaml is rendered from AGENT_RULES), and RBAC's own matching rule as a pure
// function, so that tests can ask "may the agent patch nodes/status?" without a cluster.
//
// Least privilege: no wildcards, only what the agent does —
//   nodes: list and watch every node (addresses, podCIDR, labels, Trellis annotations), patch
//     its own (the lease annotations; the NetworkUnavailable condition through nodes/status), and
//     get one when a patch met a concurrent change;
//   pods, namespaces, networkpolicies: list and watch, for policy;
//   services, endpointslices (discovery.k8s.io): list and watch, for the services controller
//     (Trellis replaces kube-proxy; the API server allocates ClusterIPs, the cluster's
//     endpointslice controller writes the slices: the agent never writes either);
//   trellisnetworks: list and watch, and create the default one (--network-init) when the cluster has none;
//   trellispolicies, globaltrellispolicies, trellisbgppeers: list and watch (users write them);
//   trellisvalues: the agent's own state (endpoints, status, leases it allocates): list, watch,
//     create, update, delete, and get after losing a race.
// The integration test (test/integration/k8s-lab.test.ts) checks that the agents of a lab make
// no call outside these rules and use every one of them.
// RBAC cannot say "only your own node" for a DaemonSet's shared ServiceAccount (resourceNames is
// static); the NodeRestriction-style limit would need a ValidatingAdmissionPolicy, see deploy/README.md.

export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  /** When given, only objects of these names (a request without a name, e.g. list or create, never matches). */
  resourceNames?: string[];
}

export interface ApiCall {
  verb: string;
  /** API group; "" is the core group. */
  group: string;
  resource: string;
  subresource?: string;
  name?: string;
}

const READ = ["list", "watch"];

export const AGENT_RULES: readonly PolicyRule[] = [
  { apiGroups: [""], resources: ["nodes"], verbs: ["get", ...READ, "patch"] },
  { apiGroups: [""], resources: ["nodes/status"], verbs: ["patch"] },
  { apiGroups: [""], resources: ["pods", "namespaces"], verbs: READ },
  { apiGroups: ["networking.k8s.io"], resources: ["networkpolicies"], verbs: READ },
  { apiGroups: [""], resources: ["services"], verbs: READ },
  { apiGroups: ["discovery.k8s.io"], resources: ["endpointslices"], verbs: READ },
  { apiGroups: ["trellis.dev"], resources: ["trellisnetworks"], verbs: [...READ, "create"] },
  { apiGroups: ["trellis.dev"], resources: ["trellispolicies", "globaltrellispolicies", "trellisbgppeers"], verbs: READ },
  { apiGroups: ["trellis.dev"], resources: ["trellisvalues"], verbs: ["get", ...READ, "create", "update", "delete"] },
];

// Whether one rule allows the call, as the API server's RBAC authorizer decides
// (k8s.io/kubernetes/pkg/apis/rbac/v1/evaluation_helpers.go): the verb, the group and the resource
// ("resource" or "resource/subresource") must each be listed or covered by "*" ("*/subresource"
// covers that subresource of any resource), and resourceNames, when given, must list the name.
export function ruleAllows(rule: PolicyRule, call: ApiCall): boolean {
  const verbOk = rule.verbs.some((v) => v === "*" || v === call.verb);
  const groupOk = rule.apiGroups.some((g) => g === "*" || g === call.group);
  const combined = call.subresource ? `${call.resource}/${call.subresource}` : call.resource;
  const resourceOk = rule.resources.some((r) => r === "*" || r === combined || (call.subresource !== undefined && r === `*/${call.subresource}`));
  const nameOk = !rule.resourceNames || rule.resourceNames.length === 0 || (call.name !== undefined && call.name !== "" && rule.resourceNames.includes(call.name));
  return verbOk && groupOk && resourceOk && nameOk;
}

/** Whether any of the rules allows the call (RBAC only adds permissions; there are no deny rules). */
export function rulesAllow(rules: readonly PolicyRule[], call: ApiCall): boolean {
  return rules.some((r) => ruleAllows(r, call));
}

/** The rules as a ClusterRole's `rules` (resourceNames only where given). */
export function clusterRoleRules(rules: readonly PolicyRule[]): PolicyRule[] {
  return rules.map((r) => ({
    apiGroups: [...r.apiGroups], resources: [...r.resources], verbs: [...r.verbs], ...(r.resourceNames ? { resourceNames: [...r.resourceNames] } : {}),
  }));
}
