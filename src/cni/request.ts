// Turns the CNI environment and stdin into a validated request, or a CniError with the spec's code.
// Pure: the environment and stdin are passed in. Mirrors the checks of the Go `skel` package that
// libcni-based runtimes (containerd, CRI-O, podman) are used to.
import { CniError, ErrorCode } from "./errors.js";
import { compareVersions, isSupportedVersion, SUPPORTED_VERSIONS, type CniVersion } from "./result.js";

export const COMMANDS = ["ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION"] as const;
export type Command = (typeof COMMANDS)[number];

export type Env = Readonly<Record<string, string | undefined>>;

export interface CniRequest {
  command: Exclude<Command, "VERSION">;
  containerId: string;
  netns: string;
  ifname: string;
  /** CNI_ARGS as key/value pairs. */
  args: ReadonlyMap<string, string>;
  path: string[];
  cniVersion: CniVersion;
  name: string;
  /** The whole configuration object from stdin, as received. */
  config: Record<string, unknown>;
  /** stdin exactly as received, for passing to delegates. */
  stdin: string;
}

const REQUIRED: Record<Exclude<Command, "VERSION">, readonly string[]> = {
  ADD: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"],
  CHECK: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"],
  DEL: ["CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"],
  GC: ["CNI_PATH"],
  STATUS: ["CNI_PATH"],
};

// Neither can hold '/' nor start with '.', so neither can name "..", a parent or an absolute path.
const CONTAINER_ID_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const NETWORK_NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/**
 * The longest container id and network name accepted, in bytes (both are ASCII). Each becomes
 * part of a file name — the endpoint spool's `.<id>_<ifname>.json.<pid>`, the IPAM's
 * `<dataDir>/<network>/` and `.trellis-owners-<network>.json.<pid>` — and a file name holds at most
 * 255 bytes (NAME_MAX). 200 leaves room for what is put around them, and is three times the 64 hex
 * digits containerd, CRI-O and podman use. A longer value could not escape a directory (it holds no
 * '/'), but would fail half-way with ENAMETOOLONG instead of up front with a clear error.
 */
export const MAX_NAME_BYTES = 200;

/** A value quoted for an error message, cut short when it is long. */
const quoted = (s: string): string => JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}...` : s);

/** Returns the command, or throws code 4 for a missing or unknown one. */
export function parseCommand(env: Env): Command {
  const cmd = env.CNI_COMMAND;
  if (!cmd) throw new CniError(ErrorCode.InvalidEnvironment, "required env variables [CNI_COMMAND] missing");
  if (!(COMMANDS as readonly string[]).includes(cmd)) {
    throw new CniError(ErrorCode.InvalidEnvironment, `unknown CNI_COMMAND: ${cmd}`);
  }
  return cmd as Command;
}

export function validateIfName(name: string): string | undefined {
  if (name.length === 0) return "interface name is empty";
  if (Buffer.byteLength(name) > 15) return `interface name "${name}" is longer than 15 bytes`;
  if (name === "." || name === "..") return `interface name "${name}" is not allowed`;
  if (/[/:\s]/.test(name)) return `interface name "${name}" contains '/', ':' or whitespace`;
  return undefined;
}

/** CNI_ARGS: "K1=V1;K2=V2". Each part must be exactly one key and one value. */
export function parseCniArgs(text: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!text) return out;
  for (const pair of text.split(";")) {
    if (pair === "") continue;
    const kv = pair.split("=");
    if (kv.length !== 2 || kv[0] === "") {
      throw new CniError(ErrorCode.InvalidEnvironment, `invalid CNI_ARGS pair "${pair}"`, "expected KEY=VALUE pairs separated by ';'");
    }
    out.set(kv[0]!, kv[1]!);
  }
  return out;
}

/**
 * Validates everything but the plugin-specific configuration. `readStdin` is only called once the
 * environment is known to be good, so a person running VERSION from a terminal is never blocked.
 */
export function parseRequest(command: Exclude<Command, "VERSION">, env: Env, readStdin: () => string): CniRequest {
  const missing = REQUIRED[command].filter((k) => !env[k]);
  if (missing.length > 0) {
    throw new CniError(ErrorCode.InvalidEnvironment, `required env variables [${missing.join(",")}] missing`);
  }
  const containerId = env.CNI_CONTAINERID ?? "";
  const ifname = env.CNI_IFNAME ?? "";
  if (command === "ADD" || command === "DEL" || command === "CHECK") {
    if (!CONTAINER_ID_RE.test(containerId)) {
      throw new CniError(ErrorCode.InvalidEnvironment, `invalid CNI_CONTAINERID ${quoted(containerId)}`,
        "must start with a letter or digit and contain only letters, digits, '_', '.' and '-'");
    }
    if (containerId.length > MAX_NAME_BYTES) {
      throw new CniError(ErrorCode.InvalidEnvironment, `invalid CNI_CONTAINERID ${quoted(containerId)}: ${containerId.length} bytes, longer than ${MAX_NAME_BYTES}`);
    }
    const bad = validateIfName(ifname);
    if (bad) throw new CniError(ErrorCode.InvalidEnvironment, `invalid CNI_IFNAME: ${bad}`);
  }
  const args = parseCniArgs(env.CNI_ARGS);

  let stdin: string;
  try {
    stdin = readStdin();
  } catch (e) {
    throw new CniError(ErrorCode.IoFailure, "cannot read network configuration from stdin", String((e as Error).message ?? e));
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdin);
  } catch (e) {
    throw new CniError(ErrorCode.DecodingFailure, "cannot decode network configuration: not valid JSON", (e as Error).message);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new CniError(ErrorCode.DecodingFailure, "cannot decode network configuration: not a JSON object");
  }
  const config = parsed as Record<string, unknown>;
  const v = config.cniVersion;
  if (v !== undefined && typeof v !== "string") {
    throw new CniError(ErrorCode.DecodingFailure, `cannot decode cniVersion ${JSON.stringify(v)}: not a string`);
  }
  const version = v === undefined || v === "" ? "0.1.0" : v;
  if (!/^\d+\.\d+\.\d+$/.test(version)) {
    throw new CniError(ErrorCode.DecodingFailure, `cannot decode cniVersion "${version}": not a version number`);
  }
  if (!isSupportedVersion(version)) {
    throw new CniError(ErrorCode.IncompatibleVersion, "incompatible CNI versions",
      `config is "${version}", plugin supports ${JSON.stringify(SUPPORTED_VERSIONS)}`);
  }
  if (command === "CHECK" && compareVersions(version, "0.4.0") < 0) {
    throw new CniError(ErrorCode.IncompatibleVersion, "config version does not allow CHECK", `config is "${version}"`);
  }
  if ((command === "GC" || command === "STATUS") && compareVersions(version, "1.1.0") < 0) {
    throw new CniError(ErrorCode.IncompatibleVersion, `config version does not allow ${command}`, `config is "${version}"`);
  }
  const name = config.name;
  if (name === undefined || name === "") throw new CniError(ErrorCode.InvalidNetworkConfig, "missing network name");
  if (typeof name !== "string" || !NETWORK_NAME_RE.test(name)) {
    throw new CniError(ErrorCode.InvalidNetworkConfig, `invalid characters found in network name ${typeof name === "string" ? quoted(name) : JSON.stringify(name)}`);
  }
  if (name.length > MAX_NAME_BYTES) {
    throw new CniError(ErrorCode.InvalidNetworkConfig, `invalid network name ${quoted(name)}: ${name.length} bytes, longer than ${MAX_NAME_BYTES}`);
  }
  return {
    command,
    containerId,
    netns: env.CNI_NETNS ?? "",
    ifname,
    args,
    path: (env.CNI_PATH ?? "").split(":").filter(Boolean),
    cniVersion: version,
    name,
    config,
    stdin,
  };
}
