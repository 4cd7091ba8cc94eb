import assert from "node:assert/strict";
import { test } from "node:test";
import { authorize, type PolicyRule } from "./apiserver-rbac.js";

test("RBAC: groups, resources, subresources, verbs, names and wildcards as rbac/v1", () => {
  const rules: PolicyRule[] = [
    { apiGroups: [""], resources: ["nodes"], verbs: ["get", "list", "watch"] },
    { apiGroups: [""], resources: ["nodes/status"], verbs: ["patch"] },
    { apiGroups: ["trellis.dev"], resources: ["*"], verbs: ["*"] },
    { apiGroups: ["*"], resources: ["*/status"], verbs: ["get"] },
    { apiGroups: [""], resources: ["configmaps"], verbs: ["update"], resourceNames: ["lock"] },
  ];
  const can = (verb: string, group: string, resource: string, subresource?: string, name?: string): boolean =>
    authorize(rules, { verb, group, resource, ...(subresource ? { subresource } : {}), ...(name ? { name } : {}) });
  assert.ok(can("watch", "", "nodes"));
  assert.ok(!can("patch", "", "nodes"), "nodes/status does not grant nodes");
  assert.ok(can("patch", "", "nodes", "status"));
  assert.ok(!can("update", "", "nodes", "status"));
  assert.ok(!can("get", "", "pods") && can("get", "", "pods", "status"), "*/status");
  assert.ok(can("deletecollection", "trellis.dev", "ippools") && can("update", "trellis.dev", "ippools", "status"));
  assert.ok(!can("get", "networking.k8s.io", "networkpolicies"));
  assert.ok(can("update", "", "configmaps", undefined, "lock") && !can("update", "", "configmaps", undefined, "other"));
  assert.ok(!can("update", "", "configmaps"), "resourceNames never match a request without a name");
  assert.ok(authorize(undefined, { verb: "delete", group: "x", resource: "y" }), "no rules: cluster-admin");
  assert.ok(!authorize([], { verb: "get", group: "", resource: "nodes" }));
});
