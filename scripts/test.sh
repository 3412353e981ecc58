#!/usr/bin/env bash
# The one test command (`npm test`): host unit tests, src/core purity, type checks,
# wasm + client builds, client unit tests, then the Miniflare suite. Stops at the first failure (non-zero exit).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/bootstrap.sh

step() { printf '\n==> %s\n' "$*"; }

step "cargo test (host)"
cargo test --features test-util

step "purity: src/core must not depend on worker / wasm-bindgen / js-sys / web-sys"
if [ ! -d src/core ]; then
  echo "src/core/ is missing" >&2; exit 1
fi
# Line comments (`// ...`, `//! ...`) are ignored, so docs may name what is forbidden.
impure="$(find src/core -type f -print0 | xargs -0 -r perl -ne '
  my $code = $_; $code =~ s{//.*}{};
  print "$ARGV:$.: $_" if $code =~ /worker::|use worker|wasm_bindgen|js_sys|web_sys/;
  close ARGV if eof;')"
if [ -n "$impure" ]; then
  printf '%s\n' "$impure" >&2
  echo "purity check failed: the lines above reference worker/wasm types inside src/core/" >&2
  exit 1
fi
echo "ok"

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

step "miniflare tests (node --test)"
mapfile -t tests < <(find miniflare -name '*.test.mjs' -type f | sort)
if [ "${#tests[@]}" -eq 0 ]; then
  echo "no miniflare/**/*.test.mjs files found" >&2
  exit 1
fi
node --test --test-concurrency=1 "${tests[@]}"
