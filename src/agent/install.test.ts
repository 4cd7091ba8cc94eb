import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, test } from "node:test";
import { checkCniTemplate, installCniConfig, readNetworkInit } from "./install.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "trellis-install-"));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("--network-init file", () => {
  const NET = "apiVersion: trellis.dev/v1\nkind: TrellisNetwork\nmetadata: {name: default}\nspec:\n  network: 10.244.0.0/16\n  blocks: assigned\n";

  test("a TrellisNetwork object or a bare config give the same validated config", () => {
    const a = readNetworkInit("f", NET);
    assert.deepEqual(a, readNetworkInit("f", "network: 10.244.0.0/16\nblocks: assigned\n"));
    assert.equal(a.blocks, "assigned");
    assert.equal(a.subnetLen, 24);
  });

  test("strict: a misspelled field, another kind or name, a bad value are errors naming file and field", () => {
    assert.throws(() => readNetworkInit("f", NET.replace("blocks", "blokcs")), /f: .*blokcs/);
    assert.throws(() => readNetworkInit("f", NET.replace("metadata:", "metdata:")), /f: metdata: unknown field/);
    assert.throws(() => readNetworkInit("f", NET.replace("kind: TrellisNetwork", "kind: ConfigMap")), /kind "ConfigMap"/);
    assert.throws(() => readNetworkInit("f", NET.replace("{name: default}", "{name: other}")), /metadata.name "other"/);
    assert.throws(() => readNetworkInit("f", NET.replace("assigned", "podcidr")), /f: spec: .*blocks "podcidr"/);
    assert.throws(() => readNetworkInit("f", "- a\n"), /not a TrellisNetwork object/);
  });
});

describe("CNI config install", () => {
  test("the template must be a conflist", () => {
    const bad = path.join(dir, "bad.conflist");
    fs.writeFileSync(bad, JSON.stringify({ cniVersion: "1.1.0", name: "x" }));
    assert.throws(() => checkCniTemplate(bad), /not a CNI network configuration list/);
    fs.writeFileSync(bad, "{");
    assert.throws(() => checkCniTemplate(bad), /not JSON/);
  });

  test("written atomically into a directory it makes, left alone when already current, replaced when not", () => {
    const dest = path.join(dir, "net.d", "10-trellis.conflist");
    const text = JSON.stringify({ cniVersion: "1.1.0", name: "trellis", plugins: [{ type: "trellis" }] });
    assert.equal(installCniConfig(text, dest), true);
    assert.equal(fs.readFileSync(dest, "utf8"), text);
    assert.equal(installCniConfig(text, dest), false, "unchanged: not rewritten");
    assert.equal(installCniConfig(`${text}\n`, dest), true);
    assert.deepEqual(fs.readdirSync(path.dirname(dest)), ["10-trellis.conflist"], "no temporary file left behind");
  });
});
