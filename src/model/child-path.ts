// A file inside a directory, by a name that came (directly or not) from a request. Request
// validation already keeps '/' and ".." out of container ids, interface names and network names;
// this is the check at the point of use, so that a caller that forgot to validate still cannot
// reach outside the directory (the IPAM data directory, the endpoint spool). Pure.
import * as path from "node:path";

/** Longest file name Linux accepts (NAME_MAX). */
export const NAME_MAX = 255;

/** Why `name` cannot be a file name directly inside a directory; undefined when it can. */
export function badChildName(name: string): string | undefined {
  if (name === "" || name === "." || name === "..") return `${JSON.stringify(name)} is not a file name`;
  if (name.includes("/") || name.includes("\0")) return `${JSON.stringify(name.slice(0, 80))} contains '/' or NUL`;
  if (Buffer.byteLength(name) > NAME_MAX) return `a file name of ${Buffer.byteLength(name)} bytes is longer than ${NAME_MAX}`;
  return undefined;
}

/** `dir/name`, or throws when `name` would not be a file directly inside `dir`. */
export function childPath(dir: string, name: string): string {
  const bad = badChildName(name);
  if (bad) throw new Error(`refusing a path outside ${dir}: ${bad}`);
  return path.join(dir, name);
}
