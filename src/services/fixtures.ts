// Shared test fixtures: Services, slices and pods of the golden rulesets. Not a test itself.
import type { EndpointSlice, Service, SliceEndpoint } from "./model.js";

export const NODE = { name: "node1", addresses: ["172.18.0.2", "10.244.1.1"] };

export function svc(name: string, over: Partial<Service> = {}): Service {
  return {
    namespace: "default", name, type: "ClusterIP", clusterIP: "10.96.0.10", sessionAffinity: "None", affinityTimeoutSeconds: 10800,
    externalTrafficPolicy: "Cluster", internalTrafficPolicy: "Cluster", selector: { app: name },
    ports: [{ name: "", protocol: "TCP", port: 80, targetPort: 8080 }], ...over,
  };
}

export const ep = (ip: string, nodeName: string, c: Partial<SliceEndpoint> = {}): SliceEndpoint =>
  ({ addresses: [ip], ready: true, serving: true, terminating: false, nodeName, ...c });

export function slice(service: string, endpoints: SliceEndpoint[], ports: EndpointSlice["ports"]): EndpointSlice {
  return { namespace: "default", name: `${service}-abc`, service, addressType: "IPv4", endpoints, ports };
}

/** kube-dns style: 53/udp and 53/tcp, three endpoints on two nodes. */
export const DNS_SERVICE = svc("kube-dns", {
  ports: [{ name: "dns", protocol: "UDP", port: 53, targetPort: 53 }, { name: "dns-tcp", protocol: "TCP", port: 53, targetPort: 53 }],
});
export const DNS_SLICE = slice("kube-dns", [ep("10.244.1.5", "node1"), ep("10.244.2.7", "node2"), ep("10.244.1.6", "node1")], [
  { name: "dns", protocol: "UDP", port: 53 }, { name: "dns-tcp", protocol: "TCP", port: 53 },
]);

export const WEB_LOCAL = svc("web", {
  type: "NodePort", clusterIP: "10.96.0.20", externalTrafficPolicy: "Local",
  ports: [{ name: "http", protocol: "TCP", port: 80, targetPort: "http", nodePort: 30080 }],
});
export const WEB_SLICE = slice("web", [ep("10.244.1.8", "node1"), ep("10.244.2.9", "node2")], [{ name: "http", protocol: "TCP", port: 8080 }]);

/** ClientIP affinity, 600 s, two endpoints. */
export const AFFINITY = svc("sticky", { clusterIP: "10.96.0.30", sessionAffinity: "ClientIP", affinityTimeoutSeconds: 600 });
export const AFFINITY_SLICE = slice("sticky", [ep("10.244.1.10", "node1"), ep("10.244.2.11", "node2")], [{ name: "", protocol: "TCP", port: 8080 }]);
