#!/usr/bin/env bash
# Build the worker (build/index.js + build/index_bg.wasm, worker-build 0.8.7, fully offline),
# the @streams/client package (client/dist: ESM + .d.ts, and the `streams` bin) and the viewer
# page (viewer/dist, the Worker's static assets).
#
#   bash scripts/build.sh                     the release build (what `wrangler deploy` runs as [build])
#   STREAMS_DEV_BUILD=1 bash scripts/build.sh what `npm run dev` runs: skips the size-optimising wasm-opt pass
#   STREAMS_PROFILE_BUILD=1 bash scripts/build.sh also builds build-profile/ (wasm names kept) for bench/profile.mjs
#
# A part whose inputs (file contents, not times) are unchanged since its last build is not built
# again: `wrangler dev` runs [build] twice on every start, and a fresh clone may reuse artefacts.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/bootstrap.sh

mkdir -p build
exec 8>build/.lock
flock 8

# A digest of the tracked-or-not files under the given paths (missing paths are skipped) and of
# any extra words (tool versions, build mode).
inputs_digest() {
  local words="$1"; shift
  local existing=()
  for p in "$@"; do [ -e "$p" ] && existing+=("$p"); done
  { echo "$words"; find "${existing[@]}" -type f ! -name '*.proptest-regressions' -print0 | sort -z | xargs -0 -r sha256sum; } \
    | sha256sum | cut -d' ' -f1
}

# up_to_date <stamp> <digest>: the stamp holds the digest of the last build of this part.
up_to_date() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

# ---- the worker ----
worker_digest="$(inputs_digest "worker-build $STREAMS_WORKER_BUILD_VERSION wasm-bindgen $STREAMS_WASM_BINDGEN_VERSION" \
  Cargo.toml Cargo.lock src crates)"
mode=release
[ "${STREAMS_DEV_BUILD:-}" = 1 ] && mode=dev
worker_outputs_present() { [ -s build/index.js ] && [ -s build/index_bg.wasm ]; }
# A release build serves dev too; a dev build is never deployed.
if worker_outputs_present && { up_to_date build/.inputs "$worker_digest release" \
     || { [ "$mode" = dev ] && up_to_date build/.inputs "$worker_digest dev"; }; }; then
  echo "build.sh: worker up to date"
else
  rm -f build/.inputs
  if [ "$mode" = dev ]; then
    worker-build --release --no-opt "$@"
  else
    worker-build --release "$@"
  fi
  worker_outputs_present || { echo "build.sh: expected build/index.js and build/index_bg.wasm after worker-build" >&2; exit 1; }
  echo "$worker_digest $mode" > build/.inputs
fi

# ---- the profile build (STREAMS_PROFILE_BUILD=1, bench/profile.mjs): the same worker with its wasm
# name section kept (cargo profile wasm-profile), so a CPU profile names Rust functions ----
if [ "${STREAMS_PROFILE_BUILD:-}" = 1 ]; then
  if [ -s build-profile/index_bg.wasm ] && up_to_date build-profile/.inputs "$worker_digest"; then
    echo "build.sh: profile build up to date"
  else
    rm -f build-profile/.inputs
    worker-build --profile wasm-profile -d build-profile "$@"
    echo "$worker_digest" > build-profile/.inputs
  fi
fi

# ---- the client package (its stamp lives in build/: client/dist is what the package ships) ----
client_digest="$(inputs_digest "client" client/src client/tsconfig.json client/package.json client/build.mjs client/bundle-browser.mjs)"
if [ -x client/dist/cli.js ] && up_to_date build/.client-inputs "$client_digest"; then
  echo "build.sh: client up to date"
else
  rm -f build/.client-inputs
  node client/build.mjs   # the package's own build (npm run build -w client): tsc + browser assets
  echo "$client_digest" > build/.client-inputs
fi
if [ ! -e node_modules/.bin/streams ]; then
  # Links the package's `streams` bin into node_modules/.bin (`npx streams`); local only.
  npm rebuild @streams/client --ignore-scripts --no-audit --no-fund >/dev/null
fi

# ---- the viewer page (its stamp lives in build/: everything in viewer/dist is served) ----
viewer_digest="$(inputs_digest "viewer" viewer/src viewer/index.html viewer/_headers viewer/build.mjs viewer/tsconfig.json \
  client/src client/bundle-browser.mjs package-lock.json)"
if [ -f viewer/dist/index.html ] && up_to_date build/.viewer-inputs "$viewer_digest"; then
  echo "build.sh: viewer up to date"
else
  rm -f build/.viewer-inputs
  node viewer/build.mjs
  echo "$viewer_digest" > build/.viewer-inputs
fi
