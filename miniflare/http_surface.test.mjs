// The public HTTP surface (Worker fetch): routes, verbs, names, bodies, tokens and the error shape
// (docs/protocol.md#naming-and-paths, #errors, #http-routes).
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import nodeHttp from "node:http";
import { startStreams, call, tryCall, uniqueName, splitName, http, doHasFiles, startPersistedStreams, stopPersistedStreams } from "./helpers/mf.mjs";
import { S, readAll, snapshot, assertUnchanged, tryCallAfterKill, breakerConfig, assertCreatedPayload } from "./helpers/assertions.mjs";
import { subscribeRaw, openSubscriber, waitFor } from "./helpers/subscribers.mjs";

let mf;
let persistDir;

before(async () => {
  // Persisted to a temp dir so "no DO was created" can be checked on disk.
  ({ mf, persistDir } = await startPersistedStreams("streams-http-"));
});

after(() => stopPersistedStreams(mf, persistDir));

const MiB = 1024 * 1024;
const freshNamespace = () => `h${Math.random().toString(36).slice(2, 10)}`;
const q = (name) => {
  const { namespace, path: p } = splitName(name);
  return `namespace=${encodeURIComponent(namespace)}&path=${encodeURIComponent(p)}`;
};


/** Asserts an HTTP error: status, `{"error":{code,message}}` exactly, JSON content type, no CORS. */
function assertHttpError(res, status, code, message, note) {
  const where = `${note ? `${note}: ` : ""}HTTP ${res.status} ${res.text.slice(0, 300)}`;
  assert.equal(res.status, status, where);
  assert.ok(res.json && typeof res.json === "object", `${where}: JSON body`);
  assert.deepEqual(Object.keys(res.json), ["error"], where);
  assert.deepEqual(Object.keys(res.json.error), ["code", "message"], where);
  assert.equal(res.json.error.code, code, where);
  assert.equal(typeof res.json.error.message, "string", where);
  if (typeof message === "string") assert.equal(res.json.error.message, message, where);
  else if (message instanceof RegExp) assert.match(res.json.error.message, message, where);
  assert.match(res.headers.get("content-type") ?? "", /application\/json/, `${where}: content type`);
  for (const [h] of res.headers) assert.ok(!h.toLowerCase().startsWith("access-control-"), `${where}: no CORS header ${h}`);
}

// ---- names (docs/protocol.md#naming-and-paths) ----

test("namespace=Bad → 400 invalid_namespace; path=/a/ → 400 invalid_path; no path → path is required", async () => {
  const nsMsg = 'invalid namespace "Bad": must match ^[a-z0-9][a-z0-9_-]{0,62}$';
  for (const [verb, route, body] of [
    ["GET", "getEvents", undefined],
    ["POST", "getEvents", {}],
    ["POST", "append", { event: { type: "app/x" } }],
    ["GET", "runtimeState", undefined],
  ]) {
    assertHttpError(await http(mf, verb, `/api/streams/${route}?namespace=Bad&path=/a`, { body }), 400, "invalid_namespace", nsMsg, `${verb} ${route}`);
    assertHttpError(await http(mf, verb, `/api/streams/${route}?namespace=t&path=/a/`, { body }), 400, "invalid_path", /^invalid path "\/a\/": ./, `${verb} ${route}`);
    assertHttpError(await http(mf, verb, `/api/streams/${route}?namespace=t`, { body }), 400, "invalid_path", "path is required", `${verb} ${route}`);
    assertHttpError(await http(mf, verb, `/api/streams/${route}?namespace=t&path=`, { body }), 400, "invalid_path", "path is required", `${verb} ${route} (empty)`);
    // Both bad: the namespace is checked first.
    assertHttpError(await http(mf, verb, `/api/streams/${route}?namespace=Bad&path=/a/`, { body }), 400, "invalid_namespace", nsMsg, `${verb} ${route} (both)`);
  }
  // The subscribe route checks names too.
  const sub = await subscribeRaw(mf, "Bad:/a");
  assert.equal(sub.status, 400);
  assert.deepEqual(sub.json, { error: { code: "invalid_namespace", message: nsMsg } });
  const sub2 = await subscribeRaw(mf, "t:/a/");
  assert.equal(sub2.status, 400);
  assert.equal(sub2.json.error.code, "invalid_path");
  assert.equal(await doHasFiles(mf, persistDir, "Bad:/a"), false);
  assert.equal(await doHasFiles(mf, persistDir, "t:/a/"), false);
});

test("the namespace defaults to `default`", async () => {
  const p = `/d${Math.random().toString(36).slice(2, 10)}`;
  const res = await http(mf, "POST", `/api/streams/append?path=${p}`, { body: { event: { type: "app/x" } } });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.offset, 3);
  const events = await call(mf, `default:${p}`, "getEvents", {});
  assertCreatedPayload(events[0].payload, { namespace: "default", path: p });
  assert.deepEqual(events[2], res.json);
});

test("path/namespace injection (%2F, .., :, 2000-byte values, bad escapes) is refused with 400 before any DO is created", async () => {
  const ns = freshNamespace();
  const u = `u${Math.random().toString(36).slice(2, 10)}`;
  // [raw query string, expected code, DO names that must not exist]
  const cases = [
    [`namespace=${ns}&path=%2F${u}%2F..`, "invalid_path", [`${ns}:/${u}/..`, `${ns}:/${u}`, `${ns}:/`]],
    [`namespace=${ns}&path=/${u}/../v`, "invalid_path", [`${ns}:/${u}/../v`, `${ns}:/v`]],
    [`namespace=${ns}&path=/${u}/./x`, "invalid_path", [`${ns}:/${u}/./x`, `${ns}:/${u}/x`]],
    [`namespace=${ns}&path=/${u}%2F%2Fx`, "invalid_path", [`${ns}:/${u}//x`, `${ns}:/${u}/x`]],
    [`namespace=${ns}&path=/${u}/`, "invalid_path", [`${ns}:/${u}/`]],
    [`namespace=${ns}&path=${u}`, "invalid_path", [`${ns}:${u}`, `${ns}:/${u}`]],
    [`namespace=${ns}&path=..%2F${u}`, "invalid_path", [`${ns}:../${u}`]],
    [`namespace=${ns}&path=%2E%2E`, "invalid_path", [`${ns}:..`]],
    [`namespace=${ns}&path=/${u}:x`, "invalid_path", [`${ns}:/${u}:x`]],
    [`namespace=${ns}&path=/${u}%3Ax`, "invalid_path", [`${ns}:/${u}:x`]],
    [`namespace=${ns}&path=/${u}%3A%2Fx`, "invalid_path", [`${ns}:/${u}:/x`]],
    [`namespace=${ns}%3A%2F${u}&path=/x`, "invalid_namespace", [`${ns}:/${u}:/x`]],
    [`namespace=${ns}:/${u}&path=/x`, "invalid_namespace", [`${ns}:/${u}:/x`]],
    [`namespace=${ns}%2F..&path=/${u}`, "invalid_namespace", [`${ns}/..:/${u}`]],
    [`namespace=${ns.toUpperCase()}&path=/${u}`, "invalid_namespace", [`${ns.toUpperCase()}:/${u}`]],
    [`namespace=&path=/${u}`, "invalid_namespace", [`:/${u}`]],
    [`namespace=${ns}&path=/${"a".repeat(1999)}`, "invalid_path", [`${ns}:/${"a".repeat(1999)}`]],
    [`namespace=${"a".repeat(2000)}&path=/${u}`, "invalid_namespace", [`${"a".repeat(2000)}:/${u}`]],
    [`namespace=${ns}&path=/${u}%FF`, "invalid_path", [`${ns}:/${u}\uFFFD`]],
    [`namespace=${ns}&path=/${u}%`, "invalid_path", [`${ns}:/${u}%`]],
    [`namespace=${ns}&path=/${u}%zz`, "invalid_path", [`${ns}:/${u}%zz`]],
    [`namespace=${ns}&path=/${u}%00`, "invalid_path", [`${ns}:/${u}\u0000`]],
    [`namespace=${ns}&path=/${u}%C3%A9`, "invalid_path", [`${ns}:/${u}é`]],
    [`namespace=${ns}&path=/${u}%20x`, "invalid_path", [`${ns}:/${u} x`]],
    [`namespace=${ns}&path=/${u}+x`, "invalid_path", [`${ns}:/${u} x`]],
    [`namespace=${ns}%FF&path=/${u}`, "invalid_namespace", [`${ns}\uFFFD:/${u}`]],
  ];
  for (const [query, code, names] of cases) {
    for (const [verb, route, body] of [
      ["GET", "getEvents", undefined],
      ["POST", "append", { event: { type: "app/injected" } }],
      ["POST", "appendBatch", { events: [{ type: "app/injected" }] }],
    ]) {
      const res = await http(mf, verb, `/api/streams/${route}?${query}`, { body });
      assertHttpError(res, 400, code, undefined, `${verb} ${route}?${query.slice(0, 80)}`);
    }
    const res = await mf.dispatchFetch(`http://localhost/api/streams/subscribe?${query}&subscriptionKey=k`, { headers: { upgrade: "websocket" } });
    const text = await res.text();
    assert.equal(res.status, 400, `subscribe?${query.slice(0, 80)}: ${text.slice(0, 200)}`);
    assert.equal(JSON.parse(text).error.code, code);
    for (const n of names) assert.equal(await doHasFiles(mf, persistDir, n), false, `no DO for ${JSON.stringify(n.slice(0, 80))} (${query.slice(0, 80)})`);
  }
  // Control: a valid stream in the same namespace is created on disk, and notifies its root.
  const control = `${ns}:/control`;
  await call(mf, control, "runIdleTeardownNow"); // a call that creates it (a read would not)
  assert.equal(await doHasFiles(mf, persistDir, control), true, "control: a touched stream has files");
  const root = await waitFor(
    () => readAll(mf, `${ns}:/`),
    (events) => events.some((e) => e.type === S("child-stream-created") && e.payload.childPath === "/control"),
    { what: "control notification on the root" },
  );
  const children = root.filter((e) => e.type === S("child-stream-created")).map((e) => e.payload.childPath);
  assert.deepEqual(children, ["/control"], "the refused requests created no stream under the root");
});

test("odd method segments (%2F, encoded letters, trailing slash, extra segments) → 404", async () => {
  const name = uniqueName();
  for (const route of ["getEvents%2F..", "getEvents%2Fx", "%67etEvents", "getEvents/", "getEvents/x", "", "..%2FgetEvents", "get%00Events"]) {
    const res = await http(mf, "GET", `/api/streams/${route}?${q(name)}`);
    assert.equal(res.status, 404, `${route}: ${res.text}`);
    assert.equal(res.json?.error?.code, "not_found", `${route}: ${res.text}`);
  }
  for (const p of ["/", "/api", "/api/streams", "/api/stream/getEvents", "/other"]) {
    const res = await http(mf, "GET", `${p}?${q(name)}`);
    assertHttpError(res, 404, "not_found", `no route for GET ${p}`, p);
  }
  assertHttpError(await http(mf, "POST", `/nope?${q(name)}`, { body: {} }), 404, "not_found", "no route for POST /nope");
  assert.equal(await doHasFiles(mf, persistDir, name), false, "no route reached the DO");
});

// ---- bodies (items 49, 46) ----

/**
 * POST with a declared content-length and nothing sent unless the server asks for it: the Worker
 * refuses an over-limit declared length from the header alone, so the client is never still
 * uploading when the refusal arrives (which can make the kernel reset the connection).
 * `expectContinue`: send `Expect: 100-continue` and `body` only on a 100 (workerd sends none).
 */
async function declaredLengthPost(urlPath, length, { expectContinue, body } = {}) {
  const base = await mf.ready;
  return new Promise((resolve, reject) => {
    const headers = { "content-type": "application/json", "content-length": String(length) };
    if (expectContinue) headers.expect = "100-continue";
    const req = nodeHttp.request(new URL(urlPath, base), { method: "POST", headers });
    req.on("continue", () => req.end(body));
    req.on("response", (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (text += d));
      res.on("end", () => {
        req.on("error", () => {}); // the unsent body is abandoned with the socket
        req.destroy();
        resolve({ status: res.statusCode, headers: new Headers(res.headers), text, json: JSON.parse(text) });
      });
    });
    req.on("error", reject);
    req.flushHeaders();
  });
}

/** Exactly `bytes` bytes of spaces, streamed in 1 MiB chunks without a content-length, then ended. */
function streamedBody(bytes) {
  let left = bytes;
  return new ReadableStream({
    pull(controller) {
      if (left === 0) return controller.close();
      const n = Math.min(left, MiB);
      left -= n;
      controller.enqueue(new Uint8Array(n).fill(0x20));
    },
  });
}

test("a body over 16 MiB → 413 batch_too_large; exactly 16 MiB is read", async () => {
  const name = uniqueName();
  const tooBig = "request body exceeds 16777216 bytes";
  // Declared lengths: refused from the header, before any body byte is sent.
  assertHttpError(await declaredLengthPost(`/api/streams/append?${q(name)}`, 20 * MiB), 413, "batch_too_large", tooBig, "20 MiB declared");
  const valid = JSON.stringify({ event: { type: "app/big", payload: "x".repeat(20 * MiB) } });
  const expectingValid = await declaredLengthPost(`/api/streams/append?${q(name)}`, Buffer.byteLength(valid), { expectContinue: true, body: valid });
  assertHttpError(expectingValid, 413, "batch_too_large", tooBig, "20 MiB JSON behind Expect: 100-continue");
  assertHttpError(await declaredLengthPost(`/api/streams/runtimeState?${q(name)}`, 16 * MiB + 1), 413, "batch_too_large", tooBig, "16 MiB + 1 declared");
  // Streamed without a content-length: the whole body is sent and ended, one byte over the limit.
  const res = await mf.dispatchFetch(`http://localhost/api/streams/append?${q(name)}`, { method: "POST", body: streamedBody(16 * MiB + 1), duplex: "half" });
  const text = await res.text();
  assertHttpError({ status: res.status, headers: res.headers, text, json: JSON.parse(text) }, 413, "batch_too_large", tooBig, "streamed 16 MiB + 1");
  assert.equal(await doHasFiles(mf, persistDir, name), false, "refused bodies never reach the DO");

  // A longer streamed body is read to its end (up to twice the limit) before the refusal, so a
  // client still sending it gets the 413, never a reset connection.
  for (let i = 0; i < 3; i++) {
    const long = await mf.dispatchFetch(`http://localhost/api/streams/append?${q(name)}`, { method: "POST", body: streamedBody(20 * MiB), duplex: "half" });
    const longText = await long.text();
    assertHttpError({ status: long.status, headers: long.headers, text: longText, json: JSON.parse(longText) }, 413, "batch_too_large", tooBig, `streamed 20 MiB #${i}`);
  }

  // Exactly 16 MiB (whitespace-padded `{}`) is within the limit.
  const exact = new Uint8Array(16 * MiB).fill(0x20);
  exact[0] = 0x7b;
  exact[exact.length - 1] = 0x7d;
  const ok = await http(mf, "POST", `/api/streams/runtimeState?${q(name)}`, { body: exact });
  assert.equal(ok.status, 200, ok.text.slice(0, 300));
  assert.equal(ok.json.coreProcessorState.maxOffset, 0, "every refused append left the stream unwritten");
});

test("malformed JSON, non-object JSON and unknown argument names → 400 invalid_request, nothing written", async () => {
  const name = uniqueName();
  await call(mf, name, "append", { event: { type: "app/seed" } });
  const before = await snapshot(mf, name);
  for (const body of ['{"event":', "{", "nope", '{"event":{"type":"x"}} trailing', "{'a':1}", '{"a":1,}', "\u00ff\u00fe"]) {
    assertHttpError(await http(mf, "POST", `/api/streams/append?${q(name)}`, { body, headers: { "content-type": "application/json" } }), 400, "invalid_request", undefined, `body ${JSON.stringify(body)}`);
  }
  // Invalid UTF-8.
  assertHttpError(await http(mf, "POST", `/api/streams/append?${q(name)}`, { body: new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]) }), 400, "invalid_request", undefined, "invalid UTF-8");
  for (const body of ["[]", '[{"event":{"type":"x"}}]', "1", '"x"', "null", "true"]) {
    assertHttpError(await http(mf, "POST", `/api/streams/append?${q(name)}`, { body }), 400, "invalid_request", "request body must be a JSON object", `body ${body}`);
    assertHttpError(await http(mf, "POST", `/api/streams/runtimeState?${q(name)}`, { body }), 400, "invalid_request", "request body must be a JSON object", `runtimeState body ${body}`);
  }
  assertHttpError(await http(mf, "POST", `/api/streams/append?${q(name)}`, { body: { event: { type: "app/x" }, extra: 1 } }), 400, "invalid_request", 'unknown argument "extra"');
  assertHttpError(await http(mf, "POST", `/api/streams/runtimeState?${q(name)}`, { body: { foo: 1 } }), 400, "invalid_request", 'unknown argument "foo"');
  assertHttpError(await http(mf, "POST", `/api/streams/getEvents?${q(name)}`, { body: { after: 1 } }), 400, "invalid_request", 'unknown argument "after"');
  assertHttpError(await http(mf, "GET", `/api/streams/getEvents?${q(name)}&foo=1`), 400, "invalid_request", 'unknown argument "foo"');
  assertHttpError(await http(mf, "POST", `/api/streams/appendBatch?${q(name)}`, { body: { event: { type: "app/x" } } }), 400, "invalid_request", 'unknown argument "event"');
  await assertUnchanged(mf, name, before);
});

test("streamPath is an argument of append/appendBatch only: elsewhere it is an unknown argument", async () => {
  const name = uniqueName();
  await call(mf, name, "getEvents", {});
  for (const route of ["getEvents", "runtimeState", "getEvent"]) {
    const body = route === "getEvent" ? { offset: 1, streamPath: "c" } : { streamPath: "c" };
    assertHttpError(await http(mf, "POST", `/api/streams/${route}?${q(name)}`, { body }), 400, "invalid_request", 'unknown argument "streamPath"', route);
  }
});

test("empty bodies mean {}; GET arguments are decimal integers; undefined → null", async () => {
  const name = uniqueName();
  const ev = await call(mf, name, "append", { event: { type: "app/x", idempotencyKey: "k1" } });
  for (const body of ["", "  \n "]) {
    const res = await http(mf, "POST", `/api/streams/runtimeState?${q(name)}`, { body });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.coreProcessorState.maxOffset, 3);
  }
  const rs = await http(mf, "POST", `/api/streams/runtimeState?${q(name)}`);
  assert.equal(rs.status, 200, "no body at all");
  const page = await http(mf, "GET", `/api/streams/getEvents?${q(name)}&afterOffset=1&limit=1`);
  assert.equal(page.status, 200);
  assert.deepEqual(page.json.map((e) => e.offset), [2]);
  const bounded = await http(mf, "GET", `/api/streams/getEvents?${q(name)}&afterOffset=0&beforeOffset=3`);
  assert.deepEqual(bounded.json.map((e) => e.offset), [1, 2]);
  assert.deepEqual((await http(mf, "GET", `/api/streams/getEvent?${q(name)}&offset=3`)).json, ev);
  assert.deepEqual((await http(mf, "GET", `/api/streams/getEvent?${q(name)}&idempotencyKey=k1`)).json, ev);
  const miss = await http(mf, "GET", `/api/streams/getEvent?${q(name)}&idempotencyKey=nope`);
  assert.equal(miss.status, 200);
  assert.equal(miss.text, "null", "undefined → null");
  assertHttpError(await http(mf, "GET", `/api/streams/getEvent?${q(name)}&offset=999`), 404, "not_found", "No stream event found at offset 999.");
  assertHttpError(await http(mf, "GET", `/api/streams/getEvents?${q(name)}&limit=0`), 400, "invalid_request", "getEvents limit must be a positive integer.");
  assertHttpError(await http(mf, "GET", `/api/streams/getEvents?${q(name)}&limit=1001`), 400, "invalid_request", "getEvents limit must be at most 1000.");
  for (const bad of ["abc", "-1", "1.5", "1e2", "0x10", ""]) {
    assertHttpError(await http(mf, "GET", `/api/streams/getEvents?${q(name)}&afterOffset=${bad}`), 400, "invalid_request", undefined, `afterOffset=${bad}`);
  }
  assertHttpError(await http(mf, "GET", `/api/streams/getEvent?${q(name)}`), 400, "invalid_request", "getEvent requires exactly one of offset or idempotencyKey.");
});

test("in an HTTP body, a duplicate key — the last one wins", async () => {
  const name = uniqueName();
  const body = '{"event":{"type":"app/first","payload":{"n":1,"n":2},"type":"app/last","payload":{"n":3,"m":{"a":1,"a":2}}}}';
  const res = await http(mf, "POST", `/api/streams/append?${q(name)}`, { body, headers: { "content-type": "application/json" } });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.type, "app/last");
  assert.deepEqual(res.json.payload, { n: 3, m: { a: 2 } });
  assert.deepEqual(await call(mf, name, "getEvent", { offset: res.json.offset }), res.json);
});

test("HTTP errors are {\"error\":{code,message}} with the documented statuses; DO errors read `<code>: <message>`", async () => {
  const name = uniqueName();
  const url = (m) => `/api/streams/${m}?${q(name)}`;
  await call(mf, name, "append", { event: { type: "app/x", idempotencyKey: "dup" } });
  const max = 3;

  const checks = [
    [["POST", "append", { event: { type: "app/x", foo: 1 } }], 400, "invalid_event", 'event[0]: unknown key "foo"'],
    [["POST", "append", { event: { type: S("woken"), payload: { incarnationId: "x" } } }], 400, "invalid_event", `event type "${S("woken")}" is reserved for the stream itself`],
    [["POST", "append", { event: { type: "app/x", offset: max + 2 } }], 409, "offset_mismatch", `expected offset ${max + 1}, got ${max + 2}`],
    [["POST", "append", { event: { type: "app/x", idempotencyKey: "dup", offset: max + 10 } }], 409, "idempotency_conflict", `idempotency hit at offset ${max}, got ${max + 10}`],
    [["POST", "appendBatch", { events: Array.from({ length: 1001 }, () => ({ type: "app/x" })) }], 413, "batch_too_large", "batch has 1001 events; the limit is 1000"],
    [["POST", "getEvent", { offset: 999 }], 404, "not_found", "No stream event found at offset 999."],
    [["POST", "getEvents", { limit: 0 }], 400, "invalid_request", "getEvents limit must be a positive integer."],
    [["POST", "append", { streamPath: "../..", event: { type: "app/x" } }], 400, "invalid_path", undefined],
  ];
  for (const [[verb, method, body], status, code, message] of checks) {
    const res = await http(mf, verb, url(method), { body });
    assertHttpError(res, status, code, message, `${verb} ${method}`);
    // The same failure over DO RPC reads `<code>: <message>`.
    if (!("streamPath" in body)) {
      const o = await tryCall(mf, name, method, body);
      assert.equal(o.ok, false);
      assert.equal(o.error, `${code}: ${res.json.error.message}`, `DO ${method}`);
    }
  }

  // event_too_large: one 8 MiB+ event in a body under 16 MiB.
  const huge = { event: { type: "app/huge", payload: "x".repeat(8 * MiB) } };
  const tooLarge = await http(mf, "POST", url("append"), { body: huge });
  assertHttpError(tooLarge, 413, "event_too_large", /^event\[0\] is \d+ bytes; the limit is 8388608$/);

  // stream_paused → 423.
  const paused = uniqueName();
  await call(mf, paused, "append", { event: { type: S("paused"), payload: { reason: "maintenance" } } });
  assertHttpError(await http(mf, "POST", `/api/streams/append?${q(paused)}`, { body: { event: { type: "app/x" } } }), 423, "stream_paused", "stream paused: maintenance");

  // The breaker's own pause is an ordinary stream_paused too.
  const tripped = uniqueName();
  await call(mf, tripped, "append", { event: breakerConfig(1, 1) });
  await http(mf, "POST", `/api/streams/appendBatch?${q(tripped)}`, { body: { events: [{ type: "app/w" }, { type: "app/w" }, { type: "app/w" }] } });
  assertHttpError(await http(mf, "POST", `/api/streams/append?${q(tripped)}`, { body: { event: { type: "app/w" } } }), 423, "stream_paused", "stream paused: circuit breaker tripped: burst rate limit exceeded");

  // not_found → 404 for an unknown method; method_not_allowed → 405 + Allow for a wrong verb.
  assertHttpError(await http(mf, "GET", url("nope")), 404, "not_found", 'unknown method "nope"');
  const wrongVerb = await http(mf, "GET", url("append"));
  assertHttpError(wrongVerb, 405, "method_not_allowed", 'method "append" does not allow GET');
  assert.equal(wrongVerb.headers.get("allow"), "POST");

  // Successful responses are JSON with no CORS headers either.
  const ok = await http(mf, "GET", url("runtimeState"));
  assert.equal(ok.status, 200);
  assert.match(ok.headers.get("content-type"), /application\/json/);
  for (const [h] of ok.headers) assert.ok(!h.toLowerCase().startsWith("access-control-"), h);
});

// ---- method allowlist (item 52) ----

test("every non-allowlisted method name → 404 not_found; the stream is never touched", async () => {
  const ns = freshNamespace();
  const name = `${ns}:/m`;
  const names = [
    "readCoreProcessorState",
    "writeCoreProcessorState",
    "subscribeOutbound",
    "runIdleTeardownNow",
    "simulateHibernation",
    "memoryUsage",
    "notifyChildStreamCreated",
    "fetch",
    "constructor",
    "__proto__",
    "prototype",
    "toString",
    "hasOwnProperty",
    "valueOf",
    "then",
    "alarm",
    "webSocketMessage",
    "webSocketClose",
    "webSocketError",
    "free",
    "Append",
    "APPEND",
    "append_batch",
    "getevents",
  ];
  for (const m of names) {
    for (const verb of ["GET", "POST"]) {
      const res = await http(mf, verb, `/api/streams/${m}?${q(name)}`, { body: verb === "POST" ? {} : undefined });
      assertHttpError(res, 404, "not_found", `unknown method "${m}"`, `${verb} ${m}`);
    }
  }
  assert.equal(await doHasFiles(mf, persistDir, name), false, "no DO was created by refused methods");
});

test("the wrong verb → 405 with Allow", async () => {
  const name = uniqueName();
  for (const m of ["append", "appendBatch", "reduce", "reset", "kill"]) {
    for (const verb of ["GET", "PUT", "DELETE"]) {
      const res = await http(mf, verb, `/api/streams/${m}?${q(name)}`);
      assertHttpError(res, 405, "method_not_allowed", `method "${m}" does not allow ${verb}`, `${verb} ${m}`);
      assert.equal(res.headers.get("allow"), "POST");
    }
  }
  for (const m of ["getEvent", "getEvents", "runtimeState"]) {
    for (const verb of ["PUT", "DELETE", "PATCH"]) {
      const res = await http(mf, verb, `/api/streams/${m}?${q(name)}`);
      assertHttpError(res, 405, "method_not_allowed", `method "${m}" does not allow ${verb}`, `${verb} ${m}`);
      assert.deepEqual(res.headers.get("allow").split(",").map((s) => s.trim()).sort(), ["GET", "POST"]);
    }
  }
  const postSubscribe = await http(mf, "POST", `/api/streams/subscribe?${q(name)}`, { body: {} });
  assertHttpError(postSubscribe, 405, "method_not_allowed", undefined, "POST subscribe");
  assert.equal(postSubscribe.headers.get("allow"), "GET");
  assert.equal(await doHasFiles(mf, persistDir, name), false);
});

// ---- streamPath over HTTP (item 24, HTTP side) ----

test("append on /p with streamPath /q lands on /q; /p is never woken", async () => {
  const ns = freshNamespace();
  const res = await http(mf, "POST", `/api/streams/append?namespace=${ns}&path=/p`, { body: { streamPath: "/q", event: { type: "app/fwd" } } });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.offset, 3);
  const batch = await http(mf, "POST", `/api/streams/appendBatch?namespace=${ns}&path=/p`, { body: { streamPath: "../q", events: [{ type: "app/b" }] } });
  assert.equal(batch.status, 200, batch.text);
  assert.equal(batch.json[0].offset, 4);
  assertHttpError(
    await http(mf, "POST", `/api/streams/append?namespace=${ns}&path=/p`, { body: { streamPath: "../..", event: { type: "app/x" } } }),
    400,
    "invalid_path",
    'streamPath "../.." escapes the stream root (resolved from "/p")',
  );
  assertHttpError(await http(mf, "POST", `/api/streams/append?namespace=${ns}&path=/p`, { body: { streamPath: 5, event: { type: "app/x" } } }), 400, "invalid_request", undefined, "streamPath not a string");

  const qLog = await readAll(mf, `${ns}:/q`);
  assert.deepEqual(qLog.map((e) => e.type), [S("created"), S("woken"), "app/fwd", "app/b"]);
  assert.deepEqual(qLog[2], res.json);
  await waitFor(
    () => readAll(mf, `${ns}:/`),
    (events) => events.some((e) => e.type === S("child-stream-created")),
    { what: "root notification" },
  );
  // Sentinel: a stream created after the calls above; once the root has heard of it, it would have
  // heard of /p too, had /p been woken.
  await call(mf, `${ns}:/sentinel`, "runIdleTeardownNow"); // created (a read would not create it)
  await waitFor(
    () => readAll(mf, `${ns}:/`),
    (events) => events.some((e) => e.type === S("child-stream-created") && e.payload.childPath === "/sentinel"),
    { what: "root notification of the sentinel" },
  );
  assert.equal(await doHasFiles(mf, persistDir, `${ns}:/p`), false, "/p was never instantiated (so never woken)");
  assert.deepEqual(
    (await readAll(mf, `${ns}:/`)).filter((e) => e.type === S("child-stream-created")).map((e) => e.payload.childPath).sort(),
    ["/q", "/sentinel"],
    "the root hears of /q (and the sentinel) only",
  );
});

test("a relative streamPath resolves against the query path", async () => {
  const ns = freshNamespace();
  const rel = await http(mf, "POST", `/api/streams/append?namespace=${ns}&path=/p`, { body: { streamPath: "c/./d/..", event: { type: "app/child" } } });
  assert.equal(rel.status, 200, rel.text);
  assert.deepEqual((await readAll(mf, `${ns}:/p/c`)).map((e) => e.type), [S("created"), S("woken"), "app/child"]);
  // streamPath "." targets the query path itself.
  const self = await http(mf, "POST", `/api/streams/append?namespace=${ns}&path=/r`, { body: { streamPath: ".", event: { type: "app/self" } } });
  assert.equal(self.status, 200, self.text);
  assert.equal((await readAll(mf, `${ns}:/r`))[2].type, "app/self");
});

// ---- tokens (items 50, 51) ----

test("STREAMS_API_TOKEN=a: no header or Bearer b → 401; Bearer a → 200; upgrade without header → 401", async () => {
  const m = await startStreams({ bindings: { STREAMS_API_TOKEN: "a" } });
  try {
    const name = uniqueName();
    const url = `/api/streams/runtimeState?${q(name)}`;
    const missing = "missing or invalid bearer token";
    assertHttpError(await http(m, "GET", url), 401, "unauthorized", missing, "no header");
    assertHttpError(await http(m, "GET", url, { headers: { authorization: "Bearer b" } }), 401, "unauthorized", missing, "Bearer b");
    assertHttpError(await http(m, "GET", url, { headers: { authorization: "Bearer " } }), 401, "unauthorized", missing, "empty bearer");
    assertHttpError(await http(m, "GET", url, { headers: { authorization: "Bearer aa" } }), 401, "unauthorized", missing, "Bearer aa");
    assertHttpError(await http(m, "GET", url, { headers: { authorization: "Basic a" } }), 401, "unauthorized", missing, "Basic a");
    assertHttpError(await http(m, "GET", url, { headers: { authorization: "a" } }), 401, "unauthorized", missing, "bare token");
    assertHttpError(await http(m, "GET", `${url}&token=a&access_token=a&authorization=Bearer%20a`), 401, "unauthorized", missing, "query-string token");
    assertHttpError(await http(m, "POST", `/api/streams/append?${q(name)}`, { body: { event: { type: "app/x" } } }), 401, "unauthorized", missing, "POST");

    const ok = await http(m, "GET", url, { headers: { authorization: "Bearer a" } });
    assert.equal(ok.status, 200, ok.text);
    const appended = await http(m, "POST", `/api/streams/append?${q(name)}`, { body: { event: { type: "app/x" } }, headers: { authorization: "Bearer a" } });
    assert.equal(appended.status, 200, appended.text);
    assert.equal(appended.json.offset, 3);

    // The token is checked before the route, the method and the names.
    assertHttpError(await http(m, "GET", `/nope`), 401, "unauthorized", missing, "unknown route");
    assertHttpError(await http(m, "GET", `/api/streams/readCoreProcessorState?${q(name)}`), 401, "unauthorized", missing, "non-allowlisted method");
    assertHttpError(await http(m, "GET", `/api/streams/append?${q(name)}`), 401, "unauthorized", missing, "wrong verb");
    assertHttpError(await http(m, "GET", `/api/streams/getEvents?namespace=Bad&path=/x`), 401, "unauthorized", missing, "bad names");
    assertHttpError(await http(m, "GET", `/nope`, { headers: { authorization: "Bearer a" } }), 404, "not_found", "no route for GET /nope");

    // Upgrades need the header too.
    const refused = await subscribeRaw(m, name, { subscriptionKey: "k" });
    assert.equal(refused.status, 401);
    assert.deepEqual(refused.json, { error: { code: "unauthorized", message: missing } });
    const wrong = await subscribeRaw(m, name, { subscriptionKey: "k" }, { headers: { upgrade: "websocket", authorization: "Bearer b" } });
    assert.equal(wrong.status, 401);
    const sub = await openSubscriber(m, name, { subscriptionKey: "k" }, { headers: { authorization: "Bearer a" } });
    await sub.waitFor((s) => s.frames.length >= 1);
    sub.close();

    // The log shows only the authorised append and the authorised subscription.
    const log = await readAll(m, name);
    assert.deepEqual(log.slice(0, 4).map((e) => e.type), [S("created"), S("woken"), "app/x", S("subscriber-connected")]);
    assert.equal(log.filter((e) => e.type === "app/x").length, 1);
    assert.equal(log.filter((e) => e.type === S("subscriber-connected")).length, 1);
  } finally {
    await m.dispose();
  }
});

test("HTTP reset/kill with the admin token unset → 403 admin token required, whatever the bearer", async () => {
  const name = uniqueName();
  await call(mf, name, "append", { event: { type: "app/x" } });
  const before = await snapshot(mf, name);
  for (const m of ["reset", "kill"]) {
    for (const headers of [{}, { authorization: "Bearer " }, { authorization: "Bearer anything" }, { authorization: "Bearer undefined" }]) {
      assertHttpError(await http(mf, "POST", `/api/streams/${m}?${q(name)}`, { headers }), 403, "unauthorized", "admin token required", `${m} ${JSON.stringify(headers)}`);
    }
  }
  await assertUnchanged(mf, name, before, "refused reset/kill change nothing");
});

test("STREAMS_ADMIN_TOKEN: wrong or missing → 403; Bearer <admin> → 200 null and the stream resets / is killed", async () => {
  const m = await startStreams({ bindings: { STREAMS_ADMIN_TOKEN: "adm" } });
  try {
    const name = uniqueName();
    await call(m, name, "appendBatch", { events: [{ type: "app/1" }, { type: "app/2" }, { type: "app/3" }] });
    for (const headers of [{}, { authorization: "Bearer ad" }, { authorization: "Bearer admin" }, { authorization: "Bearer adm2" }]) {
      assertHttpError(await http(m, "POST", `/api/streams/reset?${q(name)}`, { headers }), 403, "unauthorized", "admin token required", JSON.stringify(headers));
    }
    assertHttpError(await http(m, "POST", `/api/streams/reset?${q(name)}&token=adm`), 403, "unauthorized", "admin token required", "query-string token");
    assert.equal((await readAll(m, name)).length, 5, "nothing reset yet");
    // Route and verb come before the admin check.
    assertHttpError(await http(m, "GET", `/api/streams/reset?${q(name)}`), 405, "method_not_allowed", 'method "reset" does not allow GET');

    // Names come after the admin check.
    assertHttpError(await http(m, "POST", `/api/streams/reset?namespace=Bad&path=/x`), 403, "unauthorized", "admin token required", "admin before names");
    assertHttpError(await http(m, "POST", `/api/streams/reset?namespace=Bad&path=/x`, { headers: { authorization: "Bearer adm" } }), 400, "invalid_namespace", undefined);

    const reset = await http(m, "POST", `/api/streams/reset?${q(name)}`, { headers: { authorization: "Bearer adm" } });
    assert.equal(reset.status, 200, reset.text);
    assert.equal(reset.text, "null");
    const outcome = await tryCallAfterKill(m, name, "getEvents", {});
    assert.equal(outcome.ok, true, JSON.stringify(outcome));
    assert.deepEqual(outcome.result, [], "nothing left after reset (and a read creates nothing)");
    await call(m, name, "runIdleTeardownNow");
    assert.deepEqual((await readAll(m, name)).map((e) => [e.offset, e.type]), [[1, S("created")], [2, S("woken")]], "a fresh stream after reset");

    const kill = await http(m, "POST", `/api/streams/kill?${q(name)}`, { headers: { authorization: "Bearer adm" } });
    assert.equal(kill.status, 200, kill.text);
    assert.equal(kill.text, "null");
    const afterKill = await tryCallAfterKill(m, name, "getEvents", {});
    assert.equal(afterKill.ok, true, JSON.stringify(afterKill));
    assert.deepEqual(afterKill.result.map((e) => [e.offset, e.type]), [[1, S("created")], [2, S("woken")], [3, S("woken")]], "a new incarnation after kill");

    // Without an API token, ordinary methods need no header.
    assert.equal((await http(m, "GET", `/api/streams/runtimeState?${q(name)}`)).status, 200);
  } finally {
    await m.dispose();
  }
});

test("with both tokens, the admin token also passes the API check; the API token is not an admin token", async () => {
  const m = await startStreams({ bindings: { STREAMS_API_TOKEN: "a", STREAMS_ADMIN_TOKEN: "adm" } });
  try {
    const name = uniqueName();
    await call(m, name, "append", { event: { type: "app/x" } });
    const url = `/api/streams/runtimeState?${q(name)}`;
    assert.equal((await http(m, "GET", url, { headers: { authorization: "Bearer adm" } })).status, 200, "admin token accepted as API token");
    assert.equal((await http(m, "GET", url, { headers: { authorization: "Bearer a" } })).status, 200);
    assertHttpError(await http(m, "POST", `/api/streams/reset?${q(name)}`), 401, "unauthorized", "missing or invalid bearer token", "API check first");
    assertHttpError(await http(m, "POST", `/api/streams/reset?${q(name)}`, { headers: { authorization: "Bearer a" } }), 403, "unauthorized", "admin token required");
    assert.equal((await readAll(m, name)).length, 3);
    const reset = await http(m, "POST", `/api/streams/reset?${q(name)}`, { headers: { authorization: "Bearer adm" } });
    assert.equal(reset.status, 200, reset.text);
    const outcome = await tryCallAfterKill(m, name, "getEvents", {});
    assert.deepEqual(outcome.result, [], "reset left nothing, and a read creates nothing");
  } finally {
    await m.dispose();
  }
});
