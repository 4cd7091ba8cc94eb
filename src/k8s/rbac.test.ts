// RBAC matching as the API server does it, and the agent's rules: exactly the access the agent
// needs (every call it makes is allowed, everything else tried here is not), with no wildcard.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AGENT_RULES, clusterRoleRules, ruleAllows, rulesAllow, type ApiCall, type PolicyRule } from "./rbac.js";

const call = (verb: string, group: string, resource: string, extra: Partial<ApiCall> = {}): ApiCall => ({ verb, group, resource, ...extra });

describe("ruleAllows (RBAC semantics)", () => {
  const pods: PolicyRule = { apiGroups: [""], resources: ["pods"], verbs: ["get", "list"] };

  it("needs the verb, the group and the resource to be listed", () => {
    assert.equal(ruleAllows(pods, call("get", "", "pods")), true);
    assert.equal(ruleAllows(pods, call("watch", "", "pods")), false);
    assert.equal(ruleAllows(pods, call("get", "apps", "pods")), false, "another group");
    assert.equal(ruleAllows(pods, call("get", "", "nodes")), false);
  });

  it("a resource does not cover its subresources, and a subresource is named resource/subresource", () => {
    assert.equal(ruleAllows(pods, call("get", "", "pods", { subresource: "log" })), false);
    const status: PolicyRule = { apiGroups: [""], resources: ["nodes/status"], verbs: ["patch"] };
    assert.equal(ruleAllows(status, call("patch", "", "nodes", { subresource: "status" })), true);
    assert.equal(ruleAllows(status, call("patch", "", "nodes")), false);
  });

  it("honours wildcards: * verbs, groups and resources (subresources too), */subresource", () => {
    const all: PolicyRule = { apiGroups: ["*"], resources: ["*"], verbs: ["*"] };
    assert.equal(ruleAllows(all, call("delete", "apps", "deployments")), true);
    assert.equal(ruleAllows(all, call("patch", "", "nodes", { subresource: "status" })), true);
    const anyStatus: PolicyRule = { apiGroups: [""], resources: ["*/status"], verbs: ["update"] };
    assert.equal(ruleAllows(anyStatus, call("update", "", "pods", { subresource: "status" })), true);
    assert.equal(ruleAllows(anyStatus, call("update", "", "pods")), false);
    assert.equal(ruleAllows(anyStatus, call("update", "", "pods", { subresource: "log" })), false);
  });

  it("resourceNames limit the rule to those names; a call without a name (list, create) never matches", () => {
    const one: PolicyRule = { apiGroups: [""], resources: ["configmaps"], verbs: ["get", "list"], resourceNames: ["trellis-config"] };
    assert.equal(ruleAllows(one, call("get", "", "configmaps", { name: "trellis-config" })), true);
    assert.equal(ruleAllows(one, call("get", "", "configmaps", { name: "other" })), false);
    assert.equal(ruleAllows(one, call("list", "", "configmaps")), false);
    assert.equal(ruleAllows({ ...one, resourceNames: [] }, call("list", "", "configmaps")), true, "an empty list means every name");
  });

  it("rules add up (no deny)", () => {
    const rules: PolicyRule[] = [pods, { apiGroups: [""], resources: ["pods"], verbs: ["watch"] }];
    assert.equal(rulesAllow(rules, call("watch", "", "pods")), true);
    assert.equal(rulesAllow([], call("get", "", "pods")), false);
  });
});

describe("AGENT_RULES", () => {
  const READ = ["list", "watch"];
  const granted: Array<[string, string, string, string[]]> = [
    ["", "nodes", "", ["get", ...READ, "patch"]],
    ["", "nodes", "status", ["patch"]],
    ["", "pods", "", READ],
    ["", "namespaces", "", READ],
    ["networking.k8s.io", "networkpolicies", "", READ],
    ["", "services", "", READ],
    ["discovery.k8s.io", "endpointslices", "", READ],
    ["", "endpoints", "", []],
    ["", "services", "status", []],
    ["trellis.dev", "trellisnetworks", "", [...READ, "create"]],
    ["trellis.dev", "trellispolicies", "", READ],
    ["trellis.dev", "globaltrellispolicies", "", READ],
    ["trellis.dev", "trellisbgppeers", "", READ],
    ["trellis.dev", "trellisvalues", "", ["get", ...READ, "create", "update", "delete"]],
  ];
  const VERBS = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"];

  it("allow exactly the agent's calls, verb by verb", () => {
    for (const [group, resource, subresource, verbs] of granted) {
      for (const verb of VERBS) {
        const c = call(verb, group, resource, subresource ? { subresource } : {});
        assert.equal(rulesAllow(AGENT_RULES, c), verbs.includes(verb), `${verb} ${group || "core"}/${resource}${subresource ? `/${subresource}` : ""}`);
      }
    }
  });

  it("allow nothing else", () => {
    for (const c of [
      call("get", "", "secrets"), call("list", "", "configmaps"), call("get", "", "nodes", { subresource: "proxy" }),
      call("get", "", "nodes", { subresource: "status" }), call("update", "", "nodes", { subresource: "status" }),
      call("create", "", "pods", { subresource: "exec" }), call("get", "", "services"), call("get", "discovery.k8s.io", "endpointslices"),
      call("create", "", "services"), call("update", "discovery.k8s.io", "endpointslices"), call("list", "", "endpoints"),
      call("create", "events.k8s.io", "events"), call("list", "apiextensions.k8s.io", "customresourcedefinitions"),
      call("create", "rbac.authorization.k8s.io", "clusterrolebindings"), call("create", "authentication.k8s.io", "tokenreviews"),
    ]) {
      assert.equal(rulesAllow(AGENT_RULES, c), false, JSON.stringify(c));
    }
  });

  it("use no wildcard and no resourceNames", () => {
    for (const r of AGENT_RULES) {
      for (const v of [...r.apiGroups, ...r.resources, ...r.verbs]) assert.ok(!v.includes("*"), `wildcard in ${JSON.stringify(r)}`);
      assert.equal(r.resourceNames, undefined);
    }
  });

  it("render as ClusterRole rules unchanged (copies, not the same arrays)", () => {
    const rendered = clusterRoleRules(AGENT_RULES);
    assert.deepEqual(rendered, AGENT_RULES);
    assert.notEqual(rendered[0]!.verbs, AGENT_RULES[0]!.verbs);
  });
});
