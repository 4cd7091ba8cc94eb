// bird.conf as a specification: the golden files in golden/ are what BIRD is given for a mesh
// node, a route reflector and a node with an external router (TCP MD5). The integration tests
// have BIRD itself parse each of them (`bird -p`). Filters: only pod-network blocks of the
// cluster's block length are accepted or exported; the node's own block never comes back in.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { renderBirdConf } from "./bird-conf.js";
import { RR_LABEL } from "./model.js";
import { planBgp } from "./topology.js";

/** The golden files live beside the sources (tests run from dist/). */
const GOLDEN_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "src", "bgp", "golden");

const nodes = [{ name: "node1", ip: "10.99.1.11" }, { name: "node2", ip: "10.99.1.12" }, { name: "node3", ip: "10.99.1.13" }];
const self = { name: "node1", underlayCidr: "10.99.1.11/24", block: "10.244.7.0/24" };

const GOLDEN_CASES: Record<string, () => string> = {
  "mesh.conf": () => renderBirdConf({
    plan: planBgp({ self, nodes, settings: { asNumber: 64512, nodeMesh: true }, nodeSettings: new Map(), peers: [] }),
    podNetwork: "10.244.0.0/16", subnetLen: 24, logFile: "/run/trellis/bird/bird.log",
  }),
  "reflector.conf": () => renderBirdConf({
    plan: planBgp({
      self, nodes, settings: { asNumber: 64512, nodeMesh: false }, peers: [],
      nodeSettings: new Map([["node1", { node: "node1", labels: { [RR_LABEL]: "true" }, routeReflectorClusterId: "10.0.0.1" }],
        ["node2", { node: "node2", labels: { [RR_LABEL]: "true" }, routeReflectorClusterId: "10.0.0.1" }]]),
    }),
    podNetwork: "10.244.0.0/16", subnetLen: 24, logFile: "/run/trellis/bird/bird.log",
  }),
  "external.conf": () => renderBirdConf({
    plan: planBgp({
      self, nodes: [nodes[0]!], settings: { asNumber: 64512, nodeMesh: false }, peers: [{ name: "tor1", peerIp: "10.99.1.3", asNumber: 65101, passwordFile: "/etc/trellis/tor1.pw" }],
      nodeSettings: new Map([["node1", { node: "node1", labels: {}, asNumber: 65001 }]]),
    }),
    podNetwork: "10.244.0.0/16", subnetLen: 24, logFile: "/run/trellis/bird/bird.log", passwords: new Map([["/etc/trellis/tor1.pw", "s3cret"]]),
  }),
};

describe("renderBirdConf: golden files", () => {
  for (const [file, render] of Object.entries(GOLDEN_CASES)) {
    it(file, () => {
      const want = fs.readFileSync(path.join(GOLDEN_DIR, file), "utf8");
      assert.equal(render(), want, `src/bgp/golden/${file} (regenerate with TRELLIS_UPDATE_GOLDEN=1 after reading the diff)`);
    });
  }
  if (process.env.TRELLIS_UPDATE_GOLDEN === "1") {
    for (const [file, render] of Object.entries(GOLDEN_CASES)) fs.writeFileSync(path.join(GOLDEN_DIR, file), render());
  }
});

describe("renderBirdConf: what the filters let through", () => {
  const text = GOLDEN_CASES["mesh.conf"]!();
  it("pod-network blocks of the block length only, in and out; never our own block back in", () => {
    assert.match(text, /define TRELLIS_POD_BLOCKS = \[ 10\.244\.0\.0\/16\{24,24\} \];/);
    assert.match(text, /filter trellis_import \{\n {2}if net ~ TRELLIS_POD_BLOCKS && net != TRELLIS_OWN_BLOCK then accept;\n {2}reject;\n\}/);
    assert.match(text, /filter trellis_export_external \{\n {2}if proto = "trellis_own_block" then accept;/);
  });
  it("the kernel gets only resolvable BGP routes of pod blocks, in Trellis' table, never the main one", () => {
    assert.match(text, /kernel table 203;/);
    assert.match(text, /if source = RTS_BGP && dest = RTD_UNICAST && net ~ TRELLIS_POD_BLOCKS && net != TRELLIS_OWN_BLOCK then accept;/);
  });
  it("graceful restart on every session and on the kernel protocol", () => {
    assert.equal((text.match(/graceful restart on;/g) ?? []).length, 3, "kernel protocol and both templates");
  });
  it("refuses a password bird.conf cannot hold", () => {
    const plan = planBgp({ self, nodes: [nodes[0]!], settings: { asNumber: 1, nodeMesh: true }, nodeSettings: new Map(), peers: [{ name: "t", peerIp: "10.99.1.3", asNumber: 2, passwordFile: "/p" }] });
    assert.throws(() => renderBirdConf({ plan, podNetwork: "10.244.0.0/16", subnetLen: 24, passwords: new Map([["/p", 'a"b']]) }), /password file \/p contains a quote/);
    assert.throws(() => renderBirdConf({ plan, podNetwork: "10.244.0.0/16", subnetLen: 24 }), /password file \/p of peer t could not be read/);
  });
});
