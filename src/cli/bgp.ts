// `trellis bgp peer add|list|remove`, `trellis bgp status`, and the per-node BGP settings
// (`trellis nodes label`, `trellis nodes set`): what an operator running Calico in BGP mode does
// with calicoctl, against the cluster's datastore.
import { Command } from "commander";
import type { BgpNodeStatus } from "../bgp/controller.js";
import {
  BGP_PEER_PREFIX, bgpPeerKey, BgpError, nodeSettingsKey, parseStored, validateAsn, validateBgpPeer, validateClusterId, validateLabels,
  validateNodeSettings, type BgpPeer, type NodeSettings,
} from "../bgp/model.js";
import type { Datastore } from "../datastore/types.js";
import { CONFIG_KEY, LEASE_PREFIX, parseLease, STATUS_PREFIX } from "../model/lease.js";
import { validateNetworkConfig } from "../model/network.js";
import { parseNodeStatus } from "../agent/status.js";
import { withStore, type GlobalOptions } from "./cluster.js";
import { formatOutput, outputOption, printTable } from "./table.js";

/** "k=v,k2=v2" → labels (selector form). */
function parsePairs(text: string, flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of text.split(",").filter(Boolean)) {
    const i = part.indexOf("=");
    if (i <= 0) throw new BgpError(flag, part, "use key=value[,key=value]");
    out[part.slice(0, i)] = part.slice(i + 1);
  }
  return out;
}

async function podNetwork(s: Datastore): Promise<string | undefined> {
  const kv = await s.get(CONFIG_KEY);
  if (!kv) return undefined;
  return validateNetworkConfig(JSON.parse(kv.value), { onUnknownField: () => undefined }).network;
}

async function leasedNodes(s: Datastore): Promise<string[]> {
  return (await s.list(LEASE_PREFIX)).items.map((kv) => parseLease(kv.key, kv.value)?.node).filter((n): n is string => n !== undefined);
}

/** Read-modify-write of one node's settings (compare-and-swap, so concurrent edits are not lost). */
async function editNodeSettings(s: Datastore, node: string, edit: (cur: NodeSettings) => NodeSettings): Promise<NodeSettings> {
  for (;;) {
    const kv = await s.get(nodeSettingsKey(node));
    const cur = kv ? parseStored(kv.value, validateNodeSettings) ?? { node, labels: {} } : { node, labels: {} };
    const next = validateNodeSettings(edit(structuredClone(cur)));
    const value = JSON.stringify(next);
    const done = kv ? await s.update(kv.key, value, kv.modRevision) : await s.create(nodeSettingsKey(node), value);
    if (done) return next;
  }
}

function warnUnknownNode(nodes: string[], node: string): void {
  if (!nodes.includes(node)) process.stderr.write(`warning: no node named ${node} holds a lease (yet): the setting is stored and applies when it joins\n`);
}

/** `nodes label NODE k=v k2- ...` and `nodes set NODE --as ASN --rr-cluster-id ID`. */
export function nodeSettingsCommands(globals: () => GlobalOptions): Command[] {
  const label = new Command("label")
    .description("set (k=v) or remove (k-) labels of a node, e.g. trellis.dev/route-reflector=true")
    .argument("<node>", "node name")
    .argument("<labels...>", "key=value to set, key- to remove")
    .action(async (node: string, changes: string[]) => {
      const next = await withStore(globals(), async (s) => {
        warnUnknownNode(await leasedNodes(s), node);
        return editNodeSettings(s, node, (cur) => {
          for (const c of changes) {
            if (c.endsWith("-") && !c.includes("=")) {
              delete cur.labels[c.slice(0, -1)];
            } else {
              const i = c.indexOf("=");
              if (i <= 0) throw new BgpError("label", c, "use key=value to set, key- to remove");
              cur.labels[c.slice(0, i)] = c.slice(i + 1);
            }
          }
          validateLabels(cur.labels, "labels");
          return cur;
        });
      });
      process.stdout.write(`node/${node} labeled: ${Object.entries(next.labels).map(([k, v]) => `${k}=${v}`).join(",") || "(no labels)"}\n`);
    });
  const set = new Command("set")
    .description("a node's own BGP settings: its AS number (\"AS per rack\") and route-reflector cluster ID")
    .argument("<node>", "node name")
    .option("--as <asn>", "the node's AS number (1..4294967295); \"default\" to use the cluster's")
    .option("--rr-cluster-id <id>", "route-reflector cluster ID (an IPv4 dotted quad) when the node is a reflector")
    .action(async (node: string, o: { as?: string; rrClusterId?: string }) => {
      if (o.as === undefined && o.rrClusterId === undefined) throw new Error("nothing to set: give --as and/or --rr-cluster-id");
      const next = await withStore(globals(), async (s) => {
        warnUnknownNode(await leasedNodes(s), node);
        return editNodeSettings(s, node, (cur) => {
          if (o.as === "default") delete cur.asNumber;
          else if (o.as !== undefined) cur.asNumber = validateAsn(o.as, "--as");
          if (o.rrClusterId !== undefined) cur.routeReflectorClusterId = validateClusterId(o.rrClusterId, "--rr-cluster-id");
          return cur;
        });
      });
      process.stdout.write(`node/${node}: ${JSON.stringify(next)}\n`);
    });
  return [label, set];
}

export function bgpCommand(globals: () => GlobalOptions): Command {
  const bgp = new Command("bgp").description("BGP (the bgp backend): external peers and session status");
  const peer = bgp.command("peer").description("external BGP peers: routers Trellis does not run (e.g. a rack's ToR)");
  peer.command("add")
    .description("peer with a router: every node, one node (--node) or the nodes a selector picks")
    .argument("<name>", "peer name")
    .requiredOption("--peer-ip <ip>", "the router's address")
    .requiredOption("--as <asn>", "the router's AS number")
    .option("--node <node>", "only this node peers with it")
    .option("--node-selector <k=v,...>", "only nodes with these labels peer with it")
    .option("--password-file <file>", "TCP MD5 password, read from this file on each node")
    .action(async (name: string, o: { peerIp: string; as: string; node?: string; nodeSelector?: string; passwordFile?: string }) => {
      await withStore(globals(), async (s) => {
        const p = validateBgpPeer({
          name, peerIp: o.peerIp, asNumber: o.as, ...(o.node !== undefined ? { node: o.node } : {}),
          ...(o.nodeSelector !== undefined ? { nodeSelector: parsePairs(o.nodeSelector, "peer --node-selector") } : {}),
          ...(o.passwordFile !== undefined ? { passwordFile: o.passwordFile } : {}),
        }, await podNetwork(s));
        if (!(await s.create(bgpPeerKey(name), JSON.stringify(p)))) throw new BgpError("peer name", name, "is taken: remove that peer first, or choose another name");
      });
      process.stdout.write(`bgppeer/${name} created\n`);
    });
  peer.command("list")
    .description("the external peers")
    .addOption(outputOption())
    .action(async (o: { output: string }) => {
      const peers = await withStore(globals(), async (s) =>
        (await s.list(BGP_PEER_PREFIX)).items.map((kv) => parseStored(kv.value, (raw) => validateBgpPeer(raw, undefined))).filter((p): p is BgpPeer => !!p));
      if (o.output !== "table") {
        process.stdout.write(formatOutput({ peers }, o.output));
        return;
      }
      process.stdout.write(printTable(["NAME", "PEER IP", "AS", "NODES", "PASSWORD"], peers.map((p) => [
        p.name, p.peerIp, String(p.asNumber),
        p.node ?? (p.nodeSelector ? Object.entries(p.nodeSelector).map(([k, v]) => `${k}=${v}`).join(",") : "(all)"), p.passwordFile ? "yes" : "-",
      ])) + "\n");
    });
  peer.command("remove")
    .description("stop peering with a router")
    .argument("<name>", "peer name")
    .action(async (name: string) => {
      const gone = await withStore(globals(), (s) => s.delete(bgpPeerKey(name)));
      if (!gone) throw new Error(`no BGP peer named ${name}`);
      process.stdout.write(`bgppeer/${name} deleted\n`);
    });

  bgp.command("status")
    .description("every node's BGP sessions as its BIRD reports them: peer, type, state, time in state, last error, prefixes")
    .option("--node <node>", "one node only")
    .addOption(outputOption())
    .action(async (o: { node?: string; output: string }) => {
      const statuses = await withStore(globals(), async (s) => (await s.list(STATUS_PREFIX)).items.map((kv) => parseNodeStatus(kv.value))
        .filter((x) => x !== undefined).sort((a, b) => a.node.localeCompare(b.node, undefined, { numeric: true })));
      const picked = o.node ? statuses.filter((x) => x.node === o.node) : statuses;
      if (o.node && picked.length === 0) throw new Error(`no node named ${o.node} has reported a status`);
      const nodes = picked.map((x) => ({ node: x.node, backend: x.backend, state: x.state, ...(x.bgp ? { bgp: x.bgp } : {}) }));
      if (o.output !== "table") {
        process.stdout.write(formatOutput({ nodes }, o.output));
        return;
      }
      process.stdout.write(renderBgpStatus(nodes) + "\n");
    });
  return bgp;
}

const since = (iso: string, now: number): string => {
  const t = Date.parse(iso.replace(" ", "T"));
  if (!Number.isFinite(t)) return iso || "-";
  const s = Math.max(0, Math.round((now - t) / 1000));
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : `${Math.round(s / 3600)}h`;
};

export function renderBgpStatus(nodes: Array<{ node: string; backend: string; state: string; bgp?: BgpNodeStatus }>, now = Date.now()): string {
  const rows: string[][] = [];
  const notes: string[] = [];
  for (const n of nodes) {
    if (!n.bgp) {
      notes.push(`${n.node}: no BGP (backend ${n.backend}${n.state === "stopped" ? ", agent stopped" : ""})`);
      continue;
    }
    if (n.bgp.sessions.length === 0) notes.push(`${n.node}: no BGP sessions`);
    if (n.bgp.configError) notes.push(`${n.node}: ${n.bgp.configError}`);
    if (n.bgp.birdPid === undefined) notes.push(`${n.node}: BIRD is not running`);
    for (const x of n.bgp.sessions) {
      rows.push([n.node, x.peer, x.peerIp, x.type, x.state, since(x.since, now), String(x.received), String(x.exported), x.lastError ?? "-"]);
      if (x.rejected.length) notes.push(`${n.node} <- ${x.peer}: ignored ${x.rejected.length} prefix(es) outside the pod network: ${x.rejected.join(", ")}`);
    }
  }
  const lines = [printTable(["NODE", "PEER", "ADDRESS", "TYPE", "STATE", "SINCE", "RECEIVED", "EXPORTED", "LAST ERROR"], rows)];
  if (notes.length) lines.push("", ...notes.map((x) => `  ${x}`));
  return lines.join("\n");
}
