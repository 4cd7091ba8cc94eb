// The Kubernetes install (deploy/trellis.yaml) as data: Namespace, ServiceAccount, ClusterRole
// (rendered from rbac.ts AGENT_RULES) and binding, the CRDs (crds.ts), the ConfigMap with the
// network to create and the CNI config template, and the agent DaemonSet. Pure; render-manifests.ts
// prints it, and manifests.test.ts checks the file in the repository is exactly this rendering.
//
// Objects are typed with kubernetes-models' interfaces (type-only imports, erased at build), so
// a misspelled field in this file fails `tsc` before any test runs.
//
// Privileges (each justified in the comments rendered into the YAML, and in deploy/README.md): the
// agent container is not privileged; it has NET_ADMIN, NET_BIND_SERVICE and SYS_ADMIN (setns into
// pods' network namespaces). One init container is privileged, for one write: net.ipv4.ip_forward
// (/proc/sys is read-only in every unprivileged container, and Kubernetes forbids sysctls on
// hostNetwork pods).
import type { IClusterRole } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole";
import type { IClusterRoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding";
import type { ICustomResourceDefinition } from "kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition";
import type { IConfigMap } from "kubernetes-models/v1/ConfigMap";
import type { IContainer } from "kubernetes-models/v1/Container";
import type { INamespace } from "kubernetes-models/v1/Namespace";
import type { IVolume } from "kubernetes-models/v1/Volume";
import type { IServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import type { IDaemonSet } from "kubernetes-models/apps/v1/DaemonSet";
import { Document, isMap, isScalar, type Node } from "yaml";
import { API_VERSION, CRDS, NETWORK_OBJECT_NAME } from "./crds.js";
import { AGENT_RULES, clusterRoleRules } from "./rbac.js";

export const NAMESPACE = "trellis-system";
export const AGENT_NAME = "trellis-agent";
export const CONFIG_MAP_NAME = "trellis-config";
/** podman build -f Containerfile -t trellis:dev . names it localhost/trellis:dev. */
export const DEFAULT_IMAGE = "localhost/trellis:dev";

/** Paths inside the image (Containerfile). */
export const IMAGE_PATHS = {
  trellis: "/usr/local/bin/trellis",
  cniDir: "/opt/trellis/cni",
  cniPlugins: ["trellis", "trellis-ipam"],
} as const;

/** Host paths, and where the containers see them. */
export const HOST_PATHS = {
  cniBin: { host: "/opt/cni/bin", mount: "/host/opt/cni/bin" },
  cniNet: { host: "/etc/cni/net.d", mount: "/host/etc/cni/net.d" },
  run: { host: "/run/trellis", mount: "/run/trellis" },
  ipamData: { host: "/var/lib/cni/trellis", mount: "/var/lib/cni/trellis" },
  netns: { host: "/var/run/netns", mount: "/var/run/netns" },
} as const;

export const CONFIG_DIR = "/etc/trellis";
export const CONFLIST_NAME = "10-trellis.conflist";
export const HEALTH_ADDR = "127.0.0.1:9099";

/** The TrellisNetwork the agent creates (--network-init) when the cluster has none. Edit before the first apply. */
export const NETWORK_INIT = {
  apiVersion: API_VERSION,
  kind: "TrellisNetwork",
  metadata: { name: NETWORK_OBJECT_NAME },
  spec: {
    network: "10.244.0.0/16",
    subnetLen: 24,
    blocks: "assigned",
    backend: { type: "vxlan", vni: 1, port: 8472 },
    natOutgoing: true,
  },
} as const;

/**
 * The CNI config the agent writes to /etc/cni/net.d after its first full sync (--cni-conf-template):
 * the node's block and MTU come from the subnet file the agent writes, so it needs no per-node edit.
 */
export const CNI_CONFLIST = {
  cniVersion: "1.1.0",
  name: "trellis",
  plugins: [{
    type: "trellis",
    mode: "routed",
    agentSocket: "/run/trellis/cni.sock",
    ipam: { type: "trellis-ipam", subnetFile: "/run/trellis/subnet.env", dataDir: HOST_PATHS.ipamData.host },
  }],
} as const;

export const AGENT_ARGS: readonly string[] = [
  "--datastore", "kubernetes", "agent",
  "--node", "$(NODE_NAME)",
  "--network-init", `${CONFIG_DIR}/network.yaml`,
  "--cni-conf-template", `${CONFIG_DIR}/${CONFLIST_NAME}`,
  "--cni-conf-file", `${HOST_PATHS.cniNet.mount}/${CONFLIST_NAME}`,
  "--health-addr", HEALTH_ADDR,
];

/** The agent's capabilities and why (the rest are dropped). */
export const AGENT_CAPABILITIES = {
  NET_ADMIN: "links (VXLAN device, pod veths), addresses, routes, rules, FDB and neighbour entries, nftables; BIRD writing learned routes",
  NET_BIND_SERVICE: "BIRD listens on TCP 179 (bgp backend)",
  SYS_ADMIN: "setns(2) into a pod's network namespace to make its interface, addresses and routes when the agent serves the plugin's call (setns needs it; nothing else does)",
} as const;

export type Manifest = INamespace | IServiceAccount | IClusterRole | IClusterRoleBinding | ICustomResourceDefinition | IConfigMap | IDaemonSet;

export interface ManifestOptions {
  /** The Trellis image (default DEFAULT_IMAGE). */
  image?: string;
}

const LABELS = { "app.kubernetes.io/name": "trellis", "app.kubernetes.io/part-of": "trellis" };
const AGENT_LABELS = { "app.kubernetes.io/name": "trellis", "app.kubernetes.io/component": "agent" };

const INSTALL_CNI_SCRIPT = [
  "set -eu",
  `for f in ${IMAGE_PATHS.cniPlugins.join(" ")}; do`,
  `  tmp="${HOST_PATHS.cniBin.mount}/.$f.trellis-install.$$"`,
  `  cp "${IMAGE_PATHS.cniDir}/$f" "$tmp" || { rm -f "$tmp"; exit 1; }`,
  '  chmod 0755 "$tmp" && sync "$tmp"',
  `  mv -f "$tmp" "${HOST_PATHS.cniBin.mount}/$f"`,
  `  echo "installed $f in ${HOST_PATHS.cniBin.host}"`,
  "done",
].join("\n") + "\n";

const IP_FORWARD_SCRIPT = [
  "set -eu",
  "f=/proc/sys/net/ipv4/ip_forward",
  'if [ "$(cat $f)" != 1 ]; then echo 1 > $f; echo "net.ipv4.ip_forward set to 1"; fi',
].join("\n") + "\n";

function daemonSet(image: string): IDaemonSet {
  const probe = (what: "--live" | "--ready"): IContainer["livenessProbe"] => ({
    exec: { command: ["trellis", "agent", "probe", what] },
    periodSeconds: 10,
    timeoutSeconds: 5,
    failureThreshold: what === "--live" ? 6 : 3,
    ...(what === "--live" ? { initialDelaySeconds: 15 } : {}),
  });
  const agent: IContainer = {
    name: "agent",
    image,
    imagePullPolicy: "IfNotPresent",
    command: ["trellis"],
    args: [...AGENT_ARGS],
    env: [{ name: "NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } }],
    resources: { requests: { cpu: "100m", memory: "150Mi" } },
    livenessProbe: probe("--live"),
    readinessProbe: probe("--ready"),
    securityContext: {
      privileged: false,
      capabilities: { drop: ["ALL"], add: Object.keys(AGENT_CAPABILITIES) },
      readOnlyRootFilesystem: true,
    },
    volumeMounts: [
      { name: "config", mountPath: CONFIG_DIR, readOnly: true },
      { name: "cni-net", mountPath: HOST_PATHS.cniNet.mount },
      { name: "run-trellis", mountPath: HOST_PATHS.run.mount },
      { name: "ipam-data", mountPath: HOST_PATHS.ipamData.mount },
      { name: "netns", mountPath: HOST_PATHS.netns.mount, mountPropagation: "HostToContainer", readOnly: true },
      { name: "tmp", mountPath: "/tmp" },
    ],
  };
  const installCni: IContainer = {
    name: "install-cni",
    image,
    imagePullPolicy: "IfNotPresent",
    command: ["/bin/sh", "-c", INSTALL_CNI_SCRIPT],
    resources: { requests: { cpu: "10m", memory: "16Mi" } },
    securityContext: { privileged: false, allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] }, readOnlyRootFilesystem: true },
    volumeMounts: [{ name: "cni-bin", mountPath: HOST_PATHS.cniBin.mount }],
  };
  const ipForward: IContainer = {
    name: "enable-ip-forward",
    image,
    imagePullPolicy: "IfNotPresent",
    command: ["/bin/sh", "-c", IP_FORWARD_SCRIPT],
    resources: { requests: { cpu: "10m", memory: "16Mi" } },
    securityContext: { privileged: true, readOnlyRootFilesystem: true },
  };
  const hostPath = (name: string, path: string): IVolume => ({ name, hostPath: { path, type: "DirectoryOrCreate" } });
  return {
    apiVersion: "apps/v1",
    kind: "DaemonSet",
    metadata: { name: AGENT_NAME, namespace: NAMESPACE, labels: { ...LABELS, "app.kubernetes.io/component": "agent" } },
    spec: {
      selector: { matchLabels: AGENT_LABELS },
      updateStrategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 1 } },
      template: {
        metadata: { labels: AGENT_LABELS },
        spec: {
          serviceAccountName: AGENT_NAME,
          hostNetwork: true,
          priorityClassName: "system-node-critical",
          nodeSelector: { "kubernetes.io/os": "linux" },
          tolerations: [{ operator: "Exists" }],
          terminationGracePeriodSeconds: 30,
          securityContext: { seccompProfile: { type: "RuntimeDefault" } },
          initContainers: [installCni, ipForward],
          containers: [agent],
          volumes: [
            { name: "config", configMap: { name: CONFIG_MAP_NAME } },
            hostPath("cni-bin", HOST_PATHS.cniBin.host),
            hostPath("cni-net", HOST_PATHS.cniNet.host),
            hostPath("run-trellis", HOST_PATHS.run.host),
            hostPath("ipam-data", HOST_PATHS.ipamData.host),
            hostPath("netns", HOST_PATHS.netns.host),
            { name: "tmp", emptyDir: { medium: "Memory", sizeLimit: "16Mi" } },
          ],
        },
      },
    },
  };
}

/** Every document of deploy/trellis.yaml, in apply order (CRDs before the objects that use them). */
export function renderManifests(opts: ManifestOptions = {}): Manifest[] {
  const image = opts.image ?? DEFAULT_IMAGE;
  return [
    {
      apiVersion: "v1", kind: "Namespace",
      metadata: {
        name: NAMESPACE,
        // hostNetwork, hostPath volumes and added capabilities are what the "privileged" Pod
        // Security level allows; giving it to our own namespace leaves kube-system's level alone.
        labels: { ...LABELS, "pod-security.kubernetes.io/enforce": "privileged" },
      },
    },
    { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: AGENT_NAME, namespace: NAMESPACE, labels: LABELS } },
    { apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRole", metadata: { name: AGENT_NAME, labels: LABELS }, rules: clusterRoleRules(AGENT_RULES) },
    {
      apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRoleBinding", metadata: { name: AGENT_NAME, labels: LABELS },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: AGENT_NAME },
      subjects: [{ kind: "ServiceAccount", name: AGENT_NAME, namespace: NAMESPACE }],
    },
    ...CRDS,
    {
      apiVersion: "v1", kind: "ConfigMap", metadata: { name: CONFIG_MAP_NAME, namespace: NAMESPACE, labels: LABELS },
      data: {
        "network.yaml": new Document(NETWORK_INIT, { aliasDuplicateObjects: false }).toString({ lineWidth: 0 }),
        [CONFLIST_NAME]: JSON.stringify(CNI_CONFLIST, null, 2) + "\n",
      },
    },
    daemonSet(image),
  ];
}

// Comments rendered into the YAML: why each privilege and host path is there.
const HEADER = [
  " Trellis: the Kubernetes install. kubectl apply -f deploy/trellis.yaml (see deploy/README.md).",
  " GENERATED by `node dist/src/k8s/render-manifests.js > deploy/trellis.yaml` from src/k8s/manifests.ts,",
  " crds.ts and rbac.ts; a test fails when this file differs. Edit those, not this file — except the",
  " ConfigMap's network.yaml, which you may edit before the first apply (backend, pod CIDR).",
].join("\n");

type Path = ReadonlyArray<string | number>;
const DS_POD: Path = ["spec", "template", "spec"];
const AGENT: Path = [...DS_POD, "containers", 0];

const DS_COMMENTS: Array<{ path: Path; comment: string }> = [
  { path: [...DS_POD, "hostNetwork"], comment: " The agent programs the node's own network namespace (VXLAN device, routes, nftables, BIRD)." },
  { path: [...DS_POD, "tolerations"], comment: " Every node, tainted or not (not-ready nodes too: they are not-ready until the network is there)." },
  { path: [...DS_POD, "initContainers", 0], comment: " Installs the plugins into /opt/cni/bin atomically: copy to a temporary name, then rename(2),\n so the kubelet never runs a half-written file. No capabilities." },
  {
    path: [...DS_POD, "initContainers", 1],
    comment: " The one privileged container: writes net.ipv4.ip_forward=1 (only when it is not 1) and exits.\n"
      + " /proc/sys is read-only in unprivileged containers, and Kubernetes refuses sysctls on hostNetwork\n"
      + " pods; the agent itself only reads it (the plugin writes it only when it is not 1 already).",
  },
  { path: [...AGENT, "securityContext", "privileged"], comment: " Not privileged: the capabilities below and nothing else." },
  ...Object.entries(AGENT_CAPABILITIES).map(([cap, why], i) => ({ path: [...AGENT, "securityContext", "capabilities", "add", i] as Path, comment: ` ${cap}: ${why}` })),
  { path: [...AGENT, "volumeMounts", 1], comment: " The agent writes the CNI config here after its first full sync (tmp + rename), and leaves it on exit." },
  { path: [...AGENT, "volumeMounts", 2], comment: " Shared with the plugin on the host: agent socket, subnet file, endpoint spool, BIRD's files." },
  { path: [...AGENT, "volumeMounts", 3], comment: " IPAM store, shared with the plugin on the host (flock)." },
  {
    path: [...AGENT, "volumeMounts", 4],
    comment: " Pods' network namespaces as containerd and CRI-O name them (CNI_NETNS=/var/run/netns/...);\n"
      + " HostToContainer so namespaces made after the agent started are visible. No hostPID needed.",
  },
];

function commentOn(doc: Document, path: Path, comment: string): void {
  const key = path[path.length - 1]!;
  const parent = doc.getIn(path.slice(0, -1), true) as Node | undefined;
  if (typeof key === "number") {
    const item = doc.getIn(path, true) as Node | undefined;
    if (!item) throw new Error(`no node at ${path.join(".")}`);
    item.commentBefore = comment;
    return;
  }
  if (!parent || !isMap(parent)) throw new Error(`no map at ${path.slice(0, -1).join(".")}`);
  const pair = parent.items.find((p) => isScalar(p.key) && p.key.value === key);
  if (!pair || !isScalar(pair.key)) throw new Error(`no key at ${path.join(".")}`);
  pair.key.commentBefore = comment;
}

/** deploy/trellis.yaml: every document, with the comments that say why. */
export function renderManifestsYaml(opts: ManifestOptions = {}): string {
  const docs = renderManifests(opts).map((m, i) => {
    const doc = new Document(m, { aliasDuplicateObjects: false });
    if (i === 0) doc.commentBefore = HEADER;
    if (m.kind === "DaemonSet") for (const c of DS_COMMENTS) commentOn(doc, c.path, c.comment);
    return doc.toString({ lineWidth: 0 });
  });
  return docs.join("---\n");
}
