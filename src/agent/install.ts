// What the agent does for a Kubernetes install (deploy/trellis.yaml), on any datastore:
// `--network-init FILE` stores the network config when the cluster has none, and
// `--cni-conf-template`/`--cni-conf-file` install the CNI configuration only once the agent is
// ready, so that kubelet reports the node NetworkReady only when pods can really be networked.
import * as fs from "node:fs";
import * as path from "node:path";
import YAML from "yaml";
import type { Datastore } from "../datastore/types.js";
import { CONFIG_KEY } from "../model/lease.js";
import { validateNetworkConfig, type NetworkConfig } from "../model/network.js";
import { findUnknownFields, leaf, obj, unknownFieldMessage } from "../model/strict.js";

const NETWORK_OBJECT_SHAPE = obj({ apiVersion: leaf, kind: leaf, metadata: obj({ name: leaf, labels: leaf, annotations: leaf }), spec: leaf });

/**
 * Reads a network config file: a TrellisNetwork object (`kind: TrellisNetwork`, the config in
 * `spec`) or the bare config. Strict: an unknown field is an error naming it.
 */
export function readNetworkInit(file: string, text: string): NetworkConfig {
  let doc: unknown;
  try {
    doc = YAML.parse(text, { maxAliasCount: 100 });
  } catch (e) {
    throw new Error(`${file}: not YAML: ${(e as Error).message}`);
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) throw new Error(`${file}: not a TrellisNetwork object or a network config`);
  const d = doc as Record<string, unknown>;
  if (d.kind !== undefined) {
    if (d.kind !== "TrellisNetwork") throw new Error(`${file}: kind ${JSON.stringify(d.kind)}: expected TrellisNetwork`);
    if (d.apiVersion !== "trellis.dev/v1") throw new Error(`${file}: apiVersion ${JSON.stringify(d.apiVersion)}: expected trellis.dev/v1`);
    const u = findUnknownFields(d, NETWORK_OBJECT_SHAPE)[0];
    if (u) throw new Error(`${file}: ${unknownFieldMessage(u)}`);
    const name = (d.metadata as { name?: unknown } | undefined)?.name;
    if (name !== undefined && name !== "default") throw new Error(`${file}: metadata.name ${JSON.stringify(name)}: the network config is the TrellisNetwork named default`);
    try {
      return validateNetworkConfig(d.spec);
    } catch (e) {
      throw new Error(`${file}: spec: ${(e as Error).message}`);
    }
  }
  try {
    return validateNetworkConfig(d);
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
}

/** Stores the config unless the cluster has one (which is then kept, whatever the file says). */
export async function networkInit(store: Datastore, file: string, log: (line: string) => void): Promise<void> {
  const config = readNetworkInit(file, fs.readFileSync(file, "utf8"));
  const made = await store.create(CONFIG_KEY, JSON.stringify(config));
  if (made) log(`network config created from ${file}: ${config.network}/${config.subnetLen}, backend ${config.backend.type}`);
  else log(`network config exists; ${file} is not used (change the network with \`trellis network set\`)`);
}

/** Checks a CNI config template before the agent starts: JSON with a name and plugins. */
export function checkCniTemplate(file: string): string {
  const text = fs.readFileSync(file, "utf8");
  let conf: unknown;
  try {
    conf = JSON.parse(text);
  } catch (e) {
    throw new Error(`--cni-conf-template ${file}: not JSON: ${(e as Error).message}`);
  }
  const c = conf as { name?: unknown; plugins?: unknown; cniVersion?: unknown };
  if (typeof c !== "object" || c === null || typeof c.name !== "string" || !Array.isArray(c.plugins) || c.plugins.length === 0 || typeof c.cniVersion !== "string") {
    throw new Error(`--cni-conf-template ${file}: not a CNI network configuration list (cniVersion, name and plugins are required)`);
  }
  return text;
}

/** Writes the CNI config atomically (a runtime never reads half a file), leaving it unchanged if it already says the same. */
export function installCniConfig(text: string, dest: string): boolean {
  try {
    if (fs.readFileSync(dest, "utf8") === text) return false;
  } catch {
    // absent: write it
  }
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  const tmp = path.join(path.dirname(dest), `.${path.basename(dest)}.tmp-${process.pid}`);
  fs.writeFileSync(tmp, text, { mode: 0o644 });
  fs.renameSync(tmp, dest);
  return true;
}
