// Server-Sent Events on GET /api/streams/subscribe (docs/protocol.md#server-sent-events): the same
// batch frames as the WebSocket, `id:` = throughOffset, continuity across a server-side close and a
// Last-Event-ID resume, tokens in the query, and the refusals answered before any event.
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import { startStreams, call, uniqueName, splitName } from "./helpers/mf.mjs";
import { S, callAfterKill } from "./helpers/assertions.mjs";
import { signJwt, claims } from "./helpers/jwt.mjs";

const SECRET = "sse-test-secret";
const MASTER = "sse-master";
let mf;
before(async () => {
  mf = await startStreams({ bindings: { STREAMS_JWT_SECRET: SECRET, STREAMS_API_TOKEN: MASTER } });
});
after(async () => {
  await mf?.dispose();
});

function subscribeUrl(name, params = {}) {
  const { namespace, path } = splitName(name);
  return `http://localhost/api/streams/subscribe?${new URLSearchParams({ namespace, path, ...params })}`;
}

/** Opens an event stream; `next()` resolves to the next event `{id, event, data, comments}` or null at the end. */
async function openEvents(url, headers = { authorization: `Bearer ${MASTER}` }) {
  const res = await mf.dispatchFetch(url, { headers: { accept: "text/event-stream", ...headers } });
  if (res.status !== 200) return { res, body: await res.json() };
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  async function next() {
    for (;;) {
      const end = buffer.indexOf("\n\n");
      if (end >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = { data: "", comments: [] };
        for (const line of block.split("\n")) {
          const colon = line.indexOf(":");
          const [field, value] = colon === 0 ? ["", line.slice(1).trim()] : [line.slice(0, colon), line.slice(colon + 1).replace(/^ /, "")];
          if (field === "") event.comments.push(value);
          else if (field === "data") event.data += value;
          else event[field] = value;
        }
        if (event.data === "" && !event.event) continue; // retry: and comments only
        return event;
      }
      const { value, done } = await reader.read();
      if (done) return null;
      buffer += decoder.decode(value, { stream: true });
    }
  }
  return { res, next, cancel: () => reader.cancel() };
}

test("an event stream carries the WebSocket's batch frames, one data: each, id: = throughOffset", async () => {
  const name = uniqueName();
  await call(mf, name, "append", { event: { type: "app/first" } });
  const stream = await openEvents(subscribeUrl(name, { replayAfterOffset: "0", subscriptionKey: "sse-1" }));
  assert.equal(stream.res.headers.get("content-type"), "text/event-stream");
  const first = await stream.next();
  const batch = JSON.parse(first.data);
  assert.equal(batch.type, "batch");
  assert.equal(first.id, String(batch.throughOffset));
  assert.equal(batch.subscriptionKey, "sse-1");
  assert.deepEqual(batch.events.map((e) => e.type).slice(0, 3), [S("created"), S("woken"), "app/first"]);
  await call(mf, name, "append", { event: { type: "app/live" } });
  let live;
  while (!live) {
    const event = JSON.parse((await stream.next()).data);
    live = event.events.find((e) => e.type === "app/live");
  }
  await stream.cancel();
});

test("continuity: every event exactly once across a server-side close and a Last-Event-ID resume", async () => {
  const name = uniqueName();
  const seen = [];
  let lastId;
  const take = async (stream) => {
    for (;;) {
      const event = await stream.next();
      if (event === null) return null;
      if (event.event === "close") return JSON.parse(event.data);
      const batch = JSON.parse(event.data);
      if (lastId !== undefined) assert.equal(batch.afterOffset, Number(lastId), "each batch continues where the last ended");
      seen.push(...batch.events.map((e) => e.offset));
      lastId = event.id;
      if (batch.events.some((e) => e.type === "app/stop")) return "stop";
    }
  };
  await call(mf, name, "appendBatch", { events: Array.from({ length: 150 }, (_, i) => ({ type: "app/n", payload: i })) });
  const first = await openEvents(subscribeUrl(name, { replayAfterOffset: "0", eventTypes: "app/n,app/stop" }));
  // Read until the replay is done, then close the stream from the server side.
  while (seen.length < 150) {
    const event = await first.next();
    const batch = JSON.parse(event.data);
    seen.push(...batch.events.map((e) => e.offset));
    lastId = event.id;
  }
  await call(mf, name, "kill");
  const closed = await take(first);
  assert.equal(closed.code, 1012, "the server's close arrives as a close event");
  assert.equal(await first.next(), null, "and the body ends");
  // Events committed while no one listens.
  await callAfterKill(mf, name, "appendBatch", { events: Array.from({ length: 30 }, (_, i) => ({ type: "app/n", payload: 150 + i })) });
  // The browser reconnects with the last id; it wins over the URL's replayAfterOffset.
  const second = await openEvents(subscribeUrl(name, { replayAfterOffset: "0", eventTypes: "app/n,app/stop" }), {
    authorization: `Bearer ${MASTER}`,
    "last-event-id": lastId,
  });
  await call(mf, name, "append", { event: { type: "app/stop" } });
  assert.equal(await take(second), "stop");
  await second.cancel();
  const log = await call(mf, name, "getEvents", { limit: 1000, eventTypes: ["app/n", "app/stop"] });
  assert.deepEqual(seen, log.map((e) => e.offset), "every event once, in order");
  assert.equal(seen.length, 181);
});

test("tokens as for the WebSocket: access_token in the query, scoped; refusals come before any event", async () => {
  const name = uniqueName();
  const { namespace, path } = splitName(name);
  await call(mf, name, "append", { event: { type: "app/x" } });
  const token = (paths, ops = ["read"]) => signJwt(claims({ ns: namespace, paths, ops }), SECRET);
  const ok = await openEvents(subscribeUrl(name, { access_token: token([path]) }), {});
  assert.equal(ok.res.status, 200);
  assert.equal(JSON.parse((await ok.next()).data).type, "batch");
  await ok.cancel();
  const elsewhere = await openEvents(subscribeUrl(name, { access_token: token(["/other"]) }), {});
  assert.deepEqual([elsewhere.res.status, elsewhere.body.error.code], [403, "forbidden"]);
  const appendOnly = await openEvents(subscribeUrl(name, { access_token: token([path], ["append"]) }), {});
  assert.deepEqual([appendOnly.res.status, appendOnly.body.error.message], [403, "token does not allow read"]);
  const none = await openEvents(subscribeUrl(name), {});
  assert.equal(none.res.status, 401);
  const badId = await openEvents(subscribeUrl(name), { authorization: `Bearer ${MASTER}`, "last-event-id": "soon" });
  assert.deepEqual([badId.res.status, badId.body.error.message], [400, "Last-Event-ID must be a non-negative integer (a batch's throughOffset)"]);
  const badQuery = await openEvents(subscribeUrl(name, { replayAfterOffset: "x" }));
  assert.deepEqual([badQuery.res.status, badQuery.body.error.message], [400, "replayAfterOffset must be a non-negative integer"]);
  const plain = await mf.dispatchFetch(subscribeUrl(name), { headers: { authorization: `Bearer ${MASTER}` } });
  assert.deepEqual([plain.status, (await plain.json()).error.message], [400, "expected a WebSocket upgrade"]);
});
