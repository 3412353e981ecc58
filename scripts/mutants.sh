#!/usr/bin/env bash
# Deliberately broken reducers, to show the suite catches them (docs/architecture.md#tests). Not part
# of `npm test` or the build. For each mutant it makes a throw-away worktree of HEAD, applies one
# small change to the core, runs the property tests (and, with --miniflare, builds the worker and runs
# the Miniflare model tests), and reports whether the suite FAILED, as it must.
#
#   bash scripts/mutants.sh              # property tests only (a minute or two per mutant)
#   bash scripts/mutants.sh --miniflare  # also the Miniflare model tests (a wasm build per mutant)
#   bash scripts/mutants.sh [--miniflare] <name>  # one mutant
#
# Exit 0 when every mutant was caught; 1 when one survived or did not apply.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
MINIFLARE=0
[ "${1:-}" = "--miniflare" ] && MINIFLARE=1 && shift
ONLY="${1:-}" # a mutant's name: run that one alone

# name | file | perl substitution (must change the file)
MUTANTS=(
  # The refill after a spend runs ten times too fast: a bucket under a flood never trips.
  "breaker-refills-too-fast|crates/streams-core/src/breaker.rs|s{refill_rate_per_minute / 60_000\.0}{refill_rate_per_minute / 6_000.0}"
  # S/paused and S/resumed no longer refill the bucket.
  "pause-does-not-refill|crates/streams-core/src/reducer.rs|s{(CorePayload::Paused \{ reason \} => \{\n(?:.*\n){2}\s*)return Effect::Refill;}{\$1return Effect::Free;}"
  # A notice about a grandchild (or deeper) is dropped instead of recording the immediate child.
  "child-paths-forgets-deeper-notices|crates/streams-core/src/reducer.rs|s{!state\.child_paths\.contains\(&child\) \{}{!state.child_paths.contains(&child) && child == child_path.as_str() \{}"
)

export CARGO_TARGET_DIR="$ROOT/target/mutants"
survived=0
for spec in "${MUTANTS[@]}"; do
  IFS='|' read -r name file subst <<<"$spec"
  [ -n "$ONLY" ] && [ "$name" != "$ONLY" ] && continue
  dir="$(mktemp -d /tmp/streams-mutant-XXXXXX)"
  git worktree add --quiet --detach "$dir" HEAD
  before="$(sha1sum "$dir/$file")"
  perl -0pi -e "$subst" "$dir/$file"
  if [ "$(sha1sum "$dir/$file")" = "$before" ]; then
    echo "mutant $name: DID NOT APPLY to $file (the code moved; update scripts/mutants.sh)"
    survived=1
  else
    echo "mutant $name: $(cd "$dir" && git diff --stat | tail -1)"
    caught=()
    if ! (cd "$dir" && cargo test -q -p streams-core --features test-util --test core_properties >"$dir/cargo.log" 2>&1); then
      caught+=("core_properties ($(grep -m1 -oE 'differs from the model: [^"]{0,120}|the model (accepts|refuses)[^"]{0,80}|breaker trip: [^"]{0,80}|result\[[0-9]+\][^"]{0,80}' "$dir/cargo.log" || echo failed))")
    fi
    if [ "$MINIFLARE" = 1 ]; then
      # Hard-linked copies, never symlinks: an `npm ci` in the throw-away tree then only unlinks its
      # own names and cannot empty this checkout's node_modules.
      cp -al "$ROOT/node_modules" "$dir/node_modules"
      cp --remove-destination "$ROOT/node_modules/.package-lock.json" "$dir/node_modules/.package-lock.json"
      touch "$dir/node_modules/.package-lock.json" # current for bootstrap.sh, so no npm ci runs at all
      if (cd "$dir" && bash scripts/build.sh >"$dir/build.log" 2>&1); then
        for t in miniflare/reliability_model.test.mjs miniflare/storage_properties.test.mjs; do
          if ! (cd "$dir" && node --test "$t" >"$dir/mf.log" 2>&1); then
            caught+=("$t ($(grep -m1 -oE "differs from the model[^'\"]{0,120}|the breaker must trip[^'\"]{0,80}|a breaker trip at offset[^'\"]{0,60}|error: '[^']{0,120}" "$dir/mf.log" || echo failed))")
          fi
        done
      else
        caught+=("(the wasm build failed: see $dir/build.log)")
      fi
    fi
    if [ "${#caught[@]}" -gt 0 ]; then
      echo "  caught by: ${caught[*]}"
    else
      echo "  SURVIVED: the suite passed with this mutant"
      survived=1
    fi
  fi
  git worktree remove --force "$dir"
done
exit "$survived"
