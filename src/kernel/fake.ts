// An in-memory PodKernel for unit tests: no processes, no root.
//
// It records every batch it is given and keeps a small model of what those batches made (links
// with their alias, master, MAC, MTU and addresses; routes), read back through the same
// interface the plugin uses for CHECK and GC. It understands the `ip -batch` lines that
// cni/attachment.ts writes, not iproute2 in general. Like `ip -batch` without `-force`, a batch
// stops at the first failing line and reports it as "Command failed -:N" on stderr; tests can
// also make a given batch fail at a given line with failNext(). Pod namespaces exist only once
// addNetns() made them, so a test can also play "the namespace is gone".
import { KernelError } from "./exec.js";
import { renderIpLine, type NetOp } from "./ops.js";
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

  /** Removes a route as if someone had deleted it; `dst` as CNI spells it ("0.0.0.0/0", "10.1.0.2/32"). */
  removeRoute(dst: string, netns?: string): boolean {
    const table = this.routes.get(netns ?? HOST) ?? [];
    const kept = table.filter((r) => r.dst !== kernelDst(dst));
    this.routes.set(netns ?? HOST, kept);
    return kept.length !== table.length;
  }

  hasLink(name: string, netns?: string): boolean {
    return this.links.get(netns ?? HOST)?.has(name) ?? false;
  }

  /** The routes of a namespace (host when netns is undefined), destinations spelled as `ip` does. */
  routeTable(netns?: string): FakeRoute[] {
    return [...(this.routes.get(netns ?? HOST) ?? [])];
  }

  hostApply(ops: readonly NetOp[]): void {
    this.hostBatch(ops.map(renderIpLine));
  }

  podApply(netns: string, ops: readonly NetOp[]): void {
    this.podBatch(netns, ops.map(renderIpLine));
  }

  /** The fake works on `ip -batch` lines (ops.ts defines each operation by its line). */
  hostBatch(lines: readonly string[]): void {
    this.runBatch("host", undefined, lines);
  }

  podBatch(netns: string, lines: readonly string[]): void {
    if (!this.links.has(netns)) {
      throw new KernelError(`nsenter --net=${netns} ip -batch -`, 1, `nsenter: cannot open ${netns}: No such file or directory`);
    }
    this.runBatch("pod", netns, lines);
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
    return dsts.map((d) => table.filter((r) => r.dst === kernelDst(d)).map((r) => ({ ...r })));
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

  private runBatch(side: Side, netns: string | undefined, lines: readonly string[]): void {
    this.batches.push(netns === undefined ? { side, lines: [...lines] } : { side, netns, lines: [...lines] });
    let failure: Failure | undefined;
    for (const f of this.failures) {
      if (f.side !== side) continue;
      if (f.skip > 0) f.skip--;
      else failure ??= f;
    }
    if (failure) this.failures.splice(this.failures.indexOf(failure), 1);
    lines.forEach((line, i) => {
      if (failure && failure.line === i + 1) throw batchError(i + 1, failure.stderr);
      const why = this.apply(line, netns);
      if (why) throw batchError(i + 1, why);
    });
  }

  /** Applies one line; returns ip's complaint when it would fail. */
  private apply(line: string, netns: string | undefined): string | undefined {
    const t = line.split(/\s+/);
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
      const dst = kernelDst(t[2]!.includes("/") || t[2] === "default" ? t[2]! : `${t[2]}/${t[2]!.includes(":") ? 128 : 32}`);
      if (table.some((r) => r.dst === dst)) return "RTNETLINK answers: File exists";
      const route: FakeRoute = { dst };
      const via = opt(t, "via");
      if (via) route.gateway = via;
      if (dev) route.dev = dev;
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

function copyLink(l: FakeLink): LinkInfo {
  const { peer: _peer, ...rest } = l;
  return { ...rest, addresses: l.addresses.map((a) => ({ ...a })) };
}
