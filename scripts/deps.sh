#!/bin/sh
# Install every Debian package that building, running and testing ehub needs.
# Idempotent and quiet when everything is already there; needs root (or sudo) only
# when something is missing. Usage: scripts/deps.sh [--bench]
set -e

pkgs="build-essential pkg-config clang python3 ca-certificates \
libuv1-dev libhttp-parser-dev libwslay-dev libjansson-dev libssl-dev \
libsqlite3-dev libpq-dev libhiredis-dev libxgboost-dev libcurl4-openssl-dev \
libsodium-dev libcmocka-dev libclang-rt-14-dev \
postgresql redis-server sqlite3 curl python3-cryptography python3-numpy python3-xgboost"
# The dashboard (web/) builds with node + npm and is tested in Chromium.
# A node that is already on PATH (18 or newer) will do; otherwise Debian's.
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || pkgs="$pkgs nodejs npm"
pkgs="$pkgs chromium"
# Benchmarks compare against nginx, drive load with wrk, and time requests
# on the wire with tcpdump (bench/ingest.sh).
[ "${1:-}" = "--bench" ] && pkgs="$pkgs wrk nginx-light tcpdump"

missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "deps: installing:$missing" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >/dev/null
# The postgresql package would start a cluster on 5432; tests start their own,
# so tell the maintainer scripts not to start services.
$SUDO apt-get install -y -q --no-install-recommends $missing >/dev/null
