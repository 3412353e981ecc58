// The `configure` operation (docs/access.md#operations): a scoped token appends a control event
// (S/configured, S/metadata-updated, S/child-stream-created, S/subscription-configured,
// S/subscription-removed, S/paused, S/resumed) only when it grants `configure`; otherwise the whole
// call is 403 and nothing is written. The API token, the admin token and service bindings keep it.
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { mintToken } from "@streams/client";
import { REPO_ROOT, callService, http, startStreams } from "./helpers/mf.mjs";
import { S } from "./helpers/assertions.mjs";

const run = promisify(execFile);
const SECRET = "configure-test-secret";
const API = "configure-api";
const ADMIN = "configure-admin";
const NS = "conf";
const CLI = path.join(REPO_ROOT, "client", "dist", "cli.js");

const CONTROL_EVENTS = [
  { type: S("configured"), payload: { config: { circuitBreaker: { burstCapacity: 100, refillRatePerMinute: 600 } } } },
  { type: S("metadata-updated"), payload: { metadata: { owner: "team-a" } } },
  { type: S("child-stream-created"), payload: { childPath: "/x/jobs/7" } },
  { type: S("subscription-configured"), payload: { subscriptionKey: "k", subscriber: { type: "websocket", url: "wss://example.com/hook" } } },
  { type: S("subscription-removed"), payload: { subscriptionKey: "k" } },
  { type: S("paused"), payload: { reason: "maintenance" } },
  { type: S("resumed"), payload: {} },
];

let mf;
before(async () => {
  mf = await startStreams({ bindings: { STREAMS_JWT_SECRET: SECRET, STREAMS_API_TOKEN: API, STREAMS_ADMIN_TOKEN: ADMIN } });
});
after(() => mf?.dispose());

const bearer = (t) => ({ authorization: `Bearer ${t}` });
const post = (tok, method, p, body) => http(mf, "POST", `/api/streams/${method}?namespace=${NS}&path=${encodeURIComponent(p)}`, { headers: bearer(tok), body });
const types = async (p) => (await callService(mf, "getEvents", { namespace: NS, path: p })).map((e) => e.type);
let n = 0;
const freshPath = () => `/x${++n}-${Math.random().toString(36).slice(2, 8)}`;

test("configure op: an append-only token cannot append any control event, alone or in a batch; nothing is written", async () => {
  const appendOnly = await mintToken({ secret: SECRET, ns: NS, paths: ["/**"], ops: ["read", "append"], ttlSeconds: 120 });
  const p = freshPath();
  assert.equal((await post(appendOnly, "append", p, { event: { type: "app/first" } })).status, 200);
  const before = await types(p);
  for (const event of CONTROL_EVENTS) {
    const single = await post(appendOnly, "append", p, { event });
    assert.equal(single.status, 403, `${event.type}: ${single.text}`);
    assert.deepEqual(single.json, { error: { code: "forbidden", message: `token does not allow configure, which appending "${event.type}" needs` } });
    const batch = await post(appendOnly, "appendBatch", p, { events: [{ type: "app/before" }, event, { type: "app/after" }] });
    assert.equal(batch.status, 403, `${event.type} in a batch: ${batch.text}`);
    assert.match(batch.json.error.message, /token does not allow configure/);
  }
  // Through streamPath too: the events decide, not the route.
  const viaStreamPath = await post(appendOnly, "append", p, { streamPath: "child", event: CONTROL_EVENTS[5] });
  assert.equal(viaStreamPath.status, 403, viaStreamPath.text);
  assert.deepEqual(await types(p), before, "no refused call wrote anything");
  // Other system-prefixed types are not control events.
  assert.equal((await post(appendOnly, "append", p, { event: { type: S("error-occurred"), payload: { message: "m" } } })).status, 200);
});

test("configure op: a token granting configure appends control events; the API token, admin token and service bindings keep every op", async () => {
  const configure = await mintToken({ secret: SECRET, ns: NS, paths: ["/**"], ops: ["append", "configure"], ttlSeconds: 120 });
  const p = freshPath();
  const batch = await post(configure, "appendBatch", p, { events: [{ type: "app/x" }, CONTROL_EVENTS[1], CONTROL_EVENTS[5], CONTROL_EVENTS[6]] });
  assert.equal(batch.status, 200, batch.text);
  assert.deepEqual(batch.json.map((e) => e.type), ["app/x", S("metadata-updated"), S("paused"), S("resumed")]);
  // `configure` alone is not `append`.
  const configureOnly = await mintToken({ secret: SECRET, ns: NS, paths: ["/**"], ops: ["configure"], ttlSeconds: 120 });
  const refused = await post(configureOnly, "append", p, { event: CONTROL_EVENTS[1] });
  assert.deepEqual(refused.json, { error: { code: "forbidden", message: "token does not allow append" } });
  for (const tok of [API, ADMIN]) {
    const res = await post(tok, "append", p, { event: CONTROL_EVENTS[5] });
    assert.equal(res.status, 200, res.text);
    assert.equal((await post(tok, "append", p, { event: CONTROL_EVENTS[6] })).status, 200);
  }
  const viaBinding = await callService(mf, "append", { namespace: NS, path: p, event: CONTROL_EVENTS[0] });
  assert.equal(viaBinding.type, S("configured"));
});

test("configure op: `streams token --ops append,configure` mints a token that may append control events", async () => {
  const { stdout } = await run(process.execPath, [CLI, "token", "--namespace", NS, "/**", "--ops", "append,configure", "--ttl", "90"], { env: { ...process.env, STREAMS_JWT_SECRET: SECRET } });
  const tok = stdout.trim();
  assert.deepEqual(JSON.parse(Buffer.from(tok.split(".")[1], "base64url")).ops, ["append", "configure"]);
  const res = await post(tok, "append", freshPath(), { event: CONTROL_EVENTS[1] });
  assert.equal(res.status, 200, res.text);
});
