// The viewer page in headless Chromium against the Worker served locally (static assets + API):
// live events, composer and API appends, reload, filter and counts, the load tool, the new-events
// badge under load, virtualisation, kill and reset, the breaker, split views, the feed and state
// views, the URL state, the header, and the error and empty states. Every test uses a fresh stream
// path and a fresh browser context, and fails on any console error. Screenshots: viewer_screenshots.test.mjs.
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { assertNoConsoleErrors, expectConsoleError, newPage, startSite } from "./helpers/browser.mjs";
import { REPO_ROOT } from "./helpers/mf.mjs";
import { ADMIN_TOKEN, FIRST_EVENT, FRESH_COUNT, FRESH_ROWS, S, fetchesTo, freshPath, recordFetches, rowOffsets, startViewer, waitForMatch, waitForRow, waitForText } from "./helpers/viewer.mjs";

/** Prints the rows of a query on a SQLite file (python3's sqlite3: any SQLite reader would do). */
const SQLITE_QUERY = "import sqlite3,sys\nprint('\\n'.join('|'.join(map(str,r)) for r in sqlite3.connect(sys.argv[1]).execute(sys.argv[2])))";

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
  test("a fresh stream shows its first events; composer and API appends appear live; reload adds exactly the presence events", async () => {
    const { page, path: p } = await v.openStream();
    await waitForText(page, "event-count", FRESH_COUNT);
    await waitForText(page, "stream-status", "subscribed");
    assert.deepEqual(await rowOffsets(page), FRESH_ROWS, "the page's own subscriber-connected@4 is hidden");
    const types = await page.$$eval('[data-testid="event-row"]', (rows) => rows.map((r) => r.getAttribute("data-event-type")));
    assert.deepEqual(types, [S("created"), S("woken"), FIRST_EVENT.type]);

    await appendFromComposer(page, { type: "app/from-composer", payload: { n: 1 } });
    await page.waitForSelector('[data-event-type="app/from-composer"]', { timeout: 30_000 });
    await waitForText(page, "composer-state", "appended at offset 5");
    await v.api(p, "append", { event: { type: "app/from-api", payload: { n: 2 } } });
    await page.waitForSelector('[data-event-type="app/from-api"]', { timeout: 30_000 });
    await waitForText(page, "event-count", "6");

    await page.reload();
    await waitForText(page, "event-count", "8");
    await waitForText(page, "stream-status", "subscribed");
    const server = await v.serverEvents(p);
    assert.equal(server.length, 8, "the server has exactly the two presence events more");
    assert.deepEqual(server.slice(6).map((e) => e.type).sort(), [...PRESENCE].sort());
    await waitForRow(page, 6);
    assert.deepEqual(await rowOffsets(page), [1, 2, 3, 5, 6], "kept rows; presence rows hidden");
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
    await waitForText(page, "event-count", "404");
    await page.getByTestId("scroll-to-bottom").click();
    await waitForRow(page, 404);
    assert.equal(await page.locator('[data-event-offset="1"]').count(), 0, "row 1 left the DOM");
    await page.getByTestId("scroll-to-top").click();
    await waitForRow(page, 1);
    assert.equal(await page.locator('[data-event-offset="1"] [data-testid="event-json"]').count(), 1, "still expanded");
  });

  test("the type filter and its counts; 80 events from the load tool", async () => {
    const { page, path: p } = await v.openStream();
    await waitForText(page, "event-count", FRESH_COUNT);
    assert.equal(await page.getByTestId("insert-state").count(), 0, "no status before the first run");
    await insertWithLoadTool(page, { count: 80, seconds: 0, batch: 100 });
    await waitForText(page, "insert-state", "done: 80 events");
    await waitForText(page, "event-count", "84");
    await waitForText(page, "filter-count", "83 events, 1 presence event hidden");

    const options = await page.getByTestId("event-type-filter").locator("option").allTextContents();
    assert.ok(options.includes("All event types (83)"), options.join(" | "));
    assert.ok(!options.some((o) => o.startsWith(S("subscriber-"))), "presence types are not offered while hidden");
    const loadTypes = options.filter((o) => o.startsWith("app/load/"));
    assert.equal(loadTypes.length, 5, options.join(" | "));
    assert.ok(loadTypes.every((o) => o.endsWith("(16)")), loadTypes.join(" | "));

    await page.getByTestId("event-type-filter").selectOption("app/load/click");
    await waitForText(page, "filter-count", "16 filtered events / 84 total events");
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="event-row"]').length === 16);
    const shown = await page.$$eval('[data-testid="event-row"]', (rows) => rows.map((r) => r.getAttribute("data-event-type")));
    assert.ok(shown.every((t) => t === "app/load/click"), shown.join(","));

    await v.api(p, "append", { event: { type: "app/load/click", payload: {} } });
    await v.api(p, "append", { event: { type: "app/other", payload: {} } });
    await waitForText(page, "filter-count", "17 filtered events / 86 total events");
    await page.getByTestId("event-type-filter").selectOption("app/other");
    await waitForText(page, "filter-count", "1 filtered event / 86 total events");
    await page.getByTestId("event-type-filter").selectOption("");
    await waitForText(page, "filter-count", "85 events, 1 presence event hidden");
    await page.getByTestId("presence-toggle").check();
    await waitForText(page, "filter-count", "86 events");
  });

  test("5000 events over 5 s while scrolled away: the badge counts exactly the new ones, and jumps back", async () => {
    const { page } = await v.openStream();
    await waitForText(page, "event-count", FRESH_COUNT);
    await insertWithLoadTool(page, { count: 80, seconds: 0, batch: 100 });
    await waitForText(page, "event-count", "84");
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
    await waitForText(page, "event-count", "5084", { timeout: 30_000 });
    await waitForText(page, "new-events-badge", "5000 new events");

    await page.getByTestId("scroll-to-bottom").click();
    await waitForRow(page, 5084);
    await page.waitForFunction(() => document.querySelector('[data-testid="new-events-badge"]') === null);
  });

  test("1500+ events: fewer than 150 row elements in the DOM; top and bottom navigation", async () => {
    const p = freshPath();
    for (let b = 0; b < 2; b++) {
      const events = Array.from({ length: 750 }, (_, i) => ({ type: `app/bulk/${i % 3}`, payload: { i: b * 750 + i } }));
      await v.api(p, "appendBatch", { events });
    }
    const { page } = await v.openStream({ path: p });
    // created, woken, 1500 events and the page's hidden subscriber-connected@1503.
    await waitForText(page, "event-count", "1503", { timeout: 30_000 });
    await waitForRow(page, 1502);
    const rows = await page.locator('[data-testid="event-row"], [data-testid="event-row-pending"]').count();
    assert.ok(rows > 0 && rows < 150, `${rows} row elements`);

    await page.getByTestId("scroll-to-top").click();
    await waitForRow(page, 1);
    assert.equal(await page.locator('[data-event-offset="1502"]').count(), 0);
    assert.ok((await page.locator('[data-testid="event-row"]').count()) < 150);
    await page.getByTestId("scroll-to-bottom").click();
    await waitForRow(page, 1502);
    assert.equal(await page.locator('[data-event-offset="1"]').count(), 0);
  });
});

describe("operations", () => {
  test("kill: back to subscribed, nothing lost", async () => {
    const { page, path: p } = await v.openStream();
    await waitForText(page, "event-count", FRESH_COUNT);
    await appendFromComposer(page, { type: "app/before-kill" });
    await waitForText(page, "event-count", "5");
    assert.equal(await page.getByTestId("stream-kill").isDisabled(), true, "kill needs the admin token");
    await setAdminToken(page);
    await page.getByTestId("stream-kill").click();
    await waitForText(page, "mirror-action", "kill: done");
    // The killed incarnation writes no disconnect: a new woken and the page's new connection.
    await waitForText(page, "event-count", "7", { timeout: 30_000 });
    await waitForText(page, "stream-status", "subscribed");
    const server = await v.serverEvents(p);
    assert.deepEqual(server.map((e) => e.offset), [1, 2, 3, 4, 5, 6, 7]);
    assert.deepEqual(server.slice(5).map((e) => e.type).sort(), [S("subscriber-connected"), S("woken")].sort());
    await waitForRow(page, 6);
    assert.deepEqual(await rowOffsets(page), [1, 2, 3, 5, 6]);
    await appendFromComposer(page, { type: "app/after-kill" });
    await waitForText(page, "event-count", "8");
  });

  test("reset: the view shows only the new life", async () => {
    const { page } = await v.openStream();
    await waitForText(page, "event-count", FRESH_COUNT);
    await appendFromComposer(page, { type: "app/old-life" });
    await waitForText(page, "event-count", "5");
    await setAdminToken(page);
    page.once("dialog", (dialog) => void dialog.accept());
    await page.getByTestId("stream-reset").click();
    await waitForText(page, "mirror-action", "reset: done");
    await page.waitForFunction(() => document.querySelector('[data-event-type="app/old-life"]') === null, null, { timeout: 30_000 });
    // The new life: created, woken and the page's new connection (hidden).
    await waitForText(page, "event-count", "3", { timeout: 30_000 });
    await waitForText(page, "stream-status", "subscribed");
    const types = await page.$$eval('[data-testid="event-row"]', (rows) => rows.map((r) => r.getAttribute("data-event-type")));
    assert.deepEqual(types, [S("created"), S("woken")]);
  });

  test("breaker: burst 1, two appends → paused with the reason shown; resume works", async () => {
    const { page } = await v.openStream();
    await waitForText(page, "event-count", FRESH_COUNT);
    await waitForText(page, "stream-gate-status", "Active");
    await page.getByTestId("circuit-breaker-burst-capacity").fill("1");
    await page.getByTestId("circuit-breaker-refill-rate").fill("1");
    await page.getByTestId("circuit-breaker-apply").click();
    await waitForText(page, "stream-control-action", "configure breaker: done");
    await waitForRow(page, 5);
    assert.equal(await page.locator('[data-event-offset="5"]').getAttribute("data-event-type"), S("configured"));

    await appendFromComposer(page, { type: "app/one" });
    await waitForMatch(page, "composer-state", /^appended at offset \d+$/);
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
    await waitForText(page, "event-count", "6");
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByTestId("mirror-download").click()]);
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "viewer-download-")), download.suggestedFilename());
    await download.saveAs(file);
    const sql = (query) => execFileSync("python3", ["-c", SQLITE_QUERY, file, query], { encoding: "utf8" }).trim();
    assert.equal(sql("SELECT COUNT(*) FROM events"), "6");
    assert.equal(sql("SELECT COUNT(*) FROM events WHERE type = 'app/kept'"), "2");
    fs.rmSync(path.dirname(file), { recursive: true, force: true });

    await page.getByTestId("mirror-clear").click();
    await waitForText(page, "mirror-action", "clear local copy: done");
    // The rebuild subscribes again: the stream records that connection's presence events.
    await waitForText(page, "event-count", "8");
    await waitForText(page, "stream-status", "subscribed");
    const server = await v.serverEvents(p);
    assert.deepEqual(server.slice(6).map((e) => e.type).sort(), [...PRESENCE].sort());
    await waitForRow(page, 6);
    assert.deepEqual(await rowOffsets(page), [1, 2, 3, 5, 6]);
  });

  test("a stream retention trimmed: the full list starts at the first kept offset, top to bottom, with no empty rows", async () => {
    const p = freshPath("trimmed");
    await v.api(p, "append", { event: { type: S("configured"), payload: { config: { retention: { maxEvents: 300 } } } } });
    for (let b = 0; b < 3; b++) {
      await v.api(p, "appendBatch", { events: Array.from({ length: 200 }, (_, i) => ({ type: "app/bulk", payload: { i: b * 200 + i } })) });
    }
    // Retention runs in the background after each commit: wait until it has caught up (exactly the
    // last 300 kept), not for its first step, whose first kept offset it then moves past.
    let first = 1;
    for (let tries = 0; ; tries++) {
      const { coreProcessorState, runtime } = await v.api(p, "runtimeState");
      first = runtime.storage.firstOffset;
      if (first > 1 && first === coreProcessorState.maxOffset - 300 + 1) break;
      assert.ok(tries < 2000, `retention caught up (first kept offset ${first})`);
      await new Promise((r) => setTimeout(r, 10));
    }
    // Presence shown: every kept event is listed, the list a plain offset range first..last.
    const { page } = await v.openStream({ path: p, query: { presence: "shown" } });
    await waitForText(page, "stream-status", "subscribed");
    const last = (await v.api(p, "runtimeState")).coreProcessorState.maxOffset;
    await waitForText(page, "filter-count", `${last - first + 1} events`);
    await waitForRow(page, last);
    const bottom = await rowOffsets(page);
    assert.ok(bottom.every((o, i) => o >= first && (i === 0 || o === bottom[i - 1] + 1)), `contiguous kept rows: ${bottom}`);
    await page.getByTestId("scroll-to-top").click();
    await waitForRow(page, first);
    const top = await rowOffsets(page);
    assert.equal(top[0], first, "the list starts at the first kept offset");
    assert.equal(await page.locator('[data-testid="event-row-pending"]').count(), 0, "no row waits for an event the mirror does not hold");
  });
});

describe("split view", () => {
  test("the same path twice: one store, both panes see an append", async () => {
    const p = freshPath();
    await v.api(p, "append", { event: FIRST_EVENT });
    const page = await v.open(`/split?${new URLSearchParams({ left: p, right: p })}`);
    for (const side of ["left", "right"]) await waitForText(page, "event-count", FRESH_COUNT, { scope: `[data-testid="split-${side}"]` });
    await appendFromComposer(page, { type: "app/shared" }, '[data-testid="split-left"]');
    for (const side of ["left", "right"]) await waitForRow(page, 5, { scope: `[data-testid="split-${side}"]` });
    const server = await v.serverEvents(p);
    assert.equal(server.filter((e) => e.type === S("subscriber-connected")).length, 1, "one socket for both panes");
  });

  test("two paths: isolated", async () => {
    const [left, right] = [freshPath(), freshPath()];
    for (const p of [left, right]) await v.api(p, "append", { event: FIRST_EVENT });
    const page = await v.open(`/split?${new URLSearchParams({ left, right })}`);
    for (const side of ["left", "right"]) await waitForText(page, "event-count", FRESH_COUNT, { scope: `[data-testid="split-${side}"]` });
    await appendFromComposer(page, { type: "app/left-only" }, '[data-testid="split-left"]');
    await waitForRow(page, 5, { scope: '[data-testid="split-left"]' });
    await v.api(right, "append", { event: { type: "app/right-only" } });
    await waitForRow(page, 5, { scope: '[data-testid="split-right"]' });
    assert.equal(await page.locator('[data-testid="split-left"] [data-event-type="app/right-only"]').count(), 0);
    assert.equal(await page.locator('[data-testid="split-right"] [data-event-type="app/left-only"]').count(), 0);
    assert.equal((await v.serverEvents(left)).length, 5);
    assert.equal((await v.serverEvents(right)).length, 5);
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
    await v.api(next, "append", { event: FIRST_EVENT });
    await v.api(next, "append", { event: FIRST_EVENT }, { namespace: "other-ns" });
    await page.getByTestId("stream-path-change").click();
    await page.getByTestId("stream-path-input").fill(next);
    await page.getByTestId("stream-path-input").press("Enter");
    await waitForText(page, "stream-path", next);
    assert.equal(new URL(page.url()).searchParams.get("path"), next);
    await waitForText(page, "event-count", FRESH_COUNT);
    assert.equal((await v.serverEvents(next)).length, 4, "the new path is live");

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
    assert.equal((await v.serverEvents(next, { namespace: "other-ns" })).length, 4);

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
    const { page } = await v.openStream({ path: parent, view: "feed", create: true });
    await waitForText(page, "event-count", FRESH_COUNT);
    for (const type of ["app/a", "app/b", "app/a", "app/a"]) await v.api(parent, "append", { event: { type } });
    await v.api(child, "append", { event: { type: "app/in-child" } });
    await waitForText(page, "event-count", "9");
    const items = () =>
      page.$$eval('[data-testid="feed-item"]', (rows) =>
        rows.map((r) => [r.getAttribute("data-kind"), r.getAttribute("data-event-type"), Number(r.getAttribute("data-event-count"))]),
      );
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="feed-item"]').length >= 7);
    const withoutPresence = [
      ["lifecycle", S("created"), 1],
      ["lifecycle", S("woken"), 1],
      ["group", FIRST_EVENT.type, 1],
      ["group", "app/a", 1],
      ["group", "app/b", 1],
      ["group", "app/a", 2],
      ["lifecycle", S("child-stream-created"), 1],
    ];
    assert.deepEqual(await items(), withoutPresence, "presence groups hidden by default");
    await waitForText(page, "feed-item-count", "7 feed items");
    await page.getByTestId("presence-toggle").check();
    await waitForText(page, "feed-item-count", "8 feed items");
    assert.equal(new URL(page.url()).searchParams.get("presence"), "shown");
    assert.deepEqual(await items(), [...withoutPresence.slice(0, 3), ["group", S("subscriber-connected"), 1], ...withoutPresence.slice(3)]);
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
    await waitForMatch(page, "stream-state", /"maxOffset": 4,/);
    const state = JSON.parse(await page.getByTestId("stream-state").textContent());
    assert.equal(state.path, p);
    assert.equal(state.namespace, "default");
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="state-connections"] tbody tr').length === 1);
    await v.api(p, "append", { event: { type: "app/x" } });
    await waitForMatch(page, "stream-state", /"maxOffset": 5,/, { timeout: 30_000 });
    await waitForText(page, "state-paused", "no");
  });

  test("state view: a failing subscription shows its failures and the cause of the last one", async () => {
    const { page, path: p } = await v.openStream({ view: "state" });
    const via = { type: "env-binding", bindingType: "durable-object-namespace", bindingName: "ECHO_HOST", durableObject: { name: `echo-${Math.random().toString(36).slice(2)}` } };
    // The echo host runs one processor, "echo-example": a typo in processorName fails every dial.
    const callable = { type: "workers-rpc", via, transformInput: { shallowMerge: { processorName: "mesage-count" } } };
    await v.api(p, "append", { event: { type: S("subscription-configured"), payload: { subscriptionKey: "typo", subscriber: { type: "callable", callable } } } });
    await page.waitForSelector('[data-testid="state-redial-row"][data-key="typo"]', { timeout: 20_000 });
    await waitForMatch(page, "state-redial-cause", /^processor_unknown: no processor "mesage-count"/);
    const runtime = (await v.api(p, "runtimeState")).runtime.redial.typo;
    assert.equal((await page.getByTestId("state-redial-cause").textContent()).trim(), `${runtime.lastError.code}: ${runtime.lastError.message}`);
  });

  test("the state view shows the state right after a chosen offset, and goes back to the current one", async () => {
    const { page, path } = await v.openStream({ view: "state" });
    await v.api(path, "append", { event: { type: "events.iterate.com/stream/paused", payload: { reason: "for the test" } } });
    await waitForMatch(page, "stream-state", /"paused": true/);
    await page.getByTestId("state-at-offset").fill("3");
    await page.getByTestId("state-at-offset-show").click();
    assert.equal(new URL(page.url()).searchParams.get("at"), "3");
    await waitForMatch(page, "stream-state", /"maxOffset": 3,/);
    assert.match(await page.getByTestId("stream-state").textContent(), /"paused": false/);
    await page.reload();
    await waitForMatch(page, "stream-state", /"maxOffset": 3,/);
    await page.getByTestId("state-at-offset-current").click();
    await waitForMatch(page, "stream-state", /"paused": true/);
    assert.equal(new URL(page.url()).searchParams.get("at"), null);
  });

  test("state view: the storage figures of runtime.storage", async () => {
    const { page, path: p } = await v.openStream({ view: "state" });
    await waitForText(page, "event-count", FRESH_COUNT);
    await waitForText(page, "storage-first-offset", "1");
    await waitForMatch(page, "storage-hot", /^4 events, \d+(\.\d)? (B|KiB)$/);
    const storage = (await v.api(p, "runtimeState")).runtime.storage;
    assert.equal(storage.hotEvents, 4);
    assert.match(await page.getByTestId("storage-archived").textContent(), new RegExp(`^${storage.archivedEvents} events in ${storage.archivedSegments} segments?, `));
  });

  test("the root path and the Worker's own routes stay reachable", async () => {
    await v.api("/", "append", { event: FIRST_EVENT });
    const page = await v.open(`/?path=%2F&view=state`);
    await waitForMatch(page, "stream-state", /"path": "\/"/);
    const notFound = await fetch(`${v.origin}/nope`);
    assert.equal(notFound.status, 404);
    assert.equal((await notFound.json()).error.code, "not_found");
    const split = await fetch(`${v.origin}/split?left=/a&right=/b`);
    assert.match(await split.text(), /<div id="root">/);
  });
});

describe("page state, wording and layout", () => {
  test("the breaker form shows the stream's own values, follows a change from elsewhere, and keeps what the user types", async () => {
    const { page, path: p } = await v.openStream();
    await waitForText(page, "stream-gate-status", "Active");
    const fields = async () => [
      await page.getByTestId("circuit-breaker-burst-capacity").inputValue(),
      await page.getByTestId("circuit-breaker-refill-rate").inputValue(),
    ];
    const state = (await v.api(p, "runtimeState")).coreProcessorState.circuitBreaker;
    await page.waitForFunction(() => document.querySelector('[data-testid="circuit-breaker-burst-capacity"]').value !== "");
    assert.deepEqual(await fields(), [String(state.burstCapacity), String(state.refillRatePerMinute)], "the defaults, not 1 / 1");

    await v.api(p, "append", { event: { type: S("configured"), payload: { config: { circuitBreaker: { burstCapacity: 70, refillRatePerMinute: 900 } } } } });
    await page.waitForFunction(() => document.querySelector('[data-testid="circuit-breaker-burst-capacity"]').value === "70");
    assert.deepEqual(await fields(), ["70", "900"]);

    await page.getByTestId("circuit-breaker-burst-capacity").fill("50");
    // Two polls of runtimeState answered after the edit, each rendered: the draft stays.
    for (let i = 0; i < 2; i++) {
      await page.waitForResponse((r) => new URL(r.url()).pathname === "/api/streams/runtimeState", { timeout: 20_000 });
      await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    }
    assert.deepEqual(await fields(), ["50", "900"]);
    await page.getByTestId("circuit-breaker-apply").click();
    await waitForText(page, "stream-control-action", "configure breaker: done");
    await waitForText(page, "circuit-breaker-config", "configured: burst 50, refill 900/min");
    assert.equal((await v.api(p, "runtimeState")).coreProcessorState.paused, false);
  });

  for (const [name, bad, why] of [
    ["an empty segment", "/a//b", /empty segment/],
    ["no leading slash", "no-slash", /must start with \//],
    ["1,100 characters", `/${"x".repeat(1099)}`, /at most 1023 bytes/],
  ]) {
    test(`a bad path in the URL (${name}) shows an error, asks the API nothing and overflows nothing`, async () => {
      const requests = [];
      // The page's clock is ours to run (a poll or a reconnect is a timer), its fetches recorded.
      const page = await v.open(`/?${new URLSearchParams({ path: bad })}`, {
        beforeGoto: async (p) => {
          p.on("request", (r) => new URL(r.url()).pathname.startsWith("/api/") && requests.push(r.url()));
          await recordFetches(p);
          await p.clock.install();
        },
      });
      await page.getByTestId("stream-invalid").waitFor();
      assert.match(await page.getByTestId("stream-invalid").textContent(), why);
      await waitForText(page, "header-status", "invalid name");
      // Instead of a sleep: every timer the page holds fires over a minute of its time.
      await page.clock.runFor(60_000);
      assert.deepEqual(await page.evaluate(() => window.fetches.filter((f) => f.path.startsWith("/api/"))), [], "no API call");
      assert.deepEqual(requests, [], "no runtimeState, no socket");
      assert.equal(await page.getByTestId("stream-status").count(), 0, "no mirror, so no endless reconnecting");
      const overflow = await page.evaluate(() => {
        const wider = (el) => el !== null && el.scrollWidth > el.clientWidth + 1;
        return {
          page: document.documentElement.scrollWidth > window.innerWidth,
          sidebar: wider(document.querySelector(".sidebar")),
          notice: wider(document.querySelector('[data-testid="stream-invalid"]')),
        };
      });
      assert.deepEqual(overflow, { page: false, sidebar: false, notice: false });
      await page.getByTestId("stream-path-change").click();
      assert.equal(await page.getByTestId("stream-path-input").getAttribute("aria-invalid"), "true", "the editor says why too");
    });
  }

  test("a path nothing was written to: an empty state, nothing created, then live once an event is appended", async () => {
    const p = `${freshPath()}/child`; // its parent is never written either
    const page = await v.open(`/?${new URLSearchParams({ path: p })}`, { beforeGoto: recordFetches });
    await page.getByTestId("stream-empty").waitFor();
    await waitForText(page, "header-status", "no stream yet");
    // It keeps reading (three more polls), never sooner than a second after the last (the page's own
    // clock: a loaded machine only widens the gaps): once a second, no storm.
    const seen = (await fetchesTo(page, "/api/streams/runtimeState")).length;
    await page.waitForFunction((n) => window.fetches.filter((f) => f.path === "/api/streams/runtimeState").length >= n + 3, seen, { timeout: 30_000 });
    const polls = (await fetchesTo(page, "/api/streams/runtimeState")).map((f) => f.at);
    const gaps = polls.slice(seen).map((at, i) => at - polls[seen + i - 1]);
    assert.ok(gaps.every((gap) => gap >= 990), `runtimeState read once a second at most: gaps ${gaps.map(Math.round).join(", ")} ms`);
    assert.deepEqual(await v.api(p, "getEvents"), [], "looking created nothing");
    assert.deepEqual(await v.api(p.slice(0, p.lastIndexOf("/")), "getEvents"), [], "and told no parent");
    assert.equal(await page.getByTestId("stream-status").count(), 0, "no socket");

    await appendFromComposer(page, { type: "app/hello" });
    await waitForText(page, "composer-state", "appended at offset 3");
    await waitForText(page, "stream-status", "subscribed");
    await waitForRow(page, 3);
    assert.deepEqual(await rowOffsets(page), [1, 2, 3]);
    assert.equal(await page.locator('[data-event-offset="3"]').getAttribute("data-event-type"), "app/hello");
  });

  test("the type filter and the presence toggle live in the URL: a reload and the back button keep them", async () => {
    const { page, path: p } = await v.openStream();
    await waitForText(page, "event-count", FRESH_COUNT);
    await v.api(p, "appendBatch", { events: [{ type: "app/x" }, { type: "app/y" }, { type: "app/x" }] });
    await waitForText(page, "filter-count", "6 events, 1 presence event hidden");
    await page.getByTestId("event-type-filter").selectOption("app/x");
    await waitForText(page, "filter-count", "2 filtered events / 7 total events");
    assert.equal(new URL(page.url()).searchParams.get("type"), "app/x");

    await page.reload();
    await waitForText(page, "stream-status", "subscribed");
    // The reload's two presence events count in the total, not in the filter.
    await waitForText(page, "filter-count", "2 filtered events / 9 total events");
    assert.equal(await page.getByTestId("event-type-filter").inputValue(), "app/x");

    await page.getByTestId("event-type-filter").selectOption("");
    await page.getByTestId("presence-toggle").check();
    await waitForText(page, "filter-count", "9 events");
    assert.equal(new URL(page.url()).searchParams.get("presence"), "shown");
    assert.equal(new URL(page.url()).searchParams.get("type"), null);
    assert.deepEqual(await rowOffsets(page), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    await page.goBack();
    await waitForText(page, "filter-count", "6 events, 3 presence events hidden");
    await page.goBack();
    await waitForText(page, "filter-count", "2 filtered events / 9 total events");
  });

  test("the scroll buttons never cover the last row, in the page and in a split pane", async () => {
    const { page, path: p } = await v.openStream();
    await v.api(p, "appendBatch", { events: Array.from({ length: 120 }, (_, i) => ({ type: "app/filler", payload: { i } })) });
    await waitForText(page, "event-count", "124");
    await waitForRow(page, 123);
    const covered = (scope) =>
      page.evaluate((sel) => {
        const root = sel ? document.querySelector(sel) : document;
        const rows = [...root.querySelectorAll('[data-testid="event-row"]')];
        const last = rows.reduce((a, b) => (Number(b.dataset.eventOffset) > Number(a.dataset.eventOffset) ? b : a)).getBoundingClientRect();
        const list = root.querySelector('[data-testid="stream-events"]').getBoundingClientRect();
        const hits = [...root.querySelectorAll('[data-testid="scroll-to-top"], [data-testid="scroll-to-bottom"]')].filter((b) => {
          const r = b.getBoundingClientRect();
          return r.left < last.right && r.right > last.left && r.top < last.bottom && r.bottom > last.top;
        });
        return { hits: hits.length, lastVisible: last.bottom <= list.bottom + 1 && last.top >= list.top };
      }, scope);
    assert.deepEqual(await covered(""), { hits: 0, lastVisible: true });

    const split = await v.open(`/split?${new URLSearchParams({ left: p, right: p })}`);
    await waitForRow(split, 123, { scope: '[data-testid="split-left"]' });
    const inSplit = await split.evaluate(() => {
      const root = document.querySelector('[data-testid="split-left"]');
      const last = root.querySelector('[data-event-offset="123"]').getBoundingClientRect();
      return [...root.querySelectorAll("button")].filter((b) => {
        const r = b.getBoundingClientRect();
        return !b.closest('[data-testid="event-row"]') && r.left < last.right && r.right > last.left && r.top < last.bottom && r.bottom > last.top;
      }).length;
    });
    assert.equal(inSplit, 0);
  });

  test("no stray status lines: the sidebar says nothing about actions not taken", async () => {
    const { page } = await v.openStream();
    await waitForText(page, "stream-status", "subscribed");
    const sidebar = await page.locator(".sidebar").textContent();
    assert.doesNotMatch(sidebar, /\bidle\b/);
    for (const id of ["composer-state", "insert-state", "stream-control-action", "mirror-action"]) {
      assert.equal(await page.getByTestId(id).count(), 0, id);
    }
    await appendFromComposer(page, { type: "app/once" });
    await waitForText(page, "composer-state", "appended at offset 5");
  });

  test("the header shows the stream's identity and live status; event kinds have colours of their own", async () => {
    const { page, path: p } = await v.openStream();
    await waitForText(page, "header-status", "live");
    await waitForText(page, "stream-path", p);
    await waitForText(page, "stream-namespace", "default");
    await page.getByTestId("presence-toggle").check();
    await waitForRow(page, 4);
    const colours = await page.evaluate(() => {
      const colour = (offset) => getComputedStyle(document.querySelector(`[data-event-offset="${offset}"] .type`)).backgroundColor;
      return { system: colour(1), app: colour(3), presence: colour(4) };
    });
    assert.equal(new Set(Object.values(colours)).size, 3, JSON.stringify(colours));
    assert.equal(await page.getByTestId("stream-list-link").getAttribute("href"), "/streams?prefix=%2Fviewer%2F");
  });
});

describe("content security policy", () => {
  // The page's own needs (docs/viewer.md#how-it-is-served): scripts from itself only, and
  // WebAssembly for the mirror's SQLite. The page is tested under the policy the Worker serves, or
  // this one while it serves none; a static server sets it on every file, the mirror worker's included.
  const NEEDED_POLICY = "script-src 'self' 'wasm-unsafe-eval'; frame-ancestors 'none'";

  test("the page works under a policy that allows scripts only from itself: live rows, an append, the state view", async () => {
    const served = (await fetch(`${v.origin}/`)).headers.get("content-security-policy");
    const policy = served ?? NEEDED_POLICY;
    const site = await startSite({ root: path.join(REPO_ROOT, "viewer", "dist"), target: v.origin, headers: { "content-security-policy": policy } });
    try {
      const p = freshPath();
      await v.api(p, "append", { event: FIRST_EVENT });
      const page = await newPage(v.browser, { viewport: { width: 1280, height: 800 } });
      const violations = [];
      page.on("console", (msg) => /Content Security Policy/i.test(msg.text()) && violations.push(msg.text()));
      await page.goto(`${site.url}/?${new URLSearchParams({ path: p })}`);
      assert.equal((await page.evaluate(async () => (await fetch(location.href)).headers.get("content-security-policy"))), policy);
      await waitForText(page, "stream-status", "subscribed");
      await waitForText(page, "event-count", FRESH_COUNT);
      await appendFromComposer(page, { type: "app/under-csp" });
      await page.waitForSelector('[data-event-type="app/under-csp"]');
      await page.getByTestId("view-link-state").click();
      await waitForMatch(page, "stream-state", /"maxOffset": 5,/);
      assert.deepEqual(violations, [], `the page broke the policy ${policy}`);
      await page.context().close();
      assertNoConsoleErrors(page);
    } finally {
      await site.close();
    }
  });
});
