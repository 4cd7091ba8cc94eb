// Many plugin processes at once on one host, as a runtime starting a node full of pods does: the
// IPAM's flock must hand out each address once, and neither a crowd nor a plugin killed half-way
// may leave an interface or a reservation behind once DEL and GC have run.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { assertSilentSuccess } from "../helpers/cni-assert.js";
import { TestHost } from "../helpers/host.js";
import { integrationSkip, uniq, type Netns, type PluginRun } from "../helpers/netns.js";

const skip = integrationSkip();

const IFNAME = "eth0";

const show = (r: PluginRun): string => `exit ${r.code} ${r.signal ?? ""}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;

/** A small deterministic PRNG (mulberry32), so that a failing run can be replayed from its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("200 concurrent ADDs on one host", { skip }, () => {
  const N = 200;
  let node: TestHost;
  let pods: Netns[];
  let config: Record<string, unknown>;
  const ids = Array.from({ length: N }, (_, i) => `crowd-${i}-${uniq()}`);

  before(() => {
    node = new TestHost("crowd");
    pods = ids.map((_, i) => node.pod(`p${i}`));
    config = {
      cniVersion: "1.1.0", name: node.network, type: "trellis", mtu: 1400,
      ipam: { type: "trellis-ipam", dataDir: node.dataDir, ranges: [[{ subnet: "10.90.0.0/23" }]] },
    };
  });
  after(() => node?.cleanup());

  test("all succeed with distinct addresses, one reservation file each; DEL of all leaves no file and no host veth", async () => {
    const adds = await Promise.all(ids.map((containerId, i) =>
      node.runAsync({ command: "ADD", config, containerId, netns: pods[i]!.path, ifname: IFNAME })));

    const addresses = adds.map((r, i) => {
      assert.equal(r.code, 0, `ADD ${i} failed: ${show(r)}`);
      const ips = (r.json?.ips ?? []) as Array<{ address: string }>;
      assert.equal(ips.length, 1, `ADD ${i}: ${r.stdout}`);
      return ips[0]!.address.split("/")[0]!;
    });
    assert.equal(new Set(addresses).size, N, "no address is given twice");
    const files = node.addressFiles();
    assert.equal(files.length, N, "exactly one reservation file per pod");
    assert.deepEqual(files, [...addresses].sort());
    addresses.forEach((ip, i) => {
      assert.equal(fs.readFileSync(path.join(node.ipamDir, ip), "utf8"), `${ids[i]}\r\n${IFNAME}`, `owner of ${ip}`);
    });
    assert.equal(node.trlLinks().length, N, "one host veth per pod");

    const dels = await Promise.all(ids.map((containerId, i) =>
      node.runAsync({ command: "DEL", config, containerId, netns: pods[i]!.path, ifname: IFNAME })));
    dels.forEach((r) => assertSilentSuccess(r));
    assert.deepEqual(node.addressFiles(), []);
    assert.deepEqual(node.trlLinks(), []);
  });
});

describe("ADDs killed with SIGKILL at random moments", { skip }, () => {
  const N = 20;
  let node: TestHost;
  let pods: Netns[];
  let config: Record<string, unknown>;
  const ids = Array.from({ length: N }, (_, i) => `killed-${i}-${uniq()}`);

  before(() => {
    node = new TestHost("kill");
    pods = ids.map((_, i) => node.pod(`k${i}`));
    config = {
      cniVersion: "1.1.0", name: node.network, type: "trellis",
      ipam: { type: "trellis-ipam", dataDir: node.dataDir, ranges: [[{ subnet: "10.91.0.0/24" }]] },
    };
  });
  after(() => node?.cleanup());

  // Twenty ADDs started together take a while to get going on a small machine: the longer windows
  // make sure kills land while IPAM holds a reservation and while the veth is half configured.
  for (const [seed, maxDelayMs] of [[1, 15], [2, 60], [3, 150]] as const) {
    test(`kills within ${maxDelayMs} ms (seed ${seed}): after DEL of each and a GC with no valid attachment, nothing is left`, async (t) => {
      const random = prng(seed);
      const delays = ids.map(() => Math.floor(random() * (maxDelayMs + 1)));
      // SIGKILL through an AbortSignal: node only signals a child it has not yet reaped, so a late
      // kill can never hit an unrelated process that reused the pid.
      const runs = await Promise.all(ids.map((containerId, i) => {
        const kill = new AbortController();
        setTimeout(() => kill.abort(), delays[i]!);
        return node.runAsync({ command: "ADD", config, containerId, netns: pods[i]!.path, ifname: IFNAME, signal: kill.signal });
      }));
      const killed = runs.filter((r) => r.signal === "SIGKILL").length;
      t.diagnostic(`${killed}/${N} ADDs killed, after ${delays.join(",")} ms`);
      for (const r of runs) assert.ok(r.signal === "SIGKILL" || r.code === 0, `an ADD that was not killed succeeds: ${show(r)}`);
      // What a killed plugin had started (an `ip -batch`) runs to its end; the runtime's DEL comes after.
      await node.idle();
      t.diagnostic(`left mid-way: ${node.addressFiles().length} reservations, ${node.trlLinks().length} host veths`);

      const dels = await Promise.all(ids.map((containerId, i) =>
        node.runAsync({ command: "DEL", config, containerId, netns: pods[i]!.path, ifname: IFNAME })));
      dels.forEach((r) => assertSilentSuccess(r));
      assertSilentSuccess(node.run({ command: "GC", config: { ...config, "cni.dev/valid-attachments": [] } }));

      assert.deepEqual(node.addressFiles(), [], `no reservation left (${killed}/${N} killed; delays ${delays.join(",")})`);
      assert.deepEqual(node.trlLinks(), [], `no host veth left (${killed}/${N} killed; delays ${delays.join(",")})`);
    });
  }
});
