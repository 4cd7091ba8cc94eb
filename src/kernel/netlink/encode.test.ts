import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as nl from "./encode.js";

/** Walks the attributes after a fixed header; returns [type, payload] pairs. */
function attrs(buf: Buffer, offset: number): Array<[number, Buffer]> {
  const out: Array<[number, Buffer]> = [];
  let off = offset;
  while (off + 4 <= buf.length) {
    const len = buf.readUInt16LE(off);
    if (len < 4) break;
    out.push([buf.readUInt16LE(off + 2), buf.subarray(off + 4, off + len)]);
    off += (len + 3) & ~3;
  }
  return out;
}

describe("rtnetlink encoding", () => {
  test("an attribute is length + type + payload, padded to four bytes", () => {
    const a = nl.attr(3, Buffer.from("eth0\0"));
    assert.equal(a.length, 12);
    assert.equal(a.readUInt16LE(0), 9, "length excludes the padding");
    assert.equal(a.readUInt16LE(2), 3);
    assert.equal(a.subarray(4, 9).toString(), "eth0\0");
  });

  test("the message header carries total length, type, flags and sequence", () => {
    const m = nl.linkGet(42, "lo");
    assert.equal(m.readUInt32LE(0), m.length);
    assert.equal(m.readUInt16LE(4), nl.RTM_GETLINK);
    assert.equal(m.readUInt16LE(6), nl.NLM_F_REQUEST);
    assert.equal(m.readUInt32LE(8), 42);
  });

  test("a veth pair is created exclusively, with its peer named, addressed and placed in the pod namespace", () => {
    const m = nl.vethAdd(1, { name: "trl1", mtu: 1400, mac: "ee:ee:ee:ee:ee:ee", peer: { name: "eth0", mtu: 1400, mac: "0a:58:0a:01:00:02", netnsFd: 7 } });
    assert.equal(m.readUInt16LE(4), nl.RTM_NEWLINK);
    assert.equal(m.readUInt16LE(6) & (nl.NLM_F_CREATE | nl.NLM_F_EXCL | nl.NLM_F_ACK), nl.NLM_F_CREATE | nl.NLM_F_EXCL | nl.NLM_F_ACK);
    const top = attrs(m, 32);
    assert.equal(top.find(([t]) => t === 3)![1].toString(), "trl1\0");
    assert.equal(top.find(([t]) => t === 4)![1].readUInt32LE(0), 1400);
    assert.deepEqual([...top.find(([t]) => t === 1)![1]], [0xee, 0xee, 0xee, 0xee, 0xee, 0xee]);
    const linkinfo = attrs(top.find(([t]) => t === 18)![1], 0);
    assert.equal(linkinfo.find(([t]) => t === 1)![1].toString(), "veth\0");
    const data = attrs(linkinfo.find(([t]) => t === 2)![1], 0);
    const peer = data.find(([t]) => t === 1)![1];
    const peerAttrs = attrs(peer, 16);
    assert.equal(peerAttrs.find(([t]) => t === 3)![1].toString(), "eth0\0");
    assert.equal(peerAttrs.find(([t]) => t === 28)![1].readUInt32LE(0), 7, "IFLA_NET_NS_FD");
  });

  test("a default route has no destination attribute; a host route has a /32 destination", () => {
    const def = nl.routeAdd(1, { dst: "0.0.0.0/0", index: 5, via: "169.254.1.1" });
    assert.equal(def.readUInt8(17), 0, "dst_len");
    const defAttrs = attrs(def, 28);
    assert.equal(defAttrs.some(([t]) => t === 1), false);
    assert.deepEqual([...defAttrs.find(([t]) => t === 5)![1]], [169, 254, 1, 1]);
    assert.equal(defAttrs.find(([t]) => t === 4)![1].readUInt32LE(0), 5);
    const host = nl.routeAdd(2, { dst: "10.1.0.2/32", index: 9, proto: 201, scopeLink: true });
    assert.equal(host.readUInt8(17), 32);
    assert.equal(host.readUInt8(21), 201, "protocol");
    assert.equal(host.readUInt8(22), 253, "scope link");
    assert.deepEqual([...attrs(host, 28).find(([t]) => t === 1)![1]], [10, 1, 0, 2]);
    assert.equal(nl.routeAdd(3, { dst: "169.254.1.1", index: 9 }).readUInt8(17), 32, "a bare address is a host route");
  });

  test("an onlink route sets RTNH_F_ONLINK in rtm_flags; a metric is RTA_PRIORITY (as `ip route add … onlink metric 100` sends them)", () => {
    const m = nl.routeAdd(1, { dst: "0.0.0.0/0", index: 3, via: "169.254.1.1", onlink: true, metric: 100 });
    // Bytes taken from strace of iproute2 6.1 for the same command (seq and the redundant
    // zero-length RTA_DST it adds for a default route aside).
    assert.equal(m.subarray(16, 28).toString("hex"), "02000000fe03000104000000", "rtmsg: AF_INET, main table, boot, universe, unicast, flags 4");
    assert.deepEqual(attrs(m, 28).map(([t, v]) => [t, v.toString("hex")]), [[5, "a9fe0101"], [6, "64000000"], [4, "03000000"]]);
    assert.equal(m.readUInt16LE(6), nl.NLM_F_REQUEST | nl.NLM_F_ACK | nl.NLM_F_CREATE | nl.NLM_F_EXCL, "exclusive: an existing route is EEXIST");
  });

  test("without onlink and metric: no flag and no RTA_PRIORITY (the kernel's default metric); metric 0 is sent as given", () => {
    const plain = nl.routeAdd(1, { dst: "10.2.0.0/16", index: 3, via: "169.254.1.1" });
    assert.equal(plain.readUInt32LE(24), 0, "rtm_flags");
    assert.equal(attrs(plain, 28).some(([t]) => t === 6), false);
    const zero = nl.routeAdd(1, { dst: "::/0", index: 3, via: "fe80::1", metric: 0 });
    assert.equal(attrs(zero, 28).find(([t]) => t === 6)![1].readUInt32LE(0), 0);
  });

  test("IPv6 addresses are 16 bytes and can skip duplicate address detection", () => {
    const m = nl.addrAdd(1, { index: 3, cidr: "fd00::2/128", nodad: true });
    assert.equal(m.readUInt8(16), 10, "AF_INET6");
    assert.equal(m.readUInt8(17), 128);
    const a = attrs(m, 24);
    assert.equal(a.find(([t]) => t === 2)![1].length, 16);
    assert.equal(a.find(([t]) => t === 8)![1].readUInt32LE(0), 0x02, "IFA_F_NODAD");
  });

  test("a permanent neighbour entry pins an address to a MAC", () => {
    const m = nl.neighAdd(1, { index: 4, ip: "169.254.1.1", mac: "ee:ee:ee:ee:ee:ee" });
    assert.equal(m.readUInt16LE(4), nl.RTM_NEWNEIGH);
    assert.equal(m.readUInt16LE(24), 0x80, "NUD_PERMANENT");
  });

  test("replies are split and errors read as positive errno", () => {
    const err = Buffer.alloc(36);
    err.writeUInt32LE(36, 0);
    err.writeUInt16LE(nl.NLMSG_ERROR, 4);
    err.writeUInt32LE(7, 8);
    err.writeInt32LE(-17, 16);
    const link = Buffer.alloc(32);
    link.writeUInt32LE(32, 0);
    link.writeUInt16LE(nl.RTM_NEWLINK, 4);
    link.writeUInt32LE(8, 8);
    link.writeInt32LE(12, 20);
    assert.deepEqual(nl.parseReplies(Buffer.concat([err, link])), [
      { type: nl.NLMSG_ERROR, seq: 7, errno: 17 },
      { type: nl.RTM_NEWLINK, seq: 8, index: 12 },
    ]);
  });

  test("bad input is refused, not encoded", () => {
    assert.throws(() => nl.macBytes("ee:ee"), /invalid MAC/);
    assert.throws(() => nl.routeAdd(1, { dst: "nonsense", index: 1 }), /invalid route destination/);
    assert.throws(() => nl.routeAdd(1, { dst: "0.0.0.0/0", index: 1, via: "fe80::1" }), /invalid gateway/);
    assert.throws(() => nl.routeAdd(1, { dst: "0.0.0.0/0", index: 1, metric: -1 }), /invalid metric -1/);
    assert.throws(() => nl.routeAdd(1, { dst: "0.0.0.0/0", index: 1, metric: 2 ** 32 }), /invalid metric/);
  });
});
