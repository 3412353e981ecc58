// Store property test (docs/architecture.md#storage): seeded random sequences of appends and
// batches (committed sizes from 0-byte payloads through the 524288-byte chunk boundary ± a few
// bytes and several MiB up to the 8 MiB maximum, ASCII and multi-byte, keyed and not, re-sent keys,
// keys repeated inside a batch, rejected batches and oversized events), with kill() at random points
// (also while appends are in flight) and full Miniflare restarts on persisted storage. After every
// boot: each acknowledged event reads back byte for byte at its offset, by page, by offset and by
// key; nothing else is in the log but `created` and `woken`; and the state the boot produced is
// what the independent model (streams-model, docs/architecture.md#tests) folds from the log. The
// archive is bound with small segments, so events are sealed into R2 throughout, half the kills land
// between a segment's upload and its row deletion, and each seed ends with retention: what reads back
// is then what was acknowledged minus exactly the events before the first kept offset, which read
// as `trimmed` (docs/architecture.md#storage-tiers).
//
// Three new seeds each run (printed at the start); STORAGE_SEEDS=7,8 replays chosen seeds (a failure
// names its seed and step).
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { startStreams, callMany } from "./helpers/mf.mjs";
import { S, prng, callOn, readLog, liveState, announceSeed } from "./helpers/reliability.mjs";
import { CHUNK, MAX_EVENT_BYTES, bytesOf, committedLength, filler } from "./helpers/storage.mjs";
import { assertModelState } from "./helpers/model.mjs";

const SEEDS = process.env.STORAGE_SEEDS ? process.env.STORAGE_SEEDS.split(",").map((s) => Number(s) >>> 0) : Array.from({ length: 3 }, () => (Math.random() * 2 ** 32) >>> 0);
for (const seed of SEEDS) announceSeed("storage_properties", seed, "STORAGE_SEEDS");
const STEPS = 24;
const MAX_RESTARTS_PER_SEED = 1;

let dir;
let mf;
const SEGMENT_EVENTS = 60;
const start = () =>
  startStreams({
    bindings: { STREAMS_SEGMENT_EVENTS: String(SEGMENT_EVENTS) },
    streams: { r2Buckets: ["STREAMS_ARCHIVE"] },
    miniflare: { durableObjectsPersist: dir, r2Persist: path.join(dir, "r2") },
  });
before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "streams-storage-properties-"));
  mf = await start();
});
after(async () => {
  await mf?.dispose();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

async function must(name, method, arg) {
  const o = await callOn(mf, "do", name, method, arg);
  if (!o.ok) throw new Error(`${method}: ${o.error}`);
  return o.result;
}

/** A string of exactly `bytes` UTF-8 bytes; `unicode` mixes 2- and 4-byte characters so a chunk cut can fall inside one. */
function text(bytes, tag, unicode) {
  if (!unicode) return filler(bytes, tag);
  const parts = [];
  let used = 0;
  for (let i = 0; ; i++) {
    const block = `|${tag}${i.toString(36)}:${"λ".repeat(7)}${"😀".repeat(3)}`;
    const size = Buffer.byteLength(block);
    if (used + size > bytes) break;
    parts.push(block);
    used += size;
  }
  return parts.join("") + ".".repeat(bytes - used);
}

/** Text that looks like the seams between events in a page (quotes, escapes, braces, commas). */
const TRICKY = '"},{"type":"x","offset":1}],[{\\"\\\\",{{[ \u2028 }';

/** Committed size classes, weighted to small; [weight, (rand) => bytes or a 0-byte payload marker]. */
const SIZES = [
  [10, () => 0], // no payload, "" or null
  [50, (r) => 80 + r.int(300)],
  [12, (r) => 1024 + r.int(64 * 1024)],
  [14, (r) => CHUNK - 3 + r.int(7)],
  [6, (r) => r.pick([2 * CHUNK - 1, 2 * CHUNK, 2 * CHUNK + 1, 1048576 + r.int(2 * 1048576)])],
  [2, (r) => 4 * 1048576 + r.int(4 * 1048576 - 4096)],
];
const TOTAL_WEIGHT = SIZES.reduce((n, [w]) => n + w, 0);
function drawSize(r) {
  let x = r.int(TOTAL_WEIGHT);
  for (const [w, f] of SIZES) if ((x -= w) < 0) return f(r);
  throw new Error("unreachable");
}

/** One stream's model: what was acknowledged, and the keys in use. */
class Model {
  constructor(seed) {
    this.seed = seed;
    this.name = `t:/storage-properties/seed-${seed}`;
    this.r = prng(seed);
    this.acked = new Map(); // offset → JSON text as acknowledged
    this.keys = new Map(); // trimmed key → offset
    this.maxOffset = 0; // as last confirmed by the stream
    this.keyCounter = 0;
    this.verified = { length: 0 }; // the events already verified
    this.sizes = new Set();
    this.restarts = 0;
    this.hits = 0;
    this.firstOffset = 1; // retention's first kept offset
    this.prefix = []; // the log as read before retention removed its start
  }

  /** An input for `offset`: a new key (maybe padded), a re-sent one, or none. */
  input(offset, { bytes = drawSize(this.r), keyChance = 0.45, reuseChance = 0.15, batchKeys } = {}) {
    const r = this.r;
    let idempotencyKey;
    const known = [...this.keys.keys(), ...(batchKeys ?? [])];
    if (known.length && r.chance(reuseChance)) idempotencyKey = r.pick(known);
    else if (r.chance(keyChance)) idempotencyKey = `${r.chance(0.1) ? "  " : ""}k${this.seed}-${++this.keyCounter}${r.chance(0.1) ? " " : ""}`;
    const type = `app/${r.pick(["a", "b", "sized"])}`;
    if (bytes === 0) {
      this.sizes.add("0-byte payload");
      const input = { type, ...(idempotencyKey ? { idempotencyKey } : {}) };
      const shape = r.int(3);
      if (shape === 1) input.payload = "";
      if (shape === 2) input.payload = null;
      return { input };
    }
    const unicode = r.chance(0.4);
    const payload = { ...(r.chance(0.25) ? { tricky: TRICKY } : {}), fill: "" };
    const input = { type, payload, ...(idempotencyKey ? { idempotencyKey } : {}) };
    const fixed = committedLength({ ...input, idempotencyKey: idempotencyKey?.trim() }, offset);
    input.payload.fill = text(Math.max(0, bytes - fixed), `s${this.seed}o${offset}`, unicode);
    this.sizes.add(bytes <= CHUNK - 1 && bytes >= CHUNK - 3 ? "just under a chunk" : bytes === CHUNK ? "one chunk" : bytes > CHUNK && bytes <= CHUNK + 3 ? "just over a chunk" : bytes >= 4 << 20 ? "≥ 4 MiB" : "other");
    return { input, bytes: Math.max(bytes, fixed) };
  }

  /** Records a call's results: new events at the next offsets, hits equal to their originals. */
  acknowledge(inputs, results, note) {
    assert.equal(results.length, inputs.length, `${note}: one result per input`);
    const seen = new Map(); // trimmed key → offset within this call
    results.forEach((event, i) => {
      const { input, bytes } = inputs[i];
      const key = input.idempotencyKey?.trim();
      const hit = key !== undefined ? (this.keys.get(key) ?? seen.get(key)) : undefined;
      if (hit !== undefined) {
        this.hits += 1;
        assert.equal(event.offset, hit, `${note}[${i}]: re-sent key ${key} returns the original offset`);
        assert.equal(bytesOf(event), this.acked.get(hit), `${note}[${i}]: re-sent key ${key} returns the original event`);
        return;
      }
      this.maxOffset += 1;
      assert.equal(event.offset, this.maxOffset, `${note}[${i}]: next offset`);
      assert.equal(event.type, input.type);
      assert.deepEqual(event.payload, input.payload, `${note}[${i}]: payload stored as sent`);
      assert.equal(event.idempotencyKey, key);
      if (bytes !== undefined) assert.equal(Buffer.byteLength(bytesOf(event)), bytes, `${note}[${i}]: committed size`);
      this.acked.set(event.offset, bytesOf(event));
      if (key !== undefined) {
        seen.set(key, event.offset);
        this.keys.set(key, event.offset);
      }
    });
  }
}

/** After a boot: the log, every read path and the state against the model and a full rebuild. */
async function verify(m, note) {
  const booted = await callOn(mf, "do", m.name, "runtimeState");
  assert.ok(booted.ok, `${note}: boot failed: ${booted.error}`);
  const state = booted.result.coreProcessorState;
  // Retention only ever moves the first kept offset forward, over events an earlier read saw;
  // before it, the log is what was read. The boot's own retention step runs in the background and
  // may move it while this reads (a read before it is then `trimmed`): read until it stands still.
  let kept;
  for (let firstOffset = booted.result.runtime.storage.firstOffset, tries = 1; ; tries++) {
    assert.ok(firstOffset >= m.firstOffset && firstOffset <= m.prefix.length + 1, `${note}: the first kept offset ${firstOffset}`);
    m.firstOffset = firstOffset;
    kept = await (m.firstOffset > 1 ? readAfter(m.name, m.firstOffset - 1) : readLog(mf, m.name)).catch((e) => {
      if (tries < 5 && /: trimmed: /.test(e.message)) return undefined;
      throw e;
    });
    firstOffset = (await must(m.name, "runtimeState")).runtime.storage.firstOffset;
    if (kept !== undefined && firstOffset === m.firstOffset) break;
  }
  const log = [...m.prefix.slice(0, m.firstOffset - 1), ...kept];
  const texts = log.map(bytesOf);
  log.forEach((event, i) => assert.equal(event.offset, i + 1, `${note}: gap-free offsets`));
  for (const [offset, json] of m.acked) assert.equal(texts[offset - 1], json, `${note}: acknowledged event @${offset} reads back byte-identical`);
  m.prefix = log;
  const unacked = log.filter((e) => !m.acked.has(e.offset));
  assert.deepEqual(unacked.map((e) => e.type), unacked.map((e) => (e.offset === 1 ? S("created") : S("woken"))), `${note}: only created and woken besides what was acknowledged`);
  assert.ok(log.slice(m.verified.length).some((e) => e.type === S("woken")), `${note}: the boot appended a woken`);
  assert.equal(state.maxOffset, log.length, `${note}: maxOffset`);
  assert.equal(state.eventCount, log.length, `${note}: eventCount`);
  m.maxOffset = log.length;

  // By offset and by key: samples (readLog above read every event), big events among them.
  const r = m.r;
  const sample = (list, n) => list.filter(() => r.chance(n / Math.max(n, list.length)));
  const big = [...m.acked.keys()].filter((o) => m.acked.get(o).length > CHUNK / 2);
  const keptOffsets = (list) => list.filter((o) => o >= m.firstOffset);
  for (const offset of keptOffsets([...sample(big, 4), ...sample([...m.acked.keys()], 15)])) {
    const event = await must(m.name, "getEvent", { offset });
    assert.equal(bytesOf(event), m.acked.get(offset), `${note}: getEvent(offset ${offset})`);
  }
  for (const [key, offset] of sample([...m.keys], 15).filter(([, o]) => o >= m.firstOffset)) {
    const event = await must(m.name, "getEvent", { idempotencyKey: key });
    assert.equal(bytesOf(event), m.acked.get(offset), `${note}: getEvent(idempotencyKey ${key})`);
  }
  // Small pages over a random stretch of the log (readLog above read all of it in pages of 1000).
  const limit = 1 + r.int(9);
  for (let afterOffset = Math.max(m.firstOffset - 1, r.int(Math.max(1, log.length - 15 * limit))), pages = 0; afterOffset < log.length && pages < 15; afterOffset += limit, pages++) {
    const page = await must(m.name, "getEvents", { afterOffset, limit });
    assert.deepEqual(page.map(bytesOf), texts.slice(afterOffset, afterOffset + limit), `${note}: getEvents(afterOffset ${afterOffset}, limit ${limit})`);
  }

  // The state the boot produced is the model's fold of the log up to that boot's woken.
  const bootLength = state.maxOffset;
  await assertModelState(log.slice(0, bootLength), state, `${note}: state after boot`);
  m.verified = { length: bootLength };
}

async function readAfter(name, afterOffset) {
  const out = [];
  for (;;) {
    const page = await must(name, "getEvents", { afterOffset: out.length ? out.at(-1).offset : afterOffset, limit: 1000 });
    if (page.length === 0) return out;
    out.push(...page);
  }
}

/** Runs the archive's steps until nothing is due; the storage figures. */
async function settleArchive(m, note, arg = {}) {
  let last = "";
  for (;;) {
    const report = await must(m.name, "runArchiveNow", arg);
    assert.equal(report.error, null, `${note}: archive step`);
    const now = JSON.stringify(report.storage);
    if (now === last) return report.storage;
    last = now;
  }
}

/** Retention by count: events before the first kept offset read as trimmed, the rest as acknowledged. */
async function retain(m, note) {
  await kill(m, note);
  await verify(m, `${note}: before retention`);
  const maxEvents = 1 + m.r.int(Math.max(1, Math.floor(m.maxOffset / 2)));
  const configure = { input: { type: S("configured"), payload: { config: { retention: { maxEvents } } } } };
  m.acknowledge([configure], [await must(m.name, "append", { event: configure.input })], `${note}: configure retention`);
  const storage = await settleArchive(m, note);
  const maxOffset = (await liveState(mf, m.name)).maxOffset;
  assert.ok(maxOffset - storage.firstOffset + 1 >= maxEvents, `${note}: never fewer than ${maxEvents} kept`);
  m.firstOffset = storage.firstOffset;
  if (m.firstOffset > 1) {
    const o = await callOn(mf, "do", m.name, "getEvent", { offset: m.firstOffset - 1 });
    assert.equal(o.error, `trimmed: Offset ${m.firstOffset - 1} was removed by retention; the first kept offset is ${m.firstOffset}.`, `${note}: trimmed`);
  }
  return { maxEvents, firstOffset: m.firstOffset, archived: storage.archivedSegments };
}

async function kill(m, note) {
  const o = await callOn(mf, "do", m.name, "kill");
  assert.ok(o.ok, `${note}: kill: ${o.error}`);
}

/** Appends with kill() among them, concurrently; what failed is retried (same keys) after the boot. */
async function killAmongAppends(m, note) {
  // Some of them span two chunks, so a kill can land next to a chunked commit.
  const before = Array.from({ length: 1 + m.r.int(3) }, () => m.input(0, { bytes: m.r.chance(0.3) ? CHUNK + 1 : 100, keyChance: 1, reuseChance: 0 }));
  const afterKill = Array.from({ length: 1 + m.r.int(3) }, () => m.input(0, { bytes: 100, keyChance: 1, reuseChance: 0 }));
  const groups = [...before, "kill", ...afterKill];
  const outcomes = await callMany(mf, m.name, groups.map((g) => (g === "kill" ? { method: "kill" } : { method: "append", arg: { event: g.input } })));
  assert.ok(outcomes[before.length].ok, `${note}: kill: ${outcomes[before.length].error}`);
  const failed = [];
  const done = [];
  for (const [i, g] of groups.entries()) {
    const o = outcomes[i];
    if (g === "kill") continue;
    if (o.ok) done.push({ input: g.input, event: o.result });
    else {
      assert.match(o.error, /^internal: /, `${note}: an append beside kill() fails only as retryable`);
      failed.push({ input: g.input });
    }
  }
  // The calls may be served in any order, and one after the kill may already boot the next
  // incarnation (its woken comes first): offsets only ascend; verify() checks what lies between.
  done.sort((a, b) => a.event.offset - b.event.offset);
  for (const { input, event } of done) {
    assert.ok(event.offset > m.maxOffset, `${note}: a new offset`);
    assert.equal(event.idempotencyKey, input.idempotencyKey.trim());
    assert.deepEqual(event.payload, input.payload);
    m.acked.set(event.offset, bytesOf(event));
    m.keys.set(event.idempotencyKey, event.offset);
    m.maxOffset = event.offset;
  }
  return failed;
}

async function restart(m) {
  await mf.dispose();
  mf = await start();
  m.restarts += 1;
}

/** One seed: STEPS random operations on its own stream, verifying after each boot. */
async function runSeed(m, t) {
  const r = m.r;
  // A read creates nothing (docs/protocol.md#reads-create-nothing): a test hook boots the new stream.
  await callOn(mf, "do", m.name, "runIdleTeardownNow");
  await verify(m, "first boot");
  // Sizes every seed meets once, at random steps (the 8 MiB maximum only on the first seed).
  const anchorSizes = [CHUNK - 1, CHUNK, CHUNK + 1, 0, ...(m.seed === SEEDS[0] ? [MAX_EVENT_BYTES] : [])];
  const steps = Array.from({ length: STEPS }, (_, i) => i); // shuffled: distinct random steps
  for (let i = STEPS - 1; i > 0; i--) {
    const j = r.int(i + 1);
    [steps[i], steps[j]] = [steps[j], steps[i]];
  }
  const anchors = new Map(anchorSizes.map((bytes, i) => [steps[i], bytes]));
  // Two bulk batches of 500–999 small events take every seed's log past 1000 events, so later boots
  // find a log some way past a multiple of 1000.
  const bulkSteps = new Set([steps[anchorSizes.length], steps[anchorSizes.length + 1]]);
  let retry = [];
  const stats = { bulkEvents: 0, appends: 0, batches: 0, hits: 0, kills: 0, heldSeals: 0, concurrentKills: 0, retriedAfterKill: 0, restarts: 0, rejected: 0 };
  for (let step = 0; step < STEPS; step++) {
    const note = `seed ${m.seed} step ${step}`;
    const roll = r();
    if (retry.length) {
      const results = await must(m.name, "appendBatch", { events: retry.map((x) => x.input) });
      m.acknowledge(retry, results, `${note}: retried after the kill`);
      retry = [];
    }
    if (bulkSteps.has(step)) {
      const items = Array.from({ length: 500 + r.int(500) }, (_, i) => m.input(m.maxOffset + 1 + i, { bytes: 80 + r.int(120), keyChance: 0.1, reuseChance: 0 }));
      m.acknowledge(items, await must(m.name, "appendBatch", { events: items.map((x) => x.input) }), `${note}: bulk batch`);
      stats.bulkEvents += items.length;
      // A kill between a segment's upload and the deletion of its rows, at least once a seed.
      await settleArchive(m, note, { holdAfterUpload: true });
      await kill(m, note);
      await verify(m, `${note}: after kill() with a seal held after its upload`);
      await settleArchive(m, `${note}: resuming the held seal`);
      stats.heldSeals += 1;
    }
    if (anchors.has(step) || roll < 0.5) {
      const item = m.input(m.maxOffset + 1, anchors.has(step) ? { bytes: anchors.get(step), reuseChance: 0 } : {});
      m.acknowledge([item], [await must(m.name, "append", { event: item.input })], `${note}: append`);
      stats.appends += 1;
    } else if (roll < 0.72) {
      // A batch: small and boundary sizes (its input stays far below 16 MiB), keys re-sent from
      // the log and repeated inside the batch.
      const items = [];
      const batchKeys = [];
      let offset = m.maxOffset;
      for (let i = 0, n = 2 + r.int(10); i < n; i++) {
        const bytes = r.chance(0.2) ? CHUNK - 3 + r.int(7) : r.chance(0.1) ? 0 : 80 + r.int(2000);
        const item = m.input(offset + 1, { bytes, batchKeys });
        const key = item.input.idempotencyKey?.trim();
        if (key === undefined || (!m.keys.has(key) && !batchKeys.includes(key))) offset += 1;
        else item.bytes = undefined; // a hit: its size is the original's
        if (key !== undefined) batchKeys.push(key);
        items.push(item);
      }
      m.acknowledge(items, await must(m.name, "appendBatch", { events: items.map((x) => x.input) }), `${note}: batch`);
      stats.batches += 1;
    } else if (roll < 0.78) {
      // Refused calls write nothing: a batch with one invalid event, an event over the maximum.
      const before = m.maxOffset;
      const oversized = r.chance(0.2);
      const o = oversized
        ? await callOn(mf, "do", m.name, "append", { event: { type: "app/too-big", payload: filler(MAX_EVENT_BYTES, "x") } })
        : await callOn(mf, "do", m.name, "appendBatch", { events: [m.input(0, { bytes: 200, keyChance: 1, reuseChance: 0 }).input, { type: "" }] });
      assert.match(o.error ?? "", oversized ? /^event_too_large: / : /^invalid_event: /, `${note}: refused`);
      assert.equal((await liveState(mf, m.name)).maxOffset, before, `${note}: a refused call wrote nothing`);
      stats.rejected += 1;
    } else if (roll < 0.88) {
      // Half the kills land between a segment's upload and the deletion of its rows.
      const held = r.chance(0.5);
      if (held) await settleArchive(m, note, { holdAfterUpload: true });
      await kill(m, note);
      await verify(m, `${note}: after kill()`);
      if (held) {
        await settleArchive(m, `${note}: resuming the held seal`); // the next verify reads what it sealed
        stats.heldSeals += 1;
      }
      stats.kills += 1;
    } else if (roll < 0.95) {
      retry = await killAmongAppends(m, note);
      stats.retriedAfterKill += retry.length;
      await verify(m, `${note}: after kill() among appends`);
      stats.concurrentKills += 1;
    } else if (m.restarts < MAX_RESTARTS_PER_SEED) {
      await restart(m);
      await verify(m, `${note}: after a restart`);
      stats.restarts += 1;
    }
  }
  if (retry.length) m.acknowledge(retry, await must(m.name, "appendBatch", { events: retry.map((x) => x.input) }), `seed ${m.seed}: final retry`);
  stats.archived = (await settleArchive(m, `seed ${m.seed} sealing`)).archivedSegments;
  stats.retention = await retain(m, `seed ${m.seed} retention`);
  await kill(m, `seed ${m.seed} end`);
  await verify(m, `seed ${m.seed}: after the last kill()`);
  stats.hits = m.hits;
  t.diagnostic(`seed ${m.seed}: ${JSON.stringify({ ...stats, events: m.maxOffset, keys: m.keys.size, sizes: [...m.sizes] })}`);
}

const models = SEEDS.map((seed) => new Model(seed));

for (const m of models) {
  test(`store properties: seed ${m.seed} — acknowledged events read back exactly and the state is the model's fold of the log after every kill and restart`, async (t) => {
    try {
      await runSeed(m, t);
    } catch (e) {
      e.message = `[replay with STORAGE_SEEDS=${m.seed}] ${e.message}`;
      throw e;
    }
  });
}

test("store properties: after a final restart every seed's stream still reads back and matches the model", async () => {
  await mf.dispose();
  mf = await start();
  for (const m of models) await verify(m, `seed ${m.seed}: after the final restart`);
  const sizes = new Set(models.flatMap((m) => [...m.sizes]));
  for (const size of ["0-byte payload", "just under a chunk", "one chunk", "just over a chunk", "≥ 4 MiB"]) assert.ok(sizes.has(size), `the seeds covered ${size}`);
});
