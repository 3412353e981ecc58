// The browser runtime against a Worker that requires credentials: a scoped token opens the mirror
// (header on HTTP, `access_token` on the socket), the admin token resets it, and a token that does
// not cover the stream stops the store with an error instead of retrying.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { mintToken } from "../client/dist/index.js";
import { ADMIN_TOKEN, assertNoConsoleErrors, expectConsoleError, snapshot, startRuntimeHarness, waitSnapshot } from "./helpers/browser.mjs";

const SECRET = "browser-access-test-secret";
let h;
before(async () => {
  h = await startRuntimeHarness({ bindings: { STREAMS_JWT_SECRET: SECRET }, apiToken: ADMIN_TOKEN });
});
after(async () => {
  await h?.close();
});

const token = (paths, ops = ["read", "append"]) => mintToken({ secret: SECRET, ns: "default", paths, ops, ttlSeconds: 600 });

test("a scoped token opens the mirror; the admin token (header only) resets it", async () => {
  const page = await h.newPage();
  const sockets = [];
  page.on("websocket", (ws) => sockets.push(new URL(ws.url())));
  const p = `/secure/app-${Date.now().toString(36)}`;
  await page.evaluate(([path, t, admin]) => (globalThis.store = streams.openStream({ path, token: t, adminToken: admin })), [p, await token(["/secure/**"]), ADMIN_TOKEN]);
  await waitSnapshot(page, (s) => s.status === "subscribed");
  assert.ok(sockets[0].searchParams.get("access_token"), "the socket carries the scoped token");
  assert.notEqual(sockets[0].searchParams.get("access_token"), ADMIN_TOKEN, "never the admin token");
  const ev = await page.evaluate(() => store.append({ type: "app/secure" }));
  await waitSnapshot(page, (s, o) => s.checkpoint >= o, ev.offset);
  const before = await snapshot(page);
  await page.evaluate(() => store.reset());
  await waitSnapshot(page, (s, id) => s.status === "subscribed" && s.streamId !== null && s.streamId !== id && s.clearVersion === 1, before.streamId);
  const server = await h.allEvents(p);
  await waitSnapshot(page, (s, n) => s.checkpoint >= n, server.at(-1).offset);
  const local = await page.evaluate(() => streams.rows(store, "SELECT offset FROM events ORDER BY offset"));
  assert.deepEqual(local.map((r) => r.offset), server.map((e) => e.offset));
  assert.ok(!server.some((e) => e.type === "app/secure"), "the old life is gone on the server");
  expectConsoleError(page, /WebSocket connection to .* failed/, { repeated: true }); // the sockets reset closed
  assertNoConsoleErrors(page);
  await page.close();
});

test("a token that does not cover the stream stops the store with the server's error, without retrying", async () => {
  const page = await h.newPage();
  const sockets = [];
  page.on("websocket", (ws) => sockets.push(ws.url()));
  const requests = [];
  page.on("request", (r) => r.url().includes("/api/") && requests.push(r.url()));
  // The page's clock is ours to run: a retry is a timer (the back-off is at most 30 s).
  await page.clock.install();
  const p = `/secure/other-${Date.now().toString(36)}`;
  await page.evaluate(
    ([path, t]) => {
      globalThis.store = streams.openStream({ path, token: t });
      globalThis.statuses = [];
      store.subscribe(() => statuses.push(store.getSnapshot().status));
    },
    [p, await token(["/elsewhere/**"])],
  );
  await waitSnapshot(page, (s) => s.status === "error");
  assert.match((await snapshot(page)).error, /token does not cover path/);
  // Instead of a sleep: every timer the page holds fires over a minute of its time. A retry would
  // leave "error" as its timer fires (the store reports "reconnecting" at once).
  const seen = await page.evaluate(() => statuses.length);
  await page.clock.runFor(60_000);
  assert.deepEqual(await page.evaluate((n) => statuses.slice(n).filter((s) => s !== "error"), seen), [], "no status after the error");
  assert.equal((await snapshot(page)).status, "error");
  assert.equal(sockets.length, 0, "no socket was opened");
  assert.equal(requests.length, 1, `one refused call, no retries: ${requests.join(", ")}`);
  await page.close();
});
