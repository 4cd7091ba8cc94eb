// Reading the files users hand to the CLI (policies, lab specs): one place for what every such
// read must do — a missing file says "no such file", a file over the size limit is refused before
// it is parsed, YAML errors name the file, line and column, and aliases that would expand beyond
// a sane size (the "billion laughs") are refused rather than expanded.
import * as fs from "node:fs";
import { parseAllDocuments } from "yaml";

/** Larger than any object Kubernetes stores (etcd's request limit is 1.5 MiB), with room for lists. */
export const MAX_INPUT_BYTES = 4 * 1024 * 1024;
/** Alias expansions allowed per document (the yaml library's own default, stated here). */
export const MAX_ALIAS_COUNT = 100;

export class InputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InputError";
  }
}

/** The text of `file` ("-" = standard input), or an InputError that says why not. */
export function readInputFile(file: string): string {
  let fd: number;
  try {
    fd = file === "-" ? 0 : fs.openSync(file, "r");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new InputError(`${file}: no such file`);
    if (code === "EACCES") throw new InputError(`${file}: permission denied`);
    if (code === "EISDIR") throw new InputError(`${file}: is a directory, not a file`);
    throw new InputError(`${file}: cannot open: ${(e as Error).message}`);
  }
  try {
    const chunks: Buffer[] = [];
    let size = 0;
    const buf = Buffer.alloc(64 * 1024);
    for (;;) {
      let n: number;
      try {
        n = fs.readSync(fd, buf, 0, buf.length, null);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === "EAGAIN") continue;
        if (code === "EOF") break;
        if (code === "EISDIR") throw new InputError(`${file}: is a directory, not a file`);
        throw new InputError(`${file}: cannot read: ${(e as Error).message}`);
      }
      if (n === 0) break;
      size += n;
      if (size > MAX_INPUT_BYTES) throw new InputError(`${file === "-" ? "standard input" : file}: larger than the ${MAX_INPUT_BYTES / 1024 / 1024} MiB limit for one file`);
      chunks.push(Buffer.from(buf.subarray(0, n)));
    }
    return Buffer.concat(chunks).toString("utf8");
  } finally {
    if (fd !== 0) fs.closeSync(fd);
  }
}

/** `file:line:column` of a YAML error, or just the file. */
const where = (source: string, pos: { line: number; col: number } | undefined): string => (pos ? `${source}:${pos.line}:${pos.col}` : source);

/**
 * Every document of a YAML (or JSON) text, as plain values; null documents (empty, `---` alone)
 * are left out. Errors name `source` and the line.
 */
export function parseYamlDocuments(text: string, source: string): unknown[] {
  if (Buffer.byteLength(text) > MAX_INPUT_BYTES) throw new InputError(`${source}: larger than the ${MAX_INPUT_BYTES / 1024 / 1024} MiB limit for one file`);
  const out: unknown[] = [];
  for (const doc of parseAllDocuments(text, { prettyErrors: true })) {
    const err = doc.errors[0];
    if (err) throw new InputError(`${where(source, err.linePos?.[0])}: cannot parse YAML: ${err.message.split(" at line ")[0]!.split("\n")[0]}`);
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (e) {
      if (/alias/i.test((e as Error).message)) {
        throw new InputError(`${source}: YAML aliases expand beyond the limit of ${MAX_ALIAS_COUNT} (refused as a resource exhaustion attempt)`);
      }
      throw new InputError(`${source}: cannot read YAML: ${(e as Error).message}`);
    }
    if (value !== null && value !== undefined) out.push(value);
  }
  return out;
}
