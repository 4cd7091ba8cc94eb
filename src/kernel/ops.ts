// The vocabulary of link, address, route and neighbour changes the plugin asks the kernel for.
// Plain data, decided by pure code (cni/attachment.ts), carried out by the kernel seam either as
// rtnetlink messages (netlink/, in the compiled executables) or as `ip -batch` lines (anywhere
// else). `renderIpLine` is the single definition of what each operation means in iproute2 terms,
// and is also how operations appear in logs and errors.

export type NetOp =
  | { op: "veth-add"; name: string; mtu?: number; mac?: string; peer: { name: string; mtu?: number; mac?: string; netns: string } }
  | { op: "bridge-add"; name: string; mtu?: number }
  | { op: "link-up"; name: string }
  | { op: "link-alias"; name: string; alias: string }
  | { op: "link-master"; name: string; master: string }
  | { op: "bridge-port-hairpin"; name: string; on: boolean }
  | { op: "addr-add"; dev: string; cidr: string; nodad?: boolean; replace?: boolean }
  | { op: "route-add"; dst: string; dev: string; via?: string; proto?: number; scopeLink?: boolean }
  | { op: "neigh-add"; dev: string; ip: string; mac: string };

export function renderIpLine(o: NetOp): string {
  const mtu = (m?: number): string => (m ? ` mtu ${m}` : "");
  const mac = (m?: string): string => (m ? ` address ${m}` : "");
  switch (o.op) {
    case "veth-add":
      return `link add ${o.name}${mtu(o.mtu)}${mac(o.mac)} type veth peer name ${o.peer.name}${mtu(o.peer.mtu)}${mac(o.peer.mac)} netns ${o.peer.netns}`;
    case "bridge-add":
      return `link add ${o.name}${mtu(o.mtu)} type bridge`;
    case "link-up":
      return `link set ${o.name} up`;
    case "link-alias":
      return `link set ${o.name} alias ${o.alias}`;
    case "link-master":
      return `link set ${o.name} master ${o.master}`;
    case "bridge-port-hairpin":
      return `link set ${o.name} type bridge_slave hairpin ${o.on ? "on" : "off"}`;
    case "addr-add":
      return `addr ${o.replace ? "replace" : "add"} ${o.cidr} dev ${o.dev}${o.nodad ? " nodad" : ""}`;
    case "route-add":
      return `route add ${o.dst}${o.via ? ` via ${o.via}` : ""} dev ${o.dev}${o.proto !== undefined ? ` proto ${o.proto}` : ""}${o.scopeLink ? " scope link" : ""}`;
    case "neigh-add":
      return `neigh add ${o.ip} lladdr ${o.mac} dev ${o.dev} nud permanent`;
  }
}
