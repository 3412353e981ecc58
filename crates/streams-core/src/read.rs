//! Reads by time, from the tail and by type (docs/protocol.md#getevents-by-time-tail-and-type):
//! where a `getEvents` page starts, which offsets it examines, and which of
//! them it returns. `createdAt` never goes backwards within a stream
//! (`MonotonicClock`), so the first event at or after a time is found by
//! binary search over offsets: O(log n) point reads, no index to maintain.

use std::cell::Cell;

use super::store::{EventStore, StoreError, StoredEvent};
use super::subscription::{event_type_of, EventFilter};
use super::time::parse_rfc3339_ms;

/// Where a `getEvents` page starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Start {
    /// After this offset.
    After(u64),
    /// At the first event with `createdAt` at or after these epoch milliseconds.
    SinceMs(f64),
    /// The last this many events (before `beforeOffset`, when given).
    Last(u64),
}

/// The offsets a page examines: `after < offset < before`, at most `limit` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub after: u64,
    pub before: Option<u64>,
    pub limit: usize,
}

impl Window {
    /// Whether every offset the window may examine exists, so a page that
    /// is empty now stays empty: a long-poll stops waiting.
    pub fn is_complete(&self, max: u64) -> bool {
        let end = self.after.saturating_add(self.limit as u64);
        max >= self.before.map_or(end, |b| end.min(b.saturating_sub(1)))
    }
}

/// The page of `window` that `filter` keeps, stopping before `max_bytes` of
/// JSON (the first match always comes). With a filter the whole window is
/// examined, page by page, unless the matches fill the byte cap first: so an
/// empty result means no offset of the window matched, and the caller
/// continues after `after + limit`.
pub fn read_page<S: EventStore + ?Sized>(store: &S, window: &Window, filter: &EventFilter, max_bytes: usize) -> Result<Vec<StoredEvent>, StoreError> {
    if filter.0.is_none() {
        return store.read_range(window.after, window.before, window.limit, max_bytes);
    }
    let mut read = FilteredRead::new(*window);
    read.read_on(store, filter, max_bytes)?;
    Ok(read.into_events())
}

/// `read_page` with a filter, keeping its place when a read fails: a caller that fetches the
/// archived segment a read missed reads on from there instead of from the window's start, so
/// each segment of the window is read once (docs/architecture.md#storage-tiers).
#[derive(Debug, Clone, PartialEq)]
pub struct FilteredRead {
    window: Window,
    /// The last offset examined, and how many more the window may examine.
    after: u64,
    remaining: usize,
    kept: Vec<StoredEvent>,
    bytes: usize,
    full: bool,
}

impl FilteredRead {
    pub fn new(window: Window) -> Self {
        Self { window, after: window.after, remaining: window.limit, kept: Vec::new(), bytes: 0, full: false }
    }

    pub fn window(&self) -> &Window {
        &self.window
    }

    /// The last offset examined so far.
    pub fn reached(&self) -> u64 {
        self.after
    }

    /// Examines the rest of the window, or until the matches fill `max_bytes`. A read that
    /// fails leaves the pages before it examined.
    pub fn read_on<S: EventStore + ?Sized>(&mut self, store: &S, filter: &EventFilter, max_bytes: usize) -> Result<(), StoreError> {
        while self.remaining > 0 && !self.full {
            let page = store.read_range(self.after, self.window.before, self.remaining, max_bytes)?;
            let Some(last) = page.last() else { break };
            (self.after, self.remaining) = (last.offset, self.remaining.saturating_sub(page.len()));
            for event in keep_types(page, filter) {
                if !self.kept.is_empty() && self.bytes + event.json.len() > max_bytes {
                    self.full = true;
                    break;
                }
                self.bytes += event.json.len();
                self.kept.push(event);
            }
        }
        Ok(())
    }

    pub fn into_events(self) -> Vec<StoredEvent> {
        self.kept
    }
}

/// The window of a page over a log whose kept offsets are `first..=max`.
/// A time before the first kept event or a tail longer than what is kept
/// starts at the kept part; neither is an error.
pub fn window<S: EventStore + ?Sized>(
    store: &S,
    start: Start,
    before: Option<u64>,
    limit: usize,
    first: u64,
    max: u64,
) -> Result<Window, StoreError> {
    let kept_before = first.saturating_sub(1);
    let after = match start {
        Start::After(after) => after,
        Start::SinceMs(since) => first_offset_since(store, since, first, max)?.saturating_sub(1).max(kept_before),
        Start::Last(n) => {
            let end = before.map_or(max, |b| b.saturating_sub(1).min(max));
            end.saturating_sub(n).max(kept_before)
        }
    };
    Ok(Window { after, before, limit })
}

/// The first offset in `first..=max` whose event has `createdAt ≥ since_ms`,
/// or `max + 1` when there is none.
pub fn first_offset_since<S: EventStore + ?Sized>(store: &S, since_ms: f64, first: u64, max: u64) -> Result<u64, StoreError> {
    let (mut lo, mut hi) = (first.max(1), max + 1);
    // An archive narrows the search to one segment (or the hot tier), so it fetches at most one.
    if let Some((from, to)) = store.since_bounds(since_ms) {
        lo = lo.max(from).min(hi);
        hi = hi.min(to).max(lo);
    }
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        // An offset that cannot be read (or dated) counts as early: the
        // search then settles on a readable neighbour.
        let at = store.event_at(mid)?.and_then(|e| created_at_ms(&e.json));
        if at.is_some_and(|t| t >= since_ms) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(lo)
}

/// The events of a read page that a filter keeps.
pub fn keep_types(page: Vec<StoredEvent>, filter: &EventFilter) -> Vec<StoredEvent> {
    if filter.0.is_none() {
        return page;
    }
    page.into_iter().filter(|e| event_type_of(e).is_some_and(|t| filter.matches(&t))).collect()
}

/// `createdAt` of committed JSON. It is the last key the stream writes, so the
/// tail is read first; anything else is parsed in full.
pub fn created_at_ms(json: &str) -> Option<f64> {
    const KEY: &str = "\"createdAt\":\"";
    let tail = json.strip_suffix("\"}").and_then(|rest| rest.rfind(KEY).map(|i| &rest[i + KEY.len()..]));
    if let Some(time) = tail.filter(|t| !t.contains('"')) {
        return parse_rfc3339_ms(time);
    }
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    value.get("createdAt")?.as_str().and_then(parse_rfc3339_ms)
}

/// The stream's clock: the wall clock, but never earlier than the last
/// `createdAt` written, across restarts too (the boot seeds it from the last
/// stored event), so a time read can binary-search.
#[derive(Debug, Default)]
pub struct MonotonicClock {
    floor_ms: Cell<f64>,
}

impl MonotonicClock {
    /// Remembers a time already written (the last stored event's).
    pub fn observe(&self, ms: f64) {
        if ms > self.floor_ms.get() {
            self.floor_ms.set(ms);
        }
    }

    /// The latest time observed or handed out: the last event's `createdAt`.
    pub fn last_ms(&self) -> f64 {
        self.floor_ms.get()
    }

    /// The time for the next event, given the wall clock.
    pub fn now(&self, wall_ms: f64) -> f64 {
        let now = if wall_ms.is_finite() { wall_ms.max(self.floor_ms.get()) } else { self.floor_ms.get() };
        self.floor_ms.set(now);
        now
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{event, MemStore};
    use crate::time::iso_from_ms;
    use serde_json::json;

    fn store_with_times(times: &[f64]) -> MemStore {
        let store = MemStore::default();
        let events: Vec<_> = times
            .iter()
            .enumerate()
            .map(|(i, t)| event(i as u64 + 1, if i % 2 == 0 { "app/even" } else { "app/odd" }, json!({"i": i}), &iso_from_ms(*t).unwrap()))
            .collect();
        store.put_events(&events);
        store
    }

    #[test]
    fn the_first_event_at_or_after_a_time_is_found_by_search() {
        let times = [1000.0, 1000.0, 2000.0, 2000.0, 2000.0, 5000.0];
        let store = store_with_times(&times);
        for (since, want) in [(0.0, 1), (1000.0, 1), (1001.0, 3), (2000.0, 3), (4999.0, 6), (5000.0, 6), (5001.0, 7)] {
            assert_eq!(first_offset_since(&store, since, 1, 6).unwrap(), want, "since {since}");
        }
        assert_eq!(first_offset_since(&store, 0.0, 4, 6).unwrap(), 4, "starts at the first kept offset");
    }

    #[test]
    fn the_search_reads_logarithmically_many_events() {
        let times: Vec<f64> = (0..4096).map(|i| f64::from(i) * 10.0).collect();
        let store = store_with_times(&times);
        assert_eq!(first_offset_since(&store, 20_000.0, 1, 4096).unwrap(), 2001);
        assert!(store.point_reads.get() <= 13, "{} reads", store.point_reads.get());
    }

    #[test]
    fn windows_start_after_an_offset_at_a_time_or_at_the_tail() {
        let store = store_with_times(&[1000.0, 2000.0, 3000.0, 4000.0, 5000.0]);
        let w = |start, before| window(&store, start, before, 100, 1, 5).unwrap().after;
        assert_eq!(w(Start::After(2), None), 2);
        assert_eq!(w(Start::SinceMs(2500.0), None), 2);
        assert_eq!(w(Start::SinceMs(9000.0), None), 5, "nothing yet: after the last event");
        assert_eq!(w(Start::Last(2), None), 3);
        assert_eq!(w(Start::Last(2), Some(4)), 1, "the last two before offset 4");
        assert_eq!(w(Start::Last(50), None), 0, "more than there is: from the start");
        let trimmed = |start| window(&store, start, None, 100, 3, 5).unwrap().after;
        assert_eq!(trimmed(Start::Last(50)), 2, "a tail longer than what is kept starts at the first kept offset");
        assert_eq!(trimmed(Start::SinceMs(0.0)), 2, "a time before the first kept event too");
    }

    #[test]
    fn a_filtered_read_that_misses_a_segment_reads_on_from_where_it_stood() {
        let times: Vec<f64> = (0..1000).map(f64::from).collect();
        let store = store_with_times(&times);
        let odd = EventFilter::from_types(["app/odd".to_owned()]);
        let window = Window { after: 0, before: None, limit: 1000 };
        let whole = read_page(&store, &window, &odd, usize::MAX).unwrap();
        let rows = store.rows_read.get();
        store.short_pages.set(true);
        let mut read = FilteredRead::new(window);
        let mut misses = 0;
        // An archived segment of 20 events not yet fetched every 20 offsets: 49 misses.
        store.miss_at.set(Some(21));
        while let Err(err) = read.read_on(&store, &odd, usize::MAX) {
            assert!(err.is_pending());
            misses += 1;
            store.miss_at.set(Some(read.reached() + 21).filter(|&at| at <= 1000));
        }
        assert_eq!(misses, 49);
        assert_eq!(read.into_events(), whole, "the same page");
        assert_eq!(store.rows_read.get() - rows, 1000, "each event examined once");
    }

    #[test]
    fn a_filter_keeps_only_its_types() {
        let store = store_with_times(&[1.0, 2.0, 3.0]);
        let page = store.read_range(0, None, 10, usize::MAX).unwrap();
        let odd = keep_types(page.clone(), &EventFilter::from_types(["app/odd".to_owned()]));
        assert_eq!(odd.iter().map(|e| e.offset).collect::<Vec<_>>(), vec![2]);
        assert_eq!(keep_types(page, &EventFilter::default()).len(), 3);
    }

    #[test]
    fn a_filtered_page_examines_its_whole_window_and_no_more() {
        let store = store_with_times(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let odd = EventFilter::from_types(["app/odd".to_owned()]);
        let offsets = |w: Window, max_bytes| read_page(&store, &w, &odd, max_bytes).unwrap().iter().map(|e| e.offset).collect::<Vec<_>>();
        assert_eq!(offsets(Window { after: 0, before: None, limit: 4 }, usize::MAX), vec![2, 4]);
        assert_eq!(offsets(Window { after: 0, before: None, limit: 4 }, 1), vec![2], "the byte cap still lets the first match through");
        assert_eq!(offsets(Window { after: 0, before: None, limit: 1 }, usize::MAX), Vec::<u64>::new(), "offset 1 only");
        assert_eq!(offsets(Window { after: 2, before: Some(4), limit: 100 }, usize::MAX), Vec::<u64>::new());
        let w = Window { after: 0, before: None, limit: 4 };
        assert!(w.is_complete(4) && !w.is_complete(3));
        assert!(Window { after: 0, before: Some(3), limit: 100 }.is_complete(2));
    }

    #[test]
    fn created_at_is_read_from_the_tail_or_by_parsing() {
        assert_eq!(created_at_ms(r#"{"type":"x","offset":1,"createdAt":"1970-01-01T00:00:01.000Z"}"#), Some(1000.0));
        assert_eq!(created_at_ms(r#"{"createdAt":"1970-01-01T00:00:02.000Z","type":"x"}"#), Some(2000.0));
        assert_eq!(created_at_ms("<damaged event>"), None);
    }

    #[test]
    fn the_clock_never_goes_backwards() {
        let clock = MonotonicClock::default();
        clock.observe(5000.0);
        assert_eq!(clock.now(4000.0), 5000.0, "a wall clock behind the last event");
        assert_eq!(clock.now(6000.0), 6000.0);
        assert_eq!(clock.now(5500.0), 6000.0);
        assert_eq!(clock.now(f64::NAN), 6000.0);
    }
}
