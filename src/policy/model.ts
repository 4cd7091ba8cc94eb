// The objects network policy is decided over, as plain data: namespaces, pods, endpoints (a pod's
// attachment on a node), Kubernetes NetworkPolicies and Trellis' ordered policies.

export type Labels = Readonly<Record<string, string>>;

export type Protocol = "TCP" | "UDP" | "SCTP";
export const PROTOCOLS: readonly Protocol[] = ["TCP", "UDP", "SCTP"];

export interface LabelSelectorRequirement {
  key: string;
  operator: "In" | "NotIn" | "Exists" | "DoesNotExist";
  values?: string[];
}

/** A Kubernetes label selector. `{}` selects everything; absent (undefined) is handled by callers. */
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

export interface Namespace {
  name: string;
  labels: Labels;
}

export interface ContainerPort {
  name?: string;
  containerPort: number;
  protocol: Protocol;
}

export interface Pod {
  namespace: string;
  name: string;
  labels: Labels;
  ports: ContainerPort[];
}

/** Where a pod is attached: written by the CNI plugin on ADD, removed on DEL. */
export interface Endpoint {
  namespace: string;
  pod: string;
  node: string;
  containerId: string;
  ifname: string;
  /** Host-side interface (routed mode: trl...). */
  hostIf: string;
  ips: string[];
  mode: "routed" | "bridge";
}

export interface IPBlock {
  cidr: string;
  except?: string[];
}

export interface PolicyPeer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: IPBlock;
}

export interface PolicyPort {
  protocol: Protocol;
  /** A number or a named container port; absent = all ports of the protocol. */
  port?: number | string;
  endPort?: number;
}

export interface NetworkPolicyRule {
  /** Absent or empty peers = every source (ingress) / destination (egress). */
  peers: PolicyPeer[] | undefined;
  /** Absent or empty = every port. */
  ports: PolicyPort[] | undefined;
}

/** networking.k8s.io/v1 NetworkPolicy, normalised (policyTypes defaulted). */
export interface NetworkPolicy {
  kind: "NetworkPolicy";
  namespace: string;
  name: string;
  podSelector: LabelSelector;
  policyTypes: Array<"Ingress" | "Egress">;
  ingress: NetworkPolicyRule[];
  egress: NetworkPolicyRule[];
}

export const ACTIONS = ["Allow", "Deny", "Log", "Pass"] as const;
export type Action = (typeof ACTIONS)[number];

export interface OrderedRule {
  action: Action;
  /** Peers as in NetworkPolicy; absent = any. */
  peers: PolicyPeer[] | undefined;
  ports: PolicyPort[] | undefined;
}

/**
 * Trellis' ordered policy (Calico-like): `TrellisPolicy` is namespaced and selects pods of its
 * namespace; `GlobalTrellisPolicy` selects pods of every namespace (its podSelector may be
 * combined with a namespaceSelector).
 */
export interface OrderedPolicy {
  kind: "TrellisPolicy" | "GlobalTrellisPolicy";
  namespace?: string;
  name: string;
  order: number;
  podSelector: LabelSelector;
  namespaceSelector?: LabelSelector;
  policyTypes: Array<"Ingress" | "Egress">;
  ingress: OrderedRule[];
  egress: OrderedRule[];
}

export type PolicyObject = NetworkPolicy | OrderedPolicy;

export interface PolicyModel {
  namespaces: Namespace[];
  pods: Pod[];
  endpoints: Endpoint[];
  policies: PolicyObject[];
  /** Node addresses: traffic from a pod's own node is always allowed to it. */
  nodes?: Array<{ name: string; ips: string[] }>;
}

export const policyId = (p: PolicyObject): string =>
  p.kind === "GlobalTrellisPolicy" ? `${p.kind}/${p.name}` : `${p.kind}/${p.namespace}/${p.name}`;
