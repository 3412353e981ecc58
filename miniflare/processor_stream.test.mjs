// Processors fed by a real stream (outbound subscription, the fixture host of
// miniflare/helpers/processor-fixture.mjs): delivery end to end, retries through the stream's
// back-off, a poison event halting the processor until resume, a slow batch overlapping the
// replay of a new connection, two processors in one host, and a version bump after a restart.
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { call, uniqueName, splitName } from "./helpers/mf.mjs";
import { S, readAll } from "./helpers/assertions.mjs";
import { facts, waitFor, waitForLog, runtimeState } from "./helpers/subscribers.mjs";
import { startWithProcessors, processorSubscription, processorStatus, waitForProcessor, callHost, uniqueHostName } from "./helpers/processors.mjs";

let mf;
before(async () => {
  mf = await startWithProcessors();
});
after(async () => {
  await mf?.dispose();
});

const add = (n, extra = {}) => ({ type: "app/add", payload: { n, ...extra } });
const summed = (log) => log.filter((e) => e.type === "app/summed");

/** Wires key → processor `slug` of a fresh host on a fresh stream; resolves once connected. */
async function wire(m, { slug = "counter", key = slug, host = uniqueHostName(), name = uniqueName("pstream") } = {}) {
  const configured = await call(m, name, "append", { event: processorSubscription(key, host, slug) });
  await waitForLog(m, name, (l) => facts(l, "subscriber-connected", { subscriptionKey: key }).some((e) => e.offset > configured.offset), { what: `${key} connected` });
  return { host, name, key, slug };
}

test("end to end: each input reduced once, one output per input, checkpoint = the batch's throughOffset", async () => {
  const w = await wire(mf);
  const inputs = [];
  for (let i = 1; i <= 5; i++) inputs.push(await call(mf, w.name, "append", { event: add(i) }));
  inputs.push(...(await call(mf, w.name, "appendBatch", { events: [add(6), add(7), { type: "app/other" }, add(8)] })).filter((e) => e.type === "app/add"));
  const st = await waitForProcessor(mf, w.host, w.name, "counter", (s) => s.state.count === 8);
  assert.equal(st.state.total, 36);
  assert.deepEqual(st.state.offsets, inputs.map((e) => e.offset));
  assert.ok(st.checkpoint >= inputs.at(-1).offset);
  const log = await waitForLog(mf, w.name, (l) => summed(l).length === 8);
  assert.deepEqual(summed(log).map((e) => e.idempotencyKey), inputs.map((e) => `counter:${w.key}:${e.offset}:0`));
  const connected = facts(log, "subscriber-connected", { subscriptionKey: w.key });
  assert.deepEqual(connected[0].payload.subscriber, { processor: { announcement: { slug: "counter", version: "1", consumes: ["app/add"] } } });
  const rs = await runtimeState(mf, w.name);
  assert.deepEqual(rs.coreProcessorState.processorsBySlug.counter.announcement, { slug: "counter", version: "1", consumes: ["app/add"] });
});

test("a typo in processorName: runtimeState's redial entry and the log line name the cause (processor_unknown)", async () => {
  const output = [];
  const capture = (stream) => stream.on("data", (chunk) => output.push(String(chunk)));
  const m = await startWithProcessors({ miniflare: { handleRuntimeStdio: (stdout, stderr) => [stdout, stderr].forEach(capture) } });
  try {
    const host = uniqueHostName();
    const name = uniqueName("typo");
    await call(m, name, "append", { event: processorSubscription("typo", host, "mesage-count") });
    const rs = await waitFor(() => runtimeState(m, name), (s) => s.runtime.redial.typo?.failures >= 1, { what: "a failed dial" });
    const cause = 'no processor "mesage-count" in this host (it has "counter", "tally")';
    assert.deepEqual(rs.runtime.redial.typo.lastError, { code: "processor_unknown", message: cause });
    await waitFor(async () => output.join(""), (text) => text.includes(`subscription typo: dial failed: processor_unknown: ${cause}`), { what: "the log line" });
  } finally {
    await m.dispose();
  }
});

test("a reduce that throws on its first 2 attempts recovers through the stream's redelivery, no double count", async () => {
  const w = await wire(mf);
  const tag = Math.random().toString(36).slice(2);
  await call(mf, w.name, "append", { event: add(1) });
  await call(mf, w.name, "appendBatch", { events: [add(10), add(100, { failTimes: 2, tag }), add(1000)] });
  const st = await waitForProcessor(mf, w.host, w.name, "counter", (s) => s.state.count === 4, { timeoutMs: 30_000 });
  assert.equal(st.state.total, 1111);
  assert.equal(new Set(st.state.offsets).size, 4, "no offset reduced twice");
  assert.equal(st.failures, 0);
  assert.equal(st.halted, false);
  const log = await readAll(mf, w.name);
  assert.ok(facts(log, "subscriber-disconnected", { subscriptionKey: w.key, reason: "delivery-failed" }).length >= 2, "two deliveries were rejected");
  assert.equal(log.filter((e) => e.type === S("error-occurred")).length, 0);
  assert.equal(summed(log).length, 4);
});

test("a poison event: one error-occurred with processor-ingest-failed:<slug>:<subscriptionKey>:<checkpoint>, dials refused, resume({skip:true}) continues after it", async () => {
  const w = await wire(mf);
  const first = await call(mf, w.name, "append", { event: add(1) });
  await waitForProcessor(mf, w.host, w.name, "counter", (s) => s.state.count === 1);
  const { checkpoint } = await processorStatus(mf, w.host, w.name, "counter");
  const poison = await call(mf, w.name, "append", { event: add(0, { poison: true }) });
  await call(mf, w.name, "append", { event: add(2) });
  const halted = await waitForProcessor(mf, w.host, w.name, "counter", (s) => s.halted, { timeoutMs: 30_000 });
  assert.equal(halted.checkpoint, checkpoint);
  assert.equal(halted.lastError.offset, poison.offset);

  // The stream keeps re-dialling on its back-off; every dial is refused, nothing more is written.
  await waitFor(() => runtimeState(mf, w.name), (s) => s.runtime.redial[w.key]?.failures >= 5, { timeoutMs: 30_000, what: "refused dials" });
  let log = await readAll(mf, w.name);
  const errors = log.filter((e) => e.type === S("error-occurred"));
  assert.equal(errors.length, 1);
  assert.equal(errors[0].idempotencyKey, `processor-ingest-failed:counter:${w.key}:${checkpoint}`);
  assert.match(errors[0].payload.message, new RegExp(`^processor "counter" 1 halted after 3 failed attempts at offset ${poison.offset} \\(checkpoint ${checkpoint}\\)`));
  assert.equal(errors[0].payload.error.message, `poison event at ${poison.offset}`);

  const resumed = await callHost(mf, w.host, "resumeProcessor", { ...splitName(w.name), slug: "counter", skip: true });
  assert.equal(resumed.skipOffset, poison.offset);
  const last = await call(mf, w.name, "append", { event: add(4) });
  const st = await waitForProcessor(mf, w.host, w.name, "counter", (s) => s.state.count === 3, { timeoutMs: 20000 });
  assert.equal(st.state.total, 7);
  assert.deepEqual(st.state.offsets.filter((o) => o === poison.offset), [], "the poison event was stepped over");
  assert.ok(st.checkpoint >= last.offset);
  assert.ok(st.state.offsets[0] === first.offset);
  log = await readAll(mf, w.name);
  assert.equal(log.filter((e) => e.type === S("error-occurred")).length, 1, "still one error-occurred");
});

test("overlap: a slow batch cut off by kill() and the new connection's replay → each event reduced once", async () => {
  const w = await wire(mf);
  await call(mf, w.name, "append", { event: add(1) });
  await waitForProcessor(mf, w.host, w.name, "counter", (s) => s.state.count === 1);
  const before = await processorStatus(mf, w.host, w.name, "counter");
  // The slow event is held in onEvent until the test opens its gate: the kill lands while it waits.
  const gate = `kill-${w.host}`;
  const batch = await call(mf, w.name, "appendBatch", { events: [add(10), add(100, { gate }), add(1000)] });
  const slow = batch[1].offset;
  const ran = (list) => waitFor(() => callHost(mf, w.host, list, splitName(w.name)), (offsets) => offsets.includes(slow), { what: `${list} to include @${slow}`, timeoutMs: 30_000 });
  await ran("onEventOffsets"); // the slow batch is now in onEvent
  const received = await callHost(mf, w.host, "receivedBatches");
  assert.equal(await call(mf, w.name, "kill"), undefined);
  // Boots the stream, which re-dials and replays (retried while the old incarnation shuts down).
  await waitFor(() => call(mf, w.name, "append", { event: add(10000) }).catch(() => null), (r) => r !== null, { what: "the append after kill" });
  // The new connection's batch reached the host (it waits behind the held one); then the gate opens.
  await waitFor(() => callHost(mf, w.host, "receivedBatches"), (n) => n > received, { timeoutMs: 30_000, what: "the new connection's batch at the host" });
  await callHost(mf, w.host, "openGate", { gate });
  const st = await waitForProcessor(mf, w.host, w.name, "counter", (s) => s.state.count === 5, { timeoutMs: 30_000 });
  await ran("onEventEndedOffsets"); // the slow batch has finished; it must not have committed anything
  const after = await processorStatus(mf, w.host, w.name, "counter");
  assert.deepEqual(after.state, st.state);
  assert.equal(after.state.total, 11111);
  assert.equal(new Set(after.state.offsets).size, 5, "each event reduced once");
  assert.notEqual(after.connectionId, before.connectionId, "a new connection");
  const log = await waitForLog(mf, w.name, (l) => summed(l).length === 5);
  assert.equal(new Set(summed(log).map((e) => e.idempotencyKey)).size, 5);
});

test("two processors in one host: selected by shallowMerge.processorName, independent state and halts", async () => {
  const host = uniqueHostName();
  const name = uniqueName("ptwo");
  await wire(mf, { slug: "counter", key: "sum", host, name });
  await wire(mf, { slug: "tally", key: "tally", host, name });
  await call(mf, name, "appendBatch", { events: [add(1), { type: "app/mul", payload: { n: 2 } }, add(3)] });
  await call(mf, name, "append", { event: add(0, { poison: true }) });
  await call(mf, name, "append", { event: { type: "app/mul", payload: { n: 5 } } });
  const tally = await waitForProcessor(mf, host, name, "tally", (s) => s.state["app/mul"] === 2 && s.state["app/add"] === 3);
  const counter = await waitForProcessor(mf, host, name, "counter", (s) => s.halted, { timeoutMs: 30_000 });
  assert.equal(counter.state.total, 4);
  assert.equal(tally.halted, false);
  assert.notEqual(tally.connectionId, counter.connectionId);
});

test("after reset() and a new subscription, the processor starts over on the new life of the stream", async () => {
  const w = await wire(mf);
  for (const n of [1, 2, 3]) await call(mf, w.name, "append", { event: add(n) });
  const old = await waitForProcessor(mf, w.host, w.name, "counter", (s) => s.state.count === 3);
  assert.equal(await call(mf, w.name, "reset"), undefined);
  await wire(mf, { host: w.host, name: w.name });
  await call(mf, w.name, "append", { event: add(100) });
  const st = await waitForProcessor(mf, w.host, w.name, "counter", (s) => s.state.total === 100, { timeoutMs: 30_000 });
  assert.equal(st.state.count, 1, "only the new life's input");
  assert.notEqual(st.streamId, old.streamId);
  assert.equal(st.streamId, (await runtimeState(mf, w.name)).coreProcessorState.streamId);
});

test("a version bump (restart with new code) replays from offset 0 into a fresh state; onEvent runs only past what v1 handled", async () => {
  const persistDir = fs.mkdtempSync(path.join(os.tmpdir(), "proc-version-"));
  let m = await startWithProcessors({ persistDir });
  try {
    const w = await wire(m);
    for (const n of [1, 2, 3]) await call(m, w.name, "append", { event: add(n) });
    const v1 = await waitForProcessor(m, w.host, w.name, "counter", (s) => s.state.count === 3);
    await m.dispose();
    m = await startWithProcessors({ persistDir, counterVersion: "2" });
    await call(m, w.name, "append", { event: add(4) }); // boots the stream: it re-dials the new version
    const v2 = await waitForProcessor(m, w.host, w.name, "counter", (s) => s.state.count === 4, { timeoutMs: 30_000 });
    assert.equal(v2.version, "2");
    assert.equal(v2.state.total, 10, "the replay from 0 reduced every input once into a fresh state");
    assert.deepEqual(v2.state.offsets.slice(0, 3), v1.state.offsets);
    const log = await readAll(m, w.name);
    const connected = facts(log, "subscriber-connected", { subscriptionKey: w.key });
    assert.equal(connected.at(-1).payload.subscriber.processor.announcement.version, "2");
    // onEvent ran only past the highest checkpoint v1 handled: no side effect of 1..3 again.
    assert.deepEqual(await callHost(m, w.host, "onEventOffsets", splitName(w.name)), [log.find((e) => e.type === "app/add" && e.payload.n === 4).offset]);
    assert.equal(v2.handledThrough, v2.checkpoint);
    assert.ok(v2.handledThrough >= v1.checkpoint);
    assert.equal(summed(log).length, 4, "one output per input");
  } finally {
    await m.dispose();
    fs.rmSync(persistDir, { recursive: true, force: true });
  }
});
