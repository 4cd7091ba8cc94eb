#!/usr/bin/env node
// Runs every test with Node's test runner over the compiled tree: unit tests beside the sources
// (dist/src/**/*.test.js, and the pure parts of the benchmarks in dist/bench: no root, no
// processes, no sleeps), integration tests
// (dist/test/integration: root, real network namespaces, the built executables) and end-to-end
// tests (dist/test/e2e: the lab through the CLI). Only *.test.js files are run (helpers are not).
// Test files run one at a time: integration tests share the machine's CPU with the kernel work
// they measure, and their output stays readable. Arguments select directories or files.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

function testFiles(path) {
  if (!existsSync(path)) return [];
  if (statSync(path).isFile()) return [path];
  return readdirSync(path).sort().flatMap((n) => {
    const p = join(path, n);
    return statSync(p).isDirectory() ? testFiles(p) : n.endsWith(".test.js") ? [p] : [];
  });
}

const targets = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ["dist/src", "dist/bench", "dist/test/integration", "dist/test/e2e"];
const files = targets.flatMap(testFiles);
const r = spawnSync(process.execPath, ["--test", "--test-concurrency=1", ...files], { stdio: "inherit" });
process.exit(r.status ?? 1);
