import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Libc } from "../kernel/libc.js";
import { agentTrusted, callAgent } from "./client.js";

/** A libc whose socket connects, reports `serverUid` as its peer, and records what was sent. */
function fakeLibc(serverUid: number): Libc & { sent: number } {
  const c = {
    sent: 0,
    socket: () => 3,
    connect: () => 0,
    getsockopt: (_fd: number, _level: number, _name: number, value: Uint8Array) => {
      const v = new DataView(value.buffer, value.byteOffset, value.byteLength);
      v.setInt32(0, 4321, true);
      v.setUint32(4, serverUid, true);
      v.setUint32(8, serverUid, true);
      return 0;
    },
    setsockopt: () => 0,
    send: (_fd: number, _buf: Uint8Array, len: number) => {
      c.sent += len;
      return len;
    },
    shutdown: () => 0,
    recv: () => 0,
    close: () => 0,
    errno: () => 0,
  };
  return c as unknown as Libc & { sent: number };
}

describe("the plugin trusts only root's agent", () => {
  test("root's socket, or one of the plugin's own user, may get the call; anyone else's may not", () => {
    assert.equal(agentTrusted(0, 0), true);
    assert.equal(agentTrusted(1000, 1000), true);
    assert.equal(agentTrusted(65534, 0), false);
  });

  test("a socket served by another user is not sent the call: the plugin does it itself", () => {
    const c = fakeLibc(65534);
    const out = callAgent("/run/trellis/cni.sock", { env: {}, stdin: "{}", netns: "net:[1]" }, 1000, c);
    assert.deepEqual(out, { kind: "unavailable", why: "/run/trellis/cni.sock is served by pid 4321 uid 65534, not root: not trusted with the call" });
    assert.equal(c.sent, 0, "not a byte of the request was sent");
  });
});
