// Reads over DO JS-RPC: getEvent, getEvents limits and caps, runtimeState
// (docs/protocol.md#limits, docs/architecture.md#storage, docs/protocol.md#durable-object-rpc, #runtimestate).
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import { startStreams, call, tryCall, uniqueName } from "./helpers/mf.mjs";
import { bytes, assertError, expectError, assertUndefined, readAll, snapshot, assertUnchanged, assertContiguous } from "./helpers/assertions.mjs";

const MiB = 1024 * 1024;

let mf;
before(async () => {
  mf = await startStreams();
});
after(async () => {
  await mf?.dispose();
});

test("limit 0 → `getEvents limit must be a positive integer.`; 1001 → `…at most 1000.`", async () => {
  const name = uniqueName();
  await expectError(mf, name, "getEvents", { limit: 0 }, "invalid_request", "getEvents limit must be a positive integer.");
  await expectError(mf, name, "getEvents", { limit: -1 }, "invalid_request", "getEvents limit must be a positive integer.");
  await expectError(mf, name, "getEvents", { limit: 1.5 }, "invalid_request", "getEvents limit must be a positive integer.");
  await expectError(mf, name, "getEvents", { limit: 1001 }, "invalid_request", "getEvents limit must be at most 1000.");
  await expectError(mf, name, "getEvents", { limit: 1e9 }, "invalid_request", "getEvents limit must be at most 1000.");
  await readAll(mf, name); // boots the stream: created@1, woken@2
  assert.equal((await call(mf, name, "getEvents", { limit: 1 })).length, 1);
  assert.equal((await call(mf, name, "getEvents", { limit: 1000 })).length, 2);
});

test("no limit → at most 100 events (the first 100 after afterOffset)", async () => {
  const name = uniqueName();
  await call(mf, name, "appendBatch", { events: Array.from({ length: 248 }, (_, i) => ({ type: "app/n", payload: i })) });
  // 250 events in all.
  const def = await call(mf, name, "getEvents", {});
  assert.equal(def.length, 100);
  assertContiguous(def.map((e) => e.offset), 1);
  const noArg = await call(mf, name, "getEvents");
  assert.deepEqual(noArg, def, "no argument at all = defaults");
  const nullArg = await call(mf, name, "getEvents", null);
  assert.deepEqual(nullArg, def, "null argument = defaults");
  const page2 = await call(mf, name, "getEvents", { afterOffset: 100 });
  assertContiguous(page2.map((e) => e.offset), 101);
  assert.equal(page2.length, 100);
  const tail = await call(mf, name, "getEvents", { afterOffset: 200 });
  assertContiguous(tail.map((e) => e.offset), 201);
  assert.equal(tail.length, 50);
  const big = await call(mf, name, "getEvents", { limit: 1000 });
  assert.equal(big.length, 250);
  assertContiguous(big.map((e) => e.offset), 1);
  assert.deepEqual(big.slice(0, 100), def);
  // before bounds with the default limit.
  const bounded = await call(mf, name, "getEvents", { afterOffset: 10, beforeOffset: 20 });
  assertContiguous(bounded.map((e) => e.offset), 11);
  assert.equal(bounded.length, 9);
});

test("getEvent({offset:999}) → not_found with the exact message; an unknown key → undefined", async () => {
  const name = uniqueName();
  await expectError(mf, name, "getEvent", { offset: 999 }, "not_found", "No stream event found at offset 999.");
  await expectError(mf, name, "getEvent", { offset: 0 }, "not_found", "No stream event found at offset 0.");
  await expectError(mf, name, "getEvent", { offset: 3 }, "not_found", "No stream event found at offset 3.");
  assertUndefined(await tryCall(mf, name, "getEvent", { idempotencyKey: "nope" }), "unknown key → undefined");
  assertUndefined(await tryCall(mf, name, "getEvent", { idempotencyKey: "  nope  " }));
  await readAll(mf, name); // boots the stream: created@1, woken@2
  const first = await call(mf, name, "getEvent", { offset: 1 });
  assert.equal(first.offset, 1);
  const ev = await call(mf, name, "append", { event: { type: "app/k", idempotencyKey: "known" } });
  assert.deepEqual(await call(mf, name, "getEvent", { idempotencyKey: "known" }), ev);
  assert.deepEqual(await call(mf, name, "getEvent", { offset: ev.offset }), ev);
});

test("getEvent needs exactly one of offset or idempotencyKey", async () => {
  const name = uniqueName();
  await call(mf, name, "append", { event: { type: "app/k", idempotencyKey: "k" } });
  const snap = await snapshot(mf, name);
  const msg = "getEvent requires exactly one of offset or idempotencyKey.";
  await expectError(mf, name, "getEvent", {}, "invalid_request", msg);
  await expectError(mf, name, "getEvent", undefined, "invalid_request", msg, "no argument");
  await expectError(mf, name, "getEvent", { offset: 3, idempotencyKey: "k" }, "invalid_request", msg);
  await expectError(mf, name, "getEvent", { idempotencyKey: "   " }, "invalid_request", undefined, "a blank key");
  await expectError(mf, name, "getEvent", { offset: "3" }, "invalid_request", "offset must be a non-negative integer");
  await assertUnchanged(mf, name, snap);
});

test("getEvents stops before 16 MiB of event JSON: 3 × 6 MiB events → 2, then 1", async () => {
  const name = uniqueName();
  const big = "q".repeat(6 * MiB);
  const evs = [];
  for (let i = 0; i < 3; i++) evs.push(await call(mf, name, "append", { event: { type: "app/six", payload: big, idempotencyKey: `six-${i}` } }));
  const [a, b, c] = evs;
  assert.ok(bytes(JSON.stringify(a)) + bytes(JSON.stringify(b)) < 16 * MiB);
  const page = await call(mf, name, "getEvents", { afterOffset: 2 });
  assert.deepEqual(page.map((e) => e.offset), [a.offset, b.offset], "the third would cross 16 MiB");
  assert.equal(page[1].payload, big);
  const rest = await call(mf, name, "getEvents", { afterOffset: b.offset });
  assert.deepEqual(rest.map((e) => e.offset), [c.offset]);
  // The small events before them still come along on the first page.
  const first = await call(mf, name, "getEvents", {});
  assert.deepEqual(first.map((e) => e.offset), [1, 2, a.offset, b.offset]);
});

test("runtimeState has exactly {coreProcessorState, runtime}; reads never append", async () => {
  const name = uniqueName();
  await call(mf, name, "append", { event: { type: "app/x" } });
  const snap = await snapshot(mf, name);
  for (let i = 0; i < 3; i++) {
    await call(mf, name, "getEvents", { limit: 5 });
    await call(mf, name, "getEvent", { offset: 1 });
    await tryCall(mf, name, "getEvent", { offset: 50 });
    await call(mf, name, "runtimeState");
  }
  await assertUnchanged(mf, name, snap);
  const rs = await call(mf, name, "runtimeState");
  assert.deepEqual(Object.keys(rs), ["coreProcessorState", "runtime"]);
  assert.deepEqual(Object.keys(rs.runtime), ["connections", "redial", "idleTeardownAt", "storage"]);
  assert.deepEqual(rs.coreProcessorState, snap.state);
  const all = await readAll(mf, name);
  assert.equal(rs.coreProcessorState.maxOffset, all.at(-1).offset);
  assert.equal(rs.coreProcessorState.eventCount, all.length);
});
