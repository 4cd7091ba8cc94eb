// Output for people and for tools: plain-text tables (left-aligned columns separated by two
// spaces), and the same data as JSON or YAML wherever a command has `-o`.
import { Option } from "commander";
import { stringify } from "yaml";

export const OUTPUT_FORMATS = ["table", "json", "yaml"] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** `-o, --output table|json|yaml`, the same on every command that prints data. */
export function outputOption(formats: readonly string[] = OUTPUT_FORMATS): Option {
  return new Option("-o, --output <format>", "output format").choices(formats).default(formats[0]);
}

/** Data as JSON or YAML text, newline-terminated. */
export function formatOutput(data: unknown, format: "json" | "yaml" | string): string {
  return format === "yaml" ? stringify(data) : JSON.stringify(data, null, 2) + "\n";
}

// Plain-text tables for CLI output: left-aligned columns separated by two spaces.
export function printTable(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join("  ").trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}
