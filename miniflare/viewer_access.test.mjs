// The viewer page when the API needs a token: it asks for one, keeps it in session storage (never
// in the URL), says which operations it allows, and works with a scoped token on HTTP and on the
// WebSocket.
import { after, afterEach, before, test } from "node:test";
import assert from "node:assert/strict";
import { mintToken } from "@streams/client";
import { expectConsoleError } from "./helpers/browser.mjs";
import { FIRST_EVENT, FRESH_COUNT, fetchesTo, freshPath, recordFetches, startViewer, waitForMatch, waitForText } from "./helpers/viewer.mjs";

const JWT_SECRET = "viewer-access-test-secret";
const API_TOKEN = "viewer-access-test-master";

let v;
before(async () => {
  v = await startViewer({ bindings: { STREAMS_API_TOKEN: API_TOKEN, STREAMS_JWT_SECRET: JWT_SECRET } });
});
afterEach(() => v.closePages());
after(() => v?.stop());

/** Refused requests before a token is given: Chromium logs each refused fetch and socket. */
function expectRefusals(page) {
  expectConsoleError(page, /Failed to load resource: .* 401/, { repeated: true });
  expectConsoleError(page, /WebSocket connection to .* failed/, { repeated: true });
}

/** Saves the typed token; the page reloads with it. Listens before clicking: the reload may finish before click() returns. */
async function saveTokenAndReload(page) {
  await Promise.all([page.waitForEvent("load"), page.getByTestId("token-save").click()]);
}

test("a 401 makes the page ask for a token; a scoped token is kept in session storage and used on HTTP and the socket", async () => {
  const p = freshPath();
  const token = await mintToken({ secret: JWT_SECRET, ns: "default", paths: [p], ops: ["read", "append"], ttlSeconds: 600 });
  await v.api(p, "append", { event: FIRST_EVENT }, { token: API_TOKEN });
  const page = await v.open(`/?${new URLSearchParams({ path: p })}`, { beforeGoto: expectRefusals });
  await page.getByTestId("token-prompt").waitFor();
  assert.match(await page.getByTestId("token-prompt").textContent(), /needs an access token/);

  await page.getByTestId("token-input").fill(token);
  await saveTokenAndReload(page);
  await waitForText(page, "stream-status", "subscribed");
  await waitForText(page, "event-count", FRESH_COUNT);
  assert.equal(await page.getByTestId("token-prompt").count(), 0);
  assert.match(await page.getByTestId("token-allows").textContent(), /read events, state and live updates; append/);
  assert.ok(!page.url().includes(token), "the token is not in the URL");
  assert.equal(await page.evaluate(() => sessionStorage.getItem("streams-viewer:api-token")), token);

  await page.getByTestId("composer-textarea").fill(JSON.stringify({ type: "app/with-token" }));
  await page.getByTestId("composer-append").click();
  await page.waitForSelector('[data-event-type="app/with-token"]');
  const server = await v.serverEvents(p, { token: API_TOKEN });
  assert.deepEqual(server.map((e) => e.type).slice(-1), ["app/with-token"]);
});

test("a read-only token: the page says so, and an append is refused with forbidden", async () => {
  const p = freshPath();
  const token = await mintToken({ secret: JWT_SECRET, ns: "default", paths: [`${p}/**`], ops: ["read"], ttlSeconds: 600 });
  await v.api(p, "append", { event: FIRST_EVENT }, { token: API_TOKEN });
  const page = await v.open(`/?${new URLSearchParams({ path: p })}`, { beforeGoto: expectRefusals });
  await page.getByTestId("token-input").fill(token);
  await saveTokenAndReload(page);
  await waitForText(page, "event-count", FRESH_COUNT);
  assert.equal((await page.getByTestId("token-allows").textContent()).trim(), "Allows: read events, state and live updates.");

  expectConsoleError(page, /Failed to load resource: .* 403/);
  await page.getByTestId("composer-textarea").fill(JSON.stringify({ type: "app/refused" }));
  await page.getByTestId("composer-append").click();
  await waitForMatch(page, "composer-state", /^error: forbidden: /);
  assert.equal((await v.serverEvents(p, { token: API_TOKEN })).length, Number(FRESH_COUNT), "nothing written");
});

test("the configure op: the page says what it allows, pause works with it and is refused without it", async () => {
  const p = freshPath();
  await v.api(p, "append", { event: FIRST_EVENT }, { token: API_TOKEN });
  const withConfigure = await mintToken({ secret: JWT_SECRET, ns: "default", paths: [p], ops: ["read", "append", "configure"], ttlSeconds: 600 });
  const page = await v.open(`/?${new URLSearchParams({ path: p })}`, { beforeGoto: expectRefusals });
  await page.getByTestId("token-input").fill(withConfigure);
  await saveTokenAndReload(page);
  await waitForText(page, "stream-gate-status", "Active");
  assert.equal(
    (await page.getByTestId("token-allows").textContent()).trim(),
    "Allows: read events, state and live updates; append (composer, load tool); configure (pause/resume, breaker).",
  );
  await page.getByTestId("stream-pause-button").click();
  await waitForText(page, "stream-gate-status", "Paused");
  await page.getByTestId("stream-resume-button").click();
  await waitForText(page, "stream-gate-status", "Active");

  const withoutConfigure = await mintToken({ secret: JWT_SECRET, ns: "default", paths: [p], ops: ["read", "append"], ttlSeconds: 600 });
  await Promise.all([page.waitForEvent("load"), page.getByText("Forget token").click()]);
  await page.getByTestId("token-input").fill(withoutConfigure);
  await saveTokenAndReload(page);
  await waitForText(page, "stream-gate-status", "Active");
  assert.doesNotMatch(await page.getByTestId("token-allows").textContent(), /configure/);
  expectConsoleError(page, /Failed to load resource: .* 403/);
  await page.getByTestId("stream-pause-button").click();
  await waitForMatch(page, "stream-control-error", /^forbidden: .*configure/);
  await waitForText(page, "stream-gate-status", "Active");
});

test("a token that does not cover the path: the page shows the refusal and stops asking", async () => {
  const p = freshPath();
  await v.api(p, "append", { event: FIRST_EVENT }, { token: API_TOKEN });
  const elsewhere = await mintToken({ secret: JWT_SECRET, ns: "default", paths: ["/elsewhere/**"], ops: ["read"], ttlSeconds: 600 });
  // The page's clock is ours to run (a retry would be a timer), and its fetches are recorded.
  const page = await v.open(`/?${new URLSearchParams({ path: p })}`, {
    beforeGoto: async (pg) => {
      expectRefusals(pg);
      await recordFetches(pg);
      await pg.clock.install();
    },
  });
  await page.getByTestId("token-input").fill(elsewhere);
  expectConsoleError(page, /Failed to load resource: .* 403/, { repeated: true });
  await saveTokenAndReload(page);
  await page.getByTestId("stream-refused").waitFor();
  assert.match(await page.getByTestId("stream-refused").textContent(), /forbidden: /);
  await waitForText(page, "header-status", "refused");
  // Instead of a sleep: every timer the page holds fires over a minute of its time; a poll calls
  // fetch as its timer fires, so any retry is recorded by the time this returns.
  await page.clock.runFor(60_000);
  assert.equal((await fetchesTo(page, "/api/streams/runtimeState")).length, 1, "one refused runtimeState since the reload, no retries");
  assert.equal(await page.getByTestId("stream-status").count(), 0, "no socket opened");
});
