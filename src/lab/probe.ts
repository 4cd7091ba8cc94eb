// `trellis probe serve|connect`: tiny TCP/UDP servers and a prober, run inside lab pods so that
// `lab check` can test real connections on the ports pods declare (policy is per port).
import { Command } from "commander";
import { spawn } from "node:child_process";
import * as dgram from "node:dgram";
import * as net from "node:net";

export interface ProbeTarget {
  ip: string;
  port?: number;
  protocol: "TCP" | "UDP" | "SCTP" | "ICMP";
}

export interface ProbeResult extends ProbeTarget {
  reached: boolean;
  ms: number;
  /** TCP: the source address the server saw (shows whether the connection was masqueraded). */
  seenAs?: string;
}

const ports = (v: string): number[] => v.split(",").filter(Boolean).map((p) => {
  const n = Number(p);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`port "${p}" is not 1..65535`);
  return n;
});

/** TCP: reached when the connection opens; the server then says which source address it saw. */
function probeTcp(t: ProbeTarget, timeoutMs: number): Promise<{ ok: boolean; seenAs?: string }> {
  return new Promise((resolve) => {
    const s = net.connect({ host: t.ip, port: t.port! });
    let connected = false;
    let data = "";
    const done = (): void => {
      s.destroy();
      const seen = /^trellis (\S+)/.exec(data)?.[1];
      resolve({ ok: connected, ...(seen ? { seenAs: seen.replace(/^::ffff:/, "") } : {}) });
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
    s.once("error", done);
  });
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
  for (let attempt = 0; attempt < 2 && !reached; attempt++) {
    if (t.protocol === "TCP") {
      const r = await probeTcp(t, timeoutMs);
      reached = r.ok;
      seenAs = r.seenAs;
    } else {
      reached = t.protocol === "UDP" ? await probeUdp(t, timeoutMs) : t.protocol === "ICMP" ? await probeIcmp(t, timeoutMs) : false;
    }
  }
  return { ...t, reached, ms: Date.now() - started, ...(seenAs ? { seenAs } : {}) };
}

export function probeCommand(): Command {
  const cmd = new Command("probe").description("connection probes for the lab (run inside pod namespaces)");
  cmd.command("serve")
    .description("accept TCP connections and echo UDP datagrams on the given ports until stopped")
    .option("--tcp <ports>", "comma-separated TCP ports", "")
    .option("--udp <ports>", "comma-separated UDP ports", "")
    .action(async (o: { tcp: string; udp: string }) => {
      for (const p of ports(o.tcp)) {
        net.createServer((s) => s.end(`trellis ${s.remoteAddress}\n`)).on("error", (e) => process.stderr.write(`tcp ${p}: ${e.message}\n`)).listen(p, "::");
      }
      for (const p of ports(o.udp)) {
        const s = dgram.createSocket({ type: "udp6", ipv6Only: false });
        s.on("message", (msg, rinfo) => s.send(msg, rinfo.port, rinfo.address));
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
    .requiredOption("--targets <json>", 'JSON list of {"ip","port","protocol"}')
    .option("--timeout-ms <ms>", "per attempt", "800")
    .action(async (o: { targets: string; timeoutMs: string }) => {
      const targets = JSON.parse(o.targets) as ProbeTarget[];
      const results = await Promise.all(targets.map((t) => probe(t, Number(o.timeoutMs))));
      process.stdout.write(JSON.stringify(results) + "\n");
    });
  return cmd;
}
