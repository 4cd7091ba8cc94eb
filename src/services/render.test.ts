// The services ruleset as a specification: golden/*.nft are the scripts `nft -f` is given for
// representative Services. Regenerate with TRELLIS_UPDATE_GOLDEN=1 (as src/bgp does), after
// reading the diff.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { compileServices, slotRanges, SLOTS } from "./compile.js";
import { AFFINITY, AFFINITY_SLICE, DNS_SERVICE, DNS_SLICE, ep, NODE, slice, svc, WEB_LOCAL, WEB_SLICE } from "./fixtures.js";
import { GOLDEN_CASES } from "./golden-cases.js";
import { renderDelta, renderFull } from "./render.js";

const GOLDEN_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "src", "services", "golden");

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
  const lines = (text: string): string[] => text.trim().split("\n");
  it("an endpoint added: only elements of the endpoint maps, those of this Service's frontends, nothing of other Services", () => {
    const text = renderDelta(dns(DNS_SLICE.endpoints), dns([...DNS_SLICE.endpoints, ep("10.244.3.3", "node3")]))!;
    for (const l of lines(text)) {
      assert.match(l, /^(add|delete) element inet trellis-svc svc_endpoints_(udp|tcp) \{ 10\.96\.0\.10 \. 53 \. /, l);
      assert.doesNotMatch(l, /10\.96\.0\.20/);
    }
    assert.match(text, /^add element inet trellis-svc svc_endpoints_udp \{ .*10\.96\.0\.10 \. 53 \. 786432-1048575 : 10\.244\.3\.3 \. 53 \}$/m);
  });
  it("an endpoint removed: only elements, the hairpin set's included when it was on this node", () => {
    const text = renderDelta(dns(DNS_SLICE.endpoints), dns(DNS_SLICE.endpoints.filter((e) => e.addresses[0] !== "10.244.1.5")))!;
    for (const l of lines(text)) assert.match(l, /^(add|delete) element inet trellis-svc (svc_endpoints_(udp|tcp)|svc_hairpin) /, l);
    assert.match(text, /^delete element inet trellis-svc svc_hairpin \{ 10\.244\.1\.5 \. 10\.244\.1\.5 \}$/m);
  });
  it("last endpoint gone and back: map elements move between the service map and the reject map, no chain changes", () => {
    const full = dns(DNS_SLICE.endpoints);
    const text = renderDelta(full, dns([]))!;
    for (const l of lines(text)) assert.match(l, /^(add|delete) element /, l);
    assert.match(text, /^delete element inet trellis-svc svc_cluster_ips \{ 10\.96\.0\.10 \. tcp \. 53, 10\.96\.0\.10 \. udp \. 53 \}$/m);
    assert.match(text, /^add element inet trellis-svc svc_no_endpoints \{ 10\.96\.0\.10 \. tcp \. 53 : goto svc_reject, 10\.96\.0\.10 \. udp \. 53 : goto svc_reject \}$/m);
    for (const l of lines(renderDelta(dns([]), full)!)) assert.match(l, /^(add|delete) element /, l);
  });
  it("ClientIP affinity keeps kube-proxy's layout: an endpoint added adds its chain and set and rewrites the selection chain", () => {
    const before = compileServices({ node: NODE, services: [AFFINITY], slices: [AFFINITY_SLICE] });
    const after = compileServices({ node: NODE, services: [AFFINITY], slices: [{ ...AFFINITY_SLICE, endpoints: [...AFFINITY_SLICE.endpoints, ep("10.244.3.12", "node3")] }] });
    const text = renderDelta(before, after)!;
    assert.match(text, /^add set inet trellis-svc svc_aff_default\/sticky\/tcp\/80__10\.244\.3\.12\/8080 /m);
    assert.match(text, /^add chain inet trellis-svc svc_ep_default\/sticky\/tcp\/80__10\.244\.3\.12\/8080$/m);
    assert.match(text, /^flush chain inet trellis-svc svc_sp_default\/sticky\/tcp\/80$/m);
    assert.match(text, /numgen random mod 3 vmap/);
  });
  it("a Service added or removed: only elements (its frontends and endpoints); objects are shared per protocol", () => {
    const web = compileServices({ node: NODE, services: [WEB_LOCAL], slices: [WEB_SLICE] });
    for (const text of [renderDelta(dns(DNS_SLICE.endpoints), web)!, renderDelta(web, dns(DNS_SLICE.endpoints))!]) {
      for (const l of lines(text)) assert.match(l, /^(add|delete) element /, l);
    }
  });
  it("a ClientIP Service removed: its elements first, then its chains, then its affinity sets", () => {
    const text = renderDelta(compileServices({ node: NODE, services: [AFFINITY], slices: [AFFINITY_SLICE] }), compileServices({ node: NODE, services: [], slices: [] }))!;
    const at = (re: RegExp): number => lines(text).findIndex((l) => re.test(l));
    assert.ok(at(/^delete element inet trellis-svc svc_cluster_ips/) < at(/^delete chain inet trellis-svc svc_sp_default\/sticky\/tcp\/80$/));
    assert.ok(at(/^delete chain inet trellis-svc svc_ep_default\/sticky/) < at(/^delete set inet trellis-svc svc_aff_default\/sticky/));
  });
  it("nothing changed: an empty script", () => {
    assert.equal(renderDelta(dns(DNS_SLICE.endpoints), dns(DNS_SLICE.endpoints)), "");
  });
});

describe("slotRanges", () => {
  it("splits the numgen range into N contiguous, nearly equal parts covering all of it", () => {
    for (const n of [1, 2, 3, 7, 100]) {
      const r = slotRanges(n);
      assert.equal(r[0]!.lo, 0);
      assert.equal(r.at(-1)!.hi, SLOTS - 1);
      for (let i = 1; i < n; i++) assert.equal(r[i]!.lo, r[i - 1]!.hi + 1);
      const sizes = r.map((x) => x.hi - x.lo + 1);
      assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1, `n=${n}: ${sizes}`);
    }
  });
});
