// Runs every miniflare/**/*.test.mjs (or the files named as arguments), each in its own
// `node --test` process with its own Miniflare, STREAMS_TEST_JOBS files at a time (default 2), and
// exits non-zero when any file fails.
//
// - Longest first: each file's wall time is kept in build/miniflare-durations.json, and the next run
//   starts the files that took longest (files not timed yet first of all), so that with two jobs no
//   long file starts last and leaves one core idle at the end.
// - One Chromium suite at a time: a file that drives a browser (it imports playwright-core or the
//   browser/viewer helpers) never runs next to another such file; two of them at once on two cores
//   starve each other's page loads.
// - With two jobs a file's output is printed in one piece when it ends, so the output of files that
//   ran side by side never interleaves. The totals (tests, pass, fail, skipped, todo), the time of
//   every file and every seed the seeded tests drew (their `STREAMS_SEED <label> <seed>` lines, with
//   the command that replays each) come last.
// STREAMS_TEST_JOBS overrides the two (1 runs them one by one and shows each file's output live).
// Each test times out after 10 minutes, so a hang fails its file instead of holding the run.
// No test waits on a timing guess, so two files at a time holds on a loaded machine too.
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const DURATIONS = path.join(ROOT, "build", "miniflare-durations.json");
const USES_BROWSER = /playwright-core|helpers\/(browser|viewer)\.mjs/;
const COUNTS = ["tests", "pass", "fail", "cancelled", "skipped", "todo"];
// Per test: the longest file takes under 3 minutes on a loaded 2-core machine.
const TEST_TIMEOUT_MS = 10 * 60_000;

const jobs = Number(process.env.STREAMS_TEST_JOBS ?? 2);
if (!Number.isInteger(jobs) || jobs < 1) throw new Error(`STREAMS_TEST_JOBS must be a positive integer, got ${process.env.STREAMS_TEST_JOBS}`);

function testFiles(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) return testFiles(file);
    return entry.isFile() && entry.name.endsWith(".test.mjs") ? [path.relative(ROOT, file)] : [];
  });
}

function readDurations() {
  try {
    return JSON.parse(fs.readFileSync(DURATIONS, "utf8"));
  } catch {
    return {};
  }
}

const previous = readDurations();
const chosen = process.argv.slice(2).map((file) => path.relative(ROOT, path.resolve(file)));
const files = (chosen.length > 0 ? chosen : testFiles(path.join(ROOT, "miniflare")))
  .sort()
  .map((file) => ({ file, browser: USES_BROWSER.test(fs.readFileSync(path.join(ROOT, file), "utf8")), last: previous[file] ?? Infinity }))
  .sort((a, b) => b.last - a.last);
if (files.length === 0) {
  console.error("no miniflare/**/*.test.mjs files found");
  process.exit(1);
}

/** Runs one file; resolves to {file, ms, code, counts} once its process has exited. */
function run({ file }) {
  const started = Date.now();
  console.log(`--- start ${file}`);
  return new Promise((resolve) => {
    // A test that hangs fails after TEST_TIMEOUT_MS instead of holding the whole run forever.
    const child = spawn(process.execPath, ["--test", "--test-reporter=spec", `--test-timeout=${TEST_TIMEOUT_MS}`, file], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    const collect = (d) => {
      output += d;
      if (jobs === 1) process.stdout.write(d); // alone: show it live
      // Beside another file the output waits for the end; a seed is shown at once, so a file that
      // hangs can still be replayed.
      else for (const [line] of String(d).matchAll(/STREAMS_SEED \S+ \d+ \(replay: [^)]+\)/g)) console.log(`--- ${file}: ${line}`);
    };
    child.stdout.on("data", collect);
    child.stderr.on("data", collect);
    child.on("close", (code, signal) => {
      const ms = Date.now() - started;
      const counts = Object.fromEntries(COUNTS.map((name) => [name, Number(new RegExp(`^ℹ ${name} (\\d+)$`, "m").exec(output)?.[1] ?? 0)]));
      const seeds = [...output.matchAll(/STREAMS_SEED (\S+) (\d+) \(replay: ([^)]+)\)/g)].map(([, label, seed, replay]) => ({ label, seed, replay }));
      process.stdout.write(`\n=== ${file} (${(ms / 1000).toFixed(1)} s, ${signal ?? `exit ${code}`})\n${jobs === 1 ? "" : output}`);
      resolve({ file, ms, code: signal ? 1 : code, counts, seeds });
    });
  });
}

const pending = [...files];
const results = [];
let browserBusy = false;

/** One worker: takes the first pending file it may run (no second browser suite), until none is left. */
async function worker() {
  for (;;) {
    const i = pending.findIndex((f) => !(f.browser && browserBusy));
    if (i < 0) {
      if (pending.length === 0) return;
      await new Promise((resolve) => setTimeout(resolve, 200)); // only browser files left, and one runs
      continue;
    }
    const [next] = pending.splice(i, 1);
    if (next.browser) browserBusy = true;
    try {
      results.push(await run(next));
    } finally {
      if (next.browser) browserBusy = false;
    }
  }
}

const suiteStarted = Date.now();
await Promise.all(Array.from({ length: Math.min(jobs, files.length) }, worker));

fs.mkdirSync(path.dirname(DURATIONS), { recursive: true });
fs.writeFileSync(DURATIONS, JSON.stringify({ ...previous, ...Object.fromEntries(results.map((r) => [r.file, r.ms])) }, null, 2) + "\n");

const total = Object.fromEntries(COUNTS.map((name) => [name, results.reduce((sum, r) => sum + r.counts[name], 0)]));
// A todo passes node --test; here it fails the run: no test may turn itself into a todo.
const failed = results.filter((r) => r.code !== 0 || r.counts.todo > 0);
console.log(`\n=== miniflare files by wall time (${jobs} at a time)`);
for (const r of [...results].sort((a, b) => b.ms - a.ms)) {
  console.log(`${(r.ms / 1000).toFixed(1).padStart(7)} s  ${r.code === 0 ? "ok  " : "FAIL"}  ${r.file}  (${r.counts.tests} tests)`);
}
// Every seed this run drew (docs/architecture.md#tests), so any failure can be replayed exactly.
console.log("\n=== seeds (replay one with the command shown)");
if (process.env.STREAMS_PROPTEST_SEED) console.log(`cargo property tests: STREAMS_PROPTEST_SEED=${process.env.STREAMS_PROPTEST_SEED}`);
for (const r of results) for (const { label, seed, replay } of r.seeds) console.log(`${label} ${seed}: ${replay}`);
console.log(`${files.length} files, ${COUNTS.map((name) => `${name} ${total[name]}`).join(", ")}, ${((Date.now() - suiteStarted) / 1000).toFixed(1)} s`);
if (failed.length > 0) {
  console.error(`failed: ${failed.map((r) => r.file).join(", ")}`);
  process.exit(1);
}
