// The agent's health endpoints, for kubelet's probes and for people: GET /healthz (the agent's
// loops turn) and GET /readyz (pods on this node can be networked now). 200 or 503, with the
// reason as the body. Bound to loopback by default; `trellis agent probe` is the client the
// DaemonSet's exec probes run.
import * as http from "node:http";
import type { AgentHealth } from "./agent.js";

export const DEFAULT_HEALTH_ADDR = "127.0.0.1:9099";

export function parseListenAddr(addr: string): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:]+\]|[0-9.]+|localhost):(\d{1,5})$/.exec(addr);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 0 || port > 65535) throw new Error(`--health-addr ${JSON.stringify(addr)}: expected HOST:PORT, e.g. ${DEFAULT_HEALTH_ADDR}`);
  return { host: m[1]!.replace(/^\[|\]$/g, ""), port };
}

export async function serveHealth(addr: string, health: () => AgentHealth): Promise<http.Server> {
  const { host, port } = parseListenAddr(addr);
  const server = http.createServer((req, res) => {
    const h = health();
    const path = (req.url ?? "").split("?")[0];
    const ok = path === "/healthz" ? h.live : path === "/readyz" ? h.ready : undefined;
    if (ok === undefined || req.method !== "GET") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found: GET /healthz or /readyz\n");
      return;
    }
    res.writeHead(ok ? 200 : 503, { "content-type": "text/plain" }).end(`${ok ? "ok" : "not ok"}: ${h.reason}\n`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e) => reject(new Error(`--health-addr ${addr}: ${(e as Error).message}`)));
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
