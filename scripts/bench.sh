#!/usr/bin/env bash
# Build, then run the benchmark drivers: the Worker against its baseline (bench/run.mjs, which
# rewrites BENCHMARKS.md), then the browser runtime in headless Chromium (bench/browser.mjs, which
# adds its section to BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/build.sh
node bench/run.mjs "$@"
node bench/browser.mjs
