// getState({atOffset}): the core state right after an offset, from the kept snapshots plus a short
// replay, equal to what runtimeState said at that offset (docs/protocol.md#getstate).
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import { startStreams, call, callService, http, uniqueName, splitName } from "./helpers/mf.mjs";
import { expectError, callAfterKill, initialState } from "./helpers/assertions.mjs";

let mf;
before(async () => {
  mf = await startStreams();
});
after(async () => {
  await mf?.dispose();
});

test("the state at an offset equals the live state when that offset was the last, across snapshots and restarts", async () => {
  const name = uniqueName();
  const recorded = new Map();
  const record = async () => {
    const state = (await call(mf, name, "runtimeState")).coreProcessorState;
    recorded.set(state.maxOffset, state);
  };
  await call(mf, name, "append", { event: { type: "app/start" } });
  await record();
  await call(mf, name, "append", { event: { type: "events.iterate.com/stream/metadata-updated", payload: { metadata: { phase: 1 } } } });
  await record();
  for (let round = 0; round < 3; round++) {
    await call(mf, name, "appendBatch", { events: Array.from({ length: 900 }, (_, i) => ({ type: "app/n", payload: { round, i } })) });
    await record();
    await call(mf, name, "append", { event: { type: "events.iterate.com/stream/metadata-updated", payload: { metadata: { phase: round + 2 } } } });
    await record();
  }
  assert.ok(Math.max(...recorded.keys()) > 2700, "past two snapshots");
  for (const [offset, state] of recorded) assert.deepEqual(await call(mf, name, "getState", { atOffset: offset }), state, `at ${offset}`);
  await call(mf, name, "kill");
  // After a restart (a woken event later), the history is still there.
  for (const [offset, state] of recorded) assert.deepEqual(await callAfterKill(mf, name, "getState", { atOffset: offset }), state, `after restart, at ${offset}`);
  assert.deepEqual(await call(mf, name, "getState", { atOffset: 0 }), initialState(), "offset 0: the empty log");
  const current = await call(mf, name, "getState", {});
  assert.deepEqual(current, (await call(mf, name, "runtimeState")).coreProcessorState);
  const { namespace, path } = splitName(name);
  const [first] = recorded.keys();
  assert.deepEqual(await callService(mf, "getState", { namespace, path, atOffset: first }), recorded.get(first));
  const res = await http(mf, "GET", `/api/streams/getState?namespace=${namespace}&path=${encodeURIComponent(path)}&atOffset=${first}`);
  assert.deepEqual([res.status, res.json], [200, recorded.get(first)]);
});

test("errors: past the last offset, a bad atOffset, unknown arguments", async () => {
  const name = uniqueName();
  await call(mf, name, "append", { event: { type: "app/x" } });
  await expectError(mf, name, "getState", { atOffset: 4 }, "not_found", "No stream event found at offset 4.");
  await expectError(mf, name, "getState", { atOffset: -1 }, "invalid_request", "atOffset must be a non-negative integer");
  await expectError(mf, name, "getState", { atOffset: "3" }, "invalid_request", "atOffset must be a non-negative integer");
  await expectError(mf, name, "getState", { offset: 3 }, "invalid_request", 'unknown argument "offset"');
  const { namespace, path } = splitName(name);
  const res = await http(mf, "GET", `/api/streams/getState?namespace=${namespace}&path=${encodeURIComponent(path)}&atOffset=x`);
  assert.deepEqual([res.status, res.json.error.message], [400, "atOffset must be a non-negative integer"]);
});
