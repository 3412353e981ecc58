// The SQL the viewer runs on the local mirror (tables `events` and `feed_items`).
import type { EventRow, FeedItemRow, SqlValue, StreamStore } from "@streams/client/browser";
import { useStreamQuery } from "@streams/client/react";
import { useMemo } from "react";
import { PRESENCE_TYPES } from "./events";

export const WINDOW_ALIGN = 64;

/** Which events a list shows: one type, or every type with or without the presence events. */
export interface EventFilter {
  type: string | null;
  hidePresence: boolean;
}

export const ALL_EVENTS: EventFilter = { type: null, hidePresence: false };

const PRESENCE_PLACEHOLDERS = PRESENCE_TYPES.map(() => "?").join(", ");

/** The WHERE clause of a filter (empty for every event) and its parameters. */
function whereOf(filter: EventFilter): [string, SqlValue[]] {
  if (filter.type !== null) return ["WHERE type = ?", [filter.type]];
  if (filter.hidePresence) return [`WHERE type NOT IN (${PRESENCE_PLACEHOLDERS})`, [...PRESENCE_TYPES]];
  return ["", []];
}

/**
 * A filter that shows every event lists offset first + i at index i: the mirror holds first..last
 * without gaps, and first is above 1 when retention trimmed the stream (docs/browser.md).
 */
function isUnfiltered(filter: EventFilter): boolean {
  return filter.type === null && !filter.hidePresence;
}

/**
 * SQL for the number of events a filter shows. Without presence it subtracts the presence rows
 * (found by the type index) from the table's count, instead of scanning every row.
 */
function countSql(filter: EventFilter): [string, SqlValue[]] {
  if (filter.type === null && filter.hidePresence) {
    return [
      `(SELECT COUNT(*) FROM events) - (SELECT COUNT(*) FROM events WHERE type IN (${PRESENCE_PLACEHOLDERS}))`,
      [...PRESENCE_TYPES],
    ];
  }
  const [where, params] = whereOf(filter);
  return [`(SELECT COUNT(*) FROM events ${where})`, params];
}

export function useEventCount(store: StreamStore, filter: EventFilter): number {
  const [count, params] = countSql(filter);
  const result = useStreamQuery<{ count: number }>(store, `SELECT ${count} AS count`, params);
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
/** An unfiltered row's list index: its distance from the mirror's first offset (a primary-key lookup). */
const INDEX = "offset - (SELECT MIN(offset) FROM events) AS list_index";

export interface EventTail {
  /** The list's length (events, or events of the filtered type), read with the rows. */
  count: number;
  rows: ReadonlyMap<number, EventRow>;
}

/**
 * The last TAIL_ROWS rows of the events list and the list's length, in one query, so the list
 * never grows past rows it has: its SQL stays the same while events arrive (the rows update in
 * place). Keyed by list index: unfiltered, index i is the mirror's first offset + i; filtered, the
 * last row is index count - 1.
 */
export function useEventTail(store: StreamStore, filter: EventFilter): EventTail {
  const [where, whereParams] = whereOf(filter);
  const [count, countParams] = countSql(filter);
  const { rows } = useStreamQuery<EventRow & { total: number; list_index: number }>(
    store,
    `SELECT ${COLUMNS}, ${INDEX}, ${count} AS total FROM events ${where} ORDER BY offset DESC LIMIT ?`,
    [...countParams, ...whereParams, TAIL_ROWS],
  );
  const unfiltered = isUnfiltered(filter);
  return useMemo(() => {
    const total = rows.length === 0 ? 0 : Number(rows[0]?.total);
    return { count: total, rows: new Map(rows.map((row, i) => [unfiltered ? Number(row.list_index) : total - 1 - i, row])) };
  }, [rows, unfiltered]);
}

/**
 * The rows at list indices [start, end) when they are not all in the tail (else none): unfiltered
 * a primary-key range, filtered the rows in offset order (the type index for one type).
 */
export function useEventWindow(store: StreamStore, filter: EventFilter, start: number, end: number, count: number): ReadonlyMap<number, EventRow> {
  const inTail = start >= count - TAIL_ROWS;
  const unfiltered = isUnfiltered(filter);
  const [where, whereParams] = whereOf(filter);
  const [sql, params]: [string, SqlValue[]] = inTail
    ? ["SELECT NULL AS offset WHERE 0", []]
    : unfiltered
      ? [`SELECT ${COLUMNS}, ${INDEX} FROM events WHERE offset >= (SELECT MIN(offset) FROM events) + ? AND offset < (SELECT MIN(offset) FROM events) + ? ORDER BY offset`, [start, end]]
      : [`SELECT ${COLUMNS} FROM events ${where} ORDER BY offset LIMIT ? OFFSET ?`, [...whereParams, end - start, start]];
  const { rows } = useStreamQuery<EventRow & { list_index: number }>(store, sql, params);
  return useMemo(() => new Map(rows.map((row, i) => [unfiltered ? Number(row.list_index) : start + i, row])), [rows, unfiltered, start]);
}

export interface FeedRow extends FeedItemRow {
  /** The JSON of the item's first event (a lifecycle marker's own event). */
  json: string | null;
}

/** Feed items without the presence groups when `hidePresence`; the rest keep their order. */
function feedWhere(hidePresence: boolean): [string, SqlValue[]] {
  return hidePresence ? [`WHERE f.type NOT IN (${PRESENCE_PLACEHOLDERS})`, [...PRESENCE_TYPES]] : ["", []];
}

export function useFeedCount(store: StreamStore, hidePresence: boolean): number {
  const [where, params] = feedWhere(hidePresence);
  const result = useStreamQuery<{ count: number }>(store, `SELECT COUNT(*) AS count FROM feed_items f ${where}`, params);
  return Number(result.rows[0]?.count ?? 0);
}

/** The feed items at list indices [start, end), keyed by index. */
export function useFeedWindow(store: StreamStore, hidePresence: boolean, start: number, end: number): ReadonlyMap<number, FeedRow> {
  const [where, params] = feedWhere(hidePresence);
  const { rows } = useStreamQuery<FeedRow>(
    store,
    `SELECT f.id, f.kind, f.type, f.first_offset, f.last_offset, f.event_count, e.json
       FROM feed_items f LEFT JOIN events e ON e.offset = f.first_offset
      ${where} ORDER BY f.id LIMIT ? OFFSET ?`,
    [...params, end - start, start],
  );
  return new Map(rows.map((row, i) => [start + i, row]));
}
