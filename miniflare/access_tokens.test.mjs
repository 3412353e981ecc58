// Scoped access tokens on public HTTP (docs/access.md): HS256 JWTs with `ns`, `paths`, `ops` and
// `exp`, in `Authorization: Bearer` everywhere and in `access_token` on the WebSocket route only.
// Every refusal is checked for its status, code and message, for not echoing the token, and for
// leaving the target stream uncreated (no Durable Object storage on disk).
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import { startStreams, call, http, doHasFiles, startPersistedStreams, stopPersistedStreams } from "./helpers/mf.mjs";
import { readAll } from "./helpers/assertions.mjs";
import { openSubscriber, subscribeRaw } from "./helpers/subscribers.mjs";
import { signJwt, unsignedJwt, claims, nowSeconds } from "./helpers/jwt.mjs";

const SECRET = "access-test-secret-current";
const NEXT_SECRET = "access-test-secret-next";
const NS = "acc";

let mf;
let persistDir;

before(async () => {
  ({ mf, persistDir } = await startPersistedStreams("streams-access-", { bindings: { STREAMS_JWT_SECRET: SECRET } }));
});

after(() => stopPersistedStreams(mf, persistDir));

let counter = 0;
/** A fresh subtree root `/r<n>-<random>` so every test owns its paths. */
const freshRoot = () => `/r${++counter}-${Math.random().toString(36).slice(2, 8)}`;
const token = (c, secret = SECRET) => signJwt(claims({ ns: NS, ...c }), secret);
const bearer = (t) => ({ authorization: `Bearer ${t}` });
const q = (ns, path, extra = "") => `namespace=${ns}&path=${encodeURIComponent(path)}${extra}`;
const appendBody = (type = "app/x") => ({ event: { type, payload: { n: 1 } } });

function assertRefused(res, status, code, message, tok, note) {
  const where = `${note}: HTTP ${res.status} ${(res.text ?? JSON.stringify(res.json)).slice(0, 300)}`;
  assert.equal(res.status, status, where);
  assert.equal(res.json?.error?.code, code, where);
  if (message instanceof RegExp) assert.match(res.json.error.message, message, where);
  else assert.equal(res.json.error.message, message, where);
  if (tok) {
    const body = res.text ?? JSON.stringify(res.json);
    for (const part of tok.split(".").filter((p) => p.length > 8)) assert.ok(!body.includes(part), `${note}: the token is echoed`);
  }
}

async function assertNothingStored(ns, path, note) {
  assert.equal(await doHasFiles(mf, persistDir, `${ns}:${path}`), false, `${note}: ${ns}:${path} was created`);
}

test("read tokens: exact and subtree paths read over GET, POST and the WebSocket (header and access_token)", async () => {
  const root = freshRoot();
  for (const path of [root, `${root}/child`, `${root}/child/deep`]) await call(mf, `${NS}:${path}`, "append", { event: { type: "app/seed" } });
  const exact = token({ paths: [root], ops: ["read"] });
  const subtree = token({ paths: [`${root}/**`], ops: ["read"] });
  for (const [tok, path] of [[exact, root], [subtree, root], [subtree, `${root}/child`], [subtree, `${root}/child/deep`]]) {
    const got = await http(mf, "GET", `/api/streams/getEvents?${q(NS, path)}`, { headers: bearer(tok) });
    assert.equal(got.status, 200, got.text);
    assert.deepEqual(got.json.map((e) => e.type).filter((t) => t.startsWith("app/")), ["app/seed"]);
    assert.equal((await http(mf, "GET", `/api/streams/getEvent?${q(NS, path, "&offset=1")}`, { headers: bearer(tok) })).status, 200);
    assert.equal((await http(mf, "POST", `/api/streams/runtimeState?${q(NS, path)}`, { headers: bearer(tok) })).status, 200);
    const reduced = await http(mf, "POST", `/api/streams/reduce?${q(NS, path)}`, {
      headers: bearer(tok),
      body: { event: { type: "app/x", offset: 9, createdAt: "2026-01-01T00:00:00.000Z" } },
    });
    assert.equal(reduced.status, 200, reduced.text);
    for (const via of ["header", "query"]) {
      const sub = via === "header"
        ? await openSubscriber(mf, `${NS}:${path}`, { replayAfterOffset: 0 }, { headers: bearer(tok) })
        : await openSubscriber(mf, `${NS}:${path}`, { replayAfterOffset: 0, access_token: tok });
      await sub.waitFor((s) => s.events().some((e) => e.type === "app/seed"), { what: `replay on ${path} via ${via}` });
      sub.close();
    }
  }
});

test("append tokens: exact and subtree paths append and appendBatch; streamPath inside the scope lands", async () => {
  const root = freshRoot();
  const exact = token({ paths: [root], ops: ["append"] });
  const subtree = token({ paths: [`${root}/**`], ops: ["append", "read"] });
  const one = await http(mf, "POST", `/api/streams/append?${q(NS, root)}`, { headers: bearer(exact), body: appendBody("app/one") });
  assert.equal(one.status, 200, one.text);
  assert.equal(one.json.type, "app/one");
  const batch = await http(mf, "POST", `/api/streams/appendBatch?${q(NS, `${root}/k`)}`, {
    headers: bearer(subtree),
    body: { events: [{ type: "app/a" }, { type: "app/b" }] },
  });
  assert.equal(batch.status, 200, batch.text);
  const child = await http(mf, "POST", `/api/streams/append?${q(NS, root)}`, { headers: bearer(subtree), body: { streamPath: "k/deeper", ...appendBody("app/child") } });
  assert.equal(child.status, 200, child.text);
  // An exact token for the target alone suffices when streamPath resolves to it.
  const viaStreamPath = await http(mf, "POST", `/api/streams/append?${q(NS, `${root}/k`)}`, { headers: bearer(exact), body: { streamPath: "..", ...appendBody("app/up") } });
  assert.equal(viaStreamPath.status, 200, viaStreamPath.text);
  assert.deepEqual((await readAll(mf, `${NS}:${root}`)).map((e) => e.type).filter((t) => t.startsWith("app/")), ["app/one", "app/up"]);
  assert.deepEqual((await readAll(mf, `${NS}:${root}/k`)).map((e) => e.type).filter((t) => t.startsWith("app/")), ["app/a", "app/b"]);
  assert.deepEqual((await readAll(mf, `${NS}:${root}/k/deeper`)).map((e) => e.type).filter((t) => t.startsWith("app/")), ["app/child"]);
});

test("every refusal: status, code, a message naming the problem, no token echo, nothing created", async () => {
  const root = freshRoot();
  const read = (paths = [`${root}/**`]) => token({ paths, ops: ["read"] });
  const append = (paths = [`${root}/**`]) => token({ paths, ops: ["append"] });
  const both = token({ paths: [`${root}/**`], ops: ["read", "append"] });
  const big = token({ paths: [`${root}/**`], ops: ["read", "append"], sub: "x".repeat(4096) });
  const cases = [
    // [note, token, verb, route, ns, path, body, status, code, message]
    ["wrong signature", token({ paths: [`${root}/**`], ops: ["append"] }, "not-the-secret"), "POST", "append", NS, root, appendBody(), 401, "unauthorized", "token signature does not match"],
    ["alg none", unsignedJwt(claims({ ns: NS, paths: [`${root}/**`], ops: ["append"] })), "POST", "append", NS, root, appendBody(), 401, "unauthorized", "token alg must be HS256"],
    ["alg RS256 signed with the secret", signJwt(claims({ ns: NS, paths: [`${root}/**`], ops: ["append"] }), SECRET, { alg: "RS256", typ: "JWT" }), "POST", "append", NS, root, appendBody(), 401, "unauthorized", "token alg must be HS256"],
    ["expired", token({ paths: [`${root}/**`], ops: ["append"], ttl: -31 - 5 }), "POST", "append", NS, root, appendBody(), 401, "unauthorized", "token expired"],
    ["not yet valid", token({ paths: [`${root}/**`], ops: ["append"], nbf: nowSeconds() + 120 }), "POST", "append", NS, root, appendBody(), 401, "unauthorized", "token not valid yet"],
    ["malformed claims", token({ paths: [], ops: ["append"] }), "POST", "append", NS, root, appendBody(), 401, "unauthorized", /^malformed token: paths /],
    ["oversized token", big, "POST", "append", NS, root, appendBody(), 401, "unauthorized", "token exceeds 4096 bytes"],
    ["wrong namespace", append(), "POST", "append", "other", root, appendBody(), 403, "forbidden", 'token does not cover namespace "other"'],
    ["/a/** on /ab", append(), "POST", "append", NS, `${root}b`, appendBody(), 403, "forbidden", `token does not cover path "${root}b"`],
    ["/a on /a/b", append([root]), "POST", "append", NS, `${root}/b`, appendBody(), 403, "forbidden", `token does not cover path "${root}/b"`],
    ["/a on /a/b (read)", read([root]), "GET", "getEvents", NS, `${root}/b`, undefined, 403, "forbidden", `token does not cover path "${root}/b"`],
    ["read token appending", read(), "POST", "append", NS, root, appendBody(), 403, "forbidden", "token does not allow append"],
    ["read token appendBatch", read(), "POST", "appendBatch", NS, root, { events: [{ type: "app/x" }] }, 403, "forbidden", "token does not allow append"],
    ["append token getEvents", append(), "GET", "getEvents", NS, root, undefined, 403, "forbidden", "token does not allow read"],
    ["append token getEvent", append(), "POST", "getEvent", NS, root, { offset: 1 }, 403, "forbidden", "token does not allow read"],
    ["append token runtimeState", append(), "GET", "runtimeState", NS, root, undefined, 403, "forbidden", "token does not allow read"],
    ["append token reduce", append(), "POST", "reduce", NS, root, { event: { type: "app/x", offset: 1, createdAt: "2026-01-01T00:00:00.000Z" } }, 403, "forbidden", "token does not allow read"],
    ["streamPath escaping the scope (..)", append(), "POST", "append", NS, root, { streamPath: "../elsewhere", ...appendBody() }, 403, "forbidden", 'token does not cover path "/elsewhere"'],
    ["streamPath escaping the scope (absolute)", append(), "POST", "append", NS, root, { streamPath: "/outside", ...appendBody() }, 403, "forbidden", 'token does not cover path "/outside"'],
    ["scoped token on reset", both, "POST", "reset", NS, root, undefined, 403, "unauthorized", "admin token required"],
    ["scoped token on kill", both, "POST", "kill", NS, root, undefined, 403, "unauthorized", "admin token required"],
  ];
  for (const [note, tok, verb, route, ns, path, body, status, code, message] of cases) {
    const res = await http(mf, verb, `/api/streams/${route}?${q(ns, path)}`, { headers: bearer(tok), body });
    assertRefused(res, status, code, message, tok, note);
    await assertNothingStored(ns, path, note);
  }
  await assertNothingStored(NS, "/elsewhere", "streamPath");
  await assertNothingStored(NS, "/outside", "streamPath");

  // The query string carries a token only on the WebSocket route.
  for (const [verb, route, body] of [["GET", "getEvents", undefined], ["POST", "append", appendBody()], ["POST", "appendBatch", { events: [{ type: "app/x" }] }]]) {
    const res = await http(mf, verb, `/api/streams/${route}?${q(NS, root)}&access_token=${both}`, { body });
    assertRefused(res, 401, "unauthorized", "missing or invalid bearer token", both, `access_token on ${route}`);
  }
  // And the WebSocket route refuses the same way.
  for (const [note, tok, status, code, message] of [
    ["append token subscribing", append(), 403, "forbidden", "token does not allow read"],
    ["wrong path subscribing", read([`${root}/x`]), 403, "forbidden", `token does not cover path "${root}"`],
    ["expired subscribing", token({ paths: [`${root}/**`], ops: ["read"], ttl: -60 }), 401, "unauthorized", "token expired"],
    ["oversized subscribing", big, 401, "unauthorized", "token exceeds 4096 bytes"],
  ]) {
    for (const params of [{ access_token: tok }, {}]) {
      const headers = params.access_token ? { upgrade: "websocket" } : { upgrade: "websocket", ...bearer(tok) };
      const res = await subscribeRaw(mf, `${NS}:${root}`, params, { headers });
      assertRefused(res, status, code, message, tok, `${note} (${params.access_token ? "query" : "header"})`);
    }
  }
  const anonymous = await subscribeRaw(mf, `${NS}:${root}`);
  assertRefused(anonymous, 401, "unauthorized", "missing or invalid bearer token", null, "no credential");
  await assertNothingStored(NS, root, "after every refusal");
});

test("clock leeway: 30 s past exp and 30 s before nbf are still accepted", async () => {
  const root = freshRoot();
  const late = token({ paths: [root], ops: ["append"], ttl: -20 });
  const early = token({ paths: [root], ops: ["append"], nbf: nowSeconds() + 20 });
  for (const tok of [late, early]) {
    const res = await http(mf, "POST", `/api/streams/append?${q(NS, root)}`, { headers: bearer(tok), body: appendBody() });
    assert.equal(res.status, 200, res.text);
  }
});

test("rotation: the previous secret is accepted only while STREAMS_JWT_SECRET_PREVIOUS holds it; master tokens keep working", async () => {
  const root = freshRoot();
  const signedWith = (secret) => token({ paths: [`${root}/**`], ops: ["read", "append"] }, secret);
  const [current, next] = [signedWith(SECRET), signedWith(NEXT_SECRET)];
  const post = (m, tok, path) => http(m, "POST", `/api/streams/append?${q(NS, path)}`, { headers: bearer(tok), body: appendBody() });

  // Before: only the current secret.
  assertRefused(await post(mf, next, `${root}/before`), 401, "unauthorized", "token signature does not match", next, "next before rotation");
  assert.equal((await post(mf, current, `${root}/before`)).status, 200);

  const during = await startStreams({ bindings: { STREAMS_JWT_SECRET: NEXT_SECRET, STREAMS_JWT_SECRET_PREVIOUS: SECRET, STREAMS_API_TOKEN: "master" } });
  try {
    assert.equal((await post(during, current, `${root}/during`)).status, 200, "old secret during rotation");
    assert.equal((await post(during, next, `${root}/during`)).status, 200, "new secret during rotation");
    assert.equal((await post(during, "master", `${root}/during`)).status, 200, "master token in the header");
    assertRefused(await post(during, signedWith("third"), `${root}/during`), 401, "unauthorized", "token signature does not match", null, "unknown secret");
    assertRefused(await post(during, "wrong-master", `${root}/during`), 401, "unauthorized", "missing or invalid bearer token", null, "wrong master");
    // The master token is never read from the query, even on the WebSocket route.
    const masterInQuery = await subscribeRaw(during, `${NS}:${root}/during`, { access_token: "master" });
    assertRefused(masterInQuery, 401, "unauthorized", "missing or invalid bearer token", null, "master in access_token");
    assert.equal((await subscribeRaw(during, `${NS}:${root}/during`, { access_token: current })).status, 101);
    assert.equal((await readAll(during, `${NS}:${root}/during`)).filter((e) => e.type === "app/x").length, 3);
  } finally {
    await during.dispose();
  }

  const afterRotation = await startStreams({ bindings: { STREAMS_JWT_SECRET: NEXT_SECRET } });
  try {
    assertRefused(await post(afterRotation, current, `${root}/after`), 401, "unauthorized", "token signature does not match", current, "old secret after rotation");
    assert.equal((await post(afterRotation, next, `${root}/after`)).status, 200);
    assert.equal((await readAll(afterRotation, `${NS}:${root}/after`)).filter((e) => e.type === "app/x").length, 1);
  } finally {
    await afterRotation.dispose();
  }
});
