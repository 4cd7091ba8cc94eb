// libc, reached through bun:ffi in the compiled executables: one binding per process, shared by
// the agent-socket client, IPAM locking and netlink.
// Under Node there is no FFI; callers check `libcAvailable()` and fall back or refuse clearly.
import { createRequire } from "node:module";

export interface Libc {
  socket(domain: number, type: number, proto: number): number;
  send(fd: number, buf: Uint8Array, len: number, flags: number): number | bigint;
  recv(fd: number, buf: Uint8Array, len: number, flags: number): number | bigint;
  setns(fd: number, nstype: number): number;
  close(fd: number): number;
  flock(fd: number, op: number): number;
  read(fd: number, buf: Uint8Array, len: number): number | bigint;
  write(fd: number, buf: Uint8Array, len: number): number | bigint;
  connect(fd: number, addr: Uint8Array, len: number): number;
  shutdown(fd: number, how: number): number;
  setsockopt(fd: number, level: number, name: number, value: Uint8Array, len: number): number;
  /** `len` is a 4-byte in/out socklen_t. */
  getsockopt(fd: number, level: number, name: number, value: Uint8Array, len: Uint32Array): number;
  /** ioctl(2) with no argument (e.g. NS_GET_NSTYPE). */
  ioctl(fd: number, request: number): number;
  readlink(path: Uint8Array, buf: Uint8Array, len: number): number | bigint;
  errno(): number;
}

let loaded: Libc | undefined;

export const libcAvailable = (): boolean => Boolean((globalThis as { Bun?: unknown }).Bun);

type SymbolSpec = Record<string, { args: string[]; returns: string }>;

const SYMBOLS: SymbolSpec = {
  socket: { args: ["i32", "i32", "i32"], returns: "i32" },
  send: { args: ["i32", "ptr", "u64", "i32"], returns: "i64" },
  recv: { args: ["i32", "ptr", "u64", "i32"], returns: "i64" },
  setns: { args: ["i32", "i32"], returns: "i32" },
  close: { args: ["i32"], returns: "i32" },
  flock: { args: ["i32", "i32"], returns: "i32" },
  read: { args: ["i32", "ptr", "u64"], returns: "i64" },
  write: { args: ["i32", "ptr", "u64"], returns: "i64" },
  connect: { args: ["i32", "ptr", "u32"], returns: "i32" },
  shutdown: { args: ["i32", "i32"], returns: "i32" },
  setsockopt: { args: ["i32", "i32", "i32", "ptr", "u32"], returns: "i32" },
  getsockopt: { args: ["i32", "i32", "i32", "ptr", "ptr"], returns: "i32" },
  ioctl: { args: ["i32", "u64"], returns: "i32" },
  readlink: { args: ["ptr", "ptr", "u64"], returns: "i64" },
  __errno_location: { args: [], returns: "ptr" },
};

export function libc(): Libc {
  if (loaded) return loaded;
  if (!libcAvailable()) throw new Error("libc calls need the compiled executables (Bun's FFI); Node has none");
  const require = createRequire(import.meta.url);
  const ffi = require("bun:ffi") as {
    dlopen(lib: string, syms: SymbolSpec): { symbols: Record<string, (...a: unknown[]) => unknown> };
    read: { i32(p: unknown, off?: number): number };
  };
  const s = ffi.dlopen("libc.so.6", SYMBOLS).symbols;
  loaded = {
    socket: s.socket as Libc["socket"],
    send: s.send as Libc["send"],
    recv: s.recv as Libc["recv"],
    setns: s.setns as Libc["setns"],
    close: s.close as Libc["close"],
    flock: s.flock as Libc["flock"],
    read: s.read as Libc["read"],
    write: s.write as Libc["write"],
    connect: s.connect as Libc["connect"],
    shutdown: s.shutdown as Libc["shutdown"],
    setsockopt: s.setsockopt as Libc["setsockopt"],
    getsockopt: s.getsockopt as Libc["getsockopt"],
    ioctl: s.ioctl as Libc["ioctl"],
    readlink: s.readlink as Libc["readlink"],
    errno: () => ffi.read.i32(s.__errno_location!(), 0),
  };
  return loaded;
}
