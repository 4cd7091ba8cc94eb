// Reading what BIRD says about its sessions (pure): `birdc show protocols all` and
// `birdc show route filtered`, as BIRD 2 prints them (bird.conf sets `timeformat protocol iso
// long`, so times are absolute). The result is what `trellis bgp status` shows per session.

export interface BirdProtocol {
  name: string;
  proto: string;
  state: string;
  /** When it entered its state (ISO, from BIRD's local time), as printed. */
  since: string;
  info: string;
  description?: string;
  /** BGP only. */
  bgpState?: string;
  neighborAddress?: string;
  neighborAs?: number;
  localAs?: number;
  lastError?: string;
  routes?: { imported: number; filtered: number; exported: number; preferred: number };
}

const HEADER = /^Name\s+Proto\s+Table\s+State\s+Since\s+Info/;

/** Parses `show protocols all`. Lines BIRD adds that this does not know are skipped. */
export function parseProtocols(text: string): BirdProtocol[] {
  const out: BirdProtocol[] = [];
  let cur: BirdProtocol | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.replace(/\s+$/, "");
    if (line === "" || /^BIRD [\d.]+ ready\./.test(line) || HEADER.test(line)) continue;
    if (!/^\s/.test(line)) {
      // "node2      BGP        ---        up     2026-12-06 22:20:10  Established"
      const m = /^(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?|\S+)\s*(.*)$/.exec(line);
      if (!m) continue;
      cur = { name: m[1]!, proto: m[2]!, state: m[4]!, since: m[5]!, info: m[6]!.trim() };
      out.push(cur);
      continue;
    }
    if (!cur) continue;
    const kv = /^\s+([A-Za-z][A-Za-z0-9 ]*?):\s+(.*)$/.exec(line);
    if (!kv) continue;
    const [key, value] = [kv[1]!, kv[2]!.trim()];
    switch (key) {
      case "Description": cur.description = value; break;
      case "BGP state": cur.bgpState = value; break;
      case "Neighbor address": cur.neighborAddress = value; break;
      case "Neighbor AS": cur.neighborAs = Number(value); break;
      case "Local AS": cur.localAs = Number(value); break;
      case "Last error": cur.lastError = value; break;
      case "Routes": {
        const n = (what: string): number => Number(new RegExp(`(\\d+) ${what}`).exec(value)?.[1] ?? 0);
        cur.routes = { imported: n("imported"), filtered: n("filtered"), exported: n("exported"), preferred: n("preferred") };
        break;
      }
      default:
    }
  }
  return out;
}

/** Parses `show route filtered protocol X`: the prefixes the import filter refused. */
export function parseFilteredRoutes(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split("\n")) {
    const m = /^(\d{1,3}(?:\.\d{1,3}){3}\/\d{1,2})\s/.exec(line);
    if (m && !out.includes(m[1]!)) out.push(m[1]!);
  }
  return out;
}
