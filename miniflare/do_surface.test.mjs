// The DO JS-RPC surface: streamPath forwarding, the method allowlist, test hooks, and the
// reduce preview (docs/protocol.md#batches, #streampath, #durable-object-rpc, #runtimestate).
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { startStreams, call, tryCall, uniqueName, REPO_ROOT } from "./helpers/mf.mjs";
import {
  S,
  UUID_V4_RE,
  STATE_KEYS,
  assertError,
  expectError,
  assertUndefined,
  readAll,
  coreState,
  snapshot,
  assertUnchanged,
  breakerConfig,
  spend,
  initialState,
  assertCreatedPayload,
} from "./helpers/assertions.mjs";

let mf;
before(async () => {
  mf = await startStreams();
});
after(async () => {
  await mf?.dispose();
});

/** A namespace of its own, so `/p`, `/q` and `/` are exactly the spec's paths. */
const freshNamespace = () => `f${Math.random().toString(36).slice(2, 10)}`;
const typesOf = (events) => events.map((e) => e.type);

// ---- streamPath (docs/protocol.md#streampath) ----

test("from /p, streamPath `c` lands on /p/c (forwarded without streamPath)", async () => {
  const ns = freshNamespace();
  const base = `${ns}:/p`;
  const baseBefore = await readAll(mf, base);
  const ev = await call(mf, base, "append", { streamPath: "c", event: { type: "app/fwd", payload: { to: "c" } } });
  assert.equal(ev.offset, 3, "the fresh child's first user offset");
  const child = await readAll(mf, `${ns}:/p/c`);
  assert.deepEqual(typesOf(child), [S("created"), S("woken"), "app/fwd"]);
  assertCreatedPayload(child[0].payload, { namespace: ns, path: "/p/c" });
  assert.deepEqual(child[2], ev);
  assert.ok(!typesOf(await readAll(mf, base)).includes("app/fwd"), "not on the base stream");
  assert.deepEqual((await readAll(mf, base)).slice(0, 2), baseBefore);

  // appendBatch forwards too, and returns the aligned array.
  const batch = await call(mf, base, "appendBatch", { streamPath: "c", events: [{ type: "app/b1" }, { type: "app/b2", idempotencyKey: "k" }] });
  assert.deepEqual(batch.map((e) => e.offset), [4, 5]);
  assert.deepEqual((await readAll(mf, `${ns}:/p/c`)).slice(3, 5), batch);
  // An idempotency hit through forwarding returns the target's existing event.
  assert.deepEqual(await call(mf, base, "append", { streamPath: "c", event: { type: "app/other", idempotencyKey: "k" } }), batch[1]);
  // Not re-resolved on the target (that would give /p/c/c). Checked last: reading /p/c/c creates it,
  // and its created notifies /p/c.
  assert.ok(!typesOf(await readAll(mf, `${ns}:/p/c/c`)).some((t) => t.startsWith("app/")));
});

test("streamPath `.` (and others that resolve to /p) append locally", async () => {
  const ns = freshNamespace();
  const base = `${ns}:/p`;
  const { maxOffset: m } = await coreState(mf, base);
  const local = await call(mf, base, "append", { streamPath: ".", event: { type: "app/local", payload: 1 } });
  assert.equal(local.offset, m + 1);
  assert.deepEqual((await readAll(mf, base)).at(-1), local);
  for (const sp of ["./", "../p", "/p", "", "././/"]) {
    const ev = await call(mf, base, "append", { streamPath: sp, event: { type: "app/local", payload: sp } });
    assert.deepEqual((await readAll(mf, base)).at(-1), ev, `streamPath ${JSON.stringify(sp)} is local`);
  }
  const batch = await call(mf, base, "appendBatch", { streamPath: ".", events: [{ type: "app/l1" }, { type: "app/l2" }] });
  assert.deepEqual((await readAll(mf, base)).slice(-2), batch);
});

test("streamPath `/q` → /q; `..` → /; `../c` → /c; `./c/../d` → /p/d", async () => {
  const ns = freshNamespace();
  const base = `${ns}:/p`;
  const cases = [
    ["/q", "/q"],
    ["..", "/"],
    ["../c", "/c"],
    ["./c/../d", "/p/d"],
    ["c//e/", "/p/c/e"],
    ["/x/y/../z", "/x/z"],
  ];
  for (const [sp, target] of cases) {
    const ev = await call(mf, base, "append", { streamPath: sp, event: { type: "app/fwd", payload: { sp } } });
    const log = await readAll(mf, `${ns}:${target}`);
    assert.deepEqual(log.find((e) => e.type === "app/fwd" && e.payload.sp === sp), ev, `${sp} → ${target}`);
  }
  assert.ok(!typesOf(await readAll(mf, base)).includes("app/fwd"), "nothing landed on /p");
});

test("`../..` from /p → invalid_path with the exact message; other bad streamPaths", async () => {
  const ns = freshNamespace();
  const base = `${ns}:/p`;
  const snap = await snapshot(mf, base);
  await expectError(mf, base, "append", { streamPath: "../..", event: { type: "app/x" } }, "invalid_path", 'streamPath "../.." escapes the stream root (resolved from "/p")');
  await expectError(mf, base, "appendBatch", { streamPath: "../..", events: [{ type: "app/x" }] }, "invalid_path", 'streamPath "../.." escapes the stream root (resolved from "/p")');
  await expectError(mf, base, "append", { streamPath: "/..", event: { type: "app/x" } }, "invalid_path", 'streamPath "/.." escapes the stream root (resolved from "/p")');
  await expectError(mf, base, "append", { streamPath: "c/../../..", event: { type: "app/x" } }, "invalid_path", 'streamPath "c/../../.." escapes the stream root (resolved from "/p")');
  // A resolved path that is not a valid path (docs/protocol.md#naming-and-paths).
  await expectError(mf, base, "append", { streamPath: "a b", event: { type: "app/x" } }, "invalid_path", /^invalid path /);
  await expectError(mf, base, "append", { streamPath: "/a:b", event: { type: "app/x" } }, "invalid_path", /^invalid path /);
  await expectError(mf, base, "append", { streamPath: "x".repeat(1024), event: { type: "app/x" } }, "invalid_path", undefined, "streamPath over 1023 bytes");
  await assertUnchanged(mf, base, snap);
});

test("errors of the target stream come back unchanged", async () => {
  const ns = freshNamespace();
  const base = `${ns}:/p`;
  await expectError(mf, base, "append", { streamPath: "c", event: { type: "app/x", foo: 1 } }, "invalid_event", 'event[0]: unknown key "foo"');
  await expectError(mf, base, "append", { streamPath: "c", event: { type: S("woken") } }, "invalid_event", `event type "${S("woken")}" is reserved for the stream itself`);
  await call(mf, `${ns}:/p/c`, "append", { event: { type: S("paused"), payload: { reason: "child maintenance" } } });
  await expectError(mf, base, "append", { streamPath: "c", event: { type: "app/x" } }, "stream_paused", "stream paused: child maintenance");
  const { maxOffset: m } = await coreState(mf, `${ns}:/p/c`);
  await expectError(mf, base, "append", { streamPath: "c", event: { type: S("error-occurred"), payload: { message: "m" }, offset: m + 5 } }, "offset_mismatch", `expected offset ${m + 1}, got ${m + 5}`);
  await expectError(mf, base, "appendBatch", { streamPath: "c", events: Array.from({ length: 1001 }, () => ({ type: "x" })) }, "batch_too_large", "batch has 1001 events; the limit is 1000");
  // The base itself is not paused.
  assert.equal((await coreState(mf, base)).paused, false);
});

// ---- the allowlist (docs/protocol.md#durable-object-rpc) ----

// The methods of docs/protocol.md#rpc-methods plus the stream-to-stream child notice (keyed by the receiver, so that callers
// never need a reserved idempotency key).
const SPEC_METHODS = ["append", "appendBatch", "getEvent", "getEvents", "getState", "runtimeState", "reduce", "reset", "kill", "runIdleTeardownNow", "simulateHibernation", "memoryUsage", "runArchiveNow", "pendingWork", "deleteStream", "notifyChildStreamCreated"];
const RUNTIME_HANDLERS = ["constructor", "fetch", "alarm", "webSocketMessage", "webSocketClose", "webSocketError"];

test("the methods of src/entry.mjs equal the Rust allowlist and the documented table", () => {
  const entry = fs.readFileSync(path.join(REPO_ROOT, "src", "entry.mjs"), "utf8");
  // Up to the end of the class: the Directory class after it forwards its own methods.
  const body = entry.split("class Stream extends DurableObject")[1]?.split("\n}\n")[0];
  assert.ok(body, "entry.mjs declares class Stream extends DurableObject");
  const methods = [...body.matchAll(/^\s{2}([A-Za-z_$][\w$]*)\s*\([^)]*\)\s*\{/gm)].map((m) => m[1]);
  const forwarded = methods.filter((m) => !RUNTIME_HANDLERS.includes(m));
  assert.deepEqual([...forwarded].sort(), [...SPEC_METHODS].sort(), "entry.mjs forwards exactly the documented methods");
  for (const h of RUNTIME_HANDLERS.slice(1)) assert.ok(methods.includes(h), `entry.mjs forwards ${h}`);

  const rpc = fs.readFileSync(path.join(REPO_ROOT, "crates", "streams-core", "src", "rpc.rs"), "utf8");
  const jsName = /fn js_name\(self\)[^{]*\{([\s\S]*?)\n    \}/.exec(rpc);
  assert.ok(jsName, "rpc.rs has StreamMethod::js_name");
  const rust = [...jsName[1].matchAll(/=>\s*"([^"]+)"/g)].map((m) => m[1]);
  assert.deepEqual([...rust].sort(), [...SPEC_METHODS].sort(), "the Rust allowlist equals the documented table");
});

test("non-allowlisted methods reject on the stub and change nothing", async () => {
  const name = uniqueName();
  await call(mf, name, "append", { event: { type: "app/x" } });
  const snap = await snapshot(mf, name);
  for (const method of [
    "readCoreProcessorState",
    "writeCoreProcessorState",
    "subscribeOutbound",
    "free", // the wasm-bindgen destructor of the inner Rust object
    "ctx",
    "env",
    "handle",
    "call",
    "append_rpc",
    "alarm",
    "webSocketMessage",
    "webSocketClose",
    "webSocketError",
  ]) {
    const o = await tryCall(mf, name, method, {});
    assert.equal(o.ok, false, `${method} must reject, got ${JSON.stringify(o).slice(0, 200)}`);
    const o2 = await tryCall(mf, name, method);
    assert.equal(o2.ok, false, `${method}() must reject`);
  }
  await assertUnchanged(mf, name, snap, "no internal was reached");
  // The stream still works normally.
  assert.equal((await call(mf, name, "append", { event: { type: "app/y" } })).offset, snap.state.maxOffset + 1);
});

test("every allowlisted method is callable on the stub", async () => {
  const name = uniqueName();
  const ev = await call(mf, name, "append", { event: { type: "app/x", idempotencyKey: "k" } });
  assert.equal((await call(mf, name, "appendBatch", { events: [{ type: "app/y" }] })).length, 1);
  assert.deepEqual(await call(mf, name, "getEvent", { idempotencyKey: "k" }), ev);
  assert.ok(Array.isArray(await call(mf, name, "getEvents", {})));
  assert.ok((await call(mf, name, "runtimeState")).coreProcessorState);
  assert.ok((await call(mf, name, "reduce", { event: { ...ev, offset: 99 } })).maxOffset === 99);
  assertUndefined(await tryCall(mf, name, "runIdleTeardownNow"));
  assert.deepEqual(await call(mf, name, "simulateHibernation"), { bootCommits: 1 }, "the woken fact; no socket to re-announce");
  assert.deepEqual(Object.keys(await call(mf, name, "memoryUsage")), ["wasmMemoryBytes"]);
  assertUndefined(await tryCall(mf, name, "kill"));
  const other = uniqueName();
  await call(mf, other, "getEvents", {});
  assertUndefined(await tryCall(mf, other, "reset"));
});

// ---- test hooks (docs/protocol.md#durable-object-rpc) ----

test("with hooks on, simulateHibernation() re-boots (a new woken), runIdleTeardownNow() with no connections appends nothing", async () => {
  const name = uniqueName();
  await call(mf, name, "append", { event: { type: "app/x", payload: 1 } });
  const before = await readAll(mf, name);

  assertUndefined(await tryCall(mf, name, "runIdleTeardownNow"));
  assertUndefined(await tryCall(mf, name, "runIdleTeardownNow"));
  assert.deepEqual(await readAll(mf, name), before, "idle teardown with no connections is a no-op");

  assert.deepEqual(await call(mf, name, "simulateHibernation"), { bootCommits: 1 });
  const afterHib = await readAll(mf, name);
  assert.equal(afterHib.length, before.length + 1);
  assert.deepEqual(afterHib.slice(0, before.length), before);
  const woken = afterHib.at(-1);
  assert.equal(woken.type, S("woken"));
  assert.equal(woken.offset, before.at(-1).offset + 1);
  assert.match(woken.payload.incarnationId, UUID_V4_RE);
  assert.notEqual(woken.payload.incarnationId, before[1].payload.incarnationId);
  assert.equal(afterHib.filter((e) => e.type === S("created")).length, 1, "no second created");
  const st = await coreState(mf, name);
  assert.equal(st.incarnationId, woken.payload.incarnationId);
  assert.equal(st.eventCount, afterHib.length);
  assert.equal(st.maxOffset, woken.offset);

  // The stream keeps working after the simulated wake.
  const next = await call(mf, name, "append", { event: { type: "app/after" } });
  assert.equal(next.offset, woken.offset + 1);
  assert.deepEqual(await call(mf, name, "simulateHibernation"), { bootCommits: 1 });
  assert.equal((await readAll(mf, name)).filter((e) => e.type === S("woken")).length, 3);
});

test("with hooks on, memoryUsage() reports the isolate's wasm memory: whole 64 KiB pages, never shrinking, holding what an append needed", async () => {
  const name = uniqueName();
  const bytes = async () => (await call(mf, name, "memoryUsage")).wasmMemoryBytes;
  const first = await bytes();
  assert.ok(Number.isInteger(first) && first > 0 && first % 65536 === 0, `wasmMemoryBytes ${first}`);
  const data = "x".repeat(4 * 1024 * 1024);
  const ev = await call(mf, name, "append", { event: { type: "app/big", payload: data } });
  const after = await bytes();
  assert.ok(after >= first, `memory shrank: ${first} → ${after}`);
  assert.ok(after >= data.length, `the 4 MiB event passed through ${after} bytes of wasm memory`);
  assert.equal((await call(mf, name, "getEvent", { offset: ev.offset })).payload.length, data.length);
  assert.ok((await bytes()) >= after);
});

test("without STREAMS_TEST_HOOKS (or with a value other than \"1\") the hooks → not_found: test hooks are disabled", async () => {
  for (const value of [undefined, "true"]) {
    const off = await startStreams({ bindings: { STREAMS_TEST_HOOKS: value } });
    try {
      const name = uniqueName();
      await expectError(off, name, "runIdleTeardownNow", undefined, "not_found", "test hooks are disabled", `STREAMS_TEST_HOOKS=${value}`);
      await expectError(off, name, "simulateHibernation", undefined, "not_found", "test hooks are disabled", `STREAMS_TEST_HOOKS=${value}`);
      await expectError(off, name, "runIdleTeardownNow", {}, "not_found", "test hooks are disabled");
      await expectError(off, name, "memoryUsage", undefined, "not_found", "test hooks are disabled");
      await expectError(off, name, "pendingWork", undefined, "not_found", "test hooks are disabled");
      // The refused hooks created nothing (and a read creates nothing either); the public methods work.
      assert.deepEqual(await call(off, name, "getEvents", {}), []);
      await call(off, name, "append", { event: { type: "app/x" } });
      const events = await call(off, name, "getEvents", {});
      assert.deepEqual(typesOf(events), [S("created"), S("woken"), "app/x"]);
      await expectError(off, name, "simulateHibernation", undefined, "not_found", "test hooks are disabled");
      assert.deepEqual(await call(off, name, "getEvents", {}), events, "no re-boot happened");
    } finally {
      await off.dispose();
    }
  }
});

// ---- reduce preview (docs/protocol.md#runtimestate) ----

const iso = (ms) => new Date(ms).toISOString();

test("reduce previews the next state from the current one without persisting anything", async () => {
  const name = uniqueName();
  await call(mf, name, "append", { event: { type: "app/pre", idempotencyKey: "pre" } });
  const snap = await snapshot(mf, name);
  const cur = snap.state;
  const t = Date.now() + 1000;
  const event = { type: "app/x", payload: { a: 1 }, offset: cur.maxOffset + 1, createdAt: iso(t) };
  const next = await call(mf, name, "reduce", { event });
  assert.deepEqual(Object.keys(next), STATE_KEYS);
  assert.deepEqual(next, { ...cur, eventCount: cur.eventCount + 1, maxOffset: cur.maxOffset + 1, circuitBreaker: spend(cur.circuitBreaker, t) });
  await assertUnchanged(mf, name, snap, "reduce persists nothing");

  // No idempotency check, no pause gate, and metadata/child-paths rules apply.
  const withKey = await call(mf, name, "reduce", { event: { ...event, idempotencyKey: "pre" } });
  assert.equal(withKey.maxOffset, cur.maxOffset + 1);
  const md = await call(mf, name, "reduce", { event: { type: S("metadata-updated"), payload: { metadata: { m: 1 } }, offset: 50, createdAt: iso(t) } });
  assert.deepEqual(md.metadata, { m: 1 });
  assert.equal(md.maxOffset, 50);
  await assertUnchanged(mf, name, snap);
});

test("reduce accepts reserved types", async () => {
  const name = uniqueName();
  const snap = await snapshot(mf, name);
  const cur = snap.state;
  const t = Date.now();
  const woken = await call(mf, name, "reduce", { event: { type: S("woken"), payload: { incarnationId: "preview-id" }, offset: cur.maxOffset + 1, createdAt: iso(t) } });
  assert.equal(woken.incarnationId, "preview-id");
  assert.deepEqual(woken.circuitBreaker, cur.circuitBreaker, "woken: no spend");
  const conn = await call(mf, name, "reduce", {
    event: { type: S("subscriber-connected"), payload: { subscriptionKey: "k1", direction: "inbound" }, offset: cur.maxOffset + 1, createdAt: iso(t) },
  });
  assert.deepEqual(conn.connectionsByKey, { k1: { direction: "inbound", connectedAtOffset: cur.maxOffset + 1 } });
  const disc = await call(mf, name, "reduce", {
    event: { type: S("subscriber-disconnected"), payload: { subscriptionKey: "k1", reason: "idle" }, offset: cur.maxOffset + 2, createdAt: iso(t) },
    coreProcessorState: conn,
  });
  assert.deepEqual(disc.connectionsByKey, {});
  const created = await call(mf, name, "reduce", {
    event: { type: S("created"), payload: { namespace: "default", path: "/test" }, offset: 1, createdAt: "2026-01-05T10:00:00.123Z" },
    coreProcessorState: {},
  });
  assert.equal(created.namespace, "default");
  assert.equal(created.path, "/test");
  assert.equal(created.createdAt, "2026-01-05T10:00:00.123Z");
  assert.equal(created.eventCount, 1);
  await expectError(
    mf,
    name,
    "reduce",
    { event: { type: S("created"), payload: { namespace: "default", path: "/test" }, offset: 5, createdAt: iso(t) } },
    "invalid_event",
    /events\.iterate\.com\/stream\/created must be the first event and have offset 1$/,
  );
  await assertUnchanged(mf, name, snap);
});

test("reduce with a supplied coreProcessorState: missing fields get initial values, unknown ones are dropped, wrong types → invalid_request", async () => {
  const name = uniqueName();
  const snap = await snapshot(mf, name);
  const t = Date.parse("2026-01-05T12:00:00.000Z");
  const event = { type: "app/x", offset: 1, createdAt: iso(t) };

  const fromEmpty = await call(mf, name, "reduce", { event, coreProcessorState: {} });
  const init = initialState();
  assert.deepEqual(fromEmpty, { ...init, eventCount: 1, maxOffset: 1, circuitBreaker: { ...init.circuitBreaker, availableTokens: 99999, lastRefillAtMs: t } });

  const dropped = await call(mf, name, "reduce", { event, coreProcessorState: { foo: 1, namespace: "n", bar: { x: 1 } } });
  assert.deepEqual(Object.keys(dropped), STATE_KEYS);
  assert.equal(dropped.namespace, "n");

  const accepted = [];
  for (const coreProcessorState of [
    "state",
    [],
    { eventCount: "x" },
    { eventCount: 1.5 },
    { eventCount: null },
    { maxOffset: -1.5 },
    { paused: "no" },
    { childPaths: {} },
    { metadata: [] },
    { pauseReason: 5 },
    { circuitBreaker: { availableTokens: "1" } },
    { config: { simulatedStorageSyncDelayMs: "0" } },
    { namespace: 7 },
    // Arrays where objects belong are wrong types too (not positional structs).
    { config: [] },
    { config: [5] },
    { circuitBreaker: [] },
    { circuitBreaker: [1, null, 1, 1] },
    { connectionsByKey: { k: ["inbound", 3] } },
  ]) {
    const outcome = await tryCall(mf, name, "reduce", { event, coreProcessorState });
    if (outcome.ok) accepted.push(JSON.stringify(coreProcessorState));
    else assertError(outcome, "invalid_request", /^coreProcessorState/, JSON.stringify(coreProcessorState));
  }

  // A bad counter, whatever its kind, gets the message docs/protocol.md#errors gives.
  for (const [field, bad] of [["eventCount", -1], ["eventCount", "x"], ["eventCount", 1.5], ["eventCount", null], ["maxOffset", -1.5], ["maxOffset", 2 ** 60]]) {
    const outcome = await tryCall(mf, name, "reduce", { event, coreProcessorState: { [field]: bad } });
    assertError(outcome, "invalid_request", new RegExp(`^coreProcessorState: ${field} must be an integer from 0 to 9007199254740991$`), `${field}: ${bad}`);
  }

  // No pause gate on a supplied paused state.
  const paused = await call(mf, name, "reduce", { event, coreProcessorState: { paused: true, pauseReason: "m" } });
  assert.equal(paused.paused, true);
  assert.equal(paused.eventCount, 1);
  await assertUnchanged(mf, name, snap);
  assert.deepEqual(accepted, [], "supplied states with wrong-typed fields must give invalid_request");
});

test("reduce applies the breaker: the documented clamp and the worked sequence", async () => {
  const name = uniqueName();
  const clamp = await call(mf, name, "reduce", {
    event: { type: "app/x", offset: 4, createdAt: iso(9000) },
    coreProcessorState: { circuitBreaker: { availableTokens: 5, lastRefillAtMs: 10000, burstCapacity: 100000, refillRatePerMinute: 6000000 } },
  });
  assert.deepEqual(clamp.circuitBreaker, { availableTokens: 4, lastRefillAtMs: 9000, burstCapacity: 100000, refillRatePerMinute: 6000000 });

  let st = await call(mf, name, "reduce", { event: { ...breakerConfig(1, 1), offset: 1, createdAt: iso(1000) }, coreProcessorState: {} });
  assert.deepEqual(st.circuitBreaker, { availableTokens: 1, lastRefillAtMs: 1000, burstCapacity: 1, refillRatePerMinute: 1 });
  assert.deepEqual(st.config.circuitBreaker, { burstCapacity: 1, refillRatePerMinute: 1 });
  st = await call(mf, name, "reduce", { event: { type: "app/x", offset: 2, createdAt: iso(2000) }, coreProcessorState: st });
  assert.equal(st.circuitBreaker.availableTokens, 0);
  // Every spend takes a whole token, even from a bucket already below zero; refill is 1/60 per second.
  const deficit = st;
  for (const [offset, t, want] of [[3, 3000, -0.9833333333333333], [4, 4000, -1.9666666666666667], [5, 5000, -2.95], [6, 6000, -3.9333333333333336]]) {
    st = await call(mf, name, "reduce", { event: { type: "app/x", offset, createdAt: iso(t) }, coreProcessorState: st });
    assert.ok(Math.abs(st.circuitBreaker.availableTokens - want) < 1e-9, `@${t}: ${st.circuitBreaker.availableTokens}, want ${want}`);
  }
  assert.equal(st.paused, false, "reduce never trips");
  st = await call(mf, name, "reduce", { event: { type: "app/x", offset: 3, createdAt: iso(3000) }, coreProcessorState: deficit });
  const p = await call(mf, name, "reduce", { event: { type: S("paused"), payload: {}, offset: 4, createdAt: iso(3500) }, coreProcessorState: st });
  assert.equal(p.paused, true);
  assert.equal(p.pauseReason, null);
  assert.deepEqual(p.circuitBreaker, { availableTokens: 1, lastRefillAtMs: 3500, burstCapacity: 1, refillRatePerMinute: 1 });
});

test("reduce needs a full committed event and a valid core payload", async () => {
  const name = uniqueName();
  const snap = await snapshot(mf, name);
  const good = { type: "app/x", offset: 3, createdAt: "2026-01-05T10:00:00.123Z" };
  assert.equal((await call(mf, name, "reduce", { event: { ...good, createdAt: "2026-01-05T10:00:00.123+01:00" } })).maxOffset, 3, "RFC 3339 offsets are accepted");
  for (const [event, why] of [
    [{ type: "app/x", offset: 3 }, "no createdAt"],
    [{ type: "app/x", createdAt: good.createdAt }, "no offset"],
    [{ ...good, createdAt: "soon" }, "bad createdAt"],
    [{ ...good, offset: -1 }, "negative offset"],
    [{ ...good, offset: 1.5 }, "fractional offset"],
    [{ ...good, foo: 1 }, "unknown key"],
    [{ ...good, type: "" }, "empty type"],
    [{ ...breakerConfig(0, 1), offset: 3, createdAt: good.createdAt }, "burstCapacity 0"],
    [{ type: S("woken"), payload: {}, offset: 3, createdAt: good.createdAt }, "woken without incarnationId"],
  ]) {
    await expectError(mf, name, "reduce", { event }, "invalid_event", undefined, why);
  }
  await expectError(mf, name, "reduce", {}, "invalid_request", undefined, "no event");
  await expectError(mf, name, "reduce", undefined, "invalid_request", undefined, "no argument");
  await assertUnchanged(mf, name, snap);
});
