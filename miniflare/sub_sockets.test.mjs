// Inbound sockets under untrusted callers (docs/protocol.md#inbound-subscribers,
// #websocket-frames; docs/access.md#subscription-keys): a filtered socket stores the cursor it
// scanned, a live key belongs to whoever opened it, a replay yields to other calls, a socket
// closes when its token expires, and frames carry the state only where the protocol says.
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { startStreams, call, uniqueName, splitName } from "./helpers/mf.mjs";
import { S, readAll } from "./helpers/assertions.mjs";
import { openRawSubscriber, openSubscriber, runtimeState, waitFor } from "./helpers/subscribers.mjs";
import { signJwt, claims, nowSeconds } from "./helpers/jwt.mjs";
import { createStreamsClient } from "../client/dist/index.js";

const SECRET = "sockets-test-secret";
const API_TOKEN = "sockets-test-api-token";
const NS = "sock";

let mf;
before(async () => {
  mf = await startStreams({ bindings: { STREAMS_JWT_SECRET: SECRET, STREAMS_API_TOKEN: API_TOKEN }, miniflare: { host: "127.0.0.1", port: 0 } });
});
after(() => mf?.dispose());

const name = (prefix) => `${NS}:/${prefix}-${uniqueName("s").replace(/[^A-Za-z0-9_-]/g, "")}`;
const token = (extra = {}) => signJwt(claims({ ns: NS, paths: ["/**"], ops: ["read", "append"], ...extra }), SECRET);
const bearer = (t) => ({ headers: { authorization: `Bearer ${t}` } });
const fill = async (stream, n, type = "app/x") => {
  for (let done = 0; done < n; done += 1000) {
    await call(mf, stream, "appendBatch", { events: Array.from({ length: Math.min(1000, n - done) }, () => ({ type })) });
  }
};

test("a filtered socket stores the cursor it scanned past unmatched events, in memory and across a wake", async () => {
  const stream = name("filtered");
  await fill(stream, 3000);
  const sub = await openRawSubscriber(mf, stream, { subscriptionKey: "rare", eventTypes: "app/rare", replayAfterOffset: 0 }, bearer(API_TOKEN));
  try {
    await call(mf, stream, "appendBatch", { events: [{ type: "app/x" }, { type: "app/x" }] });
    const cursorOf = async () => {
      const rs = await runtimeState(mf, stream);
      return { cursor: rs.runtime.connections.rare?.cursor, max: rs.coreProcessorState.maxOffset };
    };
    // The scan reached the tail and was stored, though nothing matched: a commit now reads only what is new.
    await waitFor(cursorOf, (c) => c.cursor === c.max, { what: "the filtered socket's stored cursor at the tail" });
    const { max } = await cursorOf();
    await call(mf, stream, "simulateHibernation");
    const woken = await cursorOf();
    assert.ok(woken.cursor >= max, `after a wake the cursor restarts from ${woken.cursor}, not from the start`);
    const rare = await call(mf, stream, "append", { event: { type: "app/rare" } });
    await sub.waitFor((s) => s.offsets().includes(rare.offset), { what: "the rare event" });
    const batches = sub.frames.filter((f) => f.type === "batch");
    assert.deepEqual(sub.offsets(), [rare.offset], "only the matching event");
    for (let i = 1; i < batches.length; i++) assert.equal(batches[i].afterOffset, batches[i - 1].throughOffset, "frames chain over the skipped events");
  } finally {
    sub.close();
  }
});

test("a live key belongs to whoever opened it: another identity gets 409 subscription_key_in_use and the socket stays", async () => {
  const stream = name("owner");
  await call(mf, stream, "append", { event: { type: "app/x" } });
  const alice = await openRawSubscriber(mf, stream, { subscriptionKey: "k" }, bearer(token({ sub: "alice" })));
  const mallory = await openRawSubscriber(mf, stream, { subscriptionKey: "k" }, bearer(token({ sub: "mallory" }))).then(
    (s) => (s.close(), assert.fail("mallory took alice's key")),
    (e) => e,
  );
  assert.equal(mallory.status, 409);
  const refused = await openSubscriber(mf, stream, { subscriptionKey: "k" }, bearer(token({ sub: "mallory" }))).catch((e) => e);
  assert.deepEqual(refused.json, { error: { code: "subscription_key_in_use", message: `subscriptionKey "k" is held by another subscriber's live socket` } });
  // Server-Sent Events open the same socket inside, with the caller's identity.
  const { namespace, path } = splitName(stream);
  const sse = await mf.dispatchFetch(`http://localhost/api/streams/subscribe?namespace=${namespace}&path=${encodeURIComponent(path)}&subscriptionKey=k`, {
    headers: { accept: "text/event-stream", authorization: `Bearer ${token({ sub: "mallory" })}` },
  });
  assert.equal(sse.status, 409, "an event stream cannot take the key either");
  assert.equal((await sse.json()).error.code, "subscription_key_in_use");
  // Without sub, a different token is another identity too.
  const nameless = await openRawSubscriber(mf, stream, { subscriptionKey: "k" }, bearer(token())).catch((e) => e);
  assert.equal(nameless.status, 409);
  const marker = await call(mf, stream, "append", { event: { type: "app/after-refusals" } });
  await alice.waitFor((s) => s.offsets().includes(marker.offset), { what: "alice still delivered to" });
  assert.equal(alice.closeEvent, null, "alice's socket is untouched");
  const log = await readAll(mf, stream);
  assert.equal(log.filter((e) => e.type === S("subscriber-disconnected")).length, 0, "no disconnect was recorded");

  // A refreshed token of the same subject takes it over, as does the API token.
  const refreshed = await openRawSubscriber(mf, stream, { subscriptionKey: "k" }, bearer(token({ sub: "alice", ttl: 600 })));
  await alice.waitFor((s) => s.closeEvent !== null, { what: "alice's old socket replaced" });
  assert.equal(alice.closeEvent.code, 4001);
  const admin = await openRawSubscriber(mf, stream, { subscriptionKey: "k" }, bearer(API_TOKEN));
  await refreshed.waitFor((s) => s.closeEvent !== null, { what: "replaced by the API token" });
  assert.equal(refreshed.closeEvent.code, 4001);
  // A key held by full access is not taken by a scoped token; the very same sub-less token may retake its own key.
  assert.equal((await openRawSubscriber(mf, stream, { subscriptionKey: "k" }, bearer(token({ sub: "alice" }))).catch((e) => e)).status, 409);
  const plain = token();
  const first = await openRawSubscriber(mf, stream, { subscriptionKey: "k2" }, bearer(plain));
  const again = await openRawSubscriber(mf, stream, { subscriptionKey: "k2" }, bearer(plain));
  await first.waitFor((s) => s.closeEvent !== null, { what: "the same token replaced its own socket" });
  for (const s of [admin, again]) s.close();
});

test("the client surfaces subscription_key_in_use as a StreamError", async () => {
  const stream = name("client-refused");
  const { path } = splitName(stream);
  const held = await openRawSubscriber(mf, stream, { subscriptionKey: "taken" }, bearer(token({ sub: "owner" })));
  const client = createStreamsClient({ baseUrl: String(await mf.ready), token: token({ sub: "intruder" }), namespace: NS, WebSocket });
  const sub = client.subscribe(path, { subscriptionKey: "taken", timing: { backoffBaseMs: 20, backoffMaxMs: 50 } });
  await assert.rejects(sub.next(), (e) => e.name === "StreamError" && e.code === "subscription_key_in_use" && e.status === 409);
  assert.equal(held.closeEvent, null);
  held.close();
});

test("a replay yields to other calls: an append during a 100,000-event replay answers before the replay ends", async () => {
  const stream = name("replay");
  await fill(stream, 100_000);
  const sub = await openRawSubscriber(mf, stream, { subscriptionKey: "replay", replayAfterOffset: 0 }, bearer(API_TOKEN));
  try {
    await sub.waitFor((s) => s.frames.length > 0, { what: "the first replay frame" });
    const appended = await call(mf, stream, "append", { event: { type: "app/during-replay" } });
    // Answered between two pages: the socket's stored cursor is still short of the log's end.
    const during = await runtimeState(mf, stream);
    const cursor = during.runtime.connections.replay.cursor;
    await sub.waitFor((s) => s.offsets().includes(appended.offset), { what: "the end of the replay", timeoutMs: 120_000 });
    assert.ok(cursor < appended.offset - 1000, `the calls were answered with the replay at ${cursor} of ${appended.offset}`);
    const offsets = sub.offsets();
    assert.equal(offsets.length, appended.offset, "every event once");
    assert.ok(offsets.every((o, i) => o === i + 1), "in order");
    assert.ok("state" in sub.frames[0] && sub.frames.slice(1).every((f) => !("state" in f)), "only the first frame carries the state");
  } finally {
    sub.close();
  }
});

test("frames after a wake carry no state; state-only sockets get it in every frame", async () => {
  const stream = name("wake-state");
  await call(mf, stream, "append", { event: { type: "app/x" } });
  const subs = [];
  for (const key of ["a", "b", "c"]) subs.push(await openRawSubscriber(mf, stream, { subscriptionKey: key }, bearer(API_TOKEN)));
  const stateOnly = await openRawSubscriber(mf, stream, { subscriptionKey: "s", events: "false" }, bearer(API_TOKEN));
  try {
    await call(mf, stream, "simulateHibernation");
    const { maxOffset } = (await runtimeState(mf, stream)).coreProcessorState;
    for (const s of [...subs, stateOnly]) await s.waitFor((x) => x.frames.some((f) => f.throughOffset >= maxOffset), { what: "caught up after the wake" });
    for (const s of subs) {
      assert.ok("state" in s.frames[0], "the first frame carries the state");
      assert.ok(s.frames.slice(1).every((f) => !("state" in f)), "later frames do not");
    }
    assert.ok(stateOnly.frames.every((f) => f.state?.maxOffset === f.streamMaxOffset), "every state-only frame carries its state");
  } finally {
    for (const s of [...subs, stateOnly]) s.close();
  }
});

test("a socket opened with a scoped token closes with 4002 token-expired when the token expires", async () => {
  const stream = name("expiry");
  await call(mf, stream, "append", { event: { type: "app/x" } });
  const sub = await openRawSubscriber(mf, stream, { subscriptionKey: "short" }, bearer(token({ sub: "alice", exp: nowSeconds() + 2 })));
  const lasting = await openRawSubscriber(mf, stream, { subscriptionKey: "long" }, bearer(token({ sub: "bob", ttl: 600 })));
  try {
    await sub.waitFor((s) => s.closeEvent !== null, { what: "the close at the token's exp", timeoutMs: 30_000 });
    assert.deepEqual(sub.closeEvent, { code: 4002, reason: "token-expired" });
    const log = await readAll(mf, stream);
    const gone = log.filter((e) => e.type === S("subscriber-disconnected"));
    assert.deepEqual(gone.map((e) => e.payload), [{ subscriptionKey: "short", reason: "token-expired" }]);
    assert.equal(lasting.closeEvent, null, "a socket whose token is valid stays");
    assert.ok(!("short" in (await runtimeState(mf, stream)).runtime.connections));
  } finally {
    sub.close();
    lasting.close();
  }
});

test("subscribe() with a token function reconnects with a fresh token after 4002 and delivers exactly once", async () => {
  const stream = name("refresh");
  const { path } = splitName(stream);
  let minted = 0;
  const client = createStreamsClient({
    baseUrl: String(await mf.ready),
    namespace: NS,
    WebSocket,
    token: async () => {
      minted += 1;
      return token({ sub: "refresher", exp: nowSeconds() + 2 });
    },
  });
  const sub = client.subscribe(path, { afterOffset: 0, subscriptionKey: "refresher", timing: { backoffBaseMs: 20, backoffMaxMs: 200 } });
  const seen = [];
  const connections = new Set();
  const consumed = (async () => {
    for await (const item of sub) {
      if (item.type !== "batch") continue;
      connections.add(item.connectionId);
      for (const e of item.events) if (e.type === "app/n") seen.push(e.payload.n);
      if (seen.length === 12) return;
    }
  })();
  const append = (n) => call(mf, stream, "append", { event: { type: "app/n", payload: { n } } });
  for (let n = 0; n < 6; n++) await append(n);
  // Sentinel instead of pacing the appends: the token (2 s) expired, the socket closed with 4002 and
  // the client asked for a fresh token to reconnect; the rest goes to the new connection.
  await waitFor(() => minted, (m) => m >= 2, { timeoutMs: 20_000, what: "a fresh token for the reconnect" });
  for (let n = 6; n < 12; n++) await append(n);
  await Promise.race([consumed, new Promise((_, reject) => setTimeout(() => reject(new Error(`only ${seen.length} events`)), 30_000))]);
  await sub.close();
  assert.deepEqual(seen, Array.from({ length: 12 }, (_, n) => n), "each event once, in order");
  assert.ok(connections.size >= 2, `the socket was closed at expiry and reopened (${connections.size} connections)`);
  assert.ok(minted >= 2, "a fresh token for the reconnect");
  const log = await readAll(mf, stream);
  assert.ok(log.some((e) => e.type === S("subscriber-disconnected") && e.payload.reason === "token-expired"));
});
