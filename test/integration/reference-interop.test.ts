// Interoperability with the reference plugins (Debian's containernetworking-plugins 1.1.1, which
// speak CNI up to 1.0.0): the reference bridge can use trellis-ipam, trellis can use the reference
// host-local, and host-local and trellis-ipam can share one data directory, taking turns on the
// same flock(2), without ever giving out an address twice.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { assertJsonSuccess, assertSilentSuccess } from "../helpers/cni-assert.js";
import { TestHost } from "../helpers/host.js";
import {
  BUILD_CNI, integrationSkip, ipJson, linkNames, REFERENCE_CNI, TRELLIS_IPAM, uniq, type PluginRun,
} from "../helpers/netns.js";

const REF_BRIDGE = path.join(REFERENCE_CNI, "bridge");
const HOST_LOCAL = path.join(REFERENCE_CNI, "host-local");
const skip = integrationSkip() ?? (fs.existsSync(HOST_LOCAL) && fs.existsSync(REF_BRIDGE) ? undefined : `needs the reference plugins in ${REFERENCE_CNI}`);

const IFNAME = "eth0";
const VERSION = "1.0.0";

interface AddResult {
  interfaces: Array<{ name: string; mac?: string; sandbox?: string }>;
  ips: Array<{ address: string; gateway?: string; interface?: number }>;
}
interface IpLink { ifname: string; address: string; addr_info?: Array<{ local: string; prefixlen: number }> }

const bare = (cidr: string): string => cidr.split("/")[0]!;
const owner = (node: TestHost, ip: string): string => fs.readFileSync(path.join(node.ipamDir, ip), "utf8");

describe("the reference bridge plugin with trellis-ipam", { skip }, () => {
  let node: TestHost;
  before(() => {
    node = new TestHost("refbridge");
  });
  after(() => node?.cleanup());

  test("ADD gets its address from trellis-ipam, CHECK passes, DEL releases it, DEL again succeeds", () => {
    const config = {
      cniVersion: VERSION, name: node.network, type: "bridge", bridge: "refbr0", isGateway: true,
      ipam: { type: "trellis-ipam", dataDir: node.dataDir, ranges: [[{ subnet: "10.80.0.0/24" }]] },
    };
    const pod = node.pod("pod");
    const containerId = `refbridge-${uniq()}`;
    const call = { binary: REF_BRIDGE, cniPath: BUILD_CNI, containerId, netns: pod.path, ifname: IFNAME };

    const res = assertJsonSuccess(node.run({ ...call, command: "ADD", config })) as unknown as AddResult;
    assert.equal(res.ips.length, 1);
    assert.equal(res.ips[0]!.address, "10.80.0.2/24", "host-local's first address: gateway .1 skipped");
    assert.equal(res.ips[0]!.gateway, "10.80.0.1");
    assert.deepEqual(node.addressFiles(), ["10.80.0.2"]);
    assert.equal(owner(node, "10.80.0.2"), `${containerId}\r\n${IFNAME}`);
    const link = ipJson<IpLink[]>(pod.name, ["addr", "show", "dev", IFNAME])[0]!;
    assert.ok(link.addr_info?.some((a) => a.local === "10.80.0.2" && a.prefixlen === 24));

    assertSilentSuccess(node.run({ ...call, command: "CHECK", config: { ...config, prevResult: res } }));

    assertSilentSuccess(node.run({ ...call, command: "DEL", config: { ...config, prevResult: res } }));
    assert.deepEqual(node.addressFiles(), []);
    assert.equal(linkNames(pod.name).includes(IFNAME), false);
    assertSilentSuccess(node.run({ ...call, command: "DEL", config: { ...config, prevResult: res } }));
  });
});

describe("trellis with the reference host-local IPAM", { skip }, () => {
  let node: TestHost;
  before(() => {
    node = new TestHost("hostlocal");
  });
  after(() => node?.cleanup());

  test("ADD gets its address from host-local, CHECK passes (delegated too), DEL releases it, DEL again succeeds", () => {
    const config = {
      cniVersion: VERSION, name: node.network, type: "trellis",
      ipam: { type: "host-local", dataDir: node.dataDir, ranges: [[{ subnet: "10.81.0.0/24" }]] },
    };
    const pod = node.pod("pod");
    const containerId = `hostlocal-${uniq()}`;
    const call = { containerId, netns: pod.path, ifname: IFNAME };

    const res = assertJsonSuccess(node.run({ ...call, command: "ADD", config })) as unknown as AddResult;
    assert.deepEqual(res.ips.map((i) => i.address), ["10.81.0.2/32"], "routed mode: the pod gets host-local's address as /32");
    assert.deepEqual(node.addressFiles(), ["10.81.0.2"]);
    assert.equal(owner(node, "10.81.0.2"), `${containerId}\r\n${IFNAME}`, "host-local wrote the reservation");
    const hostVeth = res.interfaces.find((i) => i.sandbox === undefined)!.name;
    assert.ok(linkNames(node.host.name).includes(hostVeth));

    assertSilentSuccess(node.run({ ...call, command: "CHECK", config: { ...config, prevResult: res } }));
    // Take the reservation away behind trellis' back: the delegated CHECK must now fail.
    fs.rmSync(path.join(node.ipamDir, "10.81.0.2"));
    const broken = node.run({ ...call, command: "CHECK", config: { ...config, prevResult: res } });
    assert.notEqual(broken.code, 0, "CHECK notices the missing reservation");
    assert.match(String(broken.json?.msg), /host-local/);
    fs.writeFileSync(path.join(node.ipamDir, "10.81.0.2"), `${containerId}\r\n${IFNAME}`);

    assertSilentSuccess(node.run({ ...call, command: "DEL", config: { ...config, prevResult: res } }));
    assert.deepEqual(node.addressFiles(), []);
    assert.equal(linkNames(node.host.name).includes(hostVeth), false);
    assertSilentSuccess(node.run({ ...call, command: "DEL", config: { ...config, prevResult: res } }));
  });
});

describe("host-local and trellis-ipam sharing one data directory", { skip }, () => {
  const PER_PLUGIN = 40;
  let node: TestHost;
  before(() => {
    node = new TestHost("shared");
  });
  after(() => node?.cleanup());

  test(`${PER_PLUGIN} concurrent ADDs each, interleaved, never give out the same address twice; each can release the other's`, async () => {
    const pod = node.pod("pod"); // IPAM plugins only need CNI_NETNS to be set
    const ipam = { dataDir: node.dataDir, ranges: [[{ subnet: "10.82.0.0/24" }]] };
    const plugins = [
      { binary: HOST_LOCAL, type: "host-local" },
      { binary: TRELLIS_IPAM, type: "trellis-ipam" },
    ];
    const confFor = (p: (typeof plugins)[number]) => ({ cniVersion: VERSION, name: node.network, ipam: { type: p.type, ...ipam } });
    const calls = Array.from({ length: 2 * PER_PLUGIN }, (_, i) => ({
      plugin: plugins[i % 2]!,
      containerId: `shared-${i}-${uniq()}`,
    }));

    const adds: PluginRun[] = await Promise.all(calls.map((c) => node.runAsync({
      binary: c.plugin.binary, command: "ADD", config: confFor(c.plugin), containerId: c.containerId, netns: pod.path, ifname: IFNAME,
    })));
    const addresses = adds.map((r, i) => {
      const out = assertJsonSuccess(r) as unknown as AddResult;
      assert.equal(out.ips.length, 1, `${calls[i]!.plugin.type}: ${r.stdout}`);
      return bare(out.ips[0]!.address);
    });
    assert.equal(new Set(addresses).size, addresses.length, `an address was given twice: ${addresses.join(" ")}`);
    assert.deepEqual(node.addressFiles(), [...addresses].sort());
    addresses.forEach((ip, i) => assert.equal(owner(node, ip), `${calls[i]!.containerId}\r\n${IFNAME}`));

    // Release every address with the plugin that did not reserve it.
    const dels = await Promise.all(calls.map((c) => {
      const other = plugins.find((p) => p !== c.plugin)!;
      return node.runAsync({
        binary: other.binary, command: "DEL", config: confFor(other), containerId: c.containerId, netns: pod.path, ifname: IFNAME,
      });
    }));
    dels.forEach((r) => assertSilentSuccess(r));
    assert.deepEqual(node.addressFiles(), []);
  });
});
