// Migration of the first storage layout's databases: one 100000-event stream, from the committed
// fixture miniflare/fixtures/storage-v1-large/ (checks: miniflare/helpers/storage_migration.mjs),
// and the step-wise move of its events (docs/operations.md#migrations-and-state-versions): calls
// are answered while it runs, re-sent keys of events not yet moved still deduplicate, a kill midway
// resumes it at the next boot, it finishes once, and nothing reads back differently.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { migrationTests } from "./helpers/storage_migration.mjs";
import { startStreams } from "./helpers/mf.mjs";
import { S, callOn, readLog } from "./helpers/reliability.mjs";
import { LARGE_FIXTURE_DIR, readManifest, unpackFixture, logDigestOf, bytesOf, foldState, FOLD_WORKER } from "./helpers/storage.mjs";
import { waitFor } from "./helpers/subscribers.mjs";

migrationTests(LARGE_FIXTURE_DIR);

const FINISHED = "storage layout migration finished";
const NAME = "fixture:/large";

test("migration (storage-v1-large): the events move over in steps — calls are served meanwhile, old keys dedupe, a kill resumes it, it finishes once, a restart reads the same", async () => {
  const manifest = readManifest(LARGE_FIXTURE_DIR);
  const recorded = manifest.streams[NAME];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "streams-storage-migration-steps-"));
  let output = ""; // what the Worker logs
  const start = () =>
    startStreams({
      workers: [FOLD_WORKER],
      miniflare: {
        durableObjectsPersist: dir,
        handleRuntimeStdio(stdout, stderr) {
          for (const stream of [stdout, stderr]) stream.on("data", (chunk) => (output += chunk));
        },
      },
    });
  const finishedCount = () => output.split(FINISHED).length - 1;
  let mf;
  const must = async (method, arg) => {
    const o = await callOn(mf, "do", NAME, method, arg);
    assert.ok(o.ok, `${method}: ${o.error}`);
    return o.result;
  };
  try {
    unpackFixture(dir, manifest, LARGE_FIXTURE_DIR);
    mf = await start();

    // The boot answers before the move is done: it runs in steps between calls.
    const booted = await must("runtimeState");
    assert.equal(finishedCount(), 0, "the first call was answered only after the whole migration");
    assert.equal(booted.coreProcessorState.maxOffset, recorded.count + 1);
    // Mid-migration: re-sent keys from all over the log (mostly not moved yet) return the originals,
    // a new event takes the next offset, and a read spanning the whole log is the recorded one.
    const keys = Object.entries(recorded.keys);
    const retried = await must("appendBatch", {
      events: [...keys.map(([idempotencyKey]) => ({ type: "app/retry", idempotencyKey })), { type: "app/during-migration", idempotencyKey: "during-1" }],
    });
    retried.slice(0, -1).forEach((event, i) => assert.equal(event.offset, keys[i][1], `key ${keys[i][0]} mid-migration`));
    assert.equal(retried.at(-1).offset, recorded.count + 2);
    // Single appends too, the last keys first (the ones least likely to have moved yet).
    for (const [idempotencyKey, offset] of keys.slice(-10).reverse()) {
      const one = await must("append", { event: { type: "app/retry", idempotencyKey } });
      assert.equal(one.offset, offset, `single append re-sending ${idempotencyKey} mid-migration`);
    }
    const sample = await must("getEvents", { afterOffset: 49_990, limit: 20 });
    assert.deepEqual(sample.map((e) => e.offset), Array.from({ length: 20 }, (_, i) => 49_991 + i));

    // A kill midway: the next boot resumes the move.
    assert.equal(finishedCount(), 0, "the migration finished before the kill (the fixture no longer tests a kill midway)");
    const killed = await callOn(mf, "do", NAME, "kill");
    assert.ok(killed.ok, killed.error);
    const log = await readLog(mf, NAME);
    assert.equal(logDigestOf(log.slice(0, recorded.count)), recorded.logSha256, "the log read after the kill, mid-migration");
    await waitFor(async () => finishedCount(), (n) => n >= 1, { timeoutMs: 120_000, intervalMs: 200, what: "the migration's end" });
    assert.equal(finishedCount(), 1, "the migration finished once");

    const after = await readLog(mf, NAME);
    assert.equal(after.length, log.length, "nothing was written by the move itself");
    assert.deepEqual(after.map(bytesOf), log.map(bytesOf), "the log reads back the same after the move");
    assert.deepEqual(after.slice(recorded.count).map((e) => e.type), [S("woken"), "app/during-migration", S("woken")]);
    const state = (await must("runtimeState")).coreProcessorState;
    assert.equal(bytesOf(state), bytesOf(await foldState(mf, NAME, after.slice(recorded.count), recorded.state)), "state == recorded + what came after");

    // The moved log survives a restart.
    await mf.dispose();
    mf = await start();
    const again = await readLog(mf, NAME);
    assert.deepEqual(again.slice(0, after.length).map(bytesOf), after.map(bytesOf), "the log after a restart");
  } finally {
    await mf?.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
