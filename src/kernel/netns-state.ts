// Is CNI_NETNS a pod's network namespace? Asked before ADD or CHECK touches anything (IPAM, links),
// by the plugin run directly and by the agent for a forwarded call alike.
//
// Refused: a path that does not exist or cannot be opened; anything that is not a network
// namespace (a regular file, a directory, /proc/version, another namespace type such as
// /proc/self/ns/mnt); the caller's own network namespace (the pod side would be made on the host);
// and the machine's initial network namespace. "Own" is not enough for the last: a lab agent (or a
// plugin called by a runtime that itself runs in a namespace) is not in the initial namespace,
// and a request naming /proc/1/ns/net would otherwise configure the real host's interfaces.
//
// The initial namespace is known by any of: /proc/1/ns/net (when init may be looked at; a
// hardened init may not be, even by root); the namespace of a kernel thread (kthreadd, pid 2 when
// we share the initial pid namespace: kernel threads always live in the initial namespace); and,
// since Linux 6.18, its fixed inode number NET_NS_INIT_INO (0xEFFFFFF9; earlier kernels number
// every namespace from 0xF0000000 up, so the test never matches another namespace there).
//
// The decision is pure (`classifyNetns`); `probeNetns` gathers the facts.
import * as fs from "node:fs";
import { libc, libcAvailable } from "./libc.js";

export type NetnsState = "ok" | "missing" | "inaccessible" | "self" | "host" | "not-a-netns";

export interface NsId {
  dev: bigint;
  ino: bigint;
}

export interface NetnsFacts {
  /** stat(2) of the path (links followed), or the error code. */
  target: NsId | { error: string };
  /** statfs(2) f_type of the path, when it could be read. */
  fsType?: number;
  /** ioctl(NS_GET_NSTYPE) on the path, when it could be asked (compiled executables). */
  nsType?: number;
  /** This process's and thread's network namespaces. */
  own: readonly NsId[];
  /** Namespaces known to be the initial one (/proc/1/ns/net, a kernel thread's). */
  initial: readonly NsId[];
}

export const NSFS_MAGIC = 0x6e736673;
export const CLONE_NEWNET = 0x40000000;
/** Inode of the initial network namespace since Linux 6.18 (uapi/linux/nsfs.h). */
export const NET_NS_INIT_INO = 0xeffffff9n;
/** _IO(0xb7, 0x3) */
const NS_GET_NSTYPE = 0xb703;
/** task flag of kernel threads (include/linux/sched.h), field 9 of /proc/<pid>/stat. */
const PF_KTHREAD = 0x00200000;

const same = (a: NsId, b: NsId): boolean => a.dev === b.dev && a.ino === b.ino;

export function classifyNetns(f: NetnsFacts): NetnsState {
  if ("error" in f.target) {
    return ["ENOENT", "ENOTDIR", "ENAMETOOLONG", "ELOOP"].includes(f.target.error) ? "missing" : "inaccessible";
  }
  const t = f.target;
  if (f.fsType !== undefined && f.fsType !== NSFS_MAGIC) return "not-a-netns";
  if (f.nsType !== undefined && f.nsType !== CLONE_NEWNET) return "not-a-netns";
  if (f.own.some((o) => same(o, t))) return "self";
  if (f.initial.some((i) => same(i, t)) || (f.fsType === NSFS_MAGIC && t.ino === NET_NS_INIT_INO)) return "host";
  return "ok";
}

/** Whether a /proc/<pid>/stat line is a kernel thread's (PF_KTHREAD in its flags). */
export function isKernelThread(statLine: string): boolean {
  // "2 (kthreadd) S 0 0 0 0 -1 2129984 ...": the name may hold spaces and ')', so count from the last ')'.
  const fields = statLine.slice(statLine.lastIndexOf(")") + 2).split(" ");
  const flags = Number(fields[6]);
  return Number.isInteger(flags) && (flags & PF_KTHREAD) !== 0;
}

function statId(p: string): NsId | { error: string } {
  try {
    const st = fs.statSync(p, { bigint: true });
    return { dev: st.dev, ino: st.ino };
  } catch (e) {
    return { error: (e as NodeJS.ErrnoException).code ?? String(e) };
  }
}

const ids = (paths: readonly string[]): NsId[] => paths.map(statId).filter((x): x is NsId => !("error" in x));

function initialNetns(): NsId[] {
  const found = ids(["/proc/1/ns/net"]);
  try {
    if (isKernelThread(fs.readFileSync("/proc/2/stat", "utf8"))) found.push(...ids(["/proc/2/ns/net"]));
  } catch {
    // no pid 2 here (a pid namespace of our own): /proc/1 and the inode number remain
  }
  return found;
}

function nsTypeOf(p: string): number | undefined {
  if (!libcAvailable()) return undefined; // Node: the kernel refuses a wrong type when the path is used
  let fd: number;
  try {
    fd = fs.openSync(p, "r");
  } catch {
    return undefined;
  }
  try {
    const t = libc().ioctl(fd, NS_GET_NSTYPE);
    return t >= 0 ? t : undefined;
  } finally {
    fs.closeSync(fd);
  }
}

export function probeNetns(p: string): NetnsFacts {
  const target = statId(p);
  const facts: NetnsFacts = { target, own: ids(["/proc/thread-self/ns/net", "/proc/self/ns/net"]), initial: [] };
  if ("error" in target) return facts;
  try {
    facts.fsType = Number(fs.statfsSync(p).type);
  } catch {
    // statfs unavailable: the other checks still hold
  }
  // Only a namespace file is opened: opening a FIFO or a device named by a request could block.
  if (facts.fsType === NSFS_MAGIC) {
    const t = nsTypeOf(p);
    if (t !== undefined) facts.nsType = t;
  }
  facts.initial = initialNetns();
  return facts;
}

export const netnsState = (p: string): NetnsState => classifyNetns(probeNetns(p));
