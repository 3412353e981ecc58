// The directory: listStreams over the service binding and HTTP, freshness, prefix and paging,
// reset removing a stream, childPaths capped at 100 with childCount, token scoping, and a
// directory of 10,000 streams paged through (docs/protocol.md#liststreams, docs/architecture.md#the-directory).
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import { startStreams, call, callService, tryCallService, http } from "./helpers/mf.mjs";
import { assertError, pollUntil, callAfterKill, coreState } from "./helpers/assertions.mjs";
import { signJwt, claims } from "./helpers/jwt.mjs";

const SECRET = "directory-test-secret";
const MASTER = "directory-master";
let mf;
before(async () => {
  mf = await startStreams({ bindings: { STREAMS_JWT_SECRET: SECRET, STREAMS_API_TOKEN: MASTER } });
});
after(async () => {
  await mf?.dispose();
});

let namespaces = 0;
const freshNamespace = () => `dir${++namespaces}-${Math.random().toString(36).slice(2, 8)}`;
const master = { authorization: `Bearer ${MASTER}` };
const paths = (page) => page.streams.map((s) => s.path);

/** Every page of a listing, following `next`. */
async function listAll(list, args) {
  const pages = [];
  let after;
  do {
    const page = await list({ ...args, ...(after ? { after } : {}) });
    pages.push(page);
    after = page.next;
  } while (after);
  return pages;
}

const listHttp = (query, headers = master) => http(mf, "GET", `/api/streams/listStreams?${new URLSearchParams(query)}`, { headers });

test("a written stream is listed with its figures; maxOffset follows; the listing is sorted, filtered by prefix and paged", async () => {
  const namespace = freshNamespace();
  const written = ["/b", "/a/2", "/a/1", "/a", "/c/x/y"];
  for (const path of written) await callService(mf, "append", { namespace, path, event: { type: "app/x" } });
  const listed = await pollUntil(
    () => callService(mf, "listStreams", { namespace }),
    (page) => page.streams.length >= 8, // the five, plus the ancestors their notices created: "/", "/c", "/c/x"
    { timeoutMs: 30_000, what: "every written stream listed" },
  );
  assert.deepEqual(paths(listed), ["/", "/a", "/a/1", "/a/2", "/b", "/c", "/c/x", "/c/x/y"]);
  assert.equal(listed.next, null);
  const state = await coreState(mf, `${namespace}:/b`);
  // The first report comes with the first commit; the figures follow within about a second.
  const fresh = await pollUntil(
    () => callService(mf, "listStreams", { namespace, prefix: "/b" }),
    (page) => page.streams[0]?.maxOffset === state.maxOffset,
    { timeoutMs: 30_000, what: "maxOffset of /b reported" },
  );
  const entry = fresh.streams[0];
  assert.deepEqual(Object.keys(entry), ["path", "streamId", "createdAt", "maxOffset", "lastEventAt"]);
  assert.equal(entry.streamId, state.streamId);
  assert.equal(entry.createdAt, state.createdAt);
  assert.equal(entry.lastEventAt, (await call(mf, `${namespace}:/b`, "getEvents", { last: 1 }))[0].createdAt);

  await callService(mf, "appendBatch", { namespace, path: "/b", events: Array.from({ length: 20 }, () => ({ type: "app/y" })) });
  const maxOffset = (await coreState(mf, `${namespace}:/b`)).maxOffset;
  await pollUntil(
    () => callService(mf, "listStreams", { namespace, prefix: "/b" }),
    (page) => page.streams[0]?.maxOffset === maxOffset,
    { timeoutMs: 30_000, what: "maxOffset reported" },
  );

  assert.deepEqual(paths(await callService(mf, "listStreams", { namespace, prefix: "/a/" })), ["/a/1", "/a/2"]);
  assert.deepEqual(paths(await callService(mf, "listStreams", { namespace, prefix: "/a" })), ["/a", "/a/1", "/a/2"]);
  const pages = await listAll((args) => callService(mf, "listStreams", args), { namespace, limit: 3 });
  assert.deepEqual(pages.map(paths), [["/", "/a", "/a/1"], ["/a/2", "/b", "/c"], ["/c/x", "/c/x/y"]]);
  const overHttp = await listHttp({ namespace, prefix: "/c", limit: "2" });
  assert.equal(overHttp.status, 200);
  assert.deepEqual(paths(overHttp.json), ["/c", "/c/x"]);
  assert.equal(overHttp.json.next, "/c/x");
  const rest = await listHttp({ namespace, prefix: "/c", limit: "2", after: overHttp.json.next });
  assert.deepEqual([paths(rest.json), rest.json.next], [["/c/x/y"], null]);
});

test("reset removes the stream from the directory until it is written again, with a new streamId", async () => {
  const namespace = freshNamespace();
  await callService(mf, "append", { namespace, path: "/gone", event: { type: "app/x" } });
  const before = await pollUntil(() => callService(mf, "listStreams", { namespace, prefix: "/gone" }), (p) => p.streams.length === 1, {
    timeoutMs: 30_000,
    what: "listed",
  });
  await callService(mf, "reset", { namespace, path: "/gone" });
  await pollUntil(() => callService(mf, "listStreams", { namespace, prefix: "/gone" }), (p) => p.streams.length === 0, {
    timeoutMs: 30_000,
    what: "removed after reset",
  });
  await callAfterKill(mf, `${namespace}:/gone`, "append", { event: { type: "app/again" } });
  const again = await pollUntil(() => callService(mf, "listStreams", { namespace, prefix: "/gone" }), (p) => p.streams.length === 1, {
    timeoutMs: 30_000,
    what: "listed again",
  });
  assert.notEqual(again.streams[0].streamId, before.streams[0].streamId);
});

test("childPaths keeps 100 entries; childCount counts every stream below; the directory lists them all", async () => {
  const namespace = freshNamespace();
  const children = Array.from({ length: 105 }, (_, i) => `/parent/c${String(i).padStart(3, "0")}`);
  for (const path of children) await callService(mf, "append", { namespace, path, event: { type: "app/x" } });
  const state = await pollUntil(() => coreState(mf, `${namespace}:/parent`), (s) => s.childCount === 105, {
    timeoutMs: 30_000,
    what: "every child notice reduced",
  });
  assert.equal(state.childPaths.length, 100);
  const listed = await pollUntil(
    () => callService(mf, "listStreams", { namespace, prefix: "/parent/", limit: 1000 }),
    (p) => p.streams.length === 105,
    { timeoutMs: 30_000, what: "every child listed" },
  );
  assert.deepEqual(paths(listed), children);
});

test("errors: limit, namespace, unknown arguments, verbs, credentials", async () => {
  const cases = [
    [{ limit: 0 }, "invalid_request", "listStreams limit must be an integer from 1 to 1000"],
    [{ limit: 1001 }, "invalid_request", "listStreams limit must be an integer from 1 to 1000"],
    [{ prefix: 5 }, "invalid_request", "prefix must be a string"],
    [{ path: "/a" }, "invalid_request", 'unknown argument "path"'],
  ];
  for (const [arg, code, message] of cases) assertError(await tryCallService(mf, "listStreams", arg), code, message);
  assert.equal((await tryCallService(mf, "listStreams", { namespace: "bad namespace!" })).ok, false);
  const bad = await listHttp({ limit: "0" });
  assert.deepEqual([bad.status, bad.json.error.code], [400, "invalid_request"]);
  const post = await http(mf, "POST", "/api/streams/listStreams", { headers: master, body: {} });
  assert.deepEqual([post.status, post.json.error.code, post.headers.get("allow")], [405, "method_not_allowed", "GET"]);
  assert.equal((await listHttp({}, {})).status, 401, "no credentials");
});

test("a scoped token lists only the paths it covers, needs read, and only in its namespace", async () => {
  const namespace = freshNamespace();
  for (const path of ["/team/a", "/team/b", "/teammate", "/other"]) await callService(mf, "append", { namespace, path, event: { type: "app/x" } });
  await pollUntil(() => callService(mf, "listStreams", { namespace }), (p) => p.streams.length === 6, { timeoutMs: 30_000, what: "listed" });
  const token = (paths, ops = ["read"], ns = namespace) => ({ authorization: `Bearer ${signJwt(claims({ ns, paths, ops }), SECRET)}` });
  const scoped = await listHttp({ namespace }, token(["/team/**"]));
  assert.equal(scoped.status, 200);
  assert.deepEqual(paths(scoped.json), ["/team", "/team/a", "/team/b"], "not /teammate, /other or /");
  const paged = await listAll(async (args) => (await listHttp(args, token(["/team/**", "/other"]))).json, { namespace, limit: "2" });
  assert.deepEqual(paged.flatMap(paths), ["/other", "/team", "/team/a", "/team/b"], "the cursor moves past hidden paths");
  const noRead = await listHttp({ namespace }, token(["/**"], ["append"]));
  assert.deepEqual([noRead.status, noRead.json.error.message], [403, "token does not allow read"]);
  const elsewhere = await listHttp({ namespace }, token(["/**"], ["read"], "someone-else"));
  assert.deepEqual([elsewhere.status, elsewhere.json.error.message], [403, `token does not cover namespace "${namespace}"`]);
});

/** The shard of a path: FNV-1a of its UTF-8 bytes, mod 16 (docs/architecture.md#the-directory). */
function shardOf(namespace, path) {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(path, "utf8")) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  return `${namespace}#${hash % 16}`;
}

test("a directory of 10,000 streams pages through every path once, in order", async () => {
  const namespace = freshNamespace();
  const directory = await mf.getDurableObjectNamespace("DIRECTORY", "streams");
  const all = Array.from({ length: 10000 }, (_, i) => `/fleet/${String(i % 100).padStart(2, "0")}/device-${i}`);
  const byShard = new Map();
  for (const path of all) {
    const shard = shardOf(namespace, path);
    if (!byShard.has(shard)) byShard.set(shard, []);
    byShard.get(shard).push({ path, streamId: `id-${path}`, createdAt: "2026-01-05T10:00:00.000Z", maxOffset: 3, lastEventAt: "2026-01-05T10:00:01.000Z" });
  }
  assert.equal(byShard.size, 16, "every shard holds some");
  for (const [shard, entries] of byShard) {
    const object = directory.get(directory.idFromName(shard));
    for (let i = 0; i < entries.length; i += 500) await object.record({ entries: entries.slice(i, i + 500) });
  }
  const expected = [...all].sort();
  const big = await listAll((args) => callService(mf, "listStreams", args), { namespace, limit: 1000 });
  assert.equal(big.length, 10);
  assert.deepEqual(big.flatMap(paths), expected);
  const small = await listAll(async (args) => (await listHttp(args)).json, { namespace, limit: "250" });
  assert.equal(small.length, 40);
  assert.deepEqual(small.flatMap(paths), expected);
  const prefixed = await listAll((args) => callService(mf, "listStreams", args), { namespace, prefix: "/fleet/07/", limit: 30 });
  assert.deepEqual(prefixed.flatMap(paths), expected.filter((p) => p.startsWith("/fleet/07/")));
  assert.equal(prefixed.flatMap(paths).length, 100);
});
