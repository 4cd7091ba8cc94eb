// A pod on several networks, as podman `--network a,b,c` or Multus attaches it: two Trellis
// networks (each its own name, subnets and IPAM data directory) and the reference `bridge` plugin
// with `host-local` (Debian's containernetworking-plugins), one ADD each into ONE pod namespace —
// eth0, eth1, eth2 — with the executables run exactly as a runtime runs them. Every attachment
// must work beside the others: its address, its routes, traffic to its own network's host side or
// gateway; exactly one default route per family unless `routeMetric` asks for another; CHECK
// passing for each; DEL of one leaving the others whole. Once over rtnetlink (what the executables
// do) and once over the `ip -batch` fallback (TRELLIS_NETLINK=0).
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { assertCniError, assertJsonSuccess, assertSilentSuccess } from "../helpers/cni-assert.js";
import { TestHost } from "../helpers/host.js";
import { addressFiles, integrationSkip, ipJson, linkNames, ping, REFERENCE_CNI, sh, uniq, type Netns } from "../helpers/netns.js";

const REF_BRIDGE = path.join(REFERENCE_CNI, "bridge");
const HOST_LOCAL = path.join(REFERENCE_CNI, "host-local");
const skip = integrationSkip() ?? (fs.existsSync(REF_BRIDGE) && fs.existsSync(HOST_LOCAL) ? undefined : `needs the reference plugins in ${REFERENCE_CNI}`);

interface ResultRoute { dst: string; gw?: string; priority?: number }
interface AddResult {
  cniVersion: string;
  interfaces: Array<{ name: string; mac?: string; sandbox?: string }>;
  ips: Array<{ address: string; gateway?: string; interface?: number }>;
  routes?: ResultRoute[];
}
interface IpRoute { dst: string; gateway?: string; dev?: string; metric?: number; flags?: string[] }
interface IpAddr { ifname: string; addr_info?: Array<{ local: string; prefixlen: number }> }

/** One network of the pod: its config, the interface it gets, and what the pod should reach through it. */
interface Attachment {
  label: string;
  ifname: string;
  binary?: string;
  config: Record<string, unknown>;
  /** Where its IPAM keeps reservations. */
  ipamDir: string;
  /** The addresses the pod should get on `ifname` (address/prefix as the kernel shows them). */
  addresses: string[];
  /** Addresses of this network's host side or gateway the pod must reach, through `ifname`. */
  reach: string[];
}

const PATHS = [
  { via: "rtnetlink", env: {} },
  { via: "the ip -batch fallback (TRELLIS_NETLINK=0)", env: { TRELLIS_NETLINK: "0" } },
] as const;

/**
 * Addresses the host namespace holds for each Trellis network: its "host side" for the pod to
 * reach. Network B's are inside the routes its IPAM gives (10.72.0.0/16, fd00:72::/48), A's are
 * reached by the default route.
 */
const HOST_SIDE = { a: ["10.71.255.1", "fd00:71:0:ffff::1"], b: ["10.72.255.1", "fd00:72:0:ffff::1"] };
/**
 * Secondary in both families: the kernel gives an IPv6 route without a metric 1024 (IPv4: 0), so
 * a routeMetric under 1024 would make eth1's IPv6 default route the preferred one.
 */
const METRIC = 2000;

for (const { via, env } of PATHS) {
  describe(`one pod on two Trellis networks and a reference bridge network, over ${via}`, { skip }, () => {
    let node: TestHost;

    before(() => {
      node = new TestHost("multi");
      for (const ip of [...HOST_SIDE.a, ...HOST_SIDE.b]) {
        sh("ip", ["-n", node.host.name, "addr", "add", `${ip}/${ip.includes(":") ? 128 : 32}`, "dev", "lo"]);
      }
    });
    after(() => node?.cleanup());

    /** The three networks, with fresh names and data directories per test. */
    function networks(bOptions: Record<string, unknown> = {}): [Attachment, Attachment, Attachment] {
      const tag = uniq();
      const dir = (n: string): string => path.join(node.dataDir, `${n}-${tag}`);
      const trellis = (n: string, ranges: string[], extra: Record<string, unknown>, ipam: Record<string, unknown> = {}) => ({
        cniVersion: "1.1.0", name: `${node.network}-${n}`, type: "trellis", agentSocket: "", ...extra,
        ipam: { type: "trellis-ipam", dataDir: dir(n), ranges: ranges.map((subnet) => [{ subnet }]), ...ipam },
      });
      const ipamDir = (n: string): string => path.join(dir(n), `${node.network}-${n}`);
      return [
        {
          label: "trellis A", ifname: "eth0", config: trellis("a", ["10.71.0.0/24", "fd00:71::/64"], {}),
          ipamDir: ipamDir("a"), addresses: ["10.71.0.2/32", "fd00:71::2/128"], reach: HOST_SIDE.a,
        },
        {
          label: "trellis B", ifname: "eth1",
          config: trellis("b", ["10.72.0.0/24", "fd00:72::/64"], bOptions, { routes: [{ dst: "10.72.0.0/16" }, { dst: "fd00:72::/48" }] }),
          ipamDir: ipamDir("b"), addresses: ["10.72.0.2/32", "fd00:72::2/128"], reach: HOST_SIDE.b,
        },
        {
          label: "reference bridge", ifname: "eth2", binary: REF_BRIDGE,
          config: {
            cniVersion: "1.0.0", name: `${node.network}-c`, type: "bridge", bridge: "refbr0", isGateway: true,
            ipam: { type: "host-local", dataDir: dir("c"), ranges: [[{ subnet: "10.73.0.0/24" }]] },
          },
          ipamDir: ipamDir("c"), addresses: ["10.73.0.2/24"], reach: ["10.73.0.1"],
        },
      ];
    }

    const call = (a: Attachment, pod: Netns, containerId: string, command: string, prev?: AddResult) =>
      node.run({
        ...(a.binary ? { binary: a.binary } : {}), command, containerId, netns: pod.path, ifname: a.ifname, extraEnv: env,
        config: prev ? { ...a.config, prevResult: prev } : a.config,
      });
    const add = (a: Attachment, pod: Netns, id: string): { res: AddResult; stderr: string } => {
      const r = call(a, pod, id, "ADD");
      return { res: assertJsonSuccess(r) as unknown as AddResult, stderr: r.stderr };
    };
    const check = (a: Attachment, pod: Netns, id: string, res: AddResult): void => {
      assertSilentSuccess(call(a, pod, id, "CHECK", res));
    };
    const del = (a: Attachment, pod: Netns, id: string, res?: AddResult): void => {
      assertSilentSuccess(call(a, pod, id, "DEL", res));
    };

    const routes = (pod: Netns, family: "-4" | "-6", ...args: string[]): IpRoute[] =>
      ipJson<IpRoute[]>(pod.name, [family, "route", "show", ...args]);
    const defaults = (pod: Netns): Array<[string, string | undefined, number]> =>
      [...routes(pod, "-4", "default"), ...routes(pod, "-6", "default")].map((r) => [r.gateway!, r.dev, r.metric ?? 0]);
    const hostVeth = (res: AddResult): string => res.interfaces.find((i) => i.sandbox === undefined && i.name.startsWith("trl"))!.name;

    /** The attachment is whole: its addresses on its interface, each route of its result on it, its traffic leaving through it. */
    function assertWorks(a: Attachment, pod: Netns, res: AddResult): void {
      const link = ipJson<IpAddr[]>(pod.name, ["addr", "show", "dev", a.ifname])[0];
      assert.ok(link, `${a.label}: ${a.ifname} exists`);
      for (const cidr of a.addresses) {
        const [addr, prefix] = cidr.split("/");
        assert.ok(link.addr_info?.some((x) => x.local === addr && x.prefixlen === Number(prefix)), `${a.label}: ${cidr} on ${a.ifname}: ${JSON.stringify(link.addr_info)}`);
      }
      for (const r of res.routes ?? []) {
        const fam = r.dst.includes(":") ? "-6" : "-4";
        const found = routes(pod, fam, "exact", r.dst === "0.0.0.0/0" || r.dst === "::/0" ? "default" : r.dst);
        assert.ok(found.some((k) => k.dev === a.ifname && k.gateway === r.gw && (r.priority === undefined || (k.metric ?? 0) === r.priority)),
          `${a.label}: route ${JSON.stringify(r)} on ${a.ifname}: ${JSON.stringify(found)}`);
      }
      for (const target of a.reach) {
        const fam = target.includes(":") ? "-6" : "-4";
        const chosen = ipJson<IpRoute[]>(pod.name, [fam, "route", "get", target])[0];
        assert.equal(chosen?.dev, a.ifname, `${a.label}: the pod sends to ${target} through ${a.ifname}`);
        assert.ok(ping(pod.name, target, 8), `${a.label}: the pod reaches ${target}`);
      }
      if (a.binary === undefined) {
        const veth = hostVeth(res);
        assert.ok(linkNames(node.host.name).includes(veth), `${a.label}: host veth ${veth} is there`);
        for (const ip of res.ips) {
          const [addr] = ip.address.split("/");
          const fam = addr!.includes(":") ? "-6" : "-4";
          const host = ipJson<IpRoute[]>(node.host.name, [fam, "route", "show", "exact", ip.address]);
          assert.ok(host.some((r) => r.dev === veth), `${a.label}: host route ${ip.address} dev ${veth}: ${JSON.stringify(host)}`);
        }
      }
    }

    function assertGone(a: Attachment, pod: Netns, res: AddResult): void {
      assert.equal(linkNames(pod.name).includes(a.ifname), false, `${a.label}: ${a.ifname} is gone`);
      if (a.binary === undefined) assert.equal(linkNames(node.host.name).includes(hostVeth(res)), false, `${a.label}: host veth is gone`);
      assert.deepEqual(addressFiles(a.ipamDir), [], `${a.label}: its addresses are released`);
    }

    test("each attachment works beside the others, one default route per family (eth0's); CHECK passes for each; DEL of eth0 leaves eth1 and eth2 whole", () => {
      const pod = node.pod(`p${uniq()}`);
      const id = `multi-${uniq()}`;
      const [a, b, c] = networks();
      const done: Array<[Attachment, AddResult]> = [];
      try {
        const ra = add(a, pod, id);
        const rb = add(b, pod, id);
        const rc = add(c, pod, id);
        done.push([a, ra.res], [b, rb.res], [c, rc.res]);

        assert.deepEqual(ra.res.routes, [{ dst: "0.0.0.0/0", gw: "169.254.1.1" }, { dst: "::/0", gw: "fe80::1" }]);
        assert.deepEqual(rb.res.routes, [{ dst: "10.72.0.0/16", gw: "169.254.1.1" }, { dst: "fd00:72::/48", gw: "fe80::1" }],
          "eth1's result has exactly the routes made: the default routes eth0 holds are left out");
        assert.match(rb.stderr, /eth1: route 0\.0\.0\.0\/0 left out/);
        assert.match(rb.stderr, /eth1: route ::\/0 left out/);
        assert.deepEqual(linkNames(pod.name).sort(), ["eth0", "eth1", "eth2", "lo"]);
        assert.deepEqual(defaults(pod), [["169.254.1.1", "eth0", 0], ["fe80::1", "eth0", 1024]], "exactly one default route per family");
        assert.ok(routes(pod, "-4", "default")[0]!.flags?.includes("onlink"), "the IPv4 default route is onlink");
        assert.deepEqual(routes(pod, "-4", "exact", "169.254.1.1"), [], "no route to the gateway itself");
        for (const [att, res] of done) assertWorks(att, pod, res);
        for (const [att, res] of done) check(att, pod, id, res);

        del(a, pod, id, ra.res);
        del(a, pod, id, ra.res);
        done.shift();
        assertGone(a, pod, ra.res);
        assert.deepEqual(defaults(pod), [], "eth1 does not take the default route over");
        for (const [att, res] of done) assertWorks(att, pod, res);
        for (const [att, res] of done) check(att, pod, id, res);
      } finally {
        for (const [att, res] of done.reverse()) {
          del(att, pod, id, res);
          del(att, pod, id, res);
          assertGone(att, pod, res);
        }
      }
      assert.deepEqual(linkNames(pod.name), ["lo"]);
    });

    test(`with routeMetric ${METRIC} on eth1's network: a second default route per family, of that metric; DEL of eth1 leaves eth0 and eth2 whole`, () => {
      const pod = node.pod(`p${uniq()}`);
      const id = `metric-${uniq()}`;
      const [a, b, c] = networks({ routeMetric: METRIC });
      const done: Array<[Attachment, AddResult]> = [];
      try {
        const ra = add(a, pod, id);
        const rb = add(b, pod, id);
        const rc = add(c, pod, id);
        done.push([a, ra.res], [c, rc.res], [b, rb.res]);

        assert.deepEqual(rb.res.routes, [
          { dst: "0.0.0.0/0", gw: "169.254.1.1", priority: METRIC }, { dst: "::/0", gw: "fe80::1", priority: METRIC },
          { dst: "10.72.0.0/16", gw: "169.254.1.1", priority: METRIC }, { dst: "fd00:72::/48", gw: "fe80::1", priority: METRIC },
        ]);
        assert.doesNotMatch(rb.stderr, /left out/);
        assert.deepEqual(defaults(pod), [
          ["169.254.1.1", "eth0", 0], ["169.254.1.1", "eth1", METRIC], ["fe80::1", "eth0", 1024], ["fe80::1", "eth1", METRIC],
        ], "ip lists routes of one destination by metric");
        for (const [att, res] of done) assertWorks(att, pod, res);
        for (const [att, res] of done) check(att, pod, id, res);

        del(b, pod, id, rb.res);
        del(b, pod, id, rb.res);
        done.pop();
        assertGone(b, pod, rb.res);
        assert.deepEqual(defaults(pod), [["169.254.1.1", "eth0", 0], ["fe80::1", "eth0", 1024]]);
        for (const [att, res] of done) assertWorks(att, pod, res);
        for (const [att, res] of done) check(att, pod, id, res);
      } finally {
        for (const [att, res] of done.reverse()) {
          del(att, pod, id, res);
          del(att, pod, id, res);
          assertGone(att, pod, res);
        }
      }
      assert.deepEqual(linkNames(pod.name), ["lo"]);
    });

    test("a routeMetric equal to eth0's default route's metric is refused (code 100, saying why); eth0 is untouched and the address released", () => {
      const pod = node.pod(`p${uniq()}`);
      const id = `clash-${uniq()}`;
      const [a, b] = networks({ routeMetric: 0 });
      const ra = add(a, pod, id);
      try {
        assertCniError(call(b, pod, id, "ADD"), { code: 100, msg: /eth1.*already has a route 0\.0\.0\.0\/0 of metric 0.*routeMetric/ });
        assert.deepEqual(linkNames(pod.name).sort(), ["eth0", "lo"], "the failed attachment left nothing in the pod");
        assert.deepEqual(addressFiles(b.ipamDir), [], "nor an address");
        assertWorks(a, pod, ra.res);
        check(a, pod, id, ra.res);
        del(b, pod, id);
      } finally {
        del(a, pod, id, ra.res);
        del(a, pod, id, ra.res);
      }
      assertGone(a, pod, ra.res);
    });
  });
}
