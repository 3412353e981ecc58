#!/usr/bin/env bash
# The one test command (`npm test`): host unit tests, streams-core purity, type checks,
# wasm + client builds, client unit tests, then the Miniflare suite. Stops at the first failure (non-zero exit).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/bootstrap.sh

step() { printf '\n==> %s\n' "$*"; }

step "cargo test (host)"
# A new proptest seed each run (docs/architecture.md#tests); STREAMS_PROPTEST_SEED=<seed> replays one.
export STREAMS_PROPTEST_SEED="${STREAMS_PROPTEST_SEED:-$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')}"
echo "proptest seed: STREAMS_PROPTEST_SEED=$STREAMS_PROPTEST_SEED"
cargo test --features test-util

step "purity: streams-core depends on no worker / wasm-bindgen / js-sys / web-sys crate"
# The core is its own crate, so the compiler refuses any use of a crate it does
# not depend on; this proves the dependency tree (direct and transitive) is clean.
core_deps="$(cargo tree -p streams-core --edges normal,build --prefix none --format '{p}' | awk '{print $1}' | sort -u)"
if [ -z "$core_deps" ]; then
  echo "cargo tree printed nothing for streams-core" >&2; exit 1
fi
impure="$(grep -xE 'worker|worker-.*|wasm-bindgen.*|js-sys|web-sys' <<<"$core_deps" || true)"
if [ -n "$impure" ]; then
  printf '%s\n' "$impure" >&2
  echo "purity check failed: streams-core depends on the platform crates above" >&2
  exit 1
fi
echo "ok ($(wc -l <<<"$core_deps") crates, none of them platform crates)"

if [ -f types/tsconfig.json ]; then
  step "tsc --noEmit -p types"
  npx --no-install tsc --noEmit -p types
fi

step "tsc --noEmit -p viewer"
npx --no-install tsc --noEmit -p viewer

step "build (worker-build --release)"
bash scripts/build.sh

step "client unit tests (node --test client/test)"
node --test --test-concurrency=1 client/test/*.test.mjs

step "miniflare tests (node --test per file, two at a time: scripts/miniflare-tests.mjs)"
node scripts/miniflare-tests.mjs
