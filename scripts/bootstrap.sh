#!/usr/bin/env bash
# Idempotent toolchain setup for the streams worker. Quiet when everything is in place.
#
#   bash scripts/bootstrap.sh        # run it
#   source scripts/bootstrap.sh      # what build.sh / test.sh / dev.sh do (also exports PATH)
#
# Installs only from package registries / rustup (no GitHub downloads):
#   - rustup target wasm32-unknown-unknown
#   - worker-build 0.8.7 and wasm-bindgen-cli 0.2.130 (cargo install, no --locked)
#   - node_modules via `npm ci`, when missing or older than package-lock.json
# Concurrent runs serialise on a per-user lock so two cargo installs never race.

STREAMS_WORKER_BUILD_VERSION="0.8.7"
STREAMS_WASM_BINDGEN_VERSION="0.2.130"
STREAMS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STREAMS_CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
export STREAMS_ROOT

# A fresh rustup install puts cargo here; make sure it (and installed CLIs) are on PATH.
case ":$PATH:" in
  *":$STREAMS_CARGO_BIN:"*) ;;
  *) export PATH="$STREAMS_CARGO_BIN:$PATH" ;;
esac

_streams_bootstrap_check() {
  # Prints what is missing, one item per line; prints nothing when all is in place.
  rustup target list --installed 2>/dev/null | grep -qx 'wasm32-unknown-unknown' || echo target
  { "$STREAMS_CARGO_BIN/worker-build" --version 2>/dev/null || true; } \
    | grep -qw "$STREAMS_WORKER_BUILD_VERSION" || echo worker-build
  { "$STREAMS_CARGO_BIN/wasm-bindgen" --version 2>/dev/null || true; } \
    | grep -qw "$STREAMS_WASM_BINDGEN_VERSION" || echo wasm-bindgen
  if [ ! -f "$STREAMS_ROOT/node_modules/.package-lock.json" ] \
     || [ "$STREAMS_ROOT/package-lock.json" -nt "$STREAMS_ROOT/node_modules/.package-lock.json" ]; then
    echo npm
  fi
}

_streams_bootstrap_install() (
  set -euo pipefail
  for tool in cargo rustup npm node; do
    command -v "$tool" >/dev/null 2>&1 || {
      echo "bootstrap: '$tool' not found on PATH; install Rust (rustup) and Node >= 20 first" >&2
      exit 1
    }
  done
  mkdir -p "${XDG_CACHE_HOME:-$HOME/.cache}"
  exec 9>"${XDG_CACHE_HOME:-$HOME/.cache}/streams-bootstrap.lock"
  flock 9 2>/dev/null || true   # flock missing: carry on unlocked
  # Re-check under the lock: another run may have finished the work meanwhile.
  for item in $(_streams_bootstrap_check); do
    case "$item" in
      target)
        echo "bootstrap: rustup target add wasm32-unknown-unknown" >&2
        rustup target add wasm32-unknown-unknown >&2 ;;
      worker-build)
        echo "bootstrap: cargo install worker-build --version $STREAMS_WORKER_BUILD_VERSION (a few minutes)" >&2
        cargo install worker-build --version "$STREAMS_WORKER_BUILD_VERSION" --force >&2 ;;
      wasm-bindgen)
        echo "bootstrap: cargo install wasm-bindgen-cli --version $STREAMS_WASM_BINDGEN_VERSION (a few minutes)" >&2
        cargo install wasm-bindgen-cli --version "$STREAMS_WASM_BINDGEN_VERSION" --force >&2 ;;
      npm)
        echo "bootstrap: npm ci" >&2
        (cd "$STREAMS_ROOT" && npm ci --ignore-scripts --no-audit --no-fund >&2) ;;
    esac
  done
  remaining="$(_streams_bootstrap_check)"
  if [ -n "$remaining" ]; then
    echo "bootstrap: still missing after install: $(echo $remaining)" >&2
    exit 1
  fi
)

streams_bootstrap() {
  [ -z "$(_streams_bootstrap_check)" ] && return 0
  _streams_bootstrap_install
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  streams_bootstrap
else
  streams_bootstrap || return 1
  # worker-build (run by build.sh, and by wrangler's [build] in dev.sh) would
  # otherwise download wasm-bindgen / wasm-opt / esbuild from GitHub.
  export WASM_BINDGEN_BIN="$STREAMS_CARGO_BIN/wasm-bindgen"
  export ESBUILD_BIN="$STREAMS_ROOT/node_modules/@esbuild/linux-x64/bin/esbuild"
  export WASM_OPT_BIN="$STREAMS_ROOT/node_modules/.bin/wasm-opt"
fi
