// nftables for Services: one script applied atomically (`nft -f`). The services own table
// `inet trellis-svc` (src/services/compile.ts SERVICES_TABLE), apart from policy's `inet trellis`
// which policy replaces wholesale.
import { runAsync } from "./exec.js";

export interface ServicesKernel {
  /** Applies an nft script in one transaction. */
  apply(script: string): Promise<void>;
  /** Whether table inet <name> exists (`nft list tables`: cheap whatever the table holds). */
  tableExists(name: string): Promise<boolean>;
}

export class RealServicesKernel implements ServicesKernel {
  async apply(script: string): Promise<void> {
    await runAsync("nft", ["-f", "-"], { input: script });
  }

  async tableExists(name: string): Promise<boolean> {
    const { stdout } = await runAsync("nft", ["list", "tables", "inet"]);
    return stdout.split("\n").some((l) => l.trim() === `table inet ${name}`);
  }
}
