// Pod -> pod paths for the data-plane parts of the benchmarks: the same path as a Trellis lab's
// built by hand with `ip` (no agent, no nftables), a bare veth pair, and the two measurements
// made on every path (ICMP RTT with ping, one TCP stream with iperf3).
import { spawnSync } from "node:child_process";
import { netnsPath, stopProcess } from "../src/kernel/netns.js";
import { inNetns as nsenter, ipBatch, run, runAsync, waitFor, type Made } from "./common.js";
import { parseIperfJson, parsePingSummary, parsePingTimes } from "./probes.js";
import type { LabState } from "../src/lab/lab.js";
import { percentile, rotate, round3 } from "./stats.js";

export interface DataPath {
  /** e.g. trellis-vxlan, hand-host-gw, veth; a Trellis path and its hand-built twin differ only in the prefix. */
  id: string;
  label: string;
  src: string;
  dst: string;
  dstIp: string;
  /** MTU of the sending pod's eth0. */
  mtu: number;
  /** nftables tables in the source node's namespace while measured (Trellis: NAT, policy). */
  nftTables: string[];
}

export const nftTables = (netns: string): string[] =>
  run(...nsenter(netns, "nft", "list", "tables")).split("\n").map((l) => l.replace(/^table\s+/, "").trim()).filter(Boolean);

export const eth0Mtu = (netns: string): number => (JSON.parse(run("ip", ["-n", netns, "-j", "link", "show", "dev", "eth0"])) as Array<{ mtu: number }>)[0]!.mtu;

/**
 * The path a Trellis lab builds, made by hand with `ip`: pod —veth (routed: /32, 169.254.1.1
 * pinned to ee:ee:ee:ee:ee:ee)— node —underlay bridge in a switch namespace— node —veth— pod;
 * between the nodes a VTEP with static FDB/neighbour entries and an onlink route (vxlan), or a
 * plain route via the peer node (host-gw). No agent, no nftables.
 */
export function handPath(made: Made, tag: string, kind: "vxlan" | "host-gw"): DataPath {
  const k = kind === "vxlan" ? "vx" : "hg";
  const ns = (s: string): string => made.createNetns(`trellis-bench-${tag}-${k}-${s}`);
  const sw = ns("sw");
  const nodes = [1, 2].map((i) => ({ i, netns: ns(`n${i}`), pod: ns(`p${i}`), ip: `10.99.1.${10 + i}`, vtepMac: `02:b5:00:00:00:0${i}` }));
  const mtu = kind === "vxlan" ? 1450 : 1500;
  ipBatch(sw, ["link add br0 type bridge", "link set br0 up"]);
  for (const n of nodes) {
    ipBatch(sw, [`link add port${n.i} type veth peer name eth0 netns ${netnsPath(n.netns)}`, `link set port${n.i} master br0`, `link set port${n.i} up`]);
    ipBatch(n.netns, [`addr add ${n.ip}/24 dev eth0`, "link set eth0 up"]);
    run(...nsenter(n.netns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"));
    const podIp = `10.244.${n.i}.2`;
    ipBatch(n.netns, [
      `link add trlbench mtu ${mtu} address ee:ee:ee:ee:ee:ee type veth peer name eth0 mtu ${mtu} netns ${netnsPath(n.pod)}`,
      "link set trlbench up",
      `route add ${podIp}/32 dev trlbench scope link`,
    ]);
    ipBatch(n.pod, [
      `addr add ${podIp}/32 dev eth0`, "link set eth0 up",
      "neigh add 169.254.1.1 lladdr ee:ee:ee:ee:ee:ee dev eth0 nud permanent", "route add default via 169.254.1.1 dev eth0 onlink",
    ]);
    if (kind === "vxlan") {
      ipBatch(n.netns, [
        `link add bench.vxlan mtu 1450 address ${n.vtepMac} type vxlan id 1 local ${n.ip} dev eth0 dstport 8472 nolearning`,
        `addr add 10.244.${n.i}.0/32 dev bench.vxlan`, "link set bench.vxlan up",
      ]);
    }
  }
  for (const [a, b] of [[nodes[0]!, nodes[1]!], [nodes[1]!, nodes[0]!]] as const) {
    if (kind === "vxlan") {
      run("bridge", ["-n", a.netns, "fdb", "append", b.vtepMac, "dev", "bench.vxlan", "dst", b.ip, "self", "permanent"]);
      ipBatch(a.netns, [
        `neigh add 10.244.${b.i}.0 lladdr ${b.vtepMac} dev bench.vxlan nud permanent`,
        `route add 10.244.${b.i}.0/24 via 10.244.${b.i}.0 dev bench.vxlan onlink`,
      ]);
    } else {
      ipBatch(a.netns, [`route add 10.244.${b.i}.0/24 via ${b.ip} dev eth0`]);
    }
  }
  return { id: `hand-${kind}`, label: `by hand, ${kind}`, src: nodes[0]!.pod, dst: nodes[1]!.pod, dstIp: "10.244.2.2", mtu: eth0Mtu(nodes[0]!.pod), nftTables: nftTables(nodes[0]!.netns) };
}

/** Two namespaces joined by one veth pair: the ceiling of every path above. */
export function vethPath(made: Made, tag: string): DataPath {
  const a = made.createNetns(`trellis-bench-${tag}-veth-a`);
  const b = made.createNetns(`trellis-bench-${tag}-veth-b`);
  ipBatch(a, [`link add eth0 type veth peer name eth0 netns ${netnsPath(b)}`, "addr add 10.250.0.1/24 dev eth0", "link set eth0 up"]);
  ipBatch(b, ["addr add 10.250.0.2/24 dev eth0", "link set eth0 up"]);
  return { id: "veth", label: "veth pair", src: a, dst: b, dstIp: "10.250.0.2", mtu: eth0Mtu(a), nftTables: nftTables(a) };
}

/** ICMP RTT from the source pod, per echo: median and 99th percentile (µs), and lost echoes. */
export async function pingRtt(p: DataPath, count: number, signal: AbortSignal): Promise<{ p50Us: number; p99Us: number; avgUs: number; loss: number }> {
  const r = await runAsync(...nsenter(p.src, "ping", "-n", "-c", String(count), "-i", "0.005", "-W", "1", p.dstIp), signal);
  const s = parsePingSummary(r.stdout);
  const times = parsePingTimes(r.stdout).sort((a, b) => a - b);
  if (!s || times.length === 0) throw new Error(`${p.label}: ping ${p.dstIp} from ${p.src} got no answer: ${(r.stderr || r.stdout).trim().slice(-300)}`);
  const us = (ms: number): number => round3(ms * 1000);
  return { p50Us: us(percentile(times, 50)), p99Us: us(percentile(times, 99)), avgUs: us(s.avgMs), loss: s.sent - s.received };
}

export async function iperf(made: Made, p: DataPath, seconds: number, signal: AbortSignal): Promise<{ gbps: number; retransmits: number }> {
  const port = "5201";
  const [cmd, args] = nsenter(p.dst, "iperf3", "-s", "-1", "-B", p.dstIp, "-p", port);
  const server = made.spawn(cmd, args);
  try {
    await waitFor(`iperf3 server in ${p.dst}`, 5000, signal, () => {
      const out = spawnSync(...nsenter(p.dst, "ss", "-Hltn", `sport = :${port}`), { encoding: "utf8" }).stdout ?? "";
      if (server.exitCode !== null) throw new Error(`iperf3 server in ${p.dst} exited ${server.exitCode}`);
      return out.trim() !== "";
    }, 20);
    const r = await runAsync(...nsenter(p.src, "iperf3", "-c", p.dstIp, "-p", port, "-t", String(seconds), "-O", "1", "-J"), signal, (seconds + 30) * 1000);
    const res = parseIperfJson(r.stdout);
    return { gbps: res.receivedBps / 1e9, retransmits: res.retransmits };
  } finally {
    if (server.pid !== undefined && server.exitCode === null) await stopProcess(server.pid, 1000);
  }
}

/** One measurement of one path in one round. */
export interface DataSample {
  round: number;
  path: string;
  gbps: number;
  retransmits: number;
  /** ICMP RTT per echo, µs. */
  rttP50Us: number;
  rttP99Us: number;
  rttAvgUs: number;
  pingLoss: number;
}

/** A 2-node lab's path from node1's pod to node2's pod (the lab must have one pod per node). */
export function labPath(s: LabState, id: string, label: string): DataPath {
  const [src, dst] = [s.plan.pods.find((p) => p.node === "node1")!, s.plan.pods.find((p) => p.node === "node2")!];
  // Pods are keyed "namespace/name" (older labs: by name).
  const dstIp = (s.podIps[`${dst.namespace}/${dst.name}`] ?? s.podIps[dst.name])?.[0];
  if (!dstIp) throw new Error(`lab ${s.plan.name}: pod ${dst.name} has no address`);
  const node1 = s.plan.nodes.find((n) => n.name === "node1")!.netns;
  return { id, label, src: src.netns, dst: dst.netns, dstIp, mtu: eth0Mtu(src.netns), nftTables: nftTables(node1) };
}

/**
 * Every path reachable first (3 echoes), then `rounds` rounds, the order rotated each round so no
 * path always runs first: RTT by ping, then one TCP stream by iperf3.
 */
export async function measureDataplane(paths: DataPath[], made: Made, o: { rounds: number; pings: number; seconds: number }, signal: AbortSignal): Promise<DataSample[]> {
  for (const p of paths) {
    const r = await pingRtt(p, 3, signal);
    if (r.loss === 3) throw new Error(`${p.label}: ${p.dstIp} unreachable from ${p.src}`);
  }
  const samples: DataSample[] = [];
  for (let round = 0; round < o.rounds; round++) {
    for (const p of rotate(paths, round)) {
      const ping = await pingRtt(p, o.pings, signal);
      const tp = await iperf(made, p, o.seconds, signal);
      samples.push({
        round: round + 1, path: p.id, gbps: round3(tp.gbps), retransmits: tp.retransmits,
        rttP50Us: ping.p50Us, rttP99Us: ping.p99Us, rttAvgUs: ping.avgUs, pingLoss: ping.loss,
      });
      console.error(`  round ${round + 1}/${o.rounds} ${p.label.padEnd(16)} ${tp.gbps.toFixed(2)} Gbit/s, RTT p50 ${ping.p50Us.toFixed(0)} µs`);
    }
  }
  return samples;
}
