// Reliability scenario 1 — load (RELIABILITY.md §1).
//
// 50 concurrent writers append 100 events each to ONE stream through all three public surfaces
// (DO JS-RPC one call at a time and via callMany, the service-binding entrypoint one at a time and
// via callManyService, public HTTP append, public HTTP appendBatch). 10% of the events are sent a
// second time with the same idempotencyKey: half after the original was acknowledged (with a
// different payload, which must lose), half racing the original. Afterwards the log holds exactly
// 5000 distinct domain events at contiguous offsets, each byte-identical to its acknowledgement, and
// every retry got the original event back (same offset, createdAt and payload).
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import { startStreams, tryCall, callMany, callManyService, uniqueName, splitName } from "./helpers/mf.mjs";
import { S, prng, seedFor, callOn, readLog, liveState, assertGapFree, bytesOf } from "./helpers/reliability.mjs";

const WRITERS = 50;
const EVENTS_PER_WRITER = 100;
const RETRY_FRACTION = 0.1;
const GROUP = 10; // callMany group size and appendBatch size
const SEED = seedFor("reliability_load");
const KINDS = ["do-single", "do-many", "service-single", "service-many", "http-single", "http-batch"];

let mf;
before(async () => {
  mf = await startStreams();
});
after(async () => {
  await mf?.dispose();
});

test(`load: ${WRITERS} concurrent writers × ${EVENTS_PER_WRITER} events on one stream, ${RETRY_FRACTION * 100}% retried — nothing lost, nothing doubled`, async (t) => {
  const name = uniqueName("load");
  const { namespace, path } = splitName(name);
  const rand = prng(SEED);

  // The plan, fixed up front from the seed: which events are retried, and how.
  const plan = [];
  for (let w = 0; w < WRITERS; w++) {
    // Exactly RETRY_FRACTION of each writer's events are retried (seeded choice of which).
    const retried = new Set();
    while (retried.size < Math.round(EVENTS_PER_WRITER * RETRY_FRACTION)) retried.add(rand.int(EVENTS_PER_WRITER));
    const events = [];
    for (let seq = 0; seq < EVENTS_PER_WRITER; seq++) {
      const retry = retried.has(seq) ? (rand.chance(0.5) ? "after" : "race") : null;
      events.push({ key: `load-w${w}-e${seq}`, input: { type: `load/w${w}`, payload: { w, seq }, idempotencyKey: `load-w${w}-e${seq}` }, retry });
    }
    plan.push({ w, kind: KINDS[w % KINDS.length], events });
  }
  const retriesPlanned = plan.flatMap((p) => p.events).filter((e) => e.retry).length;

  /** key → every event returned for it (original and retries) */
  const acks = new Map();
  const failures = [];
  const ack = (key, outcome, what) => {
    if (!outcome.ok) {
      failures.push(`${what} ${key}: ${outcome.error}`);
      return;
    }
    if (!acks.has(key)) acks.set(key, []);
    acks.get(key).push(outcome.result);
  };
  const retryInput = (e) => ({ ...e.input, payload: { ...e.input.payload, retried: true } });
  let calls = 0;

  const one = async (surface, event) => {
    calls++;
    return callOn(mf, surface, name, "append", { event });
  };

  async function runSingle(writer, surface) {
    for (const e of writer.events) {
      if (e.retry === "race") {
        const [a, b] = await Promise.all([one(surface, e.input), one(surface, retryInput(e))]);
        ack(e.key, a, "original");
        ack(e.key, b, "race-retry");
      } else {
        ack(e.key, await one(surface, e.input), "original");
        if (e.retry === "after") ack(e.key, await one(surface, retryInput(e)), "after-retry");
      }
    }
  }

  async function runMany(writer, target) {
    let pendingAfter = [];
    for (let i = 0; i < writer.events.length; i += GROUP) {
      const group = writer.events.slice(i, i + GROUP);
      const specs = [];
      for (const e of group) specs.push({ e, what: "original", arg: { event: e.input } });
      for (const e of group.filter((x) => x.retry === "race")) specs.push({ e, what: "race-retry", arg: { event: retryInput(e) } });
      for (const e of pendingAfter) specs.push({ e, what: "after-retry", arg: { event: retryInput(e) } });
      pendingAfter = group.filter((x) => x.retry === "after");
      calls += specs.length;
      const outcomes =
        target === "do"
          ? await callMany(mf, name, specs.map((s) => ({ method: "append", arg: s.arg })))
          : await callManyService(mf, specs.map((s) => ({ method: "append", arg: { namespace, path, ...s.arg } })));
      outcomes.forEach((o, j) =>
        ack(specs[j].e.key, o.ok ? { ok: true, result: o.result } : { ok: false, error: o.error }, specs[j].what),
      );
    }
    if (pendingAfter.length) {
      calls += pendingAfter.length;
      for (const e of pendingAfter) {
        const o = await tryCall(mf, name, "append", { event: retryInput(e) });
        ack(e.key, o.ok ? { ok: true, result: o.result } : { ok: false, error: o.error }, "after-retry");
      }
    }
  }

  async function runBatch(writer) {
    let pendingAfter = [];
    for (let i = 0; i < writer.events.length; i += GROUP) {
      const group = writer.events.slice(i, i + GROUP);
      // An "after" retry rides in the next batch, mixed with new events; a "race" retry is a
      // single append racing the batch.
      const batch = [...pendingAfter.map((e) => ({ e, what: "after-retry", ev: retryInput(e) })), ...group.map((e) => ({ e, what: "original", ev: e.input }))];
      pendingAfter = group.filter((x) => x.retry === "after");
      const racers = group.filter((x) => x.retry === "race");
      calls += 1 + racers.length;
      const [batchOutcome, ...raceOutcomes] = await Promise.all([
        callOn(mf, "http", name, "appendBatch", { events: batch.map((b) => b.ev) }),
        ...racers.map((e) => one("http", retryInput(e))),
      ]);
      if (!batchOutcome.ok) failures.push(`batch of ${writer.w} @${i}: ${batchOutcome.error}`);
      else batch.forEach((b, j) => ack(b.e.key, { ok: true, result: batchOutcome.result[j] }, b.what));
      racers.forEach((e, j) => ack(e.key, raceOutcomes[j], "race-retry"));
    }
    for (const e of pendingAfter) ack(e.key, await one("http", retryInput(e)), "after-retry");
  }

  const started = Date.now();
  await Promise.all(
    plan.map((writer) => {
      switch (writer.kind) {
        case "do-single":
          return runSingle(writer, "do");
        case "service-single":
          return runSingle(writer, "service");
        case "http-single":
          return runSingle(writer, "http");
        case "do-many":
          return runMany(writer, "do");
        case "service-many":
          return runMany(writer, "service");
        case "http-batch":
          return runBatch(writer);
      }
    }),
  );
  const writeMs = Date.now() - started;
  assert.deepEqual(failures.slice(0, 10), [], `${failures.length} calls failed under load`);

  // Every retry returned the original event: same offset, createdAt, payload — byte for byte.
  let retriesChecked = 0;
  const raceWinners = { original: 0, retry: 0 };
  for (const e of plan.flatMap((p) => p.events)) {
    const got = acks.get(e.key) ?? [];
    assert.equal(got.length, e.retry ? 2 : 1, `acks for ${e.key}`);
    for (const r of got.slice(1)) {
      assert.equal(bytesOf(r), bytesOf(got[0]), `retry of ${e.key} returned a different event`);
      retriesChecked++;
    }
    if (e.retry === "race") {
      // Racing calls: whichever commits first is "the original"; both got that one event.
      const winner = got[0].payload.retried ? "retry" : "original";
      raceWinners[winner]++;
      assert.deepEqual(got[0].payload, winner === "retry" ? retryInput(e).payload : e.input.payload, `${e.key}: payload`);
    } else {
      assert.deepEqual(got[0].payload, e.input.payload, `${e.key}: the original payload wins over the retry's`);
    }
  }
  assert.equal(retriesChecked, retriesPlanned);
  assert.equal(retriesPlanned, WRITERS * EVENTS_PER_WRITER * RETRY_FRACTION);

  // The log: created, woken, then exactly WRITERS×EVENTS_PER_WRITER distinct domain events, gap-free.
  const readStarted = Date.now();
  const log = await readLog(mf, name);
  const readMs = Date.now() - readStarted;
  assertGapFree(log, "load: ");
  assert.deepEqual(log.slice(0, 2).map((e) => e.type), [S("created"), S("woken")]);
  const domain = log.filter((e) => e.type.startsWith("load/"));
  assert.equal(domain.length, WRITERS * EVENTS_PER_WRITER, "domain events in the log");
  assert.equal(log.length, 2 + WRITERS * EVENTS_PER_WRITER, "no other events were written");
  const keys = new Set(domain.map((e) => e.idempotencyKey));
  assert.equal(keys.size, WRITERS * EVENTS_PER_WRITER, "distinct idempotency keys");
  for (const ev of domain) {
    const acked = acks.get(ev.idempotencyKey)?.[0];
    assert.ok(acked, `stored event ${ev.idempotencyKey} was never acknowledged`);
    assert.equal(bytesOf(ev), bytesOf(acked), `stored event @${ev.offset} differs from its acknowledgement`);
  }
  // A writer's one-at-a-time appends commit in the order it sent them. A batch writer's "race"
  // retry is a single append sent beside its batch, so that event may commit before the batch's
  // earlier events; it still commits after every earlier batch.
  for (const writer of plan.filter((p) => p.kind.endsWith("single") || p.kind === "http-batch")) {
    const offsetOf = (e) => acks.get(e.key)[0].offset;
    const racedBesideBatch = (e) => writer.kind === "http-batch" && e.retry === "race";
    let previous = { seq: -1, offset: 0 };
    writer.events.forEach((e, seq) => {
      if (racedBesideBatch(e)) return;
      assert.ok(offsetOf(e) > previous.offset, `writer ${writer.w} (${writer.kind}) out of order at seq ${seq} (after seq ${previous.seq})`);
      previous = { seq, offset: offsetOf(e) };
    });
    writer.events.forEach((e, seq) => {
      if (!racedBesideBatch(e)) return;
      const earlier = writer.events.slice(0, seq - (seq % GROUP)).map(offsetOf);
      assert.ok(earlier.every((o) => offsetOf(e) > o), `writer ${writer.w}: seq ${seq}, raced beside its batch, committed before an earlier batch`);
    });
  }

  const state = await liveState(mf, name);
  assert.equal(state.eventCount, log.length);
  assert.equal(state.maxOffset, log.length);

  const summary = {
    seed: SEED,
    writers: WRITERS,
    kinds: Object.fromEntries(KINDS.map((k) => [k, plan.filter((p) => p.kind === k).length])),
    eventsWritten: domain.length,
    retries: retriesPlanned,
    retriesRace: plan.flatMap((p) => p.events).filter((e) => e.retry === "race").length,
    raceWinners,
    calls,
    writeMs,
    eventsPerSecond: Math.round((domain.length / writeMs) * 1000),
    readMs,
    lost: 0,
    duplicates: domain.length - keys.size,
  };
  // How long the load phase took is reported above, never asserted: speed is the bench's business.
  t.diagnostic(`load summary ${JSON.stringify(summary)}`);
});
