// The browser's own EventSource against the SSE route (docs/protocol.md#server-sent-events): a scoped
// token in `access_token`, every batch once across a server-side close and the browser's automatic
// reconnect with Last-Event-ID, and a token that does not cover the stream refused before any event.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { startStreams, call, callService, uniqueName, splitName, originOf } from "./helpers/mf.mjs";
import { callAfterKill } from "./helpers/assertions.mjs";
import { launchBrowser, newPage } from "./helpers/browser.mjs";
import { signJwt, claims } from "./helpers/jwt.mjs";

const SECRET = "sse-browser-secret";
let mf;
let browser;
before(async () => {
  mf = await startStreams({ bindings: { STREAMS_JWT_SECRET: SECRET } });
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await mf?.dispose();
});

test("EventSource with a scoped token: every event once across a server-side close and the automatic resume", async () => {
  const name = uniqueName("sse");
  const { namespace, path } = splitName(name);
  await call(mf, name, "appendBatch", { events: Array.from({ length: 5 }, (_, i) => ({ type: "app/n", payload: i })) });
  const origin = await originOf(mf);
  const page = await newPage(browser);
  await page.goto(`${origin}/api/streams/listStreams`); // any page of the Worker's origin
  const token = signJwt(claims({ ns: namespace, paths: [path], ops: ["read"] }), SECRET);
  const query = new URLSearchParams({ namespace, path, replayAfterOffset: "0", eventTypes: "app/n", access_token: token });
  await page.evaluate((url) => {
    globalThis.received = { offsets: [], ids: [], closes: 0, opens: 0 };
    const source = new EventSource(url);
    source.onopen = () => received.opens++;
    source.onmessage = (message) => {
      const batch = JSON.parse(message.data);
      received.ids.push(message.lastEventId);
      received.offsets.push(...batch.events.map((e) => e.offset));
    };
    source.addEventListener("close", () => received.closes++);
    globalThis.source = source;
  }, `/api/streams/subscribe?${query}`);
  const waitFor = (fn, arg) => page.waitForFunction(fn, arg, { timeout: 20_000 });
  await waitFor(() => received.offsets.length === 5);
  await call(mf, name, "appendBatch", { events: Array.from({ length: 5 }, (_, i) => ({ type: "app/n", payload: 5 + i })) });
  await waitFor(() => received.offsets.length === 10);
  // Close from the server's side; events come while the browser is away.
  await call(mf, name, "kill");
  await waitFor(() => received.closes === 1);
  await callAfterKill(mf, name, "appendBatch", { events: Array.from({ length: 5 }, (_, i) => ({ type: "app/n", payload: 10 + i })) });
  await waitFor(() => received.offsets.length >= 15 && received.opens >= 2);
  await call(mf, name, "append", { event: { type: "app/n", payload: 15 } });
  await waitFor(() => received.offsets.length >= 16);
  const seen = await page.evaluate(() => received);
  const expected = (await call(mf, name, "getEvents", { eventTypes: ["app/n"] })).map((e) => e.offset);
  assert.deepEqual(seen.offsets, expected, "every event once, in order, across the reconnect");
  assert.ok(seen.ids.every((id) => /^\d+$/.test(id)), "each batch's id is its throughOffset");
  await page.evaluate(() => source.close());
});

test("EventSource with a token that does not cover the stream fails without an event", async () => {
  const name = uniqueName("sse");
  const { namespace, path } = splitName(name);
  await callService(mf, "append", { namespace, path, event: { type: "app/n" } });
  const page = await newPage(browser);
  await page.goto(`${await originOf(mf)}/api/streams/listStreams`);
  const token = signJwt(claims({ ns: namespace, paths: ["/elsewhere"], ops: ["read"] }), SECRET);
  const query = new URLSearchParams({ namespace, path, access_token: token });
  const outcome = await page.evaluate(
    (url) =>
      new Promise((resolve) => {
        const source = new EventSource(url);
        let messages = 0;
        source.onmessage = () => messages++;
        source.onerror = () => resolve({ state: source.readyState, messages });
      }),
    `/api/streams/subscribe?${query}`,
  );
  assert.deepEqual(outcome, { state: 2, messages: 0 }, "CLOSED: a refused stream is not retried");
});
