// Helpers for network-policy tests in a lab: a node's policy table (`inet trellis`) read back as
// data, connection loops and TCP listeners run inside pod namespaces (so that a test counts both
// what was sent and what arrived), packet counters in a pod namespace, and the scenario the
// policy tests share (a default-deny "prod" namespace and a "dev" namespace on three nodes).
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { sh, TRELLIS_CLI } from "./netns.js";

// ---- the shared scenario -----------------------------------------------------------------------

/**
 * prod: web (node1: http 80/TCP, dns 53/UDP), api (node2: http 8080/TCP), db (node3: pg 5432/TCP,
 * metrics 9153/UDP); dev: tool (node3: debug 7000/TCP). Every pod serves its ports (lab probe server).
 */
export const PROD_DEV_SPEC = {
  nodes: 3,
  backend: "vxlan",
  namespaces: [{ name: "prod", labels: { env: "prod" } }, { name: "dev", labels: { env: "dev" } }],
  pods: [
    { name: "web", namespace: "prod", node: "node1", labels: { app: "web" },
      ports: [{ name: "http", port: 80, protocol: "TCP" }, { name: "dns", port: 53, protocol: "UDP" }] },
    { name: "api", namespace: "prod", node: "node2", labels: { app: "api" }, ports: [{ name: "http", port: 8080, protocol: "TCP" }] },
    { name: "db", namespace: "prod", node: "node3", labels: { app: "db" },
      ports: [{ name: "pg", port: 5432, protocol: "TCP" }, { name: "metrics", port: 9153, protocol: "UDP" }] },
    { name: "tool", namespace: "dev", node: "node3", labels: { app: "tool" }, ports: [{ name: "debug", port: 7000, protocol: "TCP" }] },
  ],
} as const;

const np = (name: string, spec: Record<string, unknown>): Record<string, unknown> =>
  ({ apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name, namespace: "prod" }, spec });

/**
 * Default-deny ingress in prod; web reachable on http (a named port) and 53/UDP from every pod;
 * api only from web on http (named: 8080 on api); db only from api on 5432; and a global ordered
 * policy (order 10) denying dev -> prod egress, passing everything else on to the NetworkPolicies.
 */
export const PROD_DEV_POLICIES: Array<Record<string, unknown>> = [
  np("default-deny", { podSelector: {}, policyTypes: ["Ingress"] }),
  np("web-from-anywhere", {
    podSelector: { matchLabels: { app: "web" } },
    ingress: [{ from: [{ namespaceSelector: {} }], ports: [{ port: "http", protocol: "TCP" }, { port: 53, protocol: "UDP" }] }],
  }),
  np("api-from-web", {
    podSelector: { matchLabels: { app: "api" } },
    ingress: [{ from: [{ podSelector: { matchLabels: { app: "web" } } }], ports: [{ port: "http", protocol: "TCP" }] }],
  }),
  np("db-from-api", {
    podSelector: { matchLabels: { app: "db" } },
    ingress: [{ from: [{ podSelector: { matchLabels: { app: "api" } } }], ports: [{ port: 5432, protocol: "TCP" }] }],
  }),
  {
    apiVersion: "trellis.dev/v1", kind: "GlobalTrellisPolicy", metadata: { name: "dev-not-to-prod" },
    spec: {
      order: 10, namespaceSelector: { matchLabels: { env: "dev" } }, podSelector: {}, policyTypes: ["Egress"],
      egress: [{ action: "Deny", to: [{ namespaceSelector: { matchLabels: { env: "prod" } } }] }, { action: "Pass" }],
    },
  },
];

export const prodPolicy = np;

/** A Pod object as the lab applies it (labels, and the declared ports of its one container). */
export function podObject(namespace: string, name: string, labels: Record<string, string>,
  ports: ReadonlyArray<{ name?: string; port: number; protocol: string }>): Record<string, unknown> {
  return {
    apiVersion: "v1", kind: "Pod", metadata: { name, namespace, labels },
    spec: { containers: [{ name: "app", ports: ports.map((p) => ({ ...(p.name ? { name: p.name } : {}), containerPort: p.port, protocol: p.protocol })) }] },
  };
}

// ---- the node's policy table ------------------------------------------------------------------

export interface PolicyTable {
  /** The table's kernel handle: a new one means the table was deleted and made again. */
  handle: number;
  /** Set name -> elements, as nft writes them ("10.244.1.2 . tcp . 80", "10.244.1.2/31"). */
  sets: Map<string, string[]>;
  /** Verdict maps: host interface -> chain jumped to. */
  egress: Map<string, string>;
  ingress: Map<string, string>;
  chains: Set<string>;
  /** Every rule as "chain#handle comment". */
  rules: string[];
}

type NftObj = Record<string, Record<string, unknown>>;

const elements = (v: unknown): unknown[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

/** A set element of `nft -j` as nft writes it: "a", "a-b", "a/n", concatenations "x . y . z". */
function elementText(e: unknown): string {
  if (typeof e === "string" || typeof e === "number") return String(e);
  const o = e as { concat?: unknown[]; range?: unknown[]; prefix?: { addr: string; len: number }; elem?: { val: unknown } };
  if (o.concat) return o.concat.map(elementText).join(" . ");
  if (o.range) return `${elementText(o.range[0])}-${elementText(o.range[1])}`;
  if (o.prefix) return `${o.prefix.addr}/${o.prefix.len}`;
  if (o.elem) return elementText(o.elem.val);
  return JSON.stringify(e);
}

/** `nft -j list table inet trellis` in a node namespace, as data; undefined when there is no table. */
export function policyTable(nodeNetns: string): PolicyTable | undefined {
  const r = spawnSync("ip", ["netns", "exec", nodeNetns, "nft", "-j", "list", "table", "inet", "trellis"], { encoding: "utf8" });
  if (r.status !== 0) {
    if (/No such file|does not exist/i.test(r.stderr)) return undefined;
    throw new Error(`nft list table inet trellis in ${nodeNetns}: ${r.stderr}`);
  }
  const t: PolicyTable = { handle: -1, sets: new Map(), egress: new Map(), ingress: new Map(), chains: new Set(), rules: [] };
  for (const o of (JSON.parse(r.stdout) as { nftables: NftObj[] }).nftables) {
    if (o.table) t.handle = o.table.handle as number;
    if (o.set) t.sets.set(o.set.name as string, elements(o.set.elem).map(elementText));
    if (o.map) {
      const m = o.map.name === "egress" ? t.egress : o.map.name === "ingress" ? t.ingress : undefined;
      for (const e of elements(o.map.elem) as Array<[string, { jump?: { target: string } }]>) m?.set(e[0], e[1].jump?.target ?? "?");
    }
    if (o.chain) t.chains.add(o.chain.name as string);
    if (o.rule) t.rules.push(`${o.rule.chain as string}#${o.rule.handle as number} ${(o.rule.comment as string | undefined) ?? ""}`);
  }
  return t;
}

/**
 * The fail-closed invariant for one host interface: either it is not in `endpoints` (the base
 * chains drop its traffic), or it is there together with both verdict-map entries, each pointing
 * at a chain that exists. Returns "unprogrammed" or "programmed"; throws on anything in between.
 */
export function endpointState(t: PolicyTable, hostIf: string): "unprogrammed" | "programmed" {
  const listed = (t.sets.get("endpoints") ?? []).includes(hostIf);
  if (!listed) return "unprogrammed";
  for (const [dir, map] of [["egress", t.egress], ["ingress", t.ingress]] as const) {
    const chain = map.get(hostIf);
    assert.ok(chain, `${hostIf} is in @endpoints but has no ${dir} verdict-map entry (it would be forwarded without its chains)`);
    assert.ok(t.chains.has(chain), `${hostIf}'s ${dir} chain ${chain} exists`);
    assert.ok(t.chains.has(`${chain}_k8s`), `${hostIf}'s ${dir} chain ${chain}_k8s exists`);
  }
  return "programmed";
}

// ---- processes inside pod namespaces ----------------------------------------------------------

/**
 * A connection loop (ESM, run by node inside a pod namespace): every `everyMs` it starts a TCP
 * connect to the target with its own timeout and prints one line per attempt:
 * "ok|fail <startMs> <endMs> <why>". The target comes from argv, or later as "target IP" on
 * stdin, or — to start within a millisecond of an address being handed out — from the first new
 * file named like an IPv4 address in an IPAM directory it watches (host-local reserves an address
 * by creating such a file). "stop" (or EOF) ends it once the attempts in flight are done.
 */
const LOOP_SCRIPT = `
import fs from "node:fs";
import net from "node:net";
import readline from "node:readline";
const [port, everyMs, timeoutMs, first, localAddress, watchDir] = process.argv.slice(1);
let target = first || undefined;
if (watchDir && !target) {
  const known = new Set(fs.readdirSync(watchDir));
  const watcher = setInterval(() => {
    const ip = fs.readdirSync(watchDir).find((n) => !known.has(n) && /^\\d+\\.\\d+\\.\\d+\\.\\d+$/.test(n));
    if (!ip || target) return;
    clearInterval(watcher);
    target = ip;
    start();
  }, 1);
}
let timer, inflight = 0, stopping = false;
const out = (l) => process.stdout.write(l + "\\n");
function attempt() {
  const t0 = Date.now();
  inflight++;
  const s = net.connect({ host: target, port: Number(port), ...(localAddress ? { localAddress } : {}) });
  let done = false;
  const end = (ok, why) => {
    if (done) return;
    done = true;
    inflight--;
    s.destroy();
    out((ok ? "ok " : "fail ") + t0 + " " + Date.now() + " " + why);
    if (stopping && inflight === 0) process.exit(0);
  };
  s.setTimeout(Number(timeoutMs), () => end(false, "timeout"));
  s.once("connect", () => end(true, "connected"));
  s.once("error", (e) => end(false, e.code || e.message));
}
function start() {
  if (timer) return;
  out("started " + target + " " + Date.now());
  attempt();
  timer = setInterval(attempt, Number(everyMs));
}
function stop() {
  stopping = true;
  clearInterval(timer);
  if (inflight === 0) process.exit(0);
}
const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (l) => {
  if (l.startsWith("target ")) { target = l.slice(7).trim(); start(); }
  else if (l === "stop") stop();
});
rl.on("close", stop);
out("ready");
if (target) start();
`;

/** A TCP listener (ESM, inside a pod namespace) that prints "accept <remote> <ms>" per connection. */
const LISTENER_SCRIPT = `
import net from "node:net";
const port = Number(process.argv[1]);
const srv = net.createServer((s) => {
  process.stdout.write("accept " + s.remoteAddress + " " + Date.now() + "\\n");
  // Clients hang up as soon as they are connected: a reset is expected, not fatal.
  s.on("error", () => undefined);
  s.end("hello\\n");
});
srv.listen(port, "0.0.0.0", () => process.stdout.write("listening " + Date.now() + "\\n"));
process.stdin.resume();
process.stdin.on("end", () => process.exit(0));
`;

export interface Attempt {
  ok: boolean;
  startMs: number;
  endMs: number;
  why: string;
}

export interface ConnectLoop {
  /** Sets (or changes) the target address and starts the loop if it was waiting. */
  setTarget(ip: string): void;
  /** The address it aims at and since when, once started. */
  started(): { target: string; atMs: number } | undefined;
  /** Attempts finished so far. */
  attempts(): Attempt[];
  /** Resolves once the loop is running (or waiting for its target). */
  ready: Promise<void>;
  /** Stops starting attempts; resolves with all attempts once those in flight have ended. */
  stop(): Promise<Attempt[]>;
}

function inNetns(netns: string, args: string[]): ChildProcess {
  return spawn("nsenter", [`--net=/run/netns/${netns}`, "--", process.execPath, "--input-type=module", ...args], { stdio: ["pipe", "pipe", "pipe"] });
}

function lines(child: ChildProcess, onLine: (l: string) => void): { stderr: () => string; closed: Promise<number | null> } {
  let buf = "";
  let err = "";
  child.stdout!.setEncoding("utf8").on("data", (d: string) => {
    buf += d;
    let i: number;
    while ((i = buf.indexOf("\n")) >= 0) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
  child.stdin!.on("error", () => undefined);
  const closed = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  return { stderr: () => err, closed };
}

/**
 * Starts a connection loop inside `netns` towards `port` (and `target`, or later through
 * setTarget): one TCP connect every `everyMs`, each abandoned after `timeoutMs`.
 */
export function startConnectLoop(netns: string, o: {
  port: number; everyMs: number; timeoutMs: number; target?: string; localAddress?: string; targetFromIpamDir?: string;
}): ConnectLoop {
  const child = inNetns(netns, ["-e", LOOP_SCRIPT, "--", String(o.port), String(o.everyMs), String(o.timeoutMs), o.target ?? "", o.localAddress ?? "",
    o.targetFromIpamDir ?? ""]);
  const seen: Attempt[] = [];
  let started: { target: string; atMs: number } | undefined;
  let readyResolve!: () => void;
  const ready = new Promise<void>((r) => (readyResolve = r));
  const io = lines(child, (l) => {
    if (l === "ready") readyResolve();
    const st = /^started (\S+) (\d+)$/.exec(l);
    if (st) started = { target: st[1]!, atMs: Number(st[2]) };
    const m = /^(ok|fail) (\d+) (\d+) (.*)$/.exec(l);
    if (m) seen.push({ ok: m[1] === "ok", startMs: Number(m[2]), endMs: Number(m[3]), why: m[4]! });
  });
  const failed = io.closed.then((code) => {
    throw new Error(`connection loop in ${netns} exited (${code}) before it was ready: ${io.stderr()}`);
  });
  failed.catch(() => undefined);
  let stopping: Promise<Attempt[]> | undefined;
  return {
    setTarget: (ip) => child.stdin!.write(`target ${ip}\n`),
    started: () => started,
    attempts: () => [...seen],
    ready: Promise.race([ready, failed]),
    stop() {
      stopping ??= (async () => {
        child.stdin!.end("stop\n");
        const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
        await io.closed;
        clearTimeout(timer);
        return [...seen];
      })();
      return stopping;
    },
  };
}

export interface Listener {
  /** Connections accepted so far: remote address and when. */
  accepted(): Array<{ from: string; atMs: number }>;
  /** When the socket was listening (undefined: not yet). */
  listeningSince(): number | undefined;
  /** False once the process has exited (e.g. it could not enter its namespace). */
  running(): boolean;
  stderr(): string;
  stop(): Promise<void>;
}

/** A TCP listener on 0.0.0.0:`port` inside `netns` that records every connection it accepts. */
export function startListener(netns: string, port: number): Listener {
  const child = inNetns(netns, ["-e", LISTENER_SCRIPT, "--", String(port)]);
  const accepted: Array<{ from: string; atMs: number }> = [];
  let since: number | undefined;
  const io = lines(child, (l) => {
    const a = /^accept (\S+) (\d+)$/.exec(l);
    if (a) accepted.push({ from: a[1]!.replace(/^::ffff:/, ""), atMs: Number(a[2]) });
    const s = /^listening (\d+)$/.exec(l);
    if (s) since = Number(s[1]);
  });
  let exited = false;
  void io.closed.then(() => (exited = true));
  return {
    accepted: () => [...accepted],
    listeningSince: () => since,
    running: () => !exited,
    stderr: io.stderr,
    async stop() {
      child.stdin!.end();
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await io.closed;
      clearTimeout(timer);
    },
  };
}

// ---- packet counters in a pod namespace -------------------------------------------------------

const COUNTER_TABLE = "trltest";

/**
 * Counts packets in a pod namespace by source address, with a table of the test's own
 * (`inet trltest`, gone with the namespace): `hook` input counts what arrived, output what left.
 * Returns a reader: source address -> packets.
 */
export function countBySource(podNetns: string, hook: "input" | "output", sources: string[]): () => Record<string, number> {
  const chain = `count_${hook}`;
  sh("ip", ["netns", "exec", podNetns, "nft", "-f", "-"], [
    `table inet ${COUNTER_TABLE} {`,
    `  chain ${chain} {`,
    `    type filter hook ${hook} priority -300; policy accept;`,
    ...sources.map((s) => `    ip saddr ${s} counter comment "${s}"`),
    "  }",
    "}",
  ].join("\n") + "\n");
  return () => {
    const out: Record<string, number> = Object.fromEntries(sources.map((s) => [s, 0]));
    const listing = JSON.parse(sh("ip", ["netns", "exec", podNetns, "nft", "-j", "list", "chain", "inet", COUNTER_TABLE, chain])) as { nftables: NftObj[] };
    for (const o of listing.nftables) {
      if (!o.rule) continue;
      const counter = (o.rule.expr as Array<Record<string, { packets: number }>>).find((e) => e.counter);
      out[o.rule.comment as string] = counter?.counter?.packets ?? 0;
    }
    return out;
  };
}

/** One `trellis probe connect` from a pod namespace (TCP connect / UDP echo); whether it got through. */
export function probeOnce(netns: string, ip: string, port: number, protocol: "TCP" | "UDP", timeoutMs = 300): boolean {
  const out = sh("ip", ["netns", "exec", netns, TRELLIS_CLI, "probe", "connect", "--timeout-ms", String(timeoutMs),
    "--targets", JSON.stringify([{ ip, port, protocol }])]);
  return (JSON.parse(out) as Array<{ reached: boolean }>)[0]!.reached;
}
