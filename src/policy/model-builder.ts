// Test support: builds a PolicyModel the way a cluster is described — namespaces with labels,
// pods with labels, named ports and addresses on nodes, policies as the YAML users write
// (through parseDocuments, so tests exercise the real parser). Pure; used only by tests.
import { parseDocuments } from "./parse.js";
import type { ContainerPort, Endpoint, Labels, Namespace, Pod, PolicyModel, PolicyObject, Protocol } from "./model.js";

export interface PodSpec {
  labels?: Labels;
  /** Named container ports: `{ http: 80, dns: "53/UDP" }`. */
  ports?: Record<string, number | `${number}/${Protocol}`>;
  /** One address or several (dual stack). */
  ips: string | string[];
  node: string;
  /** Host-side interface; default `trl` + a counter. */
  hostIf?: string;
  mode?: Endpoint["mode"];
}

export class ModelBuilder {
  readonly namespaces: Namespace[] = [];
  readonly pods: Pod[] = [];
  readonly endpoints: Endpoint[] = [];
  readonly policies: PolicyObject[] = [];
  readonly nodes: Array<{ name: string; ips: string[] }> = [];

  node(name: string, ...ips: string[]): this {
    this.nodes.push({ name, ips });
    return this;
  }

  namespace(name: string, labels: Labels = {}): this {
    this.namespaces.push({ name, labels });
    return this;
  }

  /** `ref` is "namespace/name". */
  pod(ref: string, spec: PodSpec): this {
    const [namespace, name] = ref.split("/") as [string, string];
    const ports: ContainerPort[] = Object.entries(spec.ports ?? {}).map(([portName, p]) => {
      const [n, proto] = String(p).split("/");
      return { name: portName, containerPort: Number(n), protocol: (proto ?? "TCP") as Protocol };
    });
    this.pods.push({ namespace, name, labels: { ...(spec.labels ?? {}) }, ports });
    const ips = typeof spec.ips === "string" ? [spec.ips] : spec.ips;
    this.endpoints.push({
      namespace, pod: name, node: spec.node, containerId: `ctr-${namespace}-${name}`, ifname: "eth0",
      hostIf: spec.hostIf ?? `trl${this.endpoints.length}`, ips, mode: spec.mode ?? "routed",
    });
    return this;
  }

  /** Applies every object of a YAML/JSON text (policies, and Namespaces/Pods if present). */
  apply(text: string): this {
    for (const p of parseDocuments(text)) {
      if (p.kind === "Namespace") this.namespaces.push(p.object);
      else if (p.kind === "Pod") this.pods.push(p.object);
      else if (p.kind === "Service" || p.kind === "EndpointSlice") continue;
      else this.policies.push(p.object);
    }
    return this;
  }

  /** A copy of the builder (to derive a changed model from a base one). */
  clone(): ModelBuilder {
    const b = new ModelBuilder();
    b.namespaces.push(...structuredClone(this.namespaces));
    b.pods.push(...structuredClone(this.pods));
    b.endpoints.push(...structuredClone(this.endpoints));
    b.policies.push(...structuredClone(this.policies));
    b.nodes.push(...structuredClone(this.nodes));
    return b;
  }

  endpoint(ref: string): Endpoint {
    const ep = this.endpoints.find((e) => `${e.namespace}/${e.pod}` === ref);
    if (!ep) throw new Error(`no endpoint for pod ${ref}`);
    return ep;
  }

  /** First address of a pod, or the argument itself when it is not a pod reference. */
  ip(refOrIp: string): string {
    return refOrIp.includes("/") && !refOrIp.includes(":") && !/^\d/.test(refOrIp) ? this.endpoint(refOrIp).ips[0]!.split("/")[0]! : refOrIp;
  }

  build(): PolicyModel {
    return structuredClone({ namespaces: this.namespaces, pods: this.pods, endpoints: this.endpoints, policies: this.policies, nodes: this.nodes });
  }
}

/** Template tag for YAML written indented inside tests: removes the common indentation. */
export function yaml(strings: TemplateStringsArray, ...values: unknown[]): string {
  const text = strings.reduce((acc, s, i) => acc + s + (i < values.length ? String(values[i]) : ""), "");
  const lines = text.replace(/^\n/, "").split("\n");
  const indent = Math.min(...lines.filter((l) => l.trim() !== "").map((l) => l.match(/^ */)![0].length));
  return lines.map((l) => l.slice(indent)).join("\n");
}
