// TCP prober for the policy benchmark, run inside a lab pod's namespace
// (`nsenter --net=<pod netns> -- node dist/bench/policy-prober.js`). It reads one JSON command per
// line on stdin and answers with JSON lines on stdout, so the benchmark can keep it running and
// time events against the wall clock (Date.now(): the clock of the agents' log lines).
//
//   {"op":"untilOpen","ip","port"}    a new connection attempt every `everyMs` (default 10) while
//                                     earlier ones are still waiting; each gives up after
//                                     `attemptMs` (default 250). Prints {"event":"armed"} once an
//                                     attempt has failed (the path is closed now), then
//                                     {"event":"open","atMs","startedMs"} for the first attempt that
//                                     connects. A drop gives no answer, so a new SYN every 10 ms
//                                     (not the kernel's 1 s retransmission) bounds the resolution.
//   {"op":"untilClosed","ip","port"}  attempts one after the other until one fails:
//                                     {"event":"closed","atMs"}.
//   {"op":"rr","ip","port","count"}   `count` times, one after the other: connect, read the probe
//                                     server's line until it closes. {"event":"rr","us":[...],"failed":n}
//                                     with each transaction's time in µs (every one is a new connection).
//   {"op":"exit"}
import * as net from "node:net";
import { createInterface } from "node:readline";

interface Command {
  op: "untilOpen" | "untilClosed" | "rr" | "exit";
  ip: string;
  port: number;
  count?: number;
  everyMs?: number;
  attemptMs?: number;
  timeoutMs?: number;
}

const say = (o: Record<string, unknown>): void => {
  process.stdout.write(JSON.stringify(o) + "\n");
};

/** One connection attempt: resolves true when connected, false on timeout or error. */
function attempt(ip: string, port: number, timeoutMs: number, sockets: Set<net.Socket>): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: ip, port });
    sockets.add(s);
    const done = (ok: boolean): void => {
      sockets.delete(s);
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
  });
}

function untilOpen(c: Command): Promise<void> {
  const every = c.everyMs ?? 10;
  const attemptMs = c.attemptMs ?? 250;
  const deadline = Date.now() + (c.timeoutMs ?? 120_000);
  const sockets = new Set<net.Socket>();
  return new Promise((resolve) => {
    let armed = false;
    let finished = false;
    const finish = (o: Record<string, unknown>): void => {
      if (finished) return;
      finished = true;
      clearInterval(timer);
      for (const s of sockets) s.destroy();
      say(o);
      resolve();
    };
    const fire = (): void => {
      if (Date.now() > deadline) return finish({ event: "timeout" });
      const startedMs = Date.now();
      void attempt(c.ip, c.port, attemptMs, sockets).then((ok) => {
        if (finished) return;
        if (ok) return finish({ event: "open", atMs: Date.now(), startedMs, armed });
        if (!armed) {
          armed = true;
          say({ event: "armed", atMs: Date.now() });
        }
      });
    };
    const timer = setInterval(fire, every);
    fire();
  });
}

async function untilClosed(c: Command): Promise<void> {
  const deadline = Date.now() + (c.timeoutMs ?? 120_000);
  const sockets = new Set<net.Socket>();
  while (Date.now() < deadline) {
    const startedMs = Date.now();
    if (!(await attempt(c.ip, c.port, c.attemptMs ?? 250, sockets))) return say({ event: "closed", atMs: Date.now(), startedMs });
    await new Promise((r) => setTimeout(r, c.everyMs ?? 20));
  }
  say({ event: "timeout" });
}

/** Connect, read until the server closes; µs, or undefined on failure. */
function transaction(ip: string, port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const t = process.hrtime.bigint();
    const s = net.connect({ host: ip, port });
    let got = 0;
    s.setTimeout(2000, () => {
      s.destroy();
      resolve(undefined);
    });
    s.on("data", (d: Buffer) => (got += d.length));
    s.once("end", () => {
      const us = Number(process.hrtime.bigint() - t) / 1000;
      s.destroy();
      resolve(got > 0 ? us : undefined);
    });
    s.once("error", () => resolve(undefined));
  });
}

async function rr(c: Command): Promise<void> {
  const us: number[] = [];
  let failed = 0;
  for (let i = 0; i < (c.count ?? 100); i++) {
    const r = await transaction(c.ip, c.port);
    if (r === undefined) failed++;
    else us.push(Math.round(r * 10) / 10);
  }
  say({ event: "rr", us, failed });
}

const lines = createInterface({ input: process.stdin });
let queue = Promise.resolve();
lines.on("line", (line) => {
  queue = queue.then(async () => {
    let c: Command;
    try {
      c = JSON.parse(line) as Command;
    } catch {
      return say({ event: "error", message: `not JSON: ${line}` });
    }
    if (c.op === "untilOpen") await untilOpen(c);
    else if (c.op === "untilClosed") await untilClosed(c);
    else if (c.op === "rr") await rr(c);
    else if (c.op === "exit") process.exit(0);
    else say({ event: "error", message: `unknown op ${String(c.op)}` });
  });
});
lines.on("close", () => process.exit(0));
say({ event: "ready" });
