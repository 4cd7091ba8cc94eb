// flock(2) on a file, compatible with the Go plugins (go-filemutex uses flock LOCK_EX).
//
// Node has no flock binding and a lock file made with mkdir or O_EXCL would not exclude the
// reference host-local, so the compiled executables (Bun runtime) call libc's flock through
// bun:ffi. Under plain Node (development, unit tests) there is no way to take this lock without a
// native addon, so `openLock` reports that clearly instead of pretending.
import * as fs from "node:fs";
import { libc, libcAvailable } from "../kernel/libc.js";

const LOCK_EX = 2;
const LOCK_UN = 8;

function loadFlock(): (fd: number, op: number) => number {
  if (!libcAvailable()) {
    throw new Error("file locking needs the compiled executables (build/cni/*): flock(2) is not reachable from Node");
  }
  return libc().flock;
}

export interface Lock {
  release(): void;
}

/**
 * Opens (creating if needed, mode 0750 like go-filemutex) `path` and blocks until it holds an
 * exclusive flock on it. The lock is released by `release()` or when the process exits.
 */
export function openLock(path: string): Lock {
  const flock = loadFlock();
  const fd = fs.openSync(path, fs.constants.O_CREAT | fs.constants.O_RDONLY, 0o750);
  // A blocking flock fails only when interrupted by a signal (EINTR): one retry, then give up.
  if (flock(fd, LOCK_EX) !== 0 && flock(fd, LOCK_EX) !== 0) {
    fs.closeSync(fd);
    throw new Error(`cannot lock ${path}`);
  }
  return {
    release() {
      flock(fd, LOCK_UN);
      fs.closeSync(fd);
    },
  };
}
