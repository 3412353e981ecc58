// Inbound subscribers: hibernatable WebSockets over the public HTTP route
// (docs/protocol.md#subscriptions, #inbound-subscribers, #disconnect-reasons; plus filter/replay stress).
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import { startStreams, call, uniqueName, splitName } from "./helpers/mf.mjs";
import { S, UUID_V4_RE, readAll, coreState } from "./helpers/assertions.mjs";
import {
  openSubscriber,
  openRawSubscriber,
  subscribeRaw,
  waitForLog,
  facts,
  appendSentinel,
  assertAscending,
  echoSubscriptionEvent,
  uniqueEchoName,
} from "./helpers/subscribers.mjs";

let mf;
const open = [];

before(async () => {
  mf = await startStreams();
});

after(async () => {
  for (const s of open) s.close();
  await mf?.dispose();
});

async function subscribe(name, params) {
  const sub = await openSubscriber(mf, name, params);
  open.push(sub);
  return sub;
}

/** Appends n events of `type` (payload {i}) in batches of `size`; returns the committed events. */
async function appendMany(name, n, { size = 100, type = (i) => "app/e" } = {}) {
  const out = [];
  for (let start = 0; start < n; start += size) {
    const events = [];
    for (let i = start; i < Math.min(n, start + size); i++) events.push({ type: type(i), payload: { i } });
    out.push(...(await call(mf, name, "appendBatch", { events })));
  }
  return out;
}

/** The state rides on a socket's first frame and on every state-only frame (docs/protocol.md#websocket-frames). */
function assertFramesConsistent(sub, note, { stateOnly = false } = {}) {
  for (const [i, f] of sub.frames.entries()) {
    assert.equal(f.type, "batch", `${note}: frame ${i} type`);
    assert.ok(Array.isArray(f.events), `${note}: frame ${i} events`);
    if (i === 0 || stateOnly) assert.equal(f.state.maxOffset, f.streamMaxOffset, `${note}: frame ${i} state.maxOffset == streamMaxOffset`);
    else assert.ok(!("state" in f), `${note}: frame ${i} repeats the state`);
    assert.ok(f.events.length <= 100, `${note}: frame ${i} has ${f.events.length} events (> 100)`);
    for (const e of f.events) assert.ok(e.offset <= f.streamMaxOffset, `${note}: frame ${i} event ${e.offset} beyond streamMaxOffset`);
  }
}

test("replay 0 → the first batch starts at offset 1, no empty batch before it; state.maxOffset == streamMaxOffset", async () => {
  const name = uniqueName();
  await appendMany(name, 5);
  const sub = await subscribe(name, { subscriptionKey: "k1", replayAfterOffset: 0 });
  await sub.waitFor((s) => s.frames.length >= 1);
  const first = sub.frames[0];
  assert.equal(first.type, "batch");
  assert.equal(first.subscriptionKey, "k1");
  assert.ok(first.events.length > 0, "the first batch is the replay, not an empty batch");
  assert.equal(first.events[0].offset, 1);
  assert.equal(first.events[0].type, S("created"));
  assert.deepEqual(
    Object.keys(first).sort(),
    ["afterOffset", "connectionId", "events", "state", "streamId", "streamMaxOffset", "subscriptionKey", "throughOffset", "type"],
  );
  // The replay runs through subscriber-connected (docs/protocol.md#inbound-subscribers).
  const all = await readAll(mf, name);
  await sub.waitForOffset(all[all.length - 1].offset);
  assert.deepEqual(sub.events(), (await readAll(mf, name)).slice(0, sub.events().length));
  assert.equal(sub.events().at(-1).type, S("subscriber-connected"));
  assert.deepEqual(sub.events().at(-1).payload, { subscriptionKey: "k1", direction: "inbound" });
  assertFramesConsistent(sub, "item 56");
});

test("append, subscribe (replay 0), append → the first batch's state has maxOffset == streamMaxOffset, later batches carry none; the log arrives whole", async () => {
  const name = uniqueName();
  await appendMany(name, 3);
  const sub = await subscribe(name, { subscriptionKey: "k57", replayAfterOffset: 0 });
  await sub.waitFor((s) => s.frames.length >= 1);
  const more = await appendMany(name, 4, { size: 1 });
  const last = more.at(-1).offset;
  await sub.waitForOffset(last);
  const [marker] = await appendSentinel(mf, name, [sub]);
  assertFramesConsistent(sub, "item 57");
  const log = await readAll(mf, name);
  assert.equal(log.at(-2).offset, last, "nothing appended between the last input and the sentinel");
  assert.equal(log.at(-1).offset, marker.offset);
  assert.deepEqual(sub.events(), log, "the subscriber saw the whole log exactly once, in order");
  // A state-only socket opened now carries the current core state.
  const states = await subscribe(name, { subscriptionKey: "k57-state", events: "false" });
  await states.waitFor((s) => s.frames.length >= 1);
  assert.deepEqual(states.frames[0].state, await coreState(mf, name), "the state-only batch's state equals the current core state");
});

test("live tail → an immediate first batch with [] or only subscriber-connected", async () => {
  const name = uniqueName();
  await appendMany(name, 3);
  const sub = await subscribe(name, { subscriptionKey: "live" });
  // At once: with nothing appended after the subscription, the first batch does not wait for an event.
  await sub.waitFor((s) => s.frames.length >= 1, { timeoutMs: 20_000 });
  const first = sub.frames[0];
  assert.ok(
    first.events.length === 0 || (first.events.length === 1 && first.events[0].type === S("subscriber-connected")),
    `first batch: ${JSON.stringify(first.events.map((e) => e.type))}`,
  );
  assert.equal(first.state.maxOffset, first.streamMaxOffset);
  // The live tail never replays history (offsets ≤ the accept-time maxOffset 5).
  const [x] = await appendMany(name, 1);
  await sub.waitForOffset(x.offset);
  for (const e of sub.events()) assert.ok(e.offset > 5, `live tail replayed offset ${e.offset}`);
  assert.equal(new Set(sub.offsets()).size, sub.offsets().length, "no duplicates");
});

test("events=false&replayAfterOffset=0 → every batch is empty; the last has streamMaxOffset == the last offset", async () => {
  const name = uniqueName();
  await appendMany(name, 20);
  const sub = await subscribe(name, { subscriptionKey: "state-only", events: "false", replayAfterOffset: 0 });
  await sub.waitFor((s) => s.frames.length >= 1);
  for (let i = 0; i < 5; i++) await call(mf, name, "append", { event: { type: "app/x", payload: { i } } });
  const log = await readAll(mf, name);
  const lastOffset = log.at(-1).offset;
  await sub.waitForStreamMax(lastOffset);
  const [marker] = await appendSentinel(mf, name, [sub]);
  for (const f of sub.frames) assert.deepEqual(f.events, [], "state-only batches carry no events");
  assertFramesConsistent(sub, "item 59", { stateOnly: true });
  assert.equal(sub.lastFrame().streamMaxOffset, marker.offset);
  assert.equal(sub.lastFrame().state.maxOffset, marker.offset);
  // streamMaxOffset never goes backwards.
  for (let i = 1; i < sub.frames.length; i++) assert.ok(sub.frames[i].streamMaxOffset >= sub.frames[i - 1].streamMaxOffset);
  // events=0 means the same.
  const sub0 = await subscribe(name, { subscriptionKey: "state-only-0", events: "0", replayAfterOffset: 0 });
  await sub0.waitFor((s) => s.frames.length >= 1);
  assert.deepEqual(sub0.frames[0].events, []);
});

test("eventTypes=app/a → only app/a; * → all; replaying 250 → batches of ≤ 100, in order, no duplicates", async () => {
  const name = uniqueName();
  const committed = await appendMany(name, 250, { type: (i) => (i % 3 === 0 ? "app/a" : "app/b") });
  const lastInput = committed.at(-1).offset;

  const onlyA = await subscribe(name, { subscriptionKey: "only-a", eventTypes: "app/a", replayAfterOffset: 0 });
  const star = await subscribe(name, { subscriptionKey: "star", eventTypes: "*", replayAfterOffset: 0 });
  const mixed = await subscribe(name, { subscriptionKey: "mixed", eventTypes: " app/b , ,*", replayAfterOffset: 0 });

  const expectedA = committed.filter((e) => e.type === "app/a");
  await onlyA.waitFor((s) => s.events().length >= expectedA.length);
  await star.waitForOffset(lastInput);
  await mixed.waitForOffset(lastInput);
  const [marker] = await appendSentinel(mf, name, [onlyA, star, mixed], { events: [{ type: "app/a", payload: { sentinel: true } }] });

  assert.deepEqual(onlyA.events(), [...expectedA, marker], "app/a only, exactly once each, in order");
  for (const f of onlyA.frames) for (const e of f.events) assert.equal(e.type, "app/a");

  const log = await readAll(mf, name);
  for (const [sub, note] of [[star, "*"], [mixed, "list containing *"]]) {
    assertFramesConsistent(sub, note);
    assertAscending(sub.events(), note);
    const seen = sub.events();
    assert.deepEqual(seen, log.slice(0, seen.length), `${note}: every event from offset 1, unfiltered`);
    assert.ok(seen.length >= lastInput);
    assert.ok(sub.frames.length >= 3, `${note}: 250+ events need at least 3 batches`);
  }
  assertFramesConsistent(onlyA, "app/a");
});

test("unsubscribe → disconnected(unsubscribed) then close 1000; a client close → rpc-broken; once each", async () => {
  const name = uniqueName();
  const a = await subscribe(name, { subscriptionKey: "ua" });
  const b = await subscribe(name, { subscriptionKey: "ub" });
  // Stays open: its deliveries are the sentinel for "nothing more happened".
  const watcher = await subscribe(name, { subscriptionKey: "uc" });
  await a.waitFor((s) => s.frames.length >= 1);
  await b.waitFor((s) => s.frames.length >= 1);

  a.send({ type: "unsubscribe" });
  await a.waitForClose();
  assert.equal(a.closeEvent.code, 1000);
  let log = await waitForLog(mf, name, (l) => facts(l, "subscriber-disconnected", { subscriptionKey: "ua" }).length >= 1);
  assert.deepEqual(facts(log, "subscriber-disconnected", { subscriptionKey: "ua" })[0].payload, { subscriptionKey: "ua", reason: "unsubscribed" });

  b.close(1000, "bye");
  log = await waitForLog(mf, name, (l) => facts(l, "subscriber-disconnected", { subscriptionKey: "ub" }).length >= 1);
  assert.deepEqual(facts(log, "subscriber-disconnected", { subscriptionKey: "ub" })[0].payload, { subscriptionKey: "ub", reason: "rpc-broken" });

  await appendSentinel(mf, name, [watcher]);
  log = await readAll(mf, name);
  assert.equal(facts(log, "subscriber-disconnected", { subscriptionKey: "ua" }).length, 1, "one fact for ua");
  assert.equal(facts(log, "subscriber-disconnected", { subscriptionKey: "ub" }).length, 1, "one fact for ub");
  const st = await call(mf, name, "runtimeState");
  assert.equal(st.coreProcessorState.connectionsByKey.ua, undefined);
  assert.equal(st.coreProcessorState.connectionsByKey.ub, undefined);
  assert.equal(st.runtime.connections.ua, undefined, "closed sockets are not listed");
  assert.equal(st.runtime.connections.ub, undefined);

  // A later append reaches neither, and writes no further disconnect facts.
  const afterEvent = await call(mf, name, "append", { event: { type: "app/after" } });
  await watcher.waitForOffset(afterEvent.offset);
  assert.ok(!a.events().some((e) => e.type === "app/after"));
  assert.ok(!b.events().some((e) => e.type === "app/after"));
  log = await readAll(mf, name);
  assert.equal(facts(log, "subscriber-disconnected").length, 2);
});

test("a 2nd socket on k → the 1st gets 4001; replaced is written before the new connected", async () => {
  const name = uniqueName();
  // Over a real TCP socket, so the server's close frame is seen (see openRawSubscriber).
  const first = await openRawSubscriber(mf, name, { subscriptionKey: "k" });
  open.push(first);
  await first.waitFor((s) => s.frames.length >= 1);
  const second = await subscribe(name, { subscriptionKey: "k" });
  await first.waitForClose();
  assert.equal(first.closeEvent.code, 4001);
  assert.equal(first.closeEvent.reason, "replaced");
  await second.waitFor((s) => s.frames.length >= 1);

  const log = await waitForLog(mf, name, (l) => facts(l, "subscriber-connected", { subscriptionKey: "k" }).length >= 2);
  const relevant = log.filter((e) => (e.type === S("subscriber-connected") || e.type === S("subscriber-disconnected")) && e.payload.subscriptionKey === "k");
  assert.deepEqual(
    relevant.map((e) => [e.type.split("/").pop(), e.payload.reason ?? e.payload.direction]),
    [["subscriber-connected", "inbound"], ["subscriber-disconnected", "replaced"], ["subscriber-connected", "inbound"]],
  );
  assert.equal(relevant[2].offset, relevant[1].offset + 1, "replaced immediately precedes the new connected");

  // The new socket keeps receiving; the old one gets nothing more, and only one disconnect fact exists.
  const ev = await call(mf, name, "append", { event: { type: "app/after-replace" } });
  // ev reaching the new socket is the sentinel: the old one would have had it by then.
  await second.waitForOffset(ev.offset);
  assert.ok(!first.offsets().includes(ev.offset));
  assert.equal(facts(await readAll(mf, name), "subscriber-disconnected", { subscriptionKey: "k" }).length, 1);
  assert.equal((await coreState(mf, name)).connectionsByKey.k.direction, "inbound");
});

test("a subscriptionKey that belongs to a configured subscription → 400 invalid_request", async () => {
  const name = uniqueName();
  await call(mf, name, "append", { event: echoSubscriptionEvent("cfg", uniqueEchoName()) });
  const before = await readAll(mf, name);
  const res = await subscribeRaw(mf, name, { subscriptionKey: "cfg" });
  assert.equal(res.status, 400);
  assert.deepEqual(res.json, { error: { code: "invalid_request", message: 'subscriptionKey "cfg" belongs to a configured subscription' } });
  const trimmed = await subscribeRaw(mf, name, { subscriptionKey: "  cfg  " });
  assert.equal(trimmed.status, 400, "the key is trimmed before the check");
  await appendSentinel(mf, name);
  const afterLog = await readAll(mf, name);
  assert.deepEqual(
    facts(afterLog, "subscriber-connected").filter((e) => e.payload.direction === "inbound"),
    facts(before, "subscriber-connected").filter((e) => e.payload.direction === "inbound"),
    "no inbound connection was announced",
  );
});

test("subscribe, append, simulateHibernation(), append → each later event exactly once (woken included); k stays in the roster", async () => {
  const name = uniqueName();
  const sub = await subscribe(name, { subscriptionKey: "k" });
  await sub.waitFor((s) => s.frames.length >= 1);
  const connected = facts(await readAll(mf, name), "subscriber-connected", { subscriptionKey: "k" })[0];
  const a = await call(mf, name, "append", { event: { type: "app/before" } });
  await sub.waitForOffset(a.offset);
  await call(mf, name, "simulateHibernation");
  const b = await call(mf, name, "append", { event: { type: "app/after" } });
  await sub.waitForOffset(b.offset);
  await appendSentinel(mf, name, [sub]);

  const log = await readAll(mf, name);
  const woken = log.filter((e) => e.type === S("woken") && e.offset > a.offset);
  assert.equal(woken.length, 1, "simulateHibernation re-ran boot");
  assert.equal(woken[0].payload.inboundKept, true, "the woken keeps the open socket in the roster");
  const reannounced = facts(log, "subscriber-connected", { subscriptionKey: "k" }).filter((e) => e.offset > woken[0].offset);
  assert.deepEqual(reannounced, [], "boot does not announce the socket again");

  const expected = log.filter((e) => e.offset > connected.offset);
  const seen = sub.events().filter((e) => e.offset > connected.offset);
  assert.deepEqual(seen, expected, "every event after the subscription exactly once, woken included, no gaps");
  assert.ok(seen.some((e) => e.type === S("woken")));
  assert.equal(new Set(sub.offsets()).size, sub.offsets().length, "no duplicates overall");
  assertFramesConsistent(sub, "item 63");

  const st = await call(mf, name, "runtimeState");
  assert.deepEqual(st.coreProcessorState.connectionsByKey.k, { direction: "inbound", connectedAtOffset: connected.offset }, "k is in the roster since its accept");
  assert.equal(st.runtime.connections.k?.direction, "inbound");
  assert.equal(st.runtime.connections.k.cursor, log.at(-1).offset, "the cursor lives in the attachment");
  assert.equal(sub.closeEvent, null, "the socket survived");
});

test("three sockets with different filters while 500 events are appended in batches of 7: each gets exactly its events, in order", async () => {
  const name = uniqueName();
  const types = ["app/a", "app/b", "app/c", "app/d"];
  const start = (await coreState(mf, name)).maxOffset;
  const subs = {
    a: await subscribe(name, { subscriptionKey: "fa", eventTypes: "app/a", replayAfterOffset: start }),
    bc: await subscribe(name, { subscriptionKey: "fbc", eventTypes: "app/b,app/c", replayAfterOffset: start }),
    all: await subscribe(name, { subscriptionKey: "fall", replayAfterOffset: start }),
  };
  for (const s of Object.values(subs)) await s.waitFor((x) => x.frames.length >= 1);

  let i = 0;
  while (i < 500) {
    const events = [];
    for (let j = 0; j < 7 && i < 500; j++, i++) events.push({ type: types[i % 4], payload: { i } });
    await call(mf, name, "appendBatch", { events });
  }
  const log = await readAll(mf, name);
  const after = log.filter((e) => e.offset > start);
  const expected = {
    a: after.filter((e) => e.type === "app/a"),
    bc: after.filter((e) => e.type === "app/b" || e.type === "app/c"),
    all: after,
  };
  assert.equal(expected.a.length, 125);
  assert.equal(expected.bc.length, 250);
  for (const [k, s] of Object.entries(subs)) {
    await s.waitFor((x) => x.events().length >= expected[k].length, { timeoutMs: 30_000, what: `${k} receives ${expected[k].length} events` });
  }
  // One marker each filter lets through.
  const [markerA, markerB] = await appendSentinel(mf, name, Object.values(subs), {
    events: [{ type: "app/a", payload: { sentinel: true } }, { type: "app/b", payload: { sentinel: true } }],
  });
  expected.a.push(markerA);
  expected.bc.push(markerB);
  expected.all.push(markerA, markerB);
  for (const [k, s] of Object.entries(subs)) {
    assert.deepEqual(s.events(), expected[k], `${k}: exactly its events, in order, no duplicates`);
    assertFramesConsistent(s, k);
    assert.equal(s.closeEvent, null);
  }
  // Payload order survives too: the domain events carry i = 0..499 in order.
  assert.deepEqual(subs.all.events().filter((e) => e.type.startsWith("app/") && !e.payload.sentinel).map((e) => e.payload.i), Array.from({ length: 500 }, (_, n) => n));
});

test("a subscriber with replayAfterOffset in the middle of a 300-event stream gets exactly the suffix", async () => {
  const name = uniqueName();
  await appendMany(name, 300);
  const sub = await subscribe(name, { subscriptionKey: "mid", replayAfterOffset: 150 });
  const log = await waitForLog(mf, name, (l) => facts(l, "subscriber-connected", { subscriptionKey: "mid" }).length === 1);
  await sub.waitForOffset(log.at(-1).offset);
  const [marker] = await appendSentinel(mf, name, [sub]);
  assert.deepEqual(sub.events(), [...log, marker].filter((e) => e.offset > 150), "exactly the events after 150");
  assert.equal(sub.frames[0].events[0].offset, 151);
  assertFramesConsistent(sub, "mid replay");
  // A replay cursor beyond the log is a live tail from there: nothing is replayed.
  const far = await subscribe(name, { subscriptionKey: "far", replayAfterOffset: 10000 });
  await far.waitFor((s) => s.frames.length >= 1);
  // The other socket's delivery of a later marker is the sentinel: the stream would have sent any
  // replay to this one first.
  await appendSentinel(mf, name, [sub]);
  assert.deepEqual(far.events().filter((e) => e.offset <= 10000 && e.type !== S("subscriber-connected")), []);
});

test("subscribe query parameters: trimmed keys, blank key → UUID, bad replayAfterOffset/events → 400, key over 256 bytes → 400", async () => {
  const name = uniqueName();

  const trimmed = await subscribe(name, { subscriptionKey: "  spaced  " });
  await trimmed.waitFor((s) => s.frames.length >= 1);
  assert.equal(trimmed.frames[0].subscriptionKey, "spaced");

  const blank = await subscribe(name, { subscriptionKey: "   " });
  await blank.waitFor((s) => s.frames.length >= 1);
  assert.match(blank.frames[0].subscriptionKey, UUID_V4_RE, "a blank key becomes a random UUID v4");
  const missing = await subscribe(name, {});
  await missing.waitFor((s) => s.frames.length >= 1);
  assert.match(missing.frames[0].subscriptionKey, UUID_V4_RE);
  assert.notEqual(missing.frames[0].subscriptionKey, blank.frames[0].subscriptionKey);

  const ok256 = await subscribe(name, { subscriptionKey: "k".repeat(256) });
  await ok256.waitFor((s) => s.frames.length >= 1);

  const before = await readAll(mf, name);
  for (const [params, note] of [
    [{ subscriptionKey: "x", replayAfterOffset: "-1" }, "negative replayAfterOffset"],
    [{ subscriptionKey: "x", replayAfterOffset: "abc" }, "non-numeric replayAfterOffset"],
    [{ subscriptionKey: "x", replayAfterOffset: "1.5" }, "fractional replayAfterOffset"],
    [{ subscriptionKey: "x", events: "maybe" }, "events=maybe"],
    [{ subscriptionKey: "k".repeat(257) }, "257-byte key"],
    [{ subscriptionKey: "é".repeat(129) }, "258-byte key (129 two-byte characters)"],
  ]) {
    const res = await subscribeRaw(mf, name, params);
    assert.equal(res.status, 400, note);
    assert.equal(res.json?.error?.code, "invalid_request", `${note}: ${JSON.stringify(res.json)}`);
  }
  const tooLarge = await subscribeRaw(mf, name, { subscriptionKey: "big", eventTypes: Array.from({ length: 12 }, (_, i) => `app/${i}-${"t".repeat(240)}`).join(",") });
  assert.equal(tooLarge.status, 400);
  assert.deepEqual(tooLarge.json, { error: { code: "invalid_request", message: "subscription parameters are too large" } });

  const noUpgrade = await subscribeRaw(mf, name, { subscriptionKey: "x" }, { headers: {} });
  assert.equal(noUpgrade.status, 400);
  assert.deepEqual(noUpgrade.json, { error: { code: "invalid_request", message: "expected a WebSocket upgrade" } });

  const markers = await appendSentinel(mf, name);
  assert.deepEqual(await readAll(mf, name), [...before, ...markers], "refused subscriptions write nothing");
});

test("ping → pong; other client frames are ignored", async () => {
  const name = uniqueName();
  const sub = await subscribe(name, { subscriptionKey: "pinger" });
  await sub.waitFor((s) => s.frames.length >= 1);
  const before = await readAll(mf, name);
  sub.send({ type: "ping" });
  await sub.waitFor((s) => s.frames.some((f) => f.type === "pong"));
  assert.deepEqual(sub.raw.find((r) => r.includes("pong")), '{"type":"pong"}');
  sub.send({ type: "hello" });
  sub.send("not json");
  // A socket's frames are handled in order: the pong to a later ping is the sentinel.
  sub.send({ type: "ping" });
  await sub.waitFor((s) => s.frames.filter((f) => f.type === "pong").length === 2);
  assert.equal(sub.closeEvent, null);
  assert.deepEqual(await readAll(mf, name), before, "ping and ignored frames write nothing");
  const ev = await call(mf, name, "append", { event: { type: "app/still-live" } });
  await sub.waitForOffset(ev.offset);
});

test("an inbound socket is listed in runtime.connections with its counters", async () => {
  const name = uniqueName();
  const sub = await subscribe(name, { subscriptionKey: "rc", replayAfterOffset: 0 });
  const log = await waitForLog(mf, name, (l) => facts(l, "subscriber-connected", { subscriptionKey: "rc" }).length === 1);
  await sub.waitForOffset(log.at(-1).offset);
  const st = await call(mf, name, "runtimeState");
  const c = st.runtime.connections.rc;
  assert.equal(c.direction, "inbound");
  assert.equal(c.cursor, log.at(-1).offset);
  assert.equal(c.batchesSent, sub.frames.length);
  assert.equal(c.eventsSent, sub.events().length);
  assert.match(c.startedAt, /Z$/);
  assert.match(c.lastDeliveredAt, /Z$/);
  const { namespace } = splitName(name);
  assert.equal(st.coreProcessorState.namespace, namespace);
});
