// Reliability scenario 4 — security boundaries (RELIABILITY.md §4; docs/protocol.md#naming-and-paths,
// #append-input, #rpc-methods, #outbound-subscribers). Public HTTP cannot reach internals; reset/kill need the admin token; the API token
// guards every route; subscribers outside STREAM_SUBSCRIBER_BINDINGS (and STREAM itself) are
// refused with 403 subscriber_not_allowed; reserved event types are refused on every surface; a
// malformed stream name never gets a stream written. Every refusal is checked for "nothing
// happened": the target stream's log (and its incarnation) is unchanged.
import { before, after, test, describe } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { startStreams, http, uniqueName, splitName, stub } from "./helpers/mf.mjs";
import { S, callOn, readLog, apiUrl, doIdOf, sqliteFileOf, openSqlite } from "./helpers/reliability.mjs";
import { pollUntil } from "./helpers/assertions.mjs";

const API = "api-token-reliability";
const ADMIN = "admin-token-reliability";
const RESERVED = ["created", "woken", "subscriber-connected", "subscriber-disconnected"].map(S);

const subscriber = (bindingName, bindingType = "service") => ({
  type: S("subscription-configured"),
  payload: {
    subscriptionKey: `sec-${bindingName}`,
    subscriber: {
      type: "callable",
      callable: {
        type: "workers-rpc",
        via: { type: "env-binding", bindingType, bindingName, ...(bindingType === "durable-object-namespace" ? { durableObject: { name: "x" } } : {}) },
      },
    },
  },
});

async function expectHttp(mf, method, url, { status, code, message, headers, body }) {
  const res = await http(mf, method, url, { headers, body });
  assert.equal(res.status, status, `${method} ${url}: status (body ${res.text.slice(0, 200)})`);
  if (code) {
    assert.equal(res.json?.error?.code, code, `${method} ${url}: code`);
    if (typeof message === "string") assert.equal(res.json.error.message, message);
    else if (message) assert.match(res.json.error.message, message);
  }
  return res;
}

describe("security: no tokens configured", () => {
  let mf;
  let dir;
  let name;
  let logBefore;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "streams-reliability-security-"));
    mf = await startStreams({ miniflare: { durableObjectsPersist: dir } });
    name = uniqueName("sec");
    await callOn(mf, "do", name, "append", { event: { type: "app/seed", idempotencyKey: "seed" } });
    logBefore = await readLog(mf, name);
  });
  after(async () => {
    await mf?.dispose();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });
  const unchanged = async (note) => assert.deepEqual(await readLog(mf, name), logBefore, `log changed: ${note}`);

  test("HTTP cannot reach internal methods (test hooks, state access, callbacks, runtime handlers)", async () => {
    for (const m of ["runIdleTeardownNow", "simulateHibernation", "memoryUsage", "notifyChildStreamCreated", "readCoreProcessorState", "writeCoreProcessorState", "subscribeOutbound", "constructor", "fetch", "alarm", "webSocketMessage", "webSocketClose", "__proto__", "toString", "hasOwnProperty"]) {
      for (const verb of ["POST", "GET"]) {
        await expectHttp(mf, verb, apiUrl(name, m), { status: 404, code: "not_found", message: `unknown method "${m}"` });
      }
    }
    await unchanged("internal methods");
  });

  test("HTTP cannot reach anything outside /api/streams/<method> (other paths, encodings, DO fetch paths)", async () => {
    const q = `?namespace=t&path=${encodeURIComponent(splitName(name).path)}`;
    for (const p of ["/", "/api", "/api/streams", "/api/streams/", `/api/streams/append/extra${q}`, `/api/streams//append${q}`, `/subscribe${q}`, `/API/streams/append${q}`, `/api/streams/%61ppend${q}`, `/api/streams/append%2Fx${q}`, `/api/streams/..%2Freset${q}`, `/internal${q}`]) {
      const res = await http(mf, "POST", p, { body: { event: { type: "app/sneak" } } });
      // A 404 is always not_found; method_not_allowed is only ever a 405.
      assert.ok([404, 405].includes(res.status), `${p}: ${res.status} ${res.text.slice(0, 120)}`);
      assert.equal(res.json?.error?.code, res.status === 404 ? "not_found" : "method_not_allowed", `${p}: ${res.text.slice(0, 120)}`);
    }
    // Wrong verbs: 405 with Allow.
    const r1 = await expectHttp(mf, "GET", apiUrl(name, "append"), { status: 405, code: "method_not_allowed" });
    assert.equal(r1.headers.get("allow"), "POST");
    const r2 = await expectHttp(mf, "DELETE", apiUrl(name, "getEvents"), { status: 405, code: "method_not_allowed" });
    assert.equal(r2.headers.get("allow"), "GET, POST");
    await expectHttp(mf, "POST", apiUrl(name, "subscribe"), { status: 405, code: "method_not_allowed" });
    await expectHttp(mf, "GET", apiUrl(name, "subscribe"), { status: 400, code: "invalid_request", message: "expected a WebSocket upgrade" });
    await unchanged("paths");
  });

  test("the DO's own fetch serves only /subscribe", async () => {
    const s = await stub(mf, name);
    for (const p of ["/", "/internal", "/state", "/sql", "/subscribe/x", "/api/streams/append"]) {
      const res = await s.fetch(`https://stream${p}`, { method: "POST", body: "{}" });
      const json = await res.json();
      assert.equal(res.status, 404, p);
      assert.equal(json.error.code, "not_found", p);
    }
    await unchanged("DO fetch");
  });

  test("the service entrypoint exposes exactly the nine public methods", async () => {
    for (const m of ["runIdleTeardownNow", "simulateHibernation", "memoryUsage", "runArchiveNow", "pendingWork", "notifyChildStreamCreated", "readCoreProcessorState", "writeCoreProcessorState", "subscribeOutbound"]) {
      const o = await callOn(mf, "service", name, m, {});
      assert.equal(o.ok, false, `${m} is callable on the entrypoint`);
    }
    await unchanged("entrypoint internals");
  });

  test("HTTP reset/kill/deleteStream are refused (403) while STREAMS_ADMIN_TOKEN is unset, whatever the header", async () => {
    for (const m of ["reset", "kill", "deleteStream"]) {
      for (const headers of [{}, { authorization: "Bearer " }, { authorization: "Bearer undefined" }, { authorization: "Bearer null" }]) {
        await expectHttp(mf, "POST", apiUrl(name, m), { headers, status: 403, code: "unauthorized", message: "admin token required" });
      }
      await expectHttp(mf, "POST", apiUrl(name, m, "&token=x&adminToken=x"), { status: 403, code: "unauthorized" });
    }
    await unchanged("reset/kill refused (no new woken: the incarnation survived)");
  });

  test("reserved event types are refused on every surface, alone, in a batch, and via streamPath", async () => {
    const other = uniqueName("sec-target");
    const otherBefore = await readLog(mf, other);
    const msg = (t) => `event type "${t}" is reserved for the stream itself`;
    for (const type of RESERVED) {
      const event = { type, payload: { namespace: "t", path: "/x", incarnationId: "i", subscriptionKey: "k", direction: "inbound", reason: "idle" } };
      for (const surface of ["do", "service", "http"]) {
        const single = await callOn(mf, surface, name, "append", { event });
        assert.equal(single.error, `invalid_event: ${msg(type)}`, `${surface} append ${type}`);
        if (surface === "http") assert.equal(single.status, 400);
        const batch = await callOn(mf, surface, name, "appendBatch", { events: [{ type: "app/ok" }, event] });
        assert.equal(batch.error, `invalid_event: ${msg(type)}`, `${surface} appendBatch ${type}`);
        const routed = await callOn(mf, surface, name, "append", { streamPath: splitName(other).path, event });
        assert.equal(routed.error, `invalid_event: ${msg(type)}`, `${surface} append via streamPath ${type}`);
      }
    }
    await unchanged("reserved types");
    assert.deepEqual(await readLog(mf, other), otherBefore, "the streamPath target was written");
  });

  test("subscribers outside STREAM_SUBSCRIBER_BINDINGS are refused with 403 subscriber_not_allowed", async () => {
    for (const [binding, type] of [["NOT_LISTED", "service"], ["echo_host", "durable-object-namespace"], ["STREAM", "durable-object-namespace"], ["STREAMS", "service"], ["", "service"]]) {
      for (const surface of ["http", "do", "service"]) {
        const o = await callOn(mf, surface, name, "append", { event: subscriber(binding, type) });
        assert.equal(o.ok, false, `${surface} ${binding}`);
        if (binding === "") {
          assert.match(o.error, /^(invalid_event|subscriber_not_allowed): /, `${surface} empty binding`);
          continue;
        }
        assert.equal(o.error, `subscriber_not_allowed: binding "${binding}" is not allowed; add it to STREAM_SUBSCRIBER_BINDINGS`, `${surface} ${binding}`);
        if (surface === "http") assert.equal(o.status, 403);
      }
    }
    await unchanged("subscriber allowlist");
  });

  const BAD_NAMES = [
    ["Bad", "/x", "invalid_namespace"],
    ["", "/x", "invalid_namespace"],
    ["t:x", "/x", "invalid_namespace"],
    ["a".repeat(64), "/x", "invalid_namespace"],
    ["-t", "/x", "invalid_namespace"],
    ["t", "a", "invalid_path"],
    ["t", "/a/", "invalid_path"],
    ["t", "/a//b", "invalid_path"],
    ["t", "/a/./b", "invalid_path"],
    ["t", "/a/..", "invalid_path"],
    ["t", "/a b", "invalid_path"],
    ["t", "/a:b", "invalid_path"],
    ["t", "/a\u0000b", "invalid_path"],
    ["t", "/" + "p".repeat(1023), "invalid_path"], // a 1024-byte path
    ["t", "/" + "p".repeat(1022), "invalid_path"], // a 1023-byte path, but "t:<path>" is over workerd's 1024-byte name limit
  ];

  test("a malformed name is refused before any DO is touched (HTTP, entrypoint)", async () => {
    for (const [ns, p, code] of BAD_NAMES) {
      const url = `/api/streams/append?namespace=${encodeURIComponent(ns)}&path=${encodeURIComponent(p)}`;
      const res = await http(mf, "POST", url, { body: { event: { type: "app/x" } } });
      assert.equal(res.status, 400, `HTTP ${JSON.stringify([ns, p])}`);
      assert.equal(res.json.error.code, ns === "" ? "invalid_namespace" : code, `HTTP ${JSON.stringify([ns, p])}: ${res.text}`);
      const o = await callOn(mf, "service", `${ns}:${p}`, "append", { namespace: ns, path: p, event: { type: "app/x" } });
      assert.ok(o.error?.startsWith(`${code}: `) || (ns === "" && o.error?.startsWith("invalid_namespace: ")), `service ${JSON.stringify([ns, p])}: ${o.error}`);
    }
    await expectHttp(mf, "POST", "/api/streams/append?namespace=t", { body: { event: { type: "x" } }, status: 400, code: "invalid_path", message: "path is required" });
  });

  test("a malformed DO name over DO RPC: the incarnation is broken, every call fails, nothing is written", async () => {
    for (const [ns, p, code] of BAD_NAMES.filter(([ns]) => ns !== "" && !ns.includes(":"))) {
      const doName = `${ns}:${p}`;
      for (const method of ["append", "getEvents", "runtimeState"]) {
        const o = await callOn(mf, "do", doName, method, method === "append" ? { event: { type: "app/x" } } : {});
        // workerd does not report a name over 1024 bytes to the object: the "no name" case of docs/protocol.md#naming-and-paths.
        const want = Buffer.byteLength(doName) > 1024 ? "invalid_request: this call reached the stream without its name (by id, or by a name over 1024 bytes) and the stream does not exist yet; call it by name (getByName or idFromName)" : undefined;
        if (want) assert.equal(o.error, want, `${JSON.stringify(doName.slice(0, 20))}… ${method}`);
        else assert.ok(o.error?.startsWith(`${code}: `), `${JSON.stringify(doName)} ${method}: ${o.error}`);
      }
    }
    // Split on the first ":" only (docs/protocol.md#naming-and-paths): "t:x:/x" is namespace "t", path "x:/x".
    for (const doName of ["t", "Bad", "t:", ":/x", "t:x:/x"]) {
      const o = await callOn(mf, "do", doName, "getEvents", {});
      assert.match(o.error ?? "", /^invalid_(path|namespace): /, `${JSON.stringify(doName)}: ${o.error}`);
    }
  });

  test("after dispose: no malformed name has any event row on disk", async () => {
    const ids = [];
    for (const [ns, p] of BAD_NAMES) ids.push([`${ns}:${p}`, await doIdOf(mf, `${ns}:${p}`)]);
    for (const n of ["t", "Bad", "t:", ":/x"]) ids.push([n, await doIdOf(mf, n)]);
    // A positive control: a stream that was written has its file found and its rows counted here,
    // so "no file" below really means "never touched".
    const control = "t:/security-control";
    assert.ok((await callOn(mf, "do", control, "append", { event: { type: "app/x" } })).ok);
    const controlId = await doIdOf(mf, control);
    await mf.dispose();
    mf = undefined;
    const controlFile = sqliteFileOf(dir, controlId);
    assert.ok(controlFile, "the control stream's SQLite file is found");
    const controlDb = await openSqlite(controlFile);
    try {
      assert.equal(controlDb.prepare("SELECT COUNT(*) AS n FROM events").get().n, 3, "the control stream's rows are counted (created, woken, app/x)");
    } finally {
      controlDb.close();
    }
    for (const [doName, id] of ids) {
      const file = sqliteFileOf(dir, id);
      if (!file) continue; // never touched (the control above shows a touched one is found)
      const db = await openSqlite(file);
      try {
        const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('events', 'event_chunks', 'core_state')").all();
        for (const { name: table } of tables) {
          assert.equal(db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get().n, 0, `${JSON.stringify(doName)}: rows in ${table}`);
        }
      } finally {
        db.close();
      }
    }
  });
});

describe("security: API and admin tokens configured", () => {
  let mf;
  let name;
  before(async () => {
    mf = await startStreams({ bindings: { STREAMS_API_TOKEN: API, STREAMS_ADMIN_TOKEN: ADMIN, STREAM_SUBSCRIBER_BINDINGS: "ECHO_HOST, STREAM" } });
    name = uniqueName("sec-tok");
    await callOn(mf, "do", name, "append", { event: { type: "app/seed" } });
  });
  after(async () => {
    await mf?.dispose();
  });

  test("every public route needs the API token (401 before routing), and only as a Bearer header", async () => {
    const wrong = [{}, { authorization: "Bearer nope" }, { authorization: `Basic ${API}` }, { authorization: API }, { authorization: `Bearer ${API}x` }, { authorization: `Bearer ${API.slice(0, -1)}` }, { "x-api-token": API }];
    const routes = [["POST", apiUrl(name, "append")], ["GET", apiUrl(name, "getEvents")], ["POST", apiUrl(name, "reset")], ["POST", apiUrl(name, "runIdleTeardownNow")], ["GET", "/nowhere"], ["GET", apiUrl(name, "subscribe")]];
    for (const [verb, url] of routes) {
      for (const headers of wrong) {
        await expectHttp(mf, verb, url, { headers, body: verb === "POST" ? { event: { type: "app/x" } } : undefined, status: 401, code: "unauthorized", message: "missing or invalid bearer token" });
      }
      await expectHttp(mf, verb, url + `${url.includes("?") ? "&" : "?"}token=${API}&access_token=${API}`, { body: verb === "POST" ? { event: { type: "app/x" } } : undefined, status: 401, code: "unauthorized" });
    }
    const upgrade = await http(mf, "GET", apiUrl(name, "subscribe"), { headers: { upgrade: "websocket", connection: "Upgrade", "sec-websocket-version": "13", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==" } });
    assert.equal(upgrade.status, 401);
    const log = await readLog(mf, name);
    assert.deepEqual(log.map((e) => e.type), [S("created"), S("woken"), "app/seed"], "nothing was appended without the token");

    await expectHttp(mf, "POST", apiUrl(name, "append"), { headers: { authorization: `Bearer ${API}` }, body: { event: { type: "app/with-token" } }, status: 200 });
    await expectHttp(mf, "POST", apiUrl(name, "append"), { headers: { authorization: `Bearer ${ADMIN}` }, body: { event: { type: "app/with-admin" } }, status: 200 });
  });

  test("reset/kill need the admin token: the API token gets 403 and the stream is untouched; the admin token works", async () => {
    const before = await readLog(mf, name);
    for (const m of ["reset", "kill"]) {
      await expectHttp(mf, "POST", apiUrl(name, m), { headers: { authorization: `Bearer ${API}` }, status: 403, code: "unauthorized", message: "admin token required" });
    }
    assert.deepEqual(await readLog(mf, name), before, "refused reset/kill changed the stream");
    await expectHttp(mf, "POST", apiUrl(name, "reset"), { headers: { authorization: `Bearer ${ADMIN}` }, status: 200 });
    // The old incarnation may refuse calls while it shuts down: read until one answers.
    const read = await pollUntil(() => callOn(mf, "do", name, "getEvents", {}), (o) => o.ok, { what: "a read after the reset" });
    assert.deepEqual(read.result, [], "admin reset worked: nothing is left (and a read creates nothing)");
  });

  test("STREAM is never an allowed subscriber binding, even when listed", async () => {
    for (const type of ["durable-object-namespace", "service"]) {
      const o = await callOn(mf, "http", name, "append", { event: subscriber("STREAM", type) }, { headers: { authorization: `Bearer ${API}` } });
      assert.equal(o.status, 403, JSON.stringify(o));
      assert.equal(o.error, 'subscriber_not_allowed: binding "STREAM" is not allowed; add it to STREAM_SUBSCRIBER_BINDINGS');
      const rpc = await callOn(mf, "do", name, "append", { event: subscriber("STREAM", type) });
      assert.equal(rpc.error, 'subscriber_not_allowed: binding "STREAM" is not allowed; add it to STREAM_SUBSCRIBER_BINDINGS');
    }
    assert.ok(!(await readLog(mf, name)).some((e) => e.type === S("subscription-configured")), "a STREAM subscription was written");
  });
});
