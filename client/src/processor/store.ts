// The host's rows in the Durable Object's own SQLite: one per (namespace, path, slug).
// Every write goes through `transaction`, so a row never changes halfway.

/** The part of `DurableObjectState` the host uses. */
export interface ProcessorHostContext {
  storage: {
    sql: { exec(query: string, ...bindings: unknown[]): { toArray(): Record<string, unknown>[] } };
    transactionSync<T>(closure: () => T): T;
  };
}

export interface ProcessorKey {
  namespace: string;
  path: string;
  slug: string;
}

export interface ProcessorRow {
  version: string;
  /** The life of the stream's log the state belongs to (`null` for streams without ids). */
  streamId: string | null;
  /** The `throughOffset` of the last committed batch. */
  checkpoint: number;
  /** The highest checkpoint any version reached on this life of the log: `onEvent` runs only past it. */
  handledThrough: number;
  /** JSON of the state after the checkpoint. */
  state: string;
  /** The latest accepted dial's connection; batches from any other are dropped. */
  connectionId: string | null;
  /** Consecutive counted failures at this checkpoint. */
  failures: number;
  /** JSON of the last failure: {offset, name, message, stack?}. */
  lastError: string | null;
  /** The offset whose reduce/onEvent threw last. */
  failedOffset: number | null;
  halted: boolean;
  /** The halt's `error-occurred` event is on the stream. */
  haltReported: boolean;
  /** An offset that `resume({skip: true})` told the next batches to step over. */
  skipOffset: number | null;
}

const TABLE = "streams_processor";

export class ProcessorStore {
  readonly #storage: ProcessorHostContext["storage"];

  constructor(storage: ProcessorHostContext["storage"]) {
    this.#storage = storage;
    storage.sql.exec(`CREATE TABLE IF NOT EXISTS ${TABLE} (
      namespace TEXT NOT NULL, path TEXT NOT NULL, slug TEXT NOT NULL,
      version TEXT NOT NULL, stream_id TEXT, checkpoint INTEGER NOT NULL, state TEXT NOT NULL, connection_id TEXT,
      failures INTEGER NOT NULL, last_error TEXT, failed_offset INTEGER,
      halted INTEGER NOT NULL, halt_reported INTEGER NOT NULL, skip_offset INTEGER, handled_through INTEGER,
      PRIMARY KEY (namespace, path, slug))`);
    // A table made before handled_through existed: its rows read it as their checkpoint.
    const [table] = storage.sql.exec(`SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?`, TABLE).toArray();
    if (!String(table?.sql ?? "").includes("handled_through")) storage.sql.exec(`ALTER TABLE ${TABLE} ADD COLUMN handled_through INTEGER`);
  }

  transaction<T>(closure: () => T): T {
    return this.#storage.transactionSync(closure);
  }

  read(key: ProcessorKey): ProcessorRow | undefined {
    const [r] = this.#storage.sql
      .exec(`SELECT * FROM ${TABLE} WHERE namespace = ? AND path = ? AND slug = ?`, key.namespace, key.path, key.slug)
      .toArray();
    if (!r) return undefined;
    return {
      version: String(r.version),
      streamId: r.stream_id === null ? null : String(r.stream_id),
      checkpoint: Number(r.checkpoint),
      handledThrough: Math.max(Number(r.checkpoint), r.handled_through === null ? 0 : Number(r.handled_through)),
      state: String(r.state),
      connectionId: r.connection_id === null ? null : String(r.connection_id),
      failures: Number(r.failures),
      lastError: r.last_error === null ? null : String(r.last_error),
      failedOffset: r.failed_offset === null ? null : Number(r.failed_offset),
      halted: r.halted === 1,
      haltReported: r.halt_reported === 1,
      skipOffset: r.skip_offset === null ? null : Number(r.skip_offset),
    };
  }

  write(key: ProcessorKey, row: ProcessorRow): void {
    this.#storage.sql.exec(
      `INSERT OR REPLACE INTO ${TABLE} (namespace, path, slug, version, stream_id, checkpoint, state,
        connection_id, failures, last_error, failed_offset, halted, halt_reported, skip_offset, handled_through)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      key.namespace,
      key.path,
      key.slug,
      row.version,
      row.streamId,
      row.checkpoint,
      row.state,
      row.connectionId,
      row.failures,
      row.lastError,
      row.failedOffset,
      row.halted ? 1 : 0,
      row.haltReported ? 1 : 0,
      row.skipOffset,
      row.handledThrough,
    );
  }
}
