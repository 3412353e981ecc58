#!/usr/bin/env bash
# Local dev server: `npm run dev [-- --port 8787]`. wrangler runs [build] (scripts/build.sh) itself,
# twice per start; STREAMS_DEV_BUILD=1 skips the size-optimising pass, and an unchanged tree is not
# rebuilt at all. bootstrap.sh exports the binaries that keep that build offline.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/bootstrap.sh

export WRANGLER_SEND_METRICS=false
export STREAMS_DEV_BUILD=1

# wrangler runs as a child (not exec'd, not through npx) so that a SIGTERM or SIGINT sent to this
# script, or to `npm run dev`, reaches it: wrangler's launcher passes it on, and wrangler stops
# workerd and frees the port. `<&0` keeps the terminal as wrangler's stdin for its hotkeys.
# STREAMS_OPEN_ACCESS opens the API while no token or JWT secret is configured: for local development
# only, so it is set here and never in wrangler.toml (docs/access.md#closed-by-default).
node node_modules/wrangler/bin/wrangler.js dev --ip 127.0.0.1 --var STREAMS_OPEN_ACCESS:true "$@" <&0 &
wrangler=$!
trap 'kill -TERM "$wrangler" 2>/dev/null || true' TERM INT HUP
# `wait` returns early when a trapped signal arrives: wait until wrangler has really exited.
status=0
while kill -0 "$wrangler" 2>/dev/null; do
  wait "$wrangler" || status=$?
done
exit "$status"
