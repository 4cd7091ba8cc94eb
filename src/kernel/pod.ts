// Kernel operations the CNI plugin needs, behind one small interface (real + fake).
import * as fs from "node:fs";
import { ipBatch, ipNetnsArgs, KernelError, run, skippedInForcedBatch } from "./exec.js";
import { applyNetlink, deleteLinkNetlink, netlinkAvailable } from "./netlink/apply.js";
import { netnsState, type NetnsState } from "./netns-state.js";
import { renderIpLine, skippable, type NetOp } from "./ops.js";

export interface LinkInfo {
  name: string;
  kind?: string;
  mac?: string;
  mtu?: number;
  master?: string;
  alias?: string;
  addresses: Array<{ address: string; prefix: number }>;
}

export interface RouteInfo {
  dst: string;
  gateway?: string;
  dev?: string;
  /** As `ip -j route` prints it: absent for an IPv4 route of metric 0. */
  metric?: number;
}

export type { NetnsState } from "./netns-state.js";

export interface PodKernel {
  /**
   * Carries out operations in the plugin's own (host) namespace, in order, stopping at the first
   * failure. Returns the 0-based indexes of the `skipIfExists` operations left out because the
   * kernel already had their object (ops.ts).
   */
  hostApply(ops: readonly NetOp[]): number[];
  /** The same inside the pod namespace at `netns` (a path). */
  podApply(netns: string, ops: readonly NetOp[]): number[];
  /** Whether a link of that name exists in the host namespace (no process started). */
  linkExists(name: string): boolean;
  /** Deletes a host link; false if it did not exist. */
  deleteLink(name: string): boolean;
  /** Host veths with their alias. */
  listVeths(): LinkInfo[];
  /** Reads a link and its addresses; in the pod namespace when netns is given. undefined if absent. */
  readLink(name: string, netns?: string): LinkInfo | undefined;
  /** Routes of the main table that exactly match `dst`, in the pod namespace when netns is given. */
  readRoutes(dsts: readonly string[], netns?: string): RouteInfo[][];
  /** Sets a /proc/sys value unless it already has it. */
  ensureSysctl(key: string, value: string): void;
  netnsState(path: string): NetnsState;
}

interface IpLinkJson {
  ifname: string;
  address?: string;
  mtu?: number;
  master?: string;
  ifalias?: string;
  linkinfo?: { info_kind?: string };
  addr_info?: Array<{ local: string; prefixlen: number }>;
}

const toLinkInfo = (j: IpLinkJson): LinkInfo => {
  const l: LinkInfo = { name: j.ifname, addresses: (j.addr_info ?? []).map((a) => ({ address: a.local, prefix: a.prefixlen })) };
  if (j.linkinfo?.info_kind) l.kind = j.linkinfo.info_kind;
  if (j.address) l.mac = j.address;
  if (j.mtu !== undefined) l.mtu = j.mtu;
  if (j.master) l.master = j.master;
  if (j.ifalias) l.alias = j.ifalias;
  return l;
};

/**
 * The iproute2 form of applyNetlink: one `ip -batch`. A batch with an operation the kernel may
 * leave out runs with `-force`, so that the lines after an EEXIST still run; any other failure is
 * then reported for its line as without -force (the lines after it have run too, which is harmless
 * where such operations are used: the pod side, on an interface a failed ADD deletes).
 */
function applyIpBatch(ops: readonly NetOp[], netns?: string): number[] {
  const lines = ops.map(renderIpLine);
  if (!ops.some(skippable)) {
    ipBatch(lines, { netns });
    return [];
  }
  try {
    ipBatch(lines, { netns, force: true });
    return [];
  } catch (e) {
    if (!(e instanceof KernelError)) throw e;
    return skippedInForcedBatch(ops, e);
  }
}

export class RealPodKernel implements PodKernel {
  hostApply(ops: readonly NetOp[]): number[] {
    return netlinkAvailable() ? applyNetlink(ops) : applyIpBatch(ops);
  }

  podApply(netns: string, ops: readonly NetOp[]): number[] {
    return netlinkAvailable() ? applyNetlink(ops, netns) : applyIpBatch(ops, netns);
  }

  linkExists(name: string): boolean {
    // /proc/sys/net/*/conf lists the links of the caller's own namespace (unlike /sys/class/net,
    // which shows the namespace that mounted /sys).
    return fs.existsSync(`/proc/sys/net/ipv4/conf/${name}`) || fs.existsSync(`/proc/sys/net/ipv6/conf/${name}`);
  }

  deleteLink(name: string): boolean {
    if (netlinkAvailable()) return deleteLinkNetlink(name);
    try {
      run("ip", ["link", "del", name]);
      return true;
    } catch (e) {
      if (e instanceof KernelError && e.notFound) return false;
      throw e;
    }
  }

  listVeths(): LinkInfo[] {
    const out = run("ip", ["-j", "link", "show", "type", "veth"]).stdout;
    return (JSON.parse(out || "[]") as IpLinkJson[]).map(toLinkInfo);
  }

  readLink(name: string, netns?: string): LinkInfo | undefined {
    try {
      const ns = ipNetnsArgs(netns);
      const out = run("ip", [...ns.args, "-j", "-d", "addr", "show", "dev", name], { netns: ns.netns }).stdout;
      const links = JSON.parse(out || "[]") as IpLinkJson[];
      return links[0] ? toLinkInfo(links[0]) : undefined;
    } catch (e) {
      if (e instanceof KernelError && e.notFound) return undefined;
      throw e;
    }
  }

  readRoutes(dsts: readonly string[], netns?: string): RouteInfo[][] {
    // `ip route show` lists one family, IPv4 unless told -6 (even for "exact ::/0"): one batch per family.
    const found: RouteInfo[][] = dsts.map(() => []);
    for (const family of [4, 6] as const) {
      const idx = dsts.flatMap((d, i) => ((d.includes(":") ? 6 : 4) === family ? [i] : []));
      if (idx.length === 0) continue;
      const out = ipBatch(idx.map((i) => `route show table main exact ${dsts[i]}`), { netns, json: true, family });
      const lines = out.split("\n").filter((l) => l.trim() !== "");
      idx.forEach((d, n) => (found[d] = JSON.parse(lines[n] ?? "[]") as RouteInfo[]));
    }
    return found;
  }

  ensureSysctl(key: string, value: string): void {
    const p = `/proc/sys/${key.replaceAll(".", "/")}`;
    if (fs.readFileSync(p, "utf8").trim() !== value) fs.writeFileSync(p, value);
  }

  netnsState(path: string): NetnsState {
    return netnsState(path);
  }
}
