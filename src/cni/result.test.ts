import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CniError, ErrorCode } from "./errors.js";
import {
  compareVersions, isSupportedVersion, LATEST_VERSION, parseResult, resultForVersion, SUPPORTED_VERSIONS, type Result,
} from "./result.js";

/** A result using every field of spec 1.1.0. */
const FULL: Result = {
  cniVersion: "1.1.0",
  interfaces: [
    { name: "trl0123456789a", mac: "ee:ee:ee:ee:ee:ee", mtu: 1450 },
    { name: "eth0", mac: "0a:58:0a:01:00:02", mtu: 1450, sandbox: "/run/netns/pod1", socketPath: "/run/vhost.sock", pciID: "0000:00:1f.0" },
  ],
  ips: [
    { address: "10.1.0.2/32", gateway: "169.254.1.1", interface: 1 },
    { address: "2001:db8:1::2/128", gateway: "fe80::1", interface: 1 },
  ],
  routes: [
    { dst: "0.0.0.0/0", gw: "169.254.1.1" },
    { dst: "10.96.0.0/12", gw: "169.254.1.1", mtu: 1400, advmss: 1360, priority: 100, table: 254, scope: 0 },
    { dst: "::/0", gw: "fe80::1" },
  ],
  dns: { nameservers: ["10.96.0.10"], search: ["svc.cluster.local"], options: ["ndots:5"], domain: "cluster.local" },
};

describe("resultForVersion", () => {
  for (const version of ["0.3.0", "0.3.1", "0.4.0"] as const) {
    it(`${version}: ips carry version "4"/"6", interfaces only name/mac/sandbox, routes only dst/gw`, () => {
      const out = resultForVersion(FULL, version);
      assert.deepEqual(out, {
        cniVersion: version,
        interfaces: [
          { name: "trl0123456789a", mac: "ee:ee:ee:ee:ee:ee" },
          { name: "eth0", mac: "0a:58:0a:01:00:02", sandbox: "/run/netns/pod1" },
        ],
        ips: [
          { version: "4", interface: 1, address: "10.1.0.2/32", gateway: "169.254.1.1" },
          { version: "6", interface: 1, address: "2001:db8:1::2/128", gateway: "fe80::1" },
        ],
        routes: [
          { dst: "0.0.0.0/0", gw: "169.254.1.1" },
          { dst: "10.96.0.0/12", gw: "169.254.1.1" },
          { dst: "::/0", gw: "fe80::1" },
        ],
        dns: FULL.dns,
      });
    });
  }

  it("1.0.0: ips carry no version, and none of the 1.1.0-only fields appear", () => {
    const out = resultForVersion(FULL, "1.0.0");
    assert.deepEqual(out, {
      cniVersion: "1.0.0",
      interfaces: [
        { name: "trl0123456789a", mac: "ee:ee:ee:ee:ee:ee" },
        { name: "eth0", mac: "0a:58:0a:01:00:02", sandbox: "/run/netns/pod1" },
      ],
      ips: [
        { interface: 1, address: "10.1.0.2/32", gateway: "169.254.1.1" },
        { interface: 1, address: "2001:db8:1::2/128", gateway: "fe80::1" },
      ],
      routes: [
        { dst: "0.0.0.0/0", gw: "169.254.1.1" },
        { dst: "10.96.0.0/12", gw: "169.254.1.1" },
        { dst: "::/0", gw: "fe80::1" },
      ],
      dns: FULL.dns,
    });
  });

  it("1.1.0: keeps interface mtu/socketPath/pciID and route mtu/advmss/priority/table/scope", () => {
    const out = resultForVersion(FULL, "1.1.0");
    assert.deepEqual(out, {
      cniVersion: "1.1.0",
      interfaces: FULL.interfaces,
      ips: FULL.ips,
      routes: FULL.routes,
      dns: FULL.dns,
    });
  });

  it("keeps interface index 0 (it is a valid index, not an absent one)", () => {
    const out = resultForVersion({ cniVersion: "1.1.0", interfaces: [{ name: "eth0" }], ips: [{ address: "10.1.0.2/24", interface: 0 }] }, "1.0.0");
    assert.deepEqual(out.ips, [{ interface: 0, address: "10.1.0.2/24" }]);
  });

  it("prints an empty dns object before 1.0.0 (as the Go types do) and omits it from 1.0.0 on", () => {
    const bare: Result = { cniVersion: "1.1.0", ips: [{ address: "10.1.0.2/24" }] };
    assert.deepEqual(resultForVersion(bare, "0.4.0").dns, {});
    assert.equal("dns" in resultForVersion(bare, "1.0.0"), false);
    assert.equal("dns" in resultForVersion({ ...bare, dns: { nameservers: [] } }, "1.1.0"), false);
  });

  it("omits empty interface, ip and route lists", () => {
    const out = resultForVersion({ cniVersion: "1.1.0", interfaces: [], ips: [], routes: [] }, "1.1.0");
    assert.deepEqual(out, { cniVersion: "1.1.0" });
  });

  it("does not modify the result it renders", () => {
    const copy = structuredClone(FULL);
    for (const v of SUPPORTED_VERSIONS) resultForVersion(FULL, v);
    assert.deepEqual(FULL, copy);
  });
});

describe("parseResult", () => {
  it("reads back a 1.1.0 rendering unchanged", () => {
    assert.deepEqual(parseResult(JSON.parse(JSON.stringify(resultForVersion(FULL, "1.1.0"))), "1.1.0"), FULL);
  });

  for (const version of ["0.3.0", "0.3.1", "0.4.0", "1.0.0"] as const) {
    it(`reads back a ${version} rendering with the fields that version carries`, () => {
      const back = parseResult(JSON.parse(JSON.stringify(resultForVersion(FULL, version))), "1.1.0");
      assert.equal(back.cniVersion, version);
      assert.deepEqual(back.ips, FULL.ips);
      assert.deepEqual(back.interfaces?.map((i) => [i.name, i.mac, i.sandbox]), FULL.interfaces!.map((i) => [i.name, i.mac, i.sandbox]));
      assert.deepEqual(back.routes, FULL.routes!.map((r) => ({ dst: r.dst, gw: r.gw })));
      assert.deepEqual(back.dns, FULL.dns);
    });
  }

  it("uses the fallback version when the result names none", () => {
    assert.equal(parseResult({ ips: [] }, "0.4.0").cniVersion, "0.4.0");
  });

  it("drops fields it does not know and treats null lists as absent", () => {
    assert.deepEqual(parseResult({ cniVersion: "1.0.0", interfaces: null, ips: null, routes: null, extra: 1 }, "1.0.0"),
      { cniVersion: "1.0.0" });
  });

  const malformed: Array<[string, unknown]> = [
    ["a result that is not an object", ["ips"]],
    ["ips that is not a list", { ips: { address: "10.1.0.2/24" } }],
    ["an ip without an address", { ips: [{ gateway: "10.1.0.1" }] }],
    ["an ip address without a prefix length", { ips: [{ address: "10.1.0.2" }] }],
    ["an ip with a bad gateway", { ips: [{ address: "10.1.0.2/24", gateway: "10.1.0" }] }],
    ["an ip with a negative interface index", { ips: [{ address: "10.1.0.2/24", interface: -1 }] }],
    ["an ip with a fractional interface index", { ips: [{ address: "10.1.0.2/24", interface: 0.5 }] }],
    ["routes that is not a list", { routes: "0.0.0.0/0" }],
    ["a route without a dst", { routes: [{ gw: "10.1.0.1" }] }],
    ["a route with a bad gw", { routes: [{ dst: "0.0.0.0/0", gw: "gateway" }] }],
    ["a route with a non-integer mtu", { routes: [{ dst: "0.0.0.0/0", mtu: "1500" }] }],
    ["an interface without a name", { interfaces: [{ mac: "ee:ee:ee:ee:ee:ee" }] }],
  ];
  for (const [what, raw] of malformed) {
    it(`rejects ${what} with code 6`, () => {
      assert.throws(() => parseResult(raw, "1.1.0"), (e: unknown) => {
        assert.ok(e instanceof CniError);
        assert.equal(e.code, ErrorCode.DecodingFailure);
        assert.match(e.message, /^invalid result: /);
        return true;
      });
    });
  }

  it("refuses a 0.2.0-shaped result (ip4/ip6) with code 1", () => {
    assert.throws(() => parseResult({ cniVersion: "0.2.0", ip4: { ip: "10.1.0.2/24" } }, "0.2.0"), (e: unknown) => {
      assert.ok(e instanceof CniError);
      assert.equal(e.code, ErrorCode.IncompatibleVersion);
      assert.match(e.message, /0\.1\.0\/0\.2\.0 shape/);
      return true;
    });
  });
});

describe("versions", () => {
  it("supports 0.3.0 through 1.1.0 and reports 1.1.0 as the latest", () => {
    assert.deepEqual([...SUPPORTED_VERSIONS], ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]);
    assert.equal(LATEST_VERSION, "1.1.0");
    assert.equal(isSupportedVersion("0.2.0"), false);
    assert.equal(isSupportedVersion("1.0.0"), true);
  });

  it("compares versions numerically, not as text", () => {
    assert.ok(compareVersions("0.10.0", "0.9.0") > 0);
    assert.ok(compareVersions("0.3.1", "0.4.0") < 0);
    assert.equal(compareVersions("1.1.0", "1.1.0"), 0);
  });
});
