// Carrying out NetOps over an rtnetlink socket, in-process, through libc via bun:ffi.
//
// Why: starting `ip` costs ≈ 2.5 ms per process and the plugin needs one in the host namespace and
// one in the pod namespace; the messages themselves take microseconds. A socket opened while the
// calling thread is in another namespace stays bound to that namespace, so the pod side is done
// by setns(2) into the pod, socket(2), and setns(2) straight back — Node cannot do this (it has no
// setns), the compiled executables (Bun) can. Under Node the seam falls back to `ip -batch`.
//
// Errors become KernelErrors in the shape `ip -batch` gives (failing operation number, errno text),
// so the plugin's rollback logic is the same for both paths.
import * as fs from "node:fs";
import { KernelError } from "../exec.js";
import { libc as loadLibc, libcAvailable, type Libc } from "../libc.js";
import { renderIpLine, skippable, type NetOp } from "../ops.js";
import * as nl from "./encode.js";

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0x80000;
const NETLINK_ROUTE = 0;
const CLONE_NEWNET = 0x40000000;

/** True in the compiled executables (Bun with FFI) unless TRELLIS_NETLINK=0 asks for iproute2. */
export function netlinkAvailable(): boolean {
  return libcAvailable() && process.env.TRELLIS_NETLINK !== "0";
}

const ERRNO_TEXT: Record<number, string> = {
  1: "Operation not permitted", 2: "No such file or directory", 16: "Device or resource busy", 17: "File exists",
  19: "No such device", 22: "Invalid argument", 34: "Numerical result out of range", 95: "Operation not supported",
  99: "Cannot assign requested address", 100: "Network is down", 101: "Network is unreachable", 105: "No buffer space available",
};
const strerror = (errno: number): string => ERRNO_TEXT[errno] ?? `errno ${errno}`;

class NetlinkError extends Error {
  constructor(readonly errno: number) {
    super(strerror(errno));
  }
}

/** An rtnetlink socket bound to the namespace at `netnsPath` (or the caller's own). */
class RtSocket {
  private readonly fd: number;
  private seq = Math.floor(Math.random() * 1e6);
  private readonly rx = new Uint8Array(65536);
  private readonly index = new Map<string, number>();

  constructor(private readonly c: Libc, netnsPath?: string) {
    if (!netnsPath) {
      this.fd = this.open();
      return;
    }
    const self = fs.openSync("/proc/thread-self/ns/net", "r");
    const target = fs.openSync(netnsPath, "r");
    try {
      if (c.setns(target, CLONE_NEWNET) !== 0) throw new Error(`setns ${netnsPath}: ${strerror(c.errno())}`);
      try {
        this.fd = this.open();
      } finally {
        if (c.setns(self, CLONE_NEWNET) !== 0) {
          // Staying in the pod's namespace would misdirect everything after this: stop here.
          process.stderr.write(`trellis: cannot return to own network namespace: ${strerror(c.errno())}\n`);
          process.exit(70);
        }
      }
    } finally {
      fs.closeSync(target);
      fs.closeSync(self);
    }
  }

  private open(): number {
    const fd = this.c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) throw new Error(`netlink socket: ${strerror(this.c.errno())}`);
    return fd;
  }

  nextSeq(): number {
    this.seq = (this.seq + 1) >>> 0;
    return this.seq;
  }

  /** Sends one request and returns the reply carrying its sequence number (ack, error or object). */
  request(msg: Buffer): nl.Reply {
    const seq = msg.readUInt32LE(8);
    const sent = Number(this.c.send(this.fd, msg, msg.length, 0));
    if (sent !== msg.length) throw new Error(`netlink send: ${strerror(this.c.errno())}`);
    for (;;) {
      const n = Number(this.c.recv(this.fd, this.rx, this.rx.length, 0));
      if (n < 0) throw new Error(`netlink recv: ${strerror(this.c.errno())}`);
      const reply = nl.parseReplies(Buffer.from(this.rx.buffer, 0, n)).find((r) => r.seq === seq);
      if (!reply) continue;
      if (reply.errno) throw new NetlinkError(reply.errno);
      return reply;
    }
  }

  ifindex(name: string): number {
    const known = this.index.get(name);
    if (known !== undefined) return known;
    const r = this.request(nl.linkGet(this.nextSeq(), name));
    if (r.index === undefined) throw new NetlinkError(19);
    this.index.set(name, r.index);
    return r.index;
  }

  close(): void {
    this.c.close(this.fd);
  }
}

function encode(s: RtSocket, o: NetOp, openFd: (path: string) => number): Buffer {
  const seq = s.nextSeq();
  switch (o.op) {
    case "veth-add":
      return nl.vethAdd(seq, { ...o, peer: { ...o.peer, netnsFd: openFd(o.peer.netns) } });
    case "bridge-add":
      return nl.bridgeAdd(seq, o);
    case "link-up":
      return nl.linkSet(seq, o.name, { up: true });
    case "link-alias":
      return nl.linkSet(seq, o.name, { alias: o.alias });
    case "link-master":
      return nl.linkSet(seq, o.name, { masterIndex: s.ifindex(o.master) });
    case "bridge-port-hairpin":
      return nl.linkSet(seq, o.name, { hairpin: o.on });
    case "addr-add":
      return nl.addrAdd(seq, { ...o, index: s.ifindex(o.dev) });
    case "route-add":
      return nl.routeAdd(seq, { ...o, index: s.ifindex(o.dev) });
    case "neigh-add":
      return nl.neighAdd(seq, { ...o, index: s.ifindex(o.dev) });
  }
}

const EEXIST = 17;

/**
 * Applies `ops` in order in the namespace at `netnsPath` (default: our own); stops at the first
 * failure. Returns the 0-based indexes of the `skipIfExists` operations the kernel answered with
 * EEXIST, which are left out rather than failed (ops.ts).
 */
export function applyNetlink(ops: readonly NetOp[], netnsPath?: string): number[] {
  const skipped: number[] = [];
  if (ops.length === 0) return skipped;
  const s = new RtSocket(loadLibc(), netnsPath);
  const fds: number[] = [];
  const openFd = (p: string): number => {
    const fd = fs.openSync(p, "r");
    fds.push(fd);
    return fd;
  };
  try {
    ops.forEach((o, i) => {
      try {
        s.request(encode(s, o, openFd));
      } catch (e) {
        if (e instanceof NetlinkError && e.errno === EEXIST && skippable(o)) {
          skipped.push(i);
          return;
        }
        const text = e instanceof NetlinkError ? `RTNETLINK answers: ${e.message}` : (e as Error).message;
        const where = netnsPath ? ` (in ${netnsPath})` : "";
        throw new KernelError(`netlink: ${renderIpLine(o)}${where}`, e instanceof NetlinkError ? 2 : 1, text, "", i + 1);
      }
    });
  } finally {
    for (const fd of fds) fs.closeSync(fd);
    s.close();
  }
  return skipped;
}

/** Deletes a link by name in our own namespace; false when there is no such link. */
export function deleteLinkNetlink(name: string): boolean {
  const s = new RtSocket(loadLibc());
  try {
    s.request(nl.linkDel(s.nextSeq(), name));
    return true;
  } catch (e) {
    if (e instanceof NetlinkError && e.errno === 19) return false;
    throw new KernelError(`netlink: link del ${name}`, 2, e instanceof NetlinkError ? `RTNETLINK answers: ${e.message}` : String(e));
  } finally {
    s.close();
  }
}
