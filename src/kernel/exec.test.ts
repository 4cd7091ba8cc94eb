import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { batchFailures, KernelError, skippedInForcedBatch } from "./exec.js";
import type { NetOp } from "./ops.js";

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

describe("ip -force -batch: reading which lines failed", () => {
  // What iproute2 6.1 prints for a forced batch whose lines 2 and 6 found their route there.
  const STDERR = "RTNETLINK answers: File exists\nCommand failed -:2\nError: Nexthop has invalid gateway.\nCommand failed -:3\n";
  const OPS: NetOp[] = [
    { op: "addr-add", dev: "eth1", cidr: "10.2.0.7/32" },
    { op: "route-add", dst: "0.0.0.0/0", dev: "eth1", via: "169.254.1.1", onlink: true, skipIfExists: true },
    { op: "route-add", dst: "10.2.0.0/16", dev: "eth1", via: "169.254.1.1" },
  ];
  const failed = (stderr: string): KernelError => new KernelError("ip -force -batch -", 1, stderr);

  it("pairs each 'Command failed -:N' with what ip said before it", () => {
    assert.deepEqual(batchFailures(STDERR), [
      { line: 2, message: "RTNETLINK answers: File exists" },
      { line: 3, message: "Error: Nexthop has invalid gateway." },
    ]);
    assert.deepEqual(batchFailures(""), []);
  });

  it("a skippable route that exists is skipped, and only that", () => {
    assert.deepEqual(skippedInForcedBatch(OPS, failed("RTNETLINK answers: File exists\nCommand failed -:2\n")), [1]);
  });

  it("any other failure is the batch's error, for its own line, as without -force", () => {
    assert.throws(() => skippedInForcedBatch(OPS, failed(STDERR)), (e: unknown) =>
      e instanceof KernelError && e.failedBatchLine === 3 && /invalid gateway/.test(e.message) && !/File exists/.test(e.message));
  });

  it("'File exists' for an operation that may not be skipped is a failure", () => {
    const ops: NetOp[] = [{ op: "route-add", dst: "0.0.0.0/0", dev: "eth1", via: "169.254.1.1", onlink: true }];
    assert.throws(() => skippedInForcedBatch(ops, failed("RTNETLINK answers: File exists\nCommand failed -:1\n")),
      (e: unknown) => e instanceof KernelError && e.failedBatchLine === 1 && e.exists);
  });

  it("a failure that names no line (ip did not run) is passed on as it is", () => {
    const e = failed("nsenter: cannot open /run/netns/gone: No such file or directory");
    assert.throws(() => skippedInForcedBatch(OPS, e), (x: unknown) => x === e);
  });
});
