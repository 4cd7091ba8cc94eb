// The trellis-ipam commands. Used by the trellis-ipam executable and, in-process, by the trellis
// plugin when its config names trellis-ipam (saving one process start per pod).
import * as fs from "node:fs";
import { attachmentKey, validAttachments } from "../cni/attachments.js";
import { CniError, ErrorCode } from "../cni/errors.js";
import type { CniRequest } from "../cni/request.js";
import type { Result } from "../cni/result.js";
import { formatIp, parseIp } from "../model/ip.js";
import { allocate, freeCount, inRange } from "./allocator.js";
import { parseIpamConfig, parseResolvConf, requestedIps, type IpamConfig } from "./config.js";
import { DiskStore, type Owner } from "./store.js";
import type { Lock } from "./flock.js";

export interface IpamDeps {
  readFile(path: string): string;
  log(line: string): void;
  /** Lock implementation; the default is flock(2). */
  lock?: (path: string) => Lock;
}

export const defaultIpamDeps: IpamDeps = {
  readFile: (p) => fs.readFileSync(p, "utf8"),
  log: (line) => process.stderr.write(`trellis-ipam: ${line}\n`),
};

function setup(req: CniRequest, deps: IpamDeps): { cfg: IpamConfig; store: DiskStore; owner: Owner } {
  const cfg = parseIpamConfig(req.config, { readSubnetFile: deps.readFile });
  return {
    cfg,
    store: new DiskStore(cfg.dataDir, req.name, deps.lock),
    owner: { containerId: req.containerId, ifname: req.ifname },
  };
}

export function ipamAdd(req: CniRequest, deps: IpamDeps = defaultIpamDeps): Result {
  const { cfg, store, owner } = setup(req, deps);
  const requested = requestedIps(req.config, req.args);
  const allocations = store.locked(() => {
    const entries = store.entries({ cached: true });
    // The cache may name an old owner of a reused address: confirm from the file before refusing.
    const held = store.findByOwner(owner, entries).filter((t) => store.ownerOf(t)?.containerId === owner.containerId).map((t) => parseIp(t)!);
    const picked = allocate({
      rangeSets: cfg.rangeSets,
      used: new Set(entries.keys()),
      lastReserved: cfg.rangeSets.map((_, i) => store.lastReserved(i)),
      alreadyHeld: cfg.rangeSets.map((set) => set.some((r) => held.some((ip) => inRange(r, ip)))),
      requested,
    });
    const done: string[] = [];
    for (const a of picked) {
      const text = formatIp(a.ip);
      if (!store.reserve(text, owner, a.setIndex)) {
        // Only possible if someone wrote the directory without taking the lock.
        for (const t of done) store.remove(t);
        throw new CniError(ErrorCode.TryAgainLater, `address ${text} was taken concurrently without the lock`);
      }
      done.push(text);
      entries.set(text, owner);
    }
    store.saveCacheIfWorthIt(entries);
    return picked;
  });
  const result: Result = {
    cniVersion: req.cniVersion,
    ips: allocations.map((a) => ({
      address: `${formatIp(a.ip)}/${a.range.subnet.prefix}`,
      gateway: formatIp(a.range.gateway),
    })),
  };
  if (cfg.routes.length > 0) result.routes = cfg.routes;
  if (cfg.resolvConf) {
    try {
      result.dns = parseResolvConf(deps.readFile(cfg.resolvConf));
    } catch (e) {
      deps.log(`cannot read resolvConf ${cfg.resolvConf}: ${(e as Error).message}`);
    }
  }
  return result;
}

export function ipamDel(req: CniRequest, deps: IpamDeps = defaultIpamDeps): void {
  const { store, owner } = setup(req, deps);
  store.locked(() => {
    const entries = store.entries();
    for (const ip of store.findByOwner(owner, entries)) {
      store.remove(ip);
      entries.delete(ip);
    }
    store.saveCache(entries);
  });
}

export function ipamCheck(req: CniRequest, deps: IpamDeps = defaultIpamDeps): void {
  const { store, owner } = setup(req, deps);
  const held = store.locked(() => store.findByOwner(owner));
  if (held.length === 0) {
    throw new CniError(ErrorCode.CheckFailed, `trellis-ipam: failed to find address added by container ${req.containerId}`,
      `interface ${req.ifname}, network ${req.name}`);
  }
}

export function ipamGc(req: CniRequest, deps: IpamDeps = defaultIpamDeps): void {
  const { store } = setup(req, deps);
  const valid = validAttachments(req.config);
  const removed = store.locked(() => {
    const gone: string[] = [];
    const entries = store.entries();
    for (const [ip, o] of [...entries]) {
      if (!valid.has(attachmentKey(o))) {
        store.remove(ip);
        entries.delete(ip);
        gone.push(`${ip} (${o.containerId}/${o.ifname})`);
      }
    }
    store.saveCache(entries);
    return gone;
  });
  if (removed.length > 0) deps.log(`GC released ${removed.length} address(es): ${removed.join(", ")}`);
}

export function ipamStatus(req: CniRequest, deps: IpamDeps = defaultIpamDeps): void {
  let cfg: IpamConfig;
  try {
    cfg = parseIpamConfig(req.config, { readSubnetFile: deps.readFile });
  } catch (e) {
    if (e instanceof CniError && e.code === ErrorCode.TryAgainLater) {
      throw new CniError(ErrorCode.NotAvailable, e.message, e.details);
    }
    throw e;
  }
  if (cfg.agentReady === false) {
    throw new CniError(ErrorCode.NotAvailable, "the trellis agent on this node is not ready yet (it holds its block but has not finished its first sync)");
  }
  const store = new DiskStore(cfg.dataDir, req.name, deps.lock);
  const used = new Set(store.entries().keys());
  cfg.rangeSets.forEach((set, i) => {
    if (freeCount(set, used) === 0n) {
      throw new CniError(ErrorCode.NotAvailable, `address pool exhausted: range set ${i} has no free address`);
    }
  });
}
