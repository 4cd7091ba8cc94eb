// libc, reached through bun:ffi in the compiled executables (one dlopen per process: each one
// compiles call trampolines, so the plugin shares this between IPAM locking and netlink).
// Under Node there is no FFI; callers check `libcAvailable()` and fall back or refuse clearly.
import { createRequire } from "node:module";

export interface Libc {
  socket(domain: number, type: number, proto: number): number;
  send(fd: number, buf: Uint8Array, len: number, flags: number): number | bigint;
  recv(fd: number, buf: Uint8Array, len: number, flags: number): number | bigint;
  setns(fd: number, nstype: number): number;
  close(fd: number): number;
  flock(fd: number, op: number): number;
  errno(): number;
}

let loaded: Libc | undefined;

export const libcAvailable = (): boolean => Boolean((globalThis as { Bun?: unknown }).Bun);

export function libc(): Libc {
  if (loaded) return loaded;
  if (!libcAvailable()) throw new Error("libc calls need the compiled executables (Bun's FFI); Node has none");
  const require = createRequire(import.meta.url);
  const ffi = require("bun:ffi") as {
    dlopen(lib: string, syms: Record<string, { args: string[]; returns: string }>): { symbols: Record<string, (...a: unknown[]) => unknown> };
    read: { i32(p: unknown, off?: number): number };
  };
  const s = ffi.dlopen("libc.so.6", {
    socket: { args: ["i32", "i32", "i32"], returns: "i32" },
    send: { args: ["i32", "ptr", "u64", "i32"], returns: "i64" },
    recv: { args: ["i32", "ptr", "u64", "i32"], returns: "i64" },
    setns: { args: ["i32", "i32"], returns: "i32" },
    close: { args: ["i32"], returns: "i32" },
    flock: { args: ["i32", "i32"], returns: "i32" },
    __errno_location: { args: [], returns: "ptr" },
  }).symbols;
  loaded = {
    socket: s.socket as Libc["socket"],
    send: s.send as Libc["send"],
    recv: s.recv as Libc["recv"],
    setns: s.setns as Libc["setns"],
    close: s.close as Libc["close"],
    flock: s.flock as Libc["flock"],
    errno: () => ffi.read.i32(s.__errno_location!(), 0),
  };
  return loaded;
}
