#!/usr/bin/env bash
# Local dev server: `npm run dev [-- --port 8787]`. wrangler runs [build] `worker-build --release`
# itself; bootstrap.sh exports the binaries that keep that build offline.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/bootstrap.sh

export WRANGLER_SEND_METRICS=false

# wrangler serves viewer/dist as static assets ([assets] in wrangler.toml).
node viewer/build.mjs

exec npx --no-install wrangler dev --ip 127.0.0.1 "$@"
