// Entry point of the `trellis` command-line tool. Argument parsing is commander's (small,
// dependency-free, long maintained); each command group lives in its own file.
import { Command, CommanderError } from "commander";
import { execAttachedIn } from "../kernel/netns.js";
import { datastoreArgs, readState } from "../lab/lab.js";
import { cniCommand } from "./cni.js";
import { bgpCommand, nodeSettingsCommands } from "./bgp.js";
import { agentCommand, networkCommand, nodesCommand, type GlobalOptions } from "./cluster.js";
import { labCommand, selfExecutable, defaultCniBinDir } from "./lab.js";
import { applyCommands, getCommand, policyCommand } from "./policy.js";
import { servicesCommand } from "./services.js";
import { probeCommand } from "../lab/probe.js";
import { uiCommand } from "./ui.js";
import { diagnoseCommand } from "./diagnose.js";

/**
 * A lab's etcd (or API server) listens only inside the lab (its control-plane namespace). `--lab NAME` for such a
 * lab runs this same command there, with --datastore pointing at it; the machine's own namespace
 * never gets a route or address of the lab.
 */
function reexecInLab(argv: string[]): number | undefined {
  const i = argv.indexOf("--lab");
  if (i < 0 || process.env.TRELLIS_IN_LAB === "1") return undefined;
  const state = readState(argv[i + 1] ?? "");
  if (!state?.datastoreUrl || !(state.datastoreUrl.startsWith("etcd") || state.datastoreUrl === "kubernetes")) return undefined;
  const args = [...argv.slice(2, i), ...datastoreArgs(state), ...argv.slice(i + 2)];
  return execAttachedIn(state.plan.controlNetns, selfExecutable(defaultCniBinDir()), args, { ...process.env, TRELLIS_IN_LAB: "1", TRELLIS_LAB_NAME: state.plan.name });
}

/** Compiled in by scripts/build.mjs: "0.1.0 (commit 1a2b3c4d5e6f)". */
declare const TRELLIS_VERSION: string | undefined;
const VERSION = typeof TRELLIS_VERSION === "string" ? TRELLIS_VERSION : "0.1.0 (commit unknown: not built by scripts/build.mjs)";

const program = new Command();
program
  .name("trellis")
  .description("Trellis container network: node agent, operator CLI and lab")
  .version(`trellis ${VERSION}`)
  .option("--datastore <url>", "cluster datastore: embedded:///dir, etcd://host:2379[,host:2379] (etcds:// for TLS), or kubernetes (the API server)")
  .option("--kubeconfig <file>", "for --datastore kubernetes: the kubeconfig (default: the pod's service account)")
  .option("--lab <name>", "use the datastore of a lab made by `trellis lab up`")
  .option("--etcd-ca <file>", "CA certificate for etcds://")
  .option("--etcd-cert <file>", "client certificate for etcds://")
  .option("--etcd-key <file>", "client key for etcds://")
  // Global options go before the command (`trellis --lab demo nodes`), so a command may have an
  // option of the same name (`trellis lab up --datastore etcd`).
  .enablePositionalOptions()
  .showHelpAfterError()
  .exitOverride();

const globals = (): GlobalOptions => program.opts<GlobalOptions>();
program.addCommand(networkCommand(globals));
const nodes = nodesCommand(globals);
for (const c of nodeSettingsCommands(globals)) nodes.addCommand(c);
program.addCommand(nodes);
program.addCommand(agentCommand(globals));
program.addCommand(cniCommand());
for (const c of applyCommands(globals)) program.addCommand(c);
program.addCommand(getCommand(globals));
program.addCommand(policyCommand(globals));
program.addCommand(servicesCommand(globals));
program.addCommand(bgpCommand(globals));
program.addCommand(diagnoseCommand(globals));
program.addCommand(probeCommand(), { hidden: true });
program.addCommand(labCommand());
program.addCommand(uiCommand(globals));

// `trellis ... | head` closes our stdout early: that is not an error worth a stack trace.
process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code === "EPIPE") process.exit(0);
  throw e;
});

/** `trellis help lab up` is `trellis lab up --help` (commander's own help command stops at the first level). */
function helpAsFlag(argv: string[]): string[] {
  return argv[2] === "help" && argv.length > 3 ? [...argv.slice(0, 2), ...argv.slice(3), "--help"] : argv;
}

// No top-level await: the executable is compiled to bytecode, which needs a CommonJS-shaped module.
process.argv = helpAsFlag(process.argv);
const reexec = reexecInLab(process.argv);
if (reexec !== undefined) process.exitCode = reexec;
else program.parseAsync(process.argv).catch((e: unknown) => {
  if (e instanceof CommanderError) {
    process.exitCode = e.exitCode;
  } else {
    process.stderr.write(`trellis: ${(e as Error).message}\n`);
    process.exitCode = 1;
  }
});
