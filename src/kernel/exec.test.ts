import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { KernelError } from "./exec.js";

describe("KernelError", () => {
  it("says which command failed and the last lines of its stderr", () => {
    const e = new KernelError("ip -batch -", 1, "RTNETLINK answers: File exists\nCommand failed -:3\n");
    assert.equal(e.message, "ip -batch -: RTNETLINK answers: File exists; Command failed -:3");
    assert.equal(e.exitCode, 1);
    assert.equal(e.command, "ip -batch -");
  });

  it("falls back to the exit code when stderr is empty", () => {
    assert.equal(new KernelError("ip link del x", 2, "").message, "ip link del x: exit code 2");
  });

  it("finds the failing line of an ip batch, if ip named one", () => {
    assert.equal(new KernelError("ip -batch -", 1, "Error: ...\nCommand failed -:12\n").failedBatchLine, 12);
    assert.equal(new KernelError("ip -batch -", 1, "Error: something").failedBatchLine, undefined);
  });

  it("recognises 'File exists' and the ways iproute2 says 'not found'", () => {
    assert.equal(new KernelError("ip", 2, "RTNETLINK answers: File exists").exists, true);
    for (const text of ['Cannot find device "trl1"', "RTNETLINK answers: No such device", "Error: Device does not exist."]) {
      assert.equal(new KernelError("ip", 1, text).notFound, true, text);
    }
    assert.equal(new KernelError("ip", 2, "RTNETLINK answers: Operation not permitted").notFound, false);
    assert.equal(new KernelError("ip", 2, "RTNETLINK answers: Operation not permitted").exists, false);
  });
});
