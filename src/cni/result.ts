// CNI results: one internal shape (spec 1.1.0) and conversion to the shape of each version we
// speak. Pure.
//
// Versions and their result shapes (SPEC "Result", Go pkg/types/{040,100}):
//   1.1.0          interfaces{name,mac,mtu,sandbox,socketPath,pciID}, ips{address,gateway,interface},
//                  routes{dst,gw,mtu,advmss,priority,table,scope}, dns
//   1.0.0          the same without the 1.1.0 additions (interface mtu/socketPath/pciID, route extras)
//   0.3.0 … 0.4.0  ips[] carry "version": "4"|"6"; interfaces only name/mac/sandbox; routes dst/gw
import { CniError, ErrorCode } from "./errors.js";
import { parseIp, parseIpWithPrefix } from "../model/ip.js";

export const SUPPORTED_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];
export const LATEST_VERSION: CniVersion = "1.1.0";

export interface Interface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
  socketPath?: string;
  pciID?: string;
}

export interface IpConfig {
  /** CIDR notation: address with the prefix length of its subnet. */
  address: string;
  gateway?: string;
  /** Index into `interfaces`. */
  interface?: number;
}

export interface Route {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

export interface Dns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export interface Result {
  cniVersion: string;
  interfaces?: Interface[];
  ips?: IpConfig[];
  routes?: Route[];
  dns?: Dns;
}

export function isSupportedVersion(v: string): v is CniVersion {
  return (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

/** Orders semver strings "a.b.c"; unparseable versions sort first. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

const familyOf = (address: string): "4" | "6" => (address.includes(":") ? "6" : "4");

/** Renders a result in the shape of `version`. Nothing in `r` is modified. */
export function resultForVersion(r: Result, version: CniVersion): Record<string, unknown> {
  const modern = version === "1.0.0" || version === "1.1.0";
  const v11 = version === "1.1.0";
  const out: Record<string, unknown> = { cniVersion: version };
  if (r.interfaces && r.interfaces.length > 0) {
    out.interfaces = r.interfaces.map((i) => {
      const o: Record<string, unknown> = { name: i.name };
      if (i.mac) o.mac = i.mac;
      if (v11 && i.mtu !== undefined) o.mtu = i.mtu;
      if (i.sandbox) o.sandbox = i.sandbox;
      if (v11 && i.socketPath) o.socketPath = i.socketPath;
      if (v11 && i.pciID) o.pciID = i.pciID;
      return o;
    });
  }
  if (r.ips && r.ips.length > 0) {
    out.ips = r.ips.map((ip) => {
      const o: Record<string, unknown> = {};
      if (!modern) o.version = familyOf(ip.address);
      if (ip.interface !== undefined) o.interface = ip.interface;
      o.address = ip.address;
      if (ip.gateway) o.gateway = ip.gateway;
      return o;
    });
  }
  if (r.routes && r.routes.length > 0) {
    out.routes = r.routes.map((rt) => {
      const o: Record<string, unknown> = { dst: rt.dst };
      if (rt.gw) o.gw = rt.gw;
      if (v11) {
        for (const k of ["mtu", "advmss", "priority", "table", "scope"] as const) {
          if (rt[k] !== undefined) o[k] = rt[k];
        }
      }
      return o;
    });
  }
  const dns = r.dns;
  if (dns && (dns.nameservers?.length || dns.domain || dns.search?.length || dns.options?.length)) {
    out.dns = dns;
  } else if (!modern) {
    out.dns = {};
  }
  return out;
}

const bad = (what: string, value: unknown): CniError =>
  new CniError(ErrorCode.DecodingFailure, `invalid result: ${what}`, `value: ${JSON.stringify(value)}`);

/**
 * Reads a result (from a delegated IPAM plugin or from prevResult) of any 0.3.0+ shape into the
 * internal shape. Fields we do not know are dropped; malformed ones are an error.
 */
export function parseResult(raw: unknown, fallbackVersion: string): Result {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw bad("not an object", raw);
  const o = raw as Record<string, unknown>;
  const cniVersion = typeof o.cniVersion === "string" && o.cniVersion ? o.cniVersion : fallbackVersion;
  if ("ip4" in o || "ip6" in o) {
    throw new CniError(ErrorCode.IncompatibleVersion, "result in the 0.1.0/0.2.0 shape is not supported",
      `cniVersion ${JSON.stringify(cniVersion)}`);
  }
  const r: Result = { cniVersion };
  if (o.interfaces !== undefined && o.interfaces !== null) {
    if (!Array.isArray(o.interfaces)) throw bad("interfaces is not a list", o.interfaces);
    r.interfaces = o.interfaces.map((i) => {
      if (typeof i !== "object" || i === null || typeof (i as Interface).name !== "string") {
        throw bad("interface without a name", i);
      }
      const x = i as Record<string, unknown>;
      const itf: Interface = { name: x.name as string };
      if (typeof x.mac === "string" && x.mac) itf.mac = x.mac;
      if (typeof x.mtu === "number") itf.mtu = x.mtu;
      if (typeof x.sandbox === "string" && x.sandbox) itf.sandbox = x.sandbox;
      if (typeof x.socketPath === "string" && x.socketPath) itf.socketPath = x.socketPath;
      if (typeof x.pciID === "string" && x.pciID) itf.pciID = x.pciID;
      return itf;
    });
  }
  if (o.ips !== undefined && o.ips !== null) {
    if (!Array.isArray(o.ips)) throw bad("ips is not a list", o.ips);
    r.ips = o.ips.map((i) => {
      const x = (typeof i === "object" && i !== null ? i : {}) as Record<string, unknown>;
      if (typeof x.address !== "string" || !parseIpWithPrefix(x.address)) throw bad("ips[].address", i);
      const ip: IpConfig = { address: x.address };
      if (x.gateway !== undefined && x.gateway !== "") {
        if (typeof x.gateway !== "string" || !parseIp(x.gateway)) throw bad("ips[].gateway", i);
        ip.gateway = x.gateway;
      }
      if (x.interface !== undefined && x.interface !== null) {
        if (typeof x.interface !== "number" || !Number.isInteger(x.interface) || x.interface < 0) {
          throw bad("ips[].interface", i);
        }
        ip.interface = x.interface;
      }
      return ip;
    });
  }
  if (o.routes !== undefined && o.routes !== null) {
    if (!Array.isArray(o.routes)) throw bad("routes is not a list", o.routes);
    r.routes = o.routes.map((rt) => parseRoute(rt, "routes[]", bad));
  }
  if (typeof o.dns === "object" && o.dns !== null) r.dns = o.dns as Dns;
  return r;
}

/** Validates one route object ({dst, gw?, ...}); `fail` builds the error to throw. */
export function parseRoute(raw: unknown, where: string, fail: (what: string, value: unknown) => Error): Route {
  const x = (typeof raw === "object" && raw !== null ? raw : {}) as Record<string, unknown>;
  if (typeof x.dst !== "string" || !parseIpWithPrefix(x.dst)) throw fail(`${where}.dst`, raw);
  const rt: Route = { dst: x.dst };
  if (x.gw !== undefined && x.gw !== "") {
    if (typeof x.gw !== "string" || !parseIp(x.gw)) throw fail(`${where}.gw`, raw);
    rt.gw = x.gw;
  }
  for (const k of ["mtu", "advmss", "priority", "table", "scope"] as const) {
    if (x[k] !== undefined) {
      if (typeof x[k] !== "number" || !Number.isInteger(x[k])) throw fail(`${where}.${k}`, raw);
      rt[k] = x[k] as number;
    }
  }
  return rt;
}
