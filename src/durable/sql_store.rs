//! `EventStore` over DO SQLite (docs/architecture.md#storage): the schema, chunked rows, range and
//! point reads, and one `transactionSync` per commit. This file is the only
//! place that knows the SQL.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use worker::{SqlStorage, SqlStorageValue, Storage};

use streams_core::chunk::{chunks, reassemble};
use streams_core::limits::MAX_SAFE_INTEGER;
use streams_core::store::{EventStore, NewEvent, StoreError, StoredEvent, StoredState};
use streams_core::CORE_STATE_VERSION;

const SCHEMA: [&str; 4] = [
    r#"CREATE TABLE IF NOT EXISTS events ("offset" INTEGER PRIMARY KEY, type TEXT NOT NULL, created_at TEXT NOT NULL, idempotency_key TEXT UNIQUE)"#,
    r#"CREATE TABLE IF NOT EXISTS event_chunks ("offset" INTEGER NOT NULL REFERENCES events("offset") ON DELETE CASCADE, chunk_index INTEGER NOT NULL, chunk_bytes BLOB NOT NULL, PRIMARY KEY ("offset", chunk_index)) WITHOUT ROWID"#,
    r#"CREATE TABLE IF NOT EXISTS core_state (chunk_index INTEGER PRIMARY KEY, version INTEGER NOT NULL, chunk_bytes BLOB NOT NULL)"#,
    r#"CREATE TABLE IF NOT EXISTS runtime_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"#,
];

#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    /// `ctx.storage`, for the `transactionSync` that worker 0.8.7 does not wrap.
    #[derive(Clone)]
    type StorageWithTransactions;
    #[wasm_bindgen(method, catch, js_name = transactionSync)]
    fn transaction_sync(this: &StorageWithTransactions, body: &js_sys::Function) -> Result<JsValue, JsValue>;
}

#[derive(Clone)]
pub struct SqlStore {
    sql: SqlStorage,
    storage: StorageWithTransactions,
    /// How many `core_state` rows exist, when known: an unchanged count lets a
    /// commit overwrite them in place instead of deleting first.
    state_rows: Rc<Cell<Option<usize>>>,
}

impl SqlStore {
    pub fn new(storage: &Storage) -> Self {
        let raw: &JsValue = storage.as_raw().as_ref();
        Self { sql: storage.sql(), storage: raw.clone().unchecked_into(), state_rows: Rc::default() }
    }

    pub fn create_schema(&self) -> Result<(), StoreError> {
        for ddl in SCHEMA {
            self.exec(ddl, vec![])?;
        }
        Ok(())
    }

    /// Whether the tables exist, asked without creating them.
    pub fn has_schema(&self) -> Result<bool, StoreError> {
        let rows = self.rows("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'events'", vec![])?;
        Ok(rows.into_iter().next().and_then(|row| row.into_iter().next()).is_some_and(|n| as_u64(n) > 0))
    }

    fn exec(&self, query: &str, bindings: Vec<SqlStorageValue>) -> Result<worker::SqlCursor, StoreError> {
        self.sql.exec(query, bindings).map_err(|e| StoreError(format!("{query}: {e}")))
    }

    fn rows(&self, query: &str, bindings: Vec<SqlStorageValue>) -> Result<Vec<Vec<SqlStorageValue>>, StoreError> {
        self.exec(query, bindings)?
            .raw()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError(format!("{query}: {e}")))
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
        match self.storage.transaction_sync(closure.unchecked_ref()) {
            Ok(_) => Ok(()),
            Err(js) => Err(outcome.borrow_mut().take().unwrap_or_else(|| StoreError(format!("transactionSync: {js:?}")))),
        }
    }

    /// Replaces every `core_state` row with the chunks of `state_json`.
    fn push_state(&self, statements: &mut Vec<(&'static str, Vec<JsValue>)>, state_json: &str) {
        let parts = chunks(state_json.as_bytes());
        if self.state_rows.get() != Some(parts.len()) {
            statements.push((DELETE_STATE, Vec::new()));
        }
        for (index, chunk) in parts.into_iter().enumerate() {
            statements.push((INSERT_STATE, vec![js_int(index as u64), JsValue::from_f64(CORE_STATE_VERSION as f64), js_sys::Uint8Array::from(chunk).into()]));
        }
    }

    /// Runs prepared statements in one `transactionSync`. The bindings are JS
    /// values already (chunks copied once, straight into `Uint8Array`s), so
    /// the closure owns them without another copy of the JSON.
    fn run_all(&self, statements: Vec<(&'static str, Vec<JsValue>)>) -> Result<(), StoreError> {
        self.transaction(move |store| {
            for (query, bindings) in statements {
                store.sql.exec_raw(query, bindings).map_err(|e| StoreError(format!("{query}: {e}")))?;
            }
            Ok(())
        })
    }
    fn chunks_of(&self, offset: u64) -> Result<Option<StoredEvent>, StoreError> {
        let rows = self.rows(r#"SELECT chunk_bytes FROM event_chunks WHERE "offset" = ? ORDER BY chunk_index"#, vec![int(offset)])?;
        if rows.is_empty() {
            return Ok(None);
        }
        let slices = rows.into_iter().map(|row| blob(row.into_iter().next())).collect::<Result<Vec<_>, _>>()?;
        let json = reassemble(slices).map_err(|_| StoreError(format!("event {offset} is not UTF-8")))?;
        Ok(Some(StoredEvent { offset, json }))
    }

    /// `runtime_meta` value for `key`.
    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let rows = self.rows("SELECT value FROM runtime_meta WHERE key = ?", vec![key.into()])?;
        Ok(rows.into_iter().next().and_then(|row| match row.into_iter().next() {
            Some(SqlStorageValue::String(s)) => Some(s),
            _ => None,
        }))
    }

    /// Every `runtime_meta` row whose key starts with `prefix`.
    pub fn meta_with_prefix(&self, prefix: &str) -> Result<Vec<(String, String)>, StoreError> {
        let rows = self.rows("SELECT key, value FROM runtime_meta WHERE substr(key, 1, ?) = ? ORDER BY key", vec![int(prefix.len() as u64), prefix.into()])?;
        Ok(rows
            .into_iter()
            .filter_map(|row| match <[SqlStorageValue; 2]>::try_from(row) {
                Ok([SqlStorageValue::String(k), SqlStorageValue::String(v)]) => Some((k, v)),
                _ => None,
            })
            .collect())
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.exec("INSERT OR REPLACE INTO runtime_meta (key, value) VALUES (?, ?)", vec![key.into(), value.into()]).map(|_| ())
    }

    pub fn delete_meta(&self, key: &str) -> Result<(), StoreError> {
        self.exec("DELETE FROM runtime_meta WHERE key = ?", vec![key.into()]).map(|_| ())
    }

    /// Deletes every row of every table (`reset`).
    pub fn delete_everything(&self) -> Result<(), StoreError> {
        self.transaction(|store| {
            for table in ["event_chunks", "events", "core_state", "runtime_meta"] {
                store.exec(&format!("DELETE FROM {table}"), vec![])?;
            }
            Ok(())
        })?;
        self.state_rows.set(Some(0));
        Ok(())
    }
}

impl EventStore for SqlStore {
    fn max_offset(&self) -> Result<u64, StoreError> {
        let rows = self.rows(r#"SELECT COALESCE(MAX("offset"), 0) FROM events"#, vec![])?;
        Ok(rows.into_iter().next().and_then(|r| r.into_iter().next()).map_or(0, as_u64))
    }

    fn read_range(&self, after: u64, before: Option<u64>, limit: usize, max_bytes: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let before = before.unwrap_or(MAX_SAFE_INTEGER);
        let cursor = self.exec(
            r#"SELECT c."offset", c.chunk_bytes FROM (SELECT "offset" FROM events WHERE "offset" > ? AND "offset" < ? ORDER BY "offset" LIMIT ?) e JOIN event_chunks c ON c."offset" = e."offset" ORDER BY c."offset", c.chunk_index"#,
            vec![int(after), int(before), int(limit as u64)],
        )?;
        let mut events = Vec::new();
        let mut bytes = 0usize;
        let mut current: Option<(u64, Vec<u8>)> = None;
        let mut finish = |current: Option<(u64, Vec<u8>)>, events: &mut Vec<StoredEvent>| -> Result<bool, StoreError> {
            let Some((offset, data)) = current else { return Ok(true) };
            if !events.is_empty() && bytes + data.len() > max_bytes {
                return Ok(false);
            }
            bytes += data.len();
            let json = String::from_utf8(data).unwrap_or_else(|_| {
                worker::console_error!("event {offset}: chunks are not UTF-8");
                CORRUPT_EVENT.to_owned()
            });
            events.push(StoredEvent { offset, json });
            Ok(true)
        };
        for row in cursor.raw() {
            let row = row.map_err(|e| StoreError(e.to_string()))?;
            let mut cells = row.into_iter();
            let offset = cells.next().map_or(0, as_u64);
            // An unreadable chunk poisons its event (as non-UTF-8), not the read.
            let slice = blob(cells.next()).unwrap_or_else(|_| vec![0xff]);
            match &mut current {
                Some((o, data)) if *o == offset => data.extend_from_slice(&slice),
                _ => {
                    if !finish(current.take(), &mut events)? {
                        return Ok(events);
                    }
                    current = Some((offset, slice));
                }
            }
        }
        finish(current, &mut events)?;
        Ok(events)
    }

    fn event_at(&self, offset: u64) -> Result<Option<StoredEvent>, StoreError> {
        let exists = self.rows(r#"SELECT 1 FROM events WHERE "offset" = ?"#, vec![int(offset)])?;
        if exists.is_empty() {
            return Ok(None);
        }
        self.chunks_of(offset)
    }

    fn event_by_idempotency_key(&self, key: &str) -> Result<Option<StoredEvent>, StoreError> {
        let rows = self.rows(r#"SELECT "offset" FROM events WHERE idempotency_key = ?"#, vec![key.into()])?;
        match rows.into_iter().next().and_then(|r| r.into_iter().next()) {
            Some(offset) => self.chunks_of(as_u64(offset)),
            None => Ok(None),
        }
    }

    fn read_state(&self) -> Result<Option<StoredState>, StoreError> {
        let rows = self.rows("SELECT version, chunk_bytes FROM core_state ORDER BY chunk_index", vec![])?;
        self.state_rows.set(Some(rows.len()));
        if rows.is_empty() {
            return Ok(None);
        }
        let mut versions = Vec::with_capacity(rows.len());
        let mut slices = Vec::with_capacity(rows.len());
        for row in rows {
            let mut cells = row.into_iter();
            versions.push(match cells.next() {
                Some(SqlStorageValue::Integer(v)) => Some(v),
                Some(SqlStorageValue::Float(v)) if v.fract() == 0.0 => Some(v as i64),
                _ => None,
            });
            slices.push(blob(cells.next()).ok());
        }
        // Damaged rows make the state stale, which the load rebuilds (docs/operations.md#migrations-and-state-versions).
        let version = versions.iter().all(|v| *v == versions[0]).then_some(versions[0]).flatten();
        let json = slices.into_iter().collect::<Option<Vec<_>>>().and_then(|s| reassemble(s).ok());
        Ok(Some(StoredState { version, json }))
    }

    fn commit(&self, events: &[NewEvent], state_json: &str) -> Result<(), StoreError> {
        let mut statements = Vec::with_capacity(events.len() * 2 + 2);
        for event in events {
            statements.push((INSERT_EVENT, vec![
                js_int(event.offset),
                JsValue::from_str(&event.event_type),
                JsValue::from_str(&event.created_at),
                event.idempotency_key.as_deref().map_or(JsValue::NULL, JsValue::from_str),
            ]));
            for (index, chunk) in chunks(event.json.as_bytes()).into_iter().enumerate() {
                statements.push((INSERT_CHUNK, vec![js_int(event.offset), js_int(index as u64), js_sys::Uint8Array::from(chunk).into()]));
            }
        }
        self.push_state(&mut statements, state_json);
        self.run_all(statements)?;
        self.state_rows.set(Some(chunks(state_json.as_bytes()).len()));
        Ok(())
    }

    fn write_state(&self, state_json: &str) -> Result<(), StoreError> {
        let mut statements = Vec::new();
        self.push_state(&mut statements, state_json);
        self.run_all(statements)?;
        self.state_rows.set(Some(chunks(state_json.as_bytes()).len()));
        Ok(())
    }
}

const INSERT_EVENT: &str = r#"INSERT INTO events ("offset", type, created_at, idempotency_key) VALUES (?, ?, ?, ?)"#;
const INSERT_CHUNK: &str = r#"INSERT INTO event_chunks ("offset", chunk_index, chunk_bytes) VALUES (?, ?, ?)"#;
const DELETE_STATE: &str = "DELETE FROM core_state";
const INSERT_STATE: &str = "INSERT OR REPLACE INTO core_state (chunk_index, version, chunk_bytes) VALUES (?, ?, ?)";


fn js_int(n: u64) -> JsValue {
    // Offsets and indexes stay below 2^53 (checked at append): exact as doubles.
    JsValue::from_f64(n as f64)
}

fn int(n: u64) -> SqlStorageValue {
    // Offsets and indexes stay below 2^53 (checked at append).
    SqlStorageValue::Integer(n as i64)
}

fn as_u64(value: SqlStorageValue) -> u64 {
    match value {
        SqlStorageValue::Integer(i) => i.max(0) as u64,
        SqlStorageValue::Float(f) if f >= 0.0 => f as u64,
        _ => 0,
    }
}

/// A chunk's bytes. A TEXT cell (the bytes were stored with the wrong type)
/// still carries them; anything else is corrupt.
fn blob(cell: Option<SqlStorageValue>) -> Result<Vec<u8>, StoreError> {
    match cell {
        Some(SqlStorageValue::Blob(bytes)) => Ok(bytes),
        Some(SqlStorageValue::String(text)) => Ok(text.into_bytes()),
        other => Err(StoreError(format!("expected a BLOB chunk, got {other:?}"))),
    }
}

/// Stands in for an event whose chunks cannot be decoded: it is not JSON, so
/// a read of it fails with `internal` and replay counts it as unreducible
/// (docs/architecture.md#storage, docs/operations.md#migrations-and-state-versions) instead of the whole load failing.
const CORRUPT_EVENT: &str = "<corrupt event chunks>";
