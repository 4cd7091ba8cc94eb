#!/usr/bin/env bash
# Quick start 1: set up this machine, then build a 2-node lab with 3 pods per node, show it,
# check pod-to-pod reachability, and take it down again (pass --keep to leave it running).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

name=demo
keep=0
[ "${1:-}" = "--keep" ] && keep=1
trellis=build/trellis
"$trellis" lab down --name "$name" >/dev/null 2>&1 || true
cleanup() { [ $keep -eq 1 ] || "$trellis" lab down --name "$name"; }
trap cleanup EXIT

echo; echo "== trellis lab up --name $name --nodes 2 --pods-per-node 3 --backend vxlan"
"$trellis" lab up --name "$name" --nodes 2 --pods-per-node 3 --backend vxlan
echo; echo "== trellis lab status --name $name"
"$trellis" lab status --name "$name"
echo; echo "== trellis --lab $name nodes"
"$trellis" --lab "$name" nodes
echo; echo "== trellis lab check --name $name"
"$trellis" lab check --name "$name"
if [ $keep -eq 1 ]; then
  echo; echo "lab '$name' left running; remove it with: $trellis lab down --name $name"
fi
