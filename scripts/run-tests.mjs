#!/usr/bin/env node
// Runs every test with Node's test runner over the compiled tree: unit tests beside the sources
// (dist/src/**/*.test.js: no root, no processes, no sleeps) and integration tests
// (dist/test/**/*.test.js: root, real network namespaces, the built executables).
// Test files run one at a time: integration tests share the machine's CPU with the kernel work
// they measure, and their output stays readable. Extra arguments select directories or files.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

const targets = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ["dist/src", "dist/test"];
const r = spawnSync(process.execPath, ["--test", "--test-concurrency=1", ...targets.filter(existsSync)], { stdio: "inherit" });
process.exit(r.status ?? 1);
