//! `EventStore` over DO SQLite (docs/architecture.md#storage): the schema, inline and chunked
//! event rows, page reads, the state snapshot, and the step-wise migration from the first
//! layout. This file is the only place that knows the SQL.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use js_sys::{Array, JsString, Uint8Array};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::Storage;

use streams_core::chunk::{chunks, reassemble, ChunkSummary};
use streams_core::limits::{EVENT_CHUNK_SIZE, MAX_SAFE_INTEGER};
use streams_core::store::{EventStore, NewEvent, StoreError, StoredEvent, StoredState};
use streams_core::CORE_STATE_VERSION;

const SCHEMA: [&str; 5] = [
    // `json` holds an event of at most one slice; a bigger one has NULL there
    // and its slices in `event_chunks`, described by the three columns after it.
    r#"CREATE TABLE IF NOT EXISTS events ("offset" INTEGER PRIMARY KEY, idempotency_key TEXT, json TEXT, chunk_count INTEGER, byte_length INTEGER, checksum INTEGER)"#,
    r#"CREATE UNIQUE INDEX IF NOT EXISTS events_idempotency_key ON events (idempotency_key) WHERE idempotency_key IS NOT NULL"#,
    r#"CREATE TABLE IF NOT EXISTS event_chunks ("offset" INTEGER NOT NULL REFERENCES events("offset"), chunk_index INTEGER NOT NULL, chunk_bytes BLOB NOT NULL, PRIMARY KEY ("offset", chunk_index)) WITHOUT ROWID"#,
    r#"CREATE TABLE IF NOT EXISTS core_state (chunk_index INTEGER PRIMARY KEY, version INTEGER NOT NULL, chunk_bytes BLOB NOT NULL)"#,
    r#"CREATE TABLE IF NOT EXISTS runtime_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"#,
];

/// Bound parameters per statement (the platform's limit) and so rows per
/// multi-row INSERT of inline events, three parameters each.
const MAX_PARAMETERS: usize = 100;
const INLINE_ROWS_PER_INSERT: usize = MAX_PARAMETERS / 3;
/// A capped page read concatenates at most this much JSON in one SQL value:
/// well under the platform's 2 MB cap on a value (`SQLITE_TOOBIG`).
const PAGE_TEXT_BYTES: usize = 1024 * 1024;
/// One migration step moves at most this many events or bytes.
const MIGRATION_STEP_EVENTS: usize = 1000;
const MIGRATION_STEP_BYTES: usize = 8 * 1024 * 1024;

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
    /// The multi-row INSERT for n inline events, at index n − 1.
    inserts: RefCell<Vec<JsString>>,
    /// How many `core_state` rows exist, when known: an unchanged count lets a
    /// commit overwrite them in place instead of deleting first.
    state_rows: Cell<Option<usize>>,
    /// Whether the first layout's tables (`events_v1`, `event_chunks_v1`) still
    /// hold events not yet moved (docs/operations.md#migrations-and-state-versions).
    legacy: Cell<bool>,
}

impl SqlStore {
    pub fn new(storage: &Storage) -> Self {
        let raw: &JsValue = storage.as_raw().as_ref();
        let storage: DurableStorage = raw.clone().unchecked_into();
        let connection = Connection {
            sql: storage.sql(),
            storage,
            queries: RefCell::default(),
            inserts: RefCell::default(),
            state_rows: Cell::default(),
            legacy: Cell::new(false),
        };
        Self { inner: Rc::new(connection) }
    }

    /// Creates the tables; a database of the first layout first has its two
    /// event tables renamed to `events_v1` and `event_chunks_v1`, which the
    /// migration empties and drops.
    pub fn create_schema(&self) -> Result<(), StoreError> {
        let first_layout = first_cell(self.rows("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'events'", &[])?)
            .and_then(|sql| sql.as_string())
            .is_some_and(|sql| sql.contains("created_at"));
        if first_layout {
            self.transaction(|store| {
                store.exec("ALTER TABLE events RENAME TO events_v1", &[])?;
                store.exec("ALTER TABLE event_chunks RENAME TO event_chunks_v1", &[]).map(|_| ())
            })?;
        }
        for ddl in SCHEMA {
            self.exec(ddl, &[])?;
        }
        self.inner.legacy.set(self.table_exists("events_v1")?);
        Ok(())
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

    /// The multi-row INSERT of `n` inline events.
    fn insert_inline(&self, n: usize) -> JsString {
        let mut inserts = self.inner.inserts.borrow_mut();
        while inserts.len() < n {
            let rows = vec!["(?, ?, ?)"; inserts.len() + 1].join(", ");
            inserts.push(JsString::from(format!(r#"INSERT INTO events ("offset", idempotency_key, json) VALUES {rows}"#)));
        }
        inserts[n - 1].clone()
    }

    /// Statements that insert events: inline ones several to a statement,
    /// bigger ones (or bytes that are not UTF-8) as a described row plus slices.
    fn push_events(&self, statements: &mut Vec<Statement>, events: &[Row<'_>]) {
        let inline: Vec<(&Row<'_>, &str)> = events.iter().filter_map(|row| Some((row, row.inline_text()?))).collect();
        for group in inline.chunks(INLINE_ROWS_PER_INSERT) {
            let bindings = Array::new();
            for (row, text) in group {
                bindings.push(&js_int(row.offset));
                bindings.push(&row.key.map_or(JsValue::NULL, JsValue::from_str));
                bindings.push(&JsValue::from_str(text));
            }
            statements.push((self.insert_inline(group.len()), bindings));
        }
        for row in events.iter().filter(|row| row.inline_text().is_none()) {
            let summary = ChunkSummary::of(row.bytes);
            let described = [js_int(row.offset), row.key.map_or(JsValue::NULL, JsValue::from_str), js_int(summary.count), js_int(summary.byte_length), js_int(summary.checksum.into())];
            statements.push((self.query(INSERT_CHUNKED), described.iter().collect()));
            for (index, chunk) in chunks(row.bytes).into_iter().enumerate() {
                statements.push((self.query(INSERT_CHUNK), [js_int(row.offset), js_int(index as u64), Uint8Array::from(chunk).into()].iter().collect()));
            }
        }
    }

    /// Replaces every `core_state` row with the chunks of `state_json`.
    fn push_state(&self, statements: &mut Vec<Statement>, state_json: &str) {
        let parts = chunks(state_json.as_bytes());
        if self.inner.state_rows.get() != Some(parts.len()) {
            statements.push((self.query(DELETE_STATE), Array::new()));
        }
        for (index, chunk) in parts.into_iter().enumerate() {
            let row = [js_int(index as u64), JsValue::from_f64(CORE_STATE_VERSION as f64), Uint8Array::from(chunk).into()];
            statements.push((self.query(INSERT_STATE), row.iter().collect()));
        }
    }

    fn commit_state(&self, mut statements: Vec<Statement>, state_json: Option<&str>) -> Result<(), StoreError> {
        if let Some(json) = state_json {
            self.push_state(&mut statements, json);
        }
        self.run_all(statements)?;
        if let Some(json) = state_json {
            self.inner.state_rows.set(Some(chunks(json.as_bytes()).len()));
        }
        Ok(())
    }

    /// The event in the row matched by `query` (by offset or by key), its
    /// slices checked against the row's description. `None` when no row matches.
    fn event_where(&self, query: &'static str, binding: JsValue) -> Result<Option<StoredEvent>, StoreError> {
        let Some(row) = self.rows(query, &[binding])?.into_iter().next() else { return Ok(None) };
        let offset = as_u64(&row.get(0));
        let json = row.get(1);
        if let Some(text) = json.as_string() {
            return Ok(Some(StoredEvent { offset, json: text }));
        }
        let bytes = if json.is_null() {
            let summary = ChunkSummary { count: as_u64(&row.get(2)), byte_length: as_u64(&row.get(3)), checksum: as_u64(&row.get(4)) as u32 };
            let slices = self.rows(SELECT_CHUNKS, &[js_int(offset)])?.into_iter().map(|r| blob(&r.get(0))).collect::<Option<Vec<_>>>();
            slices.ok_or_else(|| "a slice is not a BLOB".to_owned()).and_then(|s| summary.verify(s))
        } else {
            // A BLOB where the text belongs still carries the bytes.
            blob(&json).ok_or_else(|| "not TEXT".to_owned()).and_then(|b| String::from_utf8(b).map_err(|_| "not UTF-8".into()))
        };
        Ok(Some(StoredEvent { offset, json: bytes.unwrap_or_else(|why| corrupt(offset, &why)) }))
    }

    /// Events after `after` and before `before` from `events`, read as one
    /// concatenated string per page instead of one JS object per row.
    fn log_range(&self, after: u64, before: u64, limit: usize, max_bytes: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let mut events: Vec<StoredEvent> = Vec::new();
        let mut bytes = 0usize;
        let mut after = after;
        while events.len() < limit {
            let page = self.page(after, before, limit - events.len())?;
            for event in page.events {
                if !events.is_empty() && bytes + event.json.len() > max_bytes {
                    return Ok(events);
                }
                bytes += event.json.len();
                after = event.offset;
                events.push(event);
            }
            if !page.more {
                break;
            }
        }
        Ok(events)
    }

    /// Up to `wanted` events after `after`: the whole page as one string when
    /// every row holds its JSON and the text fits one SQL value, else a page
    /// capped in bytes that reads other rows one by one.
    fn page(&self, after: u64, before: u64, wanted: usize) -> Result<Page, StoreError> {
        let bindings = [js_int(after), js_int(before), js_int(wanted as u64)];
        // An error here is the text being too big for one value: the capped read follows.
        if let Ok(rows) = self.rows(SELECT_WHOLE_PAGE, &bindings) {
            if let Some(row) = rows.into_iter().next() {
                let (count, texts) = (as_u64(&row.get(0)) as usize, as_u64(&row.get(1)) as usize);
                if count == 0 {
                    return Ok(Page { events: Vec::new(), more: false });
                }
                let (offsets, text) = (row.get(2).as_string().unwrap_or_default(), row.get(3).as_string().unwrap_or_default());
                if let Some(events) = (texts == count).then(|| split_whole_page(&offsets, &text)).flatten() {
                    return Ok(Page { more: events.len() == wanted, events });
                }
            }
        }
        self.capped_page(after, before, wanted)
    }

    fn capped_page(&self, after: u64, before: u64, wanted: usize) -> Result<Page, StoreError> {
        let row = self.rows(SELECT_CAPPED_PAGE, &[js_int(after), js_int(before), js_int(wanted as u64), js_int(PAGE_TEXT_BYTES as u64)])?;
        let Some(row) = row.into_iter().next() else { return Ok(Page { events: Vec::new(), more: false }) };
        let fetched = as_u64(&row.get(0)) as usize;
        let (lengths, text) = (row.get(1).as_string().unwrap_or_default(), row.get(2).as_string().unwrap_or_default());
        let mut events = Vec::new();
        for entry in split_page(&lengths, &text).unwrap_or_default() {
            let event = match entry {
                PageEntry::Inline(offset, json) => StoredEvent { offset, json: json.to_owned() },
                PageEntry::Elsewhere(offset) => match self.event_where(SELECT_BY_OFFSET, js_int(offset))? {
                    Some(event) => event,
                    None => return Ok(Page { events, more: false }),
                },
            };
            events.push(event);
        }
        if events.is_empty() && fetched > 0 {
            // The page's order could not be trusted, or its first event alone
            // is over the page size: take one event row by row.
            let Some(next) = self.rows(SELECT_NEXT_OFFSET, &[js_int(after), js_int(before)])?.into_iter().next() else {
                return Ok(Page { events, more: false });
            };
            events.extend(self.event_where(SELECT_BY_OFFSET, next.get(0))?);
            return Ok(Page { more: !events.is_empty(), events });
        }
        Ok(Page { more: !(events.len() == fetched && fetched < wanted) && !events.is_empty(), events })
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
            for statement in ["DELETE FROM event_chunks", "DELETE FROM events", "DELETE FROM core_state", "DELETE FROM runtime_meta", DROP_LEGACY_CHUNKS, DROP_LEGACY_EVENTS] {
                store.exec(statement, &[])?;
            }
            Ok(())
        })?;
        self.inner.state_rows.set(Some(0));
        self.inner.legacy.set(false);
        Ok(())
    }

    // ---- the first layout, read until migrated ----

    /// Whether events of the first layout remain to be moved.
    pub fn migration_pending(&self) -> bool {
        self.inner.legacy.get()
    }

    /// Moves the first layout's oldest events into `events` in one transaction,
    /// bytes unchanged, and drops its tables once they are empty. Returns
    /// whether more remain. Reads see every event throughout: each is in
    /// exactly one of the two layouts.
    pub fn migrate_step(&self) -> Result<bool, StoreError> {
        if !self.inner.legacy.get() {
            return Ok(false);
        }
        let mut moved = legacy_events(self.rows(SELECT_LEGACY_STEP, &[js_int(MIGRATION_STEP_EVENTS as u64)])?);
        // Whole events, until the step's bytes are spent (the first always moves).
        let mut bytes = 0usize;
        let keep = moved
            .iter()
            .take_while(|(_, _, data)| {
                let before = bytes;
                bytes += data.len();
                before <= MIGRATION_STEP_BYTES
            })
            .count();
        moved.truncate(keep);
        let Some(through) = moved.last().map(|(o, _, _)| *o) else {
            return self.drop_legacy().map(|()| false);
        };
        let events: Vec<Row<'_>> = moved.iter().map(|(offset, key, bytes)| Row { offset: *offset, key: key.as_deref(), bytes, text: std::str::from_utf8(bytes).ok() }).collect();
        let mut statements = Vec::new();
        self.push_events(&mut statements, &events);
        for delete in [DELETE_LEGACY_CHUNKS, DELETE_LEGACY_EVENTS] {
            statements.push((self.query(delete), [js_int(through)].iter().collect()));
        }
        self.run_all(statements)?;
        Ok(true)
    }

    fn drop_legacy(&self) -> Result<(), StoreError> {
        self.transaction(|store| {
            store.exec(DROP_LEGACY_CHUNKS, &[])?;
            store.exec(DROP_LEGACY_EVENTS, &[]).map(|_| ())
        })?;
        self.inner.legacy.set(false);
        Ok(())
    }

    fn legacy_range(&self, after: u64, before: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = self.rows(SELECT_LEGACY_RANGE, &[js_int(after), js_int(before), js_int(limit as u64)])?;
        Ok(legacy_events(rows).into_iter().map(|(offset, _, data)| StoredEvent { offset, json: String::from_utf8(data).unwrap_or_else(|_| corrupt(offset, "not UTF-8")) }).collect())
    }

    fn legacy_event(&self, query: &'static str, binding: JsValue) -> Result<Option<StoredEvent>, StoreError> {
        let Some(offset) = first_cell(self.rows(query, &[binding])?) else { return Ok(None) };
        let offset = as_u64(&offset);
        let slices = self.rows(SELECT_LEGACY_CHUNKS, &[js_int(offset)])?;
        if slices.is_empty() {
            return Ok(None);
        }
        let slices = slices.into_iter().map(|r| blob(&r.get(0)).unwrap_or_else(|| vec![0xff]));
        Ok(Some(StoredEvent { offset, json: reassemble(slices).unwrap_or_else(|_| corrupt(offset, "not UTF-8")) }))
    }
}

impl EventStore for SqlStore {
    fn max_offset(&self) -> Result<u64, StoreError> {
        let log = first_cell(self.rows(r#"SELECT COALESCE(MAX("offset"), 0) FROM events"#, &[])?).map_or(0, |n| as_u64(&n));
        if !self.inner.legacy.get() {
            return Ok(log);
        }
        let legacy = first_cell(self.rows(r#"SELECT COALESCE(MAX("offset"), 0) FROM events_v1"#, &[])?).map_or(0, |n| as_u64(&n));
        Ok(log.max(legacy))
    }

    fn read_range(&self, after: u64, before: Option<u64>, limit: usize, max_bytes: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let before = before.unwrap_or(MAX_SAFE_INTEGER);
        if !self.inner.legacy.get() {
            return self.log_range(after, before, limit, max_bytes);
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
        match self.event_where(SELECT_BY_OFFSET, js_int(offset))? {
            None if self.inner.legacy.get() => self.legacy_event(r#"SELECT "offset" FROM events_v1 WHERE "offset" = ?"#, js_int(offset)),
            found => Ok(found),
        }
    }

    fn event_by_idempotency_key(&self, key: &str) -> Result<Option<StoredEvent>, StoreError> {
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
        let mut statements = Vec::with_capacity(events.len().div_ceil(INLINE_ROWS_PER_INSERT) + 2);
        self.push_events(&mut statements, &rows);
        self.commit_state(statements, state_json)
    }

    fn write_state(&self, state_json: &str) -> Result<(), StoreError> {
        self.commit_state(Vec::new(), Some(state_json))
    }
}

/// Whether a commit failed only because an idempotency key is stored already.
pub fn is_duplicate_key(err: &StoreError) -> bool {
    err.0.contains("UNIQUE constraint failed: events.idempotency_key")
}

/// The first layout's rows of `offset, idempotency_key, chunk_bytes`, in
/// offset and slice order, joined into one `(offset, key, bytes)` per event.
/// No slice at all reads as empty; an unreadable one poisons its event (as
/// bytes that are not UTF-8), not the read.
fn legacy_events(rows: Vec<Array>) -> Vec<(u64, Option<String>, Vec<u8>)> {
    let mut events: Vec<(u64, Option<String>, Vec<u8>)> = Vec::new();
    for row in rows {
        let offset = as_u64(&row.get(0));
        let cell = row.get(2);
        let slice = blob(&cell).unwrap_or_else(|| if cell.is_null() { Vec::new() } else { vec![0xff] });
        match events.last_mut() {
            Some((last, _, data)) if *last == offset => data.extend_from_slice(&slice),
            _ => events.push((offset, row.get(1).as_string(), slice)),
        }
    }
    events
}

/// An event to write: its bytes, and the same as text when they are UTF-8.
struct Row<'a> {
    offset: u64,
    key: Option<&'a str>,
    bytes: &'a [u8],
    text: Option<&'a str>,
}

impl<'a> Row<'a> {
    /// The text stored inline in the event's own row: UTF-8 of at most one slice.
    fn inline_text(&self) -> Option<&'a str> {
        self.text.filter(|t| t.len() <= EVENT_CHUNK_SIZE)
    }
}

/// Events read for one page, and whether the log may go on after them.
struct Page {
    events: Vec<StoredEvent>,
    more: bool,
}

/// Splits a page read by `SELECT_WHOLE_PAGE`: `offsets` joined by commas
/// and `text`, every row's JSON object joined by commas. `None` unless the
/// offsets ascend and the text splits at its top-level commas into exactly
/// one object per offset, since SQLite does not promise `group_concat`'s order.
fn split_whole_page(offsets: &str, text: &str) -> Option<Vec<StoredEvent>> {
    let mut previous = 0u64;
    let mut events = Vec::new();
    let mut objects = split_objects(text)?.into_iter();
    for offset in offsets.split(',') {
        let offset: u64 = offset.parse().ok()?;
        if offset <= previous {
            return None;
        }
        previous = offset;
        events.push(StoredEvent { offset, json: objects.next()?.to_owned() });
    }
    objects.next().is_none().then_some(events)
}

/// The JSON objects of `text`, objects joined by commas, split at the commas
/// outside them; `None` when `text` is not such a list.
fn split_objects(text: &str) -> Option<Vec<&str>> {
    let mut objects = Vec::new();
    let (mut depth, mut in_string, mut escaped, mut start) = (0usize, false, false, 0usize);
    for (i, byte) in text.bytes().enumerate() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.checked_sub(1)?,
            b',' if depth == 0 => {
                objects.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if in_string || depth != 0 {
        return None;
    }
    objects.push(&text[start..]);
    objects.iter().all(|o| o.starts_with('{') && o.ends_with('}')).then_some(objects)
}

/// One event of a page: its JSON within the page's text, or only its offset
/// when it lives elsewhere (in slices, or a cell that is not TEXT).
enum PageEntry<'a> {
    Inline(u64, &'a str),
    Elsewhere(u64),
}

/// Splits a page read by `SELECT_CAPPED_PAGE`: `lengths` lists `<offset> <bytes>`
/// (−1 bytes: not inline) and `text` is the inline JSON joined by commas.
/// `None` unless the offsets ascend and the lengths cover `text` exactly,
/// since SQLite does not promise `group_concat`'s order.
fn split_page<'a>(lengths: &str, text: &'a str) -> Option<Vec<PageEntry<'a>>> {
    let mut entries = Vec::new();
    let mut at = 0usize;
    let mut previous = 0u64;
    for item in lengths.split(',').filter(|s| !s.is_empty()) {
        let (offset, length) = item.split_once(' ')?;
        let offset: u64 = offset.parse().ok()?;
        if offset <= previous {
            return None;
        }
        previous = offset;
        if length == "-1" {
            entries.push(PageEntry::Elsewhere(offset));
            continue;
        }
        let length: usize = length.parse().ok()?;
        if at > 0 {
            text.get(at..at + 1).filter(|c| *c == ",")?;
            at += 1;
        }
        entries.push(PageEntry::Inline(offset, text.get(at..at + length)?));
        at += length;
    }
    (at == text.len()).then_some(entries)
}

/// Stands in for an event that cannot be read back as stored: it is not
/// JSON, so a read of it fails with `internal` and replay counts it as
/// unreducible (docs/architecture.md#storage) instead of the whole load failing.
fn corrupt(offset: u64, why: &str) -> String {
    worker::console_error!("event {offset} is damaged: {why}");
    "<damaged event>".to_owned()
}

const SELECT_BY_OFFSET: &str = r#"SELECT "offset", json, chunk_count, byte_length, checksum FROM events WHERE "offset" = ?"#;
const SELECT_BY_KEY: &str = r#"SELECT "offset", json, chunk_count, byte_length, checksum FROM events WHERE idempotency_key = ?"#;
const SELECT_CHUNKS: &str = r#"SELECT chunk_bytes FROM event_chunks WHERE "offset" = ? ORDER BY chunk_index"#;
const SELECT_NEXT_OFFSET: &str = r#"SELECT "offset" FROM events WHERE "offset" > ? AND "offset" < ? ORDER BY "offset" LIMIT 1"#;
/// Up to ?3 events after ?1 and before ?2: how many, how many hold their
/// JSON as text, their offsets and their JSON, each joined by commas.
const SELECT_WHOLE_PAGE: &str = r#"SELECT count(*), sum(typeof(json) = 'text'), group_concat("offset"), group_concat(json, ',') FROM (SELECT "offset", json FROM events WHERE "offset" > ?1 AND "offset" < ?2 ORDER BY "offset" LIMIT ?3)"#;
/// The same, capped: how many events there are, `<offset> <bytes>` of those
/// within the first ?4 bytes of inline JSON (−1: not inline), and that JSON
/// joined by commas.
const SELECT_CAPPED_PAGE: &str = r#"SELECT count(*), group_concat(CASE WHEN upto <= ?4 THEN "offset" || ' ' || len END, ','), group_concat(CASE WHEN upto <= ?4 AND len >= 0 THEN json END, ',') FROM (SELECT "offset", json, len, sum(max(len, 0)) OVER (ORDER BY "offset" ROWS UNBOUNDED PRECEDING) AS upto FROM (SELECT "offset", json, CASE WHEN typeof(json) = 'text' THEN length(CAST(json AS BLOB)) ELSE -1 END AS len FROM events WHERE "offset" > ?1 AND "offset" < ?2 ORDER BY "offset" LIMIT ?3))"#;
const INSERT_CHUNKED: &str = r#"INSERT INTO events ("offset", idempotency_key, chunk_count, byte_length, checksum) VALUES (?, ?, ?, ?, ?)"#;
const INSERT_CHUNK: &str = r#"INSERT INTO event_chunks ("offset", chunk_index, chunk_bytes) VALUES (?, ?, ?)"#;
const DELETE_STATE: &str = "DELETE FROM core_state";
const INSERT_STATE: &str = "INSERT OR REPLACE INTO core_state (chunk_index, version, chunk_bytes) VALUES (?, ?, ?)";
const SELECT_LEGACY_RANGE: &str = r#"SELECT e."offset", e.idempotency_key, c.chunk_bytes FROM (SELECT "offset", idempotency_key FROM events_v1 WHERE "offset" > ? AND "offset" < ? ORDER BY "offset" LIMIT ?) e JOIN event_chunks_v1 c ON c."offset" = e."offset" ORDER BY e."offset", c.chunk_index"#;
const SELECT_LEGACY_CHUNKS: &str = r#"SELECT chunk_bytes FROM event_chunks_v1 WHERE "offset" = ? ORDER BY chunk_index"#;
const SELECT_LEGACY_STEP: &str = r#"SELECT e."offset", e.idempotency_key, c.chunk_bytes FROM (SELECT "offset", idempotency_key FROM events_v1 ORDER BY "offset" LIMIT ?) e LEFT JOIN event_chunks_v1 c ON c."offset" = e."offset" ORDER BY e."offset", c.chunk_index"#;
const DELETE_LEGACY_CHUNKS: &str = r#"DELETE FROM event_chunks_v1 WHERE "offset" <= ?"#;
const DELETE_LEGACY_EVENTS: &str = r#"DELETE FROM events_v1 WHERE "offset" <= ?"#;
const DROP_LEGACY_CHUNKS: &str = "DROP TABLE IF EXISTS event_chunks_v1";
const DROP_LEGACY_EVENTS: &str = "DROP TABLE IF EXISTS events_v1";

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
    if let Some(text) = cell.as_string() {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(entries: &[PageEntry<'_>]) -> Vec<(u64, Option<String>)> {
        entries
            .iter()
            .map(|e| match e {
                PageEntry::Inline(o, json) => (*o, Some((*json).to_owned())),
                PageEntry::Elsewhere(o) => (*o, None),
            })
            .collect()
    }

    #[test]
    fn a_page_splits_by_its_lengths() {
        let page = split_page("1 7,2 -1,3 2", r#"{"a":1},{}"#).unwrap();
        assert_eq!(offsets(&page), vec![(1, Some(r#"{"a":1}"#.into())), (2, None), (3, Some("{}".into()))]);
        assert_eq!(offsets(&split_page("", "").unwrap()), vec![]);
        assert_eq!(offsets(&split_page("4 -1", "").unwrap()), vec![(4, None)]);
    }

    #[test]
    fn a_whole_page_splits_at_the_commas_between_objects() {
        let text = r#"{"a":[1,{"b":"x,}]\\\"{"}]},{},{"c":","}"#;
        let events = split_whole_page("3,5,9", text).unwrap();
        assert_eq!(events.iter().map(|e| e.offset).collect::<Vec<_>>(), vec![3, 5, 9]);
        assert_eq!(events.iter().map(|e| e.json.as_str()).collect::<Vec<_>>(), vec![r#"{"a":[1,{"b":"x,}]\\\"{"}]}"#, "{}", r#"{"c":","}"#]);
        assert_eq!(events.iter().map(|e| e.json.as_str()).collect::<Vec<_>>().join(","), text);
    }

    #[test]
    fn a_whole_page_that_does_not_split_one_object_per_offset_is_refused() {
        assert!(split_whole_page("1,2", "{},{},{}").is_none(), "more objects than offsets");
        assert!(split_whole_page("1,2,3", "{},{}").is_none(), "fewer objects than offsets");
        assert!(split_whole_page("2,1", "{},{}").is_none(), "descending offsets");
        assert!(split_whole_page("1,2", "{,{}").is_none(), "unbalanced");
        assert!(split_whole_page("1", "<damaged>").is_none(), "not an object");
        assert!(split_whole_page("1,2", r#"{"s":"},{"}"#).is_none(), "a comma inside a string does not split");
        assert!(split_whole_page("1", "{}]").is_none());
    }

    #[test]
    fn a_page_out_of_order_or_not_covering_its_text_is_refused() {
        assert!(split_page("2 2,1 2", "{},{}").is_none(), "descending offsets");
        assert!(split_page("1 2,2 2", "{},{},{}").is_none(), "text left over");
        assert!(split_page("1 2,2 3", "{},{}").is_none(), "text too short");
        assert!(split_page("1 2,2 2", "{};{}").is_none(), "not comma-separated");
        assert!(split_page("1 x", "{}").is_none());
        assert!(split_page("1 1", "é").is_none(), "inside a character");
    }
}
