// `trellis ui`'s HTTP server: the page, its script, the graph library, a JSON snapshot of the
// topology (/api/topology) and server-sent events (/api/events) that carry a new snapshot after
// every datastore change. Read-only: it never writes to the datastore.
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { PAGE_HTML, PAGE_JS } from "./page.js";
import type { Topology } from "./topology.js";

export interface UiServerOptions {
  host: string;
  port: number;
  /** The current topology, computed when asked. */
  snapshot(): Topology;
  cytoscapeJs: string;
  log(line: string): void;
}

export interface UiServer {
  url: string;
  /** Sends a new snapshot to every open event stream. */
  publish(): void;
  close(): Promise<void>;
}

const sseFrame = (t: Topology): string => `event: topology\ndata: ${JSON.stringify(t)}\n\n`;

export async function serveUi(o: UiServerOptions): Promise<UiServer> {
  const streams = new Set<http.ServerResponse>();
  const send = (res: http.ServerResponse, status: number, type: string, body: string): void => {
    res.writeHead(status, { "content-type": type, "cache-control": "no-store", "x-content-type-options": "nosniff" });
    res.end(body);
  };
  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://ui").pathname;
    if (req.method !== "GET" && req.method !== "HEAD") return send(res, 405, "text/plain", "only GET\n");
    switch (path) {
      case "/":
      case "/index.html":
        return send(res, 200, "text/html; charset=utf-8", PAGE_HTML);
      case "/app.js":
        return send(res, 200, "text/javascript; charset=utf-8", PAGE_JS);
      case "/vendor/cytoscape.min.js":
        return send(res, 200, "text/javascript; charset=utf-8", o.cytoscapeJs);
      case "/api/topology":
        return send(res, 200, "application/json", JSON.stringify(o.snapshot()) + "\n");
      case "/api/events": {
        res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store", connection: "keep-alive" });
        res.write(sseFrame(o.snapshot()));
        streams.add(res);
        req.on("close", () => streams.delete(res));
        return;
      }
      default:
        return send(res, 404, "text/plain", `no such page: ${path}\n`);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e: NodeJS.ErrnoException) => reject(new Error(`cannot listen on ${o.host}:${o.port}: ${e.code ?? e.message}`, { cause: e })));
    server.listen(o.port, o.host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${host}:${addr.port}/`,
    publish() {
      if (streams.size === 0) return;
      const frame = sseFrame(o.snapshot());
      for (const res of streams) res.write(frame);
    },
    close: () => new Promise<void>((resolve) => {
      for (const res of streams) res.end();
      streams.clear();
      server.close(() => resolve());
      server.closeAllConnections?.();
    }),
  };
}
