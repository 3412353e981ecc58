#!/usr/bin/env bash
# Build, then run the benchmark driver (bench/ is owned elsewhere), then the viewer's metric.
# `npm run bench -- viewer [--events=N]` runs the viewer's metric alone.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/build.sh
if [ "${1:-}" = "viewer" ]; then
  shift
  exec node bench/viewer.mjs "$@"
fi
node bench/run.mjs "$@"
node bench/viewer.mjs
