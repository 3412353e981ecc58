// The SQL the viewer runs on the local mirror (tables `events` and `feed_items`).
import type { EventRow, FeedItemRow, SqlValue, StreamStore } from "@streams/client/browser";
import { useStreamQuery } from "@streams/client/react";

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

/**
 * The rows at list indices [start, end) of the events list, keyed by index. Without a filter,
 * index i is offset i + 1 (the mirror holds offsets 1..n without gaps): a primary-key range.
 * With one, the type index gives the rows in offset order.
 */
export function useEventWindow(store: StreamStore, type: string | null, start: number, end: number): ReadonlyMap<number, EventRow> {
  const columns = "offset, type, created_at, idempotency_key, json";
  const [sql, params]: [string, SqlValue[]] =
    type === null
      ? [`SELECT ${columns} FROM events WHERE offset > ? AND offset <= ? ORDER BY offset`, [start, end]]
      : [`SELECT ${columns} FROM events WHERE type = ? ORDER BY offset LIMIT ? OFFSET ?`, [type, end - start, start]];
  const { rows } = useStreamQuery<EventRow>(store, sql, params);
  const byIndex = new Map<number, EventRow>();
  rows.forEach((row, i) => byIndex.set(type === null ? Number(row.offset) - 1 : start + i, row));
  return byIndex;
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
