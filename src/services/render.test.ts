// The services ruleset as a specification: golden/*.nft are the scripts `nft -f` is given for
// representative Services. Regenerate with TRELLIS_UPDATE_GOLDEN=1 (as src/bgp does), after
// reading the diff.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { compileServices } from "./compile.js";
import { DNS_SERVICE, DNS_SLICE, ep, NODE, slice, svc, WEB_LOCAL, WEB_SLICE } from "./fixtures.js";
import { renderDelta, renderFull } from "./render.js";

const GOLDEN_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "src", "services", "golden");

const AFFINITY = svc("sticky", { clusterIP: "10.96.0.30", sessionAffinity: "ClientIP", affinityTimeoutSeconds: 600 });
const AFFINITY_SLICE = slice("sticky", [ep("10.244.1.10", "node1"), ep("10.244.2.11", "node2")], [{ name: "", protocol: "TCP", port: 8080 }]);
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

describe("renderFull: golden files", () => {
  if (process.env.TRELLIS_UPDATE_GOLDEN === "1") {
    for (const [file, render] of Object.entries(GOLDEN_CASES)) fs.writeFileSync(path.join(GOLDEN_DIR, file), render());
  }
  for (const [file, render] of Object.entries(GOLDEN_CASES)) {
    it(file, () => {
      const want = fs.readFileSync(path.join(GOLDEN_DIR, file), "utf8");
      assert.equal(render(), want, `src/services/golden/${file} (regenerate with TRELLIS_UPDATE_GOLDEN=1 after reading the diff)`);
    });
  }
});

describe("renderFull", () => {
  it("owns only svc_ objects in its own table inet trellis-svc and never deletes it", () => {
    const text = GOLDEN_CASES["clusterip-2ports-3endpoints.nft"]!();
    assert.doesNotMatch(text, /delete table/);
    for (const line of text.trim().split("\n").slice(1)) assert.match(line, /^(add|flush|delete) (chain|map|set|rule|element) inet trellis-svc svc_/, line);
  });
  it("one vmap lookup per packet whatever the number of Services", () => {
    const many = Array.from({ length: 50 }, (_, i) => svc(`s${i}`, { clusterIP: `10.96.1.${i + 1}` }));
    const slices = many.map((s, i) => slice(s.name, [ep(`10.244.3.${i + 1}`, "node2")], [{ name: "", protocol: "TCP", port: 8080 }]));
    const text = renderFull(compileServices({ node: NODE, services: many, slices }));
    assert.equal(text.split("\n").filter((l) => l.startsWith("add rule inet trellis-svc svc_services ")).length, 2);
  });
  it("deletes the chains and affinity sets of a previous ruleset that are gone", () => {
    const before = compileServices({ node: NODE, services: [AFFINITY], slices: [AFFINITY_SLICE] });
    const after = compileServices({ node: NODE, services: [], slices: [] });
    const text = renderFull(after, before);
    assert.match(text, /flush chain inet trellis-svc svc_sp_default\/sticky\/tcp\/80\ndelete chain inet trellis-svc svc_ep_default\/sticky\/tcp\/80__10\.244\.1\.10\/8080/);
    assert.match(text, /delete set inet trellis-svc svc_aff_default\/sticky\/tcp\/80__10\.244\.1\.10\/8080/);
  });
});

describe("renderDelta", () => {
  const dns = (eps: ReturnType<typeof ep>[]) => compileServices({ node: NODE, services: [DNS_SERVICE, WEB_LOCAL], slices: [{ ...DNS_SLICE, endpoints: eps }, WEB_SLICE] });
  it("an endpoint added: its chains, the service ports' selection chains, no map element, nothing of other Services", () => {
    const before = dns(DNS_SLICE.endpoints);
    const after = dns([...DNS_SLICE.endpoints, ep("10.244.3.3", "node3")]);
    const text = renderDelta(before, after)!;
    assert.doesNotMatch(text, /web|element|delete table|svc_services/);
    assert.match(text, /^add chain inet trellis-svc svc_ep_default\/kube-dns\/udp\/dns__10\.244\.3\.3\/53$/m);
    assert.match(text, /^flush chain inet trellis-svc svc_sp_default\/kube-dns\/udp\/dns$/m);
    assert.match(text, /numgen random mod 4 vmap/);
  });
  it("last endpoint gone: map elements move from the service map to the reject map", () => {
    const text = renderDelta(dns(DNS_SLICE.endpoints), dns([]))!;
    assert.match(text, /^delete element inet trellis-svc svc_cluster_ips \{ 10\.96\.0\.10 \. tcp \. 53, 10\.96\.0\.10 \. udp \. 53 \}$/m);
    assert.match(text, /^add element inet trellis-svc svc_no_endpoints \{ 10\.96\.0\.10 \. tcp \. 53 : goto svc_reject, 10\.96\.0\.10 \. udp \. 53 : goto svc_reject \}$/m);
    assert.match(text, /^delete chain inet trellis-svc svc_sp_default\/kube-dns\/udp\/dns$/m);
    // Map elements that point at a chain are deleted before the chain is.
    assert.ok(text.indexOf("delete element") < text.indexOf("delete chain"));
  });
  it("nothing changed: an empty script", () => {
    assert.equal(renderDelta(dns(DNS_SLICE.endpoints), dns(DNS_SLICE.endpoints)), "");
  });
});
