#!/usr/bin/env bash
# Debian packages the test suite drives for real: redis-server (the multi-server and fault tests start their
# own instances on free ports) and chromium (browser tests, driven by Playwright with Debian's executable; no
# browser download ever). Installs only what is missing; needs root or sudo for that.
set -euo pipefail
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "installing from Debian: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
