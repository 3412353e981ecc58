#!/usr/bin/env bash
# Build, then run the benchmark drivers: the Worker against its baseline (bench/run.mjs, which
# rewrites BENCHMARKS.md), the viewer's metric, and the browser runtime in headless Chromium
# (bench/browser.mjs, which adds its section to BENCHMARKS.md), and the archive (bench/archive.mjs, the same).
# `npm run bench -- viewer [--events=N]` / `npm run bench -- browser [--events=N]` run one alone;
# `npm run bench -- profile [--label=NAME]` runs the single-append profile (bench/profile.mjs) alone.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
STREAMS_PROFILE_BUILD=1 bash scripts/build.sh
case "${1:-}" in
  profile) shift; exec node bench/profile.mjs "$@" ;;
  viewer) shift; exec node bench/viewer.mjs "$@" ;;
  browser) shift; exec node bench/browser.mjs "$@" ;;
  archive) shift; exec node bench/archive.mjs "$@" ;;
esac
node bench/run.mjs "$@"
node bench/profile.mjs
node bench/viewer.mjs
node bench/browser.mjs
node bench/archive.mjs
