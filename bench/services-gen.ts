// What the Services benchmark (services.ts) feeds the kernel, as pure functions: N ClusterIP
// Services with their EndpointSlices (the style of src/services/fixtures.ts), the endpoint
// changes it times, and the reference — the nat table kube-proxy's iptables mode writes for the
// same Services, in iptables-save format, as one full sync and as the partial sync kube-proxy
// makes since 1.28 (MinimizeIPTablesRestore). No I/O.
//
// The kube-proxy text follows pkg/proxy/iptables/proxier.go (1.28–1.31): chain names are
// "KUBE-SVC-" / "KUBE-SEP-" + the first 16 characters of base32(sha256(...)) of the service port
// name, protocol (and endpoint); KUBE-SERVICES holds one rule per service port (linear); a
// KUBE-SVC chain marks traffic from outside the cluster CIDR for masquerade, then picks an
// endpoint with `-m statistic --mode random --probability 1/(n-i)`; a KUBE-SEP chain marks
// hairpin traffic and DNATs. Every restore is `iptables-restore --noflush`: a chain line
// (`:CHAIN - [0:0]`) flushes that chain, chains not mentioned are left as they are.
import { createHash } from "node:crypto";
import { formatIp, parseIp } from "../src/model/ip.js";
import { ep, slice, svc } from "../src/services/fixtures.js";
import type { EndpointSlice, Service } from "../src/services/model.js";

/** Where the benchmark's addresses come from (all inside its own namespaces). */
export const CLUSTER_CIDR = "10.240.0.0/12";
/** The one real endpoint (a server listening in the server namespace) and its second address. */
export const SERVER_IPS = ["10.244.0.10", "10.244.0.11"] as const;
export const SERVER_PORT = 8080;
export const SERVICE_PORT = 80;
/** First ClusterIP handed out; service i gets FIRST_CLUSTER_IP + i. */
const FIRST_CLUSTER_IP = "10.96.1.0";
/** Endpoints of the other services: never connected to; 4 addresses reserved per service. */
const FAKE_ENDPOINTS = "10.248.0.0";

const ipPlus = (base: string, n: number): string => {
  const p = parseIp(base);
  if (!p || p.family !== 4) throw new Error(`not an IPv4 address: ${base}`);
  return formatIp({ family: 4, value: p.value + BigInt(n) });
};

export const serviceName = (i: number): string => `svc-${String(i).padStart(5, "0")}`;
export const clusterIpOf = (i: number): string => ipPlus(FIRST_CLUSTER_IP, i);
/** Endpoint k (0..3) of service i, if it is not the target. */
export const fakeEndpoint = (i: number, k: number): string => ipPlus(FAKE_ENDPOINTS, i * 4 + k);

export interface BenchServices {
  services: Service[];
  slices: EndpointSlice[];
}

/**
 * `n` ClusterIP Services, one TCP port each (80 -> 8080, named "http"), `endpoints` ready
 * endpoints each. The services in `targets` have the server's addresses as endpoints.
 */
export function benchServices(n: number, endpoints = 2, targets: readonly number[] = []): BenchServices {
  const services: Service[] = [];
  const slices: EndpointSlice[] = [];
  for (let i = 0; i < n; i++) {
    const name = serviceName(i);
    services.push(svc(name, { clusterIP: clusterIpOf(i), ports: [{ name: "http", protocol: "TCP", port: SERVICE_PORT, targetPort: SERVER_PORT }] }));
    const ips = targets.includes(i) ? SERVER_IPS.slice(0, endpoints) : Array.from({ length: endpoints }, (_, k) => fakeEndpoint(i, k));
    slices.push(slice(name, ips.map((ip) => ep(ip, "node1")), [{ name: "http", protocol: "TCP", port: SERVER_PORT }]));
  }
  return { services, slices };
}

/** One EndpointSlice change: service `index` gains endpoint `ip`, or loses it. */
export interface EndpointChange {
  index: number;
  op: "add" | "remove";
  ip: string;
}

/**
 * The changes a run makes, in pairs on one service: add a third endpoint, then remove it again,
 * so the table returns to its start every two changes. Services are picked with a fixed
 * pseudo-random sequence (the same in every run), never the target.
 */
export function endpointChanges(n: number, count: number, targets: readonly number[] = []): EndpointChange[] {
  if (targets.length >= n) throw new Error(`no service to change: all ${n} are targets`);
  const out: EndpointChange[] = [];
  let x = 12345;
  while (out.length < count) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    let index = x % n;
    while (targets.includes(index)) index = (index + 1) % n;
    const ip = fakeEndpoint(index, 3);
    out.push({ index, op: "add", ip });
    if (out.length < count) out.push({ index, op: "remove", ip });
  }
  return out;
}

/** The slices after `change` (only the changed service's slice is a new object). */
export function applyChange(slices: readonly EndpointSlice[], change: EndpointChange): EndpointSlice[] {
  const out = [...slices];
  const s = out[change.index]!;
  const endpoints = change.op === "add"
    ? [...s.endpoints, ep(change.ip, "node1")]
    : s.endpoints.filter((e) => e.addresses[0] !== change.ip);
  if (endpoints.length === s.endpoints.length) throw new Error(`endpoint change ${JSON.stringify(change)} changes nothing`);
  out[change.index] = { ...s, endpoints };
  return out;
}

// ---------------------------------------------------------------------------------------------
// kube-proxy, iptables mode

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/** Go's base32.StdEncoding of `bytes` (no padding needed: the callers take 16 characters of 10+ bytes). */
export function base32(bytes: Uint8Array): string {
  let out = "";
  let bits = 0;
  let value = 0;
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

/** kube-proxy's portProtoHash / servicePortEndpointChainName hash: base32(sha256(s))[:16]. */
const hash16 = (s: string): string => base32(createHash("sha256").update(s).digest()).slice(0, 16);

/** "ns/name:port" — kube-proxy's ServicePortName.String() (no ":port" when the port has no name). */
export const servicePortName = (s: Service, portName: string): string => `${s.namespace}/${s.name}${portName ? `:${portName}` : ""}`;
export const svcChain = (spn: string, protocol: string): string => `KUBE-SVC-${hash16(spn + protocol.toLowerCase())}`;
export const sepChain = (spn: string, protocol: string, endpoint: string): string => `KUBE-SEP-${hash16(spn + protocol.toLowerCase() + endpoint)}`;

/** The base jumps kube-proxy adds with `iptables -I` (not in the restore): [table-less args]. */
export const KUBE_PROXY_JUMPS: readonly string[][] = [
  ["-N", "KUBE-SERVICES"],
  ["-N", "KUBE-POSTROUTING"],
  ["-A", "PREROUTING", "-m", "comment", "--comment", "kubernetes service portals", "-j", "KUBE-SERVICES"],
  ["-A", "OUTPUT", "-m", "comment", "--comment", "kubernetes service portals", "-j", "KUBE-SERVICES"],
  ["-A", "POSTROUTING", "-m", "comment", "--comment", "kubernetes postrouting rules", "-j", "KUBE-POSTROUTING"],
];

const TOP_CHAINS = ["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"] as const;

const TOP_RULES = [
  "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
  "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000",
  "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully",
  "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000",
];

const NODEPORTS_LAST =
  "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS";

interface PortChains {
  /** The KUBE-SERVICES rule of this service port. */
  servicesRule: string;
  /** Its own chains (KUBE-SVC, then KUBE-SEP in endpoint order) and their rules. */
  chains: string[];
  rules: string[];
}

/** What kube-proxy writes for each service port with endpoints, in `services` order. */
function portChains(services: readonly Service[], slices: readonly EndpointSlice[], clusterCidr: string): PortChains[] {
  const bySvc = new Map(slices.map((s) => [`${s.namespace}/${s.service}`, s]));
  const out: PortChains[] = [];
  for (const s of services) {
    const sl = bySvc.get(`${s.namespace}/${s.name}`);
    for (const p of s.ports) {
      const sp = sl?.ports.find((x) => x.name === p.name && x.protocol === p.protocol);
      const eps = (sl?.endpoints ?? []).filter((e) => e.ready && e.addresses[0]).map((e) => `${e.addresses[0]}:${sp?.port ?? p.targetPort}`);
      if (eps.length === 0 || !s.clusterIP) continue;
      const spn = servicePortName(s, p.name);
      const proto = p.protocol.toLowerCase();
      const svcC = svcChain(spn, proto);
      const match = `-p ${proto} -d ${s.clusterIP}/32 -m ${proto} --dport ${p.port}`;
      const rules = [`-A ${svcC} -m comment --comment "${spn} cluster IP" ${match} ! -s ${clusterCidr} -j KUBE-MARK-MASQ`];
      const seps = eps.map((e) => sepChain(spn, proto, e));
      eps.forEach((e, i) => {
        const stat = i < eps.length - 1 ? ` -m statistic --mode random --probability ${(1 / (eps.length - i)).toFixed(10)}` : "";
        rules.push(`-A ${svcC} -m comment --comment "${spn} -> ${e}"${stat} -j ${seps[i]}`);
      });
      eps.forEach((e, i) => {
        rules.push(`-A ${seps[i]} -m comment --comment ${spn} -s ${e.split(":")[0]}/32 -j KUBE-MARK-MASQ`);
        rules.push(`-A ${seps[i]} -m comment --comment ${spn} -p ${proto} -m ${proto} -j DNAT --to-destination ${e}`);
      });
      out.push({ servicesRule: `-A KUBE-SERVICES -m comment --comment "${spn} cluster IP" ${match} -j ${svcC}`, chains: [svcC, ...seps], rules });
    }
  }
  return out;
}

const restore = (chains: readonly string[], rules: readonly string[]): string =>
  ["*nat", ...chains.map((c) => `:${c} - [0:0]`), ...rules, "COMMIT", ""].join("\n");

/**
 * kube-proxy's full sync: every chain it owns declared (so flushed) and refilled, for
 * `iptables-restore --noflush`. KUBE-SERVICES is in `services` order: its last service port is
 * the one a packet reaches after walking every other rule.
 */
export function kubeProxyFullRestore(services: readonly Service[], slices: readonly EndpointSlice[], clusterCidr = CLUSTER_CIDR): string {
  const ports = portChains(services, slices, clusterCidr);
  return restore(
    [...TOP_CHAINS, ...ports.flatMap((p) => p.chains)],
    [...TOP_RULES, ...ports.map((p) => p.servicesRule), NODEPORTS_LAST, ...ports.flatMap((p) => p.rules)],
  );
}

/**
 * kube-proxy's partial sync (1.28+, MinimizeIPTablesRestore) after the endpoints of `changed`
 * (service names) changed: the top-level chains in full (KUBE-SERVICES is rewritten every time),
 * the changed services' chains, and the chains they no longer use flushed and deleted (`-X`).
 */
export function kubeProxyPartialRestore(services: readonly Service[], before: readonly EndpointSlice[], after: readonly EndpointSlice[],
  changed: ReadonlySet<string>, clusterCidr = CLUSTER_CIDR): string {
  const now = portChains(services, after, clusterCidr);
  const mine = (s: readonly Service[]): Service[] => s.filter((x) => changed.has(x.name));
  const old = portChains(mine(services), before, clusterCidr).flatMap((p) => p.chains);
  const kept = portChains(mine(services), after, clusterCidr);
  const keptChains = new Set(kept.flatMap((p) => p.chains));
  const stale = old.filter((c) => !keptChains.has(c));
  return restore(
    [...TOP_CHAINS, ...kept.flatMap((p) => p.chains), ...stale],
    [...TOP_RULES, ...now.map((p) => p.servicesRule), NODEPORTS_LAST, ...kept.flatMap((p) => p.rules), ...stale.map((c) => `-X ${c}`)],
  );
}

/** Rules (`-A` lines) and chains (`:` lines) of a restore text. */
export function restoreCounts(text: string): { chains: number; rules: number } {
  let chains = 0;
  let rules = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith(":")) chains++;
    else if (line.startsWith("-A ")) rules++;
  }
  return { chains, rules };
}
