#!/bin/sh
# Installs the Debian packages Switchboard needs, only those missing.
# Runs `apt-get update` only when something has to be installed.
# Usage: scripts/deps.sh [build|test|bench]   (each includes the ones before it)
set -eu
level=${1:-build}
pkgs="cmake make gcc pkg-config libuv1-dev libh2o-dev libpq-dev libmsgpack-dev
libcurl4-openssl-dev libssl-dev libsodium-dev libjansson-dev zlib1g-dev postgresql postgresql-contrib"
if [ "$level" = test ] || [ "$level" = bench ]; then
    pkgs="$pkgs curl openssl nodejs npm clang-format clang libclang-rt-14-dev chromium"
fi
if [ "$level" = bench ]; then
    pkgs="$pkgs nghttp2-client wrk"
fi
missing=""
for p in $pkgs; do
    st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$st" = installed ] || missing="$missing $p"
done
# node may come from outside Debian: accept any working node/npm
case "$missing" in *nodejs*|*npm*)
    if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
        missing=$(echo "$missing" | sed 's/ nodejs//; s/ npm//')
    fi ;;
esac
[ -z "$(echo "$missing" | tr -d ' ')" ] && exit 0
echo "deps: installing$missing" >&2
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
