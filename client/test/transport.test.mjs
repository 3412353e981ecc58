// The HTTP transport's requests and its error mapping, over a fake fetch; the RPC error mapping.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createStreamsClient, eventStreamLink, fromRpcError, fromHttpError, StreamError } from "../dist/index.js";

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

/** An event-stream link over a fake `open`; resolves `handlers` calls as they happen. */
function eventStream(response) {
  const calls = [];
  const handlers = {
    open: () => calls.push(["open"]),
    message: (text) => calls.push(["message", text]),
    alive: () => calls.push(["alive"]),
    close: (info) => calls.push(["close", info]),
  };
  const closed = new Promise((resolve) => {
    const close = handlers.close;
    handlers.close = (info) => {
      close(info);
      resolve(info);
    };
  });
  const link = eventStreamLink(async () => response, handlers);
  return { calls, closed, link };
}

function chunked(...parts) {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const p of parts) controller.enqueue(encoder.encode(p));
      controller.close();
    },
  });
}

test("event stream: data events are frames (split across chunks, LF or CRLF), comments are signs of life, the close event closes", async () => {
  const body = chunked("retry: 1000\n\nid: 3\ndata: {\"type\":\"batch\",", "\"n\":1}\n\n: heartbeat\r\n\r\ndata: x\r\n", "\r\nevent: close\ndata: {\"code\":1012,\"reason\":\"kill requested\"}\n\n");
  const s = eventStream(new Response(body, { headers: { "content-type": "text/event-stream" } }));
  assert.deepEqual(await s.closed, { code: 1012, reason: "kill requested" });
  assert.deepEqual(s.calls.slice(0, -1), [["open"], ["message", '{"type":"batch","n":1}'], ["alive"], ["message", "x"]]);
});

test("event stream: a large frame in many small chunks is one message", async () => {
  const frame = JSON.stringify({ type: "batch", events: Array.from({ length: 2000 }, (_, i) => ({ offset: i + 1, payload: "x".repeat(100) })) });
  const text = `id: 2000\ndata: ${frame}\n\n`;
  const parts = [];
  for (let i = 0; i < text.length; i += 1000) parts.push(text.slice(i, i + 1000));
  const s = eventStream(new Response(chunked(...parts), { headers: { "content-type": "text/event-stream" } }));
  await s.closed;
  assert.deepEqual(s.calls.slice(0, -1), [["open"], ["message", frame]]);
});

test("event stream: 4001 in the close event is fatal (subscription_replaced); an end without a close event is a retryable drop", async () => {
  const replaced = eventStream(new Response(chunked('event: close\ndata: {"code":4001,"reason":"replaced"}\n\n'), { headers: { "content-type": "text/event-stream" } }));
  const info = await replaced.closed;
  assert.deepEqual([info.code, info.fatal?.code], [4001, "subscription_replaced"]);
  const ended = eventStream(new Response(chunked("data: a\n\n"), { headers: { "content-type": "text/event-stream" } }));
  assert.deepEqual(await ended.closed, { code: 1006, reason: "the event stream ended" });
});

test("event stream: a refusal before the stream is the server's error, fatal only for a 4xx; a page that is not an event stream is a drop", async () => {
  const body = (code, message) => JSON.stringify({ error: { code, message } });
  const gone = await eventStream(new Response(body("trimmed", "Offset 1 was removed by retention; the first kept offset is 9."), { status: 410 })).closed;
  assert.deepEqual([gone.fatal?.code, gone.fatal?.status, gone.fatal?.message], ["trimmed", 410, "Offset 1 was removed by retention; the first kept offset is 9."]);
  const down = await eventStream(new Response(body("internal", "internal error"), { status: 500 })).closed;
  assert.equal(down.fatal, undefined);
  assert.match(down.reason, /HTTP 500: internal error/);
  const html = await eventStream(new Response("<html>", { status: 200, headers: { "content-type": "text/html" } })).closed;
  assert.equal(html.fatal, undefined);
});

test("event stream: close() before the answer arrives cancels it; no handler runs afterwards", async () => {
  let cancelled;
  const bodyCancelled = new Promise((resolve) => (cancelled = resolve));
  let answer;
  const calls = [];
  const link = eventStreamLink(
    () => new Promise((resolve) => (answer = resolve)),
    { open: () => calls.push("open"), message: () => calls.push("message"), close: () => calls.push("close") },
  );
  link.close();
  answer(new Response(new ReadableStream({ cancel: () => cancelled() }), { headers: { "content-type": "text/event-stream" } }));
  // The late answer is handled (its body cancelled) without a handler running: wait for that, not a timer.
  const deadline = setTimeout(() => cancelled("never cancelled"), 10_000);
  assert.equal(await bodyCancelled, undefined, "the late answer's body is cancelled");
  clearTimeout(deadline);
  assert.deepEqual(calls, []);
});

test("subscribe over SSE: GET <base>/api/streams/subscribe with Accept text/event-stream, the checkpoint as replayAfterOffset, the token in the header (or the query when asked)", async () => {
  const seen = [];
  const fetch = async (url, init) => {
    seen.push({ url: String(url), headers: init.headers });
    return new Response(JSON.stringify({ error: { code: "forbidden", message: "token does not cover path \"/a\"" } }), { status: 403 });
  };
  for (const tokenInQuery of [false, true]) {
    const client = createStreamsClient({ baseUrl: "https://example.test/", token: "t0k", fetch, tokenInQuery });
    const sub = client.subscribe("/a", { transport: "sse", afterOffset: 7, eventTypes: ["x", "y"], subscriptionKey: "k" });
    await assert.rejects(sub.next(), (e) => e.code === "forbidden" && e.status === 403);
  }
  assert.deepEqual(seen.map((r) => r.url), [
    "https://example.test/api/streams/subscribe?namespace=default&path=%2Fa&subscriptionKey=k&replayAfterOffset=7&eventTypes=x%2Cy",
    "https://example.test/api/streams/subscribe?namespace=default&path=%2Fa&subscriptionKey=k&replayAfterOffset=7&eventTypes=x%2Cy&access_token=t0k",
  ]);
  assert.deepEqual(seen.map((r) => r.headers), [{ accept: "text/event-stream", authorization: "Bearer t0k" }, { accept: "text/event-stream" }]);
});

/** A standard WebSocket (no `on`, as in browsers and Node 22) whose upgrade always fails. */
class RefusedSocket {
  static urls = [];
  readyState = 0;
  #listeners = {};
  constructor(url) {
    RefusedSocket.urls.push(url);
    setTimeout(() => {
      this.readyState = 3;
      for (const l of this.#listeners.error ?? []) l({});
      for (const l of this.#listeners.close ?? []) l({ code: 1006, reason: "" });
    }, 1);
  }
  addEventListener(type, listener) {
    (this.#listeners[type] ??= []).push(listener);
  }
  send() {}
  close() {}
}

test("a standard WebSocket refused before it opened: a read from the same offset tells why; a 4xx ends the subscription, anything else is retried", async () => {
  const reads = [];
  let answer = { status: 410, body: { error: { code: "trimmed", message: "Offset 5 was removed by retention; the first kept offset is 40." } } };
  const fetch = async (url, init) => {
    reads.push({ url: String(url), body: JSON.parse(init.body), authorization: init.headers.authorization });
    return new Response(JSON.stringify(answer.body), { status: answer.status });
  };
  const client = createStreamsClient({ baseUrl: "https://example.test/", token: "t0k", fetch, WebSocket: RefusedSocket });
  const statuses = [];
  const sub = client.subscribe("/a", { afterOffset: 4, timing: { backoffBaseMs: 5, backoffMaxMs: 10 }, onStatus: (s) => statuses.push(s.state) });
  await assert.rejects(sub.next(), (e) => e.code === "trimmed" && e.status === 410 && /first kept offset is 40/.test(e.message));
  assert.deepEqual(reads, [{ url: "https://example.test/api/streams/getEvents?namespace=default&path=%2Fa", body: { afterOffset: 4, limit: 1 }, authorization: "Bearer t0k" }]);
  assert.ok(!statuses.includes("backoff"), "not retried");

  answer = { status: 200, body: [] };
  const live = client.subscribe("/a", { timing: { backoffBaseMs: 5, backoffMaxMs: 10 } });
  // Three more sockets (retries), or a stop: whichever comes first, within a generous deadline.
  for (const deadline = Date.now() + 10_000; RefusedSocket.urls.length < 4 && live.status().state !== "stopped"; ) {
    assert.ok(Date.now() < deadline, `retried: ${RefusedSocket.urls.length} sockets, ${JSON.stringify(live.status())}`);
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.equal(live.status().state === "stopped", false, "a socket that fails for another reason is retried");
  assert.deepEqual(reads.at(-1).body, { last: 1 }, "a live tail probes the tail");
  await live.close();
});
