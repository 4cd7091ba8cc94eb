// nftables for Services: one script applied atomically (`nft -f`). The services own table
// `inet trellis-svc` (src/services/compile.ts SERVICES_TABLE), apart from policy's `inet trellis`
// which policy replaces wholesale.
import { runAsync } from "./exec.js";

export interface ServicesKernel {
  /** Applies an nft script in one transaction. */
  apply(script: string): Promise<void>;
}

export class RealServicesKernel implements ServicesKernel {
  async apply(script: string): Promise<void> {
    await runAsync("nft", ["-f", "-"], { input: script });
  }
}
