import { execFileSync } from "node:child_process";
// Shared helpers for the reliability suite (miniflare/reliability_*.test.mjs; RELIABILITY.md).
//
// Everything here is black-box: it talks to the built worker through the three public surfaces
// (DO JS-RPC via the client worker, the service-binding entrypoint, public HTTP) and, for the
// storage scenarios, to the DO's SQLite file on disk after Miniflare is disposed.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { tryCall, tryCallService, http, splitName } from "./mf.mjs";

export const S = (x) => `events.iterate.com/stream/${x}`;
export const SHUTTING_DOWN = "internal: stream incarnation is shutting down; retry";
export const UUID_V4_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** mulberry32: a tiny seeded PRNG. Returns () => float in [0, 1). */
export function prng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  next.int = (n) => Math.floor(next() * n); // 0 .. n-1
  next.pick = (arr) => arr[Math.floor(next() * arr.length)];
  next.chance = (p) => next() < p;
  return next;
}

/**
 * The seed of a seeded test: `STREAMS_SEED` when set (to replay a run), otherwise a new random one
 * each run. `label` names the plan (a file may draw several); the seed is printed as
 * `STREAMS_SEED <label> <seed>`, which scripts/miniflare-tests.mjs collects into its summary.
 */
export function seedFor(label) {
  const env = process.env.STREAMS_SEED;
  const seed = env !== undefined && env !== "" ? Number(env) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
  announceSeed(label, seed);
  return seed;
}

/** Prints a seed the way the runner's summary collects it, with how to replay it. */
export function announceSeed(label, seed, variable = "STREAMS_SEED") {
  console.log(`STREAMS_SEED ${label} ${seed} (replay: ${variable}=${seed} node --test ${process.argv[1] ? path.relative(process.cwd(), process.argv[1]) : "<file>"})`);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** `/api/streams/<method>?namespace=..&path=..` for a DO name. */
export function apiUrl(name, method, extra = "") {
  const { namespace, path: p } = splitName(name);
  return `/api/streams/${method}?namespace=${encodeURIComponent(namespace)}&path=${encodeURIComponent(p)}${extra}`;
}

/**
 * One call on one surface, as a uniform outcome: {ok:true, result} | {ok:false, error:"<code>: <msg>", status?}.
 * surface: "do" (DO JS-RPC through the client worker), "service" (entrypoint), "http" (public fetch).
 * A transport failure (the client worker or dispatchFetch throwing) is returned as {ok:false, error:"transport: …"}.
 */
export async function callOn(mf, surface, name, method, arg, { headers } = {}) {
  try {
    if (surface === "do") {
      const o = arg === undefined ? await tryCall(mf, name, method) : await tryCall(mf, name, method, arg);
      return o.ok ? { ok: true, result: o.hasResult ? o.result : undefined } : { ok: false, error: o.error };
    }
    if (surface === "service") {
      const { namespace, path: p } = splitName(name);
      const o = await tryCallService(mf, method, { namespace, path: p, ...(arg ?? {}) });
      return o.ok ? { ok: true, result: o.hasResult ? o.result : undefined } : { ok: false, error: o.error };
    }
    if (surface === "http") {
      const res = await http(mf, "POST", apiUrl(name, method), { body: arg ?? {}, headers });
      if (res.status === 200) return { ok: true, result: res.json === null ? undefined : res.json, status: 200 };
      const e = res.json?.error;
      if (e && typeof e.code === "string") return { ok: false, error: `${e.code}: ${e.message}`, status: res.status };
      return { ok: false, error: `transport: HTTP ${res.status} ${res.text.slice(0, 200)}`, status: res.status };
    }
    throw new Error(`unknown surface ${surface}`);
  } catch (e) {
    return { ok: false, error: `transport: ${e?.message ?? e}` };
  }
}

/** True for failures a writer may retry with the same idempotency key (docs/protocol.md#kill-and-reset, docs/architecture.md#storage; or no reply). */
export function isRetryable(outcome) {
  return !outcome.ok && (outcome.error.startsWith("internal: ") || outcome.error.startsWith("transport: "));
}

/**
 * Calls until the outcome is not retryable (bounded by attempts and time). Returns
 * {outcome, attempts, retryableErrors: [..]}.
 */
export async function callWithRetry(mf, surface, name, method, arg, { maxAttempts = 200, timeoutMs = 60_000, backoffMs = 5 } = {}) {
  const deadline = Date.now() + timeoutMs;
  const retryableErrors = [];
  for (let attempt = 1; ; attempt++) {
    const outcome = await callOn(mf, surface, name, method, arg);
    if (!isRetryable(outcome)) return { outcome, attempts: attempt, retryableErrors };
    retryableErrors.push(outcome.error);
    if (attempt >= maxAttempts || Date.now() >= deadline) return { outcome, attempts: attempt, retryableErrors };
    await sleep(backoffMs * Math.min(attempt, 10));
  }
}

/** Every event of a stream (pages of 1000 through getEvents), retrying shutting-down errors. */
export async function readLog(mf, name, surface = "do") {
  const out = [];
  for (;;) {
    const after = out.length ? out[out.length - 1].offset : 0;
    const { outcome } = await callWithRetry(mf, surface, name, "getEvents", { afterOffset: after, limit: 1000 });
    if (!outcome.ok) throw new Error(`getEvents failed: ${outcome.error}`);
    if (outcome.result.length === 0) return out;
    out.push(...outcome.result);
  }
}

/** runtimeState().coreProcessorState, retrying shutting-down errors. */
export async function liveState(mf, name) {
  const { outcome } = await callWithRetry(mf, "do", name, "runtimeState");
  if (!outcome.ok) throw new Error(`runtimeState failed: ${outcome.error}`);
  return outcome.result.coreProcessorState;
}

/** Asserts offsets are exactly 1..n and returns nothing; reports the first gap/duplicate. */
export function assertGapFree(events, note = "") {
  for (let i = 0; i < events.length; i++) {
    if (events[i].offset !== i + 1) {
      assert.fail(`${note}offset gap/duplicate at index ${i}: expected ${i + 1}, got ${events[i].offset}`);
    }
  }
}

/** The JSON text of a value exactly as the wire gives it (key order included). */
export const bytesOf = (v) => JSON.stringify(v);

/** Paths of the files under `dir` whose names start with `prefix`. */
export function filesStartingWith(dir, prefix) {
  const out = [];
  const walk = (d) => {
    for (const entry of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (entry.name.startsWith(prefix)) out.push(p);
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return out;
}

/** The hex id Miniflare gives the STREAM object named `name`. */
export async function doIdOf(mf, name) {
  const ns = await mf.getDurableObjectNamespace("STREAM", "streams");
  return ns.idFromName(name).toString();
}

/** The tables a stream's DO holds under a persistence dir (the runtime's own `_cf_*` left out): [] when it stored nothing. */
export async function storedTables(mf, dir, name) {
  const file = sqliteFileOf(dir, await doIdOf(mf, name));
  if (!file) return [];
  const tables = (await openSqlite(file)).prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all();
  return tables.map((t) => t.name).filter((t) => !t.startsWith("_cf_"));
}

/** The `<id>.sqlite` file of a stream's DO under a persistence dir, or undefined. */
export function sqliteFileOf(dir, id) {
  return filesStartingWith(dir, id).find((p) => p.endsWith(".sqlite"));
}

/**
 * Opens a stream's SQLite file for fault injection, with the small synchronous
 * subset of the better-sqlite3 API the tests use (`prepare(sql).run/all/get`,
 * `close`). Each statement runs in python3's sqlite3 module, which every
 * machine here has, so no native Node addon needs building. BLOBs travel as
 * hex and come back as Buffers.
 */
export async function openSqlite(file) {
  const pragmas = []; // per connection in SQLite, so replayed before each statement
  const run = (sql, params) => {
    const encoded = params.map((p) => (Buffer.isBuffer(p) || p instanceof Uint8Array ? { $hex: Buffer.from(p).toString("hex") } : p));
    const args = ["-c", SQLITE_PY, file, sql, JSON.stringify(encoded), JSON.stringify(pragmas)];
    const out = execFileSync("python3", args, { encoding: "utf8", maxBuffer: 256 << 20 });
    return JSON.parse(out).map((row) =>
      Object.fromEntries(Object.entries(row).map(([k, v]) => [k, v && typeof v === "object" && "$hex" in v ? Buffer.from(v.$hex, "hex") : v])),
    );
  };
  return {
    prepare: (sql) => ({
      run: (...params) => void run(sql, params),
      all: (...params) => run(sql, params),
      get: (...params) => run(sql, params)[0],
    }),
    pragma: (text) => void pragmas.push(text),
    close: () => {},
  };
}

const SQLITE_PY = `
import json, sqlite3, sys
path, sql, params = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
params = [bytes.fromhex(p["$hex"]) if isinstance(p, dict) else p for p in params]
db = sqlite3.connect(path)
for pragma in json.loads(sys.argv[4]):
    db.execute("PRAGMA " + pragma)
cur = db.execute(sql, params)
cols = [c[0] for c in cur.description] if cur.description else []
rows = [{c: ({"$hex": v.hex()} if isinstance(v, bytes) else v) for c, v in zip(cols, r)} for r in cur.fetchall()]
db.commit()
db.close()
print(json.dumps(rows))
`;

