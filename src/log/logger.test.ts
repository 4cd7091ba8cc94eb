import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { classifyLine, parseLogFormat, parseLogLevel } from "./classify.js";
import { createLogger } from "./logger.js";

const at = new Date("2026-01-02T03:04:05.000Z");

describe("agent log lines", () => {
  test("component, level and objects from the wording of today's lines", () => {
    assert.deepEqual(classifyLine("policy: table replaced in 12 ms"), { level: "info", component: "policy", fields: {} });
    assert.deepEqual(classifyLine("peer node2 10.244.2.0/24 via 10.99.1.12: vxlan"), { level: "info", component: "agent", fields: { peer: "node2", block: "10.244.2.0/24" } });
    assert.equal(classifyLine("sync error (will retry): cannot add route").level, "warn");
    assert.equal(classifyLine("sync error (will retry): cannot add route").component, "dataplane");
    assert.equal(classifyLine("cni: refused a call from pid 5").component, "cni");
    assert.equal(classifyLine("lease watch: compacted; listing again").component, "datastore");
    assert.equal(classifyLine("Kubernetes API server unreachable; retrying with backoff").component, "kubernetes");
    assert.equal(classifyLine("WARNING: this node's block moved").level, "warn");
    assert.deepEqual(classifyLine("endpoint prod/web is in bridge mode: network policy is not enforced for it").fields, { pod: "prod/web" });
    assert.equal(classifyLine("ignoring invalid object policies/x: NetworkPolicy/prod/deny: bad port").fields.policy, "NetworkPolicy/prod/deny");
    assert.deepEqual(classifyLine("kept its lease: 10.244.3.0/24 (public IP 10.99.1.11)").fields, { block: "10.244.3.0/24" });
    assert.equal(classifyLine("error: no free block").level, "error");
  });

  test("json: one object per line with level, component, node, msg and the objects", () => {
    const lines: string[] = [];
    const l = createLogger({ node: "node1", level: "info", format: "json", write: (s) => lines.push(s), now: () => at });
    l.log("peer node2 10.244.2.0/24 via 10.99.1.12: host-gw");
    l.warn("bgp", "session down", { peer: "node3" });
    l.debug("agent", "not shown at info");
    assert.equal(lines.length, 2);
    assert.ok(lines.every((x) => x.endsWith("\n") && !x.slice(0, -1).includes("\n")));
    assert.deepEqual(JSON.parse(lines[0]!), {
      level: "info", time: "2026-01-02T03:04:05.000Z", node: "node1", component: "agent", peer: "node2", block: "10.244.2.0/24",
      msg: "peer node2 10.244.2.0/24 via 10.99.1.12: host-gw",
    });
    assert.deepEqual(JSON.parse(lines[1]!), { level: "warn", time: "2026-01-02T03:04:05.000Z", node: "node1", component: "bgp", peer: "node3", msg: "session down" });
  });

  test("text: today's human line; the level filters", () => {
    const lines: string[] = [];
    const l = createLogger({ node: "node1", level: "warn", format: "text", write: (s) => lines.push(s), now: () => at });
    l.log("policy: table replaced in 3 ms");
    l.log("cannot publish status: timeout");
    l.error("agent", "stopped");
    assert.deepEqual(lines, ["2026-01-02T03:04:05.000Z agent[node1] cannot publish status: timeout\n", "2026-01-02T03:04:05.000Z agent[node1] stopped\n"]);
  });

  test("bad --log-level / --log-format values are refused naming the flag", () => {
    assert.equal(parseLogLevel("debug"), "debug");
    assert.equal(parseLogFormat("text"), "text");
    assert.throws(() => parseLogLevel("verbose"), /--log-level "verbose": expected one of debug, info, warn, error/);
    assert.throws(() => parseLogFormat("yaml"), /--log-format "yaml": expected one of json, text/);
  });
});
