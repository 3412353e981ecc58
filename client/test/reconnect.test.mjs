// The reconnect core under fake timers: every transition, with links that the test drives.
import { test, mock, beforeEach, afterEach } from "node:test";
import assert from "node:assert/strict";
import { Reconnector, StreamError, backoffDelay, DEFAULT_TIMING } from "../dist/index.js";

const TIMING = { backoffBaseMs: 100, backoffMaxMs: 1000, pingIntervalMs: 500, pongTimeoutMs: 200, connectTimeoutMs: 300 };

/** A Reconnector whose dials produce links the test opens, closes and reads. */
function harness({ random = () => 1, timing = TIMING } = {}) {
  const links = [];
  const messages = [];
  const drops = [];
  const statuses = [];
  let stopped;
  const core = new Reconnector({
    dial(handlers, epoch) {
      const link = { handlers, epoch, sent: [], closed: false, send(t) { this.sent.push(t); }, close() { this.closed = true; } };
      links.push(link);
      return link;
    },
    onMessage: (text, epoch) => messages.push({ text, epoch }),
    onDrop: (reason) => drops.push(reason),
    onStop: (error) => { stopped = { error }; },
    onStatus: (s) => statuses.push(s.state),
    timing,
    random,
  });
  return { core, links, messages, drops, statuses, last: () => links[links.length - 1], stopped: () => stopped };
}

beforeEach(() => mock.timers.enable({ apis: ["setTimeout", "Date"] }));
afterEach(() => mock.timers.reset());

test("backoff: min(max, base·2^(n−1)), jittered into [½, 1] of it", () => {
  const t = { backoffBaseMs: 250, backoffMaxMs: 30_000 };
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 8, 9].map((n) => backoffDelay(n, t, () => 1)), [250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
  assert.equal(backoffDelay(1, t, () => 0), 125);
  assert.equal(backoffDelay(8, t, () => 0), 15000);
  assert.equal(backoffDelay(200, t, () => 0.5), 22500, "large attempts stay capped");
  assert.deepEqual(DEFAULT_TIMING, { backoffBaseMs: 250, backoffMaxMs: 30000, pingIntervalMs: 15000, pongTimeoutMs: 10000, connectTimeoutMs: 10000 });
});

test("idle → connecting → open; messages of the current link are forwarded, pongs are not", () => {
  const h = harness();
  assert.equal(h.core.state, "idle");
  h.core.start();
  assert.equal(h.core.state, "connecting");
  assert.equal(h.links.length, 1);
  h.last().handlers.open();
  assert.equal(h.core.state, "open");
  h.last().handlers.message('{"type":"batch"}');
  h.last().handlers.message('{"type":"pong"}');
  assert.deepEqual(h.messages.map((m) => m.text), ['{"type":"batch"}']);
  assert.equal(h.messages[0].epoch, h.last().epoch);
  assert.deepEqual(h.statuses, ["connecting", "open"]);
  h.core.start();
  assert.equal(h.links.length, 1, "start() is a no-op once started");
});

test("close → backoff with the delay of attempt 1 → reconnect on a new epoch", () => {
  const h = harness();
  h.core.start();
  h.last().handlers.open();
  h.last().handlers.close({ code: 1012, reason: "kill requested" });
  assert.equal(h.core.state, "backoff");
  assert.equal(h.core.status().delayMs, 100);
  assert.equal(h.core.status().reason, "closed with 1012 kill requested");
  assert.equal(h.core.attempt, 1);
  assert.equal(h.drops.length, 1);
  mock.timers.tick(99);
  assert.equal(h.links.length, 1, "not before the delay");
  mock.timers.tick(1);
  assert.equal(h.links.length, 2);
  assert.equal(h.core.state, "connecting");
  assert.ok(h.links[1].epoch > h.links[0].epoch);
});

test("consecutive failures double the delay up to the cap; only progress resets it", () => {
  const h = harness();
  h.core.start();
  const delays = [];
  for (let i = 0; i < 6; i++) {
    h.last().handlers.open(); // opened but never progressed: still a failure
    h.last().handlers.close({ code: 1006, reason: "" });
    delays.push(h.core.status().delayMs);
    mock.timers.tick(h.core.status().delayMs);
  }
  assert.deepEqual(delays, [100, 200, 400, 800, 1000, 1000]);
  h.last().handlers.open();
  h.core.progressed();
  h.last().handlers.close({ code: 1006, reason: "" });
  assert.equal(h.core.status().delayMs, 100, "a handed-out batch resets the back-off");
});

test("a late close from an old socket does not touch the new one", () => {
  const h = harness();
  h.core.start();
  const old = h.last();
  old.handlers.open();
  h.core.drop("liveness");
  assert.ok(old.closed, "the dropped link is closed");
  mock.timers.tick(100);
  const fresh = h.last();
  assert.notEqual(fresh, old);
  fresh.handlers.open();
  old.handlers.close({ code: 1006, reason: "late" });
  old.handlers.message('{"type":"batch","late":true}');
  old.handlers.open();
  assert.equal(h.core.state, "open");
  assert.equal(h.links.length, 2);
  assert.deepEqual(h.messages, []);
  assert.equal(h.drops.length, 1);
});

test("a close during back-off (from the dropped socket) changes nothing: one timer, one reconnect", () => {
  const h = harness();
  h.core.start();
  const old = h.last();
  old.handlers.open();
  h.core.drop("continuity");
  assert.equal(h.core.state, "backoff");
  old.handlers.close({ code: 1000, reason: "" });
  h.core.drop("again"); // no connection in back-off: ignored
  assert.equal(h.core.attempt, 1);
  assert.equal(h.core.status().delayMs, 100);
  mock.timers.tick(100);
  assert.equal(h.links.length, 2, "exactly one reconnect");
  mock.timers.tick(300);
  assert.equal(h.core.status().reason, "not open after 300 ms", "the new link ends only by its own connect timeout");
  assert.equal(h.links.length, 2);
});

test("drop() with a stale epoch is ignored", () => {
  const h = harness();
  h.core.start();
  const epoch = h.core.epoch;
  h.last().handlers.open();
  h.core.drop("x");
  mock.timers.tick(100);
  h.last().handlers.open();
  h.core.drop("stale", epoch);
  assert.equal(h.core.state, "open");
});

test("liveness: a ping every interval; a pong (or any frame) clears the wait; silence drops", () => {
  const h = harness();
  h.core.start();
  const link = h.last();
  link.handlers.open();
  mock.timers.tick(500);
  assert.deepEqual(link.sent, ['{"type":"ping"}']);
  mock.timers.tick(150);
  link.handlers.message('{"type":"pong"}');
  mock.timers.tick(350); // second ping at 1000
  assert.equal(link.sent.length, 2);
  mock.timers.tick(100);
  link.handlers.message('{"type":"batch"}'); // any frame counts
  mock.timers.tick(400); // third ping at 1500
  assert.equal(h.core.state, "open");
  assert.equal(link.sent.length, 3);
  mock.timers.tick(199);
  assert.equal(h.core.state, "open");
  mock.timers.tick(1);
  assert.equal(h.core.state, "backoff");
  assert.equal(h.core.status().reason, "no pong within 200 ms");
  assert.ok(link.closed);
});

test("liveness: alive() (an event stream's heartbeat) clears the wait like a pong; a late one of an old link does not", () => {
  const h = harness();
  h.core.start();
  const link = h.last();
  link.handlers.open();
  mock.timers.tick(500); // first ping
  mock.timers.tick(150);
  link.handlers.alive();
  mock.timers.tick(350); // second ping at 1000, its wait would end at 1200
  mock.timers.tick(199);
  assert.equal(h.core.state, "open");
  link.handlers.alive();
  mock.timers.tick(301); // third ping at 1500
  assert.equal(h.core.state, "open", "no drop while heartbeats come");
  mock.timers.tick(200); // nothing by 1700
  assert.equal(h.core.state, "backoff", "silence drops");
  mock.timers.tick(100);
  const next = h.last();
  assert.notEqual(next, link);
  next.handlers.open();
  mock.timers.tick(500); // its first ping
  link.handlers.alive(); // the old link's heartbeat
  mock.timers.tick(200);
  assert.equal(h.core.state, "backoff", "an old link's heartbeat does not keep the new one alive");
});

test("connect timeout: a link that never opens is dropped", () => {
  const h = harness();
  h.core.start();
  mock.timers.tick(299);
  assert.equal(h.core.state, "connecting");
  mock.timers.tick(1);
  assert.equal(h.core.state, "backoff");
  assert.equal(h.core.status().reason, "not open after 300 ms");
});

test("a dial that throws goes through the same reconnect path", () => {
  let calls = 0;
  const core = new Reconnector({
    dial() {
      calls++;
      throw new Error("no route");
    },
    onMessage() {},
    timing: TIMING,
    random: () => 1,
  });
  core.start();
  assert.equal(core.state, "backoff");
  assert.equal(core.status().reason, "dial failed: no route");
  mock.timers.tick(100);
  assert.equal(calls, 2);
  assert.equal(core.status().delayMs, 200);
  core.stop();
});

test("a dial that throws a StreamError (a setup problem) stops instead of retrying", () => {
  let stoppedWith;
  const core = new Reconnector({
    dial() {
      throw new StreamError("network", "no WebSocket available");
    },
    onMessage() {},
    onStop: (e) => (stoppedWith = e),
    timing: TIMING,
  });
  core.start();
  assert.equal(core.state, "stopped");
  assert.equal(stoppedWith.code, "network");
});

test("a fatal close stops with its error; stop() clears timers, closes the link and rejects waiters", async () => {
  const h = harness();
  h.core.start();
  h.last().handlers.open();
  const fatal = Object.assign(new Error("replaced"), { code: "subscription_replaced" });
  h.last().handlers.close({ code: 4001, reason: "replaced", fatal });
  assert.equal(h.core.state, "stopped");
  assert.equal(h.stopped().error, fatal);
  mock.timers.tick(60_000);
  assert.equal(h.links.length, 1, "no reconnect after a fatal close");

  const g = harness();
  g.core.start();
  const waiting = g.core.whenConnected(5000);
  g.core.stop();
  await assert.rejects(waiting, (e) => e.code === "closed");
  assert.ok(g.last().closed);
  assert.equal(g.core.state, "stopped");
  g.last().handlers.open();
  assert.equal(g.core.state, "stopped", "a late open after stop is ignored");
  g.core.stop();
  assert.equal(g.statuses.filter((s) => s === "stopped").length, 1, "stop is idempotent");
});

test("stop during back-off cancels the pending reconnect", () => {
  const h = harness();
  h.core.start();
  h.last().handlers.close({ code: 1006, reason: "" });
  assert.equal(h.core.state, "backoff");
  h.core.stop();
  mock.timers.tick(60_000);
  assert.equal(h.links.length, 1);
});

test("whenConnected: resolves on open, times out while reconnecting, rejects at once when stopped", async () => {
  const h = harness();
  h.core.start();
  const first = h.core.whenConnected(1000);
  h.last().handlers.open();
  await first;
  await h.core.whenConnected(1); // open: at once
  h.last().handlers.close({ code: 1006, reason: "" });
  const late = h.core.whenConnected(1000);
  mock.timers.tick(100); // reconnect dialled
  h.last().handlers.open();
  await late;
  h.last().handlers.close({ code: 1006, reason: "" });
  const slow = h.core.whenConnected(50);
  mock.timers.tick(50);
  await assert.rejects(slow, (e) => e.code === "timeout" && /no connection within 50 ms/.test(e.message));
  h.core.stop();
  await assert.rejects(h.core.whenConnected(), (e) => e.code === "closed");
});

test("restart: replaces the connection at once without counting a failure", () => {
  const h = harness();
  h.core.start();
  h.last().handlers.open();
  h.core.restart("stream reset");
  assert.equal(h.links.length, 2);
  assert.ok(h.links[0].closed);
  assert.equal(h.core.state, "connecting");
  assert.equal(h.core.attempt, 0);
  assert.equal(h.drops.length, 1, "a restart rewinds like a drop");
  h.links[0].handlers.close({ code: 1006, reason: "" });
  assert.equal(h.core.state, "connecting", "the old link's close is stale");
  // From back-off: the pending timer is replaced, not doubled.
  h.last().handlers.close({ code: 1006, reason: "" });
  h.core.restart("reset seen");
  assert.equal(h.links.length, 3);
  mock.timers.tick(250); // past the replaced back-off, before the connect timeout
  assert.equal(h.links.length, 3, "the back-off timer was cancelled");
});

test("suspend / resume: the link is released without a drop; resume dials again", () => {
  const h = harness();
  h.core.start();
  h.last().handlers.open();
  h.core.suspend("consumer behind");
  assert.equal(h.core.state, "suspended");
  assert.ok(h.last().closed);
  assert.equal(h.drops.length, 0, "suspend keeps what was received");
  mock.timers.tick(60_000);
  assert.equal(h.links.length, 1, "nothing reconnects while suspended");
  h.core.resume();
  assert.equal(h.links.length, 2);
  assert.equal(h.core.attempt, 0);
});

test("send() goes to the open link only", () => {
  const h = harness();
  h.core.start();
  assert.equal(h.core.send("x"), false);
  h.last().handlers.open();
  assert.equal(h.core.send("y"), true);
  assert.deepEqual(h.last().sent, ["y"]);
});
