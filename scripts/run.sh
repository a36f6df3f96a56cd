#!/usr/bin/env bash
# Sets up, builds, and runs cesr's main job with no other input.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec build/cesr frontier "$@"
