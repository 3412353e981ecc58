// Small assertion helpers shared by the miniflare/do_*.test.mjs files.
import assert from "node:assert/strict";
import { call, tryCall } from "./mf.mjs";

/** `S/x` → `events.iterate.com/stream/x`. */
export const S = (x) => `events.iterate.com/stream/${x}`;

export const ISO_MS_RE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
export const UUID_V4_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
export const TRIP_REASON = "circuit breaker tripped: burst rate limit exceeded";
export const SHUTTING_DOWN = "internal: stream incarnation is shutting down; retry";

/** UTF-8 byte length. */
export const bytes = (s) => Buffer.byteLength(s, "utf8");

/**
 * Asserts a raw outcome (from tryCall / callMany) is a rejection `<code>: <message>`.
 * message: a string → the whole error must equal `<code>: <message>`;
 *          a RegExp → the part after `<code>: ` must match it; omitted → only the code is checked.
 * Returns the full error string.
 */
export function assertError(outcome, code, message, note) {
  assert.equal(outcome.ok, false, `expected a ${code} rejection${note ? ` (${note})` : ""}, got ${JSON.stringify(outcome).slice(0, 300)}`);
  const err = outcome.error;
  assert.equal(typeof err, "string");
  if (typeof message === "string") {
    assert.equal(err, `${code}: ${message}`, note);
  } else {
    assert.ok(err.startsWith(`${code}: `), `expected "${code}: …", got ${JSON.stringify(err)}${note ? ` (${note})` : ""}`);
    if (message instanceof RegExp) assert.match(err.slice(code.length + 2), message, note);
  }
  return err;
}

/** tryCall + assertError. */
export async function expectError(mf, name, method, arg, code, message, note) {
  return assertError(await tryCall(mf, name, method, arg), code, message, note);
}

/** Asserts an outcome resolved with `undefined` (no result). */
export function assertUndefined(outcome, note) {
  assert.deepEqual(outcome, { ok: true, hasResult: false }, note);
}

/**
 * Reads create nothing (docs/protocol.md#reads-create-nothing), but the tests written before that
 * look at a stream as a read used to leave it: created@1, woken@2. So `readAll` and `coreState`
 * first boot a stream that holds nothing, with a test hook that writes nothing else (a stream
 * with no events has no connection to tear down). Without the test hooks they only read.
 */
export async function bootIfUnwritten(mf, name) {
  const state = await tryCall(mf, name, "runtimeState");
  if (state.ok && state.result.coreProcessorState.eventCount === 0) await tryCall(mf, name, "runIdleTeardownNow");
}

/** Every event of the stream, in order (pages through getEvents); boots a never-written stream first. */
export async function readAll(mf, name) {
  await bootIfUnwritten(mf, name);
  const out = [];
  for (;;) {
    const after = out.length ? out[out.length - 1].offset : 0;
    const page = await call(mf, name, "getEvents", { afterOffset: after, limit: 1000 });
    if (page.length === 0) return out;
    out.push(...page);
  }
}

/** runtimeState().coreProcessorState; boots a never-written stream first. */
export async function coreState(mf, name) {
  await bootIfUnwritten(mf, name);
  return (await call(mf, name, "runtimeState")).coreProcessorState;
}

/** {events, state}: the whole log and the core state, for "nothing changed" checks. */
export async function snapshot(mf, name) {
  const events = await readAll(mf, name);
  const state = await coreState(mf, name);
  return { events, state };
}

/** Asserts the log and the core state equal an earlier snapshot exactly. */
export async function assertUnchanged(mf, name, before, note) {
  const after = await snapshot(mf, name);
  assert.deepEqual(after.events, before.events, `log changed${note ? ` (${note})` : ""}`);
  assert.deepEqual(after.state, before.state, `coreProcessorState changed${note ? ` (${note})` : ""}`);
}

/**
 * Calls fn() until pred(value) holds or timeoutMs passes; returns the last value.
 * On timeout, asserts with the last value in the message.
 */
export async function pollUntil(fn, pred, { timeoutMs = 20_000, intervalMs = 25, what = "condition" } = {}) {
  const deadline = Date.now() + timeoutMs;
  let value;
  for (;;) {
    value = await fn();
    if (pred(value)) return value;
    if (Date.now() >= deadline) assert.fail(`${what} not reached within ${timeoutMs} ms; last value: ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * A call right after kill()/reset(): docs/protocol.md#kill-and-reset allows `internal: stream incarnation is shutting down; retry`
 * until the abort lands, so retry on exactly that error (bounded); anything else is returned as is.
 */
export async function tryCallAfterKill(mf, name, method, arg, { timeoutMs = 20_000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const outcome = arg === undefined ? await tryCall(mf, name, method) : await tryCall(mf, name, method, arg);
    if (outcome.ok || outcome.error !== SHUTTING_DOWN || Date.now() >= deadline) return outcome;
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function callAfterKill(mf, name, method, arg) {
  const outcome = await tryCallAfterKill(mf, name, method, arg);
  if (!outcome.ok) throw new Error(outcome.error);
  return outcome.hasResult ? outcome.result : undefined;
}

/** Asserts offsets are exactly from, from+1, …, from+n-1. */
export function assertContiguous(offsets, from, note) {
  assert.deepEqual(offsets, Array.from({ length: offsets.length }, (_, i) => from + i), note);
}

/** An `S/configured` event input setting the breaker. */
export function breakerConfig(burstCapacity, refillRatePerMinute) {
  return { type: S("configured"), payload: { config: { circuitBreaker: { burstCapacity, refillRatePerMinute } } } };
}

/**
 * The spend rule (docs/protocol.md#rules) for one event at time t (epoch ms), on a copy of the bucket.
 * Only used up to and including the first deficit, where every reading of the rules agrees.
 */
export function spend(bucket, t) {
  const b = { ...bucket };
  const refilled =
    b.lastRefillAtMs === null
      ? b.burstCapacity
      : Math.min(b.burstCapacity, b.availableTokens + (Math.max(0, t - b.lastRefillAtMs) * b.refillRatePerMinute) / 60000);
  b.availableTokens = refilled - 1;
  b.lastRefillAtMs = t;
  return b;
}

/** The initial core state (docs/protocol.md#state-shape). */
export function initialState() {
  return {
    namespace: "uninitialized",
    path: "uninitialized",
    createdAt: "uninitialized",
    streamId: null,
    incarnationId: "uninitialized",
    metadata: {},
    config: { simulatedStorageSyncDelayMs: 0 },
    eventCount: 0,
    maxOffset: 0,
    childPaths: [],
    childCount: 0,
    paused: false,
    pauseReason: null,
    processorsBySlug: {},
    subscriptionsByKey: {},
    connectionsByKey: {},
    circuitBreaker: { availableTokens: 100000, lastRefillAtMs: null, burstCapacity: 100000, refillRatePerMinute: 6000000 },
  };
}

export const STATE_KEYS = Object.keys(initialState());

/** An `S/created` payload: `{namespace, path, streamId}`, the streamId a random UUID v4. */
export function assertCreatedPayload(payload, { namespace, path }, note) {
  assert.deepEqual(Object.keys(payload), ["namespace", "path", "streamId"], note);
  assert.deepEqual({ namespace: payload.namespace, path: payload.path }, { namespace, path }, note);
  assert.match(payload.streamId, UUID_V4_RE, note);
}
export const EVENT_KEY_ORDER = ["type", "payload", "metadata", "source", "idempotencyKey", "offset", "createdAt"];

/** Asserts the keys of a committed event appear in the committed order (docs/protocol.md#committed-event) (absent ones skipped). */
export function assertEventKeyOrder(ev, note) {
  const keys = Object.keys(ev);
  assert.deepEqual(keys, EVENT_KEY_ORDER.filter((k) => keys.includes(k)), `key order${note ? ` (${note})` : ""}`);
  assert.deepEqual(keys.filter((k) => !EVENT_KEY_ORDER.includes(k)), [], `unexpected keys${note ? ` (${note})` : ""}`);
}
