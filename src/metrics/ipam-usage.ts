// IPAM addresses used and free in this node's block, from the names in the IPAM data directory
// (`<dataDir>/<network>/<ip>`, one file per reserved address; see src/ipam/store.ts). Pure over
// the file names; the agent reads the directory at scrape time.
import * as fs from "node:fs";
import * as path from "node:path";
import { parseCidr, parseIp } from "../model/ip.js";

/**
 * `block` is the node's block (e.g. 10.244.3.0/24); `names` every file name found in the data
 * directory's network subdirectories. Free = addresses the allocator can give out (IPv4: the
 * block minus network, gateway and broadcast; IPv6: minus the subnet-router and gateway
 * addresses) minus those used.
 */
export function ipamUsage(block: string, names: Iterable<string>): { block: string; used: number; free: number } {
  const c = parseCidr(block, true);
  if (!c) throw new Error(`IPAM block ${JSON.stringify(block)} is not a CIDR`);
  const bits = c.family === 4 ? 32 : 128;
  const size = 2n ** BigInt(bits - c.prefix);
  const reserved = c.family === 4 ? (size >= 4n ? 3n : 0n) : (size >= 2n ? 2n : 0n);
  const lo = c.network;
  const hi = lo + size - 1n;
  const seen = new Set<string>();
  for (const n of names) {
    const ip = parseIp(n);
    if (!ip || ip.family !== c.family || ip.value < lo || ip.value > hi) continue;
    seen.add(ip.value.toString());
  }
  const used = seen.size;
  const usable = size - reserved;
  const free = usable > BigInt(used) ? usable - BigInt(used) : 0n;
  return { block, used, free: free > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(free) };
}

/** Every file name in the data directory's network subdirectories (missing directory: none). */
export function readIpamNames(dataDir: string): string[] {
  const out: string[] = [];
  let nets: fs.Dirent[];
  try {
    nets = fs.readdirSync(dataDir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const d of nets) {
    if (!d.isDirectory()) continue;
    try {
      out.push(...fs.readdirSync(path.join(dataDir, d.name)));
    } catch {
      // removed meanwhile
    }
  }
  return out;
}
