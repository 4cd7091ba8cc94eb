import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { assertCniError } from "./assert-cni-error.js";
import { ErrorCode } from "./errors.js";
import { MAX_NAME_BYTES, parseCniArgs, parseCommand, parseRequest, validateIfName, type Env } from "./request.js";

const FULL_ENV: Env = {
  CNI_COMMAND: "ADD",
  CNI_CONTAINERID: "c0ffee-1",
  CNI_NETNS: "/run/netns/pod1",
  CNI_IFNAME: "eth0",
  CNI_PATH: "/opt/cni/bin:/usr/lib/cni",
};
const CONFIG = { cniVersion: "1.1.0", name: "trellis-net", type: "trellis", ipam: { type: "trellis-ipam" } };
const stdinOf = (config: unknown) => (): string => JSON.stringify(config);


describe("parseCommand", () => {
  it("accepts every command of the spec", () => {
    for (const c of ["ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION"]) assert.equal(parseCommand({ CNI_COMMAND: c }), c);
  });

  it("reports a missing CNI_COMMAND with code 4", () => {
    assertCniError(() => parseCommand({}), ErrorCode.InvalidEnvironment, "CNI_COMMAND");
  });

  it("reports an unknown command with code 4, naming it", () => {
    assertCniError(() => parseCommand({ CNI_COMMAND: "add" }), ErrorCode.InvalidEnvironment, "unknown CNI_COMMAND: add");
    assertCniError(() => parseCommand({ CNI_COMMAND: "UPDATE" }), ErrorCode.InvalidEnvironment, "UPDATE");
  });
});

describe("parseRequest", () => {
  it("returns the validated request: ids, path list, args, version, name, config and stdin", () => {
    const stdin = JSON.stringify(CONFIG);
    const req = parseRequest("ADD", { ...FULL_ENV, CNI_ARGS: "K8S_POD_NAME=web;IP=10.1.0.5" }, () => stdin);
    assert.equal(req.command, "ADD");
    assert.equal(req.containerId, "c0ffee-1");
    assert.equal(req.netns, "/run/netns/pod1");
    assert.equal(req.ifname, "eth0");
    assert.deepEqual(req.path, ["/opt/cni/bin", "/usr/lib/cni"]);
    assert.deepEqual([...req.args], [["K8S_POD_NAME", "web"], ["IP", "10.1.0.5"]]);
    assert.equal(req.cniVersion, "1.1.0");
    assert.equal(req.name, "trellis-net");
    assert.deepEqual(req.config, CONFIG);
    assert.equal(req.stdin, stdin);
  });

  for (const command of ["ADD", "CHECK"] as const) {
    it(`${command} needs CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME and CNI_PATH, and reports all missing ones at once with code 4`, () => {
      const e = assertCniError(() => parseRequest(command, { CNI_COMMAND: command }, stdinOf(CONFIG)), ErrorCode.InvalidEnvironment);
      assert.equal(e.message, "required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH] missing");
    });
  }

  it("DEL does not need CNI_NETNS (the namespace may already be gone)", () => {
    const env = { ...FULL_ENV, CNI_COMMAND: "DEL", CNI_NETNS: undefined };
    assert.equal(parseRequest("DEL", env, stdinOf(CONFIG)).netns, "");
    const e = assertCniError(() => parseRequest("DEL", { CNI_COMMAND: "DEL" }, stdinOf(CONFIG)), ErrorCode.InvalidEnvironment);
    assert.equal(e.message, "required env variables [CNI_CONTAINERID,CNI_IFNAME,CNI_PATH] missing");
  });

  for (const command of ["GC", "STATUS"] as const) {
    it(`${command} needs only CNI_PATH`, () => {
      const req = parseRequest(command, { CNI_COMMAND: command, CNI_PATH: "/opt/cni/bin" }, stdinOf(CONFIG));
      assert.equal(req.command, command);
      assert.equal(req.containerId, "");
      const e = assertCniError(() => parseRequest(command, { CNI_COMMAND: command }, stdinOf(CONFIG)), ErrorCode.InvalidEnvironment);
      assert.equal(e.message, "required env variables [CNI_PATH] missing");
    });
  }

  it("treats an empty variable as missing", () => {
    assertCniError(() => parseRequest("ADD", { ...FULL_ENV, CNI_IFNAME: "" }, stdinOf(CONFIG)), ErrorCode.InvalidEnvironment,
      "[CNI_IFNAME]");
  });

  it("does not read stdin when the environment is invalid", () => {
    let reads = 0;
    const readStdin = (): string => {
      reads++;
      return JSON.stringify(CONFIG);
    };
    assertCniError(() => parseRequest("ADD", { CNI_COMMAND: "ADD" }, readStdin), ErrorCode.InvalidEnvironment);
    assertCniError(() => parseRequest("ADD", { ...FULL_ENV, CNI_CONTAINERID: "-bad" }, readStdin), ErrorCode.InvalidEnvironment);
    assertCniError(() => parseRequest("ADD", { ...FULL_ENV, CNI_ARGS: "broken" }, readStdin), ErrorCode.InvalidEnvironment);
    assert.equal(reads, 0);
  });

  for (const id of ["-leading-dash", ".hidden", "has space", "a/b", "ünïcode"]) {
    it(`rejects the container id ${JSON.stringify(id)} with code 4`, () => {
      assertCniError(() => parseRequest("ADD", { ...FULL_ENV, CNI_CONTAINERID: id }, stdinOf(CONFIG)), ErrorCode.InvalidEnvironment,
        "invalid CNI_CONTAINERID", id);
    });
  }

  for (const id of ["..", "../x", "x\ny", "x\n", "/abs", "a\u0000b"]) {
    it(`rejects the path-like container id ${JSON.stringify(id)} with code 4, for ADD, DEL and CHECK`, () => {
      for (const command of ["ADD", "DEL", "CHECK"] as const) {
        assertCniError(() => parseRequest(command, { ...FULL_ENV, CNI_CONTAINERID: id }, stdinOf(CONFIG)), ErrorCode.InvalidEnvironment,
          "invalid CNI_CONTAINERID");
      }
    });
  }

  it(`accepts a container id of ${MAX_NAME_BYTES} bytes and refuses a longer one with code 4, quoting it cut short`, () => {
    const id = "a".repeat(MAX_NAME_BYTES);
    assert.equal(parseRequest("ADD", { ...FULL_ENV, CNI_CONTAINERID: id }, stdinOf(CONFIG)).containerId, id);
    for (const long of [id + "b", "x".repeat(5000)]) {
      for (const command of ["ADD", "DEL", "CHECK"] as const) {
        const e = assertCniError(() => parseRequest(command, { ...FULL_ENV, CNI_CONTAINERID: long }, stdinOf(CONFIG)),
          ErrorCode.InvalidEnvironment, `longer than ${MAX_NAME_BYTES}`);
        assert.ok(e.message.length < 200, "the message does not repeat the whole id");
      }
    }
  });

  it("accepts container ids with letters, digits, '_', '.' and '-'", () => {
    const id = "A1_b.c-d";
    assert.equal(parseRequest("ADD", { ...FULL_ENV, CNI_CONTAINERID: id }, stdinOf(CONFIG)).containerId, id);
  });

  for (const ifname of ["eth0:1", "a/b", "has space", "..", "0123456789abcdef"]) {
    it(`rejects the interface name ${JSON.stringify(ifname)} with code 4`, () => {
      assertCniError(() => parseRequest("ADD", { ...FULL_ENV, CNI_IFNAME: ifname }, stdinOf(CONFIG)), ErrorCode.InvalidEnvironment,
        "invalid CNI_IFNAME", ifname);
    });
  }

  it("reports stdin that cannot be read as an I/O failure (code 5)", () => {
    assertCniError(() => parseRequest("ADD", FULL_ENV, () => {
      throw new Error("EAGAIN");
    }), ErrorCode.IoFailure, "stdin", "EAGAIN");
  });

  it("reports stdin that is not JSON with code 6", () => {
    assertCniError(() => parseRequest("ADD", FULL_ENV, () => "{not json"), ErrorCode.DecodingFailure, "not valid JSON");
  });

  it("reports a JSON document that is not an object with code 6", () => {
    for (const doc of ["[]", "null", "42", '"text"']) {
      assertCniError(() => parseRequest("ADD", FULL_ENV, () => doc), ErrorCode.DecodingFailure, "not a JSON object");
    }
  });

  it("reports a cniVersion that is not a string with code 6", () => {
    assertCniError(() => parseRequest("ADD", FULL_ENV, stdinOf({ ...CONFIG, cniVersion: 1.1 })), ErrorCode.DecodingFailure,
      "cniVersion 1.1", "not a string");
  });

  it("reports a cniVersion that is not a version number with code 6", () => {
    for (const v of ["1.0", "v1.0.0", "latest", "1.0.0-rc1"]) {
      assertCniError(() => parseRequest("ADD", FULL_ENV, stdinOf({ ...CONFIG, cniVersion: v })), ErrorCode.DecodingFailure, v);
    }
  });

  it("treats a missing cniVersion as 0.1.0, which is unsupported (code 1)", () => {
    const { cniVersion: _omit, ...noVersion } = CONFIG;
    assertCniError(() => parseRequest("ADD", FULL_ENV, stdinOf(noVersion)), ErrorCode.IncompatibleVersion, '"0.1.0"');
    assertCniError(() => parseRequest("ADD", FULL_ENV, stdinOf({ ...CONFIG, cniVersion: "" })), ErrorCode.IncompatibleVersion, '"0.1.0"');
  });

  it("refuses versions it does not speak with code 1, listing the supported ones", () => {
    for (const v of ["0.2.0", "0.3.2", "2.0.0"]) {
      assertCniError(() => parseRequest("ADD", FULL_ENV, stdinOf({ ...CONFIG, cniVersion: v })), ErrorCode.IncompatibleVersion,
        "incompatible CNI versions", v, "1.1.0");
    }
  });

  it("accepts ADD in every supported version", () => {
    for (const v of ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]) {
      assert.equal(parseRequest("ADD", FULL_ENV, stdinOf({ ...CONFIG, cniVersion: v })).cniVersion, v);
    }
  });

  it("refuses CHECK before 0.4.0 with code 1", () => {
    assertCniError(() => parseRequest("CHECK", FULL_ENV, stdinOf({ ...CONFIG, cniVersion: "0.3.1" })), ErrorCode.IncompatibleVersion,
      "CHECK", "0.3.1");
    assert.equal(parseRequest("CHECK", FULL_ENV, stdinOf({ ...CONFIG, cniVersion: "0.4.0" })).command, "CHECK");
  });

  for (const command of ["GC", "STATUS"] as const) {
    it(`refuses ${command} before 1.1.0 with code 1`, () => {
      const env = { CNI_COMMAND: command, CNI_PATH: "/opt/cni/bin" };
      assertCniError(() => parseRequest(command, env, stdinOf({ ...CONFIG, cniVersion: "1.0.0" })), ErrorCode.IncompatibleVersion,
        command, "1.0.0");
    });
  }

  it("reports a missing network name with code 7", () => {
    const { name: _omit, ...noName } = CONFIG;
    assertCniError(() => parseRequest("ADD", FULL_ENV, stdinOf(noName)), ErrorCode.InvalidNetworkConfig, "missing network name");
    assertCniError(() => parseRequest("ADD", FULL_ENV, stdinOf({ ...CONFIG, name: "" })), ErrorCode.InvalidNetworkConfig,
      "missing network name");
  });

  it("reports a network name with invalid characters with code 7, naming it", () => {
    for (const name of ["my net", "a/b", "-net", 42]) {
      assertCniError(() => parseRequest("ADD", FULL_ENV, stdinOf({ ...CONFIG, name })), ErrorCode.InvalidNetworkConfig,
        "invalid characters found in network name", JSON.stringify(name));
    }
  });
});

describe("network name length", () => {
  it(`accepts a network name of ${MAX_NAME_BYTES} bytes (it names a directory) and refuses a longer one with code 7`, () => {
    const name = "n".repeat(MAX_NAME_BYTES);
    assert.equal(parseRequest("ADD", FULL_ENV, stdinOf({ ...CONFIG, name })).name, name);
    assertCniError(() => parseRequest("ADD", FULL_ENV, stdinOf({ ...CONFIG, name: name + "n" })), ErrorCode.InvalidNetworkConfig,
      `longer than ${MAX_NAME_BYTES}`);
  });
});

describe("parseCniArgs", () => {
  it("splits K=V pairs separated by ';'", () => {
    assert.deepEqual([...parseCniArgs("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0")],
      [["IgnoreUnknown", "1"], ["K8S_POD_NAMESPACE", "default"], ["K8S_POD_NAME", "web-0"]]);
  });

  it("is empty for an absent or empty CNI_ARGS and tolerates a trailing ';'", () => {
    assert.equal(parseCniArgs(undefined).size, 0);
    assert.equal(parseCniArgs("").size, 0);
    assert.deepEqual([...parseCniArgs("A=1;")], [["A", "1"]]);
  });

  it("keeps an empty value", () => {
    assert.deepEqual([...parseCniArgs("A=")], [["A", ""]]);
  });

  for (const bad of ["A", "A=1=2", "=1", "A=1;B"]) {
    it(`rejects ${JSON.stringify(bad)} with code 4, naming the bad pair`, () => {
      const pair = bad.split(";").at(-1)!;
      assertCniError(() => parseCniArgs(bad), ErrorCode.InvalidEnvironment, `invalid CNI_ARGS pair "${pair}"`);
    });
  }
});

describe("validateIfName", () => {
  it("accepts a 15-byte name and rejects a 16-byte one", () => {
    assert.equal(validateIfName("a".repeat(15)), undefined);
    assert.match(validateIfName("a".repeat(16)) ?? "", /longer than 15 bytes/);
  });

  it("counts bytes, not characters", () => {
    assert.match(validateIfName("é".repeat(8)) ?? "", /longer than 15 bytes/);
  });

  it("rejects empty, '.', '..' and names with '/', ':' or whitespace", () => {
    for (const bad of ["", ".", "..", "a/b", "a:b", "a b", "a\tb"]) assert.ok(validateIfName(bad), JSON.stringify(bad));
  });
});
