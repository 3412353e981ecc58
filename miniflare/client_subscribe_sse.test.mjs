// subscribe({transport: "sse"}) against the real Worker (docs/client.md#server-sent-events): Node's
// own fetch, no WebSocket. Every matching event once, in order, across server-side closes (kill),
// connections cut from the far end and a reset; scoped tokens in the query or the header, a token
// function asked again on each reconnect; refusals end the subscription with the server's error.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createStreamsClient, mintToken } from "../client/dist/index.js";
import { startProxiedClientStreams, viaBinding, uniquePath, until, assertAbortLeavesNothing, ADMIN_TOKEN, API_TOKEN } from "./helpers/client_sdk.mjs";
import { sleep } from "./helpers/reliability.mjs";

const FAST = { backoffBaseMs: 50, backoffMaxMs: 300, connectTimeoutMs: 3000 };
const SECRET = "client-sse-jwt-secret-0123456789abcdef";

let mf;
let url;
let proxy;
let writer;

before(async () => {
  ({ mf, url, proxy } = await startProxiedClientStreams({ bindings: { STREAMS_JWT_SECRET: SECRET } }));
  // No WebSocket constructor anywhere in this file: Node 20 has none, SSE needs none.
  writer = createStreamsClient({ baseUrl: url, token: ADMIN_TOKEN });
});

after(async () => {
  await proxy?.close();
  await mf?.dispose();
});

/** Drains a subscription until `stopWhen(state)`. */
function consume(sub, stopWhen) {
  const state = { items: [], batches: [], events: [], error: undefined };
  state.done = (async () => {
    try {
      for await (const item of sub) {
        state.items.push(item);
        if (item.type === "batch") {
          state.batches.push(item);
          state.events.push(...item.events);
        }
        if (stopWhen(state)) break;
      }
    } catch (e) {
      state.error = e;
    }
  })();
  return state;
}

function assertChained(batches, from) {
  let at = from;
  for (const [i, b] of batches.entries()) {
    assert.equal(b.afterOffset, at, `batch ${i} afterOffset`);
    at = b.throughOffset;
  }
}

test("every matching event once, in order, across kills (the stream's close event) and cut connections while events are appended", async (t) => {
  const p = uniquePath("sse-chaos");
  await writer.append(p, { type: "app/start" });
  const statuses = [];
  const sub = createStreamsClient({ baseUrl: proxy.url, token: ADMIN_TOKEN }).subscribe(p, {
    transport: "sse",
    afterOffset: 0,
    eventTypes: ["app/w"],
    timing: FAST,
    onStatus: (s) => statuses.push(s),
  });
  t.after(() => sub.close());
  const faults = ["kill", "cut", "kill", "cut", "kill", "cut"];
  const TOTAL = (faults.length + 1) * 50;
  const seen = consume(sub, (s) => s.events.length >= TOTAL);
  let written = 0;
  const write50 = async () => {
    for (let i = 0; i < 5; i++) {
      const group = Array.from({ length: 10 }, (_, j) => [{ type: "app/w", payload: { i: written + j } }, { type: "app/noise" }]).flat();
      await writer.appendBatch(p, group);
      written += 10;
    }
  };
  let lastFaulted;
  for (const fault of faults) {
    await write50();
    // Each fault hits a connection that has delivered.
    await until(() => sub.status().state === "open" && seen.batches.at(-1)?.connectionId !== lastFaulted && seen.events.length > 0, () => `a delivering connection before ${fault}: ${JSON.stringify(sub.status())}`);
    lastFaulted = seen.batches.at(-1).connectionId;
    if (fault === "kill") await writer.kill(p);
    else assert.ok(proxy.cut() >= 1, "a connection to cut");
  }
  await write50();
  await Promise.race([seen.done, sleep(30_000)]);
  assert.equal(seen.error, undefined, String(seen.error));
  const log = [];
  for await (const e of writer.events(p, { pageSize: 1000 })) if (e.type === "app/w") log.push(e);
  assert.equal(log.length, TOTAL);
  assert.deepEqual(seen.events.map((e) => e.offset), log.map((e) => e.offset), "exactly the log's matching events, in order");
  assert.deepEqual(seen.events.map((e) => e.payload.i), Array.from({ length: TOTAL }, (_, i) => i));
  assertChained(seen.batches, 0);
  const connections = new Set(seen.batches.map((b) => b.connectionId));
  assert.ok(connections.size >= faults.length + 1, `a new connection after each fault: ${connections.size}`);
  const closes = statuses.filter((s) => s.state === "backoff").map((s) => s.reason);
  assert.ok(closes.some((r) => /closed with 1012/.test(r)), `the stream's close event was seen: ${closes.join("; ")}`);
});

test("a reset mid-subscription: one reset item, then the new life from offset 1", async (t) => {
  const p = uniquePath("sse-reset");
  await writer.appendBatch(p, [{ type: "app/a" }, { type: "app/b" }]);
  const before = (await writer.runtimeState(p)).coreProcessorState.streamId;
  const sub = writer.subscribe(p, { transport: "sse", afterOffset: 0, timing: FAST });
  t.after(() => sub.close());
  const seen = consume(sub, (s) => s.items.some((x) => x.type === "reset") && s.events.some((e) => e.type === "app/after"));
  await until(() => seen.events.some((e) => e.type === "app/b"), "the first life delivered");
  await writer.reset(p);
  await writer.append(p, { type: "app/after" });
  await Promise.race([seen.done, sleep(20_000)]);
  assert.equal(seen.error, undefined, String(seen.error));
  const at = seen.items.findIndex((x) => x.type === "reset");
  assert.equal(seen.items[at].previousStreamId, before);
  const newLife = seen.items.slice(at + 1).flatMap((b) => b.events);
  assert.equal(newLife[0].offset, 1);
  assert.ok(newLife.some((e) => e.type === "app/after"));
});

test("scoped tokens: in the query (as in browsers) or the header; a token function is asked again at each reconnect", async (t) => {
  const p = uniquePath("sse-jwt");
  await writer.append(p, { type: "app/x" });
  const token = await mintToken({ secret: SECRET, ns: "default", paths: [p], ops: ["read"], ttlSeconds: 60, sub: "reader" });
  for (const tokenInQuery of [true, false]) {
    const sub = createStreamsClient({ baseUrl: url, token, tokenInQuery }).subscribe(p, { transport: "sse", afterOffset: 0, eventTypes: ["app/x"], timing: FAST });
    const first = await sub.next();
    assert.deepEqual(first.value.events.map((e) => e.type), ["app/x"], `tokenInQuery ${tokenInQuery}`);
    await sub.close();
  }
  let asked = 0;
  const client = createStreamsClient({ baseUrl: url, tokenInQuery: true, token: () => (asked++, token) });
  const sub = client.subscribe(p, { transport: "sse", afterOffset: 0, eventTypes: ["app/x"], timing: FAST });
  t.after(() => sub.close());
  const seen = consume(sub, (s) => s.events.length >= 3);
  await until(() => seen.events.length === 1, "first event");
  const before = asked;
  await writer.kill(p);
  await writer.append(p, { type: "app/x" });
  await until(() => seen.events.length === 2, "second event after the reconnect");
  assert.ok(asked > before, `the token function was asked again (${before} → ${asked})`);
  await writer.append(p, { type: "app/x" });
  await Promise.race([seen.done, sleep(10_000)]);
  assert.equal(seen.error, undefined, String(seen.error));
  assert.deepEqual(seen.events.map((e) => e.offset), [...new Set(seen.events.map((e) => e.offset))], "no duplicates");

  const elsewhere = createStreamsClient({ baseUrl: url, token, tokenInQuery: true }).subscribe("/not-in-scope", { transport: "sse", timing: FAST });
  await assert.rejects(elsewhere.next(), (e) => e.code === "forbidden" && e.status === 403 && e.message === 'token does not cover path "/not-in-scope"');
});

test("refusals end the subscription with the server's code and message, without a retry", async () => {
  const cases = [
    [createStreamsClient({ baseUrl: url, token: ADMIN_TOKEN }), "no-slash", "invalid_path", 400],
    [createStreamsClient({ baseUrl: url, token: "wrong" }), "/x", "unauthorized", 401],
  ];
  for (const [client, p, code, status] of cases) {
    const states = [];
    const sub = client.subscribe(p, { transport: "sse", timing: FAST, onStatus: (s) => states.push(s.state) });
    await assert.rejects(sub.next(), (e) => e.name === "StreamError" && e.code === code && e.status === status && e.message.length > 0);
    assert.ok(!states.includes("backoff"), `${code}: not retried (${states.join(",")})`);
  }
  const viaWorker = await viaBinding(mf).subscribe({ path: "no-slash", token: API_TOKEN, options: { transport: "sse" }, untilEvents: 1 });
  assert.deepEqual([viaWorker.ok, viaWorker.error?.code, viaWorker.error?.isStreamError], [false, "invalid_path", true]);
});

test("over a service binding, inside a Worker: replay, live appends, filter, continuity", async () => {
  const p = uniquePath("sse-bind");
  await writer.appendBatch(p, [{ type: "app/x", payload: { i: 0 } }, { type: "app/y" }]);
  const r = await viaBinding(mf).subscribe({
    path: p,
    token: API_TOKEN,
    options: { transport: "sse", afterOffset: 0, eventTypes: ["app/x"] },
    append: [1, 2].flatMap((i) => [{ type: "app/y" }, { type: "app/x", payload: { i } }]),
    untilEvents: 3,
  });
  assert.equal(r.ok, true, JSON.stringify(r.error));
  const batches = r.result.items.filter((x) => x.type === "batch");
  assert.deepEqual(batches.flatMap((b) => b.events.map((e) => e.payload.i)), [0, 1, 2]);
  assertChained(batches, 0);
});

test("abort, return() and close() leave nothing behind over SSE: the process exits by itself", async () => {
  await assertAbortLeavesNothing(url, ADMIN_TOKEN, "sse");
});
