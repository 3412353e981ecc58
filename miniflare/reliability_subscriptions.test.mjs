// Reliability scenario 6 — subscriptions under faults (docs/protocol.md#kill-and-reset; #subscriptions; RELIABILITY.md §6).
//
// 1. Inbound WebSocket under kills: one subscriber (replayAfterOffset=0) while 300 keyed events
//    are appended in small batches and kill() is injected at seeded points. Each kill closes the
//    socket with 1012; the client reconnects with the same key and replayAfterOffset = the last
//    offset it received. Afterwards the union of what it received equals the log: no gap; per
//    connection strictly ascending, no duplicates; no duplicates across reconnects.
// 2. Outbound EchoHost under kills: 200 input events in batches of ~5 with kills at seeded
//    points (writers retry `internal` with the same keys). The echo's checkpoint reaches the last
//    input; it processed each input exactly once and the log holds exactly 200 outputs,
//    seen 1..200, one per input.
// 3. Inbound WebSocket under simulateHibernation(): the same write phase, with seeded simulated
//    wakes instead of kills. The one socket stays open and receives every event exactly once,
//    the `woken` events included.
//
// Seeds: STREAMS_SEED=<n> replays one plan (timing still varies).
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import { startStreams, call, uniqueName } from "./helpers/mf.mjs";
import { prng, seedFor, callOn, readLog, assertGapFree, bytesOf, sleep } from "./helpers/reliability.mjs";
import { ECHO_INPUT, ECHO_OUTPUT, SENTINEL, echoSubscriptionEvent, uniqueEchoName, inspectEcho, waitForLog, facts } from "./helpers/subscribers.mjs";
import { ResumingSubscriber, seededBatchSizes, writeKeyed, injectAt, seededPoints, frameProblems, repeated } from "./helpers/subscription_faults.mjs";

const SEED = seedFor("reliability_subscriptions");

let mf;
const subscribers = [];
before(async () => {
  mf = await startStreams();
});
after(async () => {
  for (const s of subscribers) await s.stop();
  await mf?.dispose();
});

async function resumingSubscriber(name, opts) {
  const s = new ResumingSubscriber(mf, name, opts);
  subscribers.push(s);
  return s.start();
}

/**
 * Appends a sentinel and waits for its delivery: the stream delivers in order, so everything it
 * owed the subscriber before it has arrived. Returns the log (the sentinel last).
 */
async function settle(sub, name) {
  const marker = await call(mf, name, "append", { event: { type: SENTINEL } });
  await sub.waitForOffset(marker.offset);
  return readLog(mf, name);
}

test("subscriptions: inbound WebSocket under 8 seeded kill()s — union of deliveries == log, no gap, no duplicate", async (t) => {
  const TOTAL = 300;
  const KILLS = 8;
  const name = uniqueName("subkill");
  const rand = prng(SEED);
  const inputs = Array.from({ length: TOTAL }, (_, i) => ({ type: `subkill/e`, payload: { i, r: rand().toString(36) }, idempotencyKey: `subkill-e${i}` }));
  const sizes = seededBatchSizes(rand, TOTAL, 1, 5);
  const points = seededPoints(rand, KILLS, 10, TOTAL - 20);
  const killSurfaces = points.map(() => rand.pick(["do", "service"]));

  const sub = await resumingSubscriber(name, { subscriptionKey: "resumer", replayAfterOffset: 0 });
  await sub.waitLive();

  const progress = { acked: 0, done: false };
  const started = Date.now();
  const [written, kills] = await Promise.all([
    writeKeyed(mf, name, inputs, sizes, { rand, surfaces: ["do", "service", "http"], progress }),
    injectAt(
      points,
      progress,
      async (k) => {
        // Kill only an incarnation that holds the subscriber's live socket (`ready`), and wait for
        // that socket's close frame before the next kill, so each kill closes exactly one socket.
        const conn = sub.current();
        const o = await callOn(mf, killSurfaces[k], name, "kill");
        if (!o.ok) return { ok: false, error: o.error };
        const deadline = Date.now() + 30_000;
        while (conn.sub.closeEvent === null && Date.now() < deadline) await sleep(2);
        return { ok: true, closedLiveSocket: conn.sub.closeEvent !== null };
      },
      { ready: () => sub.waitLive() },
    ),
  ]);
  const writeMs = Date.now() - started;
  const landed = kills.filter((k) => k.ok).length;
  assert.deepEqual(kills.filter((k) => !k.ok), [], "every kill landed (each targets a live incarnation)");
  assert.equal(landed, KILLS, "all kill points were reached during the write phase");
  assert.deepEqual(kills.map((k) => k.closedLiveSocket), kills.map(() => true), "each kill closed the live socket");

  const log = await settle(sub, name);
  const conns = sub.connections.map((c) => ({ ...c, closeEvent: c.sub.closeEvent }));

  // The log: gap-free, the 300 events once each, one woken per incarnation.
  assertGapFree(log, "subkill log: ");
  const domain = log.filter((e) => e.type === "subkill/e");
  assert.equal(domain.length, TOTAL);
  assert.equal(new Set(domain.map((e) => e.idempotencyKey)).size, TOTAL, "no duplicate keys in the log");
  for (const e of domain) assert.equal(bytesOf(e), bytesOf(written.acked.get(e.idempotencyKey)), `@${e.offset} == its acknowledgement`);
  assert.equal(facts(log, "woken").length, 1 + landed, "one woken per incarnation");

  // Every kill closed the live socket with 1012; one reconnect per kill.
  assert.equal(conns.length, landed + 1, `connections: ${conns.map((c) => JSON.stringify(c.closeEvent)).join(" ")}`);
  for (const [i, c] of conns.slice(0, -1).entries()) {
    assert.deepEqual(c.closeEvent, { code: 1012, reason: "kill requested" }, `connection ${i} close`);
  }
  assert.equal(conns.at(-1).closeEvent, null, "the last connection is still open");

  // Per connection: strictly ascending, no duplicates, starting right after its replayAfterOffset.
  for (const [i, c] of conns.entries()) {
    const offsets = c.sub.offsets();
    assert.deepEqual(frameProblems(c.sub), [], `connection ${i} frames`);
    for (let j = 1; j < offsets.length; j++) assert.ok(offsets[j] > offsets[j - 1], `connection ${i}: offset ${offsets[j]} after ${offsets[j - 1]}`);
    if (offsets.length) assert.equal(offsets[0], c.replayAfterOffset + 1, `connection ${i} resumes right after ${c.replayAfterOffset}`);
    for (let j = 1; j < offsets.length; j++) assert.equal(offsets[j], offsets[j - 1] + 1, `connection ${i}: no gap after ${offsets[j - 1]}`);
  }

  // The union equals the log, event for event; nothing arrived twice across reconnects.
  const received = sub.allEvents();
  const dupAcross = repeated(received.map((e) => e.offset));
  const union = sub.union();
  assert.deepEqual([...union.keys()].sort((a, b) => a - b), log.map((e) => e.offset), "union of received offsets == log offsets");
  for (const e of log) assert.equal(bytesOf(union.get(e.offset)), bytesOf(e), `received @${e.offset} == stored`);
  for (const e of received) assert.equal(bytesOf(e), bytesOf(union.get(e.offset)), `a re-delivery of @${e.offset} differs`);
  assert.deepEqual(dupAcross, [], "no duplicates across reconnects (each resumes from its last offset)");

  // Presence: one inbound connected per accepted socket, no disconnect fact for a kill (docs/protocol.md#kill-and-reset).
  const connected = facts(log, "subscriber-connected", { subscriptionKey: "resumer" });
  const disconnected = facts(log, "subscriber-disconnected", { subscriptionKey: "resumer" });
  assert.equal(connected.length, conns.length, "one subscriber-connected per accepted socket, none re-announced for a killed socket");
  assert.deepEqual(disconnected, [], "kill writes no presence facts");
  const st = await call(mf, name, "runtimeState");
  assert.equal(st.runtime.connections.resumer?.cursor, log.at(-1).offset, "the live socket's cursor is at the end");

  t.diagnostic(
    `subscriptions-kill summary ${JSON.stringify({
      seed: SEED,
      events: TOTAL,
      batches: sizes.length,
      killsLanded: landed,
      connections: conns.length,
      closeCodes: conns.slice(0, -1).map((c) => c.closeEvent.code),
      subscribeRefusals: sub.refusals.length,
      replayFrom: conns.map((c) => c.replayAfterOffset),
      // Events each reconnect got by replay: committed after its replay point and before its own
      // subscriber-connected (missed before the kill, appended while down, and the new woken).
      replayedOnReconnect: conns.slice(1).map((c, i) => connected[i + 1].offset - c.replayAfterOffset - 1),
      eventsReceived: received.length,
      logLength: log.length,
      gaps: log.length - union.size,
      duplicatesAcrossReconnects: dupAcross.length,
      writerCallsRetried: written.retriedCalls,
      retryableErrors: Object.fromEntries(written.retryableErrors),
      writeMs,
    })}`,
  );
  await sub.stop();
});

test("subscriptions: outbound EchoHost under 8 seeded kill()s — 200 inputs processed exactly once, outputs seen 1..200", async (t) => {
  const TOTAL = 200;
  const KILLS = 8;
  const key = "echo";
  const name = uniqueName("subecho");
  const echoName = uniqueEchoName("echo-faults");
  const rand = prng(SEED ^ 0xec40);
  const inputs = Array.from({ length: TOTAL }, (_, i) => ({ type: ECHO_INPUT, payload: { i }, idempotencyKey: `echo-in-${i}` }));
  const sizes = seededBatchSizes(rand, TOTAL, 4, 6);
  const points = seededPoints(rand, KILLS, 5, TOTAL - 10);

  const configured = await call(mf, name, "append", { event: echoSubscriptionEvent(key, echoName) });
  await waitForLog(mf, name, (l) => facts(l, "subscriber-connected", { subscriptionKey: key }).some((e) => e.offset > configured.offset), { what: "echo connected" });

  const progress = { acked: 0, done: false };
  const started = Date.now();
  const [written, kills] = await Promise.all([
    writeKeyed(mf, name, inputs, sizes, { rand, surfaces: ["do", "service", "http"], progress }),
    injectAt(points, progress, async () => {
      const o = await callOn(mf, "do", name, "kill");
      return o.ok ? { ok: true } : { ok: false, error: o.error };
    }),
  ]);
  const writeMs = Date.now() - started;
  const landed = kills.filter((k) => k.ok).length;
  for (const k of kills) if (!k.ok) assert.ok(k.error.startsWith("internal: "), `kill refused with ${k.error}`);
  assert.ok(landed >= KILLS - 2, `only ${landed} kills landed`);

  const inputEvents = inputs.map((i) => written.acked.get(i.idempotencyKey));
  const lastInput = Math.max(...inputEvents.map((e) => e.offset));

  // Wait (≤ 30 s) for the echo's checkpoint to reach the last input. Reading the log each round
  // also boots the stream if the last kill left it down (a killed stream stays down until a call).
  const deadline = Date.now() + 30_000;
  let echo;
  let log;
  for (;;) {
    log = await readLog(mf, name);
    echo = await inspectEcho(mf, echoName);
    if (echo.checkpoint >= lastInput && log.filter((e) => e.type === ECHO_OUTPUT).length >= TOTAL) break;
    if (Date.now() >= deadline) {
      assert.fail(
        `echo checkpoint ${echo.checkpoint} (seen ${echo.seen}, outputs ${log.filter((e) => e.type === ECHO_OUTPUT).length}) did not reach the last input ${lastInput} within 30 s`,
      );
    }
    await sleep(50);
  }
  const catchUpMs = Date.now() - started - writeMs;
  // Sentinel: one more input; once its output is in, whatever the echo was still owed has landed.
  const sentinel = await call(mf, name, "append", { event: { type: ECHO_INPUT, payload: { sentinel: true }, idempotencyKey: "echo-in-sentinel" } });
  const sentinelKey = `echo-example:${key}:${sentinel.offset}:0`;
  log = await waitForLog(mf, name, (l) => l.some((e) => e.idempotencyKey === sentinelKey), { what: "the sentinel's output", timeoutMs: 30_000 });
  echo = await inspectEcho(mf, echoName);

  assertGapFree(log, "echo log: ");
  const logInputs = log.filter((e) => e.type === ECHO_INPUT && e.offset !== sentinel.offset);
  assert.deepEqual(logInputs.map((e) => e.offset), inputEvents.map((e) => e.offset).sort((a, b) => a - b), "the 200 inputs, once each");
  const inputOffsets = logInputs.map((e) => e.offset);

  // The echo processed each input exactly once, in order.
  assert.equal(echo.seen, TOTAL + 1, "echo seen (the sentinel last)");
  assert.equal(echo.checkpoint, sentinel.offset, "echo checkpoint");
  assert.deepEqual(repeated(echo.delivered), [], "no input processed twice");
  assert.deepEqual(echo.delivered, [...inputOffsets, sentinel.offset], "every input processed, in log order");
  const redelivered = repeated(echo.received);
  assert.ok(echo.received.every((o) => inputOffsets.includes(o) || o === sentinel.offset), "only inputs were delivered (filter)");

  // Exactly 200 outputs: one per input (by key), distinct keys, seen 1..200 in input order.
  const outs = log.filter((e) => e.type === ECHO_OUTPUT && e.idempotencyKey !== sentinelKey);
  assert.equal(outs.length, TOTAL, "output-echoed count");
  assert.equal(new Set(outs.map((e) => e.idempotencyKey)).size, TOTAL, "distinct output keys");
  assert.deepEqual(outs.map((e) => e.payload.seen), Array.from({ length: TOTAL }, (_, i) => i + 1), "seen values 1..200 in log order");
  const byKey = new Map(outs.map((e) => [e.idempotencyKey, e]));
  inputOffsets.forEach((offset, i) => {
    const out = byKey.get(`echo-example:${key}:${offset}:0`);
    assert.ok(out, `no output for input @${offset}`);
    assert.equal(out.payload.seen, i + 1, `output for input @${offset}`);
  });
  assert.equal(facts(log, "woken").length, 1 + landed, "one woken per incarnation");
  const st = await call(mf, name, "runtimeState");
  assert.equal(st.runtime.connections[key]?.direction, "outbound", "the echo is connected at the end");
  assert.equal(st.coreProcessorState.connectionsByKey[key]?.direction, "outbound", "and in the roster");

  const connected = facts(log, "subscriber-connected", { subscriptionKey: key });
  const disconnected = facts(log, "subscriber-disconnected", { subscriptionKey: key });
  t.diagnostic(
    `subscriptions-echo summary ${JSON.stringify({
      seed: SEED ^ 0xec40,
      inputs: TOTAL,
      batches: sizes.length,
      killsLanded: landed,
      killsRefused: kills.length - landed,
      dials: echo.dials.length,
      connectedFacts: connected.length,
      disconnectReasons: disconnected.map((e) => e.payload.reason),
      processEventBatchCalls: echo.batches,
      offsetsDeliveredMoreThanOnce: redelivered.length,
      // processEventBatch calls that threw (the echo's own append met a killed stream): the
      // fixture's inFlight counter is only decremented on success.
      echoBatchesCutByKills: echo.inFlight,
      seen: echo.seen,
      outputs: outs.length,
      writerCallsRetried: written.retriedCalls,
      retryableErrors: Object.fromEntries(written.retryableErrors),
      logLength: log.length,
      writeMs,
      catchUpMs,
    })}`,
  );
});

test("subscriptions: inbound WebSocket across 4 seeded simulateHibernation()s — one socket, every event exactly once", async (t) => {
  const TOTAL = 300;
  const WAKES = 4;
  const name = uniqueName("subhib");
  const rand = prng(SEED ^ 0x41b);
  const inputs = Array.from({ length: TOTAL }, (_, i) => ({ type: `subhib/e`, payload: { i }, idempotencyKey: `subhib-e${i}` }));
  const sizes = seededBatchSizes(rand, TOTAL, 1, 5);
  const points = seededPoints(rand, WAKES, 10, TOTAL - 20);

  // reconnect: false — the socket must survive; a close fails the test below.
  const sub = await resumingSubscriber(name, { subscriptionKey: "sleeper", replayAfterOffset: 0, reconnect: false });
  await sub.waitLive();

  const progress = { acked: 0, done: false };
  const started = Date.now();
  const [written, wakes] = await Promise.all([
    writeKeyed(mf, name, inputs, sizes, { rand, surfaces: ["do", "service", "http"], progress }),
    injectAt(points, progress, async () => {
      const o = await callOn(mf, "do", name, "simulateHibernation");
      return o.ok ? { ok: true } : { ok: false, error: o.error };
    }),
  ]);
  const writeMs = Date.now() - started;
  assert.deepEqual(wakes.filter((w) => !w.ok), [], "every simulateHibernation() resolved");
  assert.equal(wakes.length, WAKES);

  const log = await settle(sub, name);
  const [conn] = sub.connections;
  assert.equal(sub.connections.length, 1);
  assert.equal(conn.sub.closeEvent, null, "the socket stayed open across the simulated wakes");

  assertGapFree(log, "subhib log: ");
  const domain = log.filter((e) => e.type === "subhib/e");
  assert.equal(domain.length, TOTAL);
  assert.equal(new Set(domain.map((e) => e.idempotencyKey)).size, TOTAL);
  for (const e of domain) assert.equal(bytesOf(e), bytesOf(written.acked.get(e.idempotencyKey)), `@${e.offset} == its acknowledgement`);
  const wokens = facts(log, "woken");
  assert.equal(wokens.length, 1 + WAKES, "one woken per simulated wake (plus the first boot)");

  const received = conn.sub.events();
  assert.deepEqual(repeated(received.map((e) => e.offset)), [], "no duplicates");
  assert.deepEqual(frameProblems(conn.sub), [], "frames");
  assert.equal(received.length, log.length, `received ${received.length} of ${log.length} events`);
  for (let i = 0; i < log.length; i++) assert.equal(bytesOf(received[i]), bytesOf(log[i]), `event #${i} (@${log[i].offset}) received exactly as stored, in order`);
  for (const w of wokens.slice(1)) assert.ok(received.some((e) => e.offset === w.offset), `woken @${w.offset} delivered`);

  // Each wake's woken kept the open socket in the roster: it was announced once; no disconnect fact.
  const connected = facts(log, "subscriber-connected", { subscriptionKey: "sleeper" });
  assert.equal(connected.length, 1, "connected once, never announced again");
  for (const w of wokens.slice(1)) assert.equal(w.payload.inboundKept, true, `woken @${w.offset} keeps the socket`);
  assert.deepEqual(facts(log, "subscriber-disconnected", { subscriptionKey: "sleeper" }), []);
  const st = await call(mf, name, "runtimeState");
  const rc = st.runtime.connections.sleeper;
  assert.equal(rc?.cursor, log.at(-1).offset, "cursor (attachment) at the end");
  assert.equal(rc.eventsSent, received.length, "eventsSent counter survived the wakes");
  assert.equal(rc.batchesSent, conn.sub.frames.filter((f) => f.type === "batch").length, "batchesSent counter survived the wakes");
  assert.deepEqual(st.coreProcessorState.connectionsByKey.sleeper, { direction: "inbound", connectedAtOffset: connected[0].offset }, "in the roster since its accept");

  t.diagnostic(
    `subscriptions-hibernation summary ${JSON.stringify({
      seed: SEED ^ 0x41b,
      events: TOTAL,
      batches: sizes.length,
      simulatedWakes: wakes.length,
      framesReceived: conn.sub.frames.length,
      eventsReceived: received.length,
      logLength: log.length,
      duplicates: 0,
      gaps: log.length - received.length,
      writerCallsRetried: written.retriedCalls,
      writeMs,
    })}`,
  );
  await sub.stop();
});
