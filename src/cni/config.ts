// The trellis plugin's own configuration keys, validated. Pure.
import { leaf, list, obj, rejectUnknownFields } from "../model/strict.js";
import { CniError, ErrorCode } from "./errors.js";
import { validateIfName } from "./request.js";
import type { Dns } from "./result.js";

export const MODES = ["routed", "bridge"] as const;
export type Mode = (typeof MODES)[number];

export interface PluginConfig {
  mode: Mode;
  /** MTU of both veth ends (and of a bridge we create); undefined = from subnet file or kernel default. */
  mtu?: number;
  /** Bridge mode: the bridge to attach to (created if missing). */
  bridge: string;
  /** Bridge mode: hairpin on the host port, so a pod can reach itself through a service address. */
  hairpinMode: boolean;
  ipamType: string;
  dns?: Dns;
  /** Append log lines here as well as to stderr. */
  logFile?: string;
  /** The agent's socket that executables forward calls to; "" = never forward (wire.ts). */
  agentSocket?: string;
  /**
   * Metric of every route this attachment gives the pod (an IPAM route's own `priority` wins).
   * Set, the default route is always made, beside another interface's of another metric; unset,
   * a default route another interface of the pod already holds is left out (attachment.ts).
   */
  routeMetric?: number;
}

export const DEFAULT_BRIDGE = "trellis0";

const invalid = (field: string, value: unknown, why: string): CniError =>
  new CniError(ErrorCode.InvalidNetworkConfig, `invalid config: ${field} ${JSON.stringify(value)}: ${why}`);

/**
 * Every key the trellis plugin's configuration may have: the spec's well-known keys (including
 * what runtimes add: prevResult, runtimeConfig, args, capabilities) and the plugin's own. The
 * spec lets a plugin refuse unknown keys, and a misspelt one (`mut: 1400`) must not pass as
 * absent. The `ipam` section belongs to the IPAM plugin, which checks it itself.
 */
export const PLUGIN_CONFIG_SHAPE = obj({
  cniVersion: leaf, cniVersions: leaf, name: leaf, type: leaf, args: leaf, runtimeConfig: leaf, capabilities: leaf, prevResult: leaf,
  ipMasq: leaf, disableCheck: leaf, disableGC: leaf, ipam: leaf,
  "cni.dev/valid-attachments": leaf, "cni.dev/attachments": leaf,
  dns: obj({ nameservers: list(leaf), domain: leaf, search: list(leaf), options: list(leaf) }),
  mode: leaf, mtu: leaf, bridge: leaf, hairpinMode: leaf, logFile: leaf, agentSocket: leaf, routeMetric: leaf,
});

/** Largest route metric the kernel takes (RTA_PRIORITY is a u32). */
export const MAX_ROUTE_METRIC = 0xffffffff;

export function parsePluginConfig(c: Record<string, unknown>): PluginConfig {
  rejectUnknownFields(c, PLUGIN_CONFIG_SHAPE, (m) => new CniError(ErrorCode.InvalidNetworkConfig, `invalid config: ${m}`));
  const mode = c.mode ?? "routed";
  if (typeof mode !== "string" || !(MODES as readonly string[]).includes(mode)) {
    throw invalid("mode", mode, `must be one of ${MODES.join(", ")}`);
  }
  const out: PluginConfig = { mode: mode as Mode, bridge: DEFAULT_BRIDGE, hairpinMode: true, ipamType: "" };
  if (c.mtu !== undefined && c.mtu !== 0) {
    if (typeof c.mtu !== "number" || !Number.isInteger(c.mtu) || c.mtu < 68 || c.mtu > 65535) {
      throw invalid("mtu", c.mtu, "must be an integer between 68 and 65535");
    }
    out.mtu = c.mtu;
  }
  if (c.bridge !== undefined) {
    const bad = typeof c.bridge === "string" ? validateIfName(c.bridge) : "not a string";
    if (bad) throw invalid("bridge", c.bridge, bad);
    out.bridge = c.bridge as string;
  }
  if (c.hairpinMode !== undefined) {
    if (typeof c.hairpinMode !== "boolean") throw invalid("hairpinMode", c.hairpinMode, "must be true or false");
    out.hairpinMode = c.hairpinMode;
  }
  const ipam = c.ipam;
  if (typeof ipam !== "object" || ipam === null || Array.isArray(ipam)) {
    throw invalid("ipam", ipam, "an ipam section with a type is required");
  }
  const type = (ipam as Record<string, unknown>).type;
  if (typeof type !== "string" || type === "" || type.includes("/")) {
    throw invalid("ipam.type", type, "must name a plugin binary (no '/')");
  }
  out.ipamType = type;
  if (c.dns !== undefined) {
    if (typeof c.dns !== "object" || c.dns === null || Array.isArray(c.dns)) throw invalid("dns", c.dns, "must be an object");
    out.dns = c.dns as Dns;
  }
  if (c.logFile !== undefined) {
    if (typeof c.logFile !== "string" || !c.logFile.startsWith("/")) throw invalid("logFile", c.logFile, "must be an absolute path");
    out.logFile = c.logFile;
  }
  if (c.agentSocket !== undefined) {
    if (typeof c.agentSocket !== "string" || (c.agentSocket !== "" && !c.agentSocket.startsWith("/"))) {
      throw invalid("agentSocket", c.agentSocket, "must be an absolute path, or \"\" to never forward calls to the agent");
    }
    out.agentSocket = c.agentSocket;
  }
  if (c.routeMetric !== undefined) {
    if (typeof c.routeMetric !== "number" || !Number.isInteger(c.routeMetric) || c.routeMetric < 0 || c.routeMetric > MAX_ROUTE_METRIC) {
      throw invalid("routeMetric", c.routeMetric, `must be an integer between 0 and ${MAX_ROUTE_METRIC}`);
    }
    out.routeMetric = c.routeMetric;
  }
  return out;
}
