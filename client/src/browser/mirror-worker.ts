// The mirror worker: one SQLite connection (the official sqlite-wasm build) in a dedicated Worker.
// OPFS through the SAH-pool VFS when the browser has it (no cross-origin isolation needed), else
// memory. Requests are handled strictly one at a time, in arrival order.
//
// Bundle this file as its own entry (`mirror-worker.js`) with `sqlite3.wasm` next to it.
import sqlite3InitModule from "@sqlite.org/sqlite-wasm";
import { Mirror, errorText, type SqliteDb } from "./mirror-sql.js";
import { MIRROR_SCHEMA_VERSION, type MirrorDb, type OpenResult, type WorkerRequest, type WorkerResponse } from "./protocol.js";
import { mirrorFileKey } from "./names.js";
import type { MirrorKind } from "./types.js";

interface SahPool {
  OpfsSAHPoolDb: new (filename: string) => SqliteDb;
}

interface Sqlite3 {
  oo1: { DB: new (filename: string, flags: string) => SqliteDb };
  capi: { sqlite3_js_db_export(db: SqliteDb): Uint8Array };
  installOpfsSAHPoolVfs(options: {
    name: string;
    directory: string;
    preserveOnInitFailure?: boolean;
    forceReinitIfPreviouslyFailed?: boolean;
  }): Promise<SahPool>;
}

const DB_FILE = "/mirror.sqlite3";
/** A promoted tab may find the old writer's worker still holding the pool's handles for a moment. */
const OPEN_RETRY_MS = 8_000;

let sqlite3: Sqlite3 | undefined;
let db: SqliteDb | undefined;
let mirror: Mirror | undefined;

function opened(): Mirror {
  if (!mirror) throw new Error("the mirror is not open");
  return mirror;
}

async function openPool(s: Sqlite3, key: string): Promise<SahPool> {
  const started = Date.now();
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await s.installOpfsSAHPoolVfs({
        name: `streams-${key}`,
        directory: `.streams-mirror-v${MIRROR_SCHEMA_VERSION}/${key}`,
        preserveOnInitFailure: true,
        forceReinitIfPreviouslyFailed: true,
      });
    } catch (e) {
      if (/Missing required OPFS APIs/.test(errorText(e)) || Date.now() - started > OPEN_RETRY_MS) throw e;
      await new Promise((r) => setTimeout(r, Math.min(250, 10 * 2 ** attempt)));
    }
  }
}

const handlers: MirrorDb = {
  async open({ namespace, path, mirror: wanted }) {
    if (mirror) throw new Error("the mirror is already open");
    sqlite3 ??= (await sqlite3InitModule()) as unknown as Sqlite3;
    let kind: MirrorKind = "memory";
    let fallbackReason: string | null = null;
    if (wanted === "opfs") {
      try {
        const pool = await openPool(sqlite3, mirrorFileKey(namespace, path));
        db = new pool.OpfsSAHPoolDb(DB_FILE);
        kind = "opfs";
      } catch (e) {
        fallbackReason = `OPFS unavailable (${errorText(e)}); the mirror is in memory`;
      }
    }
    db ??= new sqlite3.oo1.DB(":memory:", "c");
    mirror = new Mirror(db);
    const result: OpenResult = { kind, fallbackReason, state: mirror.state() };
    return result;
  },
  async setupProcessors(processors) {
    return opened().setupProcessors(processors);
  },
  async apply(request) {
    return opened().apply(request);
  },
  async applyProcessor(request) {
    return opened().applyProcessor(request);
  },
  async discard(streamId, startAfter) {
    return opened().discard(streamId, startAfter);
  },
  async query(sql, params) {
    return opened().query(sql, params);
  },
  async readEvents(afterOffset, limit) {
    return opened().readEvents(afterOffset, limit);
  },
  async exportFile() {
    opened();
    if (!sqlite3 || !db) throw new Error("the mirror is not open");
    return sqlite3.capi.sqlite3_js_db_export(db);
  },
  async sizeBytes() {
    return opened().sizeBytes();
  },
  async close() {
    mirror = undefined;
    const current = db;
    db = undefined;
    current?.close();
  },
};

const scope = self as unknown as {
  onmessage: ((event: MessageEvent<WorkerRequest>) => void) | null;
  postMessage(message: WorkerResponse, transfer?: Transferable[]): void;
};

let queue: Promise<void> = Promise.resolve();
scope.onmessage = (event) => {
  const { id, op, args } = event.data;
  queue = queue.then(async () => {
    try {
      const result = await (handlers[op] as (...a: unknown[]) => Promise<unknown>)(...args);
      const transfer = result instanceof Uint8Array ? [result.buffer as ArrayBuffer] : [];
      scope.postMessage({ id, ok: true, result }, transfer);
    } catch (e) {
      scope.postMessage({ id, ok: false, error: errorText(e) });
    }
  });
};
