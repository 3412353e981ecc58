//! The archive tier (docs/architecture.md#storage-tiers): the `segments` and `archived_keys`
//! tables, the first kept offset, the hot tier's size, a small cache of segments read back, and
//! the R2 bucket's four calls. What to seal and trim is decided in `streams_core::tiers`.

use std::rc::Rc;

use js_sys::{Array, Promise, Uint8Array};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use streams_core::store::{StoreError, StoredEvent};
use streams_core::tiers::{seal_due, seal_range, segment_is_compressed, tier_of, SegmentInfo, SegmentLimits, Tier, TrimPlan, SEGMENT_COMPRESSION};

use super::{as_u64, first_cell, js_int, js_message, SqlStore, Statement};

pub(super) const ARCHIVE_SCHEMA: [&str; 2] = [
    // `trimmed` rows are removed by retention, their objects not yet deleted from R2.
    r#"CREATE TABLE IF NOT EXISTS segments (first_offset INTEGER PRIMARY KEY, last_offset INTEGER NOT NULL, byte_count INTEGER NOT NULL, checksum INTEGER NOT NULL, last_at_ms REAL NOT NULL, object_key TEXT NOT NULL, trimmed INTEGER NOT NULL DEFAULT 0)"#,
    r#"CREATE TABLE IF NOT EXISTS archived_keys (idempotency_key TEXT PRIMARY KEY, "offset" INTEGER NOT NULL) WITHOUT ROWID"#,
];

/// Segments kept decoded in memory, at most this many and this many bytes of JSON.
const CACHED_SEGMENTS: usize = 16;
const CACHED_BYTES: usize = 32 * 1024 * 1024;
const FIRST_OFFSET_KEY: &str = "first-offset";
const PENDING_SEAL_KEY: &str = "archive-pending";

/// What the store knows of its tiers, loaded at boot and kept up to date by
/// every commit, seal and trim.
#[derive(Default)]
pub(super) struct Tiers {
    first_offset: u64,
    /// Kept segments, ascending, with their object keys.
    segments: Vec<SegmentInfo>,
    object_keys: Vec<String>,
    hot_count: u64,
    hot_bytes: u64,
    /// Whether `archived_keys` has rows: then a keyed append must look its key up.
    archived_keys: bool,
    cache: Vec<(u64, Rc<Vec<StoredEvent>>, usize)>,
    /// The first offset of the segment a read last missed.
    miss: Option<u64>,
}

/// The storage figures of `runtimeState().runtime.storage`.
pub struct StorageFigures {
    pub first_offset: u64,
    pub hot_events: u64,
    pub hot_bytes: u64,
    pub archived_segments: u64,
    pub archived_events: u64,
    pub archived_bytes: u64,
}

/// A segment the archive must fetch: its record and its object key.
pub struct SegmentToFetch {
    pub info: SegmentInfo,
    pub key: String,
}

impl SqlStore {
    fn tiers(&self) -> std::cell::RefMut<'_, Tiers> {
        self.inner.tiers.borrow_mut()
    }

    /// Reads the tiers' bookkeeping (boot, after a reset).
    pub(super) fn load_tiers(&self) -> Result<(), StoreError> {
        let first_offset = self.meta(FIRST_OFFSET_KEY)?.and_then(|v| v.parse().ok()).unwrap_or(1);
        let rows = self.rows("SELECT first_offset, last_offset, byte_count, checksum, last_at_ms, object_key FROM segments WHERE trimmed = 0 ORDER BY first_offset", &[])?;
        let (mut segments, mut object_keys) = (Vec::new(), Vec::new());
        for row in rows {
            segments.push(SegmentInfo {
                first: as_u64(&row.get(0)),
                last: as_u64(&row.get(1)),
                bytes: as_u64(&row.get(2)),
                checksum: as_u64(&row.get(3)) as u32,
                last_at_ms: row.get(4).as_f64().unwrap_or(0.0),
            });
            object_keys.push(row.get(5).as_string().unwrap_or_default());
        }
        let (hot_count, hot_bytes) = self.hot_size()?;
        let archived_keys = first_cell(self.rows("SELECT EXISTS (SELECT 1 FROM archived_keys)", &[])?).is_some_and(|n| as_u64(&n) > 0);
        // The cache survives: segments are immutable, and a boot that failed on a
        // miss boots again with what was fetched (`forget_cache` after a reset).
        let mut tiers = self.tiers();
        let (cache, miss) = (std::mem::take(&mut tiers.cache), tiers.miss.take());
        *tiers = Tiers { first_offset, segments, object_keys, hot_count, hot_bytes, archived_keys, cache, miss };
        Ok(())
    }

    fn hot_size(&self) -> Result<(u64, u64), StoreError> {
        let rows = self.rows(r#"SELECT count(*), COALESCE(sum(COALESCE(length(CAST(json AS BLOB)), byte_length)), 0) FROM events"#, &[])?;
        Ok(rows.first().map_or((0, 0), |row| (as_u64(&row.get(0)), as_u64(&row.get(1)))))
    }

    /// Drops every cached segment: the offsets are about to mean other events (`reset`).
    pub(super) fn forget_cache(&self) {
        let mut tiers = self.tiers();
        tiers.cache.clear();
        tiers.miss = None;
    }

    /// Counts a commit's events into the hot tier's size.
    pub(super) fn count_hot(&self, events: u64, bytes: u64) {
        let mut tiers = self.tiers();
        tiers.hot_count += events;
        tiers.hot_bytes += bytes;
    }

    /// Whether the hot tier holds a segment's worth (constant time).
    pub fn seal_due(&self, limits: SegmentLimits) -> bool {
        let tiers = self.inner.tiers.borrow();
        seal_due(tiers.hot_count, tiers.hot_bytes, limits)
    }

    pub fn first_offset(&self) -> u64 {
        self.inner.tiers.borrow().first_offset.max(1)
    }

    pub fn storage_figures(&self) -> StorageFigures {
        let tiers = self.inner.tiers.borrow();
        StorageFigures {
            first_offset: tiers.first_offset.max(1),
            hot_events: tiers.hot_count,
            hot_bytes: tiers.hot_bytes,
            archived_segments: tiers.segments.len() as u64,
            archived_events: tiers.segments.iter().map(SegmentInfo::events).sum(),
            archived_bytes: tiers.segments.iter().map(|s| s.bytes).sum(),
        }
    }

    pub fn has_archived_keys(&self) -> bool {
        self.inner.tiers.borrow().archived_keys
    }

    /// The highest archived offset, 0 when nothing is archived.
    pub(super) fn archived_max(&self) -> u64 {
        let tiers = self.inner.tiers.borrow();
        tiers.segments.last().map_or(0, |s| s.last).max(tiers.first_offset.saturating_sub(1))
    }

    /// The offsets holding the first event at or after `since_ms`: the first
    /// segment whose last event is that late, or everything after the archive.
    pub(super) fn segment_bounds_since(&self, since_ms: f64) -> Option<(u64, u64)> {
        let tiers = self.inner.tiers.borrow();
        let last = tiers.segments.last()?;
        Some(match tiers.segments.iter().find(|s| s.last_at_ms >= since_ms) {
            Some(segment) => (segment.first, segment.last + 1),
            None => (last.last + 1, u64::MAX),
        })
    }

    /// The tier of `offset`.
    pub(super) fn tier(&self, offset: u64) -> Tier {
        let tiers = self.inner.tiers.borrow();
        tier_of(offset, tiers.first_offset.max(1), &tiers.segments)
    }

    /// The events of the segment at `index`, from the cache; a miss records
    /// the segment for `take_miss` and fails.
    pub(super) fn cached_segment(&self, index: usize) -> Result<(SegmentInfo, Rc<Vec<StoredEvent>>), StoreError> {
        let mut tiers = self.tiers();
        let info = tiers.segments.get(index).cloned().ok_or_else(|| StoreError("segment index out of range".into()))?;
        let position = tiers.cache.iter().position(|(first, _, _)| *first == info.first);
        match position {
            Some(at) => {
                let entry = tiers.cache.remove(at);
                let events = entry.1.clone();
                tiers.cache.push(entry);
                Ok((info, events))
            }
            None => {
                tiers.miss = Some(info.first);
                Err(StoreError::pending(format_args!("archived segment {}", info.first)))
            }
        }
    }

    pub fn has_miss(&self) -> bool {
        self.inner.tiers.borrow().miss.is_some()
    }

    /// Whether the cache holds `segments` of the size of the recent ones at
    /// once (so one page may span them without evicting its own start).
    pub(super) fn cache_holds(&self, segments: usize) -> bool {
        let tiers = self.inner.tiers.borrow();
        let largest = tiers.cache.iter().map(|e| e.2).max().unwrap_or(0);
        segments <= CACHED_SEGMENTS && segments * largest <= CACHED_BYTES
    }

    /// The segment a read last needed and did not find cached, once.
    pub fn take_miss(&self) -> Option<SegmentToFetch> {
        let mut tiers = self.tiers();
        let first = tiers.miss.take()?;
        let index = tiers.segments.iter().position(|s| s.first == first)?;
        Some(SegmentToFetch { info: tiers.segments[index].clone(), key: tiers.object_keys[index].clone() })
    }

    /// Keeps a fetched segment's events, dropping the least recently read
    /// segments beyond the cache's bounds.
    pub fn cache_segment(&self, first: u64, events: Vec<StoredEvent>) {
        let bytes = events.iter().map(|e| e.json.len()).sum();
        let mut tiers = self.tiers();
        tiers.cache.retain(|(f, _, _)| *f != first);
        tiers.cache.push((first, Rc::new(events), bytes));
        while tiers.cache.len() > CACHED_SEGMENTS || (tiers.cache.len() > 1 && tiers.cache.iter().map(|e| e.2).sum::<usize>() > CACHED_BYTES) {
            tiers.cache.remove(0);
        }
    }

    /// The offset of the archived event with idempotency key `key`.
    pub(super) fn archived_key_offset(&self, key: &str) -> Result<Option<u64>, StoreError> {
        if !self.has_archived_keys() {
            return Ok(None);
        }
        Ok(first_cell(self.rows(r#"SELECT "offset" FROM archived_keys WHERE idempotency_key = ?"#, &[key.into()])?).map(|n| as_u64(&n)))
    }

    // ---- sealing ----

    /// The events of the next segment when the hot tier holds a segment's
    /// worth, or of the range whose upload a crash interrupted: read once,
    /// as the segment's range is cut (`seal_range`).
    pub fn seal_candidate(&self, limits: SegmentLimits) -> Result<Option<Vec<StoredEvent>>, StoreError> {
        if let Some((first, last)) = self.pending_seal()? {
            return self.hot_events(first, last).map(Some);
        }
        let (count, bytes) = {
            let tiers = self.inner.tiers.borrow();
            (tiers.hot_count, tiers.hot_bytes)
        };
        if self.migration_pending() || !seal_due(count, bytes, limits) {
            return Ok(None);
        }
        let oldest = self.log_range(0, streams_core::limits::MAX_SAFE_INTEGER, limits.max_events as usize, limits.max_bytes as usize)?;
        let sizes: Vec<(u64, u64)> = oldest.iter().map(|e| (e.offset, e.json.len() as u64)).collect();
        let Some((first, last)) = seal_range(&sizes, limits) else { return Ok(None) };
        let events: Vec<StoredEvent> = oldest.into_iter().take_while(|e| e.offset <= last).collect();
        contiguous(events, first, last).map(Some)
    }

    fn pending_seal(&self) -> Result<Option<(u64, u64)>, StoreError> {
        let Some(value) = self.meta(PENDING_SEAL_KEY)? else { return Ok(None) };
        Ok(value.split_once('-').and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?))))
    }

    /// Records the range about to be uploaded, so a crash resumes it.
    pub fn mark_pending_seal(&self, first: u64, last: u64) -> Result<(), StoreError> {
        self.set_meta(PENDING_SEAL_KEY, &format!("{first}-{last}"))
    }

    /// The hot events `first..=last`, in order; an error unless all are there.
    fn hot_events(&self, first: u64, last: u64) -> Result<Vec<StoredEvent>, StoreError> {
        contiguous(self.log_range(first - 1, last + 1, usize::MAX, usize::MAX)?, first, last)
    }

    /// After R2 confirmed the object: records the segment, keeps its
    /// idempotency keys, removes its rows and stores the state, atomically.
    /// The tiers' bookkeeping follows by arithmetic: no scan of the hot tier.
    /// `keyed`: some event of the segment may have an idempotency key (without
    /// one, its rows are not scanned for keys).
    pub fn commit_seal(&self, info: &SegmentInfo, key: &str, state_json: &str, keyed: bool) -> Result<(), StoreError> {
        let range = || -> Array { [js_int(info.first), js_int(info.last)].iter().collect() };
        let mut statements: Vec<Statement> = vec![
            (
                self.query("INSERT OR REPLACE INTO segments (first_offset, last_offset, byte_count, checksum, last_at_ms, object_key, trimmed) VALUES (?, ?, ?, ?, ?, ?, 0)"),
                [js_int(info.first), js_int(info.last), js_int(info.bytes), js_int(info.checksum.into()), JsValue::from_f64(info.last_at_ms), key.into()].iter().collect(),
            ),
            (self.query(r#"DELETE FROM event_chunks WHERE "offset" BETWEEN ? AND ?"#), range()),
            (self.query(r#"DELETE FROM events WHERE "offset" BETWEEN ? AND ?"#), range()),
            (self.query("DELETE FROM runtime_meta WHERE key = ?"), [JsValue::from_str(PENDING_SEAL_KEY)].iter().collect()),
        ];
        if keyed {
            // Before the rows go: the keys keep de-duplicating archived events.
            statements.insert(1, (self.query(r#"INSERT OR IGNORE INTO archived_keys (idempotency_key, "offset") SELECT idempotency_key, "offset" FROM events WHERE "offset" BETWEEN ? AND ? AND idempotency_key IS NOT NULL"#), range()));
        }
        self.commit_state(statements, Some(state_json), None)?;
        let archived_keys = self.has_archived_keys() || keyed && first_cell(self.rows("SELECT EXISTS (SELECT 1 FROM archived_keys)", &[])?).is_some_and(|n| as_u64(&n) > 0);
        let mut tiers = self.tiers();
        tiers.segments.push(info.clone());
        tiers.object_keys.push(key.to_owned());
        tiers.hot_count = tiers.hot_count.saturating_sub(info.events());
        tiers.hot_bytes = tiers.hot_bytes.saturating_sub(info.bytes);
        tiers.archived_keys = archived_keys;
        Ok(())
    }

    // ---- retention ----

    /// The oldest hot events, at most `limit`, with their JSON.
    pub fn oldest_hot(&self, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        self.log_range(0, streams_core::limits::MAX_SAFE_INTEGER, limit, usize::MAX)
    }

    pub fn kept_segments(&self) -> Vec<SegmentInfo> {
        self.inner.tiers.borrow().segments.clone()
    }

    /// Applies a retention step to SQLite atomically: the new first kept
    /// offset, the removed segments marked for deletion from R2, the removed
    /// hot rows and idempotency keys gone, the state stored. `kept_state` is
    /// the state right after `first_offset - 1`: kept in the history, it
    /// replaces every older snapshot (docs/protocol.md#getstate).
    pub fn commit_trim(&self, plan: &TrimPlan, state_json: &str, kept_state: Option<&str>) -> Result<(), StoreError> {
        let before = || -> Array { [js_int(plan.first_offset)].iter().collect() };
        let mut statements: Vec<Statement> = vec![
            (self.query("UPDATE segments SET trimmed = 1 WHERE first_offset < ?"), before()),
            (self.query(r#"DELETE FROM event_chunks WHERE "offset" < ?"#), before()),
            (self.query(r#"DELETE FROM events WHERE "offset" < ?"#), before()),
            (self.query(r#"DELETE FROM archived_keys WHERE "offset" < ?"#), before()),
            (
                self.query("INSERT OR REPLACE INTO runtime_meta (key, value) VALUES (?, ?)"),
                [JsValue::from_str(FIRST_OFFSET_KEY), JsValue::from_str(&plan.first_offset.to_string())].iter().collect(),
            ),
        ];
        match kept_state {
            Some(json) => {
                let at = plan.first_offset - 1;
                statements.push((self.query("DELETE FROM state_history WHERE at_offset < ?"), [js_int(at)].iter().collect()));
                self.push_history(&mut statements, at, json);
            }
            // Without it, the newest older snapshot stays: getState replays from it as far as events are kept.
            None => statements.push((
                self.query("DELETE FROM state_history WHERE at_offset < (SELECT COALESCE(MAX(at_offset), 0) FROM state_history WHERE at_offset < ?)"),
                before(),
            )),
        }
        self.commit_state(statements, Some(state_json), None)?;
        self.load_tiers()
    }

    /// The offsets of the kept state snapshots (the `runArchiveNow` test hook).
    pub fn history_offsets(&self) -> Result<Vec<u64>, StoreError> {
        Ok(self.rows("SELECT DISTINCT at_offset FROM state_history ORDER BY at_offset", &[])?.iter().map(|row| as_u64(&row.get(0))).collect())
    }

    /// Segments retention removed whose objects are still in R2: `(first, key)`.
    pub fn trimmed_objects(&self) -> Result<Vec<(u64, String)>, StoreError> {
        let rows = self.rows("SELECT first_offset, object_key FROM segments WHERE trimmed = 1 ORDER BY first_offset", &[])?;
        Ok(rows.iter().map(|row| (as_u64(&row.get(0)), row.get(1).as_string().unwrap_or_default())).collect())
    }

    /// Forgets a trimmed segment once R2 deleted its object.
    pub fn forget_segment(&self, first: u64) -> Result<(), StoreError> {
        self.exec("DELETE FROM segments WHERE first_offset = ? AND trimmed = 1", &[js_int(first)]).map(|_| ())
    }

    /// Every object key the `segments` table names, and the range of a seal
    /// uploaded but not recorded (deleting the stream).
    pub fn all_object_keys(&self) -> Result<(Vec<String>, Option<(u64, u64)>), StoreError> {
        let rows = self.rows("SELECT object_key FROM segments", &[])?;
        Ok((rows.iter().filter_map(|row| row.get(0).as_string()).collect(), self.pending_seal()?))
    }
}

/// `events` when they are exactly the offsets `first..=last`, in order.
fn contiguous(events: Vec<StoredEvent>, first: u64, last: u64) -> Result<Vec<StoredEvent>, StoreError> {
    let whole = first <= last && events.len() as u64 == last + 1 - first && events.iter().zip(first..).all(|(e, o)| e.offset == o);
    whole.then_some(events).ok_or_else(|| StoreError(format!("hot events {first}..={last} are not all there")))
}

#[wasm_bindgen]
extern "C" {
    /// An R2 bucket binding (or anything with the same four methods).
    #[derive(Clone)]
    pub type ArchiveBucket;
    #[wasm_bindgen(structural, method, catch)]
    fn put(this: &ArchiveBucket, key: &str, value: &JsValue) -> Result<Promise, JsValue>;
    #[wasm_bindgen(structural, method, catch)]
    fn get(this: &ArchiveBucket, key: &str) -> Result<Promise, JsValue>;
    #[wasm_bindgen(structural, method, catch, js_name = delete)]
    fn delete_object(this: &ArchiveBucket, key: &str) -> Result<Promise, JsValue>;

    /// The platform's gzip, native in workerd: `new CompressionStream("gzip")`.
    type CompressionStream;
    #[wasm_bindgen(constructor, catch)]
    fn new(format: &str) -> Result<CompressionStream, JsValue>;
    type DecompressionStream;
    #[wasm_bindgen(constructor, catch)]
    fn new(format: &str) -> Result<DecompressionStream, JsValue>;

    /// A `Response`, only to turn bytes into a stream and a stream back into bytes.
    #[wasm_bindgen(js_name = Response)]
    type BodyBuffer;
    #[wasm_bindgen(constructor, js_class = "Response", catch)]
    fn new(body: &JsValue) -> Result<BodyBuffer, JsValue>;
    #[wasm_bindgen(method, getter, js_class = "Response")]
    fn body(this: &BodyBuffer) -> ByteStream;
    #[wasm_bindgen(method, catch, js_class = "Response", js_name = arrayBuffer)]
    fn array_buffer(this: &BodyBuffer) -> Result<Promise, JsValue>;
    type ByteStream;
    #[wasm_bindgen(structural, method, catch, js_name = pipeThrough)]
    fn pipe_through(this: &ByteStream, transform: &JsValue) -> Result<ByteStream, JsValue>;
}

/// A segment object as stored: `encode_segment`'s bytes compressed (`SEGMENT_COMPRESSION`), as an `ArrayBuffer`.
pub async fn compress_segment(segment: &[u8]) -> Result<JsValue, String> {
    transcode(segment, CompressionStream::new(SEGMENT_COMPRESSION).map(Into::into)).await
}

/// `bytes` through a compression or decompression stream, as an `ArrayBuffer`.
async fn transcode(bytes: &[u8], transform: Result<JsValue, JsValue>) -> Result<JsValue, String> {
    let run = || -> Result<Promise, JsValue> {
        let input = BodyBuffer::new(&Uint8Array::from(bytes).into())?.body();
        BodyBuffer::new(&input.pipe_through(&transform?)?.into())?.array_buffer()
    };
    settle(run()).await
}

impl ArchiveBucket {
    /// The `STREAMS_ARCHIVE` binding, when the Worker has one.
    pub fn bound(env: &worker::Env) -> Option<Self> {
        let binding = js_sys::Reflect::get(env, &JsValue::from_str("STREAMS_ARCHIVE")).ok()?;
        (!binding.is_undefined() && !binding.is_null()).then(|| binding.unchecked_into())
    }

    /// Stores an object (a segment: `compress_segment`'s bytes).
    pub async fn upload(&self, key: &str, object: &JsValue) -> Result<(), String> {
        settle(self.put(key, object)).await.map(|_| ())
    }

    /// A segment object's bytes, decompressed when it was stored compressed (objects written
    /// before compression are not); `None` when it does not exist.
    pub async fn download(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        let Some(bytes) = self.download_stored(key).await? else { return Ok(None) };
        if !segment_is_compressed(&bytes) {
            return Ok(Some(bytes));
        }
        let buffer = transcode(&bytes, DecompressionStream::new(SEGMENT_COMPRESSION).map(Into::into)).await.map_err(|e| format!("decompressing: {e}"))?;
        Ok(Some(Uint8Array::new(&buffer).to_vec()))
    }

    /// The object's bytes as stored; `None` when it does not exist.
    async fn download_stored(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        let object = settle(self.get(key)).await?;
        if object.is_null() || object.is_undefined() {
            return Ok(None);
        }
        let read = js_sys::Reflect::get(&object, &JsValue::from_str("arrayBuffer"))
            .ok()
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
            .ok_or("the object has no body")?;
        let buffer = settle(read.call0(&object).map(JsValue::unchecked_into)).await?;
        Ok(Some(Uint8Array::new(&buffer).to_vec()))
    }

    pub async fn remove(&self, key: &str) -> Result<(), String> {
        settle(self.delete_object(key)).await.map(|_| ())
    }

}

/// Awaits a binding call's promise; a throw or a rejection is the error's message.
async fn settle(call: Result<Promise, JsValue>) -> Result<JsValue, String> {
    let promise = call.map_err(|e| js_message(&e))?;
    JsFuture::from(promise).await.map_err(|e| js_message(&e))
}
