// Reads write nothing (docs/protocol.md#reads-create-nothing): getEvent, getEvents, runtimeState and
// reduce on a path never written create no stream and tell no ancestor, on every surface; and the
// presence events a stream writes about its own sockets spend no circuit-breaker tokens.
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import { storedTables } from "./helpers/reliability.mjs";
import { call, callService, http, splitName, startPersistedStreams, stopPersistedStreams, tryCall, tryCallService } from "./helpers/mf.mjs";
import { S, assertError, breakerConfig, coreState } from "./helpers/assertions.mjs";
import { openSubscriber, waitFor, waitForLog, facts } from "./helpers/subscribers.mjs";

let mf;
let persistDir;
before(async () => {
  ({ mf, persistDir } = await startPersistedStreams("streams-reads-"));
});
after(() => stopPersistedStreams(mf, persistDir));

let n = 0;
/** A fresh namespace, so no ancestor exists before the test: `ns:/<parent>/<child>`. */
function freshTree() {
  n += 1;
  const ns = `r${n}${Math.random().toString(36).slice(2, 8)}`;
  return { ns, root: `${ns}:/`, parent: `${ns}:/p`, child: `${ns}:/p/c` };
}

test("reads create nothing: getEvents, getEvent, runtimeState and reduce on a never-written path create no stream and notify no ancestor", async () => {
  const { ns, root, parent, child } = freshTree();
  const { path } = splitName(child);
  // Durable Object RPC.
  assert.deepEqual(await call(mf, child, "getEvents", {}), []);
  assert.deepEqual(await call(mf, child, "getEvents", { afterOffset: 5, limit: 10 }), []);
  assertError(await tryCall(mf, child, "getEvent", { offset: 1 }), "not_found", "No stream event found at offset 1.");
  const byKey = await tryCall(mf, child, "getEvent", { idempotencyKey: "k" });
  assert.deepEqual(byKey, { ok: true, hasResult: false });
  const state = await call(mf, child, "runtimeState");
  assert.deepEqual(state.runtime, {
    connections: {},
    redial: {},
    idleTeardownAt: null,
    storage: { firstOffset: 1, hotEvents: 0, hotBytes: 0, archivedSegments: 0, archivedEvents: 0, archivedBytes: 0 },
  });
  assert.equal(state.coreProcessorState.namespace, ns);
  assert.equal(state.coreProcessorState.path, path);
  assert.equal(state.coreProcessorState.eventCount, 0);
  assert.equal(state.coreProcessorState.maxOffset, 0);
  assert.deepEqual(state.coreProcessorState.childPaths, []);
  const reduced = await call(mf, child, "reduce", { event: { type: "app/x", offset: 1, createdAt: "2026-01-05T10:00:00.000Z" } });
  assert.equal(reduced.eventCount, 1);
  // Bad arguments are still refused.
  assertError(await tryCall(mf, child, "getEvents", { bogus: 1 }), "invalid_request", 'unknown argument "bogus"');
  // The service binding and HTTP.
  assert.deepEqual(await callService(mf, "getEvents", { namespace: ns, path }), []);
  assertError(await tryCallService(mf, "getEvent", { namespace: ns, path, offset: 3 }), "not_found", "No stream event found at offset 3.");
  assert.equal((await callService(mf, "runtimeState", { namespace: ns, path })).coreProcessorState.eventCount, 0);
  const q = `namespace=${ns}&path=${encodeURIComponent(path)}`;
  const viaHttp = await http(mf, "GET", `/api/streams/getEvents?${q}`);
  assert.equal(viaHttp.status, 200, viaHttp.text);
  assert.equal(viaHttp.text, "[]");
  assert.equal((await http(mf, "GET", `/api/streams/getEvent?${q}&offset=1`)).status, 404);
  assert.equal((await http(mf, "GET", `/api/streams/runtimeState?${q}`)).json.coreProcessorState.eventCount, 0);

  // Nothing was stored, here or in any ancestor.
  for (const name of [child, parent, root]) assert.deepEqual(await storedTables(mf, persistDir, name), [], `${name} holds nothing`);
  assert.deepEqual(await call(mf, child, "getEvents", {}), [], "still nothing after all those reads");
  // Reading an ancestor (which is also never written) leaves its children empty.
  assert.deepEqual((await call(mf, parent, "runtimeState")).coreProcessorState.childPaths, []);

  // The first write creates the stream as before: created, woken, the event; the ancestors hear of it.
  const first = await call(mf, child, "append", { event: { type: "app/first" } });
  assert.equal(first.offset, 3);
  assert.deepEqual((await call(mf, child, "getEvents", {})).map((e) => e.type), [S("created"), S("woken"), "app/first"]);
  await waitForLog(mf, parent, (log) => facts(log, "child-stream-created", { childPath: path }).length === 1, { what: "the parent hears of the child" });
});

test("reads create nothing: a long-poll on a never-written path waits without creating it, and the first write answers it", async () => {
  const { parent, child } = freshTree();
  assert.deepEqual(await call(mf, child, "getEvents", { waitMs: 300 }), [], "the time runs out: []");
  assert.deepEqual(await storedTables(mf, persistDir, child), [], "the expired long-poll created nothing");
  const waiting = tryCall(mf, child, "getEvents", { afterOffset: 0, eventTypes: ["app/first"], waitMs: 20_000 });
  // Sentinel: the object reports the long-poll waiting (looking creates nothing either).
  await waitFor(() => call(mf, child, "pendingWork"), (p) => p.longPolls === 1, { what: "the long-poll waiting" });
  for (const name of [child, parent]) assert.deepEqual(await storedTables(mf, persistDir, name), [], `${name} holds nothing while the long-poll waits`);
  const first = await call(mf, child, "append", { event: { type: "app/first" } });
  const answered = await waiting;
  assert.equal(answered.ok, true, JSON.stringify(answered));
  assert.deepEqual(answered.result, [first]);
});

test("a refused first append creates nothing either: no stream, no notice to an ancestor", async () => {
  const { parent, child } = freshTree();
  assertError(await tryCall(mf, child, "append", { event: { type: S("created") } }), "invalid_event", `event type "${S("created")}" is reserved for the stream itself`);
  assertError(await tryCall(mf, child, "appendBatch", { events: [{ type: "app/ok" }, { type: "" }] }), "invalid_event");
  assertError(await tryCall(mf, child, "append", { event: { type: "app/x", offset: 1 } }), "offset_mismatch", "expected offset 3, got 1");
  for (const name of [child, parent]) assert.deepEqual(await storedTables(mf, persistDir, name), [], `${name} holds nothing`);
  assert.equal((await call(mf, child, "append", { event: { type: "app/x", offset: 3 } })).offset, 3);
});

test("reads create nothing: a read after reset answers from nothing too", async () => {
  const { child } = freshTree();
  await call(mf, child, "append", { event: { type: "app/x" } });
  await call(mf, child, "reset");
  // The old incarnation may refuse calls while it shuts down: read until one answers.
  const read = await waitFor(() => tryCall(mf, child, "getEvents", {}), (o) => o.ok, { timeoutMs: 20_000, what: "a read after the reset" });
  assert.deepEqual(read.result, [], "a reset stream is empty and a read does not re-create it");
});

test("presence events spend no breaker tokens: opening and closing sockets cannot trip the breaker", async () => {
  const { child } = freshTree();
  // One token left after the configuration refills the bucket, and next to no refill.
  await call(mf, child, "appendBatch", { events: [breakerConfig(2, 1), { type: "app/spend" }] });
  const before = (await coreState(mf, child)).circuitBreaker.availableTokens;
  assert.ok(before > 0.9 && before < 1.1, `one token left: ${before}`);
  for (let i = 0; i < 4; i++) {
    const sub = await openSubscriber(mf, child, { subscriptionKey: `reader-${i}` });
    await sub.waitFor((s) => s.frames.length >= 1);
    sub.close();
    await waitForLog(mf, child, (log) => facts(log, "subscriber-disconnected", { subscriptionKey: `reader-${i}` }).length === 1, { what: `reader-${i} gone` });
  }
  const state = await coreState(mf, child);
  assert.equal(state.paused, false, "eight presence events did not pause the stream");
  assert.ok(state.circuitBreaker.availableTokens >= before, `no token spent: ${state.circuitBreaker.availableTokens} < ${before}`);
  // The one token left is still there for a writer.
  assert.equal((await call(mf, child, "append", { event: { type: "app/writer" } })).type, "app/writer");
});
