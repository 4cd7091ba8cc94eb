// A minimal CNI runtime, doing for the lab what libcni does for containerd or podman: read the
// node's .conflist, run each plugin from CNI_PATH with the CNI_* environment and the request
// configuration on stdin (inside the node's namespace, which is the pod's "host"), pass each
// plugin's result to the next as prevResult, cache the final result for DEL and CHECK, and run
// DEL in reverse order.
import * as fs from "node:fs";
import * as path from "node:path";
import { execIn, netnsPath } from "../kernel/netns.js";

export interface Attachment {
  containerId: string;
  /** Pod namespace name (under /run/netns). */
  netns: string;
  ifname: string;
  /** CNI_ARGS pairs. */
  args: Record<string, string>;
}

export class CniCallError extends Error {
  constructor(readonly plugin: string, readonly command: string, readonly code: number, msg: string) {
    super(msg);
    this.name = "CniCallError";
  }
}

interface Conflist {
  cniVersion: string;
  name: string;
  plugins: Array<Record<string, unknown> & { type: string }>;
}

export class LabRuntime {
  constructor(
    private readonly hostNetns: string,
    private readonly confDir: string,
    private readonly cacheDir: string,
    private readonly cniPath: readonly string[],
  ) {}

  private conflist(): Conflist {
    const files = fs.readdirSync(this.confDir).filter((f) => f.endsWith(".conflist")).sort();
    if (files.length === 0) throw new Error(`no .conflist in ${this.confDir}`);
    return JSON.parse(fs.readFileSync(path.join(this.confDir, files[0]!), "utf8")) as Conflist;
  }

  private cacheFile(net: string, a: Attachment): string {
    return path.join(this.cacheDir, `${net}-${a.containerId}-${a.ifname}.json`);
  }

  private findPlugin(type: string): string {
    for (const dir of this.cniPath) {
      const p = path.join(dir, type);
      if (fs.existsSync(p)) return p;
    }
    throw new Error(`plugin ${type} not found in ${this.cniPath.join(":")}`);
  }

  private invoke(command: string, plugin: Conflist["plugins"][number], list: Conflist, a: Attachment | undefined,
    extra: Record<string, unknown>): Record<string, unknown> | undefined {
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin",
      CNI_COMMAND: command,
      CNI_PATH: this.cniPath.join(":"),
      CNI_CONTAINERID: a?.containerId ?? "",
      CNI_NETNS: a ? netnsPath(a.netns) : "",
      CNI_IFNAME: a?.ifname ?? "",
      CNI_ARGS: a ? Object.entries(a.args).map(([k, v]) => `${k}=${v}`).join(";") : "",
    };
    const stdin = JSON.stringify({ ...plugin, name: list.name, cniVersion: list.cniVersion, ...extra });
    const r = execIn(this.hostNetns, this.findPlugin(plugin.type), [], { env, input: stdin });
    if (r.code !== 0) {
      let code = -1;
      let msg = r.stderr.trim() || `exit code ${r.code}`;
      try {
        const e = JSON.parse(r.stdout) as { code: number; msg: string; details?: string };
        code = e.code;
        msg = e.details ? `${e.msg}: ${e.details}` : e.msg;
      } catch {
        // no error JSON: keep stderr
      }
      throw new CniCallError(plugin.type, command, code, `${plugin.type} ${command} failed (code ${code}): ${msg}`);
    }
    return command === "ADD" ? (JSON.parse(r.stdout) as Record<string, unknown>) : undefined;
  }

  add(a: Attachment): Record<string, unknown> {
    const list = this.conflist();
    let prev: Record<string, unknown> | undefined;
    for (const plugin of list.plugins) {
      prev = this.invoke("ADD", plugin, list, a, prev ? { prevResult: prev } : {});
    }
    fs.mkdirSync(this.cacheDir, { recursive: true });
    fs.writeFileSync(this.cacheFile(list.name, a), JSON.stringify(prev));
    return prev ?? {};
  }

  private cached(list: Conflist, a: Attachment): Record<string, unknown> | undefined {
    try {
      return JSON.parse(fs.readFileSync(this.cacheFile(list.name, a), "utf8")) as Record<string, unknown>;
    } catch {
      return undefined;
    }
  }

  del(a: Attachment): void {
    const list = this.conflist();
    const prev = this.cached(list, a);
    for (const plugin of [...list.plugins].reverse()) {
      this.invoke("DEL", plugin, list, a, prev ? { prevResult: prev } : {});
    }
    fs.rmSync(this.cacheFile(list.name, a), { force: true });
  }

  check(a: Attachment): void {
    const list = this.conflist();
    const prev = this.cached(list, a);
    if (!prev) throw new Error(`no cached result for ${a.containerId}/${a.ifname}: was it added?`);
    for (const plugin of list.plugins) this.invoke("CHECK", plugin, list, a, { prevResult: prev });
  }
}
