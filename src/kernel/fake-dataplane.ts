// An in-memory DataplaneKernel for unit tests: no processes, no root.
//
// It keeps a small model of what the agent owns on a node (the VTEP, its addresses, FDB and
// neighbour entries, routes with the agent's protocol, the NAT table) and understands exactly the
// step lines that dataplane/diff.ts writes, not iproute2 in general; an unknown line throws, so a
// new kind of step cannot go unmodelled. Like `ip -force -batch`, a failing line does not stop
// the others; each failure is reported as one error string.
//
// The kernel behaviours that decide whether an order of steps works are modelled: a route
// `onlink` through a device that is down is refused; a gateway route needs its gateway on the
// device's subnet; setting a device down, or deleting its last address, flushes the routes through
// it and its neighbours (permanent FDB entries survive); changing its MAC flushes its neighbours;
// deleting it takes everything on it along.
//
// Tests can also inject failures (failNextApply, failNextRead), hold calls in flight (hold), and
// read what was called (calls, maxInFlight).
import type { ActualDataplane, Step } from "../dataplane/diff.js";
import { NAT_TABLE, VTEP_NAME, type FdbSpec, type NeighSpec, type RouteSpec, type VtepSpec } from "../dataplane/state.js";
import { cidrContains, parseCidr, parseIp } from "../model/ip.js";
import type { DataplaneKernel } from "./dataplane.js";

export interface FakeUnderlay {
  dev: string;
  /** Address with prefix, e.g. 10.99.1.11/24. */
  cidr: string;
  mtu: number;
}

export type FakeCall = { op: "read" } | { op: "apply"; steps: Step[] };

/** What the fake kernel holds: everything Trellis owns on the node. */
export interface FakeDataplaneState {
  /** The VTEP; `address` is unused (see `vtepAddresses`), as in what the real kernel reads back. */
  vtep?: VtepSpec;
  vtepUp: boolean;
  vtepAddresses: string[];
  routes: RouteSpec[];
  fdb: FdbSpec[];
  neigh: NeighSpec[];
  natState: ActualDataplane["natState"];
  natPodNetwork?: string;
}

const clone = <T>(v: T): T => structuredClone(v);

export class FakeDataplaneKernel implements DataplaneKernel {
  state: FakeDataplaneState = { vtepUp: false, vtepAddresses: [], routes: [], fdb: [], neigh: [], natState: "absent" };
  readonly calls: FakeCall[] = [];
  inFlight = 0;
  maxInFlight = 0;
  private readonly underlays: FakeUnderlay[];
  private applyFailures: string[] = [];
  private readFailures: string[] = [];
  private gate: Promise<void> | undefined;

  constructor(underlays: FakeUnderlay[] = [{ dev: "eth0", cidr: "10.99.1.11/24", mtu: 1500 }]) {
    this.underlays = underlays;
  }

  /** The next apply call fails with `message` and changes nothing (repeat for several). */
  failNextApply(message: string, times = 1): void {
    for (let i = 0; i < times; i++) this.applyFailures.push(message);
  }

  /** The next read call rejects with `message`. */
  failNextRead(message: string): void {
    this.readFailures.push(message);
  }

  /** Holds every read and apply from now on until the returned function is called. */
  hold(): () => void {
    let release!: () => void;
    this.gate = new Promise<void>((r) => (release = r));
    return () => {
      this.gate = undefined;
      release();
    };
  }

  /** The ordered steps of every apply call so far. */
  get appliedSteps(): Step[][] {
    return this.calls.flatMap((c) => (c.op === "apply" ? [c.steps] : []));
  }

  async read(): Promise<ActualDataplane> {
    this.calls.push({ op: "read" });
    return this.inside(async () => {
      const failure = this.readFailures.shift();
      if (failure !== undefined) throw new Error(failure);
      return this.actual();
    });
  }

  async apply(steps: readonly Step[]): Promise<string[]> {
    this.calls.push({ op: "apply", steps: [...steps] });
    return this.inside(async () => {
      const failure = this.applyFailures.shift();
      if (failure !== undefined) return [failure];
      return this.applyNow(steps);
    });
  }

  async underlay(): Promise<{ dev: string; cidr: string; mtu: number; why: string }> {
    const u = this.underlays[0];
    if (!u) throw new Error("fake kernel has no underlay");
    return { ...u, why: `fake underlay ${u.dev}` };
  }

  /** What `read()` returns, synchronously. */
  actual(): ActualDataplane {
    const s = this.state;
    const a: ActualDataplane = { routes: clone(s.routes), fdb: [], neigh: [], natState: s.natState };
    if (s.vtep) {
      a.vtep = clone(s.vtep);
      a.vtepUp = s.vtepUp;
      a.vtepAddresses = [...s.vtepAddresses];
      a.fdb = clone(s.fdb);
      a.neigh = clone(s.neigh);
    }
    if (s.natPodNetwork !== undefined) a.nat = { podNetwork: s.natPodNetwork };
    return a;
  }

  /** Applies steps synchronously, like `-force -batch`: returns one error per failed step. */
  applyNow(steps: readonly Step[]): string[] {
    const errors: string[] = [];
    for (const step of steps) {
      const err = step.tool === "nft" ? this.nft(step.script) : step.tool === "bridge" ? this.bridge(step.line) : this.ip(step.line);
      if (err !== undefined) errors.push(`${step.tool}: ${step.tool === "nft" ? "-f" : step.line}: ${err}`);
    }
    return errors;
  }

  private async inside<T>(fn: () => Promise<T>): Promise<T> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      await Promise.resolve();
      while (this.gate) await this.gate;
      return await fn();
    } finally {
      this.inFlight--;
    }
  }

  private isUnderlay(dev: string): FakeUnderlay | undefined {
    return this.underlays.find((u) => u.dev === dev);
  }

  private flushDevice(dev: string, opts: { routes: boolean; neigh: boolean }): void {
    if (opts.routes) this.state.routes = this.state.routes.filter((r) => r.dev !== dev);
    if (opts.neigh && dev === VTEP_NAME) this.state.neigh = [];
  }

  private ip(line: string): string | undefined {
    const t = line.split(" ");
    const s = this.state;
    const [obj, verb] = t;
    if (obj === "link" && verb === "add") {
      const name = t[2]!;
      const o = options(t.slice(3), ["nolearning"]);
      if (o.type !== "vxlan" || !o.flags.has("nolearning")) throw new Error(`fake kernel: unmodelled link: ${line}`);
      if (name !== VTEP_NAME) throw new Error(`fake kernel: unmodelled link name ${name}`);
      if (s.vtep) return "RTNETLINK answers: File exists";
      if (!this.isUnderlay(need(o, "dev", line))) return `Cannot find device "${o.dev}"`;
      s.vtep = {
        name, vni: Number(need(o, "id", line)), port: Number(need(o, "dstport", line)), localIp: need(o, "local", line),
        dev: need(o, "dev", line), mtu: Number(need(o, "mtu", line)), mac: need(o, "address", line).toLowerCase(), address: "",
      };
      s.vtepUp = false;
      s.vtepAddresses = [];
      s.fdb = [];
      s.neigh = [];
      return undefined;
    }
    if (obj === "link" && verb === "del") {
      if (t[2] !== VTEP_NAME || !s.vtep) return `Cannot find device "${t[2]}"`;
      delete s.vtep;
      s.vtepUp = false;
      s.vtepAddresses = [];
      s.fdb = [];
      s.neigh = [];
      this.flushDevice(VTEP_NAME, { routes: true, neigh: true });
      return undefined;
    }
    if (obj === "link" && verb === "set") {
      if (t[2] !== VTEP_NAME || !s.vtep) return `Cannot find device "${t[2]}"`;
      const what = t[3];
      if (what === "up" && t.length === 4) s.vtepUp = true;
      else if (what === "down" && t.length === 4) {
        s.vtepUp = false;
        this.flushDevice(VTEP_NAME, { routes: true, neigh: true });
      } else if (what === "mtu" && t.length === 5) s.vtep.mtu = Number(t[4]);
      else if (what === "address" && t.length === 5) {
        s.vtep.mac = t[4]!.toLowerCase();
        this.flushDevice(VTEP_NAME, { routes: false, neigh: true });
      } else throw new Error(`fake kernel: unmodelled line: ${line}`);
      return undefined;
    }
    if (obj === "addr" && (verb === "replace" || verb === "del")) {
      const addr = t[2]!;
      if (t[3] !== "dev" || t.length !== 5) throw new Error(`fake kernel: unmodelled line: ${line}`);
      if (t[4] !== VTEP_NAME || !s.vtep) return `Cannot find device "${t[4]}"`;
      if (verb === "replace") {
        if (!s.vtepAddresses.includes(addr)) s.vtepAddresses.push(addr);
        return undefined;
      }
      if (!s.vtepAddresses.includes(addr)) return "RTNETLINK answers: Cannot assign requested address";
      s.vtepAddresses = s.vtepAddresses.filter((a) => a !== addr);
      // The last IPv4 address gone: the kernel disables IP on the device.
      if (s.vtepAddresses.length === 0) this.flushDevice(VTEP_NAME, { routes: true, neigh: true });
      return undefined;
    }
    if (obj === "neigh" && verb === "replace") {
      const o = options(t.slice(3), []);
      if (need(o, "nud", line) !== "permanent") throw new Error(`fake kernel: unmodelled line: ${line}`);
      if (need(o, "dev", line) !== VTEP_NAME || !s.vtep) return `Cannot find device "${o.dev}"`;
      const n: NeighSpec = { ip: t[2]!, mac: need(o, "lladdr", line).toLowerCase() };
      s.neigh = [...s.neigh.filter((x) => x.ip !== n.ip), n];
      return undefined;
    }
    if (obj === "neigh" && verb === "del") {
      if (t[3] !== "dev" || t.length !== 5) throw new Error(`fake kernel: unmodelled line: ${line}`);
      if (t[4] !== VTEP_NAME || !s.vtep) return `Cannot find device "${t[4]}"`;
      if (!s.neigh.some((n) => n.ip === t[2])) return "RTNETLINK answers: No such file or directory";
      s.neigh = s.neigh.filter((n) => n.ip !== t[2]);
      return undefined;
    }
    if (obj === "route" && verb === "replace") {
      const o = options(t.slice(3), ["onlink"]);
      const r: RouteSpec = { dst: t[2]!, via: need(o, "via", line), dev: need(o, "dev", line), onlink: o.flags.has("onlink") };
      if (!o.proto) throw new Error(`fake kernel: a route without the agent's proto: ${line}`);
      const err = this.checkNexthop(r);
      if (err) return err;
      s.routes = [...s.routes.filter((x) => x.dst !== r.dst), r];
      return undefined;
    }
    if (obj === "route" && verb === "del") {
      if (t[3] !== "proto" || t.length !== 5) throw new Error(`fake kernel: unmodelled line: ${line}`);
      if (!s.routes.some((r) => r.dst === t[2])) return "RTNETLINK answers: No such process";
      s.routes = s.routes.filter((r) => r.dst !== t[2]);
      return undefined;
    }
    throw new Error(`fake kernel: unmodelled line: ${line}`);
  }

  private checkNexthop(r: RouteSpec): string | undefined {
    const via = parseIp(r.via);
    if (!via) return `Error: inet address is expected rather than "${r.via}".`;
    if (r.dev === VTEP_NAME) {
      if (!this.state.vtep) return `Cannot find device "${r.dev}"`;
      if (r.onlink) return this.state.vtepUp ? undefined : "Error: Nexthop device is not up.";
      const connected = this.state.vtepUp && this.state.vtepAddresses.some((a) => cidrContains(parseCidr(a)!, via));
      return connected ? undefined : "Error: Nexthop has invalid gateway.";
    }
    const u = this.isUnderlay(r.dev);
    if (!u) return `Cannot find device "${r.dev}"`;
    if (!r.onlink && !cidrContains(parseCidr(u.cidr)!, via)) return "Error: Nexthop has invalid gateway.";
    return undefined;
  }

  private bridge(line: string): string | undefined {
    const t = line.split(" ");
    const s = this.state;
    if (t[0] !== "fdb" || (t[1] !== "append" && t[1] !== "del")) throw new Error(`fake kernel: unmodelled line: ${line}`);
    const o = options(t.slice(3), ["self", "permanent"]);
    if (!o.flags.has("self") || (t[1] === "append" && !o.flags.has("permanent"))) throw new Error(`fake kernel: unmodelled line: ${line}`);
    if (need(o, "dev", line) !== VTEP_NAME || !s.vtep) return `Cannot find device "${o.dev}"`;
    const f: FdbSpec = { mac: t[2]!.toLowerCase(), dst: need(o, "dst", line) };
    const has = s.fdb.some((x) => x.mac === f.mac && x.dst === f.dst);
    if (t[1] === "append") {
      if (!has) s.fdb.push(f);
      return undefined;
    }
    if (!has) return "RTNETLINK answers: No such file or directory";
    s.fdb = s.fdb.filter((x) => !(x.mac === f.mac && x.dst === f.dst));
    return undefined;
  }

  /** Understands the two scripts natScript writes: "(re)create the table for this pod network" and "delete it". */
  private nft(script: string): string | undefined {
    const lines = script.split("\n");
    if (lines[0] !== `table ip ${NAT_TABLE}` || lines[1] !== `delete table ip ${NAT_TABLE}`) {
      // Without the leading no-op "table" a delete of an absent table fails, and a create of an existing one merges.
      throw new Error(`fake kernel: unmodelled nft script:\n${script}`);
    }
    const m = / ip saddr (\S+) ip daddr \1 return /.exec(script);
    if (script.includes(`table ip ${NAT_TABLE} {`)) {
      if (!m) throw new Error(`fake kernel: unmodelled nft script:\n${script}`);
      this.state.natState = "ours";
      this.state.natPodNetwork = m[1]!;
    } else {
      this.state.natState = "absent";
      delete this.state.natPodNetwork;
    }
    return undefined;
  }
}

interface Options {
  [key: string]: string | undefined | Set<string>;
  flags: Set<string>;
}

/** Reads "key value key value flag" tokens; `flagNames` are the tokens that take no value. */
function options(tokens: string[], flagNames: string[]): Options {
  const o: Options = { flags: new Set() };
  for (let i = 0; i < tokens.length; i++) {
    const k = tokens[i]!;
    if (flagNames.includes(k)) o.flags.add(k);
    else o[k] = tokens[++i];
  }
  return o;
}

function need(o: Options, key: string, line: string): string {
  const v = o[key];
  if (typeof v !== "string") throw new Error(`fake kernel: no ${key} in: ${line}`);
  return v;
}
