// The Worker entrypoint through a service binding (env.STREAMS.<method>): the nine methods,
// the default namespace, streamPath resolution, errors, and what is absent
// (docs/protocol.md#streampath, #errors, #service-binding).
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { startStreams, call, callService, tryCallService, callManyService, REPO_ROOT, doHasFiles, startPersistedStreams, stopPersistedStreams } from "./helpers/mf.mjs";
import { S, UUID_V4_RE, readAll, snapshot, assertUnchanged, assertError, assertUndefined, SHUTTING_DOWN, assertCreatedPayload } from "./helpers/assertions.mjs";
import { waitFor, sleep } from "./helpers/subscribers.mjs";

let mf;
let persistDir;

before(async () => {
  ({ mf, persistDir } = await startPersistedStreams("streams-service-"));
});

after(() => stopPersistedStreams(mf, persistDir));

const rand = () => Math.random().toString(36).slice(2, 10);
const freshNamespace = () => `s${rand()}`;
const freshPath = () => `/svc-${rand()}`;
const PUBLIC = ["append", "appendBatch", "getEvent", "getEvents", "getState", "runtimeState", "reduce", "reset", "kill", "deleteStream"];


/** tryCallService, retrying only the shutting-down window (docs/protocol.md#kill-and-reset) after kill/reset. */
async function tryServiceAfterKill(method, arg) {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const o = await tryCallService(mf, method, arg);
    if (o.ok || o.error !== SHUTTING_DOWN || Date.now() >= deadline) return o;
    await sleep(20);
  }
}

test("a client worker calls all nine entrypoint methods; namespace defaults to `default`", async () => {
  const p = freshPath();
  const name = `default:${p}`;

  const ev = await callService(mf, "append", { path: p, event: { type: "app/one", payload: { n: 1 }, idempotencyKey: "k1" } });
  assert.equal(ev.offset, 3);
  assert.equal(ev.type, "app/one");
  const log = await readAll(mf, name);
  assertCreatedPayload(log[0].payload, { namespace: "default", path: p }, "the default namespace");
  assert.deepEqual(log[2], ev);

  const batch = await callService(mf, "appendBatch", { path: p, events: [{ type: "app/two" }, { type: "app/dup", idempotencyKey: "k1" }] });
  assert.equal(batch.length, 2);
  assert.equal(batch[0].offset, 4);
  assert.deepEqual(batch[1], ev, "an idempotency hit returns the existing event");

  assert.deepEqual(await callService(mf, "getEvent", { path: p, offset: 3 }), ev);
  assert.deepEqual(await callService(mf, "getEvent", { path: p, idempotencyKey: "  k1 " }), ev);
  assertUndefined(await tryCallService(mf, "getEvent", { path: p, idempotencyKey: "nope" }));

  const page = await callService(mf, "getEvents", { path: p, afterOffset: 2, limit: 1 });
  assert.deepEqual(page, [ev]);
  assert.deepEqual((await callService(mf, "getEvents", { path: p })).map((e) => e.offset), [1, 2, 3, 4]);

  const rs = await callService(mf, "runtimeState", { path: p });
  assert.deepEqual(Object.keys(rs), ["coreProcessorState", "runtime"]);
  assert.equal(rs.coreProcessorState.namespace, "default");
  assert.equal(rs.coreProcessorState.path, p);
  assert.equal(rs.coreProcessorState.maxOffset, 4);
  assert.deepEqual(rs.runtime.redial, {});

  const preview = await callService(mf, "reduce", { path: p, event: { type: "app/preview", offset: 5, createdAt: new Date().toISOString() } });
  assert.equal(preview.maxOffset, 5);
  assert.equal(preview.eventCount, 5);
  assert.equal((await readAll(mf, name)).length, 4, "reduce persisted nothing");

  assertUndefined(await tryCallService(mf, "kill", { path: p }));
  const afterKill = await tryServiceAfterKill("getEvents", { path: p });
  assert.equal(afterKill.ok, true, JSON.stringify(afterKill));
  assert.deepEqual(afterKill.result.map((e) => e.type).slice(4), [S("woken")], "kill → a new incarnation");
  assert.match(afterKill.result[4].payload.incarnationId, UUID_V4_RE);

  assertUndefined(await tryCallService(mf, "reset", { path: p }));
  const afterReset = await tryServiceAfterKill("getEvents", { path: p });
  assert.equal(afterReset.ok, true, JSON.stringify(afterReset));
  assert.deepEqual(afterReset.result, [], "reset → nothing left (and a read creates nothing)");

  await callService(mf, "append", { path: p, event: { type: "app/doomed" } });
  const before = (await callService(mf, "runtimeState", { path: p })).coreProcessorState.streamId;
  assertUndefined(await tryCallService(mf, "deleteStream", { path: p }));
  const afterDelete = await tryServiceAfterKill("getEvents", { path: p });
  assert.equal(afterDelete.ok, true, JSON.stringify(afterDelete));
  assert.deepEqual(afterDelete.result, [], "deleteStream → nothing left (and a read creates nothing)");
  await callService(mf, "append", { path: p, event: { type: "app/reborn" } });
  assert.notEqual((await callService(mf, "runtimeState", { path: p })).coreProcessorState.streamId, before, "the next write starts a new life");

  // An explicit namespace works the same way.
  const ns = freshNamespace();
  const explicit = await callService(mf, "append", { namespace: ns, path: "/x", event: { type: "app/x" } });
  assert.equal(explicit.offset, 3);
  assert.equal((await readAll(mf, `${ns}:/x`))[0].payload.namespace, ns);
  assert.equal(await doHasFiles(mf, persistDir, `default:/x`), false, "not the default namespace");
});

test("runIdleTeardownNow (and every other non-public name) is absent from the entrypoint", async () => {
  const p = freshPath();
  for (const method of [
    "runIdleTeardownNow",
    "simulateHibernation",
    "memoryUsage",
    "readCoreProcessorState",
    "writeCoreProcessorState",
    "subscribeOutbound",
    "subscribe",
    "alarm",
    "webSocketMessage",
    "webSocketClose",
    "webSocketError",
    "connect",
    "free",
  ]) {
    const o = await tryCallService(mf, method, { path: p });
    assert.equal(o.ok, false, `${method} must not exist, got ${JSON.stringify(o).slice(0, 200)}`);
    assert.doesNotMatch(o.error, /^[a-z_]+: /, `${method}: rejected by the runtime (absent), not by the stream: ${o.error}`);
  }
  assert.equal(await doHasFiles(mf, persistDir, `default:${p}`), false, "no stream was touched");
});

test("the built entrypoint class has exactly the nine public methods, listStreams and fetch", () => {
  const src = fs.readFileSync(path.join(REPO_ROOT, "build", "index.js"), "utf8");
  const alias = /import\s*\{\s*WorkerEntrypoint\s+as\s+([\w$]+)\s*\}\s*from\s*"cloudflare:workers"/.exec(src)?.[1];
  assert.ok(alias, "build/index.js imports WorkerEntrypoint");
  const cls = new RegExp(`var ([\\w$]+)=class extends ${alias.replace("$", "\\$")}\\{\\}`).exec(src)?.[1];
  assert.ok(cls, "build/index.js defines the entrypoint class");
  const methods = [...src.matchAll(new RegExp(`(?<![\\w$])${cls.replace("$", "\\$")}\\.prototype\\.([\\w$]+)=`, "g"))].map((m) => m[1]);
  assert.deepEqual([...methods].sort(), [...PUBLIC, "listStreams", "fetch"].sort());
});

test("service append({path:/p, streamPath:/q, event}) lands on /q; /p gets no woken (never touched)", async () => {
  const ns = freshNamespace();
  const ev = await callService(mf, "append", { namespace: ns, path: "/p", streamPath: "/q", event: { type: "app/fwd" } });
  assert.equal(ev.offset, 3);
  const batch = await callService(mf, "appendBatch", { namespace: ns, path: "/p", streamPath: "../q", events: [{ type: "app/b" }] });
  assert.equal(batch[0].offset, 4);
  const qLog = await readAll(mf, `${ns}:/q`);
  assert.deepEqual(qLog.map((e) => e.type), [S("created"), S("woken"), "app/fwd", "app/b"]);
  assert.deepEqual(qLog[2], ev);

  await waitFor(
    () => readAll(mf, `${ns}:/`),
    (events) => events.some((e) => e.type === S("child-stream-created") && e.payload.childPath === "/q"),
    { what: "root notified of /q" },
  );
  // Sentinel: a stream created after the calls above; once the root has heard of it, it would have
  // heard of /p too, had /p been woken.
  await callService(mf, "append", { namespace: ns, path: "/sentinel", event: { type: "app/sentinel" } }); // a read would create nothing
  await waitFor(
    () => readAll(mf, `${ns}:/`),
    (events) => events.some((e) => e.type === S("child-stream-created") && e.payload.childPath === "/sentinel"),
    { what: "root notified of the sentinel" },
  );
  assert.equal(await doHasFiles(mf, persistDir, `${ns}:/p`), false, "/p was never instantiated, so it has no woken");
  assert.deepEqual(
    (await readAll(mf, `${ns}:/`)).filter((e) => e.type === S("child-stream-created")).map((e) => e.payload.childPath).sort(),
    ["/q", "/sentinel"],
  );
});

test("relative streamPaths resolve against `path`; escaping the root → invalid_path with the exact message", async () => {
  const ns = freshNamespace();
  const ev = await callService(mf, "append", { namespace: ns, path: "/p", streamPath: "c", event: { type: "app/c" } });
  assert.equal((await readAll(mf, `${ns}:/p/c`))[2].offset, ev.offset);
  const self = await callService(mf, "append", { namespace: ns, path: "/r", streamPath: ".", event: { type: "app/self" } });
  assert.equal((await readAll(mf, `${ns}:/r`))[2].offset, self.offset);
  assertError(
    await tryCallService(mf, "append", { namespace: ns, path: "/p", streamPath: "../..", event: { type: "app/x" } }),
    "invalid_path",
    'streamPath "../.." escapes the stream root (resolved from "/p")',
  );
  assertError(await tryCallService(mf, "append", { namespace: ns, path: "/p", streamPath: "a:b", event: { type: "app/x" } }), "invalid_path");
  assertError(await tryCallService(mf, "append", { namespace: ns, path: "/p", streamPath: "x".repeat(1024), event: { type: "app/x" } }), "invalid_path", undefined, "1024-byte streamPath");
});

test("entrypoint errors follow docs/protocol.md#errors and are checked before any DO is touched", async () => {
  const ns = freshNamespace();
  const nsMsg = 'invalid namespace "Bad": must match ^[a-z0-9][a-z0-9_-]{0,62}$';
  for (const method of PUBLIC) {
    const extra = method === "append" ? { event: { type: "app/x" } } : method === "appendBatch" ? { events: [] } : {};
    assertError(await tryCallService(mf, method, { namespace: "Bad", path: "/x", ...extra }), "invalid_namespace", nsMsg, method);
    assertError(await tryCallService(mf, method, { namespace: ns, ...extra }), "invalid_path", "path is required", method);
    assertError(await tryCallService(mf, method, { namespace: ns, path: "/a/", ...extra }), "invalid_path", /^invalid path "\/a\/": ./, method);
    assertError(await tryCallService(mf, method, { namespace: ns, path: "/a:b", ...extra }), "invalid_path", undefined, method);
    assertError(await tryCallService(mf, method, { namespace: ns, path: `/${"a".repeat(1023)}`, ...extra }), "invalid_path", undefined, `${method} 1024-byte path`);
    assertError(await tryCallService(mf, method), "invalid_request", undefined, `${method}()`);
    assertError(await tryCallService(mf, method, null), "invalid_request", undefined, `${method}(null)`);
    assertError(await tryCallService(mf, method, "x"), "invalid_request", undefined, `${method}("x")`);
    assertError(await tryCallService(mf, method, [{ path: "/x" }]), "invalid_request", undefined, `${method}([…])`);
    assertError(await tryCallService(mf, method, { namespace: 5, path: "/x" }), "invalid_request", undefined, `${method} namespace: 5`);
    // A non-string path is a bad argument or a bad path; the spec names neither, so accept both.
    const nonString = await tryCallService(mf, method, { namespace: ns, path: 5 });
    assert.equal(nonString.ok, false, `${method} path: 5`);
    assert.match(nonString.error, /^invalid_(request|path): /, `${method} path: 5`);
  }
  for (const n of ["Bad:/x", `${ns}:/a/`, `${ns}:/a:b`, `${ns}:/x`]) assert.equal(await doHasFiles(mf, persistDir, n), false, `no DO for ${n}`);
});

test("entrypoint: DO errors come back unchanged as `<code>: <message>`", async () => {
  const ns = freshNamespace();
  const base = { namespace: ns, path: "/e" };
  await callService(mf, "append", { ...base, event: { type: "app/x", idempotencyKey: "dup" } });
  const before = await snapshot(mf, `${ns}:/e`);
  assertError(await tryCallService(mf, "append", { ...base, event: { type: "app/x", foo: 1 } }), "invalid_event", 'event[0]: unknown key "foo"');
  assertError(await tryCallService(mf, "append", { ...base, event: { type: S("created"), payload: { namespace: ns, path: "/e" } } }), "invalid_event", `event type "${S("created")}" is reserved for the stream itself`);
  assertError(await tryCallService(mf, "append", { ...base, event: { type: "app/x", offset: 10 } }), "offset_mismatch", "expected offset 4, got 10");
  assertError(await tryCallService(mf, "append", { ...base, event: { type: "app/x", idempotencyKey: "dup", offset: 13 } }), "idempotency_conflict", "idempotency hit at offset 3, got 13");
  assertError(await tryCallService(mf, "append", { ...base, event: { type: "app/x" }, extra: 1 }), "invalid_request", 'unknown argument "extra"');
  assertError(await tryCallService(mf, "getEvents", { ...base, limit: 0 }), "invalid_request", "getEvents limit must be a positive integer.");
  assertError(await tryCallService(mf, "getEvent", { ...base, offset: 999 }), "not_found", "No stream event found at offset 999.");
  assertError(await tryCallService(mf, "appendBatch", { ...base, events: Array.from({ length: 1001 }, () => ({ type: "app/x" })) }), "batch_too_large", "batch has 1001 events; the limit is 1000");
  await assertUnchanged(mf, `${ns}:/e`, before);
});

test("entrypoint: streamPath is an argument of append/appendBatch only; elsewhere it is an unknown argument", async () => {
  const ns = freshNamespace();
  await callService(mf, "getEvents", { namespace: ns, path: "/sp" });
  for (const [method, extra] of [["getEvents", {}], ["runtimeState", {}], ["getEvent", { offset: 1 }]]) {
    assertError(await tryCallService(mf, method, { namespace: ns, path: "/sp", streamPath: "c", ...extra }), "invalid_request", 'unknown argument "streamPath"', method);
  }
});

test("entrypoint: no token checks — reset and kill work even when both HTTP tokens are set", async () => {
  const m = await startStreams({ bindings: { STREAMS_API_TOKEN: "a", STREAMS_ADMIN_TOKEN: "adm" } });
  try {
    const p = freshPath();
    await callService(m, "appendBatch", { path: p, events: [{ type: "app/1" }, { type: "app/2" }] });
    assertUndefined(await tryCallService(m, "reset", { path: p }));
    let outcome;
    const deadline = Date.now() + 20_000;
    do {
      outcome = await tryCallService(m, "getEvents", { path: p });
      if (outcome.ok || outcome.error !== SHUTTING_DOWN) break;
      await sleep(20);
    } while (Date.now() < deadline);
    assert.deepEqual(outcome.result, [], "reset left nothing (and a read creates nothing)");
    assertUndefined(await tryCallService(m, "kill", { path: p }));
  } finally {
    await m.dispose();
  }
});

test("entrypoint: concurrent appends through the service binding get contiguous offsets", async () => {
  const p = freshPath();
  const outcomes = await callManyService(mf, Array.from({ length: 20 }, (_, i) => ({ method: "append", arg: { path: p, event: { type: "app/c", payload: { i } } } })));
  assert.ok(outcomes.every((o) => o.ok), JSON.stringify(outcomes.find((o) => !o.ok)));
  const offsets = outcomes.map((o) => o.result.offset).sort((a, b) => a - b);
  assert.deepEqual(offsets, Array.from({ length: 20 }, (_, i) => 3 + i));
  const log = await call(mf, `default:${p}`, "getEvents", {});
  assert.equal(log.length, 22);
});
