#!/usr/bin/env bash
# Quick start 1: set up this machine, then build a 2-node lab with 3 pods per node, show it,
# check pod-to-pod reachability, and take it down again; then a 3-node lab with labelled pods and
# network policies, checked port by port against `policy explain` (pass --keep to leave both up).
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
echo; echo "== network policy: a 3-node lab from examples/lab-policy.yaml, policies from examples/policies.yaml"
"$trellis" lab down --name demopol >/dev/null 2>&1 || true
"$trellis" lab up --name demopol --spec examples/lab-policy.yaml >/dev/null
"$trellis" --lab demopol apply -f examples/policies.yaml
echo; echo "== trellis lab check --name demopol   (TCP/UDP probes on declared ports vs policy verdicts)"
"$trellis" lab check --name demopol || status=$?
echo; echo "== trellis --lab demopol policy explain --from dev/tool --to prod/web --port 80/TCP"
"$trellis" --lab demopol policy explain --from dev/tool --to prod/web --port 80/TCP
[ $keep -eq 1 ] || "$trellis" lab down --name demopol >/dev/null
[ "${status:-0}" -eq 0 ] || exit "$status"

if [ $keep -eq 1 ]; then
  echo; echo "labs '$name' and 'demopol' left running; remove them with: $trellis lab down --name $name (and demopol)"
fi
