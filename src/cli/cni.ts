// `trellis cni serve`: answers the CNI plugin's forwarded calls on a node without the cluster
// agent (a single machine with a static subnet). The agent serves the same socket itself.
import { Command } from "commander";
import * as fs from "node:fs";
import { resolveGroup } from "../cni/peer.js";
import { runTrellis } from "../cni/run.js";
import { startCniServer, type CniServer, type CniServerOptions } from "../cni/server.js";
import { DEFAULT_AGENT_SOCKET } from "../cni/wire.js";

/** The help text of --cni-socket-group / --group, shared by `trellis agent` and `trellis cni serve`. */
export const SOCKET_GROUP_HELP =
  "let this group (name or GID) use the CNI socket besides root: directory 0750, socket 0660, and callers whose " +
  "primary or supplementary group it is are served. Membership is root-equivalent on this node (a call names the " +
  "plugins the agent runs and the files it writes). Default: root only (0700, 0600)";

/**
 * Starts serving CNI calls on `socketPath`; undefined (logged) when that is not possible — the
 * plugin then runs every call itself, so a node without the socket still gets its pods.
 * `group` (a name from /etc/group or a numeric GID) may use the socket besides root.
 */
export async function serveCniCalls(socketPath: string, log: (line: string) => void, group?: string, onCall?: CniServerOptions["onCall"]): Promise<CniServer | undefined> {
  try {
    const gid = group === undefined ? undefined : resolveGroup(group, /^\d+$/.test(group) ? "" : fs.readFileSync("/etc/group", "utf8"));
    const server = await startCniServer({ socketPath, run: (io) => runTrellis(io, `trellis[agent ${process.pid}]`), log, group: gid, ...(onCall ? { onCall } : {}) });
    log(`serving CNI calls on ${socketPath} (${gid === undefined ? "root only" : `root and group ${gid}`})`);
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
    .option("--cni-socket-group <group>", SOCKET_GROUP_HELP)
    .action(async (o: { socket: string; cniSocketGroup?: string }) => {
      const log = (line: string): void => void process.stderr.write(`${new Date().toISOString()} cni ${line}\n`);
      const server = await serveCniCalls(o.socket, log, o.cniSocketGroup);
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
