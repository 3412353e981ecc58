// Bundles the viewer into viewer/dist/, the Worker's static assets (wrangler.toml [assets]).
//   node viewer/build.mjs            (scripts/build.sh runs it after the wasm build)
// index.html and split.html are the same page: the asset server maps `/` and `/split` to them,
// and every other path still reaches the Worker. The browser runtime's mirror worker is its own
// entry, next to viewer.js (where openStream looks for it), with sqlite3.wasm beside it.
import * as esbuild from "esbuild";
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const VIEWER = path.dirname(fileURLToPath(import.meta.url));
export const VIEWER_DIST = path.join(VIEWER, "dist");
const PAGES = ["index.html", "split.html"];
const require = createRequire(import.meta.url);
const SQLITE_WASM = require.resolve("@sqlite.org/sqlite-wasm/sqlite3.wasm");

export async function buildViewer({ outdir = VIEWER_DIST } = {}) {
  fs.rmSync(outdir, { recursive: true, force: true });
  fs.mkdirSync(path.join(outdir, "assets"), { recursive: true });
  await esbuild.build({
    absWorkingDir: VIEWER,
    entryPoints: { viewer: "src/main.tsx", "mirror-worker": "../client/src/browser/mirror-worker.ts" },
    outdir: path.join(outdir, "assets"),
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    minify: true,
    sourcemap: "linked",
    jsx: "automatic",
    tsconfig: path.join(VIEWER, "tsconfig.json"),
    define: { "process.env.NODE_ENV": '"production"' },
    logLevel: "warning",
  });
  fs.copyFileSync(SQLITE_WASM, path.join(outdir, "assets", "sqlite3.wasm"));
  const page = fs.readFileSync(path.join(VIEWER, "index.html"));
  for (const name of PAGES) fs.writeFileSync(path.join(outdir, name), page);
  return outdir;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await buildViewer();
}
