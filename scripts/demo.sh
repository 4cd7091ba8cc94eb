#!/usr/bin/env bash
# Quick start 1: set up this machine, then build a 2-node lab with 3 pods per node, show it,
# check pod-to-pod reachability, and take it down again; then a 3-node lab with labelled pods and
# network policies and Services, checked port by port against `policy explain`.
#
#   scripts/demo.sh [--keep] [--name NAME]
#
# The labs are called NAME and NAMEp (default: trldemo, trldemop). The demo never touches a lab it
# did not make: if one of those names is taken it stops and says so. --keep leaves both labs up.
set -euo pipefail
cd "$(dirname "$0")/.."

name=trldemo
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --keep) keep=1 ;;
    --name) name=${2:?--name needs a value}; shift ;;
    *) echo "usage: scripts/demo.sh [--keep] [--name NAME]" >&2; exit 2 ;;
  esac
  shift
done
pol="${name}p"
if ! [[ $pol =~ ^[a-z][a-z0-9]{0,11}$ ]]; then
  echo "demo: --name must be 1-11 lower-case letters and digits, starting with a letter (the policy lab is NAME + p)" >&2
  exit 2
fi

scripts/setup.sh
trellis=build/trellis
for lab in "$name" "$pol"; do
  if "$trellis" lab status --name "$lab" >/dev/null 2>&1 || [ -d "/run/trellis/lab/$lab" ]; then
    echo "demo: a lab named $lab already exists; the demo does not touch it." >&2
    echo "      remove it with: $trellis lab down --name $lab   or run: scripts/demo.sh --name OTHER" >&2
    exit 1
  fi
done

made=()
cleanup() {
  [ $keep -eq 1 ] && return
  for lab in "${made[@]}"; do "$trellis" lab down --name "$lab" >/dev/null || true; done
}
trap cleanup EXIT

echo; echo "== trellis lab up --name $name --nodes 2 --pods-per-node 3 --backend vxlan"
made+=("$name")
"$trellis" lab up --name "$name" --nodes 2 --pods-per-node 3 --backend vxlan
echo; echo "== trellis lab status --name $name"
"$trellis" lab status --name "$name"
echo; echo "== trellis --lab $name nodes"
"$trellis" --lab "$name" nodes
echo; echo "== trellis lab check --name $name"
"$trellis" lab check --name "$name"

echo; echo "== network policy: a 3-node lab from examples/lab-policy.yaml, policies from examples/policies.yaml"
made+=("$pol")
"$trellis" lab up --name "$pol" --spec examples/lab-policy.yaml >/dev/null
"$trellis" --lab "$pol" apply -f examples/policies.yaml
echo; echo "== Services from examples/services.yaml (ClusterIP and NodePort, in nftables)"
"$trellis" --lab "$pol" apply -f examples/services.yaml
"$trellis" --lab "$pol" get services
"$trellis" --lab "$pol" get endpointslices
sleep 2   # the agents program policies and Services within about a second
echo; echo "== trellis lab check --name $pol   (TCP/UDP probes on declared ports and Service ports vs policy verdicts)"
status=0
"$trellis" lab check --name "$pol" || status=$?
echo; echo "== trellis --lab $pol policy explain --from dev/tool --to prod/web --port 80/TCP"
"$trellis" --lab "$pol" policy explain --from dev/tool --to prod/web --port 80/TCP
echo; echo "== trellis --lab $pol policy explain --from prod/web --to-service prod/api --port 80"
"$trellis" --lab "$pol" policy explain --from prod/web --to-service prod/api --port 80

if [ $keep -eq 1 ]; then
  echo; echo "labs '$name' and '$pol' left running; remove them with: $trellis lab down --name $name; $trellis lab down --name $pol"
fi
exit "$status"
