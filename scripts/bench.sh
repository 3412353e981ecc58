#!/usr/bin/env bash
# Build, then run the benchmark driver (bench/ is owned elsewhere).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/build.sh
exec node bench/run.mjs "$@"
