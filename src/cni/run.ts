// One CNI call of the trellis plugin, run in this process: by the executable itself when no agent
// serves it, and by the agent for each call a plugin forwards (server.ts). Both give the same
// environment, stdin and output streams, so both paths behave alike.
import * as fs from "node:fs";
import { RealPodKernel } from "../kernel/pod.js";
import { fileReader, trellisHandlers } from "./plugin.js";
import { runPlugin, type PluginIo } from "./skel.js";

/** Runs the call described by `io` and returns the exit code. `logPrefix` names who logs. */
export function runTrellis(io: PluginIo, logPrefix = `trellis[${process.pid}]`): number {
  // Runtimes keep a plugin's stderr only when it fails; `logFile` in the config keeps every line.
  let logFile: string | undefined;
  const readStdin = io.readStdin;
  const logged: PluginIo = {
    ...io,
    readStdin: () => {
      const text = readStdin();
      try {
        const f = (JSON.parse(text) as { logFile?: unknown }).logFile;
        if (typeof f === "string" && f.startsWith("/")) logFile = f;
      } catch {
        // the skeleton reports undecodable input
      }
      return text;
    },
    stderr: (t) => log(t.trimEnd()),
  };
  const log = (line: string): void => {
    const text = `${logPrefix} ${line}\n`;
    io.stderr(text);
    if (logFile) {
      try {
        fs.appendFileSync(logFile, `${new Date().toISOString()} ${text}`);
      } catch {
        // logging must never fail a pod
      }
    }
  };
  return runPlugin(logged, trellisHandlers({ kernel: new RealPodKernel(), env: io.env, log, readFile: fileReader() }));
}
