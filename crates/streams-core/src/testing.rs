//! Test support: an in-memory `EventStore` with fault injection, and builders.
//! Compiled for the crate's own tests and, with the `test-util` feature, for `tests/`.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use serde_json::Value;

use super::append::AppendPlan;
use super::event::Event;
use super::state::CORE_STATE_VERSION;
use super::store::{snapshot_due, EventStore, NewEvent, StoreError, StoredEvent, StoredState};

/// A committed event built by hand.
pub fn event(offset: u64, event_type: &str, payload: Value, created_at: &str) -> Event {
    Event {
        event_type: event_type.to_owned(),
        payload: Some(payload),
        metadata: None,
        source: None,
        idempotency_key: None,
        offset,
        created_at: created_at.to_owned(),
    }
}

/// The stored events: offset → (idempotency key, committed JSON).
pub type MemEvents = BTreeMap<u64, (Option<String>, String)>;

/// An atomic in-memory store with the SQL schema's uniqueness rules.
/// `fail_commits` makes every commit fail, as a failed `core_state` write
/// inside the transaction would; `commits` counts successful commits.
#[derive(Default, Debug)]
pub struct MemStore {
    events: RefCell<MemEvents>,
    state: RefCell<Option<(i64, String)>>,
    pub fail_commits: Cell<bool>,
    pub commits: Cell<u32>,
    /// Events returned by `read_range`, to bound what a reader scans.
    pub rows_read: Cell<usize>,
    /// How many point reads (`event_at`) were made.
    pub point_reads: Cell<u32>,
    /// Kept state snapshots by the offset they follow; the offsets read from it.
    snapshots: RefCell<BTreeMap<u64, String>>,
    pub snapshots_read: RefCell<Vec<u64>>,
    /// Set by `trim_before`; 0 reads as 1.
    first_offset: Cell<u64>,
    /// The next `read_range` reaching this offset fails once as pending, like an archived
    /// segment not yet fetched.
    pub miss_at: Cell<Option<u64>>,
    /// Like the archive's short pages: a page that would reach `miss_at` stops before it, and
    /// only a read that starts there fails.
    pub short_pages: Cell<bool>,
}

impl MemStore {
    /// Everything stored, to compare before and after an operation.
    pub fn snapshot(&self) -> (MemEvents, Option<(i64, String)>) {
        (self.events.borrow().clone(), self.state.borrow().clone())
    }

    /// The same log with no stored state: loading it is a full rebuild.
    pub fn without_state(&self) -> MemStore {
        MemStore { events: RefCell::new(self.events.borrow().clone()), ..MemStore::default() }
    }

    pub fn put_events(&self, events: &[Event]) {
        for e in events {
            self.events.borrow_mut().insert(e.offset, (e.idempotency_key.clone(), e.to_json()));
        }
    }

    pub fn put_state_rows(&self, version: i64, json: &str) {
        *self.state.borrow_mut() = Some((version, json.to_owned()));
    }

    /// Keeps `state` as the snapshot right after its `maxOffset`.
    pub fn put_snapshot(&self, state: &crate::CoreState) {
        self.snapshots.borrow_mut().insert(state.max_offset, state.to_json());
    }

    pub fn state_rows(&self) -> Option<(i64, String)> {
        self.state.borrow().clone()
    }

    pub fn commit_plan(&self, plan: &AppendPlan) {
        if !plan.events.is_empty() {
            let before = plan.events[0].event.offset - 1;
            let due = snapshot_due(before, plan.state.max_offset).then(|| plan.state.to_json());
            self.commit(&plan.rows(), due.as_deref()).expect("MemStore commit"); // ok: test-only module
        }
    }

    /// Retention: removes every event below `first`, which becomes the first kept offset.
    pub fn trim_before(&self, first: u64) {
        self.events.borrow_mut().retain(|offset, _| *offset >= first);
        self.first_offset.set(first.max(self.first_offset.get()));
    }

    pub fn all_json(&self) -> Vec<String> {
        self.events.borrow().values().map(|(_, json)| json.clone()).collect()
    }
}

impl EventStore for MemStore {
    fn max_offset(&self) -> Result<u64, StoreError> {
        Ok(self.events.borrow().keys().next_back().copied().unwrap_or(0))
    }

    fn read_range(&self, after: u64, before: Option<u64>, limit: usize, max_bytes: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let mut before = before;
        if let Some(miss) = self.miss_at.get().filter(|&miss| after < miss && after + limit as u64 >= miss) {
            if !self.short_pages.get() || after + 1 == miss {
                self.miss_at.set(None);
                return Err(StoreError::pending("a segment not yet fetched"));
            }
            before = Some(before.map_or(miss, |b| b.min(miss)));
        }
        let mut out = Vec::new();
        let mut bytes = 0;
        for (&offset, (_, json)) in self.events.borrow().range(after + 1..) {
            if before.is_some_and(|b| offset >= b) || out.len() == limit {
                break;
            }
            if !out.is_empty() && bytes + json.len() > max_bytes {
                break;
            }
            bytes += json.len();
            out.push(StoredEvent { offset, json: json.clone() });
        }
        self.rows_read.set(self.rows_read.get() + out.len());
        Ok(out)
    }

    fn event_at(&self, offset: u64) -> Result<Option<StoredEvent>, StoreError> {
        self.point_reads.set(self.point_reads.get() + 1);
        Ok(self.events.borrow().get(&offset).map(|(_, json)| StoredEvent { offset, json: json.clone() }))
    }

    fn event_by_idempotency_key(&self, key: &str) -> Result<Option<StoredEvent>, StoreError> {
        Ok(self
            .events
            .borrow()
            .iter()
            .find(|(_, (k, _))| k.as_deref() == Some(key))
            .map(|(&offset, (_, json))| StoredEvent { offset, json: json.clone() }))
    }

    fn read_state(&self) -> Result<Option<StoredState>, StoreError> {
        Ok(self.state.borrow().as_ref().map(|(v, json)| StoredState { version: Some(*v), json: Some(json.clone()) }))
    }

    fn commit(&self, events: &[NewEvent<'_>], state_json: Option<&str>) -> Result<(), StoreError> {
        if self.fail_commits.get() {
            return Err(StoreError("injected commit failure".into()));
        }
        let mut stored = self.events.borrow().clone();
        for e in events {
            if stored.contains_key(&e.offset) {
                return Err(StoreError(format!("offset {} already stored", e.offset)));
            }
            if e.idempotency_key.is_some() && stored.values().any(|(k, _)| k.as_deref() == e.idempotency_key) {
                return Err(StoreError(format!("idempotency key {:?} already stored", e.idempotency_key)));
            }
            stored.insert(e.offset, (e.idempotency_key.map(str::to_owned), e.json.to_owned()));
        }
        *self.events.borrow_mut() = stored;
        if let Some(json) = state_json {
            *self.state.borrow_mut() = Some((CORE_STATE_VERSION, json.to_owned()));
        }
        self.commits.set(self.commits.get() + 1);
        Ok(())
    }

    fn write_state(&self, state_json: &str) -> Result<(), StoreError> {
        *self.state.borrow_mut() = Some((CORE_STATE_VERSION, state_json.to_owned()));
        Ok(())
    }

    fn first_offset(&self) -> u64 {
        self.first_offset.get().max(1)
    }

    fn snapshot_at_or_below(&self, offset: u64) -> Result<Option<(u64, String)>, StoreError> {
        let found = self.snapshots.borrow().range(..=offset).next_back().map(|(at, json)| (*at, json.clone()));
        if let Some((at, _)) = &found {
            self.snapshots_read.borrow_mut().push(*at);
        }
        Ok(found)
    }
}
