// NAT outgoing, seen from the receiving end: pod-to-pod traffic keeps the pod's address across
// nodes; traffic to the outside leaves with the node's address.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { integrationSkip, tempDir, TRELLIS_CLI, uniq } from "../helpers/netns.js";

const skip = integrationSkip() ?? (fs.existsSync(TRELLIS_CLI) ? undefined : "needs build/trellis");

const trellis = (...args: string[]): { code: number | null; stdout: string; stderr: string } => {
  const r = spawnSync(TRELLIS_CLI, args, { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};

interface Status {
  nodes: Array<{ name: string; ip: string }>;
  pods: Array<{ name: string; namespace: string; node: string; netns: string; ip: string }>;
}

/** One TCP probe from inside a pod; returns the source address the server saw. */
function seenAs(netns: string, ip: string, port: number): string | undefined {
  const r = spawnSync("nsenter", [`--net=/run/netns/${netns}`, "--", TRELLIS_CLI, "probe", "connect", "--targets",
    JSON.stringify([{ ip, port, protocol: "TCP" }])], { encoding: "utf8" });
  const [res] = JSON.parse(r.stdout || "[{}]") as Array<{ reached?: boolean; seenAs?: string }>;
  return res?.reached ? res.seenAs : undefined;
}

describe("NAT outgoing", { skip }, () => {
  const name = `t${uniq()}`;
  const dir = tempDir();
  let status: Status;
  let outsideServer: ReturnType<typeof spawn> | undefined;

  before(() => {
    const spec = path.join(dir.dir, "lab.yaml");
    fs.writeFileSync(spec, [
      "nodes: 2",
      "backend: vxlan",
      "pods:",
      "  - {name: a, node: node1}",
      "  - {name: b, node: node2, ports: [{port: 80}]}",
    ].join("\n"));
    const up = trellis("lab", "up", "--name", name, "--spec", spec);
    assert.equal(up.code, 0, up.stderr);
    status = JSON.parse(trellis("lab", "status", "--name", name, "-o", "json").stdout) as Status;
    // A server standing for "the internet", inside the lab's outside namespace.
    outsideServer = spawn("nsenter", [`--net=/run/netns/trellis-${name}-out`, "--", TRELLIS_CLI, "probe", "serve", "--tcp", "8080"], { stdio: "ignore" });
  });

  after(() => {
    if (outsideServer?.pid) outsideServer.kill("SIGTERM");
    trellis("lab", "down", "--name", name);
    dir.remove();
  });

  test("a pod reaches a pod on another node with its own address (never masqueraded)", () => {
    const a = status.pods.find((p) => p.name === "a")!;
    const b = status.pods.find((p) => p.name === "b")!;
    assert.notEqual(a.node, b.node);
    let seen: string | undefined;
    for (let i = 0; i < 20 && !seen; i++) seen = seenAs(a.netns, b.ip, 80);
    assert.equal(seen, a.ip);
  });

  test("a pod reaches the outside with its node's address (masqueraded)", () => {
    const a = status.pods.find((p) => p.name === "a")!;
    const node1 = status.nodes.find((n) => n.name === a.node)!;
    let seen: string | undefined;
    for (let i = 0; i < 20 && !seen; i++) seen = seenAs(a.netns, "203.0.113.100", 8080);
    assert.equal(seen, node1.ip);
  });
});
