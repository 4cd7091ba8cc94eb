// Datastore URLs, as operators write them in the agent's configuration and on the command line:
//
//   embedded:///run/trellis/lab/demo/datastore   the embedded store in that directory (one machine)
//   /run/trellis/lab/demo/datastore              the same, as a bare path (absolute or relative)
//   etcd://10.0.0.1:2379,10.0.0.2:2379           etcd over http; port defaults to 2379
//   etcds://etcd-a:2379,etcd-b                   etcd over https (CA, client cert and key in options)
//   kubernetes                                   the Kubernetes API server (kubeconfig in options,
//                                                else the pod's service account)
import { EmbeddedDatastore, type EmbeddedOptions } from "./embedded.js";
import { EtcdDatastore, type EtcdOptions } from "./etcd.js";
import { DatastoreError, type Datastore } from "./types.js";

export type DatastoreLocation =
  | { kind: "embedded"; dir: string }
  | { kind: "etcd"; endpoints: string[]; tls: boolean }
  | { kind: "kubernetes" };

export interface OpenOptions {
  /** For etcds://: PEM files of the CA, our client certificate and its key. */
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  embedded?: EmbeddedOptions;
  etcd?: Omit<EtcdOptions, "endpoints" | "caFile" | "certFile" | "keyFile">;
  /** For kubernetes: the kubeconfig file (default: the pod's service account). */
  kubeconfig?: string;
  log?: (line: string) => void;
}

const invalid = (url: string, why: string): DatastoreError =>
  new DatastoreError("invalid", `invalid datastore URL ${JSON.stringify(url)}: ${why}`);

const HOST = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)$/;

function parseHostPort(url: string, item: string): string {
  const m = /^(\[[^\]]*\]|[^:]*)(?::(\d+))?$/.exec(item);
  if (!m || !HOST.test(m[1]!)) throw invalid(url, `bad host ${JSON.stringify(item)}`);
  const port = m[2] === undefined ? 2379 : Number(m[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw invalid(url, `bad port in ${JSON.stringify(item)}`);
  return `${m[1]}:${port}`;
}

/** Pure: what a datastore URL names. Throws DatastoreError("invalid") naming the value. */
export function parseDatastoreUrl(url: string): DatastoreLocation {
  if (typeof url !== "string" || url.trim() === "") throw invalid(String(url), "empty");
  if (url === "kubernetes" || url === "kubernetes:" || url === "kubernetes://") return { kind: "kubernetes" };
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(url)?.[1]?.toLowerCase();
  if (scheme === undefined) return { kind: "embedded", dir: url };
  if (scheme === "embedded") {
    const rest = url.slice("embedded:".length);
    let dir: string;
    if (rest.startsWith("//")) {
      const slash = rest.indexOf("/", 2);
      if (slash !== 2) throw invalid(url, "embedded:// takes no host (embedded:///absolute/path)");
      dir = rest.slice(2);
    } else dir = rest;
    if (!dir.startsWith("/") || dir.length < 2) throw invalid(url, "the directory must be an absolute path");
    try {
      dir = decodeURIComponent(dir);
    } catch {
      throw invalid(url, "bad percent-encoding");
    }
    return { kind: "embedded", dir };
  }
  if (scheme === "etcd" || scheme === "etcds") {
    const rest = url.slice(scheme.length + 1);
    if (!rest.startsWith("//")) throw invalid(url, `expected ${scheme}://host:port[,host:port...]`);
    const authority = rest.slice(2).replace(/\/$/, "");
    if (authority === "" || /[/?#@]/.test(authority)) throw invalid(url, `expected ${scheme}://host:port[,host:port...] and nothing else`);
    const proto = scheme === "etcds" ? "https" : "http";
    const endpoints = authority.split(",").map((item) => `${proto}://${parseHostPort(url, item)}`);
    return { kind: "etcd", endpoints, tls: scheme === "etcds" };
  }
  throw invalid(url, `unknown scheme ${scheme}: (use embedded://, etcd://, etcds:// or kubernetes)`);
}

/** Opens the datastore a URL names. */
export async function openDatastore(url: string, opts: OpenOptions = {}): Promise<Datastore> {
  const loc = parseDatastoreUrl(url);
  if (loc.kind === "embedded") return EmbeddedDatastore.open(loc.dir, opts.embedded);
  if (opts.kubeconfig && loc.kind !== "kubernetes") throw invalid(url, "--kubeconfig is for --datastore kubernetes");
  if (loc.kind === "kubernetes") {
    if (opts.caFile || opts.certFile || opts.keyFile) throw invalid(url, "the etcd TLS files are not for kubernetes (the kubeconfig holds its credentials)");
    // Loaded only when used: the client is large, and executables that never talk to Kubernetes must not pay for it.
    const { KubernetesDatastore } = await import("../k8s/datastore.js");
    return KubernetesDatastore.open({ kubeconfig: opts.kubeconfig, log: opts.log });
  }
  if (!loc.tls && (opts.caFile || opts.certFile || opts.keyFile)) throw invalid(url, "TLS files given for a plain etcd:// URL (use etcds://)");
  return new EtcdDatastore({
    ...opts.etcd, endpoints: loc.endpoints, caFile: opts.caFile, certFile: opts.certFile, keyFile: opts.keyFile,
  });
}
