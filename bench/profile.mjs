// Single-append profile: where one `append({event})` on a Stream spends its time, by phase.
//
//   npm run bench -- profile [options]     build (scripts/build.sh, release + profile build), then this
//   node bench/profile.mjs [--appends=2000] [--rounds=5] [--profile-rounds=3] [--interval-us=50]
//                          [--label=current] [--against=DIR --against-label=before]
//                          [--variants=unkeyed,keyed,batch] [--out=BENCHMARKS.md] [--dump] [--save-profiles=DIR]
//   node bench/profile.mjs --render          rewrite the section from the kept results only
//
// --against=DIR measures a second code in the same run, interleaved with this checkout's (same
// load for both): DIR holds that code's src/entry.mjs, build/ and build-profile/ (e.g. a
// `git worktree` of an older commit after `STREAMS_PROFILE_BUILD=1 bash scripts/build.sh`).
//
// Two measurements in one Miniflare (see bench/README.md, "Single-append profile"):
// 1. Wall time per append from the driver Worker (bench/driver.mjs `seq`), interleaved rounds, for
//    our release build, the same code built with its wasm names kept (build-profile/), the
//    baseline JS DO, and a no-op JS DO (the floor of one DO RPC call).
// 2. A V8 CPU profile of the profile build's isolate through workerd's inspector (CDP Profiler,
//    sampling every --interval-us) while the driver makes --appends single appends; every sample's
//    stack is assigned to one phase (PHASES below), divided by the number of appends.
// The result of each run is kept in bench/profile/<label>.json; the "Single-append profile" section
// of --out shows every kept label side by side (e.g. before / after).
import { Miniflare } from "miniflare";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import WebSocket from "ws";
import { COMPATIBILITY_DATE, REPO_ROOT } from "../miniflare/helpers/mf.mjs";
import { BASELINE_WORKER } from "./baseline-worker.mjs";

const { values: opts } = parseArgs({
  options: {
    appends: { type: "string", default: "2000" },
    rounds: { type: "string", default: "5" },
    "profile-rounds": { type: "string", default: "3" },
    "interval-us": { type: "string", default: "50" },
    label: { type: "string", default: "current" },
    variants: { type: "string" },
    against: { type: "string" },
    "against-label": { type: "string", default: "before" },
    out: { type: "string", default: path.join(REPO_ROOT, "BENCHMARKS.md") },
    dump: { type: "boolean", default: false },
    "save-profiles": { type: "string" },
    render: { type: "boolean", default: false },
    "storage-dir": { type: "string", default: fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir() },
  },
});
const APPENDS = Math.max(1, parseInt(opts.appends, 10));
const ROUNDS = Math.max(1, parseInt(opts.rounds, 10));
const PROFILE_ROUNDS = Math.max(1, parseInt(opts["profile-rounds"], 10));
const INTERVAL_US = Math.max(10, parseInt(opts["interval-us"], 10));
const WARM_APPENDS = 1000; // as bench/run.mjs: a fresh SQLite file's WAL growth stays untimed
const RESULTS_DIR = path.join(REPO_ROOT, "bench", "profile");
const SECTION = "## Single-append profile";
const ALL_VARIANTS = [
  { key: "unkeyed", keyed: false, title: "append({event})" },
  { key: "keyed", keyed: true, title: "append({event}) with an idempotencyKey" },
  // µs per event of 100-event batches (bench scenario 2).
  { key: "batch", perCall: 100, title: "appendBatch({events}) of 100 events, µs per event" },
];
/** --variants=unkeyed,batch measures those only. */
const VARIANTS = opts.variants ? ALL_VARIANTS.filter((v) => opts.variants.split(",").includes(v.key)) : ALL_VARIANTS;
/** The codes measured: this checkout and, with --against, another one; `code<i>` in the driver. */
const CODES = [
  { label: opts.label, root: REPO_ROOT },
  ...(opts.against ? [{ label: opts["against-label"], root: path.resolve(opts.against) }] : []),
].map((code, i) => ({ ...code, target: `code${i}`, worker: `streams-${i}` }));
if (new Set(CODES.map((c) => c.label)).size !== CODES.length) throw new Error("--label and --against-label must differ");

/**
 * The phases of one append, in the order the bench section lists them. A sample belongs to the
 * innermost phase whose marker is on its stack (so SQL inside planning counts as SQL); a sample
 * with none of them is "rest" when our code is on the stack, else the runtime's own time.
 * Markers are Rust function names (the wasm name section of build-profile/) or JS glue names.
 */
const PHASES = [
  // Before the one-crossing change: a walk of the JS object (arguments_to_json); after it,
  // argument_json: JSON.stringify, one copy of the text into wasm, one parse.
  { key: "args", title: "argument into JSON (src/js.rs: walk of the JS object → JSON.stringify + one copy + one parse)", marker: /streams::js::argument(s_to)?_(json|text)/ },
  // plan_append is inlined into its caller; any other core function counts here too (phaseOf).
  { key: "plan", title: "validation, planning, reduction (core plan_append)", marker: /streams_core::append::plan_(append|inputs|plain)/ },
  { key: "stateJson", title: "state JSON for the commit (CoreState::to_json)", marker: /streams_core::state::CoreState::to_json/ },
  // SqlStore::commit is inlined into Inner::commit, so the commit's own frames count as SQL too.
  { key: "sql", title: "commit: SQL binding + exec (Inner::commit → SqlStore, sql.exec, transactionSync)", marker: /streams::durable::store::|streams::durable::Inner::(try_)?commit/ },
  { key: "post", title: "post-commit (after_commit: sockets, outbound, breaker)", marker: /streams::durable::Inner::after_commit/ },
  { key: "result", title: "result conversion (from_json_text: JSON.parse of the reply)", marker: /streams::js::from_json_text|streams::durable::append_reply/ },
];
/** The futures machinery: spawning, the task queue, promises and their callbacks. */
const ASYNC = /wasm_bindgen_futures|js_sys::futures|JsFuture|future_to_promise|closures::_::invoke/;
/** Frames of our object: src/entry.mjs, the wasm-bindgen glue (index.js) and any wasm function. */
const OURS = /entry\.mjs|index\.js|^(streams|worker|wasm_bindgen|js_sys|serde|core|alloc|std|dlmalloc|__wbg|__wbindgen|wasm-function)|^<|::/;

const log = (...a) => console.error(`[profile ${new Date().toISOString().slice(11, 19)}]`, ...a);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** Each code's worker entries: src/entry.mjs, unchanged but for where the Rust module comes from. */
function prepareWorkers() {
  for (const code of CODES) {
    for (const f of ["src/entry.mjs", "build/index.js", "build/index_bg.wasm", "build-profile/index.js", "build-profile/index_bg.wasm"]) {
      if (!fs.existsSync(path.join(code.root, f))) throw new Error(`${code.root}/${f} is missing: run npm run bench -- profile (it builds both)`);
    }
    const entry = fs.readFileSync(path.join(code.root, "src", "entry.mjs"), "utf8");
    const rewritten = entry.replace(`from "../build/index.js"`, `from "./index.js"`);
    if (rewritten === entry) throw new Error(`${code.root}/src/entry.mjs does not import ../build/index.js; update bench/profile.mjs`);
    for (const dir of ["build", "build-profile"]) fs.writeFileSync(path.join(code.root, dir, "profile-entry.mjs"), rewritten);
  }
}

const MODULES_RULES = [
  { type: "ESModule", include: ["**/*.js", "**/*.mjs"] },
  { type: "CompiledWasm", include: ["**/*.wasm"], fallthrough: true },
];

function startMiniflare(persistDir) {
  const stream = (name, root, scriptPath) => ({
    name,
    modules: true,
    modulesRoot: root,
    scriptPath,
    modulesRules: MODULES_RULES,
    compatibilityDate: COMPATIBILITY_DATE,
    durableObjects: { STREAM: { className: "Stream", useSQLite: true } },
  });
  return new Miniflare({
    durableObjectsPersist: persistDir,
    inspectorPort: 0,
    workers: [
      ...CODES.flatMap((code) => [
        stream(code.worker, path.join(code.root, "build"), path.join(code.root, "build", "profile-entry.mjs")),
        stream(`${code.worker}-profile`, path.join(code.root, "build-profile"), path.join(code.root, "build-profile", "profile-entry.mjs")),
      ]),
      BASELINE_WORKER,
      {
        name: "noop",
        modules: true,
        modulesRoot: REPO_ROOT,
        scriptPath: path.join(REPO_ROOT, "bench", "noop-do.mjs"),
        compatibilityDate: COMPATIBILITY_DATE,
        durableObjects: { NOOP: { className: "Noop" } },
      },
      {
        name: "driver",
        modules: true,
        modulesRoot: REPO_ROOT,
        scriptPath: path.join(REPO_ROOT, "bench", "driver.mjs"),
        compatibilityDate: COMPATIBILITY_DATE,
        durableObjects: {
          ...Object.fromEntries(
            CODES.flatMap((code) => [
              [code.target.toUpperCase(), { className: "Stream", scriptName: code.worker, useSQLite: true }],
              [`${code.target.toUpperCase()}_PROFILE`, { className: "Stream", scriptName: `${code.worker}-profile`, useSQLite: true }],
            ]),
          ),
          BASE: { className: "Baseline", scriptName: "baseline", useSQLite: true },
          NOOP: { className: "Noop", scriptName: "noop" },
        },
      },
    ],
  });
}

async function driverOf(mf) {
  const worker = await mf.getWorker("driver");
  return async (body) => {
    const res = await worker.fetch("http://driver/", { method: "POST", body: JSON.stringify(body) });
    const out = await res.json();
    if (!out.ok) throw new Error(`driver ${body.scenario}/${body.target}/${body.name}: ${out.error}`);
    return out.result;
  };
}

/** A Chrome DevTools Protocol session on one worker's isolate. */
async function inspect(mf, worker) {
  const base = String(await mf.getInspectorURL()).replace(/\/$/, "");
  const ws = new WebSocket(`${base}/core:user:${worker}`);
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  let nextId = 1;
  const pending = new Map();
  ws.on("message", (data) => {
    const msg = JSON.parse(String(data));
    const waiter = msg.id !== undefined && pending.get(msg.id);
    if (!waiter) return;
    pending.delete(msg.id);
    if (msg.error) waiter.reject(new Error(`${waiter.method}: ${JSON.stringify(msg.error)}`));
    else waiter.resolve(msg.result);
  });
  const send = (method, params = {}) =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject, method });
      ws.send(JSON.stringify({ id, method, params }));
    });
  return { send, close: () => ws.close() };
}

// ---- measurements ----

/** Wall time per append (µs) for every target, rounds interleaved (the first target rotates). */
async function wallPhase(drive, variant) {
  const targets = [...CODES.flatMap((c) => [c.target, `${c.target}-profile`]), "base", "noop"];
  const perTarget = Object.fromEntries(targets.map((t) => [t, []]));
  for (let round = 0; round <= ROUNDS; round++) {
    const order = targets.map((_, i) => targets[(i + round) % targets.length]);
    for (const target of order) {
      const name = `profile:/wall-${variant.key}-${round}`;
      const out = await appendsOf(drive, variant, { target, name, n: APPENDS, warmAppends: WARM_APPENDS });
      if (round > 0) perTarget[target].push((out.ms * 1000) / out.n);
    }
  }
  return Object.fromEntries(Object.entries(perTarget).map(([t, xs]) => [t, { medianUs: median(xs), runsUs: xs }]));
}

/** `n` events appended as the variant says: single appends, or batches of `variant.perCall`. */
function appendsOf(drive, variant, { target, name, n, warmAppends = 0, startIndex }) {
  if (variant.perCall) return drive({ scenario: "batch", target, name, calls: Math.max(1, Math.round(n / variant.perCall)), perCall: variant.perCall, warmAppends });
  if (startIndex === undefined) return drive({ scenario: "seq", target, name, n, warmAppends, keyed: variant.keyed });
  return drive({ scenario: "appendMore", target, name, n, startIndex, keyed: variant.keyed });
}

/** One CPU profile of a code's profile-build isolate around APPENDS appends on a warmed stream. */
async function profileRound(mf, drive, code, variant, round) {
  const name = `profile:/cpu-${variant.key}-${round}`;
  const target = `${code.target}-profile`;
  await drive({ scenario: "seq", target, name, n: 1, warmAppends: WARM_APPENDS, keyed: variant.keyed });
  const cdp = await inspect(mf, `${code.worker}-profile`);
  try {
    await cdp.send("Profiler.enable");
    await cdp.send("Profiler.setSamplingInterval", { interval: INTERVAL_US });
    await cdp.send("Profiler.start");
    const out = await appendsOf(drive, variant, { target, name, n: APPENDS, startIndex: 1 });
    const { profile } = await cdp.send("Profiler.stop");
    await cdp.send("Profiler.disable");
    if (opts["save-profiles"]) {
      fs.mkdirSync(opts["save-profiles"], { recursive: true });
      fs.writeFileSync(path.join(opts["save-profiles"], `${code.label}-${variant.key}-${round}.cpuprofile`), JSON.stringify(profile));
    }
    return { wallUs: (out.ms * 1000) / out.n, ...attribute(profile, out.n + 1) };
  } finally {
    cdp.close();
  }
}

/**
 * Splits a CPU profile into PHASES, in µs per call (`calls`: the appends plus the one read that
 * `appendMore` makes first), with each phase's heaviest functions (self time). Samples at the
 * root or "(idle)" are the isolate waiting: not counted.
 */
function attribute(profile, calls) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const stacks = new Map(); // node id -> frame names, root first
  const stackOf = (id) => {
    if (stacks.has(id)) return stacks.get(id);
    const p = parent.get(id);
    const { functionName, url } = byId.get(id).callFrame;
    // JS frames keep their file (entry.mjs, index.js: the wasm-bindgen glue); wasm frames their name.
    const file = url && !url.startsWith("wasm:") ? ` ${path.basename(url)}` : "";
    const frame = `${functionName || "(anonymous)"}${file}`;
    const stack = [...(p === undefined ? [] : stackOf(p)), frame];
    stacks.set(id, stack);
    return stack;
  };
  // Each sample weighs the typical sampling period. Not its own time delta: V8 takes no samples
  // while the isolate is not entered (workerd runs the driver meanwhile), so the delta around a
  // call's first or last sample also holds the wait between calls.
  const dt = median(profile.timeDeltas.slice(1));
  const us = {};
  const selfByPhase = {};
  for (let i = 0; i < profile.samples.length; i++) {
    const stack = stackOf(profile.samples[i]);
    const leaf = stack[stack.length - 1];
    if (leaf === "(idle)" || leaf === "(root)") continue;
    const phase = phaseOf(stack);
    us[phase] = (us[phase] ?? 0) + dt;
    const self = (selfByPhase[phase] ??= new Map());
    self.set(leaf, (self.get(leaf) ?? 0) + dt);
  }
  const perCall = Object.fromEntries(Object.entries(us).map(([k, v]) => [k, v / calls]));
  const top = Object.fromEntries(
    Object.entries(selfByPhase).map(([phase, self]) => [
      phase,
      [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([fn, t]) => [fn.replace(/::h[0-9a-f]{16}$/, ""), +(t / calls).toFixed(2)]),
    ]),
  );
  return { perCall, top, samplingUs: dt, samples: profile.samples.length };
}

/**
 * The innermost PHASES marker on the stack; else "plan" below any other core function (the RPC
 * path calls the core only to plan); else "async" when the innermost Rust frame is the futures
 * machinery; else whose code the sample is in.
 */
function phaseOf(stack) {
  let phase;
  for (const name of stack) for (const p of PHASES) if (p.marker.test(name)) phase = p.key;
  if (phase) return phase;
  if (stack.some((name) => name.startsWith("streams_core::") || name.startsWith("<streams_core::"))) return "plan";
  const rust = stack.findLast((name) => name.includes("::") || name.startsWith("<"));
  if (rust && ASYNC.test(rust)) return "async";
  if (stack.some((name) => OURS.test(name))) return "rest";
  return stack[stack.length - 1] === "(garbage collector)" ? "gc" : "runtime";
}

// ---- report ----

const ROWS = [
  ...PHASES.map((p) => [p.key, p.title]),
  ["async", "async plumbing (wasm-bindgen futures: promise, task queue, microtasks)"],
  ["rest", "rest of our code (entry.mjs, RPC dispatch, wasm-bindgen glue, allocation)"],
  ["gc", "garbage collector"],
  ["runtime", "runtime outside our code (RPC receive/reply, structured clone)"],
];

const fmt = (x) => (x === undefined ? "—" : x >= 100 ? x.toFixed(0) : x.toFixed(1));

function sectionOf(results) {
  const labels = Object.keys(results);
  const head = (first) => `| ${first} | ${labels.map((l) => `${l} µs`).join(" | ")} |\n| --- |${labels.map(() => " --- |").join("")}`;
  const lines = [
    SECTION,
    "",
    "Generated by `node bench/profile.mjs` (`npm run bench -- profile`); method in bench/README.md. One",
    "column per kept run (bench/profile/<label>.json). Wall rows: median µs per sequential single append",
    "from the driver Worker, over interleaved rounds. Phase rows: a V8 CPU profile of the Stream's isolate",
    "(the same code built with its wasm names kept) during the appends, µs per append; the profiler",
    "itself slows the calls a little (\"wall under the profiler\").",
    "",
  ];
  for (const l of labels) {
    const r = results[l];
    const together = r.comparedWith?.length ? ` (measured in one run with ${r.comparedWith.join(", ")}, interleaved)` : "";
    lines.push(`- ${l}: ${r.date}, code ${r.code}${together}, ${r.appends} appends × ${r.rounds} rounds (wall), ${r.profileRounds} profiled rounds, sampling every ${r.intervalUs} µs, load ${r.load}`);
  }
  for (const v of ALL_VARIANTS) {
    lines.push("", `### ${v.title}`, "", head("µs per append"));
    const cell = (f) => labels.map((l) => fmt(f(results[l][v.key]))).join(" | ");
    lines.push(`| wall: ours (release build) | ${cell((r) => r?.wall.ours.medianUs)} |`);
    lines.push(`| wall: ours (profile build) | ${cell((r) => r?.wall["ours-profile"].medianUs)} |`);
    lines.push(`| wall: baseline JS DO | ${cell((r) => r?.wall.base.medianUs)} |`);
    lines.push(`| wall: no-op JS DO (RPC floor) | ${cell((r) => r?.wall.noop.medianUs)} |`);
    lines.push(`| ratio baseline / ours (bench scenario 1) | ${labels.map((l) => { const r = results[l][v.key]; return r ? (r.wall.base.medianUs / r.wall.ours.medianUs).toFixed(2) : "—"; }).join(" | ")} |`);
    lines.push(`| wall under the profiler | ${cell((r) => r?.profiledWallUs)} |`);
    for (const [key, title] of ROWS) lines.push(`| ${title} | ${cell((r) => r?.phases[key] ?? 0)} |`);
    lines.push(`| **CPU in the Stream's isolate, total** | ${cell((r) => r && Object.values(r.phases).reduce((a, b) => a + b, 0))} |`);
  }
  lines.push("");
  return lines.join("\n");
}

function writeSection(section) {
  const current = fs.existsSync(opts.out) ? fs.readFileSync(opts.out, "utf8") : "";
  const at = current.indexOf(`\n${SECTION}\n`);
  let before = current;
  let after = "";
  if (at >= 0) {
    before = current.slice(0, at + 1);
    const next = current.indexOf("\n## ", at + 1);
    after = next >= 0 ? current.slice(next + 1) : "";
  } else {
    // Ahead of the browser runtime's section, which bench/browser.mjs rewrites to the end of the file.
    const browser = current.indexOf("\n## Browser runtime\n");
    if (browser >= 0) {
      before = current.slice(0, browser + 1);
      after = current.slice(browser + 1);
    }
  }
  if (before && !before.endsWith("\n")) before += "\n";
  fs.writeFileSync(opts.out, `${before}\n${section}\n${after}`.replace(/\n{3,}/g, "\n\n"));
}

function codeLabel(root) {
  try {
    const git = (...a) => execFileSync("git", ["-C", root, ...a], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    const dirty = git("status", "--porcelain", "--", "src", "crates", "Cargo.toml", "Cargo.lock");
    return git("rev-parse", "--short", "HEAD") + (dirty ? " + uncommitted changes" : "");
  } catch {
    return "unknown";
  }
}

// ---- main ----

async function main() {
  if (!opts.render) await measure();
  const results = {};
  for (const f of fs.readdirSync(RESULTS_DIR).filter((f) => f.endsWith(".json")).sort(byLabel)) {
    results[f.slice(0, -5)] = JSON.parse(fs.readFileSync(path.join(RESULTS_DIR, f), "utf8"));
  }
  const section = sectionOf(results);
  writeSection(section);
  console.log(section);
}

async function measure() {
  prepareWorkers();
  const loadStart = os.loadavg()[0];
  const persistDir = fs.mkdtempSync(path.join(opts["storage-dir"], "streams-profile-"));
  const mf = startMiniflare(persistDir);
  const date = new Date().toISOString();
  const results = CODES.map((code) => ({
    date,
    code: codeLabel(code.root),
    comparedWith: CODES.filter((c) => c !== code).map((c) => c.label),
    appends: APPENDS,
    rounds: ROUNDS,
    profileRounds: PROFILE_ROUNDS,
    intervalUs: INTERVAL_US,
  }));
  try {
    await mf.ready;
    const drive = await driverOf(mf);
    for (const v of VARIANTS) {
      log(`${v.key}: wall time, ${ROUNDS} rounds + 1 warm-up`);
      const wall = await wallPhase(drive, v);
      const rounds = CODES.map(() => []);
      for (let round = 0; round < PROFILE_ROUNDS; round++) {
        for (const i of CODES.map((_, k) => (k + round) % CODES.length)) {
          log(`${v.key}: CPU profile of ${CODES[i].label}, round ${round + 1}/${PROFILE_ROUNDS}`);
          rounds[i].push(await profileRound(mf, drive, CODES[i], v, round));
        }
      }
      CODES.forEach((code, i) => {
        const keys = new Set(rounds[i].flatMap((r) => Object.keys(r.perCall)));
        const phases = Object.fromEntries([...keys].map((k) => [k, median(rounds[i].map((r) => r.perCall[k] ?? 0))]));
        results[i][v.key] = {
          wall: { ours: wall[code.target], "ours-profile": wall[`${code.target}-profile`], base: wall.base, noop: wall.noop },
          profiledWallUs: median(rounds[i].map((r) => r.wallUs)),
          phases,
          top: rounds[i][0].top,
        };
        if (opts.dump) for (const [phase, fns] of Object.entries(rounds[i][0].top)) for (const [fn, t] of fns) console.error(code.label, phase.padEnd(9), String(t).padStart(7), fn.slice(0, 110));
      });
    }
  } finally {
    await mf.dispose();
    fs.rmSync(persistDir, { recursive: true, force: true });
  }
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  CODES.forEach((code, i) => {
    results[i].load = `${loadStart.toFixed(2)} → ${os.loadavg()[0].toFixed(2)}`;
    fs.writeFileSync(path.join(RESULTS_DIR, `${code.label}.json`), `${JSON.stringify(results[i], null, 2)}\n`);
  });
}

/** "before" first, then the rest by name. */
function byLabel(a, b) {
  const rank = (f) => (f === "before.json" ? 0 : 1);
  return rank(a) - rank(b) || a.localeCompare(b);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
