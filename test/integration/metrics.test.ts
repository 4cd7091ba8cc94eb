// The agent's metrics endpoint on a 2-node host-gw lab, read inside each node's network namespace
// through `trellis agent metrics` and parsed as Prometheus text: readiness on the same port, the
// series every agent has, a policy drop counted on the denying rule, and a route deleted by hand
// counted as a drift repair when the periodic resync puts it back.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { parsePrometheusText, sampleSum, type Sample } from "../../src/metrics/parse-text.js";
import { eventually, labSkip, PEER_ROUTE_PROTO, TestLab } from "../helpers/lab.js";
import { sh, TRELLIS_CLI } from "../helpers/netns.js";
import { probeOnce } from "../helpers/policy.js";

const skip = labSkip();

describe("agent metrics in a 2-node lab", { skip, timeout: 120_000 }, () => {
  const lab = new TestLab();
  before(() => lab.up("--nodes", "2", "--pods-per-node", "1", "--backend", "host-gw"));
  after(() => lab.down());

  /** The node's /metrics, fetched inside its network namespace at the address `lab status` gives. */
  const metrics = (node: string): Sample[] => {
    const n = lab.node(node);
    assert.ok(n.metrics, `lab status gives ${node}'s metrics address`);
    return parsePrometheusText(sh("ip", ["netns", "exec", n.netns, TRELLIS_CLI, "agent", "metrics", "--metrics-addr", n.metrics]));
  };
  const value = (node: string, name: string, labels: Record<string, string> = {}): number => sampleSum(metrics(node), name, labels);

  test("lab status names each node's metrics address; /readyz on it answers 200 once the agent is ready", () => {
    for (const node of ["node1", "node2"]) {
      const n = lab.node(node);
      assert.equal(n.metrics, "127.0.0.1:9091");
      const out = sh("ip", ["netns", "exec", n.netns, TRELLIS_CLI, "agent", "probe", "--ready", "--health-addr", n.metrics!]);
      assert.match(out, /^ok: ready: /);
    }
  });

  test("every agent reports its reconciles, peer, lease, CNI calls and IPAM block", async () => {
    const subnet = lab.node("node1").subnet;
    await eventually("node1 has renewed its lease at least once", 30_000, () =>
      assert.ok(value("node1", "trellis_lease_renewals_total", { result: "ok" }) >= 1), 250);
    const s = metrics("node1");
    assert.ok(sampleSum(s, "trellis_reconcile_runs_total", { area: "routes" }) >= 1);
    assert.ok(sampleSum(s, "trellis_reconcile_duration_seconds_count", { area: "routes" }) >= 1);
    assert.equal(sampleSum(s, "trellis_peers", { transport: "host-gw", state: "programmed" }), 1);
    assert.ok(sampleSum(s, "trellis_lease_expiry_seconds") > 0);
    assert.ok(sampleSum(s, "trellis_cni_calls_total", { command: "ADD", result: "ok" }) >= 1, "the lab's pod ADD went through the agent");
    assert.equal(sampleSum(s, "trellis_ipam_addresses", { block: subnet, state: "used" }), 1);
    assert.ok(sampleSum(s, "trellis_ipam_addresses", { block: subnet, state: "free" }) > 200);
    assert.ok(sampleSum(s, "trellis_policy_ruleset_rules") > 0);
  });

  test("a packet dropped by a NetworkPolicy increments that policy's rule counter", async () => {
    const from = lab.podOn("node1");
    const to = lab.podOn("node2");
    lab.apply([{
      apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name: "deny-all", namespace: to.namespace },
      spec: { podSelector: {}, policyTypes: ["Ingress"] },
    }]);
    const rule = { policy: `NetworkPolicy/${to.namespace}/deny-all`, rule: "ingress isolated", action: "deny" };
    // The series exists (at its current count) once node2 has programmed the policy.
    const before = (await eventually("node2 programs the deny-all policy", 30_000, () => {
      const s = metrics("node2");
      assert.ok(s.some((x) => x.name === "trellis_policy_rule_packets_total" && x.labels.policy === rule.policy && x.labels.rule === rule.rule));
      return sampleSum(s, "trellis_policy_rule_packets_total", rule);
    }, 250)).value;
    assert.equal(probeOnce(from.netns, to.ip, 8080, "TCP"), false, "the probe is denied");
    const afterDrop = value("node2", "trellis_policy_rule_packets_total", rule);
    assert.ok(afterDrop > before, `packets counted on ${JSON.stringify(rule)}: ${before} -> ${afterDrop}`);
    assert.ok(value("node2", "trellis_policy_rule_bytes_total", rule) > 0);
    assert.ok(value("node2", "trellis_policy_programming_seconds_count") >= 1);
  });

  test("a route deleted by hand is put back by the periodic resync and counted as a drift repair", async () => {
    const node1 = lab.node("node1");
    const peerBlock = lab.node("node2").subnet;
    const before = value("node1", "trellis_kernel_drift_repairs_total", { area: "routes" });
    sh("ip", ["-n", node1.netns, "route", "del", peerBlock, "proto", PEER_ROUTE_PROTO]);
    await eventually("node1's agent puts the route back and counts the repair", 30_000, () => {
      assert.match(sh("ip", ["-n", node1.netns, "route", "show", peerBlock]), new RegExp(`^${peerBlock.replace(/\./g, "\\.")} `));
      const afterRepair = value("node1", "trellis_kernel_drift_repairs_total", { area: "routes" });
      assert.ok(afterRepair >= before + 1, `drift repairs ${before} -> ${afterRepair}`);
    }, 250);
  });
});
