// rtnetlink message encoding (linux/netlink.h, linux/rtnetlink.h, linux/if_link.h). Pure: bytes
// in, bytes out, unit tested without root. Each function builds exactly what iproute2 sends for the
// corresponding `ip` command in ops.ts, so both paths configure the kernel identically.
import { parseIp, parseIpWithPrefix, type Ip } from "../../model/ip.js";

export const NLMSG_ERROR = 2;
export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
export const RTM_GETLINK = 18;
export const RTM_NEWADDR = 20;
export const RTM_NEWROUTE = 24;
export const RTM_NEWNEIGH = 28;

export const NLM_F_REQUEST = 0x1;
export const NLM_F_ACK = 0x4;
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;

const AF_UNSPEC = 0;
const AF_INET = 2;
const AF_INET6 = 10;
const IFF_UP = 0x1;

const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_MASTER = 10;
const IFLA_LINKINFO = 18;
const IFLA_IFALIAS = 20;
const IFLA_NET_NS_FD = 28;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const IFLA_INFO_SLAVE_KIND = 4;
const IFLA_INFO_SLAVE_DATA = 5;
const VETH_INFO_PEER = 1;
const IFLA_BRPORT_MODE = 4;

const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFA_FLAGS = 8;
const IFA_F_NODAD = 0x02;

const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RTA_PRIORITY = 6;
/** rtm_flags: the gateway is directly reachable on the output device (`ip route … onlink`). */
const RTNH_F_ONLINK = 4;
const RT_TABLE_MAIN = 254;
const RTPROT_BOOT = 3;
const RT_SCOPE_UNIVERSE = 0;
const RT_SCOPE_LINK = 253;
const RTN_UNICAST = 1;

const NDA_DST = 1;
const NDA_LLADDR = 2;
const NUD_PERMANENT = 0x80;

const align4 = (n: number): number => (n + 3) & ~3;

/** One attribute: length, type, payload, padded to 4 bytes. */
export function attr(type: number, payload: Buffer): Buffer {
  const len = 4 + payload.length;
  const b = Buffer.alloc(align4(len));
  b.writeUInt16LE(len, 0);
  b.writeUInt16LE(type, 2);
  payload.copy(b, 4);
  return b;
}

const u32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0, 0);
  return b;
};
const u8 = (v: number): Buffer => Buffer.from([v & 255]);
const str = (s: string): Buffer => Buffer.from(`${s}\0`);
const nested = (type: number, children: Buffer[]): Buffer => attr(type, Buffer.concat(children));

export function ipBytes(ip: Ip): Buffer {
  const n = ip.family === 4 ? 4 : 16;
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[n - 1 - i] = Number((ip.value >> BigInt(8 * i)) & 255n);
  return b;
}

export function macBytes(mac: string): Buffer {
  const parts = mac.split(":");
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) throw new Error(`invalid MAC address "${mac}"`);
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

/** A whole message: nlmsghdr + fixed header + attributes. */
export function message(type: number, flags: number, seq: number, header: Buffer, attrs: Buffer[]): Buffer {
  const body = Buffer.concat([header, ...attrs]);
  const b = Buffer.alloc(16 + body.length);
  b.writeUInt32LE(b.length, 0);
  b.writeUInt16LE(type, 4);
  b.writeUInt16LE(flags, 6);
  b.writeUInt32LE(seq >>> 0, 8);
  b.writeUInt32LE(0, 12);
  body.copy(b, 16);
  return b;
}

export function ifinfomsg(o: { index?: number; flags?: number; change?: number } = {}): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt8(AF_UNSPEC, 0);
  b.writeInt32LE(o.index ?? 0, 4);
  b.writeUInt32LE(o.flags ?? 0, 8);
  b.writeUInt32LE(o.change ?? 0, 12);
  return b;
}

const CREATE = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
const MODIFY = NLM_F_REQUEST | NLM_F_ACK;

export function vethAdd(seq: number, o: { name: string; mtu?: number; mac?: string; peer: { name: string; mtu?: number; mac?: string; netnsFd: number } }): Buffer {
  const peerAttrs = [attr(IFLA_IFNAME, str(o.peer.name))];
  if (o.peer.mtu) peerAttrs.push(attr(IFLA_MTU, u32(o.peer.mtu)));
  if (o.peer.mac) peerAttrs.push(attr(IFLA_ADDRESS, macBytes(o.peer.mac)));
  peerAttrs.push(attr(IFLA_NET_NS_FD, u32(o.peer.netnsFd)));
  const attrs = [attr(IFLA_IFNAME, str(o.name))];
  if (o.mtu) attrs.push(attr(IFLA_MTU, u32(o.mtu)));
  if (o.mac) attrs.push(attr(IFLA_ADDRESS, macBytes(o.mac)));
  attrs.push(nested(IFLA_LINKINFO, [
    attr(IFLA_INFO_KIND, str("veth")),
    nested(IFLA_INFO_DATA, [attr(VETH_INFO_PEER, Buffer.concat([ifinfomsg(), ...peerAttrs]))]),
  ]));
  return message(RTM_NEWLINK, CREATE, seq, ifinfomsg(), attrs);
}

export function bridgeAdd(seq: number, o: { name: string; mtu?: number }): Buffer {
  const attrs = [attr(IFLA_IFNAME, str(o.name))];
  if (o.mtu) attrs.push(attr(IFLA_MTU, u32(o.mtu)));
  attrs.push(nested(IFLA_LINKINFO, [attr(IFLA_INFO_KIND, str("bridge"))]));
  return message(RTM_NEWLINK, CREATE, seq, ifinfomsg(), attrs);
}

/** Changes an existing link found by name (ifi_index 0 + IFLA_IFNAME). */
export function linkSet(seq: number, name: string, o: { up?: boolean; alias?: string; masterIndex?: number; hairpin?: boolean }): Buffer {
  const attrs = [attr(IFLA_IFNAME, str(name))];
  if (o.alias !== undefined) attrs.push(attr(IFLA_IFALIAS, Buffer.from(o.alias)));
  if (o.masterIndex !== undefined) attrs.push(attr(IFLA_MASTER, u32(o.masterIndex)));
  if (o.hairpin !== undefined) {
    attrs.push(nested(IFLA_LINKINFO, [
      attr(IFLA_INFO_SLAVE_KIND, str("bridge")),
      nested(IFLA_INFO_SLAVE_DATA, [attr(IFLA_BRPORT_MODE, u8(o.hairpin ? 1 : 0))]),
    ]));
  }
  const hdr = o.up ? ifinfomsg({ flags: IFF_UP, change: IFF_UP }) : ifinfomsg();
  return message(RTM_NEWLINK, MODIFY, seq, hdr, attrs);
}

export function linkDel(seq: number, name: string): Buffer {
  return message(RTM_DELLINK, MODIFY, seq, ifinfomsg(), [attr(IFLA_IFNAME, str(name))]);
}

export function linkGet(seq: number, name: string): Buffer {
  return message(RTM_GETLINK, NLM_F_REQUEST, seq, ifinfomsg(), [attr(IFLA_IFNAME, str(name))]);
}

const family = (ip: Ip): number => (ip.family === 4 ? AF_INET : AF_INET6);

export function addrAdd(seq: number, o: { index: number; cidr: string; nodad?: boolean; replace?: boolean }): Buffer {
  const p = parseIpWithPrefix(o.cidr);
  if (!p) throw new Error(`invalid address "${o.cidr}"`);
  const hdr = Buffer.alloc(8);
  hdr.writeUInt8(family(p.ip), 0);
  hdr.writeUInt8(p.prefix, 1);
  hdr.writeUInt8(o.nodad ? IFA_F_NODAD : 0, 2);
  hdr.writeUInt8(RT_SCOPE_UNIVERSE, 3);
  hdr.writeUInt32LE(o.index, 4);
  const ip = ipBytes(p.ip);
  const attrs = [attr(IFA_LOCAL, ip), attr(IFA_ADDRESS, ip)];
  if (o.nodad) attrs.push(attr(IFA_FLAGS, u32(IFA_F_NODAD)));
  const flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | (o.replace ? NLM_F_REPLACE : NLM_F_EXCL);
  return message(RTM_NEWADDR, flags, seq, hdr, attrs);
}

/**
 * `dst` is a CIDR or a bare address (a host route). Created exclusively (NLM_F_EXCL), as `ip route
 * add` does: a route with the same destination and metric in the table is EEXIST.
 */
export function routeAdd(
  seq: number,
  o: { dst: string; index: number; via?: string; onlink?: boolean; metric?: number; proto?: number; scopeLink?: boolean },
): Buffer {
  const withPrefix = parseIpWithPrefix(o.dst);
  const bare = withPrefix ? undefined : parseIp(o.dst);
  const dst = withPrefix ?? (bare ? { ip: bare, prefix: bare.family === 4 ? 32 : 128 } : undefined);
  if (!dst) throw new Error(`invalid route destination "${o.dst}"`);
  const hdr = Buffer.alloc(12);
  hdr.writeUInt8(family(dst.ip), 0);
  hdr.writeUInt8(dst.prefix, 1);
  hdr.writeUInt8(RT_TABLE_MAIN, 4);
  hdr.writeUInt8(o.proto ?? RTPROT_BOOT, 5);
  hdr.writeUInt8(o.scopeLink ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE, 6);
  hdr.writeUInt8(RTN_UNICAST, 7);
  hdr.writeUInt32LE(o.onlink ? RTNH_F_ONLINK : 0, 8);
  const attrs: Buffer[] = [];
  if (dst.prefix > 0) attrs.push(attr(RTA_DST, ipBytes(dst.ip)));
  if (o.via) {
    const gw = parseIp(o.via);
    if (!gw || gw.family !== dst.ip.family) throw new Error(`invalid gateway "${o.via}" for ${o.dst}`);
    attrs.push(attr(RTA_GATEWAY, ipBytes(gw)));
  }
  if (o.metric !== undefined) {
    if (!Number.isInteger(o.metric) || o.metric < 0 || o.metric > 0xffffffff) throw new Error(`invalid metric ${o.metric} for ${o.dst}`);
    attrs.push(attr(RTA_PRIORITY, u32(o.metric)));
  }
  attrs.push(attr(RTA_OIF, u32(o.index)));
  return message(RTM_NEWROUTE, CREATE, seq, hdr, attrs);
}

export function neighAdd(seq: number, o: { index: number; ip: string; mac: string }): Buffer {
  const ip = parseIp(o.ip);
  if (!ip) throw new Error(`invalid neighbour address "${o.ip}"`);
  const hdr = Buffer.alloc(12);
  hdr.writeUInt8(family(ip), 0);
  hdr.writeInt32LE(o.index, 4);
  hdr.writeUInt16LE(NUD_PERMANENT, 8);
  return message(RTM_NEWNEIGH, CREATE, seq, hdr, [attr(NDA_DST, ipBytes(ip)), attr(NDA_LLADDR, macBytes(o.mac))]);
}

export interface Reply {
  type: number;
  seq: number;
  /** For NLMSG_ERROR: 0 = acknowledged, else the positive errno. */
  errno?: number;
  /** For RTM_NEWLINK replies: the link's index. */
  index?: number;
}

/** Splits a receive buffer into the messages it holds. */
export function parseReplies(buf: Buffer): Reply[] {
  const out: Reply[] = [];
  let off = 0;
  while (off + 16 <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len < 16 || off + len > buf.length) break;
    const type = buf.readUInt16LE(off + 4);
    const r: Reply = { type, seq: buf.readUInt32LE(off + 8) };
    if (type === NLMSG_ERROR && len >= 20) r.errno = -buf.readInt32LE(off + 16);
    if (type === RTM_NEWLINK && len >= 32) r.index = buf.readInt32LE(off + 20);
    out.push(r);
    off += align4(len);
  }
  return out;
}
