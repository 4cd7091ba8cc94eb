// The trellis CNI plugin's commands. Decisions are in attachment.ts (pure); this file sequences
// them: IPAM, then the host side, then the pod side, undoing what it did if a later step fails.
import * as fs from "node:fs";
import { endpointFileName } from "../agent/endpoint-file.js";
import { childPath } from "../model/child-path.js";
import type { Endpoint } from "../policy/model.js";
import { KernelError } from "../kernel/exec.js";
import type { PodKernel } from "../kernel/pod.js";
import { parseSubnetFile, type SubnetFile } from "../ipam/config.js";
import { ipamAdd, ipamCheck, ipamDel, ipamGc, ipamStatus, type IpamDeps } from "../ipam/plugin.js";
import { attachmentKey, validAttachments } from "./attachments.js";
import { asCarriedOut, parseHostIfAlias, planAttachment, podHostIfName, sameDst, type AttachPlan } from "./attachment.js";
import { parsePluginConfig, type PluginConfig } from "./config.js";
import { findPlugin, runDelegate } from "./delegate.js";
import { CniError, ErrorCode } from "./errors.js";
import type { CniRequest, Env } from "./request.js";
import { parseResult, type Result } from "./result.js";
import type { PluginHandlers } from "./skel.js";

export interface IpamRunner {
  add(req: CniRequest): Result;
  del(req: CniRequest): void;
  check(req: CniRequest): void;
  gc(req: CniRequest): void;
  status(req: CniRequest): void;
}

export interface PluginDeps {
  kernel: PodKernel;
  env: Env;
  log(line: string): void;
  readFile(path: string): string;
  /** Chooses how to run IPAM for a request; default: in-process for trellis-ipam, else delegate. */
  ipamFor?(req: CniRequest, cfg: PluginConfig): IpamRunner;
  /** The endpoint spool the agent reads; default: files. */
  spool?: Spool;
}

export interface Spool {
  write(dir: string, name: string, text: string): void;
  remove(dir: string, name: string): void;
  list(dir: string): string[];
}

/**
 * Files written atomically (temporary name, then rename), so the agent never reads half a record.
 * Names are checked at the point of use as well: nothing leaves the spool directory.
 */
export const fileSpool: Spool = {
  write(dir, name, text) {
    const file = childPath(dir, name);
    const tmp = childPath(dir, `.${name}.${process.pid}`);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, file);
  },
  remove(dir, name) {
    fs.rmSync(childPath(dir, name), { force: true });
  },
  list(dir) {
    try {
      return fs.readdirSync(dir).filter((n) => n.endsWith(".json"));
    } catch {
      return [];
    }
  },
};

/** Our own IPAM runs in-process (one process start less per pod); any other is delegated. */
export function defaultIpamFor(deps: PluginDeps): (req: CniRequest, cfg: PluginConfig) => IpamRunner {
  return (req, cfg) => {
    const pluginPath = findPlugin(cfg.ipamType, req.path);
    if (cfg.ipamType === "trellis-ipam") {
      const ideps: IpamDeps = { readFile: deps.readFile, log: (l) => deps.log(`ipam: ${l}`) };
      return {
        add: (r) => ipamAdd(r, ideps),
        del: (r) => ipamDel(r, ideps),
        check: (r) => ipamCheck(r, ideps),
        gc: (r) => ipamGc(r, ideps),
        status: (r) => ipamStatus(r, ideps),
      };
    }
    const call = (r: CniRequest, command: CniRequest["command"]): Result | undefined =>
      runDelegate({ command, pluginPath, env: deps.env, stdin: r.stdin, cniVersion: r.cniVersion, stderr: (t) => deps.log(t.trimEnd()) });
    return {
      add: (r) => call(r, "ADD")!,
      del: (r) => void call(r, "DEL"),
      check: (r) => void call(r, "CHECK"),
      gc: (r) => void call(r, "GC"),
      status: (r) => void call(r, "STATUS"),
    };
  };
}

const kernelFailure = (what: string, e: unknown): CniError =>
  e instanceof CniError ? e : new CniError(ErrorCode.KernelFailure, `${what}: ${(e as Error).message}`, "", { cause: e });

/** The pod side's error; a route that is already there is most likely another attachment's. */
function podFailure(req: CniRequest, plan: AttachPlan, e: unknown): CniError {
  const line = e instanceof KernelError && e.exists ? e.failedBatchLine : undefined;
  const op = line !== undefined ? plan.podOps[line - 1] : undefined;
  if (op?.op === "route-add") {
    const metric = op.metric !== undefined ? ` of metric ${op.metric}` : "";
    return new CniError(ErrorCode.KernelFailure,
      `cannot configure ${req.ifname} in ${req.netns}: the pod already has a route ${op.dst}${metric} (another attachment's?); give this network another routeMetric`,
      (e as Error).message, { cause: e });
  }
  return kernelFailure(`cannot configure ${req.ifname} in ${req.netns}`, e);
}

function checkNetns(kernel: PodKernel, netns: string): void {
  const state = kernel.netnsState(netns);
  if (state === "ok") return;
  const why = {
    missing: "does not exist",
    inaccessible: "cannot be opened",
    self: "is the plugin's own network namespace",
    host: "is the host's initial network namespace",
    "not-a-netns": "is not a network namespace",
  }[state];
  throw new CniError(ErrorCode.InvalidNetns, `invalid CNI_NETNS "${netns}": ${why}`);
}

function prevResultOf(req: CniRequest): Result | undefined {
  const raw = req.config.prevResult;
  if (raw === undefined || raw === null) return undefined;
  return parseResult(raw, req.cniVersion);
}

/** Appends our interfaces, addresses and routes to a previous plugin's result (chaining). */
export function mergeResults(prev: Result | undefined, ours: Result): Result {
  if (!prev) return ours;
  const offset = prev.interfaces?.length ?? 0;
  const merged: Result = {
    cniVersion: ours.cniVersion,
    interfaces: [...(prev.interfaces ?? []), ...(ours.interfaces ?? [])],
    ips: [...(prev.ips ?? []), ...(ours.ips ?? []).map((i) => ({ ...i, interface: (i.interface ?? 0) + offset }))],
    routes: [...(prev.routes ?? []), ...(ours.routes ?? [])],
  };
  const dns = ours.dns ?? prev.dns;
  if (dns) merged.dns = dns;
  return merged;
}

/** What the node agent wrote for the plugin (block, MTU, endpoint spool), when the IPAM names it. */
function nodeInfo(req: CniRequest, readFile: (p: string) => string): SubnetFile | undefined {
  const file = (req.config.ipam as Record<string, unknown> | undefined)?.subnetFile;
  if (typeof file !== "string") return undefined;
  try {
    return parseSubnetFile(readFile(file), file);
  } catch {
    return undefined; // IPAM reports an unreadable subnet file with a proper error
  }
}

/** The endpoint record the agent programs policy for (see agent/policy-sync.ts). */
export function endpointRecord(req: CniRequest, node: string, plan: AttachPlan, mode: PluginConfig["mode"]): Endpoint {
  return {
    namespace: req.args.get("K8S_POD_NAMESPACE") || "default",
    pod: req.args.get("K8S_POD_NAME") || req.containerId,
    node,
    containerId: req.containerId,
    ifname: req.ifname,
    hostIf: plan.hostIf,
    ips: (plan.result.ips ?? []).map((i) => i.address.split("/")[0]!),
    mode,
  };
}

export function trellisHandlers(deps: PluginDeps): PluginHandlers {
  const kernel = deps.kernel;
  const spool = deps.spool ?? fileSpool;
  const ipamFor = deps.ipamFor ?? defaultIpamFor(deps);

  function attach(req: CniRequest, cfg: PluginConfig, ipam: Result, mtu: number | undefined): AttachPlan {
    const input = {
      mode: cfg.mode, network: req.name, containerId: req.containerId, ifname: req.ifname, netns: req.netns, mtu,
      bridge: cfg.bridge, hairpinMode: cfg.hairpinMode, bridgeExists: cfg.mode === "bridge" && kernel.linkExists(cfg.bridge),
      ipam, dns: cfg.dns, routeMetric: cfg.routeMetric,
    };
    let plan = planAttachment(input);
    for (const f of plan.forwarding) kernel.ensureSysctl(f === 4 ? "net.ipv4.ip_forward" : "net.ipv6.conf.all.forwarding", "1");

    // When `ip` rejects an argument (an alias too long, say) it exits without naming the failed
    // line; then whether the veth is ours to remove is told by whether it existed before.
    const hostIfExisted = kernel.linkExists(plan.hostIf);

    /** Undoes what a failed host batch did (the veth, if the batch got past creating it) and throws. */
    function hostFailed(failed: AttachPlan, e: unknown): never {
      const line = e instanceof KernelError ? e.failedBatchLine : undefined;
      const created = line === undefined ? !hostIfExisted && kernel.linkExists(failed.hostIf) : line > failed.vethLine;
      if (created) deleteQuietly(failed.hostIf);
      if (e instanceof KernelError && e.exists && line === failed.vethLine) {
        const which = kernel.linkExists(failed.hostIf)
          ? `host interface ${failed.hostIf} already exists (is this container already attached?)`
          : `interface ${req.ifname} already exists in ${req.netns}`;
        throw new CniError(ErrorCode.KernelFailure, `cannot create veth pair: ${which}`, e.message);
      }
      throw kernelFailure(`cannot set up host side of ${req.containerId}/${req.ifname}`, e);
    }

    try {
      kernel.hostApply(plan.hostOps);
    } catch (e) {
      const line = e instanceof KernelError ? e.failedBatchLine : undefined;
      if (!(e instanceof KernelError && e.exists && line === 1 && cfg.mode === "bridge" && !input.bridgeExists)) {
        hostFailed(plan, e);
      }
      // Another ADD created the bridge between our look and our write: take it as it is.
      plan = planAttachment({ ...input, bridgeExists: true });
      try {
        kernel.hostApply(plan.hostOps);
      } catch (e2) {
        hostFailed(plan, e2);
      }
    }
    let skipped: number[];
    try {
      skipped = kernel.podApply(req.netns, plan.podOps);
    } catch (e) {
      deleteQuietly(plan.hostIf);
      throw podFailure(req, plan, e);
    }
    const done = asCarriedOut(plan, skipped);
    for (const r of done.leftOut) {
      deps.log(`ADD ${req.containerId}/${req.ifname}: route ${r.dst} left out: the pod already has one (another interface's); set routeMetric to add it beside that one`);
    }
    return done.plan;
  }

  function deleteQuietly(name: string): void {
    try {
      kernel.deleteLink(name);
    } catch (e) {
      deps.log(`rollback: cannot delete ${name}: ${(e as Error).message}`);
    }
  }

  return {
    about: "trellis: CNI plugin of the Trellis container network (routed and bridge modes)",

    add(req) {
      const cfg = parsePluginConfig(req.config);
      checkNetns(kernel, req.netns);
      const prev = prevResultOf(req);
      const node = nodeInfo(req, deps.readFile);
      if (cfg.mode === "bridge" && node?.endpointDir && node.policy !== false) {
        // Pods on one bridge talk at layer 2, out of reach of the nftables forward hook: refuse
        // rather than attach a pod that policies would silently not cover.
        throw new CniError(ErrorCode.InvalidNetworkConfig,
          "invalid config: mode \"bridge\": this node enforces network policy, which bridge mode cannot; use mode \"routed\" or run the agent with --no-policy");
      }
      const mtu = cfg.mtu ?? node?.mtu;
      const ipam = ipamFor(req, cfg);
      const ipamResult = ipam.add(req);
      let plan: AttachPlan;
      try {
        if (!ipamResult.ips || ipamResult.ips.length === 0) {
          throw new CniError(ErrorCode.InvalidNetworkConfig, `IPAM plugin ${cfg.ipamType} returned no address`);
        }
        plan = attach(req, cfg, ipamResult, mtu);
        if (node?.endpointDir) {
          try {
            spool.write(node.endpointDir, endpointFileName(req.containerId, req.ifname), JSON.stringify(endpointRecord(req, node.node ?? "", plan, cfg.mode)));
          } catch (e) {
            deleteQuietly(plan.hostIf);
            throw new CniError(ErrorCode.IoFailure, `cannot register endpoint in ${node.endpointDir}`, (e as Error).message);
          }
        }
      } catch (e) {
        try {
          ipam.del(req);
        } catch (e2) {
          deps.log(`rollback: IPAM DEL failed: ${(e2 as Error).message}`);
        }
        throw e;
      }
      deps.log(`ADD ${req.containerId}/${req.ifname}: ${plan.result.ips?.map((i) => i.address).join(", ")} on ${plan.hostIf}`);
      return mergeResults(prev, plan.result);
    },

    del(req) {
      const cfg = parsePluginConfig(req.config);
      const hostIf = podHostIfName(req.containerId, req.ifname);
      const node = nodeInfo(req, deps.readFile);
      if (node?.endpointDir) spool.remove(node.endpointDir, endpointFileName(req.containerId, req.ifname));
      let linkError: unknown;
      try {
        kernel.deleteLink(hostIf);
      } catch (e) {
        linkError = e;
      }
      // Release the address even if the link could not be removed, then report the link error.
      ipamFor(req, cfg).del(req);
      if (linkError) throw kernelFailure(`cannot delete ${hostIf}`, linkError);
    },

    check(req) {
      const cfg = parsePluginConfig(req.config);
      const prev = prevResultOf(req);
      if (!prev) throw new CniError(ErrorCode.InvalidNetworkConfig, "required prevResult missing");
      checkNetns(kernel, req.netns);
      ipamFor(req, cfg).check(req);
      checkAttachment(kernel, req, cfg, prev);
    },

    gc(req) {
      const cfg = parsePluginConfig(req.config);
      const valid = validAttachments(req.config);
      const errors: string[] = [];
      for (const link of kernel.listVeths()) {
        const owner = link.alias ? parseHostIfAlias(link.alias) : undefined;
        if (!owner || owner.network !== req.name || valid.has(attachmentKey(owner))) continue;
        try {
          kernel.deleteLink(link.name);
          deps.log(`GC removed ${link.name} (${owner.containerId}/${owner.ifname})`);
        } catch (e) {
          errors.push(`${link.name}: ${(e as Error).message}`);
        }
      }
      const node = nodeInfo(req, deps.readFile);
      if (node?.endpointDir) {
        for (const name of spool.list(node.endpointDir)) {
          const m = /^(.+)_([^_]+)\.json$/.exec(name);
          if (m && !valid.has(attachmentKey({ containerId: m[1]!, ifname: m[2]! }))) spool.remove(node.endpointDir, name);
        }
      }
      try {
        ipamFor(req, cfg).gc(req);
      } catch (e) {
        errors.push(`ipam: ${(e as Error).message}`);
      }
      if (errors.length > 0) throw new CniError(ErrorCode.KernelFailure, "GC could not remove everything", errors.join("; "));
    },

    status(req) {
      const cfg = parsePluginConfig(req.config);
      ipamFor(req, cfg).status(req);
    },
  };
}

const checkFailed = (msg: string): CniError => new CniError(ErrorCode.CheckFailed, msg);

/** CHECK: what prevResult says we made must be in the kernel. */
function checkAttachment(kernel: PodKernel, req: CniRequest, cfg: PluginConfig, prev: Result): void {
  const interfaces = prev.interfaces ?? [];
  const podIndex = interfaces.findIndex((i) => i.name === req.ifname && i.sandbox === req.netns);
  if (podIndex < 0) throw checkFailed(`prevResult has no interface ${req.ifname} in sandbox ${req.netns}`);
  const expected = interfaces[podIndex]!;
  const pod = kernel.readLink(req.ifname, req.netns);
  if (!pod) throw checkFailed(`interface ${req.ifname} not found in ${req.netns}`);
  if (pod.kind && pod.kind !== "veth") throw checkFailed(`interface ${req.ifname} in ${req.netns} is a ${pod.kind}, not a veth`);
  if (expected.mac && pod.mac?.toLowerCase() !== expected.mac.toLowerCase()) {
    throw checkFailed(`interface ${req.ifname} has MAC ${pod.mac}, expected ${expected.mac}`);
  }
  if (expected.mtu && pod.mtu !== expected.mtu) throw checkFailed(`interface ${req.ifname} has MTU ${pod.mtu}, expected ${expected.mtu}`);
  const ips = (prev.ips ?? []).filter((i) => i.interface === podIndex);
  for (const ip of ips) {
    const [addr, prefix] = ip.address.split("/");
    if (!pod.addresses.some((a) => a.address === addr && String(a.prefix) === prefix)) {
      throw checkFailed(`address ${ip.address} missing on ${req.ifname} in ${req.netns}`);
    }
  }
  // A route via this interface's gateway must leave through this interface: the pod's other
  // attachments may have the same route via the same link-local gateway on their own interface.
  // A reported priority must be the route's metric. (A chained plugin's route via a gateway of
  // its own is only looked for by destination and gateway.)
  const ourGateways = new Set(ips.flatMap((i) => (i.gateway ? [i.gateway] : [])));
  const routes = prev.routes ?? [];
  const found = kernel.readRoutes(routes.map((r) => r.dst), req.netns);
  routes.forEach((r, i) => {
    const dev = r.gw && ourGateways.has(r.gw) ? req.ifname : undefined;
    const ok = (found[i] ?? []).some((k) => sameDst(k.dst, r.dst) && (!r.gw || k.gateway === r.gw)
      && (!dev || k.dev === dev) && (r.priority === undefined || (k.metric ?? 0) === r.priority));
    if (!ok) {
      const what = `${r.dst}${r.gw ? ` via ${r.gw}` : ""}${dev ? ` dev ${dev}` : ""}${r.priority !== undefined ? ` metric ${r.priority}` : ""}`;
      throw checkFailed(`route ${what} missing in ${req.netns}`);
    }
  });

  const hostIf = podHostIfName(req.containerId, req.ifname);
  const host = kernel.readLink(hostIf);
  if (!host) throw checkFailed(`host interface ${hostIf} not found`);
  if (host.kind && host.kind !== "veth") throw checkFailed(`host interface ${hostIf} is a ${host.kind}, not a veth`);
  if (cfg.mode === "bridge") {
    if (host.master !== cfg.bridge) throw checkFailed(`host interface ${hostIf} is not a port of bridge ${cfg.bridge}`);
    return;
  }
  const hostRoutes = ips.map((i) => i.address);
  const got = kernel.readRoutes(hostRoutes);
  hostRoutes.forEach((dst, i) => {
    if (!(got[i] ?? []).some((k) => k.dev === hostIf)) throw checkFailed(`host route ${dst} dev ${hostIf} missing`);
  });
}

/**
 * Reads files once per plugin process: the plugin and its in-process IPAM both need the agent's
 * subnet file, and one process serves exactly one request.
 */
export function fileReader(): (p: string) => string {
  const seen = new Map<string, string>();
  return (p) => {
    let text = seen.get(p);
    if (text === undefined) {
      text = fs.readFileSync(p, "utf8");
      seen.set(p, text);
    }
    return text;
  };
}
