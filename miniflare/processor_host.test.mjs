// ProcessorHost rules, driven with hand-built dials and batches against the fixture host
// (miniflare/helpers/processor-fixture.mjs), its appends going to a real stream: the dial reply,
// processor selection, checkpoint = throughOffset, skipping what is at or below the checkpoint,
// gaps, superseded connections (also while a slow batch is in flight), strict serial order,
// retries without double counting, the halt with its one error-occurred, and resume.
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import { uniqueName, splitName } from "./helpers/mf.mjs";
import { S, readAll } from "./helpers/assertions.mjs";
import { waitFor } from "./helpers/subscribers.mjs";
import { startWithProcessors, tryHost, callHost, uniqueHostName } from "./helpers/processors.mjs";

let mf;
before(async () => {
  mf = await startWithProcessors();
});
after(async () => {
  await mf?.dispose();
});

const add = (offset, n, extra = {}) => ({ type: "app/add", payload: { n, ...extra }, offset, createdAt: "2026-01-01T00:00:00.000Z" });

/** A fresh host and stream; dial(conn) and batch(conn, after, through, events) on them. */
function setup(slug = "counter", { viaClient = false } = {}) {
  const host = uniqueHostName();
  const name = uniqueName("proc");
  const target = splitName(name);
  const on = (method, arg) => tryHost(mf, host, method, arg, { viaClient });
  const ok = async (method, arg) => {
    const outcome = await on(method, arg);
    if (!outcome.ok) throw new Error(outcome.error);
    return outcome.result;
  };
  return {
    host,
    name,
    target,
    dial: (connectionId, extra = {}) => on("requestStreamSubscription", { ...target, subscriptionKey: "k", connectionId, processorName: slug, ...extra }),
    batch: (connectionId, afterOffset, throughOffset, events) =>
      on("processEventBatch", { ...target, subscriptionKey: "k", connectionId, processorName: slug, afterOffset, throughOffset, events }),
    status: () => ok("processorStatus", { ...target, slug }),
    resume: (skip) => ok("resumeProcessor", { ...target, slug, skip }),
    outputs: async () => (await readAll(mf, name)).filter((e) => e.type === "app/summed"),
  };
}

function assertOk(outcome, note) {
  assert.equal(outcome.ok, true, `${note ?? "call"}: ${outcome.error}`);
  return outcome.result;
}

function assertCode(outcome, code, note) {
  assert.equal(outcome.ok, false, `${note ?? "call"} should fail with ${code}`);
  assert.match(outcome.error, new RegExp(`^${code}: `), note);
}

test("dial reply: replayAfterOffset = checkpoint, eventTypes, the announcement with consumes", async () => {
  const p = setup();
  assert.deepEqual(assertOk(await p.dial("A")), {
    replayAfterOffset: 0,
    eventTypes: ["app/add"],
    subscriber: { processor: { announcement: { slug: "counter", version: "1", consumes: ["app/add"] } } },
  });
  assertOk(await p.batch("A", 0, 4, [add(3, 5)]));
  assert.equal(assertOk(await p.dial("B")).replayAfterOffset, 4);
});

test("a dial with a new streamId (the stream was reset) starts over from offset 0 with a fresh state", async () => {
  const p = setup();
  const life = (streamId) => ({ streamRuntimeState: { coreProcessorState: { streamId } } });
  assertOk(await p.dial("A", life("s-1")));
  assertOk(await p.batch("A", 0, 4, [add(3, 5)]));
  assert.equal(assertOk(await p.dial("B", life("s-1"))).replayAfterOffset, 4, "same life: resume at the checkpoint");
  assert.equal(assertOk(await p.dial("C", life("s-2"))).replayAfterOffset, 0, "new life: replay everything");
  const st = await p.status();
  assert.deepEqual([st.checkpoint, st.state.total, st.streamId], [0, 0, "s-2"]);
});

test("several processors: no processorName or an unknown one → processor_unknown with a clear message", async () => {
  const p = setup();
  const none = await tryHost(mf, p.host, "requestStreamSubscription", { ...p.target, connectionId: "A" });
  assertCode(none, "processor_unknown");
  assert.match(none.error, /several processors \("counter", "tally"\); name one with transformInput\.shallowMerge: \{processorName: "<slug>"\}/);
  const unknown = await p.dial("A", { processorName: "nope" });
  assert.equal(unknown.error, 'processor_unknown: no processor "nope" in this host (it has "counter", "tally")');
  assertCode(await p.batch("A", 0, 1, []), "processor_not_dialled", "no dial accepted yet");
});

for (const viaClient of [false, true]) {
  test(`checkpoint = throughOffset; events at or below it are skipped; one output per input, keyed <slug>:<subscription key>:<offset>:0 (appending through ${viaClient ? "createStreamsClient" : "the service binding"})`, async () => {
    const p = setup("counter", { viaClient });
    assertOk(await p.dial("A"));
    assert.deepEqual(assertOk(await p.batch("A", 0, 4, [add(1, 2), add(3, 5)])), { outcome: "committed", checkpoint: 4 });
    // Overlapping redelivery: 1 and 3 are at or below the checkpoint, only 6 is new.
    assert.deepEqual(assertOk(await p.batch("A", 0, 7, [add(1, 2), add(3, 5), add(6, 10)])), { outcome: "committed", checkpoint: 7 });
    assert.deepEqual(assertOk(await p.batch("A", 2, 7, [add(3, 5), add(6, 10)])), { outcome: "skipped", checkpoint: 7 });
    const st = await p.status();
    assert.deepEqual(st.state, { total: 17, count: 3, offsets: [1, 3, 6] });
    assert.equal(st.checkpoint, 7);
    assert.equal(st.connectionId, "A");
    const outs = await p.outputs();
    assert.deepEqual(outs.map((e) => [e.idempotencyKey, e.payload]), [
      ["counter:k:1:0", { input: 1, total: 2 }],
      ["counter:k:3:0", { input: 3, total: 7 }],
      ["counter:k:6:0", { input: 6, total: 17 }],
    ]);
    assert.deepEqual(outs[0].source, { processor: { slug: "counter", version: "1" } });
  });
}

for (const code of ["network", "timeout", "protocol"]) {
  test(`onEvent's append failing with ${code} is transient: stream_unavailable, redelivered, never counted, never halting`, async () => {
    const host = uniqueHostName("flaky");
    const target = splitName(uniqueName("flaky"));
    const on = (method, arg) => tryHost(mf, host, method, arg, { flaky: true });
    const batch = { ...target, subscriptionKey: "k", connectionId: "A", processorName: "counter", afterOffset: 0, throughOffset: 3, events: [add(3, 5)] };
    assertOk(await on("requestStreamSubscription", { ...target, subscriptionKey: "k", connectionId: "A", processorName: "counter" }));
    assertOk(await on("failAppendsWith", code));
    for (let attempt = 1; attempt <= 5; attempt++) {
      const r = await on("processEventBatch", batch);
      assertCode(r, "stream_unavailable", `attempt ${attempt}`);
      assert.match(r.error, new RegExp(`nothing committed: stream unavailable: ${code === "protocol" ? "HTTP 502" : ""}`));
    }
    const status = assertOk(await on("processorStatus", { ...target, slug: "counter" }));
    assert.deepEqual([status.halted, status.failures, status.checkpoint], [false, 0, 0], "five unavailable attempts count nothing");
    assertOk(await on("failAppendsWith", null));
    assert.deepEqual(assertOk(await on("processEventBatch", batch)), { outcome: "committed", checkpoint: 3 });
    const outputs = (await readAll(mf, `${target.namespace}:${target.path}`)).filter((e) => e.type === "app/summed");
    assert.deepEqual(outputs.map((e) => e.idempotencyKey), ["counter:k:3:0"]);
  });
}

test("two wirings of one slug (a blue/green deploy): each writes its own outputs, keyed by its subscription key", async () => {
  const name = uniqueName("bluegreen");
  const target = splitName(name);
  const hosts = { blue: uniqueHostName("blue"), green: uniqueHostName("green") };
  for (const [key, host] of Object.entries(hosts)) {
    const wiring = { ...target, subscriptionKey: key, connectionId: `${key}-1`, processorName: "counter" };
    assertOk(await tryHost(mf, host, "requestStreamSubscription", wiring));
    assertOk(await tryHost(mf, host, "processEventBatch", { ...wiring, afterOffset: 0, throughOffset: 4, events: [add(2, 1), add(4, 10)] }));
  }
  const outputs = (await readAll(mf, name)).filter((e) => e.type === "app/summed");
  assert.deepEqual(outputs.map((e) => e.idempotencyKey), ["counter:blue:2:0", "counter:blue:4:0", "counter:green:2:0", "counter:green:4:0"]);
  assert.deepEqual(outputs.map((e) => e.payload.total), [1, 11, 1, 11]);
});

test("a table from before handled_through: its rows go on from their checkpoint, which counts as handled", async () => {
  const host = uniqueHostName("legacy");
  const wiring = { namespace: "default", path: "/legacy", subscriptionKey: "k", connectionId: "A", processorName: "counter" };
  const on = (method, arg) => tryHost(mf, host, method, arg, { legacy: true });
  assert.equal(assertOk(await on("requestStreamSubscription", wiring)).replayAfterOffset, 5);
  const before = assertOk(await on("processorStatus", { namespace: "default", path: "/legacy", slug: "counter" }));
  assert.deepEqual([before.checkpoint, before.handledThrough, before.state.total], [5, 5, 3]);
  assert.deepEqual(assertOk(await on("processEventBatch", { ...wiring, afterOffset: 5, throughOffset: 7, events: [add(6, 4)] })), { outcome: "committed", checkpoint: 7 });
  const after = assertOk(await on("processorStatus", { namespace: "default", path: "/legacy", slug: "counter" }));
  assert.deepEqual([after.checkpoint, after.handledThrough, after.state.total], [7, 7, 7]);
  assert.deepEqual(assertOk(await on("onEventOffsets", { namespace: "default", path: "/legacy" })), [6]);
});

test("a gap (afterOffset beyond the checkpoint) is rejected with processor_gap and changes nothing", async () => {
  const p = setup();
  assertOk(await p.dial("A"));
  assertOk(await p.batch("A", 0, 2, [add(2, 1)]));
  const gap = await p.batch("A", 5, 8, [add(8, 100)]);
  assert.equal(gap.error, 'processor_gap: batch after offset 5 but processor "counter" is at checkpoint 2; replay from the checkpoint');
  const st = await p.status();
  assert.equal(st.checkpoint, 2);
  assert.deepEqual(st.state.offsets, [2]);
  assert.equal(st.failures, 0, "a gap is not a processing failure");
});

test("malformed batches → invalid_request", async () => {
  const p = setup();
  assertOk(await p.dial("A"));
  assertCode(await p.batch("A", 0, 5, [add(3, 1), add(2, 1)]), "invalid_request", "descending");
  assertCode(await p.batch("A", 0, 2, [add(3, 1)]), "invalid_request", "beyond throughOffset");
  assertCode(await p.batch("A", 3, 2, []), "invalid_request", "after > through");
  assertCode(await tryHost(mf, p.host, "processEventBatch", { ...p.target, subscriptionKey: "k", connectionId: "A", processorName: "counter", events: [] }), "invalid_request", "no offsets");
  const keyless = await tryHost(mf, p.host, "processEventBatch", { ...p.target, connectionId: "A", processorName: "counter", afterOffset: 0, throughOffset: 1, events: [] });
  assertCode(keyless, "invalid_request", "no subscriptionKey (the stream always sends one: outputs are keyed by it)");
  assert.match(keyless.error, /subscriptionKey must be a non-empty string/);
  assert.equal((await p.status()).checkpoint, 0);
});

test("a batch from a connection other than the latest dial is dropped without effect", async () => {
  const p = setup();
  assertOk(await p.dial("A"));
  assertOk(await p.dial("B"));
  assert.deepEqual(assertOk(await p.batch("A", 0, 3, [add(3, 9)])), { outcome: "superseded", checkpoint: 0 });
  const st = await p.status();
  assert.equal(st.checkpoint, 0);
  assert.deepEqual(st.state, { total: 0, count: 0, offsets: [] });
  assert.deepEqual(await p.outputs(), []);
  assertOk(await p.batch("B", 0, 3, [add(3, 9)]));
  assert.equal((await p.status()).state.total, 9);
});

test("overlap: a slow batch of a superseded connection and the new connection's replay → each event reduced once", async () => {
  const p = setup();
  assertOk(await p.dial("A"));
  assertOk(await p.batch("A", 0, 2, [add(2, 1)]));
  // A's next batch is held in onEvent at offset 4 until the test opens its gate; meanwhile B dials and replays.
  const gate = `overlap-${p.host}`;
  const slow = p.batch("A", 2, 6, [add(3, 10), add(4, 100, { gate }), add(6, 1000)]);
  await waitFor(() => callHost(mf, p.host, "onEventOffsets", p.target), (o) => o.includes(4), { timeoutMs: 20_000, what: "A held at offset 4" });
  const dialB = assertOk(await p.dial("B"));
  assert.equal(dialB.replayAfterOffset, 2, "A's batch is not committed yet");
  const replay = p.batch("B", 2, 7, [add(3, 10), add(4, 100), add(6, 1000), add(7, 10000)]);
  await waitFor(() => callHost(mf, p.host, "receivedBatches"), (n) => n === 3, { timeoutMs: 20_000, what: "B's replay at the host" });
  await callHost(mf, p.host, "openGate", { gate });
  const [a, b] = await Promise.all([slow, replay]);
  assert.deepEqual(assertOk(a, "slow A"), { outcome: "superseded", checkpoint: 2 });
  assert.deepEqual(assertOk(b, "replay B"), { outcome: "committed", checkpoint: 7 });
  const st = await p.status();
  assert.deepEqual(st.state, { total: 11111, count: 5, offsets: [2, 3, 4, 6, 7] });
  // A appended 3's and 4's outputs before it was dropped; B's replay re-used their keys.
  const outs = await p.outputs();
  assert.deepEqual(outs.map((e) => e.idempotencyKey), ["counter:k:2:0", "counter:k:3:0", "counter:k:4:0", "counter:k:6:0", "counter:k:7:0"]);
  assert.deepEqual(outs.map((e) => e.payload.total), [1, 11, 111, 1111, 11111]);
});

test("batches of one processor and stream run strictly one at a time", async () => {
  const p = setup();
  assertOk(await p.dial("A"));
  // The second batch continues from the first one's throughOffset: run concurrently, it would be a
  // gap. The first is held in onEvent until the second has reached the host.
  const gate = `serial-${p.host}`;
  const first = p.batch("A", 0, 3, [add(3, 1, { gate })]);
  await waitFor(() => callHost(mf, p.host, "onEventOffsets", p.target), (o) => o.includes(3), { timeoutMs: 20_000, what: "the first batch held" });
  const second = p.batch("A", 3, 5, [add(5, 2)]);
  await waitFor(() => callHost(mf, p.host, "receivedBatches"), (n) => n === 2, { timeoutMs: 20_000, what: "the second batch at the host" });
  await callHost(mf, p.host, "openGate", { gate });
  const [r1, r2] = await Promise.all([first, second]);
  assert.equal(assertOk(r1).checkpoint, 3);
  assert.equal(assertOk(r2).checkpoint, 5);
  assert.deepEqual((await p.status()).state.offsets, [3, 5]);
});

test("reduce throwing on its first 2 attempts: 2 rejections, nothing committed, then success with no double count", async () => {
  const p = setup();
  const tag = Math.random().toString(36).slice(2);
  assertOk(await p.dial("A"));
  const events = [add(3, 1), add(4, 2, { failTimes: 2, tag }), add(5, 4)];
  for (const attempt of [1, 2]) {
    const r = await p.batch("A", 0, 5, events);
    assertCode(r, "processor_failed", `attempt ${attempt}`);
    assert.match(r.error, new RegExp(`failed at offset 4 \\(attempt ${attempt} of 3\\); nothing committed: attempt ${attempt} at 4 fails`));
    const st = await p.status();
    assert.equal(st.checkpoint, 0);
    assert.equal(st.failures, attempt);
    assert.deepEqual(st.state.offsets, []);
    assert.equal(st.lastError.offset, 4);
  }
  assert.deepEqual(assertOk(await p.batch("A", 0, 5, events)), { outcome: "committed", checkpoint: 5 });
  const st = await p.status();
  assert.deepEqual(st.state, { total: 7, count: 3, offsets: [3, 4, 5] });
  assert.equal(st.failures, 0, "a success resets the count");
  assert.equal(st.lastError, null);
  // Output 3 was appended on every attempt; its key kept it to one event.
  assert.deepEqual((await p.outputs()).map((e) => e.idempotencyKey), ["counter:k:3:0", "counter:k:4:0", "counter:k:5:0"]);
});

test("a poison event: 3 failures → one error-occurred keyed processor-ingest-failed:<slug>:<subscriptionKey>:<checkpoint>, halt; resume({skip:true}) steps over it", async () => {
  const p = setup();
  assertOk(await p.dial("A"));
  assertOk(await p.batch("A", 0, 2, [add(2, 1)]));
  const events = [add(3, 10), add(4, 0, { poison: true }), add(5, 100)];
  for (let i = 1; i <= 3; i++) assertCode(await p.batch("A", 2, 5, events), "processor_failed", `attempt ${i}`);
  let st = await p.status();
  assert.equal(st.halted, true);
  assert.equal(st.failures, 3);
  assert.equal(st.checkpoint, 2);

  const halted = await p.batch("A", 2, 5, events);
  assert.match(halted.error, /^processor_halted: processor "counter" on .* is halted at checkpoint 2 after 3 failures \(offset 4: poison event at 4\); call resume$/);
  assertCode(await p.dial("B"), "processor_halted", "dials are refused while halted");

  const log = await readAll(mf, p.name);
  const errors = log.filter((e) => e.type === S("error-occurred"));
  assert.equal(errors.length, 1, "exactly one error-occurred");
  const [err] = errors;
  assert.equal(err.idempotencyKey, "processor-ingest-failed:counter:k:2");
  assert.deepEqual(Object.keys(err.payload), ["message", "error"]);
  assert.equal(err.payload.message, 'processor "counter" 1 halted after 3 failed attempts at offset 4 (checkpoint 2): poison event at 4');
  assert.equal(err.payload.error.name, "Error");
  assert.equal(err.payload.error.message, "poison event at 4");
  assert.match(err.payload.error.stack, /poison event at 4/);
  assert.deepEqual(err.source, { processor: { slug: "counter", version: "1" } });

  st = await p.resume(true);
  assert.equal(st.halted, false);
  assert.equal(st.failures, 0);
  assert.equal(st.skipOffset, 4);
  assert.equal(assertOk(await p.dial("C")).replayAfterOffset, 2);
  assert.deepEqual(assertOk(await p.batch("C", 2, 5, events)), { outcome: "committed", checkpoint: 5 });
  st = await p.status();
  assert.deepEqual(st.state, { total: 111, count: 3, offsets: [2, 3, 5] }, "3 and 5 reduced, 4 stepped over");
  assert.equal(st.skipOffset, null, "cleared once passed");
  assert.equal((await readAll(mf, p.name)).filter((e) => e.type === S("error-occurred")).length, 1);
});

test("resume without skip retries the event; halting again at the same checkpoint adds no second error-occurred", async () => {
  const p = setup();
  assertOk(await p.dial("A"));
  const events = [add(3, 0, { poison: true })];
  for (let i = 0; i < 3; i++) await p.batch("A", 0, 3, events);
  assert.equal((await p.status()).halted, true);
  assert.equal((await p.resume(false)).skipOffset, null);
  assertOk(await p.dial("B"));
  for (let i = 0; i < 3; i++) assertCode(await p.batch("B", 0, 3, events), "processor_failed");
  assert.equal((await p.status()).halted, true);
  const errors = (await readAll(mf, p.name)).filter((e) => e.type === S("error-occurred"));
  assert.equal(errors.length, 1);
  assert.equal(errors[0].idempotencyKey, "processor-ingest-failed:counter:k:0");
});

test("a halt report that cannot be appended is only logged: dials are refused cleanly, and work again after resume", async () => {
  const p = setup();
  // An invalid namespace: every append to it fails, so the error-occurred report cannot land.
  const target = { namespace: "Not-Valid", path: p.target.path };
  const on = (method, arg) => tryHost(mf, p.host, method, { ...target, subscriptionKey: "k", processorName: "counter", ...arg });
  assertOk(await on("requestStreamSubscription", { connectionId: "A" }));
  const batch = { connectionId: "A", afterOffset: 0, throughOffset: 3, events: [add(3, 0, { poison: true })] };
  for (let i = 0; i < 3; i++) assertCode(await on("processEventBatch", batch), "processor_failed");
  for (let i = 0; i < 2; i++) assertCode(await on("requestStreamSubscription", { connectionId: "B" }), "processor_halted", "refused, not broken");
  assertCode(await on("processEventBatch", batch), "processor_halted");
  const resumed = await callHost(mf, p.host, "resumeProcessor", { ...target, slug: "counter", skip: true });
  assert.equal(resumed.halted, false);
  assertOk(await on("requestStreamSubscription", { connectionId: "C" }), "the next dial works");
  assert.deepEqual(assertOk(await on("processEventBatch", { ...batch, connectionId: "C" })), { outcome: "committed", checkpoint: 3 });
});

test("two processors in one host keep separate state, checkpoints and halts", async () => {
  const counter = setup("counter");
  const tally = {
    dial: (c) => tryHost(mf, counter.host, "requestStreamSubscription", { ...counter.target, connectionId: c, processorName: "tally" }),
    batch: (c, afterOffset, throughOffset, events) =>
      tryHost(mf, counter.host, "processEventBatch", { ...counter.target, subscriptionKey: "t", connectionId: c, processorName: "tally", afterOffset, throughOffset, events }),
    status: () => callHost(mf, counter.host, "processorStatus", { ...counter.target, slug: "tally" }),
  };
  assertOk(await counter.dial("C1"));
  assertOk(await tally.dial("T1"));
  const mul = { type: "app/mul", payload: { n: 3 }, offset: 4, createdAt: "2026-01-01T00:00:00.000Z" };
  assertOk(await tally.batch("T1", 0, 4, [add(3, 1), mul]));
  for (let i = 0; i < 3; i++) await counter.batch("C1", 0, 3, [add(3, 0, { poison: true })]);
  assert.equal((await counter.status()).halted, true);
  const ts = await tally.status();
  assert.deepEqual(ts.state, { "app/add": 1, "app/mul": 1 });
  assert.equal(ts.checkpoint, 4);
  assert.equal(ts.halted, false);
  assertOk(await tally.batch("T1", 4, 6, [add(6, 1)]), "tally goes on while counter is halted");
  assert.equal((await tally.status()).checkpoint, 6);
  assert.equal((await counter.status()).checkpoint, 0);
});
