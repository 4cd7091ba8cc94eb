// What attaching one pod means, as plain data: the host veth's name, the kernel operations for the
// host side and for the pod side (kernel/ops.ts), and the CNI result. Pure; the plugin hands the
// operations to the kernel seam, which sends them as rtnetlink messages on one socket per
// namespace (or, without Bun's FFI, as one `ip -batch` per namespace). Not starting a process per
// operation is the single biggest factor in ADD latency.
//
// routed (default, Calico style): the pod gets its address as /32 (/128) and a default route via
// a link-local gateway (169.254.1.1, fe80::1) whose MAC is pinned by a permanent neighbour entry
// to the host veth's fixed MAC ee:ee:ee:ee:ee:ee. The host never owns the gateway address; it
// simply receives every frame the pod sends and routes it, and reaches the pod through a /32
// route on the host veth. No ARP proxying, no bridge, no broadcast domain shared between pods.
// The IPv4 routes are `onlink` (the gateway is on this link, no route to it needed): a separate
// "169.254.1.1 dev eth0 scope link" route would be one per pod, and a second attachment's
// (eth1) would collide with the first's. The neighbour entry is per device; fe80::1 is
// link-local per device already.
//
// bridge (Flannel/kubenet style): the host veth is a port of a bridge that holds the gateway
// address; pods on the node share one L2 segment; hairpin lets a pod reach itself via the host.
//
// A pod on several networks (eth0, eth1, ... each its own ADD): only one interface can hold the
// default route of a given metric. Without `routeMetric`, a default route is made unless the pod
// already has one of that metric (the first attachment keeps it; the kernel decides, atomically,
// from EEXIST) and is then left out of this attachment's result. With `routeMetric`, every route
// of the attachment has that metric and is always made, so defaults of other metrics coexist.
import { createRequire } from "node:module";
import type { Mode } from "./config.js";
import type { Dns, Interface, IpConfig, Result, Route } from "./result.js";
import { parseIpWithPrefix } from "../model/ip.js";
import { renderIpLine, type NetOp } from "../kernel/ops.js";

/** Prefix of every host-side interface we create. */
export const HOST_IF_PREFIX = "trl";
/** The fixed MAC of every routed-mode host veth. */
export const HOST_MAC = "ee:ee:ee:ee:ee:ee";
export const GATEWAY4 = "169.254.1.1";
export const GATEWAY6 = "fe80::1";
/** Route protocol number marking routes we install (see /etc/iproute2/rt_protos). */
export const ROUTE_PROTO = 201;
/** ifalias of our host veths: "trellis/<network>/<containerId>/<ifname>" (none may contain '/'). */
export const ALIAS_PREFIX = "trellis/";

/** Host-side interface name: prefix + 11 hex digits of sha1(containerId/ifname); 14 bytes. */
export function podHostIfName(containerId: string, ifname: string): string {
  return HOST_IF_PREFIX + sha1Hex(`${containerId}/${ifname}`).slice(0, 11);
}

type HexDigest = (text: string) => string;
interface BunGlobal {
  CryptoHasher: new (algorithm: "sha1") => { update(text: string): { digest(encoding: "hex"): string } };
}
let sha1Impl: HexDigest | undefined;

/**
 * SHA-1 as hex. The compiled executables use Bun's native hasher: loading Bun's node:crypto and
 * hashing with it costs a plugin process about 3 ms of CPU, every ADD and DEL (bench/README.md).
 * Under Node (unit tests) node:crypto is loaded on first use. Both give the same digest.
 */
function sha1Hex(text: string): string {
  sha1Impl ??= loadSha1();
  return sha1Impl(text);
}

function loadSha1(): HexDigest {
  const bun = (globalThis as { Bun?: BunGlobal }).Bun;
  if (bun) return (t) => new bun.CryptoHasher("sha1").update(t).digest("hex");
  const { createHash } = createRequire(import.meta.url)("node:crypto") as typeof import("node:crypto");
  return (t) => createHash("sha1").update(t).digest("hex");
}

export function hostIfAlias(network: string, containerId: string, ifname: string): string {
  return `${ALIAS_PREFIX}${network}/${containerId}/${ifname}`;
}

export function parseHostIfAlias(alias: string): { network: string; containerId: string; ifname: string } | undefined {
  if (!alias.startsWith(ALIAS_PREFIX)) return undefined;
  const parts = alias.slice(ALIAS_PREFIX.length).split("/");
  if (parts.length !== 3 || parts.some((p) => p === "")) return undefined;
  return { network: parts[0]!, containerId: parts[1]!, ifname: parts[2]! };
}

/**
 * Pod MAC derived from its address, as kubenet does: 0a:58 + the IPv4 address (or the last four
 * bytes of the IPv6 address). Locally administered, unicast, and stable for a given address.
 */
export function podMac(ips: readonly IpConfig[]): string {
  const first = ips.map((i) => parseIpWithPrefix(i.address)).find((x) => x !== undefined);
  const v = first ? first.ip.value & 0xffffffffn : BigInt(Math.floor(Math.random() * 2 ** 32));
  const bytes = [0x0a, 0x58, Number((v >> 24n) & 255n), Number((v >> 16n) & 255n), Number((v >> 8n) & 255n), Number(v & 255n)];
  return bytes.map((b) => b.toString(16).padStart(2, "0")).join(":");
}

export interface AttachInput {
  mode: Mode;
  network: string;
  containerId: string;
  ifname: string;
  netns: string;
  mtu?: number;
  bridge: string;
  hairpinMode: boolean;
  /** Whether the bridge already exists (bridge mode). */
  bridgeExists: boolean;
  /** What IPAM returned. */
  ipam: Result;
  dns?: Dns;
  /** Metric of the pod's routes (plugin option `routeMetric`); an IPAM route's own `priority` wins. */
  routeMetric?: number;
}

export interface AttachPlan {
  hostIf: string;
  podMac: string;
  /** Operations in the host namespace, in order. */
  hostOps: NetOp[];
  /** 1-based index of the host operation that creates the veth pair: failures after it must delete it. */
  vethLine: number;
  /** Operations inside the pod namespace, in order. */
  podOps: NetOp[];
  /** The same operations as `ip -batch` lines (for logs, tests and the iproute2 fallback). */
  hostLines: string[];
  podLines: string[];
  /** Families that need forwarding enabled on the host. */
  forwarding: Array<4 | 6>;
  /** For each of `result.routes`, the 0-based index of the pod operation that makes it. */
  routeOps: number[];
  /** What ADD reports if every operation is carried out; see `asCarriedOut` for skipped routes. */
  result: Result;
}

const isDefault = (dst: string): boolean => dst === "0.0.0.0/0" || dst === "::/0";

export function planAttachment(a: AttachInput): AttachPlan {
  const hostIf = podHostIfName(a.containerId, a.ifname);
  const ips = a.ipam.ips ?? [];
  const mac = podMac(ips);
  const mtu = a.mtu ? { mtu: a.mtu } : {};
  const hostOps: NetOp[] = [];
  const families = new Set<4 | 6>();
  for (const ip of ips) families.add(ip.address.includes(":") ? 6 : 4);

  if (a.mode === "bridge") {
    if (!a.bridgeExists) hostOps.push({ op: "bridge-add", name: a.bridge, ...mtu });
    for (const ip of ips) {
      if (!ip.gateway) continue;
      const p = parseIpWithPrefix(ip.address)!;
      hostOps.push({ op: "addr-add", replace: true, cidr: `${ip.gateway}/${p.prefix}`, dev: a.bridge, ...(p.ip.family === 6 ? { nodad: true } : {}) });
    }
    hostOps.push({ op: "link-up", name: a.bridge });
  }
  hostOps.push({
    op: "veth-add", name: hostIf, ...mtu, ...(a.mode === "routed" ? { mac: HOST_MAC } : {}),
    peer: { name: a.ifname, ...mtu, mac, netns: a.netns },
  });
  const vethLine = hostOps.length;
  hostOps.push({ op: "link-alias", name: hostIf, alias: hostIfAlias(a.network, a.containerId, a.ifname) });
  if (a.mode === "bridge") {
    hostOps.push({ op: "link-master", name: hostIf, master: a.bridge });
    if (a.hairpinMode) hostOps.push({ op: "bridge-port-hairpin", name: hostIf, on: true });
  }
  hostOps.push({ op: "link-up", name: hostIf });

  const podOps: NetOp[] = [];
  const resultIps: IpConfig[] = [];
  const routes: Route[] = [];
  const addRoute = (r: Route): void => {
    if (!routes.some((x) => x.dst === r.dst)) routes.push(r);
  };
  const podIndex = a.mode === "bridge" ? 2 : 1;

  for (const ip of ips) {
    const p = parseIpWithPrefix(ip.address)!;
    const v6 = p.ip.family === 6;
    const nodad = v6 ? { nodad: true } : {};
    const bare = ip.address.split("/")[0]!;
    if (a.mode === "routed") {
      const host = v6 ? 128 : 32;
      const gw = v6 ? GATEWAY6 : GATEWAY4;
      hostOps.push({ op: "route-add", dst: `${bare}/${host}`, dev: hostIf, proto: ROUTE_PROTO, scopeLink: true });
      podOps.push({ op: "addr-add", cidr: `${bare}/${host}`, dev: a.ifname, ...nodad });
      resultIps.push({ address: `${bare}/${host}`, gateway: gw, interface: podIndex });
    } else {
      podOps.push({ op: "addr-add", cidr: ip.address, dev: a.ifname, ...nodad });
      const out: IpConfig = { address: ip.address, interface: podIndex };
      if (ip.gateway) out.gateway = ip.gateway;
      resultIps.push(out);
    }
  }
  podOps.push({ op: "link-up", name: a.ifname });

  // Routes: a default route per family, plus the IPAM's routes, all via the family's gateway.
  const gatewayFor = (family: 4 | 6): string | undefined => {
    if (a.mode === "routed") return family === 6 ? GATEWAY6 : GATEWAY4;
    return ips.find((i) => (i.address.includes(":") ? 6 : 4) === family && i.gateway)?.gateway;
  };
  if (a.mode === "routed") {
    if (families.has(4)) podOps.push({ op: "neigh-add", ip: GATEWAY4, mac: HOST_MAC, dev: a.ifname });
    if (families.has(6)) podOps.push({ op: "neigh-add", ip: GATEWAY6, mac: HOST_MAC, dev: a.ifname });
  }
  for (const family of [4, 6] as const) {
    const gw = gatewayFor(family);
    if (families.has(family) && gw) addRoute({ dst: family === 4 ? "0.0.0.0/0" : "::/0", gw });
  }
  for (const r of a.ipam.routes ?? []) {
    const family = r.dst.includes(":") ? 6 : 4;
    const gw = a.mode === "routed" ? gatewayFor(family) : (r.gw ?? gatewayFor(family));
    if (!families.has(family)) continue;
    const route: Route = { ...r };
    if (gw) route.gw = gw;
    else delete route.gw;
    addRoute(route);
  }
  const routeOps: number[] = [];
  for (const r of routes) {
    const metric = r.priority ?? a.routeMetric;
    if (metric !== undefined) r.priority = metric;
    routeOps.push(podOps.length);
    podOps.push({
      op: "route-add", dst: r.dst, dev: a.ifname,
      ...(r.gw ? { via: r.gw } : {}),
      ...(a.mode === "routed" && r.gw && !r.dst.includes(":") ? { onlink: true } : {}),
      ...(metric !== undefined ? { metric } : {}),
      ...(isDefault(r.dst) && metric === undefined ? { skipIfExists: true } : {}),
    });
  }

  const interfaces: Interface[] = [];
  if (a.mode === "bridge") interfaces.push({ name: a.bridge });
  interfaces.push(a.mode === "routed" ? { name: hostIf, mac: HOST_MAC } : { name: hostIf });
  const pod: Interface = { name: a.ifname, mac, sandbox: a.netns };
  if (a.mtu) pod.mtu = a.mtu;
  interfaces.push(pod);

  const result: Result = { cniVersion: a.ipam.cniVersion, interfaces, ips: resultIps, routes };
  const dns = a.dns ?? a.ipam.dns;
  if (dns) result.dns = dns;
  return {
    hostIf,
    podMac: mac,
    hostOps,
    vethLine,
    podOps,
    hostLines: hostOps.map(renderIpLine),
    podLines: podOps.map(renderIpLine),
    forwarding: [...families].sort(),
    routeOps,
    result,
  };
}

/**
 * The plan as the kernel carried it out, given the pod operations it skipped (`skipIfExists`
 * routes another interface of the pod already holds): those routes leave the result, so that ADD
 * reports exactly what it made and CHECK looks for nothing else. Also returns them, for the log.
 */
export function asCarriedOut(plan: AttachPlan, skippedPodOps: readonly number[]): { plan: AttachPlan; leftOut: Route[] } {
  const skipped = new Set(skippedPodOps);
  const routes = plan.result.routes ?? [];
  const made = routes.flatMap((r, i) => (skipped.has(plan.routeOps[i]!) ? [] : [{ r, op: plan.routeOps[i]! }]));
  if (made.length === routes.length) return { plan, leftOut: [] };
  return {
    plan: { ...plan, routeOps: made.map((m) => m.op), result: { ...plan.result, routes: made.map((m) => m.r) } },
    leftOut: routes.filter((_, i) => skipped.has(plan.routeOps[i]!)),
  };
}

/** `ip route` spells the default route "default"; checks compare it with CNI's "0.0.0.0/0". */
export function sameDst(kernelDst: string, cniDst: string): boolean {
  if (kernelDst === "default") return isDefault(cniDst);
  if (kernelDst === cniDst) return true;
  const k = kernelDst.includes("/") ? kernelDst : `${kernelDst}/${kernelDst.includes(":") ? 128 : 32}`;
  const a = parseIpWithPrefix(k);
  const b = parseIpWithPrefix(cniDst);
  return !!a && !!b && a.prefix === b.prefix && a.ip.value === b.ip.value && a.ip.family === b.ip.family;
}
