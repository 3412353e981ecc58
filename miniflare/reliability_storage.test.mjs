// Reliability scenario 2b — corrupt, delete or re-version the stored core state (RELIABILITY.md
// docs/protocol.md#stream-lifecycle). Black-box: Miniflare persists the DOs to a temp dir; after dispose() the
// test edits each stream's SQLite file (python3 sqlite3), starts a new Miniflare on the same dir,
// and checks that the stream boots, its log is intact byte for byte, its state is what the
// independent model (streams-model, docs/architecture.md#tests) folds from the log, and the state rows are rewritten at the
// current version (docs/architecture.md#storage, docs/operations.md#migrations-and-state-versions).
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { startStreams, uniqueName, splitName, REPO_ROOT } from "./helpers/mf.mjs";
import { assertModelState } from "./helpers/model.mjs";
import { S, callOn, readLog, liveState, bytesOf, doIdOf, sqliteFileOf, openSqlite, UUID_V4_RE } from "./helpers/reliability.mjs";

// The version the Rust core writes, read from its source so a bump needs no edit here.
const CORE_STATE_VERSION = Number(
  /pub const CORE_STATE_VERSION: i64 = (\d+);/.exec(fs.readFileSync(path.join(REPO_ROOT, "crates", "streams-core", "src", "state.rs"), "utf8"))[1],
);
const CHUNK = 524288;

let dir;
let mf;
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "streams-reliability-storage-"));
});
after(async () => {
  await mf?.dispose();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const start = () => startStreams({ miniflare: { durableObjectsPersist: dir } });

async function must(name, method, arg) {
  const o = await callOn(mf, "do", name, method, arg);
  if (!o.ok) throw new Error(`${method} on ${name}: ${o.error}`);
  return o.result;
}

/** A history that touches every part of the state; `big` makes the state span two 512 KiB chunks. */
async function writeHistory(name, { big }) {
  const { path: p } = splitName(name);
  const ev = (type, payload, idempotencyKey) => must(name, "append", { event: { type, payload, ...(idempotencyKey ? { idempotencyKey } : {}) } });
  await ev("app/a", { n: 1 }, "a-1");
  await ev(S("metadata-updated"), { metadata: { owner: "reliability", blob: big ? "m".repeat(CHUNK + 4096) : "small" } });
  await ev(S("configured"), { config: { simulatedStorageSyncDelayMs: 5, circuitBreaker: { burstCapacity: 1000, refillRatePerMinute: 60000 } } });
  await ev(S("child-stream-created"), { childPath: `${p}/kid/grandkid` });
  const midway = await liveState(mf, name); // for the catch-up variant
  await ev(S("paused"), { reason: "maintenance" });
  await ev(S("error-occurred"), { message: "boom", error: { message: "boom", code: "E1" } });
  await ev(S("resumed"), {});
  await must(name, "appendBatch", { events: [{ type: "app/b", payload: [1, 2, 3] }, { type: "app/c", metadata: { m: 1 }, idempotencyKey: "c-1" }] });
  await ev(S("subscription-removed"), { subscriptionKey: "never-configured" });
  await ev(S("paused"), {});
  return midway;
}

/** Replaces every core_state row with `json` cut into 512 KiB chunks at `version`. */
function writeStateRows(db, json, version = CORE_STATE_VERSION) {
  const bytes = Buffer.from(json, "utf8");
  db.prepare("DELETE FROM core_state").run();
  const insert = db.prepare("INSERT INTO core_state (chunk_index, version, chunk_bytes) VALUES (?, ?, ?)");
  for (let i = 0, c = 0; i < Math.max(bytes.length, 1); i += CHUNK, c++) insert.run(c, version, bytes.subarray(i, i + CHUNK));
}

// Each variant damages the stored state of its own stream. `big` picks a two-chunk state.
const VARIANTS = [
  { id: "rows-deleted", big: false, damage: (db) => db.prepare("DELETE FROM core_state").run() },
  { id: "table-dropped", big: false, damage: (db) => db.prepare("DROP TABLE core_state").run() },
  { id: "garbage-bytes", big: false, damage: (db) => db.prepare("UPDATE core_state SET chunk_bytes = X'7b6e6f74206a736f6e'").run() },
  { id: "invalid-utf8", big: false, damage: (db) => db.prepare("UPDATE core_state SET chunk_bytes = X'fffe7b7d'").run() },
  { id: "empty-blob", big: false, damage: (db) => db.prepare("UPDATE core_state SET chunk_bytes = X''").run() },
  { id: "last-chunk-missing", big: true, damage: (db) => db.prepare("DELETE FROM core_state WHERE chunk_index = (SELECT MAX(chunk_index) FROM core_state)").run() },
  { id: "first-chunk-missing", big: true, damage: (db) => db.prepare("DELETE FROM core_state WHERE chunk_index = 0").run() },
  {
    id: "chunks-swapped",
    big: true,
    damage: (db) => {
      db.prepare("UPDATE core_state SET chunk_index = -1 - chunk_index").run(); // 0 → -1, 1 → -2
      db.prepare("UPDATE core_state SET chunk_index = chunk_index + 2").run(); // -1 → 1, -2 → 0
    },
  },
  { id: "version-bumped-old", big: false, damage: (db) => db.prepare("UPDATE core_state SET version = ?").run(CORE_STATE_VERSION - 1) },
  { id: "version-bumped-new", big: false, damage: (db) => db.prepare("UPDATE core_state SET version = ?").run(CORE_STATE_VERSION + 1) },
  { id: "version-mixed", big: true, damage: (db) => db.prepare("UPDATE core_state SET version = ? WHERE chunk_index = 1").run(CORE_STATE_VERSION - 1) },
  { id: "version-not-integer", big: false, damage: (db) => db.prepare("UPDATE core_state SET version = 'five'").run() },
  { id: "json-wrong-shape", big: false, damage: (db) => writeStateRows(db, '{"eventCount":"many","maxOffset":-1}') },
  { id: "json-array", big: false, damage: (db) => writeStateRows(db, "[]") },
  {
    id: "state-ahead-of-log",
    big: false,
    damage: (db, ctx) => writeStateRows(db, JSON.stringify({ ...ctx.stateBefore, maxOffset: ctx.stateBefore.maxOffset + 10, eventCount: ctx.stateBefore.eventCount + 10 })),
  },
  { id: "state-behind-log (catch-up)", big: false, damage: (db, ctx) => writeStateRows(db, JSON.stringify(ctx.midway)) },
  {
    id: "text-instead-of-blob",
    big: false,
    damage: (db) => db.prepare("UPDATE core_state SET chunk_bytes = CAST(chunk_bytes AS TEXT)").run(),
  },
];

// Damage to the log itself, with the state gone so boot must rebuild over it. The load rule (docs/operations.md#migrations-and-state-versions): "Loading never
// fails"; an event that cannot be reduced only advances eventCount/maxOffset. Event 4 is damaged:
// a small one lives inline in its `events` row, a `big` one (3 slices) in `event_chunks`, described by
// its row's chunk count, byte length and checksum (docs/architecture.md#storage).
const SLICE_OF_4 = (index) => `"offset" = 4 AND chunk_index = ${index}`;
const LOG_VARIANTS = [
  { id: "event-json-not-json", unreadable: true, damage: (db) => db.prepare(`UPDATE events SET json = '{' WHERE "offset" = 4`).run() },
  { id: "event-json-not-utf8", unreadable: true, damage: (db) => db.prepare(`UPDATE events SET json = CAST(X'fffe' AS TEXT) WHERE "offset" = 4`).run() },
  { id: "event-json-blob", unreadable: false, damage: (db) => db.prepare(`UPDATE events SET json = CAST(json AS BLOB) WHERE "offset" = 4`).run() },
  { id: "event-deleted (gap)", gap: true, damage: (db) => db.prepare(`DELETE FROM events WHERE "offset" = 4`).run() },
  // Each of these leaves JSON that still parses (the middle slice is inside one string): only the
  // row's description tells the event is not what was stored.
  { id: "big event: middle slice missing", big: true, unreadable: true, damage: (db) => db.prepare(`DELETE FROM event_chunks WHERE ${SLICE_OF_4(1)}`).run() },
  {
    id: "big event: middle slice cut short",
    big: true,
    unreadable: true,
    damage: (db) => db.prepare(`UPDATE event_chunks SET chunk_bytes = substr(chunk_bytes, 1, length(chunk_bytes) - 1) WHERE ${SLICE_OF_4(1)}`).run(),
  },
  {
    id: "big event: middle slice altered",
    big: true,
    unreadable: true,
    damage: (db) => db.prepare(`UPDATE event_chunks SET chunk_bytes = CAST(replace(CAST(chunk_bytes AS TEXT), 'xx', 'yz') AS BLOB) WHERE ${SLICE_OF_4(1)}`).run(),
  },
  { id: "big event: slice stored as TEXT", big: true, unreadable: false, damage: (db) => db.prepare(`UPDATE event_chunks SET chunk_bytes = CAST(chunk_bytes AS TEXT) WHERE ${SLICE_OF_4(1)}`).run() },
];

const streams = new Map(); // variant id → {name, id, logBefore, stateBefore, midway}

test("storage: write histories, persist, damage core_state offline", async () => {
  mf = await start();
  const midways = new Map();
  for (const v of VARIANTS) {
    const name = uniqueName("storage");
    midways.set(v.id, await writeHistory(name, v));
    streams.set(v.id, { name, id: await doIdOf(mf, name) });
  }
  for (const v of LOG_VARIANTS) {
    const name = uniqueName("storage-log");
    for (let i = 0; i < 4; i++) {
      const payload = v.big && i === 1 ? { i, blob: "x".repeat(2 * CHUNK + 1000) } : { i };
      await must(name, "append", { event: { type: "app/x", payload } });
    }
    streams.set(v.id, { name, id: await doIdOf(mf, name), logBefore: await readLog(mf, name) });
  }
  // A short log has no stored state until a boot rebuilds it (the state is stored every 1000
  // offsets): restart once so every history has state rows to damage.
  await mf.dispose();
  mf = await start();
  for (const v of VARIANTS) {
    const s = streams.get(v.id);
    const stateBefore = await liveState(mf, s.name);
    Object.assign(s, { logBefore: await readLog(mf, s.name), stateBefore, midway: midways.get(v.id) });
  }
  await mf.dispose();
  mf = undefined;

  for (const v of VARIANTS) {
    const s = streams.get(v.id);
    const file = sqliteFileOf(dir, s.id);
    assert.ok(file, `no SQLite file for ${v.id}`);
    const db = await openSqlite(file);
    try {
      const rows = db.prepare("SELECT chunk_index, version FROM core_state ORDER BY chunk_index").all();
      assert.deepEqual(rows.map((r) => r.version), v.big ? [CORE_STATE_VERSION, CORE_STATE_VERSION] : [CORE_STATE_VERSION], `${v.id}: stored state rows before damage`);
      const fingerprint = () => JSON.stringify(db.prepare("SELECT * FROM sqlite_master WHERE name = 'core_state'").all()) +
        JSON.stringify(db.prepare("SELECT name FROM sqlite_master WHERE name = 'core_state'").get() ? db.prepare("SELECT chunk_index, version, typeof(chunk_bytes) t, hex(chunk_bytes) h FROM core_state ORDER BY chunk_index").all() : null);
      const undamaged = fingerprint();
      v.damage(db, s);
      assert.notEqual(fingerprint(), undamaged, `${v.id}: the damage changed nothing`);
      s.damaged = true;
    } finally {
      db.close();
    }
  }
  for (const v of LOG_VARIANTS) {
    const s = streams.get(v.id);
    const db = await openSqlite(sqliteFileOf(dir, s.id));
    try {
      db.pragma("foreign_keys = ON"); // the schema's ON DELETE CASCADE
      db.prepare("DELETE FROM core_state").run();
      v.damage(db);
      s.damaged = true;
    } finally {
      db.close();
    }
  }
});

for (const v of VARIANTS) {
  test(`storage: core_state ${v.id} → the stream boots, its log is intact, state == the model's fold, rows rewritten at v${CORE_STATE_VERSION}`, async () => {
    const s = streams.get(v.id);
    assert.ok(s?.damaged, "the setup test damaged this stream's state");
    mf ??= await start();

    // One attempt, no retry loop: a stream that cannot boot must fail here, clearly.
    const rs = await callOn(mf, "do", s.name, "runtimeState");
    assert.ok(rs.ok, `boot after ${v.id} failed: ${rs.error}`);
    const state = rs.result.coreProcessorState;
    const log = await readLog(mf, s.name);

    // The log: every earlier event byte for byte, plus this incarnation's woken.
    assert.equal(log.length, s.logBefore.length + 1);
    for (let i = 0; i < s.logBefore.length; i++) assert.equal(bytesOf(log[i]), bytesOf(s.logBefore[i]), `${v.id}: event @${i + 1}`);
    const woken = log.at(-1);
    assert.equal(woken.type, S("woken"));
    assert.match(woken.payload.incarnationId, UUID_V4_RE);

    // The state: the model's fold of the log, and the pre-damage state plus the new woken.
    await assertModelState(log, state, `${v.id}: live state`);
    const expected = await must(s.name, "reduce", { event: woken, coreProcessorState: s.stateBefore });
    assert.deepEqual(state, expected, `${v.id}: state != pre-damage state + woken`);
    assert.equal(state.paused, true);
    assert.equal(state.metadata.owner, "reliability");
    assert.deepEqual(state.config.circuitBreaker, { burstCapacity: 1000, refillRatePerMinute: 60000 });
    assert.deepEqual(state.childPaths, [`${splitName(s.name).path}/kid`]);
  });
}

for (const v of LOG_VARIANTS) {
  test(`storage: log damage ${v.id} + core_state deleted → the stream still boots and counts every stored event`, async () => {
    const s = streams.get(v.id);
    assert.ok(s?.damaged, "the setup test damaged this stream");
    mf ??= await start();
    const rs = await callOn(mf, "do", s.name, "runtimeState");
    assert.ok(rs.ok, `boot after ${v.id} failed: ${rs.error}`);
    const st = rs.result.coreProcessorState;
    const stored = s.logBefore.length - (v.gap ? 1 : 0); // events 1..6 (created, woken, 4 appends), minus a deleted one
    assert.equal(st.eventCount, stored + 1, "every stored event is counted, plus the new woken");
    assert.equal(st.maxOffset, s.logBefore.length + 1);
    const next = await callOn(mf, "do", s.name, "append", { event: { type: "app/after" } });
    assert.ok(next.ok, `append after ${v.id}: ${next.error}`);
    assert.equal(next.result.offset, s.logBefore.length + 2);
    // Reads that avoid the damaged event work; a read over it is `internal` when it cannot be read (docs/architecture.md#storage).
    const tail = await callOn(mf, "do", s.name, "getEvents", { afterOffset: 4 });
    assert.ok(tail.ok, tail.error);
    assert.deepEqual(tail.result.map((e) => e.offset), [5, 6, 7, 8]);
    const over = await callOn(mf, "do", s.name, "getEvents", { afterOffset: 3, limit: 1 });
    if (v.gap) assert.deepEqual(over.result.map((e) => e.offset), [5]);
    else if (v.unreadable) assert.equal(over.error, "internal: internal error");
  });
}

test("storage: after the reboots every core_state is stored whole, at the current version, equal to the model's fold of the log up to its maxOffset", async () => {
  mf ??= await start();
  const logs = new Map();
  for (const v of VARIANTS) logs.set(v.id, await readLog(mf, streams.get(v.id).name));
  const stored = new Map();
  await mf.dispose();
  mf = undefined;
  for (const v of VARIANTS) {
    const db = await openSqlite(sqliteFileOf(dir, streams.get(v.id).id));
    try {
      const rows = db.prepare("SELECT chunk_index, version, typeof(chunk_bytes) AS t, chunk_bytes FROM core_state ORDER BY chunk_index").all();
      assert.ok(rows.length >= 1, `${v.id}: no state rows`);
      assert.deepEqual(rows.map((r) => r.chunk_index), rows.map((_, i) => i), `${v.id}: chunk indexes`);
      assert.ok(rows.every((r) => r.version === CORE_STATE_VERSION && r.t === "blob"), `${v.id}: rows ${JSON.stringify(rows.map((r) => [r.version, r.t]))}`);
      stored.set(v.id, JSON.parse(Buffer.concat(rows.map((r) => r.chunk_bytes)).toString("utf8")));
    } finally {
      db.close();
    }
  }
  mf = await start();
  for (const v of VARIANTS) {
    const state = stored.get(v.id);
    const log = logs.get(v.id);
    assert.ok(state.maxOffset >= 1 && state.maxOffset <= log.length, `${v.id}: stored maxOffset ${state.maxOffset} within the log`);
    await assertModelState(log.slice(0, state.maxOffset), state, `${v.id}: stored state JSON`);
  }
});
