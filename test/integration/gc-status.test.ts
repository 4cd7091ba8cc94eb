// CNI 1.1.0's GC and STATUS, black-box. GC is given the attachments the runtime still considers
// valid and must remove everything else of the network (host veth and address) while keeping the
// valid ones working; STATUS says whether an ADD could be served right now.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { assertCniError, assertJsonSuccess, assertSilentSuccess } from "../helpers/cni-assert.js";
import { TestHost } from "../helpers/host.js";
import { integrationSkip, linkNames, uniq, type Netns } from "../helpers/netns.js";

const skip = integrationSkip();
const IFNAME = "eth0";

interface Added {
  containerId: string;
  pod: Netns;
  hostVeth: string;
  ip: string;
  result: Record<string, unknown>;
}

function addPod(node: TestHost, config: Record<string, unknown>, name: string): Added {
  const pod = node.pod(name);
  const containerId = `${name}-${uniq()}`;
  const result = assertJsonSuccess(node.run({ command: "ADD", config, containerId, netns: pod.path, ifname: IFNAME }));
  const interfaces = result.interfaces as Array<{ name: string; sandbox?: string }>;
  const ips = result.ips as Array<{ address: string }>;
  return { containerId, pod, hostVeth: interfaces.find((i) => !i.sandbox)!.name, ip: ips[0]!.address.split("/")[0]!, result };
}

const attachment = (a: Added): { containerID: string; ifname: string } => ({ containerID: a.containerId, ifname: IFNAME });

describe("GC", { skip }, () => {
  let node: TestHost;
  let config: Record<string, unknown>;
  before(() => {
    node = new TestHost("gc");
    config = {
      cniVersion: "1.1.0", name: node.network, type: "trellis",
      ipam: { type: "trellis-ipam", dataDir: node.dataDir, ranges: [[{ subnet: "10.86.0.0/24" }]] },
    };
  });
  after(() => node?.cleanup());

  const assertAttached = (a: Added): void => {
    assert.ok(linkNames(node.host.name).includes(a.hostVeth), `${a.hostVeth} is kept`);
    assert.ok(node.addressFiles().includes(a.ip), `${a.ip} is kept`);
    assertSilentSuccess(node.run({
      command: "CHECK", config: { ...config, prevResult: a.result }, containerId: a.containerId, netns: a.pod.path, ifname: IFNAME,
    }));
  };
  const assertCollected = (a: Added): void => {
    assert.equal(linkNames(node.host.name).includes(a.hostVeth), false, `${a.hostVeth} is removed`);
    assert.equal(node.addressFiles().includes(a.ip), false, `${a.ip} is released`);
  };

  test("removes the veth and address of an attachment missing from cni.dev/valid-attachments, and keeps the valid one working", () => {
    const a = addPod(node, config, "gc-a");
    const b = addPod(node, config, "gc-b");
    assertSilentSuccess(node.run({ command: "GC", config: { ...config, "cni.dev/valid-attachments": [attachment(a)] } }));
    assertAttached(a);
    assertCollected(b);
    // A runtime still sends DEL for B later; it must succeed on what GC already removed.
    assertSilentSuccess(node.run({ command: "DEL", config, containerId: b.containerId, netns: b.pod.path, ifname: IFNAME }));
    assertSilentSuccess(node.run({ command: "DEL", config, containerId: a.containerId, netns: a.pod.path, ifname: IFNAME }));
    assertCollected(a);
  });

  test("accepts the spec-v1.1.0 spelling cni.dev/attachments", () => {
    const a = addPod(node, config, "legacy-a");
    const c = addPod(node, config, "legacy-c");
    assertSilentSuccess(node.run({ command: "GC", config: { ...config, "cni.dev/attachments": [attachment(a)] } }));
    assertAttached(a);
    assertCollected(c);
    assertSilentSuccess(node.run({ command: "DEL", config, containerId: a.containerId, netns: a.pod.path, ifname: IFNAME }));
  });

  test("leaves other networks' attachments alone", () => {
    const other = { ...config, name: `${node.network}-other`, ipam: { ...(config.ipam as object), ranges: [[{ subnet: "10.87.0.0/24" }]] } };
    const mine = addPod(node, config, "mine");
    const theirs = addPod(node, other, "theirs");
    assertSilentSuccess(node.run({ command: "GC", config: { ...config, "cni.dev/valid-attachments": [] } }));
    assertCollected(mine);
    assert.ok(linkNames(node.host.name).includes(theirs.hostVeth), "the other network's veth is kept");
    assertSilentSuccess(node.run({
      command: "CHECK", config: { ...other, prevResult: theirs.result }, containerId: theirs.containerId, netns: theirs.pod.path, ifname: IFNAME,
    }));
    assertSilentSuccess(node.run({ command: "DEL", config: other, containerId: theirs.containerId, netns: theirs.pod.path, ifname: IFNAME }));
    assert.deepEqual(node.trlLinks(), []);
  });
});

describe("STATUS", { skip }, () => {
  let node: TestHost;
  let config: Record<string, unknown>;
  before(() => {
    node = new TestHost("status");
    // Two addresses in all: 10.88.0.10 and 10.88.0.11.
    config = {
      cniVersion: "1.1.0", name: node.network, type: "trellis",
      ipam: { type: "trellis-ipam", dataDir: node.dataDir, ranges: [[{ subnet: "10.88.0.0/24", rangeStart: "10.88.0.10", rangeEnd: "10.88.0.11" }]] },
    };
  });
  after(() => node?.cleanup());

  test("succeeds silently while addresses are free, fails with code 50 once the range is exhausted, and recovers after a DEL", () => {
    assertSilentSuccess(node.run({ command: "STATUS", config }));
    const first = addPod(node, config, "s1");
    assertSilentSuccess(node.run({ command: "STATUS", config }));
    const second = addPod(node, config, "s2");
    assert.deepEqual([first.ip, second.ip].sort(), ["10.88.0.10", "10.88.0.11"]);

    assertCniError(node.run({ command: "STATUS", config }), { code: 50, msg: /exhausted/ });

    // STATUS is informational: ADD still runs, fails cleanly, and takes nothing.
    const pod = node.pod("s3");
    assertCniError(node.run({ command: "ADD", config, containerId: `s3-${uniq()}`, netns: pod.path, ifname: IFNAME }), { msg: /no IP addresses available/ });
    assert.deepEqual(node.addressFiles(), ["10.88.0.10", "10.88.0.11"]);
    assert.equal(node.trlLinks().length, 2);

    assertSilentSuccess(node.run({ command: "DEL", config, containerId: first.containerId, netns: first.pod.path, ifname: IFNAME }));
    assertSilentSuccess(node.run({ command: "STATUS", config }));
    assertSilentSuccess(node.run({ command: "DEL", config, containerId: second.containerId, netns: second.pod.path, ifname: IFNAME }));
    assert.deepEqual(node.addressFiles(), []);
  });
});
