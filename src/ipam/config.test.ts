import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { assertCniErrorMessage as assertCniError } from "../cni/assert-cni-error.js";
import { ErrorCode } from "../cni/errors.js";
import { formatCidr, formatIp, mustParseIp } from "../model/ip.js";
import {
  DEFAULT_DATA_DIR, parseIpamConfig, parseResolvConf, parseSubnetFile, requestedIps, type Range,
} from "./config.js";

const conf = (ipam: Record<string, unknown>, extra: Record<string, unknown> = {}): Record<string, unknown> =>
  ({ cniVersion: "1.1.0", name: "net1", ...extra, ipam: { type: "trellis-ipam", ...ipam } });

const describeRange = (r: Range): string =>
  `${formatCidr(r.subnet)} ${formatIp(r.start)}-${formatIp(r.end)} gw ${formatIp(r.gateway)}`;

/** Asserts a CniError with `code` whose message mentions every fragment (field names, values). */
const assertInvalid = (fn: () => unknown, ...fragments: string[]): void => {
  assertCniError(fn, ErrorCode.InvalidNetworkConfig, ...fragments);
};

describe("parseIpamConfig", () => {
  it("defaults an IPv4 range to .1-.254 with gateway .1 (network and broadcast excluded)", () => {
    const cfg = parseIpamConfig(conf({ ranges: [[{ subnet: "10.1.0.0/24" }]] }));
    assert.deepEqual(cfg.rangeSets.map((s) => s.map(describeRange)), [["10.1.0.0/24 10.1.0.1-10.1.0.254 gw 10.1.0.1"]]);
  });

  it("defaults an IPv6 range to ::1 through the last address (IPv6 has no broadcast)", () => {
    const cfg = parseIpamConfig(conf({ ranges: [[{ subnet: "2001:db8:1::/64" }]] }));
    assert.deepEqual(cfg.rangeSets.map((s) => s.map(describeRange)),
      [["2001:db8:1::/64 2001:db8:1::1-2001:db8:1:0:ffff:ffff:ffff:ffff gw 2001:db8:1::1"]]);
  });

  it("defaults dataDir to host-local's /var/lib/cni/networks and routes to none", () => {
    const cfg = parseIpamConfig(conf({ subnet: "10.1.0.0/24" }));
    assert.equal(cfg.dataDir, DEFAULT_DATA_DIR);
    assert.equal(DEFAULT_DATA_DIR, "/var/lib/cni/networks");
    assert.deepEqual(cfg.routes, []);
    assert.equal(cfg.type, "trellis-ipam");
    assert.equal(cfg.resolvConf, undefined);
  });

  it("keeps rangeStart, rangeEnd and gateway as given", () => {
    const cfg = parseIpamConfig(conf({
      ranges: [[{ subnet: "10.1.0.0/24", rangeStart: "10.1.0.100", rangeEnd: "10.1.0.200", gateway: "10.1.0.254" }]],
    }));
    assert.equal(describeRange(cfg.rangeSets[0]![0]!), "10.1.0.0/24 10.1.0.100-10.1.0.200 gw 10.1.0.254");
  });

  it("treats empty rangeStart/rangeEnd/gateway strings as absent", () => {
    const cfg = parseIpamConfig(conf({ ranges: [[{ subnet: "10.1.0.0/24", rangeStart: "", rangeEnd: "", gateway: "" }]] }));
    assert.equal(describeRange(cfg.rangeSets[0]![0]!), "10.1.0.0/24 10.1.0.1-10.1.0.254 gw 10.1.0.1");
  });

  it("places a legacy top-level subnet first, before the ranges", () => {
    const cfg = parseIpamConfig(conf({ subnet: "10.1.0.0/24", gateway: "10.1.0.9", ranges: [[{ subnet: "2001:db8:1::/64" }]] }));
    assert.deepEqual(cfg.rangeSets.map((s) => s.map((r) => formatCidr(r.subnet))), [["10.1.0.0/24"], ["2001:db8:1::/64"]]);
    assert.equal(formatIp(cfg.rangeSets[0]![0]!.gateway), "10.1.0.9");
  });

  it("keeps several ranges of one set, and several sets, in order", () => {
    const cfg = parseIpamConfig(conf({
      ranges: [
        [{ subnet: "10.1.0.0/24" }, { subnet: "10.1.1.0/24" }],
        [{ subnet: "2001:db8:1::/64" }],
      ],
    }));
    assert.deepEqual(cfg.rangeSets.map((s) => s.map((r) => formatCidr(r.subnet))),
      [["10.1.0.0/24", "10.1.1.0/24"], ["2001:db8:1::/64"]]);
  });

  it("accepts two ranges of one subnet whose start..end do not overlap", () => {
    const cfg = parseIpamConfig(conf({
      ranges: [[
        { subnet: "10.1.0.0/24", rangeStart: "10.1.0.10", rangeEnd: "10.1.0.19" },
        { subnet: "10.1.0.0/24", rangeStart: "10.1.0.20", rangeEnd: "10.1.0.29" },
      ]],
    }));
    assert.equal(cfg.rangeSets[0]!.length, 2);
  });

  it("rejects overlapping ranges across sets, naming both", () => {
    assertInvalid(() => parseIpamConfig(conf({ ranges: [[{ subnet: "10.1.0.0/16" }], [{ subnet: "10.1.2.0/24" }]] })),
      "ipam.ranges[1][0]", "10.1.2.0/24", "overlaps ipam.ranges[0][0]");
  });

  it("rejects overlapping ranges within one set", () => {
    assertInvalid(() => parseIpamConfig(conf({
      ranges: [[
        { subnet: "10.1.0.0/24", rangeStart: "10.1.0.10", rangeEnd: "10.1.0.20" },
        { subnet: "10.1.0.0/24", rangeStart: "10.1.0.20", rangeEnd: "10.1.0.30" },
      ]],
    })), "ipam.ranges[0][1]", "overlaps ipam.ranges[0][0]");
  });

  it("rejects a legacy subnet that overlaps a range", () => {
    assertInvalid(() => parseIpamConfig(conf({ subnet: "10.1.0.0/24", ranges: [[{ subnet: "10.1.0.0/24" }]] })), "overlaps");
  });

  it("rejects a subnet with host bits set", () => {
    assertInvalid(() => parseIpamConfig(conf({ ranges: [[{ subnet: "10.1.0.5/24" }]] })),
      "ipam.ranges[0][0].subnet", '"10.1.0.5/24"', "host bits");
  });

  it("rejects a legacy subnet with host bits set, naming ipam.subnet", () => {
    assertInvalid(() => parseIpamConfig(conf({ subnet: "10.1.0.5/24" })), "ipam.subnet", '"10.1.0.5/24"', "host bits");
  });

  for (const subnet of ["10.1.0.0/31", "10.1.0.0/32", "2001:db8::/127", "2001:db8::/128"]) {
    it(`rejects ${subnet} as too small to allocate from`, () => {
      assertInvalid(() => parseIpamConfig(conf({ ranges: [[{ subnet }]] })), "ipam.ranges[0][0].subnet", `"${subnet}"`, "too small");
    });
  }

  it("accepts a /30 and a /126, the smallest usable subnets", () => {
    assert.equal(parseIpamConfig(conf({ ranges: [[{ subnet: "10.1.0.0/30" }]] })).rangeSets.length, 1);
    assert.equal(parseIpamConfig(conf({ ranges: [[{ subnet: "2001:db8::/126" }]] })).rangeSets.length, 1);
  });

  for (const subnet of ["10.1", "10.1.0.0", "10.1.0.0/33", "0x0a.1.0.0/16", "garbage"]) {
    it(`rejects the subnet ${JSON.stringify(subnet)} as not a CIDR`, () => {
      assertInvalid(() => parseIpamConfig(conf({ ranges: [[{ subnet }]] })), "ipam.ranges[0][0].subnet", JSON.stringify(subnet), "not a CIDR");
    });
  }

  it("rejects a range without a subnet", () => {
    assertInvalid(() => parseIpamConfig(conf({ ranges: [[{ rangeStart: "10.1.0.1" }]] })), "ipam.ranges[0][0].subnet", "missing");
  });

  it("rejects a range that is not an object, and ranges that are not lists", () => {
    assertInvalid(() => parseIpamConfig(conf({ ranges: [["10.1.0.0/24"]] })), "ipam.ranges[0][0]", '"10.1.0.0/24"', "not an object");
    assertInvalid(() => parseIpamConfig(conf({ ranges: [[]] })), "ipam.ranges[0]", "not a non-empty list");
    assertInvalid(() => parseIpamConfig(conf({ ranges: { subnet: "10.1.0.0/24" } })), "ipam.ranges", "not a list");
  });

  it("rejects rangeStart after rangeEnd, naming both", () => {
    assertInvalid(() => parseIpamConfig(conf({ ranges: [[{ subnet: "10.1.0.0/24", rangeStart: "10.1.0.200", rangeEnd: "10.1.0.100" }]] })),
      "ipam.ranges[0][0].rangeStart", "10.1.0.200", "after rangeEnd 10.1.0.100");
  });

  it("rejects rangeStart, rangeEnd or gateway outside the subnet", () => {
    for (const key of ["rangeStart", "rangeEnd", "gateway"]) {
      assertInvalid(() => parseIpamConfig(conf({ ranges: [[{ subnet: "10.1.0.0/24", [key]: "10.2.0.5" }]] })),
        `ipam.ranges[0][0].${key}`, '"10.2.0.5"', "outside subnet 10.1.0.0/24");
    }
  });

  it("rejects rangeStart that is not an IP address", () => {
    assertInvalid(() => parseIpamConfig(conf({ ranges: [[{ subnet: "10.1.0.0/24", rangeStart: "10.1.0" }]] })),
      "ipam.ranges[0][0].rangeStart", '"10.1.0"', "not an IP address");
    assertInvalid(() => parseIpamConfig(conf({ ranges: [[{ subnet: "10.1.0.0/24", gateway: 7 }]] })),
      "ipam.ranges[0][0].gateway", "7", "not an IP address");
  });

  it("rejects a config with no ranges at all", () => {
    assertInvalid(() => parseIpamConfig(conf({})), "ipam", "no IP ranges");
  });

  it("rejects a missing ipam section or ipam type", () => {
    assertInvalid(() => parseIpamConfig({ name: "net1" }), '"ipam"', "missing or not an object");
    assertInvalid(() => parseIpamConfig({ ipam: { subnet: "10.1.0.0/24" } }), "ipam.type", "missing");
  });

  it("keeps valid routes", () => {
    const cfg = parseIpamConfig(conf({
      subnet: "10.1.0.0/24",
      routes: [{ dst: "0.0.0.0/0" }, { dst: "192.168.0.0/16", gw: "10.1.0.254", priority: 10 }],
    }));
    assert.deepEqual(cfg.routes, [{ dst: "0.0.0.0/0" }, { dst: "192.168.0.0/16", gw: "10.1.0.254", priority: 10 }]);
  });

  it("rejects malformed routes, naming the route and the field", () => {
    assertInvalid(() => parseIpamConfig(conf({ subnet: "10.1.0.0/24", routes: [{ dst: "nowhere" }] })), "ipam.routes[0].dst", "nowhere");
    assertInvalid(() => parseIpamConfig(conf({ subnet: "10.1.0.0/24", routes: [{ dst: "0.0.0.0/0" }, { dst: "10.9.0.0/16", gw: "10.9" }] })),
      "ipam.routes[1].gw", "10.9");
    assertInvalid(() => parseIpamConfig(conf({ subnet: "10.1.0.0/24", routes: [{ dst: "10.9.0.0/16", mtu: "1400" }] })),
      "ipam.routes[0].mtu", "1400");
    assertInvalid(() => parseIpamConfig(conf({ subnet: "10.1.0.0/24", routes: { dst: "0.0.0.0/0" } })), "ipam.routes", "not a list");
  });

  it("takes an absolute dataDir and rejects a relative one", () => {
    assert.equal(parseIpamConfig(conf({ subnet: "10.1.0.0/24", dataDir: "/tmp/ipam" })).dataDir, "/tmp/ipam");
    assertInvalid(() => parseIpamConfig(conf({ subnet: "10.1.0.0/24", dataDir: "var/lib/cni" })), "ipam.dataDir", '"var/lib/cni"', "absolute");
  });

  it("keeps resolvConf and rejects one that is not a string", () => {
    assert.equal(parseIpamConfig(conf({ subnet: "10.1.0.0/24", resolvConf: "/etc/resolv.conf" })).resolvConf, "/etc/resolv.conf");
    assertInvalid(() => parseIpamConfig(conf({ subnet: "10.1.0.0/24", resolvConf: 1 })), "ipam.resolvConf");
  });

  describe("with a subnetFile", () => {
    const file = "/run/trellis/subnet.env";
    const text = "TRELLIS_NETWORK=10.244.0.0/16\nTRELLIS_SUBNET=10.244.3.0/24\nTRELLIS_SUBNET6=fd00:10:244:3::/64\nTRELLIS_MTU=1450\n";

    it("reads the file through the injected reader and makes one range set per block", () => {
      const asked: string[] = [];
      const cfg = parseIpamConfig(conf({ subnetFile: file }), { readSubnetFile: (p) => (asked.push(p), text) });
      assert.deepEqual(asked, [file]);
      assert.deepEqual(cfg.rangeSets.map((s) => s.map(describeRange)), [
        ["10.244.3.0/24 10.244.3.1-10.244.3.254 gw 10.244.3.1"],
        ["fd00:10:244:3::/64 fd00:10:244:3::1-fd00:10:244:3:ffff:ffff:ffff:ffff gw fd00:10:244:3::1"],
      ]);
      assert.equal(cfg.mtu, 1450);
    });

    it("reports a missing file as 'try again later' (code 11), naming the file", () => {
      assertCniError(() => parseIpamConfig(conf({ subnetFile: file }), {
        readSubnetFile: () => {
          throw Object.assign(new Error(`ENOENT: no such file or directory, open '${file}'`), { code: "ENOENT" });
        },
      }), ErrorCode.TryAgainLater, file, "cannot be read");
      assert.equal(ErrorCode.TryAgainLater, 11);
    });

    it("reports 'try again later' when no reader is given", () => {
      assertCniError(() => parseIpamConfig(conf({ subnetFile: file })), ErrorCode.TryAgainLater, file);
    });

    it("does not read the file when ranges are given explicitly", () => {
      const cfg = parseIpamConfig(conf({ subnetFile: file, ranges: [[{ subnet: "10.1.0.0/24" }]] }), {
        readSubnetFile: () => assert.fail("the subnet file must not be read"),
      });
      assert.deepEqual(cfg.rangeSets.map((s) => formatCidr(s[0]!.subnet)), ["10.1.0.0/24"]);
      assert.equal(cfg.mtu, undefined);
    });

    it("rejects a relative subnetFile path", () => {
      assertInvalid(() => parseIpamConfig(conf({ subnetFile: "subnet.env" }), { readSubnetFile: () => text }),
        "ipam.subnetFile", '"subnet.env"', "absolute");
    });

    it("rejects a file that is there but malformed with code 7, naming the file", () => {
      assertInvalid(() => parseIpamConfig(conf({ subnetFile: file }), { readSubnetFile: () => "TRELLIS_SUBNET=10.244.3.1/24\n" }),
        file, "TRELLIS_SUBNET", "10.244.3.1/24");
    });
  });
});

describe("parseSubnetFile", () => {
  it("reads KEY=VALUE lines, skipping comments, blank lines and unknown keys", () => {
    const sf = parseSubnetFile([
      "# written by trellis-agent",
      "",
      "  TRELLIS_NETWORK = 10.244.0.0/16  ",
      "TRELLIS_SUBNET=10.244.3.0/24",
      "FLANNEL_IPMASQ=true",
      "TRELLIS_MTU=1450",
    ].join("\n"), "/run/trellis/subnet.env");
    assert.equal(sf.network && formatCidr(sf.network), "10.244.0.0/16");
    assert.deepEqual(sf.subnets.map(formatCidr), ["10.244.3.0/24"]);
    assert.equal(sf.mtu, 1450);
  });

  it("collects an IPv4 and an IPv6 block in file order", () => {
    const sf = parseSubnetFile("TRELLIS_SUBNET6=fd00::/64\nTRELLIS_SUBNET=10.244.3.0/24\n", "/f");
    assert.deepEqual(sf.subnets.map(formatCidr), ["fd00::/64", "10.244.3.0/24"]);
    assert.equal(sf.network, undefined);
    assert.equal(sf.mtu, undefined);
  });

  it("rejects a line without '=', naming the file and line number", () => {
    assertInvalid(() => parseSubnetFile("TRELLIS_SUBNET=10.244.3.0/24\nbogus line\n", "/f"), "subnetFile /f line 2", '"bogus line"', "KEY=VALUE");
  });

  it("rejects a block with host bits or one that is not a CIDR", () => {
    assertInvalid(() => parseSubnetFile("TRELLIS_SUBNET=10.244.3.7/24", "/f"), "TRELLIS_SUBNET", '"10.244.3.7/24"');
    assertInvalid(() => parseSubnetFile("TRELLIS_SUBNET=10.244.3.0/24\nTRELLIS_NETWORK=10.244/16", "/f"), "TRELLIS_NETWORK", '"10.244/16"');
  });

  it("rejects an MTU that is not an integer between 68 and 65535", () => {
    for (const mtu of ["67", "65536", "1450.5", "big"]) {
      assertInvalid(() => parseSubnetFile(`TRELLIS_SUBNET=10.244.3.0/24\nTRELLIS_MTU=${mtu}`, "/f"), "TRELLIS_MTU", `"${mtu}"`, "not an MTU");
    }
  });

  it("rejects a file that names no block", () => {
    assertInvalid(() => parseSubnetFile("TRELLIS_NETWORK=10.244.0.0/16\n", "/f"), "subnetFile /f", "no TRELLIS_SUBNET");
  });
});

describe("requestedIps", () => {
  const texts = (ips: ReturnType<typeof requestedIps>): string[] => ips.map(formatIp);

  it("reads CNI_ARGS IP=, a comma-separated list", () => {
    assert.deepEqual(texts(requestedIps({}, new Map([["IP", "10.1.0.5,2001:db8::5"]]))), ["10.1.0.5", "2001:db8::5"]);
  });

  it("reads runtimeConfig.ips and args.cni.ips, with or without a prefix length", () => {
    const config = { runtimeConfig: { ips: ["10.1.0.6/24"] }, args: { cni: { ips: ["2001:db8::6"] } } };
    assert.deepEqual(texts(requestedIps(config, new Map())), ["10.1.0.6", "2001:db8::6"]);
  });

  it("merges all three sources and drops duplicates", () => {
    const config = { runtimeConfig: { ips: ["10.1.0.5/24"] }, args: { cni: { ips: ["10.1.0.5"] } } };
    assert.deepEqual(texts(requestedIps(config, new Map([["IP", "10.1.0.5"]]))), ["10.1.0.5"]);
  });

  it("is empty when nothing is requested", () => {
    assert.deepEqual(requestedIps({ runtimeConfig: {} }, new Map([["K8S_POD_NAME", "web"]])), []);
  });

  it("rejects a requested address that is not an IP, with code 7", () => {
    assertInvalid(() => requestedIps({}, new Map([["IP", "10.1.0"]])), "requested IP", '"10.1.0"');
    assertInvalid(() => requestedIps({ runtimeConfig: { ips: [42] } }, new Map()), "requested IP", "42");
  });
});

describe("parseResolvConf", () => {
  it("turns resolv.conf into a CNI dns object", () => {
    const dns = parseResolvConf([
      "# generated",
      "nameserver 10.96.0.10",
      "nameserver 2001:db8::53 ; secondary",
      "domain cluster.local",
      "search default.svc.cluster.local svc.cluster.local",
      "options ndots:5",
      "options timeout:1 attempts:2",
      "sortlist 10.0.0.0",
    ].join("\n"));
    assert.deepEqual(dns, {
      nameservers: ["10.96.0.10", "2001:db8::53"],
      domain: "cluster.local",
      search: ["default.svc.cluster.local", "svc.cluster.local"],
      options: ["ndots:5", "timeout:1", "attempts:2"],
    });
  });

  it("lets the last search line win, as the resolver does", () => {
    assert.deepEqual(parseResolvConf("search a.example\nsearch b.example c.example\n").search, ["b.example", "c.example"]);
  });

  it("gives an empty object for an empty file or keywords without values", () => {
    assert.deepEqual(parseResolvConf(""), {});
    assert.deepEqual(parseResolvConf("nameserver\n#nameserver 1.1.1.1\n"), {});
  });
});

describe("IPv6 spelling in ipam configs", () => {
  it("accepts upper case, zero-padded and uncompressed IPv6 in subnet and gateway", () => {
    const cfg = parseIpamConfig(conf({ ranges: [[{ subnet: "2001:DB8:0001::/64", gateway: "2001:db8:1:0:0:0:0:fe" }]] }));
    assert.equal(cfg.rangeSets[0]![0]!.gateway.value, mustParseIp("2001:db8:1::fe").value);
  });
});
