#!/usr/bin/env bash
# Local dev server: `npm run dev [-- --port 8787]`. wrangler runs [build] `worker-build --release`
# itself; the env below keeps that build offline.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/bootstrap.sh

export WASM_BINDGEN_BIN="${CARGO_HOME:-$HOME/.cargo}/bin/wasm-bindgen"
export ESBUILD_BIN="$PWD/node_modules/@esbuild/linux-x64/bin/esbuild"
export WASM_OPT_BIN="$PWD/node_modules/.bin/wasm-opt"
export WRANGLER_SEND_METRICS=false

exec npx --no-install wrangler dev --ip 127.0.0.1 "$@"
