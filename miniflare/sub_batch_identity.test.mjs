// What lets a consumer verify continuity: the stream's `streamId` (one per life of the log), and on
// every delivered batch — WebSocket frames and outbound `processEventBatch` arguments —
// `afterOffset`, `throughOffset`, `connectionId` and `streamId`. The outbound subscriber here is the
// RecordingHost fixture, which records every dial and batch.
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { startStreams, call, uniqueName, splitName, REPO_ROOT } from "./helpers/mf.mjs";
import { S, readAll, STATE_KEYS } from "./helpers/assertions.mjs";
import {
  echoSubscriptionEvent,
  uniqueEchoName,
  inspectEcho,
  configureEcho,
  waitFor,
  waitForEcho,
  openSubscriber,
} from "./helpers/subscribers.mjs";

const UUID_V4_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const BATCH_IDENTITY = ["subscriptionKey", "streamId", "connectionId", "afterOffset", "throughOffset", "events", "streamMaxOffset", "state"];

let mf;

before(async () => {
  mf = await startStreams({ echoScriptPath: path.join(REPO_ROOT, "miniflare", "helpers", "recording-host.mjs") });
});

after(async () => {
  await mf?.dispose();
});

const appendMany = async (name, n, type = "app/x") => {
  for (let i = 0; i < n; i++) await call(mf, name, "append", { event: { type, payload: { i } } });
};

/** Consecutive batches chain: each afterOffset is the previous throughOffset. */
function assertChained(batches, start, note) {
  assert.ok(batches.length > 0, `${note}: no batch`);
  assert.equal(batches[0].afterOffset, start, `${note}: the first batch starts after ${start}`);
  for (let i = 1; i < batches.length; i++) {
    assert.equal(batches[i].afterOffset, batches[i - 1].throughOffset, `${note}: batch ${i} afterOffset`);
  }
  for (const [i, b] of batches.entries()) {
    assert.ok(b.throughOffset >= b.afterOffset, `${note}: batch ${i} through ${b.throughOffset} < after ${b.afterOffset}`);
    const offsets = b.offsets ?? b.events.map((e) => e.offset);
    for (const o of offsets) assert.ok(o > b.afterOffset && o <= b.throughOffset, `${note}: batch ${i} offset ${o} outside (${b.afterOffset}, ${b.throughOffset}]`);
  }
}

test("streamId: a UUID v4 in S/created and in the state right after createdAt; a reset makes a new one", async () => {
  const name = uniqueName();
  const { namespace, path: p } = splitName(name);
  const [created] = await readAll(mf, name);
  assert.deepEqual(Object.keys(created.payload), ["namespace", "path", "streamId"]);
  assert.deepEqual(created.payload, { namespace, path: p, streamId: created.payload.streamId });
  assert.match(created.payload.streamId, UUID_V4_RE);
  const { coreProcessorState: st } = await call(mf, name, "runtimeState");
  assert.equal(st.streamId, created.payload.streamId);
  assert.deepEqual(Object.keys(st), STATE_KEYS);
  assert.equal(STATE_KEYS[STATE_KEYS.indexOf("createdAt") + 1], "streamId");

  await call(mf, name, "reset");
  const [reborn] = await waitFor(() => readAll(mf, name).catch(() => []), (l) => l.length > 0, { what: "the stream after reset" });
  assert.match(reborn.payload.streamId, UUID_V4_RE);
  assert.notEqual(reborn.payload.streamId, created.payload.streamId, "a new life of the log has a new streamId");
  assert.equal((await call(mf, name, "runtimeState")).coreProcessorState.streamId, reborn.payload.streamId);
});

test("streamId: a created fact without one (a stream from before) reduces to null", async () => {
  const name = uniqueName();
  const event = { type: S("created"), payload: { namespace: "t", path: "/old" }, offset: 1, createdAt: "2026-01-05T10:00:00.000Z" };
  const state = await call(mf, name, "reduce", { event, coreProcessorState: {} });
  assert.equal(state.streamId, null);
  assert.equal(state.createdAt, event.createdAt);
});

test("inbound frames carry afterOffset/throughOffset/connectionId/streamId and chain, through replay and live appends", async () => {
  const name = uniqueName();
  await appendMany(name, 150);
  const sub = await openSubscriber(mf, name, { subscriptionKey: "k", replayAfterOffset: 0 });
  await sub.waitFor((s) => s.offsets().includes(150));
  await appendMany(name, 3);
  const max = (await call(mf, name, "runtimeState")).coreProcessorState.maxOffset;
  await sub.waitFor((s) => s.frames.at(-1).throughOffset === max, { what: `a frame through ${max}` });
  const streamId = (await readAll(mf, name))[0].payload.streamId;
  for (const [i, f] of sub.frames.entries()) {
    // The state rides on a socket's first frame only (docs/protocol.md#websocket-frames).
    assert.deepEqual(Object.keys(f), ["type", ...(i === 0 ? BATCH_IDENTITY : BATCH_IDENTITY.filter((k) => k !== "state"))]);
    assert.equal(f.streamId, streamId);
    assert.equal(f.connectionId, sub.frames[0].connectionId, "one connectionId per socket");
  }
  assert.match(sub.frames[0].connectionId, UUID_V4_RE);
  assertChained(sub.frames, 0, "replay + live");
  assert.deepEqual(sub.offsets(), Array.from({ length: max }, (_, i) => i + 1), "every event once, in order");

  const other = await openSubscriber(mf, name, { subscriptionKey: "k2" });
  await other.waitFor((s) => s.frames.length >= 1);
  assert.notEqual(other.frames[0].connectionId, sub.frames[0].connectionId, "each socket has its own connectionId");
  assert.equal(other.frames[0].afterOffset, max, "a live tail starts after the current max");
  sub.close();
  other.close();
});

test("inbound: a filter leaves events out, never a gap in the offsets: throughOffset covers what it skipped", async () => {
  const name = uniqueName();
  const sub = await openSubscriber(mf, name, { subscriptionKey: "f", eventTypes: "app/keep" });
  await sub.waitFor((s) => s.frames.length >= 1);
  const start = sub.frames[0].afterOffset;
  for (let round = 0; round < 3; round++) {
    await appendMany(name, 120, "app/skip"); // more than a page, none matching
    await call(mf, name, "append", { event: { type: "app/keep", payload: { round } } });
  }
  await sub.waitFor((s) => s.events().length === 3, { what: "three kept events" });
  const keptOffsets = (await readAll(mf, name)).filter((e) => e.type === "app/keep").map((e) => e.offset);
  assert.deepEqual(sub.offsets(), keptOffsets);
  assertChained(sub.frames, start, "filtered");
  assert.equal(sub.frames.at(-1).throughOffset, keptOffsets.at(-1));
  sub.close();
});

test("inbound: state-only mode (events=false) chains too, hibernation keeps the connectionId", async () => {
  const name = uniqueName();
  const sub = await openSubscriber(mf, name, { subscriptionKey: "s", events: "false" });
  await sub.waitFor((s) => s.frames.length >= 1);
  await appendMany(name, 2);
  await call(mf, name, "simulateHibernation");
  await appendMany(name, 2);
  const max = (await call(mf, name, "runtimeState")).coreProcessorState.maxOffset;
  await sub.waitFor((s) => s.frames.at(-1).throughOffset === max, { what: `a frame through ${max}` });
  assert.ok(sub.frames.every((f) => f.events.length === 0));
  assert.ok(sub.frames.every((f) => f.throughOffset === f.streamMaxOffset), "state-only frames run through the max");
  assert.ok(sub.frames.every((f) => f.connectionId === sub.frames[0].connectionId), "same socket, same connectionId after a wake");
  assertChained(sub.frames, sub.frames[0].afterOffset, "state-only");
  sub.close();
});

test("outbound: the dial and every processEventBatch carry one connectionId; batches chain and carry streamId", async () => {
  const name = uniqueName();
  const host = uniqueEchoName("rec");
  await configureEcho(mf, host, { reply: { replayAfterOffset: 0 } });
  await appendMany(name, 130);
  await call(mf, name, "append", { event: echoSubscriptionEvent("rec", host) });
  await appendMany(name, 2);
  const max = (await call(mf, name, "runtimeState")).coreProcessorState.maxOffset;
  const rec = await waitForEcho(mf, host, (h) => h.batches.at(-1)?.throughOffset === max, { what: `a batch through ${max}` });
  const streamId = (await readAll(mf, name))[0].payload.streamId;
  assert.equal(rec.dials.length, 1);
  const dial = rec.dials[0];
  assert.match(dial.connectionId, UUID_V4_RE);
  assert.deepEqual(dial.keys.slice(0, 5), ["namespace", "path", "subscriptionKey", "connectionId", "streamMaxOffset"]);
  assert.equal(dial.stateStreamId, streamId);
  for (const b of rec.batches) {
    assert.deepEqual(b.keys, ["namespace", "path", ...BATCH_IDENTITY]);
    assert.equal(b.connectionId, dial.connectionId, "every batch of a dial has the dial's connectionId");
    assert.equal(b.streamId, streamId);
    assert.equal(b.stateStreamId, streamId);
  }
  assertChained(rec.batches, 0, "outbound");
  assert.deepEqual(rec.batches.flatMap((b) => b.offsets), Array.from({ length: max }, (_, i) => i + 1));
});

test("outbound: with a filter batches still chain; a re-dial after a failed batch gets a new connectionId", async () => {
  const name = uniqueName();
  const host = uniqueEchoName("rec");
  await configureEcho(mf, host, { reply: { replayAfterOffset: 0, eventTypes: ["app/keep"] } });
  await call(mf, name, "append", { event: echoSubscriptionEvent("rec", host) });
  await appendMany(name, 120, "app/skip");
  await call(mf, name, "append", { event: { type: "app/keep", payload: {} } });
  let rec = await waitForEcho(mf, host, (h) => h.batches.some((b) => b.offsets.length > 0), { what: "the kept event" });
  assertChained(rec.batches, 0, "filtered outbound");

  await configureEcho(mf, host, { failBatches: 1, reply: { replayAfterOffset: rec.batches.at(-1).throughOffset, eventTypes: ["app/keep"] } });
  await call(mf, name, "append", { event: { type: "app/keep", payload: {} } });
  rec = await waitForEcho(mf, host, (h) => h.dials.length === 2 && h.batches.some((b) => b.connectionId === h.dials[1].connectionId), {
    what: "a re-dial and its first batch",
    timeoutMs: 30_000,
  });
  assert.notEqual(rec.dials[1].connectionId, rec.dials[0].connectionId, "each dial has its own connectionId");
  const second = rec.batches.filter((b) => b.connectionId === rec.dials[1].connectionId);
  assertChained(second, second[0].afterOffset, "after the re-dial");
  const first = rec.batches.filter((b) => b.connectionId === rec.dials[0].connectionId && !b.failed);
  assert.equal(second[0].afterOffset, first.at(-1).throughOffset, "the re-dial resumes where the consumer's checkpoint is");
});
