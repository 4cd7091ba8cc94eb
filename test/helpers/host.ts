// One simulated node for integration tests: a "host" network namespace that every plugin runs in
// (so nothing ever touches the machine's own interfaces), pod namespaces beside it, a temporary
// IPAM data directory and a network name no other test uses. `cleanup()` removes all of it; the
// interfaces and bridges the plugins made go with their namespaces.
import * as path from "node:path";
import {
  addressFiles, cni, cniAsync, NetnsPool, tempDir, TRELLIS, trlLinks, uniq, waitUntilIdle,
  type Netns, type PluginCall, type PluginRun,
} from "./netns.js";

/** A plugin call made by a TestHost: it fills in the host namespace, and the binary defaults to trellis. */
export type HostCall = Omit<PluginCall, "hostNetns" | "binary"> & { binary?: string };

export class TestHost {
  readonly pool = new NetnsPool();
  readonly host: Netns;
  readonly dataDir: string;
  /** Unique per TestHost; a valid CNI network name. */
  readonly network: string;
  private readonly removeDir: () => void;

  constructor(label: string) {
    const tmp = tempDir(`trltest-${label}-`);
    this.dataDir = tmp.dir;
    this.removeDir = tmp.remove;
    this.network = `trltest-${label}-${uniq()}`;
    try {
      this.host = this.pool.create("host");
    } catch (e) {
      this.cleanup();
      throw e;
    }
  }

  /** A new, empty pod namespace (loopback up). */
  pod(suffix: string): Netns {
    return this.pool.create(suffix);
  }

  /** Where the IPAM keeps this network's reservations (host-local layout). */
  get ipamDir(): string {
    return path.join(this.dataDir, this.network);
  }

  /** Address files in the IPAM directory, sorted. */
  addressFiles(): string[] {
    return addressFiles(this.ipamDir);
  }

  /** trellis host interfaces in the host namespace. */
  trlLinks(): string[] {
    return trlLinks(this.host.name);
  }

  run(call: HostCall): PluginRun {
    return cni({ binary: TRELLIS, ...call, hostNetns: this.host.name });
  }

  runAsync(call: HostCall, onSpawn?: (pid: number) => void): Promise<PluginRun> {
    return cniAsync({ binary: TRELLIS, ...call, hostNetns: this.host.name }, onSpawn);
  }

  /** Waits until no process (a killed plugin's orphaned `ip`, say) is left in the host namespace. */
  idle(timeoutMs?: number): Promise<void> {
    return waitUntilIdle(this.host.name, timeoutMs);
  }

  cleanup(): void {
    this.pool.cleanup();
    this.removeDir();
  }
}
