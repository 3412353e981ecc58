// Reliability scenario 3b — malformed input, one request per class, over HTTP, DO JS-RPC and the
// service entrypoint (RELIABILITY.md §3). Each case must get its documented code (and
// HTTP status), leave storage exactly as it was (the whole log and the core state), and leave the
// worker healthy: a normal append on the same surface right after it succeeds.
//
// Values JSON cannot carry (NaN, ±Infinity, BigInt, Date, Map, typed arrays, functions, lone
// surrogates, 10 000-level nesting) are planted into RPC arguments inside workerd by
// helpers/reliability_client.mjs, which stands in for the standard client worker here.
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { startStreams, http, uniqueName, splitName, REPO_ROOT } from "./helpers/mf.mjs";
import { callOn, readLog, liveState, apiUrl, bytesOf } from "./helpers/reliability.mjs";

const MIB = 1024 * 1024;
const HELPERS_DIR = path.join(REPO_ROOT, "miniflare", "helpers");
let mf;
let name;

before(async () => {
  mf = await startStreams({ client: { scriptPath: path.join(HELPERS_DIR, "reliability_client.mjs") } });
  name = uniqueName("input");
  await callOn(mf, "do", name, "getEvents", {});
});
after(async () => {
  await mf?.dispose();
});

/** An RPC call with non-JSON values planted into its argument (see reliability_client.mjs). */
async function planted(surface, method, arg, plant) {
  const client = mf.getWorker("client");
  const target = surface === "service" ? { target: "service", arg: { ...splitName(name), ...arg } } : { target: "do", name, arg };
  const res = await (await client).fetch("http://client/", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ ...target, method, plant }),
  });
  const o = JSON.parse(await res.text());
  return o.ok ? { ok: true, result: o.result } : { ok: false, error: o.error };
}

async function rawHttp(method, body, { headers = {}, query = "" } = {}) {
  const res = await http(mf, "POST", apiUrl(name, method, query), { body, headers });
  const e = res.json?.error;
  return res.status === 200 ? { ok: true, status: 200, result: res.json } : { ok: false, status: res.status, error: e ? `${e.code}: ${e.message}` : res.text.slice(0, 200) };
}

/** Marks a refusal that happens in the platform before the worker runs (no `<code>: ` prefix). */
const PLATFORM = "(platform)";
/** Any documented code (docs/protocol.md#errors): the `<code>: <message>` form is what is checked. */
const ANY_CODE = "(any code)";
const CODES = ["invalid_request", "invalid_event", "invalid_path", "invalid_namespace", "offset_mismatch", "idempotency_conflict", "stream_paused", "event_too_large", "batch_too_large", "not_found", "method_not_allowed", "unauthorized", "subscriber_not_allowed", "internal"];
const nestedText = (depth) => `${"[".repeat(depth)}1${"]".repeat(depth)}`;
const bigKey = "k".repeat(4 * MIB);

// [label, surface, run() → outcome, code, message (string = exact, RegExp = matches the part after "code: "), HTTP status]
const CASES = [
  // --- HTTP
  ["wrong type: type is a number", "http", () => rawHttp("append", JSON.stringify({ event: { type: 5 } })), "invalid_event", "event[0]: type must be a string", 400],
  ["wrong type: events is an object", "http", () => rawHttp("appendBatch", JSON.stringify({ events: {} })), "invalid_request", "events must be an array", 400],
  ["wrong type: offset is a string", "http", () => rawHttp("append", JSON.stringify({ event: { type: "x", offset: "3" } })), "invalid_event", /^event\[0\]: offset must be an integer/, 400],
  ["wrong type: metadata is an array", "http", () => rawHttp("append", JSON.stringify({ event: { type: "x", metadata: [] } })), "invalid_event", "event[0]: metadata must be an object", 400],
  ["wrong type: event is null", "http", () => rawHttp("append", JSON.stringify({ event: null })), "invalid_event", "event[0]: event must be an object", 400],
  ["wrong type: streamPath is a number", "http", () => rawHttp("append", JSON.stringify({ streamPath: 5, event: { type: "x" } })), "invalid_request", "streamPath must be a string", 400],
  ["wrong type: limit is a word (GET)", "http", async () => {
    const res = await http(mf, "GET", apiUrl(name, "getEvents", "&limit=abc"));
    return { ok: res.status === 200, status: res.status, error: res.json?.error ? `${res.json.error.code}: ${res.json.error.message}` : res.text };
  }, "invalid_request", "getEvents limit must be a positive integer.", 400],
  ["NaN literal in a body", "http", () => rawHttp("append", '{"event":{"type":"x","payload":NaN}}'), "invalid_request", /^request body is not valid JSON/, 400],
  ["Infinity literal in a body", "http", () => rawHttp("append", '{"event":{"type":"x","payload":Infinity}}'), "invalid_request", /^request body is not valid JSON/, 400],
  ["number out of double range (1e400)", "http", () => rawHttp("append", '{"event":{"type":"x","payload":1e400}}'), "invalid_request", /^request body is not valid JSON/, 400],
  ["lone surrogate escape", "http", () => rawHttp("append", '{"event":{"type":"x","payload":"\\ud800"}}'), "invalid_request", /^request body is not valid JSON/, 400],
  ["deep nesting: 10 000 levels", "http", () => rawHttp("append", `{"event":{"type":"x","payload":${nestedText(10_000)}}}`), "invalid_request", /^request body is not valid JSON: recursion limit exceeded/, 400],
  ["deep nesting: 200 levels", "http", () => rawHttp("append", `{"event":{"type":"x","payload":${nestedText(200)}}}`), "invalid_request", /^request body is not valid JSON: recursion limit exceeded/, 400],
  ["4 MiB object key at the event's top level", "http", () => rawHttp("append", JSON.stringify({ event: { type: "x", [bigKey]: 1 } })), "invalid_event", /^event\[0\]: unknown key "k{64}/, 400],
  ["4 MiB unknown argument", "http", () => rawHttp("append", JSON.stringify({ event: { type: "x" }, [bigKey]: 1 })), "invalid_request", /^unknown argument "k{64}/, 400],
  ["two 4 MiB payload keys (> 8 MiB event)", "http", () => rawHttp("append", JSON.stringify({ event: { type: "x", payload: { [bigKey]: 1, [bigKey + "2"]: 2 } } })), "event_too_large", /^event\[0\] is \d+ bytes; the limit is 8388608$/, 413],
  ["invalid UTF-8 bytes in the body", "http", () => rawHttp("append", Buffer.concat([Buffer.from('{"event":{"type":"x","payload":"'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('"}}')])), "invalid_request", "request body is not valid UTF-8", 400],
  ["UTF-8 BOM before the JSON", "http", () => rawHttp("append", "\ufeff" + JSON.stringify({ event: { type: "x" } })), "invalid_request", /^request body is not valid JSON/, 400],
  ["truncated JSON", "http", () => rawHttp("append", '{"event":{"type":"x"'), "invalid_request", /^request body is not valid JSON/, 400],
  ["body is an array", "http", () => rawHttp("append", "[1]"), "invalid_request", "request body must be a JSON object", 400],
  ["empty body on append", "http", () => rawHttp("append", ""), "invalid_request", "event is required", 400],
  ["oversize body (16 MiB + 1, with content-length)", "http", () => rawHttp("appendBatch", Buffer.alloc(16 * MIB + 1, 0x20)), "batch_too_large", "request body exceeds 16777216 bytes", 413],
  ["oversize body (16 MiB + 1, streamed without content-length)", "http", async () => {
    const chunk = new Uint8Array(MIB).fill(0x20);
    let sent = 0;
    const stream = new ReadableStream({
      pull(c) {
        if (sent >= 16 * MIB + 1) return c.close();
        const n = Math.min(MIB, 16 * MIB + 1 - sent);
        c.enqueue(chunk.subarray(0, n));
        sent += n;
      },
    });
    const res = await mf.dispatchFetch("http://localhost" + apiUrl(name, "appendBatch"), { method: "POST", body: stream, duplex: "half" });
    const json = await res.json().catch(() => undefined);
    return { ok: res.status === 200, status: res.status, error: json?.error ? `${json.error.code}: ${json.error.message}` : String(res.status) };
  }, "batch_too_large", "request body exceeds 16777216 bytes", 413],
  ["1001 events", "http", () => rawHttp("appendBatch", JSON.stringify({ events: Array.from({ length: 1001 }, () => ({ type: "x" })) })), "batch_too_large", "batch has 1001 events; the limit is 1000", 413],
  ["unknown argument", "http", () => rawHttp("append", JSON.stringify({ event: { type: "x" }, foo: 1 })), "invalid_request", 'unknown argument "foo"', 400],
  ["unknown event key", "http", () => rawHttp("append", JSON.stringify({ event: { type: "x", foo: 1 } })), "invalid_event", 'event[0]: unknown key "foo"', 400],
  ["idempotencyKey of 1025 bytes", "http", () => rawHttp("append", JSON.stringify({ event: { type: "x", idempotencyKey: "k".repeat(1025) } })), "invalid_event", "event[0]: idempotencyKey must be 1 to 1024 bytes once trimmed", 400],
  ["second event of a batch invalid", "http", () => rawHttp("appendBatch", JSON.stringify({ events: [{ type: "ok" }, { type: "" }] })), "invalid_event", "event[1]: type must be 1 to 256 bytes, got 0", 400],
  ["reduce with a malformed state", "http", () => rawHttp("reduce", JSON.stringify({ event: { type: "x", offset: 1, createdAt: "2026-01-05T10:00:00.000Z" }, coreProcessorState: { eventCount: "many" } })), "invalid_request", /^coreProcessorState: /, 400],

  // --- DO JS-RPC (values planted inside workerd where JSON cannot carry them)
  ["wrong type: type is a number", "do", () => callOn(mf, "do", name, "append", { event: { type: 5 } }), "invalid_event", "event[0]: type must be a string"],
  ["wrong type: argument is a string", "do", () => callOn(mf, "do", name, "append", "x"), "invalid_request", "arguments must be an object"],
  ["wrong type: events is a string", "do", () => callOn(mf, "do", name, "appendBatch", { events: "x" }), "invalid_request", "events must be an array"],
  ["unknown argument", "do", () => callOn(mf, "do", name, "append", { event: { type: "x" }, foo: 1 }), "invalid_request", 'unknown argument "foo"'],
  ["NaN payload", "do", () => planted("do", "append", { event: { type: "x" } }, [{ at: ["event", "payload"], value: "NaN" }]), "invalid_event", "event[0]: payload: NaN is not a JSON number"],
  ["Infinity payload", "do", () => planted("do", "append", { event: { type: "x" } }, [{ at: ["event", "payload"], value: "Infinity" }]), "invalid_event", "event[0]: payload: inf is not a JSON number"],
  ["-Infinity in metadata", "do", () => planted("do", "append", { event: { type: "x" } }, [{ at: ["event", "metadata", "m"], value: "-Infinity" }]), "invalid_event", /^event\[0\]: metadata\.m: .* is not a JSON number$/],
  ["NaN offset", "do", () => planted("do", "append", { event: { type: "x" } }, [{ at: ["event", "offset"], value: "NaN" }]), "invalid_event", /^event\[0\]: offset: /],
  ["NaN getEvents limit", "do", () => planted("do", "getEvents", {}, [{ at: ["limit"], value: "NaN" }]), "invalid_request", /^limit: NaN is not a JSON number$/],
  ["BigInt payload", "do", () => planted("do", "append", { event: { type: "x" } }, [{ at: ["event", "payload"], value: "BigInt" }]), "invalid_event", "event[0]: payload: a BigInt is not a JSON value"],
  ["Date payload", "do", () => planted("do", "append", { event: { type: "x" } }, [{ at: ["event", "payload"], value: "Date" }]), "invalid_event", "event[0]: payload: a Date is not a JSON value"],
  ["Map payload", "do", () => planted("do", "append", { event: { type: "x" } }, [{ at: ["event", "payload"], value: "Map" }]), "invalid_event", "event[0]: payload: a Map is not a JSON value"],
  ["Uint8Array payload", "do", () => planted("do", "append", { event: { type: "x" } }, [{ at: ["event", "payload"], value: "Uint8Array" }]), "invalid_event", "event[0]: payload: a Uint8Array is not a JSON value"],
  ["ArrayBuffer payload", "do", () => planted("do", "append", { event: { type: "x" } }, [{ at: ["event", "payload"], value: "ArrayBuffer" }]), "invalid_event", "event[0]: payload: a ArrayBuffer is not a JSON value"],
  ["RegExp payload", "do", () => planted("do", "append", { event: { type: "x" } }, [{ at: ["event", "payload"], value: "RegExp" }]), "invalid_event", /^event\[0\]: payload: a \w+ is not a JSON value$/],
  ["Error payload", "do", () => planted("do", "append", { event: { type: "x" } }, [{ at: ["event", "payload"], value: "Error" }]), "invalid_event", /^event\[0\]: payload: a \w+ is not a JSON value$/],
  ["function in an array", "do", () => planted("do", "append", { event: { type: "x" } }, [{ at: ["event", "payload"], value: "functionInArray" }]), "invalid_event", /^event\[0\]: payload\[0\]: a \w+ is not a JSON value$/],
  ["Set alone in an object", "do", () => planted("do", "append", { event: { type: "x" } }, [{ at: ["event", "payload", "s"], value: "Set" }]), "invalid_event", /^event\[0\]: payload\.s: a Set is not a JSON value$/],
  ["invalid Date in metadata", "do", () => planted("do", "append", { event: { type: "x" } }, [{ at: ["event", "metadata", "d"], value: "invalidDate" }]), "invalid_event", "event[0]: metadata.d: a Date is not a JSON value"],
  ["lone surrogate in a payload string", "do", () => planted("do", "append", { event: { type: "x" } }, [{ at: ["event", "payload", "s"], value: "loneSurrogate" }]), "invalid_event", "event[0]: payload.s: strings must be valid Unicode (found a lone surrogate)"],
  ["lone surrogate in the type", "do", () => planted("do", "append", { event: {} }, [{ at: ["event", "type"], value: "loneSurrogate" }]), "invalid_event", "event[0]: type: strings must be valid Unicode (found a lone surrogate)"],
  ["deep nesting: 200 levels", "do", () => planted("do", "append", { event: { type: "x" } }, [{ at: ["event", "payload"], value: "nested-200" }]), "invalid_event", /values may nest at most 128 levels deep$/],
  ["deep nesting: 3 000 levels", "do", () => planted("do", "append", { event: { type: "x" } }, [{ at: ["event", "payload"], value: "nested-3000" }]), "invalid_event", /values may nest at most 128 levels deep$/],
  // 10 000 levels cannot be sent over JS RPC at all: the platform's structured clone throws at
  // the caller, so the stream is never called (checked: still healthy, nothing written).
  ["deep nesting: 10 000 levels (refused by the caller's serializer)", "do", () => planted("do", "append", { event: { type: "x" } }, [{ at: ["event", "payload"], value: "nested-10000" }]), PLATFORM, /^Maximum call stack size exceeded$/],
  ["4 MiB object key at the event's top level", "do", () => callOn(mf, "do", name, "append", { event: { type: "x", [bigKey]: 1 } }), "invalid_event", /^event\[0\]: unknown key "k{64}/],
  ["4 MiB unknown argument", "do", () => callOn(mf, "do", name, "append", { event: { type: "x" }, [bigKey]: 1 }), "invalid_request", /^unknown argument "k{64}/],
  ["3 × 6 MiB batch", "do", () => callOn(mf, "do", name, "appendBatch", { events: [0, 1, 2].map(() => ({ type: "x", payload: "x".repeat(6 * MIB) })) }), "batch_too_large", /^batch is \d+ bytes; the limit is 16777216$/],
  ["event over 8 MiB", "do", () => callOn(mf, "do", name, "append", { event: { type: "x", payload: "x".repeat(8 * MIB) } }), "event_too_large", /^event\[0\] is \d+ bytes; the limit is 8388608$/],
  ["getEvents limit 0", "do", () => callOn(mf, "do", name, "getEvents", { limit: 0 }), "invalid_request", "getEvents limit must be a positive integer."],
  ["getEvent with both offset and key", "do", () => callOn(mf, "do", name, "getEvent", { offset: 1, idempotencyKey: "k" }), "invalid_request", "getEvent requires exactly one of offset or idempotencyKey."],
  ["getEvents afterOffset 1.5", "do", () => callOn(mf, "do", name, "getEvents", { afterOffset: 1.5 }), "invalid_request", "afterOffset must be a non-negative integer"],

  // --- service entrypoint
  ["wrong type: namespace is a number", "service", () => callOn(mf, "service", name, "append", { namespace: 5, event: { type: "x" } }), "invalid_request", "namespace must be a string"],
  ["wrong type: type is a number", "service", () => callOn(mf, "service", name, "append", { event: { type: 5 } }), "invalid_event", "event[0]: type must be a string"],
  ["unknown argument", "service", () => callOn(mf, "service", name, "append", { event: { type: "x" }, foo: 1 }), "invalid_request", 'unknown argument "foo"'],
  ["NaN payload", "service", () => planted("service", "append", { event: { type: "x" } }, [{ at: ["event", "payload"], value: "NaN" }]), "invalid_event", "event[0]: payload: NaN is not a JSON number"],
  ["BigInt payload", "service", () => planted("service", "append", { event: { type: "x" } }, [{ at: ["event", "payload"], value: "BigInt" }]), "invalid_event", "event[0]: payload: a BigInt is not a JSON value"],
  ["deep nesting: 1 000 levels", "service", () => planted("service", "append", { event: { type: "x" } }, [{ at: ["event", "payload"], value: "nested-1000" }]), "invalid_event", /values may nest at most 128 levels deep$/],
  // The caller can send 3 000 levels; the entrypoint's own forwarding call to the DO overflows the
  // stack, and the entrypoint then names the problem as the DO would (B4, fixed).
  ["deep nesting: 3 000 levels", "service", () => planted("service", "append", { event: { type: "x" } }, [{ at: ["event", "payload"], value: "nested-3000" }]), "invalid_event", /values may nest at most 128 levels deep$/],
  ["deep nesting: 10 000 levels (refused by the caller's serializer)", "service", () => planted("service", "append", { event: { type: "x" } }, [{ at: ["event", "payload"], value: "nested-10000" }]), PLATFORM, /^Maximum call stack size exceeded$/],
];

const results = [];

for (const [label, surface, run, code, message, status] of CASES) {
  test(`bad input [${surface}] ${label} → ${code === PLATFORM ? "caller-side RangeError" : code}${status ? ` (${status})` : ""}; storage unchanged; healthy after`, async () => {
    const logBefore = await readLog(mf, name);
    const stateBefore = await liveState(mf, name);
    const started = Date.now();
    const outcome = await run();
    const ms = Date.now() - started;
    assert.equal(outcome.ok, false, `expected ${code}, got success ${JSON.stringify(outcome).slice(0, 300)}`);
    let detail = outcome.error;
    if (code === ANY_CODE) {
      const c = outcome.error.split(": ")[0];
      assert.ok(CODES.includes(c) && outcome.error.length > c.length + 2, `expected "<code>: <message>", got ${JSON.stringify(outcome.error.slice(0, 300))}`);
      detail = outcome.error.slice(c.length + 2);
    } else if (code !== PLATFORM) {
      assert.ok(outcome.error.startsWith(`${code}: `), `expected "${code}: …", got ${JSON.stringify(outcome.error.slice(0, 300))}`);
      detail = outcome.error.slice(code.length + 2);
    }
    if (typeof message === "string") assert.equal(detail, message);
    else if (message instanceof RegExp) assert.match(detail.slice(0, 500), message);
    if (status !== undefined) assert.equal(outcome.status, status, "HTTP status");

    assert.deepEqual(await readLog(mf, name), logBefore, "the log changed");
    assert.deepEqual(await liveState(mf, name), stateBefore, "the core state changed");

    const healthy = await callOn(mf, surface, name, "append", { event: { type: "app/healthy", payload: { after: label } } });
    assert.ok(healthy.ok, `a normal append after "${label}" failed: ${healthy.error}`);
    // A stream that was never written (reads create nothing) gets created@1 and woken@2 first.
    assert.equal(healthy.result.offset, (stateBefore.maxOffset || 2) + 1);
    results.push({ surface, label, code, ms });
  });
}

// Inputs at the edge that are valid: they must be accepted and round-trip exactly.
const EDGES = [
  ["a 4 MiB payload key (event < 8 MiB)", "http", { type: "edge/bigkey", payload: { [bigKey]: 1 } }],
  ["a 4 MiB payload key (event < 8 MiB)", "do", { type: "edge/bigkey", payload: { [bigKey]: 2 } }],
  ["NUL and astral characters", "http", { type: "edge/chars\u0000", payload: "\u0000\u{1F600}\uffff", idempotencyKey: "edge-\u{1F600}" }],
  ["payload nested 120 levels", "do", { type: "edge/deep", payload: JSON.parse(nestedText(120)) }],
  ["payload nested 120 levels", "http", { type: "edge/deep", payload: JSON.parse(nestedText(120)) }],
  ["array-index keys reorder as in JS", "http", { type: "edge/keys", payload: { b: 1, 10: 2, a: 3, 1: 4 } }],
];
for (const [label, surface, event] of EDGES) {
  test(`edge input [${surface}] ${label} → accepted and read back exactly`, async () => {
    const o = await callOn(mf, surface, name, "append", { event });
    assert.ok(o.ok, o.error);
    assert.deepEqual(o.result.payload, JSON.parse(JSON.stringify(event.payload)));
    const stored = await callOn(mf, "do", name, "getEvent", { offset: o.result.offset });
    assert.equal(bytesOf(stored.result), bytesOf(o.result));
  });
}

// A call's argument enters the stream as its JSON.stringify text (docs/protocol.md#append-input):
// a property holding a function is absent there, as one holding undefined is; a boxed primitive
// is its value. Everything else JSON cannot hold is still refused (the cases above).
test("edge input [do] a function-valued property counts as absent, a boxed primitive as its value", async () => {
  const o = await planted("do", "append", { event: { type: "edge/function", metadata: { m: 1 } } }, [
    { at: ["event", "payload"], value: "function" },
    { at: ["event", "metadata", "s"], value: "boxedString" },
  ]);
  assert.ok(o.ok, o.error);
  assert.equal("payload" in o.result, false);
  assert.deepEqual(o.result.metadata, { m: 1, s: "s" });
});

test("edge input [http] numbers needing 17 significant digits are stored as JavaScript parses them", async () => {
  const text = '{"event":{"type":"edge/numbers","payload":[123456789.12345679,1.04892106813361e+195,0.30000000000000004]}}';
  const o = await rawHttp("append", text);
  assert.ok(o.ok, o.error);
  assert.deepEqual(o.result.payload, JSON.parse(text).event.payload);
});

test("bad input: the worker is healthy on every surface at the end, and the log is gap-free", async (t) => {
  for (const surface of ["do", "service", "http"]) {
    const o = await callOn(mf, surface, name, "append", { event: { type: "app/final" } });
    assert.ok(o.ok, `${surface}: ${o.error}`);
  }
  const log = await readLog(mf, name);
  log.forEach((e, i) => assert.equal(e.offset, i + 1));
  t.diagnostic(`bad-input summary ${JSON.stringify({ cases: results.length, byCode: results.reduce((m, r) => ({ ...m, [r.code]: (m[r.code] ?? 0) + 1 }), {}), slowestMs: Math.max(...results.map((r) => r.ms)) })}`);
});
