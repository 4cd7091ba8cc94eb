import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, test } from "node:test";
import { EmbeddedDatastore } from "./embedded.js";
import { EtcdDatastore } from "./etcd.js";
import { openDatastore, parseDatastoreUrl } from "./open.js";
import { DatastoreError } from "./types.js";

describe("parseDatastoreUrl", () => {
  test("embedded: URL or bare path", () => {
    assert.deepEqual(parseDatastoreUrl("embedded:///run/trellis/lab/demo/datastore"), { kind: "embedded", dir: "/run/trellis/lab/demo/datastore" });
    assert.deepEqual(parseDatastoreUrl("embedded:/var/lib/trellis"), { kind: "embedded", dir: "/var/lib/trellis" });
    assert.deepEqual(parseDatastoreUrl("embedded:///tmp/with%20space"), { kind: "embedded", dir: "/tmp/with space" });
    assert.deepEqual(parseDatastoreUrl("/run/trellis/ds"), { kind: "embedded", dir: "/run/trellis/ds" });
    assert.deepEqual(parseDatastoreUrl("./ds"), { kind: "embedded", dir: "./ds" });
    assert.deepEqual(parseDatastoreUrl("ds"), { kind: "embedded", dir: "ds" });
  });

  test("etcd and etcds: one or more host[:port], default port 2379", () => {
    assert.deepEqual(parseDatastoreUrl("etcd://127.0.0.1:2379"), { kind: "etcd", endpoints: ["http://127.0.0.1:2379"], tls: false });
    assert.deepEqual(parseDatastoreUrl("etcd://10.0.0.1:2379,10.0.0.2,etcd-c.example:32379/"), {
      kind: "etcd", endpoints: ["http://10.0.0.1:2379", "http://10.0.0.2:2379", "http://etcd-c.example:32379"], tls: false,
    });
    assert.deepEqual(parseDatastoreUrl("etcds://[fd00::1]:2379,[::1]"), { kind: "etcd", endpoints: ["https://[fd00::1]:2379", "https://[::1]:2379"], tls: true });
    assert.deepEqual(parseDatastoreUrl("ETCD://h"), { kind: "etcd", endpoints: ["http://h:2379"], tls: false });
  });

  test("anything else is DatastoreError invalid naming the value", () => {
    for (const bad of ["", "  ", "embedded://host/dir", "embedded:relative", "embedded:///", "etcd://", "etcd:host:2379",
      "etcd://h:0", "etcd://h:65536", "etcd://h:port", "etcd://h:2379/path", "etcd://user@h", "etcd://a,,b", "etcd://-bad-",
      "http://127.0.0.1:2379", "localhost:2379", "etcd://h:2379?x=1"]) {
      assert.throws(() => parseDatastoreUrl(bad), (e: unknown) =>
        e instanceof DatastoreError && e.code === "invalid" && e.message.includes(JSON.stringify(bad)), `accepted ${JSON.stringify(bad)}`);
    }
  });
});

describe("openDatastore", () => {
  test("opens the embedded store a URL names", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "trellis-open-"));
    try {
      const s = await openDatastore(`embedded://${dir}/ds`, { embedded: { sweepIntervalMs: 0 } });
      assert.ok(s instanceof EmbeddedDatastore);
      assert.equal(s.kind, "embedded");
      await s.put("k", "v");
      await s.close();
      assert.ok(fs.existsSync(path.join(dir, "ds", "snapshot.json")));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test("makes an etcd client without connecting; TLS files only with etcds", async () => {
    const s = await openDatastore("etcd://127.0.0.1:2379,127.0.0.2");
    assert.ok(s instanceof EtcdDatastore);
    assert.deepEqual(s.endpoints.map((u) => u.href), ["http://127.0.0.1:2379/", "http://127.0.0.2:2379/"]);
    await s.close();
    await assert.rejects(openDatastore("etcd://h", { caFile: "/ca.pem" }), (e: unknown) => e instanceof DatastoreError && e.code === "invalid");
    await assert.rejects(openDatastore("etcds://h", { caFile: "/nonexistent/ca.pem" }), (e: unknown) =>
      e instanceof DatastoreError && e.code === "invalid" && e.message.includes("/nonexistent/ca.pem"));
  });
});
