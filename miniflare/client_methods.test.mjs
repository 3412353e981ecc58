// @streams/client against the real Worker: every method and every reachable error code, over
// both transports (HTTP from Node, and a service binding from inside a Worker). The same call
// must give the same result shape and the same StreamError code and message either way.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startClientStreams, viaBinding, viaHttp, uniquePath, API_TOKEN } from "./helpers/client_sdk.mjs";
import { S } from "./helpers/assertions.mjs";

let mf;
let url;
let transports;

before(async () => {
  ({ mf, url } = await startClientStreams());
  transports = [viaHttp(url), viaBinding(mf)];
});
after(() => mf?.dispose());

/** Repeats `call` while it fails, for up to 20 s: right after kill/reset the old incarnation
 * may still answer `internal: … shutting down; retry` until its abort lands. */
async function afterShutdown(call) {
  let outcome;
  for (const deadline = Date.now() + 20_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 20))) {
    outcome = await call();
    if (outcome.ok) break;
  }
  return outcome;
}

const ok = (o, note) => {
  assert.equal(o.ok, true, `${note}: ${JSON.stringify(o.error)}`);
  return o.result;
};

test("every method, over both transports", async () => {
  for (const t of transports) {
    const p = uniquePath(`m-${t.name}-`);
    const first = ok(await t.call("append", p, { type: "app/a", payload: { n: 1 }, idempotencyKey: "k-1" }), `${t.name} append`);
    assert.deepEqual(Object.keys(first), ["type", "payload", "idempotencyKey", "offset", "createdAt"]);
    const o = first.offset;
    assert.ok(o > 1, `${t.name}: offset 1 is S/created`);
    const batch = ok(await t.call("appendBatch", p, [{ type: "app/b" }, { type: "app/c", idempotencyKey: "k-3" }]), `${t.name} appendBatch`);
    assert.deepEqual(batch.map((e) => [e.type, e.offset]), [["app/b", o + 1], ["app/c", o + 2]]);
    const child = ok(await t.call("append", p, { type: "app/child" }, { streamPath: "kid" }), `${t.name} append streamPath`);
    assert.equal(child.type, "app/child");
    const childEvents = ok(await t.call("getEvents", `${p}/kid`, { afterOffset: 0, limit: 10 }), `${t.name} child getEvents`);
    assert.deepEqual(childEvents.map((e) => e.type).slice(-1), ["app/child"], `${t.name}: streamPath lands on the child`);
    const childBatch = ok(await t.call("appendBatch", p, [{ type: "app/child2" }], { streamPath: "kid" }), `${t.name} appendBatch streamPath`);
    assert.equal(childBatch[0].offset, child.offset + 1);

    assert.deepEqual(ok(await t.call("getEvent", p, { offset: o + 1 })), batch[0]);
    assert.deepEqual(ok(await t.call("getEvent", p, { idempotencyKey: "k-3" })), batch[1]);
    const missing = await t.call("getEvent", p, { idempotencyKey: "nope" });
    assert.deepEqual([missing.ok, missing.undefinedResult], [true, true], `${t.name}: a missing key is undefined`);

    const range = ok(await t.call("getEvents", p, { afterOffset: o - 1, beforeOffset: o + 2, limit: 10 }));
    assert.deepEqual(range.map((e) => e.offset), [o, o + 1]);
    const state = ok(await t.call("runtimeState", p));
    assert.equal(state.coreProcessorState.path, p);
    assert.equal(state.coreProcessorState.namespace, "default");
    assert.ok(state.coreProcessorState.maxOffset >= 5);
    assert.deepEqual(Object.keys(state.runtime).sort(), ["connections", "idleTeardownAt", "redial", "storage"]);

    const reduced = ok(await t.call("reduce", p, { type: "app/x", offset: 99, createdAt: "2026-01-01T00:00:00.000Z" }));
    assert.deepEqual([reduced.maxOffset, reduced.eventCount], [99, state.coreProcessorState.eventCount + 1]);
    const fromGiven = ok(await t.call("reduce", p, { type: "app/x", offset: 7, createdAt: "2026-01-01T00:00:00.000Z" }, { coreProcessorState: { ...state.coreProcessorState, eventCount: 40 } }));
    assert.equal(fromGiven.eventCount, 41, `${t.name}: reduce from the given state`);

    const killed = await t.call("kill", p);
    assert.deepEqual([killed.ok, killed.undefinedResult], [true, true], `${t.name} kill: ${JSON.stringify(killed.error)}`);
    // A killed stream comes back on the next call.
    const again = await afterShutdown(() => t.call("getEvents", p, { afterOffset: 0, limit: 5 }));
    assert.deepEqual(ok(again, `${t.name} after kill`).map((e) => e.offset), [1, 2, 3, 4, 5], `${t.name}: the log survives kill`);

    const reset = await t.call("reset", p);
    assert.deepEqual([reset.ok, reset.undefinedResult], [true, true], `${t.name} reset: ${JSON.stringify(reset.error)}`);
    const fresh = await afterShutdown(() => t.call("getEvents", p, { afterOffset: 0, limit: 100 }));
    assert.deepEqual(ok(fresh, `${t.name} after reset`).map((e) => e.type).filter((x) => x.startsWith("app/")), [], `${t.name}: reset emptied the log`);
  }
});

test("events(): pages through history in order, from afterOffset, up to beforeOffset", async () => {
  for (const t of transports) {
    const p = uniquePath(`ev-${t.name}-`);
    const inputs = Array.from({ length: 250 }, (_, i) => ({ type: "app/e", payload: { i } }));
    ok(await t.call("appendBatch", p, inputs));
    const all = ok(await t.events(p, { pageSize: 100 }));
    assert.deepEqual(all.map((e) => e.offset), Array.from({ length: all.length }, (_, i) => i + 1), `${t.name}: 1..n`);
    assert.deepEqual(all.filter((e) => e.type === "app/e").map((e) => e.payload.i), inputs.map((_, i) => i));
    const tail = ok(await t.events(p, { afterOffset: 240, pageSize: 3 }));
    assert.deepEqual(tail.map((e) => e.offset), Array.from({ length: all.length - 240 }, (_, i) => 241 + i));
    const middle = ok(await t.events(p, { afterOffset: 10, beforeOffset: 15, pageSize: 2 }));
    assert.deepEqual(middle.map((e) => e.offset), [11, 12, 13, 14]);
    const none = ok(await t.events(uniquePath("empty"), { afterOffset: 5 }));
    assert.deepEqual(none, []);
  }
});

/** [code, HTTP status, run(t, path), message matcher]: each must fail the same way on both transports. */
const ERROR_CASES = [
  ["invalid_request", 400, (t, p) => t.call("getEvents", p, { limit: 0 }), /^getEvents limit must be a positive integer\.$/],
  ["invalid_request", 400, (t, p) => t.call("getEvent", p, {}), /^getEvent requires exactly one of offset or idempotencyKey\.$/],
  ["invalid_event", 400, (t, p) => t.call("append", p, { type: "app/x", foo: 1 }), /^event\[0\]: unknown key "foo"$/],
  ["invalid_event", 400, (t, p) => t.call("append", p, { type: S("created"), payload: {} }), /reserved|created must be the first event/],
  ["invalid_path", 400, (t) => t.call("append", "", { type: "app/x" }), /^path is required$/],
  ["invalid_path", 400, (t, p) => t.call("append", p, { type: "app/x" }, { streamPath: "../../.." }), /escapes the stream root/],
  ["invalid_namespace", 400, (t, p) => t.call("append", { namespace: "Bad NS", path: p }, { type: "app/x" }), /^invalid namespace "Bad NS"/],
  ["offset_mismatch", 409, (t, p) => t.call("append", p, { type: "app/x", offset: 99 }), /^expected offset \d+, got 99$/],
  [
    "idempotency_conflict",
    409,
    async (t, p) => {
      ok(await t.call("append", p, { type: "app/x", idempotencyKey: "dup" }));
      return t.call("append", p, { type: "app/x", idempotencyKey: "dup", offset: 1 });
    },
    /^idempotency hit at offset \d+, got 1$/,
  ],
  [
    "stream_paused",
    423,
    async (t, p) => {
      ok(await t.call("append", p, { type: S("paused"), payload: { reason: "maintenance" } }));
      return t.call("append", p, { type: "app/x" });
    },
    /^stream paused: maintenance$/,
  ],
  ["event_too_large", 413, (t, p) => t.call("append", p, { type: "app/big", payload: "x".repeat(8 * 1024 * 1024) }), /^event\[0\] is \d+ bytes; the limit is 8388608$/],
  ["batch_too_large", 413, (t, p) => t.call("appendBatch", p, Array.from({ length: 1001 }, () => ({ type: "app/x" }))), /^batch has 1001 events; the limit is 1000$/],
  ["not_found", 404, (t, p) => t.call("getEvent", p, { offset: 99 }), /^No stream event found at offset 99\.$/],
  [
    "subscriber_not_allowed",
    403,
    (t, p) =>
      t.call("append", p, {
        type: S("subscription-configured"),
        payload: {
          subscriptionKey: "s1",
          subscriber: { type: "callable", callable: { type: "workers-rpc", via: { type: "env-binding", bindingType: "durable-object-namespace", bindingName: "NOT_ALLOWED", durableObject: { name: "x" } } } },
        },
      }),
    /^binding "NOT_ALLOWED" is not allowed/,
  ],
];

test("error codes: the same StreamError code and message over HTTP and the binding; status over HTTP", async () => {
  for (const [code, status, run, message] of ERROR_CASES) {
    const seen = [];
    for (const t of transports) {
      const p = uniquePath(`err-${code}-`);
      const o = await run(t, p);
      assert.equal(o.ok, false, `${code} via ${t.name}: expected a rejection, got ${JSON.stringify(o).slice(0, 200)}`);
      assert.equal(o.error.isStreamError, true, `${code} via ${t.name}: a StreamError`);
      assert.equal(o.error.name, "StreamError");
      assert.equal(o.error.code, code, `${code} via ${t.name}: ${o.error.message}`);
      assert.match(o.error.message, message, `${code} via ${t.name}`);
      assert.equal(o.error.status, t.name === "http" ? status : null, `${code} via ${t.name}: status`);
      seen.push(o.error.message.replaceAll(p, "<path>"));
    }
    assert.equal(seen[0], seen[1], `${code}: same message on both transports`);
  }
});

test("HTTP tokens: a wrong token is 401 unauthorized, the API token cannot kill (403), and the network failure is `network`", async () => {
  const p = uniquePath("tok");
  const wrong = await viaHttp(url, { token: "wrong" }).call("append", p, { type: "app/x" });
  assert.deepEqual([wrong.error.code, wrong.error.status, wrong.error.message], ["unauthorized", 401, "missing or invalid bearer token"]);
  const none = await viaHttp(url, { token: "" }).call("runtimeState", p);
  assert.deepEqual([none.error.code, none.error.status], ["unauthorized", 401]);
  const api = viaHttp(url, { token: API_TOKEN });
  ok(await api.call("append", p, { type: "app/x" }), "the API token may append");
  const kill = await api.call("kill", p);
  assert.deepEqual([kill.error.code, kill.error.status, kill.error.message], ["unauthorized", 403, "admin token required"]);
  const reset = await api.call("reset", p);
  assert.deepEqual([reset.error.code, reset.error.status], ["unauthorized", 403]);
  // Nothing listens on port 9 of loopback: the client reports `network`, not a crash.
  const down = await viaHttp("http://127.0.0.1:9").call("append", p, { type: "app/x" });
  assert.equal(down.error.code, "network");
  assert.equal(down.error.status, null);
  assert.match(down.error.message, /^append 127\.0\.0\.1:9: /);
});

test("namespace: the client's default namespace, and a per-call {namespace, path}", async () => {
  for (const t of [viaHttp(url, { namespace: "tenant-a" }), viaBinding(mf, { namespace: "tenant-a" })]) {
    const p = uniquePath(`ns-${t.name}-`);
    ok(await t.call("append", p, { type: "app/x" }));
    assert.equal(ok(await t.call("runtimeState", p)).coreProcessorState.namespace, "tenant-a");
    ok(await t.call("append", { namespace: "tenant-b", path: p }, { type: "app/y" }));
    assert.equal(ok(await t.call("runtimeState", { namespace: "tenant-b", path: p })).coreProcessorState.namespace, "tenant-b");
    assert.equal(ok(await t.call("runtimeState", { path: p })).coreProcessorState.namespace, "tenant-a", "{path} alone keeps the client's namespace");
  }
});
