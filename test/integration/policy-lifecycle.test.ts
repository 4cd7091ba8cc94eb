// Network policy while things change, through the built `trellis` executable in a 3-node vxlan
// lab: a pod starting under a default-deny policy receives nothing at any moment — neither in the
// window between its CNI ADD and the agent programming its chains (fail closed) nor after — until
// a policy admits it; and an agent killed and restarted keeps enforcing without a window in
// either direction (no denied connection gets through, no allowed one fails).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import { after, before, describe, test } from "node:test";
import { podHostIfName } from "../../src/cni/attachment.js";
import { eventually, hasLink, labSkip, TestLab, type AddedPod } from "../helpers/lab.js";
import { TRELLIS_CLI } from "../helpers/netns.js";
import {
  endpointState, policyTable, PROD_DEV_POLICIES, PROD_DEV_SPEC, prodPolicy, startConnectLoop, startListener, type Attempt, type ConnectLoop,
  type Listener,
} from "../helpers/policy.js";

const skip = labSkip();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Attempts that got a TCP connection, and those refused (a refusal means the SYN reached the pod). */
const connected = (a: Attempt[]): Attempt[] => a.filter((x) => x.ok);
const refused = (a: Attempt[]): Attempt[] => a.filter((x) => x.why === "ECONNREFUSED");

describe("network policy across pod start and agent restart (3-node lab, prod default deny)", { skip, timeout: 150_000 }, () => {
  const lab = new TestLab();

  before(async () => {
    lab.upSpec(PROD_DEV_SPEC);
    lab.apply(PROD_DEV_POLICIES);
    await eventually("lab check passes with the policies applied", 30_000, () => assert.equal(lab.check().exitCode, 0), 250);
  });
  after(() => lab.down());

  test("a new pod under default deny receives nothing before or after its endpoint is programmed; an allow policy opens it", async (t) => {
    const PORT = 9000;
    const web = lab.pod("prod/web"); // node1: across nodes
    const api = lab.pod("prod/api"); // node2: the same node as the new pod
    const node2 = lab.node("node2");
    const ipamDir = `${lab.nodeDir("node2")}/ipam/trellis`;
    const netnsBefore = new Set(fs.readdirSync("/run/netns"));
    const hostIf = podHostIfName(`lab-${lab.name}-prod-fresh`, "eth0");
    const base = policyTable(node2.netns)!.rules.filter((r) => /^(forward|input)#\d+ fail closed/.test(r));
    assert.equal(base.length, 3, `node2 drops traffic of unprogrammed pod interfaces (forward in/out, input): ${JSON.stringify(base)}`);

    // Connection loops from both sources, each watching node2's IPAM directory so that it starts
    // within a millisecond of the new pod's address being reserved (before its veth exists); then
    // one attempt every 10 ms. A SYN that reached the pod would connect (listener up) or be
    // refused (not yet): either shows, so the whole window from reservation on is covered.
    const loops = [web, api].map((p) => startConnectLoop(p.netns, { port: PORT, everyMs: 10, timeoutMs: 150, targetFromIpamDir: ipamDir }));
    await Promise.all(loops.map((l) => l.ready));
    let listener: Listener | undefined;
    let allowLoops: ConnectLoop[] = [];
    const allow = prodPolicy("allow-fresh", { podSelector: { matchLabels: { app: "fresh" } }, ingress: [{}] });
    try {
      // `lab pod add` in the background; meanwhile: start a listener in the pod's namespace as
      // soon as it exists, and read node2's policy table back until the host interface is programmed.
      let addOut = "";
      let addErr = "";
      const adder = spawn(TRELLIS_CLI, ["lab", "pod", "add", "--name", lab.name, "--pod", "prod/fresh", "--node", "node2", "--labels", "app=fresh"]);
      adder.stdout.setEncoding("utf8").on("data", (d: string) => (addOut += d));
      adder.stderr.setEncoding("utf8").on("data", (d: string) => (addErr += d));
      let addCode: number | null | undefined;
      adder.on("close", (c) => (addCode = c));

      let linkAt: number | undefined;
      let programmedAt: number | undefined;
      const seen = { unprogrammed: 0, programmed: 0 };
      const deadline = Date.now() + 30_000;
      while (addCode === undefined || programmedAt === undefined) {
        assert.ok(Date.now() < deadline, `pod add and programming within 30 s (add exit ${addCode}: ${addErr})`);
        assert.ok(addCode === undefined || addCode === 0, `lab pod add failed (${addCode}): ${addErr}`);
        if (!listener || (!listener.running() && listener.listeningSince() === undefined)) {
          // (Restarted when it came before the namespace was fully made.)
          const ns = fs.readdirSync("/run/netns").find((n) => !netnsBefore.has(n) && n.startsWith(`trellis-${lab.name}-node2-p`));
          if (ns) listener = startListener(ns, PORT);
        }
        if (programmedAt === undefined && hasLink(node2.netns, hostIf)) {
          linkAt ??= Date.now();
          // Throws if the interface is in @endpoints without both of its chains.
          const state = endpointState(policyTable(node2.netns)!, hostIf);
          seen[state]++;
          if (state === "programmed") programmedAt = Date.now();
        }
        await sleep(2);
      }
      const added = JSON.parse(addOut) as AddedPod;
      const ip = added.ips[0]!;
      for (const l of loops) assert.equal(l.started()?.target, ip, "the loops aimed at the address lab pod add reports");
      const targetAt = Math.max(...loops.map((l) => l.started()!.atMs));
      t.diagnostic(`address reserved → loops aimed; host link seen ${linkAt! - targetAt} ms later, programmed ${programmedAt - targetAt} ms later ` +
        `(${seen.unprogrammed} listing(s) unprogrammed, fail closed; never in @endpoints without its chains)`);

      // Keep the burst going for 3 s from the moment it had the address.
      await sleep(Math.max(0, targetAt + 3_000 - Date.now()));
      const burst = await Promise.all(loops.map((l) => l.stop()));
      assert.ok(listener, "the pod's namespace appeared");
      const since = listener.listeningSince();
      assert.ok(since !== undefined && since < targetAt + 2_000, `the listener was up during the burst (${since === undefined ? "never" : `${since - targetAt} ms`})`);
      for (const [i, a] of burst.entries()) {
        const from = i === 0 ? "web (node1)" : "api (node2)";
        t.diagnostic(`${from}: ${a.length} attempts, ${connected(a).length} connected, ${refused(a).length} refused`);
        assert.ok(a.length >= 100, `${from} made a real burst (${a.length} attempts)`);
        assert.deepEqual(connected(a), [], `no connection from ${from} to the new pod`);
        assert.deepEqual(refused(a), [], `no SYN from ${from} reached the new pod's stack`);
      }
      assert.deepEqual(listener.accepted(), [], "the new pod accepted nothing");
      assert.equal(endpointState(policyTable(node2.netns)!, hostIf), "programmed");

      const allowedAt = Date.now();
      lab.apply([allow]);
      allowLoops = [web, api].map((p) => startConnectLoop(p.netns, { port: PORT, everyMs: 50, timeoutMs: 300, target: ip }));
      const { ms } = await eventually("the allow policy opens the new pod from both sources", 10_000, () => {
        for (const l of allowLoops) assert.ok(connected(l.attempts()).length > 0);
      });
      t.diagnostic(`open ${ms} ms after the allow policy was applied`);
      await Promise.all(allowLoops.map((l) => l.stop()));
      const l = listener;
      const { value: accepted } = await eventually("the new pod's listener reports the connections from both sources", 5_000, () => {
        const a = l.accepted();
        assert.deepEqual([...new Set(a.map((x) => x.from))].sort(), [web.ip, api.ip].sort(), "from both sources, by their own addresses");
        return a;
      });
      assert.deepEqual(accepted.filter((a) => a.atMs < allowedAt), [], "nothing was accepted before the allow policy");
      assert.ok(listener.running(), `the listener ran throughout: ${listener.stderr()}`);
    } finally {
      await Promise.all([...loops, ...allowLoops].map((l) => l.stop()));
      await listener?.stop();
      lab.deleteObjects([allow]);
      if (lab.status().pods.some((p) => p.namespace === "prod" && p.name === "fresh")) lab.podDelete("prod/fresh");
    }
  });

  test("an agent killed and restarted keeps enforcing: the denied path never opens, the allowed path never fails", async (t) => {
    const web = lab.pod("prod/web"); // node1
    const db = lab.pod("prod/db"); // node3
    const api = lab.pod("prod/api"); // node2: the destination, whose agent restarts
    const node2 = lab.node("node2").netns;
    const comments = (): string[] => policyTable(node2)!.rules.map((r) => r.replace(/^(\S+)#\d+/, "$1")).sort();
    // node2 holds api alone again (a pod of an earlier test may still be on its way out).
    await eventually("node2 programs only api", 10_000, () =>
      assert.deepEqual(policyTable(node2)!.sets.get("endpoints"), [podHostIfName(`lab-${lab.name}-prod-api`, "eth0")]));
    const before = comments();
    // A new connection every 50 ms on each path; an allowed SYN that is dropped once shows as a
    // timeout (the retransmission comes after 1 s).
    const allowed = startConnectLoop(web.netns, { port: 8080, everyMs: 50, timeoutMs: 900, target: api.ip });
    const denied = startConnectLoop(db.netns, { port: 8080, everyMs: 50, timeoutMs: 300, target: api.ip });
    let ok: Attempt[];
    let no: Attempt[];
    try {
      await eventually("both loops are running", 10_000, () => {
        assert.ok(allowed.attempts().length >= 10);
        assert.ok(denied.attempts().length >= 10);
      });
      const logFrom = lab.agentLog("node2").length;
      const killedAt = Date.now();
      lab.agent("kill", "node2");
      assert.equal(lab.node("node2").agentPid, undefined, "node2's agent is gone");
      // A second without any agent on the destination's node.
      await eventually("1 s of attempts without an agent", 10_000, () =>
        assert.ok(allowed.attempts().filter((a) => a.startMs > killedAt + 1_000).length > 0));
      lab.agent("start", "node2");
      const { ms } = await eventually("the restarted agent has applied its policy", 15_000, () =>
        assert.match(lab.agentLog("node2").slice(logFrom), /policy: table replaced/), 50);
      const appliedAt = Date.now();
      t.diagnostic(`agent down ${appliedAt - killedAt - ms} ms; restarted agent applied its policy ${ms} ms after start`);
      await eventually("1 s of attempts after the restarted agent applied its policy", 10_000, () =>
        assert.ok(allowed.attempts().filter((a) => a.startMs > appliedAt + 1_000).length > 0 &&
          denied.attempts().filter((a) => a.startMs > appliedAt + 1_000).length > 0));
    } finally {
      [ok, no] = await Promise.all([allowed.stop(), denied.stop()]);
    }
    t.diagnostic(`allowed web -> api:8080: ${connected(ok).length}/${ok.length}; denied db -> api:8080: ${connected(no).length}/${no.length}`);
      assert.ok(ok.length >= 60 && no.length >= 60, "probes covered the whole kill -> start period");
      assert.deepEqual(ok.filter((a) => !a.ok), [], "every allowed connection succeeded");
      assert.deepEqual(connected(no), [], "no denied connection got through");
    assert.deepEqual(refused(no), []);
    assert.deepEqual(comments(), before, "the restarted agent rebuilt the same rules");
  });
});
