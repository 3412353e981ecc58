// CORS and WebSocket origin checks (docs/access.md): `STREAMS_CORS_ORIGINS` answers preflights,
// adds the allow headers for listed origins only, varies every response on Origin, and refuses
// WebSocket upgrades from unlisted page origins with 403 `forbidden`.
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import { startStreams, http, doHasFiles, startPersistedStreams, stopPersistedStreams } from "./helpers/mf.mjs";
import { subscribeRaw } from "./helpers/subscribers.mjs";

const APP = "http://app.test:8080";
const OTHER_APP = "https://other.test";
const EVIL = "http://evil.test";
const API_TOKEN = "cors-master";

let mf;
let persistDir;

before(async () => {
  ({ mf, persistDir } = await startPersistedStreams("streams-cors-", {
    bindings: { STREAMS_CORS_ORIGINS: ` ${APP}, ${OTHER_APP}/ `, STREAMS_API_TOKEN: API_TOKEN },
  }));
});

after(() => stopPersistedStreams(mf, persistDir));

const fresh = () => `/c${Math.random().toString(36).slice(2, 10)}`;
const accessControl = (res) => [...res.headers].filter(([h]) => h.startsWith("access-control-"));
const preflight = (m, origin, route = "append") =>
  http(m, "OPTIONS", `/api/streams/${route}?path=/x`, {
    headers: { ...(origin ? { origin } : {}), "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type" },
  });

test("preflight from a listed origin: 204 with methods, headers and max-age, before any token check", async () => {
  for (const origin of [APP, OTHER_APP]) {
    for (const route of ["append", "getEvents", "subscribe"]) {
      const res = await preflight(mf, origin, route);
      assert.equal(res.status, 204, `${origin} ${route}: ${res.text}`);
      assert.equal(res.headers.get("access-control-allow-origin"), origin);
      assert.equal(res.headers.get("access-control-allow-methods"), "GET, POST, OPTIONS");
      assert.equal(res.headers.get("access-control-allow-headers"), "Authorization, Content-Type");
      assert.equal(res.headers.get("access-control-max-age"), "600");
      assert.equal(res.headers.get("vary"), "Origin");
      assert.equal(res.text, "");
    }
  }
});

test("preflight from an unlisted origin: 403 forbidden and no CORS headers; without Origin: 400", async () => {
  for (const origin of [EVIL, "http://app.test", "http://app.test:8081", "null"]) {
    const res = await preflight(mf, origin);
    assert.equal(res.status, 403, `${origin}: ${res.text}`);
    assert.deepEqual(res.json, { error: { code: "forbidden", message: `origin "${origin}" is not in STREAMS_CORS_ORIGINS` } });
    assert.deepEqual(accessControl(res), [], origin);
    assert.equal(res.headers.get("vary"), "Origin");
  }
  const bare = await preflight(mf, undefined);
  assert.equal(bare.status, 400);
  assert.equal(bare.json.error.code, "invalid_request");
});

test("actual requests: listed origins get allow-origin and expose headers, on successes and errors alike", async () => {
  const path = fresh();
  const auth = { authorization: `Bearer ${API_TOKEN}` };
  const ok = await http(mf, "POST", `/api/streams/append?namespace=t&path=${path}`, { headers: { ...auth, origin: APP }, body: { event: { type: "app/x" } } });
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.headers.get("access-control-allow-origin"), APP);
  assert.equal(ok.headers.get("access-control-expose-headers"), "Allow");
  assert.equal(ok.headers.get("vary"), "Origin");
  // A browser page can read the error bodies too.
  const unauthorized = await http(mf, "GET", `/api/streams/getEvents?namespace=t&path=${path}`, { headers: { origin: APP } });
  assert.equal(unauthorized.status, 401);
  assert.equal(unauthorized.headers.get("access-control-allow-origin"), APP);
  const wrongVerb = await http(mf, "GET", `/api/streams/append?namespace=t&path=${path}`, { headers: { ...auth, origin: APP } });
  assert.equal(wrongVerb.status, 405);
  assert.equal(wrongVerb.headers.get("allow"), "POST");
  assert.equal(wrongVerb.headers.get("access-control-allow-origin"), APP);
  // Unlisted origins and origin-less requests get no CORS headers (but the same Vary).
  for (const headers of [{ ...auth, origin: EVIL }, auth]) {
    const res = await http(mf, "GET", `/api/streams/getEvents?namespace=t&path=${path}`, { headers });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(accessControl(res), [], JSON.stringify(headers));
    assert.equal(res.headers.get("vary"), "Origin");
  }
});

test("WebSocket upgrades: an unlisted page origin is refused with 403 before anything else; listed or no Origin connect", async () => {
  const path = fresh();
  const name = `t:${path}`;
  const auth = { authorization: `Bearer ${API_TOKEN}` };
  for (const headers of [{ origin: EVIL }, { origin: EVIL, ...auth }, { origin: "http://app.test" }]) {
    const res = await subscribeRaw(mf, name, {}, { headers: { upgrade: "websocket", ...headers } });
    assert.equal(res.status, 403, JSON.stringify(headers));
    assert.deepEqual(res.json, { error: { code: "forbidden", message: `origin "${headers.origin}" is not in STREAMS_CORS_ORIGINS` } });
  }
  assert.equal(await doHasFiles(mf, persistDir, name), false, "a refused upgrade created the stream");
  for (const headers of [{ origin: APP, ...auth }, auth]) {
    const res = await subscribeRaw(mf, name, {}, { headers: { upgrade: "websocket", ...headers } });
    assert.equal(res.status, 101, JSON.stringify(headers));
  }
});

test("`*` allows any origin (echoed, with Vary); an unset list sends no CORS headers and answers OPTIONS as before", async () => {
  const any = await startStreams({ bindings: { STREAMS_CORS_ORIGINS: "*" } });
  try {
    const res = await preflight(any, EVIL);
    assert.equal(res.status, 204);
    assert.equal(res.headers.get("access-control-allow-origin"), EVIL);
    const got = await http(any, "GET", `/api/streams/getEvents?namespace=t&path=${fresh()}`, { headers: { origin: "https://x.example" } });
    assert.equal(got.headers.get("access-control-allow-origin"), "https://x.example");
    assert.equal(got.headers.get("vary"), "Origin");
    assert.equal((await subscribeRaw(any, `t:${fresh()}`, {}, { headers: { upgrade: "websocket", origin: EVIL } })).status, 101);
  } finally {
    await any.dispose();
  }
  const off = await startStreams();
  try {
    const res = await preflight(off, APP);
    assert.equal(res.status, 405);
    assert.equal(res.json.error.code, "method_not_allowed");
    const got = await http(off, "GET", `/api/streams/getEvents?namespace=t&path=${fresh()}`, { headers: { origin: APP } });
    assert.equal(got.status, 200);
    assert.deepEqual(accessControl(got), []);
    assert.equal(got.headers.get("vary"), null);
    assert.equal((await subscribeRaw(off, `t:${fresh()}`, {}, { headers: { upgrade: "websocket", origin: EVIL } })).status, 101);
  } finally {
    await off.dispose();
  }
});
