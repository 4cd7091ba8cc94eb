// Entry point of the trellis CNI plugin executable.
import * as fs from "node:fs";
import { RealPodKernel } from "../kernel/pod.js";
import { fileReader, trellisHandlers } from "./plugin.js";
import { processIo } from "./process-io.js";
import { runPlugin } from "./skel.js";

const io = processIo();
// Runtimes keep a plugin's stderr only when it fails; `logFile` in the config keeps every line.
let logFile: string | undefined;
const readStdin = io.readStdin;
io.readStdin = () => {
  const text = readStdin();
  try {
    const f = (JSON.parse(text) as { logFile?: unknown }).logFile;
    if (typeof f === "string" && f.startsWith("/")) logFile = f;
  } catch {
    // the skeleton reports undecodable input
  }
  return text;
};
const log = (line: string): void => {
  const text = `trellis[${process.pid}] ${line}\n`;
  io.stderr(text);
  if (logFile) {
    try {
      fs.appendFileSync(logFile, `${new Date().toISOString()} ${text}`);
    } catch {
      // logging must never fail a pod
    }
  }
};

process.exitCode = runPlugin({ ...io, stderr: (t) => log(t.trimEnd()) }, trellisHandlers({
  kernel: new RealPodKernel(),
  env: io.env,
  log,
  readFile: fileReader(),
}));
