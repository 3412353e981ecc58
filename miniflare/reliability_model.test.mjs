// Reliability scenario 5 — invariant checker (RELIABILITY.md §5).
//
// A seeded random sequence of 300 steps — appends, batches (with duplicate keys inside and hits on
// old keys), idempotent retries, offset preconditions, invalid inputs, pause/resume, kills and
// resets — runs against one stream through all three surfaces, while a simple in-test model keeps
// the expected log as [{type, payload, idempotencyKey}]. System events a caller may write
// (a breaker configured with a small burst, so it trips; child notices; metadata; errors) are among
// the steps. Every step's reply is checked against the in-test log, the full log (offset, type,
// payload, key) is compared with it after every step, and the live core state must be what the
// independent model (streams-model, docs/architecture.md#tests) folds from that log, with a
// breaker trip after exactly the live batches the model says. Replay a failure with
// STREAMS_SEED=<seed> (a new seed each run, printed at the start).
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import { startStreams, uniqueName, splitName } from "./helpers/mf.mjs";
import { S, UUID_V4_RE, prng, seedFor, callOn, callWithRetry, readLog, liveState, bytesOf } from "./helpers/reliability.mjs";
import { assertModelState } from "./helpers/model.mjs";

const ADMIN = "model-admin";
const STEPS = 300;
const COMPARE_EVERY = 1;
const SEED = seedFor("reliability_model");
const SURFACES = ["do", "service", "http"];
const TRIP = "circuit breaker tripped: burst rate limit exceeded";

let mf;
before(async () => {
  mf = await startStreams({ bindings: { STREAMS_ADMIN_TOKEN: ADMIN } });
});
after(async () => {
  await mf?.dispose();
});

function randomPayload(rand, depth = 0) {
  switch (rand.int(depth > 2 ? 4 : 7)) {
    case 0:
      return null;
    case 1:
      return rand.int(1000) - 500;
    case 2:
      return rand.chance(0.5);
    case 3:
      return rand().toString(36).slice(2, 2 + rand.int(10));
    case 4:
      return Array.from({ length: rand.int(4) }, () => randomPayload(rand, depth + 1));
    default: {
      const o = {};
      for (let i = rand.int(4); i > 0; i--) o[`f${rand.int(20)}`] = randomPayload(rand, depth + 1);
      return o;
    }
  }
}

test(`model: ${STEPS} seeded steps of appends, retries, kills and resets match the model after every step`, async (t) => {
  const rand = prng(SEED);
  const name = uniqueName("model");
  const { namespace, path } = splitName(name);

  // ---- the model
  let expected = []; // [{type, payload?, idempotencyKey?}] — payload undefined = absent
  let ackedByKey = new Map(); // key → the event the stream acknowledged
  let booted = false;
  let paused = false;
  let pauseReason = null;
  let liveBatches = []; // [first, last] offsets of each batch a caller's append committed
  const incarnations = [];
  const counts = {};
  const count = (k) => (counts[k] = (counts[k] ?? 0) + 1);

  const boot = () => {
    if (booted) return;
    if (expected.length === 0) expected.push({ type: S("created"), payload: { namespace, path }, created: true });
    expected.push({ type: S("woken"), woken: true });
    booted = true;
  };
  /** A read, or a refused append, boots a stream that exists; one never written (or reset) stays empty (docs/protocol.md#reads-create-nothing). */
  const bootIfWritten = () => {
    if (expected.length > 0) boot();
  };

  /** A call whose retries cover only the shutting-down window after kill/reset. */
  const call = async (surface, method, arg) => {
    const headers = ["reset", "kill"].includes(method) && surface === "http" ? { authorization: `Bearer ${ADMIN}` } : undefined;
    if (headers) return callOn(mf, surface, name, method, arg ?? {}, { headers });
    const { outcome } = await callWithRetry(mf, surface, name, method, arg);
    return outcome;
  };

  const assertEventMatches = (ev, model, offset, note) => {
    assert.equal(ev.offset, offset, `${note}: offset`);
    assert.equal(ev.type, model.type, `${note}: type`);
    if (model.woken) {
      assert.match(ev.payload?.incarnationId ?? "", UUID_V4_RE, `${note}: woken id`);
    } else if (model.created) {
      const { streamId, ...rest } = ev.payload ?? {};
      assert.deepEqual(rest, model.payload, `${note}: payload`);
      assert.match(streamId ?? "", UUID_V4_RE, `${note}: streamId`);
    } else {
      assert.deepEqual(ev.payload, model.payload, `${note}: payload`);
    }
    assert.equal(ev.idempotencyKey, model.idempotencyKey, `${note}: idempotencyKey`);
  };

  async function compareLog(note) {
    bootIfWritten();
    const log = await readLog(mf, name);
    assert.equal(log.length, expected.length, `${note}: log length (got ${log.map((e) => e.type).join(",")})`);
    log.forEach((ev, i) => assertEventMatches(ev, expected[i], i + 1, `${note} @${i + 1}`));
    for (const [key, ev] of ackedByKey) assert.equal(bytesOf(log[ev.offset - 1]), bytesOf(ev), `${note}: acknowledged ${key}`);
    const wokens = log.filter((e) => e.type === S("woken")).map((e) => e.payload.incarnationId);
    assert.equal(new Set(wokens).size, wokens.length, `${note}: incarnation ids repeat`);
    const state = await liveState(mf, name);
    assert.equal(state.maxOffset, expected.length, `${note}: maxOffset`);
    assert.equal(state.eventCount, expected.length, `${note}: eventCount`);
    assert.equal(state.paused, paused, `${note}: paused`);
    assert.equal(state.pauseReason, pauseReason, `${note}: pauseReason`);
    // The oracle: the live state is what the independent model folds from the log.
    await assertModelState(log, state, note, liveBatches, name);
    return log;
  }

  const newInput = (step, i = 0) => {
    const input = { type: `model/t${rand.int(5)}` };
    if (rand.chance(0.8)) input.payload = randomPayload(rand);
    if (rand.chance(0.6)) input.idempotencyKey = `m-${step}-${i}`;
    return input;
  };
  /** A caller's batch committed [first, last]: the stream may have tripped the breaker right after it. */
  const committed = async (first, last) => {
    liveBatches.push([first, last]);
    const { outcome: next } = await callWithRetry(mf, "do", name, "getEvent", { offset: last + 1 });
    if (next.ok) {
      // Only the breaker's own pause may follow a caller's batch at once (the model checks its key).
      assert.equal(next.result.type, S("paused"), `an event after the batch ${first}..${last}: ${JSON.stringify(next.result)}`);
      expected.push({ type: S("paused"), payload: { reason: TRIP }, idempotencyKey: next.result.idempotencyKey });
      paused = true;
      pauseReason = TRIP;
      count("trip");
    } else {
      assert.equal(next.error, `not_found: No stream event found at offset ${last + 1}.`);
    }
  };
  const modelOf = (input) => ({ type: input.type, payload: input.payload, idempotencyKey: input.idempotencyKey?.trim() });

  let comparisons = 0;
  const started = Date.now();
  for (let step = 1; step <= STEPS; step++) {
    const note = `step ${step} (seed ${SEED})`;
    // One step; `return` ends it early (the log is still compared).
    await (async () => {
      const surface = rand.pick(SURFACES);
      const roll = rand();
      const knownKeys = [...ackedByKey.keys()];

      if (roll < 0.36) {
        // ---- one append
        count("append");
        const input = newInput(step);
        const o = await call(surface, "append", { event: input });
        boot();
        if (paused) {
          assert.equal(o.error, `stream_paused: stream paused: ${pauseReason ?? "unknown reason"}`, note);
        } else {
          assert.ok(o.ok, `${note}: ${o.error}`);
          expected.push(modelOf(input));
          assertEventMatches(o.result, expected.at(-1), expected.length, note);
          if (input.idempotencyKey) ackedByKey.set(input.idempotencyKey, o.result);
          await committed(expected.length, expected.length);
        }
      } else if (roll < 0.5) {
        // ---- a batch: new events, a duplicate key inside it, and maybe a hit on an old key
        count("batch");
        const inputs = Array.from({ length: 1 + rand.int(5) }, (_, i) => newInput(step, i));
        const withKey = inputs.filter((x) => x.idempotencyKey);
        if (withKey.length && rand.chance(0.4)) inputs.push({ ...rand.pick(withKey), payload: "dup-in-batch" });
        if (knownKeys.length && rand.chance(0.4)) inputs.splice(rand.int(inputs.length + 1), 0, { type: "model/hit", idempotencyKey: rand.pick(knownKeys), payload: "loses" });
        const o = await call(surface, "appendBatch", { events: inputs });
        boot();
        // Model the batch: hits (old keys or earlier in this batch) return the existing event.
        const seen = new Map();
        const slots = [];
        let gated = false;
        const planned = [];
        for (const input of inputs) {
          const k = input.idempotencyKey;
          if (k && seen.has(k)) slots.push({ same: seen.get(k) });
          else if (k && ackedByKey.has(k)) slots.push({ existing: ackedByKey.get(k) });
          else {
            if (paused) gated = true;
            planned.push(modelOf(input));
            const slot = { offset: expected.length + planned.length, model: planned.at(-1) };
            if (k) seen.set(k, slot);
            slots.push(slot);
          }
        }
        if (gated) {
          assert.equal(o.error, `stream_paused: stream paused: ${pauseReason ?? "unknown reason"}`, note);
        } else {
          assert.ok(o.ok, `${note}: ${o.error}`);
          assert.equal(o.result.length, inputs.length, `${note}: aligned results`);
          expected.push(...planned);
          slots.forEach((slot, i) => {
            const got = o.result[i];
            if (slot.existing) assert.equal(bytesOf(got), bytesOf(slot.existing), `${note}: slot ${i} is the old event`);
            else if (slot.same) assert.equal(bytesOf(got), bytesOf(o.result[inputs.findIndex((x) => x.idempotencyKey === inputs[i].idempotencyKey)]), `${note}: slot ${i} is the batch's first`);
            else assertEventMatches(got, slot.model, slot.offset, `${note} slot ${i}`);
          });
          for (const [i, input] of inputs.entries()) if (input.idempotencyKey && !ackedByKey.has(input.idempotencyKey)) ackedByKey.set(input.idempotencyKey, o.result[i]);
          if (planned.length) await committed(expected.length - planned.length + 1, expected.length);
        }
      } else if (roll < 0.64) {
        // ---- an idempotent retry of an old key (different payload, maybe padded key): the original
        // comes back, even while paused
        if (!knownKeys.length) return;
        count("retry");
        const key = rand.pick(knownKeys);
        const original = ackedByKey.get(key);
        const withOffset = rand.chance(0.3);
        const o = await call(surface, "append", { event: { type: "model/retry", payload: { other: step }, idempotencyKey: rand.chance(0.3) ? `  ${key} ` : key, ...(withOffset ? { offset: original.offset } : {}) } });
        boot();
        assert.ok(o.ok, `${note}: ${o.error}`);
        assert.equal(bytesOf(o.result), bytesOf(original), `${note}: retry of ${key}`);
      } else if (roll < 0.72) {
        // ---- refused input: unknown key, offset precondition, idempotency conflict — nothing changes
        count("refused");
        const kind = rand.int(3);
        let arg;
        let want;
        bootIfWritten();
        // A never-written stream checks the input as its first events would land: after created@1, woken@2.
        const nextOffset = expected.length === 0 ? 3 : expected.length + 1;
        if (kind === 0) {
          arg = { event: { type: "model/bad", bogus: true } };
          want = 'invalid_event: event[0]: unknown key "bogus"';
        } else if (kind === 1 || !knownKeys.length) {
          const given = nextOffset + 1 + rand.int(5);
          arg = { event: { type: "model/offset", offset: given } };
          want = paused ? `stream_paused: stream paused: ${pauseReason ?? "unknown reason"}` : `offset_mismatch: expected offset ${nextOffset}, got ${given}`;
        } else {
          const key = rand.pick(knownKeys);
          const existing = ackedByKey.get(key).offset;
          arg = { event: { type: "model/conflict", idempotencyKey: key, offset: existing + 1 } };
          want = `idempotency_conflict: idempotency hit at offset ${existing}, got ${existing + 1}`;
        }
        const o = await call(surface, "append", arg);
        assert.equal(o.error, want, note);
      } else if (roll < 0.77) {
        // ---- an append with the right offset precondition
        count("offset-ok");
        boot();
        if (paused) return;
        const o = await call(surface, "append", { event: { type: "model/at", offset: expected.length + 1 } });
        assert.ok(o.ok, `${note}: ${o.error}`);
        expected.push({ type: "model/at", payload: undefined, idempotencyKey: undefined });
        assert.equal(o.result.offset, expected.length, note);
        await committed(expected.length, expected.length);
      } else if (roll < 0.83) {
        // ---- pause / resume
        count(paused ? "resume" : "pause");
        const reason = rand.chance(0.5) ? `why-${step}` : undefined;
        const type = paused ? S("resumed") : S("paused");
        const payload = reason ? { reason } : {};
        const o = await call(surface, "append", { event: { type, payload } });
        boot();
        assert.ok(o.ok, `${note}: ${o.error}`);
        expected.push({ type, payload });
        paused = type === S("paused");
        pauseReason = paused ? reason ?? null : null;
        await committed(expected.length, expected.length);
      } else if (roll < 0.86) {
        // ---- point reads: by offset and by key, against the model
        count("read");
        bootIfWritten();
        const offset = 1 + rand.int(expected.length + 2);
        const byOffset = await call(surface, "getEvent", { offset });
        if (offset <= expected.length) assertEventMatches(byOffset.result, expected[offset - 1], offset, `${note} getEvent`);
        else assert.equal(byOffset.error, `not_found: No stream event found at offset ${offset}.`, note);
        if (knownKeys.length) {
          const key = rand.pick(knownKeys);
          const byKey = await call(surface, "getEvent", { idempotencyKey: key });
          assert.equal(bytesOf(byKey.result), bytesOf(ackedByKey.get(key)), `${note} getEvent by key`);
        }
        const unknown = await call(surface, "getEvent", { idempotencyKey: `never-${step}` });
        assert.ok(unknown.ok && unknown.result === undefined, `${note}: unknown key → undefined (${JSON.stringify(unknown)})`);
      } else if (roll < 0.93) {
        // ---- a system event a caller may write: the breaker (small bursts, so it trips), a child
        // notice (immediate child, deeper, elsewhere, itself), metadata, an error (passes the gate)
        boot();
        const kind = rand.int(4);
        let event;
        if (kind === 0) {
          count("configure");
          const config = rand.chance(0.8) ? { circuitBreaker: { burstCapacity: 1 + rand.int(4), refillRatePerMinute: rand.pick([1, 60, 600, 60000]) } } : { simulatedStorageSyncDelayMs: rand.int(5) };
          event = { type: S("configured"), payload: { config } };
        } else if (kind === 1) {
          count("child");
          const childPath = rand.pick([`${path}/c${rand.int(4)}`, `${path}/c${rand.int(4)}/g${rand.int(3)}`, "/elsewhere/x", path]);
          event = { type: S("child-stream-created"), payload: { childPath } };
        } else if (kind === 2) {
          count("metadata");
          event = { type: S("metadata-updated"), payload: { metadata: { step, v: randomPayload(rand) } } };
        } else {
          count("error");
          event = { type: S("error-occurred"), payload: { message: `boom ${step}` } };
        }
        const o = await call(surface, "append", { event });
        if (paused && kind !== 3) {
          assert.equal(o.error, `stream_paused: stream paused: ${pauseReason ?? "unknown reason"}`, note);
          return;
        }
        assert.ok(o.ok, `${note}: ${o.error}`);
        expected.push({ type: event.type, payload: event.payload });
        await committed(expected.length, expected.length);
      } else if (roll < 0.985) {
        // ---- kill: the incarnation ends; storage stays; the next call boots (woken)
        count("kill");
        const o = await call(surface, "kill");
        if (!o.ok) {
          // A kill right after another can land while the stream is still shutting down (docs/protocol.md#kill-and-reset).
          assert.equal(o.error, "internal: stream incarnation is shutting down; retry", note);
          return;
        }
        boot(); // kill boots first when the incarnation had not booted
        booted = false;
        incarnations.push(step);
      } else {
        // ---- reset: everything is deleted; the next call boots a fresh stream
        count("reset");
        const o = await call(surface, "reset");
        if (!o.ok) {
          assert.equal(o.error, "internal: stream incarnation is shutting down; retry", note);
          return;
        }
        expected = [];
        liveBatches = [];
        ackedByKey = new Map();
        paused = false;
        pauseReason = null;
        booted = false;
      }
    })();

    if (step % COMPARE_EVERY === 0 || step === STEPS) {
      await compareLog(note);
      comparisons++;
    }
  }

  const log = await compareLog("final");
  t.diagnostic(
    `model summary ${JSON.stringify({ seed: SEED, steps: STEPS, actions: counts, logComparisons: comparisons + 1, finalLogLength: log.length, ms: Date.now() - started })}`,
  );
});
