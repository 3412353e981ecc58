// How the Worker serves the viewer: its static assets under the routing of wrangler.toml
// ([assets] directory = "viewer/dist", run_worker_first = ["/api/*"]). `/`, `/split` and `/streams`
// are the page, `/assets/*` its bundles, `/api/*` always the API, and any other path still the
// Worker's 404. The page has no inline script or handler (the Worker's CSP allows scripts only from itself).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { originOf, REPO_ROOT, startStreams } from "./helpers/mf.mjs";

let mf;
let origin;
before(async () => {
  mf = await startStreams({ viewer: true });
  origin = await originOf(mf);
});
after(() => mf?.dispose());

const get = (urlPath, init) => fetch(origin + urlPath, { redirect: "manual", ...init });

test("wrangler.toml serves viewer/dist with the Worker first for /api/*", () => {
  const toml = fs.readFileSync(path.join(REPO_ROOT, "wrangler.toml"), "utf8");
  const assets = toml.slice(toml.indexOf("[assets]"));
  assert.match(assets, /^directory = "viewer\/dist"$/m);
  assert.match(assets, /^run_worker_first = \["\/api\/\*"\]$/m);
});

test("/, /split and /streams are the page, whatever the query", async () => {
  for (const urlPath of ["/", "/?namespace=a&path=%2Fx&view=feed", "/split?left=/a&right=/b", "/streams?prefix=%2Fa%2F"]) {
    const res = await get(urlPath);
    assert.equal(res.status, 200, urlPath);
    assert.match(res.headers.get("content-type"), /^text\/html/, urlPath);
    const html = await res.text();
    assert.match(html, /<div id="root"><\/div>/, urlPath);
    assert.match(html, /<script type="module" src="\/assets\/viewer\.js"><\/script>/, urlPath);
    assert.deepEqual(html.match(/<script\b[^>]*>/g), ['<script type="module" src="/assets/viewer.js">'], `${urlPath}: one external script, nothing inline`);
    assert.doesNotMatch(html, /\son[a-z]+\s*=|javascript:/i, `${urlPath}: no inline handler`);
  }
});

test("the bundles: the app, the mirror worker and sqlite3.wasm with its content type", async () => {
  for (const [urlPath, type] of [
    ["/assets/viewer.js", /javascript/],
    ["/assets/viewer.css", /^text\/css/],
    ["/assets/mirror-worker.js", /javascript/],
    ["/assets/sqlite3.wasm", /^application\/wasm$/],
  ]) {
    const res = await get(urlPath);
    assert.equal(res.status, 200, urlPath);
    assert.match(res.headers.get("content-type"), type, urlPath);
    assert.ok((await res.arrayBuffer()).byteLength > 1000, urlPath);
  }
});

test("/api/* is the API, even where an asset has the same name; other paths reach the Worker's 404", async () => {
  const events = await get("/api/streams/runtimeState?path=/viewer-assets");
  assert.equal(events.status, 200);
  assert.equal((await events.json()).coreProcessorState.path, "/viewer-assets");
  const unknown = await get("/api/index.html");
  assert.equal(unknown.status, 404);
  assert.equal((await unknown.json()).error.code, "not_found");
  for (const urlPath of ["/nope", "/favicon.ico", "/assets/missing.js", "/split/extra", "/streams/extra"]) {
    const res = await get(urlPath);
    assert.equal(res.status, 404, urlPath);
    assert.deepEqual(Object.keys((await res.json()).error), ["code", "message"], urlPath);
  }
});

test("a WebSocket upgrade on /api/* reaches the stream through the asset router", async () => {
  const res = await mf.dispatchFetch(`${origin}/api/streams/subscribe?path=/viewer-assets-ws`, { headers: { upgrade: "websocket" } });
  assert.equal(res.status, 101);
  const ws = res.webSocket;
  ws.accept();
  const frame = await new Promise((resolve) => ws.addEventListener("message", (e) => resolve(JSON.parse(e.data)), { once: true }));
  assert.equal(frame.type, "batch");
  ws.close(1000);
});
