import assert from "node:assert/strict";
import { beforeEach, describe, it } from "node:test";
import { assertCniError } from "./assert-cni-error.js";
import { KernelError } from "../kernel/exec.js";
import { FakePodKernel } from "../kernel/fake.js";
import type { NetOp } from "../kernel/ops.js";
import { hostIfAlias, podHostIfName } from "./attachment.js";
import { CniError, ErrorCode } from "./errors.js";
import { mergeResults, trellisHandlers, type IpamRunner } from "./plugin.js";
import { parseRequest, type CniRequest, type Command } from "./request.js";
import { resultForVersion, type Result } from "./result.js";

const NS = "/run/netns/pod1";
const HOST = podHostIfName("ctr1", "eth0");
const CONFIG = { cniVersion: "1.1.0", name: "net1", type: "trellis", ipam: { type: "trellis-ipam", subnet: "10.1.0.0/24" } };
const IPAM_RESULT: Result = { cniVersion: "1.1.0", ips: [{ address: "10.1.0.2/24", gateway: "10.1.0.1" }] };

function request(command: Exclude<Command, "VERSION">, config: Record<string, unknown> = CONFIG, env: Record<string, string> = {}): CniRequest {
  const base = command === "GC" || command === "STATUS"
    ? { CNI_PATH: "/opt/cni/bin" }
    : { CNI_CONTAINERID: "ctr1", CNI_NETNS: NS, CNI_IFNAME: "eth0", CNI_PATH: "/opt/cni/bin" };
  return parseRequest(command, { CNI_COMMAND: command, ...base, ...env }, () => JSON.stringify(config));
}

/** A kernel that also writes its batches and deletions into a log shared with the fake IPAM. */
class LoggingKernel extends FakePodKernel {
  constructor(private readonly events: string[]) {
    super();
  }
  override hostApply(ops: readonly NetOp[]): number[] {
    this.events.push("host batch");
    return super.hostApply(ops);
  }
  override podApply(netns: string, ops: readonly NetOp[]): number[] {
    this.events.push(`pod batch ${netns}`);
    return super.podApply(netns, ops);
  }
  override deleteLink(name: string): boolean {
    this.events.push(`delete ${name}`);
    return super.deleteLink(name);
  }
}

/** An IPAM that hands out IPAM_RESULT (or fails as told) and logs every call. */
class FakeIpam implements IpamRunner {
  addResult: Result = IPAM_RESULT;
  failWith: Partial<Record<"add" | "del" | "gc", Error>> = {};
  constructor(private readonly events: string[]) {}
  add(req: CniRequest): Result {
    this.events.push(`ipam ADD ${req.containerId}/${req.ifname}`);
    if (this.failWith.add) throw this.failWith.add;
    return this.addResult;
  }
  del(req: CniRequest): void {
    this.events.push(`ipam DEL ${req.containerId}/${req.ifname}`);
    if (this.failWith.del) throw this.failWith.del;
  }
  check(req: CniRequest): void {
    this.events.push(`ipam CHECK ${req.containerId}/${req.ifname}`);
  }
  gc(): void {
    this.events.push("ipam GC");
    if (this.failWith.gc) throw this.failWith.gc;
  }
  status(): void {
    this.events.push("ipam STATUS");
  }
}


describe("trellis plugin", () => {
  let events: string[];
  let kernel: LoggingKernel;
  let ipam: FakeIpam;
  let logs: string[];
  let files: Map<string, string>;
  let plugin: ReturnType<typeof trellisHandlers>;

  beforeEach(() => {
    events = [];
    kernel = new LoggingKernel(events);
    kernel.addNetns(NS);
    ipam = new FakeIpam(events);
    logs = [];
    files = new Map();
    plugin = trellisHandlers({
      kernel,
      env: {},
      log: (l) => logs.push(l),
      readFile: (p) => {
        const text = files.get(p);
        if (text === undefined) throw new Error(`ENOENT: ${p}`);
        return text;
      },
      ipamFor: () => ipam,
    });
  });

  describe("ADD", () => {
    it("refuses bridge mode on a node that enforces network policy, before allocating anything", () => {
      files.set("/run/trellis/subnet.env", "TRELLIS_SUBNET=10.1.0.0/24\nTRELLIS_NODE=n1\nTRELLIS_ENDPOINT_DIR=/run/trellis/endpoints\n");
      const cfg = { ...CONFIG, mode: "bridge", ipam: { type: "trellis-ipam", subnetFile: "/run/trellis/subnet.env" } };
      assertCniError(() => plugin.add(request("ADD", cfg)), ErrorCode.InvalidNetworkConfig, "bridge", "--no-policy");
      assert.deepEqual(events, [], "no address taken, nothing created");
    });

    it("allocates with IPAM, then sets up the host side, then the pod side", () => {
      plugin.add(request("ADD"));
      assert.deepEqual(events, ["ipam ADD ctr1/eth0", "host batch", `pod batch ${NS}`]);
      assert.equal(kernel.readLink(HOST)?.alias, hostIfAlias("net1", "ctr1", "eth0"));
      assert.deepEqual(kernel.readLink("eth0", NS)?.addresses, [{ address: "10.1.0.2", prefix: 32 }]);
      assert.equal(kernel.sysctls.get("net.ipv4.ip_forward"), "1");
    });

    it("returns the routed-mode result: host veth and pod interface, the /32 address via 169.254.1.1", () => {
      const result = plugin.add(request("ADD"));
      assert.deepEqual(result.interfaces?.map((i) => i.name), [HOST, "eth0"]);
      assert.deepEqual(result.ips, [{ address: "10.1.0.2/32", gateway: "169.254.1.1", interface: 1 }]);
      assert.deepEqual(result.routes, [{ dst: "0.0.0.0/0", gw: "169.254.1.1" }]);
    });

    it("takes the MTU from the subnet file the agent wrote when the config sets none", () => {
      files.set("/run/trellis/subnet.env", "TRELLIS_SUBNET=10.1.0.0/24\nTRELLIS_MTU=1400\n");
      const config = { ...CONFIG, ipam: { type: "trellis-ipam", subnetFile: "/run/trellis/subnet.env" } };
      const result = plugin.add(request("ADD", config));
      assert.equal(kernel.readLink("eth0", NS)?.mtu, 1400);
      assert.equal(kernel.readLink(HOST)?.mtu, 1400);
      assert.equal(result.interfaces?.[1]?.mtu, 1400);
    });

    it("lets the config's MTU win over the subnet file's", () => {
      files.set("/run/trellis/subnet.env", "TRELLIS_SUBNET=10.1.0.0/24\nTRELLIS_MTU=1400\n");
      const config = { ...CONFIG, mtu: 9000, ipam: { type: "trellis-ipam", subnetFile: "/run/trellis/subnet.env" } };
      plugin.add(request("ADD", config));
      assert.equal(kernel.readLink("eth0", NS)?.mtu, 9000);
    });

    it("when the pod side fails: deletes the host veth, releases the address, and reports code 100", () => {
      kernel.failNext("pod", 3, "RTNETLINK answers: Network is unreachable");
      assertCniError(() => plugin.add(request("ADD")), ErrorCode.KernelFailure, `cannot configure eth0 in ${NS}`, "Network is unreachable");
      assert.deepEqual(events, ["ipam ADD ctr1/eth0", "host batch", `pod batch ${NS}`, `delete ${HOST}`, "ipam DEL ctr1/eth0"]);
      assert.equal(kernel.hasLink(HOST), false);
      assert.equal(kernel.hasLink("eth0", NS), false, "the peer went with the host end");
    });

    it("when the host side fails after creating the veth: deletes it and releases the address", () => {
      kernel.failNext("host", 4, "RTNETLINK answers: Invalid argument");
      assertCniError(() => plugin.add(request("ADD")), ErrorCode.KernelFailure, "cannot set up host side of ctr1/eth0", "Invalid argument");
      assert.deepEqual(events, ["ipam ADD ctr1/eth0", "host batch", `delete ${HOST}`, "ipam DEL ctr1/eth0"]);
      assert.equal(kernel.hasLink(HOST), false);
    });

    it("when the veth already exists on the host: deletes nothing it did not create, and says so", () => {
      kernel.addLink({ name: HOST, kind: "veth", alias: hostIfAlias("net1", "ctr1", "eth0") });
      assertCniError(() => plugin.add(request("ADD")), ErrorCode.KernelFailure, `host interface ${HOST} already exists`);
      assert.deepEqual(kernel.deleted, []);
      assert.equal(kernel.hasLink(HOST), true, "the existing veth is untouched");
      assert.deepEqual(events, ["ipam ADD ctr1/eth0", "host batch", "ipam DEL ctr1/eth0"]);
    });

    it("when the interface name is already taken in the pod: deletes nothing and names the interface", () => {
      kernel.addLink({ name: "eth0", kind: "dummy" }, NS);
      assertCniError(() => plugin.add(request("ADD")), ErrorCode.KernelFailure, `interface eth0 already exists in ${NS}`);
      assert.deepEqual(kernel.deleted, []);
      assert.equal(kernel.hasLink("eth0", NS), true);
    });

    it("when the host batch fails without saying which line: deletes nothing, releases the address", () => {
      kernel.hostApply = () => {
        throw new KernelError("ip -batch -", null, "spawnSync ip ENOENT");
      };
      assertCniError(() => plugin.add(request("ADD")), ErrorCode.KernelFailure, "ENOENT");
      assert.deepEqual(kernel.deleted, []);
      assert.deepEqual(events, ["ipam ADD ctr1/eth0", "ipam DEL ctr1/eth0"]);
    });

    it("when IPAM fails: passes its error up and touches no kernel state", () => {
      ipam.failWith.add = new CniError(ErrorCode.PoolExhausted, "no IP addresses available in range set: 10.1.0.1-10.1.0.254");
      assertCniError(() => plugin.add(request("ADD")), ErrorCode.PoolExhausted, "no IP addresses available");
      assert.deepEqual(events, ["ipam ADD ctr1/eth0"]);
      assert.deepEqual(kernel.batches, []);
      assert.deepEqual(kernel.deleted, []);
      assert.equal(kernel.sysctls.size, 0);
    });

    it("when IPAM returns no address: releases and reports code 7 without touching the kernel", () => {
      ipam.addResult = { cniVersion: "1.1.0", ips: [] };
      assertCniError(() => plugin.add(request("ADD")), ErrorCode.InvalidNetworkConfig, "returned no address");
      assert.deepEqual(events, ["ipam ADD ctr1/eth0", "ipam DEL ctr1/eth0"]);
      assert.deepEqual(kernel.batches, []);
    });

    it("reports the kernel error, not the rollback's, when the rollback's IPAM DEL fails too", () => {
      kernel.failNext("pod", 1, "RTNETLINK answers: Permission denied");
      ipam.failWith.del = new Error("disk full");
      assertCniError(() => plugin.add(request("ADD")), ErrorCode.KernelFailure, "Permission denied");
      assert.ok(logs.some((l) => l.includes("rollback: IPAM DEL failed: disk full")), logs.join("\n"));
    });

    for (const [state, why] of [
      ["missing", "does not exist"],
      ["inaccessible", "cannot be opened"],
      ["self", "is the plugin's own network namespace"],
      ["host", "is the host's initial network namespace"],
      ["not-a-netns", "is not a network namespace"],
    ] as const) {
      it(`refuses a netns that ${why} with code 8, before asking IPAM`, () => {
        kernel.netns.set(NS, state);
        assertCniError(() => plugin.add(request("ADD")), ErrorCode.InvalidNetns, `invalid CNI_NETNS "${NS}"`, why);
        assert.deepEqual(events, []);
        assert.deepEqual(kernel.batches, []);
        assert.equal(kernel.sysctls.size, 0);
      });
    }

    it("refuses an invalid plugin config with code 7 before doing anything", () => {
      assertCniError(() => plugin.add(request("ADD", { ...CONFIG, mode: "overlay" })), ErrorCode.InvalidNetworkConfig, "mode", "overlay");
      assert.deepEqual(events, []);
    });

    it("appends its interfaces and addresses to a chained plugin's prevResult", () => {
      const prevResult = { cniVersion: "1.1.0", interfaces: [{ name: "lo" }], ips: [{ address: "127.0.0.1/8", interface: 0 }] };
      const result = plugin.add(request("ADD", { ...CONFIG, prevResult }));
      assert.deepEqual(result.interfaces?.map((i) => i.name), ["lo", HOST, "eth0"]);
      assert.deepEqual(result.ips, [
        { address: "127.0.0.1/8", interface: 0 },
        { address: "10.1.0.2/32", gateway: "169.254.1.1", interface: 2 },
      ]);
    });

    describe("bridge mode", () => {
      const BRIDGE_CONFIG = { ...CONFIG, mode: "bridge" };

      it("creates the bridge when missing and plugs the veth into it", () => {
        const result = plugin.add(request("ADD", BRIDGE_CONFIG));
        assert.equal(kernel.readLink("trellis0")?.kind, "bridge");
        assert.deepEqual(kernel.readLink("trellis0")?.addresses, [{ address: "10.1.0.1", prefix: 24 }]);
        assert.equal(kernel.readLink(HOST)?.master, "trellis0");
        assert.deepEqual(result.ips, [{ address: "10.1.0.2/24", gateway: "10.1.0.1", interface: 2 }]);
      });

      it("reuses a bridge that another ADD created between the look and the write", () => {
        kernel.addLink({ name: "trellis0", kind: "bridge" });
        let looked = false;
        kernel.linkExists = (name) => (name === "trellis0" && !looked ? ((looked = true), false) : kernel.hasLink(name));
        plugin.add(request("ADD", BRIDGE_CONFIG));
        assert.equal(kernel.hostBatches.length, 2);
        assert.equal(kernel.hostBatches[0]![0], "link add trellis0 type bridge");
        assert.equal(kernel.hostBatches[1]!.some((l) => l.includes("type bridge") && l.startsWith("link add")), false);
        assert.equal(kernel.readLink(HOST)?.master, "trellis0");
      });

      it("rolls back when the retry after that race fails past the veth", () => {
        kernel.addLink({ name: "trellis0", kind: "bridge" });
        let looked = false;
        kernel.linkExists = (name) => (name === "trellis0" && !looked ? ((looked = true), false) : kernel.hasLink(name));
        kernel.failNext("host", 5, "RTNETLINK answers: Operation not supported", 1);
        assertCniError(() => plugin.add(request("ADD", BRIDGE_CONFIG)), ErrorCode.KernelFailure, "Operation not supported");
        assert.equal(kernel.hasLink(HOST), false);
        assert.deepEqual(events.slice(-2), [`delete ${HOST}`, "ipam DEL ctr1/eth0"]);
      });
    });
  });

  describe("DEL", () => {
    it("deletes the host veth and releases the address", () => {
      plugin.add(request("ADD"));
      events.length = 0;
      plugin.del(request("DEL"));
      assert.deepEqual(events, [`delete ${HOST}`, "ipam DEL ctr1/eth0"]);
      assert.equal(kernel.hasLink(HOST), false);
      assert.equal(kernel.hasLink("eth0", NS), false);
    });

    it("releases the address even when the veth is already gone, and succeeds twice in a row", () => {
      plugin.add(request("ADD"));
      events.length = 0;
      plugin.del(request("DEL"));
      plugin.del(request("DEL"));
      assert.deepEqual(events, [`delete ${HOST}`, "ipam DEL ctr1/eth0", `delete ${HOST}`, "ipam DEL ctr1/eth0"]);
    });

    it("succeeds without CNI_NETNS and for a namespace that no longer exists", () => {
      kernel.netns.set(NS, "missing");
      plugin.del(request("DEL", CONFIG, { CNI_NETNS: "" }));
      assert.deepEqual(events, [`delete ${HOST}`, "ipam DEL ctr1/eth0"]);
    });

    it("releases the address even when the veth cannot be deleted, then reports code 100", () => {
      kernel.failDelete(HOST, new KernelError(`ip link del ${HOST}`, 2, "RTNETLINK answers: Operation not permitted"));
      assertCniError(() => plugin.del(request("DEL")), ErrorCode.KernelFailure, `cannot delete ${HOST}`, "Operation not permitted");
      assert.deepEqual(events, [`delete ${HOST}`, "ipam DEL ctr1/eth0"]);
    });
  });

  describe("CHECK", () => {
    function addThenCheckRequest(): CniRequest {
      const result = plugin.add(request("ADD"));
      return request("CHECK", { ...CONFIG, prevResult: resultForVersion(result, "1.1.0") });
    }

    it("passes right after ADD, and asks IPAM to check too", () => {
      const req = addThenCheckRequest();
      plugin.check(req);
      assert.equal(events.at(-1), "ipam CHECK ctr1/eth0");
    });

    it("refuses the host's initial network namespace with code 8 before asking IPAM or reading the kernel", () => {
      const req = addThenCheckRequest();
      const before = events.length;
      kernel.netns.set(NS, "host");
      assertCniError(() => plugin.check(req), ErrorCode.InvalidNetns, "is the host's initial network namespace");
      assert.equal(events.length, before);
    });

    it("fails with code 103 when the host route to the pod is gone", () => {
      const req = addThenCheckRequest();
      assert.ok(kernel.removeRoute("10.1.0.2/32"));
      assertCniError(() => plugin.check(req), ErrorCode.CheckFailed, `host route 10.1.0.2/32 dev ${HOST} missing`);
    });

    it("fails with code 103 when the pod's default route is gone", () => {
      const req = addThenCheckRequest();
      assert.ok(kernel.removeRoute("0.0.0.0/0", NS));
      assertCniError(() => plugin.check(req), ErrorCode.CheckFailed, `route 0.0.0.0/0 via 169.254.1.1 dev eth0 missing in ${NS}`);
    });

    it("fails with code 103 when the pod interface is gone", () => {
      const req = addThenCheckRequest();
      kernel.deleteLink(HOST);
      assertCniError(() => plugin.check(req), ErrorCode.CheckFailed, `interface eth0 not found in ${NS}`);
    });

    it("requires a prevResult (code 7)", () => {
      assertCniError(() => plugin.check(request("CHECK")), ErrorCode.InvalidNetworkConfig, "prevResult");
    });
  });

  describe("a pod on two networks: eth0 (net1) then eth1 (net2), each its own ADD", () => {
    const NET2 = { ...CONFIG, name: "net2", ipam: { type: "trellis-ipam", subnet: "10.2.0.0/24" } };
    const SECOND: Result = { cniVersion: "1.1.0", ips: [{ address: "10.2.0.7/24", gateway: "10.2.0.1" }], routes: [{ dst: "10.2.0.0/16" }] };
    const HOST1 = podHostIfName("ctr1", "eth1");
    const eth1 = { CNI_IFNAME: "eth1" };
    const defaults = (): Array<{ dev?: string; metric?: number }> =>
      kernel.readRoutes(["0.0.0.0/0"], NS)[0]!.map((r) => ({ dev: r.dev, ...(r.metric !== undefined ? { metric: r.metric } : {}) }));

    function addBoth(net2: Record<string, unknown> = NET2): { first: Result; second: Result } {
      const first = plugin.add(request("ADD"));
      ipam.addResult = SECOND;
      const second = plugin.add(request("ADD", net2, eth1));
      return { first, second };
    }
    const checkOf = (config: Record<string, unknown>, result: Result, env: Record<string, string> = {}): CniRequest =>
      request("CHECK", { ...config, prevResult: resultForVersion(result, "1.1.0") }, env);

    it("both attach; the default route stays with eth0 and is left out of eth1's result, which says so in the log", () => {
      const { first, second } = addBoth();
      assert.deepEqual(first.routes, [{ dst: "0.0.0.0/0", gw: "169.254.1.1" }]);
      assert.deepEqual(second.routes, [{ dst: "10.2.0.0/16", gw: "169.254.1.1" }], "exactly the routes that were made");
      assert.deepEqual(defaults(), [{ dev: "eth0" }], "one default route in the pod");
      assert.deepEqual(kernel.readRoutes(["10.2.0.0/16"], NS)[0]!.map((r) => r.dev), ["eth1"]);
      assert.deepEqual(kernel.readLink("eth1", NS)?.addresses, [{ address: "10.2.0.7", prefix: 32 }]);
      assert.ok(logs.some((l) => /ctr1\/eth1: route 0\.0\.0\.0\/0 left out/.test(l)), logs.join("\n"));
    });

    it("CHECK passes for each attachment; eth1's fails when its own route is gone, even though eth0 has one like it", () => {
      const { first, second } = addBoth();
      plugin.check(checkOf(CONFIG, first));
      plugin.check(checkOf(NET2, second, eth1));
      assert.ok(kernel.removeRoute("10.2.0.0/16", NS, "eth1"));
      assertCniError(() => plugin.check(checkOf(NET2, second, eth1)), ErrorCode.CheckFailed, `route 10.2.0.0/16 via 169.254.1.1 dev eth1 missing in ${NS}`);
    });

    it("DEL of eth0 leaves eth1 whole (interface, address, routes, host veth and its /32), and eth1's CHECK still passes", () => {
      const { second } = addBoth();
      plugin.del(request("DEL"));
      plugin.del(request("DEL"));
      assert.equal(kernel.hasLink("eth0", NS), false);
      assert.equal(kernel.hasLink(HOST1), true);
      assert.deepEqual(kernel.readRoutes(["10.2.0.7/32"])[0]!.map((r) => r.dev), [HOST1]);
      assert.deepEqual(kernel.readLink("eth1", NS)?.addresses, [{ address: "10.2.0.7", prefix: 32 }]);
      plugin.check(checkOf(NET2, second, eth1));
      assert.deepEqual(defaults(), [], "eth1 does not take the default route over: it never had it");
    });

    it("with routeMetric on net2: both default routes, eth1's with that metric, both reported and checked", () => {
      const net2 = { ...NET2, routeMetric: 100 };
      const { first, second } = addBoth(net2);
      assert.deepEqual(second.routes, [{ dst: "0.0.0.0/0", gw: "169.254.1.1", priority: 100 }, { dst: "10.2.0.0/16", gw: "169.254.1.1", priority: 100 }]);
      assert.deepEqual(defaults(), [{ dev: "eth0" }, { dev: "eth1", metric: 100 }]);
      plugin.check(checkOf(CONFIG, first));
      plugin.check(checkOf(net2, second, eth1));
      assert.ok(kernel.removeRoute("0.0.0.0/0", NS, "eth1"));
      assertCniError(() => plugin.check(checkOf(net2, second, eth1)), ErrorCode.CheckFailed, "route 0.0.0.0/0 via 169.254.1.1 dev eth1 metric 100 missing");
    });

    it("a routeMetric equal to the other interface's default route's is refused with code 100, saying why, and rolled back", () => {
      plugin.add(request("ADD"));
      ipam.addResult = SECOND;
      events.length = 0;
      assertCniError(() => plugin.add(request("ADD", { ...NET2, routeMetric: 0 }, eth1)), ErrorCode.KernelFailure,
        "cannot configure eth1", "already has a route 0.0.0.0/0 of metric 0", "another routeMetric");
      assert.equal(kernel.hasLink(HOST1), false, "the veth is gone");
      assert.deepEqual(events.slice(-2), [`delete ${HOST1}`, "ipam DEL ctr1/eth1"]);
      assert.deepEqual(defaults(), [{ dev: "eth0" }], "eth0 keeps its default route");
    });
  });

  describe("GC", () => {
    const gcConfig = (valid: Array<{ containerID: string; ifname: string }>): Record<string, unknown> =>
      ({ ...CONFIG, "cni.dev/valid-attachments": valid });

    beforeEach(() => {
      kernel.addLink({ name: "trlstale", kind: "veth", alias: hostIfAlias("net1", "gone", "eth0") });
      kernel.addLink({ name: "trlvalid", kind: "veth", alias: hostIfAlias("net1", "alive", "eth0") });
      kernel.addLink({ name: "trlother", kind: "veth", alias: hostIfAlias("net2", "gone", "eth0") });
      kernel.addLink({ name: "vethdocker", kind: "veth" });
      kernel.addLink({ name: "cali12345", kind: "veth", alias: "calico/net1/gone/eth0" });
      kernel.addLink({ name: "trellis0", kind: "bridge", alias: hostIfAlias("net1", "gone", "eth1") });
    });

    it("removes only this network's veths that are not in cni.dev/valid-attachments, then runs IPAM GC", () => {
      plugin.gc(request("GC", gcConfig([{ containerID: "alive", ifname: "eth0" }])));
      assert.deepEqual(kernel.deleted, ["trlstale"]);
      assert.equal(events.at(-1), "ipam GC");
      assert.deepEqual(kernel.listVeths().map((l) => l.name).sort(), ["cali12345", "trlother", "trlvalid", "vethdocker"]);
    });

    it("keeps a valid attachment only for its own interface name", () => {
      plugin.gc(request("GC", gcConfig([{ containerID: "alive", ifname: "eth1" }])));
      assert.deepEqual(kernel.deleted.sort(), ["trlstale", "trlvalid"]);
    });

    it("treats a missing list as 'nothing is valid'", () => {
      plugin.gc(request("GC", CONFIG));
      assert.deepEqual(kernel.deleted.sort(), ["trlstale", "trlvalid"]);
    });

    it("rejects a malformed valid-attachments list with code 7 before deleting anything", () => {
      assertCniError(() => plugin.gc(request("GC", { ...CONFIG, "cni.dev/valid-attachments": [{ containerID: "x" }] })),
        ErrorCode.InvalidNetworkConfig, "valid-attachments");
      assert.deepEqual(kernel.deleted, []);
    });

    it("keeps going past a veth it cannot delete, still runs IPAM GC, and reports what failed", () => {
      kernel.failDelete("trlstale", new KernelError("ip link del trlstale", 2, "RTNETLINK answers: Operation not permitted"));
      assertCniError(() => plugin.gc(request("GC", gcConfig([]))), ErrorCode.KernelFailure, "GC could not remove everything", "trlstale");
      assert.deepEqual(kernel.deleted.sort(), ["trlstale", "trlvalid"]);
      assert.equal(events.at(-1), "ipam GC");
    });

    it("reports an IPAM GC failure after removing the veths", () => {
      ipam.failWith.gc = new Error("cannot read /var/lib/cni/networks/net1");
      assertCniError(() => plugin.gc(request("GC", gcConfig([]))), ErrorCode.KernelFailure, "ipam: cannot read");
      assert.deepEqual(kernel.deleted.sort(), ["trlstale", "trlvalid"]);
    });
  });

  describe("STATUS", () => {
    it("asks IPAM whether addresses are available", () => {
      plugin.status(request("STATUS"));
      assert.deepEqual(events, ["ipam STATUS"]);
    });
  });
});

describe("mergeResults", () => {
  const ours: Result = {
    cniVersion: "1.1.0",
    interfaces: [{ name: "trl1" }, { name: "eth0", sandbox: NS }],
    ips: [{ address: "10.1.0.2/32", gateway: "169.254.1.1", interface: 1 }],
    routes: [{ dst: "0.0.0.0/0", gw: "169.254.1.1" }],
  };

  it("returns our result unchanged when there is no previous one", () => {
    assert.equal(mergeResults(undefined, ours), ours);
  });

  it("appends our interfaces and offsets our interface indexes by the previous count", () => {
    const prev: Result = {
      cniVersion: "1.0.0",
      interfaces: [{ name: "lo" }, { name: "net0", sandbox: NS }],
      ips: [{ address: "192.168.0.5/24", interface: 1 }],
      routes: [{ dst: "192.168.0.0/16" }],
      dns: { nameservers: ["192.168.0.1"] },
    };
    assert.deepEqual(mergeResults(prev, ours), {
      cniVersion: "1.1.0",
      interfaces: [{ name: "lo" }, { name: "net0", sandbox: NS }, { name: "trl1" }, { name: "eth0", sandbox: NS }],
      ips: [{ address: "192.168.0.5/24", interface: 1 }, { address: "10.1.0.2/32", gateway: "169.254.1.1", interface: 3 }],
      routes: [{ dst: "192.168.0.0/16" }, { dst: "0.0.0.0/0", gw: "169.254.1.1" }],
      dns: { nameservers: ["192.168.0.1"] },
    });
  });

  it("prefers our DNS over the previous result's", () => {
    const dns = { nameservers: ["10.96.0.10"] };
    assert.deepEqual(mergeResults({ cniVersion: "1.1.0", dns: { nameservers: ["1.1.1.1"] } }, { ...ours, dns }).dns, dns);
  });

  it("does not modify either input", () => {
    const prev: Result = { cniVersion: "1.1.0", interfaces: [{ name: "lo" }] };
    const copy = structuredClone(ours);
    mergeResults(prev, ours);
    assert.deepEqual(ours, copy);
    assert.deepEqual(prev, { cniVersion: "1.1.0", interfaces: [{ name: "lo" }] });
  });
});
