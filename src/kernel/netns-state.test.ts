import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { classifyNetns, CLONE_NEWNET, isKernelThread, NET_NS_INIT_INO, NSFS_MAGIC, type NetnsFacts } from "./netns-state.js";

const OWN = { dev: 4n, ino: 4026532100n };
const INIT = { dev: 4n, ino: 4026531993n };
const POD = { dev: 4n, ino: 4026532555n };
const facts = (over: Partial<NetnsFacts>): NetnsFacts => ({ target: POD, fsType: NSFS_MAGIC, nsType: CLONE_NEWNET, own: [OWN], initial: [INIT], ...over });

describe("is CNI_NETNS a pod's network namespace", () => {
  test("another network namespace is", () => {
    assert.equal(classifyNetns(facts({})), "ok");
    assert.equal(classifyNetns(facts({ nsType: undefined })), "ok", "no FFI (Node): nsfs alone");
  });

  test("a path that does not exist is missing; one that cannot be opened is inaccessible", () => {
    assert.equal(classifyNetns(facts({ target: { error: "ENOENT" } })), "missing");
    assert.equal(classifyNetns(facts({ target: { error: "ENOTDIR" } })), "missing");
    assert.equal(classifyNetns(facts({ target: { error: "EACCES" } })), "inaccessible");
  });

  test("a file on another filesystem, or a namespace of another type, is not a network namespace", () => {
    assert.equal(classifyNetns(facts({ fsType: 0xef53 })), "not-a-netns", "ext4: a regular file");
    assert.equal(classifyNetns(facts({ fsType: 0x9fa0 })), "not-a-netns", "procfs: /proc/version");
    assert.equal(classifyNetns(facts({ nsType: 0x00020000 })), "not-a-netns", "a mount namespace");
  });

  test("the caller's own namespace and the initial one are the host's", () => {
    assert.equal(classifyNetns(facts({ target: OWN })), "self");
    assert.equal(classifyNetns(facts({ target: INIT })), "host");
    assert.equal(classifyNetns(facts({ target: { dev: 4n, ino: NET_NS_INIT_INO }, initial: [] })), "host",
      "known by its fixed inode (Linux 6.18+) when neither /proc/1 nor a kernel thread could be looked at");
  });

  test("a kernel thread is told by PF_KTHREAD in /proc/<pid>/stat, even with a name holding ') '", () => {
    assert.equal(isKernelThread("2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 2 0 0"), true);
    assert.equal(isKernelThread("2 (sh) S 1 2 2 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 9 0 0"), false);
    assert.equal(isKernelThread("2 (a) S 0 0 0 0 -1 2129984 (x) S 1 1 1 0 -1 4194560 0"), false, "the last ')' counts");
  });
});
