// Strict input as a class: every kind of object a user writes (the five policy kinds, the lab
// spec, the network config, the CNI plugin's and the IPAM's configuration) refuses a misspelt
// field at every level of its shape, naming the path and suggesting the field that was meant.
// Each kind's example holds every object its shape describes (asserted), and each field of the
// example is misspelt in turn.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parsePluginConfig, PLUGIN_CONFIG_SHAPE } from "../cni/config.js";
import { IPAM_CONFIG_SHAPE, parseIpamConfig } from "../ipam/config.js";
import { LAB_SPEC_SHAPE, parseLabSpec, settingsWithSpec } from "../lab/spec.js";
import { parseDocuments, SHAPES } from "../policy/parse.js";
import { NETWORK_CONFIG_SHAPE, validateNetworkConfig } from "./network.js";
import { BGP_PEER_SHAPE, NODE_SETTINGS_SHAPE, validateBgpPeer, validateNodeSettings } from "../bgp/model.js";
import { editDistance, findUnknownFields, leaf, list, map, obj, objectPaths, suggestField, type Shape } from "./strict.js";

type Json = Record<string, unknown>;

const meta = { name: "x", namespace: "prod", labels: { app: "x" }, annotations: { note: "y" } };
const selector = { matchLabels: { app: "db" }, matchExpressions: [{ key: "tier", operator: "In", values: ["a"] }] };
const peers = [{ podSelector: selector, namespaceSelector: selector }, { ipBlock: { cidr: "10.0.0.0/8", except: ["10.1.0.0/16"] } }];
const ports = [{ protocol: "TCP", port: 80, endPort: 90 }];
const container = { name: "app", image: "busybox", ports: [{ name: "http", containerPort: 80, protocol: "TCP", hostPort: 8080 }] };
const ordered = (kind: string, m: Json): Json => ({
  apiVersion: "trellis.dev/v1", kind, metadata: m,
  spec: {
    order: 10, podSelector: selector, types: ["Ingress", "Egress"],
    ingress: [{ action: "Allow", from: peers, ports }], egress: [{ action: "Deny", to: peers, ports }],
  },
});

interface Kind {
  name: string;
  shape: Shape;
  example: Json;
  /** Parses a candidate; throws on refusal. */
  parse(doc: Json): unknown;
  /** Fields whose misspelling is refused for another reason first (the document's identity). */
  skip?: string[];
  /** Where the shape's paths start inside the example. */
  root?: string;
  /** Objects of the shape the example cannot hold, each refused by the kind's validator for a reason of its own. */
  absent?: string[];
}

const globalPolicy = ordered("GlobalTrellisPolicy", { name: "x", labels: { a: "b" } });
(globalPolicy.spec as Json).namespaceSelector = selector;

const KINDS: Kind[] = [
  {
    name: "NetworkPolicy", shape: SHAPES.NetworkPolicy!, skip: ["kind", "apiVersion"], parse: (d) => parseDocuments(JSON.stringify(d)),
    example: {
      apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: meta,
      spec: { podSelector: selector, policyTypes: ["Ingress", "Egress"], ingress: [{ from: peers, ports }], egress: [{ to: peers, ports }] },
    },
  },
  {
    // spec.namespaceSelector is in the shape so that the validator can say why it is refused here
    // (only a GlobalTrellisPolicy selects across namespaces) rather than call it unknown.
    name: "TrellisPolicy", shape: SHAPES.TrellisPolicy!, skip: ["kind", "apiVersion"], parse: (d) => parseDocuments(JSON.stringify(d)),
    example: ordered("TrellisPolicy", meta), absent: ["spec.namespaceSelector"],
  },
  { name: "GlobalTrellisPolicy", shape: SHAPES.GlobalTrellisPolicy!, skip: ["kind", "apiVersion"], parse: (d) => parseDocuments(JSON.stringify(d)), example: globalPolicy },
  {
    name: "Namespace", shape: SHAPES.Namespace!, skip: ["kind", "apiVersion"], parse: (d) => parseDocuments(JSON.stringify(d)),
    example: { apiVersion: "v1", kind: "Namespace", metadata: { name: "prod", labels: { env: "prod" } }, spec: { finalizers: ["kubernetes"] } },
  },
  {
    name: "Pod", shape: SHAPES.Pod!, skip: ["kind", "apiVersion"], parse: (d) => parseDocuments(JSON.stringify(d)),
    example: { apiVersion: "v1", kind: "Pod", metadata: meta, spec: { containers: [container], initContainers: [{ ...container, ports: [{ containerPort: 1 }] }] } },
  },
  {
    // YAML through the lab's own reader: JSON is YAML.
    name: "lab spec", shape: LAB_SPEC_SHAPE, parse: (d) => parseLabSpec(JSON.stringify(d), "lab.yaml"),
    example: {
      nodes: 2, segments: 1, backend: "vxlan", mode: "routed", datastore: "embedded", natOutgoing: true, podCidr: "10.244.0.0/16",
      subnetLen: 24, allowUnreachable: false,
      namespaces: [{ name: "prod", labels: { env: "prod" } }],
      pods: [{ name: "web", namespace: "prod", node: "node1", labels: { app: "web" }, ports: [{ name: "http", port: 80, protocol: "TCP" }] }],
    },
  },
  {
    name: "network config", shape: NETWORK_CONFIG_SHAPE, parse: (d) => validateNetworkConfig(d),
    example: {
      network: "10.244.0.0/16", subnetLen: 24, subnetMin: "10.244.1.0/24", subnetMax: "10.244.9.0/24", natOutgoing: true,
      backend: { type: "bgp", vni: 1, port: 8472, mtu: 1400 }, bgp: { asNumber: 64512, nodeMesh: false },
    },
  },
  {
    name: "BGP peer", shape: BGP_PEER_SHAPE, parse: (d) => validateBgpPeer(d, "10.244.0.0/16"),
    example: { name: "tor1", peerIp: "10.99.1.3", asNumber: 65101, nodeSelector: { rack: "a" }, passwordFile: "/etc/trellis/tor1.pw" },
  },
  {
    name: "node settings", shape: NODE_SETTINGS_SHAPE, parse: (d) => validateNodeSettings(d),
    example: { node: "node1", labels: { "trellis.dev/route-reflector": "true" }, asNumber: 65001, routeReflectorClusterId: "244.0.0.1" },
  },
  {
    name: "CNI plugin config", shape: PLUGIN_CONFIG_SHAPE, parse: (d) => parsePluginConfig(d),
    example: {
      cniVersion: "1.1.0", name: "net", type: "trellis", mode: "routed", mtu: 1400, bridge: "trellis0", hairpinMode: true, logFile: "/tmp/x.log",
      agentSocket: "", routeMetric: 100, ipam: { type: "trellis-ipam" }, dns: { nameservers: ["10.96.0.10"], domain: "cluster.local", search: ["svc"], options: ["ndots:5"] },
      runtimeConfig: {}, args: {}, capabilities: {}, ipMasq: false, disableCheck: false, disableGC: false, cniVersions: ["1.1.0"], prevResult: {},
      "cni.dev/valid-attachments": [],
    },
  },
  {
    name: "IPAM config", shape: IPAM_CONFIG_SHAPE, root: "ipam", parse: (d) => parseIpamConfig({ name: "net", ipam: d }),
    example: {
      type: "trellis-ipam", ranges: [[{ subnet: "10.1.0.0/24", rangeStart: "10.1.0.10", rangeEnd: "10.1.0.20", gateway: "10.1.0.1" }]],
      routes: [{ dst: "0.0.0.0/0", gw: "10.1.0.1", mtu: 1400, advmss: 1360, priority: 10, table: 100, scope: 0 }],
      dataDir: "/tmp/ipam", resolvConf: "/etc/resolv.conf",
    },
  },
];

/** A likely typo: two neighbouring letters swapped (or the only letter doubled). */
const typo = (field: string): string => {
  if (field.length < 2) return field + field;
  const i = Math.floor((field.length - 1) / 2);
  const t = field.slice(0, i) + field[i + 1] + field[i] + field.slice(i + 2);
  return t === field ? `${field}x` : t;
};

/** Every object of `value` that `shape` describes, with its path and its normalised path (`[]` for indexes). */
function objectsOf(value: unknown, shape: Shape, path = "", norm = ""): Array<{ path: string; norm: string; value: Json; shape: Shape & { t: "object" } }> {
  const join = (p: string, k: string): string => (p ? `${p}.${k}` : k);
  if (shape.t === "list" && Array.isArray(value)) return value.flatMap((v, i) => objectsOf(v, shape.of, `${path}[${i}]`, `${norm}[]`));
  if (shape.t !== "object" || typeof value !== "object" || value === null || Array.isArray(value)) return [];
  const o = value as Json;
  return [{ path, norm, value: o, shape }, ...Object.entries(shape.fields).flatMap(([k, s]) => objectsOf(o[k], s, join(path, k), join(norm, k)))];
}

/** `value` with the field at `path` (an object path) renamed from `from` to `to`. */
function renamed(root: Json, objectPath: string, from: string, to: string): Json {
  const copy = JSON.parse(JSON.stringify(root)) as Json; // no shared objects: rename one place only
  let o: unknown = copy;
  for (const part of objectPath.match(/[^.[\]]+/g) ?? []) o = (o as Record<string, unknown>)[part];
  const target = o as Json;
  const entries = Object.entries(target).map(([k, v]): [string, unknown] => [k === from ? to : k, v]);
  for (const k of Object.keys(target)) delete target[k];
  Object.assign(target, Object.fromEntries(entries));
  return copy;
}

describe("strict input: every kind refuses a misspelt field at every level, naming its path and the field meant", () => {
  for (const k of KINDS) {
    it(`${k.name}: the example is valid and holds every object of the shape`, () => {
      assert.doesNotThrow(() => k.parse(k.example));
      const present = new Set(objectsOf(k.example, k.shape).map((o) => o.norm));
      for (const p of objectPaths(k.shape)) {
        if (!k.absent?.some((a) => p.startsWith(a))) assert.ok(present.has(p), `the ${k.name} example lacks ${p || "(the top)"}`);
      }
    });

    it(`${k.name}: each field misspelt in turn is refused`, () => {
      let tried = 0;
      for (const o of objectsOf(k.example, k.shape)) {
        for (const field of Object.keys(o.value)) {
          if (o.path === "" && k.skip?.includes(field)) continue;
          const bad = typo(field);
          const at = [k.root, o.path, bad].filter(Boolean).join(".").replace(/\.\[/g, "[");
          assert.throws(() => k.parse(renamed(k.example, o.path, field, bad)), (e: unknown) => {
            const msg = (e as Error).message;
            assert.ok(msg.includes(`${at}: unknown field (did you mean ${field}?)`), `${k.name}: "${msg}" should say "${at}: unknown field (did you mean ${field}?)"`);
            return true;
          });
          tried++;
        }
      }
      assert.ok(tried >= 4, `only ${tried} fields tried`);
    });
  }

  it("the symptoms that started it: spec.ingres, podSelector.matchLabel, bakend and lables", () => {
    const np = { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name: "x" }, spec: { podSelector: {}, ingres: [{}] } };
    assert.throws(() => parseDocuments(JSON.stringify(np)), /NetworkPolicy default\/x: spec\.ingres: unknown field \(did you mean ingress\?\)/);
    assert.throws(() => parseLabSpec("bakend: host-gw\npods: [{name: a, node: node1}]\n", "lab.yaml"), /lab\.yaml: bakend: unknown field \(did you mean backend\?\)/);
    assert.throws(() => parseLabSpec("pods: [{name: a, node: node1, lables: {app: a}}]\n", "lab.yaml"), /pods\[0\]\.lables: unknown field \(did you mean labels\?\)/);
  });
});

describe("strict input: a flag that conflicts with the lab spec is an error", () => {
  const spec = parseLabSpec("backend: vxlan\nnodes: 3\npods: [{name: a, node: node2}]\n", "lab.yaml");
  it("refuses a typed flag the spec contradicts, naming both", () => {
    assert.throws(() => settingsWithSpec(spec, { backend: "host-gw" }, new Set(["backend"]), "lab.yaml"),
      /--backend "host-gw" conflicts with backend: "vxlan" in lab\.yaml/);
    assert.throws(() => settingsWithSpec(spec, { nodes: 5 }, new Set(["nodes"]), "lab.yaml"), /--nodes 5 conflicts with nodes: 3/);
    assert.throws(() => settingsWithSpec(spec, { podsPerNode: 2 }, new Set(["podsPerNode"]), "lab.yaml"), /--pods-per-node cannot be combined with --spec/);
  });
  it("takes a flag that agrees, a flag the spec leaves open, and never a default over the spec", () => {
    assert.deepEqual(settingsWithSpec(spec, { backend: "vxlan", segments: 2 }, new Set(["backend", "segments"]), "lab.yaml"),
      { backend: "vxlan", nodes: 3, segments: 2 });
    assert.equal(settingsWithSpec(spec, { backend: "host-gw", nodes: 2 }, new Set(), "lab.yaml").backend, "vxlan");
    const open = parseLabSpec("pods: [{name: a, node: node4}]\n", "lab.yaml");
    assert.equal(settingsWithSpec(open, { nodes: 2 }, new Set(), "lab.yaml").nodes, 4, "highest node a pod names");
    assert.equal(settingsWithSpec(open, { nodes: 6 }, new Set(["nodes"]), "lab.yaml").nodes, 6, "--nodes when the spec has none");
  });
});

describe("strict: the mechanism", () => {
  const shape = obj({ a: leaf, b: obj({ c: leaf }), l: list(obj({ d: leaf })), m: map(obj({ e: leaf })) });
  it("finds unknown fields at every depth, through lists and maps, in document order", () => {
    const found = findUnknownFields({ a: 1, x: 2, b: { c: 1, cc: 2 }, l: [{ d: 1 }, { dd: 1 }], m: { k1: { e: 1, f: 2 } } }, shape);
    assert.deepEqual(found.map((u) => u.path), ["x", "b.cc", "l[1].dd", "m.k1.f"]);
    assert.deepEqual(findUnknownFields({ a: 1, b: { c: 2 }, l: [], m: {} }, shape), []);
  });
  it("leaves values of the wrong type to the kind's own validator", () => {
    assert.deepEqual(findUnknownFields({ b: "not an object", l: { not: "a list" } }, shape), []);
  });
  it("suggests the closest known name for a likely typo, and nothing for an unrelated word", () => {
    assert.equal(suggestField("ingres", ["ingress", "egress"]), "ingress");
    assert.equal(suggestField("Ingress", ["ingress", "egress"]), "ingress");
    assert.equal(suggestField("matchLabel", ["matchLabels", "matchExpressions"]), "matchLabels");
    assert.equal(suggestField("podselector", ["podSelector"]), "podSelector");
    assert.equal(suggestField("lables", ["labels", "name"]), "labels");
    assert.equal(suggestField("color", ["labels", "name"]), undefined);
    assert.equal(suggestField("x", ["name"]), undefined);
  });
  it("counts a swap of two neighbouring letters as one edit", () => {
    assert.equal(editDistance("lables", "labels"), 1);
    assert.equal(editDistance("abc", "abc"), 0);
    assert.equal(editDistance("", "abc"), 3);
    assert.equal(editDistance("kitten", "sitting"), 3);
  });
});

describe("lab spec services", () => {
  const pods = "pods: [{name: a, node: node1}]\n";
  const web = "  - {apiVersion: v1, kind: Service, metadata: {name: web, namespace: shop}, spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: http}]}}\n";
  it("holds Service and EndpointSlice documents as written, parsed as apply parses them", () => {
    const spec = parseLabSpec(`${pods}services:\n${web}`, "lab.yaml");
    assert.equal(spec.services?.length, 1);
    assert.deepEqual((spec.services![0] as { metadata: unknown }).metadata, { name: "web", namespace: "shop" });
  });
  it("refuses an unknown field of a Service with its path, another kind, a duplicate, and a non-list", () => {
    assert.throws(() => parseLabSpec(`${pods}services:\n  - {apiVersion: v1, kind: Service, metadata: {name: web}, spec: {ports: [{port: 80, targetPrt: 8080}]}}\n`, "lab.yaml"),
      /invalid lab spec lab\.yaml: services\[0\]: .*spec\.ports\[0\]\.targetPrt: unknown field \(did you mean targetPort\?\)/);
    assert.throws(() => parseLabSpec(`${pods}services:\n  - {apiVersion: v1, kind: Pod, metadata: {name: p}}\n`, "lab.yaml"),
      /lab\.yaml: services\[0\]\.kind "Pod": must be one of Service, EndpointSlice/);
    assert.throws(() => parseLabSpec(`${pods}services:\n${web}${web}`, "lab.yaml"), /services\[1\] "shop\/web": Service appears twice/);
    assert.throws(() => parseLabSpec(`${pods}services: {web: 1}\n`, "lab.yaml"), /services \{"web":1\}: must be a list/);
  });
});
