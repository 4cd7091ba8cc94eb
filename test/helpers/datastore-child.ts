// A child process for test/integration/datastore-embedded-multiproc.test.ts, run by Bun (the
// runtime of the agent binary, where the embedded store locks with flock(2)) on the compiled
// file: `bun dist/test/helpers/datastore-child.js <mode> <dir> ...`.
//
//   writer <dir> <id> <count> <compactAfter>
//     prints "ready", waits for "go" on stdin, then: creates ttl/<id> (TTL 0.3 s), races to
//     create "race", puts k/<id>/<i> for i < count, and waits until its ttl/<id> is gone (the
//     sweeps of all writers compete for it). Prints one JSON line {id, won, revs, ttlRev}.
//   watcher <dir> <fromRevision> <until-key>
//     watches everything with polling disabled (inotify only) and prints one JSON line per
//     message {t: Date.now(), ...message}; exits after a put of <until-key>.
import * as readline from "node:readline";
import { EmbeddedDatastore } from "../../src/datastore/embedded.js";
import { flockAvailable } from "../../src/datastore/lock.js";

const [mode, dir, ...args] = process.argv.slice(2);
const out = (v: unknown): void => {
  process.stdout.write(`${JSON.stringify(v)}\n`);
};

async function waitForGo(): Promise<void> {
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    if (line.trim() === "go") break;
  }
  rl.close();
}

async function writer(id: string, count: number, compactAfter: number): Promise<void> {
  const store = await EmbeddedDatastore.open(dir!, { compactAfterRecords: compactAfter, sweepIntervalMs: 50 });
  out("ready");
  await waitForGo();
  const ttl = await store.create(`ttl/${id}`, id, { ttlSeconds: 0.3 });
  const race = await store.create("race", id);
  const revs: number[] = [];
  for (let i = 0; i < count; i++) revs.push((await store.put(`k/${id}/${i}`, `${id}:${i}`)).modRevision);
  const deadline = Date.now() + 10_000;
  while ((await store.get(`ttl/${id}`)) !== undefined) {
    if (Date.now() > deadline) throw new Error(`ttl/${id} did not expire`);
    await new Promise((r) => setTimeout(r, 20));
  }
  out({ id, won: race !== undefined, revs, ttlRev: ttl?.modRevision });
  await store.close();
}

async function watcher(from: number, untilKey: string): Promise<void> {
  const store = await EmbeddedDatastore.open(dir!, { pollIntervalMs: 0, sweepIntervalMs: 0 });
  const ac = new AbortController();
  await new Promise<void>((resolve) => {
    store.watch("", from, (m) => {
      out({ t: Date.now(), ...m });
      if ("events" in m && m.events.some((e) => e.type === "put" && e.kv.key === untilKey)) resolve();
    }, ac.signal);
    out("ready");
  });
  ac.abort();
  await store.close();
}

// Without arguments (e.g. `node --test dist/test` runs every file under test/) do nothing.
if (mode !== undefined) {
  if (!flockAvailable()) {
    process.stderr.write("datastore-child must run under Bun (flock through bun:ffi)\n");
    process.exit(2);
  }
  if (mode === "writer") await writer(args[0]!, Number(args[1]), Number(args[2]));
  else if (mode === "watcher") await watcher(Number(args[0]), args[1]!);
  else {
    process.stderr.write(`unknown mode ${mode}\n`);
    process.exit(2);
  }
}
