//! Subscriber delivery, platform-free (docs/protocol.md#subscriptions): subscription parameters,
//! the event-type filter, the pump step that picks each batch, socket
//! attachments, dial arguments and replies, and the re-dial back-off.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::error::{ErrorCode, StreamError, StreamResult};
use super::event::Event;
use super::json::{raw_array, RawObject};
use super::limits::{MAX_DELIVERY_BYTES, MAX_DELIVERY_EVENTS, MAX_SAFE_INTEGER, MAX_SUBSCRIPTION_KEY_BYTES};
use super::name::quote;
use super::state::{CoreState, SubscriptionEntry};
use super::store::{EventStore, StoreError, StoredEvent};

/// Re-dials are armed on the alarm up to this many consecutive failures.
pub const MAX_ALARMED_REDIALS: u32 = 10;

/// Which events a connection wants: `None` is every type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventFilter(pub Option<Vec<String>>);

impl EventFilter {
    /// From a list of types: entries trimmed, empties dropped; none or `*` means all.
    pub fn from_types<I: IntoIterator<Item = String>>(types: I) -> Self {
        let types: Vec<String> = types.into_iter().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect();
        if types.is_empty() || types.iter().any(|t| t == "*") {
            Self(None)
        } else {
            Self(Some(types))
        }
    }

    pub fn matches(&self, event_type: &str) -> bool {
        self.0.as_ref().is_none_or(|types| types.iter().any(|t| t == event_type))
    }
}

/// Where a connection stands: its cursor and whether the initial push is owed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PumpCursor {
    /// How far the pump has read; pages the filter drops entirely move it
    /// without a batch.
    pub cursor: u64,
    /// The `through_offset` of the last batch handed out (the start cursor
    /// before any): the next batch's `after_offset`, so consecutive batches
    /// chain even when the filter skipped whole pages in between.
    pub delivered_through: u64,
    pub events: bool,
    pub filter: EventFilter,
    pub initial_push_owed: bool,
}

/// One batch to deliver: events (possibly none) read together with the state.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The cursor before the batch: the previous batch's `through_offset`.
    pub after_offset: u64,
    /// The cursor after it: the last offset read, filtered out or not.
    pub through_offset: u64,
    pub events: Vec<StoredEvent>,
    pub stream_max_offset: u64,
}

impl Batch {
    pub fn events_json(&self) -> String {
        raw_array(self.events.iter().map(|e| e.json.as_str()))
    }
}

/// The next batch for `pump`, advancing its cursor past everything read,
/// filtered or not; `None` when nothing is owed.
pub fn next_batch<S: EventStore + ?Sized>(store: &S, state: &CoreState, pump: &mut PumpCursor) -> Result<Option<Batch>, StoreError> {
    next_batch_within(store, state, pump, usize::MAX)
}

/// `next_batch`, reading at most `max_pages` pages: a filter that matches
/// nothing in them leaves `None` with the cursor moved past what was read,
/// so the caller can store it and yield before scanning on.
pub fn next_batch_within<S: EventStore + ?Sized>(
    store: &S,
    state: &CoreState,
    pump: &mut PumpCursor,
    max_pages: usize,
) -> Result<Option<Batch>, StoreError> {
    let stream_max_offset = state.max_offset;
    let after_offset = pump.delivered_through;
    if !pump.events {
        if stream_max_offset > pump.cursor || pump.initial_push_owed {
            pump.cursor = stream_max_offset.max(pump.cursor);
            return Ok(Some(pump.hand_out(after_offset, Vec::new(), stream_max_offset)));
        }
        return Ok(None);
    }
    for _ in 0..max_pages.max(1) {
        if pump.cursor >= stream_max_offset && !pump.initial_push_owed {
            return Ok(None);
        }
        let page = store.read_range(pump.cursor, None, MAX_DELIVERY_EVENTS, MAX_DELIVERY_BYTES)?;
        let Some(last) = page.last() else {
            if pump.initial_push_owed {
                return Ok(Some(pump.hand_out(after_offset, Vec::new(), stream_max_offset)));
            }
            return Ok(None);
        };
        pump.cursor = last.offset;
        let events: Vec<StoredEvent> = page
            .into_iter()
            .filter(|e| event_type_of(e).is_some_and(|t| pump.filter.matches(&t)))
            .collect();
        if events.is_empty() && !pump.initial_push_owed {
            continue;
        }
        return Ok(Some(pump.hand_out(after_offset, events, stream_max_offset)));
    }
    Ok(None)
}

impl PumpCursor {
    /// A cursor that starts at `cursor`, owing the initial push.
    pub fn starting_at(cursor: u64, events: bool, filter: EventFilter) -> Self {
        Self { cursor, delivered_through: cursor, events, filter, initial_push_owed: true }
    }

    fn hand_out(&mut self, after_offset: u64, events: Vec<StoredEvent>, stream_max_offset: u64) -> Batch {
        self.initial_push_owed = false;
        self.delivered_through = self.cursor;
        Batch { after_offset, through_offset: self.cursor, events, stream_max_offset }
    }
}

/// The type of a stored event; `None` when its JSON cannot be read.
pub fn event_type_of(event: &StoredEvent) -> Option<std::borrow::Cow<'_, str>> {
    match stored_type(event) {
        "" => parsed_type(event).map(std::borrow::Cow::Owned),
        t => Some(std::borrow::Cow::Borrowed(t)),
    }
}

/// The type of a stored event, read from its JSON's first key.
fn stored_type(event: &StoredEvent) -> &str {
    // Committed JSON always starts `{"type":"…"`; fall back to a full parse.
    event
        .json
        .strip_prefix("{\"type\":\"")
        .and_then(|rest| rest.split_once('"').map(|(t, _)| t))
        .filter(|t| !t.contains('\\'))
        .unwrap_or("")
}

/// The type of a stored event whose type string needs unescaping.
fn parsed_type(event: &StoredEvent) -> Option<String> {
    Event::from_stored_json(&event.json).ok().map(|e| e.event_type)
}

/// The inbound query parameters (docs/protocol.md#inbound-subscribers), validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeParams {
    /// `None`: the caller picks a random UUID.
    pub subscription_key: Option<String>,
    pub replay_after_offset: Option<u64>,
    pub filter: EventFilter,
    pub events: bool,
}

impl SubscribeParams {
    pub fn parse(query: &[(String, String)]) -> StreamResult<Self> {
        let get = |key: &str| query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        let subscription_key = match get("subscriptionKey").map(str::trim) {
            None | Some("") => None,
            Some(k) if k.len() > MAX_SUBSCRIPTION_KEY_BYTES => {
                return Err(StreamError::invalid_request(format!(
                    "subscriptionKey must be at most {MAX_SUBSCRIPTION_KEY_BYTES} bytes"
                )))
            }
            Some(k) => Some(k.to_owned()),
        };
        let replay_after_offset = match get("replayAfterOffset") {
            None => None,
            Some(v) => Some(
                v.parse::<u64>()
                    .ok()
                    .filter(|n| *n <= MAX_SAFE_INTEGER && v.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| StreamError::invalid_request("replayAfterOffset must be a non-negative integer"))?,
            ),
        };
        let filter = EventFilter::from_types(get("eventTypes").unwrap_or("").split(',').map(str::to_owned));
        let events = match get("events") {
            None | Some("true" | "1") => true,
            Some("false" | "0") => false,
            Some(_) => return Err(StreamError::invalid_request("events must be true, false, 1 or 0")),
        };
        Ok(Self { subscription_key, replay_after_offset, filter, events })
    }

    /// The starting cursor: the replay point, or the live tail.
    pub fn start_cursor(&self, state: &CoreState) -> u64 {
        if self.events {
            self.replay_after_offset.unwrap_or(state.max_offset)
        } else {
            state.max_offset
        }
    }
}

/// Who a batch is for: the identity fields every delivered batch carries
/// beside its offsets (inbound frames and outbound deliveries alike).
#[derive(Debug, Clone, Copy)]
pub struct Recipient<'a> {
    pub subscription_key: &'a str,
    /// Random per connection: per socket inbound, per dial outbound.
    pub connection_id: &'a str,
}

impl Recipient<'_> {
    /// `subscriptionKey`, `streamId`, `connectionId`, `afterOffset`,
    /// `throughOffset`, `events`, `streamMaxOffset` and, when given, `state`.
    fn batch_fields(&self, object: &mut RawObject, state: &CoreState, batch: &Batch, state_json: Option<&str>) {
        object
            .value("subscriptionKey", self.subscription_key)
            .value("streamId", &state.stream_id)
            .value("connectionId", self.connection_id)
            .value("afterOffset", &batch.after_offset)
            .value("throughOffset", &batch.through_offset)
            .raw("events", batch.events_json())
            .value("streamMaxOffset", &batch.stream_max_offset);
        if let Some(state_json) = state_json {
            object.raw("state", state_json.to_owned());
        }
    }
}

/// `{"type":"batch",…}`, the frame of a WebSocket (and of a Server-Sent
/// Events stream): `state_json` where the protocol carries the state
/// (docs/protocol.md#websocket-frames).
pub fn batch_frame(to: Recipient<'_>, state: &CoreState, batch: &Batch, state_json: Option<&str>) -> String {
    let mut frame = RawObject::default();
    frame.value("type", "batch");
    to.batch_fields(&mut frame, state, batch, state_json);
    frame.finish()
}

/// The message a key refused at subscribe time carries.
pub fn configured_key_error(key: &str) -> StreamError {
    StreamError::invalid_request(format!("subscriptionKey {} belongs to a configured subscription", quote(key)))
}

/// Every key the stream itself sets in the dial or the delivery arguments. A
/// `transformInput.shallowMerge` may set none of them: replacing `path`,
/// `afterOffset`, `events`… would let whoever configures a subscription steer
/// a shared subscriber to another stream's data (docs/protocol.md#outbound-subscribers).
pub const STREAM_ARGUMENT_KEYS: [&str; 13] = [
    "namespace",
    "path",
    "subscriptionKey",
    "connectionId",
    "streamId",
    "streamMaxOffset",
    "firstOffset",
    "subscriptionConfiguredEvent",
    "streamRuntimeState",
    "afterOffset",
    "throughOffset",
    "events",
    "state",
];

/// The dial arguments (docs/protocol.md#outbound-subscribers), `shallowMerge` applied last;
/// `first_offset` is the first kept offset, so a subscriber can tell that its checkpoint was trimmed.
pub fn dial_arguments(state: &CoreState, to: Recipient<'_>, entry: &SubscriptionEntry, first_offset: u64, shallow_merge: Option<&Map<String, Value>>) -> String {
    let configured = &entry.latest_configured_event;
    let mut args = RawObject::default();
    args.value("namespace", &state.namespace)
        .value("path", &state.path)
        .value("subscriptionKey", to.subscription_key)
        .value("connectionId", to.connection_id)
        .value("streamMaxOffset", &state.max_offset)
        .value("firstOffset", &first_offset)
        .value(
            "subscriptionConfiguredEvent",
            &json!({
                "offset": configured.offset,
                "type": configured.event_type,
                "payload": configured.payload,
                "createdAt": configured.created_at,
            }),
        )
        .raw("streamRuntimeState", format!(r#"{{"coreProcessorState":{}}}"#, state.to_json()));
    if let Some(extra) = shallow_merge {
        args.merge(extra);
    }
    args.finish()
}

/// `processEventBatch` arguments, as JSON text: the stored events and the
/// commit's state JSON go in as they are; `shallowMerge` applies last.
pub fn delivery_arguments(
    to: Recipient<'_>,
    state: &CoreState,
    batch: &Batch,
    state_json: &str,
    shallow_merge: Option<&Map<String, Value>>,
) -> String {
    let mut args = RawObject::default();
    args.value("namespace", &state.namespace).value("path", &state.path);
    to.batch_fields(&mut args, state, batch, Some(state_json));
    if let Some(extra) = shallow_merge {
        args.merge(extra);
    }
    args.finish()
}

/// A subscriber's answer to the dial.
#[derive(Debug, Clone, PartialEq)]
pub struct DialReply {
    pub replay_after_offset: Option<u64>,
    pub filter: EventFilter,
    pub subscriber: Option<Value>,
}

impl DialReply {
    /// `undefined`/`null` mean defaults; anything malformed is a failure.
    pub fn parse(reply: Option<&Value>) -> Result<Self, String> {
        let empty = Map::new();
        let map = match reply {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(map)) => map,
            Some(_) => return Err("the dial reply must be an object".into()),
        };
        let replay_after_offset = match map.get("replayAfterOffset") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().filter(|n| *n <= MAX_SAFE_INTEGER).ok_or("replayAfterOffset must be a non-negative integer")?),
        };
        let filter = match map.get("eventTypes") {
            None | Some(Value::Null) => EventFilter(None),
            Some(Value::Array(types)) => EventFilter::from_types(
                types.iter().map(|t| t.as_str().map(str::to_owned).ok_or("eventTypes must be strings")).collect::<Result<Vec<_>, _>>()?,
            ),
            Some(_) => return Err("eventTypes must be an array".into()),
        };
        let subscriber = map.get("subscriber").filter(|s| !s.is_null()).cloned();
        Ok(Self { replay_after_offset, filter, subscriber })
    }
}

/// `runtime_meta` row `redial:<key>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Redial {
    pub failures: u32,
    pub retry_at_ms: f64,
    /// Why the last attempt failed (absent in rows written before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<Failure>,
    /// The key is not dialled again until it is configured again: the subscriber's checkpoint was
    /// removed by retention (docs/protocol.md#retention).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stopped: bool,
}

/// Why a dial or delivery failed, as `runtimeState().runtime.redial[key].lastError`
/// (docs/protocol.md#runtimestate).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub code: String,
    pub message: String,
}

impl Failure {
    /// A failure's text as `<code>: <message>` when it starts with a code (lowercase letters,
    /// digits and `_`, as subscribers and the processor host reject); otherwise `internal` with
    /// the whole text. The message is cut at `MAX_FAILURE_MESSAGE_BYTES`: it is stored per key.
    pub fn from_text(text: &str) -> Self {
        let (code, message) = match text.split_once(": ") {
            Some((code, message)) if is_code(code) => (code, message),
            _ => ("internal", text),
        };
        Self { code: code.to_owned(), message: truncated(message, MAX_FAILURE_MESSAGE_BYTES) }
    }
}

pub const MAX_FAILURE_MESSAGE_BYTES: usize = 1024;

fn truncated(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let end = (0..=max).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    format!("{}…", &text[..end])
}

fn is_code(word: &str) -> bool {
    word.starts_with(|c: char| c.is_ascii_lowercase()) && word.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl From<StreamError> for Failure {
    fn from(err: StreamError) -> Self {
        Self { code: err.code.as_str().to_owned(), message: err.message }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl Redial {
    /// One more failure at `now`: exponential back-off, capped. A `trimmed` failure stops the key
    /// instead: no later attempt can replay what retention removed.
    pub fn after_failure(previous: Option<&Redial>, failure: Failure, now_ms: f64, base_ms: f64, max_ms: f64) -> Self {
        let failures = previous.map_or(0, |r| r.failures).saturating_add(1);
        let delay = (base_ms * 2f64.powi(failures.saturating_sub(1).min(60) as i32)).min(max_ms);
        let stopped = failure.code == ErrorCode::Trimmed.as_str();
        Self { failures, retry_at_ms: now_ms + delay, last_error: Some(failure), stopped }
    }

    /// Whether a retry is due at `now`.
    pub fn due(&self, now_ms: f64) -> bool {
        !self.stopped && self.retry_at_ms <= now_ms
    }

    /// Whether the alarm should wake for this key.
    pub fn alarmed(&self) -> bool {
        !self.stopped && (1..=MAX_ALARMED_REDIALS).contains(&self.failures)
    }
}

pub const REDIAL_PREFIX: &str = "redial:";
pub const IDLE_DEADLINE_KEY: &str = "idleDeadlineMs";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{event, MemStore};
    use serde_json::json;

    fn store_with(n: u64) -> (MemStore, CoreState) {
        let store = MemStore::default();
        let events: Vec<Event> = (1..=n)
            .map(|o| event(o, if o % 2 == 0 { "app/a" } else { "app/b" }, json!({"n": o}), "2026-01-05T10:00:00.000Z"))
            .collect();
        store.put_events(&events);
        let state = CoreState { max_offset: n, event_count: n, ..CoreState::default() };
        (store, state)
    }

    fn drain(store: &MemStore, state: &CoreState, pump: &mut PumpCursor) -> Vec<Batch> {
        let mut batches = Vec::new();
        while let Some(b) = next_batch(store, state, pump).unwrap() {
            batches.push(b);
        }
        batches
    }

    #[test]
    fn replay_comes_in_batches_of_at_most_100_in_order() {
        let (store, state) = store_with(250);
        let mut pump = PumpCursor { cursor: 0, delivered_through: 0, events: true, filter: EventFilter(None), initial_push_owed: true };
        let batches = drain(&store, &state, &mut pump);
        let sizes: Vec<usize> = batches.iter().map(|b| b.events.len()).collect();
        assert_eq!(sizes, vec![100, 100, 50]);
        let offsets: Vec<u64> = batches.iter().flat_map(|b| b.events.iter().map(|e| e.offset)).collect();
        assert_eq!(offsets, (1..=250).collect::<Vec<_>>());
        assert!(batches.iter().all(|b| b.stream_max_offset == 250));
    }

    #[test]
    fn a_live_tail_gets_one_empty_initial_batch() {
        let (store, state) = store_with(5);
        let mut pump = PumpCursor { cursor: 5, delivered_through: 5, events: true, filter: EventFilter(None), initial_push_owed: true };
        let batches = drain(&store, &state, &mut pump);
        assert_eq!(batches.len(), 1);
        assert!(batches[0].events.is_empty());
    }

    #[test]
    fn filters_skip_whole_pages_and_move_the_cursor_past_them() {
        let (store, state) = store_with(250);
        let mut pump = PumpCursor { cursor: 0, delivered_through: 0, events: true, filter: EventFilter::from_types(["app/a".to_owned()]), initial_push_owed: false };
        let batches = drain(&store, &state, &mut pump);
        assert!(batches.iter().flat_map(|b| &b.events).all(|e| e.offset % 2 == 0));
        assert_eq!(batches.iter().map(|b| b.events.len()).sum::<usize>(), 125);
        assert_eq!(pump.cursor, 250);
    }

    #[test]
    fn state_only_mode_coalesces() {
        let (store, state) = store_with(7);
        let mut pump = PumpCursor { cursor: 2, delivered_through: 2, events: false, filter: EventFilter(None), initial_push_owed: true };
        let batches = drain(&store, &state, &mut pump);
        assert_eq!(batches.len(), 1);
        assert!(batches[0].events.is_empty());
        assert_eq!(pump.cursor, 7);
    }

    #[test]
    fn filters_treat_star_and_empty_as_everything() {
        assert_eq!(EventFilter::from_types(["".into(), " ".into()]), EventFilter(None));
        assert_eq!(EventFilter::from_types(["a".into(), "*".into()]), EventFilter(None));
        assert!(EventFilter::from_types([" app/a ".into()]).matches("app/a"));
        assert!(!EventFilter::from_types(["app/a".into()]).matches("app/b"));
    }

    #[test]
    fn subscribe_parameters_are_validated() {
        let q = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<Vec<_>>();
        let p = SubscribeParams::parse(&q(&[("subscriptionKey", " k1 "), ("replayAfterOffset", "0"), ("eventTypes", "app/a, ,app/b"), ("events", "1")])).unwrap();
        assert_eq!(p.subscription_key.as_deref(), Some("k1"));
        assert_eq!(p.replay_after_offset, Some(0));
        assert_eq!(p.filter, EventFilter(Some(vec!["app/a".into(), "app/b".into()])));
        assert!(SubscribeParams::parse(&q(&[("events", "yes")])).is_err());
        assert!(SubscribeParams::parse(&q(&[("replayAfterOffset", "-1")])).is_err());
        assert!(SubscribeParams::parse(&q(&[("subscriptionKey", &"k".repeat(257))])).is_err());
        assert_eq!(SubscribeParams::parse(&q(&[("subscriptionKey", "  ")])).unwrap().subscription_key, None);
    }

    #[test]
    fn redial_backs_off_exponentially_up_to_the_cap() {
        let refused = || Failure::from_text("refused");
        let first = Redial::after_failure(None, refused(), 1000.0, 200.0, 300_000.0);
        assert_eq!(first, Redial { failures: 1, retry_at_ms: 1200.0, last_error: Some(refused()), stopped: false });
        let second = Redial::after_failure(Some(&first), refused(), 2000.0, 200.0, 300_000.0);
        assert_eq!(second.retry_at_ms, 2400.0);
        let third = Redial::after_failure(Some(&second), refused(), 3000.0, 200.0, 300_000.0);
        assert_eq!(third.retry_at_ms, 3800.0);
        let mut r = third;
        for _ in 0..20 {
            r = Redial::after_failure(Some(&r), refused(), 0.0, 200.0, 300_000.0);
        }
        assert_eq!(r.retry_at_ms, 300_000.0);
        assert!(!r.alarmed());
    }

    #[test]
    fn a_failure_keeps_the_code_its_text_starts_with() {
        let unknown = Failure::from_text(r#"processor_unknown: no processor "mesage-count" in this host (it has "message-count")"#);
        assert_eq!(unknown.code, "processor_unknown");
        assert_eq!(unknown.message, r#"no processor "mesage-count" in this host (it has "message-count")"#);
        assert_eq!(unknown.to_string(), r#"processor_unknown: no processor "mesage-count" in this host (it has "message-count")"#);
        let long = Failure::from_text(&format!("processor_failed: {}", "é".repeat(2000)));
        assert!(long.message.len() <= MAX_FAILURE_MESSAGE_BYTES + "…".len() && long.message.ends_with('…'));
        for uncoded in ["TypeError: x is not a function", "boom", "no code here: at all", ": empty", "Bad_code: x"] {
            assert_eq!(Failure::from_text(uncoded), Failure { code: "internal".into(), message: uncoded.into() }, "{uncoded}");
        }
    }

    #[test]
    fn redial_rows_written_before_the_failure_was_kept_still_read() {
        let row: Redial = serde_json::from_str(r#"{"failures":2,"retryAtMs":5.0}"#).unwrap();
        assert_eq!(row, Redial { failures: 2, retry_at_ms: 5.0, last_error: None, stopped: false });
        let kept = Redial { last_error: Some(Failure::from_text("processor_halted: stop")), ..row };
        assert_eq!(serde_json::from_str::<Redial>(&serde_json::to_string(&kept).unwrap()).unwrap(), kept);
    }

    #[test]
    fn dial_replies_default_and_reject_malformed_ones() {
        assert_eq!(DialReply::parse(None).unwrap(), DialReply { replay_after_offset: None, filter: EventFilter(None), subscriber: None });
        let r = DialReply::parse(Some(&json!({"replayAfterOffset": 4, "eventTypes": ["x"]}))).unwrap();
        assert_eq!(r.replay_after_offset, Some(4));
        assert!(DialReply::parse(Some(&json!({"replayAfterOffset": -1}))).is_err());
        assert!(DialReply::parse(Some(&json!("nope"))).is_err());
    }

    const TO: Recipient<'static> = Recipient { subscription_key: "echo", connection_id: "c-1" };

    #[test]
    fn delivery_arguments_are_valid_json_in_order() {
        let (store, state) = store_with(2);
        let mut pump = PumpCursor::starting_at(0, true, EventFilter(None));
        let batch = next_batch(&store, &state, &mut pump).unwrap().unwrap();
        let merge = json!({"processorName": "echo-example"});
        let text = delivery_arguments(TO, &state, &batch, &state.to_json(), merge.as_object());
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["events"].as_array().unwrap().len(), 2);
        assert_eq!(v["processorName"], "echo-example");
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "namespace", "path", "subscriptionKey", "streamId", "connectionId", "afterOffset", "throughOffset", "events",
                "streamMaxOffset", "state", "processorName"
            ]
        );
        assert_eq!((v["afterOffset"].as_u64(), v["throughOffset"].as_u64(), v["connectionId"].as_str()), (Some(0), Some(2), Some("c-1")));
        assert_eq!(v["streamId"], Value::Null);
        let plain: Value = serde_json::from_str(&delivery_arguments(TO, &state, &batch, &state.to_json(), None)).unwrap();
        assert!(plain.get("processorName").is_none());
    }

    fn configured_at_1() -> SubscriptionEntry {
        SubscriptionEntry {
            latest_configured_event: crate::state::ConfiguredEventRef {
                offset: 1,
                event_type: "t".into(),
                payload: json!({}),
                created_at: "2026-01-05T10:00:00.000Z".into(),
            },
        }
    }

    #[test]
    fn stream_argument_keys_are_exactly_what_the_dial_and_delivery_set() {
        let (store, state) = store_with(1);
        let mut pump = PumpCursor::starting_at(0, true, EventFilter(None));
        let batch = next_batch(&store, &state, &mut pump).unwrap().unwrap();
        let entry = configured_at_1();
        let mut set = std::collections::BTreeSet::new();
        for text in [delivery_arguments(TO, &state, &batch, &state.to_json(), None), dial_arguments(&state, TO, &entry, 1, None)] {
            let v: Value = serde_json::from_str(&text).unwrap();
            set.extend(v.as_object().unwrap().keys().cloned());
        }
        let listed: std::collections::BTreeSet<String> = STREAM_ARGUMENT_KEYS.iter().map(|k| (*k).to_owned()).collect();
        assert_eq!(set, listed, "a key the stream sets must be listed (and refused in shallowMerge), and only those");
    }

    #[test]
    fn shallow_merge_of_any_depth_arrives_intact_and_overrides_in_place() {
        let (store, mut state) = store_with(1);
        state.stream_id = Some("s-}\"{".into());
        let mut pump = PumpCursor::starting_at(0, true, EventFilter(None));
        let batch = next_batch(&store, &state, &mut pump).unwrap().unwrap();
        let merge = json!({"ctx": {"tenant": "x}", "deep": [{"a": {"b": "}}"}}]}, "path": "/overridden", "s": "}"});
        let entry = configured_at_1();
        for text in [
            delivery_arguments(TO, &state, &batch, &state.to_json(), merge.as_object()),
            dial_arguments(&state, TO, &entry, 1, merge.as_object()),
        ] {
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["ctx"], merge["ctx"]);
            assert_eq!(v["s"], "}");
            assert_eq!(v["path"], "/overridden");
            assert_eq!(v.as_object().unwrap().keys().position(|k| k == "path"), Some(1), "an overridden key keeps its place");
        }
        let frame: Value = serde_json::from_str(&batch_frame(TO, &state, &batch, Some(&state.to_json()))).unwrap();
        assert_eq!(frame["streamId"], "s-}\"{");
        assert_eq!(frame["type"], "batch");
    }

    #[test]
    fn consecutive_batches_chain_even_when_the_filter_skips_pages() {
        let store = MemStore::default();
        let events: Vec<Event> = (1..=150).map(|o| event(o, "app/b", json!({}), "2026-01-05T10:00:00.000Z")).collect();
        store.put_events(&events);
        let mut state = CoreState { max_offset: 150, event_count: 150, ..CoreState::default() };
        let mut pump = PumpCursor::starting_at(0, true, EventFilter::from_types(["app/a".to_owned()]));
        pump.initial_push_owed = false;
        assert_eq!(next_batch(&store, &state, &mut pump).unwrap(), None, "nothing matches");
        assert_eq!(pump.cursor, 150, "the scan moved past the skipped pages");
        store.put_events(&[event(151, "app/a", json!({}), "2026-01-05T10:00:00.000Z")]);
        state.max_offset = 151;
        let batch = next_batch(&store, &state, &mut pump).unwrap().unwrap();
        assert_eq!((batch.after_offset, batch.through_offset), (0, 151), "after the last batch handed out, through the last read");
        assert_eq!(batch.events.iter().map(|e| e.offset).collect::<Vec<_>>(), [151]);

        let (store, state) = store_with(250);
        for (filter, events) in [(EventFilter(None), true), (EventFilter::from_types(["app/a".to_owned()]), true), (EventFilter(None), false)] {
            let mut pump = PumpCursor::starting_at(3, events, filter);
            let batches = drain(&store, &state, &mut pump);
            assert_eq!(batches[0].after_offset, 3);
            for pair in batches.windows(2) {
                assert_eq!(pair[1].after_offset, pair[0].through_offset);
            }
            assert_eq!(batches.last().unwrap().through_offset, 250);
        }
    }
}
