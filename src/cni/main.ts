// Entry point of the trellis CNI plugin executable.
//
// When the node's agent serves CNI calls (wire.ts), the executable only reads stdin, forwards the
// call and prints the answer; the plugin's code is loaded only when it must run the call itself.
// This file therefore imports nothing heavy at the top: each module loaded costs start-up time
// on every pod.
import { libcAvailable } from "../kernel/libc.js";
import { callAgent, ownNetns, readStdin, writeFd } from "./client.js";
import { CniError, ErrorCode, errorJson } from "./errors.js";
import { agentSocketFor, requestedVersion } from "./wire.js";

/** How long a forwarded call may take before the plugin gives up and reports "try again later". */
const AGENT_TIMEOUT_MS = 120_000;

// Through libc: touching process.stdout would load Node's stream machinery (≈ 4 ms).
function writeOut(fd: 1 | 2, text: string): void {
  if (text !== "") writeFd(fd, text);
}

/** The exit code when the agent answered (or failed half-way); undefined: run the call here. */
function viaAgent(env: Record<string, string | undefined>, stdin: string): number | undefined {
  const socket = agentSocketFor(stdin);
  if (!socket) return undefined;
  const plain: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined) plain[k] = v;
  const outcome = callAgent(socket, { env: plain, stdin, netns: ownNetns() }, AGENT_TIMEOUT_MS);
  switch (outcome.kind) {
    case "unavailable":
      return undefined;
    case "reply":
      writeOut(1, outcome.stdout);
      writeOut(2, outcome.stderr);
      return outcome.code;
    case "failed": {
      // The skeleton's error shape, in the config's version (LATEST when it names none).
      const error = errorJson(new CniError(ErrorCode.TryAgainLater, "the trellis agent did not complete the call", outcome.why), requestedVersion(stdin, "1.1.0"));
      writeOut(1, JSON.stringify(error) + "\n");
      writeOut(2, `trellis[${process.pid}] ${env.CNI_COMMAND ?? "?"} failed: [11] ${error.msg} (${outcome.why})\n`);
      return 1;
    }
  }
}

function main(): void {
  const env = process.env;
  // VERSION (and no command at all) needs no configuration: answered here, without reading stdin.
  const forwardable = libcAvailable() && env.CNI_COMMAND !== undefined && env.CNI_COMMAND !== "" && env.CNI_COMMAND !== "VERSION";
  const stdin = forwardable ? readStdin() : undefined;
  const code = stdin === undefined ? undefined : viaAgent(env, stdin);
  if (code !== undefined) {
    process.exitCode = code;
    return;
  }
  void Promise.all([import("./run.js"), import("./process-io.js")]).then(([run, pio]) => {
    const io = pio.processIo();
    if (stdin !== undefined) io.readStdin = () => stdin;
    process.exitCode = run.runTrellis(io);
  });
}

main();
