// The datastore copy and the HTTP server together, over an embedded store in a temp dir and a
// loopback port: a change in the store reaches an open event stream as a new snapshot.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { test } from "node:test";
import { EmbeddedDatastore } from "../datastore/embedded.js";
import { CONFIG_KEY, leaseKey } from "../model/lease.js";
import { serveUi } from "./server.js";
import { TopologySource } from "./source.js";
import { topologyFromObjects, type Topology } from "./topology.js";

const leaseValue = (node: string, ip: string) => JSON.stringify({ node, publicIp: ip, backend: "vxlan", renewedAt: Date.now(), expiresAt: Date.now() + 60_000 });

test("the page, the library, a snapshot, and a new snapshot on the event stream after each change", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "trellis-ui-"));
  const store = await EmbeddedDatastore.open(dir, { sweepIntervalMs: 0 });
  const ac = new AbortController();
  try {
    await store.put(CONFIG_KEY, JSON.stringify({ network: "10.244.0.0/16", backend: { type: "vxlan" } }));
    await store.put(leaseKey("10.244.1.0/24"), leaseValue("node1", "192.168.0.11"));
    let changed: () => void = () => undefined;
    const source = new TopologySource({ store, signal: ac.signal, log: () => undefined, onChange: () => { server?.publish(); changed(); } });
    let server: Awaited<ReturnType<typeof serveUi>> | undefined;
    await source.start();
    server = await serveUi({ host: "127.0.0.1", port: 0, cytoscapeJs: "/* cytoscape */", log: () => undefined, snapshot: () => topologyFromObjects(source.objects(), Date.now()) });
    try {
      const page = await (await fetch(server.url)).text();
      assert.match(page, /<script src="\/vendor\/cytoscape.min.js"><\/script>/);
      assert.doesNotMatch(page, /https?:\/\//, "the page loads nothing from elsewhere");
      assert.equal(await (await fetch(`${server.url}vendor/cytoscape.min.js`)).text(), "/* cytoscape */");
      assert.equal((await fetch(`${server.url}nope`)).status, 404);
      const snap = await (await fetch(`${server.url}api/topology`)).json() as Topology;
      assert.deepEqual(snap.nodes.map((n) => n.name), ["node1"]);

      // The event stream: one frame on connect, one more after the store changes.
      const res = await fetch(`${server.url}api/events`, { signal: ac.signal });
      assert.equal(res.headers.get("content-type"), "text/event-stream");
      const reader = res.body!.getReader();
      const frames: Topology[] = [];
      let buf = "";
      const nextFrame = async (): Promise<Topology> => {
        for (;;) {
          const end = buf.indexOf("\n\n");
          if (end >= 0) {
            const frame = buf.slice(0, end);
            buf = buf.slice(end + 2);
            const data = /^data: (.*)$/m.exec(frame)![1]!;
            frames.push(JSON.parse(data) as Topology);
            return frames.at(-1)!;
          }
          const { value, done } = await reader.read();
          assert.ok(!done, "the stream stays open");
          buf += Buffer.from(value).toString("utf8");
        }
      };
      assert.deepEqual((await nextFrame()).nodes.map((n) => n.name), ["node1"]);
      const seen = new Promise<void>((resolve) => { changed = resolve; });
      await store.put(leaseKey("10.244.2.0/24"), leaseValue("node2", "192.168.0.12"));
      await seen;
      assert.deepEqual((await nextFrame()).nodes.map((n) => n.name), ["node1", "node2"]);
      await reader.cancel();
    } finally {
      await server.close();
    }
  } finally {
    ac.abort();
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
