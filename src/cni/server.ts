// The agent's side of the plugin ↔ agent protocol (wire.ts): a unix socket, one CNI call per
// connection, each run by the same code the plugin executable runs (run.ts).
//
// Calls run one at a time: the handlers are synchronous (netlink, flock, file writes), so the
// event loop serialises them, exactly as the IPAM lock would serialise separate processes. A DEL
// that arrives while other calls wait is handed back to the plugin (see below).
// A call from another network namespace is declined: the host side of a pod must be made in the
// namespace the runtime called the plugin in, and the agent only knows its own.
//
// The socket is a trust boundary (the agent is root): its directory and file modes admit root only,
// or root and one group (socket-dir.ts), and every connection's peer credentials are read from
// the kernel and checked before anything of its call is run (peer.ts). A refused caller gets a CNI
// error (code 104) naming why, and the refusal is logged with its pid, uid and gid.
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { CniError, ErrorCode, errorJson } from "./errors.js";
import { connectionPeer, describePeer, peerDecision, type PeerCredentials } from "./peer.js";
import type { PluginIo } from "./skel.js";
import { prepareSocketDir, secureSocketFile, socketModes } from "./socket-dir.js";
import { decodeRequest, MAX_REQUEST_BYTES, requestedVersion, WIRE_VERSION, type WireReply } from "./wire.js";

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
  /** The group (gid) that may use the socket besides root: dir 0750, socket 0660. Default: root only. */
  group?: number;
  /**
   * The peer of an accepted connection. Default: what the kernel says (SO_PEERCRED and
   * SO_PEERGROUPS through libc), which needs the compiled executable; under Node every call is then
   * refused. Unit tests give their own.
   */
  peerCredentials?: (conn: net.Socket) => PeerCredentials | { error: string };
  /**
   * Metrics: each call's CNI command (as sent; "" when unreadable), its result (ok, error: the
   * call ran and failed, fallback: handed back to the plugin, refused: the caller may not use the
   * socket) and the seconds the agent spent on it.
   */
  onCall?(command: string, result: "ok" | "error" | "fallback" | "refused", seconds: number): void;
}

export interface CniServer {
  readonly socketPath: string;
  /** Calls served so far (forwarded calls that ran, whatever their outcome). */
  readonly served: number;
  /** Connections refused because of who the peer is (or because that could not be told). */
  readonly refused: number;
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

/** The answer to a caller the socket does not admit: a CNI error in its config's version. */
export function refusal(why: string, requestText: string): WireReply {
  const req = decodeRequest(requestText);
  const version = "error" in req ? "1.1.0" : requestedVersion(req.stdin, "1.1.0");
  const err = new CniError(ErrorCode.NotPermitted, "the trellis agent refused the call: the caller may not use its socket", why);
  return { v: WIRE_VERSION, code: 1, stdout: JSON.stringify(errorJson(err, version)) + "\n", stderr: `trellis agent refused the call: ${why}\n` };
}

/**
 * Listens on `socketPath` (mode 0600 in a 0700 directory: only root may ask for pods; with `group`,
 * 0660 in 0750). A stale socket file left by a process that died is replaced; a live one is not
 * taken over.
 */
export async function startCniServer(opts: CniServerOptions): Promise<CniServer> {
  const ownNetns = opts.netns ?? fs.readlinkSync("/proc/thread-self/ns/net");
  const modes = socketModes(opts.group);
  prepareSocketDir(path.dirname(opts.socketPath), modes, opts.log);
  const existing = fs.lstatSync(opts.socketPath, { throwIfNoEntry: false });
  if (existing) {
    if (!existing.isSocket()) throw new Error(`${opts.socketPath} exists and is not a socket; not replacing it`);
    if (await answering(opts.socketPath)) throw new Error(`cni socket ${opts.socketPath} is already served by another process`);
    fs.rmSync(opts.socketPath, { force: true });
  }
  const peerOf = opts.peerCredentials ?? connectionPeer;
  let served = 0;
  let refused = 0;
  let open = 0;
  const server = net.createServer({ allowHalfOpen: true }, (conn) => {
    // Who is calling, as the kernel recorded it at connect(2); decided before a byte is read.
    // A caller that cannot be identified (no descriptor, no FFI) is not served either; it is told
    // to run the call itself, with its own privileges, so pods still start should that ever happen.
    const peer = peerOf(conn);
    const decision = "error" in peer ? { allowed: false as const, why: `cannot tell who the caller is: ${peer.error}` } : peerDecision(peer, opts.group);
    if (!decision.allowed) {
      refused++;
      opts.log(`cni: refused a call from ${"error" in peer ? "an unidentified peer" : describePeer(peer)}: ${decision.why}`);
    } else {
      open++;
      conn.once("close", () => open--);
    }
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
      const started = performance.now();
      const text = Buffer.concat(chunks).toString("utf8");
      const req = decodeRequest(text);
      const command = "error" in req ? "" : req.env.CNI_COMMAND ?? "";
      const done = (r: WireReply, result: "ok" | "error" | "fallback" | "refused"): void => {
        reply(r);
        opts.onCall?.(command, result, (performance.now() - started) / 1000);
      };
      if (!decision.allowed) {
        done("error" in peer ? { v: WIRE_VERSION, fallback: decision.why } : refusal(decision.why, text), "refused");
        return;
      }
      if ("error" in req) {
        opts.log(`cni: bad request: ${req.error}`);
        done({ v: WIRE_VERSION, fallback: req.error }, "fallback");
        return;
      }
      if (req.netns !== ownNetns) {
        done({ v: WIRE_VERSION, fallback: `caller's network namespace ${req.netns} is not the agent's (${ownNetns})` }, "fallback");
        return;
      }
      // A DEL spends most of its time waiting for the kernel's veth teardown (an RCU grace period),
      // which would hold up every call queued behind it; with others waiting, the plugin's own
      // process does it instead, in parallel with them.
      if (req.env.CNI_COMMAND === "DEL" && open > 1) {
        done({ v: WIRE_VERSION, fallback: `busy: ${open - 1} other call(s) waiting; DEL runs in the plugin's own process` }, "fallback");
        return;
      }
      served++;
      const r = serveCall(req, opts.run);
      done(r, "code" in r && r.code === 0 ? "ok" : "error");
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
  secureSocketFile(opts.socketPath, modes);
  server.on("error", (e) => opts.log(`cni: server: ${e.message}`));
  return {
    socketPath: opts.socketPath,
    get served() {
      return served;
    },
    get refused() {
      return refused;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // No successor can own the path while we listen (a live socket is never taken over).
        fs.rmSync(opts.socketPath, { force: true });
      }),
  };
}
