//! The first layout (`events_v1`, `event_chunks_v1`), read until its events are moved into the
//! hot tier step by step (docs/operations.md#migrations-and-state-versions).

use js_sys::Array;
use wasm_bindgen::JsValue;

use streams_core::chunk::reassemble;
use streams_core::store::{StoreError, StoredEvent};

use super::hot::Row;
use super::{as_u64, blob, corrupt, first_cell, js_int, SqlStore};

/// One migration step moves at most this many events or bytes.
const MIGRATION_STEP_EVENTS: usize = 1000;
const MIGRATION_STEP_BYTES: usize = 8 * 1024 * 1024;

impl SqlStore {
    /// A database of the first layout has its two event tables renamed to
    /// `events_v1` and `event_chunks_v1`, which the migration empties and drops.
    pub(super) fn rename_first_layout(&self) -> Result<(), StoreError> {
        let first_layout = first_cell(self.rows("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'events'", &[])?)
            .and_then(|sql| sql.as_string())
            .is_some_and(|sql| sql.contains("created_at"));
        if first_layout {
            self.transaction(|store| {
                store.exec("ALTER TABLE events RENAME TO events_v1", &[])?;
                store.exec("ALTER TABLE event_chunks RENAME TO event_chunks_v1", &[]).map(|_| ())
            })?;
        }
        Ok(())
    }

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

    pub(super) fn legacy_range(&self, after: u64, before: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = self.rows(SELECT_LEGACY_RANGE, &[js_int(after), js_int(before), js_int(limit as u64)])?;
        Ok(legacy_events(rows).into_iter().map(|(offset, _, data)| StoredEvent { offset, json: String::from_utf8(data).unwrap_or_else(|_| corrupt(offset, "not UTF-8")) }).collect())
    }

    pub(super) fn legacy_event(&self, query: &'static str, binding: JsValue) -> Result<Option<StoredEvent>, StoreError> {
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
const SELECT_LEGACY_RANGE: &str = r#"SELECT e."offset", e.idempotency_key, c.chunk_bytes FROM (SELECT "offset", idempotency_key FROM events_v1 WHERE "offset" > ? AND "offset" < ? ORDER BY "offset" LIMIT ?) e JOIN event_chunks_v1 c ON c."offset" = e."offset" ORDER BY e."offset", c.chunk_index"#;
const SELECT_LEGACY_CHUNKS: &str = r#"SELECT chunk_bytes FROM event_chunks_v1 WHERE "offset" = ? ORDER BY chunk_index"#;
const SELECT_LEGACY_STEP: &str = r#"SELECT e."offset", e.idempotency_key, c.chunk_bytes FROM (SELECT "offset", idempotency_key FROM events_v1 ORDER BY "offset" LIMIT ?) e LEFT JOIN event_chunks_v1 c ON c."offset" = e."offset" ORDER BY e."offset", c.chunk_index"#;
const DELETE_LEGACY_CHUNKS: &str = r#"DELETE FROM event_chunks_v1 WHERE "offset" <= ?"#;
const DELETE_LEGACY_EVENTS: &str = r#"DELETE FROM events_v1 WHERE "offset" <= ?"#;
pub(super) const DROP_LEGACY_CHUNKS: &str = "DROP TABLE IF EXISTS event_chunks_v1";
pub(super) const DROP_LEGACY_EVENTS: &str = "DROP TABLE IF EXISTS events_v1";
