import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, beforeEach, describe, test } from "node:test";
import type { PeerCredentials } from "./peer.js";
import { serveCall, startCniServer, type CniServer } from "./server.js";
import type { PluginIo } from "./skel.js";
import { decodeReply, WIRE_VERSION } from "./wire.js";

const NETNS = "net:[4026531993]";

/** Who the next connections claim to be (the real credentials need the compiled executable's libc). */
let peer: PeerCredentials | { error: string } = { pid: 4242, uid: 0, gid: 0 };
const peerCredentials = (): PeerCredentials | { error: string } => peer;

/** One request over the socket, as the plugin sends it: write, half-close, read to EOF. */
function ask(socketPath: string, body: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.createConnection({ path: socketPath, allowHalfOpen: true });
    let text = "";
    s.setEncoding("utf8");
    s.on("data", (d: string) => (text += d));
    s.on("end", () => resolve(text));
    s.on("error", reject);
    s.end(body);
  });
}

const request = (over: Record<string, unknown> = {}): string =>
  JSON.stringify({ v: WIRE_VERSION, env: { CNI_COMMAND: "ADD", CNI_CONTAINERID: "c1" }, stdin: '{"cniVersion":"1.1.0"}', netns: NETNS, ...over });

/** A stand-in for the plugin: echoes what it was given, so the test sees what the server passed. */
function echoRun(io: PluginIo): number {
  io.stdout(JSON.stringify({ command: io.env.CNI_COMMAND, stdin: io.readStdin() }) + "\n");
  io.stderr("log line\n");
  return io.env.CNI_COMMAND === "DEL" ? 3 : 0;
}

describe("serveCall", () => {
  test("runs the call with the request's environment and stdin and returns exit code and both streams", () => {
    const reply = serveCall({ env: { CNI_COMMAND: "DEL" }, stdin: "{}" }, echoRun);
    assert.deepEqual(reply, { v: WIRE_VERSION, code: 3, stdout: '{"command":"DEL","stdin":"{}"}\n', stderr: "log line\n" });
  });
});

describe("the CNI socket server", () => {
  let dir: string;
  let socketPath: string;
  let server: CniServer;
  const logged: string[] = [];

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "trlunit-cnisock-"));
    socketPath = path.join(dir, "sub", "cni.sock");
    server = await startCniServer({ socketPath, run: echoRun, log: (l) => logged.push(l), netns: NETNS, peerCredentials });
  });
  after(async () => {
    await server?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    peer = { pid: 4242, uid: 0, gid: 0 };
  });

  test("listens on a socket only its owner may use, in a directory it made", () => {
    assert.equal(fs.statSync(socketPath).mode & 0o777, 0o600);
    assert.equal(fs.statSync(path.dirname(socketPath)).mode & 0o777, 0o700);
  });

  test("a peer that is not root is refused even though it reached the socket (the modes are not the only gate)", async () => {
    peer = { pid: 1, uid: 1000, gid: 1000 };
    const reply = decodeReply(await ask(socketPath, request()));
    assert.ok("code" in reply && reply.code === 1 && /"code":104/.test(reply.stdout));
  });

  test("runs a call from its own network namespace and answers with the outcome", async () => {
    const before = server.served;
    const reply = decodeReply(await ask(socketPath, request()));
    assert.deepEqual(reply, { v: WIRE_VERSION, code: 0, stdout: '{"command":"ADD","stdin":"{\\"cniVersion\\":\\"1.1.0\\"}"}\n', stderr: "log line\n" });
    assert.equal(server.served, before + 1);
  });

  test("refuses a user who is not root with CNI error 104 in the config's version, runs nothing, and logs the peer", async () => {
    peer = { pid: 777, uid: 65534, gid: 65534, groups: [65534] };
    const before = { served: server.served, refused: server.refused };
    const reply = decodeReply(await ask(socketPath, request({ stdin: '{"cniVersion":"0.4.0"}' })));
    assert.ok("code" in reply && reply.code === 1, "an answer, not a fallback: the plugin is told why");
    const err = JSON.parse(reply.stdout) as { cniVersion: string; code: number; msg: string; details: string };
    assert.equal(err.code, 104);
    assert.equal(err.cniVersion, "0.4.0");
    assert.match(err.msg, /refused/);
    assert.match(err.details, /uid 65534 is not root/);
    assert.equal(server.served, before.served, "nothing ran");
    assert.equal(server.refused, before.refused + 1);
    assert.match(logged.at(-1) ?? "", /cni: refused a call from pid 777 uid 65534 gid 65534: uid 65534 is not root/);
  });

  test("a caller that cannot be identified is not served: it is told to run the call itself (with its own privileges), and that is logged", async () => {
    peer = { error: "the connection's file descriptor is not available" };
    const before = { served: server.served, refused: server.refused };
    const reply = decodeReply(await ask(socketPath, request()));
    assert.ok("fallback" in reply);
    assert.match(reply.fallback, /cannot tell who the caller is: the connection's file descriptor is not available/);
    assert.equal(server.served, before.served, "nothing ran");
    assert.equal(server.refused, before.refused + 1);
    assert.match(logged.at(-1) ?? "", /cni: refused a call from an unidentified peer/);
  });

  test("declines a call from another network namespace without running it", async () => {
    const before = server.served;
    const reply = decodeReply(await ask(socketPath, request({ netns: "net:[4026532000]" })));
    assert.ok("fallback" in reply, "the plugin is told to run the call itself");
    assert.match(reply.fallback, /net:\[4026532000\] is not the agent's \(net:\[4026531993\]\)/);
    assert.equal(server.served, before, "nothing ran");
  });

  test("declines a malformed request, saying why, without running it", async () => {
    const before = server.served;
    const reply = decodeReply(await ask(socketPath, request({ v: 99 })));
    assert.ok("fallback" in reply);
    assert.match(reply.fallback, /request version 99/);
    assert.equal(server.served, before);
    assert.ok(logged.some((l) => l.includes("bad request")));
  });

  test("a DEL that arrives while another call is waiting is handed back to the plugin; alone, it is run", async () => {
    const waiting = net.createConnection({ path: socketPath, allowHalfOpen: true });
    await new Promise((r) => waiting.once("connect", r));
    try {
      const before = server.served;
      const busy = decodeReply(await ask(socketPath, request({ env: { CNI_COMMAND: "DEL" } })));
      assert.ok("fallback" in busy, "declined while another call waits");
      assert.match(busy.fallback, /busy: 1 other call\(s\) waiting/);
      assert.equal(server.served, before);
      const add = decodeReply(await ask(socketPath, request()));
      assert.ok("code" in add, "other commands are still served");
    } finally {
      waiting.destroy();
    }
    // The server learns of the closed connection a few event-loop turns later.
    let alone = decodeReply(await ask(socketPath, request({ env: { CNI_COMMAND: "DEL" } })));
    for (let i = 0; i < 50 && "fallback" in alone; i++) {
      await new Promise((r) => setImmediate(r));
      alone = decodeReply(await ask(socketPath, request({ env: { CNI_COMMAND: "DEL" } })));
    }
    assert.ok("code" in alone && alone.code === 3, "the DEL ran once nothing else waited");
  });

  test("a second server on a live socket refuses to take it over", async () => {
    await assert.rejects(startCniServer({ socketPath, run: echoRun, log: () => undefined, netns: NETNS }), /already served by another process/);
    assert.ok(fs.existsSync(socketPath), "the live server's socket is left alone");
  });

  test("a stale socket file (its server gone) is replaced, and close removes the socket", async () => {
    const stalePath = path.join(dir, "stale.sock");
    const old = net.createServer().listen(stalePath);
    await new Promise((r) => old.once("listening", r));
    // Node unlinks on close; a crashed process leaves the file behind, so keep it by renaming.
    fs.renameSync(stalePath, `${stalePath}.keep`);
    await new Promise((r) => old.close(r));
    fs.renameSync(`${stalePath}.keep`, stalePath);
    assert.ok(fs.statSync(stalePath).isSocket(), "a socket file nobody listens on");

    const fresh = await startCniServer({ socketPath: stalePath, run: echoRun, log: () => undefined, netns: NETNS, peerCredentials });
    const reply = decodeReply(await ask(stalePath, request()));
    assert.ok("code" in reply && reply.code === 0);
    await fresh.close();
    assert.equal(fs.existsSync(stalePath), false);
  });
});

describe("the CNI socket's directory and group", () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "trlunit-cnisockdir-"));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const start = (socketPath: string, extra: { group?: number; log?: (l: string) => void } = {}): Promise<CniServer> =>
    startCniServer({ socketPath, run: echoRun, log: extra.log ?? (() => undefined), netns: NETNS, peerCredentials, group: extra.group });

  test("an existing directory of ours with looser modes is tightened to 0700, and that is logged", async () => {
    const sub = path.join(dir, "loose");
    fs.mkdirSync(sub, { mode: 0o755 });
    fs.chmodSync(sub, 0o755);
    const logs: string[] = [];
    const s = await start(path.join(sub, "cni.sock"), { log: (l) => logs.push(l) });
    try {
      assert.equal(fs.statSync(sub).mode & 0o7777, 0o700);
      assert.ok(logs.some((l) => l.includes(`tightened ${sub} from 0755 to 0700`)), logs.join("\n"));
    } finally {
      await s.close();
    }
  });

  test("a directory writable by others is refused, left as it is, and no socket is made", async () => {
    const sub = path.join(dir, "shared");
    fs.mkdirSync(sub);
    fs.chmodSync(sub, 0o777);
    await assert.rejects(start(path.join(sub, "cni.sock")), /writable by others or shared \(mode 0777\)/);
    assert.equal(fs.statSync(sub).mode & 0o7777, 0o777);
    assert.equal(fs.existsSync(path.join(sub, "cni.sock")), false);
  });

  test("a path that exists and is not a socket is not replaced", async () => {
    const sub = path.join(dir, "file");
    fs.mkdirSync(sub, { mode: 0o700 });
    fs.writeFileSync(path.join(sub, "cni.sock"), "keep me");
    await assert.rejects(start(path.join(sub, "cni.sock")), /exists and is not a socket/);
    assert.equal(fs.readFileSync(path.join(sub, "cni.sock"), "utf8"), "keep me");
  });

  test("with a group: directory 0750 and socket 0660 of that group, and its members are served", async () => {
    const gid = process.getgid!(); // a group the test may give its own files without root
    const socketPath = path.join(dir, "grouped", "cni.sock");
    const s = await start(socketPath, { group: gid });
    try {
      const d = fs.statSync(path.dirname(socketPath));
      const f = fs.statSync(socketPath);
      assert.deepEqual([d.mode & 0o7777, d.gid, f.mode & 0o777, f.gid], [0o750, gid, 0o660, gid]);
      peer = { pid: 9, uid: 4321, gid: 4321, groups: [4321, gid] };
      const reply = decodeReply(await ask(socketPath, request()));
      assert.ok("code" in reply && reply.code === 0, "a supplementary member is served");
      peer = { pid: 9, uid: 4321, gid: 4321, groups: [4321] };
      const no = decodeReply(await ask(socketPath, request()));
      assert.ok("code" in no && no.code === 1 && /not a member of group/.test(no.stdout));
    } finally {
      await s.close();
    }
  });
});
