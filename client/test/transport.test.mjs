// The HTTP transport's requests and its error mapping, over a fake fetch; the RPC error mapping.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createStreamsClient, fromRpcError, fromHttpError, StreamError } from "../dist/index.js";

function fakeFetch(respond) {
  const requests = [];
  const fetch = async (url, init) => {
    requests.push({ url: String(url), method: init.method, headers: init.headers, body: JSON.parse(init.body) });
    const { status = 200, body } = respond(requests.at(-1));
    return new Response(typeof body === "string" ? body : JSON.stringify(body), { status });
  };
  return { fetch, requests };
}

test("requests: POST <base>/api/streams/<method>?namespace&path with the JSON arguments and the bearer token", async () => {
  const f = fakeFetch(() => ({ body: { offset: 3 } }));
  const client = createStreamsClient({ baseUrl: "https://example.test/prefix", token: "t0k", namespace: "ns1", fetch: f.fetch });
  await client.append("/a b", { type: "x" }, { streamPath: "kid" });
  await client.getEvents({ namespace: "other", path: "/c" }, { afterOffset: 2, limit: 5 });
  assert.deepEqual(f.requests.map((r) => [r.method, r.url, r.body]), [
    ["POST", "https://example.test/prefix/api/streams/append?namespace=ns1&path=%2Fa+b", { event: { type: "x" }, streamPath: "kid" }],
    ["POST", "https://example.test/prefix/api/streams/getEvents?namespace=other&path=%2Fc", { afterOffset: 2, limit: 5 }],
  ]);
  assert.equal(f.requests[0].headers.authorization, "Bearer t0k");
  assert.equal(f.requests[0].headers["content-type"], "application/json");
});

test("results: JSON null becomes undefined", async () => {
  const f = fakeFetch(() => ({ body: "null" }));
  const client = createStreamsClient({ baseUrl: "http://h", fetch: f.fetch });
  assert.equal(await client.getEvent("/a", { idempotencyKey: "k" }), undefined);
  assert.equal(await client.kill("/a"), undefined);
});

test("errors: the body's code and message with the status; anything else is `protocol`; a failed fetch is `network`", async () => {
  const cases = [
    [{ status: 500, body: { error: { code: "internal", message: "internal error" } } }, ["internal", 500, "internal error"]],
    [{ status: 405, body: { error: { code: "method_not_allowed", message: 'method "x" does not allow GET' } } }, ["method_not_allowed", 405, 'method "x" does not allow GET']],
    [{ status: 502, body: "<html>bad gateway</html>" }, ["protocol", 502, "HTTP 502: <html>bad gateway</html>"]],
    [{ status: 400, body: { error: { code: "not_a_code", message: "m" } } }, ["protocol", 400, 'HTTP 400: {"error":{"code":"not_a_code","message":"m"}}']],
    [{ status: 200, body: "not json" }, ["protocol", 200, "HTTP 200: the body is not JSON: not json"]],
  ];
  for (const [response, [code, status, message]] of cases) {
    const client = createStreamsClient({ baseUrl: "http://h", fetch: fakeFetch(() => response).fetch });
    await assert.rejects(client.runtimeState("/a"), (e) => e instanceof StreamError && e.code === code && e.status === status && e.message === message);
  }
  const down = createStreamsClient({
    baseUrl: "http://h",
    fetch: async () => {
      throw new TypeError("fetch failed", { cause: new Error("connect ECONNREFUSED") });
    },
  });
  await assert.rejects(down.runtimeState("/a"), (e) => e.code === "network" && e.retryable && e.message === "runtimeState h: fetch failed (connect ECONNREFUSED)");
});

test("RPC errors: `<code>: <message>` becomes a StreamError; an unknown prefix is `internal` with the whole text", () => {
  const e = fromRpcError(new Error("offset_mismatch: expected offset 7, got 9"));
  assert.deepEqual([e.code, e.message, e.status, String(e)], ["offset_mismatch", "expected offset 7, got 9", undefined, "offset_mismatch: expected offset 7, got 9"]);
  const odd = fromRpcError(new Error("Network connection lost."));
  assert.deepEqual([odd.code, odd.message], ["internal", "Network connection lost."]);
  assert.equal(fromRpcError(e), e, "a StreamError passes through");
  assert.equal(fromHttpError(404, '{"error":{"code":"not_found","message":"x"}}').retryable, false);
});
