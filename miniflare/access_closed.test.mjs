// Closed by default (docs/access.md#closed-by-default): with neither STREAMS_API_TOKEN nor
// STREAMS_JWT_SECRET set, every public HTTP request and WebSocket upgrade is refused 401 with a
// message saying what to set, unless STREAMS_OPEN_ACCESS is "true". Service bindings need nothing.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { REPO_ROOT, callService, doHasFiles, http, splitName, startPersistedStreams, startStreams, stopPersistedStreams, uniqueName } from "./helpers/mf.mjs";
import { subscribeRaw } from "./helpers/subscribers.mjs";

const CLOSED = 'the API is closed: set STREAMS_API_TOKEN or STREAMS_JWT_SECRET (or STREAMS_OPEN_ACCESS="true" for local development)';
const ADMIN = "closed-admin";
const q = (name) => new URLSearchParams(splitName(name)).toString();

let mf;
let persistDir;

before(async () => {
  // The harness opens the API as `npm run dev` does; these tests take that away again.
  ({ mf, persistDir } = await startPersistedStreams("streams-closed-", { bindings: { STREAMS_OPEN_ACCESS: undefined, STREAMS_ADMIN_TOKEN: ADMIN } }));
});

after(() => stopPersistedStreams(mf, persistDir));

function assertClosed(res, note) {
  assert.equal(res.status, 401, `${note}: ${res.text}`);
  assert.deepEqual(res.json, { error: { code: "unauthorized", message: CLOSED } }, note);
}

test("closed by default: with no token and no JWT secret every public request is refused 401 and nothing is created", async () => {
  const name = uniqueName("closed");
  const requests = [
    ["GET", `/api/streams/runtimeState?${q(name)}`, {}],
    ["GET", `/api/streams/getEvents?${q(name)}`, {}],
    ["POST", `/api/streams/append?${q(name)}`, { body: { event: { type: "app/x" } } }],
    ["POST", `/api/streams/appendBatch?${q(name)}`, { body: { events: [{ type: "app/x" }] } }],
    ["POST", `/api/streams/reset?${q(name)}`, {}],
    ["GET", `/api/streams/nope?${q(name)}`, {}],
    ["GET", `/nope`, {}],
    // A guessed token, master-shaped or JWT-shaped, is refused the same way.
    ["GET", `/api/streams/runtimeState?${q(name)}`, { headers: { authorization: "Bearer guess" } }],
    ["GET", `/api/streams/runtimeState?${q(name)}`, { headers: { authorization: "Bearer a.b.c" } }],
  ];
  for (const [verb, url, init] of requests) assertClosed(await http(mf, verb, url, init), `${verb} ${url}`);
  const upgrade = await subscribeRaw(mf, name, { subscriptionKey: "k", replayAfterOffset: 0 });
  assert.equal(upgrade.webSocket, undefined, "the upgrade is refused");
  assertClosed(upgrade, "WebSocket upgrade");
  const tokenInQuery = await subscribeRaw(mf, name, { subscriptionKey: "k", access_token: "a.b.c" });
  assertClosed(tokenInQuery, "WebSocket upgrade with an access_token");
  assert.equal(await doHasFiles(mf, persistDir, name), false, "no refused request reached the stream");
});

test("closed by default: the admin token still gets in, and service bindings need nothing", async () => {
  const name = uniqueName("closed");
  const { namespace, path: p } = splitName(name);
  const appended = await http(mf, "POST", `/api/streams/append?${q(name)}`, { body: { event: { type: "app/admin" } }, headers: { authorization: `Bearer ${ADMIN}` } });
  assert.equal(appended.status, 200, appended.text);
  assert.equal(appended.json.offset, 3);
  const viaBinding = await callService(mf, "append", { namespace, path: p, event: { type: "app/binding" } });
  assert.equal(viaBinding.offset, 4);
  assertClosed(await http(mf, "GET", `/api/streams/getEvents?${q(name)}`), "without the admin token");
});

test("STREAMS_OPEN_ACCESS opens only when it is exactly \"true\" and only while no token or JWT secret is set", async () => {
  for (const value of ["1", "TRUE"]) {
    const m = await startStreams({ bindings: { STREAMS_OPEN_ACCESS: value } });
    try {
      assertClosed(await http(m, "GET", `/api/streams/runtimeState?${q(uniqueName())}`), `STREAMS_OPEN_ACCESS=${JSON.stringify(value)}`);
    } finally {
      await m.dispose();
    }
  }
  const open = await startStreams({ bindings: { STREAMS_OPEN_ACCESS: "true", STREAMS_API_TOKEN: "api" } });
  try {
    const url = `/api/streams/runtimeState?${q(uniqueName())}`;
    const refused = await http(open, "GET", url);
    assert.equal(refused.status, 401, refused.text);
    assert.equal(refused.json.error.message, "missing or invalid bearer token", "a configured token wins over STREAMS_OPEN_ACCESS");
    assert.equal((await http(open, "GET", url, { headers: { authorization: "Bearer api" } })).status, 200);
  } finally {
    await open.dispose();
  }
});

test("STREAMS_OPEN_ACCESS is set by `npm run dev` only, never in the deployed wrangler.toml", () => {
  const toml = fs.readFileSync(path.join(REPO_ROOT, "wrangler.toml"), "utf8");
  assert.doesNotMatch(toml, /STREAMS_OPEN_ACCESS/, "wrangler.toml must not open the deployed API");
  const dev = fs.readFileSync(path.join(REPO_ROOT, "scripts", "dev.sh"), "utf8");
  assert.match(dev, /wrangler\.js dev [^\n]*--var STREAMS_OPEN_ACCESS:true/);
});
