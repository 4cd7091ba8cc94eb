// EndpointSlices derived from pods, as the Kubernetes endpointslice controller derives them: for a
// Service with a selector, every pod of its namespace whose labels match, with one address (its
// IPv4 address), conditions from Trellis' view (ready = attached and not terminating), its node,
// and the Service's ports resolved against the pod: a named targetPort is looked up among the
// pod's container ports (same protocol); a pod without that port is left out of the slice for
// that port. Pods resolving a named port to different numbers land in different slices, one per
// distinct port mapping, as upstream does. Pure.
import { parseIp } from "../model/ip.js";
import type { EndpointSlice, PodInfo, Service, SliceEndpoint, SlicePort } from "./model.js";

const selects = (sel: Record<string, string>, labels: Record<string, string>): boolean =>
  Object.entries(sel).every(([k, v]) => labels[k] === v);

/** The pod's port for a service port, or undefined when the pod does not have it. */
export function resolveTargetPort(pod: PodInfo, port: Service["ports"][number]): number | undefined {
  if (typeof port.targetPort === "number") return port.targetPort;
  return pod.ports.find((p) => p.name === port.targetPort && p.protocol === port.protocol)?.containerPort;
}

/** The slices of one Service ([] without a selector: its slices are written by hand). */
export function endpointSlicesFor(service: Service, pods: readonly PodInfo[]): EndpointSlice[] {
  if (!service.selector) return [];
  const sel = service.selector;
  const groups = new Map<string, { ports: SlicePort[]; endpoints: SliceEndpoint[] }>();
  const members = pods
    .filter((p) => p.namespace === service.namespace && selects(sel, p.labels))
    .sort((a, b) => a.name.localeCompare(b.name));
  for (const pod of members) {
    const ip = pod.ips.find((a) => parseIp(a)?.family === 4);
    if (!ip) continue;
    const ports: SlicePort[] = [];
    for (const sp of service.ports) {
      const n = resolveTargetPort(pod, sp);
      if (n !== undefined) ports.push({ name: sp.name, protocol: sp.protocol, port: n });
    }
    if (ports.length === 0) continue;
    const k = JSON.stringify(ports);
    const g = groups.get(k) ?? { ports, endpoints: [] };
    const terminating = pod.terminating === true;
    const ready = pod.attached && !terminating;
    g.endpoints.push({ addresses: [ip], ready, serving: pod.attached, terminating, nodeName: pod.node, pod: `${pod.namespace}/${pod.name}` });
    groups.set(k, g);
  }
  const ordered = [...groups.entries()].sort(([a], [b]) => a.localeCompare(b));
  return ordered.map(([, g], i) => ({
    namespace: service.namespace, name: `${service.name}-${i}`, service: service.name, addressType: "IPv4" as const,
    endpoints: g.endpoints, ports: g.ports,
  }));
}
