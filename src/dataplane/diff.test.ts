import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { diffDataplane, natScript, type ActualDataplane, type Step } from "./diff.js";
import { AGENT_ROUTE_PROTO, NAT_TABLE, VTEP_NAME, type Dataplane } from "./state.js";
import { desiredState, vtepMacFor, type Underlay } from "../backends/desired.js";
import { FakeDataplaneKernel } from "../kernel/fake-dataplane.js";
import type { Lease } from "../model/lease.js";
import { validateNetworkConfig, type BackendType } from "../model/network.js";
import { cidrContains, formatCidr, formatIp, mustParseIp, parseCidr } from "../model/ip.js";

const U1: Underlay = { dev: "eth0", cidr: "10.99.1.11/24", mtu: 1500 };
const U2: Underlay = { dev: "eth1", cidr: "10.99.2.11/24", mtu: 1500 };
const newKernel = (): FakeDataplaneKernel => new FakeDataplaneKernel([U1, U2]);

const lease = (node: string, subnet: string, publicIp: string, vtepMac: string | null = vtepMacFor(node)): Lease => ({
  subnet, node, publicIp, backend: "vxlan", ...(vtepMac ? { vtepMac } : {}), renewedAt: 0, expiresAt: 0,
});
const near = lease("n2", "10.244.2.0/24", "10.99.1.12");
const far = lease("n3", "10.244.3.0/24", "10.99.2.13");
const near2 = lease("n4", "10.244.4.0/24", "10.99.1.14");

function desired(type: BackendType, peers: Lease[] = [near, far, near2], opts: { nat?: boolean; vni?: number; port?: number; mtu?: number; underlay?: Underlay } = {}): Dataplane {
  return desiredState({
    config: validateNetworkConfig({ network: "10.244.0.0/16", backend: { type, vni: opts.vni ?? 7, port: opts.port ?? 4789 }, natOutgoing: opts.nat ?? false }),
    self: lease("n1", "10.244.1.0/24", "10.99.1.11"),
    peers,
    underlay: opts.underlay ?? U1,
    podMtu: opts.mtu ?? 1450,
  }).dataplane;
}

/** What the kernel reads back once `d` is in place (the real reader leaves the VTEP's `address` empty). */
function asActual(d: Dataplane): ActualDataplane {
  const a: ActualDataplane = { ...structuredClone(d), natState: d.nat ? "ours" : "absent" };
  if (d.vtep) {
    a.vtep = { ...a.vtep!, address: "" };
    a.vtepUp = true;
    a.vtepAddresses = [d.vtep.address];
  }
  return a;
}

const empty = (): ActualDataplane => ({ routes: [], fdb: [], neigh: [], natState: "absent" });
const text = (steps: Step[]): string[] => steps.map((s) => (s.tool === "nft" ? `nft ${s.script}` : `${s.tool} ${s.line}`));
const m2 = vtepMacFor("n2");
const m3 = vtepMacFor("n3");
const m4 = vtepMacFor("n4");
const BACKENDS = ["vxlan", "host-gw", "cross-subnet"] as const;

describe("diffDataplane: from nothing", () => {
  it("vxlan: creates the VTEP, then FDB, neighbours, routes, then NAT, in that order", () => {
    const d = desired("vxlan", [near, far], { nat: true });
    assert.deepEqual(text(diffDataplane(d, empty())), [
      `ip link add ${VTEP_NAME} mtu 1450 address ${vtepMacFor("n1")} type vxlan id 7 local 10.99.1.11 dev eth0 dstport 4789 nolearning`,
      `ip addr replace 10.244.1.0/32 dev ${VTEP_NAME}`,
      `ip link set ${VTEP_NAME} up`,
      `bridge fdb append ${m2} dev ${VTEP_NAME} dst 10.99.1.12 self permanent`,
      `bridge fdb append ${m3} dev ${VTEP_NAME} dst 10.99.2.13 self permanent`,
      `ip neigh replace 10.244.2.0 lladdr ${m2} dev ${VTEP_NAME} nud permanent`,
      `ip neigh replace 10.244.3.0 lladdr ${m3} dev ${VTEP_NAME} nud permanent`,
      `ip route replace 10.244.2.0/24 via 10.244.2.0 dev ${VTEP_NAME} onlink proto ${AGENT_ROUTE_PROTO}`,
      `ip route replace 10.244.3.0/24 via 10.244.3.0 dev ${VTEP_NAME} onlink proto ${AGENT_ROUTE_PROTO}`,
      `nft ${natScript("10.244.0.0/16")}`,
    ]);
  });

  it("host-gw: only routes via the peers' addresses, not onlink", () => {
    assert.deepEqual(text(diffDataplane(desired("host-gw", [near, far]), empty())), [
      "ip route replace 10.244.2.0/24 via 10.99.1.12 dev eth0 proto 202",
    ]);
  });

  it("cross-subnet: the VTEP, the tunnelled peer's entries, and both kinds of route", () => {
    assert.deepEqual(text(diffDataplane(desired("cross-subnet", [near, far]), empty())).slice(3), [
      `bridge fdb append ${m3} dev ${VTEP_NAME} dst 10.99.2.13 self permanent`,
      `ip neigh replace 10.244.3.0 lladdr ${m3} dev ${VTEP_NAME} nud permanent`,
      "ip route replace 10.244.2.0/24 via 10.99.1.12 dev eth0 proto 202",
      `ip route replace 10.244.3.0/24 via 10.244.3.0 dev ${VTEP_NAME} onlink proto 202`,
    ]);
  });

  it("wants nothing when nothing is desired and nothing is there", () => {
    assert.deepEqual(diffDataplane({ routes: [], fdb: [], neigh: [] }, empty()), []);
  });
});

describe("diffDataplane: idempotence (what makes restarts hitless)", () => {
  for (const type of BACKENDS) {
    for (const nat of [false, true]) {
      it(`${type}${nat ? " + NAT" : ""}: the desired state fed back as the actual state needs no step`, () => {
        const d = desired(type, [near, far, near2, lease("n5", "10.244.5.0/24", "10.99.3.15", null)], { nat });
        assert.deepEqual(diffDataplane(d, asActual(d)), []);
      });

      it(`${type}${nat ? " + NAT" : ""}: applied to a kernel and read back, it needs no step`, () => {
        const d = desired(type, [near, far, near2], { nat });
        const k = newKernel();
        assert.deepEqual(k.applyNow(diffDataplane(d, k.actual())), []);
        assert.deepEqual(diffDataplane(d, k.actual()), []);
      });
    }
  }

  it("compares MACs without regard to case (the kernel prints them in lower case)", () => {
    const d = desired("vxlan");
    const upper = structuredClone(d);
    upper.vtep!.mac = upper.vtep!.mac.toUpperCase();
    for (const f of upper.fdb) f.mac = f.mac.toUpperCase();
    for (const n of upper.neigh) n.mac = n.mac.toUpperCase();
    assert.deepEqual(diffDataplane(upper, asActual(d)), []);
  });
});

describe("diffDataplane: repairs", () => {
  const d = desired("vxlan", [near, far, near2]);

  it("re-adds only a route deleted by hand", () => {
    const a = asActual(d);
    a.routes = a.routes.filter((r) => r.dst !== "10.244.3.0/24");
    assert.deepEqual(text(diffDataplane(d, a)), [`ip route replace 10.244.3.0/24 via 10.244.3.0 dev ${VTEP_NAME} onlink proto 202`]);
  });

  it("replaces a route of ours that was changed", () => {
    const a = asActual(d);
    a.routes[0] = { ...a.routes[0]!, onlink: false };
    assert.deepEqual(text(diffDataplane(d, a)), [`ip route replace 10.244.2.0/24 via 10.244.2.0 dev ${VTEP_NAME} onlink proto 202`]);
  });

  it("deletes an extra route with our protocol", () => {
    const a = asActual(d);
    a.routes.push({ dst: "10.244.9.0/24", via: "10.99.1.19", dev: "eth0", onlink: false });
    assert.deepEqual(text(diffDataplane(d, a)), ["ip route del 10.244.9.0/24 proto 202"]);
  });

  it("deletes extra FDB and neighbour entries", () => {
    const a = asActual(d);
    a.fdb.push({ mac: "0a:00:00:00:00:99", dst: "10.99.1.99" });
    a.neigh.push({ ip: "10.244.99.0", mac: "0a:00:00:00:00:99" });
    assert.deepEqual(text(diffDataplane(d, a)), [
      `bridge fdb del 0a:00:00:00:00:99 dev ${VTEP_NAME} dst 10.99.1.99 self`,
      `ip neigh del 10.244.99.0 dev ${VTEP_NAME}`,
    ]);
  });

  it("moves an FDB entry whose peer changed address: the new one is appended before the old one goes", () => {
    const a = asActual(d);
    a.fdb = a.fdb.map((f) => (f.mac === m3 ? { ...f, dst: "10.99.2.99" } : f));
    assert.deepEqual(text(diffDataplane(d, a)), [
      `bridge fdb append ${m3} dev ${VTEP_NAME} dst 10.99.2.13 self permanent`,
      `bridge fdb del ${m3} dev ${VTEP_NAME} dst 10.99.2.99 self`,
    ]);
  });

  it("replaces a neighbour entry with the wrong MAC", () => {
    const a = asActual(d);
    a.neigh = a.neigh.map((n) => (n.ip === "10.244.4.0" ? { ...n, mac: "0a:00:00:00:00:99" } : n));
    assert.deepEqual(text(diffDataplane(d, a)), [`ip neigh replace 10.244.4.0 lladdr ${m4} dev ${VTEP_NAME} nud permanent`]);
  });

  it("puts back the VTEP's address, removes stray ones, and sets it up", () => {
    const a = asActual(d);
    a.vtepAddresses = ["10.244.200.0/32"];
    a.vtepUp = false;
    assert.deepEqual(text(diffDataplane(d, a)), [
      `ip addr replace 10.244.1.0/32 dev ${VTEP_NAME}`,
      `ip addr del 10.244.200.0/32 dev ${VTEP_NAME}`,
      `ip link set ${VTEP_NAME} up`,
    ]);
  });

  it("changes only the MTU when only the MTU differs", () => {
    const a = asActual(d);
    a.vtep!.mtu = 1500;
    assert.deepEqual(text(diffDataplane(d, a)), [`ip link set ${VTEP_NAME} mtu 1450`]);
  });

  it("on a MAC change puts back the neighbours and routes the kernel flushes (not the FDB, which survives)", () => {
    const a = asActual(d);
    a.vtep!.mac = "0a:00:00:00:00:01";
    const steps = text(diffDataplane(d, a));
    assert.deepEqual(steps.slice(0, 3), [
      `ip link set ${VTEP_NAME} down`,
      `ip link set ${VTEP_NAME} address ${vtepMacFor("n1")}`,
      `ip link set ${VTEP_NAME} up`,
    ]);
    assert.equal(steps.filter((s) => s.startsWith("ip neigh replace")).length, 3);
    assert.equal(steps.filter((s) => s.startsWith("ip route replace")).length, 3);
    assert.equal(steps.filter((s) => s.startsWith("bridge")).length, 0);
    const k = newKernel();
    k.applyNow(diffDataplane(d, k.actual()));
    k.applyNow([{ tool: "ip", line: `link set ${VTEP_NAME} address 0a:00:00:00:00:01` }]);
    assert.deepEqual(k.applyNow(diffDataplane(d, k.actual())), []);
    assert.deepEqual(diffDataplane(d, k.actual()), []);
  });

  const changes: Array<[string, (a: ActualDataplane) => void]> = [
    ["VNI", (a) => (a.vtep!.vni = 8)],
    ["port", (a) => (a.vtep!.port = 8472)],
    ["local IP", (a) => (a.vtep!.localIp = "10.99.1.99")],
    ["device", (a) => (a.vtep!.dev = "eth1")],
  ];
  for (const [what, change] of changes) {
    it(`recreates a VTEP with another ${what} and re-adds all its entries and routes`, () => {
      const cs = desired("cross-subnet", [near, far, lease("n6", "10.244.6.0/24", "10.99.3.16")]);
      const a = asActual(cs);
      change(a);
      const steps = text(diffDataplane(cs, a));
      const n6 = vtepMacFor("n6");
      assert.deepEqual(steps, [
        `ip link del ${VTEP_NAME}`,
        `ip link add ${VTEP_NAME} mtu 1450 address ${vtepMacFor("n1")} type vxlan id 7 local 10.99.1.11 dev eth0 dstport 4789 nolearning`,
        `ip addr replace 10.244.1.0/32 dev ${VTEP_NAME}`,
        `ip link set ${VTEP_NAME} up`,
        `bridge fdb append ${m3} dev ${VTEP_NAME} dst 10.99.2.13 self permanent`,
        `bridge fdb append ${n6} dev ${VTEP_NAME} dst 10.99.3.16 self permanent`,
        `ip neigh replace 10.244.3.0 lladdr ${m3} dev ${VTEP_NAME} nud permanent`,
        `ip neigh replace 10.244.6.0 lladdr ${n6} dev ${VTEP_NAME} nud permanent`,
        // The host-gw route to the on-link peer does not go through the VTEP and stays.
        `ip route replace 10.244.3.0/24 via 10.244.3.0 dev ${VTEP_NAME} onlink proto 202`,
        `ip route replace 10.244.6.0/24 via 10.244.6.0 dev ${VTEP_NAME} onlink proto 202`,
      ]);
    });
  }
});

describe("diffDataplane: switching backends", () => {
  it("vxlan -> host-gw: unreachable peers' routes go first, on-link peers are re-routed, the VTEP is deleted last", () => {
    const before = desired("vxlan", [near, far]);
    const after = desired("host-gw", [near, far]);
    assert.deepEqual(text(diffDataplane(after, asActual(before))), [
      "ip route del 10.244.3.0/24 proto 202",
      "ip route replace 10.244.2.0/24 via 10.99.1.12 dev eth0 proto 202",
      `ip link del ${VTEP_NAME}`,
    ]);
  });

  it("vxlan -> host-gw with NAT: the VTEP goes after every route and entry step", () => {
    const before = desired("vxlan", [near, far, near2], { nat: true });
    const after = desired("host-gw", [near, far, near2], { nat: true });
    const steps = text(diffDataplane(after, asActual(before)));
    const del = steps.indexOf(`ip link del ${VTEP_NAME}`);
    assert.equal(del, steps.length - 1);
    assert.ok(steps.slice(0, del).every((s) => s.startsWith("ip route ")));
    assert.ok(!steps.some((s) => s.startsWith("bridge") || s.startsWith("ip neigh")), "the VTEP takes its entries with it");
  });

  it("host-gw -> vxlan: the VTEP is created before the routes that go through it", () => {
    const before = desired("host-gw", [near, far]);
    const after = desired("vxlan", [near, far]);
    const steps = text(diffDataplane(after, asActual(before)));
    assert.ok(steps[0]!.startsWith(`ip link add ${VTEP_NAME}`));
    const firstRoute = steps.findIndex((s) => s.startsWith("ip route"));
    assert.ok(steps.indexOf(`ip link set ${VTEP_NAME} up`) < firstRoute);
    assert.deepEqual(steps.slice(firstRoute), [
      `ip route replace 10.244.2.0/24 via 10.244.2.0 dev ${VTEP_NAME} onlink proto 202`,
      `ip route replace 10.244.3.0/24 via 10.244.3.0 dev ${VTEP_NAME} onlink proto 202`,
    ]);
  });
});

describe("diffDataplane: NAT", () => {
  const withNat = desired("host-gw", [near], { nat: true });
  const noNat = desired("host-gw", [near], { nat: false });
  const nat = (a: Partial<ActualDataplane>): ActualDataplane => ({ ...asActual(noNat), ...a });

  it("creates the table when it is wanted and absent", () => {
    assert.deepEqual(diffDataplane(withNat, nat({ natState: "absent" })), [{ tool: "nft", script: natScript("10.244.0.0/16") }]);
  });

  it("leaves our table alone when it is for the same pod network", () => {
    assert.deepEqual(diffDataplane(withNat, nat({ natState: "ours", nat: { podNetwork: "10.244.0.0/16" } })), []);
  });

  it("replaces a drifted table, or ours for another pod network", () => {
    assert.deepEqual(diffDataplane(withNat, nat({ natState: "drifted" })), [{ tool: "nft", script: natScript("10.244.0.0/16") }]);
    assert.deepEqual(diffDataplane(withNat, nat({ natState: "ours", nat: { podNetwork: "10.245.0.0/16" } })), [
      { tool: "nft", script: natScript("10.244.0.0/16") },
    ]);
  });

  it("deletes the table when it is not wanted but present, and does nothing when absent", () => {
    assert.deepEqual(diffDataplane(noNat, nat({ natState: "ours", nat: { podNetwork: "10.244.0.0/16" } })), [{ tool: "nft", script: natScript(undefined) }]);
    assert.deepEqual(diffDataplane(noNat, nat({ natState: "drifted" })), [{ tool: "nft", script: natScript(undefined) }]);
    assert.deepEqual(diffDataplane(noNat, nat({ natState: "absent" })), []);
  });
});

/**
 * A packet tracer over the postrouting chain natScript writes: the verdict of the first rule that
 * matches, else the chain's policy. Understands the rule forms natScript uses and fails on others.
 */
function traceNat(script: string, src: string, dst: string): "accept" | "return" | "masquerade" {
  const chain = /chain postrouting \{\n([\s\S]*?)\n {2}\}/.exec(script);
  if (!chain) return "accept";
  const lines = chain[1]!.split("\n").map((l) => l.trim());
  assert.equal(lines[0], "type nat hook postrouting priority srcnat; policy accept;");
  const s = mustParseIp(src);
  const d = mustParseIp(dst);
  for (const rule of lines.slice(1)) {
    const m = /^ip saddr (\S+)(?: ip daddr (!= )?(\S+))? (return|masquerade)(?: comment "[^"]*")?$/.exec(rule);
    assert.ok(m, `unknown rule form: ${rule}`);
    if (!cidrContains(parseCidr(m[1]!)!, s)) continue;
    if (m[3] !== undefined && cidrContains(parseCidr(m[3])!, d) === (m[2] !== undefined)) continue;
    return m[4] as "return" | "masquerade";
  }
  return "accept";
}

describe("natScript", () => {
  it("replaces the whole table atomically: declare, delete, define", () => {
    const s = natScript("10.244.0.0/16").split("\n");
    assert.deepEqual(s.slice(0, 3), [`table ip ${NAT_TABLE}`, `delete table ip ${NAT_TABLE}`, `table ip ${NAT_TABLE} {`]);
    assert.equal(natScript(undefined), `table ip ${NAT_TABLE}\ndelete table ip ${NAT_TABLE}\n`);
  });

  it("returns pod-to-pod traffic before the masquerade rule", () => {
    const s = natScript("10.244.0.0/16");
    const ret = s.indexOf("ip saddr 10.244.0.0/16 ip daddr 10.244.0.0/16 return");
    const masq = s.indexOf("masquerade");
    assert.ok(ret >= 0 && masq >= 0 && ret < masq);
  });

  it("traces: pod -> outside is masqueraded; pod -> pod, pod -> multicast and host traffic are not", () => {
    const s = natScript("10.244.0.0/16");
    assert.equal(traceNat(s, "10.244.1.5", "10.244.2.7"), "return");
    assert.equal(traceNat(s, "10.244.1.5", "10.244.1.6"), "return");
    assert.equal(traceNat(s, "10.244.1.5", "8.8.8.8"), "masquerade");
    assert.equal(traceNat(s, "10.244.1.5", "10.99.1.12"), "masquerade");
    assert.equal(traceNat(s, "10.244.1.5", "224.0.0.251"), "accept");
    assert.equal(traceNat(s, "10.99.1.11", "8.8.8.8"), "accept");
    assert.equal(traceNat(natScript(undefined), "10.244.1.5", "8.8.8.8"), "accept");
  });

  it("never masquerades pod-to-pod traffic, for any pod network and addresses", () => {
    const arb = fc.tuple(fc.integer({ min: 8, max: 24 }), fc.integer({ min: 1, max: 223 }), fc.nat(), fc.nat(), fc.boolean(), fc.boolean(), fc.nat(), fc.nat())
      .map(([prefix, first, a, b, srcIn, dstIn, x, y]) => {
        const net = parseCidr(`${first}.${a % 256}.${b % 256}.0/${prefix}`)!;
        const size = 1 << (32 - prefix);
        const inside = (n: number) => formatIp({ family: 4, value: net.network + BigInt(n % size) });
        const anywhere = (n: number) => formatIp({ family: 4, value: BigInt(n) * 2654435761n % (1n << 32n) });
        return { net: formatCidr(net), src: srcIn ? inside(x) : anywhere(x), dst: dstIn ? inside(y) : anywhere(y) };
      });
    fc.assert(fc.property(arb, ({ net, src, dst }) => {
      const c = parseCidr(net)!;
      const podSrc = cidrContains(c, mustParseIp(src));
      const podDst = cidrContains(c, mustParseIp(dst));
      const multicast = cidrContains(parseCidr("224.0.0.0/4")!, mustParseIp(dst));
      const verdict = traceNat(natScript(net), src, dst);
      assert.equal(verdict === "masquerade", podSrc && !podDst && !multicast, `${src} -> ${dst} in ${net}: ${verdict}`);
    }));
  });
});

// Random small clusters, as seen from node "a" or "b", with any backend and settings.
const scenario = fc.record({
  type: fc.constantFrom<BackendType>(...BACKENDS),
  vni: fc.constantFrom(1, 2),
  port: fc.constantFrom(8472, 4789),
  nat: fc.boolean(),
  network: fc.constantFrom("10.244.0.0/16", "10.244.0.0/17"),
  selfNode: fc.constantFrom("a", "b"),
  selfMac: fc.option(fc.constantFrom("0a:00:00:00:00:01", "0a:00:00:00:00:02"), { nil: undefined }),
  selfBlock: fc.integer({ min: 1, max: 3 }),
  underlay: fc.constantFrom(U1, U2),
  podMtu: fc.constantFrom(1450, 1400),
  peers: fc.uniqueArray(fc.record({
    block: fc.integer({ min: 1, max: 8 }),
    publicIp: fc.constantFrom("10.99.1.21", "10.99.1.22", "10.99.2.23", "10.99.3.24"),
    vtep: fc.constantFrom("mac", "other-mac", "none"),
  }), { selector: (p) => p.block, maxLength: 6 }),
});

type Scenario = typeof scenario extends fc.Arbitrary<infer T> ? T : never;

function scenarioState(s: Scenario): Dataplane {
  return desiredState({
    config: validateNetworkConfig({
      network: s.network, backend: { type: s.type, vni: s.vni, port: s.port }, natOutgoing: s.nat,
    }),
    self: { subnet: `10.244.${s.selfBlock}.0/24`, node: s.selfNode, publicIp: s.underlay.cidr.split("/")[0]!, backend: s.type, ...(s.selfMac ? { vtepMac: s.selfMac } : {}), renewedAt: 0, expiresAt: 0 },
    peers: s.peers.map((p) => {
      const node = `p${p.block}`;
      const mac = p.vtep === "mac" ? vtepMacFor(node) : p.vtep === "other-mac" ? vtepMacFor(`${node}'`) : undefined;
      return { subnet: `10.244.${p.block}.0/24`, node, publicIp: p.publicIp, backend: s.type, ...(mac ? { vtepMac: mac } : {}), renewedAt: 0, expiresAt: 0 };
    }),
    underlay: s.underlay,
    podMtu: s.podMtu,
  }).dataplane;
}

/** Drift that may happen to a node between syncs: by hand, by another tool, or by the kernel. */
const drift = fc.array(fc.constantFrom("route-del", "link-down", "neigh-del", "fdb-extra", "addr-extra", "addr-del", "nat-drift", "nat-del", "mtu"), { maxLength: 3 });

function applyDrift(k: FakeDataplaneKernel, what: string): void {
  const s = k.state;
  switch (what) {
    case "route-del": s.routes.shift(); break;
    case "link-down": if (s.vtep) k.applyNow([{ tool: "ip", line: `link set ${VTEP_NAME} down` }]); break;
    case "neigh-del": s.neigh.pop(); break;
    case "fdb-extra": if (s.vtep && !s.fdb.some((f) => f.dst === "10.99.9.9")) s.fdb.push({ mac: "0a:ff:00:00:00:01", dst: "10.99.9.9" }); break;
    case "addr-extra": if (s.vtep && !s.vtepAddresses.includes("10.244.250.0/32")) s.vtepAddresses.push("10.244.250.0/32"); break;
    case "addr-del": if (s.vtep && s.vtepAddresses[0]) k.applyNow([{ tool: "ip", line: `addr del ${s.vtepAddresses[0]} dev ${VTEP_NAME}` }]); break;
    case "nat-drift": if (s.natState !== "absent") s.natState = "drifted"; break;
    case "nat-del": s.natState = "absent"; delete s.natPodNetwork; break;
    case "mtu": if (s.vtep) s.vtep.mtu = 9000; break;
  }
}

/** Asserts that the fake kernel holds exactly `d`. */
function assertHolds(k: FakeDataplaneKernel, d: Dataplane): void {
  const s = k.state;
  const byDst = <T extends { dst: string }>(xs: T[]) => [...xs].sort((a, b) => a.dst.localeCompare(b.dst));
  const fdbKey = (xs: Array<{ mac: string; dst: string }>) => xs.map((f) => `${f.mac.toLowerCase()}>${f.dst}`).sort();
  const neighKey = (xs: Array<{ ip: string; mac: string }>) => xs.map((n) => `${n.ip}>${n.mac.toLowerCase()}`).sort();
  assert.deepEqual(s.vtep, d.vtep ? { ...d.vtep, mac: d.vtep.mac.toLowerCase(), address: "" } : undefined);
  if (d.vtep) {
    assert.equal(s.vtepUp, true, "VTEP up");
    assert.deepEqual(s.vtepAddresses, [d.vtep.address]);
  }
  assert.deepEqual(byDst(s.routes), byDst(d.routes));
  assert.deepEqual(fdbKey(s.fdb), fdbKey(d.fdb));
  assert.deepEqual(neighKey(s.neigh), neighKey(d.neigh));
  assert.equal(s.natState, d.nat ? "ours" : "absent");
  assert.equal(s.natPodNetwork, d.nat?.podNetwork);
}

describe("diffDataplane: applied to a model of the kernel, it reaches the desired state", () => {
  it("from nothing, and from any D1 (with drift) to any D2, in one pass without a failing step; then nothing is left to do", () => {
    fc.assert(fc.property(scenario, scenario, drift, (s1, s2, drifts) => {
      const d1 = scenarioState(s1);
      const d2 = scenarioState(s2);
      const k = newKernel();
      assert.deepEqual(k.applyNow(diffDataplane(d1, k.actual())), [], "create D1");
      assertHolds(k, d1);
      for (const w of drifts) applyDrift(k, w);
      const steps = diffDataplane(d2, k.actual());
      assert.deepEqual(k.applyNow(steps), [], `D1 -> D2:\n${text(steps).join("\n")}`);
      assertHolds(k, d2);
      assert.deepEqual(diffDataplane(d2, k.actual()), [], "idempotent");
    }), { numRuns: 500 });
  });

  it("touches nothing when D1 = D2 and nothing drifted", () => {
    fc.assert(fc.property(scenario, (s) => {
      const d = scenarioState(s);
      const k = newKernel();
      k.applyNow(diffDataplane(d, k.actual()));
      assert.deepEqual(diffDataplane(structuredClone(d), k.actual()), []);
    }));
  });
});

describe("diffDataplane: pod host routes", () => {
  const pods = [{ dst: "10.244.1.2/32", dev: "trl1" }, { dst: "fd00::2/128", dev: "trl1" }, { dst: "10.244.1.3/32", dev: "trl2" }];
  const withPods = (): Dataplane => ({ ...desired("host-gw", []), podRoutes: pods });

  it("puts back a missing one on a veth that exists, with the plugin's protocol", () => {
    const actual: ActualDataplane = { ...asActual(desired("host-gw", [])), podRoutes: [pods[0]!], links: ["eth0", "trl1", "trl2"] };
    assert.deepEqual(text(diffDataplane(withPods(), actual)), [
      "ip route replace fd00::2/128 dev trl1 scope link proto 201",
      "ip route replace 10.244.1.3/32 dev trl2 scope link proto 201",
    ]);
  });
  it("leaves alone a pod whose veth is gone (its DEL is under way), and never removes one", () => {
    const actual: ActualDataplane = {
      ...asActual(desired("host-gw", [])), podRoutes: [pods[0]!, pods[1]!, { dst: "10.244.1.99/32", dev: "trl9" }], links: ["eth0", "trl1"],
    };
    assert.deepEqual(diffDataplane(withPods(), actual), []);
  });
});
