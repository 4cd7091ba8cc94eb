// The agent's side of the plugin ↔ agent protocol (wire.ts): a unix socket, one CNI call per
// connection, each run by the same code the plugin executable runs (run.ts).
//
// Calls run one at a time: the handlers are synchronous (netlink, flock, file writes), so the
// event loop serialises them, exactly as the IPAM lock would serialise separate processes. A DEL
// that arrives while other calls wait is handed back to the plugin (see below).
// A call from another network namespace is declined: the host side of a pod must be made in the
// namespace the runtime called the plugin in, and the agent only knows its own.
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import type { PluginIo } from "./skel.js";
import { decodeRequest, MAX_REQUEST_BYTES, WIRE_VERSION, type WireReply } from "./wire.js";

export interface CniCall {
  env: Record<string, string>;
  stdin: string;
}

export interface CniServerOptions {
  socketPath: string;
  /** Runs one call; returns its exit code after writing through `io`. */
  run(io: PluginIo): number;
  log(line: string): void;
  /** This process's network namespace identity; default: read from /proc. */
  netns?: string;
}

export interface CniServer {
  readonly socketPath: string;
  /** Calls served so far (forwarded calls that ran, whatever their outcome). */
  readonly served: number;
  close(): Promise<void>;
}

/** Runs one decoded call through `run` with buffered output. */
export function serveCall(call: CniCall, run: (io: PluginIo) => number): WireReply {
  let stdout = "";
  let stderr = "";
  const io: PluginIo = {
    env: call.env,
    readStdin: () => call.stdin,
    stdout: (t) => (stdout += t),
    stderr: (t) => (stderr += t),
  };
  const code = run(io);
  return { v: WIRE_VERSION, code, stdout, stderr };
}

/** True when something answers on `socketPath` (another agent is serving it). */
function answering(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createConnection(socketPath);
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

/**
 * Listens on `socketPath` (mode 0600 in a 0700 directory: only root may ask for pods). A stale
 * socket file left by a process that died is replaced; a live one is not taken over.
 */
export async function startCniServer(opts: CniServerOptions): Promise<CniServer> {
  const ownNetns = opts.netns ?? fs.readlinkSync("/proc/thread-self/ns/net");
  fs.mkdirSync(path.dirname(opts.socketPath), { recursive: true, mode: 0o700 });
  if (fs.existsSync(opts.socketPath)) {
    if (await answering(opts.socketPath)) throw new Error(`cni socket ${opts.socketPath} is already served by another process`);
    fs.rmSync(opts.socketPath, { force: true });
  }
  let served = 0;
  let open = 0;
  const server = net.createServer({ allowHalfOpen: true }, (conn) => {
    open++;
    conn.once("close", () => open--);
    const chunks: Buffer[] = [];
    let size = 0;
    const reply = (r: WireReply): void => {
      conn.end(JSON.stringify(r));
    };
    conn.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_REQUEST_BYTES) {
        opts.log(`cni: request over ${MAX_REQUEST_BYTES} bytes refused`);
        conn.destroy();
        return;
      }
      chunks.push(chunk);
    });
    conn.on("end", () => {
      const req = decodeRequest(Buffer.concat(chunks).toString("utf8"));
      if ("error" in req) {
        opts.log(`cni: bad request: ${req.error}`);
        reply({ v: WIRE_VERSION, fallback: req.error });
        return;
      }
      if (req.netns !== ownNetns) {
        reply({ v: WIRE_VERSION, fallback: `caller's network namespace ${req.netns} is not the agent's (${ownNetns})` });
        return;
      }
      // A DEL spends most of its time waiting for the kernel's veth teardown (an RCU grace period),
      // which would hold up every call queued behind it; with others waiting, the plugin's own
      // process does it instead, in parallel with them.
      if (req.env.CNI_COMMAND === "DEL" && open > 1) {
        reply({ v: WIRE_VERSION, fallback: `busy: ${open - 1} other call(s) waiting; DEL runs in the plugin's own process` });
        return;
      }
      served++;
      reply(serveCall(req, opts.run));
    });
    conn.on("error", (e) => opts.log(`cni: connection: ${e.message}`));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.socketPath, () => {
      server.off("error", reject);
      resolve();
    });
  });
  fs.chmodSync(opts.socketPath, 0o600);
  server.on("error", (e) => opts.log(`cni: server: ${e.message}`));
  return {
    socketPath: opts.socketPath,
    get served() {
      return served;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // No successor can own the path while we listen (a live socket is never taken over).
        fs.rmSync(opts.socketPath, { force: true });
      }),
  };
}
