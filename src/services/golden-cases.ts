// The golden cases: representative Services rendered to the scripts in golden/*.nft (checked by
// render.test.ts, applied to a real kernel by test/integration/services-nft.test.ts). Not a test itself.
import { compileServices } from "./compile.js";
import { AFFINITY, AFFINITY_SLICE, DNS_SERVICE, DNS_SLICE, ep, NODE, slice, svc, WEB_LOCAL, WEB_SLICE } from "./fixtures.js";
import { renderFull } from "./render.js";

const EMPTY = svc("empty", { clusterIP: "10.96.0.40", type: "NodePort", ports: [{ name: "", protocol: "TCP", port: 80, targetPort: 8080, nodePort: 30040 }] });
const DRAINING = svc("draining", { clusterIP: "10.96.0.50" });
const DRAINING_SLICE = slice("draining", [
  ep("10.244.1.20", "node1", { ready: false, serving: true, terminating: true }),
  ep("10.244.2.21", "node2", { ready: false, serving: false, terminating: true }),
], [{ name: "", protocol: "TCP", port: 8080 }]);

export const GOLDEN_CASES: Record<string, () => string> = {
  "clusterip-2ports-3endpoints.nft": () => renderFull(compileServices({ node: NODE, services: [DNS_SERVICE], slices: [DNS_SLICE] })),
  "nodeport-etp-local.nft": () => renderFull(compileServices({ node: NODE, services: [WEB_LOCAL], slices: [WEB_SLICE] })),
  "affinity.nft": () => renderFull(compileServices({ node: NODE, services: [AFFINITY], slices: [AFFINITY_SLICE] })),
  "no-endpoints.nft": () => renderFull(compileServices({ node: NODE, services: [EMPTY], slices: [] })),
  "terminating-only.nft": () => renderFull(compileServices({ node: NODE, services: [DRAINING], slices: [DRAINING_SLICE] })),
};

