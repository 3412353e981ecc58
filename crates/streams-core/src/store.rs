//! The storage port and the load/rebuild/catch-up procedure over it (docs/architecture.md#storage).
//! The adapter implements `EventStore` over DO SQLite; tests use `MemStore`.

use std::cell::RefCell;
use std::fmt;

use super::event::{types, Event};
use super::name::StreamName;
use super::payload::{parse_core_payload, CorePayload};
use super::limits::{REPLAY_PAGE_EVENTS, STATE_SNAPSHOT_EVERY};
use super::reducer::reduce;
use super::state::{CoreState, CORE_STATE_VERSION};

/// A storage failure; callers see `internal`, the log gets this text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

/// Marks a read that must wait for data fetched from elsewhere (an archived
/// segment): nothing is wrong, and the caller tries again once it is there.
const PENDING: &str = "not loaded yet: ";

impl StoreError {
    pub fn pending(what: impl fmt::Display) -> Self {
        Self(format!("{PENDING}{what}"))
    }

    pub fn is_pending(&self) -> bool {
        self.0.starts_with(PENDING)
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "storage: {}", self.0)
    }
}

/// An event as stored: its offset and its committed JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub offset: u64,
    pub json: String,
}

/// An event to insert, borrowed from the plan: its offset, its key and its JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewEvent<'a> {
    pub offset: u64,
    pub idempotency_key: Option<&'a str>,
    pub json: &'a str,
}

/// What `core_state` holds: the version of every row, and the reassembled JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredState {
    /// `None` when the rows disagree on their version.
    pub version: Option<i64>,
    /// `None` when the bytes are not UTF-8.
    pub json: Option<String>,
}

/// The storage port. Every method is synchronous: DO SQLite is.
pub trait EventStore {
    /// The highest stored offset, 0 for an empty log.
    fn max_offset(&self) -> Result<u64, StoreError>;
    /// Events with `after < offset < before`, ascending, at most `limit` of
    /// them, stopping before `max_bytes` of JSON (the first event always comes).
    fn read_range(&self, after: u64, before: Option<u64>, limit: usize, max_bytes: usize) -> Result<Vec<StoredEvent>, StoreError>;
    fn event_at(&self, offset: u64) -> Result<Option<StoredEvent>, StoreError>;
    fn event_by_idempotency_key(&self, key: &str) -> Result<Option<StoredEvent>, StoreError>;
    /// `None` when there are no state rows.
    fn read_state(&self) -> Result<Option<StoredState>, StoreError>;
    /// Inserts `events` and, when given, replaces the state, atomically: all
    /// or nothing.
    fn commit(&self, events: &[NewEvent<'_>], state_json: Option<&str>) -> Result<(), StoreError>;
    /// Replaces the state rows alone, atomically.
    fn write_state(&self, state_json: &str) -> Result<(), StoreError>;
    /// Offsets `lo..hi` known to hold the first event with `createdAt` at or
    /// after `since_ms`, from what the store knows without reading events
    /// (an archive's segment times); `None`: anywhere.
    fn since_bounds(&self, _since_ms: f64) -> Option<(u64, u64)> {
        None
    }
    /// The newest kept snapshot of the state right after an offset at or
    /// below `offset`: that offset and the state's JSON (docs/protocol.md#getstate).
    /// A store that keeps no history has none.
    fn snapshot_at_or_below(&self, _offset: u64) -> Result<Option<(u64, String)>, StoreError> {
        Ok(None)
    }
    /// The first kept offset: retention removed every offset below it (docs/protocol.md#retention).
    fn first_offset(&self) -> u64 {
        1
    }
}

/// A store whose idempotency lookups all miss. Planning against it suits a
/// log whose unique key index refuses a commit that repeats a stored key: the
/// caller then plans again against the store itself, so the lookup is paid
/// only by a repeat, not by every keyed append.
pub struct AssumeNewKeys<'a, S: ?Sized>(pub &'a S);

impl<S: EventStore + ?Sized> EventStore for AssumeNewKeys<'_, S> {
    fn max_offset(&self) -> Result<u64, StoreError> {
        self.0.max_offset()
    }
    fn read_range(&self, after: u64, before: Option<u64>, limit: usize, max_bytes: usize) -> Result<Vec<StoredEvent>, StoreError> {
        self.0.read_range(after, before, limit, max_bytes)
    }
    fn event_at(&self, offset: u64) -> Result<Option<StoredEvent>, StoreError> {
        self.0.event_at(offset)
    }
    fn event_by_idempotency_key(&self, _key: &str) -> Result<Option<StoredEvent>, StoreError> {
        Ok(None)
    }
    fn read_state(&self) -> Result<Option<StoredState>, StoreError> {
        self.0.read_state()
    }
    fn commit(&self, events: &[NewEvent<'_>], state_json: Option<&str>) -> Result<(), StoreError> {
        self.0.commit(events, state_json)
    }
    fn write_state(&self, state_json: &str) -> Result<(), StoreError> {
        self.0.write_state(state_json)
    }
}

/// The last small page a pump read, for the next pump at the same place:
/// when many sockets stand at one cursor (a wake, an append they all wait
/// for), the page is read from storage once instead of once per socket.
#[derive(Debug, Default)]
pub struct SharedPage(RefCell<Option<(PageKey, Vec<StoredEvent>)>>);

/// `read_range`'s arguments with the log's ends: a page is the same page
/// only while no commit and no trim moved them.
type PageKey = (u64, Option<u64>, usize, usize, u64, u64);

impl SharedPage {
    /// Pages up to this size are kept (a replay's large pages are not).
    pub const MAX_BYTES: usize = 64 * 1024;

    /// `store` seen through this page, for a log whose last offset is `max_offset`.
    pub fn over<'a, S: EventStore + ?Sized>(&'a self, store: &'a S, max_offset: u64) -> PageShared<'a, S> {
        PageShared { store, page: self, max_offset }
    }

    pub fn clear(&self) {
        self.0.borrow_mut().take();
    }
}

/// A store whose `read_range` goes through a `SharedPage`; everything else goes to the store.
pub struct PageShared<'a, S: ?Sized> {
    store: &'a S,
    page: &'a SharedPage,
    max_offset: u64,
}

impl<S: EventStore + ?Sized> EventStore for PageShared<'_, S> {
    fn max_offset(&self) -> Result<u64, StoreError> {
        self.store.max_offset()
    }
    fn read_range(&self, after: u64, before: Option<u64>, limit: usize, max_bytes: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let key = (after, before, limit, max_bytes, self.max_offset, self.store.first_offset());
        if let Some((_, page)) = self.page.0.borrow().as_ref().filter(|(k, _)| *k == key) {
            return Ok(page.clone());
        }
        let page = self.store.read_range(after, before, limit, max_bytes)?;
        let small = page.iter().map(|e| e.json.len()).sum::<usize>() <= SharedPage::MAX_BYTES;
        *self.page.0.borrow_mut() = small.then(|| (key, page.clone()));
        Ok(page)
    }
    fn event_at(&self, offset: u64) -> Result<Option<StoredEvent>, StoreError> {
        self.store.event_at(offset)
    }
    fn event_by_idempotency_key(&self, key: &str) -> Result<Option<StoredEvent>, StoreError> {
        self.store.event_by_idempotency_key(key)
    }
    fn read_state(&self) -> Result<Option<StoredState>, StoreError> {
        self.store.read_state()
    }
    fn commit(&self, events: &[NewEvent<'_>], state_json: Option<&str>) -> Result<(), StoreError> {
        self.page.clear();
        self.store.commit(events, state_json)
    }
    fn write_state(&self, state_json: &str) -> Result<(), StoreError> {
        self.store.write_state(state_json)
    }
    fn since_bounds(&self, since_ms: f64) -> Option<(u64, u64)> {
        self.store.since_bounds(since_ms)
    }
    fn snapshot_at_or_below(&self, offset: u64) -> Result<Option<(u64, String)>, StoreError> {
        self.store.snapshot_at_or_below(offset)
    }
    fn first_offset(&self) -> u64 {
        self.store.first_offset()
    }
}

/// What `load_state` did, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadKind {
    Current,
    CaughtUp,
    Rebuilt,
}

/// Whether a commit that moves the last offset from `before` to `after` must
/// also store the state: when it crosses a multiple of `STATE_SNAPSHOT_EVERY`.
/// Between snapshots the stored state lags the log by fewer offsets than that,
/// and boot catches up over them.
pub fn snapshot_due(before: u64, after: u64) -> bool {
    before / STATE_SNAPSHOT_EVERY != after / STATE_SNAPSHOT_EVERY
}

/// Loads the current state: the stored snapshot, caught up over the events
/// after it, or a rebuild from offset 1 when the snapshot is missing, at
/// another version, unreadable or ahead of the log; a rebuilt state is written
/// back. Replay has no side effects. `warn` receives unreducible events.
pub fn load_state<S: EventStore + ?Sized>(store: &S, warn: &mut dyn FnMut(String)) -> Result<(CoreState, LoadKind), StoreError> {
    let stored = store.read_state()?.and_then(|s| match (s.version, s.json) {
        (Some(CORE_STATE_VERSION), Some(json)) => CoreState::from_json(&json).ok(),
        _ => None,
    });
    let max = store.max_offset()?;
    let (mut state, kind) = match stored {
        Some(state) if state.max_offset == max => return Ok((state, LoadKind::Current)),
        Some(state) if state.max_offset < max => (state, LoadKind::CaughtUp),
        _ => (CoreState::default(), LoadKind::Rebuilt),
    };
    let mut after = state.max_offset;
    loop {
        let page = store.read_range(after, None, REPLAY_PAGE_EVENTS, usize::MAX)?;
        let Some(last) = page.last() else { break };
        after = last.offset;
        for stored in &page {
            replay(&mut state, stored, warn);
        }
    }
    if kind == LoadKind::Rebuilt && max > 0 {
        store.write_state(&state.to_json())?;
    }
    Ok((state, kind))
}

/// Where the state right after `offset` is rebuilt from (`replay_until` then
/// replays at most `STATE_SNAPSHOT_EVERY` events, the whole log when no
/// snapshot is kept): the nearest snapshot at or below `offset`, else the initial state.
pub fn state_before<S: EventStore + ?Sized>(store: &S, offset: u64) -> Result<CoreState, StoreError> {
    let snapshot = store.snapshot_at_or_below(offset)?.and_then(|(at, json)| CoreState::from_json(&json).ok().filter(|s| s.max_offset == at));
    Ok(snapshot.unwrap_or_default())
}

/// Replays the events after `state` up to `offset` into it. A read that fails leaves `state`
/// at the last page replayed, so a caller that fetches a missing archived segment resumes
/// there instead of from the snapshot (which would need every segment cached at once).
pub fn replay_until<S: EventStore + ?Sized>(store: &S, state: &mut CoreState, offset: u64, warn: &mut dyn FnMut(String)) -> Result<(), StoreError> {
    let mut after = state.max_offset;
    while after < offset {
        let page = store.read_range(after, Some(offset + 1), REPLAY_PAGE_EVENTS, usize::MAX)?;
        // A gap (events removed by retention) ends the replay short of `offset`.
        let Some(last) = page.last().filter(|_| page[0].offset == after + 1) else { break };
        after = last.offset;
        for stored in &page {
            replay(state, stored, warn);
        }
    }
    Ok(())
}

/// Decides, after each read of a resumable replay (`replay_until`) that missed an archived
/// segment, whether fetching it and reading on is worth it: each fetch must move the replay on,
/// so each fetched segment is replayed once and no count of segments (or size of the segment
/// cache) bounds how far a replay can go; a replay that fetches without moving (a segment the
/// cache cannot keep long enough to be read) gives up (docs/architecture.md#storage-tiers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayFetches {
    reached: u64,
    stalled: usize,
}

impl ReplayFetches {
    /// Fetches in a row that may leave the replay where it was (a fetched segment is read at
    /// once, so one such fetch is already unexpected).
    pub const MAX_STALLED: usize = 2;

    /// A replay that starts after offset `from` (its state's `max_offset`).
    pub fn new(from: u64) -> Self {
        Self { reached: from, stalled: 0 }
    }

    /// After a read missed, with the replay at `reached`: whether to fetch and read on.
    pub fn fetch_again(&mut self, reached: u64) -> bool {
        self.stalled = if reached == self.reached { self.stalled + 1 } else { 0 };
        self.reached = reached;
        self.stalled <= Self::MAX_STALLED
    }
}

/// The stream's name as its own `S/created` fact records it: how an object
/// reached without a name knows which stream it is. `None` before creation.
pub fn stored_name<S: EventStore + ?Sized>(store: &S) -> Result<Option<StreamName>, StoreError> {
    let Some(first) = store.event_at(1)? else { return Ok(None) };
    let Ok(event) = Event::from_stored_json(&first.json) else { return Ok(None) };
    Ok(match parse_core_payload(&event.event_type, event.payload.as_ref()) {
        Ok(CorePayload::Created { namespace, path, .. }) if event.event_type == types::CREATED => StreamName::new(&namespace, &path).ok(),
        _ => None,
    })
}

/// Reduces a stored event; one that fails only advances the counters.
fn replay(state: &mut CoreState, stored: &StoredEvent, warn: &mut dyn FnMut(String)) {
    let result = Event::from_stored_json(&stored.json).map_err(|e| e.to_string()).and_then(|event| reduce(state, &event).map_err(|e| e.to_string()));
    if let Err(why) = result {
        warn(format!("event at offset {} could not be reduced during replay: {why}", stored.offset));
        state.event_count += 1;
        state.max_offset = stored.offset;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{event, MemStore};
    use serde_json::json;

    fn log() -> Vec<Event> {
        vec![
            event(1, types::CREATED, json!({"namespace": "t", "path": "/a"}), "2026-01-05T10:00:00.000Z"),
            event(2, types::WOKEN, json!({"incarnationId": "w"}), "2026-01-05T10:00:00.001Z"),
            event(3, types::CHILD_STREAM_CREATED, json!({"childPath": "/a/b"}), "2026-01-05T10:00:00.002Z"),
        ]
    }

    #[test]
    fn a_shared_page_is_read_once_until_the_log_moves() {
        let store = MemStore::default();
        store.put_events(&log());
        let page = SharedPage::default();
        let read = |max_offset| page.over(&store, max_offset).read_range(1, None, 100, 1 << 20).unwrap();
        let first = read(3);
        assert_eq!(first.iter().map(|e| e.offset).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(read(3), first, "the second reader gets the same page");
        assert_eq!(store.rows_read.get(), 2, "from storage once");
        read(4);
        assert_eq!(store.rows_read.get(), 4, "a commit moved the log's end: read again");
        store.trim_before(3);
        assert_eq!(read(4).iter().map(|e| e.offset).collect::<Vec<_>>(), [3], "a trim moved its start: read again");
        page.clear();
        read(4);
        assert_eq!(store.rows_read.get(), 6);
        let big = event(4, "app/big", json!({"x": "y".repeat(SharedPage::MAX_BYTES)}), "2026-01-05T10:00:00.003Z");
        store.put_events(&[big]);
        read(5);
        read(5);
        assert_eq!(store.rows_read.get(), 10, "a large page is not kept");
    }

    #[test]
    fn the_name_is_read_back_from_the_created_fact() {
        let store = MemStore::default();
        assert_eq!(stored_name(&store).unwrap(), None, "not created yet");
        store.put_events(&[event(1, types::WOKEN, json!({"incarnationId": "w"}), "2026-01-05T10:00:00.000Z")]);
        assert_eq!(stored_name(&store).unwrap(), None, "offset 1 is not a created fact");
        let store = MemStore::default();
        store.put_events(&log());
        assert_eq!(stored_name(&store).unwrap().map(|n| n.do_name()), Some("t:/a".to_owned()));
    }

    fn full_reduce(events: &[Event]) -> CoreState {
        let mut state = CoreState::default();
        for e in events {
            reduce(&mut state, e).unwrap();
        }
        state
    }

    #[test]
    fn an_empty_log_gives_the_initial_state_and_writes_nothing() {
        let store = MemStore::default();
        let (state, _) = load_state(&store, &mut |_| {}).unwrap();
        assert_eq!(state, CoreState::default());
        assert!(store.state_rows().is_none());
    }

    #[test]
    fn catch_up_reduces_only_what_follows_the_stored_state() {
        let store = MemStore::default();
        let mut partial = full_reduce(&log()[..2]);
        partial.namespace = "kept".into();
        store.put_events(&[event(1, types::CREATED, json!({"namespace": "wrong", "path": "/a"}), "2026-01-05T10:00:00.000Z")]);
        store.put_events(&log()[1..]);
        store.put_state_rows(CORE_STATE_VERSION, &partial.to_json());
        let (state, kind) = load_state(&store, &mut |_| {}).unwrap();
        assert_eq!(kind, LoadKind::CaughtUp);
        assert_eq!(state.namespace, "kept");
        assert_eq!(state.event_count, 3);
        assert_eq!(state.child_paths, vec!["/a/b"]);
        assert_eq!(store.state_rows(), Some((CORE_STATE_VERSION, partial.to_json())), "a lagging snapshot stays as it is");
    }

    #[test]
    fn snapshots_are_due_when_a_commit_crosses_a_thousand() {
        assert!(!snapshot_due(0, 999));
        assert!(snapshot_due(999, 1000));
        assert!(snapshot_due(998, 1001), "a batch across the boundary");
        assert!(!snapshot_due(1000, 1999));
        assert!(snapshot_due(1500, 3500));
    }

    #[test]
    fn a_stale_version_or_garbage_state_is_rebuilt_and_rewritten() {
        for (version, json) in [(4, full_reduce(&log()).to_json()), (CORE_STATE_VERSION, "{not json".to_owned())] {
            let store = MemStore::default();
            store.put_events(&log());
            store.put_state_rows(version, &json);
            let (state, kind) = load_state(&store, &mut |_| {}).unwrap();
            assert_eq!(kind, LoadKind::Rebuilt);
            assert_eq!(state, full_reduce(&log()));
            assert_eq!(store.state_rows(), Some((CORE_STATE_VERSION, state.to_json())));
        }
    }

    #[test]
    fn a_state_ahead_of_the_log_is_rebuilt() {
        let store = MemStore::default();
        store.put_events(&log());
        let mut ahead = full_reduce(&log());
        ahead.max_offset = 9;
        store.put_state_rows(CORE_STATE_VERSION, &ahead.to_json());
        let (state, kind) = load_state(&store, &mut |_| {}).unwrap();
        assert_eq!((kind, state), (LoadKind::Rebuilt, full_reduce(&log())));
    }

    #[test]
    fn an_unreducible_event_is_counted_and_the_rest_stays_correct() {
        let store = MemStore::default();
        let mut events = log();
        events.insert(2, event(3, types::CREATED, json!({"namespace": "x", "path": "/x"}), "2026-01-05T10:00:00.002Z"));
        events[3].offset = 4;
        store.put_events(&events);
        let mut warnings = Vec::new();
        let (state, _) = load_state(&store, &mut |w| warnings.push(w)).unwrap();
        assert_eq!((state.event_count, state.max_offset), (4, 4));
        assert_eq!(state.namespace, "t");
        assert_eq!(state.child_paths, vec!["/a/b"]);
        assert_eq!(warnings.len(), 1);
    }

    /// The state right after `offset`, as getState({atOffset}) rebuilds it when every read hits.
    fn state_at(store: &MemStore, offset: u64, warn: &mut dyn FnMut(String)) -> Result<CoreState, StoreError> {
        let mut state = state_before(store, offset)?;
        replay_until(store, &mut state, offset, warn)?;
        Ok(state)
    }

    /// A store holding `log()` followed by app events up to offset `last`, and those events.
    fn stored_log(last: u64) -> (MemStore, Vec<Event>) {
        let store = MemStore::default();
        let mut events = log();
        for offset in 4..=last {
            events.push(event(offset, "app/x", json!({"n": offset}), "2026-01-05T10:00:01.000Z"));
        }
        store.put_events(&events);
        (store, events)
    }

    #[test]
    fn the_state_at_an_offset_starts_from_the_nearest_snapshot() {
        let (store, events) = stored_log(2500);
        for at in [0, 1, 3, 999, 1000, 1001, 2500] {
            assert_eq!(state_at(&store, at, &mut |_| {}).unwrap(), full_reduce(&events[..at as usize]), "at {at}");
        }
        store.put_snapshot(&full_reduce(&events[..2000]));
        store.put_snapshot(&full_reduce(&events[..1000]));
        let at = state_at(&store, 2400, &mut |_| {}).unwrap();
        assert_eq!(at, full_reduce(&events[..2400]));
        assert_eq!(*store.snapshots_read.borrow(), vec![2000], "the nearest snapshot at or below 2400");
        assert_eq!(state_at(&store, 1500, &mut |_| {}).unwrap(), full_reduce(&events[..1500]));
    }

    #[test]
    fn a_replay_that_meets_a_missing_segment_resumes_where_it_stood() {
        let (store, events) = stored_log(2500);
        store.miss_at.set(Some(1500));
        let mut state = state_before(&store, 2400).unwrap();
        let err = replay_until(&store, &mut state, 2400, &mut |_| {}).unwrap_err();
        assert!(err.is_pending());
        assert_eq!(state, full_reduce(&events[..1000]), "the pages before the miss stay replayed");
        replay_until(&store, &mut state, 2400, &mut |_| {}).unwrap();
        assert_eq!(state, full_reduce(&events[..2400]));
        assert_eq!(store.rows_read.get(), 2400, "no event is read twice");
    }

    #[test]
    fn a_replay_over_many_missing_segments_fetches_each_once_and_reads_each_event_once() {
        let (store, events) = stored_log(2500);
        let mut state = state_before(&store, 2400).unwrap();
        let mut fetches = ReplayFetches::new(state.max_offset);
        let mut misses = 0;
        // A segment of 100 events not yet fetched after every 100 offsets, far more than any
        // retry count; a fetch clears its miss (and the next one stands 100 offsets on).
        store.short_pages.set(true);
        store.miss_at.set(Some(101));
        loop {
            match replay_until(&store, &mut state, 2400, &mut |_| {}) {
                Ok(()) => break,
                Err(err) => {
                    assert!(err.is_pending());
                    assert!(fetches.fetch_again(state.max_offset), "every fetch moved the replay on");
                    misses += 1;
                    store.miss_at.set(Some(state.max_offset + 101).filter(|&at| at <= 2400));
                }
            }
        }
        assert_eq!(state, full_reduce(&events[..2400]));
        assert_eq!(misses, 23, "one fetch per segment before the last one");
        assert_eq!(store.rows_read.get(), 2400, "no event is read twice");
    }

    #[test]
    fn a_replay_that_fetches_without_moving_gives_up() {
        let mut fetches = ReplayFetches::new(1000);
        assert!(fetches.fetch_again(1000), "one fetch that moved nothing");
        assert!(fetches.fetch_again(1000));
        assert!(!fetches.fetch_again(1000), "a third in a row");
        let mut fetches = ReplayFetches::new(1000);
        for reached in [1000, 1000, 1100, 1100, 1100, 1200] {
            assert!(fetches.fetch_again(reached), "progress resets the count ({reached})");
        }
        assert!(fetches.fetch_again(1200) && fetches.fetch_again(1200));
        assert!(!fetches.fetch_again(1200));
    }

    #[test]
    fn rebuild_pages_through_long_logs() {
        let store = MemStore::default();
        let mut events = log();
        for offset in 4..=250 {
            events.push(event(offset, "app/x", json!({"n": offset}), "2026-01-05T10:00:01.000Z"));
        }
        store.put_events(&events);
        let (state, _) = load_state(&store, &mut |_| {}).unwrap();
        assert_eq!(state, full_reduce(&events));
        assert_eq!(state.event_count, 250);
    }
}
