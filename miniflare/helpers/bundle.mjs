// Bundles a test Worker module (it may import the TypeScript sources of client/, e.g.
// client/src/processor/index.ts) with esbuild, so Miniflare runs the current source without a
// separate build step. `cloudflare:*` imports stay external (workerd provides them).
import { buildSync } from "esbuild";
import path from "node:path";

const bundles = new Map();

/**
 * Miniflare `modules` for `entry` (an absolute path): one ES module holding the whole bundle.
 * `alias` maps import specifiers to paths (e.g. a package name to its TypeScript source).
 */
export function bundledModules(entry, { alias = {} } = {}) {
  const cacheKey = JSON.stringify([entry, alias]);
  let contents = bundles.get(cacheKey);
  if (contents === undefined) {
    const result = buildSync({
      entryPoints: [entry],
      bundle: true,
      format: "esm",
      platform: "neutral",
      target: "es2022",
      external: ["cloudflare:*"],
      write: false,
      logLevel: "error",
      alias,
    });
    contents = result.outputFiles[0].text;
    bundles.set(cacheKey, contents);
  }
  return [{ type: "ESModule", path: path.join(path.dirname(entry), `${path.basename(entry, path.extname(entry))}.bundle.mjs`), contents }];
}
