// A call that reaches a never-written stream without its name (by id only) is refused with a clear
// error, creates nothing, and leaves the instance so that the very next named call works
// (docs/protocol.md#naming-and-paths).
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import { call, http, splitName, startPersistedStreams, stopPersistedStreams, tryCall, tryCallById, uniqueName } from "./helpers/mf.mjs";
import { storedTables } from "./helpers/reliability.mjs";
import { S } from "./helpers/assertions.mjs";

const NAMELESS = "invalid_request: this call reached the stream without its name (by id, or by a name over 1024 bytes) and the stream does not exist yet; call it by name (getByName or idFromName)";

let mf;
let persistDir;
before(async () => {
  ({ mf, persistDir } = await startPersistedStreams("streams-nameless-"));
});
after(() => stopPersistedStreams(mf, persistDir));

test("nameless calls: a nameless first call on a new stream is refused clearly, and the next named call works at once", async () => {
  const name = uniqueName("nameless");
  for (const [method, arg] of [["getEvents", {}], ["append", { event: { type: "app/x" } }]]) {
    const refused = await tryCallById(mf, name, method, arg);
    assert.deepEqual({ ok: refused.ok, error: refused.error }, { ok: false, error: NAMELESS }, method);
  }
  assert.deepEqual(await storedTables(mf, persistDir, name), [], "the refused calls created nothing");
  // At once: no waiting, no retries. Every named surface works, the first time.
  const appended = await tryCall(mf, name, "append", { event: { type: "app/named" } });
  assert.equal(appended.ok, true, JSON.stringify(appended));
  assert.equal(appended.result.offset, 3);
  const { namespace, path } = splitName(name);
  const viaHttp = await http(mf, "GET", `/api/streams/getEvents?namespace=${namespace}&path=${encodeURIComponent(path)}`);
  assert.equal(viaHttp.status, 200, viaHttp.text);
  assert.deepEqual(viaHttp.json.map((e) => e.type), [S("created"), S("woken"), "app/named"]);
  // Now that the stream exists, a nameless call finds its name in its own log.
  const byId = await tryCallById(mf, name, "getEvents", {});
  assert.equal(byId.ok, true, JSON.stringify(byId));
  assert.equal(byId.result.at(-1).type, "app/named");
});

test("nameless calls: named calls interleaved with repeated nameless ones keep working", async () => {
  const name = uniqueName("nameless");
  for (let round = 0; round < 3; round++) {
    // Refused, or (when it lands on the instance a named call started) answered as that stream.
    const nameless = await tryCallById(mf, name, "runtimeState");
    if (!nameless.ok) assert.equal(nameless.error, NAMELESS, `round ${round}`);
    else assert.equal(nameless.result.coreProcessorState.path, splitName(name).path, `round ${round}`);
    const state = await call(mf, name, "runtimeState");
    assert.equal(state.coreProcessorState.path, splitName(name).path, `round ${round}`);
  }
  assert.equal((await call(mf, name, "append", { event: { type: "app/x" } })).offset, 3);
});
