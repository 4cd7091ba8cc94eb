// bird.conf as a pure function of one node's BGP plan. What BIRD does with it:
//
// - exports the node's own block, from a static blackhole route: unused addresses of the block are
//   dropped on this node instead of looping back to a router;
// - accepts only pod-network blocks (of the cluster's block length, never the node's own) from any
//   peer; anything else is filtered (kept, to be reported: `import keep filtered`) and never
//   reaches the kernel;
// - to other nodes it exports pod blocks (a route reflector thereby reflects its clients' blocks);
//   to external peers only its own block (a node is never a transit router);
// - installs learned, resolvable pod routes into a kernel table of Trellis' own
//   (BGP_ROUTE_TABLE), never the main table: BIRD 2.0 marks every route it writes with protocol
//   "bird", so a table of our own is what tells Trellis' routes from anyone else's;
// - graceful restart on every session and on the kernel protocol: when BIRD or the agent
//   restarts, the kernel keeps the routes while the sessions come back.
import { formatCidr, parseCidr } from "../model/ip.js";
import { BGP_ROUTE_TABLE } from "./model.js";
import type { BgpPlan, BgpSession } from "./topology.js";

export interface BirdConfInput {
  plan: BgpPlan;
  podNetwork: string;
  subnetLen: number;
  /** Where BIRD logs (a file of the agent's), or undefined for syslog. */
  logFile?: string;
  /** TCP MD5 passwords by password file, read by the caller. */
  passwords?: ReadonlyMap<string, string>;
}

/** The BIRD string literal of `s`; refused where BIRD's lexer could not take it. */
function birdString(s: string, what: string): string {
  if (/["\\\n\r]/.test(s)) throw new Error(`${what} contains a quote, backslash or line break, which bird.conf cannot hold`);
  return `"${s}"`;
}

const KIND_TEXT: Record<BgpSession["kind"], string> = {
  mesh: "node mesh", reflector: "route reflector", "rr-client": "route-reflector client", external: "external peer",
};

function session(plan: BgpPlan, s: BgpSession, passwords: ReadonlyMap<string, string> | undefined): string[] {
  const lines = [`protocol bgp ${s.protocol} from ${s.kind === "external" ? "trellis_external" : "trellis_node"} {`];
  lines.push(`  description ${birdString(`${s.kind} ${s.peerName}`, "peer name")};`);
  lines.push(`  neighbor ${s.peerIp} as ${s.peerAs};`);
  if (s.offLink) lines.push("  multihop;");
  if (s.rrClient) lines.push("  rr client;", `  rr cluster id ${plan.clusterId};`);
  if (s.passwordFile) {
    const pw = passwords?.get(s.passwordFile);
    if (pw === undefined) throw new Error(`password file ${s.passwordFile} of peer ${s.peerName} could not be read`);
    lines.push(`  password ${birdString(pw, `password file ${s.passwordFile}`)};`);
  }
  lines.push("}");
  return lines;
}

export function renderBirdConf(input: BirdConfInput): string {
  const { plan } = input;
  const net = formatCidr(parseCidr(input.podNetwork)!);
  const blocks = `[ ${net}{${input.subnetLen},${input.subnetLen}} ]`;
  const out = [
    `# bird.conf of node ${plan.name}, written by the trellis agent (do not edit: it is replaced on every change,`,
    "# and applied with `birdc configure`). Sessions:",
    ...plan.sessions.map((s) => `#   ${s.protocol}: ${KIND_TEXT[s.kind]} ${s.peerName} ${s.peerIp} AS ${s.peerAs}`),
    ...(plan.sessions.length === 0 ? ["#   (none)"] : []),
    "",
    `router id ${plan.ip};`,
    "timeformat protocol iso long;",
    input.logFile ? `log ${birdString(input.logFile, "log file")} { info, remote, warning, error, auth, fatal, bug };` : "log syslog { info, remote, warning, error, auth, fatal, bug };",
    "",
    "protocol device {",
    "  scan time 10;",
    "}",
    "",
    `define TRELLIS_POD_BLOCKS = ${blocks};`,
    `define TRELLIS_OWN_BLOCK = ${plan.block};`,
    "",
    "# From any peer: pod-network blocks only, never our own.",
    "filter trellis_import {",
    "  if net ~ TRELLIS_POD_BLOCKS && net != TRELLIS_OWN_BLOCK then accept;",
    "  reject;",
    "}",
    "",
    "# To other nodes: pod-network blocks (our own; a reflector also reflects its clients').",
    "filter trellis_export_nodes {",
    "  if net ~ TRELLIS_POD_BLOCKS then accept;",
    "  reject;",
    "}",
    "",
    "# To external routers: our own block only (a node is never a transit router).",
    "filter trellis_export_external {",
    "  if proto = \"trellis_own_block\" then accept;",
    "  reject;",
    "}",
    "",
    "# Our block, dropped here when an address is unused (a route for it is never exported to the kernel).",
    "protocol static trellis_own_block {",
    "  ipv4;",
    `  route ${plan.block} blackhole;`,
    "}",
    "",
    `# Learned pod routes go to kernel table ${BGP_ROUTE_TABLE} (Trellis' own); a rule sends pod-network traffic there.`,
    "protocol kernel trellis_kernel {",
    `  kernel table ${BGP_ROUTE_TABLE};`,
    "  learn off;",
    "  graceful restart on;",
    "  merge paths on;",
    "  ipv4 {",
    "    import none;",
    "    export filter {",
    "      if source = RTS_BGP && dest = RTD_UNICAST && net ~ TRELLIS_POD_BLOCKS && net != TRELLIS_OWN_BLOCK then accept;",
    "      reject;",
    "    };",
    "  };",
    "}",
    "",
    "# Peers are known and near: connect 1 s after a session is configured (BIRD's default is 5 s, most",
    "# of a node's join time) and retry a refused connection after 5 s (default 120 s).",
    "template bgp trellis_node {",
    `  local ${plan.ip} as ${plan.asNumber};`,
    "  direct;",
    "  connect delay time 1;",
    "  connect retry time 5;",
    "  graceful restart on;",
    "  ipv4 {",
    "    gateway direct;",
    "    import keep filtered on;",
    "    import filter trellis_import;",
    "    export filter trellis_export_nodes;",
    "  };",
    "}",
    "",
    "template bgp trellis_external {",
    `  local ${plan.ip} as ${plan.asNumber};`,
    "  connect delay time 1;",
    "  connect retry time 5;",
    "  graceful restart on;",
    "  ipv4 {",
    "    gateway direct;",
    "    import keep filtered on;",
    "    import filter trellis_import;",
    "    export filter trellis_export_external;",
    "    next hop self;",
    "  };",
    "}",
  ];
  for (const s of plan.sessions) out.push("", ...session(plan, s, input.passwords));
  return out.join("\n") + "\n";
}
