// The append path over DO JS-RPC: committed shape, idempotency, offsets, sizes, batches,
// concurrency (docs/protocol.md#event-model, docs/architecture.md#the-append-path).
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import { startStreams, call, tryCall, callMany, uniqueName, stub } from "./helpers/mf.mjs";
import {
  S,
  ISO_MS_RE,
  bytes,
  assertError,
  readAll,
  coreState,
  snapshot,
  assertUnchanged,
  assertContiguous,
  assertEventKeyOrder,
} from "./helpers/assertions.mjs";

const MiB = 1024 * 1024;
const EVENT_LIMIT = 8388608;
const BATCH_BYTES_LIMIT = 16777216;

let mf;
before(async () => {
  mf = await startStreams();
});
after(async () => {
  await mf?.dispose();
});

test("committed events have the documented key order, keep nested order, round-trip source; createdAt is ISO ms UTC", async () => {
  const name = uniqueName();
  const input = {
    createdAtIgnored: undefined, // undefined counts as absent (docs/protocol.md#append-input) — removed below if RPC keeps it
    idempotencyKey: "  m-1 ",
    source: { processor: { slug: "echo-example", version: "0.1.0" } },
    metadata: { z: 1, a: { y: 2, b: 3 } },
    payload: { text: "hi", z: [3, 2, 1], a: null, nested: { q: 1, b: { d: 4, c: 3 } } },
    type: "app/msg",
  };
  delete input.createdAtIgnored;
  const before = Date.now();
  const ev = await call(mf, name, "append", { event: input });
  const afterMs = Date.now();

  assertEventKeyOrder(ev);
  assert.deepEqual(Object.keys(ev), ["type", "payload", "metadata", "source", "idempotencyKey", "offset", "createdAt"]);
  assert.equal(ev.type, "app/msg");
  assert.deepEqual(ev.source, { processor: { slug: "echo-example", version: "0.1.0" } });
  assert.equal(ev.idempotencyKey, "m-1", "stored trimmed");
  assert.equal(ev.offset, 3);
  assert.match(ev.createdAt, ISO_MS_RE);
  const t = Date.parse(ev.createdAt);
  assert.ok(t >= before - 5000 && t <= afterMs + 5000, "createdAt is the wall clock");
  // Nested keys keep their input order.
  assert.deepEqual(Object.keys(ev.payload), ["text", "z", "a", "nested"]);
  assert.deepEqual(Object.keys(ev.payload.nested.b), ["d", "c"]);
  assert.deepEqual(Object.keys(ev.metadata), ["z", "a"]);
  assert.deepEqual(Object.keys(ev.metadata.a), ["y", "b"]);
  assert.deepEqual(ev.payload, input.payload);
  assert.equal(ev.namespace, undefined);
  assert.equal(ev.path, undefined);

  // Reads give the very same JSON (key order included).
  const byOffset = await call(mf, name, "getEvent", { offset: ev.offset });
  assert.equal(JSON.stringify(byOffset), JSON.stringify(ev));
  const listed = await call(mf, name, "getEvents", { afterOffset: 2 });
  assert.equal(JSON.stringify(listed), JSON.stringify([ev]));
});

test("absent fields are omitted, an explicit payload:null is kept, undefined properties count as absent", async () => {
  const name = uniqueName();
  const bare = await call(mf, name, "append", { event: { type: "app/bare" } });
  assert.deepEqual(Object.keys(bare), ["type", "offset", "createdAt"]);
  const withNull = await call(mf, name, "append", { event: { type: "app/null", payload: null } });
  assert.deepEqual(Object.keys(withNull), ["type", "payload", "offset", "createdAt"]);
  assert.equal(withNull.payload, null);
  const stored = await call(mf, name, "getEvent", { offset: withNull.offset });
  assert.ok("payload" in stored && stored.payload === null, "payload:null survives storage");
  // Payloads may be any JSON.
  for (const payload of [0, -1.5, "s", true, false, [], {}, [1, "a", null, { b: [] }], 1e21, 2 ** 53]) {
    const ev = await call(mf, name, "append", { event: { type: "app/any", payload } });
    assert.deepEqual(ev.payload, payload);
    assert.deepEqual((await call(mf, name, "getEvent", { offset: ev.offset })).payload, payload);
  }
  // Unicode round-trips.
  const uni = await call(mf, name, "append", { event: { type: "app/ünï€😀", payload: { "kéy😀": "väl€\u0000\n\"" } } });
  assert.equal(uni.type, "app/ünï€😀");
  assert.deepEqual(uni.payload, { "kéy😀": "väl€\u0000\n\"" });
  assert.deepEqual(await call(mf, name, "getEvent", { offset: uni.offset }), uni);
});

test("dup-key with {n:1} then {n:2} → the same event (offset and payload {n:1}), nothing appended", async () => {
  const name = uniqueName();
  const first = await call(mf, name, "append", { event: { type: "app/x", payload: { n: 1 }, idempotencyKey: "dup-key" } });
  const snap = await snapshot(mf, name);
  const second = await call(mf, name, "append", { event: { type: "app/x", payload: { n: 2 }, idempotencyKey: "dup-key" } });
  assert.deepEqual(second, first, "the existing event is returned (original payload wins)");
  assert.deepEqual(second.payload, { n: 1 });
  // A hit with padding and a different type is still the same key.
  const third = await call(mf, name, "append", { event: { type: "app/other", idempotencyKey: "  dup-key\t" } });
  assert.deepEqual(third, first);
  // A hit with the matching offset precondition is fine.
  const fourth = await call(mf, name, "append", { event: { type: "app/x", idempotencyKey: "dup-key", offset: first.offset } });
  assert.deepEqual(fourth, first);
  await assertUnchanged(mf, name, snap, "idempotency hits write nothing");
});

test("dup-key with offset first+10 → idempotency_conflict with the exact message", async () => {
  const name = uniqueName();
  const first = await call(mf, name, "append", { event: { type: "app/x", payload: { n: 1 }, idempotencyKey: "dup-key" } });
  await call(mf, name, "append", { event: { type: "app/filler" } });
  const snap = await snapshot(mf, name);
  const o = first.offset;
  assertError(
    await tryCall(mf, name, "append", { event: { type: "app/x", idempotencyKey: "dup-key", offset: o + 10 } }),
    "idempotency_conflict",
    `idempotency hit at offset ${o}, got ${o + 10}`,
  );
  // Even an offset equal to the next free one conflicts with the existing event.
  assertError(
    await tryCall(mf, name, "append", { event: { type: "app/x", idempotencyKey: "dup-key", offset: o + 2 } }),
    "idempotency_conflict",
    `idempotency hit at offset ${o}, got ${o + 2}`,
  );
  // In a batch, the conflict rejects the whole batch.
  assertError(
    await tryCall(mf, name, "appendBatch", { events: [{ type: "app/ok" }, { type: "app/x", idempotencyKey: "dup-key", offset: 0 }] }),
    "idempotency_conflict",
    `idempotency hit at offset ${o}, got 0`,
  );
  await assertUnchanged(mf, name, snap);
});

test("the same key twice in one batch → both slots hold one event; maxOffset +1", async () => {
  const name = uniqueName();
  const { maxOffset } = await coreState(mf, name);
  const res = await call(mf, name, "appendBatch", {
    events: [
      { type: "app/x", payload: { n: 1 }, idempotencyKey: "same" },
      { type: "app/y", payload: { n: 2 }, idempotencyKey: " same " },
    ],
  });
  assert.equal(res.length, 2);
  assert.deepEqual(res[1], res[0]);
  assert.equal(res[0].offset, maxOffset + 1);
  assert.deepEqual(res[0].payload, { n: 1 });
  const st = await coreState(mf, name);
  assert.equal(st.maxOffset, maxOffset + 1);
  assert.equal(st.eventCount, maxOffset + 1);
  assert.deepEqual((await readAll(mf, name)).at(-1), res[0]);

  // A batch mixing a stored key, a new key repeated, and keyless events.
  const res2 = await call(mf, name, "appendBatch", {
    events: [
      { type: "app/a" },
      { type: "app/z", idempotencyKey: "same" },
      { type: "app/b", idempotencyKey: "k2" },
      { type: "app/c", idempotencyKey: "k2", payload: "ignored" },
      { type: "app/d" },
    ],
  });
  assert.deepEqual(res2.map((e) => e.offset), [maxOffset + 2, maxOffset + 1, maxOffset + 3, maxOffset + 3, maxOffset + 4]);
  assert.deepEqual(res2[1], res[0]);
  assert.deepEqual(res2[3], res2[2]);
  // An in-batch repeat whose offset differs from the earlier input's assigned offset conflicts.
  const snap = await snapshot(mf, name);
  const next = maxOffset + 5;
  assertError(
    await tryCall(mf, name, "appendBatch", {
      events: [
        { type: "app/e", idempotencyKey: "k3" },
        { type: "app/e", idempotencyKey: "k3", offset: next + 1 },
      ],
    }),
    "idempotency_conflict",
    `idempotency hit at offset ${next}, got ${next + 1}`,
  );
  await assertUnchanged(mf, name, snap);
});

test("a batch of only idempotency hits writes nothing", async () => {
  const name = uniqueName();
  const a = await call(mf, name, "append", { event: { type: "app/a", idempotencyKey: "a" } });
  const b = await call(mf, name, "append", { event: { type: "app/b", idempotencyKey: "b" } });
  const snap = await snapshot(mf, name);
  const res = await call(mf, name, "appendBatch", {
    events: [
      { type: "app/x", idempotencyKey: "b" },
      { type: "app/x", idempotencyKey: "a" },
      { type: "app/x", idempotencyKey: "b" },
    ],
  });
  assert.deepEqual(res, [b, a, b]);
  await assertUnchanged(mf, name, snap);
});

test("offset max+2 → offset_mismatch: expected offset <max+1>, got <max+2>; max+1 → OK", async () => {
  const name = uniqueName();
  const { maxOffset: m } = await coreState(mf, name);
  const snap = await snapshot(mf, name);
  assertError(await tryCall(mf, name, "append", { event: { type: "app/x", offset: m + 2 } }), "offset_mismatch", `expected offset ${m + 1}, got ${m + 2}`);
  assertError(await tryCall(mf, name, "append", { event: { type: "app/x", offset: m } }), "offset_mismatch", `expected offset ${m + 1}, got ${m}`);
  assertError(await tryCall(mf, name, "append", { event: { type: "app/x", offset: 0 } }), "offset_mismatch", `expected offset ${m + 1}, got 0`);
  assertError(
    await tryCall(mf, name, "appendBatch", { events: [{ type: "app/x", offset: m + 1 }, { type: "app/x", offset: m + 3 }] }),
    "offset_mismatch",
    `expected offset ${m + 2}, got ${m + 3}`,
  );
  await assertUnchanged(mf, name, snap);
  const ok = await call(mf, name, "append", { event: { type: "app/x", offset: m + 1 } });
  assert.equal(ok.offset, m + 1);
  const okBatch = await call(mf, name, "appendBatch", { events: [{ type: "app/x", offset: m + 2 }, { type: "app/y" }, { type: "app/z", offset: m + 4 }] });
  assert.deepEqual(okBatch.map((e) => e.offset), [m + 2, m + 3, m + 4]);
});

test("appends get consecutive offsets; getEvents after/limit/before bound the range", async () => {
  const name = uniqueName();
  const s = (await coreState(mf, name)).maxOffset;
  // Through a direct stub from Node (successful calls only).
  const direct = await stub(mf, name);
  const appended = [];
  for (let i = 0; i < 5; i++) {
    const ev = await direct.append({ event: { type: "app/seq", payload: { i } } });
    appended.push(JSON.parse(JSON.stringify(ev)));
  }
  assertContiguous(appended.map((e) => e.offset), s + 1);

  const two = await call(mf, name, "getEvents", { afterOffset: s, limit: 2 });
  assert.deepEqual(two, appended.slice(0, 2));
  assert.deepEqual((await call(mf, name, "getEvents", { afterOffset: s, beforeOffset: s + 4 })).map((e) => e.offset), [s + 1, s + 2, s + 3]);
  assert.deepEqual(await call(mf, name, "getEvents", { afterOffset: s, beforeOffset: s + 1 }), []);
  assert.deepEqual(await call(mf, name, "getEvents", { afterOffset: s + 3, beforeOffset: s + 3 }), []);
  assert.deepEqual(await call(mf, name, "getEvents", { afterOffset: s + 5 }), []);
  assert.deepEqual(await call(mf, name, "getEvents", { afterOffset: s + 500 }), []);
  assert.deepEqual(await call(mf, name, "getEvents", { afterOffset: s, beforeOffset: null }), appended);
  assert.deepEqual((await call(mf, name, "getEvents", { beforeOffset: 3 })).map((e) => e.offset), [1, 2]);
  assert.deepEqual(
    (await call(mf, name, "getEvents", { afterOffset: 1, beforeOffset: s + 5, limit: 3 })).map((e) => e.offset),
    [2, 3, 4],
  );
});

test("20 concurrent appenders through DO RPC get contiguous, duplicate-free offsets", async () => {
  const name = uniqueName();
  const { maxOffset: m } = await coreState(mf, name);
  const outcomes = await callMany(
    mf,
    name,
    Array.from({ length: 20 }, (_, i) => ({ method: "append", arg: { event: { type: "app/concurrent", payload: { i } } } })),
  );
  assert.equal(outcomes.length, 20);
  for (const o of outcomes) assert.equal(o.ok, true, JSON.stringify(o));
  const events = outcomes.map((o) => o.result);
  events.forEach((ev, i) => assert.deepEqual(ev.payload, { i }, "each caller gets its own event"));
  const offsets = events.map((e) => e.offset).sort((a, b) => a - b);
  assert.equal(new Set(offsets).size, 20, "no duplicate offsets");
  assertContiguous(offsets, m + 1);
  const log = await readAll(mf, name);
  assert.equal(log.length, m + 20);
  assertContiguous(log.map((e) => e.offset), 1);
  for (const ev of events) assert.deepEqual(log[ev.offset - 1], ev);
  const st = await coreState(mf, name);
  assert.equal(st.maxOffset, m + 20);
  assert.equal(st.eventCount, m + 20);
});

test("concurrent batches and keyed appends interleave without gaps or duplicates", async () => {
  const name = uniqueName();
  const { maxOffset: m } = await coreState(mf, name);
  const calls = [];
  for (let i = 0; i < 10; i++) {
    calls.push({ method: "appendBatch", arg: { events: [{ type: "app/b", payload: { i, j: 0 } }, { type: "app/b", payload: { i, j: 1 } }] } });
    calls.push({ method: "append", arg: { event: { type: "app/k", idempotencyKey: `key-${i % 5}`, payload: { i } } } });
  }
  const outcomes = await callMany(mf, name, calls);
  for (const o of outcomes) assert.equal(o.ok, true, JSON.stringify(o));
  const log = await readAll(mf, name);
  assertContiguous(log.map((e) => e.offset), 1);
  assert.equal(log.length, m + 20 + 5, "20 batch events + 5 distinct keys");
  // Every batch is contiguous and in input order.
  for (let i = 0; i < 10; i++) {
    const [a, b] = outcomes[2 * i].result;
    assert.equal(b.offset, a.offset + 1);
  }
  // Same key → the same event for every caller.
  const byKey = new Map();
  for (let i = 0; i < 10; i++) {
    const ev = outcomes[2 * i + 1].result;
    if (byKey.has(ev.idempotencyKey)) assert.deepEqual(ev, byKey.get(ev.idempotencyKey));
    else byKey.set(ev.idempotencyKey, ev);
  }
  assert.equal(byKey.size, 5);
});

test("a 700 KiB \"x\" payload round-trips exactly", async () => {
  const name = uniqueName();
  const payload = "x".repeat(700 * 1024);
  const ev = await call(mf, name, "append", { event: { type: "app/big", payload } });
  assert.equal(ev.payload, payload);
  const read = await call(mf, name, "getEvent", { offset: ev.offset });
  assert.equal(read.payload.length, payload.length);
  assert.equal(read.payload, payload);
  assert.deepEqual(read, ev);
  assert.deepEqual(await call(mf, name, "getEvents", { afterOffset: ev.offset - 1 }), [ev]);
});

// A batch is written as one INSERT over a JSON array per ~1 MiB of inline events, with each row's
// offset and key read back out of its own JSON (docs/architecture.md#storage): keys with escapes,
// several such statements and a chunked event between them must all land exactly.
test("a batch over 1 MiB of inline JSON, a chunked event inside it and keys with escapes: every event reads back exactly by offset, page and key", async () => {
  const name = uniqueName();
  const keys = ['q"uote', "back\\slash", "nul\u0000byte", "astral \u{1F600}", "tab\tand\nnewline", "  trimmed  "];
  const big = (c) => c.repeat(450 * 1024);
  const events = [
    { type: "app/inline", payload: big("a") },
    ...keys.map((k, i) => ({ type: "app/keyed", idempotencyKey: k, payload: { i, s: "é\u2028\"\\\u0001", n: [1e21, 0.1, -0, 5e-324] } })),
    { type: "app/inline", payload: big("b") },
    { type: "app/chunked", payload: "c".repeat(600 * 1024) },
    { type: "app/inline", payload: big("d") },
    { type: "app/last", metadata: { "1": 1, b: { z: null } } },
  ];
  const committed = await call(mf, name, "appendBatch", { events });
  assert.equal(committed.length, events.length);
  assertContiguous(committed.map((e) => e.offset), committed[0].offset);
  const log = await readAll(mf, name);
  assert.deepEqual(log.slice(-events.length), committed);
  for (const ev of committed) assert.deepEqual(await call(mf, name, "getEvent", { offset: ev.offset }), ev);
  for (const ev of committed.filter((e) => e.idempotencyKey !== undefined)) {
    assert.deepEqual(await call(mf, name, "getEvent", { idempotencyKey: ev.idempotencyKey }), ev, JSON.stringify(ev.idempotencyKey));
  }
  assert.equal(committed.find((e) => e.type === "app/keyed" && e.payload.i === 5).idempotencyKey, "trimmed");
  const again = await call(mf, name, "appendBatch", { events: keys.map((k) => ({ type: "app/keyed", idempotencyKey: k })) });
  assert.deepEqual(again, committed.filter((e) => e.type === "app/keyed"), "every key is found again: nothing new");
});

test("a 5 MiB event (multi-byte characters across chunk boundaries) round-trips exactly", async () => {
  const name = uniqueName();
  const unit = "abc€😀é\u0001\"\\x"; // 1+1+1+3+4+2+1+1+1+1 UTF-8 bytes, some escaped in JSON
  let s = unit.repeat(Math.ceil((5 * MiB) / bytes(unit)));
  const payload = { head: "start", body: s, tail: [1, 2.5, "end"] };
  const ev = await call(mf, name, "append", { event: { type: "app/five", payload, idempotencyKey: "five" } });
  assert.ok(bytes(JSON.stringify(ev)) > 5 * MiB);
  assert.deepEqual(ev.payload, payload);
  const byOffset = await call(mf, name, "getEvent", { offset: ev.offset });
  assert.equal(JSON.stringify(byOffset), JSON.stringify(ev));
  const byKey = await call(mf, name, "getEvent", { idempotencyKey: "five" });
  assert.equal(JSON.stringify(byKey), JSON.stringify(ev));
  // And the neighbours are untouched.
  const after = await call(mf, name, "append", { event: { type: "app/after" } });
  const all = await readAll(mf, name);
  assert.equal(JSON.stringify(all.slice(-2)), JSON.stringify([ev, after]));
});

/** An event whose committed JSON is exactly `n` bytes at offset `offset` (payload = "x"…). */
function eventOfCommittedSize(n, offset, type = "app/sized") {
  const overhead = bytes(JSON.stringify({ type, payload: "", offset, createdAt: "2026-01-01T00:00:00.000Z" }));
  return { type, payload: "x".repeat(n - overhead) };
}

test("a committed event over 8 MiB → event_too_large with the exact size; exactly 8 MiB → OK", async () => {
  const name = uniqueName();
  const { maxOffset: m } = await coreState(mf, name);
  const snap = await snapshot(mf, name);
  // Single event, one byte over.
  assertError(
    await tryCall(mf, name, "append", { event: eventOfCommittedSize(EVENT_LIMIT + 1, m + 1) }),
    "event_too_large",
    `event[0] is ${EVENT_LIMIT + 1} bytes; the limit is ${EVENT_LIMIT}`,
  );
  // In a batch, at index 1 (offset m+2), far over.
  assertError(
    await tryCall(mf, name, "appendBatch", { events: [{ type: "app/small" }, eventOfCommittedSize(EVENT_LIMIT + 1000, m + 2)] }),
    "event_too_large",
    `event[1] is ${EVENT_LIMIT + 1000} bytes; the limit is ${EVENT_LIMIT}`,
  );
  await assertUnchanged(mf, name, snap, "a rejected batch writes nothing");

  // Exactly at the limit → OK, and it round-trips.
  const input = eventOfCommittedSize(EVENT_LIMIT, m + 1);
  const ev = await call(mf, name, "append", { event: input });
  assert.equal(ev.offset, m + 1);
  assert.equal(bytes(JSON.stringify(ev)), EVENT_LIMIT);
  const read = await call(mf, name, "getEvent", { offset: ev.offset });
  assert.equal(read.payload, input.payload);
});

test("a 7 MiB event → OK", async () => {
  const name = uniqueName();
  const payload = "y".repeat(7 * MiB);
  const ev = await call(mf, name, "append", { event: { type: "app/seven", payload } });
  assert.equal((await call(mf, name, "getEvent", { offset: ev.offset })).payload, payload);
});

test("1001 events → batch_too_large; 1000 → OK", async () => {
  const name = uniqueName();
  const { maxOffset: m } = await coreState(mf, name);
  const snap = await snapshot(mf, name);
  const mk = (n) => Array.from({ length: n }, (_, i) => ({ type: "app/many", payload: { i } }));
  assertError(await tryCall(mf, name, "appendBatch", { events: mk(1001) }), "batch_too_large", "batch has 1001 events; the limit is 1000");
  // The count check comes first (docs/architecture.md#the-append-path): invalid events in an oversized batch still give batch_too_large.
  assertError(
    await tryCall(mf, name, "appendBatch", { events: Array.from({ length: 1001 }, () => ({ type: "app/x", foo: 1 })) }),
    "batch_too_large",
    "batch has 1001 events; the limit is 1000",
  );
  await assertUnchanged(mf, name, snap);

  const res = await call(mf, name, "appendBatch", { events: mk(1000) });
  assert.equal(res.length, 1000);
  assertContiguous(res.map((e) => e.offset), m + 1);
  res.forEach((e, i) => assert.deepEqual(e.payload, { i }));
  const st = await coreState(mf, name);
  assert.equal(st.maxOffset, m + 1000);
  assert.equal(st.eventCount, m + 1000);
});

test("3 × 6 MiB in one batch → batch_too_large (bytes), nothing written", async () => {
  const name = uniqueName();
  const snap = await snapshot(mf, name);
  const big = "z".repeat(6 * MiB);
  const events = [0, 1, 2].map((i) => ({ type: "app/six", payload: big, idempotencyKey: `six-${i}` }));
  const err = assertError(
    await tryCall(mf, name, "appendBatch", { events }),
    "batch_too_large",
    /^batch is \d+ bytes; the limit is 16777216$/,
  );
  const n = Number(/batch is (\d+) bytes/.exec(err)[1]);
  assert.ok(n > BATCH_BYTES_LIMIT && n >= 18 * MiB, `reported size ${n}`);
  await assertUnchanged(mf, name, snap);
  assert.equal(await call(mf, name, "getEvent", { idempotencyKey: "six-0" }), undefined);
});

test("[valid, invalid] → error, maxOffset unchanged; events: [] → [] and nothing written", async () => {
  const name = uniqueName();
  await call(mf, name, "append", { event: { type: "app/pre" } });
  const snap = await snapshot(mf, name);
  assertError(
    await tryCall(mf, name, "appendBatch", { events: [{ type: "app/ok", idempotencyKey: "v1" }, { type: "app/bad", foo: 1 }] }),
    "invalid_event",
    'event[1]: unknown key "foo"',
  );
  await assertUnchanged(mf, name, snap);
  assert.equal(await call(mf, name, "getEvent", { idempotencyKey: "v1" }), undefined, "the valid input was not persisted");

  assert.deepEqual(await call(mf, name, "appendBatch", { events: [] }), []);
  await assertUnchanged(mf, name, snap, "an empty batch writes nothing");
});
