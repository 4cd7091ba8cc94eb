import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, test } from "node:test";
import { datastoreConformance, WatchRecorder } from "./conformance.js";
import { EmbeddedDatastore, compareKeys, parseLogRecord, type EmbeddedOptions } from "./embedded.js";
import { DatastoreError } from "./types.js";

const dirs: string[] = [];
function tempDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "trellis-ds-"));
  dirs.push(d);
  return d;
}
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/** A store with a hand-driven clock, no timers of its own, and warnings collected. */
async function openStore(dir: string, extra: EmbeddedOptions = {}) {
  const clock = { t: 1_700_000_000_000 };
  const warnings: string[] = [];
  const store = await EmbeddedDatastore.open(dir, {
    now: () => clock.t, sweepIntervalMs: 0, pollIntervalMs: 0, warn: (m) => warnings.push(m), ...extra,
  });
  return { store, clock, warnings };
}

const logFiles = (dir: string): string[] => fs.readdirSync(dir).filter((f) => /^log\.\d+$/.test(f)).sort((a, b) => Number(a.slice(4)) - Number(b.slice(4)));
const currentLog = (dir: string): string => path.join(dir, (JSON.parse(fs.readFileSync(path.join(dir, "snapshot.json"), "utf8")) as { log: string }).log);

datastoreConformance("embedded", async () => {
  const dir = tempDir();
  const { store, clock } = await openStore(dir);
  return {
    store,
    elapse: async (ms) => {
      clock.t += ms;
      await store.sweepExpired();
    },
  };
});

describe("EmbeddedDatastore", () => {
  test("two stores on one directory see each other's writes and only one of 20 racing creates wins", async () => {
    const dir = tempDir();
    const a = (await openStore(dir)).store;
    const b = (await openStore(dir)).store;
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).create("leases/10.244.1.0-24", `node-${i}`)));
    assert.equal(results.filter(Boolean).length, 1);
    const winner = results.find(Boolean)!;
    assert.deepEqual(await a.get("leases/10.244.1.0-24"), winner);
    assert.deepEqual(await b.get("leases/10.244.1.0-24"), winner);
    const fromA = await a.put("x", "from a");
    const fromB = await b.put("y", "from b");
    assert.equal(fromB.modRevision, fromA.modRevision + 1);
    assert.deepEqual((await a.list("")).items.map((kv) => kv.key), ["leases/10.244.1.0-24", "x", "y"]);
    await a.close();
    await b.close();
  });

  test("reopening preserves keys, revisions and TTLs; the next write takes the next revision", async () => {
    const dir = tempDir();
    const first = await openStore(dir);
    await first.store.put("config", "{}");
    const lease = await first.store.put("leases/a", "node-a", { ttlSeconds: 10 });
    await first.store.delete("config");
    const kept = await first.store.put("config", "{\"network\":\"10.244.0.0/16\"}");
    const before = await first.store.list("");
    await first.store.close();

    const second = await openStore(dir);
    second.clock.t = first.clock.t;
    const reopened = await second.store.list("");
    assert.deepEqual(reopened, before);
    const next = await second.store.put("z", "1");
    assert.equal(next.modRevision, before.revision + 1);
    assert.deepEqual(await second.store.get("config"), kept);
    second.clock.t += 10_001;
    assert.equal(await second.store.sweepExpired(), 1, "the TTL survived the reopen");
    assert.equal(await second.store.get("leases/a"), undefined);
    assert.ok(lease.modRevision < next.modRevision);
    await second.store.close();
  });

  test("expiry seen by another store on the same directory: one delete, whoever sweeps", async () => {
    const dir = tempDir();
    const a = await openStore(dir);
    const b = await openStore(dir);
    b.clock.t = a.clock.t;
    const from = await a.store.currentRevision();
    const w = new WatchRecorder(a.store, "leases/", from);
    await b.store.put("leases/b", "node-b", { ttlSeconds: 1 });
    a.clock.t += 1000;
    b.clock.t += 1000;
    const [na, nb] = await Promise.all([a.store.sweepExpired(), b.store.sweepExpired()]);
    assert.equal(na + nb, 1, "exactly one of the two sweeps deleted it");
    await w.until(() => w.events.some((e) => e.type === "delete"), 2000, "the delete event");
    assert.deepEqual(w.events.map((e) => e.type), ["put", "delete"]);
    w.stop();
    await a.store.close();
    await b.store.close();
  });

  test("a torn last line (writer killed mid-write) is ignored by readers and cut by the next writer", async () => {
    const dir = tempDir();
    const { store, warnings } = await openStore(dir);
    await store.put("a", "1");
    const b = await store.put("b", "2");
    await store.close();
    const log = currentLog(dir);
    const sizeBefore = fs.statSync(log).size;
    fs.appendFileSync(log, "{\"rev\":3,\"op\":\"put\",\"key\":\"c\",\"val");

    const re = await openStore(dir);
    assert.deepEqual((await re.store.list("")).items.map((kv) => kv.key), ["a", "b"]);
    assert.equal((await re.store.list("")).revision, b.modRevision);
    const c = await re.store.put("c", "3");
    assert.equal(c.modRevision, b.modRevision + 1);
    assert.ok(re.warnings.some((m) => m.includes("torn record")), JSON.stringify(re.warnings));
    const lines = fs.readFileSync(log, "utf8").split("\n");
    assert.equal(lines.pop(), "", "the log ends with a complete line");
    assert.ok(lines.every((l) => parseLogRecord(l) !== undefined), "every line is a valid record");
    assert.ok(fs.statSync(log).size > sizeBefore);
    await re.store.close();

    const third = await openStore(dir);
    assert.deepEqual((await third.store.list("")).items.map((kv) => `${kv.key}=${kv.value}`), ["a=1", "b=2", "c=3"]);
    assert.deepEqual(warnings, []);
    await third.store.close();
  });

  test("a record still being written is not applied until its line is complete", async () => {
    const dir = tempDir();
    const { store } = await openStore(dir);
    await store.put("a", "1");
    const log = currentLog(dir);
    const rec = `${JSON.stringify({ rev: 2, op: "put", key: "b", value: "2", createRev: 2 })}\n`;
    fs.appendFileSync(log, rec.slice(0, 20));
    assert.equal(await store.get("b"), undefined);
    fs.appendFileSync(log, rec.slice(20));
    assert.equal((await store.get("b"))?.value, "2");
    assert.equal(await store.currentRevision(), 2);
    await store.close();
  });

  test("an invalid complete line is skipped with a warning, the records after it still count", async () => {
    const dir = tempDir();
    const { store, warnings } = await openStore(dir);
    await store.put("a", "1");
    fs.appendFileSync(currentLog(dir), `not json\n${JSON.stringify({ rev: 2, op: "put", key: "b", value: "2", createRev: 2 })}\n`);
    assert.equal((await store.get("b"))?.value, "2");
    assert.ok(warnings.some((m) => m.includes("invalid record")));
    await store.close();
  });

  test("compaction: snapshot + new log, at most two logs on disk, same state after reopen, live watchers see every change", async () => {
    const dir = tempDir();
    const { store } = await openStore(dir, { compactAfterRecords: 5 });
    const w = new WatchRecorder(store, "", 0);
    for (let i = 0; i < 23; i++) await store.put(`k${i % 7}`, String(i));
    await w.until(() => w.events.length === 23, 2000, "23 events");
    assert.deepEqual(w.events.map((e) => (e.type === "put" ? e.kv.modRevision : -1)), Array.from({ length: 23 }, (_, i) => i + 1));
    assert.equal(w.resyncs, 0);
    assert.ok(logFiles(dir).length <= 2, logFiles(dir).join(" "));
    const snap = JSON.parse(fs.readFileSync(path.join(dir, "snapshot.json"), "utf8")) as { revision: number };
    assert.ok(snap.revision >= 15, `snapshot at ${snap.revision}`);
    const state = await store.list("");
    w.stop();
    await store.close();
    const re = await openStore(dir);
    assert.deepEqual(await re.store.list(""), state);
    await re.store.close();
  });

  test("a watcher behind the compacted history gets a resync, then the later changes", async () => {
    const dir = tempDir();
    const { store } = await openStore(dir);
    const a = await store.put("a", "1");
    await store.put("b", "1");
    await store.compact();
    const fresh = await openStore(dir); // its history starts at the snapshot
    const w = new WatchRecorder(fresh.store, "", a.modRevision);
    await w.until(() => w.resyncs === 1, 2000, "a resync");
    const c = await fresh.store.put("c", "1");
    await w.untilPut("c", "1", 2000);
    assert.equal("resync" in w.messages[0]!, true);
    assert.deepEqual(w.events.map((e) => (e.type === "put" ? e.kv.modRevision : 0)), [c.modRevision]);
    // A watcher from the snapshot revision on needs nothing dropped: no resync.
    const ok = new WatchRecorder(fresh.store, "", c.modRevision - 1);
    await ok.untilPut("c", "1", 2000);
    assert.equal(ok.resyncs, 0);
    w.stop();
    ok.stop();
    await store.close();
    await fresh.store.close();
  });

  test("the in-memory history is bounded: a watcher further behind than historyLimit gets a resync", async () => {
    const dir = tempDir();
    const { store } = await openStore(dir, { historyLimit: 3 });
    for (let i = 0; i < 10; i++) await store.put("k", String(i));
    const behind = new WatchRecorder(store, "", 1);
    const recent = new WatchRecorder(store, "", 9);
    await behind.until(() => behind.resyncs === 1, 2000, "a resync");
    await recent.untilPut("k", "9", 2000);
    assert.equal(recent.resyncs, 0);
    behind.stop();
    recent.stop();
    await store.close();
  });

  test("a store that slept through compactions follows the sealed logs, or reloads with a resync when they are gone", async () => {
    for (const compactions of [2, 3]) {
      const dir = tempDir();
      const writer = (await openStore(dir)).store;
      const sleeper = (await openStore(dir)).store; // never reads until the end (no fs.watch: no watchers)
      const from = await sleeper.currentRevision();
      for (let c = 0; c < compactions; c++) {
        await writer.put(`k${c}`, String(c));
        await writer.compact();
      }
      await writer.put("last", "x");
      const w = new WatchRecorder(sleeper, "", from);
      if (compactions === 2) {
        await w.untilPut("last", "x", 2000);
        assert.equal(w.resyncs, 0);
        assert.deepEqual(w.events.map((e) => (e.type === "put" ? e.kv.key : "")), ["k0", "k1", "last"]);
      } else {
        await w.until(() => w.resyncs === 1, 2000, "a resync: the log it needed is gone");
        await writer.put("more", "y");
        await w.untilPut("more", "y", 2000);
      }
      assert.deepEqual((await sleeper.list("")).items, (await writer.list("")).items);
      w.stop();
      await writer.close();
      await sleeper.close();
    }
  });

  test("a crash between sealing the old log and writing the snapshot loses nothing", async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, "snapshot.json"), JSON.stringify({ format: 1, revision: 0, log: "log.0", kvs: [] }));
    const rec = (r: object): string => `${JSON.stringify(r)}\n`;
    fs.writeFileSync(path.join(dir, "log.0"), rec({ rev: 1, op: "put", key: "a", value: "1", createRev: 1 }) + rec({ rev: 1, op: "seal", next: "log.1" }));
    fs.writeFileSync(path.join(dir, "log.1"), rec({ rev: 2, op: "put", key: "b", value: "2", createRev: 2 }));
    const { store } = await openStore(dir);
    assert.deepEqual((await store.list("")).items.map((kv) => `${kv.key}=${kv.value}@${kv.modRevision}`), ["a=1@1", "b=2@2"]);
    const c = await store.put("c", "3");
    assert.equal(c.modRevision, 3);
    assert.match(fs.readFileSync(path.join(dir, "log.1"), "utf8"), /"key":"c"/, "appends go to the log the seal names");
    await store.close();
  });

  test("another store's write reaches a watcher through inotify alone (no polling)", async () => {
    const dir = tempDir();
    const writer = (await openStore(dir)).store;
    const reader = (await openStore(dir, { pollIntervalMs: 0, fsWatch: true })).store;
    const w = new WatchRecorder(reader, "", await reader.currentRevision());
    const started = Date.now();
    await writer.put("k", "v");
    await w.untilPut("k", "v", 2000);
    assert.ok(Date.now() - started < 2000);
    w.stop();
    await writer.close();
    await reader.close();
  });

  test("another store's write reaches a watcher through polling alone (no inotify)", async () => {
    const dir = tempDir();
    const writer = (await openStore(dir)).store;
    const reader = (await openStore(dir, { pollIntervalMs: 20, fsWatch: false })).store;
    const w = new WatchRecorder(reader, "", await reader.currentRevision());
    await writer.put("k", "v");
    await w.untilPut("k", "v", 2000);
    w.stop();
    await writer.close();
    await reader.close();
  });

  test("a handler that throws is reported and does not stop other watchers", async () => {
    const dir = tempDir();
    const { store, warnings } = await openStore(dir);
    const ac = new AbortController();
    store.watch("", 0, () => {
      throw new Error("boom");
    }, ac.signal);
    const w = new WatchRecorder(store, "", 0);
    await store.put("k", "v");
    await w.untilPut("k", "v", 2000);
    assert.ok(warnings.some((m) => m.includes("boom")));
    ac.abort();
    w.stop();
    await store.close();
  });

  test("closed store: operations fail with code unavailable", async () => {
    const { store } = await openStore(tempDir());
    await store.close();
    await assert.rejects(store.get("k"), (e: unknown) => e instanceof DatastoreError && e.code === "unavailable");
    await assert.rejects(store.put("k", "v"), (e: unknown) => e instanceof DatastoreError && e.code === "unavailable");
    await store.close(); // twice is fine
  });

  test("a directory that cannot be created is reported with its path", async () => {
    const file = path.join(tempDir(), "file");
    fs.writeFileSync(file, "");
    await assert.rejects(EmbeddedDatastore.open(path.join(file, "sub")), (e: unknown) =>
      e instanceof DatastoreError && e.code === "unavailable" && e.message.includes(file));
  });

  test("keys sort by UTF-8 bytes like etcd, not by UTF-16 code units", () => {
    assert.ok(compareKeys("\uff01", "\u{1f600}") < 0);
    assert.ok("\uff01" > "\u{1f600}", "JavaScript's own order differs");
    assert.ok(compareKeys("a", "a/") < 0);
    assert.equal(compareKeys("k", "k"), 0);
  });

  test("log records: only well-formed lines parse", () => {
    assert.deepEqual(parseLogRecord("{\"rev\":1,\"op\":\"delete\",\"key\":\"a\"}"), { rev: 1, op: "delete", key: "a" });
    assert.equal(parseLogRecord("{\"rev\":1,\"op\":\"put\",\"key\":\"a\"}"), undefined);
    assert.equal(parseLogRecord("{\"rev\":\"1\",\"op\":\"delete\",\"key\":\"a\"}"), undefined);
    assert.equal(parseLogRecord("{\"rev\":1,\"op\":\"seal\",\"next\":\"../etc\"}"), undefined);
    assert.equal(parseLogRecord("\u0000\u0000\u0000"), undefined);
    assert.equal(parseLogRecord("null"), undefined);
  });
});

describe("EmbeddedDatastore refuses damaged directories", () => {
  test("logs without a snapshot, or a snapshot that is not JSON: DatastoreError internal naming the file", async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, "log.7"), "");
    await assert.rejects(EmbeddedDatastore.open(dir, { sweepIntervalMs: 0 }), (e: unknown) =>
      e instanceof DatastoreError && e.code === "internal" && e.message.includes("log.7"));
    const dir2 = tempDir();
    fs.writeFileSync(path.join(dir2, "snapshot.json"), "{\"format\":1,");
    await assert.rejects(EmbeddedDatastore.open(dir2, { sweepIntervalMs: 0 }), (e: unknown) =>
      e instanceof DatastoreError && e.code === "internal" && e.message.includes("snapshot.json"));
  });
});
