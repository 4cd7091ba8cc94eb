// Helpers for multi-node tests: a lab driven through the built `trellis` executable exactly as an
// operator drives it, read-back of the kernel state of its nodes (routes, VXLAN FDB and neighbour
// entries), long-running pings between pods, and polling with a deadline instead of sleeping.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { integrationSkip, TRELLIS_CLI, uniq } from "./netns.js";

/** Skip reason for lab tests; undefined when they can run. */
export const labSkip = (): string | undefined =>
  integrationSkip() ?? (fs.existsSync(TRELLIS_CLI) ? undefined : "needs build/trellis (npm run build)");

/** Route protocol of the routes an agent installs towards other nodes' blocks. */
export const PEER_ROUTE_PROTO = "202";
export const VXLAN_DEV = "trellis.vxlan";
/** What the lab gives its agents (src/lab/lab.ts): lease TTL and resync period. */
export const LAB_LEASE_TTL_MS = 10_000;
export const LAB_RESYNC_MS = 5_000;

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the trellis CLI and waits for it. */
export function trellis(...args: string[]): Run {
  return trellisWithInput(undefined, ...args);
}

/** Runs the trellis CLI with `input` on its stdin (e.g. `apply -f -`). */
export function trellisWithInput(input: string | undefined, ...args: string[]): Run {
  const r = spawnSync(TRELLIS_CLI, args, { encoding: "utf8", input, maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Objects (Pod, Namespace, policies) as one multi-document text for `apply -f -`. */
const documents = (docs: ReadonlyArray<Record<string, unknown>>): string => docs.map((d) => JSON.stringify(d)).join("\n---\n") + "\n";

/** Like trellis(), but a non-zero exit fails the test with the command's output. */
export function trellisOk(...args: string[]): Run {
  const r = trellis(...args);
  assert.equal(r.code, 0, `trellis ${args.join(" ")} exited ${r.code}:\n${r.stderr}${r.stdout}`);
  return r;
}

// The JSON shapes the CLI prints are the library's own types (the tests still go through the CLI).
import type { Transport } from "../../src/dataplane/state.js";
import type { CheckCell, CheckReport, LabStatus } from "../../src/lab/lab.js";
import type { NodeRow as NodeReport } from "../../src/cli/cluster.js";
export type { CheckCell, CheckReport, LabStatus, NodeReport, Transport };

/** `policy explain -o json`: the verdict per direction. */
export interface Explanation {
  src: string;
  dst: string;
  port: number;
  protocol: string;
  allowed: boolean;
  egress?: { allowed: boolean; reason: string; policy?: string };
  ingress?: { allowed: boolean; reason: string; policy?: string };
}

/** What `lab pod add` prints. */
export interface AddedPod {
  pod: string;
  node: string;
  netns: string;
  ips: string[];
}

/** A lab with a unique name ("t" + 8 hex digits); call down() in after() / finally. */
export class TestLab {
  readonly name = `t${uniq()}`;

  /** `trellis lab up --name <name> ...args`; fails the test when it does not come up. */
  up(...args: string[]): void {
    trellisOk("lab", "up", "--name", this.name, ...args);
  }

  /** `lab up --spec FILE` with `spec` (namespaces, labelled pods with ports) written to a temporary file. */
  upSpec(spec: unknown): void {
    const file = path.join(os.tmpdir(), `trellis-spec-${this.name}.json`);
    fs.writeFileSync(file, JSON.stringify(spec));
    try {
      this.up("--spec", file);
    } finally {
      fs.rmSync(file, { force: true });
    }
  }

  /** `trellis --lab <name> apply -f -` with the objects; fails the test when refused. */
  apply(docs: ReadonlyArray<Record<string, unknown>>): void {
    const r = trellisWithInput(documents(docs), "--lab", this.name, "apply", "-f", "-");
    assert.equal(r.code, 0, `apply exited ${r.code}:\n${r.stderr}${r.stdout}`);
  }

  /** `trellis --lab <name> delete -f -` with the objects. */
  deleteObjects(docs: ReadonlyArray<Record<string, unknown>>): void {
    const r = trellisWithInput(documents(docs), "--lab", this.name, "delete", "-f", "-");
    assert.equal(r.code, 0, `delete exited ${r.code}:\n${r.stderr}${r.stdout}`);
  }

  /** `policy explain --from NS/POD --to NS/POD --port PORT/PROTO -o json`. */
  explain(from: string, to: string, port: string): Explanation {
    return JSON.parse(trellisOk("--lab", this.name, "policy", "explain", "--from", from, "--to", to, "--port", port, "-o", "json").stdout) as Explanation;
  }

  /** `lab pod add`; `ports` as the CLI takes them, e.g. "http:80/TCP,53/UDP". */
  podAdd(pod: string, node: string, labels: Record<string, string>, ports = ""): AddedPod {
    const args = ["lab", "pod", "add", "--name", this.name, "--pod", pod, "--node", node,
      "--labels", Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(","), ...(ports ? ["--ports", ports] : [])];
    return JSON.parse(trellisOk(...args).stdout) as AddedPod;
  }

  podDelete(pod: string): void {
    trellisOk("lab", "pod", "delete", "--name", this.name, "--pod", pod);
  }

  /** A pod of the lab by "namespace/name". */
  pod(ref: string): LabStatus["pods"][number] {
    const p = this.status().pods.find((x) => `${x.namespace}/${x.name}` === ref);
    assert.ok(p, `lab ${this.name} has a pod ${ref}`);
    return p;
  }

  /** The directory of a node's files (conflist, IPAM data, endpoint spool, agent log). */
  nodeDir(node: string): string {
    return `/run/trellis/lab/${this.name}/${node}`;
  }

  /** Removes the lab; safe to call when it was never (or only half) made. */
  down(): void {
    trellis("lab", "down", "--name", this.name);
  }

  status(): LabStatus {
    return JSON.parse(trellisOk("lab", "status", "--name", this.name, "-o", "json").stdout) as LabStatus;
  }

  node(name: string): LabStatus["nodes"][number] {
    const n = this.status().nodes.find((x) => x.name === name);
    assert.ok(n, `lab ${this.name} has a node ${name}`);
    return n;
  }

  /** The first pod of a node. */
  podOn(node: string): LabStatus["pods"][number] {
    const p = this.status().pods.find((x) => x.node === node);
    assert.ok(p, `lab ${this.name} has a pod on ${node}`);
    return p;
  }

  /** `lab check -o json`: the report and whether the command said PASS (exit 0). */
  check(): { exitCode: number | null; report: CheckReport } {
    const r = trellis("lab", "check", "--name", this.name, "-o", "json");
    return { exitCode: r.code, report: JSON.parse(r.stdout) as CheckReport };
  }

  /** `trellis --lab <name> nodes -o json`. */
  nodes(): NodeReport[] {
    return (JSON.parse(trellisOk("--lab", this.name, "nodes", "-o", "json").stdout) as { nodes: NodeReport[] }).nodes;
  }

  /** Runs `trellis --lab <name> ...args` (cluster commands against the lab's datastore). */
  cli(...args: string[]): Run {
    return trellis("--lab", this.name, ...args);
  }

  agent(action: "stop" | "start" | "kill", node: string): void {
    trellisOk("lab", "agent", action, "--name", this.name, "--node", node);
  }

  etcd(action: "stop" | "start"): void {
    trellisOk("lab", "etcd", action, "--name", this.name);
  }

  agentLog(node: string): string {
    return fs.readFileSync(`/run/trellis/lab/${this.name}/${node}/agent.log`, "utf8");
  }
}

/** The namespaces of a lab that still exist (for "down leaves nothing" checks). */
export const labNamespaces = (lab: string): string[] =>
  fs.existsSync("/run/netns") ? fs.readdirSync("/run/netns").filter((n) => n.startsWith(`trellis-${lab}-`)) : [];

// ---- kernel read-back --------------------------------------------------------------------------

function json<T>(cmd: string, args: string[]): T {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr || r.stdout}`);
  return JSON.parse(r.stdout || "[]") as T;
}

export interface RouteEntry {
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
}

/** Every IPv4 route of the main table in a namespace (by name). */
export const routes = (netns: string): RouteEntry[] => json<RouteEntry[]>("ip", ["-n", netns, "-j", "-4", "route", "show"]);

/** The routes an agent made towards other nodes, as "dst via gateway dev device", sorted. */
export const peerRoutes = (netns: string): string[] =>
  routes(netns).filter((r) => r.protocol === PEER_ROUTE_PROTO).map((r) => `${r.dst} via ${r.gateway} dev ${r.dev}`).sort();

export function hasLink(netns: string, name: string): boolean {
  return spawnSync("ip", ["-n", netns, "link", "show", name], { encoding: "utf8" }).status === 0;
}

/** The VXLAN device's FDB entries as "mac dst ip", sorted; [] without the device. */
export function vxlanFdb(netns: string): string[] {
  if (!hasLink(netns, VXLAN_DEV)) return [];
  return json<Array<{ mac: string; dst?: string }>>("bridge", ["-n", netns, "-j", "fdb", "show", "dev", VXLAN_DEV])
    .filter((e) => e.dst !== undefined).map((e) => `${e.mac} dst ${e.dst}`).sort();
}

/** The VXLAN device's neighbour entries as "ip lladdr mac", sorted; [] without the device. */
export function vxlanNeighbours(netns: string): string[] {
  if (!hasLink(netns, VXLAN_DEV)) return [];
  return json<Array<{ dst: string; lladdr?: string }>>("ip", ["-n", netns, "-j", "neigh", "show", "dev", VXLAN_DEV])
    .map((e) => `${e.dst} lladdr ${e.lladdr ?? "-"}`).sort();
}

/** The VXLAN device's MAC address in a namespace. */
export const vtepMac = (netns: string): string =>
  json<Array<{ address: string }>>("ip", ["-n", netns, "-j", "link", "show", VXLAN_DEV])[0]!.address;

const networkAddress = (cidr: string): string => cidr.split("/")[0]!;

/** How `backend` should carry traffic between two nodes (by segment). */
export function expectedTransport(backend: string, fromSegment: number, toSegment: number): Transport {
  const sameSegment = fromSegment === toSegment;
  if (backend === "vxlan") return "vxlan";
  if (backend === "host-gw") return sameSegment ? "host-gw" : "unreachable";
  if (backend === "cross-subnet") return sameSegment ? "host-gw" : "vxlan";
  throw new Error(`no expectation for backend ${backend}`);
}

/**
 * Asserts that every node's kernel holds exactly what `backend` calls for, and nothing else of
 * ours: one route per reachable peer block (through the VTEP for vxlan peers, via the peer's
 * underlay address for host-gw peers), no route at all to an unreachable peer's block, FDB and
 * neighbour entries for exactly the vxlan peers, and no VXLAN device under host-gw.
 */
export function assertDataplane(s: LabStatus, backend: string): void {
  for (const n of s.nodes) {
    const want: string[] = [];
    const fdbDsts: string[] = [];
    const neighbours: string[] = [];
    for (const p of s.nodes) {
      if (p === n) continue;
      const t = expectedTransport(backend, n.segment, p.segment);
      if (t === "vxlan") {
        want.push(`${p.subnet} via ${networkAddress(p.subnet)} dev ${VXLAN_DEV}`);
        fdbDsts.push(p.ip);
        neighbours.push(networkAddress(p.subnet));
      } else if (t === "host-gw") {
        want.push(`${p.subnet} via ${p.ip} dev eth0`);
      } else {
        const any = routes(n.netns).filter((r) => r.dst === p.subnet);
        assert.deepEqual(any, [], `${n.name} has no route at all to unreachable ${p.name}'s block ${p.subnet}`);
      }
    }
    assert.deepEqual(peerRoutes(n.netns), want.sort(), `${n.name}'s peer routes under ${backend}`);
    assert.deepEqual(vxlanFdb(n.netns).map((e) => e.split(" dst ")[1]).sort(), fdbDsts.sort(), `${n.name}'s VXLAN FDB under ${backend}`);
    assert.deepEqual(vxlanNeighbours(n.netns).map((e) => e.split(" ")[0]).sort(), neighbours.sort(), `${n.name}'s VXLAN neighbours under ${backend}`);
    if (backend === "host-gw") assert.equal(hasLink(n.netns, VXLAN_DEV), false, `${n.name} has no ${VXLAN_DEV} under host-gw`);
    if (backend === "vxlan") assert.equal(hasLink(n.netns, VXLAN_DEV), true, `${n.name} has ${VXLAN_DEV} under vxlan`);
  }
}

/** Asserts that `nodes -o json` reports, for every node, each peer with the transport `backend` calls for. */
export function assertTransports(s: LabStatus, nodes: NodeReport[], backend: string): void {
  const segment = new Map(s.nodes.map((n) => [n.name, n.segment]));
  for (const n of nodes) {
    const got = Object.fromEntries(n.peers.map((p) => [p.node, p.transport]));
    const want = Object.fromEntries(s.nodes.filter((p) => p.name !== n.name)
      .map((p) => [p.name, expectedTransport(backend, segment.get(n.name)!, p.segment)]));
    assert.deepEqual(got, want, `transports reported by ${n.name} under ${backend}`);
  }
}

// ---- polling -----------------------------------------------------------------------------------

/**
 * Retries `probe` (an assertion) every `everyMs` until it passes; rethrows its last failure after
 * `timeoutMs`. Resolves with the probe's value and the time it took.
 */
export async function eventually<T>(what: string, timeoutMs: number, probe: () => T, everyMs = 100): Promise<{ value: T; ms: number }> {
  const start = Date.now();
  for (;;) {
    try {
      return { value: probe(), ms: Date.now() - start };
    } catch (e) {
      if (Date.now() - start > timeoutMs) {
        throw new Error(`${what}: still not true after ${timeoutMs / 1000}s: ${(e as Error).message}`, { cause: e });
      }
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

// ---- pings -------------------------------------------------------------------------------------

export interface PingStats {
  transmitted: number;
  received: number;
  output: string;
}

export interface RunningPing {
  /** Replies seen so far. */
  replies(): number;
  running(): boolean;
  done: Promise<PingStats>;
}

/** `ping -i <interval> -c <count>` from a pod namespace, in the background. */
export function startPing(fromNetns: string, to: string, intervalS: number, count: number): RunningPing {
  const child = spawn("ip", ["netns", "exec", fromNetns, "ping", "-n", "-i", String(intervalS), "-c", String(count), "-W", "1", to], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let exited = false;
  child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (out += d));
  const done = new Promise<PingStats>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", () => {
      exited = true;
      const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
      if (!m) reject(new Error(`ping ${to} from ${fromNetns} printed no statistics:\n${out}`));
      else resolve({ transmitted: Number(m[1]), received: Number(m[2]), output: out });
    });
  });
  return {
    replies: () => (out.match(/bytes from/g) ?? []).length,
    running: () => !exited,
    done,
  };
}
