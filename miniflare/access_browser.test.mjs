// A real browser on another origin (docs/access.md): headless Chromium loads a page from a second
// local server, subscribes over WebSocket with `access_token` and appends with a bearer token,
// across CORS. The same page served from an origin outside STREAMS_CORS_ORIGINS can do neither.
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import { chromium } from "playwright-core";
import { startStreams, call } from "./helpers/mf.mjs";
import { readAll } from "./helpers/assertions.mjs";
import { signJwt, claims } from "./helpers/jwt.mjs";

const CHROMIUM = "/usr/bin/chromium";
const SECRET = "browser-test-secret";
const NS = "web";
const PATH = `/users/u${Math.random().toString(36).slice(2, 8)}`;

/** Installs Debian's chromium when it is missing (we run as root); never skips. */
function ensureChromium() {
  if (fs.existsSync(CHROMIUM)) return;
  execFileSync("apt-get", ["install", "-y", "--no-install-recommends", "chromium"], { stdio: "inherit", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is still missing after apt-get install`);
}

// The page: subscribe with the read token in the query and wait for the first batch (or an error),
// append with the append token in a header (which needs a CORS preflight), then wait for the
// appended event on the socket. It reports what happened in `window.result`.
const PAGE = `<!doctype html><meta charset="utf-8"><title>access</title><script type="module">
const cfg = JSON.parse(decodeURIComponent(location.hash.slice(1)));
const frames = [];
const q = new URLSearchParams({ namespace: cfg.ns, path: cfg.path, replayAfterOffset: "0", access_token: cfg.readToken });
const ws = new WebSocket(cfg.api.replace(/^http/, "ws") + "/api/streams/subscribe?" + q);
const socket = await new Promise((resolve) => {
  ws.onmessage = (m) => { frames.push(JSON.parse(m.data)); resolve("open"); };
  ws.onerror = () => resolve("error");
});
let append;
try {
  const res = await fetch(cfg.api + "/api/streams/append?" + new URLSearchParams({ namespace: cfg.ns, path: cfg.path }), {
    method: "POST",
    headers: { authorization: "Bearer " + cfg.appendToken, "content-type": "application/json" },
    body: JSON.stringify({ event: { type: "app/clicked", payload: { from: location.origin } } }),
  });
  append = { status: res.status, event: await res.json() };
} catch (e) {
  append = { error: e.name };
}
const delivered = () => frames.flatMap((f) => f.events ?? []);
for (const deadline = Date.now() + 5000; socket === "open" && append.event && Date.now() < deadline; ) {
  if (delivered().some((e) => e.offset === append.event.offset)) break;
  await new Promise((r) => setTimeout(r, 20));
}
window.result = { socket, append, delivered: delivered().map((e) => e.type) };
</script>`;

function servePage() {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(PAGE);
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

let mf;
let api;
let pageServer;
let refusedServer;
let browser;

before(async () => {
  ensureChromium();
  [pageServer, refusedServer] = await Promise.all([servePage(), servePage()]);
  mf = await startStreams({
    bindings: { STREAMS_JWT_SECRET: SECRET, STREAMS_CORS_ORIGINS: `http://127.0.0.1:${pageServer.address().port}` },
  });
  api = new URL(await mf.ready).origin;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
});

after(async () => {
  await browser?.close();
  await mf?.dispose();
  pageServer?.close();
  refusedServer?.close();
});

async function runPage(server) {
  const cfg = {
    api,
    ns: NS,
    path: PATH,
    readToken: signJwt(claims({ ns: NS, paths: [PATH], ops: ["read"] }), SECRET),
    appendToken: signJwt(claims({ ns: NS, paths: [`${PATH}/**`], ops: ["append"] }), SECRET),
  };
  const page = await browser.newPage();
  try {
    await page.goto(`http://127.0.0.1:${server.address().port}/#${encodeURIComponent(JSON.stringify(cfg))}`);
    await page.waitForFunction(() => window.result !== undefined, null, { timeout: 15000 });
    return await page.evaluate(() => window.result);
  } finally {
    await page.close();
  }
}

test("a page on a listed origin subscribes with access_token and appends with a bearer token", async () => {
  const pageOrigin = `http://127.0.0.1:${pageServer.address().port}`;
  assert.notEqual(pageOrigin, api, "the page must be on another origin than the API");
  await call(mf, `${NS}:${PATH}`, "append", { event: { type: "app/seeded" } });
  const result = await runPage(pageServer);
  assert.equal(result.socket, "open", JSON.stringify(result));
  assert.equal(result.append.status, 200, JSON.stringify(result));
  assert.equal(result.append.event.type, "app/clicked");
  assert.deepEqual(result.append.event.payload, { from: pageOrigin });
  assert.ok(result.delivered.includes("app/seeded"), `replay: ${result.delivered}`);
  assert.ok(result.delivered.includes("app/clicked"), `live delivery: ${result.delivered}`);
  const stored = (await readAll(mf, `${NS}:${PATH}`)).filter((e) => e.type.startsWith("app/")).map((e) => e.type);
  assert.deepEqual(stored, ["app/seeded", "app/clicked"]);
});

test("the same page on an unlisted origin can neither subscribe nor append", async () => {
  const before = (await readAll(mf, `${NS}:${PATH}`)).length;
  const result = await runPage(refusedServer);
  // The upgrade is refused (403), and the preflight for the bearer header fails, so fetch rejects.
  assert.deepEqual(result, { socket: "error", append: { error: "TypeError" }, delivered: [] });
  assert.equal((await readAll(mf, `${NS}:${PATH}`)).length, before);
});
