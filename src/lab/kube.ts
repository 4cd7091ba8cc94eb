// A lab on the Kubernetes datastore (`lab up --datastore kubernetes`): the fake API server
// (src/k8s/apiserver.ts, the documented protocol) runs as a process in the control-plane
// namespace, as the real one would on a control-plane node. The lab plays the parts of the
// cluster that are not Trellis': it installs the CRDs (what `kubectl apply -f deploy/trellis.yaml`
// does), creates a Node per lab node with its spec.podCIDR (kube-controller-manager
// --allocate-node-cidrs), and gives the agents a service account's token bound to the
// ClusterRole of the manifest (src/k8s/rbac.ts). Everything else — pods, namespaces, policies —
// reaches the API server through Trellis' own datastore or `lab kube-apply` (a kubectl apply).
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import YAML from "yaml";
import { formatCidr, parseCidr, subnetAt } from "../model/ip.js";
import type { LabPlan } from "./plan.js";

export const APISERVER_PORT = 6443;
/** The agents' identity, as the DaemonSet's service account would be. */
export const AGENT_USER = "system:serviceaccount:trellis-system:trellis";

export interface KubeFiles {
  dir: string;
  users: string;
  calls: string;
  log: string;
  admin: string;
  agent: string;
}

export function kubeFiles(labDir: string): KubeFiles {
  const dir = path.join(labDir, "apiserver");
  return {
    dir, users: path.join(dir, "users.json"), calls: path.join(dir, "calls.jsonl"), log: path.join(dir, "apiserver.log"),
    admin: path.join(dir, "admin.kubeconfig"), agent: path.join(dir, "agent.kubeconfig"),
  };
}

function kubeconfig(server: string, user: string, token: string): string {
  return YAML.stringify({
    apiVersion: "v1", kind: "Config", "current-context": "lab",
    // Plain HTTP inside the lab: the client accepts an http:// server only with this set.
    clusters: [{ name: "lab", cluster: { server, "insecure-skip-tls-verify": true } }],
    users: [{ name: user, user: { token } }],
    contexts: [{ name: "lab", context: { cluster: "lab", user } }],
  });
}

/** Writes the users file and both kubeconfigs (tokens are random, files 0600). */
export function writeKubeFiles(f: KubeFiles, controlIp: string, agentRules: unknown): void {
  fs.mkdirSync(f.dir, { recursive: true, mode: 0o700 });
  const admin = randomBytes(16).toString("hex");
  const agent = randomBytes(16).toString("hex");
  const server = `http://${controlIp}:${APISERVER_PORT}`;
  fs.writeFileSync(f.users, JSON.stringify([{ token: admin, name: "admin" }, { token: agent, name: AGENT_USER, rules: agentRules }], null, 2), { mode: 0o600 });
  fs.writeFileSync(f.admin, kubeconfig(server, "admin", admin), { mode: 0o600 });
  fs.writeFileSync(f.agent, kubeconfig(server, "trellis-agent", agent), { mode: 0o600 });
}

/** The Node objects of a lab: node i gets the i-th block of the pod network as its podCIDR. */
export function labNodeObjects(plan: LabPlan): object[] {
  const net = parseCidr(plan.podNetwork, true)!;
  return plan.nodes.map((n, i) => {
    const cidr = formatCidr(subnetAt(net, plan.subnetLen, BigInt(i)));
    return {
      apiVersion: "v1", kind: "Node",
      metadata: { name: n.name, labels: { "kubernetes.io/hostname": n.name, "kubernetes.io/os": "linux" } },
      spec: { podCIDR: cidr, podCIDRs: [cidr] },
    };
  });
}
