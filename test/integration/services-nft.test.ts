// The services ruleset against the real nftables of this kernel, in a private network namespace
// (no traffic: test/integration/services.test.ts sends that). Every golden script applies; a
// Service scaled up, down, to zero and back is changed by renderDelta with element operations
// only — every rule keeps its kernel handle — and after each step the kernel holds exactly the
// endpoint ranges of the model; a ClientIP Service's delta (kube-proxy's layout) applies too.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { compileServices, SERVICES_TABLE, type Ruleset } from "../../src/services/compile.js";
import { DNS_SERVICE, DNS_SLICE, ep, NODE, slice, svc, WEB_LOCAL, WEB_SLICE } from "../../src/services/fixtures.js";
import { GOLDEN_CASES } from "../../src/services/golden-cases.js";
import { renderDelta, renderFull } from "../../src/services/render.js";
import { integrationSkip, NetnsPool, type Netns } from "../helpers/netns.js";

const skip = integrationSkip();

function nft(ns: Netns, args: string[], input?: string): string {
  const r = spawnSync("ip", ["netns", "exec", ns.name, "nft", ...args], { encoding: "utf8", input });
  assert.equal(r.status, 0, `nft ${args.join(" ")} failed: ${r.stderr}\n${input ?? ""}`);
  return r.stdout;
}
const apply = (ns: Netns, script: string): string => nft(ns, ["-f", "-"], script);
/** The table with handles, elements left out: what must not change when only elements do. */
const rulesWithHandles = (ns: Netns): string =>
  nft(ns, ["-a", "list", "table", "inet", SERVICES_TABLE]).replace(/\n\s*elements = \{[^}]*\}/g, "");
/** An endpoint map's elements as the kernel holds them: "prefix . lo-hi : ip . port", sorted. */
function kernelRanges(ns: Netns, map: string): string[] {
  const text = nft(ns, ["list", "map", "inet", SERVICES_TABLE, map]).replace(/\s+/g, " ");
  const m = /elements = \{ ([^}]*) \}/.exec(text);
  return m ? m[1]!.split(",").map((x) => x.trim()).sort() : [];
}
const modelRanges = (r: Ruleset, map: string): string[] =>
  (r.endpointMaps.find((m) => m.name === map)?.elements ?? []).map((e) => `${e.prefix} . ${e.lo}-${e.hi} : ${e.ip} . ${e.port}`).sort();

describe("services ruleset on the kernel's nftables", { skip, timeout: 60_000 }, () => {
  const pool = new NetnsPool();
  let ns: Netns;
  before(() => { ns = pool.create("svcnft"); });
  after(() => pool.cleanup());

  test("every golden script applies, and applies again over itself", () => {
    for (const [file, render] of Object.entries(GOLDEN_CASES)) {
      apply(ns, render());
      apply(ns, render());
      apply(ns, `delete table inet ${SERVICES_TABLE}\n`);
      assert.ok(file);
    }
  });

  test("scaling up, down, to zero and back: element operations only, the kernel holds the model's ranges", () => {
    const map = "svc_endpoints_udp";
    const at = (ips: string[]): Ruleset => compileServices({
      node: NODE, services: [DNS_SERVICE, WEB_LOCAL], slices: [{ ...DNS_SLICE, endpoints: ips.map((ip) => ep(ip, ip.startsWith("10.244.1.") ? "node1" : "node2")) }, WEB_SLICE],
    });
    const steps = [
      ["10.244.1.5", "10.244.2.7", "10.244.1.6"],
      ["10.244.1.5", "10.244.2.7", "10.244.1.6", "10.244.2.8"],
      ["10.244.2.7"],
      [],
      ["10.244.1.9", "10.244.2.7"],
    ];
    let current = at(steps[0]!);
    apply(ns, renderFull(current));
    const handles = rulesWithHandles(ns);
    assert.deepEqual(kernelRanges(ns, map), modelRanges(current, map));
    for (const ips of steps.slice(1)) {
      const next = at(ips);
      const delta = renderDelta(current, next)!;
      for (const line of delta.trim().split("\n")) assert.match(line, /^(add|delete) element /, `not an element operation: ${line}`);
      apply(ns, delta);
      current = next;
      assert.deepEqual(kernelRanges(ns, map), modelRanges(current, map), `after scaling to ${ips.length}`);
      assert.equal(rulesWithHandles(ns), handles, `after scaling to ${ips.length}: a rule, chain or map changed`);
    }
    apply(ns, `delete table inet ${SERVICES_TABLE}\n`);
  });

  test("ClientIP affinity: endpoint chains and sets come and go by delta; a full sync over it deletes what is stale", () => {
    const sticky = svc("sticky", { clusterIP: "10.96.0.30", sessionAffinity: "ClientIP", affinityTimeoutSeconds: 600 });
    const at = (ips: string[]): Ruleset => compileServices({
      node: NODE, services: [sticky], slices: [slice("sticky", ips.map((ip) => ep(ip, "node2")), [{ name: "", protocol: "TCP", port: 8080 }])],
    });
    const a = at(["10.244.2.1", "10.244.2.2"]);
    const b = at(["10.244.2.2", "10.244.2.3", "10.244.2.4"]);
    apply(ns, renderFull(a));
    apply(ns, renderDelta(a, b)!);
    const text = nft(ns, ["list", "table", "inet", SERVICES_TABLE]);
    assert.doesNotMatch(text, /10\.244\.2\.1\b/);
    assert.match(text, /numgen random mod 3 vmap/);
    apply(ns, renderFull(a, b));
    assert.doesNotMatch(nft(ns, ["list", "table", "inet", SERVICES_TABLE]), /10\.244\.2\.[34]\b/);
    apply(ns, `delete table inet ${SERVICES_TABLE}\n`);
  });
});
