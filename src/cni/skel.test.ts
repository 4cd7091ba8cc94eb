import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CniError, ErrorCode } from "./errors.js";
import type { CniRequest, Env } from "./request.js";
import type { Result } from "./result.js";
import { runPlugin, type PluginHandlers, type PluginIo } from "./skel.js";

interface FakeIo extends PluginIo {
  out: string[];
  err: string[];
  stdinReads: number;
}

function io(env: Env, stdin: unknown = CONFIG): FakeIo {
  const fake: FakeIo = {
    env,
    out: [],
    err: [],
    stdinReads: 0,
    readStdin() {
      fake.stdinReads++;
      return typeof stdin === "string" ? stdin : JSON.stringify(stdin);
    },
    stdout(text) {
      fake.out.push(text);
    },
    stderr(text) {
      fake.err.push(text);
    },
  };
  return fake;
}

/** stdout must be exactly one JSON document (or nothing): parse it strictly. */
function stdoutJson(fake: FakeIo): Record<string, unknown> {
  const text = fake.out.join("");
  assert.equal(text.trim().split("\n").length, 1, `one line on stdout, got ${JSON.stringify(text)}`);
  return JSON.parse(text) as Record<string, unknown>;
}

const CONFIG = { cniVersion: "0.4.0", name: "net1", type: "trellis", ipam: { type: "trellis-ipam" } };
const ENV: Env = { CNI_CONTAINERID: "ctr1", CNI_NETNS: "/run/netns/pod1", CNI_IFNAME: "eth0", CNI_PATH: "/opt/cni/bin" };
const RESULT: Result = {
  cniVersion: "1.1.0",
  interfaces: [{ name: "eth0", mac: "0a:58:0a:01:00:02", mtu: 1450, sandbox: "/run/netns/pod1" }],
  ips: [{ address: "10.1.0.2/24", gateway: "10.1.0.1", interface: 0 }],
};

function handlers(over: Partial<PluginHandlers> = {}): PluginHandlers & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    about: "test plugin v0",
    add: (req: CniRequest) => (calls.push(`ADD ${req.containerId}`), RESULT),
    del: (req: CniRequest) => void calls.push(`DEL ${req.containerId}`),
    check: (req: CniRequest) => void calls.push(`CHECK ${req.containerId}`),
    status: () => void calls.push("STATUS"),
    gc: () => void calls.push("GC"),
    ...over,
  };
}

describe("runPlugin", () => {
  it("VERSION prints cniVersion and supportedVersions without reading stdin", () => {
    const fake = io({ CNI_COMMAND: "VERSION" });
    assert.equal(runPlugin(fake, handlers()), 0);
    assert.deepEqual(stdoutJson(fake), { cniVersion: "1.1.0", supportedVersions: ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] });
    assert.equal(fake.stdinReads, 0);
  });

  it("ADD calls the handler and prints its result in the request's version shape", () => {
    const fake = io({ ...ENV, CNI_COMMAND: "ADD" });
    const h = handlers();
    assert.equal(runPlugin(fake, h), 0);
    assert.deepEqual(h.calls, ["ADD ctr1"]);
    assert.deepEqual(stdoutJson(fake), {
      cniVersion: "0.4.0",
      interfaces: [{ name: "eth0", mac: "0a:58:0a:01:00:02", sandbox: "/run/netns/pod1" }],
      ips: [{ version: "4", interface: 0, address: "10.1.0.2/24", gateway: "10.1.0.1" }],
      dns: {},
    });
  });

  it("ADD on 1.1.0 prints the 1.1.0 shape (interface mtu, no ip version)", () => {
    const fake = io({ ...ENV, CNI_COMMAND: "ADD" }, { ...CONFIG, cniVersion: "1.1.0" });
    assert.equal(runPlugin(fake, handlers()), 0);
    const out = stdoutJson(fake);
    assert.equal(out.cniVersion, "1.1.0");
    assert.deepEqual(out.interfaces, RESULT.interfaces);
    assert.deepEqual(out.ips, RESULT.ips);
  });

  for (const [command, env, version] of [
    ["DEL", ENV, "0.4.0"],
    ["CHECK", ENV, "0.4.0"],
    ["GC", { CNI_PATH: "/opt/cni/bin" }, "1.1.0"],
    ["STATUS", { CNI_PATH: "/opt/cni/bin" }, "1.1.0"],
  ] as const) {
    it(`${command} calls its handler and prints nothing on success`, () => {
      const fake = io({ ...env, CNI_COMMAND: command }, { ...CONFIG, cniVersion: version });
      const h = handlers();
      assert.equal(runPlugin(fake, h), 0);
      assert.equal(h.calls.length, 1);
      assert.match(h.calls[0]!, new RegExp(`^${command}`));
      assert.deepEqual(fake.out, []);
    });
  }

  it("prints exactly one error JSON with the request's cniVersion, code and msg, and exits 1", () => {
    const fake = io({ ...ENV, CNI_COMMAND: "ADD" });
    const h = handlers({
      add: () => {
        throw new CniError(ErrorCode.PoolExhausted, "no IP addresses available in range set: 10.1.0.1-10.1.0.254", "network net1");
      },
    });
    assert.equal(runPlugin(fake, h), 1);
    assert.deepEqual(stdoutJson(fake), {
      cniVersion: "0.4.0",
      code: 101,
      msg: "no IP addresses available in range set: 10.1.0.1-10.1.0.254",
      details: "network net1",
    });
    assert.match(fake.err.join(""), /ADD failed: \[101\] no IP addresses available/);
  });

  it("reports an error found before the version is known in the latest version", () => {
    const fake = io({ CNI_COMMAND: "ADD" });
    assert.equal(runPlugin(fake, handlers()), 1);
    const out = stdoutJson(fake);
    assert.equal(out.cniVersion, "1.1.0");
    assert.equal(out.code, ErrorCode.InvalidEnvironment);
    assert.match(String(out.msg), /CNI_CONTAINERID/);
    assert.equal(fake.stdinReads, 0);
  });

  it("turns an unexpected exception into code 999 'internal error' with the message as details", () => {
    const fake = io({ ...ENV, CNI_COMMAND: "DEL" });
    const h = handlers({
      del: () => {
        throw new TypeError("cannot read properties of undefined");
      },
    });
    assert.equal(runPlugin(fake, h), 1);
    assert.deepEqual(stdoutJson(fake), {
      cniVersion: "0.4.0", code: 999, msg: "internal error", details: "cannot read properties of undefined",
    });
    assert.match(fake.err.join(""), /TypeError/, "the stack goes to stderr");
  });

  it("without CNI_COMMAND, explains itself on stderr and reports code 4 on stdout", () => {
    const fake = io({});
    assert.equal(runPlugin(fake, handlers()), 1);
    assert.match(fake.err.join(""), /test plugin v0/);
    assert.match(fake.err.join(""), /CNI protocol versions supported: 0\.3\.0, 0\.3\.1, 0\.4\.0, 1\.0\.0, 1\.1\.0/);
    assert.equal(stdoutJson(fake).code, ErrorCode.InvalidEnvironment);
  });

  it("does not call a handler when the request is invalid", () => {
    const fake = io({ ...ENV, CNI_COMMAND: "ADD" }, "not json");
    const h = handlers();
    assert.equal(runPlugin(fake, h), 1);
    assert.deepEqual(h.calls, []);
    assert.equal(stdoutJson(fake).code, ErrorCode.DecodingFailure);
  });
});
