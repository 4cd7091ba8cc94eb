// The agent's view of the kernel: read back what Trellis owns on this node, and apply steps.
// Reads use `ip -j`, `bridge -j`, `nft -j`; writes use `ip -force -batch`, `bridge -force -batch`
// and `nft -f` (atomic). With -force a failing line does not stop the others; the reconciler
// reads back again and retries whatever is still missing.
import type { ActualDataplane, Step } from "../dataplane/diff.js";
import {
  AGENT_ROUTE_PROTO, BGP_ROUTE_TABLE, BGP_RULE_PREF, NAT_TABLE, POD_ROUTE_PROTO, VTEP_NAME, type FdbSpec, type NeighSpec, type PodRouteSpec, type RouteSpec,
} from "../dataplane/state.js";
import * as fs from "node:fs";
import { KernelError, runAsync } from "./exec.js";

/** What a read must cover beyond the basics (each costs a process): given from the desired state. */
export interface ReadScope {
  /** Pod routes of IPv6 addresses are desired. */
  v6PodRoutes?: boolean;
  /** The bgp backend is desired (its rule, blackhole and BIRD's table). */
  bgp?: boolean;
}

export interface DataplaneKernel {
  read(scope?: ReadScope): Promise<ActualDataplane>;
  /** Applies steps in order; returns the errors of the steps that failed (empty when all applied). */
  apply(steps: readonly Step[]): Promise<string[]>;
  /** Underlay facts: the device that holds `ip` (or the default route's device) and its address/MTU. */
  underlay(opts: { iface?: string; publicIp?: string }): Promise<{ dev: string; cidr: string; mtu: number; why: string }>;
}

interface LinkJson {
  ifname: string;
  mtu: number;
  address: string;
  flags: string[];
  linkinfo?: { info_kind?: string; info_data?: { id?: number; port?: number; local?: string; link?: string } };
  addr_info?: Array<{ family: string; local: string; prefixlen: number; scope?: string }>;
  link_index?: number;
  ifindex?: number;
}

interface RouteJson {
  type?: string;
  dst: string;
  gateway?: string;
  dev: string;
  protocol?: string;
  flags?: string[];
}

/** The links of our own namespace, without a process: /proc/sys/net lists the caller's namespace's. */
function ownLinks(): string[] {
  try {
    return fs.readdirSync("/proc/sys/net/ipv4/conf").filter((n) => n !== "all" && n !== "default");
  } catch {
    return [];
  }
}

/** `ip -j route` shows a host route's dst without its length. */
const withLength = (dst: string): string => (dst.includes("/") ? dst : `${dst}/${dst.includes(":") ? 128 : 32}`);

export class RealDataplaneKernel implements DataplaneKernel {
  /** `netns`: read (and write) the data plane of another namespace, e.g. a lab node's, from outside. */
  constructor(private readonly opts: { netns?: string } = {}) {}

  private async json<T>(cmd: string, args: string[]): Promise<T> {
    const out = (await runAsync(cmd, args, { netns: this.opts.netns })).stdout.trim();
    return (out ? JSON.parse(out) : []) as T;
  }

  /** Whether the last read found BGP objects of ours: read them again until they are gone. */
  private bgpSeen = false;

  /**
   * Reads everything we own; the reads run concurrently (they are independent processes). The
   * BGP rule and table are read when the bgp backend is desired or left something behind; IPv6
   * pod routes when some are desired. Links come from /proc (no process) in our own namespace.
   */
  async read(scope: ReadScope = {}): Promise<ActualDataplane> {
    const json = <T>(cmd: string, args: string[]): Promise<T> => this.json<T>(cmd, args);
    const bgp = !!scope.bgp || this.bgpSeen;
    const actual: ActualDataplane = { routes: [], fdb: [], neigh: [], natState: "absent" };
    const absentIsEmpty = async <T>(p: Promise<T[]>): Promise<T[]> => {
      try {
        return await p;
      } catch (e) {
        if (e instanceof KernelError && e.notFound) return [];
        throw e;
      }
    };
    const [vteps, links, fdb, neigh, routes, routes6, nat, rules, bgpRoutes] = await Promise.all([
      absentIsEmpty(json<LinkJson[]>("ip", ["-d", "-j", "addr", "show", "dev", VTEP_NAME])),
      this.opts.netns ? json<LinkJson[]>("ip", ["-j", "link", "show"]).then((l) => l.map((x) => x.ifname)) : Promise.resolve(ownLinks()),
      absentIsEmpty(json<Array<{ mac: string; dst?: string }>>("bridge", ["-j", "fdb", "show", "dev", VTEP_NAME])),
      absentIsEmpty(json<Array<{ dst: string; lladdr?: string; state?: string[] }>>("ip", ["-j", "-4", "neigh", "show", "dev", VTEP_NAME])),
      json<RouteJson[]>("ip", ["-j", "-4", "route", "show", "table", "main"]),
      scope.v6PodRoutes ? json<RouteJson[]>("ip", ["-j", "-6", "route", "show", "table", "main", "proto", String(POD_ROUTE_PROTO)]) : Promise.resolve([]),
      this.readNat(),
      bgp ? json<Array<{ priority: number; dst?: string; dstlen?: number; table?: string }>>("ip", ["-j", "-4", "rule", "show", "pref", String(BGP_RULE_PREF)])
        : Promise.resolve([]),
      // The BGP table exists only once BIRD has put a route in it.
      bgp ? json<RouteJson[]>("ip", ["-j", "-4", "route", "show", "table", String(BGP_ROUTE_TABLE)]).catch((e: unknown) => {
        if (e instanceof KernelError && /table does not exist/i.test(e.stderr)) return [];
        throw e;
      }) : Promise.resolve([]),
    ]);
    actual.rules = rules.filter((r) => r.dst !== undefined).map((r) => ({
      pref: r.priority, to: r.dst!.includes("/") ? r.dst! : `${r.dst}/${r.dstlen ?? 32}`, table: Number(r.table),
    }));
    actual.bgpRoutes = bgpRoutes.filter((r) => (r.type ?? "unicast") === "unicast")
      .map((r) => ({ dst: withLength(r.dst), ...(r.gateway ? { via: r.gateway } : {}), ...(r.dev ? { dev: r.dev } : {}) }));
    actual.links = links;
    const vtep = vteps[0];
    if (vtep?.linkinfo?.info_kind === "vxlan") {
      const d = vtep.linkinfo.info_data ?? {};
      let dev = d.link ?? "";
      if (!dev && vtep.link_index !== undefined) dev = await this.nameOf(vtep.link_index);
      actual.vtep = {
        name: VTEP_NAME, vni: d.id ?? 0, port: d.port ?? 0, localIp: d.local ?? "", dev, mtu: vtep.mtu, mac: vtep.address,
        address: "",
      };
      actual.vtepUp = vtep.flags.includes("UP");
      actual.vtepAddresses = (vtep.addr_info ?? []).filter((a) => a.family === "inet").map((a) => `${a.local}/${a.prefixlen}`);
      actual.fdb = fdb.filter((f): f is FdbSpec => typeof f.dst === "string" && f.mac !== "00:00:00:00:00:00")
        .map((f) => ({ mac: f.mac, dst: f.dst }));
      actual.neigh = neigh.filter((n) => n.lladdr && (n.state ?? []).includes("PERMANENT"))
        .map((n): NeighSpec => ({ ip: n.dst, mac: n.lladdr! }));
    }
    actual.blackholes = routes.filter((r) => r.protocol === String(AGENT_ROUTE_PROTO) && r.type === "blackhole").map((r) => withLength(r.dst));
    this.bgpSeen = actual.rules.length > 0 || actual.blackholes.length > 0;
    actual.routes = routes.filter((r) => r.protocol === String(AGENT_ROUTE_PROTO) && r.gateway).map((r): RouteSpec => ({
      dst: withLength(r.dst), via: r.gateway!, dev: r.dev, onlink: (r.flags ?? []).includes("onlink"),
    }));
    actual.podRoutes = [...routes.filter((r) => r.protocol === String(POD_ROUTE_PROTO)), ...routes6]
      .map((r): PodRouteSpec => ({ dst: withLength(r.dst), dev: r.dev }));
    actual.natState = nat.state;
    if (nat.podNetwork) actual.nat = { podNetwork: nat.podNetwork };
    return actual;
  }

  private async nameOf(index: number): Promise<string> {
    const links = await this.json<LinkJson[]>("ip", ["-j", "link", "show"]);
    return links.find((l) => l.ifindex === index)?.ifname ?? "";
  }

  /** Our NAT table is "ours" when it holds exactly the two commented rules we write. */
  private async readNat(): Promise<{ state: ActualDataplane["natState"]; podNetwork?: string }> {
    let listing: { nftables: Array<Record<string, unknown>> };
    try {
      listing = await this.json("nft", ["-j", "list", "table", "ip", NAT_TABLE]);
    } catch (e) {
      if (e instanceof KernelError && /No such file|does not exist/i.test(e.stderr)) return { state: "absent" };
      throw e;
    }
    const rules = listing.nftables.map((o) => o.rule as { comment?: string; expr?: unknown[] } | undefined).filter((r) => r !== undefined);
    const comments = rules.map((r) => r!.comment ?? "");
    if (rules.length !== 2 || !comments[0]?.startsWith("trellis: pod to pod") || !comments[1]?.startsWith("trellis: nat outgoing")) {
      return { state: "drifted" };
    }
    const text = JSON.stringify(rules[0]!.expr ?? []);
    const m = /"prefix":\{"addr":"([\d.]+)","len":(\d+)\}/.exec(text);
    return m ? { state: "ours", podNetwork: `${m[1]}/${m[2]}` } : { state: "drifted" };
  }

  async apply(steps: readonly Step[]): Promise<string[]> {
    const errors: string[] = [];
    let i = 0;
    while (i < steps.length) {
      const s = steps[i]!;
      if (s.tool === "nft") {
        try {
          await runAsync("nft", ["-f", "-"], { input: s.script, netns: this.opts.netns });
        } catch (e) {
          errors.push((e as Error).message);
        }
        i++;
        continue;
      }
      // Consecutive steps of the same tool go in one batch.
      const lines: string[] = [];
      while (i < steps.length && steps[i]!.tool === s.tool) lines.push((steps[i++] as { line: string }).line);
      try {
        await runAsync(s.tool, ["-force", "-batch", "-"], { input: lines.join("\n") + "\n", netns: this.opts.netns });
      } catch (e) {
        errors.push(`${s.tool}: ${(e as KernelError).stderr?.trim() || (e as Error).message}`);
      }
    }
    return errors;
  }

  async underlay(opts: { iface?: string; publicIp?: string }): Promise<{ dev: string; cidr: string; mtu: number; why: string }> {
    const links = await this.json<LinkJson[]>("ip", ["-j", "addr", "show"]);
    const v4 = (l: LinkJson) => (l.addr_info ?? []).filter((a) => a.family === "inet" && a.scope !== "host");
    if (opts.publicIp) {
      for (const l of links) {
        const a = v4(l).find((x) => x.local === opts.publicIp);
        if (a) return { dev: l.ifname, cidr: `${a.local}/${a.prefixlen}`, mtu: l.mtu, why: `--public-ip ${opts.publicIp} is on ${l.ifname}` };
      }
      throw new Error(`--public-ip ${opts.publicIp} is not an address of any interface on this node`);
    }
    let dev = opts.iface;
    let why = `--iface ${opts.iface}`;
    if (!dev) {
      const routes = await this.json<Array<{ dst: string; dev: string }>>("ip", ["-j", "-4", "route", "show", "default"]);
      dev = routes[0]?.dev;
      why = `${dev} carries the default route`;
      if (!dev) {
        const candidates = links.filter((l) => v4(l).length > 0 && l.ifname !== "lo" && !l.ifname.startsWith("trl") && l.ifname !== VTEP_NAME);
        if (candidates.length !== 1) throw new Error("no default route and no single candidate interface: pass --iface or --public-ip");
        dev = candidates[0]!.ifname;
        why = `${dev} is the only interface with an IPv4 address (no default route)`;
      }
    }
    const link = links.find((l) => l.ifname === dev);
    const a = link ? v4(link)[0] : undefined;
    if (!link || !a) throw new Error(`interface ${dev} has no IPv4 address`);
    return { dev, cidr: `${a.local}/${a.prefixlen}`, mtu: link.mtu, why: `${why}; its address ${a.local}/${a.prefixlen}` };
  }
}
