// A 3-node lab whose agents use the Kubernetes datastore: the fake API server (the documented
// protocol) runs in the lab's control-plane namespace, the agents authenticate with a service
// account token bound to the manifest's ClusterRole, each node takes its Node's spec.podCIDR,
// pods attached with Kubernetes-style CNI_ARGS get their Pod's labels' policies, and
// NetworkPolicies and Trellis policies written to the API server (as `kubectl apply` would) are
// enforced across nodes; a Service and its EndpointSlice written there (as a user and the
// endpointslice controller would) take a pod's connection to the ClusterIP to a pod on another
// node. Every call the agents made is one the ClusterRole allows, and every
// permission the ClusterRole grants is used.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { AGENT_RULES, rulesAllow } from "../../src/k8s/rbac.js";
import { AGENT_USER } from "../../src/lab/kube.js";
import { spawnSync } from "node:child_process";
import { eventually, labSkip, TestLab, type CheckReport } from "../helpers/lab.js";
import { TRELLIS_CLI } from "../helpers/netns.js";
import { PROD_DEV_POLICIES, PROD_DEV_SPEC } from "../helpers/policy.js";
import { connect, hasServicesTable } from "../helpers/services.js";

const skip = labSkip();
const CLUSTER_IP = "10.96.0.50";

interface ApiCall { user: string; verb: string; group: string; resource: string; subresource?: string; name?: string; namespace?: string; code: number }

describe("a 3-node lab on the Kubernetes datastore (fake API server in the lab)", { skip, timeout: 300_000 }, () => {
  const lab = new TestLab();
  const apiDir = (): string => `/run/trellis/lab/${lab.name}/apiserver`;
  const admin = (): string => path.join(apiDir(), "admin.kubeconfig");
  /** The trellis CLI in the lab's control-plane namespace, where the API server listens (and only there). */
  const inControl = (args: string[], input?: string): { code: number | null; stdout: string; stderr: string } => {
    const r = spawnSync("nsenter", [`--net=/run/netns/trellis-${lab.name}-cp`, "--", TRELLIS_CLI, ...args], { encoding: "utf8", input });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  /** `kubectl apply -f -`, as a cluster user would. */
  const kubeApply = (docs: unknown[]): string => {
    const r = inControl(["lab", "kube-apply", "--kubeconfig", admin(), "-f", "-"], docs.map((d) => JSON.stringify(d)).join("\n---\n"));
    assert.equal(r.code, 0, `kube-apply: ${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  /** `kubectl get -o json`. */
  const kubeGet = <T>(apiVersion: string, kind: string, name?: string): T => {
    const r = inControl(["lab", "kube-get", "--kubeconfig", admin(), apiVersion, kind, ...(name ? [name] : [])]);
    assert.equal(r.code, 0, `kube-get: ${r.stderr}${r.stdout}`);
    return JSON.parse(r.stdout) as T;
  };
  const checkPasses = (): CheckReport => {
    const c = lab.check();
    assert.equal(c.exitCode, 0, `lab check failed:\n${c.report.cells.filter((x) => x.expected !== x.reached)
      .map((x) => `${x.from} -> ${x.to} ${x.probe}: expected ${x.expected}, reached ${x.reached} (${x.cause ?? x.why})`).join("\n")}`);
    return c.report;
  };

  before(() => {
    lab.upSpec({ ...PROD_DEV_SPEC, datastore: "kubernetes" });
  });
  after(() => lab.down());

  test("each node leases exactly its Node's spec.podCIDR, published on the Node", () => {
    const nodes = lab.nodes();
    assert.deepEqual(nodes.map((n) => [n.name, n.subnet, n.agent]), [["node1", "10.244.0.0/24", "ready"], ["node2", "10.244.1.0/24", "ready"], ["node3", "10.244.2.0/24", "ready"]]);
    const node = kubeGet<{ metadata: { annotations: Record<string, string> }; status?: { conditions?: Array<{ type: string; status: string; reason: string }> } }>("v1", "Node", "node2");
    assert.equal(JSON.parse(node.metadata.annotations["trellis.dev/lease"]!).subnet, "10.244.1.0/24");
    assert.equal(node.metadata.annotations["trellis.dev/public-ip"], lab.node("node2").ip);
    const net = kubeGet<{ spec: { blocks: string; network: string } }>("trellis.dev/v1", "TrellisNetwork", "default");
    assert.deepEqual([net.spec.network, net.spec.blocks], ["10.244.0.0/16", "assigned"], "the agents stored the network config (--network-init)");
  });

  test("every Node says NetworkUnavailable=False once its agent is ready", async () => {
    await eventually("NetworkUnavailable False on every Node", 20_000, () => {
      const list = kubeGet<{ items: Array<{ metadata: { name: string }; status?: { conditions?: Array<{ type: string; status: string; reason: string }> } }> }>("v1", "Node");
      for (const n of list.items) {
        const c = n.status?.conditions?.find((x) => x.type === "NetworkUnavailable");
        assert.equal(c?.status, "False", `${n.metadata.name}: ${JSON.stringify(c)}`);
        assert.equal(c?.reason, "TrellisIsUp");
      }
    }, 250);
  });

  test("each agent installed the CNI config once ready, and says so on its health endpoint", () => {
    for (const node of ["node1", "node2", "node3"]) {
      const dir = lab.nodeDir(node);
      assert.equal(fs.readFileSync(path.join(dir, "net.d", "10-trellis.conflist"), "utf8"), fs.readFileSync(path.join(dir, "cni-template.conflist"), "utf8"));
      const r = spawnSync("nsenter", [`--net=/run/netns/trellis-${lab.name}-${node}`, "--", TRELLIS_CLI, "agent", "probe", "--ready"], { encoding: "utf8" });
      assert.equal(r.status, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /^ok: ready: 10\.244\.\d\.0\/24/);
      assert.match(lab.agentLog(node), /installed the CNI config/);
    }
  });

  test("pods exist as Pod objects; with no policy every pair connects", () => {
    const pods = kubeGet<{ items: Array<{ metadata: { name: string; namespace: string; labels: Record<string, string> } }> }>("v1", "Pod");
    assert.deepEqual(pods.items.map((p) => `${p.metadata.namespace}/${p.metadata.name}:${p.metadata.labels.app}`).sort(),
      ["dev/tool:tool", "prod/api:api", "prod/db:db", "prod/web:web"]);
    const report = checkPasses();
    assert.ok(report.cells.every((c) => c.reached), "no policy: everything open");
  });

  test("NetworkPolicies and a GlobalTrellisPolicy written to the API server are enforced across nodes", async () => {
    kubeApply(PROD_DEV_POLICIES);
    const report = (await eventually("lab check passes with the policies", 30_000, () => checkPasses(), 250)).value;
    const cell = (from: string, to: string, probe: string) => report.cells.find((c) => c.from === from && c.to === to && c.probe === probe)!;
    assert.equal(cell("prod/web", "prod/api", "8080/TCP").reached, true, "api from web (named port)");
    assert.equal(cell("prod/db", "prod/api", "8080/TCP").reached, false, "api only from web");
    assert.equal(cell("dev/tool", "prod/web", "80/TCP").reached, false, "the GlobalTrellisPolicy denies dev -> prod");
  });

  test("a Pod's label change in the API server moves it in and out of policies", async () => {
    const api = { apiVersion: "v1", kind: "Pod", metadata: { name: "web", namespace: "prod", labels: { app: "other" } }, spec: { containers: [{ name: "app", image: "x" }] } };
    kubeApply([api]);
    await eventually("web relabelled: api no longer reachable from it", 30_000, () => {
      const r = checkPasses();
      assert.equal(r.cells.find((c) => c.from === "prod/web" && c.to === "prod/api" && c.probe === "8080/TCP")!.reached, false);
    }, 250);
    kubeApply([{ ...api, metadata: { ...api.metadata, labels: { app: "web" } } }]);
    await eventually("web labelled back", 30_000, () => {
      const r = checkPasses();
      assert.equal(r.cells.find((c) => c.from === "prod/web" && c.to === "prod/api" && c.probe === "8080/TCP")!.reached, true);
    }, 250);
  });

  test("a new pod added the Kubernetes way gets its labels' policy from its first packet", () => {
    const added = lab.podAdd("prod/web2", "node2", { app: "web" }, "");
    assert.ok(added.ips.length > 0);
    checkPasses();
    const r = lab.check().report;
    const c = r.cells.find((x) => x.from === "prod/web2" && x.to === "prod/api" && x.probe === "8080/TCP");
    assert.equal(c?.reached, true, "web2 is a web: api admits it");
    lab.podDelete("prod/web2");
  });

  test("a Service (explicit clusterIP) and its EndpointSlice written to the API server: a pod reaches the endpoint on another node", async () => {
    const web = lab.pod("prod/web"); // node1; api-from-web admits it on api's http port
    const api = lab.pod("prod/api"); // node2
    // What a user applies, and what the cluster's endpointslice controller would write for it.
    const service = { apiVersion: "v1", kind: "Service", metadata: { name: "api", namespace: "prod" },
      spec: { type: "ClusterIP", clusterIP: CLUSTER_IP, clusterIPs: [CLUSTER_IP], selector: { app: "api" }, ports: [{ name: "http", port: 80, protocol: "TCP", targetPort: "http" }] } };
    const slice = { apiVersion: "discovery.k8s.io/v1", kind: "EndpointSlice", addressType: "IPv4",
      metadata: { name: "api-x7k2p", namespace: "prod", labels: { "kubernetes.io/service-name": "api", "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io" } },
      endpoints: [{ addresses: [api.ip], conditions: { ready: true, serving: true, terminating: false }, nodeName: "node2", targetRef: { kind: "Pod", namespace: "prod", name: "api" } }],
      ports: [{ name: "http", port: 8080, protocol: "TCP" }] };
    kubeApply([service, slice]);
    const p = (await eventually(`${CLUSTER_IP}:80 connects from prod/web`, 30_000, () => {
      const r = connect(web.netns, CLUSTER_IP, 80, 1000);
      assert.equal(r.reached, true, "connected");
      return r;
    }, 250)).value;
    assert.equal(p.seenAs, web.ip, `api (${api.ip}) saw the client's own address`);
    const got = lab.cli("get", "services", "-o", "json");
    assert.equal(got.code, 0, got.stderr);
    assert.equal((JSON.parse(got.stdout) as { items: Array<{ metadata: { name: string }; spec: { clusterIP?: string } }> }).items.find((i) => i.metadata.name === "api")?.spec.clusterIP, CLUSTER_IP);

    // The endpointslice controller removing the endpoint, then the Service deleted: the table goes from every node.
    const r = inControl(["lab", "kube-apply", "--kubeconfig", admin(), "--delete", "-f", "-"], [slice, service].map((d) => JSON.stringify(d)).join("\n---\n"));
    assert.equal(r.code, 0, r.stderr);
    await eventually("no node has a services table", 15_000, () => {
      for (const n of lab.status().nodes) assert.equal(hasServicesTable(n.netns), false, `${n.name} has no table inet trellis-svc`);
    }, 250);
  });

  test("the agents' API calls are exactly what the ClusterRole allows", async () => {
    const agentCalls = (): ApiCall[] => fs.readFileSync(path.join(apiDir(), "calls.jsonl"), "utf8").trim().split("\n")
      .map((l) => JSON.parse(l) as ApiCall).filter((c) => c.user === AGENT_USER);
    // Every permission granted is used — except those only needed on rare paths, named here.
    // (The endpoint of the pod deleted above goes a moment later: wait for that delete.)
    const rare = new Set(["get nodes", "get trellisvalues"]);
    const unusedNow = (): string[] => {
      const used = new Set(agentCalls().map((c) => `${c.verb} ${c.resource}${c.subresource ? `/${c.subresource}` : ""}`));
      return AGENT_RULES.flatMap((r) => r.resources.flatMap((res) => r.verbs.map((v) => `${v} ${res}`))).filter((p) => !used.has(p) && !rare.has(p));
    };
    await eventually("every granted permission used", 15_000, () => assert.deepEqual(unusedNow(), [], `granted but never used by the agents: ${unusedNow().join(", ")}`), 250);
    const calls = agentCalls();
    assert.ok(calls.length > 0);
    const denied = calls.filter((c) => c.code === 403 || !rulesAllow(AGENT_RULES, c));
    assert.deepEqual(denied, [], "no call the ClusterRole does not allow");
  });

  test("trellis nodes, get and policy explain work against the API server", () => {
    const r = lab.cli("nodes");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /node1\s+\S+\s+10\.244\.0\.0\/24/);
    const e = lab.explain("prod/web", "prod/api", "8080/tcp");
    assert.equal(e.allowed, true);
  });

  test("with the API server gone the data plane stays; agents say so and recover", async () => {
    const state = JSON.parse(fs.readFileSync(`/run/trellis/lab/${lab.name}/state.json`, "utf8")) as { pids: Array<{ what: string; pid: number }> };
    const pid = state.pids.find((p) => p.what === "apiserver")?.pid;
    assert.ok(pid, "the lab knows its API server's pid");
    process.kill(pid, "SIGTERM"); // the lab's own process, started by this test's lab

    await eventually("an agent logs that the API server is unreachable", 30_000, () => assert.match(lab.agentLog("node1"), /API server unreachable.*retrying with backoff/), 250);
    // Nothing of the data plane was torn down: paths still connect as before.
    checkPassesWithStaleView(lab);
  });
});

/** During an outage `lab check` uses its last view of the datastore and says so; every path must still be as expected. */
function checkPassesWithStaleView(lab: TestLab): void {
  const c = lab.check();
  const wrong = c.report.cells.filter((x) => x.expected !== x.reached);
  assert.deepEqual(wrong.map((x) => `${x.from} -> ${x.to} ${x.probe}`), [], "every path is as it was");
}
