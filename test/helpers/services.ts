// Helpers for Services tests in a lab (embedded and Kubernetes datastores): a TCP connect from a
// pod's namespace through the `trellis probe connect` client (which reports the address the
// lab's probe server saw it as), and whether a node has Trellis' services table.
import { spawnSync } from "node:child_process";
import { sh, TRELLIS_CLI } from "./netns.js";

export interface Probe { reached: boolean; ms: number; seenAs?: string }

/** One TCP connect from `netns` to ip:port, giving up after timeoutMs. */
export function connect(netns: string, ip: string, port: number, timeoutMs: number): Probe {
  const out = sh("nsenter", [`--net=/run/netns/${netns}`, TRELLIS_CLI, "probe", "connect", "--timeout-ms", String(timeoutMs),
    "--targets", JSON.stringify([{ ip, port, protocol: "TCP" }])]);
  return (JSON.parse(out) as Probe[])[0]!;
}

/** Whether the node namespace holds table inet trellis-svc. */
export const hasServicesTable = (netns: string): boolean =>
  spawnSync("ip", ["netns", "exec", netns, "nft", "list", "table", "inet", "trellis-svc"], { encoding: "utf8" }).status === 0;
