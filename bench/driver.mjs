// Bench driver Worker: runs the timed loops inside workerd, so no Node<->workerd proxy hop is
// timed. POST a JSON body {scenario, target: "ours"|"base", name, ...params}; the reply is
// {ok:true, result} or {ok:false, error}. Both targets are reached over DO RPC through bindings:
//   OURS -> {className:"Stream", scriptName:"streams"}   BASE -> {className:"Baseline", scriptName:"baseline"}
//   PROCESSOR -> {className:"BenchProcessor", scriptName:"processors"} (scenario 10)
//   HOOKED -> {className:"Stream", scriptName:"streams-hooks"} (scenario 12: test hooks on, its own isolate)
//   NOOP, CODE<i>, CODE<i>_PROFILE (bench/profile.mjs only): the no-op DO, and each compared code as
//   released and built with its wasm names kept
// In workerd the clock only advances across I/O; every RPC call is I/O, so per-call timing works.

const now = () => performance.now();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const TARGET_BINDINGS = { ours: "OURS", base: "BASE" };

/** Any other target names its binding: bench/profile.mjs's "noop", "code0-profile", … → NOOP, CODE0_PROFILE. */
function namespaceOf(env, target) {
  const namespace = env[TARGET_BINDINGS[target] ?? target.toUpperCase().replaceAll("-", "_")];
  if (!namespace) throw new Error(`unknown target ${JSON.stringify(target)}`);
  return namespace;
}

const stubOf = (env, target, name) => namespaceOf(env, target).getByName(name);

// The stream's limits (crates/streams-core/src/limits.rs): input JSON of one appendBatch, and one
// committed event.
const MAX_BATCH_JSON_BYTES = 16 * 1024 * 1024;
const MAX_EVENT_JSON_BYTES = 8 * 1024 * 1024;

/** An event `{type, payload: {i, data}}` whose input JSON is exactly `bytes` long. */
function sizedEvent(i, bytes) {
  const event = { type: "bench/m", payload: { i, data: "" } };
  event.payload.data = "x".repeat(bytes - JSON.stringify(event).length);
  return event;
}

/**
 * The largest batch of `count` events the limit allows: `[a,b,…]` is exactly
 * MAX_BATCH_JSON_BYTES, the events as equal as can be (≈ 1 MiB each for 16).
 */
function largestBatch(count) {
  const eventBytes = MAX_BATCH_JSON_BYTES - 2 - (count - 1);
  return Array.from({ length: count }, (_, k) => sizedEvent(k, Math.floor(eventBytes / count) + (k < eventBytes % count ? 1 : 0)));
}

/** The largest single event: committed (with a 6-digit offset and createdAt) it is MAX_EVENT_JSON_BYTES. */
function largestEvent() {
  const committedExtra = JSON.stringify({ offset: 999999, createdAt: new Date(0).toISOString() }).length - 1; // `,"offset":…,"createdAt":"…"`
  return sizedEvent(-1, MAX_EVENT_JSON_BYTES - committedExtra);
}

/** A domain event whose payload JSON is about `bytes` bytes long; `keyed`: with an idempotency key. */
function eventOf(i, bytes = 100, keyed = false) {
  const base = JSON.stringify({ i, text: "" }).length;
  const event = { type: "bench/x", payload: { i, text: "x".repeat(Math.max(0, bytes - base)) } };
  if (keyed) event.idempotencyKey = `bench-${i}`;
  return event;
}

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx];
}

/**
 * Boots the stream (a read), untimed: boot cost stays out of the steady-state numbers. Then
 * `appends` untimed single appends: on a brand-new local SQLite file the first ~1000 single
 * appends also pay for growing the WAL file, which is a local-disk artefact, not logic.
 * The pause lets post-boot background work (ours: the ancestor notice of a new stream) finish.
 */
async function warm(stub, appends = 0) {
  await stub.getEvents({ afterOffset: 0, limit: 1 });
  for (let i = 0; i < appends; i++) await stub.append({ event: eventOf(-1 - i) });
  await sleep(20);
}

async function appendSeq(stub, n, payloadBytes, startIndex = 0, keyed = false) {
  const lat = new Array(n);
  const t0 = now();
  for (let i = 0; i < n; i++) {
    const a = now();
    await stub.append({ event: eventOf(startIndex + i, payloadBytes, keyed) });
    lat[i] = now() - a;
  }
  const ms = now() - t0;
  lat.sort((x, y) => x - y);
  return { n, ms, perSec: (n * 1000) / ms, p50Ms: percentile(lat, 50), p99Ms: percentile(lat, 99) };
}

const scenarios = {
  /**
   * Scoped-token cost: `n` public HTTP requests through each of two service bindings to the same
   * worker code, in alternating blocks. STREAMS has no credentials configured; STREAMS_AUTH has
   * STREAMS_JWT_SECRET and gets `Authorization: Bearer <token>`. The route does not exist, so both
   * stop with 404 before any Durable Object: the time difference is the credential check. Each
   * pair of adjacent blocks gives one difference, so a burst of outside load spoils one pair only.
   */
  async tokenCheck(env, { n, block = 200, token }) {
    const url = "http://streams/api/streams/bench/no-such-route?path=/bench";
    const send = async (binding, headers, want) => {
      const res = await binding.fetch(url, { headers });
      await res.arrayBuffer();
      if (res.status !== want) throw new Error(`tokenCheck: HTTP ${res.status}, expected ${want}`);
    };
    // The token is really checked: a forged one is refused.
    await send(env.STREAMS_AUTH, { authorization: `Bearer ${token}x` }, 401);
    const legs = [
      ["open", env.STREAMS, {}],
      ["scoped", env.STREAMS_AUTH, { authorization: `Bearer ${token}` }],
    ];
    const ms = { open: 0, scoped: 0 };
    const pairCostsUs = [];
    for (let done = 0, pair = 0; done < n; done += block, pair++) {
      const blockMs = {};
      for (const [key, binding, headers] of pair % 2 ? [...legs].reverse() : legs) {
        const t0 = now();
        for (let i = 0; i < block; i++) await send(binding, headers, 404);
        blockMs[key] = now() - t0;
        ms[key] += blockMs[key];
      }
      pairCostsUs.push(((blockMs.scoped - blockMs.open) * 1000) / block);
    }
    const perRequestUs = (x) => (x * 1000) / n;
    return { n, block, openUs: perRequestUs(ms.open), scopedUs: perRequestUs(ms.scoped), pairCostsUs };
  },

  /** Fill a stream with `events` domain events, `batch` per appendBatch call (1: one event per call). */
  async prepare(env, { target, name, events, batch = 1000, payloadBytes = 100 }) {
    const stub = stubOf(env, target, name);
    const t0 = now();
    let last;
    for (let done = 0; done < events; done += batch) {
      const size = Math.min(batch, events - done);
      const evs = Array.from({ length: size }, (_, k) => eventOf(done + k, payloadBytes));
      const res = await stub.appendBatch({ events: evs });
      last = res[res.length - 1].offset;
    }
    return { ms: now() - t0, lastOffset: last };
  },

  /** Sequential single-event appends on a fresh stream (after the untimed warm-up appends). */
  async seq(env, { target, name, n, payloadBytes = 100, warmAppends = 0, keyed = false }) {
    const stub = stubOf(env, target, name);
    await warm(stub, warmAppends);
    return appendSeq(stub, n, payloadBytes, 0, keyed);
  },

  /** Single-event appends on an existing stream (growth); boot is untimed. */
  async appendMore(env, { target, name, n, payloadBytes = 100, startIndex = 0, keyed = false }) {
    const stub = stubOf(env, target, name);
    await warm(stub);
    return appendSeq(stub, n, payloadBytes, startIndex, keyed);
  },

  /** `calls` appendBatch calls of `perCall` events each on a fresh stream (after warm-up appends). */
  async batch(env, { target, name, calls, perCall, payloadBytes = 100, warmAppends = 0 }) {
    const stub = stubOf(env, target, name);
    await warm(stub, warmAppends);
    const t0 = now();
    for (let c = 0; c < calls; c++) {
      const evs = Array.from({ length: perCall }, (_, k) => eventOf(c * perCall + k, payloadBytes));
      const res = await stub.appendBatch({ events: evs });
      if (res.length !== perCall) throw new Error(`appendBatch returned ${res.length} events`);
    }
    const ms = now() - t0;
    const n = calls * perCall;
    return { n, ms, perSec: (n * 1000) / ms };
  },

  /** Read the whole stream in getEvents pages of `limit`. */
  async replay(env, { target, name, limit = 1000 }) {
    const stub = stubOf(env, target, name);
    await warm(stub);
    let after = 0;
    let n = 0;
    let pages = 0;
    const t0 = now();
    for (;;) {
      const page = await stub.getEvents({ afterOffset: after, limit });
      pages += 1;
      if (page.length === 0) break;
      n += page.length;
      after = page[page.length - 1].offset;
      if (page.length < limit) break;
    }
    const ms = now() - t0;
    return { n, pages, ms, perSec: (n * 1000) / ms };
  },

  /**
   * 10. A stream of `events` bench events (prepared) is wired to the summing processor; timed from
   * the subscription append until the processor's committed count reaches `events`. Then the same
   * events are read with getEvents in pages of 100 (the size of a delivered batch).
   */
  async processor(env, { name, events }) {
    const stream = stubOf(env, "ours", name);
    const [namespace, path] = [name.slice(0, name.indexOf(":")), name.slice(name.indexOf(":") + 1)];
    const host = env.PROCESSOR.getByName(name);
    await warm(stream);
    const subscription = {
      type: "events.iterate.com/stream/subscription-configured",
      payload: {
        subscriptionKey: "sum",
        subscriber: {
          type: "callable",
          callable: { type: "workers-rpc", via: { type: "env-binding", bindingType: "durable-object-namespace", bindingName: "PROCESSOR", durableObject: { name } } },
        },
      },
    };
    const t0 = now();
    await stream.append({ event: subscription });
    let status;
    for (;;) {
      status = await host.processorStatus({ namespace, path, slug: "sum" });
      if (status.state.count >= events) break;
      await sleep(1);
    }
    const ms = now() - t0;
    const expected = (events * (events - 1)) / 2;
    if (status.state.count !== events || status.state.total !== expected) {
      throw new Error(`processor state ${JSON.stringify(status.state)}, expected count ${events}, total ${expected}`);
    }
    const read = await scenarios.replay(env, { target: "ours", name, limit: 100 });
    return { n: events, ms, perSec: (events * 1000) / ms, readPerSec: read.perSec, ratio: (events * 1000) / ms / read.perSec };
  },

  /** Append one event with a `bytes`-long string payload, then read it back. */
  async large(env, { target, name, bytes, warmAppends = 0 }) {
    const stub = stubOf(env, target, name);
    await warm(stub, warmAppends);
    const event = { type: "bench/x", payload: { data: "x".repeat(bytes) } };
    const t0 = now();
    const committed = await stub.append({ event });
    const t1 = now();
    const back = await stub.getEvents({ afterOffset: committed.offset - 1, limit: 1 });
    const t2 = now();
    if (back.length !== 1 || back[0].payload.data.length !== bytes) throw new Error("large event did not read back");
    return { ms: t2 - t0, appendMs: t1 - t0, readMs: t2 - t1 };
  },

  /**
   * 12. Wasm memory of the Stream isolate over `rounds` rounds on one stream: the largest batch
   * (16 events, 16 MiB of input JSON), the largest single event (8 MiB committed), both read back
   * (getEvents, getEvent) and checked. `memoryUsage` (a test hook) reports the isolate's wasm
   * linear memory, which grows on demand and never shrinks.
   */
  async memory(env, { name, rounds, batchEvents = 16 }) {
    const stub = env.HOOKED.getByName(name);
    await warm(stub);
    const bytes = async () => (await stub.memoryUsage()).wasmMemoryBytes;
    const booted = await bytes();
    const batch = largestBatch(batchEvents);
    const single = largestEvent();
    const afterCalls = []; // per round: the memory after each of its calls
    let singleBytes = 0; // committed JSON of the single event
    const t0 = now();
    for (let round = 0; round < rounds; round++) {
      const after = {};
      const committed = await stub.appendBatch({ events: batch });
      after.appendBatch = await bytes();
      if (committed.length !== batch.length) throw new Error(`appendBatch returned ${committed.length} events`);
      const event = await stub.append({ event: single });
      after.append = await bytes();
      let cursor = committed[0].offset - 1;
      const back = [];
      while (back.length < batch.length) {
        const page = await stub.getEvents({ afterOffset: cursor, limit: batch.length - back.length });
        if (page.length === 0) throw new Error("the batch did not read back");
        back.push(...page);
        cursor = page.at(-1).offset;
      }
      after.getEvents = await bytes();
      back.forEach((e, k) => {
        if (e.payload.data.length !== batch[k].payload.data.length) throw new Error(`batch event ${k} read back with another payload`);
      });
      const one = await stub.getEvent({ offset: event.offset });
      if (one.payload.data.length !== single.payload.data.length) throw new Error("the single event read back with another payload");
      after.getEvent = await bytes();
      singleBytes = JSON.stringify(one).length;
      afterCalls.push(after);
    }
    return {
      rounds,
      batchEvents,
      batchBytes: JSON.stringify(batch).length,
      singleBytes,
      booted,
      afterCalls,
      afterRound: afterCalls.map((after) => after.getEvent),
      ms: now() - t0,
    };
  },

  /** kill(), then time the first call of the next incarnation (it boots) and one warm call. */
  async boot(env, { target, name }) {
    await stubOf(env, target, name).kill();
    await sleep(50); // the abort follows the reply; let it land
    return firstCall(env, target, name);
  },

  /** Time the first call on a stream this process has not touched yet, then a warm call. */
  async first(env, { target, name }) {
    return firstCall(env, target, name);
  },

  /**
   * 8. Subscription delivery latency: open an inbound WebSocket subscription (live tail, all
   * types) through the STREAMS service binding, then `n` sequential single appends over DO RPC,
   * each waiting for the frame that carries it before the next append starts. Ours only: the
   * baseline has no subscriptions. See subscribeLatency.
   */
  async subscribe(env, { target, name, n, payloadBytes = 100, warmAppends = 0, timeoutMs = 10000 }) {
    if (target !== "ours") throw new Error("subscribe: only target ours has subscriptions");
    const stub = stubOf(env, target, name);
    await warm(stub, warmAppends);
    return subscribeLatency(env, stub, name, { n, payloadBytes, timeoutMs });
  },

  /** The object id (hex) of `name`, to find its SQLite file. */
  async id(env, { target, name }) {
    return namespaceOf(env, target).idFromName(name).toString();
  },
};

/**
 * Per append k: clock before the append call → clock in the "message" handler of the frame that
 * holds event k (matched by payload.i, checked against the offset the append returns). The loop
 * waits only for the frame, not for the append's RPC reply (the frame usually arrives first; both
 * leave the DO when the commit is confirmed), so loop time / n is the exact mean append → frame.
 * The replies are collected meanwhile, timed the same way, and checked at the end.
 */
async function subscribeLatency(env, stub, name, { n, payloadBytes, timeoutMs }) {
  const colon = name.indexOf(":");
  const q = new URLSearchParams({ namespace: name.slice(0, colon), path: name.slice(colon + 1), subscriptionKey: "bench" });
  const res = await env.STREAMS.fetch(`http://streams/api/streams/subscribe?${q}`, { headers: { Upgrade: "websocket" } });
  const ws = res.webSocket;
  if (res.status !== 101 || !ws) throw new Error(`subscribe: HTTP ${res.status}: ${await res.text()}`);
  ws.accept();

  let order = 0; // arrival order of frames and append replies
  const arrived = new Map(); // bench event index -> {t, offset, order}
  let frames = 0;
  let firstFrame = null;
  let waiting = null; // {k, resolve, reject}
  let failure = null;
  const fail = (e) => {
    failure ??= e;
    if (waiting) waiting.reject(failure);
  };
  ws.addEventListener("message", (e) => {
    const t = now();
    let f;
    try {
      f = JSON.parse(typeof e.data === "string" ? e.data : new TextDecoder().decode(e.data));
    } catch (err) {
      return fail(new Error(`unparsable frame: ${err}`));
    }
    if (f.type !== "batch") return;
    frames += 1;
    firstFrame ??= f;
    const o = ++order;
    for (const ev of f.events) if (ev.type === "bench/x") arrived.set(ev.payload.i, { t, offset: ev.offset, order: o });
    if (waiting && (waiting.k === "first" || arrived.has(waiting.k))) waiting.resolve(arrived.get(waiting.k));
  });
  ws.addEventListener("close", (e) => fail(new Error(`socket closed: ${e.code} ${e.reason}`)));
  ws.addEventListener("error", (e) => fail(new Error(`socket error: ${e.message ?? e}`)));

  /** Resolves with arrived.get(k) once that frame is in ("first": once any frame is). */
  const frameOf = (k) => {
    if (k === "first" ? firstFrame : arrived.has(k)) return Promise.resolve(arrived.get(k));
    if (failure) return Promise.reject(failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`no frame for append ${k} within ${timeoutMs} ms`)), timeoutMs);
      const done = (settle) => (v) => {
        clearTimeout(timer);
        waiting = null;
        settle(v);
      };
      waiting = { k, resolve: done(resolve), reject: done(reject) };
    });
  };

  try {
    // The initial push (it ends with our own subscriber-connected fact), untimed.
    await frameOf("first");
    if (!(firstFrame.streamMaxOffset > 0)) throw new Error(`odd initial push: ${JSON.stringify(firstFrame).slice(0, 300)}`);
    const initialFrames = frames;

    const lat = new Array(n);
    const replies = new Array(n);
    const t0 = now();
    for (let k = 0; k < n; k++) {
      const a = now();
      replies[k] = stub.append({ event: eventOf(k, payloadBytes) }).then(
        (c) => ({ a, t: now(), order: ++order, offset: c.offset }),
        (e) => ({ error: e }),
      );
      lat[k] = (await frameOf(k)).t - a;
    }
    const ms = now() - t0;

    const replyLat = new Array(n);
    let framesFirst = 0; // frames that arrived before their append's RPC reply
    for (let k = 0; k < n; k++) {
      const r = await replies[k];
      if (r.error) throw r.error;
      const f = arrived.get(k);
      if (f.offset !== r.offset) throw new Error(`append ${k}: reply offset ${r.offset}, frame offset ${f.offset}`);
      if (f.order < r.order) framesFirst += 1;
      replyLat[k] = r.t - r.a;
    }
    lat.sort((x, y) => x - y);
    replyLat.sort((x, y) => x - y);
    return {
      n,
      ms,
      meanMs: ms / n,
      p50Ms: percentile(lat, 50),
      p99Ms: percentile(lat, 99),
      maxMs: lat[n - 1],
      replyP50Ms: percentile(replyLat, 50),
      replyP99Ms: percentile(replyLat, 99),
      frames: frames - initialFrames,
      framesFirst,
    };
  } finally {
    try {
      ws.close(1000, "bench done");
    } catch {}
  }
}

async function firstCall(env, target, name) {
  let retries = 0;
  for (;;) {
    const stub = stubOf(env, target, name); // a fresh stub: the old one saw the abort
    const t0 = now();
    try {
      await stub.getEvents({ afterOffset: 0, limit: 1 });
    } catch (e) {
      // "shutting down; retry" or a stub broken by the abort: wait and retry, untimed.
      if (++retries > 20) throw e;
      await sleep(20);
      continue;
    }
    const bootMs = now() - t0;
    const t1 = now();
    await stub.getEvents({ afterOffset: 0, limit: 1 });
    return { bootMs, warmMs: now() - t1, retries };
  }
}

export default {
  async fetch(request, env) {
    let body;
    try {
      body = await request.json();
      const run = scenarios[body.scenario];
      if (!run) throw new Error(`unknown scenario ${JSON.stringify(body.scenario)}`);
      const result = await run(env, body);
      return Response.json({ ok: true, result });
    } catch (e) {
      return Response.json({ ok: false, error: String(e && e.stack ? e.stack : e) });
    }
  },
};
