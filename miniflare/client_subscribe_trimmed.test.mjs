// subscribe() from a checkpoint that retention removed (docs/protocol.md#retention,
// docs/client.md#subscribing): the Worker refuses the replay with 410 `trimmed` before the stream
// starts, and the client ends the subscription with that StreamError (code, status and the message
// naming the first kept offset) instead of retrying. Over a `ws` WebSocket, the service binding and
// Server-Sent Events; at the first connection and at a reconnect after retention passed the
// checkpoint while the subscriber was away.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { createStreamsClient } from "../client/dist/index.js";
import { startProxiedClientStreams, viaBinding, uniquePath, ADMIN_TOKEN, API_TOKEN } from "./helpers/client_sdk.mjs";
import { S } from "./helpers/assertions.mjs";
import { sleep } from "./helpers/reliability.mjs";

const FAST = { backoffBaseMs: 50, backoffMaxMs: 200, pingIntervalMs: 1000, pongTimeoutMs: 20_000, connectTimeoutMs: 3000 };
const KEEP = 50;

let mf;
let url;
let proxy;
let writer;

before(async () => {
  ({ mf, url, proxy } = await startProxiedClientStreams());
  writer = createStreamsClient({ baseUrl: url, token: ADMIN_TOKEN, WebSocket });
});

after(async () => {
  await proxy?.close();
  await mf?.dispose();
});

/**
 * Appends `batches` × 60 events and waits until retention (keep the last 50) has caught up with
 * them: the first kept offset is past `beyond` and keeps exactly the last KEEP events. Retention
 * runs in the background after commits, so an earlier read can see it halfway.
 */
async function trimPast(p, beyond, batches = 3) {
  for (let i = 0; i < batches; i++) await writer.appendBatch(p, Array.from({ length: 60 }, (_, j) => ({ type: "app/x", payload: { i, j } })));
  for (let tries = 0; ; tries++) {
    const { coreProcessorState, runtime } = await writer.runtimeState(p);
    const { firstOffset } = runtime.storage;
    if (firstOffset > beyond && firstOffset === coreProcessorState.maxOffset - KEEP + 1) return firstOffset;
    if (tries > 2000) assert.fail(`retention did not pass offset ${beyond} (first kept offset ${firstOffset})`);
    await sleep(10);
  }
}

async function retainedStream() {
  const p = uniquePath("trim");
  await writer.append(p, { type: S("configured"), payload: { config: { retention: { maxEvents: KEEP } } } });
  return p;
}

const trimmedMessage = (needed, first) => `Offset ${needed} was removed by retention; the first kept offset is ${first}.`;

/**
 * The refusal of `needed` names the first kept offset at the moment it was refused: `first` (what
 * trimPast saw), or later if an event written since (a presence event) moved retention on. So it
 * lies between `first` and where retention stands now.
 */
async function assertTrimmedSince(p, error, needed, first) {
  const now = (await writer.runtimeState(p)).runtime.storage.firstOffset;
  const named = Number(/the first kept offset is (\d+)\.$/.exec(error.message)?.[1]);
  assert.ok(named >= first && named <= now, `first kept offset ${named} within [${first}, ${now}]: ${error.message}`);
  assert.deepEqual([error.code, error.status, error.message], ["trimmed", 410, trimmedMessage(needed, named)]);
}

for (const transport of ["websocket", "sse"]) {
  test(`${transport}: a subscription from a trimmed checkpoint fails with trimmed (410) at once; from the first kept offset it reads on`, async () => {
    const p = await retainedStream();
    const first = await trimPast(p, 1);
    const client = createStreamsClient({ baseUrl: url, token: ADMIN_TOKEN, WebSocket });
    const statuses = [];
    const sub = client.subscribe(p, { transport, afterOffset: 0, timing: FAST, onStatus: (s) => statuses.push(s.state) });
    await assert.rejects(sub.next(), (e) => {
      assert.deepEqual([e.name, e.code, e.status, e.message], ["StreamError", "trimmed", 410, trimmedMessage(1, first)]);
      return true;
    });
    assert.equal(sub.status().state, "stopped");
    assert.ok(!statuses.includes("backoff"), `not retried: ${statuses.join(",")}`);
    await assert.rejects(sub.done, (e) => e.code === "trimmed");

    const kept = client.subscribe(p, { transport, afterOffset: first - 1, timing: FAST });
    const { value } = await kept.next();
    assert.equal(value.afterOffset, first - 1);
    assert.equal(value.events[0].offset, first, "starts at the first kept offset");
    await kept.close();
  });

  test(`${transport}: retention passing the checkpoint while the subscriber is away ends the subscription with trimmed at the reconnect`, async () => {
    const p = await retainedStream();
    await writer.appendBatch(p, [{ type: "app/x" }, { type: "app/x" }]);
    const client = createStreamsClient({ baseUrl: proxy.url, token: ADMIN_TOKEN, WebSocket });
    const sub = client.subscribe(p, { transport, afterOffset: 0, timing: FAST });
    const { value } = await sub.next();
    const checkpoint = sub.checkpoint;
    assert.equal(checkpoint, value.throughOffset);
    proxy.refuse(true);
    proxy.cut();
    const first = await trimPast(p, checkpoint + 1);
    proxy.refuse(false);
    const refusal = await sub.next().then(
      () => assert.fail("the subscription went on past a trimmed checkpoint"),
      (e) => e,
    );
    await assertTrimmedSince(p, refusal, checkpoint + 1, first);
    assert.equal(sub.status().state, "stopped");
    assert.equal(sub.checkpoint, checkpoint, "the checkpoint stays where the consumer was");
  });
}

test("binding: a subscription from a trimmed checkpoint fails with trimmed", async () => {
  const p = await retainedStream();
  const first = await trimPast(p, 1);
  for (const transport of ["websocket", "sse"]) {
    const r = await viaBinding(mf).subscribe({ path: p, token: API_TOKEN, options: { transport, afterOffset: 0 }, untilEvents: 1 });
    assert.deepEqual(
      [r.ok, r.error?.isStreamError, r.error?.code, r.error?.status, r.error?.message],
      [false, true, "trimmed", 410, trimmedMessage(1, first)],
      `${transport}: ${JSON.stringify(r)}`,
    );
  }
});
