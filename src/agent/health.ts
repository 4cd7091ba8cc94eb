// The agent's health endpoints, for kubelet's probes and for people: GET /healthz (the agent's
// loops turn) and GET /readyz (pods on this node can be networked now). 200 or 503, with the
// reason as the body. Bound to loopback by default; `trellis agent probe` is the client the
// DaemonSet's exec probes run.
import * as http from "node:http";
import type { AgentHealth } from "./agent.js";

export const DEFAULT_HEALTH_ADDR = "127.0.0.1:9099";

export function parseListenAddr(addr: string, flag = "--health-addr"): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:]+\]|[0-9.]+|localhost):(\d{1,5})$/.exec(addr);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 0 || port > 65535) throw new Error(`${flag} ${JSON.stringify(addr)}: expected HOST:PORT, e.g. 127.0.0.1:${flag === "--health-addr" ? DEFAULT_HEALTH_ADDR.split(":")[1] : "9091"}`);
  return { host: m[1]!.replace(/^\[|\]$/g, ""), port };
}

/**
 * The answer to GET /healthz or /readyz (200 or 503 with the reason); undefined for any other
 * request. Pure: the health server and the metrics server both answer with it.
 */
export function healthAnswer(method: string | undefined, url: string | undefined, h: AgentHealth): { status: number; body: string } | undefined {
  const path = (url ?? "").split("?")[0];
  const ok = path === "/healthz" ? h.live : path === "/readyz" ? h.ready : undefined;
  if (ok === undefined || method !== "GET") return undefined;
  return { status: ok ? 200 : 503, body: `${ok ? "ok" : "not ok"}: ${h.reason}\n` };
}

export async function serveHealth(addr: string, health: () => AgentHealth): Promise<http.Server> {
  return listenHttp("--health-addr", addr, (req, res) => {
    const a = healthAnswer(req.method, req.url, health());
    if (!a) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found: GET /healthz or /readyz\n");
      return;
    }
    res.writeHead(a.status, { "content-type": "text/plain" }).end(a.body);
  });
}

/** Listens on `addr` (HOST:PORT); errors name the flag that gave the address. */
export async function listenHttp(flag: string, addr: string, handler: http.RequestListener): Promise<http.Server> {
  const { host, port } = parseListenAddr(addr, flag);
  const server = http.createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e) => reject(new Error(`${flag} ${addr}: ${(e as Error).message}`)));
    server.listen(port, host, () => resolve());
  });
  return server;
}

/** `trellis agent probe`: asks a running agent; resolves with [ok, what it said]. */
export async function probeHealth(addr: string, which: "live" | "ready", timeoutMs = 5000): Promise<[boolean, string]> {
  const { host, port } = parseListenAddr(addr);
  return new Promise((resolve) => {
    const req = http.get({ host, port, path: which === "live" ? "/healthz" : "/readyz", timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve([res.statusCode === 200, body.trim() || `HTTP ${res.statusCode}`]));
    });
    req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on("error", (e) => resolve([false, `agent health endpoint ${addr}: ${e.message}`]));
  });
}
