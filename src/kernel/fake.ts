// An in-memory PodKernel for unit tests: no processes, no root.
//
// It records every batch it is given and keeps a small model of what those batches made (links
// with their alias, master, MAC, MTU and addresses; routes with their gateway, device and metric),
// read back through the same interface the plugin uses for CHECK and GC. It understands the
// `ip -batch` lines that cni/attachment.ts writes, not iproute2 in general, and keeps the kernel's
// rules that matter to them: a route is refused with "File exists" when one of the same
// destination and metric is there (whatever its device), and an IPv4 gateway must be reachable
// on the device (an address or link route covering it) unless the route is `onlink`. Like
// `ip -batch` without `-force`, a batch stops at the first failing line and reports it as
// "Command failed -:N" on stderr, except that an operation marked `skipIfExists` which finds its
// route there is left out and reported by hostApply/podApply; tests can also make a given batch
// fail at a given line with failNext(). Pod namespaces exist only once
// addNetns() made them, so a test can also play "the namespace is gone".
import { cidrContains, cidrOf, parseIp, parseIpWithPrefix } from "../model/ip.js";
import { KernelError } from "./exec.js";
import { renderIpLine, skippable, type NetOp } from "./ops.js";
import type { LinkInfo, NetnsState, PodKernel, RouteInfo } from "./pod.js";

/** Where a batch ran: the host, or the pod namespace at this path. */
export type Side = "host" | "pod";

export interface RecordedBatch {
  side: Side;
  /** The pod namespace path; undefined for host batches. */
  netns?: string;
  lines: string[];
}

interface FakeLink extends LinkInfo {
  /** For a veth: where its peer is. */
  peer?: { name: string; netns?: string };
}

interface FakeRoute extends RouteInfo {
  dst: string;
  /** `ip route` keeps a table per family; "default" is spelt the same in both. */
  family: 4 | 6;
}

interface Failure {
  side: Side;
  line: number;
  stderr: string;
  /** Batches on this side still to let through before this one fails. */
  skip: number;
}

const HOST = "";
const isHostRoute = (dst: string): boolean => dst.endsWith("/32") || dst.endsWith("/128");
/** How `ip -j route` prints a destination: "default", a bare host address, or a prefix. */
const kernelDst = (dst: string): string =>
  dst === "0.0.0.0/0" || dst === "::/0" ? "default" : isHostRoute(dst) ? dst.slice(0, dst.lastIndexOf("/")) : dst;
const familyOf = (cniDst: string): 4 | 6 => (cniDst.includes(":") ? 6 : 4);
const routeInfo = ({ family: _family, ...r }: FakeRoute): RouteInfo => r;
const batchError = (line: number, stderr: string): KernelError =>
  new KernelError("ip -batch -", 1, `${stderr}\nCommand failed -:${line}\n`);

export class FakePodKernel implements PodKernel {
  /** Every batch in the order it was run, including those that failed. */
  readonly batches: RecordedBatch[] = [];
  /** Names passed to deleteLink, in order (whether or not they existed). */
  readonly deleted: string[] = [];
  readonly sysctls = new Map<string, string>();
  /** netnsState() per path, overriding the default: "ok" for a namespace made by addNetns, else "missing". */
  readonly netns = new Map<string, NetnsState>();
  /** Links per namespace ("" = host). */
  private readonly links = new Map<string, Map<string, FakeLink>>();
  private readonly routes = new Map<string, FakeRoute[]>();
  private readonly failures: Failure[] = [];
  private readonly deleteErrors = new Map<string, Error>();

  get hostBatches(): string[][] {
    return this.batches.filter((b) => b.side === "host").map((b) => b.lines);
  }

  get podBatches(): RecordedBatch[] {
    return this.batches.filter((b) => b.side === "pod");
  }

  /**
   * Makes a coming batch on `side` fail at 1-based `line`, with `stderr` as ip's complaint; the
   * lines before it take effect. `skip` lets that many batches on that side through first.
   */
  failNext(side: Side, line: number, stderr = "RTNETLINK answers: Operation not permitted", skip = 0): void {
    this.failures.push({ side, line, stderr, skip });
  }

  /** Makes every deleteLink(name) throw `error` (e.g. a KernelError for "Operation not permitted"). */
  failDelete(name: string, error: Error): void {
    this.deleteErrors.set(name, error);
  }

  /** Creates an empty pod namespace at `path` (podBatch refuses unknown paths, like nsenter). */
  addNetns(path: string): void {
    if (!this.links.has(path)) this.links.set(path, new Map());
  }

  /** Adds a link as if something else had created it. */
  addLink(link: Omit<LinkInfo, "addresses"> & { addresses?: LinkInfo["addresses"] }, netns?: string): void {
    this.linksIn(netns).set(link.name, { addresses: [], ...link });
  }

  /**
   * Removes a route as if someone had deleted it; `dst` as CNI spells it ("0.0.0.0/0", "10.1.0.2/32").
   * With `dev`, only the route(s) of that destination on that device.
   */
  removeRoute(dst: string, netns?: string, dev?: string): boolean {
    const table = this.routes.get(netns ?? HOST) ?? [];
    const kept = table.filter((r) => r.dst !== kernelDst(dst) || r.family !== familyOf(dst) || (dev !== undefined && r.dev !== dev));
    this.routes.set(netns ?? HOST, kept);
    return kept.length !== table.length;
  }

  hasLink(name: string, netns?: string): boolean {
    return this.links.get(netns ?? HOST)?.has(name) ?? false;
  }

  /** The routes of a namespace (host when netns is undefined), destinations spelled as `ip` does. */
  routeTable(netns?: string): RouteInfo[] {
    return (this.routes.get(netns ?? HOST) ?? []).map(routeInfo);
  }

  hostApply(ops: readonly NetOp[]): number[] {
    return this.runBatch("host", undefined, ops.map(renderIpLine), skippableLines(ops));
  }

  podApply(netns: string, ops: readonly NetOp[]): number[] {
    return this.podBatch(netns, ops.map(renderIpLine), skippableLines(ops));
  }

  /** The fake works on `ip -batch` lines (ops.ts defines each operation by its line). */
  hostBatch(lines: readonly string[]): void {
    this.runBatch("host", undefined, lines);
  }

  /** Returns the 0-based indexes of the lines in `skippable` that found their route there. */
  podBatch(netns: string, lines: readonly string[], skippable: ReadonlySet<number> = new Set()): number[] {
    if (!this.links.has(netns)) {
      throw new KernelError(`nsenter --net=${netns} ip -batch -`, 1, `nsenter: cannot open ${netns}: No such file or directory`);
    }
    return this.runBatch("pod", netns, lines, skippable);
  }

  linkExists(name: string): boolean {
    return this.hasLink(name);
  }

  deleteLink(name: string): boolean {
    this.deleted.push(name);
    const error = this.deleteErrors.get(name);
    if (error) throw error;
    const link = this.linksIn().get(name);
    if (!link) return false;
    this.removeLink(name, undefined);
    if (link.peer) this.removeLink(link.peer.name, link.peer.netns);
    return true;
  }

  listVeths(): LinkInfo[] {
    return [...this.linksIn().values()].filter((l) => l.kind === "veth").map(copyLink);
  }

  readLink(name: string, netns?: string): LinkInfo | undefined {
    const l = this.links.get(netns ?? HOST)?.get(name);
    return l ? copyLink(l) : undefined;
  }

  readRoutes(dsts: readonly string[], netns?: string): RouteInfo[][] {
    const table = this.routes.get(netns ?? HOST) ?? [];
    return dsts.map((d) => table.filter((r) => r.dst === kernelDst(d) && r.family === familyOf(d)).map(routeInfo));
  }

  ensureSysctl(key: string, value: string): void {
    this.sysctls.set(key, value);
  }

  netnsState(path: string): NetnsState {
    return this.netns.get(path) ?? (path !== HOST && this.links.has(path) ? "ok" : "missing");
  }

  private linksIn(netns?: string): Map<string, FakeLink> {
    const key = netns ?? HOST;
    let m = this.links.get(key);
    if (!m) {
      m = new Map();
      this.links.set(key, m);
    }
    return m;
  }

  private removeLink(name: string, netns: string | undefined): void {
    this.linksIn(netns).delete(name);
    const key = netns ?? HOST;
    this.routes.set(key, (this.routes.get(key) ?? []).filter((r) => r.dev !== name));
  }

  private runBatch(side: Side, netns: string | undefined, lines: readonly string[], skippable: ReadonlySet<number> = new Set()): number[] {
    this.batches.push(netns === undefined ? { side, lines: [...lines] } : { side, netns, lines: [...lines] });
    let failure: Failure | undefined;
    for (const f of this.failures) {
      if (f.side !== side) continue;
      if (f.skip > 0) f.skip--;
      else failure ??= f;
    }
    if (failure) this.failures.splice(this.failures.indexOf(failure), 1);
    const skipped: number[] = [];
    lines.forEach((line, i) => {
      if (failure && failure.line === i + 1) throw batchError(i + 1, failure.stderr);
      const why = this.apply(line, netns);
      if (why && skippable.has(i) && /File exists/.test(why)) skipped.push(i);
      else if (why) throw batchError(i + 1, why);
    });
    return skipped;
  }

  /** Whether an IPv4 gateway is on `dev`'s link: an address of `dev`, or a route without gateway on `dev`, covers it. */
  private reachable(gateway: string, dev: string | undefined, netns: string | undefined): boolean {
    const gw = parseIp(gateway);
    const link = dev ? this.linksIn(netns).get(dev) : undefined;
    if (!gw || !link) return false;
    const covers = (cidr: string): boolean => {
      const p = parseIpWithPrefix(cidr.includes("/") ? cidr : `${cidr}/32`);
      return !!p && cidrContains(cidrOf(p.ip, p.prefix), gw);
    };
    return link.addresses.some((a) => covers(`${a.address}/${a.prefix}`))
      || (this.routes.get(netns ?? HOST) ?? []).some((r) => r.dev === dev && !r.gateway && r.dst !== "default" && covers(r.dst));
  }

  /** Applies one line; returns ip's complaint when it would fail. */
  private apply(line: string, netns: string | undefined): string | undefined {
    const t = line.replace(/#.*$/, "").trim().split(/\s+/);
    const links = this.linksIn(netns);
    const opt = (words: string[], key: string): string | undefined => {
      const i = words.indexOf(key);
      return i >= 0 ? words[i + 1] : undefined;
    };
    const noDevice = (name: string): string => `Cannot find device "${name}"`;
    if (t[0] === "link" && t[1] === "add") {
      const name = t[2]!;
      const peerAt = t.indexOf("peer");
      const own = peerAt >= 0 ? t.slice(0, peerAt) : t;
      const kind = opt(own, "type");
      if (links.has(name)) return "RTNETLINK answers: File exists";
      const link: FakeLink = { name, addresses: [] };
      if (kind) link.kind = kind;
      const mac = opt(own, "address");
      if (mac) link.mac = mac;
      const mtu = opt(own, "mtu");
      if (mtu) link.mtu = Number(mtu);
      if (kind === "veth" && peerAt >= 0) {
        const p = t.slice(peerAt + 1);
        const peerName = opt(p, "name")!;
        const peerNs = opt(p, "netns");
        if (peerNs !== undefined && !this.links.has(peerNs)) return `Invalid "netns" value "${peerNs}"`;
        const peerLinks = this.linksIn(peerNs ?? netns);
        if (peerLinks.has(peerName)) return "RTNETLINK answers: File exists";
        const peer: FakeLink = { name: peerName, kind: "veth", addresses: [], peer: { name, ...(netns ? { netns } : {}) } };
        const pmac = opt(p, "address");
        if (pmac) peer.mac = pmac;
        const pmtu = opt(p, "mtu");
        if (pmtu) peer.mtu = Number(pmtu);
        peerLinks.set(peerName, peer);
        const where = peerNs ?? netns;
        link.peer = where === undefined ? { name: peerName } : { name: peerName, netns: where };
      }
      links.set(name, link);
      return undefined;
    }
    if (t[0] === "link" && t[1] === "set") {
      const link = links.get(t[2]!);
      if (!link) return noDevice(t[2]!);
      const alias = opt(t, "alias");
      if (alias) link.alias = alias;
      const master = opt(t, "master");
      if (master) {
        if (!links.has(master)) return noDevice(master);
        link.master = master;
      }
      return undefined;
    }
    if (t[0] === "addr" && (t[1] === "add" || t[1] === "replace")) {
      const dev = opt(t, "dev")!;
      const link = links.get(dev);
      if (!link) return noDevice(dev);
      const [address, prefix] = t[2]!.split("/");
      const exists = link.addresses.some((a) => a.address === address);
      if (exists && t[1] === "add") return "RTNETLINK answers: File exists";
      if (!exists) link.addresses.push({ address: address!, prefix: Number(prefix) });
      return undefined;
    }
    if (t[0] === "route" && t[1] === "add") {
      const dev = opt(t, "dev");
      if (dev && !links.has(dev)) return noDevice(dev);
      const key = netns ?? HOST;
      const table = this.routes.get(key) ?? [];
      const v6 = t[2]!.includes(":");
      const dst = kernelDst(t[2]!.includes("/") || t[2] === "default" ? t[2]! : `${t[2]}/${v6 ? 128 : 32}`);
      const given = opt(t, "metric");
      // `ip -j route` leaves out an IPv4 metric of 0 and always shows IPv6's (default 1024).
      const metric = given !== undefined ? Number(given) : v6 ? 1024 : undefined;
      const family = v6 ? 6 : 4;
      if (table.some((r) => r.dst === dst && r.family === family && (r.metric ?? 0) === (metric ?? 0))) return "RTNETLINK answers: File exists";
      const via = opt(t, "via");
      if (via && !v6 && !t.includes("onlink") && !this.reachable(via, dev, netns)) return "Error: Nexthop has invalid gateway.";
      const route: FakeRoute = { dst, family };
      if (via) route.gateway = via;
      if (dev) route.dev = dev;
      if (metric) route.metric = metric;
      table.push(route);
      this.routes.set(key, table);
      return undefined;
    }
    if (t[0] === "neigh" && t[1] === "add") {
      const dev = opt(t, "dev")!;
      return links.has(dev) ? undefined : noDevice(dev);
    }
    return `Object "${t[0]}" is unknown, try "ip help".`;
  }
}

function skippableLines(ops: readonly NetOp[]): Set<number> {
  return new Set(ops.flatMap((o, i) => (skippable(o) ? [i] : [])));
}

function copyLink(l: FakeLink): LinkInfo {
  const { peer: _peer, ...rest } = l;
  return { ...rest, addresses: l.addresses.map((a) => ({ ...a })) };
}
