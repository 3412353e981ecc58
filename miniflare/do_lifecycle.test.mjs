// Identity and lifecycle over DO JS-RPC: boot, kill, reset, broken names, child propagation
// (docs/protocol.md#stream-lifecycle, #child-streams).
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { call, tryCall, uniqueName, splitName, startPersistedStreams, stopPersistedStreams } from "./helpers/mf.mjs";
import {
  S,
  ISO_MS_RE,
  UUID_V4_RE,
  STATE_KEYS,
  assertError,
  assertUndefined,
  readAll,
  coreState,
  pollUntil,
  tryCallAfterKill,
  callAfterKill,
  assertEventKeyOrder,
  assertCreatedPayload,
} from "./helpers/assertions.mjs";

let mf;
let persistDir;

before(async () => {
  // Persisted to a temp dir so "nothing is written" can be checked on the DO's own SQLite file.
  ({ mf, persistDir } = await startPersistedStreams("streams-lifecycle-"));
});

after(() => stopPersistedStreams(mf, persistDir));

/** The bytes of a DO's SQLite database and WAL, or "" when the object has no files. */
async function sqliteBytesOf(name) {
  const ns = await mf.getDurableObjectNamespace("STREAM", "streams");
  const id = ns.idFromName(name).toString();
  let text = "";
  const walk = (dir) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (entry.name.startsWith(id)) text += fs.readFileSync(p).toString("latin1");
    }
  };
  walk(persistDir);
  return text;
}

test("a fresh stream boots with created@1 {namespace, path} and woken@2 (UUID v4)", async () => {
  const name = uniqueName();
  const { namespace, path: p } = splitName(name);
  // A read creates nothing (docs/protocol.md#reads-create-nothing); a call that writes boots it,
  // here a test hook that writes nothing else.
  assert.deepEqual(await call(mf, name, "getEvents", {}), []);
  await call(mf, name, "runIdleTeardownNow");
  const events = await call(mf, name, "getEvents", {});
  assert.equal(events.length, 2);
  const [created, woken] = events;

  assert.equal(created.type, S("created"));
  assert.equal(created.offset, 1);
  assertCreatedPayload(created.payload, { namespace, path: p });
  assert.equal(namespace, "t");
  assert.match(created.createdAt, ISO_MS_RE);
  assertEventKeyOrder(created, "created");

  assert.equal(woken.type, S("woken"));
  assert.equal(woken.offset, 2);
  assert.deepEqual(Object.keys(woken.payload), ["incarnationId"]);
  assert.match(woken.payload.incarnationId, UUID_V4_RE);
  assert.match(woken.createdAt, ISO_MS_RE);
  assertEventKeyOrder(woken, "woken");

  const rs = await call(mf, name, "runtimeState");
  assert.deepEqual(Object.keys(rs), ["coreProcessorState", "runtime"]);
  const st = rs.coreProcessorState;
  assert.deepEqual(Object.keys(st), STATE_KEYS, "the documented state key order");
  assert.equal(st.maxOffset, 2);
  assert.equal(st.eventCount, 2);
  assert.equal(st.namespace, namespace);
  assert.equal(st.path, p);
  assert.equal(st.createdAt, created.createdAt);
  assert.equal(st.incarnationId, woken.payload.incarnationId);
  assert.deepEqual(st.metadata, {});
  assert.deepEqual(st.config, { simulatedStorageSyncDelayMs: 0 });
  assert.deepEqual(st.childPaths, []);
  assert.equal(st.paused, false);
  assert.equal(st.pauseReason, null);
  assert.deepEqual(st.processorsBySlug, {});
  assert.deepEqual(st.subscriptionsByKey, {});
  assert.deepEqual(st.connectionsByKey, {});
  // created spends from a full default bucket; woken is free (docs/protocol.md#rules).
  assert.deepEqual(st.circuitBreaker, {
    availableTokens: 99999,
    lastRefillAtMs: Date.parse(created.createdAt),
    burstCapacity: 100000,
    refillRatePerMinute: 6000000,
  });
  const storage = { firstOffset: 1, hotEvents: 2, hotBytes: Buffer.byteLength(JSON.stringify(created)) + Buffer.byteLength(JSON.stringify(woken)), archivedSegments: 0, archivedEvents: 0, archivedBytes: 0 };
  assert.deepEqual(rs.runtime, { connections: {}, redial: {}, idleTeardownAt: null, storage });

  // Reads after boot append nothing.
  assert.deepEqual(await readAll(mf, name), events);
});

test("a first call being runtimeState creates nothing; an append boots created@1, woken@2", async () => {
  const a = uniqueName();
  const st = (await call(mf, a, "runtimeState")).coreProcessorState;
  assert.equal(st.maxOffset, 0);
  assert.deepEqual(await call(mf, a, "getEvents", {}), [], "reads create nothing (docs/protocol.md#reads-create-nothing)");

  const b = uniqueName();
  const ev = await call(mf, b, "append", { event: { type: "app/first" } });
  assert.equal(ev.offset, 3, "user events start at offset 3");
  assert.deepEqual((await readAll(mf, b)).map((e) => e.type), [S("created"), S("woken"), "app/first"]);
});

test("kill() resolves undefined; the next call boots a new incarnation (woken@3, new id, no 2nd created)", async () => {
  const name = uniqueName();
  const before = await readAll(mf, name);
  assert.equal(before.length, 2);

  assertUndefined(await tryCall(mf, name, "kill"), "kill() resolves with undefined");

  const events = await callAfterKill(mf, name, "getEvents", {});
  assert.equal(events.length, 3);
  assert.deepEqual(events.slice(0, 2), before, "earlier events unchanged");
  const woken = events[2];
  assert.equal(woken.type, S("woken"));
  assert.equal(woken.offset, 3);
  assert.match(woken.payload.incarnationId, UUID_V4_RE);
  assert.notEqual(woken.payload.incarnationId, before[1].payload.incarnationId);
  assert.equal(events.filter((e) => e.type === S("created")).length, 1);

  const st = await coreState(mf, name);
  assert.equal(st.incarnationId, woken.payload.incarnationId);
  assert.equal(st.maxOffset, 3);
  assert.equal(st.eventCount, 3);
});

test("kill() keeps every acknowledged event: the log reads back exactly after the new boot", async () => {
  const name = uniqueName();
  const acked = [];
  acked.push(await call(mf, name, "append", { event: { type: "app/one", payload: { n: 1 }, idempotencyKey: "k-1" } }));
  acked.push(...(await call(mf, name, "appendBatch", { events: [{ type: "app/two", payload: [1, 2] }, { type: "app/three", metadata: { m: true } }] })));
  acked.push(await call(mf, name, "append", { event: { type: "app/four", payload: "x".repeat(600 * 1024) } }));
  const before = await readAll(mf, name);
  const stateBefore = await coreState(mf, name);

  assertUndefined(await tryCall(mf, name, "kill"));

  const afterKill = await callAfterKill(mf, name, "getEvents", { limit: 1000 });
  assert.deepEqual(afterKill.slice(0, before.length), before, "every event before kill() is unchanged");
  for (const ev of acked) assert.deepEqual(afterKill[ev.offset - 1], ev, `acknowledged event @${ev.offset}`);
  assert.equal(afterKill.length, before.length + 1);
  assert.equal(afterKill.at(-1).type, S("woken"));
  const st = await coreState(mf, name);
  assert.equal(st.eventCount, stateBefore.eventCount + 1);
  assert.equal(st.maxOffset, stateBefore.maxOffset + 1);
  // By key, after the restart.
  assert.deepEqual(await call(mf, name, "getEvent", { idempotencyKey: "k-1" }), acked[0]);
});

test("kill() twice in a row, each followed by a call, gives one woken per incarnation", async () => {
  const name = uniqueName();
  await call(mf, name, "getEvents", {});
  assertUndefined(await tryCall(mf, name, "kill"));
  await callAfterKill(mf, name, "runtimeState");
  assertUndefined(await tryCallAfterKill(mf, name, "kill"));
  const events = await callAfterKill(mf, name, "getEvents", {});
  assert.deepEqual(events.map((e) => [e.offset, e.type]), [
    [1, S("created")],
    [2, S("woken")],
    [3, S("woken")],
    [4, S("woken")],
  ]);
  assert.equal(new Set(events.slice(1).map((e) => e.payload.incarnationId)).size, 3, "three distinct incarnation ids");
});

test("3 appends, then reset() → the log is [created@1, woken@2] and runtime.redial is {}", async () => {
  const name = uniqueName();
  const { namespace, path: p } = splitName(name);
  const oldBoot = await readAll(mf, name);
  for (let i = 0; i < 3; i++) await call(mf, name, "append", { event: { type: "app/x", payload: { i }, idempotencyKey: `r-${i}` } });
  assert.equal((await coreState(mf, name)).maxOffset, 5);

  assertUndefined(await tryCall(mf, name, "reset"), "reset() resolves with undefined");

  // Nothing is left, and a read creates nothing; the next write boots a fresh stream.
  assert.deepEqual(await callAfterKill(mf, name, "getEvents", {}), []);
  await call(mf, name, "runIdleTeardownNow");
  const events = await call(mf, name, "getEvents", {});
  assert.deepEqual(events.map((e) => [e.offset, e.type]), [[1, S("created")], [2, S("woken")]]);
  assertCreatedPayload(events[0].payload, { namespace, path: p });
  assert.notEqual(events[1].payload.incarnationId, oldBoot[1].payload.incarnationId, "a new incarnation");

  const rs = await call(mf, name, "runtimeState");
  assert.deepEqual(rs.runtime.redial, {});
  assert.deepEqual(rs.runtime.connections, {});
  assert.equal(rs.runtime.idleTeardownAt, null);
  assert.equal(rs.coreProcessorState.maxOffset, 2);
  assert.equal(rs.coreProcessorState.eventCount, 2);
  assert.equal(rs.coreProcessorState.incarnationId, events[1].payload.incarnationId);
  assert.equal(rs.coreProcessorState.createdAt, events[0].createdAt);

  // Old idempotency keys are gone with the rows; the same key appends anew.
  assert.equal(await call(mf, name, "getEvent", { idempotencyKey: "r-0" }), undefined);
  const again = await call(mf, name, "append", { event: { type: "app/x", payload: { i: 9 }, idempotencyKey: "r-0" } });
  assert.equal(again.offset, 3);
  assert.deepEqual(again.payload, { i: 9 });
});

test("getByName(\"Bad:/x\").getEvents({}) → invalid_namespace, every call fails, nothing is written", async () => {
  const bad = "Bad:/x";
  const msg = 'invalid namespace "Bad": must match ^[a-z0-9][a-z0-9_-]{0,62}$';
  assertError(await tryCall(mf, bad, "getEvents", {}), "invalid_namespace", msg);
  assertError(await tryCall(mf, bad, "append", { event: { type: "x" } }), "invalid_namespace", msg, "append");
  assertError(await tryCall(mf, bad, "runtimeState"), "invalid_namespace", msg, "runtimeState");
  assertError(await tryCall(mf, bad, "getEvents", {}), "invalid_namespace", msg, "still broken");

  // Control: a valid stream's SQLite holds the schema; the broken one holds none.
  const good = uniqueName();
  await call(mf, good, "append", { event: { type: "app/x" } });
  assert.match(await sqliteBytesOf(good), /event_chunks/, "control: a valid stream has its schema on disk");
  const badBytes = await sqliteBytesOf(bad);
  assert.doesNotMatch(badBytes, /CREATE TABLE/i, "the broken stream wrote no schema");
  assert.doesNotMatch(badBytes, /events\.iterate\.com/, "the broken stream wrote no events");
});

test("invalid paths in the DO name → invalid_path, nothing is written", async () => {
  for (const p of ["/a/", "/a//b", "/a/./b", "/a/..", "/a b", "/a:b"]) {
    const name = `t:${p}`;
    assertError(await tryCall(mf, name, "getEvents", {}), "invalid_path", new RegExp(`^invalid path ${escapeRe(JSON.stringify(p))}: .+`), name);
    assertError(await tryCall(mf, name, "append", { event: { type: "x" } }), "invalid_path", undefined, `${name} append`);
    assert.doesNotMatch(await sqliteBytesOf(name), /CREATE TABLE/i, `${name} wrote nothing`);
  }
  // No ":" at all: no namespace/path split → invalid_path.
  assertError(await tryCall(mf, "t", "getEvents", {}), "invalid_path", undefined, '"t"');
  assert.doesNotMatch(await sqliteBytesOf("t"), /CREATE TABLE/i);
  // A DO name over 1024 bytes: workerd does not pass it as ctx.id.name, so the DO sees no name
  // (docs/protocol.md#naming-and-paths); the entrypoint/HTTP reject such paths before any DO is touched.
  const long = `t:/${"a".repeat(1023)}`;
  assertError(await tryCall(mf, long, "getEvents", {}), "invalid_request", "this call reached the stream without its name (by id, or by a name over 1024 bytes) and the stream does not exist yet; call it by name (getByName or idFromName)", "1024-byte path");
  assert.doesNotMatch(await sqliteBytesOf(long), /CREATE TABLE/i);
  // ns:/a:b splits on the first ":" → path "/a:b" → invalid.
  assertError(await tryCall(mf, "ns:/a:b", "getEvents", {}), "invalid_path", /^invalid path "\/a:b": /);
});

test("valid unusual names boot normally (1024-byte DO name, root, ~ . _ - segments)", async () => {
  const rand = Math.random().toString(36).slice(2, 8);
  // "t:" + a 1022-byte path is the longest DO name workerd passes as ctx.id.name (1024 bytes).
  for (const p of [`/${rand}`.padEnd(1022, "z"), `/${rand}/b-c/d.e~f_g`]) {
    const name = `t:${p}`;
    const events = await readAll(mf, name);
    assertCreatedPayload(events[0].payload, { namespace: "t", path: p });
  }
  const rootName = `r${rand}:/`;
  const rootEvents = await readAll(mf, rootName);
  assertCreatedPayload(rootEvents[0].payload, { namespace: `r${rand}`, path: "/" });
});

test("touching /a/b/c → childPaths [\"/a\"] on /, [\"/a/b\"] on /a, [\"/a/b/c\"] on /a/b", async () => {
  // A namespace of its own so "/" is not shared with other tests.
  const ns = `c${Math.random().toString(36).slice(2, 10)}`;
  // An append creates the stream (a read would create nothing: docs/protocol.md#reads-create-nothing).
  await call(mf, `${ns}:/a/b/c`, "append", { event: { type: "app/x" } });
  const expected = { "/": ["/a"], "/a": ["/a/b"], "/a/b": ["/a/b/c"] };
  for (const [p, childPaths] of Object.entries(expected)) {
    await pollUntil(
      () => coreState(mf, `${ns}:${p}`),
      (st) => JSON.stringify(st.childPaths) === JSON.stringify(childPaths),
      { what: `childPaths of ${p} == ${JSON.stringify(childPaths)}` },
    );
  }
  assert.deepEqual((await coreState(mf, `${ns}:/a/b/c`)).childPaths, []);

  // The notice on /a/b carries the documented key and payload (docs/protocol.md#child-streams).
  const notices = (await readAll(mf, `${ns}:/a/b`)).filter((e) => e.type === S("child-stream-created"));
  const own = notices.filter((e) => e.payload.childPath === "/a/b/c");
  assert.equal(own.length, 1, "one notice for /a/b/c on /a/b");
  assert.equal(own[0].idempotencyKey, "child-stream-created:/a/b:/a/b/c");
  // The root got a deduplicated notice for the deep path too.
  const rootNotices = await pollUntil(
    async () => (await readAll(mf, `${ns}:/`)).filter((e) => e.type === S("child-stream-created")),
    (list) => list.some((e) => e.payload.childPath === "/a/b/c"),
    { what: "root notice for /a/b/c" },
  );
  const keys = rootNotices.map((e) => e.idempotencyKey);
  assert.equal(new Set(keys).size, keys.length, "no duplicate notices on /");
  assert.ok(keys.includes("child-stream-created:/:/a/b/c"));
  // Every state stays contiguous.
  for (const p of ["/", "/a", "/a/b", "/a/b/c"]) {
    const st = await coreState(mf, `${ns}:${p}`);
    assert.equal(st.eventCount, st.maxOffset, p);
  }
});

test("a new stream's own notice does not go to itself, and the root gets none for itself", async () => {
  const ns = `c${Math.random().toString(36).slice(2, 10)}`;
  await call(mf, `${ns}:/`, "runIdleTeardownNow");
  // Sentinel: a child created afterwards; once its notice is in, a notice about the root itself
  // would be too.
  await call(mf, `${ns}:/sentinel`, "runIdleTeardownNow");
  const rootEvents = await pollUntil(
    () => readAll(mf, `${ns}:/`),
    (events) => events.some((e) => e.type === S("child-stream-created")),
    { what: "the sentinel's notice on the root" },
  );
  assert.deepEqual(rootEvents.map((e) => e.type), [S("created"), S("woken"), S("child-stream-created")], "the root has no ancestors");
  assert.deepEqual(rootEvents[2].payload, { childPath: "/sentinel" });
  assert.deepEqual((await coreState(mf, `${ns}:/`)).childPaths, ["/sentinel"]);
});

function escapeRe(s) {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}
