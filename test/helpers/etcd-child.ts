// Runs the etcd datastore client under Bun (the agent binary's runtime) for
// test/integration/datastore-etcd.test.ts: `bun dist/test/helpers/etcd-child.js <url> [ca cert key]`.
// Watches a fresh prefix, races 10 creates of one key, writes a TTL key, and prints one JSON line
// {kind, winners, get, watched}. Without arguments (e.g. `node --test dist/test` runs every file
// under test/) it does nothing.
import { openDatastore } from "../../src/datastore/open.js";
import type { WatchEvent } from "../../src/datastore/types.js";

async function main(url: string, caFile?: string, certFile?: string, keyFile?: string): Promise<void> {
  const store = await openDatastore(url, { caFile, certFile, keyFile });
  const p = `bun-${process.pid}-${Date.now()}/`;
  const events: WatchEvent[] = [];
  const ac = new AbortController();
  const from = (await store.list(p)).revision;
  const seen = new Promise<void>((resolve) => {
    store.watch(p, from, (m) => {
      if ("events" in m) events.push(...m.events);
      if (events.some((e) => e.type === "put" && e.kv.key === `${p}ttl`)) resolve();
    }, ac.signal);
  });
  const results = await Promise.all(Array.from({ length: 10 }, (_, i) => store.create(`${p}race`, String(i))));
  await store.put(`${p}ttl`, "x", { ttlSeconds: 5 });
  const timeout = setTimeout(() => {
    process.stderr.write("watch event not received within 10 s\n");
    process.exit(1);
  }, 10_000);
  await seen;
  clearTimeout(timeout);
  process.stdout.write(`${JSON.stringify({
    kind: store.kind,
    winners: results.filter(Boolean).length,
    get: (await store.get(`${p}race`))?.value,
    watched: events.map((e) => (e.type === "put" ? `put ${e.kv.key.slice(p.length)}` : `delete ${e.key.slice(p.length)}`)),
  })}\n`);
  ac.abort();
  await store.close();
}

const [url, caFile, certFile, keyFile] = process.argv.slice(2);
if (url !== undefined) await main(url, caFile, certFile, keyFile);
