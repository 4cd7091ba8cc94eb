// Trellis' CustomResourceDefinitions (group trellis.dev, version v1): the one source of the CRDs
// in deploy/trellis.yaml (rendered by manifests.ts; a test checks the file matches). Pure data.
//
// Every field Trellis reads is listed, with the enums, ranges and patterns of Trellis' own
// validators (model/network.ts, policy/parse.ts, bgp/model.ts), and no spec preserves unknown
// fields: `kubectl apply` (strict field validation) refuses a misspelled field, exactly as
// `trellis apply` does. Cross-field rules (subnetLen longer than the network's prefix, a peer with
// both node and nodeSelector, ...) stay with Trellis' validators, which the agent runs on every
// object it reads and which name the field and the value.
//
// No status subresource: users write spec, the agent writes TrellisValues (its own state) and Node
// annotations, so nothing here has a status written separately from its spec.
import type { ICustomResourceDefinition } from "kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition";
import { BACKENDS, BLOCK_MODES } from "../model/network.js";
import { ACTIONS, PROTOCOLS } from "../policy/model.js";
import { arr, bool, int, intOrString, mapOf, num, object, str, type Schema } from "./schema.js";

export const GROUP = "trellis.dev";
export const VERSION = "v1";
export const API_VERSION = `${GROUP}/${VERSION}`;

/** The TrellisNetwork that is the cluster's network config. */
export const NETWORK_OBJECT_NAME = "default";

// Patterns: what Trellis' validators accept, no stricter (they say why a value is wrong; the
// schema only stops what can never be right). RE2- and ECMAScript-compatible (no lookaround).
const IPV4 = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}";
const IPV4_ADDRESS = `^${IPV4}$`;
const IPV4_CIDR = `^${IPV4}/([0-9]|[12][0-9]|3[0-2])$`;
/** ipBlock cidr/except: IPv4 or IPv6 (Trellis parses them; this only rules out what is no CIDR at all). */
const ANY_CIDR = "^[0-9a-fA-F:.]+/[0-9]{1,3}$";
const LABEL_VALUE = "^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$";
const LABEL_KEY = "^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$";
const NODE_NAME = "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$";

const labelValue = (): Schema => str({ maxLength: 63, pattern: LABEL_VALUE });
const labels = (description: string): Schema => mapOf(labelValue(), { description });

const asNumber = (description: string): Schema => int({ description, minimum: 1, maximum: 4294967295, format: "int64" });

/** metav1.LabelSelector, as Trellis reads it (policy/parse.ts validateSelector). */
const labelSelector = (description: string): Schema => object({
  matchLabels: labels("labels the object must have, each exactly"),
  matchExpressions: arr(object({
    key: str({ pattern: LABEL_KEY, maxLength: 316 }),
    operator: str({ enum: ["In", "NotIn", "Exists", "DoesNotExist"] }),
    values: arr(labelValue(), { description: "non-empty for In and NotIn, empty for Exists and DoesNotExist" }),
  }, { required: ["key", "operator"] })),
}, { description });

const peer = (): Schema => object({
  podSelector: labelSelector("pods (in the policy's namespace, or in the namespaces namespaceSelector selects)"),
  namespaceSelector: labelSelector("namespaces"),
  ipBlock: object({
    cidr: str({ pattern: ANY_CIDR }),
    except: arr(str({ pattern: ANY_CIDR }), { description: "CIDRs strictly inside cidr" }),
  }, { required: ["cidr"], description: "addresses; not combined with selectors" }),
}, { description: "podSelector and/or namespaceSelector, or ipBlock" });

const policyPort = (): Schema => object({
  protocol: str({ enum: [...PROTOCOLS], default: "TCP" }),
  port: intOrString({ description: "a port number (1..65535) or a container port's name" }),
  endPort: int({ minimum: 1, maximum: 65535, description: "with a numeric port: the last port of the range" }),
});

const orderedRule = (peers: "from" | "to"): Schema => object({
  action: str({ enum: [...ACTIONS], description: "Pass hands the packet over to the NetworkPolicies" }),
  [peers]: arr(peer(), { description: peers === "from" ? "sources (none: any)" : "destinations (none: any)" }),
  ports: arr(policyPort(), { description: "none: any port" }),
}, { required: ["action"] });

const policyTypes = (description: string): Schema => arr(str({ enum: ["Ingress", "Egress"] }), { description });

/** TrellisPolicy / GlobalTrellisPolicy spec (policy/parse.ts ORDERED_SPEC); namespaceSelector only when global. */
function orderedPolicySpec(global: boolean): Schema {
  return object({
    order: num({ description: "lower first (default 1000)" }),
    podSelector: labelSelector(global ? "the pods it applies to (default: all)" : "the pods of its namespace it applies to (default: all)"),
    ...(global ? { namespaceSelector: labelSelector("the namespaces whose pods it applies to (default: all)") } : {}),
    types: policyTypes("Ingress and/or Egress; default: derived from the rules given, as Calico does"),
    policyTypes: policyTypes("the same as types (either, not both)"),
    ingress: arr(orderedRule("from")),
    egress: arr(orderedRule("to")),
  });
}

/** TrellisNetwork spec: model/network.ts NetworkConfig, plus blocks. */
const networkSpec: Schema = object({
  network: str({ pattern: IPV4_CIDR, description: "the pod network, an IPv4 CIDR such as 10.244.0.0/16 (host bits zero)" }),
  subnetLen: int({ minimum: 1, maximum: 30, default: 24, description: "prefix length of each node's block, longer than the network's" }),
  subnetMin: str({ pattern: IPV4_CIDR, description: "blocks=trellis: the first block that may be leased" }),
  subnetMax: str({ pattern: IPV4_CIDR, description: "blocks=trellis: the last block that may be leased" }),
  blocks: str({
    enum: [...BLOCK_MODES],
    description: "assigned: a node's block is its Node's spec.podCIDR (kube-controller-manager --allocate-node-cidrs; its --cluster-cidr must be network and "
      + "--node-cidr-mask-size subnetLen), Flannel's way; trellis (the default): Trellis leases free blocks itself, Calico's way",
  }),
  backend: object({
    type: str({ enum: [...BACKENDS] }),
    vni: int({ minimum: 1, maximum: 16777215, description: "VXLAN network identifier (default 1)" }),
    port: int({ minimum: 1, maximum: 65535, description: "VXLAN UDP port (default 8472)" }),
    mtu: int({ minimum: 576, maximum: 65535, description: "pod MTU (default: the underlay's minus the encapsulation)" }),
  }, { required: ["type"], description: "default: vxlan" }),
  natOutgoing: bool({ description: "masquerade pod traffic leaving the pod network" }),
  serviceCIDR: str({ pattern: IPV4_CIDR, description: "where `trellis apply` allocates ClusterIPs without an API server (default 10.96.0.0/12); on Kubernetes the API server's --service-cluster-ip-range applies" }),
  nodePortRange: str({ pattern: "^[0-9]{1,5}-[0-9]{1,5}$", description: "NodePorts, lo-hi (default 30000-32767)" }),
  bgp: object({
    asNumber: asNumber("the AS of every node that does not set its own (default 64512)"),
    nodeMesh: bool({ description: "full node-to-node iBGP mesh (default true)" }),
  }, { description: "bgp backend settings" }),
}, { required: ["network"] });

/** TrellisBGPPeer spec: bgp/model.ts BgpPeer without name (metadata.name is the name). */
const bgpPeerSpec: Schema = object({
  peerIp: str({ pattern: IPV4_ADDRESS, description: "the router's IPv4 address (outside the pod network)" }),
  asNumber: asNumber("the router's AS"),
  node: str({ pattern: NODE_NAME, maxLength: 253, description: "only this node peers with it" }),
  nodeSelector: labels("only nodes with these labels peer with it (neither node nor nodeSelector: every node)"),
  passwordFile: str({ pattern: "^/", description: "a file on the node holding the TCP MD5 password" }),
}, { required: ["peerIp", "asNumber"] });

const valueSpec: Schema = object({
  key: str({ minLength: 1, description: "the agent's key, e.g. /trellis/status/node1" }),
  value: str({ description: "the value (JSON)" }),
}, { required: ["key", "value"] });

interface CrdParams {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  scope: "Cluster" | "Namespaced";
  spec: Schema;
  columns: Array<{ name: string; type: "string" | "integer" | "number" | "boolean" | "date"; jsonPath: string; description?: string; priority?: number }>;
  description: string;
  /** Restriction of metadata.name (structural schemas allow only name and generateName). */
  name?: Schema;
}

function crd(p: CrdParams): ICustomResourceDefinition {
  const root: Schema = {
    type: "object",
    description: p.description,
    properties: {
      apiVersion: str(),
      kind: str(),
      metadata: p.name ? { type: "object", properties: { name: p.name } } : { type: "object" },
      spec: p.spec,
    },
    required: ["spec"],
  };
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `${p.plural}.${GROUP}`, labels: { "app.kubernetes.io/name": "trellis", "app.kubernetes.io/part-of": "trellis" } },
    spec: {
      group: GROUP,
      scope: p.scope,
      names: { kind: p.kind, listKind: `${p.kind}List`, plural: p.plural, singular: p.singular, shortNames: p.shortNames, categories: ["trellis"] },
      versions: [{
        name: VERSION,
        served: true,
        storage: true,
        schema: { openAPIV3Schema: root },
        additionalPrinterColumns: [...p.columns, { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" }],
      }],
    },
  };
}

export const TRELLIS_NETWORK_CRD = crd({
  kind: "TrellisNetwork", plural: "trellisnetworks", singular: "trellisnetwork", shortNames: ["tnet"], scope: "Cluster",
  description: "The cluster's pod network (the object named default): addressing, backend, NAT, BGP settings.",
  spec: networkSpec,
  name: str({ enum: [NETWORK_OBJECT_NAME] }),
  columns: [
    { name: "Network", type: "string", jsonPath: ".spec.network" },
    { name: "SubnetLen", type: "integer", jsonPath: ".spec.subnetLen" },
    { name: "Backend", type: "string", jsonPath: ".spec.backend.type" },
    { name: "Blocks", type: "string", jsonPath: ".spec.blocks" },
    { name: "NAT", type: "boolean", jsonPath: ".spec.natOutgoing" },
  ],
});

export const TRELLIS_POLICY_CRD = crd({
  kind: "TrellisPolicy", plural: "trellispolicies", singular: "trellispolicy", shortNames: ["tpol"], scope: "Namespaced",
  description: "An ordered policy for pods of its namespace (Allow, Deny, Log, Pass rules), evaluated before NetworkPolicies.",
  spec: orderedPolicySpec(false),
  columns: [
    { name: "Order", type: "number", jsonPath: ".spec.order" },
    { name: "Types", type: "string", jsonPath: ".spec.types" },
  ],
});

export const GLOBAL_TRELLIS_POLICY_CRD = crd({
  kind: "GlobalTrellisPolicy", plural: "globaltrellispolicies", singular: "globaltrellispolicy", shortNames: ["gtpol"], scope: "Cluster",
  description: "An ordered policy across namespaces (Allow, Deny, Log, Pass rules), evaluated before NetworkPolicies.",
  spec: orderedPolicySpec(true),
  columns: [
    { name: "Order", type: "number", jsonPath: ".spec.order" },
    { name: "Types", type: "string", jsonPath: ".spec.types" },
  ],
});

export const TRELLIS_BGP_PEER_CRD = crd({
  kind: "TrellisBGPPeer", plural: "trellisbgppeers", singular: "trellisbgppeer", shortNames: ["tpeer"], scope: "Cluster",
  description: "An external BGP peer (a router Trellis does not run) for every node, one node or the nodes a selector picks.",
  spec: bgpPeerSpec,
  name: str({ pattern: NODE_NAME, maxLength: 63 }),
  columns: [
    { name: "PeerIP", type: "string", jsonPath: ".spec.peerIp" },
    { name: "AS", type: "integer", jsonPath: ".spec.asNumber" },
    { name: "Node", type: "string", jsonPath: ".spec.node" },
  ],
});

export const TRELLIS_VALUE_CRD = crd({
  kind: "TrellisValue", plural: "trellisvalues", singular: "trellisvalue", shortNames: ["tval"], scope: "Cluster",
  description: "State of the Trellis agents that has no natural Kubernetes object (endpoints, agent status, leases when blocks=trellis). Written by the agents.",
  spec: valueSpec,
  columns: [{ name: "Key", type: "string", jsonPath: ".spec.key" }],
});

/** Every CRD, in the order the manifest lists them. */
export const CRDS: readonly ICustomResourceDefinition[] = [
  TRELLIS_NETWORK_CRD, TRELLIS_POLICY_CRD, GLOBAL_TRELLIS_POLICY_CRD, TRELLIS_BGP_PEER_CRD, TRELLIS_VALUE_CRD,
];

/** The openAPIV3Schema of a kind's (only) version. */
export function crdSchema(kind: string): Schema {
  const c = CRDS.find((x) => x.spec.names.kind === kind);
  if (!c) throw new Error(`no Trellis CRD of kind ${kind}`);
  return c.spec.versions[0]!.schema!.openAPIV3Schema as Schema;
}
