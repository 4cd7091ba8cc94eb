// Services as kube-proxy's replacement, in a 2-node vxlan lab through the built `trellis`: NodePort
// from the lab's outside host through each node (ETP Cluster: any endpoint, masqueraded; ETP
// Local: the node's own endpoint with the client's address kept, and nothing on a node without
// one), internalTrafficPolicy Local, ClientIP affinity keeping a client on one endpoint, hairpin (a pod reaching itself through
// its Service), a deleted table programmed again, and scaling a Service up and down changing only
// set/map elements in every node's kernel (every rule keeps its handle). ClusterIP from every node over TCP and UDP, no-endpoint
// rejects and Service + NetworkPolicy are in services.test.ts and lab-services.test.ts.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { eventually, labSkip, TestLab } from "../helpers/lab.js";
import { sh, TRELLIS_CLI } from "../helpers/netns.js";

const skip = labSkip();

const http = [{ name: "http", port: 8080, protocol: "TCP" }];
const SPEC = {
  nodes: 2,
  backend: "vxlan",
  natOutgoing: true,
  namespaces: [{ name: "shop", labels: {} }],
  pods: [
    { name: "client", namespace: "shop", node: "node1", labels: { app: "client" }, ports: [{ name: "debug", port: 7000, protocol: "TCP" }] },
    { name: "web-a", namespace: "shop", node: "node1", labels: { app: "web", tier: "front" }, ports: http },
    { name: "web-b", namespace: "shop", node: "node2", labels: { app: "web", tier: "front" }, ports: http },
    { name: "lonely", namespace: "shop", node: "node2", labels: { app: "lonely" }, ports: http },
  ],
};

const service = (name: string, selector: Record<string, string>, spec: Record<string, unknown> = {}): Record<string, unknown> => ({
  apiVersion: "v1", kind: "Service", metadata: { name, namespace: "shop" },
  spec: { selector, ports: [{ name: "http", port: 80, protocol: "TCP", targetPort: "http" }], ...spec },
});
const NP_CLUSTER = service("np-cluster", { app: "web" }, { type: "NodePort", ports: [{ name: "http", port: 80, protocol: "TCP", targetPort: "http", nodePort: 30080 }] });
const NP_LOCAL = service("np-local", { app: "lonely" }, {
  type: "NodePort", externalTrafficPolicy: "Local", ports: [{ name: "http", port: 80, protocol: "TCP", targetPort: "http", nodePort: 30081 }],
});
const ITP_LOCAL = service("itp-local", { app: "lonely" }, { internalTrafficPolicy: "Local" });
const STICKY = service("sticky", { tier: "front" }, { sessionAffinity: "ClientIP", sessionAffinityConfig: { clientIP: { timeoutSeconds: 300 } } });

interface Probe { reached: boolean; seenAs?: string; answeredBy?: string }
interface ServiceProbe { attempts: number; answered: Record<string, number>; refused: number; timedOut: number }

/** One TCP connection from a namespace (each a new one: the Service chooses again). */
function connect(netns: string, ip: string, port: number, timeoutMs = 1500): Probe {
  const out = sh("nsenter", [`--net=/run/netns/${netns}`, TRELLIS_CLI, "probe", "connect", "--timeout-ms", String(timeoutMs),
    "--targets", JSON.stringify([{ ip, port, protocol: "TCP" }])]);
  return (JSON.parse(out) as Probe[])[0]!;
}
/** New connections until every address in `expect` answered (or `attempts` spent): who answered how often. */
function serviceProbe(netns: string, ip: string, port: number, expect: string[], attempts: number): ServiceProbe {
  const out = sh("nsenter", [`--net=/run/netns/${netns}`, TRELLIS_CLI, "probe", "connect", "--timeout-ms", "1500",
    "--targets", JSON.stringify([{ ip, port, protocol: "TCP", expect, attempts }])]);
  return (JSON.parse(out) as ServiceProbe[])[0]!;
}
/** The services table with rule handles, elements left out: what an endpoint change must not alter. */
const rulesWithHandles = (netns: string): string => {
  const r = spawnSync("ip", ["netns", "exec", netns, "nft", "-a", "list", "table", "inet", "trellis-svc"], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.replace(/\n\s*elements = \{[^}]*\}/g, "");
};

describe("Services data plane in a 2-node lab: NodePort, traffic policy, affinity, hairpin, scaling", { skip, timeout: 240_000 }, () => {
  const lab = new TestLab();
  const clusterIp = new Map<string, string>();

  before(async () => {
    lab.upSpec(SPEC);
    lab.apply([NP_CLUSTER, NP_LOCAL, STICKY, ITP_LOCAL, service("lonely", { app: "lonely" })]);
    const items = (JSON.parse(lab.cli("get", "services", "-o", "json").stdout) as { items: Array<{ metadata: { name: string }; spec: { clusterIP: string } }> }).items;
    for (const i of items) clusterIp.set(i.metadata.name, i.spec.clusterIP);
    // Programmed on both nodes: the ClusterIP of np-cluster answers from a pod on each.
    await eventually("every node serves the Services", 30_000, () => {
      assert.equal(connect(lab.pod("shop/client").netns, clusterIp.get("np-cluster")!, 80).reached, true);
      assert.equal(connect(lab.pod("shop/lonely").netns, clusterIp.get("np-cluster")!, 80).reached, true);
    }, 250);
  });
  after(() => lab.down());

  test("NodePort (ETP Cluster) from the outside through each node reaches every endpoint, masqueraded", () => {
    const outside = lab.status().outside;
    const endpoints = [lab.pod("shop/web-a").ip, lab.pod("shop/web-b").ip];
    for (const node of lab.status().nodes) {
      const p = serviceProbe(outside.netns, node.ip, 30080, endpoints, 40);
      assert.deepEqual(Object.keys(p.answered).sort(), [...endpoints].sort(), `through ${node.name}: every endpoint answered (${JSON.stringify(p)})`);
      const one = connect(outside.netns, node.ip, 30080);
      assert.equal(one.reached, true);
      assert.notEqual(one.seenAs, outside.ip, `through ${node.name}: masqueraded (the reply must come back through ${node.name})`);
    }
  });

  test("NodePort with externalTrafficPolicy Local: the node's own endpoint, the client's address kept; a node without one answers nothing", () => {
    const outside = lab.status().outside;
    const lonely = lab.pod("shop/lonely");
    const p = connect(outside.netns, lab.node("node2").ip, 30081);
    assert.deepEqual([p.reached, p.answeredBy, p.seenAs], [true, lonely.ip, outside.ip]);
    const none = connect(outside.netns, lab.node("node1").ip, 30081, 1000);
    assert.equal(none.reached, false, "node1 has no endpoint of np-local: dropped, not forwarded");
  });

  test("internalTrafficPolicy Local: a pod reaches only endpoints on its own node; none there → dropped", () => {
    const p = connect(lab.pod("shop/web-b").netns, clusterIp.get("itp-local")!, 80);
    assert.deepEqual([p.reached, p.answeredBy], [true, lab.pod("shop/lonely").ip]);
    assert.equal(connect(lab.pod("shop/client").netns, clusterIp.get("itp-local")!, 80, 1000).reached, false, "node1 has no endpoint of itp-local");
  });

  test("sessionAffinity ClientIP keeps a client on one endpoint; another client may land elsewhere but also stays", () => {
    for (const client of ["shop/client", "shop/lonely"]) {
      const netns = lab.pod(client).netns;
      const seen = new Set<string>();
      for (let i = 0; i < 12; i++) {
        const p = connect(netns, clusterIp.get("sticky")!, 80);
        assert.equal(p.reached, true);
        seen.add(p.answeredBy!);
      }
      assert.equal(seen.size, 1, `${client} always answered by one endpoint, got ${[...seen].join(", ")}`);
    }
  });

  test("hairpin: a pod reaching itself through its Service is answered by itself, masqueraded", () => {
    const lonely = lab.pod("shop/lonely");
    const p = connect(lonely.netns, clusterIp.get("lonely")!, 80);
    assert.equal(p.reached, true);
    assert.equal(p.answeredBy, lonely.ip);
    assert.notEqual(p.seenAs, lonely.ip, "the source is rewritten, so the reply goes back through the node's conntrack");
  });

  test("a services table deleted behind the agent's back is programmed again", async () => {
    const node1 = lab.node("node1");
    sh("ip", ["netns", "exec", node1.netns, "nft", "delete", "table", "inet", "trellis-svc"]);
    await eventually("node1 serves np-cluster again", 30_000, () => {
      assert.equal(connect(lab.pod("shop/client").netns, clusterIp.get("np-cluster")!, 80).reached, true);
    }, 500);
    assert.match(lab.agentLog("node1"), /table inet trellis-svc is gone from the kernel; programming it again/);
  });

  test("scaling np-cluster up and down changes only elements on every node; the new endpoint is used, then no more", async () => {
    const nodes = lab.status().nodes;
    const handles = new Map(nodes.map((n) => [n.name, rulesWithHandles(n.netns)]));
    const added = lab.podAdd("shop/web-c", "node2", { app: "web" }, "http:8080/TCP");
    const client = lab.pod("shop/client").netns;
    const all = [lab.pod("shop/web-a").ip, lab.pod("shop/web-b").ip, added.ips[0]!];
    await eventually("web-c answers through np-cluster", 30_000, () => {
      const p = serviceProbe(client, clusterIp.get("np-cluster")!, 80, all, 60);
      assert.deepEqual(Object.keys(p.answered).sort(), [...all].sort(), JSON.stringify(p));
    }, 250);
    for (const n of nodes) assert.equal(rulesWithHandles(n.netns), handles.get(n.name), `${n.name}: scaling up touched only elements`);
    lab.podDelete("shop/web-c");
    await eventually("web-c is no longer chosen", 30_000, () => {
      const p = serviceProbe(client, clusterIp.get("np-cluster")!, 80, all.slice(0, 2), 40);
      assert.equal(p.answered[added.ips[0]!], undefined, JSON.stringify(p));
      assert.equal(p.timedOut + p.refused, 0, JSON.stringify(p));
    }, 250);
    for (const n of nodes) assert.equal(rulesWithHandles(n.netns), handles.get(n.name), `${n.name}: scaling down touched only elements`);
  });
});
