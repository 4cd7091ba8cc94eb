// The lock that serialises every read-modify-write of the embedded datastore.
//
// Across processes the only lock that works on every Linux filesystem, dies with its holder and
// needs no cleanup is flock(2). Node has no binding for it (and no native addons are allowed
// here), so the compiled executables (Bun) call libc's flock through the one libc binding of
// src/kernel/libc.ts, as src/ipam/flock.ts does. Unlike the IPAM, the datastore must not block its event loop while another agent holds
// the lock, so it polls with LOCK_NB and a short async backoff.
//
// Under plain Node (unit tests, development) `inProcessLocker` is used instead: it serialises the
// stores of ONE process (every store on the same directory shares one queue), and does nothing
// against another process. Several Node processes writing one directory are therefore NOT safe;
// see DESIGN.md.
import * as fs from "node:fs";
import { libc, libcAvailable, type Libc } from "../kernel/libc.js";
import * as path from "node:path";
import { DatastoreError } from "./types.js";

/** An exclusive lock on one lock file. `acquire` resolves with the function that releases it. */
export interface Locker {
  readonly name: string;
  acquire(): Promise<() => void>;
  /** Frees resources (the lock file descriptor); the locker is unusable afterwards. */
  close(): void;
}

/** Makes the Locker for a lock file path. */
export type LockerFactory = (lockFile: string) => Locker;

/** A FIFO async mutex: `run` grants the lock in call order. */
class Mutex {
  private tail: Promise<void> = Promise.resolve();
  acquire(): Promise<() => void> {
    let release!: () => void;
    const next = new Promise<void>((resolve) => { release = resolve; });
    const granted = this.tail.then(() => release);
    this.tail = this.tail.then(() => next);
    return granted;
  }
}

const processMutexes = new Map<string, Mutex>();

function processMutex(lockFile: string): Mutex {
  const key = path.resolve(lockFile);
  let m = processMutexes.get(key);
  if (!m) {
    m = new Mutex();
    processMutexes.set(key, m);
  }
  return m;
}

/**
 * Serialises the stores of this process that use `lockFile`; no protection against other
 * processes. The default under Node.
 */
export const inProcessLocker: LockerFactory = (lockFile) => {
  const mutex = processMutex(lockFile);
  return { name: "in-process", acquire: () => mutex.acquire(), close() {} };
};

const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;

/** True when flock(2) can be reached (running under Bun). */
export const flockAvailable = libcAvailable;

/** The process's one libc binding (kernel/libc.ts), shared with IPAM locking and netlink. */
function loadFlock(): Libc["flock"] {
  if (!flockAvailable()) throw new DatastoreError("internal", "flock(2) is reachable only under Bun (bun:ffi); Node has no binding");
  return libc().flock;
}

export interface FlockOptions {
  /** Give up (DatastoreError "unavailable") after waiting this long; default 30 s. */
  timeoutMs?: number;
}

/**
 * flock(LOCK_EX) on `lockFile`, multi-process safe; needs Bun. Callers in one process first queue
 * on an in-process mutex (so one process never polls against itself), then poll flock with
 * LOCK_NB, sleeping 1, 2, 4 … 20 ms between attempts so the event loop keeps running.
 */
export function flockLocker(opts: FlockOptions = {}): LockerFactory {
  return (lockFile) => {
    const flock = loadFlock();
    const mutex = processMutex(lockFile);
    const fd = fs.openSync(lockFile, fs.constants.O_CREAT | fs.constants.O_RDONLY, 0o600);
    const timeoutMs = opts.timeoutMs ?? 30_000;
    let closed = false;
    return {
      name: "flock",
      async acquire() {
        const releaseMutex = await mutex.acquire();
        try {
          const start = Date.now();
          let delay = 1;
          while (flock(fd, LOCK_EX | LOCK_NB) !== 0) {
            if (closed) throw new DatastoreError("unavailable", `lock ${lockFile} closed`);
            if (Date.now() - start > timeoutMs) {
              throw new DatastoreError("unavailable", `cannot lock ${lockFile}: held by another process for more than ${timeoutMs} ms`);
            }
            await new Promise((r) => setTimeout(r, delay));
            delay = Math.min(delay * 2, 20);
          }
        } catch (e) {
          releaseMutex();
          throw e;
        }
        return () => {
          flock(fd, LOCK_UN);
          releaseMutex();
        };
      },
      close() {
        if (closed) return;
        closed = true;
        fs.closeSync(fd);
      },
    };
  };
}

/** flock under Bun, the in-process lock under Node. */
export function defaultLocker(): LockerFactory {
  return flockAvailable() ? flockLocker() : inProcessLocker;
}
