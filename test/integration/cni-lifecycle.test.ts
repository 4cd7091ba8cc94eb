// The trellis plugin's life cycle, black-box: the built executable run as a runtime runs it, in a
// "host" namespace of its own, for every mode and every CNI version it speaks. What ADD reports
// must be what the kernel holds; CHECK must notice when it no longer does; DEL must undo it all,
// twice over, whatever state the pod is in.
import assert from "node:assert/strict";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { assertCniError, assertJsonSuccess, assertSilentSuccess } from "../helpers/cni-assert.js";
import { TestHost } from "../helpers/host.js";
import { integrationSkip, ipJson, linkNames, ping, sh, startCniService, uniq, type CniService, type Netns } from "../helpers/netns.js";

const skip = integrationSkip();

const VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] as const;
type Version = (typeof VERSIONS)[number];
type Mode = "routed" | "bridge";

const MTU = 1400;
const IFNAME = "eth0";
const BRIDGE = "trellis0";
const HOST_MAC = "ee:ee:ee:ee:ee:ee";
const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

const supportsCheck = (v: Version): boolean => v !== "0.3.0" && v !== "0.3.1";
const legacyResult = (v: Version): boolean => v.startsWith("0.");

interface ResultInterface { name: string; mac?: string; mtu?: number; sandbox?: string }
interface ResultIp { version?: string; address: string; gateway?: string; interface?: number }
interface ResultRoute { dst: string; gw?: string }
interface AddResult { cniVersion: string; interfaces: ResultInterface[]; ips: ResultIp[]; routes: ResultRoute[] }

interface IpLink {
  ifname: string;
  address: string;
  mtu: number;
  master?: string;
  linkinfo?: { info_kind?: string };
  addr_info?: Array<{ local: string; prefixlen: number }>;
}
interface IpRoute { dst: string; gateway?: string; dev?: string; protocol?: string | number }

type Ranges = Array<Array<Record<string, string>>>;

/** `agentSocket` "" makes the plugin run every call itself, whatever listens on the default socket. */
function netConf(node: TestHost, mode: Mode, version: Version, ranges: Ranges, agentSocket = ""): Record<string, unknown> {
  return {
    cniVersion: version,
    name: node.network,
    type: "trellis",
    mode,
    mtu: MTU,
    agentSocket,
    ipam: { type: "trellis-ipam", dataDir: node.dataDir, ranges },
  };
}

/**
 * ADD, asserting success and who did the work: the node service with pid `servedBy` (its log lines
 * come back on the plugin's stderr as `trellis[agent <pid>]`), or the plugin process itself.
 */
function add(node: TestHost, config: Record<string, unknown>, pod: Netns, containerId: string, servedBy?: number): AddResult {
  const r = node.run({ command: "ADD", config, containerId, netns: pod.path, ifname: IFNAME });
  const res = assertJsonSuccess(r) as unknown as AddResult;
  if (servedBy !== undefined) assert.match(r.stderr, new RegExp(`trellis\\[agent ${servedBy}\\] ADD`), "the node service made the attachment");
  else assert.doesNotMatch(r.stderr, /\[agent /, "the plugin made the attachment itself");
  return res;
}

/** The two ways a call is carried out: by the plugin process, or forwarded to the node's service. */
const PATHS = [
  { via: "run by the plugin itself", served: false },
  { via: "forwarded to the node service", served: true },
] as const;

/** DEL as libcni sends it: prevResult included from 0.4.0 on. */
function del(node: TestHost, config: Record<string, unknown>, netns: string, containerId: string, prev?: AddResult): void {
  const withPrev = prev && supportsCheck(config.cniVersion as Version) ? { ...config, prevResult: prev } : config;
  assertSilentSuccess(node.run({ command: "DEL", config: withPrev, containerId, netns, ifname: IFNAME }));
}

function check(node: TestHost, config: Record<string, unknown>, pod: Netns, containerId: string, prev: AddResult) {
  return node.run({ command: "CHECK", config: { ...config, prevResult: prev }, containerId, netns: pod.path, ifname: IFNAME });
}

const bare = (cidr: string): string => cidr.split("/")[0]!;
const family = (address: string): "4" | "6" => (address.includes(":") ? "6" : "4");
const sameRouteDst = (kernel: string, cni: string): boolean =>
  kernel === "default" ? cni === "0.0.0.0/0" || cni === "::/0" : kernel === cni || `${kernel}/${kernel.includes(":") ? 128 : 32}` === cni;

/** The result has the shape its cniVersion prescribes. Returns the index of the pod interface. */
function assertResultShape(res: AddResult, mode: Mode, version: Version, pod: Netns): number {
  assert.equal(res.cniVersion, version, "cniVersion is echoed");
  assert.ok(Array.isArray(res.interfaces) && Array.isArray(res.ips) && Array.isArray(res.routes));

  const inPod = res.interfaces.map((itf, i) => ({ itf, i })).filter((x) => x.itf.sandbox !== undefined);
  assert.equal(inPod.length, 1, "exactly one interface lives in the sandbox");
  const podIndex = inPod[0]!.i;
  const podItf = inPod[0]!.itf;
  assert.equal(podItf.name, IFNAME);
  assert.equal(podItf.sandbox, pod.path, "sandbox is CNI_NETNS as given");
  assert.match(podItf.mac ?? "", MAC_RE, "pod MAC is lower-case, colon-separated");

  const hostSide = res.interfaces.filter((i) => i.sandbox === undefined).map((i) => i.name);
  if (mode === "routed") {
    assert.equal(hostSide.length, 1);
    assert.match(hostSide[0]!, /^trl[0-9a-f]{11}$/);
    assert.equal(res.interfaces.find((i) => i.name === hostSide[0])!.mac, HOST_MAC);
  } else {
    assert.equal(hostSide.length, 2);
    assert.equal(hostSide[0], BRIDGE, "the bridge comes first, as the reference bridge plugin reports it");
    assert.match(hostSide[1]!, /^trl[0-9a-f]{11}$/);
  }

  // 1.1.0 added interface MTUs; older shapes have no such field.
  for (const itf of res.interfaces) {
    if (version === "1.1.0" && itf.sandbox !== undefined) assert.equal(itf.mtu, MTU);
    else assert.equal(itf.mtu, undefined, `${version} results carry no interface mtu`);
  }

  assert.ok(res.ips.length > 0);
  for (const ip of res.ips) {
    if (legacyResult(version)) assert.equal(ip.version, family(ip.address), `${version} ips carry "version"`);
    else assert.equal("version" in ip, false, `${version} ips carry no "version"`);
    assert.equal(ip.interface, podIndex, "every address points at the pod interface");
    if (mode === "routed") {
      assert.match(ip.address, family(ip.address) === "4" ? /\/32$/ : /\/128$/);
      assert.equal(ip.gateway, family(ip.address) === "4" ? "169.254.1.1" : "fe80::1");
    } else {
      assert.match(ip.address, /\/24$/);
    }
  }
  for (const rt of res.routes) assert.deepEqual(Object.keys(rt).sort(), rt.gw ? ["dst", "gw"] : ["dst"]);
  return podIndex;
}

/** Everything the result reports exists in the kernel: pod link, addresses, routes, host side. */
function assertResultInKernel(node: TestHost, res: AddResult, mode: Mode, podIndex: number, pod: Netns): void {
  const podItf = res.interfaces[podIndex]!;
  const link = ipJson<IpLink[]>(pod.name, ["-d", "addr", "show", "dev", IFNAME])[0];
  assert.ok(link, `${IFNAME} exists in ${pod.name}`);
  assert.equal(link.linkinfo?.info_kind, "veth");
  assert.equal(link.address, podItf.mac, "the reported MAC is the kernel's");
  assert.equal(link.mtu, MTU);
  for (const ip of res.ips) {
    const [addr, prefix] = ip.address.split("/");
    assert.ok(
      (link.addr_info ?? []).some((a) => a.local === addr && a.prefixlen === Number(prefix)),
      `${ip.address} is on ${IFNAME}: ${JSON.stringify(link.addr_info)}`,
    );
  }
  const podRoutes = [
    ...ipJson<IpRoute[]>(pod.name, ["-4", "route", "show"]),
    ...ipJson<IpRoute[]>(pod.name, ["-6", "route", "show"]),
  ];
  assert.ok(res.routes.some((r) => r.dst === "0.0.0.0/0"), "a default route is reported");
  for (const rt of res.routes) {
    assert.ok(
      podRoutes.some((k) => sameRouteDst(k.dst, rt.dst) && k.gateway === rt.gw && k.dev === IFNAME),
      `route ${rt.dst} via ${rt.gw} is in the pod: ${JSON.stringify(podRoutes)}`,
    );
  }

  const hostVeth = res.interfaces.find((i) => i.sandbox === undefined && i.name.startsWith("trl"))!;
  const host = ipJson<IpLink[]>(node.host.name, ["-d", "link", "show", "dev", hostVeth.name])[0];
  assert.ok(host, `${hostVeth.name} exists on the host`);
  assert.equal(host.linkinfo?.info_kind, "veth");
  assert.equal(host.mtu, MTU);
  if (mode === "routed") {
    assert.equal(host.address, HOST_MAC);
    for (const ip of res.ips) {
      const addr = bare(ip.address);
      const fam = family(addr) === "4" ? "-4" : "-6";
      const routes = ipJson<IpRoute[]>(node.host.name, [fam, "route", "show", "exact", `${addr}/${fam === "-4" ? 32 : 128}`]);
      assert.ok(
        routes.some((r) => r.dev === hostVeth.name && String(r.protocol) === "201"),
        `host route to ${addr} on ${hostVeth.name} with proto 201: ${JSON.stringify(routes)}`,
      );
    }
    // The pod reaches its gateway's MAC without ARP: a permanent neighbour entry.
    const neigh = ipJson<Array<{ dst: string; lladdr: string; state: string[] }>>(pod.name, ["neigh", "show", "dev", IFNAME]);
    assert.ok(neigh.some((n) => n.dst === "169.254.1.1" && n.lladdr === HOST_MAC && n.state.includes("PERMANENT")));
  } else {
    assert.equal(host.master, BRIDGE, "the host veth is a port of the bridge");
    const bridge = ipJson<IpLink[]>(node.host.name, ["addr", "show", "dev", BRIDGE])[0]!;
    for (const ip of res.ips) {
      assert.ok((bridge.addr_info ?? []).some((a) => a.local === ip.gateway), `the bridge holds gateway ${ip.gateway}`);
    }
  }
}

/** After DEL: no host veth, no pod interface, no reservation. */
function assertGone(node: TestHost, res: AddResult, pod: Netns | undefined): void {
  const hostVeth = res.interfaces.find((i) => i.sandbox === undefined && i.name.startsWith("trl"))!.name;
  assert.equal(linkNames(node.host.name).includes(hostVeth), false, `${hostVeth} is gone from the host`);
  if (pod) assert.equal(linkNames(pod.name).includes(IFNAME), false, `${IFNAME} is gone from the pod`);
  for (const ip of res.ips) {
    assert.equal(node.addressFiles().includes(bare(ip.address)), false, `${ip.address} is released`);
  }
}

for (const { via, served } of PATHS) for (const [mode, subnet] of [["routed", "10.77.0.0/24"], ["bridge", "10.76.0.0/24"]] as const) {
  describe(`trellis in ${mode} mode, ${via}`, { skip }, () => {
    let node: TestHost;
    let service: CniService | undefined;
    const ranges: Ranges = [[{ subnet }]];
    const conf = (version: Version): Record<string, unknown> => netConf(node, mode, version, ranges, service?.socketPath ?? "");
    const cid = (what: string): string => `${what}-${uniq()}`;
    const addHere = (config: Record<string, unknown>, pod: Netns, id: string): AddResult => add(node, config, pod, id, service?.pid);

    before(async () => {
      node = new TestHost(mode);
      if (served) service = await startCniService(node.host.name, path.join(node.dataDir, "cni.sock"));
    });
    after(async () => {
      await service?.stop();
      node?.cleanup();
    });

    for (const version of VERSIONS) {
      test(`cniVersion ${version}: ADD reports exactly what it made; CHECK passes, then fails once the default route is gone; DEL twice succeeds and leaves nothing`, () => {
        const pod = node.pod(`v${version.replaceAll(".", "")}`);
        const id = cid(`life-${version}`);
        const config = conf(version);

        const res = addHere(config, pod, id);
        const podIndex = assertResultShape(res, mode, version, pod);
        assertResultInKernel(node, res, mode, podIndex, pod);
        assert.equal(node.addressFiles().filter((f) => res.ips.some((ip) => bare(ip.address) === f)).length, res.ips.length,
          "each address has its reservation file");

        if (supportsCheck(version)) {
          assertSilentSuccess(check(node, config, pod, id, res));
          sh("ip", ["-n", pod.name, "route", "del", "default"]);
          assertCniError(check(node, config, pod, id, res), { msg: /route/ });
        }

        del(node, config, pod.path, id, res);
        assertGone(node, res, pod);
        del(node, config, pod.path, id, res);
        assertGone(node, res, pod);
      });
    }

    test("two pods on the same host reach each other", () => {
      const [a, b] = [node.pod("ping-a"), node.pod("ping-b")];
      const [idA, idB] = [cid("ping-a"), cid("ping-b")];
      const config = conf("1.1.0");
      const resA = addHere(config, a, idA);
      const resB = addHere(config, b, idB);
      try {
        assert.ok(ping(a.name, bare(resB.ips[0]!.address)), "a reaches b");
        assert.ok(ping(b.name, bare(resA.ips[0]!.address)), "b reaches a");
      } finally {
        del(node, config, a.path, idA, resA);
        del(node, config, b.path, idB, resB);
      }
      assertGone(node, resA, a);
      assertGone(node, resB, b);
    });

    test("DEL succeeds and releases the address when the pod namespace no longer exists", () => {
      const pod = node.pod("gone");
      const id = cid("gone");
      const config = conf("1.0.0");
      const res = addHere(config, pod, id);
      sh("ip", ["netns", "del", pod.name]);
      del(node, config, pod.path, id, res);
      assertGone(node, res, undefined);
      del(node, config, pod.path, id, res);
    });

    test("DEL with an empty CNI_NETNS succeeds, removes the host side and releases the address", () => {
      const pod = node.pod("nonetns");
      const id = cid("nonetns");
      const config = conf("1.1.0");
      const res = addHere(config, pod, id);
      del(node, config, "", id, res);
      assertGone(node, res, pod);
      del(node, config, "", id, res);
    });

    test("a second ADD with the same container id and ifname fails and leaves the first attachment intact", () => {
      const pod = node.pod("twice");
      const id = cid("twice");
      const config = conf("1.1.0");
      const res = addHere(config, pod, id);
      const reserved = node.addressFiles();

      assertCniError(node.run({ command: "ADD", config, containerId: id, netns: pod.path, ifname: IFNAME }));
      assert.deepEqual(node.addressFiles(), reserved, "no address was taken or released");
      assertSilentSuccess(check(node, config, pod, id, res));
      assertResultInKernel(node, res, mode, res.interfaces.findIndex((i) => i.sandbox), pod);

      del(node, config, pod.path, id, res);
      assertGone(node, res, pod);
      del(node, config, pod.path, id, res);
    });

    test("ADD into a pod that already has the interface fails, releases the address and leaves the pod's interface alone", () => {
      const pod = node.pod("taken");
      const id = cid("taken");
      const config = conf("1.1.0");
      sh("ip", ["-n", pod.name, "link", "add", IFNAME, "type", "veth", "peer", "name", "peer0"]);
      const filesBefore = node.addressFiles();
      const linksBefore = node.trlLinks();

      assertCniError(node.run({ command: "ADD", config, containerId: id, netns: pod.path, ifname: IFNAME }), {
        msg: /already exists/,
      });
      assert.deepEqual(node.addressFiles(), filesBefore, "no address is leaked");
      assert.deepEqual(node.trlLinks(), linksBefore, "no host veth is left");
      assert.ok(linkNames(pod.name).includes("peer0"), "the pod's own interface is untouched");

      // A runtime follows a failed ADD with DEL: it succeeds and still leaves the pod's link alone.
      del(node, config, pod.path, id);
      assert.deepEqual(linkNames(pod.name).sort(), [IFNAME, "lo", "peer0"].sort());
    });
  });
}

describe("trellis in routed mode, dual stack", { skip }, () => {
  let node: TestHost;
  before(() => {
    node = new TestHost("dual");
  });
  after(() => node?.cleanup());

  test("one address per range set, both families configured, and pods reach each other over IPv4 and IPv6", () => {
    const config = netConf(node, "routed", "1.1.0", [[{ subnet: "10.78.0.0/24" }], [{ subnet: "fd00:78::/64" }]]);
    const [a, b] = [node.pod("dual-a"), node.pod("dual-b")];
    const [idA, idB] = [`dual-a-${uniq()}`, `dual-b-${uniq()}`];
    const resA = add(node, config, a, idA);
    const resB = add(node, config, b, idB);
    try {
      for (const [res, pod] of [[resA, a], [resB, b]] as const) {
        const podIndex = assertResultShape(res, "routed", "1.1.0", pod);
        assert.deepEqual(res.ips.map((i) => family(i.address)), ["4", "6"]);
        assert.deepEqual(res.routes.map((r) => r.dst).sort(), ["0.0.0.0/0", "::/0"]);
        assertResultInKernel(node, res, "routed", podIndex, pod);
        assertSilentSuccess(check(node, config, pod, pod === a ? idA : idB, res));
      }
      const v6 = (res: AddResult): string => bare(res.ips.find((i) => family(i.address) === "6")!.address);
      const v4 = (res: AddResult): string => bare(res.ips.find((i) => family(i.address) === "4")!.address);
      assert.ok(ping(a.name, v6(resB), 8), "a reaches b over IPv6");
      assert.ok(ping(b.name, v6(resA), 8), "b reaches a over IPv6");
      assert.ok(ping(a.name, v4(resB)), "a reaches b over IPv4");
    } finally {
      del(node, config, a.path, idA, resA);
      del(node, config, b.path, idB, resB);
    }
    assertGone(node, resA, a);
    assertGone(node, resB, b);
    del(node, config, a.path, idA, resA);
    assert.deepEqual(node.addressFiles(), []);
  });
});
