// Subscription runtime defects found by review, one test each: a delivery that could wedge, a reset
// that could leave the object refusing calls, the wake fan-out, swallowed errors, an alarm re-armed
// by a configuration failure, and a nameless call that bricked the stream.
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { startStreams, startPersistedStreams, stopPersistedStreams, call, uniqueName, REPO_ROOT } from "./helpers/mf.mjs";
import { S, readAll } from "./helpers/assertions.mjs";
import { sqliteFileOf, openSqlite } from "./helpers/reliability.mjs";
import {
  echoSubscriptionEvent,
  uniqueEchoName,
  inspectEcho,
  configureEcho,
  releaseHeldDials,
  waitFor,
  waitForEcho,
  waitForLog,
  facts,
  openSubscriber,
  waitForNothingPending,
  runtimeState,
} from "./helpers/subscribers.mjs";

const RECORDING_HOST = path.join(REPO_ROOT, "miniflare", "helpers", "recording-host.mjs");

let mf;

before(async () => {
  mf = await startStreams({ echoScriptPath: RECORDING_HOST });
});

after(async () => {
  await mf?.dispose();
});

test("defect 1: a nested shallowMerge (and strings holding braces) reaches the dial and every delivery intact", async () => {
  const name = uniqueName();
  const host = uniqueEchoName("rec");
  // The nested object comes last: its closing braces end the merged JSON.
  const shallowMerge = { processorName: "p", note: "{\"}", ctx: { tenant: "x}", deep: [{ a: { b: "}}" } }] } };
  await configureEcho(mf, host, { reply: { replayAfterOffset: 0 } });
  await call(mf, name, "append", { event: echoSubscriptionEvent("rec", host, { transformInput: { shallowMerge } }) });
  const input = await call(mf, name, "append", { event: { type: "app/x", payload: { text: "}" } } });
  const rec = await waitForEcho(mf, host, (h) => h.batches.some((b) => b.offsets.includes(input.offset)), { what: "the delivery" });
  assert.deepEqual(rec.dials[0].ctx, shallowMerge.ctx);
  assert.equal(rec.dials[0].note, shallowMerge.note);
  for (const b of rec.batches) {
    assert.deepEqual(b.ctx, shallowMerge.ctx);
    assert.equal(b.note, shallowMerge.note);
    assert.equal(b.processorName, "p");
  }
});

test("defect 2: reset while a dial is in flight: the late failure writes nothing into the new life, which answers at once", async () => {
  const name = uniqueName();
  const host = uniqueEchoName("rec");
  // The host holds the dial until released: it is in flight for as long as the reset takes.
  await configureEcho(mf, host, { failDials: true, holdDials: true });
  await call(mf, name, "append", { event: echoSubscriptionEvent("rec", host) });
  await waitForEcho(mf, host, (h) => h.dials.length === 1, { what: "the dial in flight" });
  await call(mf, name, "reset");
  await releaseHeldDials(mf, host);
  await waitForEcho(mf, host, (h) => h.dialsEnded === 1, { what: "the dial's failure" });
  const log = await waitFor(() => readAll(mf, name).catch(() => null), (l) => l !== null, { what: "the new life" });
  assert.deepEqual(log.map((e) => e.type), [S("created"), S("woken")]);
  const rs = await runtimeState(mf, name);
  assert.deepEqual(rs.runtime.redial, {}, "no back-off row from the old life");
  assert.deepEqual(rs.coreProcessorState.subscriptionsByKey, {});
});

test("defect 3: a wake costs each of 50 hibernated sockets one event (woken keeps the roster); every event once, chained", async () => {
  const name = uniqueName();
  const SOCKETS = 50;
  const subs = [];
  for (let i = 0; i < SOCKETS; i++) subs.push(await openSubscriber(mf, name, { subscriptionKey: `s${i}` }));
  const before = await call(mf, name, "append", { event: { type: "app/before" } });
  await Promise.all(subs.map((s) => s.waitForOffset(before.offset)));
  const report = await call(mf, name, "simulateHibernation");
  assert.deepEqual(report, { bootCommits: 1 }, "one commit, the woken: no socket is announced again");
  const missed = await call(mf, name, "append", { event: { type: "app/after" } });
  await Promise.all(subs.map((s) => s.waitForOffset(missed.offset)));
  const log = await readAll(mf, name);
  const wake = log.filter((e) => e.offset > before.offset);
  assert.deepEqual(wake.map((e) => e.type), [S("woken"), "app/after"], "the wake wrote one event");
  assert.equal(wake[0].payload.inboundKept, true);
  for (const [i, s] of subs.entries()) {
    const offsets = s.offsets();
    assert.equal(new Set(offsets).size, offsets.length, `socket ${i}: no event twice`);
    const since = log.filter((e) => e.offset >= offsets[0]).map((e) => e.offset);
    assert.deepEqual(offsets, since, `socket ${i}: every event from its first, in order`);
    assert.deepEqual(s.events().filter((e) => e.offset > before.offset).map((e) => e.type), [S("woken"), "app/after"], `socket ${i}: the wake's events`);
    const batches = s.frames.filter((f) => f.type === "batch");
    for (let j = 1; j < batches.length; j++) assert.equal(batches[j].afterOffset, batches[j - 1].throughOffset, `socket ${i}: frame ${j} chains`);
  }
  const { coreProcessorState: state } = await runtimeState(mf, name);
  const connected = facts(log, "subscriber-connected");
  assert.deepEqual(Object.keys(state.connectionsByKey), subs.map((_, i) => `s${i}`), "the roster still lists every socket");
  for (const c of connected) assert.deepEqual(state.connectionsByKey[c.payload.subscriptionKey], { direction: "inbound", connectedAtOffset: c.offset });
  for (const s of subs) s.close();
});

test("defect 4: a delivery that cannot be handed over ends the connection, is logged and re-dials (no wedged loop)", async () => {
  const name = uniqueName();
  const host = uniqueEchoName("rec");
  await configureEcho(mf, host, { reply: { replayAfterOffset: 0 }, failBatches: 2 });
  await call(mf, name, "append", { event: echoSubscriptionEvent("rec", host) });
  const input = await call(mf, name, "append", { event: { type: "app/x" } });
  const rec = await waitForEcho(mf, host, (h) => h.batches.some((b) => !b.failed && b.offsets.includes(input.offset)), {
    what: "a delivery after two failures",
    timeoutMs: 30_000,
  });
  assert.ok(rec.dials.length >= 3, `re-dialed after each failure (${rec.dials.length} dials)`);
  assert.equal(rec.maxInFlight, 1, "at most one delivery in flight");
  const log = await readAll(mf, name);
  assert.equal(facts(log, "subscriber-disconnected", { subscriptionKey: "rec", reason: "delivery-failed" }).length, 2);
  assert.deepEqual((await runtimeState(mf, name)).runtime.redial, {}, "the first delivery after the re-dial clears the back-off");
});

test("defect 5: a configuration failure arms no alarm, even with a back-off row left from an earlier failure", async () => {
  const { mf: first, persistDir } = await startPersistedStreams("subs-defect5-", { echoScriptPath: RECORDING_HOST });
  const name = uniqueName();
  const host = uniqueEchoName("rec");
  let second;
  try {
    await configureEcho(first, host, { failDials: true });
    await call(first, name, "append", { event: echoSubscriptionEvent("rec", host) });
    await waitFor(() => runtimeState(first, name), (rs) => rs.runtime.redial.rec?.failures >= 1, { what: "a back-off row" });
    await first.dispose();

    // Same storage, but ECHO_HOST is no longer allowed: every dial now stops at the configuration.
    const lines = [];
    second = await startStreams({
      echoScriptPath: RECORDING_HOST,
      bindings: { STREAM_SUBSCRIBER_BINDINGS: "" },
      miniflare: {
        durableObjectsPersist: persistDir,
        handleRuntimeStdio(stdout, stderr) {
          for (const stream of [stdout, stderr]) stream.on("data", (chunk) => lines.push(...String(chunk).split("\n")));
        },
      },
    });
    await call(second, name, "getEvents", {}); // boot: one dial attempt, refused by the allowlist
    const refusals = () => lines.filter((l) => l.includes("subscription rec:") && l.includes("not allowed"));
    await waitFor(() => refusals().length, (n) => n >= 1, { what: "the configuration failure logged" });
    // Sentinel: no dial in flight and no alarm wanted or held (the stored one from the first run
    // fired or was replaced), so nothing more can happen; a re-armed alarm never gets here.
    const pending = await waitForNothingPending(second, name);
    assert.equal(pending.dialsStarted, 1, "one dial attempt in this incarnation: the alarm does not spin on a configuration failure");
    assert.equal(refusals().length, 1, "the one refusal is logged once");
  } finally {
    await second?.dispose();
    await stopPersistedStreams(null, persistDir);
  }
});

test("defect 6: a call that reaches the object without a name is refused on its own and never creates or poisons a stream", async () => {
  const started = await startPersistedStreams("subs-defect6-");
  const { mf: m, persistDir } = started;
  try {
    const ns = await m.getDurableObjectNamespace("STREAM", "streams");
    // A fresh object reached without a name: refused, every time, and nothing is stored.
    const freshId = ns.newUniqueId();
    for (let i = 0; i < 2; i++) await assert.rejects(ns.get(freshId).getEvents({}));

    // An existing stream reached by id only, right after a restart of the object: it knows its
    // name from its own log, answers, and the named callers keep working.
    const name = uniqueName();
    const ev = await call(m, name, "append", { event: { type: "app/x" } });
    await call(m, name, "kill");
    const byId = ns.get(ns.idFromString(ns.idFromName(name).toString()));
    // Sentinel that the read reached a restarted object: the boot it caused appended `woken`.
    const restarted = (l) => l !== null && l.some((e) => e.type === S("woken") && e.offset > ev.offset);
    const seen = await waitFor(() => byId.getEvents({}).catch(() => null), restarted, { what: "the nameless read of the restarted object" });
    assert.deepEqual(seen.slice(0, ev.offset).at(-1), ev);
    const next = await call(m, name, "append", { event: { type: "app/y" } });
    assert.ok(next.offset > ev.offset, "named calls still work");
    assert.equal((await call(m, name, "runtimeState")).coreProcessorState.path, name.slice(name.indexOf(":") + 1));
    const freshHex = freshId.toString();
    await m.dispose();
    started.mf = null;
    const freshFile = sqliteFileOf(persistDir, freshHex);
    const tables = freshFile ? (await openSqlite(freshFile)).prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() : [];
    assert.deepEqual(tables.filter((t) => !t.name.startsWith("_cf_")), [], "the nameless fresh object created no stream");
  } finally {
    await stopPersistedStreams(started.mf, persistDir);
  }
});
