// Reliability scenario 2a — kills during a flood (RELIABILITY.md §2).
//
// 10 writers append 2000 keyed events to one stream through DO JS-RPC, the entrypoint and HTTP
// (one at a time, and appendBatch of 5), while `kill()` is injected at seeded points of the flood
// (after a seeded number of acknowledged events) through all three surfaces. Writers retry on
// `internal` or transport errors with the same idempotency keys. Afterwards: no gap, no duplicate,
// every acknowledged event reads back byte for byte, one `woken` per incarnation, and the live core
// state is what the independent model (streams-model, docs/architecture.md#tests) folds from the log.
//
// The second test is harsher: the whole Miniflare (workerd) is disposed mid-flood and started again
// on the same persistence dir, 3 times; calls in flight at that moment get transport errors and are
// retried. Every acknowledged event must survive the restarts.
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { startStreams, uniqueName } from "./helpers/mf.mjs";
import { assertModelState } from "./helpers/model.mjs";
import { S, prng, seedFor, callOn, callWithRetry, readLog, liveState, assertGapFree, bytesOf, sleep } from "./helpers/reliability.mjs";

const ADMIN = "reliability-admin-token";
const TOTAL = 2000;
const KILLS = 25;
const SEED = seedFor("reliability_faults");
// [surface, method, batch size]
const WRITERS = [
  ["do", "append", 1],
  ["do", "append", 1],
  ["service", "append", 1],
  ["service", "append", 1],
  ["http", "append", 1],
  ["http", "append", 1],
  ["do", "appendBatch", 5],
  ["service", "appendBatch", 5],
  ["http", "appendBatch", 5],
  ["do", "append", 1],
];

let mf;
before(async () => {
  mf = await startStreams({ bindings: { STREAMS_ADMIN_TOKEN: ADMIN } });
});
after(async () => {
  await mf?.dispose();
});

test(`faults: ${KILLS} kill() injected at seeded points of a ${TOTAL}-event flood — no gap, no duplicate, state == the model's fold`, async (t) => {
  const name = uniqueName("faults");
  const rand = prng(SEED);
  const perWriter = TOTAL / WRITERS.length;

  // Payloads: mostly small; ~1% span several 512 KiB chunks (docs/architecture.md#storage) so a kill can land near a chunked commit.
  const inputs = WRITERS.map((_, w) =>
    Array.from({ length: perWriter }, (_, seq) => {
      const big = rand.chance(0.01);
      const payload = { w, seq, text: big ? "λ".repeat(300 * 1024) + rand().toString(36) : rand().toString(36).repeat(1 + rand.int(20)) };
      return { type: `flood/w${w}`, payload, idempotencyKey: `flood-w${w}-e${seq}` };
    }),
  );
  // Kill points: after a seeded number of acknowledged events.
  const killPoints = Array.from({ length: KILLS }, () => 1 + rand.int(TOTAL - 50)).sort((a, b) => a - b);
  const killSurfaces = Array.from({ length: KILLS }, () => rand.pick(["do", "service", "http"]));

  await callOn(mf, "do", name, "getEvents", {}); // boot: created@1, woken@2
  const acked = new Map(); // key → the acknowledged event (first success)
  const retryErrors = new Map(); // error text → count
  let ackCount = 0;
  let retriedCalls = 0;
  let writersDone = 0;
  const permanentFailures = [];

  const started = Date.now();
  const writers = WRITERS.map(async ([surface, method, size], w) => {
    for (let i = 0; i < perWriter; i += size) {
      const group = inputs[w].slice(i, i + size);
      const arg = method === "append" ? { event: group[0] } : { events: group };
      const { outcome, attempts, retryableErrors } = await callWithRetry(mf, surface, name, method, arg, { maxAttempts: 500 });
      for (const e of retryableErrors) retryErrors.set(`${surface}: ${e}`, (retryErrors.get(`${surface}: ${e}`) ?? 0) + 1);
      retriedCalls += attempts > 1 ? 1 : 0;
      if (!outcome.ok) {
        permanentFailures.push(`${group[0].idempotencyKey}: ${outcome.error}`);
        continue;
      }
      const results = method === "append" ? [outcome.result] : outcome.result;
      results.forEach((ev, j) => {
        const key = group[j].idempotencyKey;
        if (acked.has(key)) permanentFailures.push(`${key} acknowledged twice`);
        acked.set(key, ev);
      });
      ackCount += results.length;
    }
    writersDone++;
  });

  let killsDone = 0;
  let killsRefused = 0;
  const killer = (async () => {
    for (let k = 0; k < KILLS; k++) {
      while (ackCount < killPoints[k] && writersDone < WRITERS.length) await sleep(1);
      if (writersDone === WRITERS.length) break;
      const surface = killSurfaces[k];
      const o =
        surface === "http"
          ? await callOn(mf, "http", name, "kill", {}, { headers: { authorization: `Bearer ${ADMIN}` } })
          : await callOn(mf, surface, name, "kill");
      if (o.ok) killsDone++;
      else if (o.error.startsWith("internal: ")) killsRefused++; // already shutting down (docs/protocol.md#kill-and-reset)
      else assert.fail(`kill via ${surface}: ${o.error}`);
    }
  })();
  await Promise.all([...writers, killer]);
  const floodMs = Date.now() - started;
  assert.deepEqual(permanentFailures, [], "every event was acknowledged exactly once");
  assert.equal(acked.size, TOTAL);
  assert.ok(killsDone >= KILLS - 5, `only ${killsDone} kills landed`);

  // Read back: state, log, state again (nothing may be appended in between).
  const stateA = await liveState(mf, name);
  const log = await readLog(mf, name);
  const stateB = await liveState(mf, name);
  assert.deepEqual(stateB, stateA, "the state moved while nothing was written");
  assertGapFree(log, "faults: ");
  assert.equal(stateA.maxOffset, log.length);
  assert.equal(stateA.eventCount, log.length);

  const domain = log.filter((e) => e.type.startsWith("flood/"));
  const keys = new Set(domain.map((e) => e.idempotencyKey));
  assert.equal(domain.length, TOTAL, "domain events in the log");
  assert.equal(keys.size, TOTAL, "no duplicate idempotency keys");
  for (const ev of domain) {
    assert.equal(bytesOf(ev), bytesOf(acked.get(ev.idempotencyKey)), `@${ev.offset} differs from its acknowledgement`);
  }
  for (const [w, list] of inputs.entries()) {
    for (const input of list) assert.deepEqual(acked.get(input.idempotencyKey).payload, input.payload, `payload of ${input.idempotencyKey} (writer ${w})`);
  }
  const wokens = log.filter((e) => e.type === S("woken"));
  assert.equal(log.filter((e) => e.type === S("created")).length, 1);
  assert.equal(wokens.length, 1 + killsDone, "one woken per incarnation (boot + each kill)");
  assert.equal(new Set(wokens.map((e) => e.payload.incarnationId)).size, wokens.length, "distinct incarnation ids");
  assert.equal(log.length, 1 + wokens.length + TOTAL, "nothing but created, woken and the flood");

  // The live core state is the independent model's fold of the log (key order included).
  await assertModelState(log, stateA, "runtimeState().coreProcessorState");

  t.diagnostic(
    `faults summary ${JSON.stringify({
      seed: SEED,
      eventsWritten: domain.length,
      killsInjected: killsDone,
      killsRefusedWhileShuttingDown: killsRefused,
      callsThatNeededRetries: retriedCalls,
      retryableErrors: Object.fromEntries(retryErrors),
      lost: TOTAL - acked.size,
      duplicates: domain.length - keys.size,
      logLength: log.length,
      floodMs,
    })}`,
  );
});

test("faults: workerd restarted 3× mid-flood on a persisted dir — every acknowledged event survives", async (t) => {
  const TOTAL_R = 600;
  const RESTARTS = 3;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "streams-reliability-restart-"));
  const startPersisted = () => startStreams({ bindings: { STREAMS_ADMIN_TOKEN: ADMIN }, miniflare: { durableObjectsPersist: dir } });
  let cur = await startPersisted();
  try {
    const name = uniqueName("restart");
    const rand = prng(SEED ^ 0x5eed);
    const surfaces = ["do", "service", "http", "do", "service", "http"];
    const per = TOTAL_R / surfaces.length;
    const restartPoints = Array.from({ length: RESTARTS }, (_, i) => Math.floor(((i + 1) * TOTAL_R) / (RESTARTS + 1)) + rand.int(40) - 20);
    const acked = new Map();
    const transportErrors = new Map();
    let ackCount = 0;
    let done = 0;
    await callOn(cur, "do", name, "getEvents", {});

    const writers = surfaces.map(async (surface, w) => {
      for (let seq = 0; seq < per; seq++) {
        const event = { type: `restart/w${w}`, payload: { w, seq, r: rand().toString(36) }, idempotencyKey: `restart-w${w}-e${seq}` };
        for (let attempt = 1; ; attempt++) {
          if (!cur) {
            await sleep(20);
            continue;
          }
          const o = await callOn(cur, surface, name, "append", { event });
          if (o.ok) {
            acked.set(event.idempotencyKey, o.result);
            ackCount++;
            break;
          }
          if (!o.error.startsWith("internal: ") && !o.error.startsWith("transport: ")) assert.fail(`${event.idempotencyKey}: ${o.error}`);
          const k = o.error.slice(0, 80);
          transportErrors.set(k, (transportErrors.get(k) ?? 0) + 1);
          assert.ok(attempt < 2000, `${event.idempotencyKey}: gave up after ${attempt} attempts (${o.error})`);
          await sleep(10);
        }
      }
      done++;
    });
    let restarts = 0;
    const restarter = (async () => {
      for (const point of restartPoints) {
        while (ackCount < point && done < surfaces.length) await sleep(1);
        if (done === surfaces.length) break;
        const old = cur;
        cur = undefined;
        await old.dispose();
        cur = await startPersisted();
        restarts++;
      }
    })();
    const started = Date.now();
    await Promise.all([...writers, restarter]);
    const floodMs = Date.now() - started;
    assert.equal(restarts, RESTARTS);
    assert.equal(acked.size, TOTAL_R);

    const mfNow = cur;
    const state = await liveState(mfNow, name);
    const log = await readLog(mfNow, name);
    assertGapFree(log, "restart: ");
    const domain = log.filter((e) => e.type.startsWith("restart/"));
    assert.equal(domain.length, TOTAL_R, "domain events");
    assert.equal(new Set(domain.map((e) => e.idempotencyKey)).size, TOTAL_R, "no duplicates");
    for (const ev of domain) assert.equal(bytesOf(ev), bytesOf(acked.get(ev.idempotencyKey)), `@${ev.offset} differs from its acknowledgement`);
    const wokens = log.filter((e) => e.type === S("woken")).length;
    assert.equal(wokens, 1 + RESTARTS, "one woken per incarnation");
    assert.equal(log.length, 1 + wokens + TOTAL_R);
    assert.equal(state.maxOffset, log.length);
    await assertModelState(log, state, "after the restarts");
    t.diagnostic(
      `restart summary ${JSON.stringify({ eventsWritten: TOTAL_R, restarts, lost: 0, duplicates: 0, retriedErrors: Object.fromEntries(transportErrors), floodMs })}`,
    );
  } finally {
    await cur?.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("faults: kill() with a configured breaker (fractional tokens) — state after each reboot == the model's fold", async () => {
  const name = uniqueName("faults-breaker");
  const configured = await callOn(mf, "do", name, "append", { event: { type: S("configured"), payload: { config: { circuitBreaker: { burstCapacity: 1000, refillRatePerMinute: 1000 } } } } });
  assert.ok(configured.ok, configured.error);
  // Ten rounds of (appends a few ms apart, kill, compare): the token count is a 16–17 digit
  // fraction each time, and a reboot loads it from core_state.
  for (let round = 0; round < 10; round++) {
    for (let i = 0; i < 3; i++) {
      assert.ok((await callOn(mf, "do", name, "append", { event: { type: "app/x" } })).ok);
      await sleep(3 + i);
    }
    assert.ok((await callWithRetry(mf, "do", name, "kill")).outcome.ok);
    const state = await liveState(mf, name);
    const log = await readLog(mf, name);
    await assertModelState(log, state, `round ${round}: state after the reboot`);
  }
});
