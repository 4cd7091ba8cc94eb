// nftables for network policy: apply a script atomically (`nft -f`), read our table back.
import { POLICY_TABLE } from "../policy/compile.js";
import { KernelError, runAsync } from "./exec.js";

export interface PolicyKernel {
  /** Applies an nft script in one transaction. */
  apply(script: string): Promise<void>;
  /** Our table as `nft list table` prints it, or undefined when it does not exist. */
  listing(): Promise<string | undefined>;
  /** The generation number stored in the table's `generation` set; undefined without one. */
  generation(): Promise<number | undefined>;
}

export class RealPolicyKernel implements PolicyKernel {
  async apply(script: string): Promise<void> {
    await runAsync("nft", ["-f", "-"], { input: script });
  }

  async generation(): Promise<number | undefined> {
    try {
      const out = (await runAsync("nft", ["list", "set", "inet", POLICY_TABLE, "generation"])).stdout;
      const m = /elements = \{ (0x[0-9a-f]+|\d+)/i.exec(out);
      return m ? Number(m[1]) : undefined;
    } catch (e) {
      if (e instanceof KernelError && /No such file|does not exist/i.test(e.stderr)) return undefined;
      throw e;
    }
  }

  async listing(): Promise<string | undefined> {
    try {
      return (await runAsync("nft", ["list", "table", "inet", POLICY_TABLE])).stdout;
    } catch (e) {
      if (e instanceof KernelError && /No such file|does not exist/i.test(e.stderr)) return undefined;
      throw e;
    }
  }
}
