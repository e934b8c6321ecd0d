#!/usr/bin/env bash
# Install what the tests need and run them. This is the command README gives
# and the one CI runs (.ci/run), on a fresh Debian machine.
#
#   - As root on Debian: installs the packages in scripts/apt-packages.txt that
#     are missing (qemu and Debian's kernel for the real-client interop guest,
#     pppd/sstpc/pptp for that guest, Prometheus, iproute2...).
#   - npm ci: dependencies, the native addon (node-gyp), the WASM data plane
#     (release and debug) and the TypeScript build.
#   - npm test: every test. Tests that need root, namespaces or the qemu guest
#     print a loud SKIPPED line where the facility is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  missing=()
  while read -r pkg; do
    pkg="${pkg%%#*}"
    pkg="${pkg//[[:space:]]/}"
    [ -n "$pkg" ] || continue
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done < scripts/apt-packages.txt
  if [ ${#missing[@]} -gt 0 ]; then
    echo "scripts/test.sh: installing Debian packages: ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
else
  echo "scripts/test.sh: not root (or no apt-get): not installing Debian packages; tests needing them will be SKIPPED" >&2
fi

npm ci --no-audit --no-fund
npm test
