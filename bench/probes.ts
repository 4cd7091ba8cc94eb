// Parsers for what the multi-node benchmark reads back from tools and /proc. Pure: text in, plain
// data out, so each can be unit tested on captured output (probes.test.ts).

/** One line of `ip -ts monitor route` (run with TZ=UTC), e.g.
 *  `[2026-11-22T11:48:13.769579] Deleted 10.244.20.0/24 via 10.244.20.0 dev trellis.vxlan proto 202 onlink`
 *  or, for a route BIRD installed in Trellis' BGP table,
 *  `[2026-12-06T23:31:24.633752] 10.244.130.0/24 via 10.99.1.13 dev eth0 table 203 proto bird metric 32` */
export interface RouteEvent {
  /** When `ip` printed the event: ms since the epoch, with microseconds as the fraction. */
  atMs: number;
  deleted: boolean;
  dst: string;
  /** The route's protocol (`proto 202`), undefined when the line has none. */
  proto: string | undefined;
  /** The routing table (`table 203`); absent for the main table, which `ip` does not name. */
  table?: string;
}

const MONITOR_LINE = /^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?\]\s+(Deleted\s+)?(\S+)(.*)$/;

export function parseMonitorRouteLine(line: string): RouteEvent | undefined {
  const m = MONITOR_LINE.exec(line.trim());
  if (!m) return undefined;
  const seconds = Date.parse(`${m[1]}Z`);
  if (Number.isNaN(seconds)) return undefined;
  const fraction = m[2] ? Number(`0.${m[2]}`) * 1000 : 0;
  const table = /\btable (\S+)/.exec(m[5]!)?.[1];
  return { atMs: seconds + fraction, deleted: m[3] !== undefined, dst: m[4]!, proto: /\bproto (\S+)/.exec(m[5]!)?.[1], ...(table ? { table } : {}) };
}

/** What an agent's log says about one start: when it logged "starting" and when it held its lease. */
export interface AgentStart {
  startingMs?: number;
  leasedMs?: number;
  /** The block it leased or kept. */
  block?: string;
  /** bgp backend: when it logged `bgp: started BIRD`, i.e. BIRD's control socket answered. */
  birdStartedMs?: number;
  /** The sessions that first bird.conf had. */
  birdSessions?: number;
}

/** Reads agent log lines (`<ISO time> agent[<node>] <message>`) of one start of `node`'s agent. */
export function parseAgentStart(text: string, node: string): AgentStart {
  const out: AgentStart = {};
  const prefix = ` agent[${node}] `;
  for (const line of text.split("\n")) {
    const at = line.indexOf(prefix);
    if (at < 0) continue;
    const ms = Date.parse(line.slice(0, at));
    if (Number.isNaN(ms)) continue;
    const msg = line.slice(at + prefix.length);
    if (out.startingMs === undefined && msg.startsWith("starting")) out.startingMs = ms;
    const leased = /^(?:leased a new block|kept its lease): (\S+)/.exec(msg);
    if (out.leasedMs === undefined && leased) {
      out.leasedMs = ms;
      out.block = leased[1];
    }
    const bird = /^bgp: started BIRD \(pid \d+\).*?, (\d+) session\(s\)/.exec(msg);
    if (out.birdStartedMs === undefined && bird) {
      out.birdStartedMs = ms;
      out.birdSessions = Number(bird[1]);
    }
  }
  return out;
}

/**
 * When `node`'s agent first logged that BIRD took a config with the BGP protocol `protocol`
 * (`bgp: BIRD reconfigured: node_node2 (mesh), node_node10 (mesh)`), ms since the epoch; undefined
 * if it has not (yet).
 */
export function reconfiguredWith(text: string, node: string, protocol: string): number | undefined {
  const prefix = ` agent[${node}] bgp: BIRD reconfigured: `;
  for (const line of text.split("\n")) {
    const at = line.indexOf(prefix);
    if (at < 0) continue;
    const protocols = line.slice(at + prefix.length).split(", ").map((p) => p.replace(/ \(.*$/, "").trim());
    const ms = Date.parse(line.slice(0, at));
    if (protocols.includes(protocol) && !Number.isNaN(ms)) return ms;
  }
  return undefined;
}

/** The `Total:` line of `birdc show memory`: the memory BIRD uses for its own data (effective), bytes. */
export function parseBirdMemoryTotal(text: string): number | undefined {
  const m = /^Total:\s+([\d.]+)\s*(B|kB|MB|GB)\b/m.exec(text);
  if (!m) return undefined;
  return Number(m[1]) * { B: 1, kB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 }[m[2] as "B" | "kB" | "MB" | "GB"];
}

/** CPU time fields of /proc/<pid>/stat, in clock ticks. */
export interface CpuTicks {
  utime: number;
  stime: number;
  /** Of children the process has waited for (the agent's `ip`, `bridge`, `nft` calls). */
  cutime: number;
  cstime: number;
}

export function parseProcStat(text: string): CpuTicks {
  // "pid (comm) S ppid ...": comm may contain spaces and parentheses, so split after the last ")".
  const f = text.slice(text.lastIndexOf(")") + 2).trim().split(/\s+/);
  // f[0] is field 3 (state); utime is field 14, so f[11].
  const n = (i: number): number => {
    const v = Number(f[i]);
    if (!Number.isFinite(v)) throw new Error(`cannot parse /proc/<pid>/stat field ${i + 3}: ${text.slice(0, 80)}`);
    return v;
  };
  return { utime: n(11), stime: n(12), cutime: n(13), cstime: n(14) };
}

/** VmRSS of /proc/<pid>/status, KiB. */
export function parseVmRssKiB(text: string): number | undefined {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(text);
  return m ? Number(m[1]) : undefined;
}

/**
 * Whether a process has a netlink socket subscribed to multicast groups (i.e. `ip monitor` is
 * listening): `fdInodes` are the socket inodes of /proc/<pid>/fd, `table` is /proc/<pid>/net/netlink.
 */
export function netlinkSubscribed(table: string, fdInodes: ReadonlySet<string>): boolean {
  for (const line of table.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    // sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
    if (f.length < 10) continue;
    if (fdInodes.has(f[9]!) && !/^0+$/.test(f[3]!)) return true;
  }
  return false;
}

export interface PingSummary {
  sent: number;
  received: number;
  minMs: number;
  avgMs: number;
  maxMs: number;
  mdevMs: number;
}

/** The summary of `ping -q`: "200 packets transmitted, 200 received, ..." and "rtt min/avg/max/mdev = ...". */
export function parsePingSummary(text: string): PingSummary | undefined {
  const counts = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(text);
  const rtt = /= ([\d.]+)\/([\d.]+)\/([\d.]+)\/([\d.]+) ms/.exec(text);
  if (!counts || !rtt) return undefined;
  return {
    sent: Number(counts[1]), received: Number(counts[2]),
    minMs: Number(rtt[1]), avgMs: Number(rtt[2]), maxMs: Number(rtt[3]), mdevMs: Number(rtt[4]),
  };
}

/** Per-echo round-trip times of `ping` (without -q): the "time=0.081 ms" of each reply, ms. */
export function parsePingTimes(text: string): number[] {
  return [...text.matchAll(/\btime=([\d.]+) ms/g)].map((m) => Number(m[1]));
}

export interface IperfResult {
  /** end.sum_received.bits_per_second: what arrived at the server. */
  receivedBps: number;
  sentBps: number;
  retransmits: number;
}

/** `iperf3 -J` client output; throws with iperf3's own message when it reports an error. */
export function parseIperfJson(text: string): IperfResult {
  let j: { error?: string; end?: { sum_received?: { bits_per_second?: number }; sum_sent?: { bits_per_second?: number; retransmits?: number } } };
  try {
    j = JSON.parse(text) as typeof j;
  } catch {
    throw new Error(`iperf3 printed no JSON: ${text.slice(0, 200)}`);
  }
  if (j.error) throw new Error(`iperf3: ${j.error}`);
  const rx = j.end?.sum_received?.bits_per_second;
  if (typeof rx !== "number") throw new Error("iperf3 JSON has no end.sum_received.bits_per_second");
  return { receivedBps: rx, sentBps: j.end?.sum_sent?.bits_per_second ?? Number.NaN, retransmits: j.end?.sum_sent?.retransmits ?? 0 };
}
