// Shared by the storage fixture generator (make-v1-fixture.mjs) and the storage tests
// (miniflare/storage_*.test.mjs): deterministic payloads of an exact committed size, digests of
// events as the wire gives them, and the fixture's on-disk layout.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { fileURLToPath } from "node:url";
import { HELPERS_DIR, COMPATIBILITY_DATE } from "./mf.mjs";

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "fixtures");
/** The committed fixtures: streams of every shape, and one 100k-event stream. */
export const FIXTURE_DIR = path.join(FIXTURES, "storage-v1");
export const LARGE_FIXTURE_DIR = path.join(FIXTURES, "storage-v1-large");
export const MANIFEST = "manifest.json";
/** Miniflare keeps each Durable Object class of a worker in `<persist>/<worker>-<class>/<id>.sqlite`. */
export const STREAM_OBJECTS_DIR = "streams-Stream";
/** Slice size of the current layout's chunk rows (the boundary the fixture's big events straddle). */
export const CHUNK = 524288;
/** Largest committed event JSON (docs/protocol.md#limits). */
export const MAX_EVENT_BYTES = 8388608;
/** A createdAt as the stream writes it: always 24 bytes (docs/protocol.md#committed-event). */
const CREATED_AT_SAMPLE = "2026-01-01T00:00:00.000Z";

/** The JSON text of a value exactly as the wire gives it (key order included). */
export const bytesOf = (v) => JSON.stringify(v);
export const sha256 = (text) => crypto.createHash("sha256").update(text).digest("hex");
/** [length in UTF-8 bytes, sha256] of an event's JSON. */
export const digestOf = (event) => {
  const text = bytesOf(event);
  return [Buffer.byteLength(text), sha256(text)];
};

/** sha256 of a whole log: every event's JSON, one per line. */
export const logDigestOf = (events) => {
  const hash = crypto.createHash("sha256");
  for (const e of events) hash.update(bytesOf(e) + "\n");
  return hash.digest("hex");
};

/**
 * An ASCII string of exactly `n` characters in 64-character blocks that each carry their own
 * index, so a swapped, repeated or truncated slice of it is detectable, yet it compresses well
 * (the committed fixture stays small).
 */
export function filler(n, tag = "f") {
  const block = 64;
  const parts = [];
  for (let i = 0; i * block < n; i++) parts.push(`${tag}${i.toString(36)}`.padStart(block, "."));
  return parts.join("").slice(0, n);
}

/** UTF-8 length of the committed form of `input` at `offset` (keys in the stored order). */
export function committedLength(input, offset) {
  const { type, payload, metadata, source, idempotencyKey } = input;
  const committed = { type, payload, metadata, source, idempotencyKey, offset, createdAt: CREATED_AT_SAMPLE };
  return Buffer.byteLength(JSON.stringify(committed));
}

/**
 * An event input whose committed JSON at `offset` is exactly `bytes` long: `payload.fill` is
 * padded with filler. `bytes` must leave room for the fixed part (about 100 bytes).
 */
export function sizedInput({ type, bytes, offset, idempotencyKey, tag = "f", head = "" }) {
  const input = { type, payload: { head, fill: "" }, ...(idempotencyKey ? { idempotencyKey } : {}) };
  const base = committedLength(input, offset);
  if (base > bytes) throw new Error(`sizedInput: ${bytes} bytes is below the fixed part (${base})`);
  input.payload.fill = filler(bytes - base, tag);
  return input;
}

/** Reads the committed fixture's manifest. */
export function readManifest(dir = FIXTURE_DIR) {
  return JSON.parse(fs.readFileSync(path.join(dir, MANIFEST), "utf8"));
}

/** The fixture's form of a SQLite file: brotli at its best (a 100k-event stream packs into well under 1 MB). */
export const packSqlite = (bytes) =>
  zlib.brotliCompressSync(bytes, {
    params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11, [zlib.constants.BROTLI_PARAM_LGWIN]: 24, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: bytes.length },
  });

/** Unpacks the fixture's SQLite files (`<id>.sqlite.br`) into `persistDir` where Miniflare looks for them. */
export function unpackFixture(persistDir, manifest, dir = FIXTURE_DIR) {
  const target = path.join(persistDir, STREAM_OBJECTS_DIR);
  fs.mkdirSync(target, { recursive: true });
  for (const file of manifest.files) {
    fs.writeFileSync(path.join(target, file.replace(/\.br$/, "")), zlib.brotliDecompressSync(fs.readFileSync(path.join(dir, file))));
  }
}

/** The worker that folds a log through `reduce` inside workerd: pass it to startStreams({workers: [FOLD_WORKER]}). */
export const FOLD_WORKER = Object.freeze({
  name: "fold",
  modules: true,
  modulesRoot: HELPERS_DIR,
  scriptPath: path.join(HELPERS_DIR, "fold-worker.mjs"),
  compatibilityDate: COMPATIBILITY_DATE,
  durableObjects: { STREAM: { className: "Stream", scriptName: "streams", useSQLite: true } },
});

/**
 * The state `events` fold to from `state` ({} = a full rebuild from no state), through the stream's
 * pure `reduce`, in requests of at most 16 MiB of events (needs FOLD_WORKER in the Miniflare).
 */
export async function foldState(mf, name, events, state = {}) {
  const fold = await mf.getWorker("fold");
  for (let i = 0; i < events.length; ) {
    const part = [];
    for (let bytes = 0; i < events.length && (part.length === 0 || bytes < 16 << 20); i++) {
      part.push(events[i]);
      bytes += bytesOf(events[i]).length;
    }
    const res = await fold.fetch("http://fold/", { method: "POST", body: JSON.stringify({ name, events: part, state }) });
    const out = await res.json();
    if (!out.ok) throw new Error(`${name}: ${out.error}`);
    state = out.state;
  }
  return state;
}
