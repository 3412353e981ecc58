//! Executes the tier policy of `streams_core::tiers` (docs/architecture.md#storage-tiers): seals
//! the hot tier into R2 segments and applies retention in a background step, never in the append
//! path; fetches archived segments for reads; retries R2 failures with back-off; shares the one
//! alarm with the outbound state machine.

use std::rc::Rc;

use serde_json::{json, Value};

use super::store::{compress_segment, ArchiveBucket};
use super::{log_internal, next_task, Inner};
use streams_core::tiers::{decode_segment, encode_segment, next_trim_at, plan_trim, SegmentInfo, TrimInput, TrimPlan};
use streams_core::state::CoreState;
use streams_core::store::{replay_until, state_before, ReplayFetches, StoredEvent};
use streams_core::StreamResult;

/// How many of the oldest hot events one retention step looks at.
const TRIM_SCAN_EVENTS: usize = 1000;
/// How long a part of a seal waits for the next commit before it runs anyway (`pace`).
const PACE_MS: i32 = 5;
/// Test hook (runtime_meta): a seal stops after its upload, before the SQLite step.
pub(super) const HOLD_AFTER_UPLOAD_KEY: &str = "test-hold-after-upload";

/// The background step's bookkeeping, in memory.
#[derive(Default)]
pub(super) struct Tiering {
    running: bool,
    /// A run is waiting for its own task (`start_tiering`).
    queued: bool,
    failures: u32,
    /// After an R2 failure: no step before this time (epoch ms).
    retry_at: Option<f64>,
    /// When retention next removes something by age.
    trim_at: Option<f64>,
    /// Whether the archive set the alarm (so it must reset it once it wants none).
    armed: bool,
    /// Resolves the wait of a seal's next part (`pace`).
    paced: Option<js_sys::Function>,
}

impl Inner {
    /// After every commit: starts the background step when a seal or a
    /// count limit is due. Constant time; the work runs later.
    pub(super) fn after_commit_tiering(self: &Rc<Self>) {
        let due = {
            let tiering = self.tiering.borrow();
            !tiering.running && !tiering.queued && tiering.retry_at.is_none()
        } && (self.archive.is_some() && self.store.seal_due(self.settings.segment_limits) || self.count_trim_due());
        if due {
            self.start_tiering();
        }
    }

    /// After every commit: a seal waiting in `pace` runs its next part.
    pub(super) fn resume_paced_seal(&self) {
        let waiting = self.tiering.borrow_mut().paced.take();
        if let Some(resolve) = waiting {
            let _ = resolve.call0(&wasm_bindgen::JsValue::UNDEFINED);
        }
    }

    /// Between the parts of a seal: waits for the next commit (at most `PACE_MS`), then two
    /// tasks more, so the part starts once that append has answered, in the pause before the
    /// next one, and an append waits behind one part at most instead of the whole seal.
    /// `false`: the stream's life ended meanwhile.
    async fn pace(&self, generation: u64) -> bool {
        let promise = js_sys::Promise::new(&mut |resolve, _| {
            super::set_timeout(&resolve, PACE_MS);
            self.tiering.borrow_mut().paced = Some(resolve);
        });
        let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
        self.tiering.borrow_mut().paced = None;
        next_task().await;
        next_task().await;
        self.generation.get() == generation
    }

    fn count_trim_due(&self) -> bool {
        let Ok(Some((Some(max_events), max_offset))) = self.with_state(|s| s.config.retention.map(|r| (r.max_events, s.max_offset))) else {
            return false;
        };
        let oldest_unit_last = match self.store.kept_segments().first() {
            Some(segment) => segment.last,
            None if self.archive.is_some() => return false,
            None => self.store.first_offset(),
        };
        max_offset.saturating_sub(oldest_unit_last) >= max_events
    }

    /// Runs steps until nothing is due, in the background, in a task of its
    /// own: the commit that made a seal due answers first instead of waiting
    /// for the seal's reads and encoding, which would run in its turn.
    pub(super) fn start_tiering(self: &Rc<Self>) {
        if std::mem::replace(&mut self.tiering.borrow_mut().queued, true) {
            return;
        }
        let inner = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            next_task().await;
            inner.tiering.borrow_mut().queued = false;
            let _ = inner.run_tiering(None).await;
        });
    }

    /// The steps, one at a time; the error of a failed step, after its back-off was scheduled.
    pub(super) async fn run_tiering(self: &Rc<Self>, clock: Option<f64>) -> Result<(), String> {
        {
            let mut tiering = self.tiering.borrow_mut();
            if tiering.running {
                return Ok(());
            }
            tiering.running = true;
            tiering.retry_at = None;
        }
        let generation = self.generation.get();
        let mut outcome = Ok(());
        while self.generation.get() == generation {
            let now = clock.unwrap_or_else(js_sys::Date::now);
            match self.tiering_step(now, generation).await {
                Ok(true) => continue,
                Ok(false) => break,
                Err(err) => {
                    outcome = Err(err);
                    break;
                }
            }
        }
        if self.generation.get() != generation {
            return outcome;
        }
        let trim_at = self.next_trim_at();
        let arm = {
            let mut tiering = self.tiering.borrow_mut();
            tiering.running = false;
            tiering.trim_at = trim_at;
            match &outcome {
                Ok(()) => tiering.failures = 0,
                Err(err) => {
                    tiering.failures += 1;
                    let backoff = (self.settings.redial_base_ms * 2f64.powi(tiering.failures.min(30) as i32 - 1)).min(self.settings.redial_max_ms);
                    tiering.retry_at = Some(js_sys::Date::now() + backoff);
                    worker::console_error!("archive: {err}; retrying in {backoff} ms (failure {})", tiering.failures);
                }
            }
            // Only a stream whose archive wants (or wanted) the alarm touches it.
            let wants = tiering.retry_at.is_some() || tiering.trim_at.is_some();
            let arm = wants || tiering.armed;
            tiering.armed = wants;
            arm
        };
        if arm {
            self.arm_alarm();
        }
        outcome
    }

    /// Waits until no background step runs (the `runArchiveNow` test hook).
    pub(super) async fn tiering_idle(&self) {
        while self.tiering.borrow().running {
            let tick = js_sys::Promise::new(&mut |resolve, _| super::set_timeout(&resolve, 10));
            let _ = wasm_bindgen_futures::JsFuture::from(tick).await;
        }
    }

    /// One unit of work: delete one trimmed segment's object, seal one
    /// segment, or apply one retention step. `Ok(false)`: nothing was due.
    async fn tiering_step(self: &Rc<Self>, now: f64, generation: u64) -> Result<bool, String> {
        let store = &self.store;
        if let Some((first, key)) = store.trimmed_objects().map_err(|e| e.to_string())?.into_iter().next() {
            if let Some(bucket) = &self.archive {
                bucket.remove(&key).await.map_err(|e| format!("deleting {key}: {e}"))?;
            }
            store.forget_segment(first).map_err(|e| e.to_string())?;
            return Ok(true);
        }
        if let Some(bucket) = &self.archive {
            if let Some(events) = store.seal_candidate(self.settings.segment_limits).map_err(|e| e.to_string())? {
                return self.seal(bucket, events, generation).await;
            }
        }
        if let Some(plan) = self.trim_plan(now)? {
            let kept_state = self.state_after(plan.first_offset - 1).await;
            if self.generation.get() != generation {
                return Ok(false);
            }
            // A commit during the fetches may have changed the retention: apply the plan only
            // while it still removes no more than is due now, else plan again.
            if self.trim_plan(now)?.is_none_or(|due| due.first_offset < plan.first_offset) {
                return Ok(true);
            }
            let state = self.with_state(|s| s.to_json()).map_err(|e| e.to_string())?;
            store.commit_trim(&plan, &state, kept_state.as_deref()).map_err(|e| e.to_string())?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Seals the hot events just read (docs/architecture.md#storage-tiers) in five parts, each
    /// after a `pace`: the read (done), the encoding, the compression, the upload, the SQLite step.
    /// `Ok(false)`: the stream's life ended (reset, deleteStream) or the test hook held it.
    async fn seal(&self, bucket: &ArchiveBucket, events: Vec<StoredEvent>, generation: u64) -> Result<bool, String> {
        let store = &self.store;
        let (Some(first), Some(last)) = (events.first().map(|e| e.offset), events.last().map(|e| e.offset)) else { return Ok(false) };
        if !self.pace(generation).await {
            return Ok(false);
        }
        let texts: Vec<&str> = events.iter().map(|e| e.json.as_str()).collect();
        let (bytes, checksum) = encode_segment(first, &texts);
        let info = SegmentInfo { first, last, bytes: texts.iter().map(|t| t.len() as u64).sum(), checksum, last_at_ms: created_at_ms(texts.last().copied()) };
        let keyed = texts.iter().any(|t| t.contains(r#""idempotencyKey""#));
        drop(texts);
        drop(events);
        let key = self.object_key(first, last);
        store.mark_pending_seal(first, last).map_err(|e| e.to_string())?;
        if !self.pace(generation).await {
            return Ok(false);
        }
        let compressed = compress_segment(&bytes).await.map_err(|e| format!("compressing {key}: {e}"))?;
        drop(bytes);
        if !self.pace(generation).await {
            return Ok(false);
        }
        bucket.upload(&key, &compressed).await.map_err(|e| format!("uploading {key}: {e}"))?;
        if !self.pace(generation).await {
            return Ok(false);
        }
        if self.settings.test_hooks && store.meta(HOLD_AFTER_UPLOAD_KEY).ok().flatten().is_some() {
            return Ok(false);
        }
        let state = self.with_state(|s| s.to_json()).map_err(|e| e.to_string())?;
        store.commit_seal(&info, &key, &state, keyed).map_err(|e| e.to_string())?;
        Ok(true)
    }

    /// The state right after `offset`, read before retention removes the events up to it, so
    /// getState keeps answering from the first kept offset − 1 on; `None` when it cannot be
    /// rebuilt (a log trimmed before the history kept that snapshot).
    async fn state_after(&self, offset: u64) -> Option<String> {
        let mut state = match state_before(&self.store, offset) {
            Ok(state) => state,
            Err(err) => {
                worker::console_warn!("retention: no snapshot at offset {offset}: {err}");
                return None;
            }
        };
        match self.replay_fetching(&mut state, offset, &mut |w| worker::console_warn!("retention: {w}")).await {
            Ok(()) => (state.max_offset == offset).then(|| state.to_json()),
            Err(why) => {
                worker::console_warn!("retention: no snapshot at offset {offset}: {why}");
                None
            }
        }
    }

    /// Replays `state` up to `offset`, fetching each archived segment it misses. The replay keeps
    /// its place across fetches (`replay_until` over short pages), so each fetched segment is
    /// replayed once and the segments need not fit the cache together; `ReplayFetches` ends a
    /// replay that fetches without moving. Stops short of `offset` at events retention removed.
    pub(super) async fn replay_fetching(&self, state: &mut CoreState, offset: u64, warn: &mut dyn FnMut(String)) -> Result<(), String> {
        let mut fetches = ReplayFetches::new(state.max_offset);
        loop {
            match self.store.with_short_pages(|store| replay_until(store, state, offset, warn)) {
                Ok(()) => return Ok(()),
                Err(err) if err.is_pending() => {
                    if !fetches.fetch_again(state.max_offset) {
                        return Err(format!("the replay stopped at offset {}: fetching moved it no further", state.max_offset));
                    }
                    match self.fetch_missing().await {
                        Ok(true) => {}
                        Ok(false) => return Err(format!("the replay stopped at offset {}: {err}", state.max_offset)),
                        Err(_) => return Err(format!("the replay stopped at offset {}: fetching an archived segment failed", state.max_offset)),
                    }
                }
                Err(err) => return Err(err.to_string()),
            }
        }
    }

    fn trim_plan(&self, now_ms: f64) -> Result<Option<TrimPlan>, String> {
        let Some((retention, max_offset)) = self.with_state(|s| s.config.retention.map(|r| (r, s.max_offset))).map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let segments = self.store.kept_segments();
        let hot_oldest = if segments.is_empty() || self.store.oldest_hot(1).is_ok_and(|h| !h.is_empty()) {
            self.hot_oldest()?
        } else {
            Vec::new()
        };
        let input = TrimInput { retention, max_offset, first_offset: self.store.first_offset(), segments: &segments, hot_oldest: &hot_oldest, archive: self.archive.is_some(), now_ms };
        Ok(plan_trim(&input))
    }

    /// The oldest hot events as `(offset, createdAt ms)`.
    fn hot_oldest(&self) -> Result<Vec<(u64, f64)>, String> {
        let events = self.store.oldest_hot(TRIM_SCAN_EVENTS).map_err(|e| e.to_string())?;
        Ok(events.iter().map(|e| (e.offset, created_at_ms(Some(&e.json)))).collect())
    }

    fn next_trim_at(&self) -> Option<f64> {
        let retention = self.with_state(|s| s.config.retention).ok().flatten()?;
        let hot = self.store.oldest_hot(1).ok()?.first().map(|e| created_at_ms(Some(&e.json)));
        next_trim_at(retention, &self.store.kept_segments(), hot)
    }

    /// `streams/<streamId>/<first>-<last>.segment`: a repeated seal writes the same object.
    fn object_key(&self, first: u64, last: u64) -> String {
        let stream_id = self.with_state(|s| s.stream_id.clone()).ok().flatten().unwrap_or_else(|| "stream".to_owned());
        format!("streams/{stream_id}/{first:016}-{last:016}.segment")
    }

    /// When the archive wants the alarm: a retry, or retention due by age.
    pub(super) fn archive_alarm_at(&self) -> Option<f64> {
        let tiering = self.tiering.borrow();
        [tiering.retry_at, tiering.trim_at].into_iter().flatten().reduce(f64::min)
    }

    /// The alarm's share for the archive: a retry or a retention step due.
    pub(super) fn on_alarm_tiering(self: &Rc<Self>) {
        let now = js_sys::Date::now();
        let due = {
            let mut tiering = self.tiering.borrow_mut();
            let due = tiering.retry_at.is_some_and(|at| at <= now) || tiering.trim_at.is_some_and(|at| at <= now);
            if due {
                tiering.retry_at = None;
            }
            due
        };
        if due {
            self.start_tiering();
        }
    }

    /// Fetches the segment the last read missed into the cache. `Ok(false)`:
    /// no read missed. A missing or damaged object is `internal` for its events.
    pub(super) async fn fetch_missing(&self) -> StreamResult<bool> {
        let Some(missing) = self.store.take_miss() else { return Ok(false) };
        let fail = |why: String| log_internal(streams_core::StoreError(format!("archived segment {}: {why}", missing.key)));
        let bucket = self.archive.as_ref().ok_or_else(|| fail("STREAMS_ARCHIVE is not bound".into()))?;
        let bytes = bucket.download(&missing.key).await.map_err(&fail)?.ok_or_else(|| fail("the object is missing".into()))?;
        let events = decode_segment(&bytes, &missing.info).map_err(&fail)?;
        self.store.cache_segment(missing.info.first, events);
        Ok(true)
    }

    /// `runtime.storage` (docs/protocol.md#runtimestate).
    pub(super) fn storage_report(&self) -> Value {
        let f = self.store.storage_figures();
        json!({
            "firstOffset": f.first_offset,
            "hotEvents": f.hot_events,
            "hotBytes": f.hot_bytes,
            "archivedSegments": f.archived_segments,
            "archivedEvents": f.archived_events,
            "archivedBytes": f.archived_bytes,
        })
    }

    /// Deletes every segment object of this stream from R2 (`deleteStream`).
    pub(super) async fn delete_archive(&self) -> StreamResult<()> {
        let Some(bucket) = &self.archive else { return Ok(()) };
        let (mut keys, pending) = self.store.all_object_keys().map_err(log_internal)?;
        keys.extend(pending.map(|(first, last)| self.object_key(first, last)));
        for key in keys {
            bucket.remove(&key).await.map_err(|e| log_internal(streams_core::StoreError(format!("deleting {key}: {e}"))))?;
        }
        Ok(())
    }

    /// Refuses a read that needs an offset retention removed.
    pub(super) fn ensure_kept(&self, needed: u64) -> StreamResult<()> {
        streams_core::tiers::ensure_kept(needed, self.store.first_offset())
    }
}

/// `createdAt` of a committed event in epoch ms (0 when unreadable: such an event counts as old).
fn created_at_ms(json: Option<&str>) -> f64 {
    json.and_then(streams_core::read::created_at_ms).unwrap_or(0.0)
}
