// IPAM configuration: the `ipam` section of the network config, parsed and validated into ranges.
// Pure (the subnet file's text is passed in). Accepts what the reference host-local accepts, so a
// config can switch between "host-local" and "trellis-ipam" by changing only `type`.
import { CniError, ErrorCode } from "../cni/errors.js";
import { parseRoute, type Route } from "../cni/result.js";
import { leaf, list, obj, rejectUnknownFields } from "../model/strict.js";
import {
  bits, cidrContains, cidrFirst, cidrLast, formatCidr, formatIp, ipAdd, ipCompare, parseCidr,
  parseIp, parseIpWithPrefix, type Cidr, type Ip,
} from "../model/ip.js";

export interface Range {
  subnet: Cidr;
  start: Ip;
  end: Ip;
  gateway: Ip;
}

/** One address is allocated from each range set (e.g. one IPv4 set + one IPv6 set = dual stack). */
export type RangeSet = Range[];

export interface IpamConfig {
  type: string;
  rangeSets: RangeSet[];
  routes: Route[];
  dataDir: string;
  resolvConf?: string;
  /** When the ranges came from a subnet file: the MTU it gave, if any. */
  mtu?: number;
  /** When the ranges came from a subnet file: whether its agent said it is ready (TRELLIS_READY). */
  agentReady?: boolean;
}

export const DEFAULT_DATA_DIR = "/var/lib/cni/networks";

/** What the node agent writes for the plugins: the node's pod blocks and MTU. */
export interface SubnetFile {
  network?: Cidr;
  subnets: Cidr[];
  mtu?: number;
  /** The node's name and the spool where the plugin registers endpoints for the agent. */
  node?: string;
  endpointDir?: string;
  /** Whether the node's agent enforces network policy (TRELLIS_POLICY; absent = on when it names an endpoint spool). */
  policy?: boolean;
  /**
   * TRELLIS_READY: false from the moment the agent holds its block until its first full sync (CNI
   * STATUS then fails with code 50, so the runtime reports the network not ready); absent = ready.
   */
  ready?: boolean;
}

const invalid = (field: string, value: unknown, why: string): CniError =>
  new CniError(ErrorCode.InvalidNetworkConfig, `invalid ipam config: ${field} ${JSON.stringify(value)}: ${why}`);

/**
 * Parses a subnet file: KEY=VALUE lines (Flannel's subnet.env style), keys TRELLIS_NETWORK,
 * TRELLIS_SUBNET (v4 block), TRELLIS_SUBNET6 (v6 block), TRELLIS_MTU. '#' starts a comment.
 */
export function parseSubnetFile(text: string, path: string): SubnetFile {
  const out: SubnetFile = { subnets: [] };
  for (const [n, raw] of text.split("\n").entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const eq = line.indexOf("=");
    if (eq < 0) throw invalid(`subnetFile ${path} line ${n + 1}`, line, "expected KEY=VALUE");
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim();
    if (key === "TRELLIS_SUBNET" || key === "TRELLIS_SUBNET6" || key === "TRELLIS_NETWORK") {
      const c = parseCidr(value, true);
      if (!c) throw invalid(`subnetFile ${path} ${key}`, value, "not a CIDR with host bits zero");
      if (key === "TRELLIS_NETWORK") out.network = c;
      else out.subnets.push(c);
    } else if (key === "TRELLIS_NODE" && value !== "") {
      out.node = value;
    } else if (key === "TRELLIS_ENDPOINT_DIR") {
      if (!value.startsWith("/")) throw invalid(`subnetFile ${path} ${key}`, value, "not an absolute path");
      out.endpointDir = value;
    } else if (key === "TRELLIS_POLICY") {
      if (value !== "on" && value !== "off") throw invalid(`subnetFile ${path} ${key}`, value, "must be on or off");
      out.policy = value === "on";
    } else if (key === "TRELLIS_READY") {
      if (value !== "true" && value !== "false") throw invalid(`subnetFile ${path} ${key}`, value, "must be true or false");
      out.ready = value === "true";
    } else if (key === "TRELLIS_MTU") {
      const mtu = Number(value);
      if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) throw invalid(`subnetFile ${path} ${key}`, value, "not an MTU");
      out.mtu = mtu;
    }
  }
  if (out.subnets.length === 0) throw invalid(`subnetFile ${path}`, text.slice(0, 200), "names no TRELLIS_SUBNET");
  return out;
}

function parseRange(raw: unknown, where: string): Range {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw invalid(where, raw, "not an object");
  const r = raw as Record<string, unknown>;
  if (typeof r.subnet !== "string") throw invalid(`${where}.subnet`, r.subnet, "missing or not a string");
  const withPrefix = parseIpWithPrefix(r.subnet);
  if (!withPrefix) throw invalid(`${where}.subnet`, r.subnet, "not a CIDR");
  const subnet = parseCidr(r.subnet, true);
  if (!subnet) throw invalid(`${where}.subnet`, r.subnet, "host bits are set");
  if (bits(subnet.family) - subnet.prefix < 2) throw invalid(`${where}.subnet`, r.subnet, "too small to allocate from");
  return rangeOf(subnet, r, where);
}

function optionalIp(r: Record<string, unknown>, key: string, where: string, subnet: Cidr): Ip | undefined {
  const v = r[key];
  if (v === undefined || v === "") return undefined;
  const ip = typeof v === "string" ? parseIp(v) : undefined;
  if (!ip) throw invalid(`${where}.${key}`, v, "not an IP address");
  if (!cidrContains(subnet, ip)) throw invalid(`${where}.${key}`, v, `outside subnet ${formatCidr(subnet)}`);
  return ip;
}

/** Builds a range over `subnet` with host-local's defaults for start, end and gateway. */
export function rangeOf(subnet: Cidr, r: Record<string, unknown> = {}, where = "range"): Range {
  const first = cidrFirst(subnet);
  const last = cidrLast(subnet);
  const start = optionalIp(r, "rangeStart", where, subnet) ?? ipAdd(first, 1n);
  const end = optionalIp(r, "rangeEnd", where, subnet) ?? (subnet.family === 4 ? ipAdd(last, -1n) : last);
  const gateway = optionalIp(r, "gateway", where, subnet) ?? ipAdd(first, 1n);
  if (ipCompare(start, end) > 0) {
    throw invalid(`${where}.rangeStart`, formatIp(start), `is after rangeEnd ${formatIp(end)}`);
  }
  return { subnet, start, end, gateway };
}

const rangesOverlap = (a: Range, b: Range): boolean =>
  a.subnet.family === b.subnet.family && ipCompare(a.start, b.end) <= 0 && ipCompare(b.start, a.end) <= 0;

export interface IpamInputs {
  /** The text of `ipam.subnetFile`, when the config names one. */
  readSubnetFile?: (path: string) => string;
}

const RANGE_FIELDS = { subnet: leaf, rangeStart: leaf, rangeEnd: leaf, gateway: leaf };
/** Every key of the `ipam` section trellis-ipam reads: host-local's, plus subnetFile. Others are refused. */
export const IPAM_CONFIG_SHAPE = obj({
  type: leaf, ...RANGE_FIELDS, ranges: list(list(obj(RANGE_FIELDS))),
  routes: list(obj({ dst: leaf, gw: leaf, mtu: leaf, advmss: leaf, priority: leaf, table: leaf, scope: leaf })),
  dataDir: leaf, resolvConf: leaf, subnetFile: leaf,
});

export function parseIpamConfig(config: Record<string, unknown>, inputs: IpamInputs = {}): IpamConfig {
  const ipam = config.ipam;
  if (typeof ipam !== "object" || ipam === null || Array.isArray(ipam)) {
    throw new CniError(ErrorCode.InvalidNetworkConfig, `invalid ipam config: "ipam" ${JSON.stringify(ipam)}: missing or not an object`);
  }
  rejectUnknownFields(ipam, IPAM_CONFIG_SHAPE, (m) => new CniError(ErrorCode.InvalidNetworkConfig, `invalid ipam config: ${m}`), "ipam");
  const c = ipam as Record<string, unknown>;
  if (typeof c.type !== "string" || c.type === "") throw invalid("ipam.type", c.type, "missing or not a string");

  const rangeSets: RangeSet[] = [];
  if (c.subnet !== undefined) rangeSets.push([parseRange(c, "ipam")]);
  if (c.ranges !== undefined) {
    if (!Array.isArray(c.ranges)) throw invalid("ipam.ranges", c.ranges, "not a list of range sets");
    c.ranges.forEach((set, i) => {
      if (!Array.isArray(set) || set.length === 0) throw invalid(`ipam.ranges[${i}]`, set, "not a non-empty list of ranges");
      rangeSets.push(set.map((r, j) => parseRange(r, `ipam.ranges[${i}][${j}]`)));
    });
  }
  let mtu: number | undefined;
  let agentReady: boolean | undefined;
  if (c.subnetFile !== undefined) {
    if (typeof c.subnetFile !== "string" || !c.subnetFile.startsWith("/")) {
      throw invalid("ipam.subnetFile", c.subnetFile, "not an absolute path");
    }
    if (rangeSets.length === 0) {
      let text: string;
      try {
        text = (inputs.readSubnetFile ?? (() => { throw new Error("no reader"); }))(c.subnetFile);
      } catch (e) {
        throw new CniError(ErrorCode.TryAgainLater, `subnet file ${c.subnetFile} cannot be read: is the trellis agent running?`,
          String((e as Error).message ?? e));
      }
      const sf = parseSubnetFile(text, c.subnetFile);
      for (const s of sf.subnets) rangeSets.push([rangeOf(s)]);
      mtu = sf.mtu;
      if (sf.ready === false) agentReady = false;
    }
  }
  if (rangeSets.length === 0) throw invalid("ipam", ipam, "no IP ranges specified (ranges, subnet or subnetFile)");

  // Ranges must not overlap, within a set or across sets.
  const all = rangeSets.flatMap((set, i) => set.map((r, j) => ({ r, where: `ipam.ranges[${i}][${j}]` })));
  for (let a = 0; a < all.length; a++) {
    for (let b = a + 1; b < all.length; b++) {
      if (rangesOverlap(all[a]!.r, all[b]!.r)) {
        throw invalid(all[b]!.where, formatCidr(all[b]!.r.subnet), `overlaps ${all[a]!.where}`);
      }
    }
  }

  const routes: Route[] = [];
  if (c.routes !== undefined) {
    if (!Array.isArray(c.routes)) throw invalid("ipam.routes", c.routes, "not a list");
    c.routes.forEach((r, i) => routes.push(parseRoute(r, `ipam.routes[${i}]`, (what, v) => invalid(what, v, "invalid"))));
  }
  let dataDir = DEFAULT_DATA_DIR;
  if (c.dataDir !== undefined) {
    if (typeof c.dataDir !== "string" || !c.dataDir.startsWith("/")) throw invalid("ipam.dataDir", c.dataDir, "not an absolute path");
    dataDir = c.dataDir;
  }
  const out: IpamConfig = { type: c.type, rangeSets, routes, dataDir };
  if (c.resolvConf !== undefined) {
    if (typeof c.resolvConf !== "string") throw invalid("ipam.resolvConf", c.resolvConf, "not a path");
    out.resolvConf = c.resolvConf;
  }
  if (mtu !== undefined) out.mtu = mtu;
  if (agentReady !== undefined) out.agentReady = agentReady;
  return out;
}

/** IPs a runtime asked for: CNI_ARGS IP=, runtimeConfig.ips, args.cni.ips (all honoured). */
export function requestedIps(config: Record<string, unknown>, cniArgs: ReadonlyMap<string, string>): Ip[] {
  const texts: unknown[] = [];
  const fromArgs = cniArgs.get("IP");
  if (fromArgs) texts.push(...fromArgs.split(","));
  const rc = config.runtimeConfig as Record<string, unknown> | undefined;
  if (rc && Array.isArray(rc.ips)) texts.push(...rc.ips);
  const args = config.args as { cni?: { ips?: unknown } } | undefined;
  if (args?.cni && Array.isArray(args.cni.ips)) texts.push(...args.cni.ips);
  const out: Ip[] = [];
  for (const t of texts) {
    const s = typeof t === "string" ? t.split("/")[0]! : "";
    const ip = parseIp(s);
    if (!ip) throw invalid("requested IP", t, "not an IP address");
    if (!out.some((o) => o.family === ip.family && o.value === ip.value)) out.push(ip);
  }
  return out;
}

/** Parses resolv.conf text into a CNI dns object. */
export function parseResolvConf(text: string): { nameservers?: string[]; domain?: string; search?: string[]; options?: string[] } {
  const dns: { nameservers?: string[]; domain?: string; search?: string[]; options?: string[] } = {};
  for (const raw of text.split("\n")) {
    const line = raw.replace(/[#;].*$/, "").trim();
    const [key, ...rest] = line.split(/\s+/);
    if (!key || rest.length === 0) continue;
    if (key === "nameserver") (dns.nameservers ??= []).push(rest[0]!);
    else if (key === "domain") dns.domain = rest[0]!;
    else if (key === "search") dns.search = rest;
    else if (key === "options") (dns.options ??= []).push(...rest);
  }
  return dns;
}
