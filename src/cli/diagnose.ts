// `trellis diagnose --from NS/POD --to NS/POD|IP [--port P/PROTO] [--probe] [-o text|json|yaml]`:
// why can A not reach B, hop by hop, from the kernel and the datastore. Gathering is
// src/diagnose/facts.ts, the verdict src/diagnose/verdict.ts (pure); this file parses flags and prints.
import { Command, Option } from "commander";
import { gatherDiagnoseFacts, readClusterFacts } from "../diagnose/facts.js";
import { diagnose, renderDiagnosis } from "../diagnose/verdict.js";
import { listLabs, readState, requireState, type LabState } from "../lab/lab.js";
import { withStore, type GlobalOptions } from "./cluster.js";
import { defaultCniBinDir, selfExecutable } from "./lab.js";
import { parsePort } from "./policy.js";
import { formatOutput } from "./table.js";

/** Exit codes: 0 reachable, 1 broken (or an error), 2 no broken hop found but some hop not checked. */
export const DIAGNOSE_EXIT = { REACHABLE: 0, BROKEN: 1, UNKNOWN: 2 } as const;

/**
 * `--lab NAME` on an etcd or Kubernetes lab re-runs this command inside the lab's control
 * namespace with `--datastore URL` instead (src/cli/main.ts, TRELLIS_IN_LAB=1): the lab is then
 * the one whose datastore that is. Its node and pod namespaces are read by path from there.
 */
function labOfReexec(g: GlobalOptions): LabState | undefined {
  if (process.env.TRELLIS_IN_LAB !== "1" || !g.datastore) return undefined;
  // By name: etcd labs all serve on the same control address, so two running at once (another
  // worktree's tests) share a datastore URL and the URL alone may find the wrong lab.
  const named = process.env.TRELLIS_LAB_NAME ? readState(process.env.TRELLIS_LAB_NAME) : undefined;
  if (named?.datastoreUrl === g.datastore) return named;
  return listLabs().map((n) => readState(n)).find((s) => s?.datastoreUrl === g.datastore);
}

export function diagnoseCommand(globals: () => GlobalOptions): Command {
  return new Command("diagnose")
    .description("why can pod A not reach B: every hop checked in the kernels and the datastore, the first broken one named first")
    .requiredOption("--from <ns/pod>", "source pod")
    .requiredOption("--to <ns/pod|ip>", "destination pod, or an address")
    .option("--port <port/proto>", "destination port, e.g. 80/TCP (default: ICMP)")
    .option("--probe", "also send a test packet from the source pod (lab only)", false)
    .option("--node <name>", "outside a lab: this node's name (default: the hostname)")
    .option("--local-node <name>", "act as if run on this node of a real cluster: read only its kernel (in a lab: through the lab), every other node from its agent's published status")
    .addOption(new Option("-o, --output <format>", "output format").choices(["text", "json", "yaml"]).default("text"))
    .action(async (o: { from: string; to: string; port?: string; probe: boolean; node?: string; localNode?: string; output: string }) => {
      const port = o.port !== undefined ? parsePort(o.port) : undefined;
      const g = globals();
      const lab = g.lab ? requireState(g.lab) : labOfReexec(g);
      // --node names this machine outside a lab; --local-node also makes a lab act like a real cluster.
      const local = o.localNode ?? (lab ? undefined : o.node);
      const cluster = await withStore(g, (s) => readClusterFacts(s, (w) => process.stderr.write(`warning: ${w}\n`)));
      const facts = await gatherDiagnoseFacts({
        from: o.from, to: o.to, ...(port ? { port } : {}), probe: o.probe, ...(lab ? { lab } : {}), ...(local ? { localNode: local } : {}),
        trellisBin: selfExecutable(defaultCniBinDir()), now: Date.now(),
      }, cluster);
      const v = diagnose(facts);
      process.stdout.write(o.output === "text" ? renderDiagnosis(v) : formatOutput(v, o.output));
      process.exitCode = DIAGNOSE_EXIT[v.verdict];
    });
}
