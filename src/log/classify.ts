// The compatibility path of the structured logger: today's agent code logs plain lines; each line's
// level, component and the objects it names are read from its wording. Pure, table-driven.

export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_FORMATS = ["json", "text"] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export interface Classified {
  level: LogLevel;
  component: string;
  /** Objects the line names (peer, pod, policy, block), as structured fields. */
  fields: Record<string, string>;
}

/** First match wins: a prefix or phrase -> the component that speaks. */
const COMPONENTS: ReadonlyArray<[RegExp, string]> = [
  [/^(cni:|serving CNI calls|not serving CNI calls)/, "cni"],
  [/^(policy[: ]|network policy|endpoint \S+ is in bridge mode|ignoring invalid object|stored object|cannot publish endpoints)/, "policy"],
  [/^(bgp|bird|BIRD)\b|announced \S+, which is not a pod-network block/, "bgp"],
  [/API server|kubernetes|Kubernetes/, "kubernetes"],
  [/^(lease watch|cannot list|datastore|etcd)/, "datastore"],
  [/^sync( error)?:?/, "dataplane"],
  [/^metrics:/, "metrics"],
];

const WARN = /^WARNING:|\bcannot\b|\bfailed\b|\bunreachable\b|\brefused\b|sync error|\bignor(ing|ed)\b|\bdrift\b/i;
const ERROR = /^(fatal|error):/i;

export function classifyLine(line: string): Classified {
  const component = COMPONENTS.find(([re]) => re.test(line))?.[1] ?? "agent";
  const level: LogLevel = ERROR.test(line) ? "error" : WARN.test(line) ? "warn" : "info";
  const fields: Record<string, string> = {};
  const peer = /^peer (\S+) (\S+) via/.exec(line);
  if (peer) {
    fields.peer = peer[1]!;
    fields.block = peer[2]!;
  }
  const pod = /\bendpoint (\S+\/\S+) /.exec(line);
  if (pod) fields.pod = pod[1]!;
  const policy = /\b((?:Global)?TrellisPolicy\/\S+|NetworkPolicy\/\S+\/\S+)/.exec(line);
  if (policy) fields.policy = policy[1]!.replace(/[,:;)]+$/, "");
  const lease = /\b(?:lease|kept its lease:|leased a new block:) (\d[\d.:a-f]*\/\d+)/i.exec(line);
  if (lease && !fields.block) fields.block = lease[1]!;
  return { level, component, fields };
}

export function parseLogLevel(v: string): LogLevel {
  if (!(LOG_LEVELS as readonly string[]).includes(v)) throw new Error(`--log-level ${JSON.stringify(v)}: expected one of ${LOG_LEVELS.join(", ")}`);
  return v as LogLevel;
}

export function parseLogFormat(v: string): LogFormat {
  if (!(LOG_FORMATS as readonly string[]).includes(v)) throw new Error(`--log-format ${JSON.stringify(v)}: expected one of ${LOG_FORMATS.join(", ")}`);
  return v as LogFormat;
}
