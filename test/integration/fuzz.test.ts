// Bad input, black-box: random and malformed stdin and environments against both built
// executables, run inside a throwaway host namespace. Whatever comes in, a plugin that fails must
// say so the CNI way (non-zero exit, exactly one error object with a spec-compatible code and a
// message on stdout) and change nothing; a plugin that succeeds prints at most one JSON object,
// and what it made is undone by DEL. Then the deterministic cases every runtime relies on.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import fc from "fast-check";
import { assertCniError, assertJsonSuccess, singleJsonObject } from "../helpers/cni-assert.js";
import { TestHost, type HostCall } from "../helpers/host.js";
import {
  addressFiles, BUILD_CNI, integrationSkip, linkNames, TRELLIS, TRELLIS_IPAM, type Netns, type PluginRun,
} from "../helpers/netns.js";

const skip = integrationSkip();

// Fixed so that a failure replays; TRELLIS_FUZZ_SEED / TRELLIS_FUZZ_RUNS explore further by hand.
const SEED = Number(process.env.TRELLIS_FUZZ_SEED ?? 20240607);
const NUM_RUNS = Number(process.env.TRELLIS_FUZZ_RUNS ?? 200);
const COMMANDS = ["ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION"] as const;
const VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] as const;
const BINARIES = [TRELLIS, TRELLIS_IPAM] as const;
/** A run that takes this long is hung: it is killed, and the run fails for want of an error JSON. */
const TIMEOUT_MS = 10_000;

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

describe("fuzzed input to trellis and trellis-ipam", { skip }, () => {
  let node: TestHost;
  let pod: Netns;
  let runIndex = 0;
  /** Outcomes by command ("ADD 7", "DEL ok", ...), reported so a reader sees what the fuzz reached. */
  let outcomes = new Map<string, number>();
  const tally = (command: string | undefined, r: PluginRun): void => {
    const key = `${JSON.stringify(command ?? null).slice(0, 12)} ${r.code === 0 ? "ok" : String(r.json?.code ?? r.code)}`;
    outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
  };
  const report = (t: { diagnostic(m: string): void }): void => {
    t.diagnostic([...outcomes].sort().map(([k, n]) => `${k}: ${n}`).join(", "));
    outcomes = new Map();
  };
  /** Every run gets its own container id, so no run sees another's attachment. */
  const nextContainerId = (): string => `fuzz-${runIndex++}`;

  before(() => {
    node = new TestHost("fuzz");
    pod = node.pod("pod");
  });
  after(() => node?.cleanup());

  const validConfig = (version: string = "1.1.0", mode: "routed" | "bridge" = "routed"): { [k: string]: Json } => ({
    cniVersion: version,
    name: node.network,
    type: "trellis",
    mode,
    mtu: 1400,
    ipam: { type: "trellis-ipam", dataDir: node.dataDir, ranges: [[{ subnet: "10.85.0.0/24" }]] },
  });

  /** What any run may leave: nothing of ours in the host, the pod or the data directory. */
  function leftovers(): string[] {
    const out = node.trlLinks().map((l) => `host link ${l}`);
    out.push(...linkNames(pod.name).filter((l) => l !== "lo").map((l) => `pod link ${l}`));
    for (const d of fs.readdirSync(node.dataDir, { withFileTypes: true })) {
      if (d.isDirectory()) out.push(...addressFiles(path.join(node.dataDir, d.name)).map((f) => `reservation ${d.name}/${f}`));
    }
    return out;
  }

  /** A call and what it did, shortened, for assertion messages (and so fast-check's counterexamples). */
  function describeCall(c: HostCall & { binary: string }, r: PluginRun): string {
    const { config, ...rest } = c;
    const stdin = c.stdin === "none" ? "" : typeof config === "string" ? config : JSON.stringify(config) ?? "";
    return `${path.basename(c.binary)} ${JSON.stringify(rest).slice(0, 600)}\nstdin: ${stdin.slice(0, 600)}\n` +
      `-> exit ${r.code} ${r.signal ?? ""}\nstdout: ${r.stdout.slice(0, 600)}\nstderr: ${r.stderr.slice(0, 600)}`;
  }

  /** Runs one call and checks the invariants; a successful ADD is undone by DEL (which must work). */
  function runChecked(c: HostCall & { binary: string }): PluginRun {
    const r = node.run({ ...c, timeoutMs: TIMEOUT_MS });
    const env = c.extraEnv ?? {};
    const command = "CNI_COMMAND" in env ? env.CNI_COMMAND : c.command;
    tally(command, r);
    assert.equal(r.signal, null, `killed or crashed:\n${describeCall(c, r)}`);
    if (r.code !== 0) {
      assertCniError(r);
      assert.deepEqual(leftovers(), [], `a failed run left something behind:\n${describeCall(c, r)}`);
      return r;
    }
    if (r.stdout.trim() !== "") singleJsonObject(r);
    if (command === "ADD") {
      const delCall = { ...c, command: "DEL", extraEnv: "CNI_COMMAND" in env ? { ...env, CNI_COMMAND: "DEL" } : env };
      const del = node.run({ ...delCall, timeoutMs: TIMEOUT_MS });
      assert.equal(del.code, 0, `DEL after a successful ADD failed:\n${describeCall(delCall, del)}`);
    }
    assert.deepEqual(leftovers(), [], `something left behind:\n${describeCall(c, r)}`);
    return r;
  }

  // --- arbitraries -------------------------------------------------------------------------------

  /** A valid command, ADD (the one that does the most) most often. */
  const commandArb: fc.Arbitrary<string> = fc.oneof(
    { arbitrary: fc.constant("ADD"), weight: 4 },
    { arbitrary: fc.constantFrom(...COMMANDS), weight: 6 },
  );

  /** Text without NUL (which no environment variable can hold). */
  const text = (maxLength = 40): fc.Arbitrary<string> =>
    fc.oneof(fc.string({ maxLength }), fc.fullUnicodeString({ maxLength })).map((s) => s.replaceAll("\0", ""));
  /** Text that can never name a real namespace (so no run ever reaches the machine's own). */
  const garbage = (maxLength?: number): fc.Arbitrary<string> => text(maxLength).filter((s) => !/ns\/|netns/.test(s));

  const HUGE = "9".repeat(400);
  const wrongTyped: fc.Arbitrary<Json> = fc.oneof(
    fc.constantFrom<Json>(null, true, false, 0, -1, 1.5, 1e308, -1e308, 2 ** 53, Number.MAX_SAFE_INTEGER, "", "garbage",
      "0", [], {}, [[]], [{}], ["x"], { a: 1 }, HUGE, "x".repeat(100_000)),
    fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>,
  );
  /** Values for keys naming paths the plugin writes to: never an absolute path, so nothing escapes the temp dir. */
  const wrongTypedNotAbsolute = wrongTyped.filter((v) => !(typeof v === "string" && v.startsWith("/")));
  const subnets = fc.constantFrom<Json>("10.85.0.0/31", "10.85.0.0/32", "10.85.0.1/24", "10.85.0.0/30", "10.85.0.0/33",
    "256.0.0.0/8", "0.0.0.0/0", "::/0", "fd00::/127", "fd00::/120", "10.85.0.0", "10.85.0.0/24/1", " 10.85.0.0/24");
  const versions = fc.oneof(
    fc.constantFrom<Json>("", "1", "1.0", "0.1.0", "0.2.0", "2.0.0", "1.1.0.0", "v1.0.0", " 1.0.0", "1.0.0\n", "01.0.0",
      "99999999999999999999.0.0", 1, 1.1, null, [], {}),
    garbage(12) as fc.Arbitrary<Json>,
  );

  type Path = readonly (string | number)[];
  /** A field of the valid config and what it may be replaced with ("delete" removes it). */
  const fieldMutation: fc.Arbitrary<{ at: Path; value: Json | "delete" }> = fc.oneof(
    fc.record({ at: fc.constant(["cniVersion"] as Path), value: versions }),
    fc.record({
      at: fc.constantFrom<Path>(["name"], ["mode"], ["mtu"], ["bridge"], ["hairpinMode"], ["dns"], ["prevResult"], ["runtimeConfig"],
        ["args"], ["cni.dev/valid-attachments"], ["ipam", "ranges"], ["ipam", "ranges", 0], ["ipam", "ranges", 0, 0],
        ["ipam", "ranges", 0, 0, "rangeStart"], ["ipam", "ranges", 0, 0, "rangeEnd"], ["ipam", "ranges", 0, 0, "gateway"],
        ["ipam", "routes"], ["ipam", "subnet"], ["ipam", "resolvConf"]),
      value: fc.oneof(wrongTyped, fc.constant<"delete">("delete")),
    }),
    fc.record({ at: fc.constant(["ipam", "ranges", 0, 0, "subnet"] as Path), value: fc.oneof(subnets, wrongTyped) }),
    fc.record({ at: fc.constant(["ipam", "type"] as Path), value: fc.constantFrom<Json>("host-local", "no-such-ipam", "a/b", "", 3, null) }),
    fc.record({ at: fc.constant(["ipam"] as Path), value: fc.constantFrom<Json>(null, 0, "", [], {}, { type: 5 }, { type: "trellis-ipam" }) }),
    fc.record({ at: fc.constantFrom<Path>(["ipam", "dataDir"], ["logFile"], ["ipam", "subnetFile"]), value: wrongTypedNotAbsolute }),
    fc.record({ at: fc.constant(["mtu"] as Path), value: fc.integer({ min: -100_000, max: 100_000 }) as fc.Arbitrary<Json> }),
  );

  function mutate(config: { [k: string]: Json }, at: Path, value: Json | "delete"): { [k: string]: Json } {
    const copy = structuredClone(config);
    let parent: Json = copy;
    for (const key of at.slice(0, -1)) {
      if (typeof parent !== "object" || parent === null) return copy;
      parent = (parent as Record<string | number, Json>)[key] ?? null;
    }
    if (typeof parent !== "object" || parent === null) return copy;
    const last = at[at.length - 1]!;
    if (value === "delete") delete (parent as Record<string | number, Json>)[last];
    else (parent as Record<string | number, Json>)[last] = value;
    return copy;
  }

  const deeplyNested = "[".repeat(100_000) + "]".repeat(100_000);
  /** stdin: random text, random JSON, valid configs with fields broken, cut short, or huge (built once the host exists). */
  const stdinArb = (): fc.Arbitrary<string> => fc.oneof(
    { arbitrary: text(200), weight: 1 },
    { arbitrary: fc.json({ maxDepth: 3 }), weight: 1 },
    {
      arbitrary: fc.tuple(fc.constantFrom(...VERSIONS), fc.constantFrom("routed", "bridge") as fc.Arbitrary<"routed" | "bridge">,
        fc.array(fieldMutation, { minLength: 1, maxLength: 3 }))
        .map(([v, mode, ms]) => JSON.stringify(ms.reduce((c, m) => mutate(c, m.at, m.value), validConfig(v, mode)))),
      weight: 6,
    },
    {
      arbitrary: fc.nat().map((n) => { const s = JSON.stringify(validConfig()); return s.slice(0, n % s.length); }),
      weight: 1,
    },
    {
      arbitrary: fc.constantFrom(
        deeplyNested,
        JSON.stringify({ ...validConfig(), name: "n".repeat(300_000) }),
        JSON.stringify({ ...validConfig(), ipam: { ...validConfig().ipam as object, ranges: Array.from({ length: 5000 }, (_, i) => [{ subnet: `10.${i >> 8}.${i & 255}.0/24` }]) } }),
        JSON.stringify({ ...validConfig(), padding: "p".repeat(4 << 20) }),
        "\uFEFF" + JSON.stringify(validConfig()),
        JSON.stringify(validConfig()) + JSON.stringify(validConfig()),
      ),
      weight: 1,
    },
  );

  test(`malformed stdin (${NUM_RUNS} runs, seed ${SEED}): a failure is one CNI error object and changes nothing`, (t) => {
    fc.assert(
      fc.property(fc.constantFrom(...BINARIES), commandArb, stdinArb(), (binary, command, config) => {
        runChecked({
          binary, command, config, containerId: nextContainerId(), netns: pod.path, ifname: "eth0", cniPath: BUILD_CNI,
        });
      }),
      { seed: SEED, numRuns: NUM_RUNS },
    );
    report(t);
  });

  /** An environment variable: absent, empty, a good value, or something else. */
  const envVar = (good: fc.Arbitrary<string>, bad: fc.Arbitrary<string>): fc.Arbitrary<string | undefined> =>
    fc.oneof(
      { arbitrary: fc.constant(undefined), weight: 1 },
      { arbitrary: fc.constant(""), weight: 1 },
      { arbitrary: good, weight: 8 },
      { arbitrary: bad, weight: 3 },
    );

  const envArb = fc.record({
    CNI_COMMAND: envVar(commandArb, fc.oneof(fc.constantFrom("add", "Add", "ADD ", "DELETE", "VERSION\n"), garbage(20))),
    CNI_CONTAINERID: envVar(fc.constant("good"), fc.oneof(
      fc.constantFrom("-leading-dash", ".", "a b", "a/b", "ä", "x".repeat(10_000)), garbage(40))),
    CNI_IFNAME: envVar(fc.constantFrom("eth0", "net1"), fc.oneof(
      fc.constantFrom("lo", ".", "..", "a/b", "a:b", "a b", "sixteen-chars-xx", "ünïcödé-ifname"), garbage(20))),
    CNI_NETNS: envVar(fc.constant("pod"), fc.oneof(
      fc.constantFrom("host", "/proc/self/ns/net", "/nonexistent/netns-x", "/etc/passwd", "/tmp", "relative/path"), garbage(40))),
    CNI_ARGS: envVar(fc.constantFrom("IgnoreUnknown=1", "K8S_POD_NAME=web;K8S_POD_NAMESPACE=default", "IP=10.85.0.77"),
      fc.oneof(fc.constantFrom("a=b=c", ";;;", "=x", "IP=garbage", "IP=192.0.2.1", "IP=10.85.0.1", "noequals"), garbage(40))),
    CNI_PATH: envVar(fc.constant(BUILD_CNI), fc.constantFrom("/nonexistent", ":", "relative")),
  });

  test(`malformed environment (${NUM_RUNS} runs, seed ${SEED}): a failure is one CNI error object and changes nothing`, (t) => {
    fc.assert(
      fc.property(
        fc.constantFrom(...BINARIES), envArb, fc.constantFrom(...VERSIONS), fc.constantFrom("routed", "bridge") as fc.Arbitrary<"routed" | "bridge">,
        (binary, env, version, mode) => {
          // "good" container ids are unique per run; "pod" and "host" stand for the namespaces' paths.
          const containerId = env.CNI_CONTAINERID === "good" ? nextContainerId() : env.CNI_CONTAINERID;
          const netns = env.CNI_NETNS === "pod" ? pod.path : env.CNI_NETNS === "host" ? node.host.path : env.CNI_NETNS;
          runChecked({
            binary,
            command: "",
            config: validConfig(version, mode),
            extraEnv: { ...env, CNI_CONTAINERID: containerId, CNI_NETNS: netns },
          });
        },
      ),
      { seed: SEED, numRuns: NUM_RUNS },
    );
    report(t);
  });

  // --- deterministic cases -----------------------------------------------------------------------

  const call = (binary: string, command: string, config: unknown): HostCall & { binary: string } => ({
    binary, command, config, containerId: nextContainerId(), netns: pod.path, ifname: "eth0", cniPath: BUILD_CNI,
  });

  for (const binary of BINARIES) {
    const name = path.basename(binary);

    test(`${name}: VERSION with stdin at EOF prints cniVersion and supportedVersions and exits 0`, () => {
      const out = assertJsonSuccess(node.run({ binary, command: "VERSION", stdin: "none" }));
      assert.equal(typeof out.cniVersion, "string");
      assert.deepEqual(out.supportedVersions, [...VERSIONS]);
    });

    test(`${name}: VERSION does not wait for stdin (a terminal nobody types into)`, async () => {
      const r = await node.runAsync({ binary, command: "VERSION", stdin: "open", timeoutMs: 5000 });
      assert.equal(r.signal, null, "VERSION blocked on stdin");
      assert.deepEqual(assertJsonSuccess(r).supportedVersions, [...VERSIONS]);
    });

    test(`${name}: an unknown command is code 4 naming it`, () => {
      assertCniError(runChecked(call(binary, "FROB", validConfig())), { code: 4, msg: /FROB/ });
    });

    test(`${name}: missing environment variables are code 4 naming them`, () => {
      const r = runChecked({ binary, command: "ADD", config: validConfig(), netns: pod.path, cniPath: BUILD_CNI });
      assertCniError(r, { code: 4, msg: /CNI_CONTAINERID.*CNI_IFNAME|CNI_IFNAME.*CNI_CONTAINERID/ });
    });

    test(`${name}: stdin that is not JSON is code 6`, () => {
      assertCniError(runChecked(call(binary, "ADD", "{not json")), { code: 6 });
    });

    test(`${name}: an unsupported cniVersion is code 1`, () => {
      assertCniError(runChecked(call(binary, "ADD", validConfig("9.9.9"))), { code: 1 });
      assertCniError(runChecked(call(binary, "ADD", validConfig("0.2.0"))), { code: 1 });
    });

    test(`${name}: CHECK on a 0.3.1 config is code 1`, () => {
      assertCniError(runChecked(call(binary, "CHECK", validConfig("0.3.1"))), { code: 1, msg: /CHECK/ });
    });

    test(`${name}: GC and STATUS on a 1.0.0 config are code 1`, () => {
      assertCniError(runChecked(call(binary, "GC", validConfig("1.0.0"))), { code: 1, msg: /GC/ });
      assertCniError(runChecked(call(binary, "STATUS", validConfig("1.0.0"))), { code: 1, msg: /STATUS/ });
    });

    test(`${name}: a config without a network name is code 7`, () => {
      const { name: _, ...noName } = validConfig();
      assertCniError(runChecked(call(binary, "ADD", noName)), { code: 7, msg: /network name/ });
    });
  }

  for (const mode of ["routed", "bridge"] as const) {
    test(`trellis, ${mode}: an ADD that ip refuses half-way (an alias too long for the kernel) fails and leaves nothing`, () => {
      // Each part is within its limit (container id and network name at most 200 bytes), but the
      // ifalias "trellis/<network>/<container>/<ifname>" is over the kernel's 255.
      const config = { ...validConfig("1.1.0", mode), name: `${node.network}-${"n".repeat(40)}` };
      const r = runChecked({ ...call(TRELLIS, "ADD", config), containerId: `long-${"x".repeat(195)}` });
      assertCniError(r, { msg: /alias/ });
    });
  }

  test("trellis: an invalid mode is code 7 naming \"mode\"", () => {
    assertCniError(runChecked(call(TRELLIS, "ADD", { ...validConfig(), mode: "overlay" })), { code: 7, msg: /mode/ });
  });
});
