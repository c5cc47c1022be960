#!/usr/bin/env bash
# Installs every Debian package sluice needs to build, test and benchmark.
# Idempotent: runs apt-get only when something is missing, `apt-get update` at most once.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config clang libclang-rt-14-dev clang-format
  libboost1.81-dev libboost-url1.81-dev libnghttp2-dev libssl-dev libre2-dev
  prometheus-cpp-dev libyaml-cpp-dev libgtest-dev libgmock-dev libbenchmark-dev
  libgoogle-perftools-dev
  curl wrk nghttp2-client prometheus python3 python3-pytest python3-yaml python3-cryptography
  python3-h2 python3-grpcio openssl procps
  iproute2
  libhiredis-dev librapidcheck-dev redis-server libc-ares-dev dnsmasq-base
  golang-go golang-github-masterminds-sprig-dev golang-github-ghodss-yaml-dev
  zlib1g-dev libbrotli-dev libzstd-dev python3-brotli python3-zstandard python3-websockets
  protobuf-compiler python3-protobuf
  chromium
)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(nginx-light haproxy nghttp2-proxy linux-perf valgrind strace)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# The Helm chart's check (helm/tests) validates with node and npm. Any node >= 18 will do: take
# Debian's only when none is installed (a node from elsewhere often ships its own npm, and
# Debian's nodejs package would conflict with it).
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi
if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "installing: ${missing[*]}" >&2
if [[ $(id -u) -ne 0 ]]; then
  sudo=sudo
else
  sudo=
fi
export DEBIAN_FRONTEND=noninteractive
# Service packages (nginx, haproxy, prometheus) must not start daemons on install.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee $policy >/dev/null
  $sudo chmod +x $policy
  created_policy=1
fi
trap '[[ $created_policy == 1 ]] && $sudo rm -f $policy' EXIT
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
