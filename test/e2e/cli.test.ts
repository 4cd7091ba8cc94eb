// The CLI as an operator meets it, through the built `trellis` executable: every command on a lab,
// node or pod that does not exist fails (exit code 1, a message naming it); every file it reads is
// read strictly (a misspelt field, a flag contradicting a spec, a YAML bomb, a missing file are
// refused, and nothing is made or stored); a change of addressing that would strand live leases is
// refused unless forced; what a lab will not do is said. And the small things: help for nested
// commands, the version with its commit, kubectl's resource names, -o yaml.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { eventually, labNamespaces, labSkip, TestLab, trellis, trellisWithInput, type NodeReport } from "../helpers/lab.js";
import { uniq } from "../helpers/netns.js";

const skip = labSkip();

const tmp = (name: string, text: string): string => {
  const file = path.join(os.tmpdir(), `trellis-cli-${uniq()}-${name}`);
  fs.writeFileSync(file, text);
  return file;
};

/** Asserts a refusal: exit code 1, the message on stderr, no doubled "trellis:" prefix. */
function refused(r: { code: number | null; stderr: string; stdout: string }, message: RegExp, what: string): void {
  assert.equal(r.code, 1, `${what}: exit code 1 (stdout: ${r.stdout})`);
  assert.match(r.stderr, message, what);
  assert.doesNotMatch(r.stderr, /trellis:.*trellis:/, `${what}: one "trellis:" prefix`);
}

describe("no such lab: every lab command fails and says so", { skip }, () => {
  const nope = `n${uniq().slice(0, 6)}`;
  const file = tmp("ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n");
  after(() => fs.rmSync(file, { force: true }));
  const commands: string[][] = [
    ["lab", "status", "--name", nope], ["lab", "check", "--name", nope], ["lab", "down", "--name", nope],
    ["lab", "agent", "stop", "--name", nope, "--node", "node1"], ["lab", "agent", "start", "--name", nope, "--node", "node1"],
    ["lab", "agent", "kill", "--name", nope, "--node", "node1"], ["lab", "pod", "add", "--name", nope, "--pod", "a", "--node", "node1"],
    ["lab", "pod", "delete", "--name", nope, "--pod", "a"], ["lab", "etcd", "stop", "--name", nope], ["lab", "etcd", "start", "--name", nope],
    ["--lab", nope, "nodes"], ["--lab", nope, "apply", "-f", file], ["--lab", nope, "get", "pods"],
  ];
  for (const args of commands) {
    test(args.join(" ").replace(nope, "NOPE"), () => refused(trellis(...args), new RegExp(`no lab named ${nope}`), args.join(" ")));
  }
  test("a lab name that is not one is refused as such, and never becomes a path", () => {
    refused(trellis("lab", "down", "--name", "../.."), /invalid lab name "\.\.\/\.\."/, "lab down ../..");
    assert.ok(fs.existsSync("/run/trellis"), "nothing above the lab directory was touched");
  });
});

describe("strict input through the CLI: refused, and nothing made or stored", { skip, timeout: 120_000 }, () => {
  const lab = new TestLab();
  before(() => lab.up("--nodes", "1", "--pods-per-node", "1", "--backend", "vxlan"));
  after(() => lab.down());

  test("no such node or pod in a lab that exists", () => {
    refused(trellis("lab", "agent", "stop", "--name", lab.name, "--node", "node9"), new RegExp(`lab ${lab.name} has no node node9`), "agent stop");
    refused(trellis("lab", "pod", "add", "--name", lab.name, "--pod", "a", "--node", "node9"), new RegExp(`lab ${lab.name} has no node node9`), "pod add");
    refused(trellis("lab", "pod", "delete", "--name", lab.name, "--pod", "default/zzz"), new RegExp(`lab ${lab.name} has no pod default/zzz`), "pod delete");
    refused(lab.cli("nodes", "remove", "node9"), /no node named node9 holds a lease/, "nodes remove");
  });

  test("a misspelt field in a policy: the path and the field meant, and nothing stored", () => {
    const np = { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name: "typo", namespace: "default" }, spec: { podSelector: {}, ingres: [{}] } };
    refused(trellisWithInput(JSON.stringify(np), "--lab", lab.name, "apply", "-f", "-"),
      /NetworkPolicy default\/typo: spec\.ingres: unknown field \(did you mean ingress\?\)/, "apply");
    assert.deepEqual(JSON.parse(lab.cli("get", "policies", "-o", "json").stdout), { items: [] });
  });

  test("files: missing, YAML errors with file and line, aliases beyond the limit", () => {
    refused(lab.cli("apply", "-f", "/nonexistent/p.yaml"), /\/nonexistent\/p\.yaml: no such file/, "missing file");
    const broken = tmp("broken.yaml", "kind: Pod\nmetadata:\n  name: [x\n");
    const bomb = tmp("bomb.yaml", ["a: &a [x, x, x, x, x, x, x, x, x, x]", ...Array.from({ length: 8 }, (_, i) =>
      `${"bcdefghi"[i]}: &${"bcdefghi"[i]} [${Array(10).fill(`*${"abcdefgh"[i]}`).join(", ")}]`)].join("\n") + "\n");
    try {
      refused(lab.cli("apply", "-f", broken), new RegExp(`${broken.replace(/\./g, "\\.")}:\\d+:\\d+: cannot parse YAML`), "YAML error");
      refused(lab.cli("apply", "-f", bomb), /aliases expand beyond the limit of 100/, "alias bomb");
    } finally {
      fs.rmSync(broken, { force: true });
      fs.rmSync(bomb, { force: true });
    }
  });

  test("a lab spec: a misspelt key, a contradicting flag, --pods-per-node beside it; nothing made", () => {
    const other = `t${uniq()}`;
    const typo = tmp("typo.yaml", "bakend: host-gw\npods: [{name: a, node: node1, lables: {app: a}}]\n");
    const spec = tmp("spec.yaml", "backend: vxlan\nnodes: 2\npods: [{name: a, node: node1}]\n");
    try {
      refused(trellis("lab", "up", "--name", other, "--spec", typo), /typo\.yaml: bakend: unknown field \(did you mean backend\?\)/, "spec typo");
      refused(trellis("lab", "up", "--name", other, "--spec", spec, "--backend", "host-gw"),
        /--backend "host-gw" conflicts with backend: "vxlan" in .*spec\.yaml: give it in one place/, "flag vs spec");
      refused(trellis("lab", "up", "--name", other, "--spec", spec, "--nodes", "5"), /--nodes 5 conflicts with nodes: 2/, "--nodes vs spec");
      refused(trellis("lab", "up", "--name", other, "--spec", spec, "--pods-per-node", "2"), /--pods-per-node cannot be combined with --spec/, "pods-per-node");
      assert.deepEqual(labNamespaces(other), []);
      assert.equal(fs.existsSync(`/run/trellis/lab/${other}`), false);
    } finally {
      fs.rmSync(typo, { force: true });
      fs.rmSync(spec, { force: true });
    }
  });

  test("lab up on a name in use is refused without a hint to remove the lab that is there", () => {
    const r = trellis("lab", "up", "--name", lab.name, "--nodes", "1");
    refused(r, new RegExp(`lab ${lab.name} already exists`), "second lab up");
    assert.doesNotMatch(r.stderr, /lab down/);
    assert.equal(lab.status().nodes.length, 1, "the existing lab is untouched");
  });

  test("help for nested commands, the version with its commit, kubectl's names, -o yaml", () => {
    assert.match(trellis("help", "lab", "up").stdout, /^Usage: trellis lab up \[options\]/);
    assert.match(trellis("--version").stdout, /^trellis \d+\.\d+\.\d+ \(commit [0-9a-f]{12}(-dirty)?\)$/m);
    for (const alias of ["po", "pod", "pods"]) assert.equal(lab.cli("get", alias).code, 0, `get ${alias}`);
    assert.match(lab.cli("get", "no").stdout, /^NODE\s+PUBLIC IP/);
    refused(lab.cli("get", "podz"), /unknown resource "podz" \(did you mean pods\?\)/, "get podz");
    assert.match(lab.cli("nodes", "-o", "yaml").stdout, /^nodes:\n {2}- name: node1\n/);
    assert.match(lab.cli("network", "show", "-o", "yaml").stdout, /^network: 10\.244\.0\.0\/16$/m);
  });

  test("bad BGP input is refused naming the field and value, and nothing is stored", () => {
    const peers = (): unknown => JSON.parse(lab.cli("bgp", "peer", "list", "-o", "json").stdout);
    refused(lab.cli("bgp", "peer", "add", "tor1", "--peer-ip", "10.99.1.3", "--as", "0"), /invalid BGP peer --as "0": must be an AS number 1\.\.4294967295/, "AS 0");
    refused(lab.cli("bgp", "peer", "add", "tor1", "--peer-ip", "10.99.1.3", "--as", "4294967296"), /peer --as "4294967296"/, "AS too big");
    refused(lab.cli("bgp", "peer", "add", "tor1", "--peer-ip", "tor.example", "--as", "65001"), /peer --peer-ip "tor\.example": is not an IP address/, "not an address");
    refused(lab.cli("bgp", "peer", "add", "tor1", "--peer-ip", "10.244.9.1", "--as", "65001"), /peer --peer-ip "10\.244\.9\.1": lies inside the pod network 10\.244\.0\.0\/16/, "in the pod network");
    assert.deepEqual(peers(), { peers: [] }, "nothing stored");
    assert.equal(lab.cli("bgp", "peer", "add", "tor1", "--peer-ip", "10.99.1.3", "--as", "65001").code, 0);
    refused(lab.cli("bgp", "peer", "add", "tor1", "--peer-ip", "10.99.1.4", "--as", "65002"), /invalid BGP peer name "tor1": is taken/, "duplicate name");
    assert.deepEqual(peers(), { peers: [{ name: "tor1", peerIp: "10.99.1.3", asNumber: 65001 }] }, "the first one stays as it was");
    refused(lab.cli("nodes", "set", "node1", "--rr-cluster-id", "1.2.3"), /--rr-cluster-id "1\.2\.3": must be an IPv4 dotted quad/, "cluster ID");
    refused(lab.cli("nodes", "set", "node1", "--as", "-5"), /--as "-5"/, "node AS");
    refused(lab.cli("network", "set", "--as", "0"), /bgp\.asNumber "0"/, "network AS");
    refused(lab.cli("bgp", "peer", "remove", "nope"), /no BGP peer named nope/, "remove");
    refused(lab.cli("bgp", "status", "--node", "nope"), /no node named nope has reported a status/, "status --node");
    assert.equal(lab.cli("bgp", "peer", "remove", "tor1").code, 0);
  });

  test("changing the network under live leases is refused unless --force, which says what will happen", async () => {
    const before = JSON.parse(lab.cli("network", "show", "-o", "json").stdout) as { network: string };
    refused(lab.cli("network", "set", "--cidr", "10.50.0.0/16"),
      /refused: 1 of 1 node\(s\) hold blocks the new addressing \(10\.50\.0\.0\/16, \/24 blocks\) cannot have \(node1 10\.244\.\d+\.0\/24\).*Nothing was changed; run it again with --force/,
      "network set --cidr");
    assert.deepEqual(JSON.parse(lab.cli("network", "show", "-o", "json").stdout), before, "nothing was changed");
    const forced = lab.cli("network", "set", "--cidr", "10.50.0.0/16", "--force");
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stderr, /warning: 1 of 1 node\(s\) hold blocks .*a restarted agent takes a block of the new network and frees its old one/);
    assert.ok(lab.nodes()[0]!.outsideNetwork, "nodes marks the stranded block");
    lab.agent("stop", "node1");
    lab.agent("start", "node1");
    await eventually("node1 holds one block, in the new network", 20_000, () => {
      const nodes: NodeReport[] = lab.nodes();
      assert.deepEqual(nodes.map((n) => n.name), ["node1"], "listed once");
      assert.match(nodes[0]!.subnet, /^10\.50\./);
    }, 250);
  });
});

describe("a bridge-mode lab says that nothing enforces policy", { skip, timeout: 120_000 }, () => {
  const lab = new TestLab();
  after(() => lab.down());

  test("at lab up, in lab status, and when a policy is applied", () => {
    const up = trellis("lab", "up", "--name", lab.name, "--nodes", "1", "--pods-per-node", "1", "--mode", "bridge");
    assert.equal(up.code, 0, up.stderr);
    assert.match(up.stderr, /warning: bridge mode: network policy is NOT enforced/);
    assert.match(trellis("lab", "status", "--name", lab.name).stdout, /warning: bridge mode: network policy is NOT enforced/);
    const np = { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name: "p", namespace: "default" }, spec: { podSelector: {} } };
    const r = trellisWithInput(JSON.stringify(np), "--lab", lab.name, "apply", "-f", "-");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /networkpolicy\/default\/p created/);
    assert.match(r.stderr, /warning: network policy is NOT enforced on any node \(every agent runs with --no-policy\)/);
  });
});
