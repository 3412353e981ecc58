// Input validation over DO JS-RPC: strict event input, limits, reserved types, core payloads,
// argument checking, and "a rejected batch changes nothing" (docs/protocol.md#event-model,
// #errors, #rpc-methods; docs/architecture.md#the-append-path).
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import { startStreams, call, tryCall, uniqueName } from "./helpers/mf.mjs";
import { S, bytes, assertError, expectError, coreState, snapshot, assertUnchanged, breakerConfig } from "./helpers/assertions.mjs";

let mf;
before(async () => {
  mf = await startStreams();
});
after(async () => {
  await mf?.dispose();
});

const RESERVED = ["created", "woken", "subscriber-connected", "subscriber-disconnected"].map(S);

test("unknown key foo, or source:{x:1} → invalid_event, and nothing is written", async () => {
  const name = uniqueName();
  await call(mf, name, "append", { event: { type: "app/pre" } });
  const snap = await snapshot(mf, name);
  await expectError(mf, name, "append", { event: { type: "app/x", foo: 1 } }, "invalid_event", 'event[0]: unknown key "foo"');
  await expectError(mf, name, "append", { event: { type: "app/x", source: { x: 1 } } }, "invalid_event", /^event\[0\]: .*x/);
  await expectError(mf, name, "append", { event: { type: "app/x", createdAt: "2026-01-01T00:00:00.000Z" } }, "invalid_event", 'event[0]: unknown key "createdAt"');
  await expectError(mf, name, "appendBatch", { events: [{ type: "app/a" }, { type: "app/b" }, { type: "app/x", foo: 1 }] }, "invalid_event", 'event[2]: unknown key "foo"');
  await assertUnchanged(mf, name, snap);
});

test("source is strict {processor?: {slug: string, version: string}}", async () => {
  const name = uniqueName();
  const snap = await snapshot(mf, name);
  for (const source of [
    { processor: { slug: "a" } },
    { processor: { version: "1" } },
    { processor: { slug: "a", version: 1 } },
    { processor: { slug: 1, version: "1" } },
    { processor: { slug: "a", version: "1", extra: true } },
    { processor: "a" },
    "a",
    [],
    7,
  ]) {
    await expectError(mf, name, "append", { event: { type: "app/x", source } }, "invalid_event", /^event\[0\]: /, JSON.stringify(source));
  }
  await assertUnchanged(mf, name, snap);
  const ok = await call(mf, name, "append", { event: { type: "app/x", source: {} } });
  assert.deepEqual(ok.source, {});
  const ok2 = await call(mf, name, "append", { event: { type: "app/x", source: { processor: { slug: "s", version: "v" } } } });
  assert.deepEqual(ok2.source, { processor: { slug: "s", version: "v" } });
});

test("metadata must be an object; type must be a string; the event must be an object", async () => {
  const name = uniqueName();
  const snap = await snapshot(mf, name);
  for (const metadata of [[], "m", 1, true, null]) {
    await expectError(mf, name, "append", { event: { type: "app/x", metadata } }, "invalid_event", /^event\[0\]: .*metadata/, JSON.stringify(metadata));
  }
  for (const type of [5, null, {}, ["a"]]) {
    await expectError(mf, name, "append", { event: { type } }, "invalid_event", /^event\[0\]: .*type/, JSON.stringify(type));
  }
  await expectError(mf, name, "append", { event: {} }, "invalid_event", /^event\[0\]: .*type/, "missing type");
  for (const event of ["x", 1, [], null]) {
    await expectError(mf, name, "append", { event }, "invalid_event", /^event\[0\]: /, JSON.stringify(event));
  }
  await expectError(mf, name, "appendBatch", { events: [{ type: "app/x" }, "nope"] }, "invalid_event", /^event\[1\]: /);
  await assertUnchanged(mf, name, snap);
});

test("offset must be an integer from 0 to 2^53−1", async () => {
  const name = uniqueName();
  const snap = await snapshot(mf, name);
  for (const offset of [-1, 1.5, "3", 2 ** 53, null, true]) {
    await expectError(mf, name, "append", { event: { type: "app/x", offset } }, "invalid_event", /^event\[0\]: .*offset/, JSON.stringify(offset));
  }
  await assertUnchanged(mf, name, snap);
  // 2^53−1 is valid input, so it fails only the precondition.
  const { maxOffset: m } = snap.state;
  await expectError(mf, name, "append", { event: { type: "app/x", offset: 2 ** 53 - 1 } }, "offset_mismatch", `expected offset ${m + 1}, got ${2 ** 53 - 1}`);
});

test("type of 0 or 257 bytes → invalid_event; 256 bytes → OK (bytes, not characters)", async () => {
  const name = uniqueName();
  const snap = await snapshot(mf, name);
  await expectError(mf, name, "append", { event: { type: "" } }, "invalid_event", /^event\[0\]: .*type/);
  await expectError(mf, name, "append", { event: { type: "t".repeat(257) } }, "invalid_event", /^event\[0\]: .*type/);
  // 128 two-byte characters + "x" = 257 bytes but only 129 characters.
  const multi257 = "é".repeat(128) + "x";
  assert.equal(bytes(multi257), 257);
  await expectError(mf, name, "append", { event: { type: multi257 } }, "invalid_event", /^event\[0\]: .*type/);
  await assertUnchanged(mf, name, snap);

  const t256 = "t".repeat(256);
  assert.equal((await call(mf, name, "append", { event: { type: t256 } })).type, t256);
  const multi256 = "é".repeat(128);
  assert.equal(bytes(multi256), 256);
  assert.equal((await call(mf, name, "append", { event: { type: multi256 } })).type, multi256);
  assert.equal((await call(mf, name, "append", { event: { type: "a" } })).type, "a");
});

test("idempotencyKey \"   \" → invalid_event; \"  k  \" is stored as k; 1 to 1024 bytes once trimmed", async () => {
  const name = uniqueName();
  const snap = await snapshot(mf, name);
  for (const key of ["   ", "", "\t\n ", 5, null, {}]) {
    await expectError(mf, name, "append", { event: { type: "app/x", idempotencyKey: key } }, "invalid_event", /^event\[0\]: .*idempotencyKey/, JSON.stringify(key));
  }
  await expectError(mf, name, "append", { event: { type: "app/x", idempotencyKey: "k".repeat(1025) } }, "invalid_event", /^event\[0\]: .*idempotencyKey/);
  await expectError(mf, name, "append", { event: { type: "app/x", idempotencyKey: "é".repeat(512) + "k" } }, "invalid_event", /^event\[0\]: .*idempotencyKey/, "1025 bytes");
  await assertUnchanged(mf, name, snap);

  const ev = await call(mf, name, "append", { event: { type: "app/x", idempotencyKey: "  k  " } });
  assert.equal(ev.idempotencyKey, "k");
  assert.deepEqual(await call(mf, name, "getEvent", { offset: ev.offset }), ev);
  assert.deepEqual(await call(mf, name, "getEvent", { idempotencyKey: "k" }), ev);
  assert.deepEqual(await call(mf, name, "getEvent", { idempotencyKey: " k " }), ev, "getEvent trims the key too");

  // 1024 bytes after trimming is fine, even with padding around it.
  const k1024 = "k".repeat(1024);
  assert.equal((await call(mf, name, "append", { event: { type: "app/x", idempotencyKey: `  ${k1024}  ` } })).idempotencyKey, k1024);
  const e512 = "é".repeat(512);
  assert.equal((await call(mf, name, "append", { event: { type: "app/x", idempotencyKey: e512 } })).idempotencyKey, e512);
});

test("reserved types are rejected on append and appendBatch with the exact message", async () => {
  const name = uniqueName();
  const snap = await snapshot(mf, name);
  for (const type of RESERVED) {
    const msg = `event type "${type}" is reserved for the stream itself`;
    await expectError(mf, name, "append", { event: { type } }, "invalid_event", msg, type);
    await expectError(mf, name, "append", { event: { type, payload: { incarnationId: "x", subscriptionKey: "k", direction: "inbound" } } }, "invalid_event", msg, type);
    await expectError(mf, name, "appendBatch", { events: [{ type: "app/ok" }, { type }] }, "invalid_event", msg, `${type} in a batch`);
  }
  await assertUnchanged(mf, name, snap);
  // Non-reserved system types are accepted (with valid payloads).
  const ev = await call(mf, name, "append", { event: { type: S("metadata-updated"), payload: { metadata: { a: 1 } } } });
  assert.equal(ev.type, S("metadata-updated"));
  assert.deepEqual((await coreState(mf, name)).metadata, { a: 1 });
  // Legacy and look-alike types are ordinary events.
  await call(mf, name, "append", { event: { type: S("processor-registered"), payload: { anything: true } } });
  await call(mf, name, "append", { event: { type: "events.iterate.com/circuit-breaker/configured", payload: 1 } });
  await call(mf, name, "append", { event: { type: S("woken") + "x" } });
});

test("S/configured with burstCapacity:0 → invalid_event naming the field; bad config shapes rejected", async () => {
  const name = uniqueName();
  const snap = await snapshot(mf, name);
  await expectError(mf, name, "append", { event: breakerConfig(0, 60) }, "invalid_event", /^event\[0\]: .*burstCapacity/);
  await expectError(mf, name, "append", { event: breakerConfig(-1, 60) }, "invalid_event", /^event\[0\]: .*burstCapacity/);
  await expectError(mf, name, "append", { event: breakerConfig(1.5, 60) }, "invalid_event", /^event\[0\]: .*burstCapacity/);
  await expectError(mf, name, "append", { event: breakerConfig("5", 60) }, "invalid_event", /^event\[0\]: .*burstCapacity/);
  await expectError(mf, name, "append", { event: breakerConfig(5, 0) }, "invalid_event", /^event\[0\]: .*refillRatePerMinute/);
  await expectError(mf, name, "append", { event: breakerConfig(5, 0.5) }, "invalid_event", /^event\[0\]: .*refillRatePerMinute/);
  await expectError(
    mf,
    name,
    "append",
    { event: { type: S("configured"), payload: { config: { circuitBreaker: { burstCapacity: 5 } } } } },
    "invalid_event",
    /^event\[0\]: .*refillRatePerMinute/,
  );
  await expectError(mf, name, "append", { event: { type: S("configured"), payload: { config: { simulatedStorageSyncDelayMs: -1 } } } }, "invalid_event", /^event\[0\]: .*simulatedStorageSyncDelayMs/);
  await expectError(mf, name, "append", { event: { type: S("configured"), payload: { config: { simulatedStorageSyncDelayMs: 2.5 } } } }, "invalid_event", /^event\[0\]: .*simulatedStorageSyncDelayMs/);
  await expectError(mf, name, "append", { event: { type: S("configured"), payload: {} } }, "invalid_event", /^event\[0\]: .*config/);
  await expectError(mf, name, "append", { event: { type: S("configured") } }, "invalid_event", /^event\[0\]: /, "no payload");
  // In a batch, the index is the failing input's.
  await expectError(mf, name, "appendBatch", { events: [{ type: "app/x" }, breakerConfig(0, 1)] }, "invalid_event", /^event\[1\]: .*burstCapacity/);
  await assertUnchanged(mf, name, snap);

  // Valid: fields set, unknown config keys ignored (but stored).
  const ev = await call(mf, name, "append", {
    event: { type: S("configured"), payload: { config: { simulatedStorageSyncDelayMs: 25, circuitBreaker: { burstCapacity: 10, refillRatePerMinute: 60 }, other: 1 } } },
  });
  assert.deepEqual(ev.payload.config.other, 1);
  const st = await coreState(mf, name);
  assert.deepEqual(st.config, { simulatedStorageSyncDelayMs: 25, circuitBreaker: { burstCapacity: 10, refillRatePerMinute: 60 } });
  assert.deepEqual(st.circuitBreaker, { availableTokens: 10, lastRefillAtMs: Date.parse(ev.createdAt), burstCapacity: 10, refillRatePerMinute: 60 });
});

test("core payloads are checked at append time, naming the field", async () => {
  const name = uniqueName();
  const snap = await snapshot(mf, name);
  const cases = [
    [{ type: S("metadata-updated"), payload: { metadata: [] } }, /metadata/],
    [{ type: S("metadata-updated"), payload: {} }, /metadata/],
    [{ type: S("child-stream-created"), payload: { childPath: "   " } }, /childPath/],
    [{ type: S("child-stream-created"), payload: { childPath: 5 } }, /childPath/],
    [{ type: S("subscription-removed"), payload: { subscriptionKey: "" } }, /subscriptionKey/],
    [{ type: S("error-occurred"), payload: { message: " " } }, /message/],
    [{ type: S("error-occurred"), payload: { message: "m", error: { name: "n" } } }, /message/],
    [{ type: S("paused"), payload: { reason: "  " } }, /reason/],
    [{ type: S("paused"), payload: { reason: 3 } }, /reason/],
    [{ type: S("resumed"), payload: { reason: false } }, /reason/],
  ];
  for (const [event, detail] of cases) {
    await expectError(mf, name, "append", { event }, "invalid_event", new RegExp(`^event\\[0\\]: .*${detail.source}`), JSON.stringify(event));
  }
  await assertUnchanged(mf, name, snap);
  // Unknown payload keys are ignored by the reducer but stored.
  const ev = await call(mf, name, "append", { event: { type: S("error-occurred"), payload: { message: " boom ", extra: [1] } } });
  assert.deepEqual(ev.payload, { message: " boom ", extra: [1] });
});

test("a rejected batch leaves getEvents and runtimeState().coreProcessorState exactly as before", async () => {
  const name = uniqueName();
  // A non-default breaker so a stray spend would show in the bucket.
  await call(mf, name, "append", { event: breakerConfig(1000, 60) });
  await call(mf, name, "appendBatch", { events: [{ type: "app/a", idempotencyKey: "a" }, { type: "app/b" }] });
  const snap = await snapshot(mf, name);
  const m = snap.state.maxOffset;
  const rejected = [
    ["invalid_event", { events: [{ type: "app/ok" }, { type: "app/bad", nope: 1 }] }],
    ["invalid_event", { events: [{ type: "app/ok" }, { type: S("woken"), payload: { incarnationId: "x" } }] }],
    ["invalid_event", { events: [{ type: "app/ok" }, { type: S("metadata-updated"), payload: { metadata: 1 } }] }],
    ["invalid_event", { events: [{ type: S("metadata-updated"), payload: { metadata: { changed: true } } }, { type: "" }] }],
    ["invalid_event", { events: [breakerConfig(1, 1), { type: "app/x", idempotencyKey: " " }] }],
    ["offset_mismatch", { events: [{ type: "app/ok", offset: m + 1 }, { type: "app/x", offset: m + 1 }] }],
    ["idempotency_conflict", { events: [{ type: "app/ok" }, { type: "app/x", idempotencyKey: "a", offset: m + 2 }] }],
    ["stream_paused", { events: [{ type: S("paused"), payload: { reason: "r" } }, { type: "app/x" }] }],
    ["event_too_large", { events: [{ type: "app/ok" }, { type: "app/x", payload: "x".repeat(8 * 1024 * 1024) }] }],
    ["batch_too_large", { events: Array.from({ length: 1001 }, () => ({ type: "app/x" })) }],
    ["invalid_request", { events: [{ type: "app/ok" }], extra: 1 }],
    ["invalid_request", { events: { type: "app/ok" } }],
  ];
  for (const [code, arg] of rejected) {
    const outcome = await tryCall(mf, name, "appendBatch", arg);
    assertError(outcome, code, undefined, JSON.stringify(arg).slice(0, 120));
    await assertUnchanged(mf, name, snap, `after ${code}`);
  }
  for (const [code, event] of [
    ["invalid_event", { type: "app/x", foo: 1 }],
    ["offset_mismatch", { type: "app/x", offset: m + 7 }],
  ]) {
    assertError(await tryCall(mf, name, "append", { event }), code);
    await assertUnchanged(mf, name, snap, `after append ${code}`);
  }
  // And the stream still accepts the next valid append at the next offset.
  assert.equal((await call(mf, name, "append", { event: { type: "app/next" } })).offset, m + 1);
});

test("argument checking → invalid_request with the documented messages; DO errors read `<code>: <message>`", async () => {
  const name = uniqueName();
  await call(mf, name, "getEvents", {});
  const snap = await snapshot(mf, name);
  await expectError(mf, name, "append", { event: { type: "x" }, foo: 1 }, "invalid_request", 'unknown argument "foo"');
  await expectError(mf, name, "appendBatch", { events: [], event: { type: "x" } }, "invalid_request", 'unknown argument "event"');
  await expectError(mf, name, "getEvents", { after: 1 }, "invalid_request", 'unknown argument "after"');
  await expectError(mf, name, "getEvent", { offset: 1, x: 1 }, "invalid_request", 'unknown argument "x"');
  await expectError(mf, name, "runtimeState", { verbose: true }, "invalid_request", 'unknown argument "verbose"');
  await expectError(mf, name, "reduce", { event: {}, state: {} }, "invalid_request", 'unknown argument "state"');
  await expectError(mf, name, "kill", { now: true }, "invalid_request", 'unknown argument "now"');
  await expectError(mf, name, "reset", { hard: true }, "invalid_request", 'unknown argument "hard"');
  await expectError(mf, name, "append", {}, "invalid_request");
  await expectError(mf, name, "append", undefined, "invalid_request", undefined, "append with no argument");
  await expectError(mf, name, "appendBatch", {}, "invalid_request");
  await expectError(mf, name, "appendBatch", { events: "x" }, "invalid_request");
  await expectError(mf, name, "append", "x", "invalid_request", undefined, "a non-object argument");
  await expectError(mf, name, "getEvents", [1], "invalid_request", undefined, "an array argument");
  await expectError(mf, name, "append", { event: { type: "x" }, streamPath: 5 }, "invalid_request");
  await expectError(mf, name, "getEvents", { afterOffset: -1 }, "invalid_request", "afterOffset must be a non-negative integer");
  await expectError(mf, name, "getEvents", { afterOffset: 1.5 }, "invalid_request", "afterOffset must be a non-negative integer");
  await expectError(mf, name, "getEvents", { afterOffset: "1" }, "invalid_request", "afterOffset must be a non-negative integer");
  await expectError(mf, name, "getEvents", { beforeOffset: -2 }, "invalid_request", "beforeOffset must be a non-negative integer");
  await expectError(mf, name, "getEvent", { offset: -1 }, "invalid_request", "offset must be a non-negative integer");
  // The stream survived all of that: kill/reset with bad arguments did nothing.
  await assertUnchanged(mf, name, snap);

  // Every DO error message has the `<code>: <message>` form with a documented code (docs/protocol.md#errors).
  const codes = new Set(["invalid_request", "invalid_event", "invalid_path", "invalid_namespace", "offset_mismatch", "idempotency_conflict", "stream_paused", "event_too_large", "batch_too_large", "not_found", "method_not_allowed", "unauthorized", "subscriber_not_allowed", "internal"]);
  const samples = [
    await tryCall(mf, name, "append", { event: { type: "x", foo: 1 } }),
    await tryCall(mf, name, "getEvent", { offset: 999 }),
    await tryCall(mf, name, "getEvents", { limit: 0 }),
    await tryCall(mf, name, "append", { event: { type: "x", offset: 1 } }),
    await tryCall(mf, "Bad:/x", "runtimeState"),
    await tryCall(mf, "t:/a//b", "runtimeState"),
    await tryCall(mf, name, "append", { event: { type: "x" }, streamPath: "../../.." }),
  ];
  for (const o of samples) {
    assert.equal(o.ok, false);
    const m = /^([a-z_]+): (.+)$/s.exec(o.error);
    assert.ok(m, `error ${JSON.stringify(o.error)} reads <code>: <message>`);
    assert.ok(codes.has(m[1]), `known code ${m[1]}`);
    assert.doesNotMatch(o.error, /SELECT|INSERT|sqlite|\bat .*:\d+:\d+/i, "no SQL or stack in the message");
  }
});
