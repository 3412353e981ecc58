// The viewer page under test: the Worker with its static assets on a local port, headless
// Chromium, one fresh browser context (storage) and a fresh stream path per test.
//
//   const v = await startViewer();                       // Miniflare + Chromium
//   const { page, path } = await v.openStream();         // a fresh stream (one app/first event), `/?path=<fresh>`
//   await waitForText(page, "event-count", FRESH_COUNT);
//   await v.stop();
import assert from "node:assert/strict";
import { launchBrowser, newPage, assertNoConsoleErrors } from "./browser.mjs";
import { originOf, startStreams } from "./mf.mjs";

export const ADMIN_TOKEN = "viewer-test-admin-token";
export const S = (name) => `events.iterate.com/stream/${name}`;
/** The event openStream writes so the stream exists (the page creates no stream by looking at it). */
export const FIRST_EVENT = { type: "app/first" };
/**
 * A stream opened by openStream holds created@1, woken@2, app/first@3 and the page's
 * subscriber-connected@4; the events view hides that presence event by default.
 */
export const FRESH_COUNT = "4";
export const FRESH_ROWS = [1, 2, 3];

let pathCounter = 0;
/** A fresh stream path `/viewer/<n>-<random>`. */
export function freshPath(prefix = "viewer") {
  pathCounter += 1;
  return `/${prefix}/${pathCounter}-${Math.random().toString(36).slice(2, 10)}`;
}

export async function startViewer({ bindings = {} } = {}) {
  const mf = await startStreams({ viewer: true, bindings: { STREAMS_ADMIN_TOKEN: ADMIN_TOKEN, ...bindings } });
  const origin = await originOf(mf);
  const browser = await launchBrowser();
  const pages = [];

  /** A page in a fresh context at `urlPath` (1280×800); `beforeGoto(page)` runs before it loads. */
  async function open(urlPath, { beforeGoto } = {}) {
    const page = await newPage(browser, { viewport: { width: 1280, height: 800 } });
    pages.push(page);
    await beforeGoto?.(page);
    await page.goto(origin + urlPath);
    return page;
  }

  /**
   * A view (events by default) of `path`; without one, of a fresh path created first with
   * FIRST_EVENT (unless `create: false`). `query` adds URL parameters.
   */
  async function openStream({ path: given, namespace = "default", view = "events", create = given === undefined, query = {} } = {}) {
    const path = given ?? freshPath();
    if (create) await api(path, "append", { event: FIRST_EVENT }, { namespace });
    const search = new URLSearchParams({ namespace, path, view, ...query });
    const page = await open(`/?${search}`);
    return { page, path, namespace };
  }

  /** POST /api/streams/<method> from Node (as another client of the same Worker). */
  async function api(path, method, body = {}, { namespace = "default", token } = {}) {
    const headers = { "content-type": "application/json" };
    if (token) headers.authorization = `Bearer ${token}`;
    const res = await fetch(`${origin}/api/streams/${method}?${new URLSearchParams({ namespace, path })}`, {
      method: "POST",
      headers,
      body: JSON.stringify(body),
    });
    const json = await res.json();
    if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${JSON.stringify(json)}`);
    return json;
  }

  /** Every event of a stream, from the server. */
  async function serverEvents(path, opts) {
    const all = [];
    for (;;) {
      const page = await api(path, "getEvents", { afterOffset: all.length, limit: 1000 }, opts);
      if (page.length === 0) return all;
      all.push(...page);
    }
  }

  /** Closes every page opened since the last call and asserts none logged an error. */
  async function closePages() {
    const open = pages.splice(0);
    for (const page of open) await page.context().close();
    for (const page of open) assertNoConsoleErrors(page);
  }

  async function stop() {
    await browser?.close().catch(() => {});
    await mf?.dispose();
  }

  return { mf, origin, browser, open, openStream, api, serverEvents, closePages, stop };
}

/**
 * Before the page loads (a `beforeGoto`): records every fetch the page makes, as it makes it, in
 * `window.fetches` as `{path, at}` (`performance.now()`). Read with fetchesTo(page, path): a check
 * of what the page asked, free of the delay of Playwright's request events.
 */
export async function recordFetches(page) {
  await page.addInitScript(() => {
    const fetch = window.fetch.bind(window);
    window.fetches = [];
    window.fetch = (input, init) => {
      window.fetches.push({ path: new URL(input instanceof Request ? input.url : String(input), location.href).pathname, at: performance.now() });
      return fetch(input, init);
    };
  });
}

/** The fetches the page made to `path` since it loaded (recordFetches). */
export function fetchesTo(page, path) {
  return page.evaluate((p) => window.fetches.filter((f) => f.path === p), path);
}

/** Waits until the element with `testId` (the first one, or inside `scope`) has exactly `text`. */
export async function waitForText(page, testId, text, { timeout = 30_000, scope = "" } = {}) {
  const selector = `${scope ? `${scope} ` : ""}[data-testid="${testId}"]`;
  try {
    await page.waitForFunction(
      ([sel, want]) => {
        const el = document.querySelector(sel);
        return el !== null && el.textContent?.trim() === want;
      },
      [selector, text],
      { timeout, polling: 50 },
    );
  } catch (error) {
    const actual = await page.locator(selector).first().textContent({ timeout: 100 }).catch(() => "(absent)");
    assert.fail(`${selector}: expected "${text}", have "${actual?.trim()}" after ${timeout} ms (${error.message.split("\n")[0]})`);
  }
}

/** Waits until `[data-testid=testId]` matches `pattern` (a RegExp source string). */
export async function waitForMatch(page, testId, pattern, { timeout = 30_000, scope = "" } = {}) {
  const selector = `${scope ? `${scope} ` : ""}[data-testid="${testId}"]`;
  try {
    await page.waitForFunction(
      ([sel, source]) => new RegExp(source).test(document.querySelector(sel)?.textContent ?? ""),
      [selector, pattern.source],
      { timeout, polling: 50 },
    );
  } catch {
    const actual = await page.locator(selector).first().textContent({ timeout: 100 }).catch(() => "(absent)");
    assert.fail(`${selector}: expected ${pattern}, have "${actual?.trim()}" after ${timeout} ms`);
  }
}

/** The offsets of the event rows in the DOM, ascending. */
export function rowOffsets(page, scope = "") {
  return page.$$eval(`${scope ? `${scope} ` : ""}[data-testid="event-row"]`, (rows) =>
    rows.map((row) => Number(row.getAttribute("data-event-offset"))).sort((a, b) => a - b),
  );
}

/** Waits for the event row at `offset` to be in the DOM. */
export async function waitForRow(page, offset, { timeout = 30_000, scope = "" } = {}) {
  await page.waitForSelector(`${scope ? `${scope} ` : ""}[data-testid="event-row"][data-event-offset="${offset}"]`, { timeout });
}
