// The plugin's side of the agent protocol (wire.ts): stdin, the netns identity and one unix-socket
// round trip, all as plain libc calls through bun:ffi. Nothing here imports node:fs or node:net:
// loading those costs the compiled executable about 1.5 ms at start-up, more than the whole
// round trip, and this path exists to save start-up time.
import { libc, type Libc } from "../kernel/libc.js";
import { decodeUcred } from "./peer.js";
import { decodeReply, WIRE_VERSION, type WireRequest } from "./wire.js";

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0x80000;
const SOL_SOCKET = 1;
const SO_RCVTIMEO = 20;
const SO_SNDTIMEO = 21;
const SO_PEERCRED = 17;
const SHUT_WR = 1;
const MSG_NOSIGNAL = 0x4000;
const EINTR = 4;
const EAGAIN = 11;
const SUN_PATH_MAX = 108;

export type AgentOutcome =
  /** The agent ran the call: print this and exit with `code`. */
  | { kind: "reply"; code: number; stdout: string; stderr: string }
  /** Nothing was done: no agent, or it declined. The plugin runs the call itself. */
  | { kind: "unavailable"; why: string }
  /** The request was sent but no usable answer came back: the call may or may not have happened. */
  | { kind: "failed"; why: string };

const cString = (s: string): Uint8Array => new TextEncoder().encode(s + "\0");

/** Reads all of fd 0. */
export function readStdin(c: Libc = libc()): string {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const buf = new Uint8Array(65536);
    const n = Number(c.read(0, buf, buf.length));
    if (n < 0) {
      if (c.errno() === EINTR) continue;
      throw new Error(`reading stdin: errno ${c.errno()}`);
    }
    if (n === 0) break;
    chunks.push(buf.subarray(0, n));
    total += n;
  }
  return decode(chunks, total);
}

function decode(chunks: Uint8Array[], total: number): string {
  const all = new Uint8Array(total);
  let off = 0;
  for (const ch of chunks) {
    all.set(ch, off);
    off += ch.length;
  }
  return new TextDecoder().decode(all);
}

/** Writes all of `text` to `fd` (1 or 2); false if the fd is closed or failing. */
export function writeFd(fd: number, text: string, c: Libc = libc()): boolean {
  const bytes = new TextEncoder().encode(text);
  let off = 0;
  while (off < bytes.length) {
    const n = Number(c.write(fd, bytes.subarray(off), bytes.length - off));
    if (n < 0) {
      const errno = c.errno();
      if (errno === EINTR || errno === EAGAIN) continue;
      return false;
    }
    off += n;
  }
  return true;
}

/** This thread's network namespace as the kernel names it, e.g. `net:[4026531993]`. */
export function ownNetns(c: Libc = libc()): string {
  const buf = new Uint8Array(64);
  const n = Number(c.readlink(cString("/proc/thread-self/ns/net"), buf, buf.length));
  return n > 0 ? new TextDecoder().decode(buf.subarray(0, n)) : "";
}

function sockaddrUn(path: string): Uint8Array | undefined {
  const bytes = new TextEncoder().encode(path);
  if (bytes.length >= SUN_PATH_MAX) return undefined;
  const addr = new Uint8Array(2 + SUN_PATH_MAX);
  addr[0] = AF_UNIX; // sa_family, little-endian u16
  addr.set(bytes, 2);
  return addr;
}

function timeval(ms: number): Uint8Array {
  const tv = new DataView(new ArrayBuffer(16));
  tv.setBigInt64(0, BigInt(Math.floor(ms / 1000)), true);
  tv.setBigInt64(8, BigInt((ms % 1000) * 1000), true);
  return new Uint8Array(tv.buffer);
}

/**
 * Whether the process serving the socket (uid as SO_PEERCRED tells) may be handed a CNI call: root,
 * or the plugin's own user. Anyone else could answer with a made-up result, so the plugin then does
 * the work itself.
 */
export const agentTrusted = (serverUid: number, ownEuid: number): boolean => serverUid === 0 || serverUid === ownEuid;

/** Sends one call to the agent at `socketPath` and waits up to `timeoutMs` for its answer. */
export function callAgent(socketPath: string, request: Omit<WireRequest, "v">, timeoutMs: number, c: Libc = libc()): AgentOutcome {
  const addr = sockaddrUn(socketPath);
  if (!addr) return { kind: "unavailable", why: `socket path too long: ${socketPath}` };
  const fd = c.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return { kind: "unavailable", why: `socket: errno ${c.errno()}` };
  try {
    if (c.connect(fd, addr, addr.length) !== 0) return { kind: "unavailable", why: `connect ${socketPath}: errno ${c.errno()}` };
    // Who listens there, as the kernel recorded it at listen(2): only root's agent gets the call.
    const cred = new Uint8Array(12);
    const credLen = new Uint32Array([cred.length]);
    if (c.getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, credLen) !== 0) return { kind: "unavailable", why: `SO_PEERCRED on ${socketPath}: errno ${c.errno()}` };
    const server = decodeUcred(cred);
    if (!agentTrusted(server.uid, process.geteuid?.() ?? 0)) {
      return { kind: "unavailable", why: `${socketPath} is served by pid ${server.pid} uid ${server.uid}, not root: not trusted with the call` };
    }
    const tv = timeval(timeoutMs);
    c.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv, tv.length);
    c.setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, tv, tv.length);
    // Until the write side is shut down the agent cannot have started the call: any failure up to
    // there leaves nothing done, and the plugin may safely run the call itself.
    const body = new TextEncoder().encode(JSON.stringify({ v: WIRE_VERSION, ...request }));
    let off = 0;
    while (off < body.length) {
      const n = Number(c.send(fd, body.subarray(off), body.length - off, MSG_NOSIGNAL));
      if (n < 0) {
        if (c.errno() === EINTR) continue;
        return { kind: "unavailable", why: `sending to ${socketPath}: errno ${c.errno()}` };
      }
      off += n;
    }
    if (c.shutdown(fd, SHUT_WR) !== 0) return { kind: "unavailable", why: `shutdown: errno ${c.errno()}` };
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const buf = new Uint8Array(65536);
      const n = Number(c.recv(fd, buf, buf.length, 0));
      if (n < 0) {
        const errno = c.errno();
        if (errno === EINTR) continue;
        const why = errno === EAGAIN ? `no answer within ${timeoutMs} ms` : `errno ${errno}`;
        return { kind: "failed", why: `waiting for the agent at ${socketPath}: ${why}` };
      }
      if (n === 0) break;
      chunks.push(buf.subarray(0, n));
      total += n;
    }
    const reply = decodeReply(decode(chunks, total));
    if ("error" in reply) return { kind: "failed", why: `agent at ${socketPath}: ${reply.error}` };
    if ("fallback" in reply) return { kind: "unavailable", why: `agent at ${socketPath} declined: ${reply.fallback}` };
    return { kind: "reply", code: reply.code, stdout: reply.stdout, stderr: reply.stderr };
  } finally {
    c.close(fd);
  }
}
