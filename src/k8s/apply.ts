// `kubectl apply` in miniature, through the official client: each object is created, or replaced
// when it exists (with the resourceVersion read just before, so a concurrent change is an error
// rather than lost); `--delete` deletes them. Used by the lab (CRDs, Nodes, and whatever a test
// writes "to the API server" rather than through Trellis) — the cluster's side, not Trellis'.
import * as k8s from "@kubernetes/client-node";
import YAML from "yaml";
import { plain } from "./datastore.js";

export function loadKubeConfig(file: string): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(file);
  return kc;
}

/** The documents of a YAML stream (empty ones skipped); a List's items are its objects. */
export function parseObjects(text: string): k8s.KubernetesObject[] {
  const out: k8s.KubernetesObject[] = [];
  for (const doc of YAML.parseAllDocuments(text)) {
    if (doc.errors.length) throw new Error(`not YAML: ${doc.errors[0]!.message}`);
    const o = doc.toJS({ maxAliasCount: 100 }) as (k8s.KubernetesObject & { items?: k8s.KubernetesObject[] }) | null;
    if (o === null || o === undefined) continue;
    if (typeof o !== "object" || typeof o.kind !== "string" || typeof o.apiVersion !== "string") throw new Error("every document needs apiVersion and kind");
    if (o.kind.endsWith("List") && Array.isArray(o.items)) out.push(...o.items);
    else out.push(o);
  }
  return out;
}

const code = (e: unknown): number | undefined => (e as { code?: number }).code;
const name = (o: k8s.KubernetesObject): string => `${o.kind} ${o.metadata?.namespace ? `${o.metadata.namespace}/` : ""}${o.metadata?.name}`;
const reason = (e: unknown): string => {
  const body = (e as { body?: unknown }).body;
  try {
    return (typeof body === "string" ? (JSON.parse(body) as { message?: string }).message : undefined) ?? (e as Error).message;
  } catch {
    return (e as Error).message;
  }
};

export async function kubeApply(kc: k8s.KubeConfig, objects: k8s.KubernetesObject[], del = false): Promise<string[]> {
  const api = k8s.KubernetesObjectApi.makeApiClient(kc);
  const said: string[] = [];
  for (const o of objects) {
    try {
      if (del) {
        await api.delete(o);
        said.push(`${name(o)} deleted`);
        continue;
      }
      try {
        await api.create(o);
        said.push(`${name(o)} created`);
      } catch (e) {
        if (code(e) !== 409) throw e;
        const cur = await api.read(o as never) as k8s.KubernetesObject;
        await api.replace({ ...o, metadata: { ...o.metadata, resourceVersion: cur.metadata?.resourceVersion } });
        said.push(`${name(o)} configured`);
      }
    } catch (e) {
      throw new Error(`${name(o)}: ${reason(e)}`);
    }
  }
  return said;
}

/** `kubectl get -o json`: one object, or every object of a kind (cluster-wide). */
export async function kubeGet(kc: k8s.KubeConfig, apiVersion: string, kind: string, name?: string, namespace?: string): Promise<unknown> {
  const api = k8s.KubernetesObjectApi.makeApiClient(kc);
  try {
    if (name) return plain(await api.read({ apiVersion, kind, metadata: { name, ...(namespace ? { namespace } : {}) } } as never));
    return plain(await api.list(apiVersion, kind, namespace));
  } catch (e) {
    throw new Error(`${kind} ${name ?? ""}: ${reason(e)}`);
  }
}
