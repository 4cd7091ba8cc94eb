import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { AgentHealth } from "./agent.js";
import { parseListenAddr, probeHealth, serveHealth } from "./health.js";

describe("agent health endpoints", () => {
  test("--health-addr is HOST:PORT", () => {
    assert.deepEqual(parseListenAddr("127.0.0.1:9099"), { host: "127.0.0.1", port: 9099 });
    assert.deepEqual(parseListenAddr("[::1]:9099"), { host: "::1", port: 9099 });
    for (const bad of ["9099", "127.0.0.1:99999", "host name:1", "127.0.0.1:"]) assert.throws(() => parseListenAddr(bad), /--health-addr/);
  });

  test("/healthz and /readyz answer 200 or 503 with the reason; probe exits accordingly", async () => {
    let h: AgentHealth = { live: true, ready: false, reason: "first kernel sync not done" };
    const server = await serveHealth("127.0.0.1:0", () => h);
    try {
      const port = (server.address() as { port: number }).port;
      const addr = `127.0.0.1:${port}`;
      assert.deepEqual(await probeHealth(addr, "live"), [true, "ok: first kernel sync not done"]);
      assert.deepEqual(await probeHealth(addr, "ready"), [false, "not ok: first kernel sync not done"]);
      h = { live: true, ready: true, reason: "ready: 10.244.1.0/24" };
      assert.deepEqual(await probeHealth(addr, "ready"), [true, "ok: ready: 10.244.1.0/24"]);
      const other = await fetch(`http://${addr}/metrics`);
      assert.equal(other.status, 404);
    } finally {
      server.close();
    }
  });

  test("no agent listening: the probe fails and says so", async () => {
    const server = await serveHealth("127.0.0.1:0", () => ({ live: true, ready: true, reason: "x" }));
    const port = (server.address() as { port: number }).port;
    await new Promise((r) => server.close(r));
    const [ok, said] = await probeHealth(`127.0.0.1:${port}`, "live");
    assert.equal(ok, false);
    assert.match(said, /ECONNREFUSED/);
  });
});
