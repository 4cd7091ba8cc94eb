// The Services model: Kubernetes v1 Service and discovery.k8s.io/v1 EndpointSlice, reduced to what
// a kube-proxy replacement reads, plus the pods as Trellis knows them (for the endpoint
// controller). Plain data, no behaviour.
export type Protocol = "TCP" | "UDP" | "SCTP";
export const PROTOCOLS: readonly Protocol[] = ["TCP", "UDP", "SCTP"];
export type ServiceType = "ClusterIP" | "NodePort";
export type TrafficPolicy = "Cluster" | "Local";

export interface ServicePort {
  /** "" only when the Service has a single port (as Kubernetes allows). */
  name: string;
  protocol: Protocol;
  port: number;
  /** A number, or the name of a container port resolved per pod. Defaults to `port`. */
  targetPort: number | string;
  nodePort?: number;
}

export interface Service {
  namespace: string;
  name: string;
  type: ServiceType;
  /** Absent: not allocated yet (allocate.ts). "None": headless, not load-balanced. */
  clusterIP?: string;
  ports: ServicePort[];
  /** Absent: endpoints are managed by hand (EndpointSlices given, not derived). */
  selector?: Record<string, string>;
  sessionAffinity: "None" | "ClientIP";
  /** sessionAffinityConfig.clientIP.timeoutSeconds; 10800 by default. */
  affinityTimeoutSeconds: number;
  externalTrafficPolicy: TrafficPolicy;
  internalTrafficPolicy: TrafficPolicy;
}

export interface SliceEndpoint {
  addresses: string[];
  ready: boolean;
  serving: boolean;
  terminating: boolean;
  nodeName?: string;
  /** The pod behind it, "namespace/name" (targetRef), when known. */
  pod?: string;
}

export interface SlicePort {
  name: string;
  protocol: Protocol;
  port: number;
}

export interface EndpointSlice {
  namespace: string;
  name: string;
  /** metadata.labels["kubernetes.io/service-name"]. */
  service: string;
  addressType: "IPv4";
  endpoints: SliceEndpoint[];
  ports: SlicePort[];
}

/** A pod as Trellis knows it: enough to derive EndpointSlices. */
export interface PodInfo {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  node: string;
  ips: string[];
  ports: { name?: string; containerPort: number; protocol: Protocol }[];
  /** Its interface is attached (Trellis' notion of ready). */
  attached: boolean;
  /** Being deleted (deletionTimestamp set). */
  terminating?: boolean;
}

export const SERVICE_NAME_LABEL = "kubernetes.io/service-name";
export const DEFAULT_SERVICE_CIDR = "10.96.0.0/12";
export const DEFAULT_NODE_PORT_RANGE: readonly [number, number] = [30000, 32767];
export const DEFAULT_AFFINITY_TIMEOUT = 10800;
