// The metrics endpoint: GET /metrics (Prometheus text format), and /healthz and /readyz with the
// same answers as the health endpoint (src/agent/health.ts), so one port serves a scraper and a
// probe. Loopback by default; "" turns it off.
import type * as http from "node:http";
import type { AgentHealth } from "../agent/agent.js";
import { healthAnswer, listenHttp } from "../agent/health.js";

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
