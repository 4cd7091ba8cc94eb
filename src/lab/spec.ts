// Reading a lab spec (YAML): cluster settings, namespaces with labels, pods with namespace,
// labels, node and declared ports. Strict like every input (model/strict.ts): an unknown key is
// refused with its path and a suggestion, so `bakend: host-gw` can never quietly become vxlan.
// Validation errors name the file, field and value; the plan re-checks references. `services`
// holds Kubernetes Service (and EndpointSlice) documents as `trellis apply` takes them, checked by
// the same parser (policy/parse.ts), so a spec refuses what apply would refuse.
import { CniError, ErrorCode } from "../cni/errors.js";
import { MODES } from "../cni/config.js";
import { parseYamlDocuments } from "../model/input.js";
import { parseDocuments } from "../policy/parse.js";
import { leaf, list, map, obj, rejectUnknownFields } from "../model/strict.js";
import { LAB_BACKENDS, LAB_DATASTORES, type LabPort, type LabSpec } from "./plan.js";

/** Every key a lab spec may have; README "Lab spec" documents each. */
export const LAB_SPEC_SHAPE = obj({
  nodes: leaf, segments: leaf, backend: leaf, mode: leaf, datastore: leaf, natOutgoing: leaf, podCidr: leaf, subnetLen: leaf,
  allowUnreachable: leaf, tor: leaf, routeReflectors: leaf, nodeMesh: leaf,
  namespaces: list(obj({ name: leaf, labels: map() })),
  pods: list(obj({ name: leaf, namespace: leaf, node: leaf, labels: map(), ports: list(obj({ name: leaf, port: leaf, protocol: leaf })) })),
  // Each entry is checked field by field by the apply parser (parseLabServices).
  services: leaf,
});

/** The kinds a spec's `services` list may hold: Services, and EndpointSlices for Services without a selector. */
export const LAB_SERVICE_KINDS = ["Service", "EndpointSlice"] as const;

/**
 * A spec's `services`: each entry parsed as `trellis apply` parses it (strict: an unknown field is
 * refused with its path), and only Services and EndpointSlices. Returns the documents as written.
 */
export function parseLabServices(v: unknown, source: string): Array<Record<string, unknown>> {
  const fail = (field: string, value: unknown, why: string): CniError =>
    new CniError(ErrorCode.InvalidNetworkConfig, `invalid lab spec ${source}: ${field} ${JSON.stringify(value)}: ${why}`);
  if (!Array.isArray(v)) throw fail("services", v, "must be a list of Service (or EndpointSlice) documents");
  const seen = new Set<string>();
  return v.map((doc, i) => {
    if (!isObj(doc)) throw fail(`services[${i}]`, doc, "must be a Service document (apiVersion: v1, kind: Service, metadata, spec)");
    if (!(LAB_SERVICE_KINDS as readonly string[]).includes(doc.kind as string)) {
      throw fail(`services[${i}].kind`, doc.kind, `must be one of ${LAB_SERVICE_KINDS.join(", ")} (namespaces and pods have their own lists)`);
    }
    let parsed;
    try {
      parsed = parseDocuments(JSON.stringify(doc), `services[${i}]`);
    } catch (e) {
      throw new CniError(ErrorCode.InvalidNetworkConfig, `invalid lab spec ${source}: services[${i}]: ${(e as Error).message}`);
    }
    const o = parsed[0]!.object as { namespace?: string; name: string };
    const key = `${doc.kind} ${o.namespace ?? "default"}/${o.name}`;
    if (seen.has(key)) throw fail(`services[${i}]`, key.split(" ")[1], `${doc.kind} appears twice`);
    seen.add(key);
    return doc;
  });
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

export function parseLabSpec(text: string, source = "lab spec"): LabSpec {
  const bad = (field: string, value: unknown, why: string): CniError =>
    new CniError(ErrorCode.InvalidNetworkConfig, `invalid lab spec ${source}: ${field} ${JSON.stringify(value)}: ${why}`);
  const labels = (v: unknown, field: string): Record<string, string> => {
    if (v === undefined) return {};
    if (!isObj(v)) throw bad(field, v, "must be a map of label: value");
    for (const [k, x] of Object.entries(v)) if (typeof x !== "string") throw bad(`${field}.${k}`, x, "label values are strings");
    return v as Record<string, string>;
  };
  const oneOf = <T extends string>(k: string, v: unknown, choices: readonly T[]): T => {
    if (typeof v !== "string" || !(choices as readonly string[]).includes(v)) throw bad(k, v, `must be one of ${choices.join(", ")}`);
    return v as T;
  };

  const docs = parseYamlDocuments(text, source);
  if (docs.length !== 1) throw bad("file", `${docs.length} documents`, "must hold exactly one YAML document");
  const raw = docs[0];
  if (!isObj(raw)) throw bad("file", raw, "must be a map");
  rejectUnknownFields(raw, LAB_SPEC_SHAPE, (m) => new CniError(ErrorCode.InvalidNetworkConfig, `invalid lab spec ${source}: ${m}`));

  const spec: LabSpec = { pods: [] };
  for (const k of ["nodes", "segments", "subnetLen", "routeReflectors"] as const) {
    if (raw[k] === undefined) continue;
    if (typeof raw[k] !== "number" || !Number.isInteger(raw[k])) throw bad(k, raw[k], "must be a whole number");
    spec[k] = raw[k] as number;
  }
  for (const k of ["natOutgoing", "allowUnreachable", "tor", "nodeMesh"] as const) {
    if (raw[k] === undefined) continue;
    if (typeof raw[k] !== "boolean") throw bad(k, raw[k], "must be true or false");
    spec[k] = raw[k] as boolean;
  }
  if (raw.backend !== undefined) spec.backend = oneOf("backend", raw.backend, LAB_BACKENDS);
  if (raw.mode !== undefined) spec.mode = oneOf("mode", raw.mode, MODES);
  if (raw.datastore !== undefined) spec.datastore = oneOf("datastore", raw.datastore, LAB_DATASTORES);
  if (raw.podCidr !== undefined) {
    if (typeof raw.podCidr !== "string") throw bad("podCidr", raw.podCidr, "must be a CIDR such as 10.244.0.0/16");
    spec.podCidr = raw.podCidr;
  }
  if (raw.namespaces !== undefined) {
    if (!Array.isArray(raw.namespaces)) throw bad("namespaces", raw.namespaces, "must be a list");
    spec.namespaces = raw.namespaces.map((n, i) => {
      if (!isObj(n) || typeof n.name !== "string") throw bad(`namespaces[${i}]`, n, "needs a name");
      return { name: n.name, labels: labels(n.labels, `namespaces[${i}].labels`) };
    });
  }
  if (raw.services !== undefined) spec.services = parseLabServices(raw.services, source);
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

/** Lab settings a spec and a `lab up` flag can both give: the spec key and its flag. */
const SHARED_SETTINGS = [
  ["nodes", "--nodes"], ["segments", "--segments"], ["backend", "--backend"], ["mode", "--mode"], ["datastore", "--datastore"],
  ["natOutgoing", "--nat-outgoing/--no-nat-outgoing"], ["podCidr", "--pod-cidr"], ["subnetLen", "--subnet-len"],
  ["allowUnreachable", "--allow-unreachable"], ["tor", "--tor"], ["routeReflectors", "--route-reflectors"], ["nodeMesh", "--node-mesh/--no-node-mesh"],
] as const;

export type SpecSetting = (typeof SHARED_SETTINGS)[number][0];

/**
 * The lab's settings from a spec and the flags of `lab up`: a flag the user typed that the spec
 * also sets must agree with it (else an error names both); a flag the spec leaves open applies;
 * `--pods-per-node` has no meaning beside a spec's pod list and is refused. Defaults of flags
 * the user did not type never override the spec. Pure.
 */
export function settingsWithSpec(spec: LabSpec, flags: Partial<Record<SpecSetting | "podsPerNode", unknown>>, typed: ReadonlySet<string>,
  source: string): Partial<Record<SpecSetting, unknown>> {
  if (typed.has("podsPerNode")) {
    throw new CniError(ErrorCode.InvalidNetworkConfig, `--pods-per-node cannot be combined with --spec ${source}: the spec lists the pods`);
  }
  const out: Partial<Record<SpecSetting, unknown>> = {};
  for (const [key, flag] of SHARED_SETTINGS) {
    const fromSpec = spec[key];
    if (fromSpec !== undefined) {
      if (typed.has(key) && flags[key] !== fromSpec) {
        throw new CniError(ErrorCode.InvalidNetworkConfig,
          `${flag} ${JSON.stringify(flags[key])} conflicts with ${key}: ${JSON.stringify(fromSpec)} in ${source}: give it in one place`);
      }
      out[key] = fromSpec;
    } else if (flags[key] !== undefined) {
      out[key] = flags[key];
    }
  }
  // A spec without `nodes` has as many nodes as the highest node its pods name (or --nodes).
  if (out.nodes === undefined || (!typed.has("nodes") && spec.nodes === undefined)) {
    out.nodes = Math.max(1, ...spec.pods.map((p) => Number(p.node.replace(/^node/, "")) || 1));
  }
  return out;
}
