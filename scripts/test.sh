#!/usr/bin/env bash
# Sets up (scripts/setup.sh), builds, and runs every test through CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
ctest --test-dir "${CESR_BUILD_DIR:-build}" --output-on-failure -j "$(nproc)"
