// Helpers for the subscription tests (docs/protocol.md#subscriptions): inbound WebSocket
// subscribers opened from Node, the EchoHost fixture, and polling the log.
import assert from "node:assert/strict";
import WebSocketClient from "ws";
import { call, splitName, jsonOrUndefined } from "./mf.mjs";
import { S, readAll } from "./assertions.mjs";

export const ECHO_INPUT = "events.iterate.com/echo-example/input-received";
export const ECHO_OUTPUT = "events.iterate.com/echo-example/output-echoed";
export const ECHO_ANNOUNCEMENT = { slug: "echo-example", version: "0.1.0", consumes: [ECHO_INPUT] };

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let echoCounter = 0;
/** A fresh EchoHost DO name. */
export function uniqueEchoName(prefix = "echo") {
  echoCounter += 1;
  return `${prefix}-${echoCounter}-${Math.random().toString(36).slice(2, 10)}`;
}

/** The outbound subscriber shape (docs/protocol.md#outbound-subscribers) for an EchoHost DO (`bindingName` defaults to ECHO_HOST). */
export function echoSubscriber(echoName, { bindingName = "ECHO_HOST", ...callableExtra } = {}) {
  return {
    type: "callable",
    callable: {
      type: "workers-rpc",
      via: { type: "env-binding", bindingType: "durable-object-namespace", bindingName, durableObject: { name: echoName } },
      ...callableExtra,
    },
  };
}

/** An `S/subscription-configured` event input for key → EchoHost `echoName`. */
export function echoSubscriptionEvent(key, echoName, opts) {
  return { type: S("subscription-configured"), payload: { subscriptionKey: key, subscriber: echoSubscriber(echoName, opts) } };
}

/** An EchoHost input event. */
export function echoInput(payload = {}) {
  return { type: ECHO_INPUT, payload };
}

// A stub on which abort() was called is poisoned in the Node proxy, so every helper takes a new one.
async function echoStub(mf, echoName) {
  const ns = await mf.getDurableObjectNamespace("ECHO_HOST", "echo");
  return ns.get(ns.idFromName(echoName));
}

/** EchoHost.inspect() as a plain object (retries for up to 20 s while an aborted host restarts). */
export async function inspectEcho(mf, echoName) {
  for (const deadline = Date.now() + 20_000; ; await sleep(50)) {
    try {
      const value = await (await echoStub(mf, echoName)).inspect();
      return JSON.parse(JSON.stringify(value));
    } catch (e) {
      if (Date.now() >= deadline) throw e;
    }
  }
}

export async function configureEcho(mf, echoName, options) {
  await (await echoStub(mf, echoName)).configure(options);
}

/** RecordingHost.releaseDials(): the dials held by `holdDials: true` go on. */
export async function releaseHeldDials(mf, echoName) {
  await (await echoStub(mf, echoName)).releaseDials();
}

/** EchoHost.abort(); the call itself rejects, which is expected. */
export async function abortEcho(mf, echoName) {
  await (await echoStub(mf, echoName)).abort().catch(() => {});
}

/**
 * Calls fn() until pred(value) holds or timeoutMs passes; returns the last value.
 * On timeout, fails with `what` and the last value.
 */
export async function waitFor(fn, pred, { timeoutMs = 20_000, intervalMs = 25, what = "condition" } = {}) {
  const deadline = Date.now() + timeoutMs;
  let value;
  for (;;) {
    value = await fn();
    if (pred(value)) return value;
    if (Date.now() >= deadline) assert.fail(`${what} not reached within ${timeoutMs} ms; last value: ${JSON.stringify(value)?.slice(0, 1500)}`);
    await sleep(intervalMs);
  }
}

/**
 * The `pendingWork` test hook (docs/protocol.md#test-hooks), polled until nothing more can happen
 * on `name` without a call: no dial or delivery in flight, no alarm wanted by the outbound machine
 * or held by the platform. The positive sentinel for "nothing happened" checks; returns the report.
 */
export function waitForNothingPending(mf, name, opts = {}) {
  const idle = (p) => p.alarmAt === null && p.outboundAlarmAt === null && p.dialing.length === 0 && p.delivering.length === 0;
  return waitFor(() => call(mf, name, "pendingWork"), idle, { what: `nothing pending on ${name}`, timeoutMs: 20_000, ...opts });
}

/** Polls the whole log until pred(events) holds; returns the log. */
export function waitForLog(mf, name, pred, opts = {}) {
  return waitFor(() => readAll(mf, name), pred, { what: `log condition on ${name}`, ...opts });
}

/** The type of the marker events that `appendSentinel` appends. */
export const SENTINEL = "test/sentinel";

/**
 * "Nothing more happened", without a fixed sleep: appends marker events (by default one
 * `test/sentinel`; pass `events` to match the subscribers' filters) after what is under test, and
 * waits until every subscriber in `subs` has received them. The stream appends
 * and delivers in order, so whatever it owed before the markers has arrived by then, on a slow
 * machine as on a fast one. With no subscribers, the append itself orders after every earlier
 * write. Returns the committed markers.
 */
export async function appendSentinel(mf, name, subs = [], { events = [{ type: SENTINEL }] } = {}) {
  const markers = await call(mf, name, "appendBatch", { events });
  const last = markers.at(-1).offset;
  // A marker (the ones its filter lets through arrive together), or, state-only, an empty batch
  // sent once the stream stood at the last one.
  const offsets = markers.map((m) => m.offset);
  const reached = (s) =>
    s.offsets().some((o) => offsets.includes(o)) || s.frames.some((f) => f.type === "batch" && f.events.length === 0 && f.streamMaxOffset >= last);
  for (const sub of subs) await sub.waitFor(reached, { what: `delivery up to the sentinel at offset ${last}` });
  return markers;
}

/** Events of type S(x) whose payload matches every given field. */
export function facts(events, x, fields = {}) {
  return events.filter((e) => e.type === S(x) && Object.entries(fields).every(([k, v]) => e.payload?.[k] === v));
}

/** Polls EchoHost.inspect() until pred holds. */
export function waitForEcho(mf, echoName, pred, opts = {}) {
  return waitFor(() => inspectEcho(mf, echoName), pred, { what: `echo ${echoName} condition`, ...opts });
}

/** runtimeState() of a stream. */
export function runtimeState(mf, name) {
  return call(mf, name, "runtimeState");
}

/** `/api/streams/subscribe?namespace=…&path=…&<params>` for a DO name `ns:/path`. */
export function subscribePath(name, params = {}) {
  const { namespace, path } = splitName(name);
  const q = new URLSearchParams({ namespace, path });
  for (const [k, v] of Object.entries(params)) if (v !== undefined) q.set(k, String(v));
  return `/api/streams/subscribe?${q}`;
}

/**
 * An inbound subscriber opened from Node through the public HTTP route.
 *   sub.frames      every parsed frame, in arrival order
 *   sub.events()    the events of all frames, flattened
 *   sub.closeEvent  {code, reason} once the socket closed, else null
 *   sub.waitFor(pred, opts)   polls pred(sub) (pred gets the subscriber)
 */
export class Subscriber {
  constructor(ws) {
    this.ws = ws;
    this.frames = [];
    this.raw = [];
    this.closeEvent = null;
    ws.addEventListener("message", (e) => {
      const data = typeof e.data === "string" ? e.data : Buffer.from(e.data).toString("utf8");
      this.raw.push(data);
      this.frames.push(JSON.parse(data));
    });
    ws.addEventListener("close", (e) => {
      this.closeEvent ??= { code: e.code, reason: e.reason };
    });
  }

  events() {
    return this.frames.filter((f) => f.type === "batch").flatMap((f) => f.events);
  }

  offsets() {
    return this.events().map((e) => e.offset);
  }

  lastFrame() {
    return this.frames[this.frames.length - 1];
  }

  send(value) {
    this.ws.send(typeof value === "string" ? value : JSON.stringify(value));
  }

  close(code = 1000, reason = "client done") {
    try {
      if (this.ws.readyState >= 2) return; // closing or closed
      this.ws.close(code, reason);
    } catch {
      // already closed
    }
  }

  waitFor(pred, opts = {}) {
    return waitFor(() => this, pred, { what: "subscriber condition", ...opts });
  }

  /** Waits until the flattened events reach `offset` (events mode, unfiltered). */
  waitForOffset(offset, opts = {}) {
    return this.waitFor((s) => s.offsets().includes(offset), { what: `delivery of offset ${offset}`, ...opts });
  }

  /** Waits until a frame's streamMaxOffset reaches `offset`. */
  waitForStreamMax(offset, opts = {}) {
    return this.waitFor((s) => s.frames.some((f) => f.streamMaxOffset >= offset), { what: `a frame with streamMaxOffset ≥ ${offset}`, ...opts });
  }

  waitForClose(opts = {}) {
    return this.waitFor((s) => s.closeEvent !== null, { what: "socket close", ...opts });
  }
}

/**
 * Opens `GET /api/streams/subscribe` with `Upgrade: websocket`. Resolves to a Subscriber, or, when
 * the upgrade is refused, rejects with an Error carrying {status, json}.
 */
export async function openSubscriber(mf, name, params = {}, { headers = {} } = {}) {
  const res = await mf.dispatchFetch("http://localhost" + subscribePath(name, params), {
    headers: { upgrade: "websocket", ...headers },
  });
  if (res.status !== 101 || !res.webSocket) {
    const text = await res.text();
    const json = jsonOrUndefined(text);
    const err = new Error(`subscribe refused: HTTP ${res.status} ${text.slice(0, 300)}`);
    err.status = res.status;
    err.json = json;
    throw err;
  }
  const ws = res.webSocket;
  const sub = new Subscriber(ws);
  ws.accept();
  return sub;
}

/**
 * The same subscriber, but over a real TCP WebSocket (the `ws` package) to Miniflare's URL, and
 * `closeEvent` is set as soon as the server's close frame arrives.
 *
 * Why: under workerd, a hibernatable socket closed from another request's handler (e.g. `replaced`
 * while accepting a new socket) gets its close frame sent, but the TCP connection is not ended, and
 * Miniflare's dispatchFetch WebSocket only reports "close" when the connection ends (ws's 30 s
 * close timeout). Reading the close frame itself observes what the spec prescribes.
 */
export async function openRawSubscriber(mf, name, params = {}, { headers = {} } = {}) {
  const base = await mf.ready;
  const url = new URL(subscribePath(name, params), base);
  url.protocol = url.protocol.replace("http", "ws");
  const ws = new WebSocketClient(url, { headers });
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
    ws.once("unexpected-response", (_req, res) => {
      const err = new Error(`subscribe refused: HTTP ${res.statusCode}`);
      err.status = res.statusCode;
      reject(err);
    });
  });
  const sub = new Subscriber(ws);
  // ws keeps the frame's code on the receiver's "conclude" event.
  ws._receiver.on("conclude", (code, reason) => {
    sub.closeEvent ??= { code, reason: reason.toString() };
  });
  ws.on("error", () => {});
  return sub;
}

/** Raw response of a subscribe request (for refusals): {status, json, text, webSocket}. */
export async function subscribeRaw(mf, name, params = {}, { headers = { upgrade: "websocket" } } = {}) {
  const res = await mf.dispatchFetch("http://localhost" + subscribePath(name, params), { headers });
  if (res.webSocket) {
    res.webSocket.accept();
    res.webSocket.close(1000, "test done");
    return { status: res.status, webSocket: res.webSocket };
  }
  const text = await res.text();
  return { status: res.status, json: jsonOrUndefined(text), text };
}

/** Asserts events are strictly ascending by offset (so: in order, no duplicates). */
export function assertAscending(events, note) {
  for (let i = 1; i < events.length; i++) {
    assert.ok(events[i].offset > events[i - 1].offset, `${note ?? "events"}: offset ${events[i].offset} after ${events[i - 1].offset}`);
  }
}
