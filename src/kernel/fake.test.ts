import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { KernelError } from "./exec.js";
import { FakePodKernel } from "./fake.js";

const NS = "/run/netns/pod1";

function kernelWithPod(): FakePodKernel {
  const k = new FakePodKernel();
  k.addNetns(NS);
  return k;
}

/** The fake must fail like `ip -batch` does, or the plugin's rollback tests would prove nothing. */
describe("FakePodKernel", () => {
  it("creates a veth pair with its peer in the pod namespace, and deleting one end removes both", () => {
    const k = kernelWithPod();
    k.hostBatch([`link add trl1 mtu 1400 address ee:ee:ee:ee:ee:ee type veth peer name eth0 address 0a:58:0a:01:00:02 netns ${NS}`]);
    assert.deepEqual(k.readLink("trl1"), { name: "trl1", kind: "veth", mac: "ee:ee:ee:ee:ee:ee", mtu: 1400, addresses: [] });
    assert.deepEqual(k.readLink("eth0", NS), { name: "eth0", kind: "veth", mac: "0a:58:0a:01:00:02", addresses: [] });
    assert.equal(k.deleteLink("trl1"), true);
    assert.equal(k.hasLink("eth0", NS), false);
    assert.equal(k.deleteLink("trl1"), false, "deleting a missing link reports false");
  });

  it("stops a batch at the first failing line and reports it as ip does ('Command failed -:N')", () => {
    const k = kernelWithPod();
    assert.throws(() => k.hostBatch(["link add br0 type bridge", "link add br0 type bridge", "link add br1 type bridge"]), (e: unknown) => {
      assert.ok(e instanceof KernelError);
      assert.equal(e.failedBatchLine, 2);
      assert.equal(e.exists, true);
      return true;
    });
    assert.equal(k.hasLink("br0"), true, "lines before the failure took effect");
    assert.equal(k.hasLink("br1"), false, "lines after it did not");
  });

  it("fails an injected batch at the given line, after letting `skip` batches through", () => {
    const k = kernelWithPod();
    k.failNext("host", 2, "RTNETLINK answers: Operation not permitted", 1);
    k.hostBatch(["link add a type bridge"]);
    assert.throws(() => k.hostBatch(["link add b type bridge", "link add c type bridge"]), (e: unknown) =>
      e instanceof KernelError && e.failedBatchLine === 2 && /Operation not permitted/.test(e.message));
    assert.equal(k.hasLink("b"), true);
    assert.equal(k.hasLink("c"), false);
    k.hostBatch(["link add c type bridge"]);
    assert.equal(k.hostBatches.length, 3, "every batch is recorded, failed or not");
  });

  it("refuses a pod batch for a namespace that does not exist, and reports such a path as missing", () => {
    const k = new FakePodKernel();
    assert.throws(() => k.podBatch("/run/netns/gone", ["link set lo up"]), KernelError);
    assert.equal(k.netnsState("/run/netns/gone"), "missing");
    k.addNetns(NS);
    assert.equal(k.netnsState(NS), "ok");
    k.netns.set(NS, "self");
    assert.equal(k.netnsState(NS), "self");
  });

  it("reads routes back the way `ip -j route` spells them", () => {
    const k = kernelWithPod();
    k.hostBatch([`link add trl1 type veth peer name eth0 netns ${NS}`, "route add 10.1.0.2/32 dev trl1 proto 201 scope link"]);
    k.podBatch(NS, ["addr add 10.1.0.2/32 dev eth0", "route add 169.254.1.1 dev eth0 scope link", "route add 0.0.0.0/0 via 169.254.1.1 dev eth0"]);
    assert.deepEqual(k.readRoutes(["10.1.0.2/32"]), [[{ dst: "10.1.0.2", dev: "trl1" }]]);
    assert.deepEqual(k.readRoutes(["0.0.0.0/0", "10.9.0.0/16"], NS), [[{ dst: "default", gateway: "169.254.1.1", dev: "eth0" }], []]);
    assert.deepEqual(k.readLink("eth0", NS)?.addresses, [{ address: "10.1.0.2", prefix: 32 }]);
  });

  it("keeps the kernel's route rules: one route per destination and metric whatever the device; IPv4 gateways reachable or onlink", () => {
    const k = kernelWithPod();
    k.hostBatch([`link add trl0 type veth peer name eth0 netns ${NS}`, `link add trl1 type veth peer name eth1 netns ${NS}`]);
    k.podBatch(NS, ["addr add 10.1.0.2/32 dev eth0", "route add 0.0.0.0/0 via 169.254.1.1 dev eth0 onlink"]);
    assert.throws(() => k.podBatch(NS, ["route add 0.0.0.0/0 via 169.254.1.1 dev eth1 onlink"]), (e: unknown) => e instanceof KernelError && e.exists);
    assert.throws(() => k.podBatch(NS, ["route add 10.9.0.0/16 via 169.254.1.1 dev eth1"]), /Nexthop has invalid gateway/);
    k.podBatch(NS, ["route add 0.0.0.0/0 via 169.254.1.1 dev eth1 onlink metric 100", "route add ::/0 via fe80::1 dev eth1"]);
    assert.deepEqual(k.readRoutes(["0.0.0.0/0", "::/0"], NS), [
      [{ dst: "default", gateway: "169.254.1.1", dev: "eth0" }, { dst: "default", gateway: "169.254.1.1", dev: "eth1", metric: 100 }],
      [{ dst: "default", gateway: "fe80::1", dev: "eth1", metric: 1024 }],
    ]);
  });

  it("leaves out an operation marked skipIfExists whose route is there, reports it, and goes on with the batch", () => {
    const k = kernelWithPod();
    k.hostBatch([`link add trl0 type veth peer name eth0 netns ${NS}`, `link add trl1 type veth peer name eth1 netns ${NS}`]);
    k.podApply(NS, [{ op: "route-add", dst: "0.0.0.0/0", dev: "eth0", via: "169.254.1.1", onlink: true, skipIfExists: true }]);
    const skipped = k.podApply(NS, [
      { op: "route-add", dst: "0.0.0.0/0", dev: "eth1", via: "169.254.1.1", onlink: true, skipIfExists: true },
      { op: "route-add", dst: "10.2.0.0/16", dev: "eth1", via: "169.254.1.1", onlink: true },
    ]);
    assert.deepEqual(skipped, [0]);
    assert.deepEqual(k.readRoutes(["10.2.0.0/16"], NS)[0]!.map((r) => r.dev), ["eth1"]);
    assert.throws(() => k.podApply(NS, [{ op: "route-add", dst: "10.2.0.0/16", dev: "eth0", via: "169.254.1.1", onlink: true }]),
      (e: unknown) => e instanceof KernelError && e.failedBatchLine === 1, "without the mark, EEXIST fails the batch");
  });

  it("lists host veths with their alias, not bridges or pod-side links", () => {
    const k = kernelWithPod();
    k.hostBatch([`link add trl1 type veth peer name eth0 netns ${NS}`, "link set trl1 alias trellis/net1/c/eth0", "link add br0 type bridge"]);
    assert.deepEqual(k.listVeths().map((l) => [l.name, l.alias]), [["trl1", "trellis/net1/c/eth0"]]);
  });
});
