// The pure parts of the etcd client; the client itself is tested against a real etcd in
// test/integration/datastore-etcd.test.ts.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { EtcdDatastore, prefixRange, splitJsonObjects, toWatchEvent } from "./etcd.js";
import { DatastoreError } from "./types.js";

const unb64 = (s: string): Buffer => Buffer.from(s, "base64");

describe("etcd wire helpers", () => {
  test("prefixRange: [prefix, prefix with its last byte below 0xff incremented)", () => {
    const r = prefixRange("leases/");
    assert.equal(unb64(r.key).toString(), "leases/");
    assert.equal(unb64(r.range_end).toString(), "leases0");
    assert.deepEqual([...unb64(prefixRange("a\u00ff").range_end)], [0x61, 0xc3, 0xc0], "by UTF-8 bytes");
    assert.deepEqual([...unb64(prefixRange("").key)], [0]);
    assert.deepEqual([...unb64(prefixRange("").range_end)], [0], "\\0..\\0 is every key");
  });

  test("splitJsonObjects: whole objects out, partial ones kept, braces inside strings ignored", () => {
    const a = "{\"result\":{\"x\":\"}{\\\"\"}}";
    const b = "{\"result\":{}}";
    assert.deepEqual(splitJsonObjects(`${a}\n${b}\n`), { objects: [a, b], rest: "" });
    const cut = `${a}\n${b}`.length - 3;
    const first = splitJsonObjects(`${a}\n${b}`.slice(0, cut));
    assert.deepEqual(first.objects, [a]);
    const second = splitJsonObjects(first.rest + `${a}\n${b}`.slice(cut));
    assert.deepEqual(second, { objects: [b], rest: "" });
    assert.deepEqual(splitJsonObjects(a + b), { objects: [a, b], rest: "" }, "no separator needed");
  });

  test("toWatchEvent: PUT is the omitted default, DELETE carries the key and revision", () => {
    const key = Buffer.from("k").toString("base64");
    assert.deepEqual(toWatchEvent({ kv: { key, value: Buffer.from("v").toString("base64"), create_revision: "2", mod_revision: "5" } }),
      { type: "put", kv: { key: "k", value: "v", createRevision: 2, modRevision: 5 } });
    assert.deepEqual(toWatchEvent({ kv: { key, create_revision: "2", mod_revision: "5" } }),
      { type: "put", kv: { key: "k", value: "", createRevision: 2, modRevision: 5 } }, "empty value omitted");
    assert.deepEqual(toWatchEvent({ type: "DELETE", kv: { key, mod_revision: "6" } }), { type: "delete", key: "k", modRevision: 6 });
  });

  test("constructor rejects bad endpoints", () => {
    const invalid = (e: unknown): boolean => e instanceof DatastoreError && e.code === "invalid";
    assert.throws(() => new EtcdDatastore({ endpoints: [] }), invalid);
    assert.throws(() => new EtcdDatastore({ endpoints: ["ftp://h:1"] }), invalid);
    assert.throws(() => new EtcdDatastore({ endpoints: ["http://a:1", "https://b:1"] }), invalid);
    assert.throws(() => new EtcdDatastore({ endpoints: ["not a url"] }), invalid);
  });
});
