// Services, first wiring (issue 12), through the built `trellis` executable in a 2-node vxlan
// lab: a ClusterIP Service applied without a clusterIP gets one allocated and shown by `get
// services -o json`; a pod on node1 connects to ClusterIP:80 and reaches the selected pod on
// node2 on its named port (DNAT in table inet trellis-svc, the client's source kept); a Service
// without endpoints refuses connections at once (TCP reset, not a timeout); a node without any
// Service has no services table, and deleting the last Service removes it.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { eventually, labSkip, TestLab, trellisWithInput } from "../helpers/lab.js";
import { connect, hasServicesTable } from "../helpers/services.js";

const skip = labSkip();

const SPEC = {
  nodes: 2,
  backend: "vxlan",
  namespaces: [{ name: "shop", labels: {} }],
  pods: [
    { name: "client", namespace: "shop", node: "node1", labels: { app: "client" }, ports: [{ name: "debug", port: 7000, protocol: "TCP" }] },
    { name: "web", namespace: "shop", node: "node2", labels: { app: "web" }, ports: [{ name: "http", port: 8080, protocol: "TCP" }] },
  ],
};

const service = (name: string, selector: Record<string, string>, port: number, targetPort: number | string): Record<string, unknown> => ({
  apiVersion: "v1", kind: "Service", metadata: { name, namespace: "shop" },
  spec: { selector, ports: [{ name: "http", port, protocol: "TCP", targetPort }] },
});
const WEB = service("web", { app: "web" }, 80, "http");
const EMPTY = service("empty", { app: "nobody" }, 81, 8080);

describe("services in a 2-node lab: ClusterIP to a pod on the other node", { skip, timeout: 120_000 }, () => {
  const lab = new TestLab();
  const ips = new Map<string, string>();

  before(() => {
    lab.upSpec(SPEC);
  });
  after(() => lab.down());

  test("with no Service stored, no node has a services table", () => {
    for (const n of lab.status().nodes) assert.equal(hasServicesTable(n.netns), false, `${n.name} has no table inet trellis-svc`);
  });

  test("apply allocates ClusterIPs from 10.96.0.0/12 and get services -o json shows them", () => {
    lab.apply([WEB, EMPTY]);
    const r = lab.cli("get", "services", "-o", "json");
    assert.equal(r.code, 0, r.stderr);
    const items = (JSON.parse(r.stdout) as { items: Array<{ metadata: { name: string }; spec: { clusterIP?: string } }> }).items;
    for (const name of ["web", "empty"]) {
      const ip = items.find((i) => i.metadata.name === name)?.spec.clusterIP;
      assert.match(ip ?? "", /^10\.(9[6-9]|10[0-9]|11[01])\.\d+\.\d+$/, `${name} has a ClusterIP in 10.96.0.0/12`);
      ips.set(name, ip!);
    }
    assert.notEqual(ips.get("web"), ips.get("empty"));
    // Re-applying keeps the address; another Service asking for a held one is refused.
    lab.apply([WEB]);
    const again = JSON.parse(lab.cli("get", "services", "-o", "json").stdout) as { items: Array<{ metadata: { name: string }; spec: { clusterIP?: string } }> };
    assert.equal(again.items.find((i) => i.metadata.name === "web")?.spec.clusterIP, ips.get("web"));
    const dup = { ...service("dup", { app: "web" }, 80, 8080) };
    (dup.spec as Record<string, unknown>).clusterIP = ips.get("web");
    const refused = trellisWithInput(JSON.stringify(dup), "--lab", lab.name, "apply", "-f", "-");
    assert.notEqual(refused.code, 0, "a second Service on a held ClusterIP is refused");
    assert.match(refused.stderr + refused.stdout, /already allocated to Service shop\/web/);
    const table = lab.cli("get", "services");
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, new RegExp(`web\\s+ClusterIP\\s+${ips.get("web")!.replace(/\./g, "\\.")}`));
  });

  test("a pod on node1 connects to ClusterIP:80 and reaches web on node2 (its source kept)", async () => {
    const client = lab.pod("shop/client");
    const web = lab.pod("shop/web");
    const p = (await eventually("ClusterIP:80 connects", 30_000, () => {
      const r = connect(client.netns, ips.get("web")!, 80, 1000);
      assert.equal(r.reached, true, "connected");
      return r;
    }, 250)).value;
    assert.equal(p.seenAs, client.ip, `web saw the client's own address (not masqueraded); web is ${web.ip}`);
  });

  test("a Service without endpoints refuses at once (reset, not a timeout)", async () => {
    const client = lab.pod("shop/client");
    await eventually("empty Service refuses quickly", 15_000, () => {
      const r = connect(client.netns, ips.get("empty")!, 81, 3000);
      assert.equal(r.reached, false);
      assert.ok(r.ms < 1000, `refused after ${r.ms} ms (a timeout would take 3000)`);
    }, 250);
  });

  test("deleting the last Service removes the services table from every node", async () => {
    lab.deleteObjects([WEB, EMPTY]);
    await eventually("no node has a services table", 15_000, () => {
      for (const n of lab.status().nodes) assert.equal(hasServicesTable(n.netns), false, `${n.name} has no table inet trellis-svc`);
    }, 250);
  });
});
