//! Planning an append: validation, idempotency, the pause gate, offsets, size
//! limits and the reduction into a working copy of the state (docs/architecture.md#the-append-path, steps
//! 0–2). Nothing here writes: the adapter commits the plan in one transaction.

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::error::{ErrorCode, StreamError, StreamResult};
use super::event::{parse_event_input, types, Event, EventInput, COMMITTED_EXTRA_BYTES};
use super::json::json_len;
use super::limits::{MAX_BATCH_EVENTS, MAX_BATCH_JSON_BYTES, MAX_EVENT_JSON_BYTES};
use super::name::{child_notice_key, quote, validate_path};
use super::payload::{parse_core_payload, CorePayload};
use super::plain_input::PlainInputs;
use super::reducer::{passes_pause_gate, reduce, ReduceError};
use super::state::CoreState;
use super::store::{EventStore, NewEvent, StoredEvent};
use super::time::iso_from_ms;

pub const BREAKER_TRIP_REASON: &str = "circuit breaker tripped: burst rate limit exceeded";

/// Who is appending: callers may not write the stream's reserved types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Caller,
    Stream,
}

pub struct AppendContext<'a> {
    /// The wall clock, read once per plan, when its first new event needs it.
    pub now_ms: &'a dyn Fn() -> f64,
    /// `STREAM_SUBSCRIBER_BINDINGS`, parsed.
    pub allowed_bindings: &'a [String],
    pub origin: Origin,
}

/// A new event, ready to commit.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedEvent {
    /// The event without a domain event's payload and metadata: `json`
    /// holds it whole, and past the reducer only the stream's own payloads
    /// are read (by the post-commit effects), so a caller's data is held once.
    pub event: Event,
    pub json: String,
    /// The bucket went below zero with this event.
    pub in_deficit: bool,
}

/// What one input slot returns.
#[derive(Debug, Clone, PartialEq)]
pub enum Slot {
    /// Index into `AppendPlan::events`.
    New(usize),
    /// An idempotency hit on a stored event.
    Existing(StoredEvent),
}

#[derive(Debug, Clone, PartialEq)]
pub struct AppendPlan {
    pub slots: Vec<Slot>,
    pub events: Vec<PlannedEvent>,
    /// The working state after every new event.
    pub state: CoreState,
}

impl AppendPlan {
    pub fn rows(&self) -> Vec<NewEvent<'_>> {
        self.events
            .iter()
            .map(|p| NewEvent { offset: p.event.offset, idempotency_key: p.event.idempotency_key.as_deref(), json: &p.json })
            .collect()
    }

    /// The committed JSON of each slot, aligned with the inputs.
    pub fn results(&self) -> Vec<&str> {
        self.slots
            .iter()
            .map(|slot| match slot {
                Slot::New(i) => self.events[*i].json.as_str(),
                Slot::Existing(stored) => stored.json.as_str(),
            })
            .collect()
    }

    /// `results`, with each hit on an event stored before this call cut to
    /// its summary (`hit_summary`): an append-only principal learns nothing
    /// it did not write. A hit on an event of this same batch is its own.
    pub fn results_summarizing_hits(&self) -> Vec<Cow<'_, str>> {
        self.slots
            .iter()
            .map(|slot| match slot {
                Slot::New(i) => Cow::Borrowed(self.events[*i].json.as_str()),
                Slot::Existing(stored) => Cow::Owned(hit_summary(&stored.json)),
            })
            .collect()
    }

    /// The `S/paused` a live commit of this plan must append (docs/protocol.md#trip):
    /// when the committed state is running and some new event is in deficit.
    pub fn breaker_trip(&self) -> Option<EventInput> {
        if self.state.paused {
            return None;
        }
        let first = self.events.iter().find(|p| p.in_deficit)?;
        Some(
            EventInput::system(types::PAUSED, json!({ "reason": BREAKER_TRIP_REASON }))
                .with_idempotency_key(format!("stream-paused:{}", first.event.offset)),
        )
    }
}

/// A stored event's `type`, `idempotencyKey`, `offset` and `createdAt`, in
/// that (the wire) order; its payload, metadata and source stay behind.
pub fn hit_summary(stored_json: &str) -> String {
    let Ok(Value::Object(mut event)) = serde_json::from_str::<Value>(stored_json) else { return "null".to_owned() };
    let summary: Map<String, Value> =
        ["type", "idempotencyKey", "offset", "createdAt"].into_iter().filter_map(|key| Some((key.to_owned(), event.remove(key)?))).collect();
    Value::Object(summary).to_string()
}

/// The `S/child-stream-created` notice an ancestor appends about a new stream
/// (`notifyChildStreamCreated {childPath}`). The ancestor derives the reserved
/// key itself, so the notice deduplicates and no caller ever supplies one.
pub fn child_notice(ancestor: &str, child_path: &str) -> StreamResult<EventInput> {
    validate_path(child_path)?;
    Ok(EventInput::system(types::CHILD_STREAM_CREATED, json!({ "childPath": child_path }))
        .with_idempotency_key(child_notice_key(ancestor, child_path)))
}

/// Plans the batch against `state`, taking the inputs over. Any error
/// rejects the whole batch.
pub fn plan_append<S: EventStore + ?Sized>(
    state: &CoreState,
    inputs: Vec<Value>,
    store: &S,
    ctx: &AppendContext<'_>,
) -> StreamResult<AppendPlan> {
    let sizes = inputs.iter().map(json_len).collect::<Result<Vec<_>, _>>().map_err(|_| StreamError::internal())?;
    check_batch_size(&sizes)?;
    let inputs = inputs
        .into_iter()
        .enumerate()
        .map(|(i, v)| parse_event_input(v).map_err(|detail| StreamError::invalid_event(format!("event[{i}]: {detail}"))))
        .collect::<StreamResult<Vec<_>>>()?;
    plan_sized(state, inputs.into_iter().zip(sizes), store, ctx)
}

/// Plans the inputs `plain_append_inputs` read.
pub fn plan_plain<S: EventStore + ?Sized>(state: &CoreState, plain: PlainInputs, store: &S, ctx: &AppendContext<'_>) -> StreamResult<AppendPlan> {
    check_batch_bytes(plain.inputs.len(), plain.bytes)?;
    plan_sized(state, plain.inputs.into_iter().map(|input| (input, 0)), store, ctx)
}

/// Plans already-validated inputs (the stream's own appends start here).
pub fn plan_inputs<S: EventStore + ?Sized>(
    state: &CoreState,
    inputs: Vec<EventInput>,
    store: &S,
    ctx: &AppendContext<'_>,
) -> StreamResult<AppendPlan> {
    plan_sized(state, inputs.into_iter().map(|input| (input, 0)), store, ctx)
}

/// Plans inputs paired with the length of their input JSON (0: unknown),
/// which sizes each committed JSON's buffer.
fn plan_sized<S: EventStore + ?Sized>(
    state: &CoreState,
    inputs: impl ExactSizeIterator<Item = (EventInput, usize)>,
    store: &S,
    ctx: &AppendContext<'_>,
) -> StreamResult<AppendPlan> {
    let mut plan = AppendPlan { slots: Vec::with_capacity(inputs.len()), events: Vec::new(), state: state.clone() };
    let mut slot_by_key: HashMap<String, usize> = HashMap::new();
    // One reading for the whole commit: workerd's clock stands still while a
    // call computes, and each reading is a crossing into JS plus a formatting.
    let mut commit_time: Option<String> = None;
    for (i, (mut input, input_bytes)) in inputs.enumerate() {
        if ctx.origin == Origin::Caller && types::is_reserved(&input.event_type) {
            return Err(StreamError::invalid_event(format!(
                "event type {} is reserved for the stream itself",
                quote(&input.event_type)
            )));
        }
        if let Some(key) = &input.idempotency_key {
            if let Some(hit) = find_hit(&plan, &slot_by_key, key, store)? {
                let (existing_offset, slot) = hit;
                if let Some(given) = input.offset.filter(|o| *o != existing_offset) {
                    return Err(StreamError::new(
                        ErrorCode::IdempotencyConflict,
                        format!("idempotency hit at offset {existing_offset}, got {given}"),
                    ));
                }
                plan.slots.push(slot);
                continue;
            }
        }
        if plan.state.paused && !passes_pause_gate(&input.event_type) {
            let reason = plan.state.pause_reason.as_deref().unwrap_or("unknown reason");
            return Err(StreamError::new(ErrorCode::StreamPaused, format!("stream paused: {reason}")));
        }
        let offset = plan.state.max_offset + 1;
        if let Some(given) = input.offset.filter(|o| *o != offset) {
            return Err(StreamError::new(ErrorCode::OffsetMismatch, format!("expected offset {offset}, got {given}")));
        }
        check_core_payload(i, &input, ctx)?;
        let created_at = match &commit_time {
            Some(time) => time.clone(),
            None => commit_time.insert(iso_from_ms((ctx.now_ms)()).ok_or_else(StreamError::internal)?).clone(),
        };
        let key = input.idempotency_key.clone();
        let written_fields = input.written_fields.take();
        let mut event = input.commit(offset, created_at);
        let json = match &written_fields {
            Some(fields) => event.to_json_around(fields),
            None => event.to_json_sized(input_bytes + COMMITTED_EXTRA_BYTES),
        };
        if json.len() > MAX_EVENT_JSON_BYTES {
            return Err(StreamError::new(
                ErrorCode::EventTooLarge,
                format!("event[{i}] is {} bytes; the limit is {MAX_EVENT_JSON_BYTES}", json.len()),
            ));
        }
        reduce(&mut plan.state, &event).map_err(|e| match e {
            ReduceError::Invalid(detail) => StreamError::invalid_event(format!("event[{i}]: {detail}")),
            ReduceError::CreatedNotFirst => StreamError::invalid_event(e.to_string()),
        })?;
        if !types::is_system(&event.event_type) {
            event.payload = None;
            event.metadata = None;
        }
        let in_deficit = plan.state.circuit_breaker.in_deficit();
        if let Some(key) = key {
            slot_by_key.insert(key, plan.slots.len());
        }
        plan.slots.push(Slot::New(plan.events.len()));
        plan.events.push(PlannedEvent { event, json, in_deficit });
    }
    Ok(plan)
}

/// Looks a key up among the batch's earlier inputs, then in storage.
fn find_hit<S: EventStore + ?Sized>(
    plan: &AppendPlan,
    slot_by_key: &HashMap<String, usize>,
    key: &str,
    store: &S,
) -> StreamResult<Option<(u64, Slot)>> {
    if let Some(&slot_index) = slot_by_key.get(key) {
        let slot = plan.slots[slot_index].clone();
        let offset = match &slot {
            Slot::New(i) => plan.events[*i].event.offset,
            Slot::Existing(stored) => stored.offset,
        };
        return Ok(Some((offset, slot)));
    }
    let stored = store.event_by_idempotency_key(key).map_err(|_| StreamError::internal())?;
    Ok(stored.map(|s| (s.offset, Slot::Existing(s))))
}

/// Checks the batch's count and size, from each input's JSON length.
fn check_batch_size(sizes: &[usize]) -> StreamResult<()> {
    // `[a,b,…]`: brackets and commas count too.
    check_batch_bytes(sizes.len(), 2 + sizes.len().saturating_sub(1) + sizes.iter().sum::<usize>())
}

/// Checks the batch's count and its JSON length as an array.
fn check_batch_bytes(count: usize, bytes: usize) -> StreamResult<()> {
    if count > MAX_BATCH_EVENTS {
        return Err(StreamError::new(
            ErrorCode::BatchTooLarge,
            format!("batch has {count} events; the limit is {MAX_BATCH_EVENTS}"),
        ));
    }
    if bytes > MAX_BATCH_JSON_BYTES {
        return Err(StreamError::new(
            ErrorCode::BatchTooLarge,
            format!("batch is {bytes} bytes; the limit is {MAX_BATCH_JSON_BYTES}"),
        ));
    }
    Ok(())
}

/// Step 5: the core payload, and for subscriptions the shape and allowlist.
fn check_core_payload(i: usize, input: &EventInput, ctx: &AppendContext<'_>) -> StreamResult<()> {
    let payload = parse_core_payload(&input.event_type, input.payload.as_ref())
        .map_err(|detail| StreamError::invalid_event(format!("event[{i}]: {detail}")))?;
    if let CorePayload::SubscriptionConfigured { subscriber, .. } = payload {
        let subscriber = subscriber.map_err(|detail| StreamError::invalid_event(format!("event[{i}]: {detail}")))?;
        subscriber.check_allowed(ctx.allowed_bindings)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MemStore;
    use serde_json::json;

    const T0: f64 = 1_767_607_200_000.0;

    fn ctx<'a>(now: &'a dyn Fn() -> f64, allowed: &'a [String]) -> AppendContext<'a> {
        AppendContext { now_ms: now, allowed_bindings: allowed, origin: Origin::Caller }
    }

    /// A store holding created@1 and woken@2, and the state they reduce to.
    fn booted() -> (MemStore, CoreState) {
        let store = MemStore::default();
        let now = || T0;
        let stream_ctx = AppendContext { now_ms: &now, allowed_bindings: &[], origin: Origin::Stream };
        let boot = vec![
            EventInput::system(types::CREATED, json!({"namespace": "t", "path": "/a"})),
            EventInput::system(types::WOKEN, json!({"incarnationId": "i-1"})),
        ];
        let plan = plan_inputs(&CoreState::default(), boot, &store, &stream_ctx).unwrap();
        store.commit_plan(&plan);
        (store, plan.state)
    }

    fn append(store: &MemStore, state: &CoreState, inputs: Value) -> StreamResult<AppendPlan> {
        let now = || T0 + 10.0;
        let Value::Array(inputs) = inputs else { panic!("a batch is an array") };
        let plan = plan_append(state, inputs, store, &ctx(&now, &[]))?;
        store.commit_plan(&plan);
        Ok(plan)
    }

    #[test]
    fn new_events_get_consecutive_offsets_and_timestamps() {
        let (store, state) = booted();
        let plan = append(&store, &state, json!([{"type": "a"}, {"type": "b", "offset": 4}])).unwrap();
        assert_eq!(plan.results(), vec![
            r#"{"type":"a","offset":3,"createdAt":"2026-01-05T10:00:00.010Z"}"#,
            r#"{"type":"b","offset":4,"createdAt":"2026-01-05T10:00:00.010Z"}"#,
        ]);
        assert_eq!((plan.state.max_offset, plan.state.event_count), (4, 4));
    }

    #[test]
    fn each_event_is_held_once_as_json_in_a_buffer_of_its_size() {
        let (store, state) = booted();
        let big = "x".repeat(1 << 20);
        let plan = append(&store, &state, json!([
            {"type": "app/big", "payload": {"data": big}, "metadata": {"m": 1}},
            {"type": types::PAUSED, "payload": {"reason": "r"}},
        ]))
        .unwrap();
        let domain = &plan.events[0];
        assert_eq!((domain.event.payload.as_ref(), domain.event.metadata.as_ref()), (None, None), "the JSON holds them");
        assert!(domain.json.contains(&big) && domain.json.contains(r#""metadata":{"m":1}"#));
        assert!(domain.json.capacity() - domain.json.len() <= COMMITTED_EXTRA_BYTES, "capacity {} for {} bytes", domain.json.capacity(), domain.json.len());
        assert_eq!(plan.events[1].event.payload, Some(json!({"reason": "r"})), "the stream's own payloads stay for the effects");
    }

    #[test]
    fn reserved_types_are_refused_to_callers() {
        let (store, state) = booted();
        let err = append(&store, &state, json!([{"type": types::WOKEN, "payload": {"incarnationId": "x"}}])).unwrap_err();
        assert_eq!(err.to_string(), "invalid_event: event type \"events.iterate.com/stream/woken\" is reserved for the stream itself");
    }

    #[test]
    fn reserved_key_prefixes_are_refused_to_callers_and_write_nothing() {
        let (store, state) = booted();
        for key in ["stream-paused:3", "child-stream-created:/a:/a/b"] {
            let err = append(&store, &state, json!([{"type": "ok"}, {"type": "x", "idempotencyKey": key}])).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidEvent, "{key}");
            assert!(err.message.starts_with("event[1]: idempotencyKey must not start with"), "{}", err.message);
        }
        assert_eq!(store.max_offset().unwrap(), 2);
    }

    #[test]
    fn child_notices_are_keyed_by_the_ancestor_and_deduplicate() {
        let (store, state) = booted();
        let now = || T0 + 10.0;
        let stream_ctx = AppendContext { now_ms: &now, allowed_bindings: &[], origin: Origin::Stream };
        let notice = child_notice("/a", "/a/b").unwrap();
        assert_eq!(notice.idempotency_key.as_deref(), Some("child-stream-created:/a:/a/b"));
        let first = plan_inputs(&state, vec![notice.clone()], &store, &stream_ctx).unwrap();
        store.commit_plan(&first);
        assert_eq!(first.state.child_paths, vec!["/a/b".to_owned()]);
        let again = plan_inputs(&first.state, vec![notice], &store, &stream_ctx).unwrap();
        assert!(again.events.is_empty(), "a repeated notice is an idempotency hit");
        assert!(child_notice("/a", "a b").is_err());
    }

    #[test]
    fn an_idempotency_hit_returns_the_original_event() {
        let (store, state) = booted();
        let first = append(&store, &state, json!([{"type": "x", "idempotencyKey": "dup-key", "payload": {"n": 1}}])).unwrap();
        let again = append(&store, &first.state, json!([{"type": "x", "idempotencyKey": " dup-key ", "payload": {"n": 2}}])).unwrap();
        assert!(again.events.is_empty());
        assert_eq!(again.results(), first.results());
        let conflict = append(&store, &first.state, json!([{"type": "x", "idempotencyKey": "dup-key", "offset": 13}])).unwrap_err();
        assert_eq!(conflict.to_string(), "idempotency_conflict: idempotency hit at offset 3, got 13");
    }

    #[test]
    fn a_summarized_hit_carries_only_offset_type_key_and_created_at() {
        let (store, state) = booted();
        let first = append(&store, &state, json!([{"type": "x", "idempotencyKey": "k", "payload": {"secret": 1}, "metadata": {"m": 2}}])).unwrap();
        let again = append(&store, &first.state, json!([{"type": "y", "idempotencyKey": "k2", "payload": {"mine": 1}}, {"type": "z", "idempotencyKey": "k"}, {"type": "w", "idempotencyKey": "k2"}])).unwrap();
        let results = again.results_summarizing_hits();
        let created_at = serde_json::from_str::<Value>(first.results()[0]).unwrap()["createdAt"].clone();
        assert_eq!(results[1], format!(r#"{{"type":"x","idempotencyKey":"k","offset":3,"createdAt":{created_at}}}"#));
        // The batch's own events (new, or hit within the batch) come back whole.
        assert_eq!(results[0], again.results()[0]);
        assert_eq!(results[2], again.results()[0]);
        assert!(results[0].contains("\"mine\""));
    }

    #[test]
    fn the_same_key_twice_in_one_batch_is_one_event() {
        let (store, state) = booted();
        let plan = append(&store, &state, json!([{"type": "x", "idempotencyKey": "k"}, {"type": "y", "idempotencyKey": "k"}])).unwrap();
        assert_eq!(plan.events.len(), 1);
        assert_eq!(plan.results()[0], plan.results()[1]);
        assert_eq!(plan.state.max_offset, 3);
    }

    #[test]
    fn an_offset_precondition_must_match() {
        let (store, state) = booted();
        let err = append(&store, &state, json!([{"type": "x", "offset": 4}])).unwrap_err();
        assert_eq!(err.to_string(), "offset_mismatch: expected offset 3, got 4");
    }

    #[test]
    fn a_bad_input_rejects_the_whole_batch() {
        let (store, state) = booted();
        let err = append(&store, &state, json!([{"type": "ok"}, {"type": "x", "foo": 1}])).unwrap_err();
        assert_eq!(err.to_string(), "invalid_event: event[1]: unknown key \"foo\"");
        assert_eq!(store.max_offset().unwrap(), 2);
    }

    #[test]
    fn batch_limits_count_events_and_bytes() {
        let (store, state) = booted();
        let many: Vec<Value> = (0..1001).map(|_| json!({"type": "x"})).collect();
        let err = append(&store, &state, Value::Array(many)).unwrap_err();
        assert_eq!(err.to_string(), "batch_too_large: batch has 1001 events; the limit is 1000");
        let big = "x".repeat(6 * 1024 * 1024);
        let err = append(&store, &state, json!([{"type": "x", "payload": big}, {"type": "x", "payload": big}, {"type": "x", "payload": big}])).unwrap_err();
        assert_eq!(err.code, ErrorCode::BatchTooLarge);
    }

    #[test]
    fn an_event_over_8_mib_is_too_large() {
        let (store, state) = booted();
        let err = append(&store, &state, json!([{"type": "x", "payload": "x".repeat(8 * 1024 * 1024)}])).unwrap_err();
        assert_eq!(err.code, ErrorCode::EventTooLarge);
        assert!(err.message.starts_with("event[0] is 8388"), "{}", err.message);
    }

    #[test]
    fn the_pause_gate_sees_the_working_state() {
        let (store, state) = booted();
        let paused = append(&store, &state, json!([{"type": types::PAUSED, "payload": {"reason": "maintenance"}}])).unwrap().state;
        let err = append(&store, &paused, json!([{"type": "x"}])).unwrap_err();
        assert_eq!(err.to_string(), "stream_paused: stream paused: maintenance");
        let errored = append(&store, &paused, json!([{"type": types::ERROR_OCCURRED, "payload": {"message": "m"}}])).unwrap().state;
        assert!(errored.paused);
        let resumed = append(&store, &errored, json!([{"type": types::RESUMED, "payload": {}}, {"type": "x"}])).unwrap();
        assert!(!resumed.state.paused);
        let err = append(&store, &resumed.state, json!([{"type": types::PAUSED, "payload": {}}, {"type": "x"}])).unwrap_err();
        assert_eq!(err.to_string(), "stream_paused: stream paused: unknown reason");
    }

    #[test]
    fn idempotency_hits_bypass_the_pause_gate() {
        let (store, state) = booted();
        let first = append(&store, &state, json!([{"type": "x", "idempotencyKey": "k"}])).unwrap();
        let paused = append(&store, &first.state, json!([{"type": types::PAUSED, "payload": {}}])).unwrap().state;
        let hit = append(&store, &paused, json!([{"type": "x", "idempotencyKey": "k"}])).unwrap();
        assert_eq!(hit.results(), first.results());
    }

    #[test]
    fn a_deficit_plans_one_trip_keyed_by_the_first_deficit_offset() {
        let (store, state) = booted();
        let configured = append(&store, &state, json!([{"type": types::CONFIGURED, "payload": {"config": {"circuitBreaker": {"burstCapacity": 1, "refillRatePerMinute": 1}}}}])).unwrap();
        let widgets = append(&store, &configured.state, json!([{"type": "app/widget"}, {"type": "app/widget"}, {"type": "app/widget"}])).unwrap();
        let trip = widgets.breaker_trip().unwrap();
        assert_eq!(trip.idempotency_key.as_deref(), Some("stream-paused:5"));
        assert_eq!(trip.payload, Some(json!({"reason": BREAKER_TRIP_REASON})));
        let paused = append(&store, &widgets.state, json!([{"type": types::PAUSED, "payload": {}}])).unwrap();
        assert!(paused.breaker_trip().is_none(), "no trip while already paused");
    }

    #[test]
    fn subscriptions_are_checked_against_the_allowlist() {
        let (store, state) = booted();
        let subscriber = json!({"type":"callable","callable":{"type":"workers-rpc","via":{"type":"env-binding","bindingType":"service","bindingName":"ECHO"}}});
        let input = json!([{"type": types::SUBSCRIPTION_CONFIGURED, "payload": {"subscriptionKey": "k", "subscriber": subscriber}}]);
        let now = || T0;
        let none: Vec<String> = vec![];
        let err = plan_append(&state, input.as_array().unwrap().clone(), &store, &ctx(&now, &none)).unwrap_err();
        assert_eq!(err.code, ErrorCode::SubscriberNotAllowed);
        let echo = vec!["ECHO".to_owned()];
        assert!(plan_append(&state, input.as_array().unwrap().clone(), &store, &ctx(&now, &echo)).is_ok());
        let built_in = json!([{"type": types::SUBSCRIPTION_CONFIGURED, "payload": {"subscriptionKey": "k", "subscriber": {"type": "built-in"}}}]);
        let err = plan_append(&state, built_in.as_array().unwrap().clone(), &store, &ctx(&now, &echo)).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidEvent);
    }

    #[test]
    fn a_configured_breaker_with_zero_burst_is_invalid() {
        let (store, state) = booted();
        let err = append(&store, &state, json!([{"type": types::CONFIGURED, "payload": {"config": {"circuitBreaker": {"burstCapacity": 0, "refillRatePerMinute": 1}}}}])).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidEvent);
    }
}
