import assert from "node:assert/strict";
import { test } from "node:test";
import { ObjectStore, type StoredEvent } from "./apiserver-store.js";

const obj = (name: string, v: number): Record<string, unknown> => ({ metadata: { name }, v });

test("one resourceVersion counter across buckets; events carry the previous state", () => {
  const s = new ObjectStore(100);
  const seen: StoredEvent[] = [];
  s.subscribe((e) => seen.push(e));
  assert.equal((s.put("/pods", "ns/a", obj("a", 1)).metadata as { resourceVersion: string }).resourceVersion, "1");
  s.put("/nodes", "n1", obj("n1", 1));
  s.put("/pods", "ns/a", obj("a", 2));
  const gone = s.remove("/pods", "ns/a")!;
  assert.equal((gone.metadata as { resourceVersion: string }).resourceVersion, "4");
  assert.equal(gone.v, 2);
  assert.equal(s.remove("/pods", "ns/a"), undefined);
  assert.deepEqual(seen.map((e) => `${e.rv} ${e.type} ${e.bucket} ${e.key}`), ["1 ADDED /pods ns/a", "2 ADDED /nodes n1", "3 MODIFIED /pods ns/a", "4 DELETED /pods ns/a"]);
  assert.equal(seen[2]!.prev!.v, 1);
});

test("entries at an older resourceVersion are rebuilt from history; beyond it, null", () => {
  const s = new ObjectStore(3);
  s.put("/p", "a", obj("a", 1)); // 1
  s.put("/p", "b", obj("b", 1)); // 2
  s.put("/p", "a", obj("a", 2)); // 3
  s.remove("/p", "b"); //           4
  s.put("/p", "c", obj("c", 1)); // 5
  const at = (rv: number): string[] | null => s.entries("/p", "", rv)?.map(([k, o]) => `${k}${o.v}`) ?? null;
  assert.deepEqual(at(5), ["a2", "c1"]);
  assert.deepEqual(at(3), ["a2", "b1"]);
  assert.deepEqual(at(2), ["a1", "b1"]);
  assert.equal(at(1), null, "history keeps 3 events: 3, 4, 5");
  assert.equal(s.floorRv, 2);
  assert.equal(s.eventsAfter(1), null);
  assert.deepEqual(s.eventsAfter(3)!.map((e) => e.rv), [4, 5]);
  s.compact();
  assert.equal(s.eventsAfter(4), null);
  assert.deepEqual(s.eventsAfter(5), []);
});
