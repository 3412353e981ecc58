// The event feed: runs of one type as groups, lifecycle markers, child-stream cards.
import type { StreamStore } from "@streams/client/browser";
import { useVirtualizer } from "@tanstack/react-virtual";
import { useRef, useState } from "react";
import { counted, SYSTEM_PREFIX } from "./events";
import { TypeLabel } from "./EventsView";
import { alignedWindow, useFeedCount, useFeedWindow, type FeedRow } from "./queries";
import { navigate, routeHref, streamRoute } from "./route";

const LIFECYCLE_LABELS: Record<string, string> = {
  [`${SYSTEM_PREFIX}created`]: "Stream created",
  [`${SYSTEM_PREFIX}woken`]: "Stream woke up",
};
const CHILD_CREATED = `${SYSTEM_PREFIX}child-stream-created`;

interface Props {
  store: StreamStore;
  namespace: string;
  hidePresence: boolean;
  onPresenceChange: (hidePresence: boolean) => void;
}

export function FeedView({ store, namespace, hidePresence, onPresenceChange }: Props) {
  const count = useFeedCount(store, hidePresence);
  const scrollerRef = useRef<HTMLDivElement>(null);
  const [expanded, setExpanded] = useState<ReadonlySet<number>>(() => new Set());
  const virtualizer = useVirtualizer<HTMLDivElement, HTMLDivElement>({
    count,
    getScrollElement: () => scrollerRef.current,
    estimateSize: () => 44,
    overscan: 8,
    anchorTo: "end",
    followOnAppend: true,
    scrollEndThreshold: 40,
  });
  const items = virtualizer.getVirtualItems();
  const [start, end] = alignedWindow(items[0]?.index ?? 0, items[items.length - 1]?.index ?? 0);
  const rows = useFeedWindow(store, hidePresence, start, end);
  const toggle = (id: number): void =>
    setExpanded((open) => {
      const next = new Set(open);
      if (!next.delete(id)) next.add(id);
      return next;
    });
  return (
    <section className="feed-view" aria-label="Event feed">
      <div className="filter-bar">
        <label className="toggle">
          <input type="checkbox" data-testid="presence-toggle" checked={!hidePresence} onChange={(event) => onPresenceChange(!event.target.checked)} />
          presence events
        </label>
        <span className="count-text" data-testid="feed-item-count">
          {counted(count, "feed item")}
        </span>
      </div>
      <div ref={scrollerRef} className="scroller" data-testid="stream-feed">
        <div className="sizer" style={{ height: virtualizer.getTotalSize() }}>
          {items.map((item) => {
            const row = rows.get(item.index);
            return (
              <div key={item.key} ref={virtualizer.measureElement} data-index={item.index} className="row-slot" style={{ transform: `translateY(${item.start}px)` }}>
                {row ? <FeedItem row={row} namespace={namespace} open={expanded.has(row.id)} onToggle={toggle} /> : <div className="feed-item pending" />}
              </div>
            );
          })}
        </div>
      </div>
    </section>
  );
}

function childPathOf(row: FeedRow): string | null {
  if (row.json === null) return null;
  const payload = (JSON.parse(row.json) as { payload?: { childPath?: unknown } }).payload;
  return typeof payload?.childPath === "string" ? payload.childPath : null;
}

function FeedItem({ row, namespace, open, onToggle }: { row: FeedRow; namespace: string; open: boolean; onToggle: (id: number) => void }) {
  const common = {
    "data-testid": "feed-item",
    "data-kind": row.kind,
    "data-event-type": row.type,
    "data-first-offset": row.first_offset,
    "data-last-offset": row.last_offset,
    "data-event-count": row.event_count,
  };
  if (row.type === CHILD_CREATED) {
    const child = childPathOf(row);
    return (
      <div {...common} className="feed-item child-card">
        <strong>Child stream created</strong> <span className="offset">#{row.first_offset}</span>
        {child !== null && (
          <a
            href={routeHref(streamRoute(namespace, child, "feed"))}
            data-testid="feed-child-stream-link"
            onClick={(event) => {
              event.preventDefault();
              navigate(streamRoute(namespace, child, "feed"));
            }}
          >
            Open {child}
          </a>
        )}
      </div>
    );
  }
  if (row.kind === "lifecycle") {
    return (
      <div {...common} className="feed-item lifecycle">
        <span data-testid="feed-lifecycle-marker">
          {LIFECYCLE_LABELS[row.type] ?? row.type.replace(SYSTEM_PREFIX, "")} <span className="offset">#{row.first_offset}</span>
        </span>
      </div>
    );
  }
  const range = row.first_offset === row.last_offset ? `#${row.first_offset}` : `#${row.first_offset}–${row.last_offset}`;
  return (
    <div {...common} className="feed-item group">
      <button type="button" className="event-meta" aria-expanded={open} onClick={() => onToggle(row.id)}>
        <span className="offset">{range}</span>
        <TypeLabel type={row.type} />
        <span className="count">{counted(row.event_count, "event")}</span>
      </button>
      {open && row.json !== null && (
        <pre className="json" data-testid="feed-item-json">
          {JSON.stringify(JSON.parse(row.json), null, 2)}
        </pre>
      )}
    </div>
  );
}
