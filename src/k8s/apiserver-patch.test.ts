import assert from "node:assert/strict";
import { test } from "node:test";
import { PatchError, applyJsonPatch, mergePatch, parsePointer } from "./apiserver-patch.js";

test("merge patch (RFC 7386): recursive merge, null removes, lists replaced", () => {
  const doc = { a: { b: 1, c: [1, 2] }, d: "x" };
  assert.deepEqual(mergePatch(doc, { a: { b: null, c: [3] }, e: { f: 1 } }), { a: { c: [3] }, d: "x", e: { f: 1 } });
  assert.deepEqual(doc, { a: { b: 1, c: [1, 2] }, d: "x" }, "input untouched");
  assert.deepEqual(mergePatch(doc, { d: null, e: null }), { a: { b: 1, c: [1, 2] } });
  const proto = mergePatch({}, JSON.parse('{"__proto__": {"x": 1}}')) as Record<string, unknown>;
  assert.equal(Object.getPrototypeOf(proto), Object.prototype);
  assert.equal(JSON.stringify(proto), '{"__proto__":{"x":1}}');
});

test("JSON pointers unescape ~1 then ~0", () => {
  assert.deepEqual(parsePointer("/metadata/annotations/trellis.dev~1lease"), ["metadata", "annotations", "trellis.dev/lease"]);
  assert.deepEqual(parsePointer("/a~01"), ["a~1"]);
  assert.deepEqual(parsePointer(""), []);
});

test("JSON patch (RFC 6902): the RFC's operations", () => {
  const doc = { foo: ["bar", "baz"], o: { k: 1 } };
  assert.deepEqual(applyJsonPatch(doc, [{ op: "add", path: "/foo/1", value: "qux" }]), { foo: ["bar", "qux", "baz"], o: { k: 1 } });
  assert.deepEqual(applyJsonPatch(doc, [{ op: "add", path: "/foo/-", value: "end" }]), { foo: ["bar", "baz", "end"], o: { k: 1 } });
  assert.deepEqual(applyJsonPatch(doc, [{ op: "remove", path: "/foo/0" }]), { foo: ["baz"], o: { k: 1 } });
  assert.deepEqual(applyJsonPatch(doc, [{ op: "replace", path: "/o/k", value: 2 }]), { foo: ["bar", "baz"], o: { k: 2 } });
  assert.deepEqual(applyJsonPatch(doc, [{ op: "move", from: "/o/k", path: "/k" }]), { foo: ["bar", "baz"], o: {}, k: 1 });
  assert.deepEqual(applyJsonPatch(doc, [{ op: "copy", from: "/foo", path: "/o/f" }]), { foo: ["bar", "baz"], o: { k: 1, f: ["bar", "baz"] } });
  assert.deepEqual(applyJsonPatch(doc, [{ op: "test", path: "/o", value: { k: 1 } }, { op: "add", path: "/x", value: null }]), { foo: ["bar", "baz"], o: { k: 1 }, x: null });
  assert.deepEqual(doc, { foo: ["bar", "baz"], o: { k: 1 } }, "input untouched");
});

test("JSON patch failures: failed test, missing paths, malformed operations", () => {
  const doc = { a: 1 };
  const failed = (ops: unknown): boolean => { try { applyJsonPatch(doc, ops); return false; } catch (e) { return e instanceof PatchError && e.kind === "failed"; } };
  const malformed = (ops: unknown): boolean => { try { applyJsonPatch(doc, ops); return false; } catch (e) { return e instanceof PatchError && e.kind === "bad-request"; } };
  assert.ok(failed([{ op: "test", path: "/a", value: 2 }]));
  assert.ok(failed([{ op: "remove", path: "/b" }]));
  assert.ok(failed([{ op: "replace", path: "/b", value: 1 }]));
  assert.ok(failed([{ op: "add", path: "/x/y", value: 1 }]));
  assert.ok(malformed({ op: "add" }));
  assert.ok(malformed([{ op: "jump", path: "/a" }]));
  assert.ok(malformed([{ op: "add", path: "/a" }]));
  assert.ok(malformed([{ op: "add", path: "a", value: 1 }]));
});
