// The documented edges of a processor (docs/processors.md) on the `edge` processor of the fixture
// (miniflare/helpers/processor-fixture.mjs, EdgeProcessors): a maxConsecutiveFailures other than 3,
// a reduce that returns something that is not JSON, the 2 MB state cap, and append() inside onEvent
// refusing a caller's idempotencyKey or offset.
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import { uniqueName, splitName } from "./helpers/mf.mjs";
import { S, readAll } from "./helpers/assertions.mjs";
import { startWithProcessors, tryHost, uniqueHostName } from "./helpers/processors.mjs";

let mf;
before(async () => {
  mf = await startWithProcessors();
});
after(async () => {
  await mf?.dispose();
});

const edgeEvent = (offset, payload = {}) => ({ type: "app/edge", payload, offset, createdAt: "2026-01-01T00:00:00.000Z" });

/** A fresh EdgeProcessors host and stream, dialled once as connection A. */
async function setup() {
  const host = uniqueHostName("edge");
  const name = uniqueName("edge");
  const target = splitName(name);
  const on = (method, arg) => tryHost(mf, host, method, arg, { edge: true });
  const dial = await on("requestStreamSubscription", { ...target, subscriptionKey: "k", connectionId: "A", processorName: "edge" });
  assert.equal(dial.ok, true, dial.error);
  return {
    name,
    batch: (afterOffset, throughOffset, events) => on("processEventBatch", { ...target, subscriptionKey: "k", connectionId: "A", processorName: "edge", afterOffset, throughOffset, events }),
    status: async () => (await on("processorStatus", { ...target, slug: "edge" })).result,
  };
}

function assertFailed(outcome, pattern, note) {
  assert.equal(outcome.ok, false, `${note}: should fail`);
  assert.match(outcome.error, pattern, note);
}

test("maxConsecutiveFailures 2: a reduce returning a non-JSON value fails twice, then the processor halts and reports it once", async () => {
  const p = await setup();
  const events = [edgeEvent(3, { nonJson: true })];
  assertFailed(await p.batch(0, 3, events), /^processor_failed: .*reduce of "edge" returned a value that is not JSON/, "attempt 1");
  let st = await p.status();
  assert.deepEqual([st.halted, st.failures, st.checkpoint], [false, 1, 0], "one failure counts, nothing committed");
  assertFailed(await p.batch(0, 3, events), /^processor_failed: /, "attempt 2");
  st = await p.status();
  assert.deepEqual([st.halted, st.failures, st.checkpoint], [true, 2, 0], "halted after 2 failures, not 3");
  assertFailed(await p.batch(0, 3, events), /^processor_halted: processor "edge" .* after 2 failures/, "halted");
  const errors = (await readAll(mf, p.name)).filter((e) => e.type === S("error-occurred"));
  assert.deepEqual(errors.map((e) => e.idempotencyKey), ["processor-ingest-failed:edge:k:0"]);
  assert.match(errors[0].payload.message, /halted after 2 failed attempts at offset 3/);
});

test("the state cap: a state whose JSON is over 2 MB is not committed (processor_failed); one at the limit is", async () => {
  const p = await setup();
  assertFailed(await p.batch(0, 3, [edgeEvent(3, { stateBytes: 2_000_001 })]), /^processor_failed: .*reduce of "edge" returned a state of 2000022 bytes of JSON; the limit is 2000000/, "a state just over 2 MB");
  let st = await p.status();
  assert.deepEqual([st.checkpoint, st.state, st.failures], [0, { count: 0 }, 1], "nothing of the batch committed");
  const ok = await p.batch(0, 3, [edgeEvent(3, { stateBytes: 1_999_979 })]);
  assert.deepEqual(ok.result, { outcome: "committed", checkpoint: 3 }, ok.error);
  st = await p.status();
  assert.equal(st.state.blob.length, 1_999_979);
  assert.equal(st.failures, 0, "a success resets the count");
});

for (const [what, appendWith] of [["an idempotencyKey", { idempotencyKey: "mine" }], ["an offset", { offset: 4 }]]) {
  test(`append() inside onEvent refuses ${what} from the caller: the batch fails and nothing is appended`, async () => {
    const p = await setup();
    const outcome = await p.batch(0, 3, [edgeEvent(3, { appendWith })]);
    assertFailed(outcome, /^processor_failed: .*append inside onEvent sets idempotencyKey itself \(edge:<subscription key>:<input offset>:<n>\) and takes no offset/, what);
    const st = await p.status();
    assert.deepEqual([st.checkpoint, st.failures], [0, 1]);
    assert.deepEqual((await readAll(mf, p.name)).filter((e) => e.type === "app/edge-out"), [], "nothing appended");
  });
}
