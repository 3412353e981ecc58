// Outbound subscribers and processors whose checkpoint retention removed (docs/protocol.md#retention,
// docs/processors.md#when-retention-removed-the-checkpoint): the stream refuses such a checkpoint
// as `trimmed` once and stops dialling the key (runtime.redial, the log); the processor host halts
// by default, with its halt report, and with `onTrimmed: "startFromFirstKept"` (or, once halted,
// after `resume({skip: true})`) goes on from the first kept offset, each kept event once. Real DO SQLite, real processor Durable Objects; retention
// without an archive removes hot rows (the runArchiveNow hook runs it to the end).
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import { call, uniqueName } from "./helpers/mf.mjs";
import { S } from "./helpers/assertions.mjs";
import { echoSubscriptionEvent, echoInput, inspectEcho, configureEcho, uniqueEchoName, waitFor, waitForEcho } from "./helpers/subscribers.mjs";
import { startWithProcessors, processorSubscription, processorStatus, tryHost, callHost, uniqueHostName } from "./helpers/processors.mjs";

let mf;
before(async () => {
  mf = await startWithProcessors();
});
after(async () => {
  await mf?.dispose();
});

const removed = (key) => ({ type: S("subscription-removed"), payload: { subscriptionKey: key } });
const adds = (count, from = 0) => Array.from({ length: count }, (_, i) => ({ type: "app/add", payload: { n: from + i + 1 } }));
const trimmedMessage = (needed, first) => `Offset ${needed} was removed by retention; the first kept offset is ${first}.`;
/** Every kept event of the stream, in order. */
async function readKept(name) {
  const { firstOffset } = (await runtime(name)).storage;
  const out = [];
  for (;;) {
    const page = await call(mf, name, "getEvents", { afterOffset: out.at(-1)?.offset ?? firstOffset - 1, limit: 1000 });
    if (page.length === 0) return out;
    out.push(...page);
  }
}
const runtime = async (name) => (await call(mf, name, "runtimeState")).runtime;

const retention = (maxEvents) => ({ type: S("configured"), payload: { config: { retention: { maxEvents } } } });

/**
 * While the subscription `key` is removed, appends `events` and keeps only the newest 40 events,
 * then lifts the limit so nothing more goes; returns the first kept offset.
 */
async function trimWhileAway(name, key, events) {
  await call(mf, name, "append", { event: removed(key) });
  await call(mf, name, "appendBatch", { events });
  await call(mf, name, "append", { event: retention(40) });
  const report = await call(mf, name, "runArchiveNow", {});
  assert.equal(report.error, null);
  await call(mf, name, "append", { event: retention(1_000_000) });
  return report.storage.firstOffset;
}

/** status() of the `kept` processor (KeptProcessors) of host `host` for stream `name`. */
async function keptStatus(host, name) {
  const i = name.indexOf(":");
  const outcome = await tryHost(mf, host, "processorStatus", { namespace: name.slice(0, i), path: name.slice(i + 1), slug: "kept" }, { kept: true });
  assert.equal(outcome.ok, true, outcome.error);
  return outcome.result;
}

test("a subscriber that answers a trimmed checkpoint is refused as trimmed once and not dialled again until configured again", async () => {
  const name = uniqueName("trim-out");
  const echo = uniqueEchoName();
  const witness = uniqueHostName("witness");
  await call(mf, name, "append", { event: echoSubscriptionEvent("echo", echo) });
  const first5 = await call(mf, name, "appendBatch", { events: Array.from({ length: 5 }, (_, i) => echoInput({ i })) });
  await waitForEcho(mf, echo, (s) => s.delivered.length === 5, { what: "the first inputs delivered" });
  const checkpoint = (await inspectEcho(mf, echo)).status.checkpoint;
  const first = await trimWhileAway(name, "echo", Array.from({ length: 100 }, (_, i) => echoInput({ i: 5 + i })));
  assert.ok(first > checkpoint + 1, `retention removed events after the checkpoint ${checkpoint}: first kept ${first}`);

  // The subscriber ignores firstOffset and answers its checkpoint: the stream refuses it.
  await configureEcho(mf, echo, { ignoreFirstOffset: true });
  const refusedAt = (await call(mf, name, "append", { event: echoSubscriptionEvent("echo", echo) })).offset;
  const { redial } = await waitFor(() => runtime(name), (r) => r.redial.echo?.stopped, { what: "the key stopped" });
  const cause = { code: "trimmed", message: trimmedMessage(checkpoint + 1, first) };
  assert.deepEqual(redial.echo, { failures: 1, retryAt: null, stopped: true, lastError: cause });

  // Neither a domain append, nor a boot, nor the alarm dials it again: a witness subscription
  // configured after them has the last event while the stopped key still has its two dials.
  await call(mf, name, "appendBatch", { events: [echoInput({ i: "after" })] });
  await call(mf, name, "simulateHibernation");
  await call(mf, name, "append", { event: processorSubscription("witness", witness, undefined, "KEPT_PROCESSORS") });
  const last = await call(mf, name, "append", { event: { type: "app/add", payload: { n: 1 } } });
  await waitFor(() => keptStatus(witness, name), (s) => s.checkpoint >= last.offset, { what: "the witness has the last event" });
  const book = await inspectEcho(mf, echo);
  assert.equal(book.dials.length, 2, "the first dial and the refused one");
  assert.equal(book.dials[1].firstOffset, first, "the dial carries the first kept offset");
  assert.deepEqual(book.delivered, first5.map((e) => e.offset), "nothing delivered after the refusal");
  assert.deepEqual((await runtime(name)).redial.echo, { failures: 1, retryAt: null, stopped: true, lastError: cause }, "still stopped after the boot");
  const log = await readKept(name);
  const connected = log.filter((e) => e.type === S("subscriber-connected") && e.payload.subscriptionKey === "echo" && e.offset > refusedAt);
  assert.deepEqual(connected, [], "the refused dial opened no connection");

  // A new configuration clears it: the subscriber (now reading firstOffset) halts as trimmed itself.
  await configureEcho(mf, echo, { ignoreFirstOffset: false });
  await call(mf, name, "append", { event: echoSubscriptionEvent("echo", echo) });
  const again = await waitFor(() => inspectEcho(mf, echo), (b) => b.dials.length === 3 && b.status.halted, { what: "the third dial" });
  assert.equal(again.status.lastError.code, "trimmed");
  const { redial: afterwards } = await waitFor(() => runtime(name), (r) => r.redial.echo?.stopped, { what: "stopped again" });
  assert.deepEqual(afterwards.echo.lastError, cause);
});

test("a processor whose checkpoint was trimmed halts by default, with its halt report; the stream stops dialling it", async () => {
  const name = uniqueName("trim-halt");
  const host = uniqueHostName();
  await call(mf, name, "append", { event: processorSubscription("counter", host, "counter") });
  const firstAdds = await call(mf, name, "appendBatch", { events: adds(5) });
  const done = await waitFor(() => processorStatus(mf, host, name, "counter"), (s) => s.state.count === 5, { what: "five inputs reduced" });
  const first = await trimWhileAway(name, "counter", adds(100, 5));
  assert.ok(first > done.checkpoint + 1, `first kept ${first}, checkpoint ${done.checkpoint}`);

  await call(mf, name, "append", { event: processorSubscription("counter", host, "counter") });
  const halted = await waitFor(() => processorStatus(mf, host, name, "counter"), (s) => s.halted, { what: "the processor halted" });
  const message = trimmedMessage(done.checkpoint + 1, first);
  assert.deepEqual(halted.lastError, { offset: done.checkpoint + 1, name: "StreamError", code: "trimmed", message });
  assert.equal(halted.checkpoint, done.checkpoint, "the checkpoint stays");
  assert.deepEqual(halted.state.offsets, firstAdds.map((e) => e.offset), "the state stays");
  const { redial } = await waitFor(() => runtime(name), (r) => r.redial.counter?.stopped, { what: "the key stopped" });
  assert.deepEqual(redial.counter, { failures: 1, retryAt: null, stopped: true, lastError: { code: "trimmed", message } });
  const log = await waitFor(() => readKept(name), (l) => l.some((e) => e.type === S("error-occurred")), { what: "the halt report" });
  const reports = log.filter((e) => e.type === S("error-occurred"));
  assert.equal(reports.length, 1);
  assert.equal(reports[0].payload.message, `processor "counter" 1 halted at checkpoint ${done.checkpoint}: trimmed: ${message}`);
  assert.deepEqual(reports[0].payload.error, { name: "StreamError", message, code: "trimmed" });
});

test('with onTrimmed: "startFromFirstKept" a processor goes on from the first kept offset, each kept event once', async () => {
  const name = uniqueName("trim-kept");
  const host = uniqueHostName("kept");
  const status = () => keptStatus(host, name);
  await call(mf, name, "append", { event: processorSubscription("kept", host, undefined, "KEPT_PROCESSORS") });
  const firstAdds = await call(mf, name, "appendBatch", { events: adds(5) });
  const done = await waitFor(status, (s) => s.state.count === 5, { what: "five inputs reduced" });
  const first = await trimWhileAway(name, "kept", adds(100, 5));
  assert.ok(first > done.checkpoint + 1, `first kept ${first}, checkpoint ${done.checkpoint}`);

  await call(mf, name, "append", { event: processorSubscription("kept", host, undefined, "KEPT_PROCESSORS") });
  const later = await call(mf, name, "appendBatch", { events: adds(3, 105) });
  const max = later.at(-1).offset;
  const caughtUp = await waitFor(status, (s) => s.checkpoint >= max, { what: "the processor caught up", timeoutMs: 30_000 });
  assert.equal(caughtUp.halted, false);
  const log = await readKept(name);
  const keptInputs = log.filter((e) => e.type === "app/add" && e.offset >= first).map((e) => e.offset);
  assert.ok(keptInputs.length > 3, "kept inputs from before the refusal and after it");
  assert.deepEqual(caughtUp.state.offsets, [...firstAdds.map((e) => e.offset), ...keptInputs], "the old state, then every kept input once, in order");
  const outputs = log.filter((e) => e.type === "app/kept-out").map((e) => e.payload.input);
  assert.deepEqual(outputs.filter((o) => o >= first), keptInputs, "onEvent ran once for every kept input");
  assert.equal((await runtime(name)).redial.kept, undefined, "no failure: the dial was accepted");
});

test("after a trimmed halt, resume() halts again at the next dial with the same error; resume({skip: true}) goes on from the first kept offset", async () => {
  const name = uniqueName("trim-resume");
  const host = uniqueHostName();
  const [namespace, path] = [name.slice(0, name.indexOf(":")), name.slice(name.indexOf(":") + 1)];
  const status = () => processorStatus(mf, host, name, "counter");
  const resume = (skip) => callHost(mf, host, "resumeProcessor", { namespace, path, slug: "counter", ...(skip === undefined ? {} : { skip }) });
  await call(mf, name, "append", { event: processorSubscription("counter", host, "counter") });
  const firstAdds = await call(mf, name, "appendBatch", { events: adds(5) });
  const done = await waitFor(status, (s) => s.state.count === 5, { what: "five inputs reduced" });
  const first = await trimWhileAway(name, "counter", adds(100, 5));
  assert.ok(first > done.checkpoint + 1, `first kept ${first}, checkpoint ${done.checkpoint}`);
  await call(mf, name, "append", { event: processorSubscription("counter", host, "counter") });
  const halted = await waitFor(status, (s) => s.halted, { what: "the trimmed halt" });
  const failure = { offset: done.checkpoint + 1, name: "StreamError", code: "trimmed", message: trimmedMessage(done.checkpoint + 1, first) };
  assert.deepEqual(halted.lastError, failure);

  // Plain resume: the checkpoint is still trimmed, so the next dial halts again, the same way, once.
  const resumed = await resume();
  assert.equal(resumed.halted, false);
  assert.equal(resumed.skipOffset, null);
  await call(mf, name, "append", { event: processorSubscription("counter", host, "counter") });
  const again = await waitFor(status, (s) => s.halted, { what: "halted again" });
  assert.deepEqual(again.lastError, failure);
  assert.equal(again.checkpoint, done.checkpoint, "the checkpoint stays");
  assert.deepEqual(again.state.offsets, firstAdds.map((e) => e.offset), "the state stays");
  const { redial } = await waitFor(() => runtime(name), (r) => r.redial.counter?.stopped, { what: "the key stopped again" });
  assert.deepEqual(redial.counter, { failures: 1, retryAt: null, stopped: true, lastError: { code: "trimmed", message: failure.message } }, "refused once, not dialled in a loop");
  const reports = (await readKept(name)).filter((e) => e.type === S("error-occurred"));
  assert.equal(reports.length, 1, "halting again at the same checkpoint adds no second report");

  // resume({skip: true}) steps over the removed events: the next dial starts after firstOffset − 1.
  const skipping = await resume(true);
  assert.equal(skipping.halted, false);
  assert.equal(skipping.skipOffset, done.checkpoint + 1, "the first removed offset, until the checkpoint passes it");
  await call(mf, name, "append", { event: processorSubscription("counter", host, "counter") });
  const later = await call(mf, name, "appendBatch", { events: adds(3, 105) });
  const caughtUp = await waitFor(status, (s) => s.checkpoint >= later.at(-1).offset, { what: "the processor caught up", timeoutMs: 30_000 });
  assert.equal(caughtUp.halted, false);
  assert.equal(caughtUp.skipOffset, null);
  assert.equal(caughtUp.lastError, null);
  const log = await readKept(name);
  const keptInputs = log.filter((e) => e.type === "app/add" && e.offset >= first).map((e) => e.offset);
  assert.ok(keptInputs.length > 3, "kept inputs from before the skip and after it");
  assert.deepEqual(caughtUp.state.offsets, [...firstAdds.map((e) => e.offset), ...keptInputs], "the old state, then every kept input once, in order");
  assert.equal((await runtime(name)).redial.counter, undefined, "the dial was accepted");
});
