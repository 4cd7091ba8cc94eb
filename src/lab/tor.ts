// The lab's top-of-rack routers (`lab up --backend bgp --tor`): one namespace per segment running
// FRR (Debian `frr`: zebra and bgpd, a real router no one here wrote), with a leg on its segment
// (10.99.S.3) and one on a spine shared by all ToRs (10.98.0.S). Each ToR peers over eBGP with the
// nodes of its segment and with every other ToR, so the routers carry the pod routes between
// segments; the lab's router keeps forwarding only the underlay. Every file, socket and pid of a
// ToR lives in its own directory, which keeps the instances apart.
import * as fs from "node:fs";
import * as path from "node:path";
import { createNetns, execIn, ipBatchIn, netnsPath, processAlive, sysctlIn } from "../kernel/netns.js";
import type { LabPlan, LabTor } from "./plan.js";

/** Nodes are labelled with their segment, so that each ToR peer applies to its own segment's nodes. */
export const LAB_SEGMENT_LABEL = "lab.trellis.dev/segment";

const FRR_DIR = "/usr/lib/frr";
export const SPINE_BRIDGE = "br0";

export interface TorState {
  plan: LabPlan;
  netns: string[];
  pids: Array<{ what: string; pid: number }>;
}

export const torDir = (labDir: string, tor: LabTor): string => path.join(labDir, `tor${tor.segment}`);
export const spineNetns = (plan: LabPlan): string => `${plan.routerNetns.replace(/-rt$/, "")}-spine`;

/** FRR's bgpd.conf for a ToR (pure). */
export function torBgpdConf(plan: LabPlan, tor: LabTor, dir: string, extra: { announce?: string[] } = {}): string {
  const bgp = plan.bgp!;
  const lines = [
    "! written by trellis lab up: the ToR router of segment " + tor.segment,
    "frr defaults traditional",
    `hostname tor${tor.segment}`,
    `log file ${path.join(dir, "bgpd.log")}`,
    "!",
    `router bgp ${tor.asNumber}`,
    ` bgp router-id ${tor.ip}`,
    // FRR 8 refuses to exchange routes over eBGP without policies unless told otherwise.
    " no bgp ebgp-requires-policy",
    " bgp graceful-restart",
    " bgp bestpath as-path multipath-relax",
  ];
  for (const n of plan.nodes.filter((x) => x.segment === tor.segment)) {
    const ip = n.ip.split("/")[0]!;
    lines.push(` neighbor ${ip} remote-as ${bgp.nodeAs[n.name]}`, ` neighbor ${ip} description ${n.name}`);
  }
  for (const t of bgp.tors.filter((x) => x !== tor)) {
    lines.push(` neighbor ${t.spineIp} remote-as ${t.asNumber}`, ` neighbor ${t.spineIp} description tor${t.segment}`);
  }
  lines.push(" address-family ipv4 unicast");
  lines.push("  maximum-paths 8");
  for (const p of extra.announce ?? []) lines.push(`  network ${p}`);
  lines.push(" exit-address-family", "!");
  return lines.join("\n") + "\n";
}

/** The uid and gid of FRR's own user (FRR's daemons drop to it; their files must be its). */
function frrUser(): { uid: number; gid: number } {
  const line = fs.readFileSync("/etc/passwd", "utf8").split("\n").find((l) => l.startsWith("frr:"));
  const f = line?.split(":");
  if (!f) throw new Error("FRR's user \"frr\" does not exist: install Debian's frr package");
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

/**
 * Runs one FRR daemon in a ToR's namespace, daemonized, every path of it in the ToR's directory
 * (config, pid file, zebra's API socket, the vty sockets vtysh talks to; no TCP vty); returns its
 * pid (from its pid file).
 */
function startDaemon(tor: LabTor, dir: string, daemon: "zebra" | "bgpd"): number {
  const pidFile = path.join(dir, `${daemon}.pid`);
  fs.rmSync(pidFile, { force: true });
  const r = execIn(tor.netns, path.join(FRR_DIR, daemon), [
    "-d", "-f", path.join(dir, `${daemon}.conf`), "-i", pidFile,
    "-z", path.join(dir, "zserv.api"), "--vty_socket", dir, "-P", "0", "--log", `file:${path.join(dir, `${daemon}.log`)}`,
  ]);
  if (r.code !== 0) throw new Error(`cannot start ${daemon} on tor${tor.segment}: ${(r.stderr || r.stdout).trim()}`);
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      const pid = Number(fs.readFileSync(pidFile, "utf8").trim());
      if (pid > 0 && processAlive(pid)) return pid;
    } catch {
      // not written yet
    }
    if (Date.now() > deadline) throw new Error(`${daemon} on tor${tor.segment} did not write ${pidFile} (see ${path.join(dir, `${daemon}.log`)})`);
    execIn(tor.netns, "sleep", ["0.05"]);
  }
}

/**
 * Makes the spine and one ToR per segment, starts zebra and bgpd in each, and records every
 * namespace and pid in `state` as soon as it exists (`save` persists it).
 */
export function startTors(state: TorState, labDir: string, save: () => void, progress: (line: string) => void, extra: { announce?: Record<number, string[]> } = {}): void {
  const { plan } = state;
  const bgp = plan.bgp!;
  const spine = spineNetns(plan);
  createNetns(spine);
  state.netns.push(spine);
  save();
  ipBatchIn(spine, [`link add ${SPINE_BRIDGE} type bridge`, `link set ${SPINE_BRIDGE} up`]);
  for (const tor of bgp.tors) {
    const seg = plan.segments[tor.segment - 1]!;
    createNetns(tor.netns);
    state.netns.push(tor.netns);
    save();
    // Every veth is made inside a lab namespace, its far end moved into another lab namespace.
    ipBatchIn(seg.netns, [
      `link add tor${tor.segment} type veth peer name eth0 netns ${netnsPath(tor.netns)}`,
      `link set tor${tor.segment} master ${plan.bridge}`, `link set tor${tor.segment} up`,
    ]);
    ipBatchIn(spine, [
      `link add tor${tor.segment} type veth peer name spine0 netns ${netnsPath(tor.netns)}`,
      `link set tor${tor.segment} master ${SPINE_BRIDGE}`, `link set tor${tor.segment} up`,
    ]);
    ipBatchIn(tor.netns, [
      `addr add ${tor.ip}/24 dev eth0`, "link set eth0 up", `addr add ${tor.spineIp}/24 dev spine0`, "link set spine0 up",
    ]);
    sysctlIn(tor.netns, { "net.ipv4.ip_forward": "1" });
    const dir = torDir(labDir, tor);
    fs.mkdirSync(dir, { recursive: true, mode: 0o750 });
    fs.writeFileSync(path.join(dir, "zebra.conf"), `hostname tor${tor.segment}\nlog file ${path.join(dir, "zebra.log")}\n`);
    fs.writeFileSync(path.join(dir, "bgpd.conf"), torBgpdConf(plan, tor, dir, { announce: extra.announce?.[tor.segment] ?? [] }));
    const frr = frrUser();
    for (const f of [dir, path.join(dir, "zebra.conf"), path.join(dir, "bgpd.conf")]) fs.chownSync(f, frr.uid, frr.gid);
    for (const daemon of ["zebra", "bgpd"] as const) {
      const pid = startDaemon(tor, dir, daemon);
      state.pids.push({ what: `${daemon} tor${tor.segment}`, pid });
      save();
    }
    progress(`ToR tor${tor.segment}: ${tor.netns}, ${tor.ip} on segment ${tor.segment}, ${tor.spineIp} on the spine, AS ${tor.asNumber} (FRR)`);
  }
}

/** `vtysh -c CMD ...` against one ToR's FRR (its own sockets). */
export function torVtysh(labDir: string, tor: LabTor, ...commands: string[]): string {
  const r = execIn(tor.netns, "vtysh", ["--vty_socket", torDir(labDir, tor), ...commands.flatMap((c) => ["-c", c])]);
  if (r.code !== 0) throw new Error(`vtysh on tor${tor.segment}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}
