import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { NetOp } from "../kernel/ops.js";
import {
  asCarriedOut, GATEWAY4, GATEWAY6, HOST_MAC, hostIfAlias, parseHostIfAlias, planAttachment, podHostIfName, podMac, ROUTE_PROTO, sameDst,
  type AttachInput, type AttachPlan,
} from "./attachment.js";
import type { Result } from "./result.js";

const NS = "/run/netns/pod1";
const V4: Result = { cniVersion: "1.1.0", ips: [{ address: "10.1.0.2/24", gateway: "10.1.0.1" }] };
const V6: Result = { cniVersion: "1.1.0", ips: [{ address: "2001:db8:1::2/64", gateway: "2001:db8:1::1" }] };
const DUAL: Result = { cniVersion: "1.1.0", ips: [...V4.ips!, ...V6.ips!] };

function input(over: Partial<AttachInput> = {}): AttachInput {
  return {
    mode: "routed",
    network: "net1",
    containerId: "ctr1",
    ifname: "eth0",
    netns: NS,
    bridge: "trellis0",
    hairpinMode: true,
    bridgeExists: false,
    ipam: V4,
    ...over,
  };
}

const HOST = podHostIfName("ctr1", "eth0");

describe("planAttachment, routed mode", () => {
  it("IPv4: creates the veth with its peer in the pod netns by path, routes the pod's /32 to it, pins the gateway's MAC, routes onlink", () => {
    const plan = planAttachment(input());
    assert.equal(plan.hostIf, HOST);
    assert.equal(plan.podMac, "0a:58:0a:01:00:02");
    assert.deepEqual(plan.hostLines, [
      `link add ${HOST} address ee:ee:ee:ee:ee:ee type veth peer name eth0 address 0a:58:0a:01:00:02 netns ${NS}`,
      `link set ${HOST} alias trellis/net1/ctr1/eth0`,
      `link set ${HOST} up`,
      `route add 10.1.0.2/32 dev ${HOST} proto 201 scope link`,
    ]);
    assert.deepEqual(plan.podLines, [
      "addr add 10.1.0.2/32 dev eth0",
      "link set eth0 up",
      "neigh add 169.254.1.1 lladdr ee:ee:ee:ee:ee:ee dev eth0 nud permanent",
      "route add 0.0.0.0/0 via 169.254.1.1 dev eth0 onlink # unless one exists",
    ]);
    assert.deepEqual(plan.forwarding, [4]);
  });

  it("IPv4: the result lists host veth (index 0) and pod interface (index 1); the address is a /32 via 169.254.1.1", () => {
    const { result } = planAttachment(input());
    assert.deepEqual(result, {
      cniVersion: "1.1.0",
      interfaces: [{ name: HOST, mac: HOST_MAC }, { name: "eth0", mac: "0a:58:0a:01:00:02", sandbox: NS }],
      ips: [{ address: "10.1.0.2/32", gateway: GATEWAY4, interface: 1 }],
      routes: [{ dst: "0.0.0.0/0", gw: GATEWAY4 }],
    });
  });

  it("IPv6: a /128 without DAD, a host route, a permanent neighbour for fe80::1 and a default route via it", () => {
    const plan = planAttachment(input({ ipam: V6 }));
    assert.deepEqual(plan.hostLines.slice(-1), [`route add 2001:db8:1::2/128 dev ${HOST} proto ${ROUTE_PROTO} scope link`]);
    assert.deepEqual(plan.podLines, [
      "addr add 2001:db8:1::2/128 dev eth0 nodad",
      "link set eth0 up",
      "neigh add fe80::1 lladdr ee:ee:ee:ee:ee:ee dev eth0 nud permanent",
      "route add ::/0 via fe80::1 dev eth0 # unless one exists",
    ]);
    assert.deepEqual(plan.result.ips, [{ address: "2001:db8:1::2/128", gateway: GATEWAY6, interface: 1 }]);
    assert.deepEqual(plan.forwarding, [6]);
    assert.equal(plan.podMac, "0a:58:00:00:00:02", "from the last four bytes of the IPv6 address");
  });

  it("dual stack: both addresses, both host routes, both neighbours, a default route per family", () => {
    const plan = planAttachment(input({ ipam: DUAL }));
    assert.deepEqual(plan.hostLines.filter((l) => l.startsWith("route ")), [
      `route add 10.1.0.2/32 dev ${HOST} proto 201 scope link`,
      `route add 2001:db8:1::2/128 dev ${HOST} proto 201 scope link`,
    ]);
    assert.deepEqual(plan.podLines.filter((l) => l.startsWith("neigh ")), [
      "neigh add 169.254.1.1 lladdr ee:ee:ee:ee:ee:ee dev eth0 nud permanent",
      "neigh add fe80::1 lladdr ee:ee:ee:ee:ee:ee dev eth0 nud permanent",
    ]);
    assert.deepEqual(plan.result.routes, [{ dst: "0.0.0.0/0", gw: GATEWAY4 }, { dst: "::/0", gw: GATEWAY6 }]);
    assert.deepEqual(plan.result.ips?.map((i) => i.interface), [1, 1]);
    assert.deepEqual(plan.forwarding, [4, 6]);
    assert.equal(plan.podMac, "0a:58:0a:01:00:02", "from the first (IPv4) address");
  });

  it("sets the MTU on both veth ends and reports it on the pod interface", () => {
    const plan = planAttachment(input({ mtu: 1450 }));
    assert.equal(plan.hostLines[0],
      `link add ${HOST} mtu 1450 address ee:ee:ee:ee:ee:ee type veth peer name eth0 mtu 1450 address 0a:58:0a:01:00:02 netns ${NS}`);
    assert.equal(plan.result.interfaces?.[1]?.mtu, 1450);
    assert.equal(plan.result.interfaces?.[0]?.mtu, undefined);
  });

  it("points vethLine at the line that creates the veth pair", () => {
    for (const over of [{}, { ipam: DUAL }, { mode: "bridge" as const }, { mode: "bridge" as const, bridgeExists: true }]) {
      const plan = planAttachment(input(over));
      assert.match(plan.hostLines[plan.vethLine - 1]!, /^link add \S+ .*type veth peer/);
    }
  });

  it("sends the IPAM's routes via the link-local gateway, without a second default route, and skips other families", () => {
    const ipam: Result = {
      ...V4,
      routes: [{ dst: "0.0.0.0/0" }, { dst: "10.96.0.0/12", gw: "10.1.0.254" }, { dst: "fd00::/8" }],
    };
    const plan = planAttachment(input({ ipam }));
    assert.deepEqual(plan.result.routes, [{ dst: "0.0.0.0/0", gw: GATEWAY4 }, { dst: "10.96.0.0/12", gw: GATEWAY4 }]);
    assert.deepEqual(plan.podLines.filter((l) => l.startsWith("route add") && l.includes(" via ")), [
      "route add 0.0.0.0/0 via 169.254.1.1 dev eth0 onlink # unless one exists",
      "route add 10.96.0.0/12 via 169.254.1.1 dev eth0 onlink",
    ]);
  });

  it("keeps the IPAM's route attributes (e.g. mtu) when it rewrites the gateway", () => {
    const plan = planAttachment(input({ ipam: { ...V4, routes: [{ dst: "10.96.0.0/12", mtu: 1400 }] } }));
    assert.deepEqual(plan.result.routes?.[1], { dst: "10.96.0.0/12", gw: GATEWAY4, mtu: 1400 });
  });

  it("passes DNS from the plugin config, else from the IPAM result", () => {
    const ipamDns = { nameservers: ["10.96.0.10"] };
    const cfgDns = { nameservers: ["1.1.1.1"] };
    assert.deepEqual(planAttachment(input({ ipam: { ...V4, dns: ipamDns } })).result.dns, ipamDns);
    assert.deepEqual(planAttachment(input({ ipam: { ...V4, dns: ipamDns }, dns: cfgDns })).result.dns, cfgDns);
    assert.equal(planAttachment(input()).result.dns, undefined);
  });

  it("uses the IPAM result's cniVersion", () => {
    assert.equal(planAttachment(input({ ipam: { ...V4, cniVersion: "0.4.0" } })).result.cniVersion, "0.4.0");
  });
});

describe("planAttachment, bridge mode", () => {
  it("creates a missing bridge with the gateway address, then plugs the veth into it with hairpin", () => {
    const plan = planAttachment(input({ mode: "bridge" }));
    assert.deepEqual(plan.hostLines, [
      "link add trellis0 type bridge",
      "addr replace 10.1.0.1/24 dev trellis0",
      "link set trellis0 up",
      `link add ${HOST} type veth peer name eth0 address 0a:58:0a:01:00:02 netns ${NS}`,
      `link set ${HOST} alias trellis/net1/ctr1/eth0`,
      `link set ${HOST} master trellis0`,
      `link set ${HOST} type bridge_slave hairpin on`,
      `link set ${HOST} up`,
    ]);
    assert.equal(plan.vethLine, 4);
    assert.deepEqual(plan.podLines, [
      "addr add 10.1.0.2/24 dev eth0",
      "link set eth0 up",
      "route add 0.0.0.0/0 via 10.1.0.1 dev eth0 # unless one exists",
    ]);
  });

  it("does not create a bridge that already exists, and leaves hairpin off when disabled", () => {
    const plan = planAttachment(input({ mode: "bridge", bridgeExists: true, hairpinMode: false }));
    assert.equal(plan.hostLines.some((l) => l.includes("type bridge") && l.startsWith("link add")), false);
    assert.equal(plan.hostLines.some((l) => l.includes("hairpin")), false);
    assert.equal(plan.hostLines[0], "addr replace 10.1.0.1/24 dev trellis0");
    assert.equal(plan.vethLine, 3);
  });

  it("gives the bridge the MTU when it creates it", () => {
    assert.equal(planAttachment(input({ mode: "bridge", mtu: 1400 })).hostLines[0], "link add trellis0 mtu 1400 type bridge");
  });

  it("adds no host routes and no neighbour entries (the bridge is the gateway)", () => {
    const plan = planAttachment(input({ mode: "bridge", ipam: DUAL }));
    assert.equal(plan.hostLines.some((l) => l.startsWith("route ")), false);
    assert.equal(plan.podLines.some((l) => l.startsWith("neigh ")), false);
    assert.ok(plan.hostLines.includes("addr replace 2001:db8:1::1/64 dev trellis0 nodad"));
    assert.ok(plan.podLines.includes("addr add 2001:db8:1::2/64 dev eth0 nodad"));
  });

  it("lists bridge (0), host veth (1) and pod interface (2); addresses keep their prefix and IPAM gateway", () => {
    const { result } = planAttachment(input({ mode: "bridge", ipam: DUAL }));
    assert.deepEqual(result.interfaces, [{ name: "trellis0" }, { name: HOST }, { name: "eth0", mac: "0a:58:0a:01:00:02", sandbox: NS }]);
    assert.deepEqual(result.ips, [
      { address: "10.1.0.2/24", gateway: "10.1.0.1", interface: 2 },
      { address: "2001:db8:1::2/64", gateway: "2001:db8:1::1", interface: 2 },
    ]);
    assert.deepEqual(result.routes, [{ dst: "0.0.0.0/0", gw: "10.1.0.1" }, { dst: "::/0", gw: "2001:db8:1::1" }]);
  });

  it("keeps an IPAM route's own gateway, and uses the family's gateway for one without", () => {
    const ipam: Result = { ...V4, routes: [{ dst: "10.96.0.0/12", gw: "10.1.0.254" }, { dst: "192.168.0.0/16" }, { dst: "0.0.0.0/0" }] };
    assert.deepEqual(planAttachment(input({ mode: "bridge", ipam })).result.routes, [
      { dst: "0.0.0.0/0", gw: "10.1.0.1" },
      { dst: "10.96.0.0/12", gw: "10.1.0.254" },
      { dst: "192.168.0.0/16", gw: "10.1.0.1" },
    ]);
  });

  it("adds no default route for a family without a gateway", () => {
    const plan = planAttachment(input({ mode: "bridge", ipam: { cniVersion: "1.1.0", ips: [{ address: "10.1.0.2/24" }] } }));
    assert.deepEqual(plan.result.routes, []);
    assert.equal(plan.hostLines.some((l) => l.startsWith("addr ")), false);
  });
});

const routeOpsOf = (plan: AttachPlan): Array<Extract<NetOp, { op: "route-add" }>> =>
  plan.podOps.flatMap((o) => (o.op === "route-add" ? [o] : []));

describe("planAttachment, a pod on several networks (eth0, eth1, ... each its own ADD)", () => {
  const SECOND: Result = { cniVersion: "1.1.0", ips: [{ address: "10.2.0.7/24", gateway: "10.2.0.1" }], routes: [{ dst: "10.2.0.0/16" }] };
  const eth1 = (over: Partial<AttachInput> = {}): AttachInput => input({ network: "net2", ifname: "eth1", ipam: SECOND, ...over });

  it("routed: routes nothing to the gateway itself, so two attachments only share a destination in their default routes", () => {
    const [a, b] = [planAttachment(input({ ipam: DUAL })), planAttachment(eth1({ ipam: { ...DUAL, ips: SECOND.ips, routes: SECOND.routes } }))];
    const dsts = (p: AttachPlan): string[] => routeOpsOf(p).map((o) => o.dst);
    assert.deepEqual(dsts(a), ["0.0.0.0/0", "::/0"]);
    assert.deepEqual(dsts(b), ["0.0.0.0/0", "10.2.0.0/16"]);
    assert.equal(a.podOps.some((o) => o.op === "route-add" && o.dst === GATEWAY4), false);
    assert.deepEqual(routeOpsOf(b).map((o) => o.dev), ["eth1", "eth1"], "each attachment's routes leave through its own interface");
    assert.ok(b.podLines.includes("neigh add 169.254.1.1 lladdr ee:ee:ee:ee:ee:ee dev eth1 nud permanent"), "the gateway's MAC is pinned per device");
  });

  it("routed: IPv4 routes are onlink (the gateway needs no route); IPv6 ones are not (fe80::1 is on every link)", () => {
    const ops = routeOpsOf(planAttachment(input({ ipam: { ...DUAL, routes: [{ dst: "10.96.0.0/12" }, { dst: "fd00:96::/108" }] } })));
    assert.deepEqual(ops.map((o) => [o.dst, o.via, o.onlink ?? false]), [
      ["0.0.0.0/0", GATEWAY4, true], ["::/0", GATEWAY6, false], ["10.96.0.0/12", GATEWAY4, true], ["fd00:96::/108", GATEWAY6, false],
    ]);
  });

  it("bridge: routes are never onlink (the gateway is on the interface's subnet)", () => {
    assert.equal(routeOpsOf(planAttachment(input({ mode: "bridge", ipam: { ...V4, routes: [{ dst: "10.96.0.0/12" }] } }))).some((o) => o.onlink), false);
  });

  for (const mode of ["routed", "bridge"] as const) {
    it(`${mode}: without routeMetric, a default route gives way to one the pod already has; any other route must be made`, () => {
      const plan = planAttachment(eth1({ mode, ipam: { ...SECOND, ips: [...SECOND.ips!, ...V6.ips!] } }));
      assert.deepEqual(routeOpsOf(plan).map((o) => [o.dst, o.skipIfExists ?? false, o.metric]), [
        ["0.0.0.0/0", true, undefined], ["::/0", true, undefined], ["10.2.0.0/16", false, undefined],
      ]);
    });
  }

  it("with routeMetric: every route has that metric, reported as its priority, and the default route is always made", () => {
    const plan = planAttachment(eth1({ routeMetric: 100 }));
    assert.deepEqual(routeOpsOf(plan).map((o) => [o.dst, o.metric, o.skipIfExists ?? false]), [["0.0.0.0/0", 100, false], ["10.2.0.0/16", 100, false]]);
    assert.deepEqual(plan.podLines.filter((l) => l.startsWith("route ")), [
      "route add 0.0.0.0/0 via 169.254.1.1 dev eth1 onlink metric 100",
      "route add 10.2.0.0/16 via 169.254.1.1 dev eth1 onlink metric 100",
    ]);
    assert.deepEqual(plan.result.routes, [{ dst: "0.0.0.0/0", gw: GATEWAY4, priority: 100 }, { dst: "10.2.0.0/16", gw: GATEWAY4, priority: 100 }]);
  });

  it("routeMetric 0 is a metric like any other: the default route is then required too", () => {
    assert.deepEqual(routeOpsOf(planAttachment(eth1({ routeMetric: 0 }))).map((o) => [o.metric, o.skipIfExists ?? false]), [[0, false], [0, false]]);
  });

  it("an IPAM route's own priority wins over routeMetric, and is made as asked", () => {
    const plan = planAttachment(eth1({ routeMetric: 100, ipam: { ...SECOND, routes: [{ dst: "10.2.0.0/16", priority: 5 }] } }));
    assert.deepEqual(routeOpsOf(plan).map((o) => [o.dst, o.metric]), [["0.0.0.0/0", 100], ["10.2.0.0/16", 5]]);
    assert.deepEqual(plan.result.routes?.map((r) => r.priority), [100, 5]);
  });

  it("routeOps points each reported route at the operation that makes it", () => {
    for (const over of [{}, { ipam: DUAL }, { mode: "bridge" as const, ipam: DUAL }, { routeMetric: 7, ipam: { ...DUAL, routes: [{ dst: "10.96.0.0/12" }] } }]) {
      const plan = planAttachment(eth1(over));
      assert.equal(plan.routeOps.length, plan.result.routes?.length);
      plan.routeOps.forEach((at, i) => {
        const op = plan.podOps[at]!;
        assert.ok(op.op === "route-add" && op.dst === plan.result.routes![i]!.dst && op.via === plan.result.routes![i]!.gw, JSON.stringify(op));
      });
    }
  });
});

describe("asCarriedOut", () => {
  const plan = planAttachment(input({ ifname: "eth1", ipam: { ...DUAL, routes: [{ dst: "10.96.0.0/12" }] } }));
  const at = (dst: string): number => plan.podOps.findIndex((o) => o.op === "route-add" && o.dst === dst);

  it("leaves the routes the kernel skipped out of the result, and returns them", () => {
    const { plan: done, leftOut } = asCarriedOut(plan, [at("0.0.0.0/0")]);
    assert.deepEqual(done.result.routes, [{ dst: "::/0", gw: GATEWAY6 }, { dst: "10.96.0.0/12", gw: GATEWAY4 }]);
    assert.deepEqual(leftOut, [{ dst: "0.0.0.0/0", gw: GATEWAY4 }]);
    assert.deepEqual(done.routeOps, [at("::/0"), at("10.96.0.0/12")]);
    assert.deepEqual(done.result.ips, plan.result.ips, "addresses and interfaces are as planned");
    assert.deepEqual(plan.result.routes?.length, 3, "the plan it was given is not modified");
  });

  it("both families' default routes can give way", () => {
    assert.deepEqual(asCarriedOut(plan, [at("0.0.0.0/0"), at("::/0")]).plan.result.routes, [{ dst: "10.96.0.0/12", gw: GATEWAY4 }]);
  });

  it("returns the plan itself when nothing was skipped", () => {
    assert.deepEqual(asCarriedOut(plan, []), { plan, leftOut: [] });
  });
});

describe("podHostIfName", () => {
  const id = fc.stringMatching(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,70}$/);
  const ifname = fc.stringMatching(/^[a-z][a-z0-9]{0,14}$/);

  it("is 'trl' plus 11 hex digits: at most 15 bytes, a valid interface name", () => {
    fc.assert(fc.property(id, ifname, (c, i) => {
      const name = podHostIfName(c, i);
      assert.match(name, /^trl[0-9a-f]{11}$/);
      assert.ok(Buffer.byteLength(name) <= 15);
    }));
  });

  it("is deterministic, so DEL finds what ADD created", () => {
    fc.assert(fc.property(id, ifname, (c, i) => {
      assert.equal(podHostIfName(c, i), podHostIfName(c, i));
    }));
  });

  it("differs per interface name and per container", () => {
    assert.notEqual(podHostIfName("ctr1", "eth0"), podHostIfName("ctr1", "eth1"));
    assert.notEqual(podHostIfName("ctr1", "eth0"), podHostIfName("ctr2", "eth0"));
    fc.assert(fc.property(id, ifname, ifname, (c, a, b) => {
      fc.pre(a !== b);
      assert.notEqual(podHostIfName(c, a), podHostIfName(c, b));
    }));
  });
});

describe("hostIfAlias", () => {
  const part = fc.stringMatching(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,20}$/);

  it("round-trips network, container id and interface name", () => {
    fc.assert(fc.property(part, part, part, (network, containerId, ifname) => {
      const alias = hostIfAlias(network, containerId, ifname);
      assert.ok(alias.startsWith("trellis/"));
      assert.deepEqual(parseHostIfAlias(alias), { network, containerId, ifname });
    }));
  });

  it("does not claim aliases that are not ours or are malformed", () => {
    for (const alias of ["", "calico/net1/ctr1/eth0", "trellis/net1/ctr1", "trellis/net1/ctr1/eth0/x", "trellis/net1//eth0", "trellis/"]) {
      assert.equal(parseHostIfAlias(alias), undefined, alias);
    }
  });
});

describe("podMac", () => {
  it("is 0a:58 followed by the IPv4 address, like kubenet", () => {
    assert.equal(podMac([{ address: "10.244.3.17/24" }]), "0a:58:0a:f4:03:11");
  });

  it("uses the last four bytes of an IPv6 address", () => {
    assert.equal(podMac([{ address: "fd00::ab:cdef:1234/64" }]), "0a:58:cd:ef:12:34");
  });

  it("is a locally administered unicast address even without an IP", () => {
    const mac = podMac([]);
    assert.match(mac, /^0a:58(:[0-9a-f]{2}){4}$/);
    const first = parseInt(mac.slice(0, 2), 16);
    assert.equal(first & 1, 0, "unicast");
    assert.equal(first & 2, 2, "locally administered");
  });
});

describe("sameDst", () => {
  const cases: Array<[string, string, boolean]> = [
    ["default", "0.0.0.0/0", true],
    ["default", "::/0", true],
    ["default", "10.0.0.0/8", false],
    ["10.1.0.2", "10.1.0.2/32", true],
    ["2001:db8::2", "2001:DB8:0::2/128", true],
    ["10.96.0.0/12", "10.96.0.0/12", true],
    ["10.1.0.2", "10.1.0.3/32", false],
    ["10.1.0.0/24", "10.1.0.0/16", false],
    ["0.0.0.0/0", "::/0", false],
  ];
  for (const [kernel, cni, same] of cases) {
    it(`${same ? "matches" : "does not match"} kernel "${kernel}" with CNI "${cni}"`, () => {
      assert.equal(sameDst(kernel, cni), same);
    });
  }
});
