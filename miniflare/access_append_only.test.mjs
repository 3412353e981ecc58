// An append-only principal learns nothing by appending (docs/access.md#operations): on an
// idempotency hit, a scoped token without `read` gets the existing event's offset, type,
// idempotencyKey and createdAt only, never its payload, metadata or source.
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import { mintToken } from "@streams/client";
import { callService, http, startStreams, tryCallService } from "./helpers/mf.mjs";
import { assertError } from "./helpers/assertions.mjs";

const SECRET = "append-only-secret";
const NS = "ao";
let mf;
before(async () => {
  mf = await startStreams({ bindings: { STREAMS_JWT_SECRET: SECRET } });
});
after(() => mf?.dispose());

const token = (ops) => mintToken({ secret: SECRET, ns: NS, paths: ["/**"], ops, ttlSeconds: 120 });
const post = (tok, method, p, body) =>
  http(mf, "POST", `/api/streams/${method}?namespace=${NS}&path=${encodeURIComponent(p)}`, { headers: { authorization: `Bearer ${tok}` }, body });
let n = 0;
const freshPath = () => `/ao${++n}-${Math.random().toString(36).slice(2, 8)}`;

test("append-only idempotency hit: the reply has only offset, type, key and createdAt", async () => {
  const p = freshPath();
  const secret = await callService(mf, "append", {
    namespace: NS,
    path: p,
    event: { type: "app/secret", payload: { card: "4242" }, metadata: { who: "alice" }, idempotencyKey: "order-1" },
  });
  const appendOnly = await token(["append"]);
  const single = await post(appendOnly, "append", p, { event: { type: "app/guess", payload: { card: "?" }, idempotencyKey: "order-1" } });
  assert.equal(single.status, 200, single.text);
  assert.deepEqual(single.json, { type: "app/secret", idempotencyKey: "order-1", offset: secret.offset, createdAt: secret.createdAt });
  assert.deepEqual(Object.keys(single.json), ["type", "idempotencyKey", "offset", "createdAt"]);

  // In a batch: the hit is summarised; the batch's own new event (and a repeat of it) comes back whole.
  const batch = await post(appendOnly, "appendBatch", p, {
    events: [
      { type: "app/mine", payload: { n: 1 }, idempotencyKey: "mine-1" },
      { type: "app/guess", idempotencyKey: "order-1" },
      { type: "app/mine", payload: { n: 2 }, idempotencyKey: "mine-1" },
    ],
  });
  assert.equal(batch.status, 200, batch.text);
  assert.deepEqual(batch.json[0].payload, { n: 1 });
  assert.deepEqual(batch.json[1], { type: "app/secret", idempotencyKey: "order-1", offset: secret.offset, createdAt: secret.createdAt });
  assert.deepEqual(batch.json[2], batch.json[0]);

  // A caller asking for whole events does not get them.
  const asked = await post(appendOnly, "append", p, { event: { type: "app/guess", idempotencyKey: "order-1" }, summarizeHits: false });
  assert.deepEqual(Object.keys(asked.json), ["type", "idempotencyKey", "offset", "createdAt"]);
});

test("append-only idempotency hit: a token with read, the API token and service bindings still get the whole event", async () => {
  const p = freshPath();
  const secret = await callService(mf, "append", { namespace: NS, path: p, event: { type: "app/secret", payload: { card: "4242" }, idempotencyKey: "k" } });
  const readAppend = await token(["read", "append"]);
  const whole = await post(readAppend, "append", p, { event: { type: "app/x", idempotencyKey: "k" } });
  assert.deepEqual(whole.json, secret);
  assert.deepEqual(await callService(mf, "append", { namespace: NS, path: p, event: { type: "app/x", idempotencyKey: "k" } }), secret);
});

test("append-only idempotency hit: summarizeHits, the argument HTTP sets for them, must be a boolean", async () => {
  const p = freshPath();
  const outcome = await tryCallService(mf, "append", { namespace: NS, path: p, event: { type: "app/x" }, summarizeHits: "yes" });
  assertError(outcome, "invalid_request", "summarizeHits must be a boolean");
  const summarized = await callService(mf, "append", { namespace: NS, path: p, event: { type: "app/x", idempotencyKey: "k" }, summarizeHits: true });
  assert.equal(summarized.type, "app/x", "a new event comes back whole even when hits are summarized");
});
