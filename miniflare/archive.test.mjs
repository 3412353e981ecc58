// Sealed segments in R2, transparent reads, retention and deleteStream (docs/architecture.md#storage-tiers,
// docs/operations.md#the-archive, docs/protocol.md#retention). Real DO SQLite and Miniflare's local R2
// bucket, with a small STREAMS_SEGMENT_EVENTS so thousands of events make dozens of segments. The
// R2-failure test binds STREAMS_ARCHIVE through a wrapper that throws while a marker object exists.
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import { startStreams, call, tryCall, callMany, callService, http, uniqueName, splitName } from "./helpers/mf.mjs";
import { S } from "./helpers/assertions.mjs";
import { openSubscriber, subscribeRaw, echoSubscriptionEvent, echoInput, inspectEcho, uniqueEchoName, waitFor, ECHO_INPUT } from "./helpers/subscribers.mjs";

const SEGMENT_EVENTS = 100;
const FAIL_MARKER = "__streams_test_fail__";
const HOLD_MARKER = "__streams_test_hold__";
const HELD_MARKER = "__streams_test_held__";
// STREAMS_ARCHIVE → a wrapper over the real local bucket REAL that throws while FAIL_MARKER exists
// and holds reads while HOLD_MARKER exists.
const FAULTY_ARCHIVE = {
  name: "faulty-archive",
  modules: [
    {
      type: "ESModule",
      path: "faulty-archive.mjs",
      contents: `
        export default function (env) {
          const real = env.REAL;
          const check = async () => { if (await real.head(${JSON.stringify(FAIL_MARKER)})) throw new Error("R2 is unavailable (test)"); };
          // A read waits while HOLD_MARKER exists, and says so with HELD_MARKER (the test's sentinel).
          const hold = async (key) => {
            if (!(await real.head(${JSON.stringify(HOLD_MARKER)}))) return;
            await real.put(${JSON.stringify(HELD_MARKER)}, key);
            while (await real.head(${JSON.stringify(HOLD_MARKER)})) await new Promise((r) => setTimeout(r, 20));
          };
          return {
            async put(key, value, options) { await check(); return real.put(key, value, options); },
            async get(key, options) { await check(); await hold(key); return real.get(key, options); },
            async delete(key) { await check(); return real.delete(key); },
            async list(options) { await check(); return real.list(options); },
          };
        }`,
    },
  ],
  r2Buckets: { REAL: "archive-bucket" },
};

let dir;
let mf;
const start = () =>
  startStreams({
    bindings: { STREAMS_SEGMENT_EVENTS: String(SEGMENT_EVENTS), STREAM_REDIAL_BASE_MS: "100", STREAM_REDIAL_MAX_MS: "400" },
    streams: { wrappedBindings: { STREAMS_ARCHIVE: { scriptName: "faulty-archive" } } },
    workers: [FAULTY_ARCHIVE],
    miniflare: { durableObjectsPersist: path.join(dir, "do"), r2Persist: path.join(dir, "r2") },
  });

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "streams-archive-"));
  mf = await start();
});
after(async () => {
  await mf?.dispose();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const bucket = () => mf.getR2Bucket("REAL", "faulty-archive");
async function objectKeys(prefix = "streams/") {
  const listed = await (await bucket()).list({ prefix });
  return listed.objects.map((o) => o.key).sort();
}
const storage = async (name) => (await call(mf, name, "runtimeState")).runtime.storage;
const streamId = async (name) => (await call(mf, name, "runtimeState")).coreProcessorState.streamId;

/** Runs the archive's background steps until nothing is due; returns the storage figures. */
async function settle(name, arg = {}) {
  let last;
  for (let i = 0; i < 200; i++) {
    const report = await call(mf, name, "runArchiveNow", arg);
    if (report.error) return report;
    if (last && JSON.stringify(report.storage) === JSON.stringify(last.storage)) return report;
    last = report;
  }
  throw new Error("the archive never settled");
}

/** Appends `count` events in batches; some keyed, some over the 512 KiB slice size. Returns the committed events. */
async function appendMany(name, count, { tag = "e", big = [] } = {}) {
  const committed = [];
  for (let i = 0; i < count; ) {
    const n = Math.min(200, count - i);
    const events = Array.from({ length: n }, (_, j) => {
      const k = i + j;
      const event = { type: "app/item", payload: { k, tag, text: big.includes(k) ? "λ".repeat(300_000) : `item ${k} "quoted", {braces}` } };
      if (k % 7 === 0) event.idempotencyKey = `${tag}-key-${k}`;
      return event;
    });
    committed.push(...(await call(mf, name, "appendBatch", { events })));
    i += n;
  }
  return committed;
}

async function readAllPages(name, limit = 1000) {
  const events = [];
  let afterOffset = 0;
  for (;;) {
    const page = await call(mf, name, "getEvents", { afterOffset, limit });
    if (page.length === 0) return events;
    events.push(...page);
    afterOffset = page.at(-1).offset;
  }
}

function assertSameLog(actual, expected, note) {
  assert.equal(actual.length, expected.length, `${note}: count`);
  for (let i = 0; i < expected.length; i++) {
    assert.equal(JSON.stringify(actual[i]), JSON.stringify(expected[i]), `${note}: offset ${expected[i].offset}`);
  }
}

test("thousands of events are sealed into R2; the hot tier stays bounded and every read sees the same events", async () => {
  const name = uniqueName("archive");
  const committed = await appendMany(name, 3000, { big: [1234] });
  const { storage: figures } = await settle(name);
  const all = await readAllPages(name);
  const maxOffset = all.at(-1).offset;
  assert.ok(figures.archivedSegments >= 25, `sealed: ${JSON.stringify(figures)}`);
  assert.ok(figures.hotEvents < SEGMENT_EVENTS, `the hot tier holds less than one segment: ${JSON.stringify(figures)}`);
  assert.equal(figures.archivedEvents + figures.hotEvents, maxOffset, "every offset is in exactly one tier");
  assert.equal(figures.firstOffset, 1);
  assert.equal((await objectKeys(`streams/${await streamId(name)}/`)).length, figures.archivedSegments, "one object per segment");

  // getEvents paging (full and small pages) returns the committed bytes, in order, once.
  const byOffset = new Map(all.map((e) => [e.offset, e]));
  assertSameLog(committed, committed.map((e) => byOffset.get(e.offset)), "getEvents");
  assert.deepEqual(all.map((e) => e.offset), Array.from({ length: maxOffset }, (_, i) => i + 1));
  assertSameLog(await readAllPages(name, 37), all, "pages of 37");

  // getEvent by offset for every event, and by idempotency key for the archived keyed ones.
  for (let i = 0; i < all.length; i += 250) {
    const outcomes = await callMany(mf, name, all.slice(i, i + 250).map((e) => ({ method: "getEvent", arg: { offset: e.offset } })));
    outcomes.forEach((o, j) => assert.equal(JSON.stringify(o.result), JSON.stringify(all[i + j]), `getEvent ${all[i + j].offset}`));
  }
  const keyed = committed.filter((e) => e.idempotencyKey).slice(0, 40);
  for (const event of keyed) {
    assert.equal(JSON.stringify(await call(mf, name, "getEvent", { idempotencyKey: event.idempotencyKey })), JSON.stringify(event));
  }
  // De-duplication still covers archived events: a repeat returns the original, appends nothing.
  const repeat = await call(mf, name, "append", { event: { type: "app/item", payload: { other: true }, idempotencyKey: keyed[0].idempotencyKey } });
  assert.equal(JSON.stringify(repeat), JSON.stringify(keyed[0]));
  assert.equal((await readAllPages(name)).length, maxOffset, "the repeat appended nothing");

  // Reads by time and from the tail reach into the archive (a time search fetches one segment).
  await call(mf, name, "simulateHibernation"); // an empty segment cache
  for (const at of [10, 1500, 2990]) {
    const since = all[at].createdAt;
    const page = await call(mf, name, "getEvents", { sinceTime: since, limit: 5 });
    const first = all.find((e) => e.createdAt >= since);
    assert.equal(JSON.stringify(page[0]), JSON.stringify(first), `sinceTime ${since}`);
  }
  const tail = await call(mf, name, "getEvents", { last: 250 }); // the hibernation added a woken
  assertSameLog(tail.slice(0, -1), all.slice(-249), "last 250");

  // A socket replays the whole log from offset 0, archived and hot, in order, once.
  const sub = await openSubscriber(mf, name, { replayAfterOffset: 0 });
  await sub.waitForOffset(maxOffset, { timeoutMs: 20000 });
  sub.close();
  assertSameLog(sub.events().filter((e) => e.offset <= maxOffset), all, "socket replay");
});

test("an outbound subscriber replays archived events", async () => {
  const name = uniqueName("archive-out");
  const inputs = [];
  for (let i = 0; i < 3; i++) {
    inputs.push(...(await call(mf, name, "appendBatch", { events: Array.from({ length: 150 }, (_, j) => echoInput({ n: i * 150 + j })) })));
  }
  const { storage: figures } = await settle(name);
  assert.ok(figures.archivedSegments >= 4, JSON.stringify(figures));
  const echo = uniqueEchoName();
  await call(mf, name, "append", { event: echoSubscriptionEvent("echo", echo) });
  const seen = await waitFor(() => inspectEcho(mf, echo), (s) => s.delivered.length >= inputs.length, { timeoutMs: 30000, what: "every archived input delivered" });
  assert.deepEqual(seen.delivered, inputs.map((e) => e.offset), "each input once, in order");
  assert.equal(inputs[0].type, ECHO_INPUT);
});

test("a kill and a full restart between the upload and the row deletion resume without loss or duplicate", async () => {
  const name = uniqueName("archive-crash");
  await call(mf, name, "runArchiveNow", { holdAfterUpload: true });
  const committed = await appendMany(name, 250, { tag: "c" });
  const held = await settle(name, { holdAfterUpload: true });
  assert.equal(held.storage.archivedSegments, 0, "nothing recorded: the seal stops after its upload");
  const id = await streamId(name);
  const uploaded = await objectKeys(`streams/${id}/`);
  assert.equal(uploaded.length, 1, `the first segment was uploaded: ${uploaded}`);

  await tryCall(mf, name, "kill");
  await waitFor(() => tryCall(mf, name, "runtimeState"), (o) => o.ok, { what: "boot after kill" });
  await mf.dispose();
  mf = await start();
  await settle(name, { holdAfterUpload: true });
  assert.deepEqual(await objectKeys(`streams/${id}/`), uploaded, "the resumed seal wrote the same object again");

  const { storage: figures } = await settle(name);
  assert.equal(figures.archivedSegments, 2);
  const all = await readAllPages(name);
  const byOffset = new Map(all.map((e) => [e.offset, e]));
  assertSameLog(committed.map((e) => byOffset.get(e.offset)), committed, "after the resumed seal");
  assert.deepEqual(all.map((e) => e.offset), Array.from({ length: all.length }, (_, i) => i + 1), "no gap, no duplicate");
  assert.equal((await objectKeys(`streams/${id}/`)).length, 2);
});

test("while R2 fails appends go on, the failure is retried with back-off, and sealing recovers", async () => {
  const name = uniqueName("archive-fail");
  await call(mf, name, "runtimeState");
  await (await bucket()).put(FAIL_MARKER, "1");
  let committed;
  try {
    committed = await appendMany(name, 350, { tag: "f" });
    const failed = await call(mf, name, "runArchiveNow");
    assert.match(failed.error ?? "", /R2 is unavailable/, "the failure is reported");
    assert.equal(failed.storage.archivedSegments, 0);
    assert.equal(failed.storage.hotEvents, committed.at(-1).offset, "every event stays in SQLite");
    assert.deepEqual((await readAllPages(name)).map((e) => e.offset).at(-1), committed.at(-1).offset);
  } finally {
    await (await bucket()).delete(FAIL_MARKER);
  }
  // The alarm retries without any call.
  const figures = await waitFor(() => storage(name), (s) => s.archivedSegments === 3, { timeoutMs: 30_000, what: "sealing after R2 recovered" });
  assert.ok(figures.hotEvents < SEGMENT_EVENTS);
  const all = await readAllPages(name);
  const byOffset = new Map(all.map((e) => [e.offset, e]));
  assertSameLog(committed.map((e) => byOffset.get(e.offset)), committed, "after recovery");
});

test("a damaged or missing segment is internal for its events, never another event", async () => {
  const name = uniqueName("archive-damage");
  await appendMany(name, 250, { tag: "d" });
  await settle(name);
  const keys = await objectKeys(`streams/${await streamId(name)}/`);
  const r2 = await bucket();
  const second = await (await r2.get(keys[1])).arrayBuffer();
  await r2.put(keys[0], second); // segment 1 now holds segment 2's bytes
  await r2.delete(keys[1]);
  await call(mf, name, "simulateHibernation"); // an empty cache
  for (const offset of [1, 50, 150]) {
    const o = await tryCall(mf, name, "getEvent", { offset });
    assert.equal(o.ok, false);
    assert.equal(o.error, "internal: internal error", `offset ${offset}`);
  }
  const hot = await call(mf, name, "getEvent", { offset: 240 });
  assert.equal(hot.offset, 240, "hot events still read");
});

test("segments are stored gzip-compressed; an uncompressed segment of an earlier version reads back the same; a damaged compressed one is internal", async () => {
  const name = uniqueName("archive-format");
  await appendMany(name, 350, { tag: "f" });
  await settle(name);
  const written = await readAllPages(name);
  const keys = await objectKeys(`streams/${await streamId(name)}/`);
  assert.ok(keys.length >= 3, `sealed: ${keys}`);
  const r2 = await bucket();
  const stored = async (key) => new Uint8Array(await (await r2.get(key)).arrayBuffer());
  const first = await stored(keys[0]);
  assert.deepEqual([...first.subarray(0, 2)], [0x1f, 0x8b], "a gzip member");
  const layout = new Uint8Array(zlib.gunzipSync(first));
  assert.match(Buffer.from(layout.subarray(0, 60)).toString(), /^\{"format":"streams-segment\/1","firstOffset":1,/);
  assert.ok(first.length * 3 < layout.length, `compressed ${layout.length} bytes into ${first.length}`);
  // The first segment as an earlier version wrote it: the same layout, uncompressed.
  await r2.put(keys[0], layout);
  // The second, damaged inside its compressed body; the third, cut short.
  const second = await stored(keys[1]);
  second[Math.floor(second.length / 2)] ^= 0x55;
  await r2.put(keys[1], second);
  const third = await stored(keys[2]);
  await r2.put(keys[2], third.slice(0, third.length - 9));
  await tryCall(mf, name, "kill"); // the segment cache goes with the incarnation
  const segment = (i) => written.filter((e) => e.offset > i * SEGMENT_EVENTS && e.offset <= (i + 1) * SEGMENT_EVENTS);
  assertSameLog(await call(mf, name, "getEvents", { afterOffset: 0, limit: SEGMENT_EVENTS }), segment(0), "the uncompressed segment");
  for (const offset of [SEGMENT_EVENTS + 1, 2 * SEGMENT_EVENTS, 2 * SEGMENT_EVENTS + 1, 3 * SEGMENT_EVENTS]) {
    const o = await tryCall(mf, name, "getEvent", { offset });
    assert.equal(o.ok, false, `offset ${offset}: ${JSON.stringify(o)}`);
    assert.equal(o.error, "internal: internal error", `offset ${offset}`);
  }
  assert.equal(JSON.stringify(await call(mf, name, "getEvent", { offset: 3 * SEGMENT_EVENTS + 1 })), JSON.stringify(written[3 * SEGMENT_EVENTS]), "the next segment still reads");
});

test("retention by count removes whole segments from SQLite and R2; reads before the first kept offset are trimmed", async () => {
  const name = uniqueName("archive-count");
  await appendMany(name, 520, { tag: "r" });
  await settle(name);
  const before = await call(mf, name, "runtimeState");
  await call(mf, name, "append", { event: { type: S("configured"), payload: { config: { retention: { maxEvents: 230 } } } } });
  const { storage: figures } = await settle(name);
  const state = (await call(mf, name, "runtimeState")).coreProcessorState;
  const maxOffset = state.maxOffset;
  assert.ok(figures.firstOffset > 1, JSON.stringify(figures));
  assert.equal((figures.firstOffset - 1) % SEGMENT_EVENTS, 0, "whole segments");
  assert.ok(maxOffset - figures.firstOffset + 1 >= 230, "never fewer than asked");
  assert.ok(maxOffset - figures.firstOffset + 1 < 230 + SEGMENT_EVENTS, "no whole segment more than needed");
  assert.equal(state.eventCount, before.coreProcessorState.eventCount + 1, "the state stays exact");
  assert.deepEqual(state.config.retention, { maxEvents: 230 });
  const kept = await objectKeys(`streams/${state.streamId}/`);
  assert.equal(kept.length, figures.archivedSegments, "removed segments are deleted from R2");

  const first = figures.firstOffset;
  const message = `Offset ${first - 1} was removed by retention; the first kept offset is ${first}.`;
  assert.deepEqual(await tryCall(mf, name, "getEvent", { offset: first - 1 }), { ok: false, error: `trimmed: ${message}`, name: "Error" });
  assert.equal((await tryCall(mf, name, "getEvents", { afterOffset: first - 2 })).error, `trimmed: ${message}`);
  assert.equal((await call(mf, name, "getEvents", { afterOffset: first - 1, limit: 1 }))[0].offset, first, "from the first kept offset on");
  const { namespace, path: p } = splitName(name);
  const q = new URLSearchParams({ namespace, path: p, offset: String(first - 1) });
  const viaHttp = await http(mf, "GET", `/api/streams/getEvent?${q}`);
  assert.equal(viaHttp.status, 410);
  assert.deepEqual(viaHttp.json, { error: { code: "trimmed", message } });
  const refused = await subscribeRaw(mf, name, { replayAfterOffset: first - 2 });
  assert.equal(refused.status, 410, "a socket replay from a trimmed offset is refused before the upgrade");
  assert.equal(refused.json.error.code, "trimmed");
  const sub = await openSubscriber(mf, name, { replayAfterOffset: first - 1 });
  await sub.waitForOffset(maxOffset, { timeoutMs: 30_000 });
  sub.close();
  assert.equal(sub.events()[0].offset, first);
});

test("retention changed while a retention step fetches segments: the step removes only what the new retention allows", async () => {
  const name = uniqueName("archive-replan");
  await appendMany(name, 520, { tag: "p" });
  assert.equal((await settle(name)).storage.archivedSegments, 5);
  await tryCall(mf, name, "kill"); // the segment cache goes with the incarnation
  const r2 = await bucket();
  await r2.put(HOLD_MARKER, "1");
  try {
    // Keeping 150 would remove three segments; the step first rebuilds the state at that point from R2.
    await call(mf, name, "append", { event: { type: S("configured"), payload: { config: { retention: { maxEvents: 150 } } } } });
    await waitFor(() => r2.head(HELD_MARKER), (held) => held !== null, { what: "the retention step's segment fetch held" });
    await call(mf, name, "append", { event: { type: S("configured"), payload: { config: { retention: { maxEvents: 1_000_000 } } } } });
  } finally {
    await r2.delete(HOLD_MARKER);
    await r2.delete(HELD_MARKER);
  }
  const { storage: figures } = await settle(name);
  assert.equal(figures.firstOffset, 1, "nothing removed: the retention now in force keeps everything");
  assert.equal(figures.archivedSegments, 5);
  assert.equal((await readAllPages(name)).length, (await call(mf, name, "runtimeState")).coreProcessorState.maxOffset);
});

test("retention by age removes what is older than the limit, by the alarm within the limit's time", async () => {
  const name = uniqueName("archive-age");
  const old = await appendMany(name, 230, { tag: "old" });
  // The new events must be younger than the old: wait until the clock has passed the last old one.
  await waitFor(() => Date.now(), (now) => now > Date.parse(old.at(-1).createdAt), { intervalMs: 1, what: "the clock past the old events" });
  await appendMany(name, 10, { tag: "new" });
  await settle(name);
  await call(mf, name, "append", { event: { type: S("configured"), payload: { config: { retention: { maxAgeSeconds: 3600 } } } } });
  // A test clock: an hour after the last old event, only the old ones (two segments and hot rows) go.
  const nowMs = Date.parse(old.at(-1).createdAt) + 3600_000;
  const { storage: figures } = await settle(name, { nowMs });
  assert.equal(figures.firstOffset, old.at(-1).offset + 1, JSON.stringify(figures));
  assert.equal((await tryCall(mf, name, "getEvent", { offset: old.at(-1).offset })).error.split(":")[0], "trimmed");

  // The real clock, through the alarm: a one-second limit removes everything older.
  const quick = uniqueName("archive-age-alarm");
  await appendMany(quick, 120, { tag: "q" });
  await call(mf, quick, "append", { event: { type: S("configured"), payload: { config: { retention: { maxAgeSeconds: 1 } } } } });
  const last = (await call(mf, quick, "runtimeState")).coreProcessorState.maxOffset;
  const trimmed = await waitFor(() => storage(quick), (s) => s.firstOffset === last + 1, { timeoutMs: 30_000, what: "the alarm's retention step" });
  assert.equal(trimmed.archivedSegments + trimmed.hotEvents, 0);
});

test("retention without an archive removes hot rows", async () => {
  const plain = await startStreams();
  try {
    const name = uniqueName("plain-count");
    await call(plain, name, "append", { event: { type: S("configured"), payload: { config: { retention: { maxEvents: 50 } } } } });
    for (let i = 0; i < 3; i++) await call(plain, name, "appendBatch", { events: Array.from({ length: 60 }, () => ({ type: "app/x" })) });
    const figures = await waitFor(() => call(plain, name, "runtimeState"), (s) => s.runtime.storage.hotEvents === 50, { what: "hot rows trimmed" }).then((s) => s.runtime.storage);
    assert.equal(figures.archivedSegments, 0);
    assert.equal(figures.firstOffset, 183 - 50 + 1);
    assert.equal((await tryCall(plain, name, "getEvent", { offset: 1 })).error, `trimmed: Offset 1 was removed by retention; the first kept offset is ${figures.firstOffset}.`);
    const bad = await tryCall(plain, name, "append", { event: { type: S("configured"), payload: { config: { retention: { maxEvents: 0 } } } } });
    assert.equal(bad.error, "invalid_event: event[0]: payload.config.retention.maxEvents must be a positive integer");
  } finally {
    await plain.dispose();
  }
});

/**
 * Retention keeps the state history getState needs from firstOffset − 1 on and nothing older: the
 * states at the offsets near the end are read before, compared after; `runArchiveNow` lists the
 * kept snapshots.
 */
async function checkStateHistory(inst, name, maxEvents) {
  const { maxOffset } = (await call(inst, name, "runtimeState")).coreProcessorState;
  const offsets = Array.from({ length: maxEvents + 200 }, (_, i) => maxOffset - i);
  const states = async () => (await callMany(inst, name, offsets.map((atOffset) => ({ method: "getState", arg: { atOffset } })))).map((o) => o.result);
  const before = await states();
  assert.ok(before.every((s, i) => s?.maxOffset === offsets[i]), "every state read before retention");
  await call(inst, name, "append", { event: { type: S("configured"), payload: { config: { retention: { maxEvents } } } } });
  let report;
  for (let i = 0; i < 50; i++) {
    report = await call(inst, name, "runArchiveNow", {});
    if (report.storage.firstOffset > 1) break;
  }
  assert.equal(report.error, null);
  const first = report.storage.firstOffset;
  assert.ok(first - 1 > 1000 && offsets.includes(first - 1), `first kept ${first} is past a snapshot and inside the offsets read: ${JSON.stringify(report)}`);
  assert.equal(report.stateHistory[0], first - 1, `the snapshot at firstOffset − 1 is kept and nothing older: ${report.stateHistory}`);
  const after = await callMany(inst, name, offsets.map((atOffset) => ({ method: "getState", arg: { atOffset } })));
  offsets.forEach((atOffset, i) => {
    if (atOffset >= first - 1) {
      assert.equal(after[i].ok, true, `getState at ${atOffset}: ${after[i].error}`);
      assert.deepEqual(after[i].result, before[i], `getState at ${atOffset}`);
    } else {
      assert.equal(after[i].error, `trimmed: Offset ${atOffset + 1} was removed by retention; the first kept offset is ${first}.`, `getState at ${atOffset}`);
    }
  });
}

test("retention removes the state snapshots below firstOffset − 1; getState answers the same from there on (archive and hot rows)", async () => {
  const archived = uniqueName("archive-history");
  await appendMany(archived, 2600, { tag: "h" });
  await settle(archived);
  await checkStateHistory(mf, archived, 450);
  const plain = await startStreams();
  try {
    const name = uniqueName("plain-history");
    for (let i = 0; i < 13; i++) await call(plain, name, "appendBatch", { events: Array.from({ length: 200 }, (_, j) => ({ type: "app/x", payload: { i, j } })) });
    await checkStateHistory(plain, name, 450);
  } finally {
    await plain.dispose();
  }
});

test("deleteStream removes the events, the segments in R2, the state and the sockets; the next write starts a new life", async () => {
  const name = uniqueName("archive-delete");
  await appendMany(name, 250, { tag: "x" });
  await settle(name);
  const id = await streamId(name);
  assert.equal((await objectKeys(`streams/${id}/`)).length, 2);
  const { namespace, path: streamPath } = splitName(name);
  const listed = () => callService(mf, "listStreams", { namespace, prefix: streamPath }).then((page) => page.streams.map((s) => s.path));
  await waitFor(listed, (paths) => paths.includes(streamPath), { what: "the stream in the directory" });
  const sub = await openSubscriber(mf, name, {});
  await call(mf, name, "deleteStream");
  assert.deepEqual(await listed(), [], "deleteStream removes the stream from the directory");
  await sub.waitForClose();
  assert.equal(sub.closeEvent.code, 1012);
  assert.deepEqual(await objectKeys(`streams/${id}/`), [], "the segments are gone from R2");
  const fresh = await waitFor(() => tryCall(mf, name, "runtimeState"), (o) => o.ok, { what: "the next life" });
  assert.notEqual(fresh.result.coreProcessorState.streamId, id);
  assert.equal(fresh.result.runtime.storage.archivedSegments, 0);
  // A read creates nothing (docs/protocol.md#reads-create-nothing); the next write starts the new life.
  assert.deepEqual(await call(mf, name, "getEvents", {}), []);
  await call(mf, name, "append", { event: { type: "app/next-life" } });
  assert.deepEqual((await call(mf, name, "getEvents", {})).map((e) => e.type), [S("created"), S("woken"), "app/next-life"]);
});
