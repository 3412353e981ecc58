// The client's browser build in headless Chromium (docs/client.md#server-sent-events,
// docs/browser.md#trimmed-streams): `subscribe({transport: "sse"})` with a scoped token in the query
// and no WebSocket at all, every event once across a server-side close; a WebSocket subscription
// from a trimmed checkpoint that ends with `trimmed`; and the browser mirror of a stream that
// retention trimmed, which starts at the first kept offset.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { mintToken } from "../client/dist/index.js";
import { ADMIN_TOKEN, assertNoConsoleErrors, expectConsoleError, snapshot, startRuntimeHarness, waitSnapshot } from "./helpers/browser.mjs";
import { S } from "./helpers/assertions.mjs";

const SECRET = "browser-client-jwt-secret-0123456789";
let h;
before(async () => {
  h = await startRuntimeHarness({ bindings: { STREAMS_JWT_SECRET: SECRET }, apiToken: ADMIN_TOKEN });
});
after(async () => {
  await h?.close();
});

let counter = 0;
function freshPath(label) {
  counter += 1;
  return `/browser-client/${label}-${counter}-${Date.now().toString(36)}`;
}

const token = (path, ops) => mintToken({ secret: SECRET, ns: "default", paths: [path], ops, ttlSeconds: 600, sub: "page-user" });

/** Retries an API call while the stream's object is coming back from a kill. */
async function apiRetrying(method, path, args) {
  for (const deadline = Date.now() + 20_000; ; await new Promise((r) => setTimeout(r, 20))) {
    try {
      return await h.api(method, path, args);
    } catch (e) {
      if (Date.now() >= deadline || e.status !== 500) throw e;
    }
  }
}

test("subscribe over SSE in the browser: scoped token in access_token, no WebSocket, every event once across a server-side close", async () => {
  const page = await h.newPage();
  const p = freshPath("sse");
  const n = (from, count) => ({ events: Array.from({ length: count }, (_, i) => ({ type: "app/n", payload: from + i })) });
  await h.api("appendBatch", p, n(0, 5));
  await page.evaluate(
    ([path, scoped]) => {
      // Any WebSocket use would fail the test.
      globalThis.WebSocket = class {
        constructor() {
          throw new Error("no WebSocket on this page");
        }
      };
      globalThis.sse = { offsets: [], connections: [], asked: 0, error: null };
      const client = streams.createStreamsClient({ baseUrl: location.origin, token: () => (sse.asked++, scoped) });
      const sub = client.subscribe(path, { transport: "sse", afterOffset: 0, eventTypes: ["app/n"], timing: { backoffBaseMs: 50, backoffMaxMs: 300 } });
      globalThis.sub = sub;
      void (async () => {
        try {
          for await (const item of sub) {
            if (item.type !== "batch") continue;
            sse.offsets.push(...item.events.map((e) => e.offset));
            if (!sse.connections.includes(item.connectionId)) sse.connections.push(item.connectionId);
          }
        } catch (e) {
          sse.error = String(e);
        }
      })();
    },
    [p, await token(p, ["read"])],
  );
  const waitFor = (fn, arg) => page.waitForFunction(fn, arg, { timeout: 20_000 });
  await waitFor(() => sse.offsets.length === 5);
  await h.api("appendBatch", p, n(5, 5));
  await waitFor(() => sse.offsets.length === 10);
  // The stream closes the connection (its `close` event); events come while the page is away.
  await h.api("kill", p);
  await apiRetrying("appendBatch", p, n(10, 5));
  await waitFor(() => sse.offsets.length >= 15 && sse.connections.length >= 2);
  await h.api("append", p, { event: { type: "app/n", payload: 15 } });
  await waitFor(() => sse.offsets.length >= 16);
  const seen = await page.evaluate(() => ({ ...sse, urls: performance.getEntriesByType("resource").map((e) => e.name).filter((u) => u.includes("/api/streams/subscribe?")) }));
  await page.evaluate(() => sub.close());
  const expected = (await h.api("getEvents", p, { eventTypes: ["app/n"] })).map((e) => e.offset);
  assert.equal(seen.error, null);
  assert.deepEqual(seen.offsets, expected, "every event once, in order, across the reconnect");
  assert.ok(seen.asked >= 2, `the token function was asked again for the reconnect: ${seen.asked}`);
  assert.ok(seen.urls.length >= 1 && seen.urls.every((u) => new URL(u).searchParams.has("access_token")), `the token rides in the query: ${seen.urls}`);
  assertNoConsoleErrors(page);
  await page.close();
});

/**
 * A stream whose retention (keep 50) removed its first events; resolves to its path and first kept
 * offset once retention has caught up (exactly the last 50 kept): it runs in the background after
 * each commit, so an earlier read can see it halfway and name an offset it then moves past.
 */
async function trimmedStream(label) {
  const p = freshPath(label);
  await h.api("append", p, { event: { type: S("configured"), payload: { config: { retention: { maxEvents: 50 } } } } });
  for (let i = 0; i < 3; i++) await h.api("appendBatch", p, { events: Array.from({ length: 60 }, (_, j) => ({ type: "app/x", payload: { i, j } })) });
  for (let tries = 0; ; tries++) {
    const { coreProcessorState, runtime } = await h.api("runtimeState", p);
    const { firstOffset } = runtime.storage;
    if (firstOffset > 1 && firstOffset === coreProcessorState.maxOffset - 50 + 1) return { p, first: firstOffset };
    assert.ok(tries < 2000, `retention caught up (first kept offset ${firstOffset})`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test("subscribe over the browser's WebSocket from a trimmed checkpoint ends with trimmed instead of retrying (the refused upgrade is explained by a read)", async () => {
  const { p, first } = await trimmedStream("ws-trimmed");
  const page = await h.newPage();
  expectConsoleError(page, /WebSocket connection to .* failed/);
  expectConsoleError(page, /Failed to load resource: .* 410/);
  const outcome = await page.evaluate(
    async ([path, scoped]) => {
      const client = streams.createStreamsClient({ baseUrl: location.origin, token: scoped });
      const states = [];
      const sub = client.subscribe(path, { afterOffset: 0, timing: { backoffBaseMs: 50, backoffMaxMs: 300 }, onStatus: (s) => states.push(s.state) });
      const timeout = new Promise((resolve) => setTimeout(() => resolve({ still: sub.status() }), 10_000));
      const result = await Promise.race([sub.next().then((r) => ({ item: r.value }), (e) => ({ code: e.code, status: e.status, message: e.message })), timeout]);
      await sub.close();
      return { ...result, states };
    },
    [p, await token(p, ["read"])],
  );
  assert.deepEqual(
    [outcome.code, outcome.status, outcome.message],
    ["trimmed", 410, `Offset 1 was removed by retention; the first kept offset is ${first}.`],
    JSON.stringify(outcome),
  );
  assert.ok(!outcome.states.includes("backoff"), `not retried: ${outcome.states}`);
  assertNoConsoleErrors(page);
  await page.close();
});

test("the mirror of a trimmed stream starts at the first kept offset, shows it as firstOffset, and keeps following", async () => {
  const { p, first } = await trimmedStream("trimmed");
  const page = await h.newPage();
  await page.evaluate(([path, scoped]) => (globalThis.store = streams.openStream({ path, token: scoped, mirror: "memory", processors: [streams.eventFeed()] })), [p, await token(p, ["read", "append"])]);
  const { coreProcessorState } = await h.api("runtimeState", p);
  await waitSnapshot(page, (s, max) => s.status === "subscribed" && s.checkpoint >= max, coreProcessorState.maxOffset);
  const snap = await snapshot(page);
  assert.deepEqual(
    [snap.firstOffset, snap.subscribedAfterOffset, snap.localCount, snap.error],
    [first, first - 1, snap.checkpoint - first + 1, null],
    JSON.stringify(snap),
  );
  const appended = await page.evaluate(() => store.append({ type: "app/after" }));
  await waitSnapshot(page, (s, o) => s.checkpoint >= o, appended.offset);
  const local = (await page.evaluate(() => streams.rows(store, "SELECT json FROM events ORDER BY offset"))).map((r) => JSON.parse(r.json));
  const last = (await snapshot(page)).checkpoint;
  assert.deepEqual(local.map((e) => e.offset), Array.from({ length: last - first + 1 }, (_, i) => first + i), "from the first kept offset on, gap-free");
  // Retention goes on trimming as events are appended: the mirror keeps what it has, and what the stream still keeps is identical.
  const keptNow = (await h.api("runtimeState", p)).runtime.storage.firstOffset;
  const server = await h.api("getEvents", p, { afterOffset: keptNow - 1, limit: 1000 });
  assert.deepEqual(local.filter((e) => e.offset >= keptNow), server.filter((e) => e.offset <= last), "the same events as the stream");
  const feed = await page.evaluate(() => streams.rows(store, "SELECT first_offset FROM feed_items ORDER BY id LIMIT 1"));
  assert.equal(feed[0].first_offset, first, "processors start at the first kept offset");
  assertNoConsoleErrors(page);
  await page.close();
});
