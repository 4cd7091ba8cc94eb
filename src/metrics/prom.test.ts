import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, test } from "node:test";
import { Agent } from "../agent/agent.js";
import { EmbeddedDatastore } from "../datastore/embedded.js";
import { FakeDataplaneKernel } from "../kernel/fake-dataplane.js";
import { parsePrometheusText, sampleSum } from "./parse-text.js";
import { PromAgentMetrics } from "./prom.js";
import { cniCommandLabel, SERIES } from "./series.js";
import { fetchMetrics, serveMetrics } from "./server.js";

describe("metrics series", () => {
  test("names follow Prometheus conventions; labels are few and snake_case", () => {
    for (const d of Object.values(SERIES)) {
      assert.match(d.name, /^trellis_[a-z_]+$/, d.name);
      if (d.type === "counter") assert.match(d.name, /_total$/, `${d.name}: a counter ends in _total`);
      else assert.doesNotMatch(d.name, /_total$/, `${d.name}: only counters end in _total`);
      if (d.type === "histogram") assert.match(d.name, /_seconds$/, `${d.name}: durations in seconds`);
      assert.ok(d.labels.length <= 3, d.name);
      for (const l of d.labels) assert.match(l, /^[a-z]+$/);
      assert.ok(d.help.length > 10);
    }
    assert.equal(new Set(Object.values(SERIES).map((d) => d.name)).size, Object.keys(SERIES).length);
  });

  test("CNI commands outside the spec become 'other'", () => {
    assert.equal(cniCommandLabel("ADD"), "ADD");
    assert.equal(cniCommandLabel("add; rm -rf"), "other");
    assert.equal(cniCommandLabel(undefined), "other");
  });

  test("events and scrape-time sources come out as the documented series", async () => {
    const m = new PromAgentMetrics();
    m.reconciled("routes", 0.02, []);
    m.reconciled("routes", 0.5, ["apply"]);
    m.driftRepaired("routes", 2);
    m.driftRepaired("policy", 1);
    m.watchResync("leases");
    m.watchError("leases");
    m.leaseRenewal(true);
    m.leaseRenewal(false);
    m.policyProgrammed(0.03);
    m.cniCall("ADD", "ok", 0.01);
    m.cniCall("DEL", "fallback", 0.001);
    let reads = 0;
    m.setSources({
      leaseExpiresAt: () => Date.now() + 60_000,
      peers: () => [{ transport: "vxlan", state: "programmed" }, { transport: "vxlan", state: "programmed" }, { transport: "unreachable", state: "none" }],
      bgpSessions: () => ["Established", "Active", "Established"],
      policyRuleset: () => ({ rules: 12, elements: 40 }),
      policyRuleCounters: async () => {
        reads++;
        return [{ policy: "NetworkPolicy/prod/deny", rule: "ingress isolated", action: "deny", packets: 3, bytes: 180 }];
      },
      ipam: () => [{ block: "10.244.1.0/24", used: 2, free: 251 }],
    });
    const s = parsePrometheusText(await m.text());
    const v = (name: string, labels: Record<string, string> = {}): number => sampleSum(s, name, labels);
    assert.equal(v("trellis_reconcile_runs_total", { area: "routes" }), 2);
    assert.equal(v("trellis_reconcile_runs_total", { area: "policy" }), 0);
    assert.equal(v("trellis_reconcile_errors_total", { area: "routes", kind: "apply" }), 1);
    assert.equal(v("trellis_reconcile_duration_seconds_count", { area: "routes" }), 2);
    assert.equal(v("trellis_reconcile_duration_seconds_bucket", { area: "routes", le: "0.025" }), 1);
    assert.equal(v("trellis_kernel_drift_repairs_total", { area: "routes" }), 2);
    assert.equal(v("trellis_kernel_drift_repairs_total", { area: "policy" }), 1);
    assert.equal(v("trellis_datastore_watch_resyncs_total", { watch: "leases" }), 1);
    assert.equal(v("trellis_datastore_watch_errors_total", { watch: "leases" }), 1);
    assert.equal(v("trellis_lease_renewals_total", { result: "ok" }), 1);
    assert.equal(v("trellis_lease_renewals_total", { result: "failed" }), 1);
    const expiry = v("trellis_lease_expiry_seconds");
    assert.ok(expiry > 0 && expiry <= 60, `lease expiry ${expiry}`);
    assert.equal(v("trellis_peers", { transport: "vxlan", state: "programmed" }), 2);
    assert.equal(v("trellis_peers", { transport: "unreachable", state: "none" }), 1);
    assert.equal(v("trellis_bgp_sessions", { state: "Established" }), 2);
    assert.equal(v("trellis_policy_ruleset_rules"), 12);
    assert.equal(v("trellis_policy_ruleset_set_elements"), 40);
    assert.equal(v("trellis_policy_programming_seconds_count"), 1);
    assert.equal(v("trellis_policy_rule_packets_total", { policy: "NetworkPolicy/prod/deny", rule: "ingress isolated", action: "deny" }), 3);
    assert.equal(v("trellis_policy_rule_bytes_total", { policy: "NetworkPolicy/prod/deny" }), 180);
    assert.equal(reads, 1, "one nft read serves both rule counter series");
    assert.equal(v("trellis_cni_calls_total", { command: "ADD", result: "ok" }), 1);
    assert.equal(v("trellis_cni_calls_total", { command: "DEL", result: "fallback" }), 1);
    assert.equal(v("trellis_cni_call_duration_seconds_count", { command: "ADD" }), 1);
    assert.equal(v("trellis_ipam_addresses", { block: "10.244.1.0/24", state: "used" }), 2);
    assert.equal(v("trellis_ipam_addresses", { state: "free" }), 251);
    // Every documented series is exposed (HELP lines are written even for series without samples).
    for (const d of Object.values(SERIES)) assert.ok((await m.text()).includes(`# HELP ${d.name} `), d.name);
  });

  test("a failing source is reported and the scrape goes on", async () => {
    const failures: string[] = [];
    const m = new PromAgentMetrics((what, e) => failures.push(`${what}: ${e.message}`));
    m.setSources({ policyRuleCounters: () => Promise.reject(new Error("nft: no such table")), peers: () => { throw new Error("boom"); } });
    const s = parsePrometheusText(await m.text());
    assert.equal(sampleSum(s, "trellis_policy_rule_packets_total"), 0);
    assert.deepEqual(failures.sort(), ["trellis_peers: boom", "trellis_policy_rule_packets_total: nft: no such table"]);
  });
});

describe("the metrics endpoint", () => {
  test("/metrics, and /readyz 503 before the agent's first sync (agent.health), /healthz 200", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "trellis-metrics-"));
    const store = await EmbeddedDatastore.open(path.join(dir, "store"));
    const ac = new AbortController();
    const metrics = new PromAgentMetrics();
    const agent = new Agent({
      node: "n1", store, kernel: new FakeDataplaneKernel(), subnetFile: path.join(dir, "subnet.env"), leaseTtlSeconds: 30, resyncMs: 10_000,
      log: () => undefined, signal: ac.signal, endpointDir: path.join(dir, "endpoints"), metrics,
    });
    const server = await serveMetrics("127.0.0.1:0", metrics, () => agent.health());
    try {
      const addr = `127.0.0.1:${(server.address() as { port: number }).port}`;
      const ready = await fetch(`http://${addr}/readyz`);
      assert.equal(ready.status, 503);
      assert.equal(await ready.text(), "not ok: waiting for the network config\n");
      const live = await fetch(`http://${addr}/healthz`);
      assert.equal(live.status, 200);
      const text = await fetchMetrics(addr);
      assert.equal(sampleSum(parsePrometheusText(text), "trellis_reconcile_runs_total", { area: "routes" }), 0);
      assert.match(text, /# TYPE trellis_peers gauge/);
      assert.equal((await fetch(`http://${addr}/nothing`)).status, 404);
    } finally {
      server.close();
      ac.abort();
      await store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test("--metrics-addr must be HOST:PORT", async () => {
    await assert.rejects(serveMetrics("9091", new PromAgentMetrics(), () => ({ live: true, ready: true, reason: "" })), /--metrics-addr "9091": expected HOST:PORT, e.g. 127.0.0.1:9091/);
  });
});
