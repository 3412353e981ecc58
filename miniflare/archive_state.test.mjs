// Reads that cross far more archived segments than the segment cache holds (16) and than a call is
// ever re-run keep their place while each segment is fetched, so each is fetched from R2 once
// (docs/architecture.md#storage-tiers): getState({atOffset}) replaying from the nearest snapshot
// (docs/protocol.md#getstate), a getEvents window with eventTypes, a socket and an outbound
// subscriber with eventTypes. Real DO SQLite and Miniflare's local R2 bucket, bound
// through a wrapper that records every `get` as a marker object beside the segments.
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import { startStreams, call, uniqueName } from "./helpers/mf.mjs";
import { openSubscriber, echoSubscriptionEvent, echoInput, inspectEcho, uniqueEchoName, waitFor } from "./helpers/subscribers.mjs";

const SEGMENT_EVENTS = 20;
const GET_MARKERS = "__gets__/";
const COUNTING_ARCHIVE = {
  name: "counting-archive",
  modules: [
    {
      type: "ESModule",
      path: "counting-archive.mjs",
      contents: `
        export default function (env) {
          const real = env.REAL;
          return {
            put: (key, value, options) => real.put(key, value, options),
            async get(key, options) {
              await real.put(${JSON.stringify(GET_MARKERS)} + key + "/" + crypto.randomUUID(), "");
              return real.get(key, options);
            },
            delete: (key) => real.delete(key),
            list: (options) => real.list(options),
          };
        }`,
    },
  ],
  r2Buckets: { REAL: "archive-bucket" },
};

let mf;
before(async () => {
  mf = await startStreams({
    bindings: { STREAMS_SEGMENT_EVENTS: String(SEGMENT_EVENTS) },
    streams: { wrappedBindings: { STREAMS_ARCHIVE: { scriptName: "counting-archive" } } },
    workers: [COUNTING_ARCHIVE],
  });
});
after(async () => {
  await mf?.dispose();
});

/** How often each segment object was fetched, by key. */
async function fetchesByKey() {
  const bucket = await mf.getR2Bucket("REAL", "counting-archive");
  const counts = new Map();
  let cursor;
  do {
    const listed = await bucket.list({ prefix: GET_MARKERS, cursor });
    for (const { key } of listed.objects) {
      const segment = key.slice(GET_MARKERS.length, key.lastIndexOf("/"));
      counts.set(segment, (counts.get(segment) ?? 0) + 1);
    }
    cursor = listed.truncated ? listed.cursor : undefined;
  } while (cursor);
  return counts;
}

/** Runs the archive's background steps until nothing changes; returns the storage figures. */
async function settle(name) {
  let last;
  for (let i = 0; i < 500; i++) {
    const report = await call(mf, name, "runArchiveNow", {});
    assert.equal(report.error, null);
    if (last && JSON.stringify(report.storage) === JSON.stringify(last)) return report.storage;
    last = report.storage;
  }
  throw new Error("the archive never settled");
}

test("getState at an offset whose replay crosses dozens of archived segments answers, fetching each segment once", async () => {
  const name = uniqueName("archive-state");
  const recorded = new Map();
  await call(mf, name, "append", { event: { type: "app/start" } });
  for (let round = 0; round < 21; round++) {
    await call(mf, name, "appendBatch", { events: Array.from({ length: 100 }, (_, i) => ({ type: "app/n", payload: { round, i } })) });
    await call(mf, name, "append", { event: { type: "events.iterate.com/stream/metadata-updated", payload: { metadata: { round } } } });
    const state = (await call(mf, name, "runtimeState")).coreProcessorState;
    recorded.set(state.maxOffset, state);
  }
  // A snapshot is kept where a commit crosses a multiple of 1000; the offset just before the
  // next one is the farthest replay from it.
  const offsets = [...recorded.keys()];
  const snapshot = offsets.find((o) => o >= 1000);
  const atOffset = offsets.filter((o) => o < 2000).at(-1);
  const segments = Math.ceil((atOffset - snapshot) / SEGMENT_EVENTS);
  assert.ok(segments > 40, `the replay crosses ${segments} segments, more than the cache (16) holds or a call is re-run`);

  const storage = await settle(name);
  assert.ok(storage.hotEvents < SEGMENT_EVENTS && storage.firstOffset === 1, `archived, nothing removed: ${JSON.stringify(storage)}`);
  assert.equal((await fetchesByKey()).size, 0, "nothing read back yet");

  assert.deepEqual(await call(mf, name, "getState", { atOffset }), recorded.get(atOffset));
  const fetched = await fetchesByKey();
  const twice = [...fetched].filter(([, n]) => n > 1);
  assert.deepEqual(twice, [], "no segment fetched twice");
  assert.ok(fetched.size >= segments && fetched.size <= segments + 2, `${fetched.size} segments fetched for a replay over ${segments}`);

  // Every other recorded offset answers the same (from its own snapshot and the segments it needs).
  for (const [offset, state] of recorded) assert.deepEqual(await call(mf, name, "getState", { atOffset: offset }), state, `at ${offset}`);
});

/** A stream of `rounds` rounds of `between` `app/n` and one `rare` event, archived; returns the `rare` events. */
async function rareEvents(name, { rounds, between, rare: rareEvent = (round) => ({ type: "app/rare", payload: { round } }) }) {
  await call(mf, name, "append", { event: { type: "app/start" } });
  const rare = [];
  for (let round = 0; round < rounds; round++) {
    for (let from = 0; from < between; from += 500) {
      const events = Array.from({ length: Math.min(500, between - from) }, (_, i) => ({ type: "app/n", payload: { round, i: from + i } }));
      await call(mf, name, "appendBatch", { events });
    }
    rare.push(...(await call(mf, name, "appendBatch", { events: [rareEvent(round)] })));
  }
  await settle(name);
  return rare;
}

test("a getEvents with eventTypes whose window crosses dozens of archived segments answers, fetching each segment once", async () => {
  const name = uniqueName("archive-filter");
  const rare = await rareEvents(name, { rounds: 10, between: 100 });
  const before = await fetchesByKey();
  const page = await call(mf, name, "getEvents", { afterOffset: 0, limit: 1000, eventTypes: ["app/rare"] });
  assert.deepEqual(page, rare.filter((e) => e.offset <= 1000), "the matches of the window 1..1000, in order");
  const fetched = [...(await fetchesByKey())].filter(([key, n]) => n !== before.get(key));
  const segments = Math.ceil(1000 / SEGMENT_EVENTS);
  assert.deepEqual(fetched.filter(([key, n]) => n - (before.get(key) ?? 0) > 1), [], "no segment fetched twice");
  assert.ok(fetched.length >= segments - 1 && fetched.length <= segments + 1, `${fetched.length} segments fetched for a window over ${segments}`);
});

test("a socket with eventTypes whose replay scans dozens of archived segments without a match gets every match, fetching each segment once", async () => {
  const name = uniqueName("archive-socket");
  // 1,200 events (60 segments) without a match before each: more than a step scans (1,000).
  const rare = await rareEvents(name, { rounds: 2, between: 1200 });
  const before = await fetchesByKey();
  const sub = await openSubscriber(mf, name, { replayAfterOffset: 0, eventTypes: "app/rare" });
  await sub.waitForOffset(rare.at(-1).offset, { timeoutMs: 30_000 });
  sub.close();
  assert.deepEqual(sub.events(), rare, "every match, in order, once");
  const fetched = [...(await fetchesByKey())].filter(([key, n]) => n !== before.get(key));
  assert.deepEqual(fetched.filter(([key, n]) => n - (before.get(key) ?? 0) > 1), [], "no segment fetched twice");
});

test("an outbound subscriber with eventTypes whose replay scans dozens of archived segments without a match gets every match, fetching each segment once", async () => {
  const name = uniqueName("archive-outbound");
  const inputs = await rareEvents(name, { rounds: 2, between: 1200, rare: (round) => echoInput({ round }) });
  const before = await fetchesByKey();
  const echo = uniqueEchoName();
  await call(mf, name, "append", { event: echoSubscriptionEvent("echo", echo) });
  const seen = await waitFor(() => inspectEcho(mf, echo), (s) => s.delivered.length >= inputs.length, { timeoutMs: 30_000, what: "both inputs delivered" });
  assert.deepEqual(seen.delivered, inputs.map((e) => e.offset), "each input once, in order");
  const fetched = [...(await fetchesByKey())].filter(([key, n]) => n !== before.get(key));
  assert.deepEqual(fetched.filter(([key, n]) => n - (before.get(key) ?? 0) > 1), [], "no segment fetched twice");
});
