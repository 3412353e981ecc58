// The SQL the viewer runs on the local mirror (tables `events` and `feed_items`).
import type { EventRow, FeedItemRow, SqlValue, StreamStore } from "@streams/client/browser";
import { useStreamQuery } from "@streams/client/react";
import { useMemo } from "react";

export const WINDOW_ALIGN = 64;

export function useEventCount(store: StreamStore, type: string | null): number {
  const sql = type === null ? "SELECT COUNT(*) AS count FROM events" : "SELECT COUNT(*) AS count FROM events WHERE type = ?";
  const result = useStreamQuery<{ count: number }>(store, sql, type === null ? [] : [type]);
  return Number(result.rows[0]?.count ?? 0);
}

export interface TypeCount {
  type: string;
  count: number;
}

export function useTypeCounts(store: StreamStore): readonly TypeCount[] {
  return useStreamQuery<TypeCount>(store, "SELECT type, COUNT(*) AS count FROM events GROUP BY type ORDER BY type").rows;
}

/** [start, end) widened to WINDOW_ALIGN boundaries, so small scrolls reuse the same query. */
export function alignedWindow(first: number, last: number): [number, number] {
  const start = Math.floor(first / WINDOW_ALIGN) * WINDOW_ALIGN;
  const end = (Math.floor(last / WINDOW_ALIGN) + 1) * WINDOW_ALIGN;
  return [start, end];
}

/** Rows the tail query reads: more than a screen and a batch, so a list pinned to the tail never waits. */
export const TAIL_ROWS = 256;
const COLUMNS = "offset, type, created_at, idempotency_key, json";

export interface EventTail {
  /** The list's length (events, or events of the filtered type), read with the rows. */
  count: number;
  rows: ReadonlyMap<number, EventRow>;
}

/**
 * The last TAIL_ROWS rows of the events list and the list's length, in one query, so the list
 * never grows past rows it has: its SQL stays the same while events arrive (the rows update in
 * place). Keyed by list index: without a filter index i is offset i + 1 (the mirror holds offsets
 * 1..n without gaps); with one, the last row is index count - 1.
 */
export function useEventTail(store: StreamStore, type: string | null): EventTail {
  const where = type === null ? "" : "WHERE type = ?";
  const params: SqlValue[] = type === null ? [TAIL_ROWS] : [type, type, TAIL_ROWS];
  const { rows } = useStreamQuery<EventRow & { total: number }>(
    store,
    `SELECT ${COLUMNS}, (SELECT COUNT(*) FROM events ${where}) AS total FROM events ${where} ORDER BY offset DESC LIMIT ?`,
    params,
  );
  return useMemo(() => {
    const count = rows.length === 0 ? 0 : Number(rows[0]?.total);
    return { count, rows: new Map(rows.map((row, i) => [type === null ? Number(row.offset) - 1 : count - 1 - i, row])) };
  }, [rows, type]);
}

/**
 * The rows at list indices [start, end) when they are not all in the tail (else none): without a
 * filter a primary-key range, with one the type index in offset order.
 */
export function useEventWindow(store: StreamStore, type: string | null, start: number, end: number, count: number): ReadonlyMap<number, EventRow> {
  const inTail = start >= count - TAIL_ROWS;
  const [sql, params]: [string, SqlValue[]] = inTail
    ? ["SELECT NULL AS offset WHERE 0", []]
    : type === null
      ? [`SELECT ${COLUMNS} FROM events WHERE offset > ? AND offset <= ? ORDER BY offset`, [start, end]]
      : [`SELECT ${COLUMNS} FROM events WHERE type = ? ORDER BY offset LIMIT ? OFFSET ?`, [type, end - start, start]];
  const { rows } = useStreamQuery<EventRow>(store, sql, params);
  return useMemo(() => new Map(rows.map((row, i) => [type === null ? Number(row.offset) - 1 : start + i, row])), [rows, type, start]);
}

export interface FeedRow extends FeedItemRow {
  /** The JSON of the item's first event (a lifecycle marker's own event). */
  json: string | null;
}

export function useFeedCount(store: StreamStore): number {
  const result = useStreamQuery<{ count: number }>(store, "SELECT COUNT(*) AS count FROM feed_items");
  return Number(result.rows[0]?.count ?? 0);
}

export function useFeedWindow(store: StreamStore, start: number, end: number): ReadonlyMap<number, FeedRow> {
  const { rows } = useStreamQuery<FeedRow>(
    store,
    `SELECT f.id, f.kind, f.type, f.first_offset, f.last_offset, f.event_count, e.json
       FROM feed_items f LEFT JOIN events e ON e.offset = f.first_offset
      WHERE f.id >= ? AND f.id < ? ORDER BY f.id`,
    [start, end],
  );
  return new Map(rows.map((row) => [Number(row.id), row]));
}
