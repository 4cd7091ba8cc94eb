import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { agentSocketFor, decodeReply, decodeRequest, DEFAULT_AGENT_SOCKET, requestedVersion, WIRE_VERSION } from "./wire.js";

describe("which agent socket a plugin call tries", () => {
  test("agentSocket from the network config when it is an absolute path", () => {
    assert.equal(agentSocketFor(JSON.stringify({ agentSocket: "/run/trellis/lab/a/node1/cni.sock" })), "/run/trellis/lab/a/node1/cni.sock");
  });

  test("the default socket when the config does not say, or stdin is not a JSON object", () => {
    assert.equal(agentSocketFor(JSON.stringify({ cniVersion: "1.1.0", type: "trellis" })), DEFAULT_AGENT_SOCKET);
    assert.equal(agentSocketFor("{not json"), DEFAULT_AGENT_SOCKET, "the agent reports the decoding error as the plugin would");
    assert.equal(agentSocketFor("null"), DEFAULT_AGENT_SOCKET);
  });

  test("none — the plugin runs the call itself — when agentSocket is empty or unusable", () => {
    assert.equal(agentSocketFor(JSON.stringify({ agentSocket: "" })), undefined, "\"\" turns forwarding off");
    assert.equal(agentSocketFor(JSON.stringify({ agentSocket: "relative.sock" })), undefined, "the in-process plugin rejects it by name");
    assert.equal(agentSocketFor(JSON.stringify({ agentSocket: 7 })), undefined);
  });
});

describe("requestedVersion", () => {
  test("the config's cniVersion, or the fallback when there is none", () => {
    assert.equal(requestedVersion(JSON.stringify({ cniVersion: "0.4.0" }), "1.1.0"), "0.4.0");
    assert.equal(requestedVersion("{}", "1.1.0"), "1.1.0");
    assert.equal(requestedVersion("garbage", "1.1.0"), "1.1.0");
  });
});

describe("requests", () => {
  const good = { v: WIRE_VERSION, env: { CNI_COMMAND: "ADD" }, stdin: "{}", netns: "net:[4026531993]" };

  test("a well-formed request decodes to itself", () => {
    assert.deepEqual(decodeRequest(JSON.stringify(good)), good);
  });

  test("each malformed field is named", () => {
    const cases: Array<[unknown, RegExp]> = [
      ["{", /not JSON/],
      [[1], /not a JSON object/],
      [{ ...good, v: 2 }, /request version 2, this agent speaks 1/],
      [{ ...good, env: { CNI_COMMAND: 1 } }, /env must be an object of strings/],
      [{ ...good, env: "CNI_COMMAND=ADD" }, /env must be an object of strings/],
      [{ ...good, stdin: { cniVersion: "1.1.0" } }, /stdin must be a string/],
      [{ ...good, netns: 4026531993 }, /netns must be a string/],
    ];
    for (const [input, why] of cases) {
      const r = decodeRequest(typeof input === "string" ? input : JSON.stringify(input));
      assert.ok("error" in r, `${JSON.stringify(input)} must be refused`);
      assert.match(r.error, why);
    }
  });
});

describe("replies", () => {
  test("an outcome and a refusal decode to themselves", () => {
    const outcome = { v: WIRE_VERSION, code: 0, stdout: "{}\n", stderr: "" };
    assert.deepEqual(decodeReply(JSON.stringify(outcome)), outcome);
    const refusal = { v: WIRE_VERSION, fallback: "other namespace" };
    assert.deepEqual(decodeReply(JSON.stringify(refusal)), refusal);
  });

  test("a closed connection and malformed replies are errors, never outcomes", () => {
    const cases: Array<[string, RegExp]> = [
      ["", /no reply \(connection closed\)/],
      ['{"v":1,"code":0,"stdout":"{}"', /not JSON/],
      [JSON.stringify({ v: 0, code: 0, stdout: "", stderr: "" }), /reply version 0/],
      [JSON.stringify({ v: 1, code: 256, stdout: "", stderr: "" }), /reply code 256 is not an exit code/],
      [JSON.stringify({ v: 1, code: 1.5, stdout: "", stderr: "" }), /not an exit code/],
      [JSON.stringify({ v: 1, code: 0, stdout: 1, stderr: "" }), /stdout and stderr must be strings/],
    ];
    for (const [text, why] of cases) {
      const r = decodeReply(text);
      assert.ok("error" in r, `${text} must be refused`);
      assert.match(r.error, why);
    }
  });
});
