import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { CniError } from "../cni/errors.js";
import { expectReachable, labNetnsPrefix, nodeConflist, planLab } from "./plan.js";
import { printTable } from "../cli/table.js";

describe("lab plan", () => {
  const plan = planLab({ name: "demo", nodes: 2, podsPerNode: 3, mode: "routed" });

  test("every namespace of a lab carries the lab's prefix, so lab down can find them all", () => {
    const names = [plan.switchNetns, ...plan.nodes.map((n) => n.netns), ...plan.pods.map((p) => p.netns)];
    for (const n of names) assert.ok(n.startsWith(labNetnsPrefix("demo")), n);
    assert.equal(new Set(names).size, names.length, "names are unique");
  });

  test("nodes get consecutive underlay addresses and their own pod block", () => {
    assert.deepEqual(plan.nodes.map((n) => [n.name, n.ip, n.podCidr]), [
      ["node1", "10.99.1.11/24", "10.244.1.0/24"],
      ["node2", "10.99.1.12/24", "10.244.2.0/24"],
    ]);
  });

  test("pods are spread per node with valid CNI container ids", () => {
    assert.equal(plan.pods.length, 6);
    assert.deepEqual(plan.pods.filter((p) => p.node === "node2").map((p) => p.name), ["node2-pod1", "node2-pod2", "node2-pod3"]);
    for (const p of plan.pods) assert.match(p.containerId, /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/);
  });

  test("each node's conflist points IPAM at that node's block and data directory", () => {
    const c = nodeConflist(plan, plan.nodes[1]!, "/run/x/node2/ipam", "/run/x/node2/cni.log") as {
      plugins: Array<{ type: string; mode: string; ipam: { dataDir: string; ranges: Array<Array<{ subnet: string }>> } }>;
    };
    assert.equal(c.plugins[0]!.type, "trellis");
    assert.equal(c.plugins[0]!.mode, "routed");
    assert.equal(c.plugins[0]!.ipam.dataDir, "/run/x/node2/ipam");
    assert.deepEqual(c.plugins[0]!.ipam.ranges, [[{ subnet: "10.244.2.0/24" }]]);
  });

  test("pods on the same node are expected to connect; across nodes not yet", () => {
    const [a, b] = plan.pods;
    const c = plan.pods.find((p) => p.node === "node2")!;
    assert.equal(expectReachable(a!, b!), true);
    assert.equal(expectReachable(a!, c), false);
  });

  test("bad options are refused with the option and value named", () => {
    const cases: Array<[Parameters<typeof planLab>[0], RegExp]> = [
      [{ name: "Demo", nodes: 1, podsPerNode: 1, mode: "routed" }, /--name "Demo"/],
      [{ name: "toolongname123", nodes: 1, podsPerNode: 1, mode: "routed" }, /--name/],
      [{ name: "d", nodes: 0, podsPerNode: 1, mode: "routed" }, /--nodes 0/],
      [{ name: "d", nodes: 51, podsPerNode: 1, mode: "routed" }, /--nodes 51/],
      [{ name: "d", nodes: 1, podsPerNode: 101, mode: "routed" }, /--pods-per-node 101/],
      [{ name: "d", nodes: 1, podsPerNode: 1, mode: "vxlan" as never }, /--mode "vxlan"/],
    ];
    for (const [opts, re] of cases) {
      assert.throws(() => planLab(opts), (e: unknown) => e instanceof CniError && re.test(e.message));
    }
  });
});

describe("table output", () => {
  test("columns are aligned to the widest cell and trailing spaces trimmed", () => {
    assert.equal(printTable(["A", "LONGER"], [["x", "1"], ["yyyy", "22"]]), "A     LONGER\nx     1\nyyyy  22");
  });
});
