// The on-disk reservation store, laid out exactly like the reference host-local's, so that both
// plugins may share a directory without ever giving out the same address:
//
//   <dataDir>/<network>/<ip>                  one file per reserved address, created O_EXCL,
//                                             content "<containerID>\r\n<ifname>"
//   <dataDir>/<network>/last_reserved_ip.<i>  last address reserved in range set i
//   <dataDir>/<network>/lock                  flock(LOCK_EX) held around every read-modify-write
//
// Creating the address file with O_EXCL is the reservation itself; the flock serialises the
// "find a free address, then take it" sequence between concurrent plugin invocations.
import * as fs from "node:fs";
import * as path from "node:path";
import { childPath } from "../model/child-path.js";
import { parseIp, type Ip } from "../model/ip.js";
import { openLock, type Lock } from "./flock.js";

export interface Owner {
  containerId: string;
  ifname: string;
}

const LAST_RESERVED = "last_reserved_ip.";
const CACHE_REWRITE_AFTER = 8;

export class DiskStore {
  readonly dir: string;
  private readonly lockFn: (p: string) => Lock;
  /** Owners as last read, kept beside (not in) the network directory; see `entries`. */
  private readonly cacheFile: string;

  constructor(dataDir: string, network: string, lockFn: (p: string) => Lock = openLock) {
    // Both names are checked again here: nothing built from a request may leave dataDir.
    this.dir = childPath(dataDir, network);
    this.cacheFile = childPath(dataDir, `.trellis-owners-${network}.json`);
    this.lockFn = lockFn;
  }

  /** Runs `fn` holding the directory's lock. Creates the directory (0755) on first use. */
  locked<T>(fn: () => T): T {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o755 });
    const lock = this.lockFn(path.join(this.dir, "lock"));
    try {
      return fn();
    } finally {
      lock.release();
    }
  }

  /**
   * Every reserved address with its owner. Files whose name is not an IP are ignored.
   *
   * The set of addresses always comes from the directory itself. With `cached`, the owner of an
   * address already seen is taken from the owner cache instead of reading its file again (one
   * read per reservation instead of one per address on every ADD). That is only used where a
   * stale owner is harmless: ADD's "already holds an address" check can at worst refuse, never
   * hand out a taken address. DEL, CHECK and GC read every file.
   */
  entries(opts: { cached?: boolean } = {}): Map<string, Owner> {
    const out = new Map<string, Owner>();
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return out;
      throw e;
    }
    const cache = opts.cached ? this.readCache() : undefined;
    this.freshReads = 0;
    for (const name of names) {
      if (name === "lock" || name.startsWith(LAST_RESERVED) || !parseIp(name)) continue;
      const known = cache?.get(name);
      if (known) {
        out.set(name, known);
        continue;
      }
      let text: string;
      try {
        text = fs.readFileSync(path.join(this.dir, name), "utf8");
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT" || (e as NodeJS.ErrnoException).code === "EISDIR") continue;
        throw e;
      }
      out.set(name, parseOwner(text));
      this.freshReads++;
    }
    return out;
  }

  /** The owner recorded in one reservation file, read now; undefined if there is none. */
  ownerOf(ipText: string): Owner | undefined {
    try {
      return parseOwner(fs.readFileSync(childPath(this.dir, ipText), "utf8"));
    } catch {
      return undefined;
    }
  }

  /** Files `entries` had to read (not found in the owner cache) on its last call. */
  freshReads = 0;

  /**
   * Saves the owner cache when it would save work: rewriting it costs about as much as reading a
   * handful of reservation files, so it is only rewritten once that many were read.
   */
  saveCacheIfWorthIt(entries: ReadonlyMap<string, Owner>): void {
    if (this.freshReads >= CACHE_REWRITE_AFTER) this.saveCache(entries);
  }

  private readCache(): Map<string, Owner> | undefined {
    try {
      const raw = JSON.parse(fs.readFileSync(this.cacheFile, "utf8")) as Record<string, [string, string]>;
      return new Map(Object.entries(raw).map(([ip, [containerId, ifname]]) => [ip, { containerId, ifname }]));
    } catch {
      return undefined;
    }
  }

  /** Records the owners as they are now (call under the lock, after changes). Best effort. */
  saveCache(entries: ReadonlyMap<string, Owner>): void {
    const raw: Record<string, [string, string]> = {};
    for (const [ip, o] of entries) raw[ip] = [o.containerId, o.ifname];
    try {
      const tmp = `${this.cacheFile}.${process.pid}`;
      fs.writeFileSync(tmp, JSON.stringify(raw));
      fs.renameSync(tmp, this.cacheFile);
    } catch {
      // the cache only saves reads; without it every file is read
    }
  }

  lastReserved(setIndex: number): Ip | undefined {
    try {
      return parseIp(fs.readFileSync(path.join(this.dir, LAST_RESERVED + setIndex), "utf8").trim());
    } catch {
      return undefined;
    }
  }

  /** Reserves `ip` for `owner`. Returns false if the address file already exists. */
  reserve(ipText: string, owner: Owner, setIndex: number): boolean {
    const file = childPath(this.dir, ipText);
    let fd: number;
    try {
      fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
      throw e;
    }
    try {
      fs.writeSync(fd, `${owner.containerId}\r\n${owner.ifname}`);
    } catch (e) {
      fs.closeSync(fd);
      fs.rmSync(file, { force: true });
      throw e;
    }
    fs.closeSync(fd);
    fs.writeFileSync(path.join(this.dir, LAST_RESERVED + setIndex), ipText, { mode: 0o600 });
    return true;
  }

  /** Removes one address file. */
  remove(ipText: string): void {
    fs.rmSync(childPath(this.dir, ipText), { force: true });
  }

  /**
   * Addresses held by (containerId, ifname). Like host-local, a legacy file holding only the
   * container id matches when no file matches the full key.
   */
  findByOwner(owner: Owner, entries = this.entries()): string[] {
    const exact: string[] = [];
    const legacy: string[] = [];
    for (const [ip, o] of entries) {
      if (o.containerId !== owner.containerId) continue;
      if (o.ifname === owner.ifname) exact.push(ip);
      else if (o.ifname === "") legacy.push(ip);
    }
    return exact.length > 0 ? exact : legacy;
  }
}

export function parseOwner(text: string): Owner {
  const trimmed = text.trim();
  const sep = trimmed.indexOf("\r\n");
  if (sep < 0) return { containerId: trimmed, ifname: "" };
  return { containerId: trimmed.slice(0, sep).trim(), ifname: trimmed.slice(sep + 2).trim() };
}
