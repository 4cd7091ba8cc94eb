import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { CniError } from "../cni/errors.js";
import { labNetnsPrefix, labWarnings, nodeConflist, planLab, unreachableNodePairs } from "./plan.js";
import { printTable } from "../cli/table.js";

describe("lab plan", () => {
  const plan = planLab({ name: "demo", nodes: 2, podsPerNode: 3, mode: "routed", backend: "none" });

  test("every namespace of a lab carries the lab's prefix, so lab down can find them all", () => {
    const names = [...plan.segments.map((s) => s.netns), plan.routerNetns, plan.outsideNetns, plan.controlNetns,
      ...plan.nodes.map((n) => n.netns), ...plan.pods.map((p) => p.netns)];
    for (const n of names) assert.ok(n.startsWith(labNetnsPrefix("demo")), n);
    assert.equal(new Set(names).size, names.length, "names are unique");
  });

  test("without agents, nodes get consecutive underlay addresses and a fixed pod block", () => {
    assert.deepEqual(plan.nodes.map((n) => [n.name, n.ip, n.podCidr]), [
      ["node1", "10.99.1.11/24", "10.244.1.0/24"],
      ["node2", "10.99.1.12/24", "10.244.2.0/24"],
    ]);
  });

  test("with agents, blocks come from leases and nodes are spread over the segments round-robin", () => {
    const p = planLab({ name: "x", nodes: 3, podsPerNode: 0, mode: "routed", backend: "cross-subnet", segments: 2 });
    assert.deepEqual(p.segments.map((s) => s.cidr), ["10.99.1.0/24", "10.99.2.0/24"]);
    assert.deepEqual(p.nodes.map((n) => [n.name, n.segment, n.ip, n.podCidr]), [
      ["node1", 1, "10.99.1.11/24", undefined],
      ["node2", 2, "10.99.2.12/24", undefined],
      ["node3", 1, "10.99.1.13/24", undefined],
    ]);
    assert.equal(p.natOutgoing, true, "NAT outgoing is on by default with agents");
  });

  test("pods are spread per node with valid CNI container ids", () => {
    assert.equal(plan.pods.length, 6);
    assert.deepEqual(plan.pods.filter((p) => p.node === "node2").map((p) => p.name), ["node2-pod1", "node2-pod2", "node2-pod3"]);
    for (const p of plan.pods) assert.match(p.containerId, /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/);
  });

  test("each node's conflist points IPAM at that node's block and data directory", () => {
    type Conf = {
      plugins: Array<{ type: string; mode: string; agentSocket: string; ipam: { dataDir: string; subnetFile?: string; ranges?: Array<Array<{ subnet: string }>> } }>;
    };
    const dirs = { dataDir: "/run/x/node2/ipam", logFile: "/run/x/node2/cni.log", subnetFile: "/run/x/node2/subnet.env", agentSocket: "/run/x/node2/cni.sock" };
    const c = nodeConflist(plan, plan.nodes[1]!, dirs) as Conf;
    assert.equal(c.plugins[0]!.type, "trellis");
    assert.equal(c.plugins[0]!.mode, "routed");
    assert.equal(c.plugins[0]!.ipam.dataDir, "/run/x/node2/ipam");
    assert.deepEqual(c.plugins[0]!.ipam.ranges, [[{ subnet: "10.244.2.0/24" }]]);
    assert.equal(c.plugins[0]!.agentSocket, "", "without an agent the plugin never tries the host's default agent socket");
    const withAgents = planLab({ name: "y", nodes: 2, podsPerNode: 1, mode: "bridge" });
    const c2 = nodeConflist(withAgents, withAgents.nodes[0]!, dirs) as Conf;
    assert.equal(c2.plugins[0]!.ipam.subnetFile, "/run/x/node2/subnet.env", "with agents the block comes from the agent's subnet file");
    assert.equal(c2.plugins[0]!.ipam.ranges, undefined);
    assert.equal(c2.plugins[0]!.agentSocket, "/run/x/node2/cni.sock", "with agents the plugin forwards calls to its node's agent");
  });

  test("host-gw across segments is refused unless asked for with allowUnreachable, naming the pairs", () => {
    assert.throws(() => planLab({ name: "z", nodes: 3, podsPerNode: 1, mode: "routed", backend: "host-gw", segments: 2 }),
      /--backend "host-gw": leaves 2 node pair\(s\) without a path \(host-gw cannot cross segments.*node1 <-> node2, node2 <-> node3\).*--allow-unreachable/);
    const p = planLab({ name: "z", nodes: 3, podsPerNode: 1, mode: "routed", backend: "host-gw", segments: 2, allowUnreachable: true });
    assert.deepEqual(unreachableNodePairs(p).map((u) => `${u.a}-${u.b}`), ["node1-node2", "node2-node3"]);
    assert.match(labWarnings(p).join("\n"), /2 node pair\(s\) have no path, as asked with --allow-unreachable: host-gw cannot cross segments \(node1 <-> node2, node2 <-> node3\)/);
    assert.deepEqual(unreachableNodePairs(planLab({ name: "z", nodes: 3, podsPerNode: 1, mode: "routed", backend: "host-gw", segments: 1 })), []);
  });

  test("what a lab will not do is said: bridge mode enforces no policy, --backend none connects no nodes", () => {
    assert.match(labWarnings(planLab({ name: "z", nodes: 2, podsPerNode: 1, mode: "bridge", backend: "vxlan" })).join(), /bridge mode: network policy is NOT enforced/);
    assert.match(labWarnings(planLab({ name: "z", nodes: 2, podsPerNode: 1, mode: "routed", backend: "none" })).join(), /pods reach only pods of their own node/);
    assert.deepEqual(labWarnings(planLab({ name: "z", nodes: 2, podsPerNode: 1, mode: "routed", backend: "vxlan" })), []);
  });

  test("with agents every node pair has a path, except host-gw across segments", () => {
    for (const backend of ["vxlan", "cross-subnet", "host-gw"] as const) {
      const p = planLab({ name: "z", nodes: 3, podsPerNode: 1, mode: "routed", backend, segments: 2, allowUnreachable: true });
      assert.deepEqual(unreachableNodePairs(p).map((u) => `${u.a}-${u.b}`), backend === "host-gw" ? ["node1-node2", "node2-node3"] : [], backend);
    }
  });

  test("bad options are refused with the option and value named", () => {
    const cases: Array<[Parameters<typeof planLab>[0], RegExp]> = [
      [{ name: "Demo", nodes: 1, podsPerNode: 1, mode: "routed" }, /--name "Demo"/],
      [{ name: "toolongname123", nodes: 1, podsPerNode: 1, mode: "routed" }, /--name/],
      [{ name: "d", nodes: 0, podsPerNode: 1, mode: "routed" }, /--nodes 0/],
      [{ name: "d", nodes: 51, podsPerNode: 1, mode: "routed" }, /--nodes 51/],
      [{ name: "d", nodes: 1, podsPerNode: 101, mode: "routed" }, /--pods-per-node 101/],
      [{ name: "d", nodes: 1, podsPerNode: 1, mode: "vxlan" as never }, /--mode "vxlan"/],
      [{ name: "d", nodes: 1, podsPerNode: 1, mode: "routed", backend: "ipip" as never }, /--backend "ipip"/],
      [{ name: "d", nodes: 1, podsPerNode: 1, mode: "routed", segments: 5 }, /--segments 5/],
      [{ name: "d", nodes: 1, podsPerNode: 1, mode: "routed", backend: "none", datastore: "etcd" }, /--datastore "etcd"/],
      [{ name: "d", nodes: 1, podsPerNode: 1, mode: "routed", leaseTtlSeconds: 2 }, /--lease-ttl 2/],
      [{ name: "d", nodes: 1, podsPerNode: 1, mode: "routed", readySeconds: 0 }, /--ready-timeout 0/],
    ];
    for (const [opts, re] of cases) {
      assert.throws(() => planLab(opts), (e: unknown) => e instanceof CniError && re.test(e.message));
    }
  });
});

test("a lab's lease TTL is part of its plan (agents restarted later keep it); the ready timeout is not", () => {
  const p = planLab({ name: "big", nodes: 30, podsPerNode: 0, mode: "routed", backend: "bgp", leaseTtlSeconds: 300, readySeconds: 300 });
  assert.equal(p.leaseTtlSeconds, 300);
  assert.equal("readySeconds" in p, false);
  assert.equal("leaseTtlSeconds" in planLab({ name: "small", nodes: 2, podsPerNode: 0, mode: "routed" }), false, "absent: the lab default");
});

describe("table output", () => {
  test("columns are aligned to the widest cell and trailing spaces trimmed", () => {
    assert.equal(printTable(["A", "LONGER"], [["x", "1"], ["yyyy", "22"]]), "A     LONGER\nx     1\nyyyy  22");
  });
});
