// The mirror's SQL (real SQLite: sqlite-wasm's Node build, in memory) and the event-feed planner.
import assert from "node:assert/strict";
import { test } from "node:test";
import sqlite3InitModule from "@sqlite.org/sqlite-wasm";
import { eventFeed, MAX_GROUP_EVENTS, planFeed } from "../dist/browser/event-feed.js";
import { Mirror } from "../dist/browser/mirror-sql.js";

const sqlite3 = await sqlite3InitModule();

function event(offset, type = "app/x", extra = {}) {
  return { type, offset, createdAt: "2026-01-01T00:00:00.000Z", ...extra };
}
function events(from, to, type) {
  return Array.from({ length: to - from + 1 }, (_, i) => event(from + i, type));
}
function freshMirror() {
  const db = new sqlite3.oo1.DB(":memory:", "c");
  const mirror = new Mirror(db);
  mirror.discard("life-1");
  return { db, mirror };
}
const apply = (mirror, afterOffset, evs, processors = []) =>
  mirror.apply({ streamId: "life-1", afterOffset, throughOffset: evs.at(-1)?.offset ?? afterOffset, events: evs, processors });

test("a batch, its processors' writes and the checkpoints commit together", () => {
  const { db, mirror } = freshMirror();
  const feed = eventFeed();
  mirror.setupProcessors([feed]);
  const planned = feed.apply(feed.initialState, events(1, 3));
  const state = apply(mirror, 0, events(1, 3), [{ slug: feed.slug, statements: planned.statements, state: JSON.stringify(planned.state) }]);
  assert.equal(state.checkpoint, 3);
  assert.equal(state.localCount, 3);
  assert.equal(state.processors[feed.slug].checkpoint, 3);
  assert.equal(db.selectValue("SELECT count(*) FROM feed_items"), 1);
  // A processor statement that fails takes the events and every checkpoint with it.
  assert.throws(
    () => apply(mirror, 3, events(4, 5), [{ slug: feed.slug, statements: [{ sql: "INSERT INTO nowhere VALUES (1)" }], state: "{}" }]),
    /no such table: nowhere/,
    "the caller sees the real error, not a failed ROLLBACK",
  );
  const after = mirror.state();
  assert.equal(after.checkpoint, 3);
  assert.equal(after.localCount, 3);
  assert.equal(after.processors[feed.slug].checkpoint, 3);
});

test("a gap, a changed offset or a batch of another life is never stored; an identical replay is ignored", () => {
  const { db, mirror } = freshMirror();
  apply(mirror, 0, events(1, 3));
  assert.throws(() => apply(mirror, 4, events(5, 6)), /mirror gap: the mirror is at offset 3, the batch starts after 4/);
  assert.throws(() => apply(mirror, 3, [event(5)]), /mirror gap: an event must have the offset after the last stored one/);
  assert.throws(
    () => mirror.apply({ streamId: "life-2", afterOffset: 3, throughOffset: 4, events: [event(4)], processors: [] }),
    /mirror holds stream life-1, the batch belongs to life-2/,
  );
  // Straight SQL too: the trigger guards the table, whoever writes.
  assert.throws(
    () => db.exec("INSERT INTO events (offset, type, created_at, json) VALUES (2, 'other', 'x', '{}')"),
    /mirror offset changed/,
  );
  const same = db.selectValue("SELECT json FROM events WHERE offset = 2");
  db.exec("INSERT INTO events (offset, type, created_at, json) VALUES (2, 'app/x', 'x', ?)", { bind: [same] });
  assert.equal(db.selectValue("SELECT count(*) FROM events"), 3);
  assert.equal(mirror.state().checkpoint, 3);
});

test("discard empties the mirror and the processor tables and records the new life; missing tables read as no rows", () => {
  const { db, mirror } = freshMirror();
  const feed = eventFeed();
  mirror.setupProcessors([feed]);
  const planned = feed.apply(feed.initialState, events(1, 2));
  apply(mirror, 0, events(1, 2), [{ slug: feed.slug, statements: planned.statements, state: JSON.stringify(planned.state) }]);
  const state = mirror.discard("life-2");
  assert.deepEqual(state, { streamId: "life-2", checkpoint: 0, firstOffset: 1, localCount: 0, processors: {} });
  assert.equal(db.selectValue("SELECT count(*) FROM feed_items"), 0, "the processor's table is recreated empty");
  assert.deepEqual(mirror.query("SELECT * FROM not_there", []), []);
  assert.throws(() => mirror.query("SELEKT", []), /syntax error/);
});

test("a mirror of a trimmed stream starts after the given offset: the first event must follow it, and the counts start there", () => {
  const { db, mirror } = freshMirror();
  const state = mirror.discard("life-1", 49);
  assert.deepEqual(state, { streamId: "life-1", checkpoint: 49, firstOffset: 50, localCount: 0, processors: {} });
  assert.throws(() => apply(mirror, 49, events(51, 52)), /mirror gap/, "a hole after the start is refused");
  assert.throws(() => apply(mirror, 0, events(1, 2)), /mirror gap/, "so is a batch from before it");
  const after = apply(mirror, 49, events(50, 54));
  assert.deepEqual([after.checkpoint, after.firstOffset, after.localCount], [54, 50, 5]);
  assert.deepEqual(mirror.readEvents(0, 10).map((e) => e.offset), [50, 51, 52, 53, 54]);
  assert.throws(() => db.exec("INSERT INTO events (offset, type, created_at, json) VALUES (56, 'app/x', 'x', '{}')"), /mirror gap/);
  // Reopening the file keeps the rule (the trigger is re-created on every open).
  const reopened = new Mirror(db);
  assert.deepEqual(reopened.state(), after);
});

test("a processor version change drops its tables and checkpoint, and it catches up from the local rows", () => {
  const { db, mirror } = freshMirror();
  const v1 = eventFeed();
  mirror.setupProcessors([v1]);
  const planned = v1.apply(v1.initialState, events(1, 4));
  apply(mirror, 0, events(1, 4), [{ slug: v1.slug, statements: planned.statements, state: JSON.stringify(planned.state) }]);
  const v2 = { ...v1, version: 2 };
  const state = mirror.setupProcessors([v2]);
  assert.equal(state.processors[v1.slug], undefined, "its checkpoint is gone");
  assert.equal(state.checkpoint, 4, "the mirror itself is kept");
  assert.equal(db.selectValue("SELECT count(*) FROM feed_items"), 0);
  const rows = mirror.readEvents(0, 100);
  assert.deepEqual(rows.map((e) => e.offset), [1, 2, 3, 4]);
  const caught = v2.apply(v2.initialState, rows);
  mirror.applyProcessor({ slug: v2.slug, afterOffset: 0, throughOffset: 4, statements: caught.statements, state: JSON.stringify(caught.state) });
  assert.throws(
    () => mirror.applyProcessor({ slug: v2.slug, afterOffset: 0, throughOffset: 4, statements: [], state: "{}" }),
    /processor event-feed is at offset 4, its catch-up starts after 0/,
  );
});

test("event feed: consecutive events of one type form one group; lifecycle events are single markers", () => {
  const evs = [
    event(1, "events.iterate.com/stream/created"),
    event(2, "events.iterate.com/stream/woken"),
    event(3, "a"),
    event(4, "b"),
    event(5, "a"),
    event(6, "a"),
    event(7, "events.iterate.com/stream/woken"),
    event(8, "a"),
  ];
  const { rows, state } = planFeed({ open: null, nextId: 0 }, evs);
  assert.deepEqual(
    rows.map((r) => [r.id, r.kind, r.type, r.first_offset, r.last_offset, r.event_count]),
    [
      [0, "lifecycle", "events.iterate.com/stream/created", 1, 1, 1],
      [1, "lifecycle", "events.iterate.com/stream/woken", 2, 2, 1],
      [2, "group", "a", 3, 3, 1],
      [3, "group", "b", 4, 4, 1],
      [4, "group", "a", 5, 6, 2],
      [5, "lifecycle", "events.iterate.com/stream/woken", 7, 7, 1],
      [6, "group", "a", 8, 8, 1],
    ],
  );
  assert.deepEqual(state, { open: { id: 6, type: "a", firstOffset: 8, lastOffset: 8, count: 1 }, nextId: 7 });
});

test("event feed: one write per row per batch, groups roll over at 200, and batch folding equals event folding", () => {
  const evs = events(1, 450, "a");
  const batched = planFeed({ open: null, nextId: 0 }, evs);
  assert.deepEqual(
    batched.rows.map((r) => [r.id, r.first_offset, r.last_offset, r.event_count]),
    [
      [0, 1, 200, MAX_GROUP_EVENTS],
      [1, 201, 400, MAX_GROUP_EVENTS],
      [2, 401, 450, 50],
    ],
    "one row per group, each written once with its final values",
  );
  const statements = eventFeed().apply({ open: null, nextId: 0 }, evs).statements;
  assert.equal(statements.length, 3);
  // A group opened in an earlier batch is extended by one write.
  const next = planFeed(batched.state, events(451, 460, "a"));
  assert.deepEqual(next.rows.map((r) => [r.id, r.first_offset, r.last_offset, r.event_count]), [[2, 401, 460, 60]]);
  let state = { open: null, nextId: 0 };
  const byRow = new Map();
  for (const e of events(1, 460, "a")) {
    const step = planFeed(state, [e]);
    state = step.state;
    for (const r of step.rows) byRow.set(r.id, r);
  }
  assert.deepEqual(state, next.state);
  assert.deepEqual([...byRow.values()].at(-1), next.rows[0]);
});
