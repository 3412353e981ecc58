// The archive (docs/operations.md#the-archive): append throughput while segments are sealed
// against the same stream without an archive, replay of archived events against replay from
// SQLite, and the hot tier of a long stream. Two Miniflare instances of the built Worker, one with
// a local R2 bucket bound as STREAMS_ARCHIVE, one without, driven alternately over DO RPC.
//   node bench/archive.mjs [--rounds=5] [--replay=100000] [--long=1000000] [--out=BENCHMARKS.md]
// Writes (or replaces) the "## Archive" section at the end of --out; `bash scripts/bench.sh` runs it
// after bench/run.mjs, which rewrites the rest of that file.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { startStreams, call, uniqueName, REPO_ROOT } from "../miniflare/helpers/mf.mjs";

const { values: opts } = parseArgs({
  options: {
    rounds: { type: "string", default: "5" },
    replay: { type: "string", default: "100000" },
    long: { type: "string", default: "1000000" },
    out: { type: "string", default: path.join(REPO_ROOT, "BENCHMARKS.md") },
  },
});
const ROUNDS = Math.max(1, parseInt(opts.rounds, 10));
const REPLAY = Math.max(1000, parseInt(opts.replay, 10));
const LONG = Math.max(10000, parseInt(opts.long, 10));
const SECTION = "## Archive";
const BATCH = 100;
const APPEND_BATCHES = 200; // 20,000 events per round
const SEAL_EVENTS = 1000; // segments of 1000 events while appending: 20 seals per round
const log = (...a) => console.error("[bench:archive]", ...a);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "streams-bench-archive-"));
const start = (archive, segmentEvents) =>
  startStreams({
    bindings: { STREAMS_SEGMENT_EVENTS: String(segmentEvents) },
    streams: archive ? { r2Buckets: ["STREAMS_ARCHIVE"] } : {},
    miniflare: archive ? { r2Persist: path.join(dir, `r2-${segmentEvents}`) } : {},
  });
// STREAMS_ARCHIVE → a bucket that keeps nothing: the object seals as usual, but no R2 emulator
// shares the machine's cores, so the ratio is what sealing costs the object itself.
const NO_OP_BUCKET = {
  name: "no-op-bucket",
  modules: [{ type: "ESModule", path: "no-op-bucket.mjs", contents: "export default () => ({ async put() { return {}; }, async get() { return null; }, async delete() {} });" }],
};
const startWithNoOpBucket = (segmentEvents) =>
  startStreams({ bindings: { STREAMS_SEGMENT_EVENTS: String(segmentEvents) }, streams: { wrappedBindings: { STREAMS_ARCHIVE: { scriptName: NO_OP_BUCKET.name } } }, workers: [NO_OP_BUCKET] });

const event = (i) => ({ type: "bench/item", payload: { n: i, text: "x".repeat(80) } });

async function appendBatches(mf, name, batches, from = 0) {
  for (let b = 0; b < batches; b++) {
    await call(mf, name, "appendBatch", { events: Array.from({ length: BATCH }, (_, i) => event(from + b * BATCH + i)) });
  }
}

async function settle(mf, name) {
  let last = "";
  for (;;) {
    const report = await call(mf, name, "runArchiveNow", {});
    if (report.error) throw new Error(report.error);
    const now = JSON.stringify(report.storage);
    if (now === last) return report.storage;
    last = now;
  }
}

async function replayRate(mf, name) {
  await call(mf, name, "simulateHibernation"); // nothing cached
  const t0 = performance.now();
  let afterOffset = 0;
  let n = 0;
  for (;;) {
    const page = await call(mf, name, "getEvents", { afterOffset, limit: 1000 });
    if (page.length === 0) break;
    n += page.length;
    afterOffset = page.at(-1).offset;
  }
  return { events: n, perSecond: (n / (performance.now() - t0)) * 1000 };
}

const rows = [];
const archived = await start(true, SEAL_EVENTS);
const plain = await start(false, SEAL_EVENTS);
const noOp = await startWithNoOpBucket(SEAL_EVENTS);
try {
  // 1. Appends while sealing, against no archive: the same batches, rounds interleaved.
  const rates = { archive: [], plain: [], noOp: [] };
  let sealed = 0;
  for (let round = 0; round < ROUNDS; round++) {
    for (const [label, mf] of [["archive", archived], ["plain", plain], ["noOp", noOp]]) {
      const name = uniqueName(`bench-append-${label}-`);
      await appendBatches(mf, name, 10); // warm-up, untimed
      const t0 = performance.now();
      await appendBatches(mf, name, APPEND_BATCHES);
      rates[label].push(((APPEND_BATCHES * BATCH) / (performance.now() - t0)) * 1000);
      if (label === "archive") sealed += (await call(mf, name, "runtimeState")).runtime.storage.archivedSegments;
    }
    log(`append round ${round + 1}: archive ${rates.archive.at(-1).toFixed(0)}/s, plain ${rates.plain.at(-1).toFixed(0)}/s, no-op bucket ${rates.noOp.at(-1).toFixed(0)}/s`);
  }
  const ratio = median(rates.archive) / median(rates.plain);
  const fmt = (x) => Math.round(x).toLocaleString("en-US");
  rows.push([`appends while sealing (batches of ${BATCH}, segments of ${SEAL_EVENTS}), events/s`, fmt(median(rates.archive)), fmt(median(rates.plain)), ratio.toFixed(2), "≥ 0.90", ratio >= 0.9 ? "PASS" : "MISS"]);
  const noOpRatio = median(rates.noOp) / median(rates.plain);
  rows.push([`   the same, sealing into a bucket that keeps nothing (no R2 emulator on the cores), events/s`, fmt(median(rates.noOp)), fmt(median(rates.plain)), noOpRatio.toFixed(2), "", ""]);
  rows.push([`   segments sealed during the timed appends (all rounds)`, String(sealed), "—", "—", "", ""]);

  // 2. Replay of archived events against replay from SQLite.
  const replay = { archive: uniqueName("bench-replay-archive-"), plain: uniqueName("bench-replay-plain-") };
  for (const [label, mf] of [["archive", archived], ["plain", plain]]) {
    for (let i = 0; i < REPLAY; i += 1000) await call(mf, replay[label], "appendBatch", { events: Array.from({ length: 1000 }, (_, j) => event(i + j)) });
  }
  const stored = await settle(archived, replay.archive);
  log(`replay stream: ${JSON.stringify(stored)}`);
  const streamId = (await call(archived, replay.archive, "runtimeState")).coreProcessorState.streamId;
  const objects = (await (await archived.getR2Bucket("STREAMS_ARCHIVE")).list({ prefix: `streams/${streamId}/` })).objects;
  const objectBytes = objects.reduce((sum, o) => sum + o.size, 0);
  const replayRates = { archive: [], plain: [] };
  for (let round = 0; round < ROUNDS; round++) {
    replayRates.archive.push((await replayRate(archived, replay.archive)).perSecond);
    replayRates.plain.push((await replayRate(plain, replay.plain)).perSecond);
  }
  const replayRatio = median(replayRates.archive) / median(replayRates.plain);
  rows.push([`   segment objects in R2 (gzip), average bytes (without: the event JSON they hold)`, Math.round(objectBytes / objects.length).toLocaleString("en-US"), Math.round(stored.archivedBytes / stored.archivedSegments).toLocaleString("en-US"), (objectBytes / stored.archivedBytes).toFixed(2), "", ""]);
  rows.push([`replay of ${REPLAY.toLocaleString("en-US")} events, pages of 1000, events/s (archived: ${stored.archivedEvents.toLocaleString("en-US")} in R2)`, Math.round(median(replayRates.archive)).toLocaleString("en-US"), Math.round(median(replayRates.plain)).toLocaleString("en-US"), replayRatio.toFixed(2), "", ""]);
} finally {
  await noOp.dispose();
  await plain.dispose();
  await archived.dispose();
}

// 3. A long stream's hot tier, with the default segment size.
const long = await start(true, 10000);
try {
  const name = uniqueName("bench-long-");
  const t0 = performance.now();
  for (let i = 0; i < LONG; i += 1000) {
    await call(long, name, "appendBatch", { events: Array.from({ length: 1000 }, (_, j) => event(i + j)) });
    if (i % 100000 === 0) log(`long stream: ${i} events`);
  }
  const storage = await settle(long, name);
  const seconds = (performance.now() - t0) / 1000;
  rows.push([`${LONG.toLocaleString("en-US")}-event stream (default segments of 10,000): hot tier, events`, storage.hotEvents.toLocaleString("en-US"), LONG.toLocaleString("en-US"), "—", "< 10,000", storage.hotEvents < 10000 ? "PASS" : "MISS"]);
  rows.push(["   hot tier, bytes of event JSON (baseline: all of it in SQLite)", storage.hotBytes.toLocaleString("en-US"), (storage.hotBytes + storage.archivedBytes).toLocaleString("en-US"), "—", "", ""]);
  rows.push(["   archived segments / events", `${storage.archivedSegments} / ${storage.archivedEvents.toLocaleString("en-US")}`, "—", "—", "", ""]);
  rows.push(["   time to append and seal it all, s", seconds.toFixed(0), "—", "—", "", ""]);
} finally {
  await long.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
}

const load = os.loadavg().map((l) => l.toFixed(2)).join(" ");
const section = `${SECTION}

Generated by \`node bench/archive.mjs\` (run by \`bash scripts/bench.sh\`): the built Worker under three
Miniflare instances, one with a local R2 bucket bound as \`STREAMS_ARCHIVE\` ("ours"), one without
("baseline") and, for the second row, one whose bucket keeps nothing, driven alternately over DO RPC from Node; medians of ${ROUNDS} rounds.
${new Date().toISOString()}, ${os.cpus().length} cores, load average ${load} at the end.

| metric | with archive | without | ratio | target | status |
| --- | --- | --- | --- | --- | --- |
${rows.map((r) => `| ${r.join(" | ")} |`).join("\n")}

Sealing runs after the commits, in the background: the append path only compares two counters. A
seal reads its events once, updates the hot tier's figures without scanning it, and runs in five
parts (read, encode, compress, upload, the SQLite step), each started after the next append has
answered, so an append waits behind one part at most. Under Miniflare the local R2 emulator (each
put an HTTP request with an MD5 of the body, a blob write and a row in its SQLite) runs on the same
cores as the stream, so the first row counts its work too; the second row, with a bucket that keeps
nothing, is what sealing costs the stream itself.
Replay of archived events fetches each segment once (one R2 read of the compressed object) and
serves its pages from the decoded cache.

What changed for the first row (0.77 on 2026-12-08 before these changes): a profile per append
showed the whole seal running in one stretch after the commit that made it due, so the next append
waited about 4–5 ms behind it, and the emulator spending about 4.5 ms of CPU on each 160 KB put
(1.5 ms at 20 KB). Segments are now stored gzip-compressed (the bench's events compress about
25×, real JSON typically 5–20×; compressing costs the object about 1 ms per segment here), and
the seal runs in parts paced by the appends. Measured in short interleaved runs: compression alone
0.77 → 0.82, pacing 0.82 → 0.89 (the no-op bucket row 0.86 → 0.99). What remains is the
emulator's put (about 1.5 ms of CPU per put whatever its size) and the SQLite step (deleting 1000
rows, about 1.8 ms), each longer than the pause between two appends of this bench.
`;
const current = fs.existsSync(opts.out) ? fs.readFileSync(opts.out, "utf8") : "";
const at = current.indexOf(`\n${SECTION}\n`);
const rest = at < 0 ? "" : current.slice(at + 1).split(/\n(?=## )/).slice(1).join("\n");
const kept = at < 0 ? current : current.slice(0, at + 1);
fs.writeFileSync(opts.out, `${kept.trimEnd()}\n\n${section}${rest ? `\n${rest}` : ""}`);
console.log(section);
