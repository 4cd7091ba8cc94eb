// The agent's CNI socket and its directory admit root only (0600 in 0700), or root and one group
// (0660 in 0750, that group). Whoever reaches the socket may ask a root process for kernel work,
// so the modes are set before the socket exists and checked, not assumed, when the directory was
// already there:
//
//   - missing: created with the mode, then chmod'ed (the umask does not decide) and chgrp'ed;
//   - ours (owned by the agent's uid), writable by nobody else, with other bits or another group:
//     set to the mode and group, and the change is logged ("tightened ... from 0755 to 0700");
//   - refused, saying why: a symbolic link or not a directory; owned by another user; writable by
//     group or others, or sticky (a shared directory like /tmp: making it private would break its
//     other users, and anyone who can write it can replace our socket); a top-level directory
//     (/, /run, /etc, ...) whose mode is not already right — its mode is not the agent's to change.
//   - every directory above must be owned by root (or the agent's uid) and not writable by group
//     or others unless sticky: whoever can write a parent can rename the socket's directory away
//     and put their own in its place.
//
// The decisions are pure; `prepareSocketDir` does the I/O.
import * as fs from "node:fs";
import * as path from "node:path";

export interface SocketModes {
  dirMode: number;
  socketMode: number;
  /** The group that may use the socket besides root; undefined: root only. */
  gid?: number;
}

export const socketModes = (gid?: number): SocketModes =>
  gid === undefined ? { dirMode: 0o700, socketMode: 0o600 } : { dirMode: 0o750, socketMode: 0o660, gid };

export type DirFacts =
  | { exists: false }
  | { exists: true; kind: "directory" | "symlink" | "other"; uid: number; gid: number; mode: number };

export type DirPlan =
  | { action: "create" }
  | { action: "keep" }
  | { action: "fix"; mode: number; gid?: number; note: string }
  | { action: "refuse"; why: string };

export const octal = (mode: number): string => (mode & 0o7777).toString(8).padStart(4, "0");

const isTopLevel = (dir: string): boolean => path.resolve(dir).split("/").filter(Boolean).length <= 1;

/** What to do with the socket's directory `dir`, as it is (`facts`), for an agent running as `owner`. */
export function planSocketDir(dir: string, facts: DirFacts, owner: number, modes: SocketModes): DirPlan {
  if (!facts.exists) return { action: "create" };
  if (facts.kind === "symlink") return { action: "refuse", why: `${dir} is a symbolic link; the socket needs a real directory of its own` };
  if (facts.kind !== "directory") return { action: "refuse", why: `${dir} exists and is not a directory` };
  if (facts.uid !== owner) {
    return { action: "refuse", why: `${dir} is owned by uid ${facts.uid}, not by the agent's uid ${owner}; its owner could replace the socket` };
  }
  const mode = facts.mode & 0o7777;
  if (mode & 0o1000 || mode & 0o022) {
    return { action: "refuse", why: `${dir} is writable by others or shared (mode ${octal(mode)}); give the socket a directory of its own` };
  }
  const groupRight = modes.gid === undefined || facts.gid === modes.gid;
  if (mode === modes.dirMode && groupRight) return { action: "keep" };
  if (isTopLevel(dir)) {
    return { action: "refuse", why: `${dir} is a top-level directory (mode ${octal(mode)}); its mode is not the agent's to change: give the socket a directory of its own` };
  }
  const verb = (mode & ~modes.dirMode) !== 0 ? "tightened" : "set";
  const groupNote = groupRight ? "" : `, group ${facts.gid} to ${modes.gid}`;
  const fix: DirPlan = { action: "fix", mode: modes.dirMode, note: `${verb} ${dir} from ${octal(mode)} to ${octal(modes.dirMode)}${groupNote}` };
  if (modes.gid !== undefined) fix.gid = modes.gid;
  return fix;
}

export interface AncestorFacts {
  path: string;
  uid: number;
  mode: number;
}

/** Why a directory above the socket's makes it replaceable by someone else; undefined when none does. */
export function ancestorProblem(ancestors: readonly AncestorFacts[], owner: number): string | undefined {
  for (const a of ancestors) {
    if (a.uid !== 0 && a.uid !== owner) return `${a.path} (above the socket's directory) is owned by uid ${a.uid}, who could replace the socket's directory`;
    if (a.mode & 0o022 && !(a.mode & 0o1000)) {
      return `${a.path} (above the socket's directory) is writable by others (mode ${octal(a.mode)}) and not sticky: anyone could replace the socket's directory`;
    }
  }
  return undefined;
}

function dirFacts(dir: string): DirFacts {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { exists: false };
    throw e;
  }
  const kind = st.isSymbolicLink() ? "symlink" : st.isDirectory() ? "directory" : "other";
  return { exists: true, kind, uid: st.uid, gid: st.gid, mode: st.mode };
}

function ancestorsOf(dir: string): AncestorFacts[] {
  const out: AncestorFacts[] = [];
  for (let p = path.dirname(fs.realpathSync(dir)); ; p = path.dirname(p)) {
    const st = fs.statSync(p);
    out.push({ path: p, uid: st.uid, mode: st.mode });
    if (p === "/") return out;
  }
}

const euid = (): number => process.geteuid?.() ?? 0;

/**
 * Makes `dir` a directory only root (and `modes.gid`) may enter, or throws saying why it will not.
 * `log` hears every change made to an existing directory.
 */
export function prepareSocketDir(dir: string, modes: SocketModes, log: (line: string) => void): void {
  const owner = euid();
  const plan = planSocketDir(dir, dirFacts(dir), owner, modes);
  switch (plan.action) {
    case "refuse":
      throw new Error(`refusing the socket's directory: ${plan.why}`);
    case "create":
      fs.mkdirSync(dir, { recursive: true, mode: modes.dirMode });
      fs.chmodSync(dir, modes.dirMode); // the umask does not get a say
      if (modes.gid !== undefined) fs.chownSync(dir, owner, modes.gid);
      break;
    case "fix":
      if (plan.gid !== undefined) fs.chownSync(dir, owner, plan.gid);
      fs.chmodSync(dir, plan.mode);
      log(`cni: ${plan.note}`);
      break;
    case "keep":
      break;
  }
  const problem = ancestorProblem(ancestorsOf(dir), owner);
  if (problem) throw new Error(`refusing the socket's directory ${dir}: ${problem}`);
}

/** Sets the socket file's mode and group (after listen; the directory already keeps others out). */
export function secureSocketFile(socketPath: string, modes: SocketModes): void {
  if (modes.gid !== undefined) fs.chownSync(socketPath, euid(), modes.gid);
  fs.chmodSync(socketPath, modes.socketMode);
}
