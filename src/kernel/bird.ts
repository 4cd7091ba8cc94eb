// BIRD 2, as the agent drives it: BIRD's own parser checks a config before it is used, the daemon
// is started once and then reconfigured in place (`birdc configure`: sessions stay up), and its
// state is read with `birdc show`. BIRD runs as its own daemon, so an agent restart leaves it —
// and the routes it installed — in place; the pid file says which process it is.
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { KernelError, runAsync } from "./exec.js";
import { processAlive } from "./netns.js";

export interface BirdFiles {
  dir: string;
  conf: string;
  ctl: string;
  pid: string;
  log: string;
}

export const birdFiles = (dir: string): BirdFiles => ({
  dir, conf: path.join(dir, "bird.conf"), ctl: path.join(dir, "bird.ctl"), pid: path.join(dir, "bird.pid"), log: path.join(dir, "bird.log"),
});

export interface BirdKernel {
  readonly files: BirdFiles;
  /** BIRD's own parser on a config file: undefined when BIRD takes it, else BIRD's message. */
  check(confFile: string): Promise<string | undefined>;
  /** The running BIRD's pid (pid file, process alive), or undefined. */
  pid(): number | undefined;
  /**
   * Starts BIRD on `files.conf`; resolves when its control socket answers. `recover`: BIRD ran
   * here before (its routes are in the kernel): start in graceful-restart recovery (`-R`), so that
   * peers keep its routes until it has sent them all again and the kernel keeps its own meanwhile.
   */
  start(recover?: boolean): Promise<number>;
  /** `birdc configure`: undefined when BIRD took the new config, else its message (the old one stays). */
  configure(): Promise<string | undefined>;
  /** `birdc show ...`: BIRD's answer as text. */
  show(args: readonly string[]): Promise<string>;
  /** `birdc down`: BIRD withdraws its routes (kernel and peers) and exits. */
  down(): Promise<void>;
}

const firstLines = (text: string): string => text.split("\n").map((l) => l.trim()).filter((l) => l && !/^BIRD [\d.]+ ready\.$/.test(l)).join("; ");

export class RealBirdKernel implements BirdKernel {
  readonly files: BirdFiles;

  constructor(dir: string) {
    this.files = birdFiles(dir);
  }

  async check(confFile: string): Promise<string | undefined> {
    try {
      await runAsync("bird", ["-p", "-c", confFile]);
      return undefined;
    } catch (e) {
      if (e instanceof KernelError) return firstLines(e.stderr || e.stdout) || `bird -p exited ${e.exitCode}`;
      throw e;
    }
  }

  pid(): number | undefined {
    try {
      const pid = Number(fs.readFileSync(this.files.pid, "utf8").trim());
      return Number.isInteger(pid) && pid > 0 && processAlive(pid) ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  async start(recover = false): Promise<number> {
    fs.rmSync(this.files.ctl, { force: true });
    fs.rmSync(this.files.pid, { force: true });
    // In the foreground, as a child of its own session: it outlives the agent (an agent restart
    // leaves it alone) and, while the agent runs, the agent reaps it when it ends.
    const out = fs.openSync(this.files.log, "a");
    try {
      const args = ["-f", ...(recover ? ["-R"] : []), "-c", this.files.conf, "-s", this.files.ctl, "-P", this.files.pid];
      const child = spawn("bird", args, { detached: true, stdio: ["ignore", out, out] });
      child.on("error", () => undefined);
      child.unref();
    } finally {
      fs.closeSync(out);
    }
    const deadline = Date.now() + 10_000;
    for (;;) {
      const pid = this.pid();
      if (pid !== undefined) {
        try {
          await this.show(["status"]);
          return pid;
        } catch {
          // not answering yet
        }
      }
      if (Date.now() > deadline) throw new Error(`BIRD did not come up (see ${this.files.log})`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  private async birdc(args: readonly string[]): Promise<string> {
    return (await runAsync("birdc", ["-s", this.files.ctl, ...args])).stdout;
  }

  async configure(): Promise<string | undefined> {
    const out = await this.birdc(["configure"]);
    return /Reconfigured|Reconfiguration in progress|Reconfiguration already in progress/.test(out) ? undefined : firstLines(out);
  }

  show(args: readonly string[]): Promise<string> {
    return this.birdc(["show", ...args]);
  }

  async down(): Promise<void> {
    const pid = this.pid();
    if (pid === undefined) return;
    await this.birdc(["down"]).catch(() => undefined);
    const deadline = Date.now() + 5_000;
    while (processAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    if (processAlive(pid)) process.kill(pid, "SIGKILL");
  }
}
