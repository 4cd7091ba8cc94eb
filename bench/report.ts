// The CNI ADD/DEL benchmark's output: a readable table for stdout and the JSON kept in
// bench/results/. Pure: both are computed from the raw samples of one run.
import type { CleanupCheck, Environment as RunEnvironment } from "./common.js";
import { median, round3, summarize, type Summary } from "./stats.js";

/** The machine and commit (common.ts), and the versions of Bun and of the reference plugins. */
export interface Environment extends RunEnvironment {
  bun: string;
  referencePlugins: string;
}

/** Per call: wall time, spawn to exit, and CPU time of the plugin and its children, both ms. */
export interface Samples {
  ms: number[];
  cpuMs: number[];
}

export interface ThroughputRound {
  addPodsPerSec: number;
  delPodsPerSec: number;
  /** Wall time of each ADD while others were in flight, ms. */
  addMs: number[];
  /** CPU per ADD over the round (plugins and their children), ms. */
  addCpuMs: number;
}

export interface ImplRun {
  id: string;
  label: string;
  /** Whether this is the denominator of every ratio. */
  reference: boolean;
  binary: string;
  /** The network configuration it was given (temporary paths replaced). */
  config: unknown;
  /** Sequential calls, warm-up excluded. */
  add: Samples;
  del: Samples;
  throughput: ThroughputRound[];
}

export interface StartupRun extends Samples {
  id: string;
  label: string;
}

export type { CleanupCheck };

export interface RunReport {
  env: Environment;
  options: { pods: number; warmup: number; inFlight: number; rounds: number; startupRuns: number };
  impls: ImplRun[];
  startup: StartupRun[];
  checks: { adds: number; addresses: number; cleanup: CleanupCheck };
}

interface Derived {
  impl: ImplRun;
  add: Summary;
  del: Summary;
  /** Mean CPU per call, ms: single readings are only accurate to a clock tick, so no percentiles. */
  addCpu: number;
  delCpu: number;
  addPodsPerSec: number;
  delPodsPerSec: number;
  addInFlight: Summary;
  addCpuInFlight: number;
}

const mean = (xs: readonly number[]): number => summarize(xs).mean;

function derive(impl: ImplRun): Derived {
  return {
    impl,
    add: summarize(impl.add.ms),
    del: summarize(impl.del.ms),
    addCpu: mean(impl.add.cpuMs),
    delCpu: mean(impl.del.cpuMs),
    addPodsPerSec: median(impl.throughput.map((t) => t.addPodsPerSec)),
    delPodsPerSec: median(impl.throughput.map((t) => t.delPodsPerSec)),
    addInFlight: summarize(impl.throughput.flatMap((t) => t.addMs)),
    addCpuInFlight: median(impl.throughput.map((t) => t.addCpuMs)),
  };
}

function derived(r: RunReport): { all: Derived[]; ref: Derived; others: Derived[] } {
  const all = r.impls.map(derive);
  const ref = all.find((d) => d.impl.reference);
  if (!ref) throw new Error("report: no reference implementation");
  return { all, ref, others: all.filter((d) => d !== ref) };
}

const f1 = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : "–");
const fx = (x: number): string => (Number.isFinite(x) ? `${x.toFixed(2)}x` : "–");

/** Left-aligned first column, right-aligned others, a rule under the header. */
export function table(header: string[], rows: string[][]): string {
  const all = [header, ...rows];
  const widths = header.map((_, c) => Math.max(...all.map((row) => (row[c] ?? "").length)));
  const line = (row: string[]): string =>
    row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join("  ").trimEnd();
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

export function renderText(r: RunReport): string {
  const { env, options: o } = r;
  const { all, ref, others } = derived(r);
  const out: string[] = [];
  out.push(`CNI ADD/DEL side by side, ${env.date}`);
  out.push(`kernel ${env.kernel}, ${env.cpus} CPU (${env.cpuModel}), node ${env.node}, bun ${env.bun}, ${env.referencePlugins}`);
  out.push(`trellis ${env.git.commit.slice(0, 10)}${env.git.dirty ? " + uncommitted changes" : ""} (executable sha256 ${env.trellisBinary.sha256.slice(0, 12)}); load average (1 min) ${env.loadAverage.start.toFixed(2)} at start, ${env.loadAverage.end.toFixed(2)} at end`);
  out.push("");

  out.push(`Sequential: ${o.pods} pods per implementation (+${o.warmup} warm-up, not counted), interleaved.`);
  out.push("ms, spawn to exit (wall); CPU = mean CPU of the plugin and its children.");
  const rows = all.map((d) => [
    d.impl.label, f1(d.add.p50), f1(d.add.p99), f1(d.add.mean), f1(d.addCpu), f1(d.del.p50), f1(d.del.p99), f1(d.del.mean), f1(d.delCpu),
  ]);
  for (const d of others) {
    rows.push([
      `${d.impl.label} / reference`,
      fx(d.add.p50 / ref.add.p50), fx(d.add.p99 / ref.add.p99), fx(d.add.mean / ref.add.mean), fx(d.addCpu / ref.addCpu),
      fx(d.del.p50 / ref.del.p50), fx(d.del.p99 / ref.del.p99), fx(d.del.mean / ref.del.mean), fx(d.delCpu / ref.delCpu),
    ]);
  }
  out.push(table(["implementation", "ADD p50", "ADD p99", "ADD mean", "ADD CPU", "DEL p50", "DEL p99", "DEL mean", "DEL CPU"], rows));
  out.push("Ratios below 1 mean trellis is faster.");
  out.push("");

  out.push(`Throughput: ${o.inFlight} in flight, ${o.pods} pods, median of ${o.rounds} rounds.`);
  const trows = all.map((d) => [
    d.impl.label, d.addPodsPerSec.toFixed(0), d.delPodsPerSec.toFixed(0), f1(d.addInFlight.p50), f1(d.addInFlight.p99), f1(d.addCpuInFlight),
  ]);
  for (const d of others) {
    trows.push([`${d.impl.label} / reference`, fx(d.addPodsPerSec / ref.addPodsPerSec), fx(d.delPodsPerSec / ref.delPodsPerSec), "", "", ""]);
  }
  out.push(table(["implementation", "ADD pods/s", "DEL pods/s", "ADD p50 ms", "ADD p99 ms", "CPU/ADD ms"], trows));
  out.push("Pods/s ratios above 1 mean trellis is faster.");
  out.push("");

  out.push(`Process start-up: ${o.startupRuns} runs each, interleaved. ms, spawn to exit; CPU mean.`);
  out.push(table(["executable", "p50", "p99", "mean", "CPU"], r.startup.map((s) => {
    const x = summarize(s.ms);
    return [s.label, f1(x.p50), f1(x.p99), f1(x.mean), f1(mean(s.cpuMs))];
  })));
  out.push("");

  out.push(`Checks: ${r.checks.adds} ADDs exited 0 and returned an address; ${r.checks.addresses} addresses, none given out twice while held;`);
  out.push("every DEL exited 0 and left no interface and no reservation behind.");
  const c = r.checks.cleanup;
  out.push(c.clean
    ? "Cleanup: all namespaces and temporary directories removed; no new trl*/veth link in the root namespace."
    : `Cleanup FAILED: ${c.problems.join("; ")}`);
  return out.join("\n");
}

const rounded = (s: Summary): Summary => ({
  n: s.n, p50: round3(s.p50), p99: round3(s.p99), mean: round3(s.mean), min: round3(s.min), max: round3(s.max),
});

export function renderJson(r: RunReport): unknown {
  const { all, ref } = derived(r);
  return {
    benchmark: "cni-add-del",
    units: {
      latency: "ms: wall time of one plugin process, spawn to exit, including nsenter into the host namespace",
      cpu: "ms: user + system CPU of the plugin process and the processes it waited for (/proc/self/stat cutime + cstime)",
      throughput: "pods/s",
    },
    percentiles: "nearest rank",
    environment: r.env,
    options: r.options,
    implementations: all.map((d) => ({
      id: d.impl.id,
      label: d.impl.label,
      binary: d.impl.binary,
      config: d.impl.config,
      sequential: {
        add: { ...rounded(d.add), cpuMean: round3(d.addCpu) },
        del: { ...rounded(d.del), cpuMean: round3(d.delCpu) },
        ratioToReference: d === ref ? undefined : {
          addP50: round3(d.add.p50 / ref.add.p50),
          addP99: round3(d.add.p99 / ref.add.p99),
          addCpu: round3(d.addCpu / ref.addCpu),
          delP50: round3(d.del.p50 / ref.del.p50),
          delP99: round3(d.del.p99 / ref.del.p99),
          delCpu: round3(d.delCpu / ref.delCpu),
        },
        samples: {
          add: d.impl.add.ms.map(round3),
          addCpu: d.impl.add.cpuMs.map(round3),
          del: d.impl.del.ms.map(round3),
          delCpu: d.impl.del.cpuMs.map(round3),
        },
      },
      throughput: {
        inFlight: r.options.inFlight,
        addPodsPerSec: round3(d.addPodsPerSec),
        delPodsPerSec: round3(d.delPodsPerSec),
        addLatencyInFlight: rounded(d.addInFlight),
        addCpuMs: round3(d.addCpuInFlight),
        ratioToReference: d === ref ? undefined : {
          add: round3(d.addPodsPerSec / ref.addPodsPerSec),
          del: round3(d.delPodsPerSec / ref.delPodsPerSec),
        },
        rounds: d.impl.throughput.map((t) => ({
          addPodsPerSec: round3(t.addPodsPerSec), delPodsPerSec: round3(t.delPodsPerSec), addCpuMs: round3(t.addCpuMs),
        })),
      },
    })),
    startup: r.startup.map((s) => ({ id: s.id, label: s.label, ...rounded(summarize(s.ms)), cpuMean: round3(mean(s.cpuMs)) })),
    checks: { ...r.checks, duplicateAddresses: 0 },
  };
}
