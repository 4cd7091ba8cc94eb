// Network policy as enforced, through the built `trellis` executable in a 3-node vxlan lab: a
// default-deny namespace with selective allows (NetworkPolicies with named ports, and a global
// ordered Deny-then-Pass policy), probed on real TCP and UDP connections across nodes; `policy
// explain` agreeing with what the probes saw; a pod moving into and out of a selector by a label
// change, as a set-element update; and forged source addresses dropped before they leave the
// sender's node.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { eventually, labSkip, TestLab, type CheckCell, type CheckReport } from "../helpers/lab.js";
import { sh } from "../helpers/netns.js";
import {
  countBySource, podObject, policyTable, probeOnce, PROD_DEV_POLICIES, PROD_DEV_SPEC, prodPolicy, startConnectLoop, type PolicyTable,
} from "../helpers/policy.js";

const skip = labSkip();

describe("network policy in a 3-node lab: prod (default deny) and dev", { skip, timeout: 150_000 }, () => {
  const lab = new TestLab();
  let report: CheckReport;

  before(async () => {
    lab.upSpec(PROD_DEV_SPEC);
    lab.apply(PROD_DEV_POLICIES);
    // Enforcement reaches every node within a few seconds; `lab check` fails on any path that is
    // open but should not be, so passing means every agent has applied the policies.
    report = (await eventually("lab check passes with the policies applied", 30_000, () => {
      const c = lab.check();
      assert.equal(c.exitCode, 0, `lab check failed:\n${c.report.cells.filter((x) => x.expected !== x.reached)
        .map((x) => `${x.from} -> ${x.to} ${x.probe}: expected ${x.expected}, reached ${x.reached} (${x.why})`).join("\n")}`);
      return c.report;
    }, 250)).value;
  });
  after(() => lab.down());

  const cell = (from: string, to: string, probe: string): CheckCell => {
    const c = report.cells.find((x) => x.from === from && x.to === to && x.probe === probe);
    assert.ok(c, `lab check has a cell ${from} -> ${to} ${probe}`);
    return c;
  };
  const open = (from: string, to: string, probe: string, why: RegExp): void => {
    const c = cell(from, to, probe);
    assert.equal(c.expected, true, `${from} -> ${to} ${probe} is expected open (${c.why})`);
    assert.equal(c.reached, true, `${from} -> ${to} ${probe} connects`);
    assert.match(c.why, why);
  };
  const closed = (from: string, to: string, probe: string, why: RegExp): void => {
    const c = cell(from, to, probe);
    assert.equal(c.expected, false, `${from} -> ${to} ${probe} is expected closed (${c.why})`);
    assert.equal(c.reached, false, `${from} -> ${to} ${probe} does not connect`);
    assert.match(c.why, why);
  };

  test("lab check passes: only the allowed TCP paths connect, across nodes and on one node", () => {
    assert.equal(report.passed, true);
    assert.ok(report.cells.every((c) => c.expected === c.reached), "every cell as expected");
    // web (node1) -> api (node2) on api's named port http = 8080.
    open("prod/web", "prod/api", "8080/TCP", /allowed by NetworkPolicy\/prod\/api-from-web/);
    // api (node2) -> db (node3) on 5432.
    open("prod/api", "prod/db", "5432/TCP", /allowed by NetworkPolicy\/prod\/db-from-api/);
    // web is open on http to every pod that is not stopped on egress.
    open("prod/db", "prod/web", "80/TCP", /allowed by NetworkPolicy\/prod\/web-from-anywhere/);
    // Denied by the isolation of the destination: no rule admits the source.
    closed("prod/web", "prod/db", "5432/TCP", /isolated for ingress by .*NetworkPolicy\/prod\/db-from-api/);
    closed("prod/db", "prod/api", "8080/TCP", /isolated for ingress by .*NetworkPolicy\/prod\/api-from-web/);
    // Denied at the source by the global ordered policy, although web's ingress would allow it.
    closed("dev/tool", "prod/web", "80/TCP", /egress: Deny by GlobalTrellisPolicy\/dev-not-to-prod egress\[0\]/);
    closed("dev/tool", "prod/web", "80/TCP", /ingress: allowed by NetworkPolicy\/prod\/web-from-anywhere/);
    // ... on one node too (tool and db both on node3).
    closed("dev/tool", "prod/db", "5432/TCP", /GlobalTrellisPolicy\/dev-not-to-prod/);
    // Pass: dev -> dev and dev -> outside go on to the NetworkPolicies (none select tool: allowed).
    open("dev/tool", "outside", "ICMP", /egress: no NetworkPolicy selects dev\/tool/);
    // dev has no ingress policy: prod reaches tool.
    open("prod/web", "dev/tool", "7000/TCP", /ingress: no NetworkPolicy selects dev\/tool for ingress/);
    const allowed = report.cells.filter((c) => c.expected).length;
    const denied = report.cells.filter((c) => !c.expected).length;
    assert.ok(allowed >= 10 && denied >= 6, `a real mix of open (${allowed}) and closed (${denied}) cells`);
  });

  test("UDP is probed like TCP: an allowed echo comes back across nodes, a denied one does not", () => {
    // api (node2) -> web (node1) 53/UDP: allowed by web-from-anywhere's UDP port.
    open("prod/api", "prod/web", "53/UDP", /allowed by NetworkPolicy\/prod\/web-from-anywhere/);
    open("prod/db", "prod/web", "53/UDP", /allowed by NetworkPolicy\/prod\/web-from-anywhere/);
    // api (node2) -> db (node3) 9153/UDP: db admits api on 5432/TCP only.
    closed("prod/api", "prod/db", "9153/UDP", /isolated for ingress by .*NetworkPolicy\/prod\/db-from-api/);
    // tool (node3) -> web (node1) 53/UDP: the global Deny.
    closed("dev/tool", "prod/web", "53/UDP", /GlobalTrellisPolicy\/dev-not-to-prod/);
  });

  test("policy explain gives, for every pod-to-pod port cell, the verdict the probes saw", () => {
    const cells = report.cells.filter((c) => c.probe !== "ICMP" && c.to !== "outside");
    assert.ok(cells.length >= 15, `${cells.length} port cells`);
    for (const c of cells) {
      const e = lab.explain(c.from, c.to, c.probe);
      assert.equal(e.allowed, c.reached, `explain ${c.from} -> ${c.to} ${c.probe} says ${e.allowed ? "ALLOWED" : "DENIED"}; the probe ${c.reached ? "connected" : "did not"}`);
      const why = [e.egress && `egress: ${e.egress.reason}`, e.ingress && `ingress: ${e.ingress.reason}`].filter(Boolean).join("; ");
      assert.equal(why, c.why, `explain and lab check name the same reasons for ${c.from} -> ${c.to} ${c.probe}`);
    }
    const e = lab.explain("dev/tool", "prod/web", "80/TCP");
    assert.equal(e.egress?.policy, "GlobalTrellisPolicy/dev-not-to-prod");
    assert.equal(e.egress?.allowed, false);
  });

  test("a label change moves a pod into a selector and out again, as set-element updates", async (t) => {
    const api = lab.pod("prod/api");
    const db = lab.pod("prod/db");
    const dbSpec = PROD_DEV_SPEC.pods.find((p) => p.name === "db")!;
    const node2 = lab.node("node2").netns;
    const frontend = prodPolicy("api-from-frontend", {
      podSelector: { matchLabels: { app: "api" } },
      ingress: [{ from: [{ podSelector: { matchLabels: { role: "frontend" } } }], ports: [{ port: "http", protocol: "TCP" }] }],
    });
    const logFrom = lab.agentLog("node2").length;
    lab.apply([frontend]);
    try {
      // A new rule: the table is replaced (and the agent says so once it has read it back).
      await eventually("node2 enforces api-from-frontend", 10_000, () => {
        assert.ok(policyTable(node2)!.rules.some((r) => r.includes("NetworkPolicy/prod/api-from-frontend")));
        assert.match(lab.agentLog("node2").slice(logFrom), /policy: table replaced/);
      });
      assert.equal(probeOnce(db.netns, api.ip, 8080, "TCP"), false, "db -> api:8080 is closed while db is no frontend");

      const relabel = async (labels: Record<string, string>, wantOpen: boolean): Promise<void> => {
        const tableBefore = policyTable(node2)!;
        const logs = Object.fromEntries(["node1", "node2", "node3"].map((n) => [n, lab.agentLog(n).length]));
        lab.apply([podObject("prod", "db", labels, dbSpec.ports)]);
        const { ms } = await eventually(`db -> api:8080 ${wantOpen ? "opens" : "closes"}`, 10_000, () =>
          assert.equal(probeOnce(db.netns, api.ip, 8080, "TCP"), wantOpen));
        t.diagnostic(`db relabelled ${JSON.stringify(labels)}: path ${wantOpen ? "open" : "closed"} after ${ms} ms`);
        const tableAfter = policyTable(node2)!;
        assertOnlySetMembersMoved(tableBefore, tableAfter, db.ip, wantOpen);
        const since = (n: string): string => lab.agentLog(n).slice(logs[n]);
        await eventually("node2's agent logged the set-element update", 5_000, () => assert.match(since("node2"), /policy: set elements updated/));
        for (const n of ["node1", "node2", "node3"]) assert.doesNotMatch(since(n), /policy: table replaced/, `${n} did not replace its table`);
      };
      await relabel({ app: "db", role: "frontend" }, true);
      // The relabelled pod is still db for everything else: api still reaches it, web still does not.
      assert.equal(probeOnce(api.netns, db.ip, 5432, "TCP"), true, "api -> db:5432 still open");
      assert.equal(probeOnce(lab.pod("prod/web").netns, db.ip, 5432, "TCP"), false, "web -> db:5432 still closed");
      await relabel({ app: "db" }, false);
    } finally {
      lab.apply([podObject("prod", "db", { app: "db" }, dbSpec.ports)]);
      lab.deleteObjects([frontend]);
    }
  });

  test("a forged source address is dropped at the sender's node; the pod's own address gets through", async (t) => {
    const web = lab.pod("prod/web");
    const tool = lab.pod("dev/tool");
    const api = lab.pod("prod/api");
    const node1 = lab.node("node1");
    // Another pod's address, and an unallocated one of node1's own block.
    const forgedOther = api.ip;
    const forgedFree = `${node1.subnet.split(".").slice(0, 3).join(".")}.250`;
    // The drop must come from the policy table, not from reverse-path filtering on node1.
    const hostIfs = policyTable(node1.netns)!.sets.get("endpoints")!;
    for (const f of ["all", ...hostIfs]) {
      const v = sh("ip", ["netns", "exec", node1.netns, "sysctl", "-n", `net.ipv4.conf.${f}.rp_filter`]).trim();
      assert.equal(v, "0", `node1 has no reverse-path filter on ${f}`);
    }
    const sources = [web.ip, forgedOther, forgedFree];
    const left = countBySource(web.netns, "output", sources);
    const arrived = countBySource(tool.netns, "input", sources);
    for (const f of [forgedOther, forgedFree]) sh("ip", ["-n", web.netns, "addr", "add", `${f}/32`, "dev", "eth0"]);
    try {
      for (const src of [forgedOther, forgedFree, web.ip]) {
        const ping = spawnSync("ip", ["netns", "exec", web.netns, "ping", "-n", "-c", "3", "-i", "0.2", "-W", "1", "-I", src, tool.ip], { encoding: "utf8" });
        const loop = startConnectLoop(web.netns, { port: 7000, everyMs: 100, timeoutMs: 300, target: tool.ip, localAddress: src });
        await eventually(`5 TCP attempts from ${src}`, 10_000, () => assert.ok(loop.attempts().length >= 5));
        const tcp = await loop.stop();
        const forged = src !== web.ip;
        t.diagnostic(`from ${src}${forged ? " (forged)" : ""}: ping exit ${ping.status}; TCP ${tcp.filter((a) => a.ok).length}/${tcp.length} connected`);
        if (forged) {
          assert.notEqual(ping.status, 0, `no ping reply from ${src}:\n${ping.stdout}`);
          assert.deepEqual(tcp.filter((a) => a.ok), [], `no TCP connection from forged ${src}`);
        } else {
          assert.equal(ping.status, 0, `ping from the pod's own address:\n${ping.stdout}${ping.stderr}`);
          assert.ok(tcp.every((a) => a.ok), `every TCP connection from the pod's own address: ${JSON.stringify(tcp.filter((a) => !a.ok))}`);
        }
      }
      const sent = left();
      const got = arrived();
      t.diagnostic(`left web: ${JSON.stringify(sent)}; arrived at tool: ${JSON.stringify(got)}`);
      for (const f of [forgedOther, forgedFree]) {
        assert.ok(sent[f]! >= 8, `forged packets from ${f} did leave the pod (${sent[f]})`);
        assert.equal(got[f], 0, `no packet from forged ${f} arrived at tool`);
      }
      assert.ok(got[web.ip]! >= 8, `packets from web's own address arrived (${got[web.ip]})`);
    } finally {
      for (const f of [forgedOther, forgedFree]) spawnSync("ip", ["-n", web.netns, "addr", "del", `${f}/32`, "dev", "eth0"]);
    }
  });
});

/**
 * Between two listings of a node's policy table: the same table (handle), the same chains and
 * rules (handles included), and only set elements changed — in sets whose elements cover `ip`
 * afterwards (it joined) or before (it left).
 */
function assertOnlySetMembersMoved(before: PolicyTable, after: PolicyTable, ip: string, joined: boolean): void {
  assert.equal(after.handle, before.handle, "the table was not replaced (same kernel handle)");
  assert.deepEqual(after.rules, before.rules, "the rules are untouched (same rules, same handles)");
  assert.deepEqual([...after.chains], [...before.chains]);
  assert.deepEqual([...after.sets.keys()].sort(), [...before.sets.keys()].sort(), "the same sets");
  const changed = [...after.sets].filter(([name, now]) => JSON.stringify(now) !== JSON.stringify(before.sets.get(name)));
  assert.ok(changed.length > 0, "some set's elements changed");
  for (const [name, now] of changed) {
    const was = before.sets.get(name)!;
    assert.equal(now.some((e) => covers(e, ip)), joined, `set ${name} ${joined ? "now covers" : "no longer covers"} ${ip}: ${JSON.stringify(now)}`);
    assert.equal(was.some((e) => covers(e, ip)), !joined, `set ${name} ${joined ? "did not cover" : "covered"} ${ip} before: ${JSON.stringify(was)}`);
  }
}

const ipv4 = (s: string): number | undefined => {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(s);
  return m ? ((Number(m[1]) << 24) >>> 0) + (Number(m[2]) << 16) + (Number(m[3]) << 8) + Number(m[4]) : undefined;
};

/** Whether a set element ("a", "a-b", "a/n", or a concatenation "a . tcp . 80") covers an IPv4 address. */
function covers(element: string, ip: string): boolean {
  const first = element.split(" . ")[0]!.trim();
  const x = ipv4(ip)!;
  const range = /^([\d.]+)-([\d.]+)$/.exec(first);
  if (range) return ipv4(range[1]!)! <= x && x <= ipv4(range[2]!)!;
  const prefix = /^([\d.]+)\/(\d+)$/.exec(first);
  if (prefix) {
    const bits = Number(prefix[2]);
    const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
    return ((ipv4(prefix[1]!)! & mask) >>> 0) === ((x & mask) >>> 0);
  }
  return first === ip;
}
