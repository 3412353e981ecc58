// The browser runtime's state machine with fake timers and a fake platform: the worker is real
// SQLite (sqlite-wasm's Node build, in memory) behind the worker protocol; the socket, the locks,
// the channel and fetch are fakes the tests drive, so every interleaving is forced exactly.
import assert from "node:assert/strict";
import { afterEach, beforeEach, mock, test } from "node:test";
import sqlite3InitModule from "@sqlite.org/sqlite-wasm";
import { openStream } from "../dist/browser/index.js";
import { Mirror } from "../dist/browser/mirror-sql.js";
import { QueryRegistry } from "../dist/browser/queries.js";

const sqlite3 = await sqlite3InitModule();

/** Lets promises, fake "worker" replies and socket callbacks run (real setImmediate, fake timers). */
async function settle() {
  for (let i = 0; i < 30; i += 1) await new Promise((r) => setImmediate(r));
}

async function tick(ms) {
  mock.timers.tick(ms);
  await settle();
}

function event(offset, type = "app/x") {
  return { type, offset, createdAt: "2026-01-01T00:00:00.000Z" };
}

function batch(afterOffset, throughOffset, { streamId = "life-1", types } = {}) {
  const events = [];
  for (let o = afterOffset + 1; o <= throughOffset; o += 1) events.push(event(o, types?.[o - afterOffset - 1]));
  return { type: "batch", subscriptionKey: "k", afterOffset, throughOffset, connectionId: "c", streamId, events, streamMaxOffset: throughOffset, state: {} };
}

/** The mirror worker protocol over a real in-memory SQLite; applies can be held or made to fail. */
class FakeWorker {
  listeners = { message: [], error: [] };
  terminated = false;
  failApplies = 0;
  /** When set, `apply` waits for it. */
  applyGate = undefined;
  #queue = Promise.resolve();
  #db;
  #mirror;

  addEventListener(type, listener) {
    this.listeners[type].push(listener);
  }
  postMessage({ id, op, args }) {
    this.#queue = this.#queue.then(async () => {
      let reply;
      try {
        reply = { id, ok: true, result: await this.#handle(op, args) };
      } catch (e) {
        reply = { id, ok: false, error: e.message };
      }
      if (!this.terminated) for (const l of this.listeners.message) l({ data: reply });
    });
  }
  terminate() {
    this.terminated = true;
  }
  async #handle(op, args) {
    if (op === "open") {
      this.#db = new sqlite3.oo1.DB(":memory:", "c");
      this.#mirror = new Mirror(this.#db);
      return { kind: "memory", fallbackReason: null, state: this.#mirror.state() };
    }
    if (op === "apply") {
      if (this.applyGate) await this.applyGate;
      if (this.failApplies > 0) {
        this.failApplies -= 1;
        throw new Error("disk on fire (planned)");
      }
    }
    if (op === "exportFile") return sqlite3.capi.sqlite3_js_db_export(this.#db);
    if (op === "close") return this.#db.close();
    return this.#mirror[op](...args);
  }
}

class FakeSocket {
  static instances = [];
  readyState = 0;
  listeners = {};
  sent = [];
  constructor(url) {
    this.url = new URL(url);
    FakeSocket.instances.push(this);
  }
  addEventListener(type, listener) {
    (this.listeners[type] ??= []).push(listener);
  }
  #emit(type, e) {
    for (const l of this.listeners[type] ?? []) l(e);
  }
  send(text) {
    this.sent.push(text);
  }
  close() {
    this.readyState = 3;
  }
  // What the server does:
  open() {
    this.readyState = 1;
    this.#emit("open", {});
  }
  push(frame) {
    this.#emit("message", { data: JSON.stringify(frame) });
  }
  serverClose(code = 1006) {
    this.readyState = 3;
    this.#emit("close", { code, reason: "" });
  }
  get after() {
    return Number(this.url.searchParams.get("replayAfterOffset"));
  }
}

/** Web Locks: exclusive, FIFO, abortable. */
class FakeLocks {
  held = new Map();
  queue = [];
  failWith = undefined;
  request(name, { signal }, callback) {
    if (this.failWith) return Promise.reject(this.failWith);
    return new Promise((resolve, reject) => {
      const req = { name, callback, resolve, reject };
      signal.addEventListener("abort", () => {
        const i = this.queue.indexOf(req);
        if (i >= 0) {
          this.queue.splice(i, 1);
          reject(Object.assign(new Error("aborted"), { name: "AbortError" }));
        }
      });
      this.queue.push(req);
      this.#pump();
    });
  }
  /** Someone else (another tab) holds `name` until the returned function is called. */
  holdElsewhere(name) {
    let release;
    const done = new Promise((r) => (release = r));
    this.request(name, { signal: new AbortController().signal }, () => done);
    return release;
  }
  #pump() {
    for (const req of [...this.queue]) {
      if (this.held.has(req.name)) continue;
      this.queue.splice(this.queue.indexOf(req), 1);
      this.held.set(req.name, req);
      Promise.resolve(req.callback({ name: req.name })).then(
        (v) => {
          this.held.delete(req.name);
          req.resolve(v);
          this.#pump();
        },
        (e) => {
          this.held.delete(req.name);
          req.reject(e);
          this.#pump();
        },
      );
    }
  }
}

function fakePlatform({ locks = new FakeLocks(), server = {} } = {}) {
  const workers = [];
  const calls = [];
  const state = { streamId: "life-1", maxOffset: 1000, down: false, ...server };
  const platform = {
    origin: "http://app.test",
    createWorker() {
      const w = new FakeWorker();
      workers.push(w);
      return w;
    },
    locks,
    createChannel() {
      return { postMessage() {}, addEventListener() {}, close() {} };
    },
    WebSocket: FakeSocket,
    async fetch(url, init) {
      const method = new URL(url).pathname.split("/").at(-1);
      const body = JSON.parse(init.body);
      calls.push({ method, body });
      if (state.down) throw new TypeError("fetch failed");
      if (state.refuse) return new Response(JSON.stringify({ error: { code: "unauthorized", message: "token refused" } }), { status: 401 });
      const reply = (value) => new Response(JSON.stringify(value ?? null), { status: 200 });
      if (method === "runtimeState") return reply({ coreProcessorState: { streamId: state.streamId, maxOffset: state.maxOffset }, runtime: {} });
      if (method === "append") return reply({ ...body.event, offset: 99, createdAt: "2026-01-01T00:00:00.000Z" });
      return reply(null);
    },
    subscriberId: () => "profile-1",
    persisted: async () => false,
  };
  return { platform, workers, calls, locks, server: state };
}

let pathCounter = 0;
function open(fake, extra = {}) {
  pathCounter += 1;
  return openStream({ path: `/unit/${pathCounter}`, mirror: "memory", ...extra }, fake.platform);
}

/** Opens a store and brings its first socket to `subscribed` with the mirror at `through`. */
async function subscribed(fake, through = 3) {
  const store = open(fake);
  await settle();
  const socket = FakeSocket.instances.at(-1);
  assert.ok(socket, "the writer dialed");
  socket.open();
  socket.push(batch(0, through));
  await settle();
  assert.equal(store.getSnapshot().status, "subscribed");
  assert.equal(store.getSnapshot().checkpoint, through);
  return { store, socket };
}

beforeEach(() => {
  FakeSocket.instances = [];
  mock.timers.enable({ apis: ["setTimeout"] });
});
afterEach(() => {
  mock.timers.reset();
});

test("B1: a late frame and a late close of a replaced socket change nothing", async () => {
  const fake = fakePlatform();
  const { store, socket: a } = await subscribed(fake);
  a.serverClose(1006);
  await settle();
  assert.equal(store.getSnapshot().status, "reconnecting");
  await tick(250);
  const b = FakeSocket.instances.at(-1);
  assert.notEqual(b, a);
  assert.equal(b.after, 3, "the new subscription starts after the applied checkpoint");
  b.open();
  await settle();
  // The old socket speaks again after the new one is live.
  a.push(batch(3, 5));
  a.serverClose(1006);
  await settle();
  await tick(30_000);
  assert.equal(FakeSocket.instances.length, 2, "no reconnect was started by the old socket");
  assert.equal(store.getSnapshot().status, "subscribed");
  assert.equal(store.getSnapshot().checkpoint, 3, "the old socket's batch was not written");
  b.push(batch(3, 5));
  await settle();
  assert.equal(store.getSnapshot().checkpoint, 5);
  store.close();
  await tick(0);
});

test("B1: batches queued on a dropped connection are not written; the next subscription starts after what was applied", async () => {
  const fake = fakePlatform();
  const store = open(fake);
  await settle();
  const a = FakeSocket.instances.at(-1);
  a.open();
  await settle();
  const worker = fake.workers[0];
  let release;
  worker.applyGate = new Promise((r) => (release = r));
  a.push(batch(0, 2));
  await settle(); // its write is in flight (held by the gate)
  a.push(batch(2, 4));
  await settle();
  a.serverClose(1006);
  await settle();
  worker.applyGate = undefined;
  release();
  await settle();
  await tick(250);
  const b = FakeSocket.instances.at(-1);
  assert.notEqual(b, a);
  assert.equal(b.after, 2, "the batch in flight committed, the queued one was dropped");
  assert.equal(store.getSnapshot().localCount, 2);
  store.close();
  await tick(0);
});

test("a failed apply resubscribes from the checkpoint with back-off min(30 s, 250 ms·2^(n−1)); 5 failures at one offset show a persistent error; an applied batch resets both", async () => {
  const fake = fakePlatform();
  const { store } = await subscribed(fake, 3);
  fake.workers[0].failApplies = 7;
  const delays = [250, 500, 1000, 2000, 4000, 8000, 16000];
  FakeSocket.instances.at(-1).push(batch(3, 6));
  await settle();
  for (const [i, delay] of delays.entries()) {
    const n = i + 1;
    const before = FakeSocket.instances.length;
    await tick(delay - 1);
    assert.equal(FakeSocket.instances.length, before, `failure ${n}: no reconnect before ${delay} ms`);
    await tick(1);
    assert.equal(FakeSocket.instances.length, before + 1, `failure ${n}: reconnect at ${delay} ms`);
    const s = FakeSocket.instances.at(-1);
    assert.equal(s.after, 3, "always from the durable checkpoint");
    const snap = store.getSnapshot();
    if (n >= 5) {
      assert.equal(snap.status, "error", `after ${n} failures the status is error`);
      assert.match(snap.error, /consecutive failures at offset 3/);
    } else {
      assert.notEqual(snap.status, "error");
    }
    s.open();
    s.push(batch(3, 6)); // fails while failApplies lasts; the 8th attempt applies
    await settle();
  }
  assert.equal(store.getSnapshot().checkpoint, 6, "the batch applied on the 8th attempt, with no gap");
  assert.equal(store.getSnapshot().status, "subscribed");
  assert.equal(store.getSnapshot().error, null);
  // The count was reset by the applied batch: the next drop waits the shortest delay again.
  FakeSocket.instances.at(-1).serverClose(1006);
  await settle();
  const before = FakeSocket.instances.length;
  await tick(250);
  assert.equal(FakeSocket.instances.length, before + 1);
  store.close();
  await tick(0);
});

test("B2: append while reconnecting waits for the connection, tries at once, then succeeds", async () => {
  const fake = fakePlatform();
  const { store, socket: a } = await subscribed(fake);
  a.serverClose(1006);
  await settle();
  assert.equal(store.getSnapshot().status, "reconnecting");
  let settled = false;
  const appended = store.append({ type: "app/x" }).finally(() => (settled = true));
  await settle();
  assert.equal(settled, false);
  assert.equal(fake.calls.filter((c) => c.method === "append").length, 0, "nothing is sent while disconnected");
  const b = FakeSocket.instances.at(-1);
  assert.notEqual(b, a, "the waiting call skipped the back-off");
  b.open();
  await settle();
  const ev = await appended;
  assert.equal(ev.type, "app/x");
  assert.equal(fake.calls.filter((c) => c.method === "append").length, 1);
  store.close();
  await tick(0);
});

test("B2: append while the server stays unreachable fails after the bounded wait with a timeout", async () => {
  const fake = fakePlatform();
  const { store, socket: a } = await subscribed(fake);
  fake.server.down = true;
  a.serverClose(1006);
  await settle();
  const appended = store.append({ type: "app/x" });
  const outcome = appended.then(
    () => "resolved",
    (e) => e,
  );
  await tick(9_999);
  await tick(1);
  const e = await outcome;
  assert.equal(e.code, "timeout");
  assert.match(e.message, /no connection within 10000 ms/);
  store.close();
  await tick(0);
  assert.equal((await store.append({ type: "x" }).catch((err) => err)).code, "closed");
});

test("B5: a queued writer-lock request is withdrawn on close and never granted later", async () => {
  const locks = new FakeLocks();
  const fake = fakePlatform({ locks });
  pathCounter += 1;
  const path = `/unit/${pathCounter}`;
  const releaseOther = locks.holdElsewhere(`streams-mirror:v1:default:${path}`);
  const store = openStream({ path, mirror: "memory" }, fake.platform);
  await settle();
  assert.equal(locks.queue.length, 1, "queued behind the other tab");
  await tick(250);
  assert.equal(store.getSnapshot().role, "follower");
  store.close();
  await tick(0);
  assert.equal(locks.queue.length, 0, "the request was withdrawn");
  releaseOther();
  await settle();
  assert.equal(fake.workers.length, 0, "the closed store never became the writer");
  assert.equal(locks.held.size, 0);
});

test("B5: a released writer frees the lock for the next tab; a lock failure shows in the snapshot", async () => {
  const locks = new FakeLocks();
  const fake = fakePlatform({ locks });
  const { store } = await subscribed(fake);
  assert.equal(locks.held.size, 1);
  store.close();
  await tick(0);
  await settle();
  assert.equal(locks.held.size, 0, "closing the writer released its lock");
  assert.equal(fake.workers[0].terminated, true);

  const failing = fakePlatform({ locks: Object.assign(new FakeLocks(), { failWith: new Error("SecurityError: locks are disabled") }) });
  const other = open(failing);
  await settle();
  assert.match(other.getSnapshot().error, /writer lock request failed: SecurityError/);
  assert.equal(other.getSnapshot().status, "error");
  other.close();
  await tick(0);
});

test("B6: a query handle never subscribed is collected after one tick and never re-run", async () => {
  const runs = [];
  const registry = new QueryRegistry();
  registry.setRunner(async (sql) => {
    runs.push(sql);
    return [{ n: 1 }];
  });
  registry.query("SELECT 1 AS n");
  assert.equal(registry.size, 1);
  await tick(0);
  assert.equal(registry.size, 0, "collected");
  registry.refresh();
  await settle();
  assert.deepEqual(runs, [], "a collected handle is never run");
});

test("B6: a change that leaves a query's rows equal notifies no one; a real change notifies once", async () => {
  let rows = [{ n: 1 }];
  let runs = 0;
  const registry = new QueryRegistry();
  registry.setRunner(async () => {
    runs += 1;
    return rows.map((r) => ({ ...r }));
  });
  const handle = registry.query("SELECT n FROM t");
  let notified = 0;
  const unsubscribe = handle.subscribe(() => (notified += 1));
  await settle();
  assert.equal(notified, 1, "the first result");
  assert.deepEqual(handle.getSnapshot(), { status: "ok", rows: [{ n: 1 }], error: null });
  registry.refresh();
  registry.refresh();
  await settle();
  assert.ok(runs >= 2, "it re-ran");
  assert.equal(notified, 1, "equal rows: nobody notified");
  rows = [{ n: 2 }];
  registry.refresh();
  await settle();
  assert.equal(notified, 2);
  assert.deepEqual(handle.getSnapshot().rows, [{ n: 2 }]);
  unsubscribe();
  await tick(0);
  assert.equal(registry.size, 0, "collected after its last listener left");
});

test("B6: a query over a table that does not exist yet returns no rows with status ok", async () => {
  const fake = fakePlatform();
  const { store } = await subscribed(fake);
  const handle = store.query("SELECT * FROM not_created_yet WHERE x = ?", [1]);
  const off = handle.subscribe(() => {});
  await settle();
  assert.deepEqual(handle.getSnapshot(), { status: "ok", rows: [], error: null });
  const bad = store.query("SELEKT nonsense");
  const off2 = bad.subscribe(() => {});
  await settle();
  assert.equal(bad.getSnapshot().status, "error");
  off();
  off2();
  store.close();
  await tick(0);
});

test("a mount/unmount/mount in one tick (React StrictMode) keeps one store, one worker, one socket", async () => {
  const fake = fakePlatform();
  pathCounter += 1;
  const options = { path: `/unit/${pathCounter}`, mirror: "memory" };
  const first = openStream(options, fake.platform);
  await settle();
  first.close();
  const second = openStream(options, fake.platform);
  await tick(0);
  await settle();
  assert.equal(fake.workers.length, 1);
  assert.equal(fake.workers[0].terminated, false);
  assert.equal(FakeSocket.instances.length, 1);
  const third = openStream(options, fake.platform);
  second.close();
  await tick(0);
  assert.equal(fake.workers[0].terminated, false, "still referenced by the third handle");
  third.close();
  third.close(); // idempotent: must not release someone else's reference
  await tick(0);
  await settle();
  assert.equal(fake.workers[0].terminated, true, "the last handle closed the store");
});

test("a new streamId (reset) discards the mirror and resubscribes from offset 0", async () => {
  const fake = fakePlatform();
  const { store, socket } = await subscribed(fake, 4);
  fake.server.streamId = "life-2";
  fake.server.maxOffset = 2;
  socket.push(batch(4, 4, { streamId: "life-2" }));
  await settle();
  const snap = store.getSnapshot();
  assert.equal(snap.localCount, 0, "old rows gone");
  assert.equal(snap.clearVersion, 1);
  assert.equal(snap.streamId, "life-2");
  const next = FakeSocket.instances.at(-1);
  assert.notEqual(next, socket);
  assert.equal(next.after, 0, "rebuilt from the start");
  next.open();
  next.push(batch(0, 2, { streamId: "life-2" }));
  await settle();
  assert.equal(store.getSnapshot().checkpoint, 2);
  store.close();
  await tick(0);
});

test("a mirror from another life of the stream (reset while offline) is discarded before subscribing", async () => {
  const fake = fakePlatform();
  const { store, socket } = await subscribed(fake, 5);
  fake.server.streamId = "life-2";
  fake.server.maxOffset = 9; // grew past the old mirror: offsets alone cannot tell
  socket.serverClose(1006);
  await settle();
  await tick(250);
  const next = FakeSocket.instances.at(-1);
  assert.equal(next.after, 0);
  assert.equal(store.getSnapshot().localCount, 0);
  assert.equal(store.getSnapshot().streamId, "life-2");
  store.close();
  await tick(0);
});

test("a batch that does not continue the mirror (afterOffset gap) is not written; the writer resubscribes from its checkpoint", async () => {
  const fake = fakePlatform();
  const { store, socket } = await subscribed(fake, 3);
  socket.push(batch(4, 6));
  await settle();
  assert.equal(store.getSnapshot().checkpoint, 3);
  assert.match(store.getSnapshot().error, /does not continue the mirror at 3/);
  await tick(250);
  assert.equal(FakeSocket.instances.at(-1).after, 3);
  store.close();
  await tick(0);
});

test("a refused token stops the store with an error instead of retrying", async () => {
  const fake = fakePlatform({ server: { refuse: true } });
  const store = open(fake, { token: "wrong" });
  await settle();
  await tick(60_000);
  assert.equal(store.getSnapshot().status, "error");
  assert.match(store.getSnapshot().error, /token refused/);
  assert.equal(FakeSocket.instances.length, 0, "no socket was opened");
  assert.equal(fake.calls.filter((c) => c.method === "runtimeState").length, 1, "not retried");
  store.close();
  await tick(0);
});

test("a trimmed stream: a fresh mirror subscribes from the first kept offset and shows it as firstOffset", async () => {
  const fake = fakePlatform();
  const platform = fake.platform;
  const fetch = platform.fetch;
  let keptFrom = 40;
  platform.fetch = async (url, init) => {
    const answer = await fetch(url, init);
    if (new URL(url).pathname.endsWith("/runtimeState")) {
      const body = await answer.json();
      return new Response(JSON.stringify({ ...body, runtime: { storage: { firstOffset: keptFrom } } }), { status: 200 });
    }
    return answer;
  };
  const store = open(fake);
  await settle();
  const socket = FakeSocket.instances.at(-1);
  assert.equal(socket.after, 39, "the replay starts before the first kept offset, not at 0");
  assert.equal(store.getSnapshot().firstOffset, 40);
  socket.open();
  socket.push(batch(39, 45));
  await settle();
  assert.deepEqual([store.getSnapshot().checkpoint, store.getSnapshot().localCount, store.getSnapshot().firstOffset], [45, 6, 40]);
  // Retention passes the mirror while it is away: the rows are dropped and it starts again at the new first kept offset.
  keptFrom = 60;
  socket.serverClose(1006);
  await settle();
  await tick(250);
  const next = FakeSocket.instances.at(-1);
  assert.equal(next.after, 59);
  const snap = store.getSnapshot();
  assert.deepEqual([snap.localCount, snap.firstOffset, snap.clearVersion], [0, 60, 1]);
  store.close();
  await tick(0);
});
