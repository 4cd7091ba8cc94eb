// A real, single-member etcd for integration tests: loopback only (127.0.0.1, ports the kernel
// picked as free), its data in a temporary directory, its log in a file there. `stop()` and
// `start()` again keep the data (to test clients across a server restart); `dispose()` kills it
// by its pid and removes the directory. Optional TLS with client certificates made by openssl.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as https from "node:https";
import * as http from "node:http";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";

const which = (cmd: string): string | undefined => {
  for (const dir of (process.env.PATH ?? "").split(":")) {
    const p = path.join(dir, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  return undefined;
};

/** Why etcd tests cannot run here, or false when they can. */
export function etcdSkip(): string | false {
  return which("etcd") ? false : "etcd is not installed (Debian: etcd-server)";
}

export function opensslSkip(): string | false {
  return which("openssl") ? false : "openssl is not installed";
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export interface TlsFiles { caFile: string; certFile: string; keyFile: string; serverCert: string; serverKey: string }

/** A CA, a server certificate for 127.0.0.1 and a client certificate, in `dir`. */
export function makeTlsFiles(dir: string): TlsFiles {
  const f = (n: string): string => path.join(dir, n);
  const ssl = (...args: string[]): void => {
    execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
  };
  ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=trellis-test-ca", "-keyout", f("ca.key"), "-out", f("ca.pem"));
  fs.writeFileSync(f("server.ext"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n");
  fs.writeFileSync(f("client.ext"), "extendedKeyUsage=clientAuth\n");
  for (const who of ["server", "client"]) {
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", `/CN=trellis-test-${who}`, "-keyout", f(`${who}.key`), "-out", f(`${who}.csr`));
    ssl("x509", "-req", "-in", f(`${who}.csr`), "-CA", f("ca.pem"), "-CAkey", f("ca.key"), "-CAcreateserial", "-days", "2",
      "-extfile", f(`${who}.ext`), "-out", f(`${who}.pem`));
  }
  return { caFile: f("ca.pem"), certFile: f("client.pem"), keyFile: f("client.key"), serverCert: f("server.pem"), serverKey: f("server.key") };
}

export class EtcdServer {
  readonly dir: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly tls: TlsFiles | undefined;
  private proc: ChildProcess | undefined;
  private exited: Promise<void> | undefined;

  private constructor(dir: string, clientPort: number, peerPort: number, tls: TlsFiles | undefined) {
    this.dir = dir;
    this.clientPort = clientPort;
    this.peerPort = peerPort;
    this.tls = tls;
  }

  /** Starts a fresh server; on failure nothing is left behind. */
  static async start(opts: { tls?: boolean } = {}): Promise<EtcdServer> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "trellis-etcd-"));
    let server: EtcdServer | undefined;
    try {
      const tls = opts.tls ? makeTlsFiles(dir) : undefined;
      server = new EtcdServer(dir, await freePort(), await freePort(), tls);
      await server.start();
      return server;
    } catch (e) {
      if (server) await server.dispose();
      else fs.rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  }

  get clientUrl(): string {
    return `${this.tls ? "https" : "http"}://127.0.0.1:${this.clientPort}`;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** Starts the process (again, on the same data) and waits until it answers /health. */
  async start(timeoutMs = 20_000): Promise<void> {
    if (this.proc) throw new Error("etcd already running");
    const peer = `http://127.0.0.1:${this.peerPort}`;
    const args = [
      "--name", "default", "--data-dir", path.join(this.dir, "data"),
      "--listen-client-urls", this.clientUrl, "--advertise-client-urls", this.clientUrl,
      "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", `default=${peer}`,
      "--initial-cluster-state", "new",
    ];
    if (this.tls) {
      args.push("--cert-file", this.tls.serverCert, "--key-file", this.tls.serverKey, "--client-cert-auth", "--trusted-ca-file", this.tls.caFile);
    }
    const log = fs.openSync(path.join(this.dir, "etcd.log"), "a");
    const proc = spawn("etcd", args, { stdio: ["ignore", log, log] });
    fs.closeSync(log);
    this.proc = proc;
    this.exited = new Promise((resolve) => proc.once("exit", () => resolve()));
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        this.proc = undefined;
        throw new Error(`etcd exited (${proc.exitCode ?? proc.signalCode}) while starting: ${this.logTail()}`);
      }
      if (await this.healthy()) return;
      if (Date.now() > deadline) throw new Error(`etcd not healthy within ${timeoutMs} ms: ${this.logTail()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  private healthy(): Promise<boolean> {
    return new Promise((resolve) => {
      const opts = { host: "127.0.0.1", port: this.clientPort, path: "/health", timeout: 1000 };
      const onRes = (res: http.IncomingMessage): void => {
        let body = "";
        res.on("data", (d: Buffer) => { body += d.toString(); });
        res.on("end", () => resolve(body.includes("\"true\"")));
      };
      const req = this.tls
        ? https.get({ ...opts, ca: fs.readFileSync(this.tls.caFile), cert: fs.readFileSync(this.tls.certFile), key: fs.readFileSync(this.tls.keyFile) }, onRes)
        : http.get(opts, onRes);
      req.on("error", () => resolve(false));
      req.on("timeout", () => req.destroy());
    });
  }

  logTail(): string {
    try {
      return fs.readFileSync(path.join(this.dir, "etcd.log"), "utf8").slice(-2000);
    } catch {
      return "(no log)";
    }
  }

  /** SIGTERM, then SIGKILL after 5 s; the data stays. */
  async stop(): Promise<void> {
    const proc = this.proc;
    if (!proc?.pid) return;
    if (proc.exitCode === null && proc.signalCode === null) {
      process.kill(proc.pid, "SIGTERM");
      const killer = setTimeout(() => {
        if (proc.exitCode === null && proc.signalCode === null && proc.pid) process.kill(proc.pid, "SIGKILL");
      }, 5000);
      await this.exited;
      clearTimeout(killer);
    }
    this.proc = undefined;
  }

  /** SIGSTOP: the server keeps its connections but answers nothing (a hung server, a dead path). */
  freeze(): void {
    if (this.proc?.pid) process.kill(this.proc.pid, "SIGSTOP");
  }

  /** SIGCONT after freeze(). */
  thaw(): void {
    if (this.proc?.pid) process.kill(this.proc.pid, "SIGCONT");
  }

  /** Kills the process by its pid (if running) and removes the data directory. */
  async dispose(): Promise<void> {
    const proc = this.proc;
    if (proc?.pid && proc.exitCode === null && proc.signalCode === null) {
      process.kill(proc.pid, "SIGKILL");
      await this.exited;
    }
    this.proc = undefined;
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** Synchronous last resort for process "exit" handlers. */
  killSync(): void {
    const proc = this.proc;
    if (proc?.pid && proc.exitCode === null && proc.signalCode === null) {
      try {
        process.kill(proc.pid, "SIGKILL");
      } catch {
        // gone
      }
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
