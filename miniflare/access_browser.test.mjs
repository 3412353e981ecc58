// A real browser on another origin (docs/access.md): headless Chromium loads a page from a second
// local server, subscribes over WebSocket with `access_token` and appends with a bearer token,
// across CORS. The same page served from an origin outside STREAMS_CORS_ORIGINS can do neither.
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { startStreams, call, REPO_ROOT } from "./helpers/mf.mjs";
import { launchBrowser } from "./helpers/browser.mjs";
import { codeBlocks } from "./helpers/docs.mjs";
import { readAll } from "./helpers/assertions.mjs";
import { signJwt, claims } from "./helpers/jwt.mjs";

const SECRET = "browser-test-secret";
const NS = "web";
const PATH = `/users/u${Math.random().toString(36).slice(2, 8)}`;

// The page runs the browser example of docs/access.md as written. Around it: its inputs, `show`
// collecting frames, a record of the sockets it opens, and a report in `window.result` of what
// happened (socket state, the append's answer or the error fetch threw, the delivered events).
const [EXAMPLE] = codeBlocks(fs.readFileSync(path.join(REPO_ROOT, "docs", "access.md"), "utf8")).filter((b) => b.testedBy === "miniflare/access_browser.test.mjs");
const PAGE = `<!doctype html><meta charset="utf-8"><title>access</title><script type="module">
const { api, namespace, path, readToken, appendToken } = JSON.parse(decodeURIComponent(location.hash.slice(1)));
const frames = [];
const show = (frame) => frames.push(frame);
const sockets = [];
window.WebSocket = class extends WebSocket {
  constructor(...args) { super(...args); sockets.push(this); }
};
const settled = () => new Promise((resolve) => {
  const poll = () => (sockets[0].readyState === 0 || (sockets[0].readyState === 1 && frames.length === 0) ? setTimeout(poll, 20) : resolve());
  poll();
});
const delivered = () => frames.flatMap((f) => f.events ?? []);
let append;
try {
${EXAMPLE.code}
  append = { status: res.status, event: await res.json() };
  for (const deadline = Date.now() + 5000; !delivered().some((e) => e.offset === append.event.offset) && Date.now() < deadline; ) {
    await new Promise((r) => setTimeout(r, 20));
  }
} catch (e) {
  append = { error: e.name };
}
await settled();
window.result = { socket: ["connecting", "open", "closing", "closed"][sockets[0].readyState], append, delivered: delivered().map((e) => e.type) };
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
  [pageServer, refusedServer] = await Promise.all([servePage(), servePage()]);
  mf = await startStreams({
    bindings: { STREAMS_JWT_SECRET: SECRET, STREAMS_CORS_ORIGINS: `http://127.0.0.1:${pageServer.address().port}` },
  });
  api = new URL(await mf.ready).origin;
  browser = await launchBrowser();
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
    namespace: NS,
    path: PATH,
    readToken: signJwt(claims({ ns: NS, paths: [PATH], ops: ["read"] }), SECRET),
    appendToken: signJwt(claims({ ns: NS, paths: [`${PATH}/**`], ops: ["append"] }), SECRET),
  };
  const page = await browser.newPage();
  try {
    await page.goto(`http://127.0.0.1:${server.address().port}/#${encodeURIComponent(JSON.stringify(cfg))}`);
    await page.waitForFunction(() => window.result !== undefined, null, { timeout: 30_000 });
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
  assert.deepEqual(result, { socket: "closed", append: { error: "TypeError" }, delivered: [] });
  assert.equal((await readAll(mf, `${NS}:${PATH}`)).length, before);
});
