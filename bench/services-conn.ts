// The two ends of the Services benchmark's connections (services.ts part 2), each run inside one
// of the benchmark's network namespaces (`nsenter --net=<ns> -- node dist/bench/services-conn.js`):
//
//   server PORT   accepts on 0.0.0.0:PORT; on a connection's first data it answers
//                 "OK <its own address>\n" (the endpoint address the connection was DNATed to).
//   client        reads one JSON command per line on stdin, answers with one JSON line:
//     {"op":"rr","ip","port","count"}  `count` times, one after the other: a new TCP connection,
//                 "GET\n", read the answer line, close with RST (SO_LINGER 0, so neither end keeps
//                 TIME_WAIT sockets and ports do not run out). Answers
//                 {"event":"rr","us":[per connection, connect to answer, µs],"elapsedUs","failed",
//                  "servers":{address:count}}.
//     {"op":"exit"}
// Every connection is new, so its first packet goes through the namespace's nat OUTPUT hook: the
// Service lookup and DNAT being measured.
import * as net from "node:net";
import { createInterface } from "node:readline";

const say = (o: Record<string, unknown>): void => {
  process.stdout.write(JSON.stringify(o) + "\n");
};

function server(port: number): void {
  const srv = net.createServer((s) => {
    s.on("error", () => undefined);
    s.once("data", () => s.write(`OK ${s.localAddress ?? "?"}\n`));
  });
  srv.listen(port, "0.0.0.0", () => say({ event: "listening", port }));
}

/** One transaction; the answering address, or undefined on failure (error or 2 s timeout). */
function transaction(ip: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = net.connect({ host: ip, port, noDelay: true });
    let got = "";
    const done = (v: string | undefined): void => {
      s.removeAllListeners("data");
      s.resetAndDestroy();
      resolve(v);
    };
    s.setTimeout(2000, () => done(undefined));
    s.once("error", () => done(undefined));
    s.once("connect", () => s.write("GET\n"));
    s.setEncoding("utf8").on("data", (d: string) => {
      got += d;
      const nl = got.indexOf("\n");
      if (nl >= 0) done(got.slice(3, nl));
    });
  });
}

async function rr(ip: string, port: number, count: number): Promise<void> {
  const us: number[] = [];
  const servers: Record<string, number> = {};
  let failed = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    const t = process.hrtime.bigint();
    const who = await transaction(ip, port);
    if (who === undefined) {
      failed++;
      continue;
    }
    us.push(Number(process.hrtime.bigint() - t) / 1000);
    servers[who] = (servers[who] ?? 0) + 1;
  }
  say({ event: "rr", us: us.map((x) => Math.round(x * 10) / 10), elapsedUs: Number(process.hrtime.bigint() - t0) / 1000, failed, servers });
}

function client(): void {
  let queue = Promise.resolve();
  createInterface({ input: process.stdin }).on("line", (line) => {
    const c = JSON.parse(line) as { op: string; ip: string; port: number; count: number };
    queue = queue.then(async () => {
      if (c.op === "exit") process.exit(0);
      if (c.op === "rr") await rr(c.ip, c.port, c.count);
    });
  }).on("close", () => process.exit(0));
  say({ event: "ready" });
}

const [mode, port] = process.argv.slice(2);
if (mode === "server") server(Number(port));
else if (mode === "client") client();
else {
  console.error("usage: services-conn.js server PORT | client");
  process.exit(2);
}
