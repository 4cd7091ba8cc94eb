// `lab check` probes Services, through the built `trellis` executable in a 2-node vxlan lab whose
// spec holds the Services: `web` (selector, TCP 80 -> http and UDP 53 -> dns, endpoints derived
// from web-a on node1 and web-b on node2), `pinned` (no selector: its EndpointSlice, applied with
// `lab apply`, lists web-a and web-b ready and web-c NOT ready) and `empty` (no endpoint). From a
// client pod on each node, every ready endpoint answers and web-c never does; `empty` refuses at
// once. A NetworkPolicy closing web-b to the clients makes web-b expected closed (and closed in
// the kernel), which `policy explain --to-service` shows too.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { eventually, labSkip, TestLab, trellis, trellisOk, trellisWithInput } from "../helpers/lab.js";
import type { ServiceCheckCell } from "../../src/lab/service-check.js";
import type { ServiceExplanation } from "../../src/policy/explain-service.js";

const skip = labSkip();

const ports = [{ name: "http", port: 8080, protocol: "TCP" }, { name: "dns", port: 5353, protocol: "UDP" }];
const SPEC = {
  nodes: 2,
  backend: "vxlan",
  namespaces: [{ name: "shop", labels: {} }],
  pods: [
    { name: "client1", namespace: "shop", node: "node1", labels: { app: "client" } },
    { name: "client2", namespace: "shop", node: "node2", labels: { app: "client" } },
    { name: "web-a", namespace: "shop", node: "node1", labels: { app: "web" }, ports },
    { name: "web-b", namespace: "shop", node: "node2", labels: { app: "web", slot: "b" }, ports },
    { name: "web-c", namespace: "shop", node: "node1", labels: { app: "spare" }, ports },
  ],
  services: [
    {
      apiVersion: "v1", kind: "Service", metadata: { name: "web", namespace: "shop" },
      spec: { selector: { app: "web" }, ports: [{ name: "http", port: 80, targetPort: "http" }, { name: "dns", port: 53, protocol: "UDP", targetPort: "dns" }] },
    },
    { apiVersion: "v1", kind: "Service", metadata: { name: "pinned", namespace: "shop" }, spec: { ports: [{ name: "http", port: 8000, targetPort: 8080 }] } },
    { apiVersion: "v1", kind: "Service", metadata: { name: "empty", namespace: "shop" }, spec: { selector: { app: "nobody" }, ports: [{ port: 81, targetPort: 8080 }] } },
  ],
};

const BLOCK_B = {
  apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name: "b-from-web", namespace: "shop" },
  spec: { podSelector: { matchLabels: { slot: "b" } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: "web" } } }] }] },
};

describe("lab check probes Services (2 nodes, vxlan; a not-ready endpoint; a Service without endpoints)", { skip, timeout: 240_000 }, () => {
  const lab = new TestLab();
  const ip = new Map<string, string>();
  before(() => {
    lab.upSpec(SPEC);
    for (const p of lab.status().pods) ip.set(p.name, p.ip);
    const endpoint = (name: string, node: string, ready: boolean): Record<string, unknown> =>
      ({ addresses: [ip.get(name)], conditions: { ready }, nodeName: node, targetRef: { kind: "Pod", namespace: "shop", name } });
    const slice = {
      apiVersion: "discovery.k8s.io/v1", kind: "EndpointSlice",
      metadata: { name: "pinned-1", namespace: "shop", labels: { "kubernetes.io/service-name": "pinned" } },
      addressType: "IPv4", ports: [{ name: "http", port: 8080, protocol: "TCP" }],
      endpoints: [endpoint("web-a", "node1", true), endpoint("web-b", "node2", true), endpoint("web-c", "node1", false)],
    };
    const r = trellisWithInput(JSON.stringify(slice), "lab", "apply", "--name", lab.name, "-f", "-");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /endpointslice\/pinned-1 created/);
  });
  after(() => lab.down());

  const cell = (cells: ServiceCheckCell[], from: string, service: string, probe: string): ServiceCheckCell => {
    const c = cells.find((x) => x.from === from && x.service === service && x.probe === probe);
    assert.ok(c, `a cell ${from} -> ${service} ${probe} in ${cells.map((x) => `${x.from} ${x.service} ${x.probe}`).join(", ")}`);
    return c;
  };

  test("every ready endpoint answers from a pod on each node, the not-ready one never; a Service without endpoints refuses", async () => {
    const { value: report } = await eventually("lab check passes with every Service programmed", 30_000, () => {
      const { exitCode, report } = lab.check();
      assert.equal(exitCode, 0, `lab check passes:\n${report.services.flatMap((c) => c.failures).join("\n")}`);
      return report;
    }, 500);
    // 2 source nodes x (web 80/TCP, web 53/UDP, pinned 8000/TCP, empty 81/TCP).
    assert.equal(report.services.length, 8);
    for (const from of ["shop/client1", "shop/client2"]) {
      for (const probe of ["80/TCP", "53/UDP"]) {
        const c = cell(report.services, from, "shop/web", probe);
        assert.equal(c.reached, "2/2", `${from} -> web ${probe}`);
        assert.deepEqual(c.endpoints.map((e) => [e.pod, e.expect, e.answers > 0]).sort(), [["shop/web-a", "answers", true], ["shop/web-b", "answers", true]]);
      }
      const pinned = cell(report.services, from, "shop/pinned", "8000/TCP");
      assert.equal(pinned.reached, "2/2");
      const c = pinned.endpoints.find((e) => e.pod === "shop/web-c")!;
      assert.deepEqual([c.expect, c.answers, c.why], ["never", 0, "not ready"]);
      const empty = cell(report.services, from, "shop/empty", "81/TCP");
      assert.equal(empty.outcome, "rejected");
      assert.ok(empty.refused > 0 && empty.timedOut === 0, `refused at once: ${JSON.stringify(empty)}`);
    }
    const text = trellis("lab", "check", "--name", lab.name);
    assert.equal(text.code, 0, text.stdout);
    assert.match(text.stdout, /shop\/client1 \(node1\)\s+→\s+svc shop\/pinned:8000\/TCP\s+\S+\s+2\/2 reached, 1 never chosen \(not ready\)\s+ok/);
    assert.match(text.stdout, /svc shop\/empty:81\/TCP\s+\S+\s+refused \(no endpoint\)\s+ok/);
  });

  test("explain --to-service lists the endpoints with their verdicts and the not-ready one as never chosen", () => {
    const e = JSON.parse(trellisOk("--lab", lab.name, "policy", "explain", "--from", "shop/client1", "--to-service", "shop/pinned", "--port", "8000", "-o", "json").stdout) as ServiceExplanation;
    assert.deepEqual(e.endpoints.map((x) => [x.pod, x.port, x.allowed]).sort(), [["shop/web-a", 8080, true], ["shop/web-b", 8080, true]]);
    assert.deepEqual(e.notChosen.map((x) => [x.pod, x.why]), [["shop/web-c", "not ready"]]);
    const bad = lab.cli("policy", "explain", "--from", "shop/client1", "--to-service", "shop/pinned", "--port", "81");
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /Service shop\/pinned: spec\.ports has no port "81" \(it has http 8000\/TCP\)/);
  });

  test("a policy closing web-b to the clients: web-b is expected closed and stays closed; explain says DENIED", async () => {
    lab.apply([BLOCK_B]);
    try {
      const { value: report } = await eventually("lab check passes with the policy in force", 30_000, () => {
        const { exitCode, report } = lab.check();
        assert.equal(exitCode, 0, `lab check passes:\n${report.services.flatMap((c) => c.failures).join("\n")}`);
        return report;
      }, 500);
      for (const from of ["shop/client1", "shop/client2"]) {
        const c = cell(report.services, from, "shop/pinned", "8000/TCP");
        assert.equal(c.reached, "1/1");
        const b = c.endpoints.find((x) => x.pod === "shop/web-b")!;
        assert.deepEqual([b.expect, b.answers], ["blocked", 0]);
        assert.match(b.why, /NetworkPolicy\/shop\/b-from-web/);
      }
      const e = JSON.parse(trellisOk("--lab", lab.name, "policy", "explain", "--from", "shop/client2", "--to-service", "shop/web", "--port", "53", "--protocol", "UDP", "-o", "json").stdout) as ServiceExplanation;
      assert.deepEqual(e.endpoints.map((x) => [x.pod, x.port, x.allowed]).sort(), [["shop/web-a", 5353, true], ["shop/web-b", 5353, false]]);
    } finally {
      lab.deleteObjects([BLOCK_B]);
    }
  });
});
