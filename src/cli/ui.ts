// `trellis ui`: serves the topology page (src/ui) for the datastore the global options name.
import { execFileSync } from "node:child_process";
import { Command } from "commander";
import { openDatastore } from "../datastore/open.js";
import { loadCytoscape } from "../ui/assets.js";
import { serveUi } from "../ui/server.js";
import { TopologySource } from "../ui/source.js";
import { topologyFromObjects } from "../ui/topology.js";
import { datastoreUrl, storeOptions, type GlobalOptions } from "./cluster.js";

export const DEFAULT_UI_LISTEN = "127.0.0.1:8088";

function parseListen(addr: string): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:]+\]|[0-9.]+|localhost):(\d{1,5})$/.exec(addr);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new Error(`--listen ${JSON.stringify(addr)}: expected HOST:PORT, e.g. ${DEFAULT_UI_LISTEN}`);
  return { host: m[1]!.replace(/^\[|\]$/g, ""), port };
}

/** The network namespace this process runs in, when it has a name (`ip netns identify`). */
function namedNetns(): string | undefined {
  try {
    return execFileSync("ip", ["netns", "identify", String(process.pid)], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim() || undefined;
  } catch {
    return undefined;
  }
}

export function uiCommand(globals: () => GlobalOptions): Command {
  return new Command("ui")
    .description("serve a live topology page (nodes, links, pods, BGP sessions) over HTTP; loopback only by default")
    .option("--listen <host:port>", "where to serve the page (0.0.0.0:PORT exposes it to the network: it has no authentication)", DEFAULT_UI_LISTEN)
    .action(async (o: { listen: string }) => {
      const { host, port } = parseListen(o.listen);
      const log = (line: string): void => {
        process.stderr.write(`${new Date().toISOString()} ui ${line}\n`);
      };
      const cytoscapeJs = await loadCytoscape();
      const ac = new AbortController();
      const store = await openDatastore(datastoreUrl(globals()), storeOptions(globals(), log));
      let server: Awaited<ReturnType<typeof serveUi>> | undefined;
      const source = new TopologySource({ store, signal: ac.signal, log, onChange: () => server?.publish() });
      try {
        await source.start();
        server = await serveUi({ host, port, cytoscapeJs, log, snapshot: () => topologyFromObjects(source.objects(), Date.now()) });
      } catch (e) {
        ac.abort();
        await store.close();
        throw e;
      }
      process.stdout.write(`trellis ui: serving ${server.url} (datastore ${store.kind}); Ctrl-C to stop\n`);
      const ns = process.env.TRELLIS_IN_LAB === "1" ? namedNetns() : undefined;
      if (ns) {
        process.stdout.write(`note: this lab's datastore lives in its control-plane namespace ${ns}, so the server runs there and ${server.url} is reachable only from it,\n` +
          `  e.g. "ip netns exec ${ns} curl -s ${server.url}api/topology" or a browser started with "ip netns exec ${ns}"\n`);
      }
      await new Promise<void>((resolve) => {
        for (const sig of ["SIGTERM", "SIGINT"] as const) process.once(sig, () => resolve());
      });
      ac.abort();
      await server.close();
      await store.close();
    });
}
