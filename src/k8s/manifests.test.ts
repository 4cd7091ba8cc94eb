// deploy/trellis.yaml: exactly what manifests.ts renders; every document valid against the
// upstream Kubernetes schemas (kubernetes-models, Kubernetes 1.27 OpenAPI); CRDs structural; the
// ClusterRole is AGENT_RULES; the DaemonSet runs the decided command line with only the
// privileges it justifies; the ConfigMap's network and CNI config pass Trellis' own validators.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { CustomResourceDefinition } from "kubernetes-models/apiextensions.k8s.io/v1";
import { DaemonSet } from "kubernetes-models/apps/v1";
import { ClusterRole, ClusterRoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1";
import { ConfigMap, Namespace, ServiceAccount } from "kubernetes-models/v1";
import type { IContainer } from "kubernetes-models/v1/Container";
import type { IDaemonSet } from "kubernetes-models/apps/v1/DaemonSet";
import { parseAllDocuments } from "yaml";
import { parsePluginConfig } from "../cni/config.js";
import { parseIpamConfig } from "../ipam/config.js";
import { validateNetworkConfig } from "../model/network.js";
import { CRDS, crdSchema } from "./crds.js";
import { AGENT_CAPABILITIES, AGENT_ARGS, CONFLIST_NAME, HOST_PATHS, NAMESPACE, renderManifests, renderManifestsYaml, type Manifest } from "./manifests.js";
import { customObjectErrors } from "./openapi-validate.js";
import { AGENT_RULES } from "./rbac.js";
import type { Schema } from "./schema.js";
import { structuralSchemaErrors } from "./structural-schema.js";

const FILE = fileURLToPath(new URL("../../../deploy/trellis.yaml", import.meta.url));
type Obj = Record<string, unknown>;

const fileDocs = (): Obj[] => parseAllDocuments(fs.readFileSync(FILE, "utf8")).map((d) => {
  assert.deepEqual(d.errors, []);
  return d.toJS() as Obj;
});

/** The upstream model class of each kind the install holds. */
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  Namespace, ServiceAccount, ConfigMap, ClusterRole, ClusterRoleBinding, CustomResourceDefinition, DaemonSet,
};

const daemonSet = (): IDaemonSet => renderManifests().find((m): m is IDaemonSet => m.kind === "DaemonSet")!;
const podSpec = () => daemonSet().spec!.template.spec!;
const agentContainer = (): IContainer => podSpec().containers.find((c) => c.name === "agent")!;
const kinds = (docs: readonly Manifest[]): string[] => docs.map((d) => d.kind);

describe("deploy/trellis.yaml", () => {
  it("is exactly what manifests.ts renders (regenerate: node dist/src/k8s/render-manifests.js > deploy/trellis.yaml)", () => {
    assert.equal(fs.readFileSync(FILE, "utf8"), renderManifestsYaml());
    assert.deepEqual(fileDocs(), JSON.parse(JSON.stringify(renderManifests())));
  });

  it("holds the namespace, account, RBAC, every CRD, the config and the DaemonSet, CRDs before their users", () => {
    const k = kinds(renderManifests());
    assert.deepEqual(k, ["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", ...CRDS.map(() => "CustomResourceDefinition"), "ConfigMap", "DaemonSet"]);
  });

  it("validates, document by document, against the upstream Kubernetes schemas", () => {
    for (const doc of fileDocs()) {
      const Model = MODELS[doc.kind as string];
      assert.ok(Model, `no upstream model for ${String(doc.kind)}`);
      assert.doesNotThrow(() => new Model(doc as never).validate(), `${String(doc.kind)} ${String((doc.metadata as Obj).name)}`);
    }
  });

  it("the upstream validation does catch a broken document (the check is not vacuous)", () => {
    const ds = JSON.parse(JSON.stringify(daemonSet())) as Obj;
    ((((ds.spec as Obj).template as Obj).spec as Obj).containers as Obj[])[0]!.securityContext = { privileged: "no" };
    assert.throws(() => new DaemonSet(ds as never).validate(), /privileged must be boolean/);
  });

  it("has structural CRD schemas", () => {
    for (const doc of fileDocs().filter((d) => d.kind === "CustomResourceDefinition")) {
      const v = ((doc.spec as Obj).versions as Obj[])[0]!;
      assert.deepEqual(structuralSchemaErrors((v.schema as Obj).openAPIV3Schema as Schema), []);
    }
  });

  it("grants the agent exactly AGENT_RULES, bound to its service account, with no wildcard", () => {
    const docs = renderManifests();
    const role = docs.find((d) => d.kind === "ClusterRole") as { rules: unknown[]; metadata: { name: string } };
    assert.deepEqual(role.rules, AGENT_RULES);
    assert.ok(!JSON.stringify(role.rules).includes("*"));
    const binding = docs.find((d) => d.kind === "ClusterRoleBinding") as { roleRef: { name: string }; subjects: Array<{ name: string; namespace: string }> };
    assert.equal(binding.roleRef.name, role.metadata.name);
    assert.deepEqual(binding.subjects.map((s) => [s.name, s.namespace]), [[podSpec().serviceAccountName, NAMESPACE]]);
  });
});

describe("the DaemonSet", () => {
  it("runs the agent with the decided command line, NODE_NAME from the downward API, and the probes", () => {
    const c = agentContainer();
    assert.deepEqual([...c.command!, ...c.args!], ["trellis", "--datastore", "kubernetes", "agent", "--node", "$(NODE_NAME)",
      "--network-init", "/etc/trellis/network.yaml", "--cni-conf-template", "/etc/trellis/10-trellis.conflist",
      "--cni-conf-file", "/host/etc/cni/net.d/10-trellis.conflist", "--health-addr", "127.0.0.1:9099"]);
    assert.deepEqual(c.args, AGENT_ARGS);
    assert.deepEqual(c.env, [{ name: "NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } }]);
    assert.deepEqual(c.livenessProbe!.exec!.command, ["trellis", "agent", "probe", "--live"]);
    assert.deepEqual(c.readinessProbe!.exec!.command, ["trellis", "agent", "probe", "--ready"]);
    assert.ok(c.resources?.requests?.cpu && c.resources.requests.memory);
  });

  it("runs on every node, critical, host network, one node at a time", () => {
    const ds = daemonSet();
    const p = podSpec();
    assert.equal(p.hostNetwork, true);
    assert.equal(p.hostPID, undefined);
    assert.equal(p.priorityClassName, "system-node-critical");
    assert.deepEqual(p.tolerations, [{ operator: "Exists" }]);
    assert.deepEqual(ds.spec!.updateStrategy, { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 1 } });
    assert.ok((p.terminationGracePeriodSeconds ?? 0) > 0);
    assert.deepEqual(ds.spec!.selector.matchLabels, ds.spec!.template.metadata!.labels);
  });

  it("the agent is not privileged: it drops every capability and adds back only the justified ones", () => {
    const sc = agentContainer().securityContext!;
    assert.equal(sc.privileged, false);
    assert.deepEqual(sc.capabilities!.drop, ["ALL"]);
    assert.deepEqual(sc.capabilities!.add, Object.keys(AGENT_CAPABILITIES));
    assert.deepEqual(Object.keys(AGENT_CAPABILITIES).sort(), ["NET_ADMIN", "NET_BIND_SERVICE", "SYS_ADMIN"]);
    // The API server refuses allowPrivilegeEscalation: false with CAP_SYS_ADMIN; we do not pretend either.
    assert.notEqual(sc.allowPrivilegeEscalation, false);
    for (const cap of sc.capabilities!.add!) assert.ok(renderManifestsYaml().includes(`# ${cap}: `), `${cap} is explained in the YAML`);
  });

  it("the only privileged container is the one-shot ip_forward writer, and it touches nothing else", () => {
    const all = [...(podSpec().initContainers ?? []), ...podSpec().containers];
    const privileged = all.filter((c) => c.securityContext?.privileged === true);
    assert.deepEqual(privileged.map((c) => c.name), ["enable-ip-forward"]);
    const script = privileged[0]!.command!.join(" ");
    assert.deepEqual([...script.matchAll(/\/proc\/sys\/[\w/.]+/g)].map((m) => m[0]), ["/proc/sys/net/ipv4/ip_forward"]);
    assert.equal(privileged[0]!.volumeMounts, undefined, "no host path");
  });

  it("installs the plugins atomically: a temporary name in the same directory, then rename", () => {
    const init = podSpec().initContainers!.find((c) => c.name === "install-cni")!;
    const script = init.command![2]!;
    const tmp = /tmp="([^"]+)"/.exec(script)![1]!;
    assert.ok(tmp.startsWith(`${HOST_PATHS.cniBin.mount}/.`), "temporary file in the target directory (rename is atomic only within a file system)");
    assert.match(script, /cp [^\n]*"\$tmp"[\s\S]*mv -f "\$tmp" "\/host\/opt\/cni\/bin\/\$f"/);
    assert.deepEqual(init.securityContext!.capabilities, { drop: ["ALL"] });
    assert.deepEqual(init.volumeMounts, [{ name: "cni-bin", mountPath: HOST_PATHS.cniBin.mount }]);
  });

  it("mounts only declared volumes; every host path is one of the documented ones", () => {
    const p = podSpec();
    const volumes = new Map((p.volumes ?? []).map((v) => [v.name, v]));
    for (const c of [...(p.initContainers ?? []), ...p.containers]) {
      for (const m of c.volumeMounts ?? []) assert.ok(volumes.has(m.name), `${c.name} mounts undeclared ${m.name}`);
    }
    const hostPaths = (p.volumes ?? []).flatMap((v) => (v.hostPath ? [v.hostPath.path] : [])).sort();
    assert.deepEqual(hostPaths, Object.values(HOST_PATHS).map((h) => h.host).sort());
    const netns = agentContainer().volumeMounts!.find((m) => m.name === "netns")!;
    assert.equal(netns.mountPropagation, "HostToContainer");
    assert.equal(netns.readOnly, true);
  });
});

describe("the ConfigMap", () => {
  const data = (): Record<string, string> => (renderManifests().find((m) => m.kind === "ConfigMap") as { data: Record<string, string> }).data;

  it("network.yaml is a TrellisNetwork the CRD and Trellis' network validator both accept", () => {
    const docs = parseAllDocuments(data()["network.yaml"]!).map((d) => d.toJS() as Obj);
    assert.equal(docs.length, 1);
    const net = docs[0]!;
    assert.deepEqual(customObjectErrors(net, crdSchema("TrellisNetwork")), []);
    assert.deepEqual(validateNetworkConfig(net.spec), {
      network: "10.244.0.0/16", subnetLen: 24, backend: { type: "vxlan", vni: 1, port: 8472 }, natOutgoing: true, blocks: "assigned",
    });
  });

  it("the conflist is CNI 1.1.0 with the trellis plugin and trellis-ipam, as their parsers accept", () => {
    const conf = JSON.parse(data()[CONFLIST_NAME]!) as { cniVersion: string; plugins: Obj[] };
    assert.equal(conf.cniVersion, "1.1.0");
    assert.equal(conf.plugins.length, 1);
    const plugin = conf.plugins[0]!;
    assert.equal(plugin.type, "trellis");
    assert.equal(plugin.agentSocket, `${HOST_PATHS.run.host}/cni.sock`);
    assert.doesNotThrow(() => parsePluginConfig(plugin));
    const ipam = parseIpamConfig(plugin, { readSubnetFile: () => "TRELLIS_NETWORK=10.244.0.0/16\nTRELLIS_SUBNET=10.244.1.0/24\nTRELLIS_MTU=1450\n" });
    assert.equal(ipam.dataDir, HOST_PATHS.ipamData.host);
    assert.equal(ipam.rangeSets.length, 1);
  });
});
