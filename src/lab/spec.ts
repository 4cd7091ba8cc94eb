// Reading a lab spec (YAML): nodes, namespaces with labels, pods with namespace, labels, node and
// declared ports. Validation errors name the field and value; the plan re-checks references.
import { parse } from "yaml";
import { CniError, ErrorCode } from "../cni/errors.js";
import type { LabPort, LabSpec } from "./plan.js";

const bad = (field: string, value: unknown, why: string): CniError =>
  new CniError(ErrorCode.InvalidNetworkConfig, `invalid lab spec: ${field} ${JSON.stringify(value)}: ${why}`);

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function labels(v: unknown, field: string): Record<string, string> {
  if (v === undefined) return {};
  if (!isObj(v)) throw bad(field, v, "must be a map of label: value");
  for (const [k, x] of Object.entries(v)) if (typeof x !== "string") throw bad(`${field}.${k}`, x, "label values are strings");
  return v as Record<string, string>;
}

export function parseLabSpec(text: string): LabSpec {
  let raw: unknown;
  try {
    raw = parse(text);
  } catch (e) {
    throw bad("file", (e as Error).message.split("\n")[0], "is not YAML");
  }
  if (!isObj(raw)) throw bad("file", raw, "must be a map");
  const spec: LabSpec = { pods: [] };
  for (const k of ["nodes", "segments"] as const) {
    if (raw[k] === undefined) continue;
    if (typeof raw[k] !== "number" || !Number.isInteger(raw[k])) throw bad(k, raw[k], "must be a whole number");
    spec[k] = raw[k] as number;
  }
  for (const k of ["backend", "mode", "datastore"] as const) {
    if (raw[k] === undefined) continue;
    if (typeof raw[k] !== "string") throw bad(k, raw[k], "must be a string");
    (spec as unknown as Record<string, unknown>)[k] = raw[k];
  }
  if (raw.namespaces !== undefined) {
    if (!Array.isArray(raw.namespaces)) throw bad("namespaces", raw.namespaces, "must be a list");
    spec.namespaces = raw.namespaces.map((n, i) => {
      if (!isObj(n) || typeof n.name !== "string") throw bad(`namespaces[${i}]`, n, "needs a name");
      return { name: n.name, labels: labels(n.labels, `namespaces[${i}].labels`) };
    });
  }
  if (!Array.isArray(raw.pods) || raw.pods.length === 0) throw bad("pods", raw.pods, "must be a non-empty list");
  spec.pods = raw.pods.map((p, i) => {
    if (!isObj(p) || typeof p.name !== "string") throw bad(`pods[${i}]`, p, "needs a name");
    if (typeof p.node !== "string") throw bad(`pods[${i}].node`, p.node, "is required (e.g. node1)");
    if (p.namespace !== undefined && typeof p.namespace !== "string") throw bad(`pods[${i}].namespace`, p.namespace, "must be a string");
    const ports: LabPort[] = [];
    if (p.ports !== undefined) {
      if (!Array.isArray(p.ports)) throw bad(`pods[${i}].ports`, p.ports, "must be a list");
      p.ports.forEach((x, k) => {
        if (!isObj(x)) throw bad(`pods[${i}].ports[${k}]`, x, "must be a map with port (and name, protocol)");
        const protocol = (x.protocol ?? "TCP") as LabPort["protocol"];
        const port: LabPort = { port: x.port as number, protocol };
        if (x.name !== undefined) port.name = String(x.name);
        ports.push(port);
      });
    }
    return { name: p.name, node: p.node, ...(p.namespace ? { namespace: p.namespace as string } : {}), labels: labels(p.labels, `pods[${i}].labels`), ports };
  });
  return spec;
}
