// The events list: virtualised (only the visible rows are in the DOM), pinned to the tail while
// events arrive unless the user scrolled away, then a badge counts the new ones.
import type { EventRow, StreamStore } from "@streams/client/browser";
import { useVirtualizer } from "@tanstack/react-virtual";
import { useEffect, useLayoutEffect, useMemo, useRef, useState, type ReactNode } from "react";
import { counted, eventKind, isPresence, shortType, typeHue } from "./events";
import { ALL_EVENTS, alignedWindow, useEventCount, useEventTail, useEventWindow, useTypeCounts, type EventFilter } from "./queries";

const ROW_HEIGHT = 30;
/** Distance from the end (px) that still counts as "at the tail". */
const TAIL_THRESHOLD = 40;
const CACHE_MARGIN = 256;

interface Props {
  store: StreamStore;
  /** The mirror's clear version: a discarded mirror starts a fresh list. */
  clearVersion: number;
  filter: EventFilter;
  onFilterChange: (filter: EventFilter) => void;
  compact?: boolean;
}

/** "N events", or what the filter keeps of them (docs/viewer.md#events-view). */
function countText(filter: EventFilter, shown: number, total: number): string {
  if (filter.type !== null) return `${counted(shown, "filtered event")} / ${counted(total, "total event")}`;
  if (filter.hidePresence && total > shown) return `${counted(shown, "event")}, ${counted(total - shown, "presence event")} hidden`;
  return counted(total, "event");
}

export function EventsView({ store, clearVersion, filter, onFilterChange, compact = false }: Props) {
  const total = useEventCount(store, ALL_EVENTS);
  const shown = useEventCount(store, filter);
  const listed = useEventCount(store, { type: null, hidePresence: filter.hidePresence });
  const types = useTypeCounts(store).filter((t) => !filter.hidePresence || !isPresence(t.type) || t.type === filter.type);
  const { type } = filter;
  const toolbar = (
    <>
      <select
        data-testid="event-type-filter"
        aria-label="Event type filter"
        value={type ?? ""}
        onChange={(event) => onFilterChange({ ...filter, type: event.target.value === "" ? null : event.target.value })}
      >
        <option value="">All event types ({listed})</option>
        {types.map((t) => (
          <option key={t.type} value={t.type}>
            {t.type} ({Number(t.count)})
          </option>
        ))}
        {type !== null && !types.some((t) => t.type === type) && <option value={type}>{type} (0)</option>}
      </select>
      <label className="toggle">
        <input
          type="checkbox"
          data-testid="presence-toggle"
          checked={!filter.hidePresence}
          onChange={(event) => onFilterChange({ ...filter, hidePresence: !event.target.checked })}
        />
        presence events
      </label>
      <span className="count-text" data-testid="filter-count">
        {countText(filter, shown, total)}
      </span>
    </>
  );
  return (
    <section className={`events-view${compact ? " compact" : ""}`} aria-label="Events">
      <EventList key={`${clearVersion}\u0000${type ?? ""}\u0000${filter.hidePresence}`} store={store} filter={filter} toolbar={toolbar} />
    </section>
  );
}

function EventList({ store, filter, toolbar }: { store: StreamStore; filter: EventFilter; toolbar: ReactNode }) {
  const tail = useEventTail(store, filter);
  const count = tail.count;
  const scrollerRef = useRef<HTMLDivElement>(null);
  const [expanded, setExpanded] = useState<ReadonlySet<number>>(() => new Set());
  /** The list length when the user left the tail; null while at the tail. */
  const [awayFrom, setAwayFrom] = useState<number | null>(null);
  const countRef = useRef(count);
  countRef.current = count;
  const lastScrollTop = useRef(0);

  const virtualizer = useVirtualizer<HTMLDivElement, HTMLDivElement>({
    count,
    getScrollElement: () => scrollerRef.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 12,
    anchorTo: "end",
    followOnAppend: true,
    scrollEndThreshold: TAIL_THRESHOLD,
  });
  const items = virtualizer.getVirtualItems();
  const [start, end] = alignedWindow(items[0]?.index ?? 0, items[items.length - 1]?.index ?? 0);
  const windowRows = useEventWindow(store, filter, start, end, count);

  // Rows already read stay drawn while the next window's query runs (no flash of empty rows).
  const cache = useRef(new Map<number, EventRow>());
  const rows = useMemo(() => {
    for (const [index, row] of tail.rows) cache.current.set(index, row);
    for (const [index, row] of windowRows) cache.current.set(index, row);
    for (const index of cache.current.keys()) {
      if (index < start - CACHE_MARGIN || index >= end + CACHE_MARGIN || index >= count) cache.current.delete(index);
    }
    return cache.current;
  }, [tail.rows, windowRows, start, end, count]);

  const firstRowMarked = useRef(false);
  useEffect(() => {
    if (!firstRowMarked.current && rows.size > 0) {
      firstRowMarked.current = true;
      performance.mark("viewer:first-event-row");
    }
  }, [rows.size]);

  // Open at the tail (once, when the list mounts).
  useLayoutEffect(() => {
    if (count > 0) virtualizer.scrollToIndex(count - 1, { align: "end" });
  }, []);

  const onScroll = (): void => {
    const el = scrollerRef.current;
    if (!el) return;
    const fromEnd = el.scrollHeight - el.clientHeight - el.scrollTop;
    if (fromEnd <= TAIL_THRESHOLD) setAwayFrom(null);
    else if (el.scrollTop < lastScrollTop.current - 1) setAwayFrom((away) => away ?? countRef.current);
    lastScrollTop.current = el.scrollTop;
  };

  const toTop = (): void => {
    setAwayFrom((away) => away ?? countRef.current);
    virtualizer.scrollToIndex(0, { align: "start" });
  };
  const toBottom = (): void => {
    setAwayFrom(null);
    if (countRef.current > 0) virtualizer.scrollToIndex(countRef.current - 1, { align: "end" });
  };

  const toggle = (offset: number): void =>
    setExpanded((open) => {
      const next = new Set(open);
      if (!next.delete(offset)) next.add(offset);
      return next;
    });

  const newEvents = awayFrom === null ? 0 : Math.max(0, count - awayFrom);
  return (
    <div className="event-list">
      <div className="filter-bar" data-testid="event-type-filter-bar">
        {toolbar}
        <span className="scroll-controls">
          <button type="button" data-testid="scroll-to-top" onClick={toTop} disabled={count === 0}>
            Scroll to top
          </button>
          <button type="button" data-testid="scroll-to-bottom" onClick={toBottom} disabled={count === 0}>
            Scroll to bottom
            {newEvents > 0 && (
              <span className="badge" data-testid="new-events-badge">
                {counted(newEvents, "new event")}
              </span>
            )}
          </button>
        </span>
      </div>
      <div ref={scrollerRef} className="scroller" data-testid="stream-events" onScroll={onScroll}>
        {count === 0 && <p className="empty">{filter.type === null ? "No events in the local mirror yet." : "No events of this type."}</p>}
        <div className="sizer" style={{ height: virtualizer.getTotalSize() }}>
          {items.map((item) => {
            const row = rows.get(item.index);
            return (
              <div
                key={item.key}
                ref={virtualizer.measureElement}
                data-index={item.index}
                className="row-slot"
                style={{ transform: `translateY(${item.start}px)` }}
              >
                {row ? (
                  <EventRowView row={row} open={expanded.has(Number(row.offset))} onToggle={toggle} />
                ) : (
                  <div className="event-row pending" data-testid="event-row-pending" />
                )}
              </div>
            );
          })}
        </div>
      </div>
    </div>
  );
}

/** The type as a coloured label: caller types get a hue of their own, the stream's own types are muted. */
export function TypeLabel({ type }: { type: string }) {
  const kind = eventKind(type);
  return (
    <span className={`type kind-${kind}`} title={type} style={kind === "app" ? { ["--hue" as string]: typeHue(type) } : undefined}>
      {shortType(type)}
    </span>
  );
}

function EventRowView({ row, open, onToggle }: { row: EventRow; open: boolean; onToggle: (offset: number) => void }) {
  const offset = Number(row.offset);
  return (
    <div className="event-row" data-testid="event-row" data-event-offset={offset} data-event-type={row.type}>
      <button type="button" className="event-meta" aria-expanded={open} onClick={() => onToggle(offset)}>
        <span className="offset">#{offset}</span>
        <TypeLabel type={row.type} />
        <time dateTime={row.created_at}>{row.created_at.slice(11, 23)}</time>
        {row.idempotency_key !== null && <span className="key">{row.idempotency_key}</span>}
      </button>
      {open && (
        <pre className="json" data-testid="event-json">
          {JSON.stringify(JSON.parse(row.json), null, 2)}
        </pre>
      )}
    </div>
  );
}
