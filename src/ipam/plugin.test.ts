import assert from "node:assert/strict";
import * as fs from "node:fs";
import { assertCniError } from "../cni/assert-cni-error.js";
import * as os from "node:os";
import * as path from "node:path";
import { after, beforeEach, describe, it } from "node:test";
import { ErrorCode } from "../cni/errors.js";
import { parseRequest, type CniRequest, type Command } from "../cni/request.js";
import { ipamAdd, ipamCheck, ipamDel, ipamGc, ipamStatus, type IpamDeps } from "./plugin.js";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "trellis-ipam-"));
after(() => fs.rmSync(root, { recursive: true, force: true }));
let n = 0;


describe("trellis-ipam", () => {
  let dataDir: string;
  let netDir: string;
  let files: Map<string, string>;
  let logs: string[];
  let locks: string[];
  let deps: IpamDeps;
  let ipam: Record<string, unknown>;

  beforeEach(() => {
    dataDir = path.join(root, `data${n++}`);
    netDir = path.join(dataDir, "net1");
    files = new Map();
    logs = [];
    locks = [];
    deps = {
      readFile: (p) => {
        const text = files.get(p);
        if (text === undefined) throw new Error(`ENOENT: no such file or directory, open '${p}'`);
        return text;
      },
      log: (l) => logs.push(l),
      lock: (p) => {
        locks.push(`lock ${p}`);
        return { release: () => locks.push("release") };
      },
    };
    ipam = { type: "trellis-ipam", dataDir, ranges: [[{ subnet: "10.1.0.0/24" }]] };
  });

  function request(command: Exclude<Command, "VERSION">, opts: { id?: string; ifname?: string; args?: string; extra?: Record<string, unknown> } = {}): CniRequest {
    const config = { cniVersion: "1.1.0", name: "net1", type: "trellis-ipam", ipam, ...opts.extra };
    const env: Record<string, string> = { CNI_COMMAND: command, CNI_PATH: "/opt/cni/bin" };
    if (command !== "GC" && command !== "STATUS") {
      env.CNI_CONTAINERID = opts.id ?? "ctr1";
      env.CNI_IFNAME = opts.ifname ?? "eth0";
      env.CNI_NETNS = "/run/netns/pod1";
    }
    if (opts.args) env.CNI_ARGS = opts.args;
    return parseRequest(command, env, () => JSON.stringify(config));
  }

  const add = (id = "ctr1", ifname = "eth0"): string[] =>
    ipamAdd(request("ADD", { id, ifname }), deps).ips!.map((i) => i.address);
  const dir = (): string[] => fs.readdirSync(netDir).sort();
  const file = (name: string): string => fs.readFileSync(path.join(netDir, name), "utf8");

  describe("ADD", () => {
    it("lays the store out exactly like host-local: <dataDir>/<network>/<ip> and last_reserved_ip.0", () => {
      const result = ipamAdd(request("ADD"), deps);
      assert.deepEqual(result, { cniVersion: "1.1.0", ips: [{ address: "10.1.0.2/24", gateway: "10.1.0.1" }] });
      assert.deepEqual(dir(), ["10.1.0.2", "last_reserved_ip.0"]);
      assert.equal(file("10.1.0.2"), "ctr1\r\neth0");
      assert.equal(file("last_reserved_ip.0"), "10.1.0.2");
    });

    it("holds the network's lock while it allocates", () => {
      add();
      assert.deepEqual(locks, [`lock ${path.join(netDir, "lock")}`, "release"]);
    });

    it("allocates round-robin: a released address is not handed out again straight away", () => {
      assert.deepEqual(add("ctr1"), ["10.1.0.2/24"]);
      assert.deepEqual(add("ctr2"), ["10.1.0.3/24"]);
      ipamDel(request("DEL", { id: "ctr1" }), deps);
      assert.deepEqual(add("ctr3"), ["10.1.0.4/24"]);
    });

    it("continues after addresses another host-local wrote into the same directory", () => {
      fs.mkdirSync(netDir, { recursive: true });
      fs.writeFileSync(path.join(netDir, "10.1.0.2"), "other\r\neth0");
      fs.writeFileSync(path.join(netDir, "10.1.0.3"), "other2\r\neth0");
      fs.writeFileSync(path.join(netDir, "last_reserved_ip.0"), "10.1.0.3");
      assert.deepEqual(add(), ["10.1.0.4/24"]);
    });

    it("allocates one address per range set (dual stack) and records each set's last reservation", () => {
      ipam = { ...ipam, ranges: [[{ subnet: "10.1.0.0/24" }], [{ subnet: "2001:db8:1::/64" }]] };
      const result = ipamAdd(request("ADD"), deps);
      assert.deepEqual(result.ips, [
        { address: "10.1.0.2/24", gateway: "10.1.0.1" },
        { address: "2001:db8:1::2/64", gateway: "2001:db8:1::1" },
      ]);
      assert.deepEqual(dir(), ["10.1.0.2", "2001:db8:1::2", "last_reserved_ip.0", "last_reserved_ip.1"]);
      assert.equal(file("last_reserved_ip.1"), "2001:db8:1::2");
      assert.equal(file("2001:db8:1::2"), "ctr1\r\neth0");
    });

    it("honours an address requested with CNI_ARGS IP=", () => {
      const result = ipamAdd(request("ADD", { args: "IgnoreUnknown=1;IP=10.1.0.50" }), deps);
      assert.deepEqual(result.ips?.map((i) => i.address), ["10.1.0.50/24"]);
      assert.equal(file("10.1.0.50"), "ctr1\r\neth0");
    });

    it("refuses a second address for the same container and interface, writing nothing", () => {
      add();
      assertCniError(() => add(), ErrorCode.InvalidNetworkConfig, "duplicate allocation");
      assert.deepEqual(dir(), ["10.1.0.2", "last_reserved_ip.0"]);
    });

    it("gives another interface of the same container its own address", () => {
      add("ctr1", "eth0");
      assert.deepEqual(add("ctr1", "net1"), ["10.1.0.3/24"]);
      assert.equal(file("10.1.0.3"), "ctr1\r\nnet1");
    });

    it("reports an exhausted pool with code 101", () => {
      ipam = { ...ipam, ranges: [[{ subnet: "10.1.0.0/30" }]] };
      add("ctr1");
      assertCniError(() => add("ctr2"), ErrorCode.PoolExhausted, "10.1.0.1-10.1.0.2");
    });

    it("returns the configured routes and the DNS read from resolvConf", () => {
      files.set("/etc/trellis/resolv.conf", "nameserver 10.96.0.10\nsearch svc.cluster.local\n");
      ipam = { ...ipam, routes: [{ dst: "0.0.0.0/0" }], resolvConf: "/etc/trellis/resolv.conf" };
      const result = ipamAdd(request("ADD"), deps);
      assert.deepEqual(result.routes, [{ dst: "0.0.0.0/0" }]);
      assert.deepEqual(result.dns, { nameservers: ["10.96.0.10"], search: ["svc.cluster.local"] });
    });

    it("still allocates when resolvConf cannot be read, and logs why", () => {
      ipam = { ...ipam, resolvConf: "/nonexistent/resolv.conf" };
      const result = ipamAdd(request("ADD"), deps);
      assert.equal(result.dns, undefined);
      assert.ok(logs.some((l) => l.includes("/nonexistent/resolv.conf")), logs.join("\n"));
    });

    it("takes its ranges from the agent's subnet file", () => {
      files.set("/run/trellis/subnet.env", "TRELLIS_SUBNET=10.244.3.0/24\n");
      ipam = { type: "trellis-ipam", dataDir, subnetFile: "/run/trellis/subnet.env" };
      assert.deepEqual(add(), ["10.244.3.2/24"]);
    });

    it("says 'try again later' (code 11) while the subnet file does not exist yet", () => {
      ipam = { type: "trellis-ipam", dataDir, subnetFile: "/run/trellis/subnet.env" };
      assertCniError(() => add(), ErrorCode.TryAgainLater, "/run/trellis/subnet.env");
    });
  });

  describe("DEL", () => {
    it("removes only the files of that container and interface", () => {
      add("ctr1", "eth0");
      add("ctr1", "net1");
      add("ctr2", "eth0");
      ipamDel(request("DEL", { id: "ctr1", ifname: "eth0" }), deps);
      assert.deepEqual(dir(), ["10.1.0.3", "10.1.0.4", "last_reserved_ip.0"]);
    });

    it("is idempotent: a second DEL, or a DEL of something never added, succeeds", () => {
      add();
      ipamDel(request("DEL"), deps);
      ipamDel(request("DEL"), deps);
      ipamDel(request("DEL", { id: "never-added" }), deps);
      assert.deepEqual(dir(), ["last_reserved_ip.0"]);
    });

    it("succeeds before the network's directory exists", () => {
      ipamDel(request("DEL"), deps);
      assert.deepEqual(dir(), []);
    });

    it("releases a legacy file that holds only the container id", () => {
      fs.mkdirSync(netDir, { recursive: true });
      fs.writeFileSync(path.join(netDir, "10.1.0.9"), "ctr1");
      fs.writeFileSync(path.join(netDir, "10.1.0.10"), "ctr2");
      ipamDel(request("DEL", { id: "ctr1" }), deps);
      assert.deepEqual(dir(), ["10.1.0.10"]);
    });

    it("releases every address of a dual-stack attachment", () => {
      ipam = { ...ipam, ranges: [[{ subnet: "10.1.0.0/24" }], [{ subnet: "2001:db8:1::/64" }]] };
      add();
      ipamDel(request("DEL"), deps);
      assert.deepEqual(dir(), ["last_reserved_ip.0", "last_reserved_ip.1"]);
    });
  });

  describe("CHECK", () => {
    it("passes when the attachment holds an address", () => {
      add();
      assert.doesNotThrow(() => ipamCheck(request("CHECK"), deps));
    });

    it("fails with a clear message (code 103) when nothing is held", () => {
      add("ctr1");
      assertCniError(() => ipamCheck(request("CHECK", { id: "ctr9" }), deps), ErrorCode.CheckFailed,
        "failed to find address added by container ctr9", "interface eth0, network net1");
    });
  });

  describe("GC", () => {
    it("releases every address whose attachment is not in the valid list", () => {
      add("keep", "eth0");
      add("drop", "eth0");
      add("keep", "eth1");
      fs.writeFileSync(path.join(netDir, "10.1.0.99"), "legacy");
      ipamGc(request("GC", { extra: { "cni.dev/valid-attachments": [{ containerID: "keep", ifname: "eth0" }] } }), deps);
      assert.deepEqual(dir(), ["10.1.0.2", "last_reserved_ip.0"]);
      assert.equal(file("10.1.0.2"), "keep\r\neth0");
      assert.ok(logs.some((l) => l.includes("GC released 3 address(es)")), logs.join("\n"));
    });

    it("releases everything when no attachment is valid", () => {
      add("a");
      add("b");
      ipamGc(request("GC", { extra: { "cni.dev/valid-attachments": [] } }), deps);
      assert.deepEqual(dir(), ["last_reserved_ip.0"]);
    });

    it("keeps everything that is valid and logs nothing", () => {
      add("a");
      ipamGc(request("GC", { extra: { "cni.dev/valid-attachments": [{ containerID: "a", ifname: "eth0" }] } }), deps);
      assert.deepEqual(dir(), ["10.1.0.2", "last_reserved_ip.0"]);
      assert.deepEqual(logs, []);
    });
  });

  describe("STATUS", () => {
    it("passes while addresses are free", () => {
      add();
      assert.doesNotThrow(() => ipamStatus(request("STATUS"), deps));
    });

    it("reports code 50 when the pool is exhausted", () => {
      ipam = { ...ipam, ranges: [[{ subnet: "10.1.0.0/30" }]] };
      ipamStatus(request("STATUS"), deps);
      add();
      assertCniError(() => ipamStatus(request("STATUS"), deps), ErrorCode.NotAvailable, "address pool exhausted", "range set 0");
    });

    it("reports code 50 while the subnet file does not exist yet", () => {
      ipam = { type: "trellis-ipam", dataDir, subnetFile: "/run/trellis/subnet.env" };
      assertCniError(() => ipamStatus(request("STATUS"), deps), ErrorCode.NotAvailable, "/run/trellis/subnet.env");
    });

    it("reports code 50 while the agent holds its block but is not ready (TRELLIS_READY=false), and passes once it is", () => {
      ipam = { type: "trellis-ipam", dataDir, subnetFile: "/run/trellis/subnet.env" };
      files.set("/run/trellis/subnet.env", "TRELLIS_SUBNET=10.1.0.0/24\nTRELLIS_READY=false\n");
      assertCniError(() => ipamStatus(request("STATUS"), deps), ErrorCode.NotAvailable, "not ready");
      files.set("/run/trellis/subnet.env", "TRELLIS_SUBNET=10.1.0.0/24\nTRELLIS_READY=true\n");
      assert.doesNotThrow(() => ipamStatus(request("STATUS"), deps));
      files.set("/run/trellis/subnet.env", "TRELLIS_SUBNET=10.1.0.0/24\n");
      assert.doesNotThrow(() => ipamStatus(request("STATUS"), deps), "a file without the line (an older agent): ready");
    });

    it("reports a bad config with code 7, not as unavailable", () => {
      ipam = { ...ipam, ranges: [[{ subnet: "10.1.0.1/24" }]] };
      assertCniError(() => ipamStatus(request("STATUS"), deps), ErrorCode.InvalidNetworkConfig, "host bits");
    });
  });
});
