// The event-feed processor: a feed of the stream for humans. Consecutive events of one type become
// one group row (at most MAX_GROUP_EVENTS); lifecycle events are single markers. Each batch writes
// each touched row once, whatever the number of events that touched it.
import type { BrowserProcessor, FeedItemRow, MirroredEvent, SqlStatement } from "./types.js";

export const EVENT_FEED_SLUG = "event-feed";
export const MAX_GROUP_EVENTS = 200;

/** Shown as their own marker, never grouped. */
export const LIFECYCLE_TYPES: ReadonlySet<string> = new Set([
  "events.iterate.com/stream/created",
  "events.iterate.com/stream/woken",
  "events.iterate.com/stream/child-stream-created",
]);

export interface FeedState {
  /** The last row, while it is a group that can still grow. */
  open: FeedGroup | null;
  nextId: number;
}

export interface FeedGroup {
  id: number;
  type: string;
  firstOffset: number;
  lastOffset: number;
  count: number;
}

const UPSERT = `INSERT INTO feed_items (id, kind, type, first_offset, last_offset, event_count) VALUES (?, ?, ?, ?, ?, ?)
  ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, type = excluded.type, first_offset = excluded.first_offset,
  last_offset = excluded.last_offset, event_count = excluded.event_count`;

/** Pure: the rows a batch creates or changes (one entry per row) and the state after it. */
export function planFeed(state: FeedState, events: readonly MirroredEvent[]): { state: FeedState; rows: FeedItemRow[] } {
  const touched = new Map<number, FeedItemRow>();
  let open = state.open ? { ...state.open } : null;
  let nextId = state.nextId;
  for (const event of events) {
    if (LIFECYCLE_TYPES.has(event.type)) {
      open = null;
      const id = nextId++;
      touched.set(id, { id, kind: "lifecycle", type: event.type, first_offset: event.offset, last_offset: event.offset, event_count: 1 });
      continue;
    }
    if (open && open.type === event.type && open.count < MAX_GROUP_EVENTS) {
      open.lastOffset = event.offset;
      open.count += 1;
    } else {
      open = { id: nextId++, type: event.type, firstOffset: event.offset, lastOffset: event.offset, count: 1 };
    }
    touched.set(open.id, {
      id: open.id,
      kind: "group",
      type: open.type,
      first_offset: open.firstOffset,
      last_offset: open.lastOffset,
      event_count: open.count,
    });
  }
  return { state: { open, nextId }, rows: [...touched.values()] };
}

/** The event-feed processor, for `openStream({processors: [eventFeed()]})`; it writes `feed_items`. */
export function eventFeed(): BrowserProcessor<FeedState> {
  return {
    slug: EVENT_FEED_SLUG,
    version: 1,
    tables: ["feed_items"],
    schema: [
      `CREATE TABLE IF NOT EXISTS feed_items (
         id INTEGER PRIMARY KEY,
         kind TEXT NOT NULL,
         type TEXT NOT NULL,
         first_offset INTEGER NOT NULL,
         last_offset INTEGER NOT NULL,
         event_count INTEGER NOT NULL)`,
    ],
    initialState: { open: null, nextId: 0 },
    apply(state, events) {
      const planned = planFeed(state, events);
      const statements: SqlStatement[] = planned.rows.map((r) => ({
        sql: UPSERT,
        params: [r.id, r.kind, r.type, r.first_offset, r.last_offset, r.event_count],
      }));
      return { state: planned.state, statements };
    },
  };
}
