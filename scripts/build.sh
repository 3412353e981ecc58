#!/usr/bin/env bash
# Build the worker (build/index.js + build/index_bg.wasm, worker-build 0.8.7, fully offline) and
# the @streams/client package (client/dist: ESM + .d.ts, and the `streams` bin).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/bootstrap.sh

worker-build --release "$@"

for f in build/index.js build/index_bg.wasm; do
  [ -s "$f" ] || { echo "build.sh: expected $f after worker-build" >&2; exit 1; }
done

rm -rf client/dist
npx --no-install tsc -p client/tsconfig.json
chmod +x client/dist/cli.js
# Links the package's `streams` bin into node_modules/.bin (`npx streams`); local only.
npm rebuild @streams/client --ignore-scripts --no-audit --no-fund >/dev/null
