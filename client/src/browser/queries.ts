// Reactive queries over the mirror. A handle that is never subscribed (e.g. made by a render React
// threw away) is collected after one tick; only subscribed queries re-run on a change; one change
// pass computes every result before it notifies anyone, and a result equal to the previous one
// notifies no one.
import type { QueryHandle, QuerySnapshot, SqlValue } from "./types.js";

export type QueryRunner = (sql: string, params: readonly SqlValue[]) => Promise<Record<string, SqlValue>[]>;

interface Entry {
  key: string;
  sql: string;
  params: readonly SqlValue[];
  snapshot: QuerySnapshot<any>;
  /** JSON of the last result, for the equality check. */
  fingerprint: string;
  listeners: Set<() => void>;
  gcTimer: ReturnType<typeof setTimeout> | undefined;
}

const PENDING: QuerySnapshot<never> = Object.freeze({ status: "pending", rows: Object.freeze([]), error: null });

export class QueryRegistry {
  #entries = new Map<string, Entry>();
  #run: QueryRunner | undefined;
  #passRunning = false;
  #passAgain = false;

  /** Number of live entries (collected ones excluded). */
  get size(): number {
    return this.#entries.size;
  }

  /** Where queries run; `undefined` while there is no mirror to read (queries stay as they are). */
  setRunner(run: QueryRunner | undefined): void {
    this.#run = run;
    this.refresh();
  }

  query<Row>(sql: string, params: readonly SqlValue[] = []): QueryHandle<Row> {
    const key = `${sql}\0${JSON.stringify(params, jsonSafe)}`;
    let entry = this.#entries.get(key);
    if (!entry) {
      entry = { key, sql, params: [...params], snapshot: PENDING, fingerprint: "", listeners: new Set(), gcTimer: undefined };
      this.#entries.set(key, entry);
      this.#armCollection(entry);
    }
    const e = entry;
    return {
      getSnapshot: () => e.snapshot as QuerySnapshot<Row>,
      subscribe: (listener) => {
        if (e.gcTimer !== undefined) clearTimeout(e.gcTimer);
        e.gcTimer = undefined;
        const revived = this.#entries.get(e.key) !== e;
        if (revived) this.#entries.set(e.key, e);
        const first = e.listeners.size === 0;
        e.listeners.add(listener);
        if (first) void this.#pass([e]);
        return () => {
          if (!e.listeners.delete(listener)) return;
          if (e.listeners.size === 0) this.#armCollection(e);
        };
      },
    };
  }

  /** The mirror changed: re-run every subscribed query (coalesced while a pass runs). */
  refresh(): void {
    if (this.#passRunning) {
      this.#passAgain = true;
      return;
    }
    void this.#pass([...this.#entries.values()].filter((e) => e.listeners.size > 0));
  }

  clear(): void {
    for (const e of this.#entries.values()) if (e.gcTimer !== undefined) clearTimeout(e.gcTimer);
    this.#entries.clear();
  }

  #armCollection(entry: Entry): void {
    entry.gcTimer = setTimeout(() => {
      entry.gcTimer = undefined;
      if (entry.listeners.size === 0 && this.#entries.get(entry.key) === entry) this.#entries.delete(entry.key);
    }, 0);
  }

  async #pass(entries: Entry[]): Promise<void> {
    const run = this.#run;
    if (!run || entries.length === 0) return;
    this.#passRunning = true;
    try {
      const results = await Promise.all(
        entries.map(async (e): Promise<QuerySnapshot<any>> => {
          try {
            return { status: "ok", rows: await run(e.sql, e.params), error: null };
          } catch (err) {
            return { status: "error", rows: e.snapshot.rows, error: err instanceof Error ? err.message : String(err) };
          }
        }),
      );
      // A runner swapped mid-pass (leader change) answers for the old mirror: the next pass wins.
      if (run !== this.#run) return;
      const changed: Entry[] = [];
      entries.forEach((e, i) => {
        const next = results[i] as QuerySnapshot<any>;
        const fingerprint = `${next.status}\0${next.error ?? ""}\0${JSON.stringify(next.rows, jsonSafe)}`;
        if (fingerprint === e.fingerprint) return;
        e.fingerprint = fingerprint;
        e.snapshot = Object.freeze({ ...next, rows: Object.freeze(next.rows) });
        changed.push(e);
      });
      for (const e of changed) for (const listener of [...e.listeners]) listener();
    } finally {
      this.#passRunning = false;
      if (this.#passAgain) {
        this.#passAgain = false;
        this.refresh();
      }
    }
  }
}

function jsonSafe(_key: string, value: unknown): unknown {
  if (typeof value === "bigint") return `${value}n`;
  if (value instanceof Uint8Array) return Array.from(value);
  return value;
}
