// `trellis lab ...`: build, inspect, check and remove a cluster of network namespaces on this host.
import { Command, Option } from "commander";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import {
  etcdControl, LAB_RESYNC_SECONDS, labApply, labCheck, labDown, labExists, labPodAdd, labPodDelete, labStatus, labUp, listLabs, requireState, saveState, startAgent, stopAgent, verdict, type CheckCell, type CheckReport, type LabTools,
} from "../lab/lab.js";
import { processAlive } from "../kernel/netns.js";
import { parseLabSpec, settingsWithSpec } from "../lab/spec.js";
import { serviceSummary } from "../lab/service-check.js";
import { LAB_BACKENDS, LAB_DATASTORES, labWarnings, type LabBackend, type LabDatastore } from "../lab/plan.js";
import { readInputFile } from "../model/input.js";
import { MODES, type Mode } from "../cni/config.js";
import { formatOutput, outputOption, printTable } from "./table.js";

/** Where the plugin executables are: beside this executable (build/cni), or --cni-bin-dir. */
export function defaultCniBinDir(): string {
  const candidates = [
    process.env.TRELLIS_CNI_BIN_DIR,
    path.join(path.dirname(process.execPath), "cni"),
    path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "build", "cni"),
  ];
  for (const c of candidates) if (c && fs.existsSync(path.join(c, "trellis"))) return c;
  return "/opt/cni/bin";
}

/** The trellis executable itself, for starting agents: this binary when compiled, else build/trellis. */
export function selfExecutable(cniBinDir: string): string {
  if ((globalThis as { Bun?: unknown }).Bun && !process.execPath.endsWith("/bun")) return process.execPath;
  return path.join(cniBinDir, "..", "trellis");
}

function tools(cniBinDir?: string): LabTools {
  const dir = cniBinDir ?? defaultCniBinDir();
  return { cniBinDir: dir, trellisBin: selfExecutable(dir) };
}

const int = (name: string) => (v: string): number => {
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n)) throw new Error(`${name} "${v}" is not a whole number`);
  return n;
};

const progress = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

function requireRoot(): void {
  if (process.getuid?.() !== 0) throw new Error("the lab creates network namespaces: run as root");
}

export function renderCheck(r: CheckReport): string {
  const short = (v: string): string => ({ ok: "ok", FAIL: "FAIL", blocked: "-", UNEXPECTED: "LEAK", unreachable: "x" })[v] ?? v;
  // One column per destination and probe (a pod's declared ports, or ICMP).
  const columns: Array<{ to: string; probe: string }> = [];
  for (const to of r.targets) {
    for (const c of r.cells) if (c.to === to && !columns.some((x) => x.to === to && x.probe === c.probe)) columns.push({ to, probe: c.probe });
  }
  const rows = r.pods.map((from) => [from, ...columns.map((col) => {
    const c = r.cells.find((x) => x.from === from && x.to === col.to && x.probe === col.probe);
    return c ? short(verdict(c)) : "";
  })]);
  const lines = [printTable(["from \\ to", ...columns.map((c) => (c.probe === "ICMP" ? c.to : `${c.to}:${c.probe}`))], rows)];
  if (r.services.length > 0) {
    lines.push("", printTable(["from", "", "service:port", "cluster ip", "endpoints", ""], r.services.map((c) => [
      `${c.from} (${c.node})`, "→", `svc ${c.service}:${c.probe}`, c.clusterIP, serviceSummary(c), c.passed ? "ok" : "FAIL",
    ])), "");
  }
  const count = (f: (c: CheckCell) => boolean): number => r.cells.filter(f).length;
  const expected = count((c) => c.expected);
  const parts = [
    `${r.cells.length} paths probed: ${count((c) => c.expected && c.reached)}/${expected} expected open are reachable`,
    `${count((c) => !c.expected && !c.unreachableByConfig && !c.reached)} closed by policy as expected`,
    `${count((c) => !c.expected && c.reached)} open that should not be`,
  ];
  if (r.unreachable.cells > 0) {
    const refused = r.cells.filter((c) => c.unreachableByConfig && !c.accepted).length;
    parts.push(`${r.unreachable.cells} unreachable by configuration (${refused === 0 ? "as this lab was made" : `${refused} NOT accepted: the lab was not made with --allow-unreachable`})`);
  }
  if (r.services.length > 0) {
    parts.push(`${r.services.length} Service probe(s): ${r.services.filter((c) => c.passed).length} as expected`);
  }
  lines.push(parts.join("; "));
  for (const why of r.unreachable.reasons) lines.push(`  unreachable by configuration: ${why}`);
  for (const c of r.cells.filter((x) => x.expected !== x.reached)) {
    lines.push(c.expected
      ? `  FAIL ${c.from} -> ${c.to} ${c.probe}: should connect (${c.why}); ${c.cause ? `cause: ${c.cause}` : "cause not established"}`
      : `  LEAK ${c.from} -> ${c.to} ${c.probe}: connects but should not (${c.why})`);
  }
  for (const c of r.services.filter((x) => !x.passed)) {
    for (const f of c.failures) lines.push(`  FAIL ${c.from} -> svc ${c.service} ${c.probe} (${c.clusterIP}): ${f}`);
  }
  for (const w of r.warnings) lines.push(`warning: ${w}`);
  lines.push("legend: ok = reachable as expected, - = closed as expected (policy), x = unreachable by configuration, FAIL = should connect but does not, LEAK = connects but should not");
  lines.push(r.passed ? "lab check: PASS" : "lab check: FAIL");
  return lines.join("\n");
}

export function labCommand(): Command {
  const lab = new Command("lab").description("a cluster of network namespaces on this host, with real plugin calls");
  const cniDir = new Option("--cni-bin-dir <dir>", "directory holding the trellis and trellis-ipam executables");

  lab.command("up")
    .description("build a lab: underlay switch, nodes, pods attached by the CNI plugin")
    .requiredOption("--name <name>", "lab name (1-12 lower-case letters/digits)")
    .option("--nodes <n>", "number of nodes", int("--nodes"), 2)
    .option("--pods-per-node <n>", "pods on each node", int("--pods-per-node"), 3)
    .addOption(new Option("--mode <mode>", "pod attachment mode").choices(MODES).default("routed"))
    .addOption(new Option("--backend <type>", "how nodes are connected (none: no agents, pods reach only their node)").choices(LAB_BACKENDS).default("vxlan"))
    .option("--segments <n>", "underlay subnets, joined by a router", int("--segments"), 1)
    .addOption(new Option("--datastore <kind>", "embedded (no server), a real etcd, or kubernetes (a Kubernetes-protocol API server) in a control-plane namespace").choices(LAB_DATASTORES).default("embedded"))
    .option("--no-nat-outgoing", "do not masquerade pod traffic to the outside")
    .option("--spec <file>", "YAML lab spec: settings, namespaces with labels, pods with namespace, labels, node and ports, services (README: Lab spec)")
    .option("--pod-cidr <cidr>", "pod network (with agents)")
    .option("--subnet-len <n>", "node block prefix length (with agents)", int("--subnet-len"))
    .option("--allow-unreachable", "build a topology that leaves node pairs without a path (host-gw across segments); lab check accepts those pairs")
    .option("--resync <seconds>", "agents' periodic kernel resync (drift repair)", int("--resync"), LAB_RESYNC_SECONDS)
    .option("--lease-ttl <seconds>", "agents' lease TTL (default 10; large labs on a small machine need more)", int("--lease-ttl"))
    .option("--ready-timeout <seconds>", "how long to wait for the agents to lease and converge (default 30)", int("--ready-timeout"))
    .option("--tor", "bgp: a ToR router (FRR) per segment carries the pod routes between segments")
    .option("--route-reflectors <k>", "bgp: the first K nodes are route reflectors", int("--route-reflectors"))
    .option("--no-node-mesh", "bgp: no node-to-node mesh (nodes peer with reflectors and ToRs only)")
    .addOption(cniDir)
    .action(async (o: {
      name: string; nodes: number; podsPerNode: number; mode: Mode; backend: LabBackend; segments: number; datastore: LabDatastore;
      natOutgoing: boolean; cniBinDir?: string; podCidr?: string; subnetLen?: number; spec?: string; allowUnreachable?: boolean; resync: number;
      leaseTtl?: number; readyTimeout?: number; tor?: boolean; routeReflectors?: number; nodeMesh: boolean;
    }, cmd: Command) => {
      requireRoot();
      const spec = o.spec ? parseLabSpec(readInputFile(o.spec), o.spec) : undefined;
      if (spec) {
        const typed = new Set(Object.keys(o).filter((k) => cmd.getOptionValueSource(k) === "cli"));
        Object.assign(o, settingsWithSpec(spec, o, typed, o.spec!));
      }
      const existed = labExists(o.name);
      const started = Date.now();
      try {
        const s = await labUp({
          name: o.name, nodes: o.nodes, podsPerNode: o.podsPerNode, mode: o.mode, backend: o.backend, segments: o.segments,
          datastore: o.datastore, natOutgoing: o.natOutgoing, resyncSeconds: o.resync,
          ...(o.leaseTtl !== undefined ? { leaseTtlSeconds: o.leaseTtl } : {}), ...(o.readyTimeout !== undefined ? { readySeconds: o.readyTimeout } : {}),
          ...(o.podCidr !== undefined ? { podNetwork: o.podCidr } : {}), ...(o.subnetLen !== undefined ? { subnetLen: o.subnetLen } : {}),
          ...(o.allowUnreachable ? { allowUnreachable: true } : {}),
          ...(o.tor ? { tor: true } : {}), ...(o.routeReflectors !== undefined ? { routeReflectors: o.routeReflectors } : {}),
          ...(o.nodeMesh === false ? { nodeMesh: false } : {}),
          ...(spec ? { spec } : {}),
        }, tools(o.cniBinDir), progress);
        progress(`lab ${o.name} is up: ${s.plan.nodes.length} node(s), ${Object.keys(s.podIps).length} pod(s) in ${Date.now() - started} ms`);
        for (const w of labWarnings(s.plan)) progress(`warning: ${w}`);
        if (s.datastoreUrl) progress(`topology page: trellis --lab ${o.name} ui   ${s.datastoreUrl.startsWith("embedded") ? "(then open http://127.0.0.1:8088/)" : "(served in the lab's control-plane namespace: see README, Topology page)"}`);
      } catch (e) {
        progress(`lab up failed: ${(e as Error).message}`);
        // Only what this command made is worth a hint: "already exists" must not lead anyone to
        // remove the lab that does.
        if (!existed && labExists(o.name)) progress(`(run "trellis lab down --name ${o.name}" to remove what was made)`);
        process.exitCode = 1;
      }
    });

  lab.command("status")
    .description("show the lab's nodes and pods")
    .requiredOption("--name <name>", "lab name")
    .addOption(outputOption())
    .action(async (o: { name: string; output: string }) => {
      const s = await labStatus(o.name);
      if (o.output !== "table") {
        process.stdout.write(formatOutput(s, o.output));
        return;
      }
      process.stdout.write(`backend ${s.backend}${s.datastore ? `, datastore ${s.datastore}` : ""}\n\n`);
      process.stdout.write(printTable(["NODE", "NETNS", "IP", "SEGMENT", "SUBNET", "AGENT PID", ...(s.backend === "bgp" ? ["BGP SESSIONS"] : [])],
        s.nodes.map((n) => [n.name, n.netns, n.ip, String(n.segment), n.subnet, n.agentPid ? String(n.agentPid) : "-",
          ...(s.backend === "bgp" ? [n.bgp ? n.bgp.map((x) => `${x.peer}:${x.state}`).join(" ") || "-" : "(BIRD not running)"] : [])])) + "\n\n");
      if (s.tors) {
        process.stdout.write(printTable(["TOR", "NETNS", "IP", "SPINE IP", "AS", "BGP SESSIONS"], s.tors.map((t) => [
          t.name, t.netns, t.ip, t.spineIp, String(t.asNumber), t.bgp ? t.bgp.map((x) => `${x.peer}:${x.state}`).join(" ") || "-" : "(FRR not answering)",
        ])) + "\n\n");
      }
      process.stdout.write(printTable(["POD", "NAMESPACE", "NODE", "IP", "NETNS"], s.pods.map((p) => [p.name, p.namespace, p.node, p.ip, p.netns])) + "\n");
      for (const w of s.warnings) process.stdout.write(`\nwarning: ${w}\n`);
    });

  lab.command("check")
    .description("probe every pod pair and every Service port (from a pod on each node, until every endpoint answered) and compare with what should connect; exit 0 only if all agree")
    .requiredOption("--name <name>", "lab name")
    .addOption(outputOption())
    .action(async (o: { name: string; output: string }) => {
      requireRoot();
      const r = await labCheck(o.name, tools());
      process.stdout.write(o.output === "table" ? renderCheck(r) + "\n" : formatOutput(r, o.output));
      if (!r.passed) process.exitCode = 1;
    });

  lab.command("down")
    .description("remove every namespace, link and file the lab made")
    .requiredOption("--name <name>", "lab name")
    .addOption(cniDir)
    .action(async (o: { name: string; cniBinDir?: string }) => {
      requireRoot();
      const r = await labDown(o.name, tools(o.cniBinDir), progress);
      for (const e of r.errors) progress(`warning: ${e}`);
      progress(`lab ${o.name} is down`);
    });

  const agent = lab.command("agent").description("stop or start a lab node's agent (the data plane stays while it is stopped)");
  for (const action of ["stop", "start", "kill"] as const) {
    agent.command(action)
      .description(action === "kill" ? "SIGKILL the agent (as a crash would)" : `${action} the agent`)
      .requiredOption("--name <name>", "lab name")
      .requiredOption("--node <node>", "node name")
      .addOption(cniDir)
      .action(async (o: { name: string; node: string; cniBinDir?: string }) => {
        requireRoot();
        const s = requireState(o.name);
        const node = s.plan.nodes.find((n) => n.name === o.node);
        if (!node) throw new Error(`lab ${o.name} has no node ${o.node}`);
        if (!s.datastoreUrl) throw new Error(`lab ${o.name} runs no agents`);
        if (action === "start") {
          const running = s.pids.find((p) => p.what === `agent ${o.node}`);
          if (running && processAlive(running.pid)) throw new Error(`the agent of ${o.node} is already running (pid ${running.pid})`);
          progress(`started agent ${o.node} (pid ${startAgent(s.plan, s, node, tools(o.cniBinDir).trellisBin)})`);
        } else {
          const pid = await stopAgent(s, o.node, action === "kill");
          progress(pid ? `${action === "kill" ? "killed" : "stopped"} agent ${o.node} (pid ${pid})` : `the agent of ${o.node} was not running`);
        }
      });
  }

  const pod = lab.command("pod").description("add or remove a pod in a running lab (as a runtime would)");
  pod.command("add")
    .description("add a pod; with --labels a Service selects (and --ports serving its targetPort) it becomes one of that Service's endpoints")
    .requiredOption("--name <name>", "lab name")
    .requiredOption("--pod <ns/name>", "pod namespace/name")
    .requiredOption("--node <node>", "node to run it on")
    .option("--labels <k=v,...>", "pod labels", "")
    .option("--ports <port/proto,...>", "ports it declares and serves, e.g. http:80/TCP,53/UDP (a Service's named targetPort resolves against them)", "")
    .addOption(cniDir)
    .action((o: { name: string; pod: string; node: string; labels: string; ports: string; cniBinDir?: string }) => {
      requireRoot();
      const [ns, podName] = o.pod.includes("/") ? o.pod.split("/", 2) : ["default", o.pod];
      const labels = Object.fromEntries(o.labels.split(",").filter(Boolean).map((kv) => {
        const [k, v] = kv.split("=");
        if (!k || v === undefined) throw new Error(`--labels "${kv}": use key=value`);
        return [k, v];
      }));
      const ports = o.ports.split(",").filter(Boolean).map((t) => {
        const m = /^(?:([a-z0-9-]+):)?(\d+)(?:\/(TCP|UDP|SCTP))?$/i.exec(t);
        if (!m) throw new Error(`--ports "${t}": use [name:]port[/TCP|UDP|SCTP]`);
        return { ...(m[1] ? { name: m[1] } : {}), port: Number(m[2]), protocol: (m[3] ?? "TCP").toUpperCase() as "TCP" | "UDP" | "SCTP" };
      });
      const r = labPodAdd(o.name, { namespace: ns!, name: podName!, node: o.node, labels, ports }, tools(o.cniBinDir));
      process.stdout.write(JSON.stringify({ pod: `${ns}/${podName}`, node: o.node, netns: r.pod.netns, ips: r.ips }) + "\n");
    });
  lab.command("apply")
    .description("store Services, EndpointSlices (and any object `trellis apply` takes) in a running lab, as `trellis --lab NAME apply -f` does; lab check then probes the Services")
    .requiredOption("--name <name>", "lab name")
    .requiredOption("-f, --filename <file>", "YAML or JSON file, several documents allowed; - for stdin")
    .addOption(cniDir)
    .action((o: { name: string; filename: string; cniBinDir?: string }) => {
      requireRoot();
      process.stdout.write(labApply(o.name, readInputFile(o.filename), tools(o.cniBinDir)));
    });
  pod.command("delete")
    .requiredOption("--name <name>", "lab name")
    .requiredOption("--pod <ns/name>", "pod namespace/name")
    .addOption(cniDir)
    .action(async (o: { name: string; pod: string; cniBinDir?: string }) => {
      requireRoot();
      const [ns, podName] = o.pod.includes("/") ? o.pod.split("/", 2) : ["default", o.pod];
      await labPodDelete(o.name, { namespace: ns!, name: podName! }, tools(o.cniBinDir));
      progress(`pod ${ns}/${podName} deleted`);
    });

  const etcd = lab.command("etcd").description("stop or start the lab's etcd (datastore outage tests)");
  for (const action of ["stop", "start"] as const) {
    etcd.command(action)
      .requiredOption("--name <name>", "lab name")
      .action(async (o: { name: string }) => {
        requireRoot();
        const s = requireState(o.name);
        const pid = await etcdControl(s, action);
        saveState(s);
        progress(`etcd ${action === "stop" ? "stopped" : "running"} (pid ${pid})`);
      });
  }

  // What `kubectl apply -f` / `kubectl delete -f` do, for a lab on the Kubernetes datastore (and
  // its tests): objects written straight to the API server, as a cluster user would.
  lab.command("kube-apply", { hidden: true })
    .description("create or replace Kubernetes objects through the API server (kubectl apply)")
    .requiredOption("--kubeconfig <file>", "the kubeconfig (a lab's: <lab dir>/apiserver/admin.kubeconfig)")
    .requiredOption("-f, --filename <file>", "YAML objects (- for stdin)")
    .option("--delete", "delete them instead")
    .action(async (o: { kubeconfig: string; filename: string; delete?: boolean }) => {
      const { kubeApply, loadKubeConfig, parseObjects } = await import("../k8s/apply.js");
      for (const line of await kubeApply(loadKubeConfig(o.kubeconfig), parseObjects(readInputFile(o.filename)), o.delete)) process.stdout.write(`${line}\n`);
    });

  lab.command("kube-get", { hidden: true })
    .description("read Kubernetes objects from the API server as JSON (kubectl get -o json)")
    .requiredOption("--kubeconfig <file>", "the kubeconfig")
    .argument("<apiVersion>", "e.g. v1")
    .argument("<kind>", "e.g. Node")
    .argument("[name]", "one object (default: all of the kind)")
    .option("-n, --namespace <ns>", "the object's namespace")
    .action(async (apiVersion: string, kind: string, name: string | undefined, o: { kubeconfig: string; namespace?: string }) => {
      const { kubeGet, loadKubeConfig } = await import("../k8s/apply.js");
      process.stdout.write(`${JSON.stringify(await kubeGet(loadKubeConfig(o.kubeconfig), apiVersion, kind, name, o.namespace), null, 2)}\n`);
    });

  // the lab's fake Kubernetes API server, run as a process in its control-plane namespace (src/k8s/APISERVER.md)
  lab.command("apiserver", { hidden: true })
    .requiredOption("--listen <host:port>", "address to serve HTTP on")
    .requiredOption("--users <file>", "JSON list of users: {token, name, rules?}")
    .option("--calls <file>", "append one JSON line per API call")
    .action(async (o: { listen: string; users: string; calls?: string }) =>
      (await import("../k8s/apiserver-main.js")).runApiServerCommand({ listen: o.listen, usersFile: o.users, ...(o.calls ? { callsFile: o.calls } : {}) }));

  lab.command("list")
    .description("list the labs on this host")
    .action(() => {
      for (const n of listLabs()) process.stdout.write(`${n}\n`);
    });

  return lab;
}
