import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { decodeGroups, decodeUcred, describePeer, peerDecision, resolveGroup, socketFd } from "./peer.js";
import type * as net from "node:net";

describe("who may use the agent's socket", () => {
  test("root may, whatever its groups", () => {
    assert.deepEqual(peerDecision({ pid: 1, uid: 0, gid: 0 }), { allowed: true, as: "root" });
    assert.deepEqual(peerDecision({ pid: 1, uid: 0, gid: 5, groups: [] }, 1234), { allowed: true, as: "root" });
  });

  test("without a socket group nobody else may, not even a user in group 0", () => {
    const d = peerDecision({ pid: 7, uid: 1000, gid: 0, groups: [0] });
    assert.equal(d.allowed, false);
    assert.match(!d.allowed ? d.why : "", /uid 1000 is not root/);
  });

  test("with a socket group its members may, by primary or supplementary group; others may not", () => {
    assert.equal(peerDecision({ pid: 7, uid: 1000, gid: 1234 }, 1234).allowed, true);
    assert.equal(peerDecision({ pid: 7, uid: 1000, gid: 1000, groups: [1000, 1234] }, 1234).allowed, true);
    const no = peerDecision({ pid: 7, uid: 1000, gid: 1000, groups: [1000, 27] }, 1234);
    assert.equal(no.allowed, false);
    assert.match(!no.allowed ? no.why : "", /uid 1000 is not root and not a member of group 1234$/);
  });

  test("when the kernel cannot list the supplementary groups (before 4.13) only the primary group counts, and the refusal says so", () => {
    const no = peerDecision({ pid: 7, uid: 1000, gid: 1000 }, 1234);
    assert.match(!no.allowed ? no.why : "", /supplementary groups are unknown/);
  });

  test("a peer is named by pid, uid and gid", () => {
    assert.equal(describePeer({ pid: 12, uid: 65534, gid: 65533 }), "pid 12 uid 65534 gid 65533");
  });
});

describe("decoding what the kernel returns", () => {
  test("struct ucred: pid, uid, gid as native 32-bit integers", () => {
    const b = new Uint8Array(12);
    const v = new DataView(b.buffer);
    v.setInt32(0, 31337, true);
    v.setUint32(4, 65534, true);
    v.setUint32(8, 4294967294, true);
    assert.deepEqual(decodeUcred(b), { pid: 31337, uid: 65534, gid: 4294967294 });
    assert.throws(() => decodeUcred(new Uint8Array(8)), /12 bytes/);
  });

  test("SO_PEERGROUPS: as many gids as the returned length holds", () => {
    const b = new Uint8Array(16);
    const v = new DataView(b.buffer);
    [10, 20, 30, 40].forEach((g, i) => v.setUint32(i * 4, g, true));
    assert.deepEqual(decodeGroups(b, 12), [10, 20, 30]);
    assert.deepEqual(decodeGroups(b, 0), []);
  });

  test("the connection's fd is taken from its handle only when it is a plain non-negative integer", () => {
    const conn = (handle: unknown): net.Socket => ({ _handle: handle }) as unknown as net.Socket;
    assert.equal(socketFd(conn({ fd: 7 })), 7);
    assert.equal(socketFd(conn({ fd: -1 })), undefined);
    assert.equal(socketFd(conn({ fd: "7" })), undefined);
    assert.equal(socketFd(conn(undefined)), undefined);
  });
});

describe("the socket group option", () => {
  const GROUPS = "root:x:0:\nadm:x:4:syslog,alice\ncni:x:1234:\nnogroup:x:65534:\n";
  test("a name is looked up in /etc/group; a number is taken as the gid", () => {
    assert.equal(resolveGroup("cni", GROUPS), 1234);
    assert.equal(resolveGroup("0", ""), 0);
    assert.equal(resolveGroup("5000", ""), 5000);
  });
  test("an unknown name is an error naming it", () => {
    assert.throws(() => resolveGroup("wheel", GROUPS), /no group named "wheel"/);
    assert.throws(() => resolveGroup("4294967295", ""), /invalid group id/);
  });
});
