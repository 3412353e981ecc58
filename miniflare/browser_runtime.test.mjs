// The browser runtime in headless Chromium against the built Worker: the page is served
// same-origin with the API (miniflare/helpers/browser.mjs startSite), the mirror is real SQLite in
// a worker on OPFS. Every assertion compares the mirror with what the server holds.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import {
  ADMIN_TOKEN,
  assertNoConsoleErrors,
  ensureSqlite3,
  expectConsoleError,
  snapshot,
  startRuntimeHarness,
  waitSnapshot,
} from "./helpers/browser.mjs";
import { REPO_ROOT } from "./helpers/mf.mjs";

/** The README's browser-runtime snippet: the tsx block right after its tested-by marker. */
function readmeSnippet() {
  const readme = fs.readFileSync(path.join(REPO_ROOT, "README.md"), "utf8");
  const marker = "<!-- tested-by: miniflare/browser_runtime.test.mjs -->\n```tsx\n";
  const start = readme.indexOf(marker);
  assert.ok(start >= 0, "README.md has the browser runtime snippet");
  const code = readme.slice(start + marker.length, readme.indexOf("\n```", start + marker.length));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "readme-snippet-"));
  fs.writeFileSync(path.join(dir, "snippet.tsx"), code);
  return path.join(dir, "snippet.tsx");
}

let h;
before(async () => {
  h = await startRuntimeHarness({ entryPoints: { readme: readmeSnippet() } });
});
after(async () => {
  await h?.close();
});

/** No uncaught error or console.error in the page, except the browser's own network lines for sockets the server closed. */
function assertNoPageErrors(page) {
  expectConsoleError(page, /^console\.error: WebSocket connection to .* failed/, { repeated: true });
  assertNoConsoleErrors(page);
}

let counter = 0;
function freshPath(label) {
  counter += 1;
  return `/browser/${label}-${counter}-${Date.now().toString(36)}`;
}

/** Opens `window.store` on the page. */
async function openStore(page, streamPath, { flaky, mirror = "opfs" } = {}) {
  await page.evaluate(
    ([p, token, flakyArgs, kind]) => {
      const processors = [streams.eventFeed()];
      if (flakyArgs) {
        globalThis.flaky = streams.flakyProcessor(...flakyArgs);
        processors.push(globalThis.flaky);
      }
      globalThis.store = streams.openStream({ path: p, token, processors, mirror: kind });
    },
    [streamPath, ADMIN_TOKEN, flaky ?? null, mirror],
  );
}

const rows = (page, sql, params = []) => page.evaluate(([q, p]) => streams.rows(store, q, p), [sql, params]);

/** Subscribed and caught up with the server's current end. */
async function waitCaughtUp(page, streamPath, timeout) {
  const { coreProcessorState } = await h.api("runtimeState", streamPath);
  await waitSnapshot(page, (s, max) => s.status === "subscribed" && s.checkpoint >= max, coreProcessorState.maxOffset, timeout);
}

/** The mirror holds exactly the server's events: same offsets, same events. */
async function assertMirrorEqualsServer(page, streamPath) {
  const server = await h.allEvents(streamPath);
  const local = await rows(page, "SELECT offset, json FROM events ORDER BY offset");
  assert.equal(local.length, server.length, "event count");
  assert.deepEqual(
    local.map((r) => r.offset),
    server.map((e) => e.offset),
    "offsets",
  );
  assert.deepEqual(
    local.map((r) => JSON.parse(r.json)),
    server,
    "events",
  );
}

test("append → the row is in the mirror and in a query; reload keeps the mirror and resumes after the stored checkpoint", async () => {
  const page = await h.newPage();
  const p = freshPath("append");
  await openStore(page, p);
  // The stream's identity arrives with the first batch: the subscription creates the stream.
  await waitSnapshot(page, (s) => s.status === "subscribed" && s.role === "leader" && s.streamId !== null);
  const first = await snapshot(page);
  assert.equal(first.storage.kind, "opfs");
  assert.match(first.streamId, /^[0-9a-f-]{36}$/);

  const appended = await page.evaluate(() => store.append({ type: "app/greeting", payload: { text: "hi" } }));
  await waitSnapshot(page, (s, o) => s.checkpoint >= o, appended.offset);
  const found = await rows(page, "SELECT offset, type, json FROM events WHERE type = ?", ["app/greeting"]);
  assert.equal(found.length, 1);
  assert.equal(found[0].offset, appended.offset);
  assert.deepEqual(JSON.parse(found[0].json), appended);
  // A live query sees it as well, and the event feed grouped it.
  const feed = await rows(page, "SELECT kind, type, event_count FROM feed_items ORDER BY id");
  assert.deepEqual(feed.at(-1), { kind: "group", type: "app/greeting", event_count: 1 });
  assert.equal(feed[0].kind, "lifecycle");

  const before = await snapshot(page);
  await page.reload();
  await page.waitForFunction(() => "streams" in globalThis);
  await openStore(page, p);
  // The mirror is there before any socket: read from OPFS.
  await waitSnapshot(page, (s, n) => s.localCount === n && s.role === "leader", before.localCount);
  await waitSnapshot(page, (s) => s.status === "subscribed");
  const after = await snapshot(page);
  assert.equal(after.subscribedAfterOffset, before.checkpoint, "the new subscription starts after the stored checkpoint");
  assert.equal(after.clearVersion, 0, "nothing was discarded");
  await waitCaughtUp(page, p);
  // The server confirms: this socket was only sent what came after the checkpoint.
  const state = await h.api("runtimeState", p);
  const key = Object.keys(state.runtime.connections).find((k) => k.startsWith("browser:"));
  assert.ok(key, "the writer's connection is listed");
  assert.equal(state.runtime.connections[key].eventsSent, state.coreProcessorState.maxOffset - before.checkpoint);
  await assertMirrorEqualsServer(page, p);
  assertNoPageErrors(page);
  await page.close();
});

test("kill() → the writer reconnects, nothing is lost, status back to subscribed", async () => {
  const page = await h.newPage();
  const p = freshPath("kill");
  await openStore(page, p);
  await waitSnapshot(page, (s) => s.status === "subscribed");
  await page.evaluate(() => store.appendBatch([{ type: "app/a" }, { type: "app/b" }]));
  await waitCaughtUp(page, p);
  const before = await snapshot(page);
  // Every status the store passes through, recorded as it changes: the drop must be seen, however
  // quickly the reconnect follows it.
  await page.evaluate(() => {
    window.statusesSeen = [];
    store.subscribe(() => window.statusesSeen.at(-1) !== store.getSnapshot().status && window.statusesSeen.push(store.getSnapshot().status));
  });
  await page.evaluate(() => store.kill());
  await page.waitForFunction(() => window.statusesSeen.includes("reconnecting") && store.getSnapshot().status === "subscribed", undefined, { timeout: 20_000, polling: 50 });
  const statuses = await page.evaluate(() => window.statusesSeen);
  assert.equal(statuses.at(-1), "subscribed", `statuses after kill: ${statuses}`);
  assert.ok(statuses.indexOf("reconnecting") < statuses.lastIndexOf("subscribed"), `the connection dropped, then came back: ${statuses}`);
  await page.evaluate(() => store.append({ type: "app/after-kill" }));
  await waitCaughtUp(page, p);
  const after = await snapshot(page);
  assert.equal(after.streamId, before.streamId);
  assert.equal(after.clearVersion, 0);
  const woken = await rows(page, "SELECT count(*) AS n FROM events WHERE type = 'events.iterate.com/stream/woken'");
  assert.equal(woken[0].n, 2, "one woken per incarnation");
  await assertMirrorEqualsServer(page, p);
  assertNoPageErrors(page);
  await page.close();
});

test("reset() → the mirror is discarded and rebuilt from the new life; old rows are gone", async () => {
  const page = await h.newPage();
  const p = freshPath("reset");
  await openStore(page, p);
  await waitSnapshot(page, (s) => s.status === "subscribed");
  await page.evaluate(() => store.append({ type: "app/old-life" }));
  await waitCaughtUp(page, p);
  const before = await snapshot(page);
  await page.evaluate(() => store.reset());
  await waitSnapshot(page, (s, id) => s.status === "subscribed" && s.streamId !== null && s.streamId !== id && s.clearVersion === 1, before.streamId);
  await waitCaughtUp(page, p);
  assert.deepEqual(await rows(page, "SELECT * FROM events WHERE type = 'app/old-life'"), []);
  const firstRow = await rows(page, "SELECT offset, type FROM events ORDER BY offset LIMIT 1");
  assert.deepEqual(firstRow, [{ offset: 1, type: "events.iterate.com/stream/created" }]);
  const created = JSON.parse((await rows(page, "SELECT json FROM events WHERE offset = 1"))[0].json);
  assert.equal(created.payload.streamId, (await snapshot(page)).streamId);
  await assertMirrorEqualsServer(page, p);
  assertNoPageErrors(page);
  await page.close();
});

test("server-side socket closes and a full runtime restart during a 5000-event burst → the mirror holds exactly the stream's events", async () => {
  const page = await h.newPage();
  const p = freshPath("burst");
  await openStore(page, p);
  await waitSnapshot(page, (s) => s.status === "subscribed");

  // The writer: 50 batches of 100, each retried until stored (idempotency keys make retries safe).
  let written = 0;
  const writer = (async () => {
    for (let b = 0; b < 50; b += 1) {
      const events = Array.from({ length: 100 }, (_, i) => ({ type: `app/burst-${i % 3}`, payload: { b, i }, idempotencyKey: `burst-${b}-${i}` }));
      for (;;) {
        try {
          await h.api("appendBatch", p, { events });
          break;
        } catch {
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      written += 100;
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  const when = async (n) => {
    while (written < n) await new Promise((r) => setTimeout(r, 20));
  };
  await when(800);
  assert.ok(h.site.dropSockets() >= 1, "a socket was open to drop");
  await when(1800);
  h.site.dropSockets();
  await when(2500);
  await h.restartRuntime({ downMs: 500 });
  await when(3500);
  h.site.dropSockets();
  await writer;
  await waitCaughtUp(page, p, 60_000);
  const snap = await snapshot(page);
  assert.equal(snap.clearVersion, 0, "never rebuilt: the mirror healed in place");
  const burst = await rows(page, "SELECT count(*) AS n FROM events WHERE type LIKE 'app/burst-%'");
  assert.equal(burst[0].n, 5000);
  await assertMirrorEqualsServer(page, p);
  await page.close();
});

test("two tabs: one writer, one follower, both see appends; closing the writer promotes the follower", async () => {
  const p = freshPath("tabs");
  const a = await h.newPage();
  await openStore(a, p);
  await waitSnapshot(a, (s) => s.role === "leader" && s.status === "subscribed");
  const b = await h.newPage();
  await openStore(b, p);
  await waitSnapshot(b, (s) => s.role === "follower");
  // An append from the follower reaches the writer's mirror, and the follower reads it there.
  const ev = await b.evaluate(() => store.append({ type: "app/from-follower" }));
  await waitSnapshot(a, (s, o) => s.checkpoint >= o, ev.offset);
  await waitSnapshot(b, (s, o) => s.checkpoint >= o, ev.offset);
  assert.equal((await rows(b, "SELECT count(*) AS n FROM events WHERE type = 'app/from-follower'"))[0].n, 1);
  assert.equal((await rows(a, "SELECT count(*) AS n FROM events WHERE type = 'app/from-follower'"))[0].n, 1);

  await a.close();
  // Promoted (how fast is not a test's business: a loaded machine only delays it).
  await waitSnapshot(b, (s) => s.role === "leader" && s.status === "subscribed", undefined, 30_000);
  const ev2 = await b.evaluate(() => store.append({ type: "app/after-handoff" }));
  await waitSnapshot(b, (s, o) => s.checkpoint >= o, ev2.offset);
  assert.equal((await snapshot(b)).clearVersion, 0, "the promoted tab kept the shared mirror");
  await waitCaughtUp(b, p);
  await assertMirrorEqualsServer(b, p);
  assertNoPageErrors(b);
  await b.close();
});

test("an ingest that throws twice recovers with no gap", async () => {
  const page = await h.newPage();
  const p = freshPath("flaky");
  await openStore(page, p, { flaky: ["app/poison", 2] });
  await waitSnapshot(page, (s) => s.status === "subscribed");
  const ev = await page.evaluate(() => store.append({ type: "app/poison" }));
  await waitSnapshot(page, (s, o) => s.status === "subscribed" && s.checkpoint >= o, ev.offset);
  assert.equal(await page.evaluate(() => flaky.thrown()), 2);
  assert.equal((await snapshot(page)).error, null);
  // The processor's table and checkpoint moved with the mirror: each event counted exactly once.
  const counts = await rows(page, "SELECT n FROM flaky_counts WHERE type = 'app/poison'");
  assert.deepEqual(counts, [{ n: 1 }]);
  const state = await rows(page, "SELECT slug, checkpoint FROM processor_state ORDER BY slug");
  const max = (await snapshot(page)).checkpoint;
  assert.deepEqual(state, [
    { slug: "event-feed", checkpoint: max },
    { slug: "events", checkpoint: max },
    { slug: "flaky", checkpoint: max },
  ]);
  await waitCaughtUp(page, p);
  await assertMirrorEqualsServer(page, p);
  await page.close();
});

test("clearLocal() discards the local mirror and rebuilds the same rows from the server", async () => {
  const page = await h.newPage();
  const p = freshPath("clear");
  await openStore(page, p);
  await waitSnapshot(page, (s) => s.status === "subscribed");
  await page.evaluate(() => store.appendBatch([{ type: "app/keep" }, { type: "app/keep" }]));
  await waitCaughtUp(page, p);
  await page.evaluate(() => store.clearLocal());
  await waitSnapshot(page, (s) => s.clearVersion === 1 && s.status === "subscribed");
  await waitCaughtUp(page, p);
  assert.equal((await snapshot(page)).subscribedAfterOffset, 0, "rebuilt from the start");
  await assertMirrorEqualsServer(page, p);
  assertNoPageErrors(page);
  await page.close();
});

test("mirror: \"memory\" is shown in the snapshot and lasts only as long as the page", async () => {
  const page = await h.newPage();
  const p = freshPath("memory");
  await openStore(page, p, { mirror: "memory" });
  await waitCaughtUp(page, p);
  assert.deepEqual((await snapshot(page)).storage.kind, "memory");
  assert.equal((await snapshot(page)).storage.persisted, false);
  await page.reload();
  await page.waitForFunction(() => "streams" in globalThis);
  await openStore(page, p, { mirror: "memory" });
  await waitCaughtUp(page, p);
  assert.equal((await snapshot(page)).subscribedAfterOffset, 0, "nothing survived the reload");
  await assertMirrorEqualsServer(page, p);
  await page.close();
});

test("the mirror downloaded from the page opens in the sqlite3 CLI with the right count", async () => {
  ensureSqlite3();
  const page = await h.newPage();
  const p = freshPath("download");
  await openStore(page, p);
  await waitSnapshot(page, (s) => s.status === "subscribed");
  await page.evaluate(() => store.appendBatch([{ type: "app/one" }, { type: "app/two" }, { type: "app/two" }]));
  await waitCaughtUp(page, p);
  const { localCount } = await snapshot(page);
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "mirror-")), "mirror.sqlite3");
  fs.writeFileSync(file, Buffer.from(await page.evaluate(() => streams.downloadBase64(store)), "base64"));
  const sql = (q) => execFileSync("sqlite3", [file, q], { encoding: "utf8" }).trim();
  assert.equal(sql("PRAGMA integrity_check"), "ok");
  assert.equal(Number(sql("SELECT count(*) FROM events")), localCount);
  assert.equal(Number(sql("SELECT count(*) FROM events WHERE type = 'app/two'")), 2);
  assert.match(sql("EXPLAIN QUERY PLAN SELECT offset FROM events WHERE type = 'app/two' ORDER BY offset"), /events_type_offset/);
  fs.rmSync(path.dirname(file), { recursive: true, force: true });
  await page.close();
});

test("README: the React snippet mirrors the stream under StrictMode with one store and one socket", async () => {
  const page = await h.context.newPage();
  const sockets = [];
  page.on("websocket", (ws) => sockets.push(ws.url()));
  await page.goto(`${h.site.url}/readme.html`);
  await page.locator("#status").filter({ hasText: "subscribed as leader" }).waitFor({ timeout: 20_000 });
  await page.getByRole("button", { name: "Append" }).click();
  await page.locator("li", { hasText: "app/clicked ×1" }).waitFor({ timeout: 30_000 });
  await page.getByRole("button", { name: "Append" }).click();
  await page.locator("li", { hasText: "app/clicked ×2" }).waitFor({ timeout: 30_000 });
  assert.equal(sockets.length, 1, `one socket despite StrictMode's double mount: ${sockets.join(", ")}`);
  const server = await h.allEvents("/demo");
  assert.equal(server.filter((e) => e.type === "app/clicked").length, 2);
  assertNoPageErrors(page);
  await page.close();
});
