// Entry point of the `trellis` command-line tool. Argument parsing is commander's (small,
// dependency-free, long maintained); each command group lives in its own file.
import { Command, CommanderError } from "commander";
import { labCommand } from "./lab.js";

const program = new Command();
program
  .name("trellis")
  .description("Trellis container network: operator CLI and lab")
  .version("0.1.0")
  .showHelpAfterError()
  .exitOverride();

program.addCommand(labCommand());

// No top-level await: the executable is compiled to bytecode, which needs a CommonJS-shaped module.
program.parseAsync(process.argv).catch((e: unknown) => {
  if (e instanceof CommanderError) {
    process.exitCode = e.exitCode;
  } else {
    process.stderr.write(`trellis: ${(e as Error).message}\n`);
    process.exitCode = 1;
  }
});
