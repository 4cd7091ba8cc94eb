// The BGP controller over a fake BIRD: the first config starts BIRD, later ones are applied with
// `birdc configure` (never a restart); a config BIRD's parser refuses is reported with BIRD's own
// message and the previous one stays in force; a BIRD found dead is started again in
// graceful-restart recovery; a prefix refused by the import filter is reported once; a backend
// switch away from bgp stops BIRD.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, it } from "node:test";
import type { Datastore, KeyValue } from "../datastore/types.js";
import { birdFiles, type BirdKernel } from "../kernel/bird.js";
import type { Lease } from "../model/lease.js";
import { validateNetworkConfig } from "../model/network.js";
import { BgpController, type BgpInputs } from "./controller.js";

class FakeBird implements BirdKernel {
  readonly files;
  running: number | undefined;
  refuse: string | undefined;
  calls: string[] = [];
  protocols = "BIRD 2.0.12 ready.\n";
  filtered = "";
  constructor(dir: string) {
    this.files = birdFiles(dir);
  }
  async check(conf: string): Promise<string | undefined> {
    this.calls.push(`check ${path.basename(conf)}`);
    return this.refuse;
  }
  pid(): number | undefined {
    return this.running;
  }
  async start(recover?: boolean): Promise<number> {
    this.calls.push(recover ? "start -R" : "start");
    this.running = 4242;
    return 4242;
  }
  async configure(): Promise<string | undefined> {
    this.calls.push("configure");
    return undefined;
  }
  async show(args: readonly string[]): Promise<string> {
    return args[0] === "protocols" ? this.protocols : this.filtered;
  }
  async down(): Promise<void> {
    this.calls.push("down");
    this.running = undefined;
  }
}

/** A datastore holding no node settings and no peers (the controller only lists and watches them here). */
const emptyStore = { list: async () => ({ items: [] as KeyValue[], revision: 1 }), watch: () => undefined } as unknown as Datastore;

const lease = (node: string, subnet: string, ip: string): Lease => ({ subnet, node, publicIp: ip, backend: "bgp", renewedAt: 0, expiresAt: 0 });
const inputs = (nodes = 2, backend = "bgp"): BgpInputs => {
  const leases = [lease("node1", "10.244.1.0/24", "10.99.1.11"), lease("node2", "10.244.2.0/24", "10.99.1.12"), lease("node3", "10.244.3.0/24", "10.99.1.13")].slice(0, nodes);
  return { config: validateNetworkConfig({ network: "10.244.0.0/16", backend: { type: backend } }), self: leases[0]!, underlayCidr: "10.99.1.11/24", leases };
};

describe("BgpController", () => {
  const dirs: string[] = [];
  const stops: AbortController[] = [];
  after(() => {
    stops.forEach((a) => a.abort());
    dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true }));
  });

  async function setUp(): Promise<{ c: BgpController; bird: FakeBird; logs: string[]; ac: AbortController }> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "trellis-bgp-"));
    dirs.push(dir);
    const bird = new FakeBird(dir);
    const logs: string[] = [];
    const ac = new AbortController();
    stops.push(ac);
    const c = new BgpController({ node: "node1", store: emptyStore, bird, log: (l) => logs.push(l), signal: ac.signal, resyncMs: 3_600_000, statusMs: 3_600_000, onChange: () => undefined });
    await c.start();
    return { c, bird, logs, ac };
  }

  it("starts BIRD on the first config (BIRD's parser first), then reconfigures in place", async () => {
    const { c, bird, ac } = await setUp();
    c.update(inputs(2));
    await c.settled();
    assert.deepEqual(bird.calls, ["check bird.conf.new", "start"]);
    assert.match(fs.readFileSync(bird.files.conf, "utf8"), /protocol bgp node_node2 from trellis_node/);
    c.update(inputs(3));
    await c.settled();
    assert.deepEqual(bird.calls.slice(2), ["check bird.conf.new", "configure"]);
    assert.match(fs.readFileSync(bird.files.conf, "utf8"), /protocol bgp node_node3/);
    c.update(inputs(3));
    await c.settled();
    assert.equal(bird.calls.length, 4, "an unchanged config is not applied again");
    ac.abort();
  });

  it("a config BIRD refuses: BIRD's message is reported, the previous config stays in force", async () => {
    const { c, bird, logs, ac } = await setUp();
    c.update(inputs(2));
    await c.settled();
    const before = fs.readFileSync(bird.files.conf, "utf8");
    bird.refuse = "bird.conf.new:42:7 syntax error, unexpected CF_SYM_UNDEFINED";
    c.update(inputs(3));
    await c.settled();
    assert.equal(fs.readFileSync(bird.files.conf, "utf8"), before);
    assert.ok(!bird.calls.includes("configure"));
    assert.ok(logs.some((l) => l === `bgp: BIRD refuses the new config (${bird.refuse}); the previous one stays in force`), logs.join("\n"));
    assert.equal(c.status()?.configError, `BIRD refuses the new config (${bird.refuse}); the previous one stays in force`);
    assert.equal(fs.existsSync(`${bird.files.conf}.new`), false, "the refused file is not left behind");
    ac.abort();
  });

  it("a BIRD found dead is started again in graceful-restart recovery", async () => {
    const { c, bird, logs, ac } = await setUp();
    c.update(inputs(2));
    await c.settled();
    bird.running = undefined;
    await c.poll(); // as the status timer does
    await c.settled();
    assert.deepEqual(bird.calls.slice(-2), ["check bird.conf.new", "start -R"]);
    assert.ok(logs.some((l) => /started BIRD \(pid 4242\) in graceful-restart recovery/.test(l)));
    ac.abort();
  });

  it("reports each prefix a peer announced outside the pod network once, and in the status", async () => {
    const { c, bird, logs, ac } = await setUp();
    bird.protocols = [
      "BIRD 2.0.12 ready.", "Name       Proto      Table      State  Since         Info",
      "node_node2 BGP        ---        up     2026-12-06 22:20:10  Established", "  Description:    mesh node2",
      "  BGP state:          Established", "    Neighbor address: 10.99.1.12", "  Channel ipv4",
      "    Routes:         1 imported, 1 filtered, 1 exported, 1 preferred", "",
    ].join("\n");
    bird.filtered = "Table master4:\n192.168.7.0/24       unicast [node_node2 22:21:00] ! (100)\n";
    c.update(inputs(2));
    await c.settled();
    c.update(inputs(3));
    await c.settled();
    assert.equal(logs.filter((l) => l === "bgp: mesh node2 announced 192.168.7.0/24, which is not a pod-network block: ignored").length, 1);
    const s = c.status()!.sessions.find((x) => x.peer === "node2")!;
    assert.deepEqual([s.state, s.received, s.exported, s.rejected], ["Established", 2, 1, ["192.168.7.0/24"]]);
    assert.equal(c.status()!.sessions.find((x) => x.peer === "node3")!.state, "missing");
    ac.abort();
  });

  it("a switch to another backend stops BIRD (it withdraws its routes)", async () => {
    const { c, bird, ac } = await setUp();
    c.update(inputs(2));
    await c.settled();
    c.update(inputs(2, "vxlan"));
    await c.settled();
    assert.equal(bird.calls.at(-1), "down");
    assert.equal(c.peerTransports(), undefined);
    ac.abort();
  });
});
