// The real process as a PluginIo: environment, stdin read synchronously, and output written with
// writeSync so that nothing is lost when the process exits right after.
import * as fs from "node:fs";
import type { PluginIo } from "./skel.js";

function writeAll(fd: number, text: string): void {
  const buf = Buffer.from(text);
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(fd, buf, off);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EAGAIN") continue;
      throw e;
    }
  }
}

export function processIo(): PluginIo {
  return {
    env: process.env,
    readStdin: () => fs.readFileSync(0, "utf8"),
    stdout: (t) => writeAll(1, t),
    stderr: (t) => {
      try {
        writeAll(2, t);
      } catch {
        // stderr closed: logs are best-effort, the result on stdout is what matters.
      }
    },
  };
}
