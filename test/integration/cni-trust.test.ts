// The agent's CNI socket is a trust boundary: the agent is root and does kernel work for whoever it
// serves. Black-box, with the built executables: `trellis cni serve` (the agent's socket code) and
// the plugin, run as root and as an unprivileged user (setpriv, uid/gid 65534).
//
// - With the default modes an unprivileged user cannot even connect; with modes loosened by hand
//   (the test does it as root: no option of the executable loosens them) the agent reads the
//   caller's credentials from the kernel (SO_PEERCRED) and refuses, running nothing.
// - With --cni-socket-group, members (by supplementary group, SO_PEERGROUPS) are served.
// - A CNI_NETNS that is the host's (the caller's own, the initial one) or not a network namespace is
//   refused before anything is touched, by the plugin itself and through the agent.
// - Hostile container ids, interface names and network names never create or remove a file: the
//   whole directory tree (IPAM data, endpoint spool, and what is around them) is compared.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { assertCniError, assertJsonSuccess, assertSilentSuccess } from "../helpers/cni-assert.js";
import { TestHost } from "../helpers/host.js";
import { integrationSkip, linkNames, sh, startCniService, trlLinks, uniq, type CniService, type PluginRun } from "../helpers/netns.js";

const hasSetpriv = spawnSync("setpriv", ["--version"]).status === 0;
const skip = integrationSkip() ?? (hasSetpriv ? undefined : "needs setpriv (util-linux)");
const IFNAME = "eth0";
const NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"];
const SOCKET_GID = 4242; // a numeric group: nothing is added to /etc/group
const MEMBER = ["setpriv", "--reuid=65534", "--regid=65534", `--groups=${SOCKET_GID}`, "--"];

/** Every entry under `root` with its type, mode and (for files) content: what a call may not change. */
function snapshot(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      const st = fs.lstatSync(p);
      const mode = (st.mode & 0o7777).toString(8);
      const rel = path.relative(root, p);
      if (e.isDirectory()) {
        out.set(rel, `dir ${mode}`);
        walk(p);
      } else if (e.isFile()) out.set(rel, `file ${mode} ${fs.readFileSync(p, "utf8")}`);
      else out.set(rel, `${e.isSocket() ? "socket" : e.isFIFO() ? "fifo" : "other"} ${mode}`);
    }
  };
  walk(root);
  return out;
}

function assertSameTree(before: Map<string, string>, after: Map<string, string>, what: string): void {
  const changed = [...new Set([...before.keys(), ...after.keys()])].filter((k) => before.get(k) !== after.get(k));
  assert.deepEqual(changed.map((k) => `${k}: ${before.get(k) ?? "(none)"} -> ${after.get(k) ?? "(none)"}`), [], `${what} changed files`);
}

/** The links of the namespace the test runs in (only read). */
const rootLinks = (): string[] => (JSON.parse(sh("ip", ["-j", "link", "show"])) as Array<{ ifname: string }>).map((l) => l.ifname).sort();

describe("the agent's CNI socket as a trust boundary", { skip }, () => {
  let node: TestHost;
  /** node.dataDir, opened to others (0755) so that an unprivileged caller can reach what it is allowed to. */
  let root: string;
  let dataDir: string;
  let spool: string;
  let subnetFile: string;
  let service: CniService;
  const cid = (what: string): string => `${what}-${uniq()}`;

  const config = (agentSocket: string, over: Record<string, unknown> = {}): Record<string, unknown> => ({
    cniVersion: "1.1.0", name: node.network, type: "trellis", agentSocket,
    ipam: { type: "trellis-ipam", dataDir, subnetFile },
    ...over,
  });

  before(async () => {
    node = new TestHost("trust");
    root = node.dataDir;
    fs.chmodSync(root, 0o755);
    dataDir = path.join(root, "var", "lib", "ipam");
    spool = path.join(root, "run", "spool");
    subnetFile = path.join(root, "run", "subnet.env");
    fs.mkdirSync(dataDir, { recursive: true });
    fs.mkdirSync(spool, { recursive: true });
    fs.writeFileSync(subnetFile, `TRELLIS_SUBNET=10.79.0.0/24\nTRELLIS_NODE=trust\nTRELLIS_ENDPOINT_DIR=${spool}\nTRELLIS_POLICY=off\n`);
    // Bait: where a container id or name that climbed out of its directory would land.
    for (const bait of ["x", "run/x", "run/x_eth0.json", "var/lib/x", "var/lib/evil", "var/x"]) fs.writeFileSync(path.join(root, bait), "bait");
    service = await startCniService(node.host.name, path.join(root, "agent", "cni.sock"));
  });
  after(async () => {
    await service?.stop();
    node?.cleanup();
  });

  const ipamNetworkDir = (): string => path.join(dataDir, node.network);
  const nothingAttached = (): void => {
    assert.deepEqual(node.trlLinks(), [], "no host veth");
    const files = fs.existsSync(ipamNetworkDir()) ? fs.readdirSync(ipamNetworkDir()).filter((n) => /^\d/.test(n) && !n.startsWith("last_")) : [];
    assert.deepEqual(files, [], "no address reserved");
    assert.deepEqual(fs.readdirSync(spool), [], "no endpoint registered");
  };
  const forwardedBy = (r: PluginRun, agent: CniService): void =>
    assert.match(r.stderr, new RegExp(`trellis\\[agent ${agent.pid}\\]`), `the agent ran it: ${r.stderr}`);

  describe("an unprivileged caller", () => {
    test("the socket is 0600 in a 0700 directory, both root's", () => {
      const d = fs.statSync(path.dirname(service.socketPath));
      const s = fs.statSync(service.socketPath);
      assert.deepEqual([d.mode & 0o7777, d.uid, s.mode & 0o777, s.uid], [0o700, 0, 0o600, 0]);
    });

    test("cannot connect to the socket, and its plugin (running the call itself) changes nothing", async () => {
      const probe = `require("net").connect(${JSON.stringify(service.socketPath)})` +
        `.on("error", (e) => { console.log(e.code); process.exit(0); }).on("connect", () => { console.log("connected"); process.exit(0); })`;
      const r = spawnSync(NOBODY[0]!, [...NOBODY.slice(1), process.execPath, "-e", probe], { encoding: "utf8" });
      assert.equal(r.stdout.trim(), "EACCES", r.stderr);

      const pod = node.pod("nobody1");
      const tree = snapshot(root);
      const add = await node.runAsync({ command: "ADD", config: config(service.socketPath), containerId: cid("nobody1"), netns: pod.path, ifname: IFNAME, wrapper: NOBODY });
      assertCniError(add);
      assert.doesNotMatch(add.stderr, /\[agent /, "the agent did not take the call");
      assert.doesNotMatch(service.output(), /refused|ADD/, "it never reached the agent");
      assertSameTree(tree, snapshot(root), "an unprivileged ADD");
      nothingAttached();
      assert.deepEqual(linkNames(pod.name), ["lo"]);
    });

    test("with the socket opened to everyone by hand, the agent still refuses it (SO_PEERCRED): error 104, logged with its pid, uid and gid, nothing run", async () => {
      const dir = path.dirname(service.socketPath);
      fs.chmodSync(dir, 0o777);
      fs.chmodSync(service.socketPath, 0o777);
      try {
        const pod = node.pod("nobody2");
        const id = cid("nobody2");
        const tree = snapshot(root);
        const links = rootLinks();
        for (const command of ["ADD", "CHECK", "DEL", "GC"]) {
          let pid = 0;
          const conf = command === "CHECK" ? config(service.socketPath, { prevResult: { cniVersion: "1.1.0", interfaces: [], ips: [] } }) : config(service.socketPath);
          const r = await node.runAsync({ command, config: conf, containerId: id, netns: pod.path, ifname: IFNAME, wrapper: NOBODY }, (p) => (pid = p));
          const err = assertCniError(r, { code: 104, msg: /refused.*uid 65534 is not root/ });
          assert.equal(err.cniVersion, "1.1.0");
          assert.match(service.output(), new RegExp(`refused a call from pid ${pid} uid 65534 gid 65534: uid 65534 is not root`), `${command} is logged with the caller`);
        }
        assert.doesNotMatch(service.output(), /trellis\[agent \d+\] (ADD|CHECK|DEL|GC)/, "the agent ran nothing");
        assertSameTree(tree, snapshot(root), "refused calls");
        nothingAttached();
        assert.deepEqual(linkNames(pod.name), ["lo"]);
        assert.deepEqual(rootLinks(), links);
      } finally {
        fs.chmodSync(dir, 0o700);
        fs.chmodSync(service.socketPath, 0o600);
      }
    });

    test("with --cni-socket-group: 0660 in 0750 of that group; a member is served, a non-member cannot connect", async () => {
      const grouped = await startCniService(node.host.name, path.join(root, "agent-group", "cni.sock"), undefined, ["--cni-socket-group", String(SOCKET_GID)]);
      try {
        const d = fs.statSync(path.dirname(grouped.socketPath));
        const s = fs.statSync(grouped.socketPath);
        assert.deepEqual([d.mode & 0o7777, d.gid, s.mode & 0o777, s.gid], [0o750, SOCKET_GID, 0o660, SOCKET_GID]);

        const pod = node.pod("member");
        const id = cid("member");
        const conf = config(grouped.socketPath);
        const add = await node.runAsync({ command: "ADD", config: conf, containerId: id, netns: pod.path, ifname: IFNAME, wrapper: MEMBER });
        assertJsonSuccess(add);
        forwardedBy(add, grouped);
        assert.ok(linkNames(pod.name).includes(IFNAME));
        const del = await node.runAsync({ command: "DEL", config: conf, containerId: id, netns: pod.path, ifname: IFNAME, wrapper: MEMBER });
        assertSilentSuccess(del); // silent; run as uid 65534 by the plugin itself it could not have succeeded
        nothingAttached();

        const tree = snapshot(root);
        const outsider = await node.runAsync({ command: "ADD", config: conf, containerId: cid("outsider"), netns: pod.path, ifname: IFNAME, wrapper: NOBODY });
        assertCniError(outsider);
        assert.doesNotMatch(outsider.stderr, /\[agent /);
        assertSameTree(tree, snapshot(root), "a non-member's ADD");
        nothingAttached();
      } finally {
        await grouped.stop();
      }
    });
  });

  describe("the plugin's side", () => {
    test("a socket served by another user than root is not trusted: the plugin sends it nothing and does the work itself", async () => {
      const dir = path.join(root, "impostor");
      fs.mkdirSync(dir);
      fs.chmodSync(dir, 0o777);
      const socketPath = path.join(dir, "cni.sock");
      // Answers any request with a made-up success, and says on stdout when it gets one.
      const fake = `const s = require("net").createServer({ allowHalfOpen: true }, (c) => { c.on("data", () => console.log("request")); ` +
        `c.on("end", () => c.end(JSON.stringify({ v: 1, code: 0, stdout: '{"cniVersion":"1.1.0","made":"up"}', stderr: "" }))); }); ` +
        `s.listen(${JSON.stringify(socketPath)}, () => { require("fs").chmodSync(${JSON.stringify(socketPath)}, 0o777); console.log("listening"); });`;
      const child = spawn(NOBODY[0]!, [...NOBODY.slice(1), process.execPath, "-e", fake], { stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
      const exited = new Promise((r) => child.once("exit", r));
      try {
        for (let i = 0; i < 500 && !out.includes("listening"); i++) await new Promise((r) => setTimeout(r, 10));
        assert.match(out, /listening/);
        const pod = node.pod("impostor");
        const id = cid("impostor");
        const add = await node.runAsync({ command: "ADD", config: config(socketPath), containerId: id, netns: pod.path, ifname: IFNAME });
        const result = assertJsonSuccess(add);
        assert.equal(result.made, undefined, "not the impostor's answer");
        assert.ok(linkNames(pod.name).includes(IFNAME), "the plugin made the attachment itself");
        assert.doesNotMatch(out, /request/, "the impostor was sent nothing");
        assertSilentSuccess(await node.runAsync({ command: "DEL", config: config(socketPath), containerId: id, netns: pod.path, ifname: IFNAME }));
        nothingAttached();
      } finally {
        child.kill("SIGTERM");
        await exited;
      }
    });
  });

  describe("CNI_NETNS that is not a pod's", () => {
    const cases = (): Array<[string, string, RegExp]> => {
      const file = path.join(root, "not-a-netns");
      const fifo = path.join(root, "fifo");
      fs.writeFileSync(file, "");
      if (!fs.existsSync(fifo)) sh("mkfifo", [fifo]);
      const out: Array<[string, string, RegExp]> = [
        ["the machine's initial namespace (/proc/1)", "/proc/1/ns/net", /is the host's initial network namespace|cannot be opened/],
        ["the caller's own namespace", node.host.path, /is the plugin's own network namespace/],
        ["a regular file", file, /is not a network namespace/],
        ["a directory", root, /is not a network namespace/],
        ["a FIFO (never opened: it would block)", fifo, /is not a network namespace/],
        ["a mount namespace", "/proc/self/ns/mnt", /is not a network namespace/],
        ["a /proc file", "/proc/version", /is not a network namespace/],
      ];
      // kthreadd (pid 2 when we share the initial pid namespace) lives in the initial network namespace.
      if (/^\S+ \(kthreadd\) /.test(fs.readFileSync("/proc/2/stat", "utf8"))) {
        out.push(["the initial namespace, by a kernel thread's /proc entry", "/proc/2/ns/net", /is the host's initial network namespace/]);
      }
      return out;
    };

    for (const via of ["direct", "forwarded"] as const) {
      test(`${via}: ADD and CHECK refuse it with code 8 before anything is touched`, async () => {
        const socket = via === "direct" ? "" : service.socketPath;
        const all = cases();
        const tree = snapshot(root);
        const links = rootLinks();
        for (const [what, netns, why] of all) {
          for (const command of ["ADD", "CHECK"]) {
            const conf = command === "CHECK"
              ? config(socket, { prevResult: { cniVersion: "1.1.0", interfaces: [{ name: IFNAME, sandbox: netns }], ips: [] } })
              : config(socket);
            const r = await node.runAsync({ command, config: conf, containerId: cid("netns"), netns, ifname: IFNAME, timeoutMs: 20_000 });
            assert.equal(r.signal, null, `${command} ${what}: the plugin did not hang`);
            assertCniError(r, { code: 8, msg: why });
            if (via === "forwarded") forwardedBy(r, service);
          }
        }
        assertSameTree(tree, snapshot(root), "refused namespaces");
        nothingAttached();
        assert.deepEqual(rootLinks(), links, "nothing was made in the namespace the tests run in");
      });
    }
  });

  describe("hostile container ids, interface names and network names", () => {
    const ids = ["../x", "a/b", "x\ny", "x".repeat(5000), "..", "/etc/passwd", ".hidden", `x${"y".repeat(200)}`];
    const ifnames = ["../x", "a/b", "x\ny", "x".repeat(5000), "..", ".", "e/../../x"];
    const names = ["../evil", "a/b", "..", "n".repeat(5000)];

    for (const via of ["direct", "forwarded"] as const) {
      test(`${via}: ADD, CHECK, DEL and GC never create or remove a file, and leave a good pod alone`, async () => {
        const socket = via === "direct" ? "" : service.socketPath;
        const pod = node.pod(`good${via}`);
        const good = cid("good");
        assertJsonSuccess(await node.runAsync({ command: "ADD", config: config(socket), containerId: good, netns: pod.path, ifname: IFNAME }));
        // A first GC writes the IPAM's owner cache (in the data directory), which every later GC rewrites the same.
        assertSilentSuccess(await node.runAsync({ command: "GC", config: config(socket, { "cni.dev/valid-attachments": [{ containerID: good, ifname: IFNAME }] }) }));
        const tree = snapshot(root);
        const prevResult = { cniVersion: "1.1.0", interfaces: [{ name: IFNAME, sandbox: pod.path }], ips: [] };
        const refused = async (command: string, containerId: string, ifname: string, code: number, msg: RegExp, over: Record<string, unknown> = {}): Promise<void> => {
          const conf = config(socket, command === "CHECK" ? { prevResult, ...over } : over);
          const r = await node.runAsync({ command, config: conf, containerId, netns: pod.path, ifname });
          assertCniError(r, { code, msg });
          if (via === "forwarded") forwardedBy(r, service);
        };
        for (const command of ["ADD", "CHECK", "DEL"]) {
          for (const id of ids) await refused(command, id, IFNAME, 4, /invalid CNI_CONTAINERID/);
          for (const ifname of ifnames) await refused(command, good, ifname, 4, /invalid CNI_IFNAME/);
          for (const name of names) await refused(command, good, IFNAME, 7, /network name/, { name });
        }
        // GC is told which attachments are valid: hostile entries are only compared, never used as paths.
        const valid = [{ containerID: good, ifname: IFNAME }, ...ids.map((containerID) => ({ containerID, ifname: IFNAME })),
          ...ifnames.map((ifname) => ({ containerID: good, ifname }))];
        const gc = await node.runAsync({ command: "GC", config: config(socket, { "cni.dev/valid-attachments": valid }) });
        assertSilentSuccess(gc);

        assertSameTree(tree, snapshot(root), "hostile requests");
        assert.equal(node.trlLinks().length, 1, "the good pod's veth is still there");
        assert.ok(linkNames(pod.name).includes(IFNAME));

        assertSilentSuccess(await node.runAsync({ command: "DEL", config: config(socket), containerId: good, netns: pod.path, ifname: IFNAME }));
        assertSilentSuccess(await node.runAsync({ command: "DEL", config: config(socket), containerId: good, netns: pod.path, ifname: IFNAME }));
        nothingAttached();
        for (const bait of ["x", "run/x", "run/x_eth0.json", "var/lib/x", "var/lib/evil", "var/x"]) {
          assert.equal(fs.readFileSync(path.join(root, bait), "utf8"), "bait", `${bait} untouched`);
        }
      });
    }
  });
});
