// `trellis ui` end to end: a 3-node embedded lab, the built executable serving the page, and a
// real headless Chromium (Debian's `chromium`, driven by puppeteer-core) that opens it. The
// assertions are about what cytoscape has drawn (window.__cy): the nodes and their blocks are
// those of `lab status`, the links and their transports those every node reports (`nodes -o
// json`); when a node is removed from the datastore it disappears from the open page, with no
// reload (server-sent events); a deny-all NetworkPolicy and a blocked probe show up under "Policy
// drops (recent)" (the agent's status carries its recent drops). A screenshot is left in
// test-artifacts/ui-topology.png.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { labSkip, TestLab } from "../helpers/lab.js";
import { TRELLIS_CLI } from "../helpers/netns.js";
import { probeOnce } from "../helpers/policy.js";

const CHROMIUM = "/usr/bin/chromium";
const ARTIFACTS = path.resolve(path.dirname(TRELLIS_CLI), "..", "test-artifacts");
const skip = labSkip() ?? (fs.existsSync(CHROMIUM) ? undefined : `needs ${CHROMIUM} (scripts/setup.sh installs it)`);

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** Polls `probe` until it stops throwing, up to a deadline (a hang guard, not a timing assertion). */
async function eventually<T>(what: string, probe: () => Promise<T>, deadlineMs = 60_000): Promise<T> {
  const start = Date.now();
  for (;;) {
    try {
      return await probe();
    } catch (e) {
      if (Date.now() - start > deadlineMs) throw new Error(`${what}: still not true: ${(e as Error).message}`, { cause: e });
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

interface Drawn {
  nodes: Array<{ name: string; label: string }>;
  links: Array<{ id: string; transport: string; health: string }>;
  updates: number;
  drops: string;
}

const drawn = (page: Page): Promise<Drawn> => page.evaluate(() => {
  const w = window as unknown as { __cy?: { nodes(s: string): { map<T>(f: (n: { data(k: string): string }) => T): T[] }; edges(s: string): { map<T>(f: (n: { data(k: string): string; id(): string }) => T): T[] } }; __trellisUpdates?: number };
  const cy = w.__cy;
  if (!cy) return { nodes: [], links: [], updates: 0, drops: "" };
  return {
    nodes: cy.nodes(".node").map((n) => ({ name: n.data("name"), label: n.data("label") })).sort((a, b) => a.name.localeCompare(b.name)),
    links: cy.edges(".link").map((e) => ({ id: e.id(), transport: e.data("transport"), health: e.data("health") })).sort((a, b) => a.id.localeCompare(b.id)),
    updates: w.__trellisUpdates ?? 0,
    drops: document.getElementById("drops")?.textContent ?? "",
  };
});

describe("trellis ui shows the lab's topology and follows it live (3 nodes, embedded datastore)", { skip, timeout: 300_000 }, () => {
  const lab = new TestLab();
  let ui: ChildProcess | undefined;
  let browser: Browser | undefined;
  let page: Page;
  let url: string;

  before(async () => {
    lab.up("--nodes", "3", "--pods-per-node", "1");
    const port = await freePort();
    ui = spawn(TRELLIS_CLI, ["--lab", lab.name, "ui", "--listen", `127.0.0.1:${port}`], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    ui.stdout!.on("data", (d: Buffer) => { out += d.toString(); });
    ui.stderr!.on("data", (d: Buffer) => { out += d.toString(); });
    url = await eventually("the ui server says where it serves", async () => {
      const m = /serving (http:\/\/\S+)/.exec(out);
      if (!m) throw new Error(`output so far: ${out || "(none)"}${ui!.exitCode !== null ? ` (exited ${ui!.exitCode})` : ""}`);
      return m[1]!;
    });
    browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: process.getuid?.() === 0 ? ["--no-sandbox"] : [] });
    page = await browser.newPage();
    await page.setViewport({ width: 1400, height: 850 });
    await page.goto(url, { waitUntil: "load" });
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    if (ui?.pid && ui.exitCode === null) {
      const exited = new Promise((resolve) => ui!.once("exit", resolve));
      process.kill(ui.pid, "SIGTERM");
      await exited;
    }
    lab.down();
  });

  test("every node of lab status is drawn with its block, and every link with the transport its node reports", async () => {
    const status = lab.status();
    const want = status.nodes.map((n) => n.name).sort();
    assert.equal(want.length, 3);
    const reported = lab.nodes();
    const wantLinks = reported.flatMap((r) => r.peers.map((p) => ({ id: `link:${r.name}->${p.node}`, transport: p.transport }))).sort((a, b) => a.id.localeCompare(b.id));
    assert.equal(wantLinks.length, 6, "each of 3 nodes reports 2 peers");
    const d = await eventually("the page draws the lab with every link programmed", async () => {
      const d = await drawn(page);
      assert.deepEqual(d.nodes.map((n) => n.name), want);
      assert.deepEqual(d.links.map((l) => ({ id: l.id, transport: l.transport })), wantLinks);
      assert.ok(d.links.every((l) => l.health === "ok"), `link states: ${d.links.map((l) => `${l.id}=${l.health}`).join(" ")}`);
      return d;
    });
    for (const n of status.nodes) {
      const label = d.nodes.find((x) => x.name === n.name)!.label;
      assert.ok(label.includes(n.subnet) && label.includes(n.ip), `${n.name}'s label "${label}" shows ${n.subnet} and ${n.ip}`);
    }
    assert.doesNotMatch(d.drops, /needs agent metrics/);
    assert.match(d.drops, /none in the last \d+ s|no node reports policy drops/, "no policy, no drops");
    // Pods with their node, as the page lists them.
    const podsText = await page.$eval("#pods", (e) => e.textContent ?? "");
    for (const p of status.pods) assert.ok(podsText.includes(p.name) && podsText.includes(p.ip), `the pod list shows ${p.name} ${p.ip}`);
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, "ui-topology.png") });
  });

  test("a packet dropped by a deny-all NetworkPolicy shows under policy drops with its node, policy and rule", async () => {
    const from = lab.podOn("node1");
    const to = lab.podOn("node2");
    const policy = { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name: "deny-all", namespace: to.namespace }, spec: { podSelector: {}, policyTypes: ["Ingress"] } };
    lab.apply([policy]);
    try {
      // Probes keep coming until the page shows the drop: the agent reads its counters every ~10 s.
      const text = await eventually("the page lists node2's drop on the deny-all policy", async () => {
        probeOnce(from.netns, to.ip, 8080, "TCP");
        const rows = await page.$$eval("#drops tr", (trs) => trs.map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent ?? "")));
        const row = rows.find((r) => r[0] === "node2" && r[1] === `NetworkPolicy/${to.namespace}/deny-all`);
        assert.ok(row, `drops panel: ${JSON.stringify(rows)} / ${(await drawn(page)).drops}`);
        return row;
      }, 120_000);
      assert.equal(text[2], "ingress isolated");
      assert.ok(Number(text[3]) > 0, `packets ${text[3]}`);
      assert.match(text[4]!, /^\d+ s ago$/);
      assert.equal(probeOnce(from.netns, to.ip, 8080, "TCP"), false, "the probe is denied");
      const model = await page.evaluate(() => (window as unknown as { __trellisTopology: { nodes: Array<{ name: string; drops?: { rules: Array<{ policy: string }> } }> } }).__trellisTopology);
      assert.ok(model.nodes.find((n) => n.name === "node2")?.drops?.rules.some((r) => r.policy === `NetworkPolicy/${to.namespace}/deny-all`));
      fs.mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: path.join(ARTIFACTS, "ui-policy-drops.png") });
    } finally {
      lab.deleteObjects([policy]);
    }
  });

  test("a removed node disappears from the open page without a reload", async () => {
    const before = (await drawn(page)).updates;
    await page.evaluate(() => { (window as unknown as { __marker: string }).__marker = "same page"; });
    lab.agent("stop", "node3");
    const r = lab.cli("nodes", "remove", "node3");
    assert.equal(r.code, 0, r.stderr);
    const d = await eventually("node3 leaves the page", async () => {
      const d = await drawn(page);
      assert.deepEqual(d.nodes.map((n) => n.name), ["node1", "node2"]);
      assert.ok(d.links.every((l) => !l.id.includes("node3")), `links: ${d.links.map((l) => l.id).join(" ")}`);
      return d;
    });
    assert.ok(d.updates > before, "the page was updated through its event stream");
    assert.equal(await page.evaluate(() => (window as unknown as { __marker?: string }).__marker), "same page", "the page was not reloaded");
  });
});
