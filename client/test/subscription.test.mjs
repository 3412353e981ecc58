// subscribe()'s bookkeeping over a fake transport, under fake timers: hand-out checkpoints,
// the continuity check, rewinding after a drop, reset detection, back-pressure, stopping.
import { test, mock, beforeEach, afterEach } from "node:test";
import assert from "node:assert/strict";
import { Subscription } from "../dist/index.js";

const TIMING = { backoffBaseMs: 100, backoffMaxMs: 1000, pingIntervalMs: 60_000, pongTimeoutMs: 60_000, connectTimeoutMs: 60_000 };
const TARGET = { namespace: "default", path: "/p" };

function fakeTransport() {
  const links = [];
  return {
    links,
    last: () => links[links.length - 1],
    call: async () => assert.fail("no calls expected"),
    dial(target, params, handlers) {
      const link = { target, params, handlers, closed: false, send() {}, close() { this.closed = true; } };
      links.push(link);
      return link;
    },
  };
}

const event = (offset) => ({ type: "app/x", offset, createdAt: "2026-01-01T00:00:00.000Z" });
function frame(afterOffset, throughOffset, offsets = [], { streamId = "life-1", connectionId = "c" } = {}) {
  return JSON.stringify({ type: "batch", subscriptionKey: "k", afterOffset, throughOffset, connectionId, streamId, events: offsets.map(event), streamMaxOffset: throughOffset, state: {} });
}

function subscribe(transport, options = {}) {
  return new Subscription(transport, TARGET, { subscriptionKey: "k", timing: TIMING, random: () => 1, ...options });
}

/** Resolves what next() has already settled to, or "pending". */
async function peek(promise) {
  return Promise.race([promise, new Promise((r) => setImmediate(() => r("pending")))]);
}

beforeEach(() => mock.timers.enable({ apis: ["setTimeout"] }));
afterEach(() => mock.timers.reset());

test("dials with the checkpoint and filter; hands batches out in order; the checkpoint moves on hand-out", async () => {
  const t = fakeTransport();
  const sub = subscribe(t, { afterOffset: 5, eventTypes: ["app/x"] });
  assert.deepEqual(t.last().params, { subscriptionKey: "k", replayAfterOffset: 5, eventTypes: ["app/x"] });
  t.last().handlers.open();
  t.last().handlers.message(frame(5, 8, [6, 8]));
  t.last().handlers.message(frame(8, 9, [9]));
  assert.equal(sub.checkpoint, 5, "nothing handed out yet");
  const first = await sub.next();
  assert.deepEqual(first.value.events.map((e) => e.offset), [6, 8]);
  assert.equal(sub.checkpoint, 8);
  assert.equal((await sub.next()).value.throughOffset, 9);
  assert.deepEqual([sub.checkpoint, sub.streamId], [9, "life-1"]);
  assert.equal(await peek(sub.next()), "pending");
  await sub.close();
});

test("a batch that breaks continuity is not handed out: the subscription resubscribes from its checkpoint", async () => {
  const t = fakeTransport();
  const sub = subscribe(t, { afterOffset: 0 });
  t.last().handlers.open();
  t.last().handlers.message(frame(0, 3, [1, 2, 3]));
  await sub.next();
  t.last().handlers.message(frame(5, 7, [6, 7])); // a gap: 4..5 missing
  assert.ok(t.links[0].closed, "the connection that skipped is dropped");
  assert.equal(sub.status().state, "backoff");
  assert.match(sub.status().reason, /continuity: expected afterOffset 3, got 5/);
  assert.equal(await peek(sub.next()), "pending", "nothing past the gap is handed out");
  mock.timers.tick(100);
  assert.equal(t.links[1].params.replayAfterOffset, 3);
  t.links[1].handlers.open();
  t.links[1].handlers.message(frame(1, 4, [2, 3, 4])); // an overlap is refused too
  assert.equal(sub.status().state, "backoff");
  mock.timers.tick(200);
  t.links[2].handlers.open();
  t.links[2].handlers.message(frame(3, 2, [])); // and a batch that ends before it starts
  assert.equal(sub.status().state, "backoff");
  assert.equal(await peek(sub.next()), "pending");
  await sub.close();
});

test("after a drop, batches received but not handed out are read again from the checkpoint", async () => {
  const t = fakeTransport();
  const sub = subscribe(t, { afterOffset: 0 });
  t.last().handlers.open();
  t.last().handlers.message(frame(0, 2, [1, 2]));
  t.last().handlers.message(frame(2, 4, [3, 4]));
  assert.equal((await sub.next()).value.throughOffset, 2);
  t.last().handlers.close({ code: 1006, reason: "" });
  mock.timers.tick(100);
  assert.equal(t.last().params.replayAfterOffset, 2, "resume from the last batch handed out, not the last received");
  t.last().handlers.open();
  t.last().handlers.message(frame(2, 4, [3, 4], { connectionId: "c2" }));
  const again = await sub.next();
  assert.deepEqual([again.value.connectionId, again.value.events.map((e) => e.offset)], ["c2", [3, 4]]);
  await sub.close();
});

test("frames and closes of a replaced socket are ignored", async () => {
  const t = fakeTransport();
  const sub = subscribe(t, { afterOffset: 0 });
  const old = t.last();
  old.handlers.open();
  old.handlers.close({ code: 1012, reason: "kill requested" });
  mock.timers.tick(100);
  const fresh = t.last();
  fresh.handlers.open();
  old.handlers.message(frame(0, 9, [9])); // late
  old.handlers.close({ code: 1006, reason: "late" });
  fresh.handlers.message(frame(0, 1, [1]));
  assert.deepEqual((await sub.next()).value.events.map((e) => e.offset), [1]);
  assert.equal(sub.status().state, "open");
  assert.equal(t.links.length, 2);
  await sub.close();
});

test("a new streamId: one reset item, then a new subscription from 0 at once (no back-off)", async () => {
  const t = fakeTransport();
  const sub = subscribe(t, { afterOffset: 0 });
  t.last().handlers.open();
  t.last().handlers.message(frame(0, 5, [1, 2, 3, 4, 5]));
  t.last().handlers.message(frame(5, 5, [], { streamId: "life-2" }));
  assert.ok(t.links[0].closed);
  assert.equal(t.links.length, 2, "redialled immediately");
  assert.equal(t.links[1].params.replayAfterOffset, 0);
  assert.equal(sub.status().attempt, 0, "a reset is not a failure");
  t.links[1].handlers.open();
  t.links[1].handlers.message(frame(0, 3, [1, 2, 3], { streamId: "life-2" }));
  // The first life's batch, received but not handed out when the reset was seen, is dropped:
  // that life is gone. The consumer gets the reset item, then the new life.
  assert.deepEqual((await sub.next()).value, { type: "reset", streamId: "life-2", previousStreamId: "life-1" });
  assert.equal(sub.checkpoint, 0);
  const next = (await sub.next()).value;
  assert.deepEqual([next.streamId, next.afterOffset, next.events.map((e) => e.offset)], ["life-2", 0, [1, 2, 3]]);
  await sub.close();
});

test("a drop before the reset item is handed out detects the reset again (one reset item)", async () => {
  const t = fakeTransport();
  const sub = subscribe(t, { afterOffset: 0 });
  t.last().handlers.open();
  t.last().handlers.message(frame(0, 2, [1, 2]));
  await sub.next();
  t.last().handlers.message(frame(2, 2, [], { streamId: "life-2" }));
  t.last().handlers.close({ code: 1006, reason: "" }); // the new connection drops: the queue is rewound
  mock.timers.tick(100);
  assert.equal(t.last().params.replayAfterOffset, 2, "back at the consumer's checkpoint");
  t.last().handlers.open();
  t.last().handlers.message(frame(2, 2, [], { streamId: "life-2" }));
  assert.equal(t.last().params.replayAfterOffset, 0);
  t.last().handlers.open();
  t.last().handlers.message(frame(0, 1, [1], { streamId: "life-2" }));
  const items = [(await sub.next()).value, (await sub.next()).value];
  assert.deepEqual(items.map((i) => i.type), ["reset", "batch"]);
  assert.equal(await peek(sub.next()), "pending", "exactly one reset item");
  await sub.close();
});

test("a checkpoint from another life (streamId option) is a reset on the first batch", async () => {
  const t = fakeTransport();
  const sub = subscribe(t, { afterOffset: 40, streamId: "life-1" });
  t.last().handlers.open();
  t.last().handlers.message(frame(40, 40, [], { streamId: "life-2" }));
  assert.equal(t.last().params.replayAfterOffset, 0);
  assert.deepEqual((await sub.next()).value, { type: "reset", streamId: "life-2", previousStreamId: "life-1" });
  await sub.close();
});

test("live tail: no replayAfterOffset; the first batch fixes the checkpoint", async () => {
  const t = fakeTransport();
  const sub = subscribe(t);
  assert.equal("replayAfterOffset" in t.last().params, false);
  t.last().handlers.open();
  t.last().handlers.message(frame(17, 17, []));
  await sub.next();
  assert.equal(sub.checkpoint, 17);
  t.last().handlers.close({ code: 1006, reason: "" });
  mock.timers.tick(100);
  assert.equal(t.last().params.replayAfterOffset, 17, "reconnects resume, not re-tail");
  await sub.close();
});

test("live tail: a drop before the first hand-out resumes from the first batch received, not the new tail", async () => {
  const t = fakeTransport();
  const sub = subscribe(t);
  t.last().handlers.open();
  t.last().handlers.message(frame(17, 19, [18, 19])); // received, not yet handed out
  t.last().handlers.close({ code: 1006, reason: "" });
  mock.timers.tick(100);
  assert.equal(t.last().params.replayAfterOffset, 17, "events 18 and 19 are read again");
  t.last().handlers.open();
  t.last().handlers.message(frame(17, 25, [18, 19, 25], { connectionId: "c2" }));
  assert.deepEqual((await sub.next()).value.events.map((e) => e.offset), [18, 19, 25]);
  assert.equal(sub.checkpoint, 25);
  await sub.close();
});

test("back-pressure: past maxBufferedBatches the socket is released, and reopened from the last batch once drained", async () => {
  const t = fakeTransport();
  const sub = subscribe(t, { afterOffset: 0, maxBufferedBatches: 2 });
  t.last().handlers.open();
  for (let i = 0; i < 3; i++) t.last().handlers.message(frame(i, i + 1, [i + 1]));
  assert.equal(sub.status().state, "suspended");
  assert.ok(t.links[0].closed);
  for (let i = 1; i <= 2; i++) assert.equal((await sub.next()).value.throughOffset, i);
  assert.equal(t.links.length, 1, "still suspended while items are queued");
  assert.equal((await sub.next()).value.throughOffset, 3);
  assert.equal(t.links.length, 2, "resumed once drained");
  assert.equal(t.links[1].params.replayAfterOffset, 3, "nothing received is read twice");
  await sub.close();
});

test("a frame that is not JSON drops the connection; other frame types are ignored", async () => {
  const t = fakeTransport();
  const sub = subscribe(t, { afterOffset: 0 });
  t.last().handlers.open();
  t.last().handlers.message('{"type":"hello"}');
  assert.equal(sub.status().state, "open");
  t.last().handlers.message("not json");
  assert.equal(sub.status().state, "backoff");
  await sub.close();
});

test("a fatal close ends iteration with its error; abort and return() end it cleanly", async () => {
  const t = fakeTransport();
  const sub = subscribe(t, { afterOffset: 0 });
  t.last().handlers.open();
  const pending = sub.next();
  const fatal = Object.assign(new Error("replaced"), { code: "subscription_replaced" });
  t.last().handlers.close({ code: 4001, reason: "replaced", fatal });
  await assert.rejects(pending, (e) => e === fatal);
  await assert.rejects(sub.next(), (e) => e === fatal);
  await assert.rejects(sub.done, (e) => e === fatal);

  const controller = new AbortController();
  const t2 = fakeTransport();
  const aborted = subscribe(t2, { signal: controller.signal });
  const waiting = aborted.next();
  controller.abort();
  assert.deepEqual(await waiting, { done: true, value: undefined });
  assert.ok(t2.last().closed);
  await aborted.done;
  mock.timers.tick(120_000);
  assert.equal(t2.links.length, 1, "nothing reconnects after abort");

  const preAborted = subscribe(fakeTransport(), { signal: AbortSignal.abort() });
  assert.equal(preAborted.status().state, "stopped");

  const t3 = fakeTransport();
  const returned = subscribe(t3);
  assert.deepEqual(await returned.return(), { done: true, value: undefined });
  assert.equal(returned.status().state, "stopped");
  assert.ok(t3.last().closed);
});
