// Bad BGP input is refused naming the field and the value: AS numbers out of range, a peer IP that
// is not an address or lies in the pod network, a cluster ID that is not a dotted quad, unknown
// fields; good input is read as given.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { BgpError, validateAsn, validateBgpPeer, validateBgpSettings, validateClusterId, validateNodeSettings } from "./model.js";

const refused = (fn: () => unknown, message: RegExp): void => {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof BgpError, String(e));
    assert.match(e.message, message);
    return true;
  });
};

describe("BGP input", () => {
  it("AS numbers: 1..4294967295, as numbers or whole-number strings", () => {
    assert.equal(validateAsn(1, "--as"), 1);
    assert.equal(validateAsn("4294967295", "--as"), 4294967295);
    for (const bad of [0, -1, 4294967296, 1.5, "65a", "", null]) refused(() => validateAsn(bad, "--as"), new RegExp(`invalid BGP --as ${JSON.stringify(bad).replace(/[.*+?^${}()|[\]\\-]/g, "\\$&")}: must be an AS number 1\\.\\.4294967295`));
  });
  it("cluster IDs are IPv4 dotted quads", () => {
    assert.equal(validateClusterId("244.0.0.1", "id"), "244.0.0.1");
    for (const bad of ["1.2.3", "1.2.3.256", "fd00::1", 7, "a.b.c.d"]) refused(() => validateClusterId(bad, "--rr-cluster-id"), /--rr-cluster-id .*: must be an IPv4 dotted quad/);
  });
  it("peers: an address outside the pod network, one of --node / --node-selector, a known field set", () => {
    const ok = { name: "tor1", peerIp: "10.99.1.3", asNumber: "65101" };
    assert.deepEqual(validateBgpPeer(ok, "10.244.0.0/16"), { name: "tor1", peerIp: "10.99.1.3", asNumber: 65101 });
    refused(() => validateBgpPeer({ ...ok, peerIp: "tor" }, undefined), /peer --peer-ip "tor": is not an IP address/);
    refused(() => validateBgpPeer({ ...ok, peerIp: "10.244.3.1" }, "10.244.0.0/16"), /peer --peer-ip "10\.244\.3\.1": lies inside the pod network 10\.244\.0\.0\/16/);
    refused(() => validateBgpPeer({ ...ok, asNumber: 0 }, undefined), /peer --as 0/);
    refused(() => validateBgpPeer({ ...ok, name: "Tor 1" }, undefined), /peer name "Tor 1"/);
    refused(() => validateBgpPeer({ ...ok, node: "node1", nodeSelector: { rack: "a" } }, undefined), /give either --node or --node-selector/);
    refused(() => validateBgpPeer({ ...ok, peerAS: 1 }, undefined), /peer peerAS: unknown field \(did you mean peerIp\?\)|peer peerAS: unknown field/);
  });
  it("settings and node settings: defaults, and refusals", () => {
    assert.deepEqual(validateBgpSettings(undefined), { asNumber: 64512, nodeMesh: true });
    assert.deepEqual(validateBgpSettings({ asNumber: 65000, nodeMesh: false }), { asNumber: 65000, nodeMesh: false });
    refused(() => validateBgpSettings({ nodeMesh: "no" }), /bgp\.nodeMesh "no": must be true or false/);
    assert.deepEqual(validateNodeSettings({ node: "node1", labels: { "trellis.dev/route-reflector": "true" } }).labels, { "trellis.dev/route-reflector": "true" });
    refused(() => validateNodeSettings({ node: "node1", asNumber: 0 }), /asNumber 0/);
    refused(() => validateNodeSettings({ node: "node1", routeReflectorClusterId: "x" }), /routeReflectorClusterId "x"/);
    refused(() => validateNodeSettings({ node: "node1", labels: { "bad key!": "x" } }), /labels key "bad key!"/);
  });
});
