// Reading BIRD's own account of its sessions: `show protocols all` (established, connecting with
// a last error, non-BGP protocols) and the routes its import filter refused.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseFilteredRoutes, parseProtocols } from "./bird-status.js";

const SHOW = `BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     2026-12-06 22:20:06  
trellis_own_block Static     master4    up     2026-12-06 22:20:06  
node_node2 BGP        ---        up     2026-12-06 22:20:10  Established   
  Description:    mesh node2
  BGP state:          Established
    Neighbor address: 10.99.1.12
    Neighbor AS:      64512
    Local AS:         64512
    Neighbor ID:      10.99.1.12
  Channel ipv4
    State:          UP
    Table:          master4
    Routes:         1 imported, 2 filtered, 1 exported, 1 preferred
node_node3 BGP        ---        start  2026-12-06 22:21:00  Active        Socket: Connection refused
  Description:    mesh node3
  BGP state:          Active
    Neighbor address: 10.99.1.13
    Neighbor AS:      64512
    Local AS:         64512
    Connect delay:    3.201/5
    Last error:       Socket: Connection refused
  Channel ipv4
    State:          DOWN
`;

describe("parseProtocols", () => {
  const ps = parseProtocols(SHOW);
  it("reads every protocol, BGP or not", () => {
    assert.deepEqual(ps.map((p) => [p.name, p.proto, p.state]), [
      ["device1", "Device", "up"], ["trellis_own_block", "Static", "up"], ["node_node2", "BGP", "up"], ["node_node3", "BGP", "start"],
    ]);
  });
  it("an established session: state, since, peer, route counts", () => {
    const p = ps[2]!;
    assert.deepEqual({ d: p.description, s: p.bgpState, since: p.since, ip: p.neighborAddress, as: p.neighborAs, routes: p.routes }, {
      d: "mesh node2", s: "Established", since: "2026-12-06 22:20:10", ip: "10.99.1.12", as: 64512,
      routes: { imported: 1, filtered: 2, exported: 1, preferred: 1 },
    });
  });
  it("a session that does not come up: its state and last error", () => {
    const p = ps[3]!;
    assert.equal(p.bgpState, "Active");
    assert.equal(p.info, "Active        Socket: Connection refused");
    assert.equal(p.lastError, "Socket: Connection refused");
    assert.equal(p.routes, undefined);
  });
});

describe("parseFilteredRoutes", () => {
  it("the prefixes BIRD kept as filtered", () => {
    const text = "BIRD 2.0.12 ready.\nTable master4:\n192.168.0.0/16       unicast [peer_tor1 22:21:00] ! (100) [AS65101i]\n\tvia 10.99.1.3 on eth0\n10.244.0.0/16        unicast [peer_tor1 22:21:00] ! (100) [AS65101i]\n";
    assert.deepEqual(parseFilteredRoutes(text), ["192.168.0.0/16", "10.244.0.0/16"]);
  });
});
