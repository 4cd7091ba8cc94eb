// The CRDs against Trellis' own readers: every schema is structural and preserves no unknown
// field; sample objects (the README's and examples/policies.yaml's policies, the install's
// TrellisNetwork, a BGP peer, a TrellisValue) are accepted both by the schema and by Trellis'
// validator; a misspelled field or a value outside Trellis' enums and ranges is refused by the
// schema, as `kubectl apply` would; and the schemas list exactly the fields Trellis reads.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import { BGP_PEER_SHAPE, validateBgpPeer } from "../bgp/model.js";
import { NETWORK_CONFIG_SHAPE, validateNetworkConfig } from "../model/network.js";
import type { Shape } from "../model/strict.js";
import { parseObject, SHAPES } from "../policy/parse.js";
import { API_VERSION, crdSchema, CRDS, GROUP } from "./crds.js";
import { NETWORK_INIT } from "./manifests.js";
import { customObjectErrors } from "./openapi-validate.js";
import type { Schema } from "./schema.js";
import { structuralSchemaErrors } from "./structural-schema.js";

const repoFile = (rel: string): string => fileURLToPath(new URL(`../../../${rel}`, import.meta.url));
type Obj = Record<string, unknown>;
const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

/** Errors of a whole object against its kind's CRD schema (the API server checks apiVersion and kind itself). */
const errorsOf = (o: Obj): string[] => customObjectErrors(o, crdSchema(o.kind as string));

const README_POLICY = {
  apiVersion: API_VERSION, kind: "GlobalTrellisPolicy", metadata: { name: "dev-cannot-reach-prod" },
  spec: {
    order: 100,
    namespaceSelector: { matchLabels: { env: "dev" } },
    egress: [{ action: "Deny", to: [{ namespaceSelector: { matchLabels: { env: "prod" } } }] }, { action: "Pass" }],
  },
};
const FULL_POLICY = {
  apiVersion: API_VERSION, kind: "TrellisPolicy", metadata: { name: "db", namespace: "prod" },
  spec: {
    order: 10.5,
    podSelector: { matchLabels: { app: "db" }, matchExpressions: [{ key: "tier", operator: "In", values: ["a", "b"] }, { key: "x", operator: "Exists" }] },
    types: ["Ingress", "Egress"],
    ingress: [
      { action: "Allow", from: [{ podSelector: { matchLabels: { app: "api" } }, namespaceSelector: {} }], ports: [{ protocol: "TCP", port: 5432 }, { port: "metrics" }] },
      { action: "Log", from: [{ ipBlock: { cidr: "10.0.0.0/8", except: ["10.1.0.0/16"] } }], ports: [{ protocol: "UDP", port: 1000, endPort: 2000 }] },
      { action: "Deny" },
    ],
    egress: [{ action: "Allow", to: [{ ipBlock: { cidr: "fd00::/8" } }], ports: [{ protocol: "SCTP" }] }],
  },
};
const BGP_PEER = { apiVersion: API_VERSION, kind: "TrellisBGPPeer", metadata: { name: "tor1" }, spec: { peerIp: "10.99.1.3", asNumber: 65101, nodeSelector: { rack: "a" }, passwordFile: "/etc/trellis/tor1.pw" } };
const VALUE = { apiVersion: API_VERSION, kind: "TrellisValue", metadata: { name: "status.node1" }, spec: { key: "/trellis/status/node1", value: "{\"state\":\"ready\"}" } };

/** Trellis' own verdict on an object: undefined = accepted, else its message. */
function trellisVerdict(o: Obj): string | undefined {
  try {
    const spec = o.spec as Obj;
    if (o.kind === "TrellisNetwork") {
      const config = spec;
      validateNetworkConfig(config);
    } else if (o.kind === "TrellisBGPPeer") {
      validateBgpPeer({ name: (o.metadata as Obj).name, ...spec }, undefined);
    } else if (o.kind !== "TrellisValue") {
      parseObject(o);
    }
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

const examplePolicies = (): Obj[] =>
  parseAllDocuments(fs.readFileSync(repoFile("examples/policies.yaml"), "utf8"))
    .map((d) => d.toJS() as Obj)
    .filter((d) => d.apiVersion === API_VERSION);

const samples = (): Obj[] => [clone(NETWORK_INIT) as Obj, README_POLICY, FULL_POLICY, BGP_PEER, VALUE, ...examplePolicies()];

describe("CRDs", () => {
  it("are structural, type every field, preserve no unknown field, and are named plural.group", () => {
    for (const c of CRDS) {
      const schema = c.spec.versions[0]!.schema!.openAPIV3Schema as Schema;
      assert.deepEqual(structuralSchemaErrors(schema), [], c.metadata!.name);
      assert.ok(!JSON.stringify(schema).includes("x-kubernetes-preserve-unknown-fields"), `${c.metadata!.name} preserves unknown fields`);
      assert.equal(c.metadata!.name, `${c.spec.names.plural}.${GROUP}`);
      assert.equal(c.spec.versions.length, 1);
      assert.ok((c.spec.names.shortNames ?? []).length > 0, `${c.spec.names.kind} has a short name`);
    }
  });

  it("print columns that exist in the schema", () => {
    for (const c of CRDS) {
      const schema = c.spec.versions[0]!.schema!.openAPIV3Schema as Schema;
      for (const col of c.spec.versions[0]!.additionalPrinterColumns ?? []) {
        if (col.jsonPath.startsWith(".metadata.")) continue;
        let s: Schema | undefined = schema;
        for (const part of col.jsonPath.slice(1).split(".")) s = s?.properties?.[part];
        assert.ok(s, `${c.spec.names.kind} column ${col.name}: ${col.jsonPath} is not in the schema`);
      }
    }
  });

  it("accept the sample objects, as Trellis does", () => {
    const all = samples();
    assert.ok(all.length >= 6 && examplePolicies().length >= 1);
    for (const o of all) {
      assert.deepEqual(errorsOf(o), [], `${String(o.kind)} ${String((o.metadata as Obj).name)}`);
      assert.equal(trellisVerdict(o), undefined, `${String(o.kind)} ${String((o.metadata as Obj).name)}`);
    }
  });

  it("refuse misspelled fields at every level, as Trellis does", () => {
    const cases: Array<[Obj, (o: Obj) => void, RegExp]> = [
      [FULL_POLICY, (o) => { (o.spec as Obj).ingres = (o.spec as Obj).ingress; delete (o.spec as Obj).ingress; }, /^spec\.ingres: unknown field$/],
      [FULL_POLICY, (o) => { ((o.spec as Obj).egress as Obj[])[0]!.acton = "Allow"; }, /^spec\.egress\[0\]\.acton: unknown field$/],
      [FULL_POLICY, (o) => { (((o.spec as Obj).ingress as Obj[])[0]!.from as Obj[])[0]!.namespaceSelecter = {}; }, /from\[0\]\.namespaceSelecter: unknown field/],
      [FULL_POLICY, (o) => { (((o.spec as Obj).ingress as Obj[])[0]!.ports as Obj[])[0]!.prot = "TCP"; }, /ports\[0\]\.prot: unknown field/],
      [FULL_POLICY, (o) => { ((o.spec as Obj).podSelector as Obj).matchLabel = {}; }, /^spec\.podSelector\.matchLabel: unknown field$/],
      [FULL_POLICY, (o) => { (o.spec as Obj).namespaceSelector = {}; }, /^spec\.namespaceSelector: unknown field$/], // only GlobalTrellisPolicy has it
      [README_POLICY, (o) => { (o.spec as Obj).oder = 1; }, /^spec\.oder: unknown field$/],
      [NETWORK_INIT, (o) => { (o.spec as Obj).subnetlen = 24; }, /^spec\.subnetlen: unknown field$/],
      [NETWORK_INIT, (o) => { ((o.spec as Obj).backend as Obj).tpye = "vxlan"; }, /^spec\.backend\.tpye: unknown field$/],
      [NETWORK_INIT, (o) => { (o.spec as Obj).bgp = { asnumber: 1 }; }, /^spec\.bgp\.asnumber: unknown field$/],
      [BGP_PEER, (o) => { (o.spec as Obj).peerIP = "10.0.0.1"; }, /^spec\.peerIP: unknown field$/],
      [VALUE, (o) => { (o.spec as Obj).vaule = ""; }, /^spec\.vaule: unknown field$/],
      [VALUE, (o) => { o.sepc = {}; }, /^sepc: unknown field$/],
    ];
    for (const [base, mutate, re] of cases) {
      const o = clone(base) as Obj;
      mutate(o);
      const errors = errorsOf(o);
      assert.ok(errors.some((e) => re.test(e)), `${re}: got ${JSON.stringify(errors)}`);
      if (o.kind !== "TrellisValue") assert.notEqual(trellisVerdict(o), undefined, `Trellis accepts what the schema refuses: ${re}`);
    }
  });

  it("refuse values outside Trellis' enums, ranges and patterns", () => {
    const cases: Array<[Obj, (o: Obj) => void, RegExp, string?]> = [
      [FULL_POLICY, (o) => { ((o.spec as Obj).egress as Obj[])[0]!.action = "Drop"; }, /action: "Drop": must be one of/],
      [FULL_POLICY, (o) => { delete ((o.spec as Obj).egress as Obj[])[0]!.action; }, /egress\[0\]\.action: required/],
      [FULL_POLICY, (o) => { (o.spec as Obj).types = ["Inbound"]; }, /types\[0\]: "Inbound": must be one of/],
      [FULL_POLICY, (o) => { (((o.spec as Obj).egress as Obj[])[0]!.ports as Obj[])[0]!.protocol = "ICMP"; }, /protocol: "ICMP"/],
      [FULL_POLICY, (o) => { (((o.spec as Obj).ingress as Obj[])[1]!.ports as Obj[])[0]!.endPort = 70000; }, /endPort: 70000: must be at most 65535/],
      [FULL_POLICY, (o) => { (((o.spec as Obj).ingress as Obj[])[0]!.ports as Obj[])[0]!.port = 1.5; }, /port: 1\.5: must be an integer or a string/],
      [FULL_POLICY, (o) => { ((o.spec as Obj).podSelector as Obj).matchExpressions = [{ key: "a", operator: "Has" }]; }, /operator: "Has"/],
      [FULL_POLICY, (o) => { (o.spec as Obj).order = "first"; }, /order: "first": must be a number/],
      [NETWORK_INIT, (o) => { ((o.spec as Obj).backend as Obj).type = "flannel"; }, /backend\.type: "flannel": must be one of/],
      [NETWORK_INIT, (o) => { (o.spec as Obj).blocks = "calico"; }, /blocks: "calico": must be one of/],
      [NETWORK_INIT, (o) => { (o.spec as Obj).subnetLen = 31; }, /subnetLen: 31: must be at most 30/],
      [NETWORK_INIT, (o) => { ((o.spec as Obj).backend as Obj).vni = 0; }, /vni: 0: must be at least 1/],
      [NETWORK_INIT, (o) => { ((o.spec as Obj).backend as Obj).mtu = 100; }, /mtu: 100: must be at least 576/],
      [NETWORK_INIT, (o) => { (o.spec as Obj).network = "10.244.0.0"; }, /network: "10\.244\.0\.0": must match/],
      [NETWORK_INIT, (o) => { (o.spec as Obj).natOutgoing = "yes"; }, /natOutgoing: "yes": must be a boolean/],
      [NETWORK_INIT, (o) => { delete (o.spec as Obj).network; }, /spec\.network: required/],
      [NETWORK_INIT, (o) => { (o.metadata as Obj).name = "defualt"; }, /metadata\.name: "defualt": must be one of "default"/, "the name is the datastore's business"],
      [BGP_PEER, (o) => { (o.spec as Obj).asNumber = 0; }, /asNumber: 0: must be at least 1/],
      [BGP_PEER, (o) => { (o.spec as Obj).peerIp = "10.0.0.300"; }, /peerIp: "10\.0\.0\.300": must match/],
      [BGP_PEER, (o) => { (o.spec as Obj).passwordFile = "tor1.pw"; }, /passwordFile: "tor1\.pw": must match/],
      [BGP_PEER, (o) => { (o.spec as Obj).nodeSelector = { rack: "not valid" }; }, /nodeSelector\.rack: "not valid": must match/],
    ];
    for (const [base, mutate, re, notTrellis] of cases) {
      const o = clone(base) as Obj;
      mutate(o);
      const errors = errorsOf(o);
      assert.ok(errors.some((e) => re.test(e)), `${re}: got ${JSON.stringify(errors)}`);
      if (!notTrellis) assert.notEqual(trellisVerdict(o), undefined, `Trellis accepts what the schema refuses: ${re}`);
    }
  });

  it("list exactly the fields Trellis reads", () => {
    const specOf = (kind: string): Shape => {
      const top = SHAPES[kind]!;
      assert.equal(top.t, "object");
      return (top as { fields: Record<string, Shape> }).fields.spec!;
    };
    const peerShape = BGP_PEER_SHAPE as { t: "object"; fields: Record<string, Shape> };
    const { name: _name, ...peerFields } = peerShape.fields;
    const pairs: Array<[string, Shape, string[]]> = [
      ["TrellisNetwork", NETWORK_CONFIG_SHAPE, []],
      ["GlobalTrellisPolicy", specOf("GlobalTrellisPolicy"), []],
      // Trellis' shape lists namespaceSelector for both kinds and refuses it on TrellisPolicy; the schema leaves it out.
      ["TrellisPolicy", specOf("TrellisPolicy"), []],
      ["TrellisBGPPeer", { t: "object", fields: peerFields }, []],
    ];
    for (const [kind, shape, extra] of pairs) {
      const spec = crdSchema(kind).properties!.spec!;
      const fromShape = shapeFields(shape).filter((f) => !(kind === "TrellisPolicy" && /^namespaceSelector\b/.test(f)));
      assert.deepEqual(schemaFields(spec).sort(), [...fromShape, ...extra].sort(), kind);
    }
  });
});

/** Every field path a strict-input shape names (`ingress[].from[].podSelector.matchLabels`). */
function shapeFields(s: Shape, path = ""): string[] {
  switch (s.t) {
    case "leaf":
    case "map":
      return [];
    case "list":
      return shapeFields(s.of, `${path}[]`);
    case "object":
      return Object.entries(s.fields).flatMap(([k, sub]) => [path ? `${path}.${k}` : k, ...shapeFields(sub, path ? `${path}.${k}` : k)]);
  }
}

/** The same for a schema: object properties, through arrays; a map's keys are free. */
function schemaFields(s: Schema, path = ""): string[] {
  if (s.type === "array" && s.items) return schemaFields(s.items, `${path}[]`);
  return Object.entries(s.properties ?? {}).flatMap(([k, sub]) => {
    const p = path ? `${path}.${k}` : k;
    // Where Trellis' shape stops at a leaf (types, except, values: lists of scalars) the schema's items are scalars too.
    return [p, ...schemaFields(sub, p)];
  });
}
