// Hardening over every surface (DO RPC, the service binding, HTTP): reserved idempotency-key
// prefixes, supplied-state counters at their limit, second 60, names in a POST body.
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import { startStreams, call, tryCall, tryCallService, http, uniqueName, splitName } from "./helpers/mf.mjs";
import { S, TRIP_REASON, assertError, readAll, coreState, snapshot, assertUnchanged, breakerConfig, pollUntil } from "./helpers/assertions.mjs";

let mf;
before(async () => {
  mf = await startStreams();
});
after(async () => {
  await mf?.dispose();
});

const q = (name) => {
  const { namespace, path } = splitName(name);
  return `namespace=${namespace}&path=${encodeURIComponent(path)}`;
};

/** appendBatch of `events` on `name` over one surface, as a raw {ok, error} outcome. */
async function appendOver(surface, name, events) {
  if (surface === "do") return tryCall(mf, name, "appendBatch", { events });
  if (surface === "service") return tryCallService(mf, "appendBatch", { ...splitName(name), events });
  const res = await http(mf, "POST", `/api/streams/appendBatch?${q(name)}`, { body: { events } });
  const e = res.json?.error;
  return res.status === 200 ? { ok: true, result: res.json } : { ok: false, status: res.status, error: e && `${e.code}: ${e.message}` };
}

const reservedMessage = (prefix) => `event[1]: idempotencyKey must not start with "${prefix}": the prefix is reserved for the stream itself`;

test("a caller's idempotency key with a reserved prefix → invalid_event on every surface, nothing written", async () => {
  const keys = [
    ["stream-paused:", "stream-paused:6"],
    ["stream-paused:", "  stream-paused:x "],
    ["child-stream-created:", "child-stream-created:/:/a"],
  ];
  for (const surface of ["do", "service", "http"]) {
    const name = uniqueName();
    await call(mf, name, "append", { event: { type: "app/first" } });
    const before = await snapshot(mf, name);
    for (const [prefix, key] of keys) {
      const outcome = await appendOver(surface, name, [{ type: "app/ok" }, { type: "app/x", idempotencyKey: key }]);
      assertError(outcome, "invalid_event", reservedMessage(prefix), `${surface} ${key}`);
      if (surface === "http") assert.equal(outcome.status, 400);
    }
    // A reserved child notice type with the reserved key is refused too.
    const notice = { type: S("child-stream-created"), payload: { childPath: `${splitName(name).path}/c` }, idempotencyKey: "child-stream-created:x" };
    assertError(await appendOver(surface, name, [{ type: "app/ok" }, notice]), "invalid_event", reservedMessage("child-stream-created:"), surface);
    await assertUnchanged(mf, name, before, surface);
    // Keys that only contain the prefix elsewhere are ordinary.
    const ok = await appendOver(surface, name, [{ type: "app/ok", idempotencyKey: "my-stream-paused:1" }]);
    assert.equal(ok.ok, true, JSON.stringify(ok));
  }
});

test("a planted breaker key can no longer turn the trip into a silent idempotency hit", async () => {
  const name = uniqueName();
  await call(mf, name, "append", { event: breakerConfig(1, 1) });
  const cfg = (await readAll(mf, name)).at(-1);
  // The trip would be keyed by the first event in deficit: the 2nd widget, at cfg.offset + 2.
  const planted = await tryCall(mf, name, "append", { event: { type: "app/plant", idempotencyKey: `stream-paused:${cfg.offset + 2}` } });
  assertError(planted, "invalid_event", /^event\[0\]: idempotencyKey must not start with "stream-paused:"/);
  const widgets = await call(mf, name, "appendBatch", { events: [{ type: "app/w" }, { type: "app/w" }, { type: "app/w" }] });
  const paused = (await readAll(mf, name)).filter((e) => e.type === S("paused"));
  assert.equal(paused.length, 1, "the breaker tripped");
  assert.equal(paused[0].idempotencyKey, `stream-paused:${widgets[1].offset}`);
  assert.equal((await coreState(mf, name)).pauseReason, TRIP_REASON);
});

test("the stream's own child notices still carry their reserved keys and deduplicate", async () => {
  const ns = `h${Math.random().toString(36).slice(2, 10)}`;
  await call(mf, `${ns}:/p/c`, "runIdleTeardownNow"); // creates it (a read would create nothing)
  for (const [ancestor, key] of [["/p", "child-stream-created:/p:/p/c"], ["/", "child-stream-created:/:/p/c"]]) {
    const notices = await pollUntil(
      async () => (await readAll(mf, `${ns}:${ancestor}`)).filter((e) => e.type === S("child-stream-created") && e.payload.childPath === "/p/c"),
      (list) => list.length > 0,
      { what: `notice for /p/c on ${ancestor}` },
    );
    assert.deepEqual(notices.map((e) => e.idempotencyKey), [key]);
  }
  // A repeat of the stream-to-stream notice is an idempotency hit.
  const before = await snapshot(mf, `${ns}:/p`);
  assert.deepEqual(await tryCall(mf, `${ns}:/p`, "notifyChildStreamCreated", { childPath: "/p/c" }), { ok: true, hasResult: false });
  await assertUnchanged(mf, `${ns}:/p`, before, "repeated notice");
  // The notice takes a valid path and nothing else.
  assertError(await tryCall(mf, `${ns}:/p`, "notifyChildStreamCreated", { childPath: 5 }), "invalid_request", "childPath must be a string");
  assertError(await tryCall(mf, `${ns}:/p`, "notifyChildStreamCreated", { childPath: "/p/c", idempotencyKey: "k" }), "invalid_request", 'unknown argument "idempotencyKey"');
  assertError(await tryCall(mf, `${ns}:/p`, "notifyChildStreamCreated", { childPath: "p c" }), "invalid_path");
  await assertUnchanged(mf, `${ns}:/p`, before, "refused notices");
  // It is internal: not on the service binding, not over HTTP.
  const overService = await tryCallService(mf, "notifyChildStreamCreated", { namespace: ns, path: "/p", childPath: "/p/x" });
  assert.equal(overService.ok, false);
  const overHttp = await http(mf, "POST", `/api/streams/notifyChildStreamCreated?namespace=${ns}&path=/p`, { body: { childPath: "/p/x" } });
  assert.equal(overHttp.status, 404);
  assert.equal(overHttp.json?.error?.code, "not_found");
  await assertUnchanged(mf, `${ns}:/p`, before, "internal method from outside");
});

test("reduce with a supplied eventCount or maxOffset past MAX_SAFE_INTEGER → invalid_request, on DO RPC and HTTP", async () => {
  // The overflow itself is guarded in the core; here: no surface lets such a counter through.
  const name = uniqueName();
  const event = { type: "app/x", offset: 7, createdAt: "2026-01-05T10:00:00.000Z" };
  for (const field of ["eventCount", "maxOffset"]) {
    assertError(await tryCall(mf, name, "reduce", { event, coreProcessorState: { [field]: 2 ** 53 } }), "invalid_request", /^coreProcessorState: /);
    const max = await http(mf, "POST", `/api/streams/reduce?${q(name)}`, {
      body: `{"event":${JSON.stringify(event)},"coreProcessorState":{"${field}":18446744073709551615}}`,
      headers: { "content-type": "application/json" },
    });
    assert.equal(max.status, 400, max.text);
    assert.equal(max.json?.error?.code, "invalid_request", max.text);
    const atLimit = await call(mf, name, "reduce", { event, coreProcessorState: { [field]: Number.MAX_SAFE_INTEGER } });
    assert.equal(atLimit[field], field === "eventCount" ? 2 ** 53 : 7);
  }
});

test("a createdAt with second 60 is not a time, on any day (as Date.parse)", async () => {
  const name = uniqueName();
  for (const createdAt of ["2026-01-05T10:00:60.000Z", "2016-12-31T23:59:60Z"]) {
    assert.ok(Number.isNaN(Date.parse(createdAt)), `Date.parse refuses ${createdAt}`);
    const outcome = await tryCall(mf, name, "reduce", { event: { type: "app/x", offset: 1, createdAt }, coreProcessorState: {} });
    assertError(outcome, "invalid_event", "event[0]: createdAt must be an RFC 3339 time", createdAt);
  }
  const ok = await call(mf, name, "reduce", { event: { type: "app/x", offset: 1, createdAt: "2016-12-31T23:59:59.999Z" }, coreProcessorState: {} });
  assert.equal(ok.circuitBreaker.lastRefillAtMs, Date.parse("2016-12-31T23:59:59.999Z"));
});

test("POST takes namespace and path from the JSON body too; query and body disagreeing → invalid_request", async () => {
  const name = uniqueName();
  const { namespace, path } = splitName(name);
  const viaBody = await http(mf, "POST", "/api/streams/append", { body: { namespace, path, event: { type: "app/body" } } });
  assert.equal(viaBody.status, 200, viaBody.text);
  const viaQuery = await http(mf, "POST", `/api/streams/getEvents?namespace=${namespace}`, { body: { path } });
  assert.equal(viaQuery.status, 200, viaQuery.text);
  assert.deepEqual(viaQuery.json.map((e) => e.type), [S("created"), S("woken"), "app/body"]);
  // The same value in both places is fine; the body alone names the default namespace.
  const both = await http(mf, "POST", `/api/streams/runtimeState?${q(name)}`, { body: { namespace, path } });
  assert.equal(both.status, 200, both.text);
  assert.equal(both.json.coreProcessorState.path, path);

  const before = await snapshot(mf, name);
  const refusals = [
    [`/api/streams/append?${q(name)}`, { path: `${path}x`, event: { type: "app/no" } }, `path is "${path}" in the query but "${path}x" in the body`],
    [`/api/streams/append?${q(name)}`, { namespace: "other", event: { type: "app/no" } }, `namespace is "${namespace}" in the query but "other" in the body`],
    ["/api/streams/append", { namespace, path: 5, event: { type: "app/no" } }, "path must be a string"],
    ["/api/streams/append", { namespace: [namespace], path, event: { type: "app/no" } }, "namespace must be a string"],
  ];
  for (const [url, body, message] of refusals) {
    const res = await http(mf, "POST", url, { body });
    assert.equal(res.status, 400, res.text);
    assert.deepEqual(res.json, { error: { code: "invalid_request", message } }, url);
  }
  const noPath = await http(mf, "POST", `/api/streams/append?namespace=${namespace}`, { body: { event: { type: "app/no" } } });
  assert.deepEqual(noPath.json, { error: { code: "invalid_path", message: "path is required" } });
  await assertUnchanged(mf, name, before);
});
