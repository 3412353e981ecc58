// A summing processor under faults: 1000 keyed inputs are appended in seeded random batches, in
// three phases separated by whole-runtime restarts (storage persisted on disk; deliveries and
// re-dial back-offs are still pending when they happen), while each phase
// injects seeded kill()s of the stream and abort()s of the processor's Durable Object. Afterwards
// the processor's state is exact (sum, count, every input offset once, in log order), the stream
// holds exactly one output per input with the running total at that input, and the checkpoint
// covers the last input. Seeds: STREAMS_SEED=<n> replays one plan (timing still varies).
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { call, uniqueName } from "./helpers/mf.mjs";
import { prng, seedFor, callOn, callWithRetry, readLog, sleep } from "./helpers/reliability.mjs";
import { facts, waitForLog } from "./helpers/subscribers.mjs";
import { seededBatchSizes, writeKeyed, injectAt, seededPoints } from "./helpers/subscription_faults.mjs";
import { startWithProcessors, processorSubscription, processorStatus, tryHost, uniqueHostName } from "./helpers/processors.mjs";

const SEED = seedFor("processor_chaos");
const TOTAL = 1000;
const PHASES = 3;
const FAULTS_PER_PHASE = 8;

test(`processor under seeded kills, aborts and ${PHASES - 1} runtime restarts: ${TOTAL} inputs → exact sum, each output once`, async (t) => {
  const persistDir = fs.mkdtempSync(path.join(os.tmpdir(), "proc-chaos-"));
  let mf = await startWithProcessors({ persistDir });
  try {
    const rand = prng(SEED);
    const host = uniqueHostName("chaos");
    const name = uniqueName("chaos");
    const configured = await call(mf, name, "append", { event: processorSubscription("sum", host, "counter") });
    await waitForLog(mf, name, (l) => facts(l, "subscriber-connected", { subscriptionKey: "sum" }).some((e) => e.offset > configured.offset));

    const inputs = Array.from({ length: TOTAL }, (_, i) => ({ type: "app/add", payload: { n: 1 + rand.int(1000) }, idempotencyKey: `chaos-in-${i}` }));
    const acked = new Map();
    const faults = { streamKills: 0, processorAborts: 0, refused: 0, restarts: 0 };
    const started = Date.now();
    for (let phase = 0; phase < PHASES; phase++) {
      if (phase > 0) {
        await mf.dispose();
        mf = await startWithProcessors({ persistDir });
        faults.restarts += 1;
      }
      const slice = inputs.slice(Math.round((phase * TOTAL) / PHASES), Math.round(((phase + 1) * TOTAL) / PHASES));
      const sizes = seededBatchSizes(rand, slice.length, 1, 25);
      const points = seededPoints(rand, FAULTS_PER_PHASE, 5, slice.length - 5);
      const kinds = points.map(() => rand.pick(["stream", "processor"]));
      const progress = { acked: 0, done: false };
      const current = mf;
      const [written] = await Promise.all([
        writeKeyed(current, name, slice, sizes, { rand, surfaces: ["do", "service"], progress }),
        injectAt(points, progress, async (k) => {
          if (kinds[k] === "processor") {
            await tryHost(current, host, "abort", undefined);
            faults.processorAborts += 1;
            return;
          }
          const o = await callOn(current, "do", name, "kill");
          if (o.ok) faults.streamKills += 1;
          else faults.refused += 1;
        }),
      ]);
      for (const [key, event] of written.acked) acked.set(key, event);
    }
    const writeMs = Date.now() - started;

    const inputEvents = inputs.map((i) => acked.get(i.idempotencyKey));
    const lastInput = Math.max(...inputEvents.map((e) => e.offset));
    const expectedTotal = inputs.reduce((sum, i) => sum + i.payload.n, 0);

    // Wait (≤ 60 s) for the processor to catch up. Reading the log boots a stream left down by a kill.
    const deadline = Date.now() + 60_000;
    let status;
    let log;
    for (;;) {
      log = await readLog(mf, name);
      status = await processorStatus(mf, host, name, "counter").catch(() => undefined);
      if (status && status.state.count >= TOTAL && log.filter((e) => e.type === "app/summed").length >= TOTAL) break;
      if (Date.now() >= deadline) assert.fail(`processor at count ${status?.state.count}, checkpoint ${status?.checkpoint} (last input ${lastInput}) after 60 s`);
      await sleep(100);
    }
    const catchUpMs = Date.now() - started - writeMs;
    // Nothing more is owed once the stream says so: its connection for "sum" has read everything and
    // no re-dial is pending, so no straggling redelivery can come (docs/protocol.md#runtimestate).
    for (const until = Date.now() + 60_000; ; await sleep(50)) {
      const { outcome } = await callWithRetry(mf, "do", name, "runtimeState");
      const rs = outcome.ok ? outcome.result : undefined;
      const conn = rs?.runtime.connections.sum;
      if (conn && conn.cursor >= rs.coreProcessorState.maxOffset && rs.runtime.redial.sum === undefined) break;
      if (Date.now() >= until) assert.fail(`the "sum" connection never settled: ${JSON.stringify(rs?.runtime)}`);
    }
    log = await readLog(mf, name);
    status = await processorStatus(mf, host, name, "counter");

    // The faults landed: every kill that was accepted ended an incarnation, so the log holds a
    // woken for the first boot and one after each landed kill (restarts and evictions add more).
    const wokens = log.filter((e) => e.type === "events.iterate.com/stream/woken").length;
    assert.ok(faults.streamKills >= 1, `no kill landed (${JSON.stringify(faults)})`);
    assert.ok(faults.processorAborts >= 1, `no abort was injected (${JSON.stringify(faults)})`);
    assert.ok(wokens >= 1 + faults.streamKills, `${wokens} woken events for ${faults.streamKills} landed kills`);

    const logInputs = log.filter((e) => e.type === "app/add");
    assert.deepEqual(logInputs.map((e) => e.offset), inputEvents.map((e) => e.offset).sort((a, b) => a - b), "each input once in the log");
    assert.equal(status.state.total, expectedTotal, "exact sum");
    assert.equal(status.state.count, TOTAL);
    assert.deepEqual(status.state.offsets, logInputs.map((e) => e.offset), "every input reduced once, in log order");
    assert.ok(status.checkpoint >= lastInput, `checkpoint ${status.checkpoint} covers the last input ${lastInput}`);
    assert.equal(status.halted, false);
    assert.equal(status.failures, 0);

    const outputs = log.filter((e) => e.type === "app/summed");
    assert.equal(outputs.length, TOTAL, "one output per input");
    const byKey = new Map(outputs.map((e) => [e.idempotencyKey, e]));
    assert.equal(byKey.size, TOTAL, "distinct output keys");
    let running = 0;
    for (const input of logInputs) {
      running += input.payload.n;
      const out = byKey.get(`counter:sum:${input.offset}:0`); // <slug>:<subscription key>:<input offset>:<n>
      assert.ok(out, `an output for input @${input.offset}`);
      assert.deepEqual(out.payload, { input: input.offset, total: running });
    }
    assert.equal(log.filter((e) => e.type === "events.iterate.com/stream/error-occurred").length, 0, "no halt was reported");

    t.diagnostic(
      `processor-chaos summary ${JSON.stringify({
        seed: SEED,
        inputs: TOTAL,
        ...faults,
        connections: facts(log, "subscriber-connected", { subscriptionKey: "sum" }).length,
        deliveryFailed: facts(log, "subscriber-disconnected", { subscriptionKey: "sum", reason: "delivery-failed" }).length,
        logLength: log.length,
        checkpoint: status.checkpoint,
        lastInput,
        writeMs,
        catchUpMs,
      })}`,
    );
  } finally {
    await mf.dispose();
    fs.rmSync(persistDir, { recursive: true, force: true });
  }
});
