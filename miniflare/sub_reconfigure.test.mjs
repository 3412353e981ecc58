// Outbound subscriptions under untrusted configuration (docs/protocol.md#outbound-subscribers):
// a new S/subscription-configured for a live key takes effect at once (the old connection closes
// as `reconfigured`, the new target is dialed, nothing reaches the old target after the new
// configuration), and shallowMerge cannot replace what the stream itself sends.
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import { call, http, splitName, startStreams, tryCall, uniqueName } from "./helpers/mf.mjs";
import { S, assertError, snapshot, assertUnchanged } from "./helpers/assertions.mjs";
import { echoInput, echoSubscriber, echoSubscriptionEvent, facts, inspectEcho, uniqueEchoName, waitForEcho, waitForLog } from "./helpers/subscribers.mjs";

let mf;
before(async () => {
  mf = await startStreams();
});
after(() => mf?.dispose());

// The keys the stream sets in the dial and delivery arguments (docs/protocol.md#outbound-subscribers).
const STREAM_KEYS = ["namespace", "path", "subscriptionKey", "connectionId", "streamId", "streamMaxOffset", "firstOffset", "subscriptionConfiguredEvent", "streamRuntimeState", "afterOffset", "throughOffset", "events", "state"];

test("reconfiguring a live subscription closes the old connection as `reconfigured`, dials the new target, and the old target gets nothing after the new configuration", async () => {
  const name = uniqueName("reconf");
  const [oldEcho, newEcho] = [uniqueEchoName("old"), uniqueEchoName("new")];
  const first = await call(mf, name, "append", { event: echoSubscriptionEvent("k", oldEcho) });
  await waitForLog(mf, name, (log) => facts(log, "subscriber-connected", { subscriptionKey: "k" }).some((e) => e.offset > first.offset), { what: "k connected to the old target" });
  const before = await call(mf, name, "append", { event: echoInput({ n: 1 }) });
  await waitForEcho(mf, oldEcho, (e) => e.received?.includes(before.offset), { what: "the old target got the first input" });

  // The new configuration and an input in one commit: the input must go to the new target only.
  const [reconfigured, during] = await call(mf, name, "appendBatch", { events: [echoSubscriptionEvent("k", newEcho), echoInput({ n: 2 })] });
  const after = await call(mf, name, "append", { event: echoInput({ n: 3 }) });
  const log = await waitForLog(
    mf,
    name,
    (l) => facts(l, "subscriber-connected", { subscriptionKey: "k" }).some((e) => e.offset > reconfigured.offset),
    { what: "k connected to the new target" },
  );
  const gone = facts(log, "subscriber-disconnected", { subscriptionKey: "k" }).filter((e) => e.offset > reconfigured.offset);
  assert.deepEqual(gone.map((e) => e.payload.reason), ["reconfigured"], "the old connection closed once, as reconfigured");
  const newEchoSeen = await waitForEcho(mf, newEcho, (e) => e.received?.includes(during.offset) && e.received?.includes(after.offset), {
    what: "the new target got the inputs after the reconfiguration",
  });
  assert.ok(newEchoSeen.dials.length >= 1);
  const oldEchoSeen = await inspectEcho(mf, oldEcho);
  assert.ok(oldEchoSeen.received.every((offset) => offset < reconfigured.offset), `the old target got ${oldEchoSeen.received} after ${reconfigured.offset}`);
  assert.equal(oldEchoSeen.dials.length, 1, "the old target is not dialed again");
});

test("shallowMerge cannot replace what the stream sends: each such key is refused 400 invalid_event naming it", async () => {
  const name = uniqueName("merge");
  await call(mf, name, "append", { event: { type: "app/x" } });
  const before = await snapshot(mf, name);
  for (const key of STREAM_KEYS) {
    const event = { type: S("subscription-configured"), payload: { subscriptionKey: "k", subscriber: echoSubscriber(uniqueEchoName(), { transformInput: { shallowMerge: { processorName: "p", [key]: 9e15 } } }) } };
    const message = `event[0]: payload.subscriber.callable.transformInput.shallowMerge.${key} is set by the stream and cannot be replaced`;
    assertError(await tryCall(mf, name, "append", { event }), "invalid_event", message, key);
  }
  // Over HTTP, inside a batch: the whole batch is refused.
  const { namespace, path } = splitName(name);
  const hijack = { type: S("subscription-configured"), payload: { subscriptionKey: "k", subscriber: echoSubscriber(uniqueEchoName(), { transformInput: { shallowMerge: { path: "/victim" } } }) } };
  const res = await http(mf, "POST", `/api/streams/appendBatch?namespace=${namespace}&path=${encodeURIComponent(path)}`, { body: { events: [{ type: "app/ok" }, hijack] } });
  assert.equal(res.status, 400, res.text);
  assert.deepEqual(res.json, { error: { code: "invalid_event", message: "event[1]: payload.subscriber.callable.transformInput.shallowMerge.path is set by the stream and cannot be replaced" } });
  await assertUnchanged(mf, name, before, "refused configurations write nothing");
  // Keys of its own still pass.
  const own = { type: S("subscription-configured"), payload: { subscriptionKey: "k", subscriber: echoSubscriber(uniqueEchoName(), { transformInput: { shallowMerge: { processorName: "echo-example", tenant: "t1" } } }) } };
  assert.equal((await call(mf, name, "append", { event: own })).type, S("subscription-configured"));
});
