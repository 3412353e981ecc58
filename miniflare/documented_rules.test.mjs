// Documented rules that no other test exercised (docs/protocol.md, docs/access.md): the delivered
// batch cap (100 events and 8 MiB, a bigger event alone); a failed child notice to a paused
// ancestor; rebuilds and catch-up never tripping the breaker; presence events passing the pause
// gate; `access_token` not passed on to the stream; and the order in which a request is checked.
// Every "nothing happened" is shown by a positive sentinel (a log line, a later event, a reply).
import { before, after, describe, test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { startStreams, call, tryCall, http, uniqueName, splitName, REPO_ROOT } from "./helpers/mf.mjs";
import { S, readAll } from "./helpers/assertions.mjs";
import { configureEcho, echoSubscriptionEvent, openSubscriber, uniqueEchoName, waitFor, waitForEcho, waitForLog } from "./helpers/subscribers.mjs";
import { signJwt, claims } from "./helpers/jwt.mjs";

const TRIP = "circuit breaker tripped: burst rate limit exceeded";
const MAX_DELIVERY_EVENTS = 100;
const MAX_DELIVERY_BYTES = 8 * 1024 * 1024;
const MAX_EVENT_BYTES = 8388608;
const bytes = (event) => Buffer.byteLength(JSON.stringify(event));

describe("streams with a recording subscriber and the runtime's log", () => {
  let mf;
  const logLines = [];
  before(async () => {
    mf = await startStreams({
      echoScriptPath: path.join(REPO_ROOT, "miniflare", "helpers", "recording-host.mjs"),
      miniflare: {
        handleRuntimeStdio(stdout, stderr) {
          for (const stream of [stdout, stderr]) stream.on("data", (chunk) => logLines.push(...String(chunk).split("\n")));
        },
      },
    });
  });
  after(async () => {
    await mf?.dispose();
  });

  test("delivered batches: at most 100 events and 8 MiB, cut only when the next event would not fit; an event that fills the cap goes alone", async () => {
    const name = uniqueName("cap");
    const big = (n, mib) => ({ type: "app/big", payload: { n, fill: "x".repeat(mib * 1024 * 1024) } });
    for (const input of [big(1, 3), big(2, 3), big(3, 3)]) await call(mf, name, "append", { event: input });
    // One event as large as a committed event may be: it fills a batch by itself.
    const probe = await call(mf, name, "append", { event: { type: "app/huge", payload: "" } });
    const huge = await call(mf, name, "append", { event: { type: "app/huge", payload: "x".repeat(MAX_EVENT_BYTES - bytes(probe) - 1) } });
    assert.ok(bytes(huge) > MAX_EVENT_BYTES - 16 && bytes(huge) <= MAX_EVENT_BYTES, `the huge event is ${bytes(huge)} bytes`);
    await call(mf, name, "appendBatch", { events: Array.from({ length: 250 }, (_, i) => ({ type: "app/small", payload: { i } })) });
    const replayed = await readAll(mf, name);
    const host = uniqueEchoName("cap");
    await configureEcho(mf, host, { reply: { replayAfterOffset: 0 } });
    const configured = await call(mf, name, "append", { event: echoSubscriptionEvent("cap", host) });
    const rec = await waitForEcho(mf, host, (h) => h.batches.some((b) => b.throughOffset >= configured.offset - 1), { what: "the replay", timeoutMs: 30_000 });
    const size = new Map(replayed.map((e) => [e.offset, bytes(e)]));
    // The batches that carry what was in the log before the subscription (the replay).
    const replay = rec.batches.filter((b) => b.offsets.length > 0 && b.offsets[0] < configured.offset);
    assert.deepEqual(replay.flatMap((b) => b.offsets).filter((o) => o < configured.offset), replayed.map((e) => e.offset), "every event once, in order");
    for (const [i, b] of replay.entries()) {
      if (b.offsets.some((o) => !size.has(o))) continue; // the tail batch also carries newer events
      const total = b.offsets.reduce((sum, o) => sum + size.get(o), 0);
      assert.ok(b.offsets.length <= MAX_DELIVERY_EVENTS, `batch ${i}: ${b.offsets.length} events`);
      assert.ok(total <= MAX_DELIVERY_BYTES || b.offsets.length === 1, `batch ${i}: ${total} bytes in ${b.offsets.length} events`);
      const next = replay[i + 1]?.offsets[0];
      if (next !== undefined && size.has(next)) {
        const fits = b.offsets.length + 1 <= MAX_DELIVERY_EVENTS && total + size.get(next) <= MAX_DELIVERY_BYTES;
        assert.ok(!fits, `batch ${i} was cut although event @${next} (${size.get(next)} bytes) fits beside its ${total} bytes`);
      }
    }
    const hugeBatch = replay.find((b) => b.offsets.includes(huge.offset));
    assert.deepEqual(hugeBatch.offsets, [huge.offset], "the huge event goes alone");
    assert.ok(replay.some((b) => b.offsets.length === MAX_DELIVERY_EVENTS), "a batch of small events stops at 100");
  });

  test("a failed child notice to a paused ancestor is only logged: the child is created, the ancestor keeps no childPaths entry, and a later notice after resume lands", async () => {
    const parent = uniqueName("ancestor");
    const { namespace, path: parentPath } = splitName(parent);
    await call(mf, parent, "append", { event: { type: S("paused"), payload: { reason: "closed for the test" } } });
    const child = `${namespace}:${parentPath}/kid`;
    await call(mf, child, "append", { event: { type: "app/x" } });
    // The sentinel: the notice's failure, as the docs say it is reported (docs/protocol.md#child-streams).
    await waitFor(
      () => logLines,
      (lines) => lines.some((l) => l.includes(`child-stream-created on ${parent} failed`) && l.includes("stream_paused")),
      { what: "the logged failure of the notice to the paused ancestor", timeoutMs: 30_000 },
    );
    const state = (await call(mf, parent, "runtimeState")).coreProcessorState;
    assert.deepEqual(state.childPaths, [], "the paused ancestor recorded nothing");
    assert.equal((await readAll(mf, parent)).filter((e) => e.type === S("child-stream-created")).length, 0);
    assert.deepEqual((await readAll(mf, child)).map((e) => e.type), [S("created"), S("woken"), "app/x"], "the child itself is fine");
    // Resumed, the ancestor takes the next child's notice.
    await call(mf, parent, "append", { event: { type: S("resumed"), payload: {} } });
    await call(mf, `${namespace}:${parentPath}/kid2`, "append", { event: { type: "app/x" } });
    await waitForLog(mf, parent, (log) => log.some((e) => e.type === S("child-stream-created") && e.payload.childPath === `${parentPath}/kid2`));
    assert.deepEqual((await call(mf, parent, "runtimeState")).coreProcessorState.childPaths, [`${parentPath}/kid2`]);
  });

  test("rebuilds and catch-up never trip the breaker: a boot over events in deficit appends only woken", async () => {
    // Offsets 3..1000 fill the log so a state snapshot is stored at 1000; what follows is caught up.
    for (const [label, filler] of [["rebuild", 0], ["catch-up", 998]]) {
      const name = uniqueName(label);
      if (filler) await call(mf, name, "appendBatch", { events: Array.from({ length: filler }, (_, i) => ({ type: "app/fill", payload: { i } })) });
      await call(mf, name, "append", { event: { type: S("configured"), payload: { config: { circuitBreaker: { burstCapacity: 1, refillRatePerMinute: 1 } } } } });
      const batch = await call(mf, name, "appendBatch", { events: [{ type: "app/w" }, { type: "app/w" }, { type: "app/w" }] });
      let log = await readAll(mf, name);
      const trips = log.filter((e) => e.type === S("paused"));
      assert.deepEqual(trips.map((e) => e.idempotencyKey), [`stream-paused:${batch[1].offset}`], `${label}: the live batch tripped once`);
      const resumed = await call(mf, name, "append", { event: { type: S("resumed"), payload: {} } });
      // Two boots: a kill (storage read back) and a simulated hibernation.
      await call(mf, name, "kill");
      await waitFor(() => call(mf, name, "runtimeState").catch(() => null), (r) => r !== null, { what: `${label}: the boot after kill` });
      await call(mf, name, "simulateHibernation");
      log = await readAll(mf, name);
      assert.deepEqual(log.filter((e) => e.offset > resumed.offset).map((e) => e.type), [S("woken"), S("woken")], `${label}: each boot appended only its woken`);
      const state = (await call(mf, name, "runtimeState")).coreProcessorState;
      assert.equal(state.paused, false, `${label}: still running`);
      assert.equal(state.circuitBreaker.burstCapacity, 1, `${label}: the configured breaker is replayed`);
    }
  });

  test("presence events pass the pause gate: a socket on a paused stream is recorded connected and disconnected", async () => {
    const name = uniqueName("gate");
    const paused = await call(mf, name, "append", { event: { type: S("paused"), payload: { reason: "gate" } } });
    const sub = await openSubscriber(mf, name, { subscriptionKey: "while-paused", replayAfterOffset: 0 });
    await sub.waitFor((s) => s.events().some((e) => e.type === S("subscriber-connected")), { what: "the connected event, delivered" });
    sub.send({ type: "unsubscribe" });
    const log = await waitForLog(mf, name, (l) => l.some((e) => e.type === S("subscriber-disconnected")));
    assert.deepEqual(
      log.filter((e) => e.offset > paused.offset).map((e) => [e.type, e.payload.subscriptionKey, e.payload.reason]),
      [[S("subscriber-connected"), "while-paused", undefined], [S("subscriber-disconnected"), "while-paused", "unsubscribed"]],
    );
    const state = (await call(mf, name, "runtimeState")).coreProcessorState;
    assert.equal(state.paused, true, "the stream stays paused");
    await assert.rejects(call(mf, name, "append", { event: { type: "app/x" } }), /stream_paused: stream paused: gate/);
  });

  test("error messages of the reducer's own rules: a reserved key prefix, created off offset 1, a supplied eventCount past 2^53 − 1", async () => {
    const name = uniqueName("messages");
    const refusal = async (method, arg) => (await tryCall(mf, name, method, arg)).error;
    assert.equal(
      await refusal("append", { event: { type: "app/x", idempotencyKey: "stream-paused:5" } }),
      'invalid_event: event[0]: idempotencyKey must not start with "stream-paused:": the prefix is reserved for the stream itself',
    );
    const created = { type: S("created"), payload: { namespace: "t", path: "/x" }, offset: 5, createdAt: "2026-01-05T10:00:00.000Z" };
    assert.equal(await refusal("reduce", { event: created, coreProcessorState: {} }), "invalid_event: event[0]: events.iterate.com/stream/created must be the first event and have offset 1");
    const next = { type: "app/x", offset: 6, createdAt: "2026-01-05T10:00:00.000Z" };
    assert.equal(
      await refusal("reduce", { event: next, coreProcessorState: { eventCount: 9007199254740992 } }),
      "invalid_request: coreProcessorState: eventCount must be an integer from 0 to 9007199254740991",
    );
    assert.deepEqual((await readAll(mf, name)).map((e) => e.type), [S("created"), S("woken")], "nothing was written");
  });
});

describe("scoped tokens (STREAMS_JWT_SECRET set)", () => {
  const SECRET = "documented-rules-secret";
  const NS = "rules";
  let mf;
  before(async () => {
    mf = await startStreams({ bindings: { STREAMS_JWT_SECRET: SECRET, STREAMS_OPEN_ACCESS: undefined } });
  });
  after(async () => {
    await mf?.dispose();
  });
  const token = (c) => signJwt(claims({ ns: NS, ...c }), SECRET);
  const bearer = (t) => ({ authorization: `Bearer ${t}` });
  const url = (method, ns, p) => `/api/streams/${method}?namespace=${ns}&path=${encodeURIComponent(p)}`;
  const refused = (res) => `${res.status} ${res.json?.error?.code}: ${res.json?.error?.message}`;

  test("access_token is not passed on to the stream: a token far larger than the 2048 bytes of stored socket parameters still subscribes", async () => {
    const root = `/tok-${Date.now().toString(36)}`;
    const big = token({ paths: [`${root}/**`], ops: ["read", "append"], note: "p".repeat(2400) });
    assert.ok(big.length > 3000 && big.length < 4096, `the token is ${big.length} bytes`);
    const sub = await openSubscriber(mf, `${NS}:${root}/s`, { replayAfterOffset: 0, access_token: big });
    await sub.waitFor((s) => s.events().some((e) => e.type === S("subscriber-connected")), { what: "the first batch" });
    sub.close();
    // The control: parameters that the stream does store are held to the 2048-byte limit.
    const res = await mf.dispatchFetch(`http://localhost/api/streams/subscribe?namespace=${NS}&path=${encodeURIComponent(`${root}/s`)}&eventTypes=${"t".repeat(2100)}&access_token=${big}`, { headers: { upgrade: "websocket" } });
    assert.equal(res.status, 400);
    assert.deepEqual(await res.json(), { error: { code: "invalid_request", message: "subscription parameters are too large" } });
  });

  test("the order of checks: credentials, route and verb, the token's operation, body, names, the token's namespace and path, then the call", async () => {
    const root = `/order-${Date.now().toString(36)}`;
    const readOnly = token({ paths: [`${root}/**`], ops: ["read"] });
    const writer = token({ paths: [`${root}/**`], ops: ["read", "append"] });
    const cases = [
      // A bad token on an unknown route: credentials come first.
      ["credentials before the route", "POST", "/api/streams/nope", { authorization: "Bearer not-a-jwt" }, undefined, 401, "unauthorized"],
      // A known method with the wrong verb, with a token lacking the operation: the verb first.
      ["the verb before the operation", "GET", url("append", NS, `${root}/a`), bearer(readOnly), undefined, 405, "method_not_allowed"],
      // A read-only token appending to a malformed namespace: the operation first.
      ["the operation before the names", "POST", url("append", "BAD NS", `${root}/a`), bearer(readOnly), { event: { type: "x" } }, 403, "forbidden"],
      // A bad path and a body that is not JSON: a POST's body is read first (it may carry the names).
      ["the body before the names", "POST", url("append", NS, "no-slash"), bearer(writer), "{not json", 400, "invalid_request"],
      // A malformed namespace the token does not cover either: the names first.
      ["the names before the namespace scope", "POST", url("append", "BAD NS", `${root}/a`), bearer(writer), { event: { type: "x" } }, 400, "invalid_namespace"],
      // A body that is not JSON for a path the token does not cover: the body first.
      ["the body before the path scope", "POST", url("append", NS, "/elsewhere/a"), bearer(writer), "{not json", 400, "invalid_request"],
      // A stale offset for a path the token does not cover: the scope first, and nothing is created.
      ["the path scope before the call", "POST", url("append", NS, "/elsewhere/b"), bearer(writer), { event: { type: "x", offset: 99 } }, 403, "forbidden"],
      // Another namespace: refused by the scope, not by the stream.
      ["the namespace scope before the call", "POST", url("append", "other", `${root}/a`), bearer(writer), { event: { type: "x", offset: 99 } }, 403, "forbidden"],
    ];
    for (const [label, verb, target, headers, body, status, code] of cases) {
      const res = await http(mf, verb, target, { headers, body });
      assert.equal(`${res.status} ${res.json?.error?.code}`, `${status} ${code}`, `${label}: ${refused(res)}`);
    }
    // And the call itself is reached once everything before it passes.
    const ok = await http(mf, "POST", url("append", NS, `${root}/a`), { headers: bearer(writer), body: { event: { type: "x", offset: 99 } } });
    assert.equal(`${ok.status} ${ok.json?.error?.code}`, "409 offset_mismatch", refused(ok));
  });
});
