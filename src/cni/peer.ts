// Who is calling the agent's CNI socket, and whether it may. The agent runs as root and does kernel
// work for whoever it serves, so the socket's file modes are only the first gate: each accepted
// connection's peer is asked of the kernel (SO_PEERCRED, SO_PEERGROUPS) and the call is refused
// unless that peer is root or, when the socket has a group, a member of it.
//
// Why SO_PEERGROUPS and not /proc/<pid>/status: both SO_PEERCRED and SO_PEERGROUPS are the
// credentials the peer had when it called connect(2), held by the kernel with the socket. The pid
// is only a name: the process may have exited and its pid been reused by another by the time
// /proc is read, so membership read there could belong to someone else. SO_PEERGROUPS needs Linux
// 4.13; on older kernels only the peer's primary group is compared.
//
// The decision and the decoding are pure (unit tested under Node); reading the credentials needs
// libc (bun:ffi), which only the compiled executables have.
import type * as net from "node:net";
import { libc, libcAvailable, type Libc } from "../kernel/libc.js";

const SOL_SOCKET = 1;
const SO_PEERCRED = 17;
const SO_PEERGROUPS = 59;
const ERANGE = 34;
const ENOPROTOOPT = 92;

export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
  /** Supplementary groups at connect time; undefined when the kernel cannot tell (before 4.13). */
  groups?: readonly number[];
}

export type PeerDecision = { allowed: true; as: string } | { allowed: false; why: string };

/** May this peer use the socket? Root may; with `group`, so may its members (primary or supplementary). */
export function peerDecision(peer: PeerCredentials, group?: number): PeerDecision {
  if (peer.uid === 0) return { allowed: true, as: "root" };
  if (group !== undefined) {
    if (peer.gid === group) return { allowed: true, as: `group ${group} (primary)` };
    if (peer.groups?.includes(group)) return { allowed: true, as: `group ${group} (supplementary)` };
    const known = peer.groups === undefined ? "; its supplementary groups are unknown (kernel before 4.13)" : "";
    return { allowed: false, why: `uid ${peer.uid} is not root and not a member of group ${group}${known}` };
  }
  return { allowed: false, why: `uid ${peer.uid} is not root (only root may use this socket; see --cni-socket-group)` };
}

/** How a peer is named in logs and refusals. */
export const describePeer = (p: PeerCredentials): string => `pid ${p.pid} uid ${p.uid} gid ${p.gid}`;

/** struct ucred { pid_t pid; uid_t uid; gid_t gid; }, native (little-endian on our targets). */
export function decodeUcred(bytes: Uint8Array): { pid: number; uid: number; gid: number } {
  if (bytes.length < 12) throw new Error(`struct ucred is 12 bytes, got ${bytes.length}`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { pid: v.getInt32(0, true), uid: v.getUint32(4, true), gid: v.getUint32(8, true) };
}

/** The gid_t array SO_PEERGROUPS fills (`len` bytes of it). */
export function decodeGroups(bytes: Uint8Array, len: number): number[] {
  const v = new DataView(bytes.buffer, bytes.byteOffset, Math.min(len, bytes.byteLength));
  const out: number[] = [];
  for (let off = 0; off + 4 <= v.byteLength; off += 4) out.push(v.getUint32(off, true));
  return out;
}

/**
 * The file descriptor of an accepted connection. Bun's node:net keeps it on the socket's handle
 * (`_handle.fd`, as Node's does); undefined when it is not there, which the caller treats as
 * "credentials unknown" and refuses.
 */
export function socketFd(conn: net.Socket): number | undefined {
  const fd = (conn as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === "number" && Number.isInteger(fd) && fd >= 0 ? fd : undefined;
}

/** The credentials the kernel holds for the peer of the unix socket `fd`. Throws when it cannot tell. */
export function readPeerCredentials(fd: number, c: Libc = libc()): PeerCredentials {
  const cred = new Uint8Array(12);
  const len = new Uint32Array([cred.length]);
  if (c.getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, len) !== 0) throw new Error(`getsockopt(SO_PEERCRED) on fd ${fd}: errno ${c.errno()}`);
  if (len[0]! < 12) throw new Error(`getsockopt(SO_PEERCRED) on fd ${fd}: ${len[0]} bytes`);
  const peer: PeerCredentials = decodeUcred(cred);
  let size = 64 * 4;
  for (let attempt = 0; attempt < 3; attempt++) {
    const buf = new Uint8Array(size);
    const glen = new Uint32Array([size]);
    if (c.getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, buf, glen) === 0) return { ...peer, groups: decodeGroups(buf, glen[0]!) };
    const errno = c.errno();
    if (errno === ENOPROTOOPT) return peer; // kernel before 4.13: primary group only
    if (errno !== ERANGE) throw new Error(`getsockopt(SO_PEERGROUPS) on fd ${fd}: errno ${errno}`);
    size = Math.max(glen[0]!, size * 2); // the kernel says how much it needs
  }
  throw new Error(`getsockopt(SO_PEERGROUPS) on fd ${fd}: group list keeps growing`);
}

/**
 * The real credentials of a connection's peer, or why they cannot be known. Under Node (no FFI)
 * they never can: a server there must be given its own `peerCredentials` (the unit tests do).
 */
export function connectionPeer(conn: net.Socket): PeerCredentials | { error: string } {
  if (!libcAvailable()) return { error: "peer credentials need libc (the compiled executable); none under Node" };
  const fd = socketFd(conn);
  if (fd === undefined) return { error: "the connection's file descriptor is not available" };
  try {
    return readPeerCredentials(fd);
  } catch (e) {
    return { error: (e as Error).message };
  }
}

/** `NAME` or `GID` → gid, names looked up in an /etc/group text. */
export function resolveGroup(spec: string, groupFile: string): number {
  if (/^\d+$/.test(spec)) {
    const gid = Number(spec);
    if (gid > 0xfffffffe) throw new Error(`invalid group id ${spec}`);
    return gid;
  }
  for (const line of groupFile.split("\n")) {
    const [name, , gid] = line.split(":");
    if (name === spec && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  throw new Error(`no group named ${JSON.stringify(spec)} in /etc/group (give its numeric id for groups from other sources)`);
}
