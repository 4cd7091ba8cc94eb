// Read-only views of a namespace's links and routing decisions, for `trellis diagnose`: what
// `ip -j addr show` says about each link (MTU, up, addresses) and what `ip route get` decides for
// one destination. Nothing here changes the kernel. `netns` is a namespace path (nsenter --net),
// so it works from any namespace, e.g. from a lab's control namespace after `--lab` re-exec.
import { KernelError, run } from "./exec.js";

export interface LinkView {
  name: string;
  mtu: number;
  /** Administratively up (the UP flag). */
  up: boolean;
  /** IPv4 addresses as "ip/len". */
  addresses: string[];
}

/** How the kernel routes one destination: the device, the gateway, the source it would pick. */
export type RouteDecision = { dst: string; dev: string; via?: string; src?: string } | { dst: string; error: string };

interface AddrJson {
  ifname: string;
  mtu: number;
  flags?: string[];
  addr_info?: Array<{ family: string; local: string; prefixlen: number }>;
}

/** Every link of the namespace with its MTU, state and IPv4 addresses. */
export function readLinks(netns?: string): LinkView[] {
  const out = run("ip", ["-j", "addr", "show"], netns ? { netns } : {}).stdout;
  return (JSON.parse(out || "[]") as AddrJson[]).map((l) => ({
    name: l.ifname, mtu: l.mtu, up: (l.flags ?? []).includes("UP"),
    addresses: (l.addr_info ?? []).filter((a) => a.family === "inet").map((a) => `${a.local}/${a.prefixlen}`),
  }));
}

/** `ip route get DST` in the namespace; an unroutable destination is a decision too (its error). */
export function routeGet(dst: string, netns?: string): RouteDecision {
  try {
    const out = run("ip", ["-j", "-4", "route", "get", dst], netns ? { netns } : {}).stdout;
    const r = (JSON.parse(out || "[]") as Array<{ dev?: string; gateway?: string; prefsrc?: string; type?: string }>)[0];
    if (!r?.dev) return { dst, error: r?.type ? `route type ${r.type}` : "no route" };
    return { dst, dev: r.dev, ...(r.gateway ? { via: r.gateway } : {}), ...(r.prefsrc ? { src: r.prefsrc } : {}) };
  } catch (e) {
    if (e instanceof KernelError) return { dst, error: e.stderr.trim().replace(/^RTNETLINK answers: /, "") || `exit ${e.exitCode}` };
    throw e;
  }
}

/** One /proc/sys value in the namespace (`sysctl -n KEY`). */
export function readSysctl(key: string, netns?: string): string {
  return run("sysctl", ["-n", key], netns ? { netns } : {}).stdout.trim();
}

/** Packet counters of every link in the namespace (`ip -s -j link show`), by link name. */
export function linkCounters(netns?: string): Map<string, { rx: number; tx: number }> {
  const out = run("ip", ["-s", "-j", "link", "show"], netns ? { netns } : {}).stdout;
  const links = JSON.parse(out || "[]") as Array<{ ifname: string; stats64?: { rx?: { packets?: number }; tx?: { packets?: number } } }>;
  return new Map(links.map((l) => [l.ifname, { rx: l.stats64?.rx?.packets ?? 0, tx: l.stats64?.tx?.packets ?? 0 }]));
}

/**
 * One ICMP echo of `size` payload bytes with Don't Fragment set (`ping -M do`), from inside the
 * namespace: whether it was answered. Proves a path's MTU by traffic (a lab's pod namespaces only).
 */
export function pingDf(dst: string, size: number, netns: string): { answered: boolean; error?: string } {
  try {
    run("ping", ["-n", "-q", "-c", "1", "-W", "1", "-M", "do", "-s", String(size), dst], { netns });
    return { answered: true };
  } catch (e) {
    if (e instanceof KernelError && e.exitCode === 1) return { answered: false };
    return { answered: false, error: e instanceof KernelError ? (e.stderr.trim() || e.stdout.trim()) : (e as Error).message };
  }
}
