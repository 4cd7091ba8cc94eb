// The agent's logger: one JSON line per event through pino (`level`, `time`, `node`, `component`,
// `msg` and the objects involved), or today's human line with `--log-format text`. The agent's
// code keeps calling `log(line)`; that path classifies the line (classify.ts). Explicit levels and
// fields go through `debug/info/warn/error(component, msg, fields)`.
import pino from "pino";
import { classifyLine, LOG_LEVELS, type LogFormat, type LogLevel } from "./classify.js";

export interface Logger {
  /** Compatibility: a plain line; level and component are read from its wording. */
  log(line: string): void;
  debug(component: string, msg: string, fields?: Record<string, unknown>): void;
  info(component: string, msg: string, fields?: Record<string, unknown>): void;
  warn(component: string, msg: string, fields?: Record<string, unknown>): void;
  error(component: string, msg: string, fields?: Record<string, unknown>): void;
}

export interface LoggerOptions {
  node: string;
  level: LogLevel;
  format: LogFormat;
  /** Where lines go; default stderr (fd 2, written synchronously: nothing is lost on exit). */
  write?: (line: string) => void;
  /** The text format's tag: `agent[<node>]`. */
  tag?: string;
  now?: () => Date;
}

export function createLogger(o: LoggerOptions): Logger {
  const write = o.write ?? ((l: string) => void process.stderr.write(l));
  const at = (l: LogLevel): boolean => LOG_LEVELS.indexOf(l) >= LOG_LEVELS.indexOf(o.level);
  let emit: (level: LogLevel, component: string, msg: string, fields?: Record<string, unknown>) => void;
  if (o.format === "text") {
    const tag = o.tag ?? `agent[${o.node}]`;
    const now = o.now ?? (() => new Date());
    emit = (level, _component, msg) => {
      if (at(level)) write(`${now().toISOString()} ${tag} ${msg}\n`);
    };
  } else {
    const p = pino({
      level: o.level,
      base: { node: o.node },
      messageKey: "msg",
      timestamp: o.now ? () => `,"time":"${o.now!().toISOString()}"` : pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    }, { write: (s: string) => write(s) });
    emit = (level, component, msg, fields) => p[level]({ component, ...fields }, msg);
  }
  return {
    log: (line) => {
      const c = classifyLine(line);
      emit(c.level, c.component, line, c.fields);
    },
    debug: (c, m, f) => emit("debug", c, m, f),
    info: (c, m, f) => emit("info", c, m, f),
    warn: (c, m, f) => emit("warn", c, m, f),
    error: (c, m, f) => emit("error", c, m, f),
  };
}
