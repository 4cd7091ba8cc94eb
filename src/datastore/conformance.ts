// The behaviour every Datastore must show, as one suite run against each implementation: the
// embedded store in its unit test (injected clock, no waiting), etcd in an integration test
// against a real server. Tests share one store and use a fresh key prefix each, so they assume
// nothing about absolute revisions, only about their order.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { DatastoreError, type Datastore, type KeyValue, type WatchEvent, type WatchMessage } from "./types.js";

export interface ConformanceSubject {
  store: Datastore;
  /**
   * Makes `ms` of TTL time pass and expired keys be deleted (an injected clock). Without it the
   * TTL tests wait in real time, polling, up to `timeoutMs` beyond the TTL.
   */
  elapse?: (ms: number) => Promise<void>;
  /** Called once after the suite, after store.close(). */
  dispose?: () => Promise<void> | void;
}

export interface ConformanceOptions {
  /** The TTL the TTL tests write (etcd rounds up to its minimum, about 2 s). Default 1. */
  ttlSeconds?: number;
  /** How long to wait for a watch event (or, in real time, for an expiry beyond the TTL). Default 5000. */
  timeoutMs?: number;
  skip?: string | boolean;
}

let prefixCounter = 0;
/** A key prefix no other test (or earlier run against the same server) uses. */
export function freshPrefix(label: string): string {
  prefixCounter++;
  return `conf-${process.pid}-${Date.now().toString(36)}-${prefixCounter}-${label}/`;
}

const eventKey = (e: WatchEvent): string => (e.type === "put" ? e.kv.key : e.key);
const eventRev = (e: WatchEvent): number => (e.type === "put" ? e.kv.modRevision : e.modRevision);

/** Records what a watch delivers and lets a test wait (with a timeout, never a fixed sleep) for a condition. */
export class WatchRecorder {
  readonly messages: WatchMessage[] = [];
  private readonly waiters = new Set<() => void>();
  readonly controller = new AbortController();

  constructor(store: Datastore, prefix: string, fromRevision: number) {
    store.watch(prefix, fromRevision, (m) => {
      this.messages.push(m);
      for (const w of [...this.waiters]) w();
    }, this.controller.signal);
  }

  get events(): WatchEvent[] {
    return this.messages.flatMap((m) => ("events" in m ? m.events : []));
  }

  get resyncs(): number {
    return this.messages.filter((m) => "resync" in m).length;
  }

  /** Resolves once `cond()` holds; rejects after `timeoutMs` with `what` and the messages seen. */
  until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
    if (cond()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!cond()) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; got ${JSON.stringify(this.messages)}`));
      }, timeoutMs);
      this.waiters.add(check);
    });
  }

  /** Waits for a put of `key` with `value` (a sentinel marking "everything before has arrived"). */
  untilPut(key: string, value: string, timeoutMs: number): Promise<void> {
    return this.until(() => this.events.some((e) => e.type === "put" && e.kv.key === key && e.kv.value === value), timeoutMs, `put ${key}=${value}`);
  }

  stop(): void {
    this.controller.abort();
  }
}

/** Polls `cond` every 50 ms until it holds or `timeoutMs` passes. */
export async function eventually(cond: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function datastoreConformance(name: string, open: () => Promise<ConformanceSubject>, opts: ConformanceOptions = {}): void {
  const ttl = opts.ttlSeconds ?? 1;
  const timeoutMs = opts.timeoutMs ?? 5000;

  describe(`${name}: Datastore conformance`, { skip: opts.skip }, () => {
    let subject: ConformanceSubject;
    let s: Datastore;
    const recorders: WatchRecorder[] = [];
    const record = (prefix: string, from: number): WatchRecorder => {
      const r = new WatchRecorder(s, prefix, from);
      recorders.push(r);
      return r;
    };

    before(async () => {
      subject = await open();
      s = subject.store;
    });
    after(async () => {
      for (const r of recorders) r.stop();
      await subject?.store.close();
      await subject?.dispose?.();
    });

    test("put then get; a second put keeps createRevision and raises modRevision; get of a missing key is undefined", async () => {
      const p = freshPrefix("put");
      assert.equal(await s.get(`${p}a`), undefined);
      const first = await s.put(`${p}a`, "one");
      assert.equal(first.key, `${p}a`);
      assert.equal(first.value, "one");
      assert.equal(first.createRevision, first.modRevision);
      assert.deepEqual(await s.get(`${p}a`), first);
      const second = await s.put(`${p}a`, "two");
      assert.equal(second.createRevision, first.createRevision);
      assert.ok(second.modRevision > first.modRevision);
      assert.deepEqual(await s.get(`${p}a`), second);
      const empty = await s.put(`${p}empty`, "");
      assert.equal((await s.get(`${p}empty`))?.value, "");
      assert.equal(empty.value, "");
      const unicode = await s.put(`${p}ключ/🔑`, "värde\n\"quoted\"\u0000");
      assert.deepEqual(await s.get(`${p}ключ/🔑`), unicode);
    });

    test("create writes only if absent", async () => {
      const p = freshPrefix("create");
      const kv = await s.create(`${p}k`, "first");
      assert.ok(kv);
      assert.equal(kv.value, "first");
      assert.equal(kv.createRevision, kv.modRevision);
      assert.equal(await s.create(`${p}k`, "second"), undefined);
      assert.deepEqual(await s.get(`${p}k`), kv);
      assert.equal(await s.delete(`${p}k`), true);
      const again = await s.create(`${p}k`, "third");
      assert.ok(again && again.createRevision > kv.createRevision, "created anew after a delete");
    });

    test("20 concurrent creates of one key: exactly one wins and its value is stored", async () => {
      const p = freshPrefix("race");
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => s.create(`${p}subnet`, `node-${i}`)));
      const winners = results.filter((r): r is KeyValue => r !== undefined);
      assert.equal(winners.length, 1, `winners: ${JSON.stringify(winners)}`);
      assert.deepEqual(await s.get(`${p}subnet`), winners[0]);
    });

    test("update succeeds only on the current modRevision, and never creates", async () => {
      const p = freshPrefix("update");
      assert.equal(await s.update(`${p}absent`, "x", 0), undefined);
      assert.equal(await s.update(`${p}absent`, "x", 1), undefined);
      assert.equal(await s.get(`${p}absent`), undefined);
      const v1 = await s.put(`${p}k`, "v1");
      const v2 = await s.update(`${p}k`, "v2", v1.modRevision);
      assert.ok(v2);
      assert.equal(v2.value, "v2");
      assert.equal(v2.createRevision, v1.createRevision);
      assert.ok(v2.modRevision > v1.modRevision);
      assert.equal(await s.update(`${p}k`, "stale", v1.modRevision), undefined, "stale revision");
      assert.deepEqual(await s.get(`${p}k`), v2);
    });

    test("delete, unconditional and guarded by modRevision", async () => {
      const p = freshPrefix("delete");
      assert.equal(await s.delete(`${p}absent`), false);
      assert.equal(await s.delete(`${p}absent`, 5), false);
      const a = await s.put(`${p}a`, "1");
      assert.equal(await s.delete(`${p}a`), true);
      assert.equal(await s.get(`${p}a`), undefined);
      assert.equal(await s.delete(`${p}a`), false);
      const b1 = await s.put(`${p}b`, "1");
      const b2 = await s.put(`${p}b`, "2");
      assert.equal(await s.delete(`${p}b`, b1.modRevision), false, "stale expected revision");
      assert.deepEqual(await s.get(`${p}b`), b2);
      assert.equal(await s.delete(`${p}b`, b2.modRevision), true);
      assert.equal(await s.get(`${p}b`), undefined);
      assert.ok(a.modRevision < b1.modRevision);
    });

    test("list returns the keys under a prefix in key (UTF-8 byte) order, with a revision to watch from", async () => {
      const p = freshPrefix("list");
      const keys = [`${p}b`, `${p}a/x`, `${p}a`, `${p}\uff01`, `${p}\u{1f600}`, `${p}z`, `${p}A`];
      for (const k of keys) await s.put(k, `v:${k}`);
      await s.put(`${p.slice(0, -1)}-outside`, "no"); // shares the text before the slash only
      const last = await s.put(`${p}c`, "c");
      const r = await s.list(p);
      assert.deepEqual(r.items.map((kv) => kv.key), [`${p}A`, `${p}a`, `${p}a/x`, `${p}b`, `${p}c`, `${p}z`, `${p}\uff01`, `${p}\u{1f600}`]);
      assert.equal(r.items.find((kv) => kv.key === `${p}b`)?.value, `v:${p}b`);
      assert.ok(r.revision >= last.modRevision);
      assert.deepEqual((await s.list(`${p}a`)).items.map((kv) => kv.key), [`${p}a`, `${p}a/x`]);
      assert.deepEqual((await s.list(`${p}nothing`)).items, []);
      const all = await s.list("");
      assert.ok(all.items.some((kv) => kv.key === `${p}z`), "the empty prefix lists everything");
    });

    test("revisions increase monotonically across writes", async () => {
      const p = freshPrefix("revs");
      let prev = (await s.list(p)).revision;
      for (let i = 0; i < 10; i++) {
        const kv = i % 3 === 0 ? await s.put(`${p}k${i % 2}`, String(i)) : (await s.create(`${p}n${i}`, String(i)))!;
        assert.ok(kv.modRevision > prev, `revision ${kv.modRevision} after ${prev}`);
        prev = kv.modRevision;
      }
      await s.delete(`${p}k0`);
      const r = await s.list(p);
      assert.ok(r.revision > prev, "a delete takes a revision too");
    });

    test("watch from a revision delivers exactly the later changes under the prefix, in order, then live ones", async () => {
      const p = freshPrefix("watch");
      const a1 = await s.put(`${p}a`, "1");
      const b1 = await s.put(`${p}b`, "1");
      await s.put(`${p.slice(0, -1)}-other/x`, "not mine");
      const a2 = await s.put(`${p}a`, "2");
      await s.delete(`${p}b`);
      const w = record(p, a1.modRevision);
      await w.untilPut(`${p}a`, "2", timeoutMs);
      const live = await s.put(`${p}c`, "live");
      await s.delete(`${p}a`, a2.modRevision);
      await s.put(`${p}end`, "sentinel");
      await w.untilPut(`${p}end`, "sentinel", timeoutMs);
      const got = w.events.map((e) => (e.type === "put" ? `put ${e.kv.key.slice(p.length)}=${e.kv.value}` : `delete ${e.key.slice(p.length)}`));
      assert.deepEqual(got, ["put b=1", "put a=2", "delete b", "put c=live", "delete a", "put end=sentinel"]);
      const revs = w.events.map(eventRev);
      assert.deepEqual(revs, [...revs].sort((x, y) => x - y), "in revision order");
      assert.ok(revs[0]! > a1.modRevision);
      assert.equal(w.resyncs, 0);
      const putB = w.events[0]!;
      assert.ok(putB.type === "put" && putB.kv.createRevision === b1.createRevision && putB.kv.modRevision === b1.modRevision);
      const putC = w.events[3]!;
      assert.ok(putC.type === "put" && putC.kv.modRevision === live.modRevision && putC.kv.createRevision === live.createRevision);
      for (const m of w.messages) if ("events" in m) assert.ok(m.revision >= eventRev(m.events[m.events.length - 1]!));
      w.stop();
    });

    test("a watch that is aborted delivers nothing more; another on the same prefix still does", async () => {
      const p = freshPrefix("abort");
      const from = (await s.list(p)).revision;
      const stopped = record(p, from);
      const other = record(p, from);
      await s.put(`${p}one`, "1");
      await stopped.untilPut(`${p}one`, "1", timeoutMs);
      stopped.stop();
      await s.put(`${p}two`, "2");
      await other.untilPut(`${p}two`, "2", timeoutMs);
      assert.deepEqual(stopped.events.map(eventKey), [`${p}one`]);
      other.stop();
    });

    test("a key written with a TTL is deleted (with a delete event) when not written again; a rewrite without TTL keeps it", async () => {
      const p = freshPrefix("ttl");
      const from = (await s.list(p)).revision;
      const w = record(p, from);
      const lease = await s.create(`${p}lease`, "node-1", { ttlSeconds: ttl });
      assert.ok(lease);
      await s.put(`${p}kept`, "x", { ttlSeconds: ttl });
      const kept = await s.put(`${p}kept`, "y"); // no TTL any more
      const renewed = await s.put(`${p}renewed`, "r", { ttlSeconds: ttl });
      assert.equal((await s.get(`${p}lease`))?.value, "node-1");
      if (subject.elapse) {
        await subject.elapse(ttl * 500);
        const again = await s.update(`${p}renewed`, "r2", renewed.modRevision, { ttlSeconds: ttl });
        assert.ok(again);
        await subject.elapse(ttl * 500 + 1);
        assert.equal(await s.get(`${p}lease`), undefined, "expired");
        assert.equal((await s.get(`${p}renewed`))?.value, "r2", "renewed half-way: alive");
        await subject.elapse(ttl * 1000);
        assert.equal(await s.get(`${p}renewed`), undefined);
      } else {
        await eventually(async () => (await s.get(`${p}lease`)) === undefined, ttl * 1000 + timeoutMs, `${p}lease to expire`);
        await eventually(async () => (await s.get(`${p}renewed`)) === undefined, ttl * 1000 + timeoutMs, `${p}renewed to expire`);
      }
      await w.until(() => w.events.some((e) => e.type === "delete" && e.key === `${p}lease`), timeoutMs, `delete ${p}lease`);
      const del = w.events.find((e) => e.type === "delete" && e.key === `${p}lease`)!;
      assert.ok(eventRev(del) > lease.modRevision);
      assert.deepEqual(await s.get(`${p}kept`), kept, "a rewrite without TTL drops the expiry");
      const recreated = await s.create(`${p}lease`, "node-2");
      assert.ok(recreated && recreated.createRevision > lease.createRevision, "an expired key can be created again");
      w.stop();
    });

    test("bad input is rejected with DatastoreError code invalid", async () => {
      const p = freshPrefix("invalid");
      const isInvalid = (e: unknown): boolean => e instanceof DatastoreError && e.code === "invalid";
      await assert.rejects(s.put("", "x"), isInvalid);
      await assert.rejects(s.create("", "x"), isInvalid);
      await assert.rejects(s.put(`${p}k`, "x", { ttlSeconds: -1 }), isInvalid);
      await assert.rejects(s.put(`${p}k`, "x", { ttlSeconds: Number.NaN }), isInvalid);
      assert.equal(await s.get(`${p}k`), undefined, "a rejected write changes nothing");
    });
  });
}
