// Pause gate and the inline circuit breaker over DO JS-RPC
// (docs/protocol.md#pause-gate, #circuit-breaker).
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import { startStreams, call, tryCall, callMany, uniqueName } from "./helpers/mf.mjs";
import {
  S,
  TRIP_REASON,
  assertError,
  expectError,
  readAll,
  coreState,
  snapshot,
  assertUnchanged,
  assertContiguous,
  breakerConfig,
  spend,
  initialState,
} from "./helpers/assertions.mjs";

const PAUSED_MSG = `stream paused: ${TRIP_REASON}`;

let mf;
before(async () => {
  mf = await startStreams();
});
after(async () => {
  await mf?.dispose();
});

const widget = (i) => ({ type: "app/widget", payload: { i } });
const pausedEvents = (events) => events.filter((e) => e.type === S("paused"));

test("paused `maintenance` → append → stream_paused: stream paused: maintenance; error-occurred passes", async () => {
  const name = uniqueName();
  const p = await call(mf, name, "append", { event: { type: S("paused"), payload: { reason: "maintenance" } } });
  const st = await coreState(mf, name);
  assert.equal(st.paused, true);
  assert.equal(st.pauseReason, "maintenance");
  const snap = await snapshot(mf, name);

  await expectError(mf, name, "append", { event: widget(1) }, "stream_paused", "stream paused: maintenance");
  await expectError(mf, name, "appendBatch", { events: [widget(1), widget(2)] }, "stream_paused", "stream paused: maintenance");
  // A second S/paused and other core types are gated too.
  await expectError(mf, name, "append", { event: { type: S("paused"), payload: { reason: "again" } } }, "stream_paused", "stream paused: maintenance");
  await expectError(mf, name, "append", { event: { type: S("metadata-updated"), payload: { metadata: {} } } }, "stream_paused", "stream paused: maintenance");
  await expectError(mf, name, "append", { event: breakerConfig(5, 5) }, "stream_paused", "stream paused: maintenance");
  await expectError(mf, name, "append", { event: { type: S("child-stream-created"), payload: { childPath: "/x" } } }, "stream_paused", "stream paused: maintenance");
  await assertUnchanged(mf, name, snap);

  const err = await call(mf, name, "append", { event: { type: S("error-occurred"), payload: { message: "still logging" } } });
  assert.equal(err.offset, p.offset + 1);
  assert.equal((await coreState(mf, name)).paused, true);
});

test("paused {} → stream paused: unknown reason; the reason is used trimmed but stored as sent", async () => {
  const name = uniqueName();
  await call(mf, name, "append", { event: { type: S("paused"), payload: {} } });
  assert.equal((await coreState(mf, name)).pauseReason, null);
  await expectError(mf, name, "append", { event: widget(1) }, "stream_paused", "stream paused: unknown reason");

  await call(mf, name, "append", { event: { type: S("resumed"), payload: {} } });
  const p = await call(mf, name, "append", { event: { type: S("paused"), payload: { reason: "  maintenance\t" } } });
  assert.deepEqual(p.payload, { reason: "  maintenance\t" }, "stored exactly as sent");
  assert.equal((await coreState(mf, name)).pauseReason, "maintenance");
  await expectError(mf, name, "append", { event: widget(2) }, "stream_paused", "stream paused: maintenance");
});

test("S/resumed clears the pause; ordinary appends flow again", async () => {
  const name = uniqueName();
  await call(mf, name, "append", { event: { type: S("paused"), payload: { reason: "maintenance" } } });
  const r = await call(mf, name, "append", { event: { type: S("resumed"), payload: { reason: "done" } } });
  assert.equal(r.type, S("resumed"));
  const st = await coreState(mf, name);
  assert.equal(st.paused, false);
  assert.equal(st.pauseReason, null);
  const w = await call(mf, name, "append", { event: widget(1) });
  assert.equal(w.offset, r.offset + 1);
  // Resuming a running stream is allowed too.
  await call(mf, name, "append", { event: { type: S("resumed") , payload: {} } });
  assert.equal((await coreState(mf, name)).paused, false);
});

test("paused: [resumed, x] passes; running: [paused, x] is rejected as a whole", async () => {
  const name = uniqueName();
  await call(mf, name, "append", { event: { type: S("paused"), payload: { reason: "m" } } });
  const res = await call(mf, name, "appendBatch", { events: [{ type: S("resumed"), payload: {} }, widget(1)] });
  assert.deepEqual(res.map((e) => e.type), [S("resumed"), "app/widget"]);
  assert.equal(res[1].offset, res[0].offset + 1);
  assert.equal((await coreState(mf, name)).paused, false);

  const snap = await snapshot(mf, name);
  await expectError(mf, name, "appendBatch", { events: [{ type: S("paused"), payload: { reason: "r" } }, widget(2)] }, "stream_paused", "stream paused: r");
  await expectError(mf, name, "appendBatch", { events: [widget(3), { type: S("paused"), payload: {} }, widget(4)] }, "stream_paused", "stream paused: unknown reason");
  await assertUnchanged(mf, name, snap, "nothing of the rejected batches persisted");
  assert.equal(snap.state.paused, false);

  // [paused, error-occurred] passes: error-occurred is allowed through the gate.
  const ok = await call(mf, name, "appendBatch", { events: [{ type: S("paused"), payload: { reason: "r2" } }, { type: S("error-occurred"), payload: { message: "m" } }] });
  assert.equal(ok.length, 2);
  assert.equal((await coreState(mf, name)).pauseReason, "r2");
});

test("paused: a known idempotency key returns the existing event", async () => {
  const name = uniqueName();
  const known = await call(mf, name, "append", { event: { type: "app/k", payload: { v: 1 }, idempotencyKey: "known" } });
  await call(mf, name, "append", { event: { type: S("paused"), payload: { reason: "maintenance" } } });
  const snap = await snapshot(mf, name);
  assert.deepEqual(await call(mf, name, "append", { event: { type: "app/k", payload: { v: 2 }, idempotencyKey: "known" } }), known);
  assert.deepEqual(await call(mf, name, "append", { event: { type: "app/k", idempotencyKey: "known", offset: known.offset } }), known);
  assert.deepEqual(await call(mf, name, "appendBatch", { events: [{ type: "x", idempotencyKey: " known " }, { type: "y", idempotencyKey: "known" }] }), [known, known]);
  await assertUnchanged(mf, name, snap);
  // A conflicting offset is still a conflict, not a pause; a new key is gated.
  await expectError(mf, name, "append", { event: { type: "app/k", idempotencyKey: "known", offset: known.offset + 1 } }, "idempotency_conflict", `idempotency hit at offset ${known.offset}, got ${known.offset + 1}`);
  await expectError(mf, name, "append", { event: { type: "app/k", idempotencyKey: "new" } }, "stream_paused", "stream paused: maintenance");
  await expectError(mf, name, "appendBatch", { events: [{ type: "app/k", idempotencyKey: "known" }, { type: "app/k", idempotencyKey: "new" }] }, "stream_paused", "stream paused: maintenance");
  await assertUnchanged(mf, name, snap);
});

test("the documented live trip: 3 widgets commit, then paused keyed stream-paused:<2nd offset>; the next widget → stream_paused", async () => {
  const name = uniqueName();
  const cfg = await call(mf, name, "append", { event: breakerConfig(1, 1) });
  assert.equal(cfg.offset, 3);
  let st = await coreState(mf, name);
  assert.deepEqual(st.config.circuitBreaker, { burstCapacity: 1, refillRatePerMinute: 1 });
  assert.deepEqual(st.circuitBreaker, { availableTokens: 1, lastRefillAtMs: Date.parse(cfg.createdAt), burstCapacity: 1, refillRatePerMinute: 1 });

  const widgets = await call(mf, name, "appendBatch", { events: [widget(1), widget(2), widget(3)] });
  assert.deepEqual(widgets.map((e) => e.offset), [4, 5, 6], "all three commit and are returned");
  assert.deepEqual(widgets.map((e) => e.payload.i), [1, 2, 3]);

  // The pause is already in the log when appendBatch returns.
  const log = await readAll(mf, name);
  assert.equal(log.length, 7);
  assert.deepEqual(log.slice(3, 6), widgets);
  const paused = log[6];
  assert.equal(paused.type, S("paused"));
  assert.equal(paused.offset, 7);
  assert.deepEqual(paused.payload, { reason: TRIP_REASON });
  assert.equal(paused.idempotencyKey, "stream-paused:5");

  // The breaker arithmetic (docs/protocol.md#rules) on the committed times puts the first deficit at the 2nd widget.
  let bucket = { availableTokens: 1, lastRefillAtMs: Date.parse(cfg.createdAt), burstCapacity: 1, refillRatePerMinute: 1 };
  bucket = spend(bucket, Date.parse(widgets[0].createdAt));
  assert.ok(bucket.availableTokens >= 0, "1st widget: not in deficit");
  bucket = spend(bucket, Date.parse(widgets[1].createdAt));
  assert.ok(bucket.availableTokens < 0, "2nd widget: first deficit");

  st = await coreState(mf, name);
  assert.equal(st.paused, true);
  assert.equal(st.pauseReason, TRIP_REASON);
  assert.deepEqual(st.circuitBreaker, { availableTokens: 1, lastRefillAtMs: Date.parse(paused.createdAt), burstCapacity: 1, refillRatePerMinute: 1 }, "paused refills the bucket");
  assert.equal(st.maxOffset, 7);
  assert.equal(st.eventCount, 7);

  const snap = await snapshot(mf, name);
  await expectError(mf, name, "append", { event: widget(4) }, "stream_paused", PAUSED_MSG);
  await assertUnchanged(mf, name, snap);
});

test("several deficits in one batch → exactly one paused", async () => {
  const name = uniqueName();
  await call(mf, name, "append", { event: breakerConfig(1, 1) });
  const widgets = await call(mf, name, "appendBatch", { events: [1, 2, 3, 4, 5, 6].map(widget) });
  assert.deepEqual(widgets.map((e) => e.offset), [4, 5, 6, 7, 8, 9]);
  const log = await readAll(mf, name);
  const paused = pausedEvents(log);
  assert.equal(paused.length, 1, "exactly one S/paused");
  assert.equal(paused[0].offset, 10);
  assert.equal(paused[0].idempotencyKey, "stream-paused:5", "keyed by the first event in deficit");
  assert.equal(log.length, 10);
});

test("a deficit while already paused → no new paused", async () => {
  const name = uniqueName();
  await call(mf, name, "append", { event: breakerConfig(1, 1) });
  await call(mf, name, "appendBatch", { events: [widget(1), widget(2)] });
  let log = await readAll(mf, name);
  assert.equal(pausedEvents(log).length, 1);
  assert.equal((await coreState(mf, name)).circuitBreaker.availableTokens, 1);

  // error-occurred passes the gate and spends: 1 → 0 → deficit.
  const e1 = await call(mf, name, "append", { event: { type: S("error-occurred"), payload: { message: "e1" } } });
  const e2 = await call(mf, name, "append", { event: { type: S("error-occurred"), payload: { message: "e2" } } });
  const e3 = await call(mf, name, "appendBatch", { events: [{ type: S("error-occurred"), payload: { message: "e3" } }, { type: S("error-occurred"), payload: { message: "e4" } }] });
  const st = await coreState(mf, name);
  assert.equal(st.paused, true);
  assert.ok(st.circuitBreaker.availableTokens < 0, `in deficit (${st.circuitBreaker.availableTokens})`);
  log = await readAll(mf, name);
  assert.equal(pausedEvents(log).length, 1, "no second S/paused while paused");
  assert.deepEqual(log.slice(-4), [e1, e2, ...e3], "nothing appended after the deficit events");
});

test("after S/resumed appends flow again, and the breaker trips again (level-triggered)", async () => {
  const name = uniqueName();
  await call(mf, name, "append", { event: breakerConfig(1, 1) });
  await call(mf, name, "appendBatch", { events: [widget(1), widget(2)] });
  assert.equal((await coreState(mf, name)).paused, true);
  await expectError(mf, name, "append", { event: widget(3) }, "stream_paused", PAUSED_MSG);

  const resumed = await call(mf, name, "append", { event: { type: S("resumed"), payload: { reason: "operator" } } });
  let st = await coreState(mf, name);
  assert.equal(st.paused, false);
  assert.equal(st.circuitBreaker.availableTokens, 1, "resumed refills the bucket");
  const w3 = await call(mf, name, "append", { event: widget(3) });
  assert.equal(w3.offset, resumed.offset + 1);
  assert.equal((await coreState(mf, name)).paused, false, "a bucket at exactly 0 is not a deficit");
  const w4 = await call(mf, name, "append", { event: widget(4) });
  assert.equal(w4.offset, w3.offset + 1, "the deficit event itself commits");

  const log = await readAll(mf, name);
  const paused = pausedEvents(log);
  assert.equal(paused.length, 2);
  assert.equal(paused[1].offset, w4.offset + 1);
  assert.equal(paused[1].idempotencyKey, `stream-paused:${w4.offset}`);
  st = await coreState(mf, name);
  assert.equal(st.paused, true);
  await expectError(mf, name, "append", { event: widget(5) }, "stream_paused", PAUSED_MSG);
});

test("a flood of 200 appends against burst 50 / refill 60 per minute pauses exactly once", async () => {
  const name = uniqueName();
  const cfg = await call(mf, name, "append", { event: breakerConfig(50, 60) });
  const outcomes = await callMany(
    mf,
    name,
    Array.from({ length: 200 }, (_, i) => ({ method: "append", arg: { event: { type: "app/flood", payload: { i } } } })),
  );
  const acked = outcomes.filter((o) => o.ok).map((o) => o.result);
  const rejected = outcomes.filter((o) => !o.ok);
  for (const o of rejected) assertError(o, "stream_paused", PAUSED_MSG);
  assert.equal(acked.length + rejected.length, 200);
  assert.ok(acked.length >= 51, `at least burst+1 acknowledged (got ${acked.length})`);
  assert.ok(rejected.length > 0, "the flood was cut off");
  acked.forEach((ev) => assert.equal(ev.type, "app/flood"));

  // Every acknowledged event is readable, exactly; the log is contiguous.
  const log = await readAll(mf, name);
  assertContiguous(log.map((e) => e.offset), 1);
  for (const ev of acked) assert.deepEqual(log[ev.offset - 1], ev);
  const floodInLog = log.filter((e) => e.type === "app/flood");
  assert.equal(floodInLog.length, acked.length, "no unacknowledged event was committed");
  assert.equal(new Set(floodInLog.map((e) => e.payload.i)).size, acked.length);

  // Exactly one pause, right after the first deficit event, keyed by it; nothing after it.
  const paused = pausedEvents(log);
  assert.equal(paused.length, 1);
  const lastAck = Math.max(...acked.map((e) => e.offset));
  assert.equal(paused[0].offset, lastAck + 1);
  assert.equal(paused[0].idempotencyKey, `stream-paused:${lastAck}`);
  assert.deepEqual(paused[0].payload, { reason: TRIP_REASON });
  assert.equal(log.at(-1).offset, paused[0].offset);

  // The breaker rules (docs/protocol.md#rules) over the committed times: no deficit before the last acknowledged event, a deficit at it.
  let bucket = { availableTokens: 50, lastRefillAtMs: Date.parse(cfg.createdAt), burstCapacity: 50, refillRatePerMinute: 60 };
  const flood = log.filter((e) => e.offset > cfg.offset && e.offset <= lastAck);
  flood.forEach((ev, i) => {
    bucket = spend(bucket, Date.parse(ev.createdAt));
    if (i < flood.length - 1) assert.ok(bucket.availableTokens >= 0, `@${ev.offset} not in deficit (${bucket.availableTokens})`);
    else assert.ok(bucket.availableTokens < 0, `@${ev.offset} in deficit (${bucket.availableTokens})`);
  });

  const st = await coreState(mf, name);
  assert.equal(st.paused, true);
  assert.equal(st.pauseReason, TRIP_REASON);
  assert.deepEqual(st.circuitBreaker, { availableTokens: 50, lastRefillAtMs: Date.parse(paused[0].createdAt), burstCapacity: 50, refillRatePerMinute: 60 });
  assert.equal(st.eventCount, log.length);
  assert.equal(st.maxOffset, log.length);

  // After S/resumed appends flow again.
  await call(mf, name, "append", { event: { type: S("resumed"), payload: {} } });
  const next = await call(mf, name, "append", { event: { type: "app/flood", payload: { i: "after" } } });
  assert.equal(next.offset, paused[0].offset + 2);
  assert.equal((await coreState(mf, name)).paused, false);
});

test("the default breaker is effectively off: 1000 events in one batch do not pause", async () => {
  const name = uniqueName();
  const res = await call(mf, name, "appendBatch", { events: Array.from({ length: 1000 }, (_, i) => widget(i)) });
  assert.equal(res.length, 1000);
  const st = await coreState(mf, name);
  assert.equal(st.paused, false);
  assert.equal(pausedEvents(await readAll(mf, name)).length, 0);
  const init = initialState().circuitBreaker;
  assert.equal(st.circuitBreaker.burstCapacity, init.burstCapacity);
  assert.equal(st.circuitBreaker.refillRatePerMinute, init.refillRatePerMinute);
  assert.ok(st.circuitBreaker.availableTokens > 0);
});

test("S/configured without circuitBreaker refills the bucket and keeps the limits; with it, replaces them", async () => {
  const name = uniqueName();
  await call(mf, name, "append", { event: breakerConfig(3, 1) });
  await call(mf, name, "appendBatch", { events: [widget(1), widget(2)] });
  assert.ok((await coreState(mf, name)).circuitBreaker.availableTokens < 2);
  const c2 = await call(mf, name, "append", { event: { type: S("configured"), payload: { config: { simulatedStorageSyncDelayMs: 5 } } } });
  const st = await coreState(mf, name);
  assert.deepEqual(st.circuitBreaker, { availableTokens: 3, lastRefillAtMs: Date.parse(c2.createdAt), burstCapacity: 3, refillRatePerMinute: 1 });
  assert.deepEqual(st.config, { simulatedStorageSyncDelayMs: 5, circuitBreaker: { burstCapacity: 3, refillRatePerMinute: 1 } }, "shallow merge keeps circuitBreaker");
  assert.equal(st.paused, false);
});
