// Several agent processes on one machine share the embedded datastore through its directory. The
// children run under Bun — the runtime of the agent binary, where the store locks with flock(2);
// under Node the lock only covers one process (see src/datastore/DESIGN.md). They write, race
// for one key, compact the log under each other's feet and compete to expire TTL keys; no
// revision may be lost or given twice, exactly one create may win, and a watcher in another
// process must see every change within milliseconds through inotify alone.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as readline from "node:readline";
import { fileURLToPath } from "node:url";
import { after, describe, test } from "node:test";
import { EmbeddedDatastore } from "../../src/datastore/embedded.js";
import type { WatchEvent, WatchMessage } from "../../src/datastore/types.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const BUN = path.join(root, "node_modules", ".bin", "bun");
const CHILD = path.join(root, "dist", "test", "helpers", "datastore-child.js");
const skip = !fs.existsSync(BUN) ? `no Bun at ${BUN}` : !fs.existsSync(CHILD) ? `${CHILD} not built` : false;

interface Child {
  proc: ChildProcess;
  lines: string[];
  /** Resolves with the next line not yet taken. */
  next(): Promise<string>;
  exited: Promise<{ code: number | null; stderr: string }>;
}

const children: Child[] = [];
const dirs: string[] = [];

function startChild(args: string[]): Child {
  const proc = spawn(BUN, [CHILD, ...args], { stdio: ["pipe", "pipe", "pipe"] });
  const lines: string[] = [];
  const waiting: Array<(l: string) => void> = [];
  let taken = 0;
  readline.createInterface({ input: proc.stdout! }).on("line", (l) => {
    lines.push(l);
    const w = waiting.shift();
    if (w) w(lines[taken++]!);
  });
  let stderr = "";
  proc.stderr!.on("data", (d: Buffer) => { stderr += d.toString(); });
  const exited = new Promise<{ code: number | null; stderr: string }>((resolve) => proc.on("close", (code) => resolve({ code, stderr })));
  const child: Child = {
    proc, lines, exited,
    next: () => new Promise((resolve, reject) => {
      if (taken < lines.length) return resolve(lines[taken++]!);
      const timer = setTimeout(() => reject(new Error(`child ${args.join(" ")} said nothing within 20 s; stderr: ${stderr}`)), 20_000);
      waiting.push((l) => { clearTimeout(timer); resolve(l); });
      void exited.then(({ code }) => reject(new Error(`child ${args.join(" ")} exited with ${code}: ${stderr}`)));
    }),
  };
  children.push(child);
  return child;
}

function tempDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "trellis-ds-mp-"));
  dirs.push(d);
  return d;
}

after(() => {
  for (const c of children) if (c.proc.exitCode === null && c.proc.pid !== undefined) c.proc.kill("SIGKILL");
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

const rev = (e: WatchEvent): number => (e.type === "put" ? e.kv.modRevision : e.modRevision);

describe("embedded datastore shared by several Bun processes", { skip }, () => {
  test("6 writers × 60 puts, a create race, TTL sweeps and compactions: every revision once, one winner", async () => {
    const dir = tempDir();
    const N = 6;
    const COUNT = 60;
    // Node reads safely beside the writers (reads take no lock); it must not write, so no sweeps.
    const observer = await EmbeddedDatastore.open(dir, { sweepIntervalMs: 0, pollIntervalMs: 50, compactAfterRecords: 1e9 });
    const seen: WatchMessage[] = [];
    const ac = new AbortController();
    observer.watch("", 0, (m) => seen.push(m), ac.signal);

    const writers = Array.from({ length: N }, (_, i) => startChild(["writer", dir, `w${i}`, String(COUNT), "50"]));
    for (const w of writers) assert.equal(await w.next(), "\"ready\"");
    for (const w of writers) w.proc.stdin!.write("go\n");
    const results = await Promise.all(writers.map(async (w) => JSON.parse(await w.next()) as { id: string; won: boolean; revs: number[]; ttlRev: number }));
    for (const w of writers) assert.equal((await w.exited).code, 0);

    assert.equal(results.filter((r) => r.won).length, 1, "exactly one create of 'race' won");
    const winner = results.find((r) => r.won)!;
    const allRevs = results.flatMap((r) => [...r.revs, r.ttlRev]);
    assert.equal(new Set(allRevs).size, allRevs.length, "no revision was given to two writes");
    for (const r of results) assert.deepEqual(r.revs, [...r.revs].sort((a, b) => a - b), `${r.id}: its own writes in order`);

    // puts + TTL creates + one race create + one delete per TTL key: nothing lost, nothing twice.
    const expected = N * COUNT + N + 1 + N;
    assert.equal(await observer.currentRevision(), expected);
    const items = (await observer.list("")).items;
    assert.equal(items.length, N * COUNT + 1);
    assert.equal((await observer.get("race"))?.value, winner.id);
    for (const r of results) {
      for (let i = 0; i < COUNT; i++) {
        const kv = await observer.get(`k/${r.id}/${i}`);
        assert.equal(kv?.value, `${r.id}:${i}`);
        assert.equal(kv?.modRevision, r.revs[i]);
      }
    }
    assert.deepEqual((await observer.list("ttl/")).items, [], "every TTL key expired");
    assert.ok(fs.readdirSync(dir).filter((f) => f.startsWith("log.")).length <= 2, "old logs are removed");

    // The observer followed the writers across their compactions.
    await new Promise<void>((resolve) => {
      const check = (): void => {
        const last = seen.at(-1);
        if (last && "events" in last && last.revision === expected) resolve();
        else setTimeout(check, 20);
      };
      check();
    });
    const events = seen.flatMap((m) => ("events" in m ? m.events : []));
    const revs = events.map(rev);
    assert.deepEqual(revs, [...new Set(revs)].sort((a, b) => a - b), "each revision once, in order");
    if (!seen.some((m) => "resync" in m)) assert.deepEqual(revs, Array.from({ length: expected }, (_, i) => i + 1));
    const deletes = events.filter((e) => e.type === "delete").map((e) => (e.type === "delete" ? e.key : ""));
    assert.deepEqual(deletes.sort(), results.map((r) => `ttl/${r.id}`).sort(), "one delete event per expired key");
    ac.abort();
    await observer.close();

    // And the directory reopens to the same state.
    const reopened = await EmbeddedDatastore.open(dir, { sweepIntervalMs: 0 });
    assert.deepEqual((await reopened.list("")).items, items);
    await reopened.close();
  });

  test("a watcher in another (Bun) process gets each change within milliseconds through inotify, without polling", async () => {
    const dir = tempDir();
    const writer = await EmbeddedDatastore.open(dir, { sweepIntervalMs: 0 });
    const from = await writer.currentRevision();
    const w = startChild(["watcher", dir, String(from), "end"]);
    assert.equal(await w.next(), "\"ready\"");
    const sent: Array<{ rev: number; t: number }> = [];
    for (let i = 0; i < 30; i++) {
      const t = Date.now();
      const kv = await writer.put(`k${i % 5}`, String(i));
      sent.push({ rev: kv.modRevision, t });
      await new Promise((r) => setTimeout(r, i % 3 === 0 ? 0 : 15)); // bursts and gaps
    }
    await writer.put("end", "x");
    assert.equal((await w.exited).code, 0);
    const got = w.lines.slice(1).map((l) => JSON.parse(l) as WatchMessage & { t: number });
    assert.ok(got.every((m) => "events" in m), "no resync");
    const received = new Map<number, number>();
    for (const m of got) if ("events" in m) for (const e of m.events) received.set(rev(e), m.t);
    assert.deepEqual([...received.keys()], Array.from({ length: 31 }, (_, i) => from + i + 1));
    const latencies = sent.map((s) => received.get(s.rev)! - s.t).sort((a, b) => a - b);
    // Polling is off: without inotify nothing would arrive at all. Allow for a loaded machine.
    assert.ok(latencies.at(-1)! < 1000, `latencies ${latencies.join(",")} ms`);
    process.stderr.write(`# inotify watch latency across processes: median ${latencies[15]} ms, max ${latencies.at(-1)} ms\n`);
    await writer.close();
  });
});
