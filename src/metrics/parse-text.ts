// A small reader of the Prometheus text exposition format (version 0.0.4): enough to check what
// /metrics serves (tests, `trellis agent metrics` users' scripts). Comments (# HELP, # TYPE) are
// skipped; each sample line is `name{label="value",...} value [timestamp]`; label values may
// hold escaped `\\`, `\"` and `\n`. Pure.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;

export function parsePrometheusText(text: string): Sample[] {
  const out: Sample[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const bad = (why: string): Error => new Error(`metrics line ${i + 1}: ${why}: ${JSON.stringify(raw)}`);
    const name = NAME.exec(line)?.[0];
    if (!name) throw bad("no metric name");
    let pos = name.length;
    const labels: Record<string, string> = {};
    if (line[pos] === "{") {
      pos++;
      for (;;) {
        while (line[pos] === " " || line[pos] === ",") pos++;
        if (line[pos] === "}") {
          pos++;
          break;
        }
        const key = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(pos))?.[0];
        if (!key || line[pos + key.length] !== "=" || line[pos + key.length + 1] !== '"') throw bad("bad label");
        pos += key.length + 2;
        let value = "";
        for (;;) {
          const ch = line[pos++];
          if (ch === undefined) throw bad("unterminated label value");
          if (ch === '"') break;
          if (ch === "\\") {
            const e = line[pos++];
            value += e === "n" ? "\n" : e ?? "";
          } else value += ch;
        }
        labels[key] = value;
      }
    }
    const rest = line.slice(pos).trim().split(/\s+/);
    const v = rest[0];
    const value = v === "+Inf" ? Infinity : v === "-Inf" ? -Infinity : v === "NaN" ? NaN : Number(v);
    if (v === undefined || v === "" || (Number.isNaN(value) && v !== "NaN")) throw bad("bad value");
    out.push({ name, labels, value });
  });
  return out;
}

/** The sum of the samples named `name` whose labels include `labels` (0 when there is none). */
export function sampleSum(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((n, s) => n + s.value, 0);
}
