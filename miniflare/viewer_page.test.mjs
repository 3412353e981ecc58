// The viewer page in headless Chromium against the Worker served locally (static assets + API):
// live events, composer and API appends, reload, filter and counts, the load tool, the new-events
// badge under load, virtualisation, kill and reset, the breaker, split views, the feed and state
// views. Every test uses a fresh stream path and a fresh browser context, and fails on any console
// error. The screenshots in docs/ are written here, so they always show the current page.
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { expectConsoleError } from "./helpers/browser.mjs";
import { REPO_ROOT } from "./helpers/mf.mjs";
import { ADMIN_TOKEN, S, freshPath, rowOffsets, startViewer, waitForMatch, waitForRow, waitForText } from "./helpers/viewer.mjs";

/** Prints the rows of a query on a SQLite file (python3's sqlite3: any SQLite reader would do). */
const SQLITE_QUERY = "import sqlite3,sys\nprint('\\n'.join('|'.join(map(str,r)) for r in sqlite3.connect(sys.argv[1]).execute(sys.argv[2])))";

/** A fresh stream shows created, woken and the page's own subscriber-connected. */
const FRESH_COUNT = "3";
const PRESENCE = [S("subscriber-connected"), S("subscriber-disconnected")];

let v;
before(async () => {
  v = await startViewer();
});
afterEach(() => v.closePages());
after(() => v?.stop());

async function appendFromComposer(page, event, scope = "") {
  const within = scope ? page.locator(scope) : page;
  await within.getByTestId("composer-textarea").fill(JSON.stringify(event));
  await within.getByTestId("composer-append").click();
}

async function setAdminToken(page) {
  await page.getByText("Admin token (for reset and kill)").click();
  await page.getByTestId("admin-token-input").fill(ADMIN_TOKEN);
  await page.getByTestId("admin-token-save").click();
}

async function insertWithLoadTool(page, { count, seconds, batch }) {
  await page.getByTestId("load-count").fill(String(count));
  await page.getByTestId("load-seconds").fill(String(seconds));
  await page.getByTestId("load-batch").fill(String(batch));
  await page.getByTestId("load-start").click();
}

describe("events view", () => {
  test("a fresh stream shows its first events; composer and API appends appear within a second; reload adds exactly the presence events", async () => {
    const { page, path: p } = await v.openStream();
    await waitForText(page, "event-count", FRESH_COUNT);
    await waitForText(page, "stream-status", "subscribed");
    assert.deepEqual(await rowOffsets(page), [1, 2, 3]);
    const types = await page.$$eval('[data-testid="event-row"]', (rows) => rows.map((r) => r.getAttribute("data-event-type")));
    assert.deepEqual(types, [S("created"), S("woken"), S("subscriber-connected")]);

    await appendFromComposer(page, { type: "app/from-composer", payload: { n: 1 } });
    await page.waitForSelector('[data-event-type="app/from-composer"]', { timeout: 1000 });
    await v.api(p, "append", { event: { type: "app/from-api", payload: { n: 2 } } });
    await page.waitForSelector('[data-event-type="app/from-api"]', { timeout: 1000 });
    await waitForText(page, "event-count", "5");

    await page.reload();
    await waitForText(page, "event-count", "7");
    await waitForText(page, "stream-status", "subscribed");
    const server = await v.serverEvents(p);
    assert.equal(server.length, 7, "the server has exactly the two presence events more");
    assert.deepEqual(server.slice(5).map((e) => e.type).sort(), [...PRESENCE].sort());
    assert.deepEqual(await rowOffsets(page), [1, 2, 3, 4, 5, 6, 7], "kept rows and the new presence rows");
    await waitForRow(page, 4);
    assert.equal(await page.locator('[data-event-type="app/from-composer"]').count(), 1);
  });

  test("a row expands to pretty-printed JSON, and stays expanded after scrolling away and back", async () => {
    const { page, path: p } = await v.openStream();
    await waitForText(page, "event-count", FRESH_COUNT);
    await page.locator('[data-event-offset="1"] button').click();
    const json = await page.getByTestId("event-json").textContent();
    const created = JSON.parse(json);
    assert.equal(created.type, S("created"));
    assert.equal(created.payload.path, p);
    assert.match(json, /\n {2}"payload": \{\n/, "pretty-printed");

    const events = Array.from({ length: 400 }, (_, i) => ({ type: "app/filler", payload: { i } }));
    await v.api(p, "appendBatch", { events });
    await waitForText(page, "event-count", "403");
    await page.getByTestId("scroll-to-bottom").click();
    await waitForRow(page, 403);
    assert.equal(await page.locator('[data-event-offset="1"]').count(), 0, "row 1 left the DOM");
    await page.getByTestId("scroll-to-top").click();
    await waitForRow(page, 1);
    assert.equal(await page.locator('[data-event-offset="1"] [data-testid="event-json"]').count(), 1, "still expanded");
  });

  test("the type filter and its counts; 80 events from the load tool", async () => {
    const { page, path: p } = await v.openStream();
    await waitForText(page, "event-count", FRESH_COUNT);
    await insertWithLoadTool(page, { count: 80, seconds: 0, batch: 100 });
    await waitForText(page, "insert-state", "done: 80 events");
    await waitForText(page, "event-count", "83");
    await waitForText(page, "filter-count", "83 total events");

    const options = await page.getByTestId("event-type-filter").locator("option").allTextContents();
    assert.ok(options.includes("All event types (83)"), options.join(" | "));
    const loadTypes = options.filter((o) => o.startsWith("app/load/"));
    assert.equal(loadTypes.length, 5, options.join(" | "));
    assert.ok(loadTypes.every((o) => o.endsWith("(16)")), loadTypes.join(" | "));

    await page.getByTestId("event-type-filter").selectOption("app/load/click");
    await waitForText(page, "filter-count", "16 filtered events / 83 total events");
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="event-row"]').length === 16);
    const shown = await page.$$eval('[data-testid="event-row"]', (rows) => rows.map((r) => r.getAttribute("data-event-type")));
    assert.ok(shown.every((t) => t === "app/load/click"), shown.join(","));

    await v.api(p, "append", { event: { type: "app/load/click", payload: {} } });
    await v.api(p, "append", { event: { type: "app/other", payload: {} } });
    await waitForText(page, "filter-count", "17 filtered events / 85 total events");
    await page.getByTestId("event-type-filter").selectOption("");
    await waitForText(page, "filter-count", "85 total events");
  });

  test("5000 events over 5 s while scrolled away: the badge counts exactly the new ones, and jumps back", async () => {
    const { page } = await v.openStream();
    await waitForText(page, "event-count", FRESH_COUNT);
    await insertWithLoadTool(page, { count: 80, seconds: 0, batch: 100 });
    await waitForText(page, "event-count", "83");
    await page.getByTestId("scroll-to-top").click();
    await waitForRow(page, 1);
    assert.equal(await page.getByTestId("new-events-badge").count(), 0, "no badge before new events");

    await insertWithLoadTool(page, { count: 5000, seconds: 5, batch: 100 });
    // The user keeps scrolling around, away from the tail, while the events arrive.
    const list = page.getByTestId("stream-events");
    await list.hover();
    for (let i = 0; i < 10; i++) {
      await page.mouse.wheel(0, i % 2 === 0 ? 300 : -200);
      await page.waitForTimeout(150);
    }
    await waitForMatch(page, "insert-state", /^done: 5000 events$/, { timeout: 60_000 });
    await waitForText(page, "event-count", "5083", { timeout: 30_000 });
    await waitForText(page, "new-events-badge", "5000 new events");

    await page.getByTestId("scroll-to-bottom").click();
    await waitForRow(page, 5083);
    await page.waitForFunction(() => document.querySelector('[data-testid="new-events-badge"]') === null);
  });

  test("1500+ events: fewer than 150 row elements in the DOM; top and bottom navigation", async () => {
    const p = freshPath();
    for (let b = 0; b < 2; b++) {
      const events = Array.from({ length: 750 }, (_, i) => ({ type: `app/bulk/${i % 3}`, payload: { i: b * 750 + i } }));
      await v.api(p, "appendBatch", { events });
    }
    const { page } = await v.openStream({ path: p });
    await waitForText(page, "event-count", "1503", { timeout: 30_000 });
    await waitForRow(page, 1503);
    const rows = await page.locator('[data-testid="event-row"], [data-testid="event-row-pending"]').count();
    assert.ok(rows > 0 && rows < 150, `${rows} row elements`);

    await page.getByTestId("scroll-to-top").click();
    await waitForRow(page, 1);
    assert.equal(await page.locator('[data-event-offset="1503"]').count(), 0);
    assert.ok((await page.locator('[data-testid="event-row"]').count()) < 150);
    await page.getByTestId("scroll-to-bottom").click();
    await waitForRow(page, 1503);
    assert.equal(await page.locator('[data-event-offset="1"]').count(), 0);
  });
});

describe("operations", () => {
  test("kill: back to subscribed, nothing lost", async () => {
    const { page, path: p } = await v.openStream();
    await waitForText(page, "event-count", FRESH_COUNT);
    await appendFromComposer(page, { type: "app/before-kill" });
    await waitForText(page, "event-count", "4");
    assert.equal(await page.getByTestId("stream-kill").isDisabled(), true, "kill needs the admin token");
    await setAdminToken(page);
    await page.getByTestId("stream-kill").click();
    await waitForText(page, "mirror-action", "kill: done");
    // The killed incarnation writes no disconnect: a new woken and the page's new connection.
    await waitForText(page, "event-count", "6", { timeout: 30_000 });
    await waitForText(page, "stream-status", "subscribed");
    const server = await v.serverEvents(p);
    assert.deepEqual(server.map((e) => e.offset), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(server.slice(4).map((e) => e.type).sort(), [S("subscriber-connected"), S("woken")].sort());
    assert.deepEqual(await rowOffsets(page), [1, 2, 3, 4, 5, 6]);
    await appendFromComposer(page, { type: "app/after-kill" });
    await waitForText(page, "event-count", "7");
  });

  test("reset: the view shows only the new life", async () => {
    const { page } = await v.openStream();
    await waitForText(page, "event-count", FRESH_COUNT);
    await appendFromComposer(page, { type: "app/old-life" });
    await waitForText(page, "event-count", "4");
    await setAdminToken(page);
    page.once("dialog", (dialog) => void dialog.accept());
    await page.getByTestId("stream-reset").click();
    await waitForText(page, "mirror-action", "reset: done");
    await page.waitForFunction(() => document.querySelector('[data-event-type="app/old-life"]') === null, null, { timeout: 30_000 });
    await waitForText(page, "event-count", FRESH_COUNT, { timeout: 30_000 });
    await waitForText(page, "stream-status", "subscribed");
    const types = await page.$$eval('[data-testid="event-row"]', (rows) => rows.map((r) => r.getAttribute("data-event-type")));
    assert.deepEqual(types, [S("created"), S("woken"), S("subscriber-connected")]);
  });

  test("breaker: burst 1, two appends → paused with the reason shown; resume works", async () => {
    const { page } = await v.openStream();
    await waitForText(page, "event-count", FRESH_COUNT);
    await waitForText(page, "stream-gate-status", "Active");
    await page.getByTestId("circuit-breaker-burst-capacity").fill("1");
    await page.getByTestId("circuit-breaker-refill-rate").fill("1");
    await page.getByTestId("circuit-breaker-apply").click();
    await waitForText(page, "stream-control-action", "configure breaker: done");
    await waitForRow(page, 4);
    assert.equal(await page.locator('[data-event-offset="4"]').getAttribute("data-event-type"), S("configured"));

    await appendFromComposer(page, { type: "app/one" });
    await waitForMatch(page, "composer-state", /^appended/);
    await appendFromComposer(page, { type: "app/two" });
    await waitForText(page, "stream-gate-status", "Paused");
    await waitForText(page, "stream-pause-reason", "circuit breaker tripped: burst rate limit exceeded");
    await page.waitForSelector(`[data-event-type="${S("paused")}"]`);

    // The refused append is an error response, which Chromium logs.
    expectConsoleError(page, /Failed to load resource: .* 423/);
    await appendFromComposer(page, { type: "app/refused" });
    await waitForMatch(page, "composer-state", /^error: stream_paused: stream paused: circuit breaker tripped/);

    await page.getByTestId("stream-resume-button").click();
    await waitForText(page, "stream-gate-status", "Active");
    await page.waitForSelector(`[data-event-type="${S("resumed")}"]`);
    await appendFromComposer(page, { type: "app/after-resume" });
    await page.waitForSelector('[data-event-type="app/after-resume"]');
  });
});

describe("local copy", () => {
  test("download gives the mirror as a SQLite file; clear local copy rebuilds it", async () => {
    const { page, path: p } = await v.openStream();
    await waitForText(page, "event-count", FRESH_COUNT);
    await v.api(p, "appendBatch", { events: [{ type: "app/kept" }, { type: "app/kept" }] });
    await waitForText(page, "event-count", "5");
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByTestId("mirror-download").click()]);
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "viewer-download-")), download.suggestedFilename());
    await download.saveAs(file);
    const sql = (query) => execFileSync("python3", ["-c", SQLITE_QUERY, file, query], { encoding: "utf8" }).trim();
    assert.equal(sql("SELECT COUNT(*) FROM events"), "5");
    assert.equal(sql("SELECT COUNT(*) FROM events WHERE type = 'app/kept'"), "2");
    fs.rmSync(path.dirname(file), { recursive: true, force: true });

    await page.getByTestId("mirror-clear").click();
    await waitForText(page, "mirror-action", "clear local copy: done");
    // The rebuild subscribes again: the stream records that connection's presence events.
    await waitForText(page, "event-count", "7");
    await waitForText(page, "stream-status", "subscribed");
    const server = await v.serverEvents(p);
    assert.deepEqual(server.slice(5).map((e) => e.type).sort(), [...PRESENCE].sort());
    assert.deepEqual(await rowOffsets(page), [1, 2, 3, 4, 5, 6, 7]);
  });
});

describe("split view", () => {
  test("the same path twice: one store, both panes see an append", async () => {
    const p = freshPath();
    const page = await v.open(`/split?${new URLSearchParams({ left: p, right: p })}`);
    for (const side of ["left", "right"]) await waitForText(page, "event-count", FRESH_COUNT, { scope: `[data-testid="split-${side}"]` });
    await appendFromComposer(page, { type: "app/shared" }, '[data-testid="split-left"]');
    for (const side of ["left", "right"]) await waitForRow(page, 4, { scope: `[data-testid="split-${side}"]` });
    const server = await v.serverEvents(p);
    assert.equal(server.filter((e) => e.type === S("subscriber-connected")).length, 1, "one socket for both panes");
  });

  test("two paths: isolated", async () => {
    const [left, right] = [freshPath(), freshPath()];
    const page = await v.open(`/split?${new URLSearchParams({ left, right })}`);
    for (const side of ["left", "right"]) await waitForText(page, "event-count", FRESH_COUNT, { scope: `[data-testid="split-${side}"]` });
    await appendFromComposer(page, { type: "app/left-only" }, '[data-testid="split-left"]');
    await waitForRow(page, 4, { scope: '[data-testid="split-left"]' });
    await v.api(right, "append", { event: { type: "app/right-only" } });
    await waitForRow(page, 4, { scope: '[data-testid="split-right"]' });
    assert.equal(await page.locator('[data-testid="split-left"] [data-event-type="app/right-only"]').count(), 0);
    assert.equal(await page.locator('[data-testid="split-right"] [data-event-type="app/left-only"]').count(), 0);
    assert.equal((await v.serverEvents(left)).length, 4);
    assert.equal((await v.serverEvents(right)).length, 4);
  });
});

describe("routes, feed and state", () => {
  test("path and namespace edit in place: Enter submits, Escape cancels; view links set ?view=", async () => {
    const { page, path: p } = await v.openStream();
    await waitForText(page, "event-count", FRESH_COUNT);
    await page.getByTestId("stream-path-change").click();
    await page.getByTestId("stream-path-input").fill("/somewhere/else");
    await page.getByTestId("stream-path-input").press("Escape");
    await waitForText(page, "stream-path", p);
    assert.equal(new URL(page.url()).searchParams.get("path"), p);

    const next = freshPath();
    await page.getByTestId("stream-path-change").click();
    await page.getByTestId("stream-path-input").fill(next);
    await page.getByTestId("stream-path-input").press("Enter");
    await waitForText(page, "stream-path", next);
    assert.equal(new URL(page.url()).searchParams.get("path"), next);
    await waitForText(page, "event-count", FRESH_COUNT);
    assert.equal((await v.serverEvents(next)).length, 3, "the new path is live");

    await page.getByTestId("stream-path-change").click();
    await page.getByTestId("stream-path-input").fill("/bad//path");
    await page.getByTestId("stream-path-input").press("Enter");
    assert.equal(await page.getByTestId("stream-path-input").getAttribute("aria-invalid"), "true");
    await page.getByTestId("stream-path-input").press("Escape");

    await page.getByTestId("stream-namespace-change").click();
    await page.getByTestId("stream-namespace-input").fill("other-ns");
    await page.getByTestId("stream-namespace-input").press("Enter");
    await waitForText(page, "stream-namespace", "other-ns");
    assert.equal(new URL(page.url()).searchParams.get("namespace"), "other-ns");
    await waitForText(page, "event-count", FRESH_COUNT);
    assert.equal((await v.serverEvents(next, { namespace: "other-ns" })).length, 3);

    await page.getByTestId("view-link-state").click();
    assert.equal(new URL(page.url()).searchParams.get("view"), "state");
    assert.equal(await page.getByTestId("view-link-state").getAttribute("aria-current"), "page");
    await page.getByTestId("view-link-feed").click();
    assert.equal(new URL(page.url()).searchParams.get("view"), "feed");
    await page.goBack();
    assert.equal(new URL(page.url()).searchParams.get("view"), "state");
  });

  test("feed view: lifecycle markers, groups of one type, child-stream cards linking to the child", async () => {
    const parent = freshPath();
    const child = `${parent}/child`;
    const { page } = await v.openStream({ path: parent, view: "feed" });
    await waitForText(page, "event-count", FRESH_COUNT);
    for (const type of ["app/a", "app/b", "app/a", "app/a"]) await v.api(parent, "append", { event: { type } });
    await v.api(child, "append", { event: { type: "app/in-child" } });
    await waitForText(page, "event-count", "8");
    const items = () =>
      page.$$eval('[data-testid="feed-item"]', (rows) =>
        rows.map((r) => [r.getAttribute("data-kind"), r.getAttribute("data-event-type"), Number(r.getAttribute("data-event-count"))]),
      );
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="feed-item"]').length >= 7);
    assert.deepEqual(await items(), [
      ["lifecycle", S("created"), 1],
      ["lifecycle", S("woken"), 1],
      ["group", S("subscriber-connected"), 1],
      ["group", "app/a", 1],
      ["group", "app/b", 1],
      ["group", "app/a", 2],
      ["lifecycle", S("child-stream-created"), 1],
    ]);
    const markers = await page.getByTestId("feed-lifecycle-marker").allTextContents();
    assert.deepEqual(markers.map((m) => m.trim()), ["Stream created #1", "Stream woke up #2"]);
    await page.getByTestId("feed-child-stream-link").click();
    await waitForText(page, "stream-path", child);
    assert.equal(new URL(page.url()).searchParams.get("view"), "feed");
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="feed-item"]').length >= 3);
  });

  test("state view: core state and runtime, refreshed live", async () => {
    const { page, path: p } = await v.openStream({ view: "state" });
    await waitForText(page, "event-count", FRESH_COUNT);
    await waitForMatch(page, "stream-state", /"maxOffset": 3,/);
    const state = JSON.parse(await page.getByTestId("stream-state").textContent());
    assert.equal(state.path, p);
    assert.equal(state.namespace, "default");
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="state-connections"] tbody tr').length === 1);
    await v.api(p, "append", { event: { type: "app/x" } });
    await waitForMatch(page, "stream-state", /"maxOffset": 4,/, { timeout: 5000 });
    await waitForText(page, "state-paused", "no");
  });

  test("the root path and the Worker's own routes stay reachable", async () => {
    const page = await v.open(`/?path=%2F&view=state`);
    await waitForMatch(page, "stream-state", /"path": "\/"/);
    const notFound = await fetch(`${v.origin}/nope`);
    assert.equal(notFound.status, 404);
    assert.equal((await notFound.json()).error.code, "not_found");
    const split = await fetch(`${v.origin}/split?left=/a&right=/b`);
    assert.match(await split.text(), /<div id="root">/);
  });
});

describe("screenshots", () => {
  test("the three views at 1280×800, written to docs/", async () => {
    const p = "/demo/orders";
    const events = [];
    for (let i = 1; i <= 40; i++) {
      events.push({ type: "shop/order-placed", payload: { orderId: `o-${i}`, total: 10 + i } });
      if (i % 5 === 0) events.push({ type: "shop/payment-captured", payload: { orderId: `o-${i}` }, idempotencyKey: `pay-o-${i}` });
    }
    const namespace = `demo${Math.random().toString(36).slice(2, 8)}`;
    await v.api(p, "appendBatch", { events }, { namespace });
    await v.api(`${p}/eu`, "append", { event: { type: "shop/region-opened", payload: { region: "eu" } } }, { namespace });
    for (const view of ["events", "feed", "state"]) {
      const { page: shot } = await v.openStream({ path: p, namespace, view });
      await waitForText(shot, "stream-status", "subscribed");
      if (view === "events") {
        await waitForRow(shot, events.length + 3);
        await shot.locator('[data-event-type="shop/payment-captured"]').last().locator("button").click();
      }
      if (view === "feed") await shot.waitForSelector('[data-testid="feed-child-stream-link"]');
      if (view === "state") await waitForMatch(shot, "stream-state", /"maxOffset"/);
      await shot.waitForTimeout(300);
      const file = path.join(REPO_ROOT, "docs", `viewer-${view}.png`);
      await shot.screenshot({ path: file });
      assert.ok(fs.statSync(file).size > 10_000, `${file} was written`);
    }
  });
});
