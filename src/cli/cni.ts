// `trellis cni serve`: answers the CNI plugin's forwarded calls on a node without the cluster
// agent (a single machine with a static subnet). The agent serves the same socket itself.
import { Command } from "commander";
import { runTrellis } from "../cni/run.js";
import { startCniServer, type CniServer } from "../cni/server.js";
import { DEFAULT_AGENT_SOCKET } from "../cni/wire.js";

/**
 * Starts serving CNI calls on `socketPath`; undefined (logged) when that is not possible — the
 * plugin then runs every call itself, so a node without the socket still gets its pods.
 */
export async function serveCniCalls(socketPath: string, log: (line: string) => void): Promise<CniServer | undefined> {
  try {
    const server = await startCniServer({ socketPath, run: (io) => runTrellis(io, `trellis[agent ${process.pid}]`), log });
    log(`serving CNI calls on ${socketPath}`);
    return server;
  } catch (e) {
    log(`not serving CNI calls: ${(e as Error).message}; the plugin will run them itself`);
    return undefined;
  }
}

export function cniCommand(): Command {
  const cni = new Command("cni").description("the CNI plugin's node-side service");
  cni
    .command("serve")
    .description("answer the trellis CNI plugin's calls on a unix socket until SIGTERM")
    .option("--socket <path>", "where to listen (the plugin's agentSocket)", DEFAULT_AGENT_SOCKET)
    .action(async (o: { socket: string }) => {
      const log = (line: string): void => void process.stderr.write(`${new Date().toISOString()} cni ${line}\n`);
      const server = await serveCniCalls(o.socket, log);
      if (!server) {
        process.exitCode = 1;
        return;
      }
      await new Promise<void>((resolve) => {
        for (const sig of ["SIGTERM", "SIGINT"] as const) process.once(sig, () => resolve());
      });
      await server.close();
      log(`stopped after ${server.served} call(s)`);
    });
  return cni;
}
