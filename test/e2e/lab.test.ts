// The lab, end to end, through the built `trellis` executable: what a newcomer runs.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, describe, test } from "node:test";
import { integrationSkip, tempDir, TRELLIS_CLI, uniq } from "../helpers/netns.js";

const skip = integrationSkip() ?? (fs.existsSync(TRELLIS_CLI) ? undefined : "needs build/trellis");

function trellis(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(TRELLIS_CLI, args, { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const labNamespaces = (name: string): string[] =>
  fs.existsSync("/run/netns") ? fs.readdirSync("/run/netns").filter((n) => n.startsWith(`trellis-${name}-`)) : [];

interface Status {
  nodes: Array<{ name: string; netns: string; ip: string }>;
  pods: Array<{ name: string; namespace: string; node: string; netns: string; ip: string; ifname: string }>;
}

for (const mode of ["routed", "bridge"] as const) {
  describe(`lab without agents in ${mode} mode, 2 nodes x 3 pods`, { skip }, () => {
    const name = `t${uniq()}`;
    after(() => {
      trellis("lab", "down", "--name", name);
    });

    test("lab up gives every pod an address from its node's block", () => {
      const up = trellis("lab", "up", "--name", name, "--nodes", "2", "--pods-per-node", "3", "--mode", mode, "--backend", "none");
      assert.equal(up.code, 0, up.stderr);
      assert.match(up.stderr, /\[11\/11\]/, "progress is shown for every step");
      const s = JSON.parse(trellis("lab", "status", "--name", name, "-o", "json").stdout) as Status;
      assert.deepEqual(s.nodes.map((n) => n.name), ["node1", "node2"]);
      assert.equal(s.pods.length, 6);
      for (const p of s.pods) {
        const nodeIndex = Number(p.node.replace("node", ""));
        assert.match(p.ip, new RegExp(`^10\\.244\\.${nodeIndex}\\.\\d+$`), `${p.name} has an address from ${p.node}'s block`);
        assert.equal(p.ifname, "eth0");
        assert.ok(fs.existsSync(`/run/netns/${p.netns}`));
      }
      assert.equal(new Set(s.pods.map((p) => p.ip)).size, 6, "no address is given twice");
    });

    test("lab check passes: pods on the same node reach each other", () => {
      const r = trellis("lab", "check", "--name", name);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      // 6 pods: 6 x 5 pairs + 6 to the outside; only the 12 same-node pairs have a path without agents.
      assert.match(r.stdout, /36 paths probed: 12\/12 expected open are reachable; 0 closed by policy as expected; 0 open that should not be; 24 unreachable by configuration \(as this lab was made\)/);
      assert.match(r.stdout, /unreachable by configuration: no agents \(--backend none\)/);
      assert.match(r.stdout, /lab check: PASS/);
    });

    test("lab down removes every namespace and file it made", () => {
      const r = trellis("lab", "down", "--name", name);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(labNamespaces(name), []);
      assert.equal(fs.existsSync(`/run/trellis/lab/${name}`), false);
      assert.equal(trellis("lab", "status", "--name", name).code, 1, "status of a removed lab is an error");
    });
  });
}

describe("lab safety", { skip }, () => {
  test("a lab that fails half-way is removed completely by lab down", () => {
    const name = `t${uniq()}`;
    const bin = tempDir();
    try {
      // Plugins that always fail, so lab up stops at the first pod.
      for (const p of ["trellis", "trellis-ipam"]) {
        fs.writeFileSync(path.join(bin.dir, p), "#!/bin/sh\necho '{\"cniVersion\":\"1.1.0\",\"code\":11,\"msg\":\"not today\"}'\nexit 1\n", { mode: 0o755 });
      }
      const up = trellis("lab", "up", "--name", name, "--nodes", "2", "--pods-per-node", "2", "--backend", "none", "--cni-bin-dir", bin.dir);
      assert.equal(up.code, 1);
      assert.match(up.stderr, /not today/, "the plugin's error message reaches the operator");
      assert.ok(labNamespaces(name).length > 0, "the half-built lab exists before down");
      assert.equal(trellis("lab", "down", "--name", name, "--cni-bin-dir", bin.dir).code, 0);
      assert.deepEqual(labNamespaces(name), []);
    } finally {
      trellis("lab", "down", "--name", name);
      bin.remove();
    }
  });

  test("invalid options are refused before anything is made", () => {
    const name = `t${uniq()}`;
    const r = trellis("lab", "up", "--name", name, "--nodes", "0");
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--nodes 0/);
    assert.deepEqual(labNamespaces(name), []);
    const bad = trellis("lab", "up", "--name", "Bad_Name");
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--name "Bad_Name"/);
  });

  test("nothing of the lab appears in the machine's own namespace", () => {
    const name = `t${uniq()}`;
    const before = spawnSync("ip", ["-o", "link"], { encoding: "utf8" }).stdout;
    try {
      assert.equal(trellis("lab", "up", "--name", name, "--nodes", "1", "--pods-per-node", "1").code, 0);
      const during = spawnSync("ip", ["-o", "link"], { encoding: "utf8" }).stdout;
      assert.equal(during.split("\n").length, before.split("\n").length, "no link was added to the root namespace");
    } finally {
      trellis("lab", "down", "--name", name);
    }
  });
});
