#!/usr/bin/env bash
# Sets up, builds, and runs cesr's main job with no other input.
set -euo pipefail
cd "$(dirname "$0")/.."
CESR_TARGETS=cesr scripts/setup.sh  # the main job needs only the cesr binary
exec build/cesr frontier "$@"
