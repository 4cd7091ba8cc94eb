// `trellis apply|delete -f FILE`, `trellis get ...`, `trellis policy explain ...`.
import { Command, Option } from "commander";
import type { Datastore } from "../datastore/types.js";
import { LEASE_PREFIX, parseLease } from "../model/lease.js";
import { evaluate, PolicyIndex, type DirectionVerdict } from "../policy/evaluate.js";
import { PROTOCOLS, type PolicyModel, type Protocol } from "../policy/model.js";
import { objectKey, parseDocuments, type Parsed } from "../policy/parse.js";
import { prepareServices, releaseHeldBy } from "../services/apply.js";
import { parseService } from "../services/parse.js";
import { ENDPOINTSLICE_PREFIX, SERVICE_PREFIX, STORED_SERVICE_OPTIONS } from "../services/controller.js";
import {
  ENDPOINT_PREFIX, modelFromObjects, NAMESPACE_PREFIX, OBJECT_PREFIXES, parseEndpoint, POD_PREFIX, POLICY_PREFIX,
} from "../policy/store-model.js";
import { readInputFile } from "../model/input.js";
import { explainToService, renderServiceExplanation } from "../policy/explain-service.js";
import { readServices } from "../services/read.js";
import { suggestField } from "../model/strict.js";
import { readNodes, renderNodes, withStore, type GlobalOptions } from "./cluster.js";
import { formatOutput, outputOption, printTable } from "./table.js";

export function applyCommands(globals: () => GlobalOptions): Command[] {
  const apply = new Command("apply")
    .description("store Namespace, Pod, NetworkPolicy, TrellisPolicy, GlobalTrellisPolicy, Service and EndpointSlice objects (all or nothing)")
    .requiredOption("-f, --filename <file>", "YAML or JSON file, several documents allowed; - for stdin")
    .action(async (o: { filename: string }) => {
      // Every document is validated before anything is written.
      const docs = parseDocuments(readInputFile(o.filename), o.filename === "-" ? "stdin" : o.filename);
      await withStore(globals(), async (s) => {
        // On Kubernetes the API server allocates ClusterIPs (from its own --service-cluster-ip-range)
        // and NodePorts; elsewhere Trellis does, from the network config's serviceCIDR and nodePortRange.
        const services = await prepareServices(s, docs, { allocate: s.kind !== "kubernetes" });
        const lines: string[] = [];
        try {
          for (const d of docs) {
            const key = objectKey(d);
            const value = JSON.stringify(d.raw);
            const old = await s.get(key);
            await s.put(key, value);
            lines.push(`${d.kind.toLowerCase()}/${key.split("/").slice(4).join("/")} ${old ? (old.value === value ? "unchanged" : "configured") : "created"}\n`);
          }
        } catch (e) {
          await services.rollback();
          throw e;
        }
        await services.commit();
        for (const l of lines) process.stdout.write(l);
        // "created" must not read as "enforced": say where nothing enforces policies.
        if (docs.some((d) => d.kind.endsWith("Policy"))) {
          for (const w of enforcementGaps(await readNodes(s))) process.stderr.write(`warning: ${w}\n`);
        }
      });
    });
  const del = new Command("delete")
    .description("remove the objects named in a file")
    .requiredOption("-f, --filename <file>", "YAML or JSON file; - for stdin")
    .action(async (o: { filename: string }) => {
      const docs = parseDocuments(readInputFile(o.filename), o.filename === "-" ? "stdin" : o.filename);
      await withStore(globals(), async (s) => {
        for (const d of docs) {
          const key = objectKey(d);
          const gone = await s.delete(key);
          if (gone && d.kind === "Service" && s.kind !== "kubernetes") await releaseHeldBy(s, `${d.object.namespace}/${d.object.name}`);
          process.stdout.write(`${d.kind.toLowerCase()}/${key.split("/").slice(4).join("/")} ${gone ? "deleted" : "not found"}\n`);
        }
      });
    });
  return [apply, del];
}

/** Where stored policies are not enforced: nodes whose agent runs with --no-policy, or no node at all. */
export function enforcementGaps(nodes: ReadonlyArray<{ name: string; policy?: boolean }>): string[] {
  if (nodes.length === 0) return ["no node holds a lease yet: nothing enforces these policies until agents run"];
  const off = nodes.filter((n) => n.policy === false).map((n) => n.name);
  if (off.length === 0) return [];
  return [`network policy is NOT enforced on ${off.length === nodes.length ? "any node" : off.join(", ")} (${off.length === nodes.length ? "every" : "their"} agent runs with --no-policy)`];
}

async function loadModel(s: Datastore): Promise<PolicyModel> {
  const kvs = (await Promise.all(OBJECT_PREFIXES.map((p) => s.list(p)))).flatMap((r) => r.items);
  const model = modelFromObjects(kvs, (key, why) => process.stderr.write(`warning: ignoring ${key}: ${why}\n`));
  const leases = (await s.list(LEASE_PREFIX)).items.map((kv) => parseLease(kv.key, kv.value)).filter((l) => l !== undefined);
  model.nodes = leases.map((l) => ({ name: l.node, ips: [l.publicIp] }));
  return model;
}

const RESOURCES = ["namespaces", "pods", "policies", "endpoints", "nodes", "services", "endpointslices"] as const;
type Resource = (typeof RESOURCES)[number];

/** The names kubectl users type for each resource (singular, plural, short). */
export const RESOURCE_ALIASES: Readonly<Record<string, Resource>> = {
  namespaces: "namespaces", namespace: "namespaces", ns: "namespaces",
  pods: "pods", pod: "pods", po: "pods",
  policies: "policies", policy: "policies", networkpolicies: "policies", networkpolicy: "policies", netpol: "policies",
  trellispolicies: "policies", trellispolicy: "policies", globaltrellispolicies: "policies", globaltrellispolicy: "policies",
  endpoints: "endpoints", endpoint: "endpoints", ep: "endpoints",
  nodes: "nodes", node: "nodes", no: "nodes",
  services: "services", service: "services", svc: "services",
  endpointslices: "endpointslices", endpointslice: "endpointslices",
};

export function getCommand(globals: () => GlobalOptions): Command {
  return new Command("get")
    .description("list stored objects (kubectl's names work too: po, ns, netpol, no, ...)")
    .argument("<resource>", RESOURCES.join("|"))
    .addOption(outputOption())
    .action(async (name: string, o: { output: string }) => {
      const resource = RESOURCE_ALIASES[name.toLowerCase()];
      if (!resource) {
        const hint = suggestField(name.toLowerCase(), Object.keys(RESOURCE_ALIASES));
        throw new Error(`unknown resource "${name}"${hint ? ` (did you mean ${hint}?)` : ""}: one of ${RESOURCES.join(", ")}`);
      }
      if (resource === "nodes") {
        const rows = await withStore(globals(), (s) => readNodes(s));
        process.stdout.write(o.output === "table" ? renderNodes(rows) + "\n" : formatOutput({ nodes: rows }, o.output));
        return;
      }
      const prefix = {
        namespaces: NAMESPACE_PREFIX, pods: POD_PREFIX, policies: POLICY_PREFIX, endpoints: ENDPOINT_PREFIX,
        services: SERVICE_PREFIX, endpointslices: ENDPOINTSLICE_PREFIX,
      }[resource];
      if (resource === "endpointslices") {
        // Stored slices and, for Services with a selector and no stored slice, the ones agents derive from pods.
        const warn = (key: string, why: string): void => { process.stderr.write(`warning: ${key}: ${why}\n`); };
        const [{ slices }, stored] = await withStore(globals(), async (s) => Promise.all([readServices(s, warn), s.list(ENDPOINTSLICE_PREFIX)]));
        const storedKeys = new Set(stored.items.map((kv) => {
          const v = JSON.parse(kv.value) as { metadata?: { namespace?: string; name?: string } };
          return `${v.metadata?.namespace ?? "default"}/${v.metadata?.name}`;
        }));
        const source = (x: { namespace: string; name: string }): string => (storedKeys.has(`${x.namespace}/${x.name}`) ? "stored" : "derived");
        if (o.output !== "table") {
          process.stdout.write(formatOutput({ items: slices.map((x) => ({ ...x, source: source(x) })) }, o.output));
          return;
        }
        const ep = (e: (typeof slices)[number]["endpoints"][number]): string =>
          `${e.addresses[0] ?? "?"}${e.ready ? "" : e.serving && e.terminating ? "(terminating)" : "(not ready)"}${e.nodeName ? `@${e.nodeName}` : ""}`;
        process.stdout.write(printTable(["NAMESPACE", "NAME", "SERVICE", "ENDPOINTS", "PORTS", "SOURCE"], slices.map((x) => [
          x.namespace, x.name, x.service, x.endpoints.map(ep).join(",") || "<none>", x.ports.map((p) => `${p.port}/${p.protocol}`).join(",") || "<none>", source(x),
        ])) + "\n");
        return;
      }
      const items = await withStore(globals(), async (s) => (await s.list(prefix)).items);
      if (o.output !== "table") {
        process.stdout.write(formatOutput({ items: items.map((kv) => JSON.parse(kv.value) as unknown) }, o.output));
        return;
      }
      if (resource === "services") {
        const rows: string[][] = [];
        for (const kv of items) {
          try {
            {
              const v = parseService(JSON.parse(kv.value), STORED_SERVICE_OPTIONS);
              rows.push([v.namespace, v.name, v.type, v.clusterIP ?? "<none>",
                v.ports.map((p) => `${p.port}${p.nodePort ? `:${p.nodePort}` : ""}/${p.protocol}`).join(","),
                v.selector ? Object.entries(v.selector).map(([k, x]) => `${k}=${x}`).join(",") : "<none>"]);
            }
          } catch (e) {
            process.stderr.write(`warning: ${kv.key}: ${(e as Error).message}\n`);
          }
        }
        process.stdout.write(printTable(["NAMESPACE", "NAME", "TYPE", "CLUSTER-IP", "PORTS", "SELECTOR"], rows) + "\n");
        return;
      }
      if (resource === "endpoints") {
        const rows = items.map((kv) => parseEndpoint(kv.value)).filter((e) => e !== undefined)
          .map((e) => [`${e.namespace}/${e.pod}`, e.node, e.ips.join(","), e.hostIf, e.mode]);
        process.stdout.write(printTable(["POD", "NODE", "IPS", "HOST IF", "MODE"], rows) + "\n");
        return;
      }
      const model = modelFromObjects(items, (key, why) => process.stderr.write(`warning: ${key}: ${why}\n`));
      const labels = (l: Record<string, string>): string => Object.entries(l).map(([k, v]) => `${k}=${v}`).join(",") || "-";
      if (resource === "namespaces") {
        process.stdout.write(printTable(["NAME", "LABELS"], model.namespaces.map((n) => [n.name, labels(n.labels)])) + "\n");
      } else if (resource === "pods") {
        process.stdout.write(printTable(["NAMESPACE", "NAME", "LABELS", "PORTS"], model.pods.map((p) => [p.namespace, p.name, labels(p.labels),
          p.ports.map((x) => `${x.name ? `${x.name}:` : ""}${x.containerPort}/${x.protocol}`).join(",") || "-"])) + "\n");
      } else {
        process.stdout.write(printTable(["KIND", "NAMESPACE", "NAME", "ORDER", "TYPES"], model.policies.map((p) => [
          p.kind, p.kind === "GlobalTrellisPolicy" ? "*" : (p.namespace ?? ""), p.name, p.kind === "NetworkPolicy" ? "-" : String(p.order), p.policyTypes.join(","),
        ])) + "\n");
      }
    });
}

/** "NS/POD" or "POD" (namespace default) → the pod's first address. */
function podAddress(model: PolicyModel, ref: string, flag: string): string {
  const [ns, name] = ref.includes("/") ? ref.split("/", 2) : ["default", ref];
  const ep = model.endpoints.find((e) => e.namespace === ns && e.pod === name);
  if (!ep || ep.ips.length === 0) throw new Error(`${flag} ${ref}: no endpoint for pod ${ns}/${name} (is it attached?)`);
  return ep.ips[0]!;
}

export function parsePort(text: string): { port: number; protocol: Protocol } {
  const m = /^(\d{1,5})(?:\/([A-Za-z]+))?$/.exec(text);
  const protocol = (m?.[2] ?? "TCP").toUpperCase() as Protocol;
  const port = Number(m?.[1]);
  if (!m || port < 1 || port > 65535 || !PROTOCOLS.includes(protocol)) throw new Error(`--port "${text}": use PORT[/TCP|UDP|SCTP], e.g. 80/TCP`);
  return { port, protocol };
}

function describe(d: DirectionVerdict | undefined, what: string): string {
  if (!d) return `  ${what}: not a pod, no policy applies`;
  const logged = d.logged.length ? `\n    logged: ${d.logged.join("; ")}` : "";
  return `  ${what}: ${d.allowed ? "ALLOW" : "DENY"} — ${d.reason}${logged}`;
}

export function policyCommand(globals: () => GlobalOptions): Command {
  const policy = new Command("policy").description("network policy tools");
  policy.command("model")
    .description("the joined policy model as JSON (namespaces, pods, endpoints, policies, nodes), as explain sees it")
    .action(async () => {
      process.stdout.write(JSON.stringify(await withStore(globals(), loadModel)) + "\n");
    });
  policy.command("explain")
    .description("the verdict for a packet in each direction, and the policy and rule that decided it")
    .option("--from <ns/pod>", "source pod")
    .option("--from-ip <ip>", "source address (not a pod)")
    .option("--to <ns/pod>", "destination pod")
    .option("--to-ip <ip>", "destination address (not a pod)")
    .option("--to-service <ns/name>", "a Service: every endpoint the connection may land on, each with its verdict")
    .requiredOption("--port <port/proto>", "destination port, e.g. 80/TCP; with --to-service a service port: 80, 80/UDP or its name")
    .option("--protocol <proto>", "with --to-service: TCP, UDP or SCTP (default: the port's, else TCP)")
    .addOption(outputOption(["text", "json", "yaml"]))
    .action(async (o: { from?: string; fromIp?: string; to?: string; toIp?: string; toService?: string; port: string; protocol?: string; output: string }) => {
      if (!o.from === !o.fromIp) throw new Error("give exactly one of --from NS/POD or --from-ip IP");
      if ([o.to, o.toIp, o.toService].filter((x) => x !== undefined).length !== 1) throw new Error("give exactly one of --to NS/POD, --to-ip IP or --to-service NS/NAME");
      if (o.protocol !== undefined && !o.toService) throw new Error("--protocol goes with --to-service (else give --port PORT/PROTO)");
      if (o.toService) {
        const { model, services } = await withStore(globals(), async (s) => ({
          model: await loadModel(s), services: await readServices(s, (key, why) => process.stderr.write(`warning: ignoring ${key}: ${why}\n`)),
        }));
        const src = o.from ? podAddress(model, o.from, "--from") : o.fromIp!;
        const e = explainToService(model, services, { service: o.toService, port: o.port, ...(o.protocol ? { protocol: o.protocol } : {}), src });
        process.stdout.write(o.output === "text" ? renderServiceExplanation(e, o.from ?? src) + "\n" : formatOutput(e, o.output));
        return;
      }
      const { port, protocol } = parsePort(o.port);
      const model = await withStore(globals(), loadModel);
      const src = o.from ? podAddress(model, o.from, "--from") : o.fromIp!;
      const dst = o.to ? podAddress(model, o.to, "--to") : o.toIp!;
      const v = evaluate(new PolicyIndex(model), { src, dst, protocol, port });
      const bridge = model.endpoints.filter((e) => e.mode === "bridge" && (e.ips.includes(src) || e.ips.includes(dst)));
      if (o.output !== "text") {
        process.stdout.write(formatOutput({ src, dst, port, protocol, ...v, notEnforced: bridge.map((e) => `${e.namespace}/${e.pod}`) }, o.output));
        return;
      }
      const lines = [
        `${o.from ?? src} (${src}) -> ${o.to ?? dst} (${dst}) ${port}/${protocol}: ${v.allowed ? "ALLOWED" : "DENIED"}`,
        describe(v.egress, "egress "),
        describe(v.ingress, "ingress"),
        "  replies of an allowed connection are always allowed (conntrack)",
      ];
      for (const e of bridge) lines.push(`  note: ${e.namespace}/${e.pod} is attached in bridge mode: policy is NOT enforced for it`);
      process.stdout.write(lines.join("\n") + "\n");
    });
  return policy;
}
