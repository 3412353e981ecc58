// Bundles the viewer into viewer/dist/, the Worker's static assets (wrangler.toml [assets]).
//   node viewer/build.mjs            (scripts/build.sh runs it after the wasm build)
// index.html, split.html and streams.html are the same page: the asset server maps `/`, `/split`
// and `/streams` to them, and every other path still reaches the Worker. bundleBrowser puts the browser runtime's mirror
// worker and sqlite3.wasm next to viewer.js, where openStream looks for them.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { bundleBrowser } from "../client/bundle-browser.mjs";

const VIEWER = path.dirname(fileURLToPath(import.meta.url));
export const VIEWER_DIST = path.join(VIEWER, "dist");
const PAGES = ["index.html", "split.html", "streams.html"];

export async function buildViewer({ outdir = VIEWER_DIST } = {}) {
  fs.rmSync(outdir, { recursive: true, force: true });
  await bundleBrowser({
    entryPoints: { viewer: path.join(VIEWER, "src", "main.tsx") },
    outdir: path.join(outdir, "assets"),
    minify: true,
  });
  const page = fs.readFileSync(path.join(VIEWER, "index.html"));
  for (const name of PAGES) fs.writeFileSync(path.join(outdir, name), page);
  // The asset server's security headers (Content-Security-Policy & co.): docs/access.md#the-viewer-page.
  fs.copyFileSync(path.join(VIEWER, "_headers"), path.join(outdir, "_headers"));
  return outdir;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await buildViewer();
}
