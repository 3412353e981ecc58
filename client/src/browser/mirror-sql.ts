// The mirror's tables and every write to them. Runs inside the mirror worker over one SQLite
// connection; each write is one transaction, and the triggers make a gap or a changed offset
// impossible to store, whatever the caller does.
import { MIRROR_SCHEMA_VERSION, MIRROR_SLUG, type ApplyRequest, type MirrorState, type ProcessorApplyRequest, type ProcessorSetup } from "./protocol.js";
import type { MirroredEvent, SqlValue } from "./types.js";

/** The part of sqlite-wasm's oo1 `Database` the mirror uses. */
export interface SqliteDb {
  exec(sql: string, options?: { bind?: readonly SqlValue[] }): unknown;
  selectObjects(sql: string, bind?: readonly SqlValue[]): Record<string, SqlValue>[];
  selectValue(sql: string, bind?: readonly SqlValue[]): SqlValue | undefined;
  prepare(sql: string): SqliteStatement;
  close(): void;
}

export interface SqliteStatement {
  bind(values: readonly SqlValue[]): SqliteStatement;
  stepReset(): SqliteStatement;
  finalize(): void;
}

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS events (
     offset INTEGER PRIMARY KEY,
     type TEXT NOT NULL,
     created_at TEXT NOT NULL,
     idempotency_key TEXT,
     json TEXT NOT NULL)`,
  `CREATE INDEX IF NOT EXISTS events_type_offset ON events (type, offset)`,
  `CREATE TABLE IF NOT EXISTS mirror_meta (key TEXT PRIMARY KEY, value TEXT)`,
  `CREATE TABLE IF NOT EXISTS processor_state (
     slug TEXT PRIMARY KEY,
     checkpoint INTEGER NOT NULL CHECK (checkpoint >= 0),
     state TEXT NOT NULL)`,
  // An identical replay is ignored; anything else that is not the next offset aborts the write.
  // The first event of an empty mirror follows its checkpoint: 1, or the first kept offset of a
  // stream that retention trimmed (docs/browser.md#trimmed-streams). Re-created on every open, so
  // a mirror written by an older version gets this rule too.
  `DROP TRIGGER IF EXISTS events_append_only`,
  `CREATE TRIGGER events_append_only BEFORE INSERT ON events BEGIN
     SELECT RAISE(IGNORE) WHERE EXISTS (SELECT 1 FROM events WHERE offset = NEW.offset AND json = NEW.json);
     SELECT RAISE(ABORT, 'mirror offset changed: a different event is already stored at this offset')
       WHERE EXISTS (SELECT 1 FROM events WHERE offset = NEW.offset);
     SELECT RAISE(ABORT, 'mirror gap: an event must have the offset after the last stored one')
       WHERE NEW.offset <> COALESCE((SELECT MAX(offset) FROM events), (SELECT checkpoint FROM processor_state WHERE slug = '${MIRROR_SLUG}'), 0) + 1;
   END`,
];

const UPSERT_STATE = `INSERT INTO processor_state (slug, checkpoint, state) VALUES (?, ?, ?)
  ON CONFLICT (slug) DO UPDATE SET checkpoint = excluded.checkpoint, state = excluded.state`;
const UPSERT_META = `INSERT INTO mirror_meta (key, value) VALUES (?, ?)
  ON CONFLICT (key) DO UPDATE SET value = excluded.value`;

export class Mirror {
  #db: SqliteDb;
  #processors = new Map<string, ProcessorSetup>();

  constructor(db: SqliteDb) {
    this.#db = db;
    this.#transaction(() => {
      for (const sql of SCHEMA) db.exec(sql);
      const version = db.selectValue(`SELECT value FROM mirror_meta WHERE key = 'schemaVersion'`);
      if (version === undefined) db.exec(UPSERT_META, { bind: ["schemaVersion", String(MIRROR_SCHEMA_VERSION)] });
    });
  }

  state(): MirrorState {
    const db = this.#db;
    const streamId = db.selectValue(`SELECT value FROM mirror_meta WHERE key = 'streamId'`);
    const processors: MirrorState["processors"] = {};
    let checkpoint = 0;
    for (const row of db.selectObjects(`SELECT slug, checkpoint, state FROM processor_state`)) {
      if (row.slug === MIRROR_SLUG) checkpoint = Number(row.checkpoint);
      else processors[String(row.slug)] = { checkpoint: Number(row.checkpoint), state: String(row.state) };
    }
    // Offsets are dense (the trigger), so the count is last − first + 1: O(1).
    const [first, last] = [db.selectValue(`SELECT MIN(offset) FROM events`), db.selectValue(`SELECT MAX(offset) FROM events`)];
    const localCount = first == null || last == null ? 0 : Number(last) - Number(first) + 1;
    const firstOffset = first == null ? checkpoint + 1 : Number(first);
    return { streamId: typeof streamId === "string" ? streamId : null, checkpoint, firstOffset, localCount, processors };
  }

  setupProcessors(processors: readonly ProcessorSetup[]): MirrorState {
    this.#transaction(() => {
      for (const p of processors) {
        this.#processors.set(p.slug, p);
        const key = `processorVersion:${p.slug}`;
        const stored = this.#db.selectValue(`SELECT value FROM mirror_meta WHERE key = ?`, [key]);
        if (stored !== undefined && stored !== String(p.version)) this.#dropProcessor(p);
        for (const sql of p.schema) this.#db.exec(sql);
        this.#db.exec(UPSERT_META, { bind: [key, String(p.version)] });
      }
    });
    return this.state();
  }

  apply(request: ApplyRequest): MirrorState {
    this.#transaction(() => {
      const { streamId, checkpoint } = this.state();
      if (streamId !== request.streamId) {
        throw new Error(`mirror holds stream ${streamId ?? "(none)"}, the batch belongs to ${request.streamId ?? "(none)"}`);
      }
      if (request.afterOffset !== checkpoint) {
        throw new Error(`mirror gap: the mirror is at offset ${checkpoint}, the batch starts after ${request.afterOffset}`);
      }
      this.#insertEvents(request.events);
      const last = request.events.at(-1)?.offset ?? request.afterOffset;
      if (last > request.throughOffset) throw new Error(`batch event offset ${last} is past its throughOffset ${request.throughOffset}`);
      this.#db.exec(UPSERT_STATE, { bind: [MIRROR_SLUG, request.throughOffset, "null"] });
      for (const p of request.processors) {
        this.#runAll(p.statements);
        this.#db.exec(UPSERT_STATE, { bind: [p.slug, request.throughOffset, p.state] });
      }
    });
    return this.state();
  }

  applyProcessor(request: ProcessorApplyRequest): MirrorState {
    this.#transaction(() => {
      const current = this.state().processors[request.slug]?.checkpoint ?? 0;
      if (current !== request.afterOffset) {
        throw new Error(`processor ${request.slug} is at offset ${current}, its catch-up starts after ${request.afterOffset}`);
      }
      this.#runAll(request.statements);
      this.#db.exec(UPSERT_STATE, { bind: [request.slug, request.throughOffset, request.state] });
    });
    return this.state();
  }

  discard(streamId: string | null, startAfter = 0): MirrorState {
    this.#transaction(() => {
      this.#db.exec(`DELETE FROM events`);
      this.#db.exec(`DELETE FROM processor_state`);
      if (startAfter > 0) this.#db.exec(UPSERT_STATE, { bind: [MIRROR_SLUG, startAfter, "null"] });
      for (const p of this.#processors.values()) {
        this.#dropProcessor(p);
        for (const sql of p.schema) this.#db.exec(sql);
      }
      if (streamId === null) this.#db.exec(`DELETE FROM mirror_meta WHERE key = 'streamId'`);
      else this.#db.exec(UPSERT_META, { bind: ["streamId", streamId] });
    });
    return this.state();
  }

  query(sql: string, params: readonly SqlValue[]): Record<string, SqlValue>[] {
    try {
      return this.#db.selectObjects(sql, params);
    } catch (e) {
      // A view may mount before the processor that creates its table has run.
      if (/no such table/i.test(errorText(e))) return [];
      throw e;
    }
  }

  readEvents(afterOffset: number, limit: number): MirroredEvent[] {
    return this.#db
      .selectObjects(`SELECT json FROM events WHERE offset > ? ORDER BY offset LIMIT ?`, [afterOffset, limit])
      .map((row) => JSON.parse(String(row.json)) as MirroredEvent);
  }

  sizeBytes(): number {
    return Number(this.#db.selectValue(`SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()`) ?? 0);
  }

  #insertEvents(events: readonly MirroredEvent[]): void {
    if (events.length === 0) return;
    const insert = this.#db.prepare(`INSERT INTO events (offset, type, created_at, idempotency_key, json) VALUES (?, ?, ?, ?, ?)`);
    try {
      for (const e of events) {
        insert.bind([e.offset, e.type, e.createdAt, e.idempotencyKey ?? null, JSON.stringify(e)]).stepReset();
      }
    } finally {
      insert.finalize();
    }
  }

  #runAll(statements: readonly { sql: string; params?: readonly SqlValue[] }[]): void {
    // sqlite-wasm's exec rejects an explicit `undefined` options argument.
    for (const s of statements) {
      if (s.params) this.#db.exec(s.sql, { bind: s.params });
      else this.#db.exec(s.sql);
    }
  }

  #dropProcessor(p: ProcessorSetup): void {
    for (const table of p.tables) this.#db.exec(`DROP TABLE IF EXISTS "${table.replaceAll('"', '""')}"`);
    this.#db.exec(`DELETE FROM processor_state WHERE slug = ?`, { bind: [p.slug] });
  }

  /**
   * BEGIN IMMEDIATE … COMMIT. On an error the ROLLBACK runs in its own try, so a failing rollback
   * (e.g. SQLite already rolled back) never replaces the error that caused it.
   */
  #transaction(body: () => void): void {
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      body();
      this.#db.exec("COMMIT");
    } catch (e) {
      try {
        this.#db.exec("ROLLBACK");
      } catch {
        // SQLite may have ended the transaction itself; the original error is what matters.
      }
      throw e;
    }
  }
}

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
