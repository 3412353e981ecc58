// Builds the package into dist/: ESM + .d.ts with tsc, then the browser assets a page serves next
// to its bundle (dist/browser/assets/mirror-worker.js and sqlite3.wasm; docs/browser.md#bundling).
// `npm run build` and npm's `prepack` (so `npm pack` / `npm publish`) run it; it needs the repository's dev tools
// (typescript, esbuild), which `npm ci` at the repository root installs.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { bundleBrowser } from "./bundle-browser.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(HERE, "dist");
const tsc = createRequire(path.join(HERE, "package.json")).resolve("typescript/bin/tsc");

fs.rmSync(dist, { recursive: true, force: true });
execFileSync(process.execPath, [tsc, "-p", path.join(HERE, "tsconfig.json")], { stdio: "inherit" });
fs.chmodSync(path.join(dist, "cli.js"), 0o755);
await bundleBrowser({ entryPoints: {}, outdir: path.join(dist, "browser", "assets"), minify: true, sourcemap: false });
