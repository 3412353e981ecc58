#!/usr/bin/env bash
# Refreshes the committed screenshots docs/viewer-*.png (README and docs/viewer.md show them):
# builds, then runs miniflare/viewer_screenshots.test.mjs with its output in docs/ instead of the
# ignored build/screenshots/ that `npm test` writes. Commit the result when the page changed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
VIEWER_SCREENSHOT_DIR=docs node --test miniflare/viewer_screenshots.test.mjs
git status --short docs/
