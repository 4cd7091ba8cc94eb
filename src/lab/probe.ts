// `trellis probe serve|connect`: tiny TCP/UDP servers and a prober, run inside lab pods so that
// `lab check` can test real connections on the ports pods declare (policy is per port).
import { Command } from "commander";
import { spawn } from "node:child_process";
import * as dgram from "node:dgram";
import * as net from "node:net";
import * as os from "node:os";

export interface ProbeTarget {
  ip: string;
  port?: number;
  protocol: "TCP" | "UDP" | "SCTP" | "ICMP";
  /**
   * A Service address (TCP or UDP): connect again and again — each time a new connection, so the
   * Service may pick another endpoint — until every address listed has answered or `attempts`
   * are spent. The result then says who answered how often (`answered`) and how many attempts
   * were refused at once or timed out.
   */
  expect?: string[];
  attempts?: number;
}

/** What one Service probe saw, attempt by attempt. */
export interface ServiceProbeResult {
  ip: string;
  port: number;
  protocol: "TCP" | "UDP";
  attempts: number;
  /** Endpoint address (as the probe server reports its own address) -> answers. */
  answered: Record<string, number>;
  /** Attempts refused at once (TCP reset, ICMP port unreachable). */
  refused: number;
  /** Attempts with no answer within the timeout. */
  timedOut: number;
  ms: number;
}

export interface ProbeResult extends ProbeTarget {
  reached: boolean;
  ms: number;
  /** TCP: the source address the server saw (shows whether the connection was masqueraded). */
  seenAs?: string;
  /** TCP: the address the server answered from (after a Service's DNAT: the endpoint). */
  answeredBy?: string;
}

const ports = (v: string): number[] => v.split(",").filter(Boolean).map((p) => {
  const n = Number(p);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`port "${p}" is not 1..65535`);
  return n;
});

/**
 * The probe server's answer: `trellis <source it saw> <its own address> [<its name>]`. Its own
 * address is the endpoint a Service connection landed on (after DNAT). Older servers say only
 * the first field.
 */
export function parseAnswer(line: string): { seenAs?: string; answeredBy?: string; name?: string } {
  const m = /^trellis (\S+)(?: (\S+))?(?: (\S+))?/.exec(line);
  if (!m) return {};
  const plain = (a: string): string => a.replace(/^::ffff:/, "");
  return { seenAs: plain(m[1]!), ...(m[2] ? { answeredBy: plain(m[2]) } : {}), ...(m[3] ? { name: m[3] } : {}) };
}

/** TCP: reached when the connection opens; the server then says which source address it saw and who it is. */
function probeTcp(t: ProbeTarget, timeoutMs: number): Promise<{ ok: boolean; seenAs?: string; answeredBy?: string; refused?: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect({ host: t.ip, port: t.port! });
    let connected = false;
    let refused = false;
    let data = "";
    let finished = false;
    const done = (): void => {
      if (finished) return;
      finished = true;
      s.destroy();
      const a = parseAnswer(data);
      resolve({ ok: connected, ...(a.seenAs ? { seenAs: a.seenAs } : {}), ...(a.answeredBy ? { answeredBy: a.answeredBy } : {}), ...(refused ? { refused } : {}) });
    };
    s.setTimeout(timeoutMs, done);
    s.once("connect", () => {
      connected = true;
    });
    s.on("data", (d) => {
      data += d.toString();
      if (data.includes("\n")) done();
    });
    s.once("end", done);
    s.once("error", (e: NodeJS.ErrnoException) => {
      refused = e.code === "ECONNREFUSED";
      done();
    });
  });
}

/**
 * UDP, once, asking the server who it is: a connected socket, so that an ICMP port unreachable
 * (a Service without endpoints rejects so) comes back as ECONNREFUSED.
 */
function askUdp(t: ProbeTarget, timeoutMs: number): Promise<{ answeredBy?: string; refused?: boolean }> {
  return new Promise((resolve) => {
    const s = dgram.createSocket(t.ip.includes(":") ? "udp6" : "udp4");
    let finished = false;
    const finish = (r: { answeredBy?: string; refused?: boolean }): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      s.close();
      resolve(r);
    };
    const timer = setTimeout(() => finish({}), timeoutMs);
    s.on("message", (msg) => finish({ answeredBy: parseAnswer(msg.toString()).answeredBy ?? "?" }));
    s.on("error", (e: NodeJS.ErrnoException) => finish(e.code === "ECONNREFUSED" ? { refused: true } : {}));
    s.connect(t.port!, t.ip, () => {
      let sent = 0;
      const send = (): void => {
        if (finished || sent++ >= 3) return;
        s.send(WHO);
        setTimeout(send, timeoutMs / 4).unref();
      };
      send();
    });
  });
}

/** The datagram that asks a probe server to answer with its identity instead of an echo. */
const WHO = "trellis-who";

/**
 * Connects to a Service address until every expected endpoint has answered or the attempts are
 * spent, a few connections at a time. Each attempt is a new connection (a new source port), so
 * the Service's random pick is made again.
 */
export async function probeService(t: ProbeTarget, timeoutMs: number): Promise<ServiceProbeResult> {
  const started = Date.now();
  const protocol = t.protocol === "UDP" ? "UDP" : "TCP";
  const r: ServiceProbeResult = { ip: t.ip, port: t.port!, protocol, attempts: 0, answered: {}, refused: 0, timedOut: 0, ms: 0 };
  const expect = new Set(t.expect ?? []);
  const max = t.attempts ?? Math.max(3, 20 * expect.size);
  const allSeen = (): boolean => expect.size > 0 && [...expect].every((a) => r.answered[a]);
  // Nothing expected (no endpoint, or every one closed by policy): all attempts at once, each a timeout or a refusal.
  const batch = Math.min(8, expect.size > 0 ? expect.size : max);
  while (r.attempts < max && !allSeen()) {
    const n = Math.min(batch, max - r.attempts);
    r.attempts += n;
    const results = await Promise.all(Array.from({ length: n }, () => (protocol === "TCP"
      ? probeTcp(t, timeoutMs).then((x) => ({ answeredBy: x.ok ? x.answeredBy ?? "?" : undefined, refused: x.refused }))
      : askUdp(t, timeoutMs))));
    for (const x of results) {
      if (x.answeredBy) r.answered[x.answeredBy] = (r.answered[x.answeredBy] ?? 0) + 1;
      else if (x.refused) r.refused++;
      else r.timedOut++;
    }
  }
  r.ms = Date.now() - started;
  return r;
}

/** This namespace's own IPv4 addresses (a pod's), what a probe server says it is. */
function ownAddress(): string {
  for (const [name, addrs] of Object.entries(os.networkInterfaces())) {
    if (name === "lo") continue;
    const a = addrs?.find((x) => x.family === "IPv4" && !x.internal);
    if (a) return a.address;
  }
  return "?";
}

/** UDP: reached when the server echoes the datagram back (a drop and a closed port look alike: no echo). */
function probeUdp(t: ProbeTarget, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = dgram.createSocket(t.ip.includes(":") ? "udp6" : "udp4");
    const timer = setTimeout(() => finish(false), timeoutMs);
    let finished = false;
    const finish = (ok: boolean): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      s.close();
      resolve(ok);
    };
    s.once("message", () => finish(true));
    s.once("error", () => finish(false));
    // Resend a few times: UDP has no retransmission of its own.
    const payload = Buffer.from("trellis-probe");
    let sent = 0;
    const send = (): void => {
      // Never on a closed socket: a resend timer firing after the echo came back would throw.
      if (finished || sent++ >= 3) return;
      s.send(payload, t.port!, t.ip, () => undefined);
      setTimeout(send, timeoutMs / 4).unref();
    };
    send();
  });
}

function probeIcmp(t: ProbeTarget, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const p = spawn("ping", [...(t.ip.includes(":") ? ["-6"] : []), "-c", "1", "-W", String(Math.max(1, Math.round(timeoutMs / 1000))), "-q", t.ip], { stdio: "ignore" });
    p.on("close", (code) => resolve(code === 0));
    p.on("error", () => resolve(false));
  });
}

export async function probe(t: ProbeTarget, timeoutMs: number): Promise<ProbeResult> {
  const started = Date.now();
  let reached = false;
  let seenAs: string | undefined;
  let answeredBy: string | undefined;
  for (let attempt = 0; attempt < 2 && !reached; attempt++) {
    if (t.protocol === "TCP") {
      const r = await probeTcp(t, timeoutMs);
      reached = r.ok;
      seenAs = r.seenAs;
      answeredBy = r.answeredBy;
    } else {
      reached = t.protocol === "UDP" ? await probeUdp(t, timeoutMs) : t.protocol === "ICMP" ? await probeIcmp(t, timeoutMs) : false;
    }
  }
  return { ...t, reached, ms: Date.now() - started, ...(seenAs ? { seenAs } : {}), ...(answeredBy ? { answeredBy } : {}) };
}

export function probeCommand(): Command {
  const cmd = new Command("probe").description("connection probes for the lab (run inside pod namespaces)");
  cmd.command("serve")
    .description("accept TCP connections and echo UDP datagrams on the given ports until stopped")
    .option("--tcp <ports>", "comma-separated TCP ports", "")
    .option("--udp <ports>", "comma-separated UDP ports", "")
    .option("--id <name>", "the name it answers with (the lab gives the pod's namespace/name)")
    .action(async (o: { tcp: string; udp: string; id?: string }) => {
      // Who answered: the address the connection reached (after a Service's DNAT: the endpoint), and the pod's name.
      const id = o.id ? ` ${o.id}` : "";
      for (const p of ports(o.tcp)) {
        net.createServer((s) => s.end(`trellis ${s.remoteAddress} ${(s.localAddress ?? "?").replace(/^::ffff:/, "")}${id}\n`))
          .on("error", (e) => process.stderr.write(`tcp ${p}: ${e.message}\n`)).listen(p, "::");
      }
      for (const p of ports(o.udp)) {
        const s = dgram.createSocket({ type: "udp6", ipv6Only: false });
        // UDP sockets do not say which address a datagram was sent to: the pod's own address stands for it.
        s.on("message", (msg, rinfo) => s.send(msg.toString() === WHO ? Buffer.from(`trellis ${rinfo.address.replace(/^::ffff:/, "")} ${ownAddress()}${id}\n`) : msg,
          rinfo.port, rinfo.address));
        s.on("error", (e) => process.stderr.write(`udp ${p}: ${e.message}\n`));
        s.bind(p, "::");
      }
      await new Promise<void>((resolve) => {
        for (const sig of ["SIGTERM", "SIGINT"] as const) process.once(sig, () => resolve());
      });
      process.exit(0);
    });
  cmd.command("connect")
    .description("probe targets concurrently; prints a JSON list of results")
    .requiredOption("--targets <json>", 'JSON list of {"ip","port","protocol"} (with "expect": [addresses], "attempts": a Service probe)')
    .option("--timeout-ms <ms>", "per attempt", "800")
    .action(async (o: { targets: string; timeoutMs: string }) => {
      const targets = JSON.parse(o.targets) as ProbeTarget[];
      const results = await Promise.all(targets.map((t) => (t.expect ? probeService(t, Number(o.timeoutMs)) : probe(t, Number(o.timeoutMs)))));
      process.stdout.write(JSON.stringify(results) + "\n");
    });
  return cmd;
}
