#!/usr/bin/env bash
# Installs the Debian packages cesr needs (only those missing), then configures
# and builds into build/. Idempotent: a second run installs nothing and only
# rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake libeigen3-dev libboost-dev libfmt-dev doctest-dev
          libcli11-dev nlohmann-json3-dev libnlopt-cxx-dev libbenchmark-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

build_dir=${CESR_BUILD_DIR:-build}
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release >/dev/null
# CESR_TARGETS (e.g. "cesr") builds only those targets; by default everything
# (the tests and benchmarks too).
if [ -n "${CESR_TARGETS:-}" ]; then
  cmake --build "$build_dir" -j "$(nproc)" --target ${CESR_TARGETS} >&2
else
  cmake --build "$build_dir" -j "$(nproc)" >&2
fi
