// Shared by the Kubernetes datastore tests: a fake API server with the admin and the agent's
// service account (AGENT_RULES), Trellis' CRDs installed, kubeconfigs for both, and a bounded
// wait for what arrives by watch. Not a test itself.
import assert from "node:assert/strict";
import * as k8s from "@kubernetes/client-node";
import { FakeApiServer } from "./apiserver.js";
import { CRDS } from "./crds.js";
import { AGENT_RULES } from "./rbac.js";

export const ADMIN = "admin-token";
export const AGENT = "agent-token";

export function kubeConfig(url: string, token: string): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "fake", server: url, skipTLSVerify: true }],
    users: [{ name: "u", token }],
    contexts: [{ name: "c", cluster: "fake", user: "u" }],
    currentContext: "c",
  });
  return kc;
}

/** A fake API server with an admin and the agent's service account, and the CRDs installed. */
export async function startServer(): Promise<FakeApiServer> {
  const server = await FakeApiServer.start({
    users: [{ token: ADMIN, name: "admin" }, { token: AGENT, name: "system:serviceaccount:trellis-system:trellis", rules: [...AGENT_RULES] }],
    bookmarkIntervalMs: 200,
  });
  const ext = kubeConfig(server.url, ADMIN).makeApiClient(k8s.ApiextensionsV1Api);
  for (const crd of CRDS) await ext.createCustomResourceDefinition({ body: crd as k8s.V1CustomResourceDefinition });
  return server;
}

/** Waits (polling every 10 ms, at most `ms`) until `check` holds: for what a watch delivers. */
export const eventually = async (what: string, check: () => boolean | Promise<boolean>, ms = 5000): Promise<void> => {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};
