// The plugin and the node agent's CNI socket, black-box: the built plugin run as a runtime runs
// it. A call goes to the agent only when the agent can make it exactly as the plugin would; when
// there is no agent, or it declines, the plugin does the work itself; when the agent took the
// call but gave no answer, the runtime hears "try again later" — never a made-up success.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { assertCniError, assertJsonSuccess, assertSilentSuccess } from "../helpers/cni-assert.js";
import { TestHost } from "../helpers/host.js";
import { integrationSkip, linkNames, startCniService, trlLinks, uniq, type CniService, type Netns } from "../helpers/netns.js";

const skip = integrationSkip();
const IFNAME = "eth0";

/** A stand-in agent on a unix socket that reads a whole request and then does `answer`. */
async function fakeAgent(socketPath: string, answer: (conn: net.Socket, request: string) => void): Promise<{ requests: string[]; close(): Promise<void> }> {
  const requests: string[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (conn) => {
    let text = "";
    conn.setEncoding("utf8");
    conn.on("data", (d: string) => (text += d));
    conn.on("end", () => {
      requests.push(text);
      answer(conn, text);
    });
    conn.on("error", () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return { requests, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

describe("the plugin and the node agent's CNI socket", { skip }, () => {
  let node: TestHost;
  let other: Netns;
  let elsewhere: CniService;
  let config: (agentSocket: string) => Record<string, unknown>;
  const cid = (what: string): string => `${what}-${uniq()}`;

  before(async () => {
    node = new TestHost("agentsock");
    other = node.pod("otherhost");
    config = (agentSocket) => ({
      cniVersion: "1.0.0", name: node.network, type: "trellis", agentSocket,
      ipam: { type: "trellis-ipam", dataDir: node.dataDir, ranges: [[{ subnet: "10.78.0.0/24" }]] },
    });
    // A service that runs in another namespace than the plugin's caller.
    elsewhere = await startCniService(other.name, path.join(node.dataDir, "elsewhere.sock"));
  });
  after(async () => {
    await elsewhere?.stop();
    node?.cleanup();
  });

  /** ADD then DEL of one pod; returns the ADD's stderr. */
  function addAndDel(agentSocket: string, what: string): string {
    const pod = node.pod(what);
    const id = cid(what);
    const add = node.run({ command: "ADD", config: config(agentSocket), containerId: id, netns: pod.path, ifname: IFNAME });
    assertJsonSuccess(add);
    assert.ok(linkNames(pod.name).includes(IFNAME), "the pod has its interface");
    assert.equal(trlLinks(node.host.name).length, 1, "the host side is in the caller's namespace");
    assertSilentSuccess(node.run({ command: "DEL", config: config(agentSocket), containerId: id, netns: pod.path, ifname: IFNAME }));
    assert.deepEqual(node.trlLinks(), []);
    assert.deepEqual(node.addressFiles(), []);
    return add.stderr;
  }

  test("an agent in another network namespace declines, and the plugin makes the attachment itself, in its own namespace", () => {
    const stderr = addAndDel(elsewhere.socketPath, "declined");
    assert.doesNotMatch(stderr, /\[agent /, "the plugin did the work");
    assert.deepEqual(trlLinks(other.name), [], "nothing was made in the agent's namespace");
    assert.doesNotMatch(elsewhere.output(), /ADD/, "the agent ran nothing");
  });

  test("with no agent listening (a socket file left by a dead agent, or none at all) the plugin does the work itself", () => {
    const stale = path.join(node.dataDir, "stale.sock");
    fs.writeFileSync(stale, "");
    assert.doesNotMatch(addAndDel(stale, "stale"), /\[agent /);
    assert.doesNotMatch(addAndDel(path.join(node.dataDir, "absent.sock"), "absent"), /\[agent /);
  });

  test("an agent that answers 'run it yourself' gets the plugin to do the work", async () => {
    const socketPath = path.join(node.dataDir, "polite.sock");
    const agent = await fakeAgent(socketPath, (conn) => conn.end(JSON.stringify({ v: 1, fallback: "busy upgrading" })));
    try {
      const pod = node.pod("polite");
      const id = cid("polite");
      const add = node.runAsync({ command: "ADD", config: config(socketPath), containerId: id, netns: pod.path, ifname: IFNAME });
      assertJsonSuccess(await add);
      assert.equal(agent.requests.length, 1);
      const req = JSON.parse(agent.requests[0]!) as { v: number; env: Record<string, string>; stdin: string; netns: string };
      assert.equal(req.v, 1);
      assert.equal(req.env.CNI_COMMAND, "ADD");
      assert.equal(req.env.CNI_CONTAINERID, id);
      assert.deepEqual(JSON.parse(req.stdin), config(socketPath), "stdin is forwarded exactly");
      assert.match(req.netns, /^net:\[\d+\]$/);
      assertSilentSuccess(node.run({ command: "DEL", config: config(""), containerId: id, netns: pod.path, ifname: IFNAME }));
    } finally {
      await agent.close();
    }
  });

  test("an agent that takes the call and closes without an answer: error 11 (try again later) in the config's version", async () => {
    const socketPath = path.join(node.dataDir, "dying.sock");
    const agent = await fakeAgent(socketPath, (conn) => conn.destroy());
    try {
      const pod = node.pod("dying");
      const r = await node.runAsync({ command: "ADD", config: config(socketPath), containerId: cid("dying"), netns: pod.path, ifname: IFNAME });
      const err = assertCniError(r, { code: 11, msg: /no reply/ });
      assert.equal((JSON.parse(r.stdout) as { cniVersion: string }).cniVersion, "1.0.0");
      assert.ok(err.msg.length > 0);
      assert.deepEqual(node.trlLinks(), [], "the plugin did not make the attachment behind the agent's back");
    } finally {
      await agent.close();
    }
  });

  test("an agent's garbled answer is error 11, not a result", async () => {
    const socketPath = path.join(node.dataDir, "garbled.sock");
    const agent = await fakeAgent(socketPath, (conn) => conn.end('{"v":1,"code":0,"stdout":'));
    try {
      const pod = node.pod("garbled");
      const r = await node.runAsync({ command: "ADD", config: config(socketPath), containerId: cid("garbled"), netns: pod.path, ifname: IFNAME });
      assertCniError(r, { code: 11, msg: /not JSON/ });
    } finally {
      await agent.close();
    }
  });

  test("40 concurrent ADDs through one agent: every pod gets its own address, and DEL leaves nothing", async () => {
    const service = await startCniService(node.host.name, path.join(node.dataDir, "crowd.sock"));
    try {
      const n = 40;
      const pods = Array.from({ length: n }, (_, i) => node.pod(`crowd${i}`));
      const ids = pods.map((_, i) => cid(`crowd${i}`));
      const conf = config(service.socketPath);
      const adds = await Promise.all(pods.map((p, i) => node.runAsync({ command: "ADD", config: conf, containerId: ids[i], netns: p.path, ifname: IFNAME })));
      const addresses = adds.map((r) => {
        const res = assertJsonSuccess(r) as { ips: Array<{ address: string }> };
        assert.match(r.stderr, new RegExp(`trellis\\[agent ${service.pid}\\] ADD`));
        return res.ips[0]!.address;
      });
      assert.equal(new Set(addresses).size, n, "no address given twice");
      assert.equal(node.trlLinks().length, n);
      const dels = await Promise.all(pods.map((p, i) => node.runAsync({ command: "DEL", config: conf, containerId: ids[i], netns: p.path, ifname: IFNAME })));
      for (const r of dels) assertSilentSuccess(r);
      assert.deepEqual(node.trlLinks(), []);
      assert.deepEqual(node.addressFiles(), []);
    } finally {
      await service.stop();
    }
  });
});
