// Benchmark runner: our Stream DO vs a minimal JS baseline DO, in one Miniflare.
//
//   bash scripts/bench.sh            # build, then this
//   node bench/run.mjs [--runs=5] [--scale=1] [--no-rebuild] [--out=BENCHMARKS.md]
//                      [--root=<checkout with src/entry.mjs + build/>] [--code=<label for the report>]
//                      [--only=appends|large|token|processor|memory]   (one scenario, printed only; BENCHMARKS.md is left alone)
//
// Workers: streams (src/entry.mjs + build/), baseline (bench/baseline-do.mjs), driver
// (bench/driver.mjs, DO bindings to both). Node only sends "run scenario X on target T" to the
// driver; the timed loops run inside workerd. See bench/README.md for what each number means.
import { Miniflare } from "miniflare";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import zlib from "node:zlib";
import { COMPATIBILITY_DATE, REPO_ROOT } from "../miniflare/helpers/mf.mjs";
import { BASELINE_WORKER } from "./baseline-worker.mjs";
import { runWake } from "./wake.mjs";
import { runSockets } from "./sockets.mjs";
import { signJwt, claims } from "../miniflare/helpers/jwt.mjs";
import { bundledModules } from "../miniflare/helpers/bundle.mjs";

const { values: opts } = parseArgs({
  options: {
    runs: { type: "string", default: "7" },
    scale: { type: "string", default: "1" },
    "no-rebuild": { type: "boolean", default: false },
    out: { type: "string", default: path.join(REPO_ROOT, "BENCHMARKS.md") },
    root: { type: "string", default: REPO_ROOT },
    code: { type: "string" },
    only: { type: "string" },
    // Parent of the temporary DO storage directory. tmpfs keeps disk contention and fsync out of
    // the numbers (DO SQLite cannot run in workerd's in-memory storage).
    "storage-dir": { type: "string", default: fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir() },
  },
});
const ROOT = path.resolve(opts.root);
const STORAGE_PARENT = path.resolve(opts["storage-dir"]); // the worker under test: src/entry.mjs + build/
const RUNS = Math.max(1, parseInt(opts.runs, 10));
const SCALE = Number(opts.scale);
const n = (x) => Math.max(1, Math.round(x * SCALE));
/** Scenario 11's setup is slow (every accept sends each open socket a frame with its
 * announcement, N² frames in all): one round. */
const WAKE_RUNS = 1;

const CFG = {
  seqN: n(2000),
  warmAppends: n(1000), // untimed single appends on each fresh write stream first (see driver.mjs warm)
  payloadBytes: 100,
  batchCalls: n(100),
  batchPerCall: 100,
  replayEvents: n(20000),
  replayLimit: 1000,
  largeBytes: 5 * 1024 * 1024,
  growthSmall: n(1000),
  growthBig: n(100000),
  growthN: n(1000),
  bootEvents: n(10000),
  subN: n(200), // sequential appends, each waiting for its WebSocket frame
  wakeSockets: n(1000), // hibernated WebSockets on one stream, woken once per round (scenario 11)
  prepareBatch: 1000,
  tokenN: n(4000), // public HTTP requests per leg and round (scenario 9)
  processorEvents: n(10000), // events through the summing processor per round (scenario 10)
  memoryRounds: 20, // rounds of {largest batch, largest event, read back} on one stream (scenario 12)
};
const BENCH_JWT_SECRET = "bench-jwt-secret";

const MODULES_RULES = [
  { type: "ESModule", include: ["**/*.js", "**/*.mjs"] },
  { type: "CompiledWasm", include: ["**/*.wasm"], fallthrough: true },
];
const TARGETS = ["ours", "base"];
/** A 1-minute load average at or above this (on 2 cores) means something else is running. */
const BUSY_LOAD = 1.5;

/** A worker running the code under test (ROOT's src/entry.mjs + build/) with these bindings. */
function ourWorker(name, bindings, moreObjects = {}) {
  return {
    name,
    modules: true,
    modulesRoot: ROOT,
    scriptPath: path.join(ROOT, "src", "entry.mjs"),
    modulesRules: MODULES_RULES,
    compatibilityDate: COMPATIBILITY_DATE,
    durableObjects: { STREAM: { className: "Stream", useSQLite: true }, ...moreObjects },
    bindings,
  };
}

function startMiniflare(persistDir) {
  return new Miniflare({
    durableObjectsPersist: persistDir,
    workers: [
      // Production-like: no test hooks; the only allowed subscriber is scenario 10's processor.
      ourWorker("streams", { STREAM_SUBSCRIBER_BINDINGS: "PROCESSOR", STREAMS_OPEN_ACCESS: "true" }, {
        PROCESSOR: { className: "BenchProcessor", scriptName: "processors", useSQLite: true },
      }),
      {
        // The summing processor of scenario 10 (bench/processor-host.mjs).
        name: "processors",
        modules: bundledModules(path.join(REPO_ROOT, "bench", "processor-host.mjs")),
        compatibilityDate: COMPATIBILITY_DATE,
        durableObjects: { PROCESSOR: { className: "BenchProcessor", useSQLite: true } },
        serviceBindings: { STREAMS: "streams" },
      },
      // The same code with scoped tokens on (scenario 9).
      ourWorker("streams-auth", { STREAMS_JWT_SECRET: BENCH_JWT_SECRET }),
      // The same code with the test hooks on, alone in its isolate: scenario 12 reads its wasm
      // memory (`memoryUsage`), which no other scenario may have grown.
      ourWorker("streams-hooks", { STREAMS_TEST_HOOKS: "1" }),
      BASELINE_WORKER,
      {
        name: "driver",
        modules: true,
        modulesRoot: REPO_ROOT,
        scriptPath: path.join(REPO_ROOT, "bench", "driver.mjs"),
        compatibilityDate: COMPATIBILITY_DATE,
        durableObjects: {
          OURS: { className: "Stream", scriptName: "streams", useSQLite: true },
          BASE: { className: "Baseline", scriptName: "baseline", useSQLite: true },
          PROCESSOR: { className: "BenchProcessor", scriptName: "processors", useSQLite: true },
          HOOKED: { className: "Stream", scriptName: "streams-hooks", useSQLite: true },
        },
        // The public HTTP route, for the subscription WebSocket (scenario 8).
        serviceBindings: { STREAMS: "streams", STREAMS_AUTH: "streams-auth" },
      },
    ],
  });
}

async function driverOf(mf) {
  await mf.ready;
  const worker = await mf.getWorker("driver");
  return async (body) => {
    const res = await worker.fetch("http://driver/", { method: "POST", body: JSON.stringify(body) });
    const out = await res.json();
    if (!out.ok) throw new Error(`driver ${body.scenario}/${body.target}/${body.name}: ${out.error}`);
    return out.result;
  };
}

// ---- statistics and formatting ----

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const pick = (runs, key) => median(runs.map((r) => r[key]));
const fmtRate = (x) => Math.round(x).toLocaleString("en-US");
const fmtMs = (x) => (x >= 100 || Number.isInteger(x) ? x.toFixed(0) : x.toFixed(2));
/** A value read off workerd's 1 ms clock: 0 means "under 1 ms". */
const fmtTick = (x) => (x === 0 ? "< 1" : fmtMs(x));
const fmtRatio = (x) => (Number.isFinite(x) ? x.toFixed(2) : "—");
const log = (...a) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}]`, ...a);

/**
 * One warm-up round (discarded) then RUNS measured rounds; ours and baseline alternate which
 * goes first. `step(target, round)` returns that target's result for the round.
 */
async function interleaved(label, step) {
  const res = { ours: [], base: [] };
  for (let round = 0; round <= RUNS; round++) {
    const order = round % 2 === 0 ? TARGETS : [...TARGETS].reverse();
    for (const target of order) {
      const out = await step(target, round);
      if (round > 0) res[target].push(out);
    }
  }
  log(label, "done");
  return res;
}

// ---- scenarios ----

/** 4. One 5 MiB event appended and read back; a fresh stream per round. */
function largePhase(drive) {
  return interleaved("4 large event", (target, round) =>
    drive({ scenario: "large", target, name: `bench:/large-${round}`, bytes: CFG.largeBytes, warmAppends: CFG.warmAppends }),
  );
}

function largeRows(large, row) {
  const m = { o: pick(large.ours, "ms"), b: pick(large.base, "ms") };
  row("4. 5 MiB event: append + read back, ms", fmtMs(m.o), fmtMs(m.b), fmtRatio(m.o / m.b), "< 3.00", m.o / m.b < 3);
  for (const [key, label] of [
    ["appendMs", "append"],
    ["readMs", "read back"],
  ]) {
    const o = pick(large.ours, key);
    const b = pick(large.base, key);
    row(`   ${label}, ms`, fmtMs(o), fmtMs(b), b > 0 ? fmtRatio(o / b) : "—");
  }
}

/** 12. Wasm memory over rounds of the largest batch and the largest event on one stream (driver.mjs memory). */
async function memoryPhase(drive) {
  const out = await drive({ scenario: "memory", name: "bench:/memory", rounds: CFG.memoryRounds });
  log(`12 memory done: wasm memory, MiB: booted ${fmtMib(out.booted)}; round 1 after ${callsOf(out.afterCalls[0])}; after each round ${out.afterRound.map(fmtMib).join(" ")}${growthOf(out)}`);
  return out;
}

const MIB = 1024 * 1024;
const fmtMib = (bytes) => (bytes / MIB).toFixed(1);
/** "appendBatch 35.3, append 35.3, …": the memory after each call of one round. */
const callsOf = (after) => Object.entries(after).map(([call, bytes]) => `${call} ${fmtMib(bytes)}`).join(", ");

/** "; grew in round 4 at getEvents (+2.1)": each call after round 1 that grew the memory. */
function growthOf(m) {
  const grew = [];
  let last = m.afterRound[0];
  m.afterCalls.slice(1).forEach((after, i) => {
    for (const [call, bytes] of Object.entries(after)) {
      if (bytes > last) grew.push(`round ${i + 2} at ${call} (+${fmtMib(bytes - last)})`);
      last = Math.max(last, bytes);
    }
  });
  return grew.length ? `; grew in ${grew.join(", ")}` : "";
}

function memoryRows(m, row) {
  const last = m.afterRound.at(-1);
  const growth = last - m.afterRound[0];
  row(
    `12. Wasm memory after ${m.rounds} rounds of {${m.batchEvents}-event batch of ${fmtMib(m.batchBytes)} MiB, ${fmtMib(m.singleBytes)} MiB event, read back}, MiB`,
    fmtMib(last),
    "n/a",
    "—",
    "≤ 64",
    last <= 64 * MIB,
  );
  row("    after boot, before the first round, MiB", fmtMib(m.booted), "n/a", "—");
  row("    after round 1, MiB", fmtMib(m.afterRound[0]), "n/a", "—");
  row(`    growth from round 1 to round ${m.rounds}, MiB`, fmtMib(growth), "n/a", "—", "0", growth === 0);
}

/** 9. Scoped-token check cost per public HTTP request (driver.mjs tokenCheck). */
async function tokenPhase(drive) {
  const token = signJwt(claims({ ns: "bench", paths: ["/bench/**"], ops: ["read", "append"], ttl: 3600 }), BENCH_JWT_SECRET);
  const runs = [];
  for (let round = 0; round <= RUNS; round++) {
    const out = await drive({ scenario: "tokenCheck", n: CFG.tokenN, token });
    if (round > 0) runs.push(out);
  }
  log("9 token check done");
  return runs;
}

function tokenRows(runs, row) {
  const cost = median(runs.flatMap((r) => r.pairCostsUs));
  row(`9. Scoped token check (HS256), µs per HTTP request (N=${CFG.tokenN})`, fmtMs(cost), "n/a", "—", "< 50", cost < 50);
  row("   request refused at routing: no credentials configured, µs", fmtMs(pick(runs, "openUs")), "n/a", "—");
  row("   the same with a verified scoped token, µs", fmtMs(pick(runs, "scopedUs")), "n/a", "—");
}

/** 10. Events/s through the summing processor vs getEvents of the same events; a fresh stream per round. */
async function processorPhase(drive) {
  const runs = [];
  for (let round = 0; round <= RUNS; round++) {
    const name = `bench:/processor-${round}`;
    await drive({ scenario: "prepare", target: "ours", name, events: CFG.processorEvents, batch: CFG.prepareBatch });
    const out = await drive({ scenario: "processor", name, events: CFG.processorEvents });
    if (round > 0) runs.push(out);
  }
  log("10 processor done");
  return runs;
}

function processorRows(runs, row) {
  row(`10. Processor (sum) end to end, ${CFG.processorEvents} events, events/s`, fmtRate(pick(runs, "perSec")), "n/a", "—");
  row("   getEvents of the same events (pages of 100), events/s", fmtRate(pick(runs, "readPerSec")), "n/a", "—");
  row("   ratio processor / getEvents", fmtRatio(pick(runs, "ratio")), "n/a", "—");
}

/** 1–3: single appends (plain and keyed), batches and replay, ours and baseline interleaved. */
async function appendsPhase(drive) {
  const R = {};
  for (const [key, label, keyed] of [
    ["seq", "1 sequential appends", false],
    ["keyed", "1b sequential keyed appends", true],
  ]) {
    R[key] = await interleaved(label, (target, round) =>
      drive({
        scenario: "seq",
        target,
        name: `bench:/${key}-${round}`,
        n: CFG.seqN,
        payloadBytes: CFG.payloadBytes,
        warmAppends: CFG.warmAppends,
        keyed,
      }),
    );
  }

  R.batch = await interleaved("2 batch appends", (target, round) =>
    drive({
      scenario: "batch",
      target,
      name: `bench:/batch-${round}`,
      calls: CFG.batchCalls,
      perCall: CFG.batchPerCall,
      payloadBytes: CFG.payloadBytes,
      warmAppends: CFG.warmAppends,
    }),
  );

  for (const target of TARGETS) {
    await drive({ scenario: "prepare", target, name: "bench:/replay", events: CFG.replayEvents, batch: CFG.prepareBatch });
  }
  R.replay = await interleaved("3 replay", (target) =>
    drive({ scenario: "replay", target, name: "bench:/replay", limit: CFG.replayLimit }),
  );
  return R;
}

function appendsRows(R, row) {
  const vs = (key, runs) => {
    const o = pick(runs.ours, key);
    const b = pick(runs.base, key);
    return { o, b, ratio: o / b };
  };
  let m = vs("perSec", R.seq);
  row(`1. Single appends (N=${CFG.seqN}), appends/s`, fmtRate(m.o), fmtRate(m.b), fmtRatio(m.ratio), "≥ 0.80", m.ratio >= 0.8);
  const mean = { o: 1000 / m.o, b: 1000 / m.b };
  row("   mean latency, ms", fmtMs(mean.o), fmtMs(mean.b), fmtRatio(mean.o / mean.b));
  for (const [key, label] of [
    ["p50Ms", "p50"],
    ["p99Ms", "p99"],
  ]) {
    const p = vs(key, R.seq);
    row(`   ${label} latency, ms (1 ms clock)`, fmtTick(p.o), fmtTick(p.b), p.b > 0 ? fmtRatio(p.ratio) : "—");
  }
  m = vs("perSec", R.keyed);
  row("   every event keyed, appends/s", fmtRate(m.o), fmtRate(m.b), fmtRatio(m.ratio), "≥ 0.75", m.ratio >= 0.75);

  m = vs("perSec", R.batch);
  row(`2. Batch appends (${CFG.batchCalls} × ${CFG.batchPerCall}), events/s`, fmtRate(m.o), fmtRate(m.b), fmtRatio(m.ratio), "≥ 1.20", m.ratio >= 1.2);

  m = vs("perSec", R.replay);
  row(`3. Replay (${CFG.replayEvents} events, pages of ${CFG.replayLimit}), events/s`, fmtRate(m.o), fmtRate(m.b), fmtRatio(m.ratio), "≥ 1.20", m.ratio >= 1.2);
}

async function mainPhase(drive, persistDir) {
  const R = await appendsPhase(drive);

  R.large = await largePhase(drive);

  // 5. Growth: a fresh small stream per round, filled with single appends (so its WAL file is as
  // grown as the big one's; see driver.mjs warm); the big one is built once per target.
  R.growthBuild = {};
  for (const target of TARGETS) {
    R.growthBuild[target] = await drive({
      scenario: "prepare",
      target,
      name: "bench:/growth-big",
      events: CFG.growthBig,
      batch: CFG.prepareBatch,
    });
    log(`5 growth: built ${CFG.growthBig} events (${target}) in ${fmtMs(R.growthBuild[target].ms)} ms`);
  }
  R.growth = await interleaved("5 growth", async (target, round) => {
    const small = `bench:/growth-small-${round}`;
    await drive({ scenario: "prepare", target, name: small, events: CFG.growthSmall, batch: 1 });
    const args = { scenario: "appendMore", target, n: CFG.growthN, payloadBytes: CFG.payloadBytes };
    const atSmall = () => drive({ ...args, name: small });
    const atBig = () => drive({ ...args, name: "bench:/growth-big", startIndex: CFG.growthBig + round * CFG.growthN });
    // Alternate which size goes first, so neither always runs right after the small stream's prepare.
    let s, b;
    if (round % 2) {
      s = await atSmall();
      b = await atBig();
    } else {
      b = await atBig();
      s = await atSmall();
    }
    return { smallPerSec: s.perSec, bigPerSec: b.perSec };
  });

  // 6. Boot after kill() on a 10k-event stream whose stored state is current.
  for (const target of TARGETS) {
    await drive({ scenario: "prepare", target, name: "bench:/boot", events: CFG.bootEvents, batch: CFG.prepareBatch });
  }
  R.boot = await interleaved("6 boot after kill", (target) => drive({ scenario: "boot", target, name: "bench:/boot" }));

  // 8. Subscription delivery latency: ours only (the baseline has no subscriptions), a fresh
  // stream per round, one warm-up round.
  R.token = await tokenPhase(drive);
  R.processor = await processorPhase(drive);
  R.memory = await memoryPhase(drive);

  R.subscribe = [];
  for (let round = 0; round <= RUNS; round++) {
    const out = await drive({
      scenario: "subscribe",
      target: "ours",
      name: `bench:/subscribe-${round}`,
      n: CFG.subN,
      payloadBytes: CFG.payloadBytes,
      warmAppends: CFG.warmAppends,
    });
    if (round > 0) R.subscribe.push(out);
  }
  log("8 subscriptions done");

  // Streams for the restart phase (cold boot, current state vs rebuild), built now.
  if (!opts["no-rebuild"]) {
    R.rebuildIds = [];
    for (let round = 0; round <= RUNS; round++) {
      for (const target of TARGETS) {
        await drive({ scenario: "prepare", target, name: `bench:/cold-${round}`, events: CFG.bootEvents, batch: CFG.prepareBatch });
      }
      const name = `bench:/rebuild-${round}`;
      await drive({ scenario: "prepare", target: "ours", name, events: CFG.bootEvents, batch: CFG.prepareBatch });
      R.rebuildIds.push(await drive({ scenario: "id", target: "ours", name }));
    }
    for (const target of TARGETS) {
      await drive({ scenario: "prepare", target, name: "bench:/restart-warm", events: 10, batch: 10 });
    }
    log("6 restart-phase streams built");
  }
  return R;
}

/** The SQLite file of one of our objects in the persist directory. */
function oursSqlite(persistDir, id) {
  const file = path.join(persistDir, "streams-Stream", `${id}.sqlite`);
  if (!fs.existsSync(file)) throw new Error(`no SQLite file for object ${id} at ${file}`);
  return file;
}

// python3's sqlite3 module is on every machine here; the sqlite3 CLI is not.
const SQLITE_PY = "import sqlite3,sys\ndb=sqlite3.connect(sys.argv[1])\nrows=db.execute(sys.argv[2]).fetchall()\ndb.commit()\nprint('\\n'.join('|'.join(str(c) for c in r) for r in rows))";
const sqlite = (file, sql) => execFileSync("python3", ["-c", SQLITE_PY, file, sql], { encoding: "utf8" }).trim();

/**
 * Restart phase: with Miniflare stopped, bump core_state.version in the rebuild streams' SQLite
 * files (the only outside edit; src/ has no hook for it), restart on the same storage and time the
 * first call on cold streams: ours current state, ours version mismatch (full rebuild), baseline.
 */
async function restartPhase(persistDir, ids) {
  const versions = new Set();
  for (const id of ids) {
    const file = oursSqlite(persistDir, id);
    versions.add(sqlite(file, "SELECT DISTINCT version FROM core_state"));
    sqlite(file, "UPDATE core_state SET version = version + 1000");
  }
  if (versions.size !== 1) throw new Error(`unexpected stored state versions: ${[...versions]}`);
  const storedVersion = Number([...versions][0]);

  const mf = startMiniflare(persistDir);
  let res;
  try {
    const drive = await driverOf(mf);
    for (const target of TARGETS) await drive({ scenario: "first", target, name: "bench:/restart-warm" });
    res = { cold: { ours: [], base: [] }, rebuild: [] };
    for (let round = 0; round <= RUNS; round++) {
      const steps = [
        ["ours", `bench:/cold-${round}`, res.cold.ours],
        ["base", `bench:/cold-${round}`, res.cold.base],
        ["ours", `bench:/rebuild-${round}`, res.rebuild],
      ];
      if (round % 2) steps.reverse();
      for (const [target, name, into] of steps) {
        const out = await drive({ scenario: "first", target, name });
        if (round > 0) into.push(out);
      }
    }
  } finally {
    await mf.dispose();
  }
  // The rebuild must have written the state back at the current version.
  for (const id of ids) {
    const v = sqlite(oursSqlite(persistDir, id), "SELECT DISTINCT version FROM core_state");
    if (Number(v) !== storedVersion) throw new Error(`object ${id}: state version ${v} after boot; no rebuild happened?`);
  }
  log("6 restart phase done (rebuilds verified: state written back at version", storedVersion + ")");
  return { ...res, storedVersion };
}

// ---- report ----

function machine(loadStart) {
  const pkg = (p) => JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "node_modules", p, "package.json"), "utf8")).version;
  let commit = opts.code ?? `${ROOT} (not a git checkout)`;
  if (!opts.code) {
    try {
      const git = (...a) => execFileSync("git", ["-C", ROOT, ...a], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
      commit = git("rev-parse", "--short", "HEAD");
      const dirty = git("status", "--porcelain", "--", "src", "crates", "Cargo.toml", "Cargo.lock");
      if (dirty) commit += " + uncommitted changes in src/, crates/ or Cargo.*";
    } catch {}
  }
  const cpus = os.cpus();
  return {
    cores: cpus.length,
    cpu: cpus[0]?.model?.trim() ?? "unknown",
    memGiB: (os.totalmem() / 2 ** 30).toFixed(1),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    workerd: pkg("workerd"),
    miniflare: pkg("miniflare"),
    commit,
    busy: Math.max(loadStart[0], os.loadavg()[0]) >= BUSY_LOAD,
    nice: os.getPriority(),
    load: `${loadStart.map((x) => x.toFixed(2)).join(" ")} at start, ${os.loadavg().map((x) => x.toFixed(2)).join(" ")} at end`,
  };
}

function wasmSize() {
  const file = path.join(ROOT, "build", "index_bg.wasm");
  const raw = fs.readFileSync(file);
  return { raw: raw.length, gzip: zlib.gzipSync(raw, { level: 9 }).length, mtime: fs.statSync(file).mtime };
}

/** `row(metric, ours, base, ratio, target?, pass?)` appending to `rows`. */
const rowAdder = (rows) => (metric, ours, base, ratio, target, pass) =>
  rows.push({ metric, ours, base, ratio, target: target ?? "", status: pass === undefined ? "" : pass ? "PASS" : "MISS" });

function buildRows(R, restart, wasm) {
  const rows = [];
  const row = rowAdder(rows);
  const vs = (key, runs = R) => {
    const o = pick(runs.ours, key);
    const b = pick(runs.base, key);
    return { o, b, ratio: o / b };
  };

  appendsRows(R, row);
  largeRows(R.large, row);

  const small = vs("smallPerSec", R.growth);
  const big = vs("bigPerSec", R.growth);
  row(`5. Single appends at ${CFG.growthSmall} events, appends/s`, fmtRate(small.o), fmtRate(small.b), fmtRatio(small.ratio));
  row(`   at ${CFG.growthBig} events, appends/s`, fmtRate(big.o), fmtRate(big.b), fmtRatio(big.ratio));
  const g = { o: pick(R.growth.ours.map((r) => ({ g: r.bigPerSec / r.smallPerSec })), "g"), b: pick(R.growth.base.map((r) => ({ g: r.bigPerSec / r.smallPerSec })), "g") };
  row(`   growth ratio (${CFG.growthBig} vs ${CFG.growthSmall})`, fmtRatio(g.o), fmtRatio(g.b), "—", "≥ 0.90 (ours)", g.o >= 0.9);

  let m = vs("bootMs", R.boot);
  row(`6. Boot after kill(), ${CFG.bootEvents} events, current state, ms`, fmtTick(m.o), fmtTick(m.b), m.b > 0 ? fmtRatio(m.ratio) : "—", "≤ 10", m.o <= 10);
  if (restart) {
    const c = { o: pick(restart.cold.ours, "bootMs"), b: pick(restart.cold.base, "bootMs") };
    row("   cold boot after restart, current state, ms", fmtTick(c.o), fmtTick(c.b), c.b > 0 ? fmtRatio(c.o / c.b) : "—", "≤ 10", c.o <= 10);
    const rb = pick(restart.rebuild, "bootMs");
    row("   cold boot after restart, state-version mismatch (full rebuild), ms", fmtTick(rb), fmtTick(c.b), c.b > 0 ? fmtRatio(rb / c.b) : "—", "< 1000", rb < 1000);
  } else {
    row("   state-version mismatch (full rebuild)", "not measured: needs a test hook", "—", "—");
  }

  row("7. Wasm size, raw bytes", wasm.raw.toLocaleString("en-US"), "—", "—");
  row("   gzip -9 bytes", `${wasm.gzip.toLocaleString("en-US")} (${(wasm.gzip / 1024).toFixed(1)} KiB)`, "—", "—", "≤ 350 KiB", wasm.gzip <= 350 * 1024);

  const sub = (key) => pick(R.subscribe, key);
  row(`8. Subscriptions: append → WebSocket frame (N=${CFG.subN}), mean latency, ms`, fmtMs(sub("meanMs")), "n/a", "—");
  row("   p50 latency, ms (1 ms clock)", fmtTick(sub("p50Ms")), "n/a", "—");
  row("   p99 latency, ms (1 ms clock)", fmtTick(sub("p99Ms")), "n/a", "—");
  tokenRows(R.token, row);

  const wake = (key) => pick(R.wake, key);
  row(`11. Wake with ${CFG.wakeSockets} hibernated sockets: commits`, String(wake("bootCommits")), "n/a", "—", "1", wake("bootCommits") === 1);
  row("    time until every socket has what it missed, ms", fmtMs(wake("wakeMs")), "n/a", "—", "< 1000", wake("wakeMs") < 1000);
  socketRows(R.sockets, row);
  processorRows(R.processor, row);
  memoryRows(R.memory, row);
  return rows;
}

/** 13 and 14 (bench/sockets.mjs): sockets that must not cost other callers. */
function socketRows(runs, row) {
  const s = (key) => pick(runs, key);
  const [first] = runs;
  row(`13. Single appends, a filtered socket parked at the tail of ${first.events} events, appends/s`, fmtRate(s("withSocket")), "n/a", "—");
  row("    the same stream without the socket, appends/s", fmtRate(s("without")), "n/a", "—");
  row("    ratio with / without", fmtRatio(s("ratio")), "n/a", "—", "≥ 0.90", s("ratio") >= 0.9);
  row(`14. An append during a ${first.replayEvents}-event replay on the same stream, ms (from Node)`, fmtMs(s("duringReplayAppendMs")), "n/a", "—", "< 50", s("duringReplayAppendMs") < 50);
  row("    the replay's cursor when the next call was answered", `${s("cursorAtReply")} of ${s("maxOffset")}`, "n/a", "—");
  row("    an append with no replay, ms (from Node)", fmtMs(s("idleAppendMs")), "n/a", "—");
}

function table(rows) {
  const head = ["metric", "ours", "baseline", "ratio ours/base", "target", "status"];
  const body = rows.map((r) => [r.metric, r.ours, r.base, r.ratio, r.target, r.status]);
  const esc = (s) => String(s).replaceAll("|", "\\|");
  return [head, head.map(() => "---"), ...body].map((cells) => `| ${cells.map(esc).join(" | ")} |`).join("\n");
}

/** "x of y": frames that arrived before their append's RPC reply, over all measured rounds. */
const framesFirst = (R) => `${R.subscribe.reduce((a, r) => a + r.framesFirst, 0)} of ${R.subscribe.reduce((a, r) => a + r.n, 0)}`;

function markdown({ R, rows, mach, wasm, started, elapsedS, restart }) {
  return `# Benchmarks

Generated by \`bash scripts/bench.sh\` (\`node bench/run.mjs\`); do not edit by hand. Method: bench/README.md.

- Date: ${started.toISOString()}
- Machine: ${mach.cores} cores (${mach.cpu}), ${mach.memGiB} GiB RAM, ${mach.os}
- Node ${mach.node}, workerd ${mach.workerd}, miniflare ${mach.miniflare}, compatibility date ${COMPATIBILITY_DATE}
- Load average (1/5/15 min): ${mach.load}; bench process niceness ${mach.nice}${mach.busy ? `\n- **Warning: the machine was busy (1-min load ≥ ${BUSY_LOAD} on ${mach.cores} cores); other processes competed for CPU and disk, so treat these numbers as noisy.**` : ""}
- Code: ${mach.commit}; build/index_bg.wasm built ${wasm.mtime.toISOString()}
- Runs: median of ${RUNS} measured runs after 1 warm-up, ours and baseline interleaved; scale ${SCALE}; total ${elapsedS.toFixed(0)} s

${table(rows)}

Ratio is ours / baseline. For rates (appends/s, events/s) higher is better, so ≥ target passes; for
times (ms) lower is better. "Baseline" is bench/baseline-do.mjs: a JS SQLite DO that does one
INSERT of the event JSON per event and one SELECT per page, nothing else. Both run in the same
workerd, called over DO RPC from a driver Worker (bench/driver.mjs), so the timings exclude Node.

Notes:
- workerd's clock ticks in whole milliseconds, so per-call p50/p99 and boot times are quantised
  to 1 ms ("< 1" is a reading of 0); the mean latency (1000 / rate) is exact.
- ${restart ? `The rebuild case is measured by stopping Miniflare, bumping \`core_state.version\` in those streams' SQLite files (python3 sqlite3) (stored version ${restart.storedVersion} → +1000), and restarting on the same storage; the run checks afterwards that each rebuilt state was written back at version ${restart.storedVersion}. The "cold boot after restart" rows time the first call on a stream not yet touched by the new process (isolate and wasm already warm from another stream).` : "The rebuild case was skipped (--no-rebuild)."}
- Storage: Miniflare's local DO SQLite in \`${STORAGE_PARENT}\`${STORAGE_PARENT === "/dev/shm" ? " (tmpfs: no disk I/O or fsync in the numbers, so they show runtime + logic CPU cost; on a disk each single-append commit also pays ~0.25 ms of local I/O, for both)" : ""}.
  Production latencies differ. Every write-timed stream first gets ${CFG.warmAppends} untimed single
  appends, so a brand-new SQLite file's WAL growth is not timed.
- Subscriptions (8): the driver opens \`GET /api/streams/subscribe\` (live tail, all event types)
  through a service binding to the streams worker and accepts the WebSocket inside workerd; then
  ${CFG.subN} sequential \`append\` RPCs, each waiting for the frame that carries its offset. Latency
  is the clock before the append call to the clock in the frame's "message" handler, so it covers
  the append RPC, the commit, the pump and the socket hop. The loop waits for the frame, not the
  RPC reply (${framesFirst(R)} frames arrived before their append's reply), so the mean is the
  loop time / ${CFG.subN} (exact); p50/p99 are 1 ms clock readings. Each is the median over rounds;
  a fresh stream per round, after the same untimed warm-up appends. Baseline "n/a": the baseline
  DO has no subscriptions. For scale: row 1's mean is a single append with no subscriber.
- Scoped tokens (9): the driver sends ${CFG.tokenN} public HTTP requests per round through two service
  bindings to the same worker code, one open (no credentials, \`STREAMS_OPEN_ACCESS\`) and one with
  \`STREAMS_JWT_SECRET\` and a bearer JWT, in alternating blocks of 200, to a route that does not exist:
  both answer 404 before any Durable Object, so the difference per request is the credential check
  (HMAC-SHA256, claims parsing, reading the extra settings). The cost is the median over every pair
  of adjacent blocks of all rounds (a burst of other load spoils one pair, not the figure); the
  two per-request rows are medians over rounds.
- Wake (11): one stream (its own Miniflare, with the test hooks on) holds ${CFG.wakeSockets} WebSockets
  from Node; \`simulateHibernation\` drops the object's memory and boots it again, as a real wake
  does. Commits are what that boot made (one: the \`woken\`, which keeps the open sockets in the
  roster, so none is announced again); the time runs from the call until every socket has received
  everything after its last frame (the \`woken\`), each event once, each frame's \`afterOffset\`
  equal to the previous \`throughOffset\`. One round (its setup, N accepts each framed to every open socket, is quadratic); \`node bench/wake.mjs\` runs it alone.
- Sockets (13, 14; bench/sockets.mjs, its own Miniflare): single appends timed inside workerd by a
  driver Worker, 500 per round, alternating between a 30000-event stream with a \`ws\` socket filtered
  on a type that never occurs (\`replayAfterOffset=0\`, so it scanned the whole log once) and one
  without; the socket's stored cursor keeps each commit's scan to the new event. Then a socket
  replays a 100000-event stream from offset 0 and, once its first frame is in, one append is
  timed from Node (workerd's clock does not move while the object computes), and a call after it
  reads the socket's stored cursor: the replay yields between pages, so both answer mid-replay.
- Processor (10): a stream of ${CFG.processorEvents} prepared events is wired to a processor
  (bench/processor-host.mjs: \`ProcessorHost\` with one \`reduce\` that sums, no side effects) by
  appending its subscription; timed from that append until the processor's committed count is
  ${CFG.processorEvents} (the driver polls \`status\`). This covers the dial, every delivery (≤ 100
  events each), the reduction and one SQLite commit per batch. The comparison reads the same
  events with \`getEvents\` in pages of 100 from the driver. Fresh stream per round.
- Memory (12): one stream in a worker of its own (\`streams-hooks\`, test hooks on, so its isolate's
  wasm memory holds nothing from the other scenarios) gets ${CFG.memoryRounds} rounds of the largest batch (16
  events, exactly 16 MiB of input JSON), the largest single event (8 MiB committed) and both read
  back; \`memoryUsage\` reads the wasm memory size, which only grows. Round 1 after each call, MiB:
  ${callsOf(R.memory.afterCalls[0])}${growthOf(R.memory)}.
- The machine may be shared; interleaving ours and baseline keeps background load out of the
  ratios better than out of the absolute numbers (see the load average above).
`;
}

// ---- main ----

async function main() {
  const started = new Date();
  const loadStart = os.loadavg();
  const t0 = performance.now();
  for (const f of ["build/index.js", "build/index_bg.wasm"]) {
    if (!fs.existsSync(path.join(ROOT, f))) throw new Error(`${f} is missing: run bash scripts/build.sh first`);
  }
  if (loadStart[0] >= BUSY_LOAD) log(`warning: load average ${loadStart[0].toFixed(2)}: other processes will add noise`);
  const persistDir = fs.mkdtempSync(path.join(STORAGE_PARENT, "streams-bench-"));
  log(`runs=${RUNS} scale=${SCALE} worker=${ROOT} storage=${persistDir}`);
  if (opts.only) return onlyOne(opts.only, persistDir);
  try {
    const mf = startMiniflare(persistDir);
    let R;
    try {
      R = await mainPhase(await driverOf(mf), persistDir);
    } finally {
      await mf.dispose();
    }
    const restart = opts["no-rebuild"] ? undefined : await restartPhase(persistDir, R.rebuildIds);
    R.wake = [];
    for (let round = 0; round < WAKE_RUNS; round++) R.wake.push(await runWake({ root: ROOT, sockets: CFG.wakeSockets }));
    log("11 wake done");
    R.sockets = [await runSockets({ root: ROOT, rounds: RUNS })];
    log("13-14 sockets done");
    const wasm = wasmSize();
    const mach = machine(loadStart);
    const rows = buildRows(R, restart, wasm);
    const elapsedS = (performance.now() - t0) / 1000;

    console.log(table(rows));
    fs.writeFileSync(opts.out, markdown({ R, rows, mach, wasm, started, elapsedS, restart }));
    const resultsDir = path.join(REPO_ROOT, "bench", "results");
    fs.mkdirSync(resultsDir, { recursive: true });
    const raw = path.join(resultsDir, `${started.toISOString().replaceAll(":", "-")}.json`);
    fs.writeFileSync(raw, JSON.stringify({ started, cfg: CFG, runs: RUNS, scale: SCALE, mach, wasm, raw: R, restart }, null, 2));
    log(`wrote ${path.relative(REPO_ROOT, opts.out)} and ${path.relative(REPO_ROOT, raw)} in ${elapsedS.toFixed(0)} s`);
  } finally {
    fs.rmSync(persistDir, { recursive: true, force: true });
  }
}

/** `--only=<scenario>`: that scenario alone, its rows printed; BENCHMARKS.md is not rewritten. */
async function onlyOne(scenario, persistDir) {
  const phases = {
    appends: [appendsPhase, appendsRows],
    large: [largePhase, largeRows],
    token: [tokenPhase, tokenRows],
    processor: [processorPhase, processorRows],
    memory: [memoryPhase, memoryRows],
  };
  if (!phases[scenario]) throw new Error(`--only: unknown scenario ${JSON.stringify(scenario)}; known: ${Object.keys(phases).join(", ")}`);
  const [phase, rowsOf] = phases[scenario];
  const mf = startMiniflare(persistDir);
  try {
    const rows = [];
    rowsOf(await phase(await driverOf(mf)), rowAdder(rows));
    console.log(table(rows));
  } finally {
    await mf.dispose();
    fs.rmSync(persistDir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
