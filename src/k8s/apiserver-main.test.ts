import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, test } from "node:test";
import * as k8s from "@kubernetes/client-node";
import { parseListen, readUsers, serveApiServer } from "./apiserver-main.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "trellis-apiserver-"));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

test("parseListen", () => {
  assert.deepEqual(parseListen("10.0.0.1:6443"), { host: "10.0.0.1", port: 6443 });
  assert.deepEqual(parseListen("[::1]:0"), { host: "::1", port: 0 });
  assert.deepEqual(parseListen(":6443"), { host: "0.0.0.0", port: 6443 });
  assert.throws(() => parseListen("6443"), /invalid --listen "6443"/);
});

test("readUsers rejects what is not a list of users", () => {
  const f = path.join(dir, "bad.json");
  fs.writeFileSync(f, JSON.stringify([{ name: "x" }]));
  assert.throws(() => readUsers(f), /entry 0 needs a non-empty "token"/);
  assert.throws(() => readUsers(path.join(dir, "missing.json")), /cannot read users file/);
});

test("serves with the users file, appends calls as JSON lines, stops on abort", async () => {
  const users = path.join(dir, "users.json");
  const calls = path.join(dir, "calls.jsonl");
  fs.writeFileSync(users, JSON.stringify([{ token: "t", name: "agent", rules: [{ apiGroups: [""], resources: ["nodes"], verbs: ["list"] }] }]));
  const ac = new AbortController();
  let announce = (_: string): void => {};
  const announced = new Promise<string>((r) => { announce = r; });
  const running = serveApiServer({ listen: "127.0.0.1:0", usersFile: users, callsFile: calls }, ac.signal, announce);
  const line = await announced;
  const m = line.match(/^apiserver listening on (http:\/\/127\.0\.0\.1:\d+)\n$/);
  assert.ok(m, line);
  const kc = new k8s.KubeConfig();
  kc.loadFromOptions({ clusters: [{ name: "c", server: m[1], skipTLSVerify: true }], users: [{ name: "u", token: "t" }], contexts: [{ name: "x", cluster: "c", user: "u" }], currentContext: "x" });
  const core = kc.makeApiClient(k8s.CoreV1Api);
  await core.listNode();
  await assert.rejects(core.listNamespace(), (e: unknown) => e instanceof k8s.ApiException && e.code === 403);
  ac.abort();
  await running;
  const lines = fs.readFileSync(calls, "utf8").trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((c) => `${c.user} ${c.verb} ${c.resource} ${c.code}`), ["agent list nodes 200", "agent list namespaces 403"]);
});
