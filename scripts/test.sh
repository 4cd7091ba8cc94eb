#!/usr/bin/env bash
# Quick start 2: set up this machine, then run every test (unit and integration).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
node scripts/run-tests.mjs "$@"
