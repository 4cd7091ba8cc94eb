import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, beforeEach, describe, it } from "node:test";
import { formatIp } from "../model/ip.js";
import type { Lock } from "./flock.js";
import { DiskStore, parseOwner } from "./store.js";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "trellis-store-"));
after(() => fs.rmSync(root, { recursive: true, force: true }));

let n = 0;
const noLock = (): Lock => ({ release() {} });
const read = (store: DiskStore, name: string): string => fs.readFileSync(path.join(store.dir, name), "utf8");

describe("DiskStore", () => {
  let store: DiskStore;
  beforeEach(() => {
    store = new DiskStore(path.join(root, `data${n++}`), "net1", noLock);
  });

  it("keeps one directory per network under the data directory", () => {
    assert.equal(path.basename(store.dir), "net1");
    assert.ok(store.dir.startsWith(root));
  });

  it("reserves an address as a file named by the IP holding '<id>\\r\\n<ifname>', like host-local", () => {
    assert.equal(store.locked(() => store.reserve("10.1.0.2", { containerId: "ctr1", ifname: "eth0" }, 0)), true);
    assert.equal(read(store, "10.1.0.2"), "ctr1\r\neth0");
    assert.equal((fs.statSync(path.join(store.dir, "10.1.0.2")).mode & 0o777), 0o600);
  });

  it("records the address last reserved in each range set in last_reserved_ip.<set>", () => {
    store.locked(() => {
      store.reserve("10.1.0.2", { containerId: "ctr1", ifname: "eth0" }, 0);
      store.reserve("2001:db8:1::2", { containerId: "ctr1", ifname: "eth0" }, 1);
      store.reserve("10.1.0.3", { containerId: "ctr2", ifname: "eth0" }, 0);
    });
    assert.equal(read(store, "last_reserved_ip.0"), "10.1.0.3");
    assert.equal(read(store, "last_reserved_ip.1"), "2001:db8:1::2");
    assert.equal(store.lastReserved(0) && formatIp(store.lastReserved(0)!), "10.1.0.3");
    assert.equal(store.lastReserved(1) && formatIp(store.lastReserved(1)!), "2001:db8:1::2");
  });

  it("refuses to reserve an address whose file exists, leaving the owner unchanged", () => {
    store.locked(() => {
      assert.equal(store.reserve("10.1.0.2", { containerId: "ctr1", ifname: "eth0" }, 0), true);
      assert.equal(store.reserve("10.1.0.2", { containerId: "ctr2", ifname: "eth0" }, 0), false);
    });
    assert.equal(read(store, "10.1.0.2"), "ctr1\r\neth0");
  });

  it("lists reservations with their owners, ignoring the lock, last_reserved_ip.* and other files", () => {
    store.locked(() => {
      store.reserve("10.1.0.2", { containerId: "ctr1", ifname: "eth0" }, 0);
      store.reserve("10.1.0.3", { containerId: "ctr2", ifname: "net1" }, 0);
    });
    fs.writeFileSync(path.join(store.dir, "lock"), "");
    fs.writeFileSync(path.join(store.dir, "README"), "hello");
    fs.mkdirSync(path.join(store.dir, "10.1.0.99"));
    assert.deepEqual(new Map([...store.entries()].sort()), new Map([
      ["10.1.0.2", { containerId: "ctr1", ifname: "eth0" }],
      ["10.1.0.3", { containerId: "ctr2", ifname: "net1" }],
    ]));
  });

  it("has no entries and no last reservation before the directory exists", () => {
    assert.equal(fs.existsSync(store.dir), false);
    assert.equal(store.entries().size, 0);
    assert.equal(store.lastReserved(0), undefined);
  });

  it("reads a last_reserved_ip with a trailing newline and ignores one that is not an address", () => {
    fs.mkdirSync(store.dir, { recursive: true });
    fs.writeFileSync(path.join(store.dir, "last_reserved_ip.0"), "10.1.0.7\n");
    fs.writeFileSync(path.join(store.dir, "last_reserved_ip.1"), "garbage");
    assert.equal(formatIp(store.lastReserved(0)!), "10.1.0.7");
    assert.equal(store.lastReserved(1), undefined);
  });

  it("removes an address file, and removing it again is harmless", () => {
    store.locked(() => store.reserve("10.1.0.2", { containerId: "ctr1", ifname: "eth0" }, 0));
    store.remove("10.1.0.2");
    store.remove("10.1.0.2");
    assert.equal(fs.existsSync(path.join(store.dir, "10.1.0.2")), false);
    assert.equal(read(store, "last_reserved_ip.0"), "10.1.0.2", "the round-robin position survives the release");
  });

  it("finds an owner's addresses by container id and interface name", () => {
    store.locked(() => {
      store.reserve("10.1.0.2", { containerId: "ctr1", ifname: "eth0" }, 0);
      store.reserve("2001:db8:1::2", { containerId: "ctr1", ifname: "eth0" }, 1);
      store.reserve("10.1.0.3", { containerId: "ctr1", ifname: "eth1" }, 0);
      store.reserve("10.1.0.4", { containerId: "ctr2", ifname: "eth0" }, 0);
    });
    assert.deepEqual(store.findByOwner({ containerId: "ctr1", ifname: "eth0" }).sort(), ["10.1.0.2", "2001:db8:1::2"]);
    assert.deepEqual(store.findByOwner({ containerId: "ctr3", ifname: "eth0" }), []);
  });

  it("matches a legacy file holding only the container id when no file matches id and interface", () => {
    fs.mkdirSync(store.dir, { recursive: true });
    fs.writeFileSync(path.join(store.dir, "10.1.0.9"), "ctr1");
    assert.deepEqual(store.findByOwner({ containerId: "ctr1", ifname: "eth0" }), ["10.1.0.9"]);
    store.locked(() => store.reserve("10.1.0.10", { containerId: "ctr1", ifname: "eth0" }, 0));
    assert.deepEqual(store.findByOwner({ containerId: "ctr1", ifname: "eth0" }), ["10.1.0.10"], "an exact match wins");
  });

  it("takes the lock on <dir>/lock around the work and releases it, even when the work throws", () => {
    const log: string[] = [];
    const locking = new DiskStore(path.join(root, `data${n++}`), "net1", (p) => {
      log.push(`lock ${p}`);
      return { release: () => log.push("release") };
    });
    assert.equal(locking.locked(() => (log.push("work"), 42)), 42);
    assert.throws(() => locking.locked(() => {
      throw new Error("boom");
    }), /boom/);
    const lockPath = path.join(locking.dir, "lock");
    assert.deepEqual(log, [`lock ${lockPath}`, "work", "release", `lock ${lockPath}`, "release"]);
    assert.ok(fs.statSync(locking.dir).isDirectory(), "the directory is created on first use");
  });
});

describe("parseOwner", () => {
  it("reads '<id>\\r\\n<ifname>'", () => {
    assert.deepEqual(parseOwner("ctr1\r\neth0"), { containerId: "ctr1", ifname: "eth0" });
  });

  it("reads a legacy file holding only the id as an empty interface name", () => {
    assert.deepEqual(parseOwner("ctr1"), { containerId: "ctr1", ifname: "" });
    assert.deepEqual(parseOwner("ctr1\n"), { containerId: "ctr1", ifname: "" });
  });

  it("ignores surrounding whitespace", () => {
    assert.deepEqual(parseOwner("  ctr1 \r\n eth0 \n"), { containerId: "ctr1", ifname: "eth0" });
  });
});
