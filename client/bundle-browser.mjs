// Bundles a page that uses @streams/client/browser: the page entries, the mirror worker as
// `mirror-worker.js` next to them (the runtime's default worker URL) and `sqlite3.wasm` next to
// the worker (where sqlite-wasm looks for it).
//
//   import { bundleBrowser } from "./client/bundle-browser.mjs";
//   await bundleBrowser({ entryPoints: { app: "src/app.tsx" }, outdir: "dist/assets" });
import * as esbuild from "esbuild";
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const MIRROR_WORKER_ENTRY = path.join(HERE, "src", "browser", "mirror-worker.ts");

export function sqliteWasmPath() {
  const require = createRequire(path.join(HERE, "package.json"));
  return require.resolve("@sqlite.org/sqlite-wasm/sqlite3.wasm");
}

/** entryPoints: {name: file}; bare imports also resolve from `nodePaths` (default: this repo's node_modules). */
export async function bundleBrowser({ entryPoints, outdir, minify = false, sourcemap = true, nodePaths = [path.join(HERE, "..", "node_modules")] }) {
  fs.mkdirSync(outdir, { recursive: true });
  const result = await esbuild.build({
    entryPoints: { ...entryPoints, "mirror-worker": MIRROR_WORKER_ENTRY },
    outdir,
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    jsx: "automatic",
    minify,
    sourcemap,
    metafile: true,
    nodePaths,
    logLevel: "warning",
    define: { "process.env.NODE_ENV": minify ? '"production"' : '"development"' },
  });
  fs.copyFileSync(sqliteWasmPath(), path.join(outdir, "sqlite3.wasm"));
  return [...Object.keys(result.metafile.outputs), path.join(outdir, "sqlite3.wasm")];
}
