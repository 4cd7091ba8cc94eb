import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { attachmentKey, validAttachments } from "./attachments.js";
import { CniError, ErrorCode } from "./errors.js";

describe("validAttachments", () => {
  it("reads cni.dev/valid-attachments as (containerID, ifname) keys", () => {
    const valid = validAttachments({ "cni.dev/valid-attachments": [{ containerID: "a", ifname: "eth0" }, { containerID: "b", ifname: "net1" }] });
    assert.deepEqual([...valid].sort(), [attachmentKey({ containerId: "a", ifname: "eth0" }), attachmentKey({ containerId: "b", ifname: "net1" })].sort());
  });

  it("also accepts the cni.dev/attachments spelling", () => {
    assert.ok(validAttachments({ "cni.dev/attachments": [{ containerID: "a", ifname: "eth0" }] })
      .has(attachmentKey({ containerId: "a", ifname: "eth0" })));
  });

  it("treats a missing or null list as 'nothing is valid'", () => {
    assert.equal(validAttachments({}).size, 0);
    assert.equal(validAttachments({ "cni.dev/valid-attachments": null }).size, 0);
  });

  it("rejects a list that is not a list, or an entry without containerID and ifname, with code 7", () => {
    for (const raw of ["a", { containerID: "a" }, [{ containerID: "a" }], [{ ifname: "eth0" }], ["a"]]) {
      assert.throws(() => validAttachments({ "cni.dev/valid-attachments": raw }), (e: unknown) =>
        e instanceof CniError && e.code === ErrorCode.InvalidNetworkConfig && e.message.includes("valid-attachments"));
    }
  });

  it("keys cannot collide by shifting characters between id and interface name", () => {
    assert.notEqual(attachmentKey({ containerId: "ab", ifname: "c" }), attachmentKey({ containerId: "a", ifname: "bc" }));
  });
});
