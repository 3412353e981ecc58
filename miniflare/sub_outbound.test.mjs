// Outbound (configured) subscribers against the EchoHost fixture: allowlist, dial, delivery,
// re-dial back-off, removal, idle teardown, kill/abort recovery
// (docs/protocol.md#subscriptions, #outbound-subscribers, #disconnect-reasons, #runtimestate; plus a slow subscriber).
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import { startStreams, call, tryCall, uniqueName, splitName, http, tryCallService } from "./helpers/mf.mjs";
import { S, readAll, snapshot, assertUnchanged, assertError, tryCallAfterKill } from "./helpers/assertions.mjs";
import {
  ECHO_INPUT,
  ECHO_OUTPUT,
  ECHO_ANNOUNCEMENT,
  echoSubscriber,
  echoSubscriptionEvent,
  echoInput,
  uniqueEchoName,
  inspectEcho,
  configureEcho,
  abortEcho,
  waitFor,
  waitForLog,
  waitForEcho,
  facts,
  waitForNothingPending,
  runtimeState,
  assertAscending,
} from "./helpers/subscribers.mjs";

let mf;

before(async () => {
  mf = await startStreams();
});

after(async () => {
  await mf?.dispose();
});

/** Configures key → a fresh EchoHost on `name`; resolves once `subscriber-connected` is in the log. */
async function connectEcho(m, name, { key = "echo", echoName = uniqueEchoName(), setup, callableExtra } = {}) {
  if (setup) await configureEcho(m, echoName, setup);
  const configured = await call(m, name, "append", { event: echoSubscriptionEvent(key, echoName, callableExtra) });
  const log = await waitForLog(m, name, (l) => facts(l, "subscriber-connected", { subscriptionKey: key }).some((e) => e.offset > configured.offset), {
    what: `${key} connected`,
  });
  const connected = facts(log, "subscriber-connected", { subscriptionKey: key }).filter((e) => e.offset > configured.offset)[0];
  return { echoName, configured, connected, key };
}

async function appendInput(m, name, payload = {}) {
  return call(m, name, "append", { event: echoInput(payload) });
}

function outputs(log) {
  return log.filter((e) => e.type === ECHO_OUTPUT);
}

test("a subscriber on a binding that is not allowlisted → subscriber_not_allowed (DO, service, HTTP 403), nothing written", async () => {
  const name = uniqueName();
  const before = await snapshot(mf, name);
  const event = echoSubscriptionEvent("nope", uniqueEchoName(), { bindingName: "NOT_ALLOWED" });
  const message = 'binding "NOT_ALLOWED" is not allowed; add it to STREAM_SUBSCRIBER_BINDINGS';

  assertError(await tryCall(mf, name, "append", { event }), "subscriber_not_allowed", message);
  assertError(await tryCall(mf, name, "appendBatch", { events: [{ type: "app/ok" }, event] }), "subscriber_not_allowed", message, "rejects the whole batch");
  // STREAM is never allowed, and ECHO_HOST (allowed) in the same payload shape passes the check.
  const streamBinding = echoSubscriptionEvent("self", "x", { bindingName: "STREAM" });
  assertError(await tryCall(mf, name, "append", { event: streamBinding }), "subscriber_not_allowed");

  const { namespace, path } = splitName(name);
  assertError(await tryCallService(mf, "append", { namespace, path, event }), "subscriber_not_allowed", message);
  const res = await http(mf, "POST", `/api/streams/append?namespace=${namespace}&path=${encodeURIComponent(path)}`, { body: { event } });
  assert.equal(res.status, 403);
  assert.deepEqual(res.json, { error: { code: "subscriber_not_allowed", message } });

  await assertUnchanged(mf, name, before, "refused subscriptions write nothing");
});

test("STREAM is refused even when listed; the allowlist entries are trimmed", async () => {
  const m = await startStreams({ bindings: { STREAM_SUBSCRIBER_BINDINGS: " STREAM , ECHO_HOST " } });
  try {
    const name = uniqueName();
    const before = await snapshot(m, name);
    assertError(await tryCall(m, name, "append", { event: echoSubscriptionEvent("self", "x", { bindingName: "STREAM" }) }), "subscriber_not_allowed");
    await assertUnchanged(m, name, before);
    const { echoName } = await connectEcho(m, name, { key: "trimmed" });
    await appendInput(m, name);
    await waitForEcho(m, echoName, (e) => e.seen === 1);
  } finally {
    await m.dispose();
  }
});

test("subscriber shapes outside docs/protocol.md#outbound-subscribers → invalid_event, nothing written", async () => {
  const name = uniqueName();
  const before = await snapshot(mf, name);
  const base = echoSubscriber("echo-shape");
  const via = base.callable.via;
  const bad = [
    ["built-in subscriber", { type: "built-in" }],
    ["no callable", { type: "callable" }],
    ["callable type", { ...base, callable: { ...base.callable, type: "http" } }],
    ["rpcMethod constructor", { ...base, callable: { ...base.callable, rpcMethod: "constructor" } }],
    ["rpcMethod not an identifier", { ...base, callable: { ...base.callable, rpcMethod: "a-b" } }],
    ["argsMode positional", { ...base, callable: { ...base.callable, argsMode: "positional" } }],
    ["shallowMerge not an object", { ...base, callable: { ...base.callable, transformInput: { shallowMerge: [1] } } }],
    ["DO without a name", { ...base, callable: { ...base.callable, via: { ...via, durableObject: { name: "" } } } }],
    ["DO without durableObject", { ...base, callable: { ...base.callable, via: { ...via, durableObject: undefined } } }],
    ["service with durableObject", { ...base, callable: { ...base.callable, via: { ...via, bindingType: "service" } } }],
    ["unknown bindingType", { ...base, callable: { ...base.callable, via: { ...via, bindingType: "kv" } } }],
  ];
  for (const [note, subscriber] of bad) {
    const outcome = await tryCall(mf, name, "append", {
      event: { type: S("subscription-configured"), payload: { subscriptionKey: "shape", subscriber: JSON.parse(JSON.stringify(subscriber)) } },
    });
    assertError(outcome, "invalid_event", undefined, note);
  }
  await assertUnchanged(mf, name, before);
});

test("EchoHost dial arguments follow docs/protocol.md#outbound-subscribers; an input → output-echoed {seen:1}; the roster and processorsBySlug are set", async () => {
  const name = uniqueName();
  const { namespace, path } = splitName(name);
  const key = "echo";
  const { echoName, configured, connected } = await connectEcho(mf, name, {
    key,
    callableExtra: { rpcMethod: "requestStreamSubscription", argsMode: "object", transformInput: { shallowMerge: { processorName: "echo-example" } } },
  });

  const echo = await inspectEcho(mf, echoName);
  assert.equal(echo.dials.length, 1, "one dial");
  const dial = echo.dials[0];
  assert.deepEqual(
    Object.keys(dial).sort(),
    ["namespace", "path", "processorName", "connectionId", "streamMaxOffset", "firstOffset", "streamRuntimeState", "subscriptionConfiguredEvent", "subscriptionKey"].sort(),
  );
  assert.equal(dial.firstOffset, 1, "the first kept offset: nothing was removed");
  assert.equal(dial.namespace, namespace);
  assert.equal(dial.path, path);
  assert.equal(dial.subscriptionKey, key);
  assert.equal(dial.processorName, "echo-example", "shallowMerge goes into the dial arguments");
  assert.ok(dial.streamMaxOffset >= configured.offset && dial.streamMaxOffset < connected.offset, `streamMaxOffset ${dial.streamMaxOffset}`);
  assert.deepEqual(dial.subscriptionConfiguredEvent, {
    offset: configured.offset,
    type: S("subscription-configured"),
    payload: configured.payload,
    createdAt: configured.createdAt,
  });
  assert.deepEqual(Object.keys(dial.streamRuntimeState), ["coreProcessorState"]);
  const dialState = dial.streamRuntimeState.coreProcessorState;
  assert.equal(dialState.maxOffset, dial.streamMaxOffset);
  assert.equal(dialState.subscriptionsByKey[key].latestConfiguredEvent.offset, configured.offset);

  // The connected fact carries the reply's descriptor.
  assert.deepEqual(connected.payload, { subscriptionKey: key, direction: "outbound", subscriber: { processor: { announcement: ECHO_ANNOUNCEMENT } } });

  const input = await appendInput(mf, name, { text: "hi" });
  await waitForEcho(mf, echoName, (e) => e.seen === 1);
  const log = await waitForLog(mf, name, (l) => outputs(l).length === 1);
  const [out] = outputs(log);
  assert.deepEqual(out.payload, { seen: 1 });
  assert.equal(out.idempotencyKey, `echo-example:${key}:${input.offset}:0`);
  assert.ok(out.offset > input.offset);

  const echoAfter = await inspectEcho(mf, echoName);
  assert.equal(echoAfter.checkpoint, input.offset);
  assert.deepEqual(echoAfter.delivered, [input.offset]);
  assert.equal(echoAfter.lastBatch.processorName, "echo-example", "shallowMerge goes into every processEventBatch argument");
  assert.equal(echoAfter.lastBatch.subscriptionKey, key);
  assert.equal(echoAfter.lastBatch.stateMaxOffset, echoAfter.lastBatch.streamMaxOffset);
  for (const k of ["namespace", "path", "subscriptionKey", "events", "streamMaxOffset", "state"]) assert.ok(echoAfter.lastBatch.keys.includes(k), `batch argument ${k}`);
  // The filter (eventTypes from the reply) applies: only inputs are delivered.
  assert.ok(echoAfter.received.every((o) => log.find((e) => e.offset === o).type === ECHO_INPUT), "only input events are delivered");

  const st = await call(mf, name, "runtimeState");
  assert.deepEqual(st.coreProcessorState.connectionsByKey[key], {
    direction: "outbound",
    connectedAtOffset: connected.offset,
    subscriber: { processor: { announcement: ECHO_ANNOUNCEMENT } },
  });
  assert.deepEqual(st.coreProcessorState.processorsBySlug["echo-example"], { announcedAtOffset: connected.offset, announcement: ECHO_ANNOUNCEMENT });
  const rc = st.runtime.connections[key];
  assert.equal(rc.direction, "outbound");
  assert.ok(rc.batchesSent >= 1);
  assert.ok(rc.eventsSent >= 1);
  assert.match(rc.lastDeliveredAt, /Z$/);
  assert.deepEqual(st.runtime.redial, {});
});

test("echo 1, abort(), input 2 → seen == 2; disconnected(delivery-failed); the checkpoint reaches input 2", async () => {
  const name = uniqueName();
  const key = "echo";
  const { echoName } = await connectEcho(mf, name, { key });
  await appendInput(mf, name, { n: 1 });
  await waitForEcho(mf, echoName, (e) => e.seen === 1);

  await abortEcho(mf, echoName);
  const input2 = await appendInput(mf, name, { n: 2 });
  const echo = await waitForEcho(mf, echoName, (e) => e.seen === 2 && e.checkpoint === input2.offset, { timeoutMs: 30_000 });
  assert.equal(echo.seen, 2);

  const log = await waitForLog(mf, name, (l) => outputs(l).length === 2);
  const failed = facts(log, "subscriber-disconnected", { subscriptionKey: key, reason: "delivery-failed" });
  assert.equal(failed.length, 1, "one delivery-failed fact");
  assert.ok(failed[0].offset > input2.offset);
  assert.deepEqual(outputs(log).map((e) => e.payload), [{ seen: 1 }, { seen: 2 }], "no duplicate outputs");
  // Re-dialled: a second connected after the failure.
  const reconnected = facts(log, "subscriber-connected", { subscriptionKey: key }).filter((e) => e.offset > failed[0].offset);
  assert.equal(reconnected.length, 1);
  // The first success after the dial reset the failures.
  await waitFor(() => runtimeState(mf, name), (st) => st.runtime.redial[key] === undefined, { what: "redial entry cleared" });
});

test("a dial that always throws → redial[key].failures reaches 3 without appends, at back-offs of at least 200/400/800 ms", async () => {
  const name = uniqueName();
  const key = "failing";
  const echoName = uniqueEchoName();
  await configureEcho(mf, echoName, { failDials: true });
  const configured = await call(mf, name, "append", { event: echoSubscriptionEvent(key, echoName) });
  const configuredAt = Date.parse(configured.createdAt);

  // retryAt(n) = failure time + 200·2^(n−1), and failure n+1 happens at or after retryAt(n), so
  // retryAt(n+1) − retryAt(n) ≥ 200·2^n: the back-off doubles. Polling may miss a failure on a
  // loaded machine, so this checks each pair it saw one after the other; only these lower bounds are
  // causal (load only adds to each gap), how promptly the alarm fires is the bench's business.
  const seen = new Map([[0, configuredAt]]); // failures → retryAt (ms); 0: the configuration
  const consecutive = () => [...seen.keys()].filter((n) => n > 0 && seen.has(n - 1));
  const st = await waitFor(
    () => runtimeState(mf, name),
    (s) => {
      const r = s.runtime.redial[key];
      if (r && !seen.has(r.failures)) seen.set(r.failures, Date.parse(r.retryAt));
      return r?.failures >= 3 && consecutive().length >= 2;
    },
    { timeoutMs: 60_000, intervalMs: 20, what: "3 failures, two of them seen one after the other" },
  );
  assert.ok(st.runtime.redial[key].failures >= 3);
  assert.equal(st.runtime.connections[key], undefined, "no connection");
  const failures = [...seen.keys()];
  assert.deepEqual(failures, [...failures].sort((a, b) => a - b), "failures only count up");
  for (const n of consecutive()) {
    const gap = seen.get(n) - seen.get(n - 1);
    assert.ok(gap >= 200 * 2 ** (n - 1) - 10, `back-off ${n} ≥ ${200 * 2 ** (n - 1)} ms after failure ${n - 1}, got ${gap}`);
  }

  // The next dial is scheduled at the back-off's retryAt: the machine wants the alarm then and the
  // platform holds it. Sampled between two dials (no dial started or failed while sampling).
  const between = await waitFor(
    async () => {
      const before = (await runtimeState(mf, name)).runtime.redial[key];
      const pending = await call(mf, name, "pendingWork");
      return { before, pending, after: (await runtimeState(mf, name)).runtime.redial[key] };
    },
    ({ before, pending, after }) => before.failures === after.failures && pending.dialsStarted === after.failures && pending.dialing.length === 0,
    { timeoutMs: 30_000, what: "a pendingWork report between two dials" },
  );
  assert.equal(between.pending.outboundAlarmAt, Date.parse(between.after.retryAt), "the machine wants the alarm at retryAt");
  assert.equal(between.pending.alarmAt, Date.parse(between.after.retryAt), "the platform's alarm is set for retryAt");

  const echo = await inspectEcho(mf, echoName);
  assert.ok(echo.dials.length >= 3, `dialled ${echo.dials.length} times`);
  const log = await readAll(mf, name);
  assert.equal(log.at(-1).offset, configured.offset, "failed dials append nothing");
  assert.equal(st.coreProcessorState.maxOffset, configured.offset);
});

test("subscription-removed → closed with that reason; no redial entry is left", async () => {
  const name = uniqueName();
  const key = "echo";
  const { echoName } = await connectEcho(mf, name, { key });
  await appendInput(mf, name);
  await waitForEcho(mf, echoName, (e) => e.seen === 1);

  const removed = await call(mf, name, "append", { event: { type: S("subscription-removed"), payload: { subscriptionKey: key } } });
  const log = await waitForLog(mf, name, (l) => facts(l, "subscriber-disconnected", { subscriptionKey: key }).length >= 1);
  const disc = facts(log, "subscriber-disconnected", { subscriptionKey: key });
  assert.equal(disc.length, 1);
  assert.deepEqual(disc[0].payload, { subscriptionKey: key, reason: "subscription-removed" });
  assert.ok(disc[0].offset > removed.offset);

  const st = await call(mf, name, "runtimeState");
  assert.equal(st.runtime.connections[key], undefined);
  assert.deepEqual(st.runtime.redial, {});
  assert.equal(st.coreProcessorState.subscriptionsByKey[key], undefined);
  assert.equal(st.coreProcessorState.connectionsByKey[key], undefined);

  // Nothing is delivered any more, and nothing re-dials. Sentinel: another subscription gets the
  // same input; by then the removed one would have been dialled and fed.
  const watcher = await connectEcho(mf, name, { key: "watcher" });
  const input = await appendInput(mf, name);
  await waitForEcho(mf, watcher.echoName, (e) => e.checkpoint >= input.offset, { what: "the watcher has the input" });
  const echo = await inspectEcho(mf, echoName);
  assert.equal(echo.seen, 1);
  assert.equal(echo.dials.length, 1);
});

test("removing a key that is backing off deletes its redial entry and stops the dials", async () => {
  const name = uniqueName();
  const key = "failing";
  const echoName = uniqueEchoName();
  // A second failing subscription, configured with it, backs off on the same schedule: its next
  // dial is the sentinel for the removed key's (which must not come).
  const witnessEcho = uniqueEchoName();
  await configureEcho(mf, echoName, { failDials: true });
  await configureEcho(mf, witnessEcho, { failDials: true });
  await call(mf, name, "appendBatch", { events: [echoSubscriptionEvent(key, echoName), echoSubscriptionEvent("witness", witnessEcho)] });
  await waitFor(() => runtimeState(mf, name), (s) => s.runtime.redial[key]?.failures >= 1 && s.runtime.redial.witness?.failures >= 1, { what: "a failure each" });

  const removed = await call(mf, name, "append", { event: { type: S("subscription-removed"), payload: { subscriptionKey: key } } });
  const st = await waitFor(() => runtimeState(mf, name), (s) => s.runtime.redial[key] === undefined, { what: "redial entry removed" });
  assert.deepEqual(Object.keys(st.runtime.redial), ["witness"]);
  const dials = (await inspectEcho(mf, echoName)).dials.length;
  const witnessDials = (await inspectEcho(mf, witnessEcho)).dials.length;
  await waitForEcho(mf, witnessEcho, (e) => e.dials.length >= witnessDials + 2, { timeoutMs: 30_000, what: "two more witness dials" });
  assert.equal((await inspectEcho(mf, echoName)).dials.length, dials, "no dial after removal");
  assert.equal((await runtimeState(mf, name)).runtime.redial[key], undefined);
  const log = await readAll(mf, name);
  assert.equal(log.at(-1).offset, removed.offset, "no presence fact: it was never connected");
});

test("runIdleTeardownNow() → disconnected(idle); a 2nd call appends nothing; the next domain append re-dials (seen == 2)", async () => {
  const name = uniqueName();
  const key = "echo";
  const { echoName } = await connectEcho(mf, name, { key });
  await appendInput(mf, name, { n: 1 });
  await waitForEcho(mf, echoName, (e) => e.seen === 1);
  await waitForLog(mf, name, (l) => outputs(l).length === 1);

  assert.equal(await call(mf, name, "runIdleTeardownNow"), undefined);
  let log = await waitForLog(mf, name, (l) => facts(l, "subscriber-disconnected", { subscriptionKey: key }).length === 1);
  assert.deepEqual(facts(log, "subscriber-disconnected", { subscriptionKey: key })[0].payload, { subscriptionKey: key, reason: "idle" });
  let st = await call(mf, name, "runtimeState");
  assert.equal(st.runtime.connections[key], undefined);
  assert.ok(st.coreProcessorState.subscriptionsByKey[key], "the configuration is kept");

  const before = await readAll(mf, name);
  assert.equal(await call(mf, name, "runIdleTeardownNow"), undefined);
  // Sentinel: a system event (it re-dials nothing) appended after the 2nd call.
  const marker = await call(mf, name, "append", { event: { type: S("error-occurred"), payload: { message: "sentinel" } } });
  assert.deepEqual(await readAll(mf, name), [...before, marker], "a 2nd call appends nothing (and nothing re-dials)");
  assert.equal((await inspectEcho(mf, echoName)).dials.length, 1);

  const input2 = await appendInput(mf, name, { n: 2 });
  const echo = await waitForEcho(mf, echoName, (e) => e.seen === 2);
  assert.equal(echo.dials.length, 2, "re-dialled once");
  assert.equal(echo.checkpoint, input2.offset);
  log = await readAll(mf, name);
  assert.equal(facts(log, "subscriber-connected", { subscriptionKey: key }).length, 2);
  st = await call(mf, name, "runtimeState");
  assert.equal(st.runtime.connections[key]?.direction, "outbound");
});

test("STREAM_IDLE_TEARDOWN_MS=500 → disconnected(idle) soon; S/resumed does not re-dial; after the deadline simulateHibernation() dials nothing; a domain append then dials", async () => {
  const m = await startStreams({ bindings: { STREAM_IDLE_TEARDOWN_MS: "500" } });
  try {
    const name = uniqueName();
    const key = "echo";
    const { echoName } = await connectEcho(m, name, { key });
    await appendInput(m, name, { n: 1 });
    await waitForEcho(m, echoName, (e) => e.seen === 1);

    // Item 70: the alarm tears the idle connection down (how promptly it fires is the bench's business).
    let log = await waitForLog(m, name, (l) => facts(l, "subscriber-disconnected", { subscriptionKey: key }).length === 1, { timeoutMs: 30_000 });
    const [idle] = facts(log, "subscriber-disconnected", { subscriptionKey: key });
    assert.deepEqual(idle.payload, { subscriptionKey: key, reason: "idle" });
    const lastCommit = Date.parse(log.filter((e) => e.offset < idle.offset).at(-1).createdAt);
    assert.ok(Date.parse(idle.createdAt) - lastCommit >= 450, "not before the 500 ms deadline");
    let st = await call(m, name, "runtimeState");
    assert.equal(st.runtime.connections[key], undefined);
    assert.ok(st.coreProcessorState.subscriptionsByKey[key], "the configuration is kept");

    const resumed = await call(m, name, "append", { event: { type: S("resumed"), payload: {} } });
    // Sentinel: the object reports nothing in flight and no alarm, so nothing can follow without a call.
    let pending = await waitForNothingPending(m, name);
    assert.equal(pending.dialsStarted, 1, "S/resumed does not re-dial: this incarnation dialled once, at the configuration");
    log = await readAll(m, name);
    assert.equal(log.at(-1).offset, resumed.offset, "S/resumed does not re-dial (no new connected)");
    assert.equal((await inspectEcho(m, echoName)).dials.length, 1);

    // Item 71: the deadline has passed → a wake does not re-dial.
    await call(m, name, "simulateHibernation");
    pending = await waitForNothingPending(m, name);
    assert.equal(pending.dialsStarted, 0, "the woken incarnation dialled nothing and scheduled nothing");
    log = await readAll(m, name);
    const afterWake = log.filter((e) => e.offset > resumed.offset);
    assert.deepEqual(afterWake.map((e) => e.type), [S("woken")], "the wake appends only woken");
    assert.equal((await inspectEcho(m, echoName)).dials.length, 1, "no dial on woken");

    const input2 = await appendInput(m, name, { n: 2 });
    const echo = await waitForEcho(m, echoName, (e) => e.seen === 2);
    assert.equal(echo.dials.length, 2, "the domain append dialled");
    assert.equal(echo.checkpoint, input2.offset);
    st = await call(m, name, "runtimeState");
    assert.ok(facts(await readAll(m, name), "subscriber-connected", { subscriptionKey: key }).length === 2);
    assert.deepEqual(st.runtime.redial, {});
  } finally {
    await m.dispose();
  }
});

test("kill() before each of 5 inputs → seen goes 1, 2, 3, 4, 5", async () => {
  const name = uniqueName();
  const key = "echo";
  const { echoName } = await connectEcho(mf, name, { key });
  const inputs = [];
  for (let n = 1; n <= 5; n++) {
    assert.equal(await call(mf, name, "kill"), undefined);
    const outcome = await tryCallAfterKill(mf, name, "append", { event: echoInput({ n }) });
    assert.equal(outcome.ok, true, JSON.stringify(outcome));
    inputs.push(outcome.result.offset);
    const echo = await waitForEcho(mf, echoName, (e) => e.seen === n, { timeoutMs: 30_000, what: `seen == ${n}` });
    assert.equal(echo.checkpoint, outcome.result.offset);
  }
  const echo = await inspectEcho(mf, echoName);
  assert.deepEqual(echo.delivered, inputs);
  assert.equal(echo.seen, 5);
  const log = await waitForLog(mf, name, (l) => outputs(l).length === 5);
  assert.deepEqual(outputs(log).map((e) => e.payload.seen), [1, 2, 3, 4, 5]);
});

test("after echo 1, abort() then kill() then an input → seen == 2", async () => {
  const name = uniqueName();
  const { echoName } = await connectEcho(mf, name);
  await appendInput(mf, name, { n: 1 });
  await waitForEcho(mf, echoName, (e) => e.seen === 1);
  await abortEcho(mf, echoName);
  assert.equal(await call(mf, name, "kill"), undefined);
  const outcome = await tryCallAfterKill(mf, name, "append", { event: echoInput({ n: 2 }) });
  assert.equal(outcome.ok, true, JSON.stringify(outcome));
  const echo = await waitForEcho(mf, echoName, (e) => e.seen === 2, { timeoutMs: 30_000 });
  assert.equal(echo.checkpoint, outcome.result.offset);
  const log = await waitForLog(mf, name, (l) => outputs(l).length === 2);
  assert.deepEqual(outputs(log).map((e) => e.payload), [{ seen: 1 }, { seen: 2 }]);
});

test("a slow subscriber (200 ms per batch) never has two deliveries in flight and misses no input", async () => {
  const name = uniqueName();
  const { echoName } = await connectEcho(mf, name, { setup: { delayMs: 200 } });
  const inputs = [];
  for (let n = 1; n <= 6; n++) inputs.push((await appendInput(mf, name, { n })).offset);
  await waitForEcho(mf, echoName, (e) => e.inFlight === 1, { what: "a delivery in flight" });
  const batch = await call(mf, name, "appendBatch", { events: Array.from({ length: 5 }, (_, i) => echoInput({ n: 7 + i })) });
  inputs.push(...batch.map((e) => e.offset));
  for (let n = 12; n <= 15; n++) inputs.push((await appendInput(mf, name, { n })).offset);

  const echo = await waitForEcho(mf, echoName, (e) => e.seen === 15, { timeoutMs: 30_000 });
  assert.equal(echo.maxInFlight, 1, "at most one processEventBatch in flight");
  assert.deepEqual(echo.delivered, inputs, "every input, in order");
  assertAscending(echo.received.map((offset) => ({ offset })), "received offsets");
  assert.deepEqual(echo.received, inputs, "each input delivered exactly once (nothing else passes the filter)");
  assert.ok(echo.batches < 15, `wakes during a delivery coalesce (${echo.batches} batches)`);
  const log = await waitForLog(mf, name, (l) => outputs(l).length === 15);
  assert.deepEqual(outputs(log).map((e) => e.payload.seen), Array.from({ length: 15 }, (_, i) => i + 1));
});
