// `ip -ts monitor route` in a node namespace, for the benchmarks that time how soon a route
// appears in (or leaves) a node's kernel: a monitor runs for a whole part and keeps the events a
// filter accepts; callers look up the first one after their t0.
import type { ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import { createInterface } from "node:readline";
import { waitFor, type Made } from "./common.js";
import { netlinkSubscribed, parseMonitorRouteLine, type RouteEvent } from "./probes.js";

/** `ip -ts monitor route` in one node namespace, kept running for the whole part. */
export class RouteMonitor {
  readonly events: RouteEvent[] = [];
  readonly child: ChildProcess;

  constructor(made: Made, readonly node: string, readonly netns: string, keep: (e: RouteEvent) => boolean) {
    // -ts prints local time without a zone: UTC makes it comparable with Date.now().
    this.child = made.spawn("ip", ["-ts", "-n", netns, "monitor", "route"], { env: { ...process.env, TZ: "UTC" }, output: true });
    createInterface({ input: this.child.stdout! }).on("line", (line) => {
      const ev = parseMonitorRouteLine(line);
      if (ev && keep(ev)) this.events.push(ev);
    });
  }

  /** Resolves once the monitor's netlink socket has joined its multicast groups. */
  async ready(signal: AbortSignal): Promise<void> {
    const pid = this.child.pid;
    if (pid === undefined) throw new Error(`ip monitor in ${this.netns} did not start`);
    await waitFor(`ip monitor in ${this.netns} to listen`, 5000, signal, () => {
      try {
        const inodes = new Set<string>();
        for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
          const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
          if (m) inodes.add(m[1]!);
        }
        return netlinkSubscribed(fs.readFileSync(`/proc/${pid}/net/netlink`, "utf8"), inodes);
      } catch {
        return false;
      }
    });
  }

  /** The first event for `dst` at or after `fromMs` that adds (or, with `deleted`, removes) it. */
  first(dst: string, fromMs: number, deleted: boolean): RouteEvent | undefined {
    return this.events.find((e) => e.dst === dst && e.deleted === deleted && e.atMs >= fromMs);
  }
}
