// The etcd datastore against a real etcd (loopback only, temporary data, killed by pid after):
// the shared conformance suite, then what only a server can show — endpoint failover, a watch
// that survives a server restart, compaction, lease hygiene and TLS with client certificates.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { after, describe, test } from "node:test";
import { datastoreConformance, eventually, WatchRecorder } from "../../src/datastore/conformance.js";
import { EtcdDatastore } from "../../src/datastore/etcd.js";
import { openDatastore } from "../../src/datastore/open.js";
import { DatastoreError } from "../../src/datastore/types.js";
import { EtcdServer, etcdSkip, freePort, opensslSkip } from "../helpers/etcd-server.js";

const skip = etcdSkip();
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const BUN = path.join(root, "node_modules", ".bin", "bun");
const BUN_CHILD = path.join(root, "dist", "test", "helpers", "etcd-child.js");
const bunSkip = !fs.existsSync(BUN) ? `no Bun at ${BUN}` : false;

/** Runs the client under Bun against `url`; resolves with its JSON summary. */
function underBun(args: string[]): Promise<{ kind: string; winners: number; get: string; watched: string[] }> {
  return new Promise((resolve, reject) => {
    execFile(BUN, [BUN_CHILD, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`bun ${args.join(" ")}: ${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout) as { kind: string; winners: number; get: string; watched: string[] });
    });
  });
}
const servers: EtcdServer[] = [];
const clients: EtcdDatastore[] = [];

let shared: Promise<EtcdServer> | undefined;
/** One server for most tests, started on first use. */
function sharedServer(): Promise<EtcdServer> {
  shared ??= EtcdServer.start().then((s) => {
    servers.push(s);
    return s;
  });
  return shared;
}

function client(endpoints: string[], extra: Partial<ConstructorParameters<typeof EtcdDatastore>[0]> = {}): EtcdDatastore {
  const c = new EtcdDatastore({ endpoints, backoffMs: { initial: 50, max: 500 }, requestTimeoutMs: 5000, ...extra });
  clients.push(c);
  return c;
}

process.on("exit", () => {
  for (const s of servers) s.killSync();
});
after(async () => {
  for (const c of clients) await c.close();
  for (const s of servers) await s.dispose();
});

/** POSTs to etcd's gateway directly (for what the Datastore interface does not offer). */
function etcdPost(server: EtcdServer, path: string, body: object): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port: server.clientPort, path, method: "POST" }, (res) => {
      let text = "";
      res.on("data", (d: Buffer) => { text += d.toString(); });
      res.on("end", () => resolve(JSON.parse(text) as Record<string, unknown>));
    });
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

datastoreConformance("etcd", async () => ({ store: client([(await sharedServer()).clientUrl]) }), { ttlSeconds: 2, timeoutMs: 10_000, skip });

describe("etcd datastore against a real etcd", { skip }, () => {
  test("4 clients × 5 concurrent creates of one key: exactly one winner", async () => {
    const url = (await sharedServer()).clientUrl;
    const nodes = Array.from({ length: 4 }, () => client([url]));
    const key = `race-${Date.now()}/10.244.7.0-24`;
    const results = await Promise.all(nodes.flatMap((n, i) => Array.from({ length: 5 }, (_, j) => n.create(key, `node-${i}-${j}`))));
    const winners = results.filter(Boolean);
    assert.equal(winners.length, 1);
    assert.deepEqual(await nodes[3]!.get(key), winners[0]);
  });

  test("an unreachable endpoint is skipped; none reachable is 'unavailable' naming them", async () => {
    const server = await sharedServer();
    const dead = `http://127.0.0.1:${await freePort()}`;
    const c = client([dead, server.clientUrl]);
    const kv = await c.put(`failover-${Date.now()}`, "ok");
    assert.equal((await c.get(kv.key))?.value, "ok");
    const none = client([dead]);
    await assert.rejects(none.get("k"), (e: unknown) => e instanceof DatastoreError && e.code === "unavailable" && e.message.includes(dead.slice(7)));
  });

  test("rewriting a TTL key revokes its old lease; a failed create revokes the one it took", async () => {
    const server = await sharedServer();
    const c = client([server.clientUrl]);
    const leases = async (): Promise<number> => ((await etcdPost(server, "/v3/lease/leases", {})).leases as unknown[] | undefined)?.length ?? 0;
    const base = await leases();
    const key = `leases-${Date.now()}`;
    await c.put(key, "1", { ttlSeconds: 60 });
    await c.put(key, "2", { ttlSeconds: 60 });
    const kv = await c.put(key, "3", { ttlSeconds: 60 });
    assert.equal(await c.create(key, "again", { ttlSeconds: 60 }), undefined);
    assert.equal(await c.update(key, "stale", kv.modRevision - 1, { ttlSeconds: 60 }), undefined);
    await eventually(async () => (await leases()) === base + 1, 5000, "one live lease for the key");
    await c.put(key, "no ttl");
    await eventually(async () => (await leases()) === base, 5000, "its lease revoked when written without TTL");
    assert.equal((await c.get(key))?.value, "no ttl");
  });

  test("compaction past a watcher's revision: resync, then the later changes", async () => {
    const server = await sharedServer();
    const c = client([server.clientUrl]);
    const p = `compact-${Date.now()}/`;
    const first = await c.put(`${p}a`, "1");
    const second = await c.put(`${p}a`, "2");
    await etcdPost(server, "/v3/kv/compaction", { revision: String(second.modRevision), physical: true });
    const w = new WatchRecorder(c, p, first.modRevision - 1);
    await w.until(() => w.resyncs === 1, 10_000, "a resync");
    await c.put(`${p}b`, "after");
    await w.untilPut(`${p}b`, "after", 10_000);
    assert.ok("resync" in w.messages[0]!);
    assert.ok(w.events.every((e) => (e.type === "put" ? e.kv.modRevision : e.modRevision) >= second.modRevision));
    w.stop();
  });

  test("a watch survives an etcd restart: resync while it is down, then the changes made after", async () => {
    const server = await EtcdServer.start();
    servers.push(server);
    const c = client([server.clientUrl]);
    const p = "restart/";
    const from = (await c.list(p)).revision;
    const w = new WatchRecorder(c, p, from);
    await c.put(`${p}before`, "1");
    await w.untilPut(`${p}before`, "1", 10_000);
    assert.equal(w.resyncs, 0);

    await server.stop();
    await w.until(() => w.resyncs >= 1, 10_000, "a resync when the stream breaks");
    await assert.rejects(c.get(`${p}before`), (e: unknown) => e instanceof DatastoreError && e.code === "unavailable");

    await server.start();
    const list = await c.list(p); // what a handler does on resync
    assert.deepEqual(list.items.map((kv) => kv.key), [`${p}before`]);
    await c.put(`${p}after`, "2");
    await w.untilPut(`${p}after`, "2", 15_000);
    const afterResync = w.messages.slice(w.messages.findIndex((m) => "resync" in m) + 1);
    const events = afterResync.flatMap((m) => ("events" in m ? m.events : []));
    assert.ok(events.some((e) => e.type === "put" && e.kv.key === `${p}after`));
    assert.ok(w.resyncs <= 2, `one resync per outage, got ${w.resyncs}`);
    w.stop();
  });

  test("a frozen server (SIGSTOP) is noticed by the watch's liveness probe: resync, and the changes after it thaws", async () => {
    const server = await EtcdServer.start();
    servers.push(server);
    const c = client([server.clientUrl], { requestTimeoutMs: 1000, watchProbe: { intervalMs: 200, timeoutMs: 500 } });
    const p = "frozen/";
    const w = new WatchRecorder(c, p, (await c.list(p)).revision);
    await c.put(`${p}before`, "1");
    await w.untilPut(`${p}before`, "1", 10_000);
    server.freeze();
    try {
      await w.until(() => w.resyncs >= 1, 10_000, "a resync while the server is frozen");
      await assert.rejects(c.get(`${p}before`), (e: unknown) => e instanceof DatastoreError && e.code === "unavailable");
    } finally {
      server.thaw();
    }
    await c.put(`${p}after`, "2");
    await w.untilPut(`${p}after`, "2", 15_000);
  });

  test("the same client under Bun, the agent binary's runtime: one race winner, the watch sees the writes", { skip: bunSkip }, async () => {
    const server = await sharedServer();
    const r = await underBun([`etcd://127.0.0.1:${server.clientPort}`]);
    assert.equal(r.kind, "etcd");
    assert.equal(r.winners, 1);
    assert.deepEqual(r.watched, ["put race", "put ttl"]);
    assert.match(r.get, /^\d$/);
  });

  describe("TLS with client certificates", { skip: opensslSkip() }, () => {
    test("etcds:// with CA, certificate and key works; without the client certificate it is refused", async () => {
      const server = await EtcdServer.start({ tls: true });
      servers.push(server);
      const tls = server.tls!;
      const url = `etcds://127.0.0.1:${server.clientPort}`;
      const s = await openDatastore(url, { caFile: tls.caFile, certFile: tls.certFile, keyFile: tls.keyFile });
      try {
        const w = new WatchRecorder(s, "tls/", (await s.list("tls/")).revision);
        const kv = await s.create("tls/k", "secret");
        assert.ok(kv);
        assert.deepEqual(await s.get("tls/k"), kv);
        await w.untilPut("tls/k", "secret", 10_000);
        w.stop();
      } finally {
        await s.close();
      }
      if (!bunSkip) {
        const r = await underBun([url, tls.caFile, tls.certFile, tls.keyFile]);
        assert.equal(r.winners, 1, "under Bun too");
      }
      const noCert = await openDatastore(url, { caFile: tls.caFile });
      try {
        await assert.rejects(noCert.get("tls/k"), (e: unknown) => e instanceof DatastoreError);
      } finally {
        await noCert.close();
      }
      const noCa = await openDatastore(url, { certFile: tls.certFile, keyFile: tls.keyFile });
      try {
        await assert.rejects(noCa.get("tls/k"), (e: unknown) => e instanceof DatastoreError && /certificate/i.test(e.message));
      } finally {
        await noCa.close();
      }
    });
  });
});
