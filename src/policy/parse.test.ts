// Reading what users write: every invalid field is refused with the object, the field path and the
// value named; several documents per file (YAML, JSON, kind: List); one bad document refuses the
// whole file; defaults as the Kubernetes API server applies them.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { yaml } from "./model-builder.js";
import type { NetworkPolicy, OrderedPolicy, Pod } from "./model.js";
import { objectKey, parseDocuments, PolicyError } from "./parse.js";

const indent = (text: string, by: string): string => text.split("\n").map((l) => (l ? by + l : l)).join("\n");

const np = (spec: string, metadata = "{name: web, namespace: prod}"): string =>
  `apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: ${metadata}\nspec:\n${indent(spec, "  ")}\n`;
const tp = (spec: string, metadata = "{name: gate, namespace: prod}"): string =>
  `apiVersion: trellis.dev/v1\nkind: TrellisPolicy\nmetadata: ${metadata}\nspec:\n${indent(spec, "  ")}\n`;
const gtp = (spec: string): string => `apiVersion: trellis.dev/v1\nkind: GlobalTrellisPolicy\nmetadata: {name: global}\nspec:\n${indent(spec, "  ")}\n`;
/** A NetworkPolicy with one ingress rule. */
const rule = (r: string): string => np(`podSelector: {}\ningress:\n${indent(`- ${r.replace(/\n/g, "\n  ")}`, "  ")}`);

/** Asserts that parsing refuses `text` naming exactly this object, field and value. */
function refuse(text: string, object: string, field: string, value: unknown): void {
  assert.throws(() => parseDocuments(text), (e: unknown) => {
    assert.ok(e instanceof PolicyError, `not a PolicyError: ${String(e)}`);
    assert.equal(e.object, object, e.message);
    assert.equal(e.field, field, e.message);
    assert.deepEqual(e.value, value, e.message);
    assert.ok(e.message.startsWith(`${object}: ${field} ${JSON.stringify(value)}: `), e.message);
    return true;
  }, `accepted:\n${text}`);
}

/** Asserts that parsing refuses `text` for an unknown field at `path`, suggesting `suggestion`. */
function refuseUnknown(text: string, object: string, path: string, suggestion: string): void {
  assert.throws(() => parseDocuments(text), (e: unknown) => {
    assert.ok(e instanceof PolicyError, `not a PolicyError: ${String(e)}`);
    assert.equal(e.message, `${object}: ${path}: unknown field (did you mean ${suggestion}?)`);
    return true;
  }, `accepted:\n${text}`);
}

const accept = (text: string): void => void assert.doesNotThrow(() => parseDocuments(text), text);

describe("parse: kind, apiVersion, metadata", () => {
  it("refuses an unknown or missing kind", () => {
    refuse("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n", "document", "kind", "Deployment");
    refuse("apiVersion: v1\nmetadata: {name: x}\n", "document", "kind", undefined);
  });

  it("refuses the wrong apiVersion for the kind", () => {
    refuse(np("podSelector: {}").replace("networking.k8s.io/v1", "networking.k8s.io/v1beta1"), "NetworkPolicy", "apiVersion", "networking.k8s.io/v1beta1");
    refuse(tp("order: 1").replace("trellis.dev/v1", "projectcalico.org/v3"), "TrellisPolicy", "apiVersion", "projectcalico.org/v3");
    refuse("kind: Namespace\nmetadata: {name: prod}\n", "Namespace", "apiVersion", undefined);
  });

  it("refuses names that are not lower-case DNS names, and namespaces that are not DNS labels", () => {
    refuse(np("podSelector: {}", "{name: Web, namespace: prod}"), "NetworkPolicy prod/Web", "metadata.name", "Web");
    refuse(np("podSelector: {}", "{namespace: prod}"), "NetworkPolicy prod/?", "metadata.name", undefined);
    refuse(np("podSelector: {}", "{name: web_1, namespace: prod}"), "NetworkPolicy prod/web_1", "metadata.name", "web_1");
    refuse(np("podSelector: {}", `{name: ${"a".repeat(254)}, namespace: prod}`), `NetworkPolicy prod/${"a".repeat(254)}`, "metadata.name", "a".repeat(254));
    accept(np("podSelector: {}", `{name: ${"a".repeat(253)}, namespace: prod}`));
    accept(np("podSelector: {}", "{name: web.v1, namespace: prod}"));
    refuse(np("podSelector: {}", "{name: web, namespace: prod.eu}"), "NetworkPolicy prod.eu/web", "metadata.namespace", "prod.eu");
    refuse(np("podSelector: {}", "{name: web, namespace: Prod}"), "NetworkPolicy Prod/web", "metadata.namespace", "Prod");
    refuse(np("podSelector: {}", `{name: web, namespace: ${"n".repeat(64)}}`), `NetworkPolicy ${"n".repeat(64)}/web`, "metadata.namespace", "n".repeat(64));
    refuse("apiVersion: v1\nkind: Namespace\nmetadata: {name: prod.eu}\n", "Namespace prod.eu", "metadata.name", "prod.eu");
    refuse(`apiVersion: v1\nkind: Namespace\nmetadata: {name: ${"n".repeat(64)}}\n`, `Namespace ${"n".repeat(64)}`, "metadata.name", "n".repeat(64));
    accept(`apiVersion: v1\nkind: Namespace\nmetadata: {name: ${"n".repeat(63)}}\n`);
    refuse("apiVersion: v1\nkind: Pod\nmetadata: {name: API, namespace: prod}\n", "Pod prod/API", "metadata.name", "API");
  });

  it("refuses invalid label keys and values, in metadata and in selectors", () => {
    const pod = (labels: string): string => `apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: prod, labels: ${labels}}\n`;
    refuse(pod("{-app: web}"), "Pod prod/p", "metadata.labels key", "-app");
    refuse(pod("{'bad key': web}"), "Pod prod/p", "metadata.labels key", "bad key");
    refuse(pod("{Example.com/app: web}"), "Pod prod/p", "metadata.labels key", "Example.com/app");
    refuse(pod("{example.com/: web}"), "Pod prod/p", "metadata.labels key", "example.com/");
    refuse(pod("{a/b/c: web}"), "Pod prod/p", "metadata.labels key", "a/b/c");
    refuse(pod(`{${"k".repeat(64)}: web}`), "Pod prod/p", "metadata.labels key", "k".repeat(64));
    accept(pod(`{${"k".repeat(63)}: web, example.com/App_1.x: web, kubernetes.io/metadata.name: x}`));
    refuse(pod("{app: 'two words'}"), "Pod prod/p", "metadata.labels.app", "two words");
    refuse(pod("{app: -web}"), "Pod prod/p", "metadata.labels.app", "-web");
    refuse(pod(`{app: ${"v".repeat(64)}}`), "Pod prod/p", "metadata.labels.app", "v".repeat(64));
    refuse(pod("{app: 5}"), "Pod prod/p", "metadata.labels.app", 5);
    refuse(pod("{app: null}"), "Pod prod/p", "metadata.labels.app", null);
    accept(pod(`{app: '', tier: ${"v".repeat(63)}, v: A-b_c.D}`));
    refuse(np("podSelector: {matchLabels: {'bad key': x}}"), "NetworkPolicy prod/web", "spec.podSelector.matchLabels key", "bad key");
    refuse(rule("from: [{namespaceSelector: {matchLabels: {env: 'a b'}}}]"), "NetworkPolicy prod/web", "spec.ingress[0].from[0].namespaceSelector.matchLabels.env", "a b");
  });
});

describe("parse: selectors", () => {
  const expr = (e: string): string => np(`podSelector: {matchExpressions: [${e}]}`);
  const F = "spec.podSelector.matchExpressions[0]";

  it("refuses an unknown operator", () => {
    refuse(expr("{key: app, operator: Equals, values: [web]}"), "NetworkPolicy prod/web", `${F}.operator`, "Equals");
    refuse(expr("{key: app, operator: in, values: [web]}"), "NetworkPolicy prod/web", `${F}.operator`, "in");
    refuse(expr("{key: app, values: [web]}"), "NetworkPolicy prod/web", `${F}.operator`, undefined);
  });

  it("requires values for In and NotIn and refuses them for Exists and DoesNotExist", () => {
    refuse(expr("{key: app, operator: In}"), "NetworkPolicy prod/web", `${F}.values`, undefined);
    refuse(expr("{key: app, operator: NotIn, values: []}"), "NetworkPolicy prod/web", `${F}.values`, []);
    refuse(expr("{key: app, operator: Exists, values: [web]}"), "NetworkPolicy prod/web", `${F}.values`, ["web"]);
    refuse(expr("{key: app, operator: DoesNotExist, values: [web]}"), "NetworkPolicy prod/web", `${F}.values`, ["web"]);
    accept(expr("{key: app, operator: Exists, values: []}"));
    accept(expr("{key: app, operator: DoesNotExist}"));
  });

  it("requires a valid label key and valid label values", () => {
    refuse(expr("{key: '', operator: Exists}"), "NetworkPolicy prod/web", `${F}.key`, "");
    refuse(expr("{operator: Exists}"), "NetworkPolicy prod/web", `${F}.key`, undefined);
    refuse(expr("{key: 'bad key', operator: Exists}"), "NetworkPolicy prod/web", `${F}.key`, "bad key");
    refuse(expr("{key: app, operator: In, values: [web, 'not valid']}"), "NetworkPolicy prod/web", `${F}.values[1]`, "not valid");
    refuse(expr("{key: app, operator: In, values: [7]}"), "NetworkPolicy prod/web", `${F}.values[0]`, 7);
    accept(expr("{key: example.com/app, operator: In, values: [web, '']}"));
  });

  it("refuses unknown fields in a selector and a missing podSelector", () => {
    refuseUnknown(np("podSelector: {matchLabel: {app: web}}"), "NetworkPolicy prod/web", "spec.podSelector.matchLabel", "matchLabels");
    refuse(np("ingress: []"), "NetworkPolicy prod/web", "spec.podSelector", undefined);
    refuse(rule("from: [{podSelector: [app]}]"), "NetworkPolicy prod/web", "spec.ingress[0].from[0].podSelector", ["app"]);
  });

  it("refuses a namespaceSelector on a namespaced TrellisPolicy, accepts it on a GlobalTrellisPolicy", () => {
    refuse(tp("namespaceSelector: {matchLabels: {env: prod}}"), "TrellisPolicy prod/gate", "spec.namespaceSelector", { matchLabels: { env: "prod" } });
    const [g] = parseDocuments(gtp("namespaceSelector: {matchLabels: {env: prod}}"));
    assert.deepEqual((g!.object as OrderedPolicy).namespaceSelector, { matchLabels: { env: "prod" } });
    refuse(gtp("namespaceSelector: {matchLabels: {env: 'a b'}}"), "GlobalTrellisPolicy global", "spec.namespaceSelector.matchLabels.env", "a b");
  });
});

describe("parse: peers", () => {
  const P = "spec.ingress[0].from[0]";

  it("refuses an ipBlock cidr that is not a CIDR", () => {
    refuse(rule("from: [{ipBlock: {cidr: 10.0.0.0/33}}]"), "NetworkPolicy prod/web", `${P}.ipBlock.cidr`, "10.0.0.0/33");
    refuse(rule("from: [{ipBlock: {cidr: 10.0.0.0}}]"), "NetworkPolicy prod/web", `${P}.ipBlock.cidr`, "10.0.0.0");
    refuse(rule("from: [{ipBlock: {cidr: 010.0.0.0/8}}]"), "NetworkPolicy prod/web", `${P}.ipBlock.cidr`, "010.0.0.0/8");
    refuse(rule("from: [{ipBlock: {}}]"), "NetworkPolicy prod/web", `${P}.ipBlock.cidr`, undefined);
    accept(rule("from: [{ipBlock: {cidr: '2001:db8::/32'}}, {ipBlock: {cidr: 0.0.0.0/0}}]"));
  });

  it("refuses an except that is not strictly inside the cidr", () => {
    refuse(rule("from: [{ipBlock: {cidr: 10.0.0.0/8, except: [192.168.0.0/24]}}]"), "NetworkPolicy prod/web", `${P}.ipBlock.except[0]`, "192.168.0.0/24");
    refuse(rule("from: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16, 10.0.0.0/8]}}]"), "NetworkPolicy prod/web", `${P}.ipBlock.except[1]`, "10.0.0.0/8");
    refuse(rule("from: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.0.0.0/7]}}]"), "NetworkPolicy prod/web", `${P}.ipBlock.except[0]`, "10.0.0.0/7");
    refuse(rule("from: [{ipBlock: {cidr: 10.0.0.0/8, except: ['::/1']}}]"), "NetworkPolicy prod/web", `${P}.ipBlock.except[0]`, "::/1");
    refuse(rule("from: [{ipBlock: {cidr: 10.0.0.0/8, except: [nonsense]}}]"), "NetworkPolicy prod/web", `${P}.ipBlock.except[0]`, "nonsense");
    accept(rule("from: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16, 10.1.0.0/24, 10.255.255.255/32]}}]"));
  });

  it("refuses a peer with an ipBlock and a selector, and a peer with nothing", () => {
    refuse(rule("from: [{ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}]"), "NetworkPolicy prod/web", P, { ipBlock: { cidr: "10.0.0.0/8" }, podSelector: {} });
    refuse(rule("from: [{ipBlock: {cidr: 10.0.0.0/8}, namespaceSelector: {}}]"), "NetworkPolicy prod/web", P, { ipBlock: { cidr: "10.0.0.0/8" }, namespaceSelector: {} });
    refuse(rule("from: [{}]"), "NetworkPolicy prod/web", P, {});
    refuseUnknown(rule("from: [{podselector: {}}]"), "NetworkPolicy prod/web", `${P}.podselector`, "podSelector");
    refuse(np("podSelector: {}\negress:\n  - to: [{}]"), "NetworkPolicy prod/web", "spec.egress[0].to[0]", {});
    refuse(rule("from: [web]"), "NetworkPolicy prod/web", P, "web");
  });
});

describe("parse: ports", () => {
  const Q = "spec.ingress[0].ports[0]";
  const ports = (p: string): string => rule(`ports: [${p}]`);

  it("refuses port numbers out of 1..65535 and invalid port names", () => {
    refuse(ports("{port: 0}"), "NetworkPolicy prod/web", `${Q}.port`, 0);
    refuse(ports("{port: 65536}"), "NetworkPolicy prod/web", `${Q}.port`, 65536);
    refuse(ports("{port: 80.5}"), "NetworkPolicy prod/web", `${Q}.port`, 80.5);
    refuse(ports("{port: -1}"), "NetworkPolicy prod/web", `${Q}.port`, -1);
    refuse(ports("{port: HTTP}"), "NetworkPolicy prod/web", `${Q}.port`, "HTTP");
    refuse(ports("{port: '80'}"), "NetworkPolicy prod/web", `${Q}.port`, "80");
    refuse(ports("{port: -http}"), "NetworkPolicy prod/web", `${Q}.port`, "-http");
    refuse(ports("{port: a-very-long-name1}"), "NetworkPolicy prod/web", `${Q}.port`, "a-very-long-name1");
    refuse(ports("{port: true}"), "NetworkPolicy prod/web", `${Q}.port`, true);
    accept(ports("{port: 1}, {port: 65535}, {port: http}, {port: web-8080}, {port: a23456789012345}"));
  });

  it("refuses an unknown protocol", () => {
    refuse(ports("{protocol: ICMP}"), "NetworkPolicy prod/web", `${Q}.protocol`, "ICMP");
    refuse(ports("{protocol: tcp, port: 80}"), "NetworkPolicy prod/web", `${Q}.protocol`, "tcp");
  });

  it("refuses endPort without a numeric port, below port, or above 65535", () => {
    refuse(ports("{endPort: 90}"), "NetworkPolicy prod/web", `${Q}.endPort`, 90);
    refuse(ports("{port: http, endPort: 90}"), "NetworkPolicy prod/web", `${Q}.endPort`, 90);
    refuse(ports("{port: 8080, endPort: 8000}"), "NetworkPolicy prod/web", `${Q}.endPort`, 8000);
    refuse(ports("{port: 8080, endPort: 65536}"), "NetworkPolicy prod/web", `${Q}.endPort`, 65536);
    refuse(ports("{port: 8080, endPort: '9000'}"), "NetworkPolicy prod/web", `${Q}.endPort`, "9000");
    accept(ports("{port: 8080, endPort: 8080}, {port: 1, endPort: 65535}"));
  });

  it("validates container ports of pods", () => {
    const pod = (p: string): string => `apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: prod}\nspec:\n  containers:\n    - ports: [${p}]\n`;
    refuse(pod("{containerPort: 0}"), "Pod prod/p", "spec.containers[0].ports[0].containerPort", 0);
    refuse(pod("{name: http}"), "Pod prod/p", "spec.containers[0].ports[0].containerPort", undefined);
    refuse(pod("{containerPort: 53, protocol: ICMP}"), "Pod prod/p", "spec.containers[0].ports[0].protocol", "ICMP");
    refuse(pod("{containerPort: 80, name: Http}"), "Pod prod/p", "spec.containers[0].ports[0].name", "Http");
    refuse(pod("{containerPort: 80, name: http}, {containerPort: 81, name: http}"), "Pod prod/p", "spec.containers[0].ports[1].name", "http");
    const [p] = parseDocuments(pod("{containerPort: 80, name: http}, {containerPort: 53, protocol: UDP, name: dns}, {containerPort: 9}"));
    assert.deepEqual((p!.object as Pod).ports, [
      { name: "http", containerPort: 80, protocol: "TCP" }, { name: "dns", containerPort: 53, protocol: "UDP" }, { containerPort: 9, protocol: "TCP" },
    ]);
  });
});

describe("parse: rules and policy fields", () => {
  it("refuses an unknown or missing action in an ordered policy", () => {
    refuse(tp("ingress: [{action: Reject}]"), "TrellisPolicy prod/gate", "spec.ingress[0].action", "Reject");
    refuse(tp("egress: [{action: allow}]"), "TrellisPolicy prod/gate", "spec.egress[0].action", "allow");
    refuse(gtp("ingress: [{from: [{podSelector: {}}]}]"), "GlobalTrellisPolicy global", "spec.ingress[0].action", undefined);
  });

  it("refuses an invalid policyType and a non-numeric order", () => {
    refuse(np("podSelector: {}\npolicyTypes: [Ingress, Both]"), "NetworkPolicy prod/web", "spec.policyTypes", "Both");
    refuse(np("podSelector: {}\npolicyTypes: egress"), "NetworkPolicy prod/web", "spec.policyTypes", "egress");
    refuse(tp("order: high"), "TrellisPolicy prod/gate", "spec.order", "high");
    refuse(tp("order: .nan"), "TrellisPolicy prod/gate", "spec.order", Number.NaN);
  });

  it("refuses a missing spec and rules that are not lists of objects", () => {
    refuse("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: prod}\n", "NetworkPolicy prod/web", "spec", undefined);
    refuse(np("podSelector: {}\ningress: {from: []}"), "NetworkPolicy prod/web", "spec.ingress", { from: [] });
    refuse(np("podSelector: {}\ningress: [allow]"), "NetworkPolicy prod/web", "spec.ingress[0]", "allow");
    refuse(rule("from: {podSelector: {}}"), "NetworkPolicy prod/web", "spec.ingress[0].from", { podSelector: {} });
    refuse(rule("ports: 80"), "NetworkPolicy prod/web", "spec.ingress[0].ports", 80);
  });
});

describe("parse: documents", () => {
  const ALL = yaml`
    apiVersion: v1
    kind: Namespace
    metadata: {name: prod, labels: {env: prod}}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: web, namespace: prod, labels: {app: web}}
    spec: {containers: [{ports: [{containerPort: 80, name: http}]}]}
    ---
    ---
    apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata: {name: db, namespace: prod}
    spec: {podSelector: {matchLabels: {app: db}}}
    ---
    apiVersion: trellis.dev/v1
    kind: TrellisPolicy
    metadata: {name: gate, namespace: prod}
    spec: {order: 10}
    ---
    apiVersion: trellis.dev/v1
    kind: GlobalTrellisPolicy
    metadata: {name: global}
    spec: {}
  `;

  it("reads every document of a multi-document YAML file, skipping empty ones", () => {
    const docs = parseDocuments(ALL);
    assert.deepEqual(docs.map((d) => d.kind), ["Namespace", "Pod", "NetworkPolicy", "TrellisPolicy", "GlobalTrellisPolicy"]);
    assert.deepEqual(docs.map(objectKey), [
      "/trellis/namespaces/prod",
      "/trellis/pods/prod/web",
      "/trellis/policies/NetworkPolicy/prod/db",
      "/trellis/policies/TrellisPolicy/prod/gate",
      "/trellis/policies/GlobalTrellisPolicy/global",
    ]);
    assert.deepEqual(parseDocuments(""), []);
    assert.deepEqual(parseDocuments("---\n---\n"), []);
  });

  it("reads JSON, and a kind: List in YAML or JSON", () => {
    const doc = { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name: "db", namespace: "prod" }, spec: { podSelector: {} } };
    assert.deepEqual(parseDocuments(JSON.stringify(doc)).map(objectKey), ["/trellis/policies/NetworkPolicy/prod/db"]);
    const list = { apiVersion: "v1", kind: "List", items: [doc, { ...doc, metadata: { name: "web", namespace: "prod" } }] };
    assert.deepEqual(parseDocuments(JSON.stringify(list, null, 2)).map(objectKey), [
      "/trellis/policies/NetworkPolicy/prod/db", "/trellis/policies/NetworkPolicy/prod/web",
    ]);
    const yamlList = `apiVersion: v1\nkind: List\nitems:\n${indent(`- ${np("podSelector: {}").trimEnd().replace(/\n/g, "\n  ")}`, "  ")}\n---\n${np("podSelector: {}", "{name: db}")}`;
    assert.deepEqual(parseDocuments(yamlList).map(objectKey), ["/trellis/policies/NetworkPolicy/prod/web", "/trellis/policies/NetworkPolicy/default/db"]);
  });

  it("refuses the whole file when one document is bad (nothing partial)", () => {
    const bad = ALL + "---\n" + np("podSelector: {}\ningress: [{ports: [{port: 0}]}]", "{name: broken, namespace: prod}");
    refuse(bad, "NetworkPolicy prod/broken", "spec.ingress[0].ports[0].port", 0);
    const badList = JSON.stringify({ apiVersion: "v1", kind: "List", items: [
      { apiVersion: "v1", kind: "Namespace", metadata: { name: "ok" } },
      { apiVersion: "v1", kind: "Namespace", metadata: { name: "Not-OK" } },
    ] });
    refuse(badList, "Namespace Not-OK", "metadata.name", "Not-OK");
  });

  it("refuses documents that are not objects, and text that is not YAML, naming the source", () => {
    refuse("- a\n- b\n", "input document 1", "document", ["a", "b"]);
    refuse(`${np("podSelector: {}")}---\n42\n`, "input document 2", "document", 42);
    assert.throws(() => parseDocuments(`${np("podSelector: {}")}---\n42\n`, "policy.yaml"), /^PolicyError: policy\.yaml document 2: document 42: must be an object$/);
    assert.throws(() => parseDocuments("kind: Pod\nmetadata:\n  name: [unclosed\n", "policy.yaml"), /^InputError: policy\.yaml:4:1: cannot parse YAML: /);
  });
});

describe("parse: defaults", () => {
  it("namespace default, protocol TCP, order 1000, podSelector {} for ordered policies", () => {
    const [n, t, g, p] = parseDocuments([
      np("podSelector: {}\ningress: [{ports: [{port: 80}, {port: http}, {}]}]", "{name: web}"),
      tp("ingress: [{action: Allow}]", "{name: gate}"),
      gtp("ingress: [{action: Allow}]"),
      "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n",
    ].join("---\n"));
    const netpol = n!.object as NetworkPolicy;
    assert.equal(netpol.namespace, "default");
    assert.deepEqual(netpol.ingress[0]!.ports, [{ protocol: "TCP", port: 80 }, { protocol: "TCP", port: "http" }, { protocol: "TCP" }]);
    const ordered = t!.object as OrderedPolicy;
    assert.equal(ordered.namespace, "default");
    assert.equal(ordered.order, 1000);
    assert.deepEqual(ordered.podSelector, {});
    const global = g!.object as OrderedPolicy;
    assert.equal(global.namespace, undefined);
    assert.equal(global.order, 1000);
    assert.equal(global.namespaceSelector, undefined);
    assert.deepEqual(p!.object, { namespace: "default", name: "p", labels: {}, ports: [] });
  });

  it("policyTypes: Ingress always; Egress when there are egress rules; an empty list is defaulted; duplicates removed", () => {
    const types = (spec: string): unknown => (parseDocuments(np(spec))[0]!.object as NetworkPolicy).policyTypes;
    assert.deepEqual(types("podSelector: {}"), ["Ingress"]);
    assert.deepEqual(types("podSelector: {}\negress: [{}]"), ["Ingress", "Egress"]);
    assert.deepEqual(types("podSelector: {}\negress: []"), ["Ingress"]);
    assert.deepEqual(types("podSelector: {}\npolicyTypes: []\negress: [{}]"), ["Ingress", "Egress"]);
    assert.deepEqual(types("podSelector: {}\npolicyTypes: [Egress]"), ["Egress"]);
    assert.deepEqual(types("podSelector: {}\npolicyTypes: [Egress, Ingress, Egress]"), ["Egress", "Ingress"]);
  });

  it("absent and empty peers and ports both mean everything (kept as given)", () => {
    const netpol = parseDocuments(np("podSelector: {}\ningress:\n  - {}\n  - from: []\n    ports: []\n  - from: [{podSelector: {}}]"))[0]!.object as NetworkPolicy;
    assert.deepEqual(netpol.ingress, [
      { peers: undefined, ports: undefined },
      { peers: [], ports: [] },
      { peers: [{ podSelector: {} }], ports: undefined },
    ]);
    const sel = parseDocuments(np("podSelector: {matchExpressions: [{key: app, operator: Exists}]}"))[0]!.object as NetworkPolicy;
    assert.deepEqual(sel.podSelector, { matchExpressions: [{ key: "app", operator: "Exists" }] });
  });
});
