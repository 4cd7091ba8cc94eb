import assert from "node:assert/strict";
import { test } from "node:test";
import { StatusError } from "./apiserver-errors.js";
import { matchesFields, matchesLabels, parseFieldSelector, parseLabelSelector, selectedName } from "./apiserver-selectors.js";

const m = (sel: string, labels: Record<string, string>): boolean => matchesLabels(parseLabelSelector(sel), labels);

test("label selectors: equality, sets, existence, AND", () => {
  assert.ok(m("", {}));
  assert.ok(m("a=1", { a: "1" }) && m("a==1", { a: "1" }) && !m("a=1", { a: "2" }) && !m("a=1", {}));
  assert.ok(m("a!=1", { a: "2" }) && m("a!=1", {}) && !m("a!=1", { a: "1" }));
  assert.ok(m("a in (1, 2)", { a: "2" }) && !m("a in (1,2)", { a: "3" }) && !m("a in (1)", {}));
  assert.ok(m("a notin (1,2)", { a: "3" }) && m("a notin (1)", {}) && !m("a notin (1,2)", { a: "1" }));
  assert.ok(m("a", { a: "" }) && !m("a", {}) && m("!a", {}) && !m("!a", { a: "x" }));
  assert.ok(m("app=web, tier in (front,back),!canary,trellis.dev/role", { app: "web", tier: "back", "trellis.dev/role": "x" }));
  assert.ok(!m("app=web,tier in (front)", { app: "web", tier: "back" }));
  assert.ok(m("a=", { a: "" }));
});

test("label selectors: malformed ones are 400 BadRequest", () => {
  for (const bad of ["a in (", "=x", "a=b=c", "a b", "Bad Key=1", "a=%%"]) {
    assert.throws(() => parseLabelSelector(bad), (e: unknown) => e instanceof StatusError && e.code === 400, bad);
  }
});

test("field selectors: supported fields only, = == !=, nested values", () => {
  const pod = { metadata: { name: "web", namespace: "shop" }, spec: { nodeName: "n1" } };
  const f = (s: string): boolean => matchesFields(parseFieldSelector(s, ["metadata.name", "metadata.namespace", "spec.nodeName"]), pod);
  assert.ok(f("spec.nodeName=n1") && f("spec.nodeName==n1") && !f("spec.nodeName!=n1"));
  assert.ok(f("metadata.name=web,metadata.namespace!=default"));
  assert.ok(!f("spec.nodeName=") && matchesFields(parseFieldSelector("spec.nodeName=", ["spec.nodeName"]), { spec: {} }));
  assert.throws(() => parseFieldSelector("spec.foo=x", ["metadata.name"]), /field label not supported: spec.foo/);
  assert.equal(selectedName(parseFieldSelector("metadata.name=web", ["metadata.name"])), "web");
  assert.equal(selectedName(parseFieldSelector("metadata.name!=web", ["metadata.name"])), undefined);
});
