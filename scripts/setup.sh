#!/usr/bin/env bash
# Installs the Debian packages cesr needs (only those missing), then configures
# and builds into build/, and installs the Python package into .venv/.
# Idempotent: a second run installs nothing and only rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake libeigen3-dev libboost-dev libfmt-dev doctest-dev
          libcli11-dev nlohmann-json3-dev libnlopt-cxx-dev libbenchmark-dev
          python3-dev python3-venv pybind11-dev python3-pybind11 python3-numpy
          python3-pytest python3-distributed python3-pandas python3-matplotlib)
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
# The Python module is built for Debian's own interpreter (the one python3-numpy
# belongs to), never for another python3 earlier on PATH.
# CESR_NATIVE=ON in the environment builds for this machine (-march=native);
# the default is the portable build.
# The packages above include pybind11 and Python's headers, so the Python
# module is always asked for: a CMake cache from a configure run before they
# were installed holds CESR_PYTHON=OFF, which would otherwise stay.
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DPython_EXECUTABLE=/usr/bin/python3 -DCESR_PYTHON=ON \
  ${CESR_NATIVE:+-DCESR_NATIVE=$CESR_NATIVE} >/dev/null
python_on=$(grep -q '^CESR_PYTHON:BOOL=ON' "$build_dir/CMakeCache.txt" && echo 1 || true)
# CESR_TARGETS (e.g. "cesr") builds only those targets, and the Python package;
# by default everything (the tests and benchmarks too).
if [ -n "${CESR_TARGETS:-}" ]; then
  cmake --build "$build_dir" -j "$(nproc)" --target ${CESR_TARGETS} ${python_on:+cesr_python} >&2
else
  cmake --build "$build_dir" -j "$(nproc)" >&2
fi

# The Python package: a virtual environment of Debian's Python that sees
# Debian's numpy, pandas, dask (--system-site-packages), and a .pth file that
# puts the build's python/ folder (cesr/ with the extension) on its path. No
# download: no pip, no index.
if [ -n "$python_on" ]; then
  if [ ! -x .venv/bin/python ]; then
    /usr/bin/python3 -m venv --system-site-packages --without-pip .venv
  fi
  site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  package_root=$(cd "$build_dir/python" && pwd)
  if [ "$(cat "$site/cesr.pth" 2>/dev/null)" != "$package_root" ]; then
    echo "$package_root" > "$site/cesr.pth"
  fi
  .venv/bin/python -c 'import cesr' || { echo "setup: .venv/bin/python cannot import cesr" >&2; exit 1; }
fi
