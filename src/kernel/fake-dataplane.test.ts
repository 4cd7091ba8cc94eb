import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FakeDataplaneKernel } from "./fake-dataplane.js";
import { natScript, type Step } from "../dataplane/diff.js";
import { VTEP_NAME } from "../dataplane/state.js";

const ip = (line: string): Step => ({ tool: "ip", line });
const br = (line: string): Step => ({ tool: "bridge", line });
const create: Step[] = [
  ip(`link add ${VTEP_NAME} mtu 1450 address 0A:00:00:00:00:01 type vxlan id 1 local 10.99.1.11 dev eth0 dstport 8472 nolearning`),
  ip(`addr replace 10.244.1.0/32 dev ${VTEP_NAME}`),
  ip(`link set ${VTEP_NAME} up`),
  br(`fdb append 0a:00:00:00:00:02 dev ${VTEP_NAME} dst 10.99.1.12 self permanent`),
  ip(`neigh replace 10.244.2.0 lladdr 0a:00:00:00:00:02 dev ${VTEP_NAME} nud permanent`),
  ip(`route replace 10.244.2.0/24 via 10.244.2.0 dev ${VTEP_NAME} onlink proto 202`),
  ip("route replace 10.244.3.0/24 via 10.99.1.13 dev eth0 proto 202"),
];

function populated(): FakeDataplaneKernel {
  const k = new FakeDataplaneKernel();
  assert.deepEqual(k.applyNow(create), []);
  return k;
}

describe("FakeDataplaneKernel", () => {
  it("builds the VTEP and reads it back like the real kernel (lower-case MAC, empty address field)", async () => {
    const a = await populated().read();
    assert.deepEqual(a.vtep, { name: VTEP_NAME, vni: 1, port: 8472, localIp: "10.99.1.11", dev: "eth0", mtu: 1450, mac: "0a:00:00:00:00:01", address: "" });
    assert.equal(a.vtepUp, true);
    assert.deepEqual(a.vtepAddresses, ["10.244.1.0/32"]);
    assert.deepEqual(a.fdb, [{ mac: "0a:00:00:00:00:02", dst: "10.99.1.12" }]);
    assert.deepEqual(a.neigh, [{ ip: "10.244.2.0", mac: "0a:00:00:00:00:02" }]);
    assert.equal(a.routes.length, 2);
    assert.equal(a.natState, "absent");
  });

  it("refuses what the kernel refuses, and goes on with the next step like -force", () => {
    const k = new FakeDataplaneKernel();
    const errors = k.applyNow([
      ip(`route replace 10.244.2.0/24 via 10.244.2.0 dev ${VTEP_NAME} onlink proto 202`),
      create[0]!,
      ip(`route replace 10.244.2.0/24 via 10.244.2.0 dev ${VTEP_NAME} onlink proto 202`),
      ip("route replace 10.244.3.0/24 via 10.99.2.13 dev eth0 proto 202"),
      ip("route replace 10.244.3.0/24 via 10.99.1.13 dev eth9 proto 202"),
      create[0]!,
      ip("route del 10.244.9.0/24 proto 202"),
    ]);
    assert.equal(errors.length, 6);
    assert.match(errors[0]!, /Cannot find device/);
    assert.match(errors[1]!, /Nexthop device is not up/);
    assert.match(errors[2]!, /invalid gateway/);
    assert.match(errors[3]!, /Cannot find device "eth9"/);
    assert.match(errors[4]!, /File exists/);
    assert.match(errors[5]!, /No such process/);
    assert.ok(k.state.vtep);
  });

  it("setting the VTEP down flushes its routes and neighbours, keeps permanent FDB entries and other routes", () => {
    const k = populated();
    k.applyNow([ip(`link set ${VTEP_NAME} down`)]);
    assert.deepEqual(k.state.routes.map((r) => r.dst), ["10.244.3.0/24"]);
    assert.deepEqual(k.state.neigh, []);
    assert.equal(k.state.fdb.length, 1);
  });

  it("a MAC change flushes the neighbours; deleting the last address flushes routes too", () => {
    const k = populated();
    k.applyNow([ip(`link set ${VTEP_NAME} address 0a:00:00:00:00:09`)]);
    assert.deepEqual(k.state.neigh, []);
    assert.equal(k.state.routes.length, 2);
    k.applyNow([ip(`addr del 10.244.1.0/32 dev ${VTEP_NAME}`)]);
    assert.deepEqual(k.state.routes.map((r) => r.dst), ["10.244.3.0/24"]);
  });

  it("deleting the VTEP takes its entries and routes along", () => {
    const k = populated();
    k.applyNow([ip(`link del ${VTEP_NAME}`)]);
    const a = k.actual();
    assert.equal(a.vtep, undefined);
    assert.deepEqual([a.fdb, a.neigh, a.routes.map((r) => r.dst)], [[], [], ["10.244.3.0/24"]]);
  });

  it("applies and removes the NAT table", () => {
    const k = new FakeDataplaneKernel();
    k.applyNow([{ tool: "nft", script: natScript("10.244.0.0/16") }]);
    assert.deepEqual([k.actual().natState, k.actual().nat], ["ours", { podNetwork: "10.244.0.0/16" }]);
    k.applyNow([{ tool: "nft", script: natScript(undefined) }]);
    assert.deepEqual([k.actual().natState, k.actual().nat], ["absent", undefined]);
  });

  it("throws on a line it does not model, so tests cannot pass by accident", () => {
    const k = populated();
    assert.throws(() => k.applyNow([ip(`link set ${VTEP_NAME} promisc on`)]));
    assert.throws(() => k.applyNow([ip("rule add from all lookup 100")]));
    assert.throws(() => k.applyNow([br(`fdb add 0a:00:00:00:00:03 dev ${VTEP_NAME} dst 10.99.1.13`)]));
    assert.throws(() => k.applyNow([ip("route replace 10.244.4.0/24 via 10.99.1.14 dev eth0")]), /proto/);
    assert.throws(() => k.applyNow([{ tool: "nft", script: "flush ruleset\n" }]));
  });

  it("records calls, injects failures that change nothing, and can hold calls in flight", async () => {
    const k = new FakeDataplaneKernel();
    k.failNextApply("boom");
    assert.deepEqual(await k.apply(create), ["boom"]);
    assert.equal(k.state.vtep, undefined);
    k.failNextRead("no netlink");
    await assert.rejects(k.read(), /no netlink/);
    const release = k.hold();
    let done = false;
    const p = k.apply(create).then((e) => (done = true, e));
    await new Promise((r) => setImmediate(r));
    assert.equal(done, false);
    assert.equal(k.inFlight, 1);
    release();
    assert.deepEqual(await p, []);
    assert.deepEqual(k.calls.map((c) => c.op), ["apply", "read", "apply"]);
    assert.equal(k.appliedSteps.length, 2);
  });
});
