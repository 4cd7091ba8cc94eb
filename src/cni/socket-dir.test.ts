import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ancestorProblem, planSocketDir, socketModes, type DirFacts } from "./socket-dir.js";

const ROOT_ONLY = socketModes();
const GROUP = socketModes(1234);
const dir = (mode: number, over: Partial<Extract<DirFacts, { exists: true }>> = {}): DirFacts => ({ exists: true, kind: "directory", uid: 0, gid: 0, mode, ...over });

describe("the socket's directory", () => {
  test("modes: root only is 0700 / 0600; with a group 0750 / 0660", () => {
    assert.deepEqual(ROOT_ONLY, { dirMode: 0o700, socketMode: 0o600 });
    assert.deepEqual(GROUP, { dirMode: 0o750, socketMode: 0o660, gid: 1234 });
  });

  test("a missing directory is created; a right one is kept", () => {
    assert.deepEqual(planSocketDir("/run/trellis", { exists: false }, 0, ROOT_ONLY), { action: "create" });
    assert.deepEqual(planSocketDir("/run/trellis", dir(0o700), 0, ROOT_ONLY), { action: "keep" });
    assert.deepEqual(planSocketDir("/run/trellis", dir(0o750, { gid: 1234 }), 0, GROUP), { action: "keep" });
  });

  test("ours, writable only by us, with looser modes: tightened, saying from what to what", () => {
    assert.deepEqual(planSocketDir("/run/trellis", dir(0o755), 0, ROOT_ONLY),
      { action: "fix", mode: 0o700, note: "tightened /run/trellis from 0755 to 0700" });
    assert.deepEqual(planSocketDir("/run/trellis", dir(0o755, { gid: 0 }), 0, GROUP),
      { action: "fix", mode: 0o750, gid: 1234, note: "tightened /run/trellis from 0755 to 0750, group 0 to 1234" });
    assert.deepEqual(planSocketDir("/run/trellis", dir(0o700), 0, GROUP),
      { action: "fix", mode: 0o750, gid: 1234, note: "set /run/trellis from 0700 to 0750, group 0 to 1234" });
  });

  for (const [what, facts, why] of [
    ["a symbolic link", { exists: true, kind: "symlink", uid: 0, gid: 0, mode: 0o777 }, /symbolic link/],
    ["a file", { exists: true, kind: "other", uid: 0, gid: 0, mode: 0o600 }, /not a directory/],
    ["owned by another user", dir(0o700, { uid: 1000 }), /owned by uid 1000/],
    ["world-writable", dir(0o777), /writable by others or shared \(mode 0777\)/],
    ["group-writable", dir(0o770), /mode 0770/],
    ["sticky (like /tmp)", dir(0o1777), /mode 1777/],
  ] as const) {
    test(`refused: ${what}`, () => {
      const plan = planSocketDir("/run/trellis", facts as DirFacts, 0, ROOT_ONLY);
      assert.equal(plan.action, "refuse");
      assert.match(plan.action === "refuse" ? plan.why : "", why);
    });
  }

  test("a top-level directory is never changed: refused unless already right", () => {
    const plan = planSocketDir("/etc", dir(0o755), 0, ROOT_ONLY);
    assert.equal(plan.action, "refuse");
    assert.match(plan.action === "refuse" ? plan.why : "", /top-level directory/);
    assert.deepEqual(planSocketDir("/root", dir(0o700), 0, ROOT_ONLY), { action: "keep" });
  });

  test("every directory above must be root's (or ours) and writable by nobody else unless sticky", () => {
    assert.equal(ancestorProblem([{ path: "/run", uid: 0, mode: 0o755 }, { path: "/", uid: 0, mode: 0o755 }], 0), undefined);
    assert.equal(ancestorProblem([{ path: "/tmp", uid: 0, mode: 0o1777 }], 0), undefined, "sticky: others cannot rename our directory");
    assert.equal(ancestorProblem([{ path: "/home/me", uid: 1000, mode: 0o700 }], 1000), undefined, "ours");
    assert.match(ancestorProblem([{ path: "/srv/x", uid: 1000, mode: 0o755 }], 0) ?? "", /\/srv\/x .* owned by uid 1000/);
    assert.match(ancestorProblem([{ path: "/srv/x", uid: 0, mode: 0o777 }], 0) ?? "", /writable by others \(mode 0777\) and not sticky/);
  });
});
