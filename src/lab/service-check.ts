// `lab check` for Services: what to probe and what should answer (pure), and the judgement of
// what a Service probe saw. For every Service port (TCP, UDP) and every node with pods, one pod of
// that node (one that is not itself an endpoint when there is one) connects to ClusterIP:port
// again and again until every endpoint that should answer has answered, within 20 attempts per
// endpoint. Who should answer is `policy explain --to-service`'s answer (explainServicePort):
// the usable endpoints (internalTrafficPolicy Local: those of the source's node) that policy
// allows from that source, evaluated on the DNATed packet. An endpoint that policy blocks, or that
// is not usable (not ready), must never answer. A Service port without any usable endpoint must
// refuse at once (TCP reset, ICMP port unreachable); with internalTrafficPolicy Local and none on
// the node, connections are dropped.
import { explainServicePort, type ServiceExplanation } from "../policy/explain-service.js";
import type { PolicyIndex } from "../policy/evaluate.js";
import type { PolicyModel } from "../policy/model.js";
import type { ServicesInput } from "../services/controller.js";
import type { ProbeTarget, ServiceProbeResult } from "./probe.js";

/** A lab pod as the check knows it. */
export interface CheckPod {
  /** "namespace/name". */
  key: string;
  ip: string;
  node: string;
  /** What its probe server serves: "8080/TCP". */
  serves: string[];
}

export interface ServiceProbeJob {
  from: CheckPod;
  explanation: ServiceExplanation;
  target: ProbeTarget;
}

/** How one endpoint did in one Service probe. */
export interface ServiceEndpointResult {
  /** "ip:port". */
  endpoint: string;
  pod?: string;
  node?: string;
  /** answers: must answer; blocked: policy closes it from this source; never: not chosen (not ready...); self: the source itself (hairpin, not judged). */
  expect: "answers" | "blocked" | "never" | "self";
  answers: number;
  why: string;
}

export interface ServiceCheckCell {
  from: string;
  node: string;
  /** "namespace/name". */
  service: string;
  clusterIP: string;
  /** The service port: "80/TCP". */
  probe: string;
  outcome: ServiceExplanation["outcome"];
  endpoints: ServiceEndpointResult[];
  /** "2/3": endpoints that answered of those that should. */
  reached: string;
  attempts: number;
  refused: number;
  timedOut: number;
  ms: number;
  passed: boolean;
  /** Why it failed, one line each: which endpoint never answered, which answered but should not. */
  failures: string[];
}

/** Attempts for a Service probe: 20 per endpoint that should answer; a few when none should. */
export const attemptsFor = (shouldAnswer: number, endpoints: number): number =>
  shouldAnswer > 0 ? 20 * endpoints : Math.max(3, 2 * endpoints + 1);

/** The Service probes of a lab: every TCP/UDP Service port, from one pod on every node. */
export function serviceProbeJobs(pods: readonly CheckPod[], model: PolicyModel, input: ServicesInput, idx: PolicyIndex): ServiceProbeJob[] {
  const jobs: ServiceProbeJob[] = [];
  const nodes = [...new Set(pods.map((p) => p.node))];
  for (const svc of input.services) {
    const addresses = new Set(input.slices.filter((s) => s.namespace === svc.namespace && s.service === svc.name).flatMap((s) => s.endpoints.map((e) => e.addresses[0])));
    for (const port of svc.ports) {
      if (port.protocol === "SCTP") continue;
      for (const node of nodes) {
        const here = pods.filter((p) => p.node === node);
        const from = here.find((p) => !addresses.has(p.ip)) ?? here[0]!;
        const explanation = explainServicePort(model, input, svc, port, from.ip, idx);
        const should = explanation.endpoints.filter((e) => e.allowed && e.ip !== from.ip);
        jobs.push({
          from, explanation,
          target: {
            ip: svc.clusterIP!, port: port.port, protocol: port.protocol, expect: should.map((e) => e.ip),
            attempts: attemptsFor(should.length, explanation.endpoints.length),
          },
        });
      }
    }
  }
  return jobs;
}

/** Judges what a Service probe saw against its explanation; `pods` names what each pod serves (for a hint). */
export function judgeServiceProbe(job: ServiceProbeJob, r: ServiceProbeResult | { error: string }, pods: readonly CheckPod[]): ServiceCheckCell {
  const e = job.explanation;
  const probe = `${e.servicePort.port}/${e.servicePort.protocol}`;
  const base = { from: job.from.key, node: job.from.node, service: e.service, clusterIP: e.clusterIP, probe, outcome: e.outcome };
  const endpoints: ServiceEndpointResult[] = [
    ...e.endpoints.map((x): ServiceEndpointResult => ({
      endpoint: `${x.ip}:${x.port}`, ...(x.pod ? { pod: x.pod } : {}), ...(x.node ? { node: x.node } : {}),
      expect: x.ip === job.from.ip ? "self" : x.allowed ? "answers" : "blocked", answers: 0,
      why: x.ip === job.from.ip ? "the source itself (hairpin): not judged"
        : [x.egress && `egress: ${x.egress.reason}`, x.ingress && `ingress: ${x.ingress.reason}`].filter(Boolean).join("; ") || "no policy applies",
    })),
    ...e.notChosen.map((x): ServiceEndpointResult => ({
      endpoint: `${x.ip}:${x.port}`, ...(x.pod ? { pod: x.pod } : {}), ...(x.node ? { node: x.node } : {}), expect: "never", answers: 0, why: x.why,
    })),
  ];
  if ("error" in r) {
    return { ...base, endpoints, reached: `0/${endpoints.filter((x) => x.expect === "answers").length}`, attempts: 0, refused: 0, timedOut: 0, ms: 0, passed: false, failures: [r.error] };
  }
  const failures: string[] = [];
  const label = (x: ServiceEndpointResult): string => `${x.endpoint}${x.pod ? ` (${x.pod}${x.node ? ` on ${x.node}` : ""})` : ""}`;
  for (const [address, n] of Object.entries(r.answered)) {
    const mine = endpoints.filter((x) => x.endpoint.startsWith(`${address}:`));
    if (mine.length === 0) {
      failures.push(`answered by ${address} ${n} time(s), which is not an endpoint of ${e.service} ${probe}`);
      continue;
    }
    for (const x of mine) x.answers += n;
  }
  for (const x of endpoints) {
    if (x.expect === "answers" && x.answers === 0) {
      const serves = pods.find((p) => x.endpoint.startsWith(`${p.ip}:`))?.serves;
      const port = `${x.endpoint.split(":")[1]}/${e.servicePort.protocol}`;
      const hint = serves && !serves.includes(port) ? `; its pod serves no ${port} (declare it in the pod's ports)` : "";
      failures.push(`endpoint ${label(x)} never answered in ${r.attempts} attempt(s) (${r.timedOut} timed out, ${r.refused} refused)${hint}`);
    }
    if ((x.expect === "blocked" || x.expect === "never") && x.answers > 0) {
      failures.push(`endpoint ${label(x)} answered ${x.answers} time(s) but should not (${x.expect === "blocked" ? `policy: ${x.why}` : x.why})`);
    }
  }
  if (e.outcome === "rejected" && (r.refused === 0 || r.timedOut > 0)) {
    failures.push(`no usable endpoint: every connection should be refused at once, but ${r.timedOut} of ${r.attempts} timed out`);
  }
  const should = endpoints.filter((x) => x.expect === "answers");
  return {
    ...base, endpoints, reached: `${should.filter((x) => x.answers > 0).length}/${should.length}`,
    attempts: r.attempts, refused: r.refused, timedOut: r.timedOut, ms: r.ms, passed: failures.length === 0, failures,
  };
}

/** One word for a Service cell in the table. */
export function serviceSummary(c: ServiceCheckCell): string {
  if (c.outcome === "rejected") return c.refused > 0 && c.timedOut === 0 ? "refused (no endpoint)" : "NOT refused";
  if (c.outcome === "dropped") return "dropped (ITP Local, none on node)";
  const blocked = c.endpoints.filter((x) => x.expect === "blocked").length;
  const never = c.endpoints.filter((x) => x.expect === "never").length;
  const self = c.endpoints.some((x) => x.expect === "self");
  const rest = `${blocked ? `, ${blocked} closed by policy` : ""}${never ? `, ${never} never chosen (not ready)` : ""}${self ? ", itself not judged (hairpin)" : ""}`;
  return c.reached.endsWith("/0") ? `none should answer${rest}` : `${c.reached} reached${rest}`;
}
