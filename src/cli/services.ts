// `trellis services model`: the Services and their EndpointSlices (stored, or derived from pods
// for Services with a selector) exactly as the agents compile them — what `lab check` reads to
// know which Service ports to probe and where they may land.
import { Command } from "commander";
import { readServices } from "../services/read.js";
import { withStore, type GlobalOptions } from "./cluster.js";

export function servicesCommand(globals: () => GlobalOptions): Command {
  const cmd = new Command("services").description("Services as the agents see them");
  cmd.command("model")
    .description("Services with a ClusterIP and their EndpointSlices (stored, or derived from pods) as JSON, as the agents compile them")
    .action(async () => {
      const input = await withStore(globals(), (s) => readServices(s, (key, why) => process.stderr.write(`warning: ignoring ${key}: ${why}\n`)));
      process.stdout.write(JSON.stringify(input) + "\n");
    });
  return cmd;
}
