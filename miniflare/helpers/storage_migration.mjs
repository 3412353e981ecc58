// The storage migration checks (miniflare/storage_migration*.test.mjs), run on one fixture of
// Durable Object SQLite files written by the first storage layout (miniflare/fixtures/, made by
// make-v1-fixture.mjs): the fixture boots on the current build, and nothing a user can see changes
// (docs/architecture.md#storage). Every event reads back byte-identical by page, by offset and by
// idempotency key; the state is the recorded one plus the new `woken`; appends continue at the next
// offsets; the old keys still deduplicate; after kill() and after a full restart the state equals
// a full rebuild of the log.
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { startStreams, http } from "./mf.mjs";
import { S, callOn, readLog, liveState, doIdOf, apiUrl } from "./reliability.mjs";
import { readManifest, unpackFixture, digestOf, logDigestOf, bytesOf, sizedInput, foldState, FOLD_WORKER, CHUNK } from "./storage.mjs";

/** Registers the migration tests of the fixture in `FIXTURE` (a directory holding a manifest.json). */
export function migrationTests(FIXTURE) {
  const manifest = readManifest(FIXTURE);
  const NAMES = Object.keys(manifest.streams);
  const MAIN = "fixture:/v1/main";
  const TRIPPED = "fixture:/v1/tripped";
  /** Above this many events a stream's per-offset reads and rebuilds are sampled (a --large fixture). */
  const FULL_CHECK_EVENTS = 5000;
  const RESERVED_KEY = /^(stream-paused|child-stream-created):/;

  let dir;
  let mf;
  const start = () => startStreams({ workers: [FOLD_WORKER], miniflare: { durableObjectsPersist: dir } });
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "streams-storage-migration-"));
    unpackFixture(dir, manifest, FIXTURE);
    mf = await start();
  });
  after(async () => {
    await mf?.dispose();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  async function must(name, method, arg) {
    const o = await callOn(mf, "do", name, method, arg);
    if (!o.ok) throw new Error(`${method} on ${name}: ${o.error}`);
    return o.result;
  }

  /** How many events the fixture recorded for a stream (per event, or as one digest of a large log). */
  const recordedCount = (name) => manifest.streams[name].events?.length ?? manifest.streams[name].count;

  // A large log is recorded as one digest; once its first read matched it, that read is the reference.
  const checkedLogs = new Map();

  /** Asserts `event` is the fixture's event at its offset, byte for byte. */
  function assertRecorded(name, event, note) {
    const recorded = manifest.streams[name];
    assert.ok(event.offset >= 1 && event.offset <= recordedCount(name), `${name} ${note}: offset ${event.offset} is in the fixture`);
    if (!recorded.events) {
      assert.equal(bytesOf(event), bytesOf(checkedLogs.get(name)[event.offset - 1]), `${name} ${note}: @${event.offset} differs from the first layout's`);
      return;
    }
    const [offset, length, digest, type] = recorded.events[event.offset - 1];
    assert.equal(event.offset, offset, `${name} ${note}: offset`);
    assert.equal(event.type, type, `${name} ${note}: type @${offset}`);
    assert.deepEqual(digestOf(event), [length, digest], `${name} ${note}: JSON of @${offset} differs from what the first layout stored`);
  }

  /** Every event of a short log; about one in 13 of a long one and one in 997 of a large one (their pages are checked in full). */
  const sampled = (events) => {
    const every = events.length <= 100 ? 1 : events.length <= FULL_CHECK_EVENTS ? 13 : 997;
    return events.filter((_, i) => i % every === 0 || i === events.length - 1);
  };

  /**
   * The events of `log` after its first `known` ones, which must all be `woken`: each boot adds one,
   * and the runtime may evict an idle object between two tests, so a later call boots it again.
   */
  function onlyWokens(log, known, note) {
    const extra = log.slice(known);
    assert.ok(extra.length >= 1, `${note}: no woken after the boot`);
    assert.deepEqual(extra.map((e) => e.type), extra.map(() => S("woken")), `${note}: only woken events after the known ones`);
    return extra;
  }



  // What the first boot saw, per stream: {state, log} (the recorded events plus the new woken).
  const booted = new Map();

  test(`migration (${path.basename(FIXTURE)}): the fixture's objects sit under the ids Miniflare derives from their names`, async () => {
    for (const name of NAMES) assert.equal(await doIdOf(mf, name), manifest.streams[name].id, `${name}: the fixture file would not be found`);
  });

  for (const name of NAMES) {
    test(`migration (${path.basename(FIXTURE)}): ${name} boots on the first layout's file; every event reads back byte-identical; state == recorded + woken`, async () => {
      const recorded = manifest.streams[name];
      const first = await callOn(mf, "do", name, "runtimeState");
      assert.ok(first.ok, `boot on the fixture failed: ${first.error}`);
      const state = first.result.coreProcessorState;

      // Pages of 1000 (readLog), then the whole log again in small pages.
      const count = recordedCount(name);
      const log = await readLog(mf, name);
      if (recorded.events) for (const event of log.slice(0, count)) assertRecorded(name, event, "getEvents(limit 1000)");
      else assert.equal(logDigestOf(log.slice(0, count)), recorded.logSha256, `${name}: the log differs from what the first layout stored`);
      checkedLogs.set(name, log.slice(0, count));
      const [woken] = onlyWokens(log, count, name);
      assert.equal(woken.offset, count + 1);
      const pageSize = count <= 100 ? 1 : 7;
      for (let after = 0; after < Math.min(count, FULL_CHECK_EVENTS); after += pageSize) {
        const page = await must(name, "getEvents", { afterOffset: after, limit: pageSize });
        assert.equal(page.length, Math.min(pageSize, log.length - after));
        for (const event of page.filter((e) => e.offset <= count)) assertRecorded(name, event, `getEvents(afterOffset ${after}, limit ${pageSize})`);
      }
      const windowed = await must(name, "getEvents", { afterOffset: 1, beforeOffset: count, limit: 1000 });
      assert.deepEqual(windowed.map((e) => e.offset), log.slice(1, Math.min(count - 1, 1001)).map((e) => e.offset), "a beforeOffset window");

      // By offset over HTTP: the body is the stored JSON itself, no re-encoding in between.
      for (const event of sampled(log.slice(0, count))) {
        const res = await http(mf, "GET", apiUrl(name, "getEvent", `&offset=${event.offset}`));
        assert.equal(res.status, 200, `getEvent @${event.offset}: ${res.text.slice(0, 200)}`);
        assert.equal(res.text, bytesOf(event), `${name}: HTTP getEvent @${event.offset}`);
      }
      // By idempotency key.
      for (const [key, offset] of Object.entries(recorded.keys)) {
        const event = await must(name, "getEvent", { idempotencyKey: key });
        assert.ok(event, `${name}: key ${key} is gone`);
        assert.equal(event.offset, offset, `${name}: key ${key}`);
        assertRecorded(name, event, `getEvent(idempotencyKey ${key})`);
      }

      // The state (read by the call that booted): the recorded one with the new woken reduced into it.
      assert.equal(state.eventCount, recorded.state.eventCount + 1);
      assert.equal(state.maxOffset, recorded.state.maxOffset + 1);
      // State version 7 added childCount: the first boot rebuilds the state, which counts the child notices.
      const childCount = log.slice(0, count).filter((e) => e.type === S("child-stream-created")).length;
      const expected = await must(name, "reduce", { event: woken, coreProcessorState: { ...recorded.state, childCount } });
      assert.equal(bytesOf(state), bytesOf(expected), `${name}: state after boot != recorded state + woken`);
      booted.set(name, { state, log });
    });
  }

  // The checks of particular streams, for a fixture that has them.
  const hasMain = MAIN in manifest.streams;

  if (hasMain) test(`migration (${path.basename(FIXTURE)}): the fixture streams keep their shapes (breaker, subscriptions, children, pause)`, () => {
    const main = booted.get(MAIN)?.state;
    assert.ok(main, "main booted");
    assert.deepEqual(main.config, { simulatedStorageSyncDelayMs: 3, circuitBreaker: { burstCapacity: 50000, refillRatePerMinute: 3000000 } });
    assert.deepEqual(main.metadata, { owner: "fixture", layout: "v1" });
    assert.deepEqual(Object.keys(main.subscriptionsByKey), ["gone"]);
    assert.deepEqual(Object.keys(main.processorsBySlug), ["echo-example"]);
    assert.deepEqual(main.childPaths, ["/v1/main/child"]);
    assert.equal(main.paused, false);
    assert.equal(booted.get(TRIPPED)?.state.paused, true);
    assert.ok(manifest.streams[MAIN].events.some(([, length]) => length > 3 * CHUNK), "a multi-chunk event is in the fixture");
  });

  test(`migration (${path.basename(FIXTURE)}): appends continue at the next offsets; the first layout's idempotency keys still deduplicate`, async () => {
    const callerKeysOf = (name) => Object.entries(manifest.streams[name].keys).filter(([key]) => !RESERVED_KEY.test(key));
    const keyed = NAMES.filter((name) => callerKeysOf(name).length > 0);
    assert.ok(keyed.length > 0, "the fixture has caller keys");
    for (const name of keyed) {
      let next = (await liveState(mf, name)).maxOffset + 1;
      const single = await must(name, "append", { event: { type: "app/after-migration", payload: { n: 1 } } });
      assert.equal(single.offset, next++);
      const callerKeys = callerKeysOf(name);
      // A batch of nothing but old keys (new payloads) writes nothing and returns the originals.
      const hits = await must(name, "appendBatch", { events: callerKeys.map(([key]) => ({ type: "app/retry", payload: { changed: true }, idempotencyKey: key })) });
      hits.forEach((event, i) => {
        assert.equal(event.offset, callerKeys[i][1], `hit on ${callerKeys[i][0]}`);
        assertRecorded(name, event, `re-sent key ${callerKeys[i][0]}`);
      });
      const [key, offset] = callerKeys.at(-1);
      const one = await must(name, "append", { event: { type: "app/retry", idempotencyKey: key } });
      assertRecorded(name, one, `append re-sending ${key}`);
      assert.equal(one.offset, offset);
      // A batch mixing a hit and new events, one of them just over a chunk, one several chunks.
      const mixed = await must(name, "appendBatch", {
        events: [
          { type: "app/retry", idempotencyKey: callerKeys[0][0] },
          { type: "app/new", payload: { k: 1 }, idempotencyKey: `${name}-new-1` },
          sizedInput({ type: "app/new-sized", bytes: CHUNK + 1, offset: next + 1, tag: "n1" }),
          sizedInput({ type: "app/new-sized", bytes: 3 * CHUNK + 5, offset: next + 2, idempotencyKey: `${name}-new-2`, tag: "n2" }),
        ],
      });
      assertRecorded(name, mixed[0], "batch slot 0 (a hit)");
      assert.deepEqual(mixed.slice(1).map((e) => e.offset), [next, next + 1, next + 2]);
      assert.deepEqual(mixed.slice(2).map((e) => Buffer.byteLength(bytesOf(e))), [CHUNK + 1, 3 * CHUNK + 5]);
      next += 3;
      const readBack = await must(name, "getEvents", { afterOffset: single.offset - 1 });
      assert.deepEqual(readBack.map(bytesOf), [single, ...mixed.slice(1)].map(bytesOf), "the new events read back as acknowledged");
      const state = await liveState(mf, name);
      assert.equal(state.maxOffset, next - 1, "nothing else was written");
      assert.equal(state.eventCount, next - 1);
    }
  });

  if (hasMain) test(`migration (${path.basename(FIXTURE)}): the stream's own keys still deduplicate; a stream its breaker paused stays paused`, async () => {
    // A repeated child notice is dropped.
    const before = (await liveState(mf, MAIN)).maxOffset;
    await must(MAIN, "notifyChildStreamCreated", { childPath: "/v1/main/child/grandchild" });
    assert.equal((await liveState(mf, MAIN)).maxOffset, before, "a repeated child notice wrote nothing");

    // The stream its breaker paused stays paused until resumed.
    const refused = await callOn(mf, "do", TRIPPED, "append", { event: { type: "app/burst" } });
    assert.equal(refused.error, "stream_paused: stream paused: circuit breaker tripped: burst rate limit exceeded");
    const tail = (await liveState(mf, TRIPPED)).maxOffset;
    const resumed = await must(TRIPPED, "append", { event: { type: S("resumed"), payload: {} } });
    assert.equal(resumed.offset, tail + 1);
    const passed = await must(TRIPPED, "append", { event: { type: "app/burst", payload: { after: "resume" } } });
    assert.equal(passed.offset, resumed.offset + 1);
  });

  /**
   * Boots `name` again after a kill or restart and checks it against `before` ({log, state}): the old
   * log byte for byte plus only wokens, and the state == `before.state` + those wokens; with
   * `rebuild`, also == a full rebuild of the log. Returns the new {log, state}.
   */
  async function assertRebooted(name, before, note, { rebuild }) {
    const rs = await callOn(mf, "do", name, "runtimeState");
    assert.ok(rs.ok, `${name} ${note}: boot failed: ${rs.error}`);
    const state = rs.result.coreProcessorState;
    const log = await readLog(mf, name);
    for (let i = 0; i < before.log.length; i++) assert.equal(bytesOf(log[i]), bytesOf(before.log[i]), `${name} ${note}: @${i + 1}`);
    const wokens = onlyWokens(log, before.log.length, `${name} ${note}`);
    const atBoot = log.slice(0, before.log.length + 1);
    assert.equal(bytesOf(state), bytesOf(await foldState(mf, name, wokens.slice(0, 1), before.state)), `${name} ${note}: state != state before + woken`);
    if (rebuild) assert.equal(bytesOf(state), bytesOf(await foldState(mf, name, atBoot)), `${name} ${note}: state != full rebuild of the log`);
    return { log: await readLog(mf, name), state: await liveState(mf, name) };
  }

  test(`migration (${path.basename(FIXTURE)}): after kill() and after a full restart, every stream's state equals a full rebuild`, async () => {
    const seen = new Map();
    for (const name of NAMES) {
      const before = { log: await readLog(mf, name), state: await liveState(mf, name) };
      const killed = await callOn(mf, "do", name, "kill");
      assert.ok(killed.ok, `kill ${name}: ${killed.error}`);
      seen.set(name, await assertRebooted(name, before, "after kill()", { rebuild: before.log.length <= FULL_CHECK_EVENTS }));
    }
    await mf.dispose();
    mf = await start();
    for (const name of NAMES) await assertRebooted(name, seen.get(name), "after a restart", { rebuild: false });
  });
}
