// The vocabulary of link, address, route and neighbour changes the plugin asks the kernel for.
// Plain data, decided by pure code (cni/attachment.ts), carried out by the kernel seam either as
// rtnetlink messages (netlink/, in the compiled executables) or as `ip -batch` lines (anywhere
// else). `renderIpLine` is the single definition of what each operation means in iproute2 terms,
// and is also how operations appear in logs and errors.
//
// One operation may be left out by the kernel: a route-add with `skipIfExists` that the kernel
// refuses with EEXIST (a route of the same destination and metric is already there, e.g. another
// interface's default route) is not a failure; the seam reports it as skipped and goes on. There
// is no `ip` syntax for that, so its line carries it as a comment (`ip -batch` ignores text after
// `#`) and the iproute2 fallback runs such a batch with `-force` (see kernel/pod.ts).

export type NetOp =
  | { op: "veth-add"; name: string; mtu?: number; mac?: string; peer: { name: string; mtu?: number; mac?: string; netns: string } }
  | { op: "bridge-add"; name: string; mtu?: number }
  | { op: "link-up"; name: string }
  | { op: "link-alias"; name: string; alias: string }
  | { op: "link-master"; name: string; master: string }
  | { op: "bridge-port-hairpin"; name: string; on: boolean }
  | { op: "addr-add"; dev: string; cidr: string; nodad?: boolean; replace?: boolean }
  | {
    op: "route-add"; dst: string; dev: string; via?: string;
    /** The gateway is on this link whatever the addresses and routes say (RTNH_F_ONLINK; IPv4 use). */
    onlink?: boolean;
    /** The route's metric (RTA_PRIORITY); the kernel's default when absent (0 for IPv4, 1024 for IPv6). */
    metric?: number;
    proto?: number;
    scopeLink?: boolean;
    /** EEXIST (the same destination and metric already routed) leaves this route out instead of failing. */
    skipIfExists?: boolean;
  }
  | { op: "neigh-add"; dev: string; ip: string; mac: string };

/** How a skippable operation's `ip -batch` line says so (a comment, which `ip` ignores). */
export const SKIP_IF_EXISTS_COMMENT = "# unless one exists";

/** Whether the kernel may leave this operation out (EEXIST) rather than fail the batch. */
export const skippable = (o: NetOp): boolean => o.op === "route-add" && o.skipIfExists === true;

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
      return `route add ${o.dst}${o.via ? ` via ${o.via}` : ""} dev ${o.dev}${o.onlink ? " onlink" : ""}`
        + `${o.metric !== undefined ? ` metric ${o.metric}` : ""}${o.proto !== undefined ? ` proto ${o.proto}` : ""}`
        + `${o.scopeLink ? " scope link" : ""}${o.skipIfExists ? ` ${SKIP_IF_EXISTS_COMMENT}` : ""}`;
    case "neigh-add":
      return `neigh add ${o.ip} lladdr ${o.mac} dev ${o.dev} nud permanent`;
  }
}
