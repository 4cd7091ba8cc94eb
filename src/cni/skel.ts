// The plugin skeleton: environment + stdin in, exactly one JSON document (or nothing) out.
//
// Both executables (trellis, trellis-ipam) run through here. The environment, stdin and the two
// output streams are injected, so tests call runPlugin with a map and buffers. Only this function
// turns an unexpected exception into an error JSON (code 999); everything else throws CniError.
import { CniError, errorJson } from "./errors.js";
import { parseCommand, parseRequest, type CniRequest, type Env } from "./request.js";
import { LATEST_VERSION, resultForVersion, SUPPORTED_VERSIONS, type Result } from "./result.js";

export interface PluginIo {
  env: Env;
  readStdin(): string;
  stdout(text: string): void;
  stderr(text: string): void;
}

export interface PluginHandlers {
  /** Shown on stderr when the plugin is run with no CNI_COMMAND. */
  about: string;
  add(req: CniRequest): Result;
  del(req: CniRequest): void;
  check(req: CniRequest): void;
  status(req: CniRequest): void;
  gc(req: CniRequest): void;
}

/** Runs one CNI command and returns the process exit code. */
export function runPlugin(io: PluginIo, handlers: PluginHandlers): number {
  let version: string = LATEST_VERSION;
  try {
    if (!io.env.CNI_COMMAND) io.stderr(`${handlers.about}\nCNI protocol versions supported: ${SUPPORTED_VERSIONS.join(", ")}\n`);
    const command = parseCommand(io.env);
    if (command === "VERSION") {
      io.stdout(JSON.stringify({ cniVersion: LATEST_VERSION, supportedVersions: SUPPORTED_VERSIONS }) + "\n");
      return 0;
    }
    const req = parseRequest(command, io.env, io.readStdin);
    version = req.cniVersion;
    switch (command) {
      case "ADD": {
        const result = handlers.add(req);
        io.stdout(JSON.stringify(resultForVersion(result, req.cniVersion)) + "\n");
        return 0;
      }
      case "DEL":
        handlers.del(req);
        return 0;
      case "CHECK":
        handlers.check(req);
        return 0;
      case "STATUS":
        handlers.status(req);
        return 0;
      case "GC":
        handlers.gc(req);
        return 0;
    }
  } catch (err) {
    const json = errorJson(err, version);
    io.stdout(JSON.stringify(json) + "\n");
    const detail = json.details ? ` (${json.details})` : "";
    io.stderr(`${io.env.CNI_COMMAND ?? "?"} failed: [${json.code}] ${json.msg}${detail}\n`);
    if (!(err instanceof CniError) && err instanceof Error && err.stack) io.stderr(err.stack + "\n");
    return 1;
  }
}
