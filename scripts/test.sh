#!/usr/bin/env bash
# Sets up (scripts/setup.sh), builds, and runs every test: CTest, then the
# Python package's tests (pytest in .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
ctest --test-dir "${CESR_BUILD_DIR:-build}" --output-on-failure -j "$(nproc)"
.venv/bin/python -m pytest python/tests -q -p no:cacheprovider
