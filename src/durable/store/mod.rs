//! `EventStore` over DO SQLite (docs/architecture.md#storage): the connection, its statements and
//! transactions, the schema, the `runtime_meta` table, and the `EventStore` impl that puts the
//! tiers together. The tiers each have a file: `hot` (event rows and the state snapshot in SQLite)
//! and `migration` (the first layout, read until moved). This module is the only place that knows the SQL.

mod archive;
mod hot;
mod migration;

pub use archive::{compress_segment, ArchiveBucket};

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use js_sys::{Array, JsString, Uint8Array};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::Storage;

use streams_core::chunk::reassemble;
use streams_core::limits::MAX_SAFE_INTEGER;
use streams_core::store::{EventStore, NewEvent, StoreError, StoredEvent, StoredState};
use streams_core::tiers::Tier;

use hot::{Row, SELECT_BY_KEY, SELECT_BY_OFFSET};
use migration::{DROP_LEGACY_CHUNKS, DROP_LEGACY_EVENTS};
use crate::js::string_of;

const SCHEMA: [&str; 6] = [
    // `json` holds an event of at most one slice; a bigger one has NULL there
    // and its slices in `event_chunks`, described by the three columns after it.
    r#"CREATE TABLE IF NOT EXISTS events ("offset" INTEGER PRIMARY KEY, idempotency_key TEXT, json TEXT, chunk_count INTEGER, byte_length INTEGER, checksum INTEGER)"#,
    r#"CREATE UNIQUE INDEX IF NOT EXISTS events_idempotency_key ON events (idempotency_key) WHERE idempotency_key IS NOT NULL"#,
    r#"CREATE TABLE IF NOT EXISTS event_chunks ("offset" INTEGER NOT NULL REFERENCES events("offset"), chunk_index INTEGER NOT NULL, chunk_bytes BLOB NOT NULL, PRIMARY KEY ("offset", chunk_index)) WITHOUT ROWID"#,
    r#"CREATE TABLE IF NOT EXISTS core_state (chunk_index INTEGER PRIMARY KEY, version INTEGER NOT NULL, chunk_bytes BLOB NOT NULL)"#,
    r#"CREATE TABLE IF NOT EXISTS runtime_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"#,
    // Every state snapshot, kept by the offset it follows, for `getState({atOffset})`.
    r#"CREATE TABLE IF NOT EXISTS state_history (at_offset INTEGER NOT NULL, chunk_index INTEGER NOT NULL, version INTEGER NOT NULL, chunk_bytes BLOB NOT NULL, PRIMARY KEY (at_offset, chunk_index)) WITHOUT ROWID"#,
];

#[wasm_bindgen]
extern "C" {
    /// `ctx.storage`: its `sql` and the `transactionSync` that worker 0.8.7 does not wrap.
    type DurableStorage;
    #[wasm_bindgen(method, getter)]
    fn sql(this: &DurableStorage) -> Sql;
    #[wasm_bindgen(method, catch, js_name = transactionSync)]
    fn transaction_sync(this: &DurableStorage, body: &js_sys::Function) -> Result<JsValue, JsValue>;

    /// `ctx.storage.sql`, called with JS strings made once per statement
    /// text and bindings built straight into one array.
    #[derive(Clone)]
    type Sql;
    #[wasm_bindgen(structural, method, catch, variadic)]
    fn exec(this: &Sql, query: &JsString, bindings: &Array) -> Result<Cursor, JsValue>;

    type Cursor;
    #[wasm_bindgen(method)]
    fn raw(this: &Cursor) -> JsValue;
}

/// One statement of a commit: its text and its bound values.
type Statement = (JsString, Array);

#[derive(Clone)]
pub struct SqlStore {
    inner: Rc<Connection>,
}

struct Connection {
    sql: Sql,
    storage: DurableStorage,
    /// Statement texts as JS strings, so a call does not re-encode its SQL.
    queries: RefCell<HashMap<&'static str, JsString>>,
    /// How many `core_state` rows exist, when known: an unchanged count lets a
    /// commit overwrite them in place instead of deleting first.
    state_rows: Cell<Option<usize>>,
    /// Whether the first layout's tables (`events_v1`, `event_chunks_v1`) still
    /// hold events not yet moved (docs/operations.md#migrations-and-state-versions).
    legacy: Cell<bool>,
    /// The first kept offset, the segments, the hot tier's size, the segment cache.
    tiers: RefCell<archive::Tiers>,
    /// Whether a page over the archive stops short at a segment not cached (`with_short_pages`).
    short_pages: Cell<bool>,
}

impl SqlStore {
    pub fn new(storage: &Storage) -> Self {
        let raw: &JsValue = storage.as_raw().as_ref();
        let storage: DurableStorage = raw.clone().unchecked_into();
        let connection = Connection {
            sql: storage.sql(),
            storage,
            queries: RefCell::default(),
            state_rows: Cell::default(),
            legacy: Cell::new(false),
            tiers: RefCell::default(),
            short_pages: Cell::new(false),
        };
        Self { inner: Rc::new(connection) }
    }

    /// Creates the tables; a database of the first layout first has its two
    /// event tables renamed to `events_v1` and `event_chunks_v1`, which the
    /// migration empties and drops.
    pub fn create_schema(&self) -> Result<(), StoreError> {
        self.rename_first_layout()?;
        for ddl in SCHEMA.into_iter().chain(archive::ARCHIVE_SCHEMA) {
            self.exec(ddl, &[])?;
        }
        self.inner.legacy.set(self.table_exists("events_v1")?);
        self.load_tiers()
    }

    /// Whether the tables exist, asked without creating them.
    pub fn has_schema(&self) -> Result<bool, StoreError> {
        self.table_exists("events")
    }

    fn table_exists(&self, name: &str) -> Result<bool, StoreError> {
        let rows = self.rows("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?", &[name.into()])?;
        Ok(first_cell(rows).is_some_and(|n| as_u64(&n) > 0))
    }

    fn query(&self, text: &'static str) -> JsString {
        self.inner.queries.borrow_mut().entry(text).or_insert_with(|| JsString::from(text)).clone()
    }

    fn run(&self, query: &JsString, bindings: &Array) -> Result<Cursor, StoreError> {
        self.inner.sql.exec(query, bindings).map_err(|e| StoreError(format!("{}: {}", String::from(query), js_message(&e))))
    }

    fn exec(&self, text: &'static str, bindings: &[JsValue]) -> Result<Cursor, StoreError> {
        self.run(&self.query(text), &bindings.iter().collect())
    }

    /// Every row of the result, each an array of cells.
    fn rows(&self, text: &'static str, bindings: &[JsValue]) -> Result<Vec<Array>, StoreError> {
        let cursor = self.exec(text, bindings)?;
        Ok(Array::from(&cursor.raw()).iter().map(JsCast::unchecked_into).collect())
    }

    /// Runs `body` inside `transactionSync`: an `Err` rolls everything back.
    fn transaction(&self, body: impl FnOnce(&SqlStore) -> Result<(), StoreError> + 'static) -> Result<(), StoreError> {
        let outcome: Rc<RefCell<Option<StoreError>>> = Rc::default();
        let store = self.clone();
        let failure = outcome.clone();
        let closure = Closure::once_into_js(move || -> Result<JsValue, JsValue> {
            body(&store).map(|()| JsValue::UNDEFINED).map_err(|e| {
                let message = e.0.clone();
                *failure.borrow_mut() = Some(e);
                JsValue::from_str(&message)
            })
        });
        match self.inner.storage.transaction_sync(closure.unchecked_ref()) {
            Ok(_) => Ok(()),
            Err(js) => Err(outcome.borrow_mut().take().unwrap_or_else(|| StoreError(format!("transactionSync: {}", js_message(&js))))),
        }
    }

    /// Runs a commit's statements: one alone needs no transaction (a single
    /// statement is atomic); more run in one `transactionSync`.
    fn run_all(&self, mut statements: Vec<Statement>) -> Result<(), StoreError> {
        if statements.len() == 1 {
            if let Some((query, bindings)) = statements.pop() {
                self.run(&query, &bindings)?;
            }
            return Ok(());
        }
        self.transaction(move |store| {
            for (query, bindings) in &statements {
                store.run(query, bindings)?;
            }
            Ok(())
        })
    }

    /// `runtime_meta` value for `key`.
    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let rows = self.rows("SELECT value FROM runtime_meta WHERE key = ?", &[key.into()])?;
        Ok(first_cell(rows).and_then(|v| v.as_string()))
    }

    /// Every `runtime_meta` row whose key starts with `prefix`.
    pub fn meta_with_prefix(&self, prefix: &str) -> Result<Vec<(String, String)>, StoreError> {
        let rows = self.rows("SELECT key, value FROM runtime_meta WHERE substr(key, 1, ?) = ? ORDER BY key", &[js_int(prefix.len() as u64), prefix.into()])?;
        Ok(rows.into_iter().filter_map(|row| Some((row.get(0).as_string()?, row.get(1).as_string()?))).collect())
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.exec("INSERT OR REPLACE INTO runtime_meta (key, value) VALUES (?, ?)", &[key.into(), value.into()]).map(|_| ())
    }

    pub fn delete_meta(&self, key: &str) -> Result<(), StoreError> {
        self.exec("DELETE FROM runtime_meta WHERE key = ?", &[key.into()]).map(|_| ())
    }

    /// Deletes every row of every table, and the first layout's tables (`reset`).
    pub fn delete_everything(&self) -> Result<(), StoreError> {
        self.transaction(|store| {
            for statement in ["DELETE FROM event_chunks", "DELETE FROM events", "DELETE FROM core_state", "DELETE FROM state_history", "DELETE FROM runtime_meta", "DELETE FROM segments", "DELETE FROM archived_keys", DROP_LEGACY_CHUNKS, DROP_LEGACY_EVENTS] {
                store.exec(statement, &[])?;
            }
            Ok(())
        })?;
        self.inner.state_rows.set(Some(0));
        self.inner.legacy.set(false);
        self.forget_cache();
        self.load_tiers()
    }

    /// Runs `read` with pages over the archive that stop short at the first segment not cached
    /// (once they hold an event), so a reader that keeps its place between fetches (retention's
    /// state rebuild) moves on after every fetch, whatever the segments' sizes.
    pub fn with_short_pages<T>(&self, read: impl FnOnce(&Self) -> T) -> T {
        self.inner.short_pages.set(true);
        let result = read(self);
        self.inner.short_pages.set(false);
        result
    }

    /// `read_range` over the archive: events after `after` from the cached
    /// segments that hold them, then the hot tier. A page that needs a segment
    /// not cached fails as a miss, which the caller resolves by fetching it and
    /// reading again; only a page that already spans more segments than the
    /// cache can hold at once (or any page under `with_short_pages`) stops short there instead.
    fn tiered_range(&self, mut after: u64, before: u64, limit: usize, max_bytes: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let mut page: Vec<StoredEvent> = Vec::new();
        let mut bytes = 0usize;
        let mut touched = 0usize;
        while page.len() < limit && after + 1 < before {
            let index = match self.tier(after + 1) {
                Tier::Trimmed => return Err(StoreError(format!("offset {} was removed by retention", after + 1))),
                Tier::Hot => break,
                Tier::Archived(index) => index,
            };
            touched += 1;
            let (info, events) = match self.cached_segment(index) {
                Ok(found) => found,
                Err(miss) if page.is_empty() || (!self.inner.short_pages.get() && self.cache_holds(touched)) => return Err(miss),
                Err(_) => {
                    self.take_miss();
                    return Ok(page);
                }
            };
            for event in events.iter().skip((after + 1 - info.first) as usize) {
                if page.len() == limit || event.offset >= before || (!page.is_empty() && bytes + event.json.len() > max_bytes) {
                    return Ok(page);
                }
                bytes += event.json.len();
                after = event.offset;
                page.push(event.clone());
            }
            after = after.max(info.last);
        }
        if page.len() == limit || after + 1 >= before {
            return Ok(page);
        }
        let hot = self.log_range(after, before, limit - page.len(), max_bytes.saturating_sub(bytes).max(1))?;
        for event in hot {
            if !page.is_empty() && bytes + event.json.len() > max_bytes {
                break;
            }
            bytes += event.json.len();
            page.push(event);
        }
        Ok(page)
    }
}

impl EventStore for SqlStore {
    fn max_offset(&self) -> Result<u64, StoreError> {
        let log = first_cell(self.rows(r#"SELECT COALESCE(MAX("offset"), 0) FROM events"#, &[])?).map_or(0, |n| as_u64(&n)).max(self.archived_max());
        if !self.inner.legacy.get() {
            return Ok(log);
        }
        let legacy = first_cell(self.rows(r#"SELECT COALESCE(MAX("offset"), 0) FROM events_v1"#, &[])?).map_or(0, |n| as_u64(&n));
        Ok(log.max(legacy))
    }

    fn read_range(&self, after: u64, before: Option<u64>, limit: usize, max_bytes: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let before = before.unwrap_or(MAX_SAFE_INTEGER);
        if !self.inner.legacy.get() {
            return self.tiered_range(after, before, limit, max_bytes);
        }
        // Mid-migration an offset is in one layout or the other: merge both.
        let mut merged = self.log_range(after, before, limit, usize::MAX)?;
        merged.extend(self.legacy_range(after, before, limit)?);
        merged.sort_by_key(|e| e.offset);
        let mut bytes = 0usize;
        let mut page = Vec::new();
        for event in merged.into_iter().take(limit) {
            if !page.is_empty() && bytes + event.json.len() > max_bytes {
                break;
            }
            bytes += event.json.len();
            page.push(event);
        }
        Ok(page)
    }

    fn event_at(&self, offset: u64) -> Result<Option<StoredEvent>, StoreError> {
        match self.tier(offset) {
            Tier::Trimmed => return Ok(None),
            Tier::Archived(index) => {
                let (info, events) = self.cached_segment(index)?;
                return Ok(events.get((offset - info.first) as usize).cloned());
            }
            Tier::Hot => {}
        }
        match self.event_where(SELECT_BY_OFFSET, js_int(offset))? {
            None if self.inner.legacy.get() => self.legacy_event(r#"SELECT "offset" FROM events_v1 WHERE "offset" = ?"#, js_int(offset)),
            found => Ok(found),
        }
    }

    fn event_by_idempotency_key(&self, key: &str) -> Result<Option<StoredEvent>, StoreError> {
        if let Some(offset) = self.archived_key_offset(key)? {
            return self.event_at(offset);
        }
        match self.event_where(SELECT_BY_KEY, key.into())? {
            None if self.inner.legacy.get() => self.legacy_event(r#"SELECT "offset" FROM events_v1 WHERE idempotency_key = ?"#, key.into()),
            found => Ok(found),
        }
    }

    fn read_state(&self) -> Result<Option<StoredState>, StoreError> {
        let rows = self.rows("SELECT version, chunk_bytes FROM core_state ORDER BY chunk_index", &[])?;
        self.inner.state_rows.set(Some(rows.len()));
        if rows.is_empty() {
            return Ok(None);
        }
        let mut versions = Vec::with_capacity(rows.len());
        let mut slices = Vec::with_capacity(rows.len());
        for row in rows {
            let version = row.get(0).as_f64().filter(|v| v.fract() == 0.0).map(|v| v as i64);
            versions.push(version);
            // Only BLOBs: a state row of another type is not what a commit wrote.
            let cell = row.get(1);
            slices.push(cell.is_instance_of::<js_sys::ArrayBuffer>().then(|| Uint8Array::new(&cell).to_vec()));
        }
        // Damaged rows make the state stale, which the load rebuilds (docs/operations.md#migrations-and-state-versions).
        let version = versions.iter().all(|v| *v == versions[0]).then_some(versions[0]).flatten();
        let json = slices.into_iter().collect::<Option<Vec<_>>>().and_then(|s| reassemble(s).ok());
        Ok(Some(StoredState { version, json }))
    }

    fn commit(&self, events: &[NewEvent<'_>], state_json: Option<&str>) -> Result<(), StoreError> {
        let rows: Vec<Row<'_>> = events.iter().map(|e| Row { offset: e.offset, key: e.idempotency_key, bytes: e.json.as_bytes(), text: Some(e.json) }).collect();
        let mut statements = Vec::with_capacity(3);
        self.push_events(&mut statements, &rows);
        self.commit_state(statements, state_json, events.last().map(|e| e.offset))?;
        self.count_hot(events.len() as u64, events.iter().map(|e| e.json.len() as u64).sum());
        Ok(())
    }

    fn since_bounds(&self, since_ms: f64) -> Option<(u64, u64)> {
        self.segment_bounds_since(since_ms)
    }

    fn write_state(&self, state_json: &str) -> Result<(), StoreError> {
        self.commit_state(Vec::new(), Some(state_json), None)
    }

    fn snapshot_at_or_below(&self, offset: u64) -> Result<Option<(u64, String)>, StoreError> {
        self.history_at_or_below(offset)
    }

    fn first_offset(&self) -> u64 {
        SqlStore::first_offset(self)
    }
}

/// Whether a commit failed only because an idempotency key is stored already.
pub fn is_duplicate_key(err: &StoreError) -> bool {
    err.0.contains("UNIQUE constraint failed: events.idempotency_key")
}
/// Stands in for an event that cannot be read back as stored: it is not
/// JSON, so a read of it fails with `internal` and replay counts it as
/// unreducible (docs/architecture.md#storage) instead of the whole load failing.
fn corrupt(offset: u64, why: &str) -> String {
    worker::console_error!("event {offset} is damaged: {why}");
    "<damaged event>".to_owned()
}

fn js_int(n: u64) -> JsValue {
    // Offsets, counts and checksums stay below 2^53: exact as doubles.
    JsValue::from_f64(n as f64)
}

fn as_u64(value: &JsValue) -> u64 {
    value.as_f64().filter(|f| *f >= 0.0).map_or(0, |f| f as u64)
}

fn first_cell(rows: Vec<Array>) -> Option<JsValue> {
    rows.into_iter().next().map(|row| row.get(0))
}

/// A BLOB cell's bytes (an ArrayBuffer); a TEXT cell where bytes were
/// expected still carries them. Anything else is `None`.
fn blob(cell: &JsValue) -> Option<Vec<u8>> {
    if let Some(text) = string_of(cell) {
        return Some(text.into_bytes());
    }
    if cell.is_instance_of::<js_sys::ArrayBuffer>() || cell.is_instance_of::<Uint8Array>() {
        return Some(Uint8Array::new(cell).to_vec());
    }
    None
}

fn js_message(error: &JsValue) -> String {
    error.dyn_ref::<js_sys::Error>().map_or_else(|| format!("{error:?}"), |e| String::from(e.message()))
}
