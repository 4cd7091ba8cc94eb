// The metrics endpoint: GET /metrics (Prometheus text format), and /healthz and /readyz with the
// same answers as the health endpoint (src/agent/health.ts), so one port serves a scraper and a
// probe. Loopback by default; "" turns it off.
import * as http from "node:http";
import type { AgentHealth } from "../agent/agent.js";
import { healthAnswer, listenHttp, parseListenAddr } from "../agent/health.js";

export const DEFAULT_METRICS_ADDR = "127.0.0.1:9091";

export interface MetricsText {
  text(): Promise<string>;
  readonly contentType: string;
}

export function metricsHandler(metrics: MetricsText, health: () => AgentHealth): http.RequestListener {
  return (req, res) => {
    const path = (req.url ?? "").split("?")[0];
    if (req.method === "GET" && path === "/metrics") {
      metrics.text().then((body) => {
        res.writeHead(200, { "content-type": metrics.contentType }).end(body);
      }, (e: Error) => {
        res.writeHead(500, { "content-type": "text/plain" }).end(`cannot collect metrics: ${e.message}\n`);
      });
      return;
    }
    const a = healthAnswer(req.method, req.url, health());
    if (!a) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found: GET /metrics, /healthz or /readyz\n");
      return;
    }
    res.writeHead(a.status, { "content-type": "text/plain" }).end(a.body);
  };
}

export function serveMetrics(addr: string, metrics: MetricsText, health: () => AgentHealth): Promise<http.Server> {
  return listenHttp("--metrics-addr", addr, metricsHandler(metrics, health));
}

/** `trellis agent metrics`: the text a running agent's /metrics serves; a non-200 answer or no answer is an error. */
export function fetchMetrics(addr: string, timeoutMs = 10_000): Promise<string> {
  const { host, port } = parseListenAddr(addr, "--metrics-addr");
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path: "/metrics", timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`agent metrics endpoint ${addr}: HTTP ${res.statusCode}: ${body.trim()}`))));
    });
    req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on("error", (e) => reject(new Error(`agent metrics endpoint ${addr}: ${e.message}`)));
  });
}
