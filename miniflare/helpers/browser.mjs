// Headless Chromium for browser tests: the Debian package at /usr/bin/chromium, driven by
// playwright-core (never a browser download).
//
//   const browser = await launchBrowser();      // installs chromium with apt-get when missing
//   const page = await newPage(browser);        // records console errors and page errors
//   await page.goto(url);
//   ...
//   assertNoConsoleErrors(page);
//   await browser.close();
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { bundleBrowser } from "../../client/bundle-browser.mjs";
import { startStreams } from "./mf.mjs";

export const CHROMIUM_PATH = "/usr/bin/chromium";

/** Installs the OS package when the binary is missing (we run as root); throws when that fails. */
export function ensureChromium() {
  if (fs.existsSync(CHROMIUM_PATH)) return;
  try {
    execFileSync("apt-get", ["install", "-y", "--no-install-recommends", "chromium"], { stdio: "inherit" });
  } catch {
    execFileSync("apt-get", ["update"], { stdio: "inherit" });
    execFileSync("apt-get", ["install", "-y", "--no-install-recommends", "chromium"], { stdio: "inherit" });
  }
  if (!fs.existsSync(CHROMIUM_PATH)) {
    throw new Error(`browser tests need ${CHROMIUM_PATH}; "apt-get install -y chromium" did not provide it`);
  }
}

/** A headless Chromium; `args` are added to the sandbox-less defaults. */
export async function launchBrowser({ args = [] } = {}) {
  ensureChromium();
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: ["--no-sandbox", ...args] });
}

const consoleErrors = new WeakMap();
const allowed = new WeakMap();

/**
 * A page in a fresh context (its own storage) that records every console error and uncaught page
 * error; read them with consoleErrorsOf(page) or assert none with assertNoConsoleErrors(page).
 * contextOptions go to browser.newContext (e.g. {viewport: {width: 1280, height: 800}}).
 */
export async function newPage(browser, contextOptions = {}) {
  const context = await browser.newContext(contextOptions);
  const page = await context.newPage();
  watchConsole(page);
  return page;
}

/** Start recording console errors of a page (newPage does this already). */
export function watchConsole(page) {
  if (consoleErrors.has(page)) return;
  const errors = [];
  consoleErrors.set(page, errors);
  page.on("console", (msg) => {
    if (msg.type() === "error") errors.push(`console.error: ${msg.text()}`);
  });
  page.on("pageerror", (err) => errors.push(`pageerror: ${err.stack ?? err.message}`));
}

/**
 * Declare a console error a test provokes on purpose (e.g. Chromium's "Failed to load resource:
 * … 423" line for a refused request): the next recorded error matching `pattern` is not counted,
 * or every one of them with `{repeated: true}` (e.g. a socket refused on each retry).
 */
export function expectConsoleError(page, pattern, { repeated = false } = {}) {
  if (!allowed.has(page)) allowed.set(page, []);
  allowed.get(page).push({ pattern, repeated });
}

/** The console errors and page errors a page recorded so far, minus the expected ones. */
export function consoleErrorsOf(page) {
  const expected = [...(allowed.get(page) ?? [])];
  return (consoleErrors.get(page) ?? []).filter((line) => {
    const i = expected.findIndex(({ pattern }) => pattern.test(line));
    if (i === -1) return true;
    if (!expected[i].repeated) expected.splice(i, 1);
    return false;
  });
}

export function assertNoConsoleErrors(page) {
  assert.deepEqual(consoleErrorsOf(page), [], "the page logged errors");
}

// ---- serving pages same-origin with the API ----
//
//   const site = await startSite({ root: dir, target: mfUrl });   // http://127.0.0.1:<port>
//   startSite({ root, target, headers: { "content-security-policy": "…" } })  // added to every static file
//   await page.goto(`${site.url}/index.html`);
//   site.dropSockets();            // every proxied WebSocket gets a server-side close (1001)
//   site.setTarget(newMfUrl);      // after restarting Miniflare; the page's origin stays the same
//   await site.close();
//
// Static files come from `root` (`/x` is also `x.html`, as the Worker's asset server does);
// /api/* (HTTP and WebSocket upgrades) is forwarded to `target`.
// The origin stays fixed across runtime restarts, so OPFS, Web Locks and localStorage persist.

const CONTENT_TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".map": "application/json",
  ".wasm": "application/wasm",
  ".css": "text/css",
  ".json": "application/json",
};

export async function startSite({ root, target, headers = {} }) {
  let upstream = new URL(target);
  const tunnels = new Set();
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, "http://site");
    if (url.pathname.startsWith("/api/")) return forward(req, res);
    if (url.pathname === "/favicon.ico") return res.writeHead(204).end();
    let file = path.join(root, url.pathname === "/" ? "index.html" : decodeURIComponent(url.pathname));
    if (!path.extname(file) && fs.existsSync(`${file}.html`)) file = `${file}.html`;
    if (!file.startsWith(root) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
      return;
    }
    res.writeHead(200, { "content-type": CONTENT_TYPES[path.extname(file)] ?? "application/octet-stream", "cache-control": "no-store", ...headers });
    fs.createReadStream(file).pipe(res);
  });

  function forward(req, res) {
    const out = http.request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    out.on("error", (e) => {
      if (res.headersSent) return res.destroy();
      res.writeHead(502, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { code: "unavailable", message: `test site: upstream unreachable (${e.message})` } }));
    });
    req.pipe(out);
  }

  server.on("upgrade", (req, client, head) => {
    const remote = net.connect(Number(upstream.port), upstream.hostname, () => {
      let lines = `${req.method} ${req.url} HTTP/1.1\r\n`;
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
      remote.write(`${lines}\r\n`);
      if (head.length) remote.write(head);
      remote.pipe(client);
      client.pipe(remote);
    });
    const tunnel = { client, remote };
    tunnels.add(tunnel);
    const end = () => {
      tunnels.delete(tunnel);
      client.destroy();
      remote.destroy();
    };
    remote.on("error", () => {
      client.end("HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n");
      end();
    });
    remote.on("close", end);
    client.on("error", end);
    client.on("close", end);
  });

  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    setTarget(next) {
      upstream = new URL(next);
    },
    /** Closes every proxied socket toward the browser with a close frame (1001 going away). */
    dropSockets() {
      const count = tunnels.size;
      for (const { client, remote } of [...tunnels]) {
        remote.unpipe(client);
        client.end(Buffer.from([0x88, 0x02, 0x03, 0xe9]));
        remote.destroy();
      }
      return count;
    },
    async close() {
      for (const { client, remote } of tunnels) {
        client.destroy();
        remote.destroy();
      }
      server.closeAllConnections?.();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

// ---- the browser-runtime harness: Miniflare (persisted) + the test site + Chromium ----
//
//   const h = await startRuntimeHarness();   // page entry: miniflare/fixtures/browser-page.ts
//   const page = await h.newPage();           // at h.site.url, `window.streams` loaded
//   await h.restartRuntime();                 // dispose Miniflare, start it again on the same storage
//   await h.close();

const FIXTURES = path.join(path.dirname(new URL(import.meta.url).pathname), "..", "fixtures");
/** The snapshot of the page's global `store` (a harness page opened by startRuntimeHarness). */
export const snapshot = (page) => page.evaluate(() => store.getSnapshot());

/** Waits until the page's snapshot satisfies `predicate` (a function of the snapshot and `arg`, run in the page). */
export async function waitSnapshot(page, predicate, arg, timeout = 30_000) {
  try {
    await page.waitForFunction(([src, a]) => new Function("s", "arg", `return (${src})(s, arg)`)(store.getSnapshot(), a), [predicate.toString(), arg], {
      timeout,
      polling: 50,
    });
  } catch (e) {
    throw new Error(`${e.message}\nlast snapshot: ${JSON.stringify(await snapshot(page))}`);
  }
}

export const ADMIN_TOKEN = "browser-admin-token";

/**
 * Bundles page entries (+ the mirror worker and sqlite3.wasm) into a fresh dir: `<name>.html` loads
 * `<name>.js` into a page with a `#root` element; `index.html` is the first entry's page.
 */
export async function bundlePage(entryPoints) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "streams-site-"));
  await bundleBrowser({ entryPoints, outdir: dir });
  const html = (name) => `<!doctype html><meta charset="utf-8"><title>streams</title><div id="root"></div><script type="module" src="/${name}.js"></script>\n`;
  for (const name of Object.keys(entryPoints)) fs.writeFileSync(path.join(dir, `${name}.html`), html(name));
  fs.writeFileSync(path.join(dir, "index.html"), html(Object.keys(entryPoints)[0]));
  return dir;
}

/**
 * entryPoints: extra pages (name → file) bundled next to the harness page (`harness.html`, also `/`).
 * bindings: extra streams-worker bindings; apiToken: the bearer token `api()` sends by default.
 */
export async function startRuntimeHarness({ entryPoints = {}, bindings = {}, apiToken } = {}) {
  const root = await bundlePage({ harness: path.join(FIXTURES, "browser-page.ts"), ...entryPoints });
  const persistDir = fs.mkdtempSync(path.join(os.tmpdir(), "streams-browser-do-"));
  const start = () =>
    startStreams({ bindings: { STREAMS_ADMIN_TOKEN: ADMIN_TOKEN, ...bindings }, miniflare: { durableObjectsPersist: persistDir } });
  let mf = await start();
  const site = await startSite({ root, target: (await mf.ready).href });
  const browser = await launchBrowser();
  const context = await browser.newContext();
  const harness = {
    site,
    browser,
    /** One browser profile: its pages share OPFS, Web Locks, BroadcastChannel and localStorage. */
    context,
    get mf() {
      return mf;
    },
    async newPage(inContext = context) {
      const page = await inContext.newPage();
      watchConsole(page);
      await page.goto(`${site.url}/`);
      await page.waitForFunction(() => "streams" in globalThis);
      return page;
    },
    /** Stops the whole local runtime and starts it again on the same storage. */
    async restartRuntime({ downMs = 0 } = {}) {
      await mf.dispose();
      if (downMs) await new Promise((r) => setTimeout(r, downMs));
      mf = await start();
      site.setTarget((await mf.ready).href);
    },
    /** An HTTP call to the API through the site, as the page makes it. */
    async api(method, path, args = {}, { namespace = "default", token = apiToken } = {}) {
      const url = `${site.url}/api/streams/${method}?namespace=${encodeURIComponent(namespace)}&path=${encodeURIComponent(path)}`;
      const res = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify(args),
      });
      const text = await res.text();
      if (!res.ok) throw Object.assign(new Error(`${method}: HTTP ${res.status} ${text}`), { status: res.status });
      return text === "null" ? undefined : JSON.parse(text);
    },
    /** Every event of a stream, paged. */
    async allEvents(path) {
      const out = [];
      for (;;) {
        const page = await harness.api("getEvents", path, { afterOffset: out.at(-1)?.offset ?? 0, limit: 1000 });
        if (page.length === 0) return out;
        out.push(...page);
      }
    },
    async close() {
      await browser.close().catch(() => {});
      await site.close();
      await mf.dispose();
      fs.rmSync(root, { recursive: true, force: true });
      fs.rmSync(persistDir, { recursive: true, force: true });
    },
  };
  return harness;
}

/** The `sqlite3` CLI (Debian package), installed when missing; throws when that fails. */
export function ensureSqlite3() {
  const found = () => {
    try {
      execFileSync("sqlite3", ["-version"], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  };
  if (found()) return;
  try {
    execFileSync("apt-get", ["install", "-y", "--no-install-recommends", "sqlite3"], { stdio: "inherit" });
  } catch {
    execFileSync("apt-get", ["update"], { stdio: "inherit" });
    execFileSync("apt-get", ["install", "-y", "--no-install-recommends", "sqlite3"], { stdio: "inherit" });
  }
  if (!found()) throw new Error('the download test needs the sqlite3 CLI; "apt-get install -y sqlite3" did not provide it');
}
