#!/usr/bin/env bash
# Prepares a fresh Debian/Ubuntu machine (as root) to build, run and test Trellis:
# installs the system tools Trellis drives when they are missing (iproute2, nftables, etcd for the
# multi-host datastore tests, iperf3 for the benchmarks, the reference CNI plugins the tests compare
# with, BIRD 2 for the bgp backend, FRR for the lab's ToR routers, Chromium for the
# topology page's browser test), the npm dependencies, and builds.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: run as root (Trellis creates network namespaces and installs system packages)" >&2
  exit 1
fi

# Debian packages and the command each provides (checked first, so a ready machine skips apt).
packages=(
  "iproute2:ip"
  "util-linux:nsenter"
  "procps:sysctl"
  "iputils-ping:ping"
  "nftables:nft"
  "etcd-server:etcd"
  "iperf3:iperf3"
  "containernetworking-plugins:/usr/lib/cni/host-local"
  "bird2:bird"
  "frr:/usr/lib/frr/bgpd"
  "chromium:chromium"
)
missing=()
for entry in "${packages[@]}"; do
  pkg=${entry%%:*}; probe=${entry#*:}
  if [[ $probe == /* ]]; then [ -e "$probe" ] || missing+=("$pkg")
  else command -v "$probe" >/dev/null 2>&1 || missing+=("$pkg"); fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # BIRD and FRR are run by Trellis inside lab namespaces only: their packages must not start
  # daemons in the machine's own namespace. A policy-rc.d that refuses every start is put in
  # place for the install (unless the machine has one already) and taken away again.
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ $made_policy -eq 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
fi

if ! command -v node >/dev/null 2>&1; then
  echo "setup: installing nodejs"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
  echo "setup: Node.js >= 20 is needed to build and test (found $(node --version))" >&2
  exit 1
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
echo "setup: building"
npm run --silent build
