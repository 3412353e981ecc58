//! The event model: append input, the committed event and its exact JSON shape
//! (docs/protocol.md#append-input, #committed-event), and the stream's own type strings.

use std::fmt::Write;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::json::{depth, to_json_string_sized};
use super::limits::{
    MAX_IDEMPOTENCY_KEY_BYTES, MAX_JSON_DEPTH, MAX_SAFE_INTEGER, MAX_TYPE_BYTES,
};
use super::name::quote;
use super::time::parse_rfc3339_ms;

/// Wire type strings, shared with the TypeScript runtime; never change them.
pub mod types {
    pub const SYSTEM_PREFIX: &str = "events.iterate.com/stream/";
    pub const CREATED: &str = "events.iterate.com/stream/created";
    pub const WOKEN: &str = "events.iterate.com/stream/woken";
    pub const CONFIGURED: &str = "events.iterate.com/stream/configured";
    pub const METADATA_UPDATED: &str = "events.iterate.com/stream/metadata-updated";
    pub const CHILD_STREAM_CREATED: &str = "events.iterate.com/stream/child-stream-created";
    pub const SUBSCRIPTION_CONFIGURED: &str = "events.iterate.com/stream/subscription-configured";
    pub const SUBSCRIPTION_REMOVED: &str = "events.iterate.com/stream/subscription-removed";
    pub const SUBSCRIBER_CONNECTED: &str = "events.iterate.com/stream/subscriber-connected";
    pub const SUBSCRIBER_DISCONNECTED: &str = "events.iterate.com/stream/subscriber-disconnected";
    pub const ERROR_OCCURRED: &str = "events.iterate.com/stream/error-occurred";
    pub const PAUSED: &str = "events.iterate.com/stream/paused";
    pub const RESUMED: &str = "events.iterate.com/stream/resumed";

    /// Written only by the stream itself (docs/protocol.md#append-input).
    pub const RESERVED: [&str; 4] = [CREATED, WOKEN, SUBSCRIBER_CONNECTED, SUBSCRIBER_DISCONNECTED];

    /// The types that steer the stream (its configuration, metadata, children, outbound
    /// subscriptions and pause gate): a scoped token needs `configure` to append one
    /// (docs/access.md#operations).
    pub const CONTROL: [&str; 7] =
        [CONFIGURED, METADATA_UPDATED, CHILD_STREAM_CREATED, SUBSCRIPTION_CONFIGURED, SUBSCRIPTION_REMOVED, PAUSED, RESUMED];

    pub fn is_system(event_type: &str) -> bool {
        event_type.starts_with(SYSTEM_PREFIX)
    }
    pub fn is_reserved(event_type: &str) -> bool {
        RESERVED.contains(&event_type)
    }

    /// Idempotency-key prefixes of the stream's own appends (breaker trips,
    /// child notices). A caller planting one could turn them into silent hits.
    pub const RESERVED_KEY_PREFIXES: [&str; 2] = ["stream-paused:", "child-stream-created:"];

    pub fn reserved_key_prefix(key: &str) -> Option<&'static str> {
        RESERVED_KEY_PREFIXES.into_iter().find(|prefix| key.starts_with(prefix))
    }
}

/// A committed event. Field order is the wire key order (docs/protocol.md#committed-event).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    #[serde(rename = "type")]
    pub event_type: String,
    /// `Some(Value::Null)` is an explicit `payload: null`, which is kept.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    pub offset: u64,
    pub created_at: String,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// What committing adds to an input's JSON at most: `,"offset":<16 digits>`
/// and `,"createdAt":"<27 characters>"`.
pub const COMMITTED_EXTRA_BYTES: usize = 68;

impl Event {
    pub fn to_json(&self) -> String {
        self.to_json_sized(128)
    }

    /// The JSON, written into a buffer of `capacity` bytes (its expected length).
    pub fn to_json_sized(&self, capacity: usize) -> String {
        // An Event holds only JSON values and strings; serialising cannot fail.
        to_json_string_sized(self, capacity).unwrap_or_default()
    }

    /// The JSON of an event whose payload and metadata are `fields`, JSON text already
    /// (`EventInput::written_fields`): the same text `to_json` writes, without a tree.
    pub fn to_json_around(&self, fields: &str) -> String {
        let key = self.idempotency_key.as_deref().map(quote);
        let source = self.source.as_ref().and_then(|s| to_json_string_sized(s, 64).ok());
        let created_at = quote(&self.created_at);
        let mut out = String::with_capacity(
            self.event_type.len() + fields.len() + key.as_ref().map_or(0, |k| k.len() + 18) + source.as_ref().map_or(0, |s| s.len() + 10) + created_at.len() + 48,
        );
        out.push_str("{\"type\":");
        out.push_str(&quote(&self.event_type));
        out.push_str(fields);
        if let Some(source) = &source {
            out.push_str(",\"source\":");
            out.push_str(source);
        }
        if let Some(key) = &key {
            out.push_str(",\"idempotencyKey\":");
            out.push_str(key);
        }
        // Writing into a String cannot fail.
        let _ = write!(out, ",\"offset\":{},\"createdAt\":{created_at}}}", self.offset);
        out
    }

    /// Parses an event this stream wrote itself.
    pub fn from_stored_json(json: &str) -> Result<Self, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    /// The payload as an object, when it is one.
    pub fn payload_object(&self) -> Option<&Map<String, Value>> {
        self.payload.as_ref().and_then(Value::as_object)
    }
}

/// A validated append input (docs/protocol.md#append-input).
#[derive(Debug, Clone, PartialEq)]
pub struct EventInput {
    pub event_type: String,
    pub payload: Option<Value>,
    pub metadata: Option<Map<String, Value>>,
    pub source: Option<Value>,
    /// Already trimmed.
    pub idempotency_key: Option<String>,
    pub offset: Option<u64>,
    /// The payload and metadata as committed JSON text (`,"payload":…,"metadata":…`), taken
    /// from the caller's own text by `plain_append_inputs`; `payload` and `metadata` are then `None`.
    pub written_fields: Option<String>,
}

impl EventInput {
    /// A stream-written event with a payload.
    pub fn system(event_type: &str, payload: Value) -> Self {
        Self {
            event_type: event_type.to_owned(),
            payload: Some(payload),
            metadata: None,
            source: None,
            idempotency_key: None,
            offset: None,
            written_fields: None,
        }
    }

    pub fn with_idempotency_key(mut self, key: String) -> Self {
        self.idempotency_key = Some(key);
        self
    }

    pub fn commit(self, offset: u64, created_at: String) -> Event {
        Event {
            event_type: self.event_type,
            payload: self.payload,
            metadata: self.metadata,
            source: self.source,
            idempotency_key: self.idempotency_key,
            offset,
            created_at,
        }
    }
}

const INPUT_KEYS: [&str; 6] = ["type", "payload", "metadata", "source", "idempotencyKey", "offset"];
const COMMITTED_KEYS: [&str; 7] =
    ["type", "payload", "metadata", "source", "idempotencyKey", "offset", "createdAt"];

/// Validates one caller append input strictly, taking its values over
/// rather than copying them. The error is the detail that follows `event[<i>]: `.
pub fn parse_event_input(value: Value) -> Result<EventInput, String> {
    let mut map = envelope(value, &INPUT_KEYS)?;
    let idempotency_key = idempotency_key(&map)?;
    if let Some(prefix) = idempotency_key.as_deref().and_then(types::reserved_key_prefix) {
        return Err(format!("idempotencyKey must not start with {}: the prefix is reserved for the stream itself", quote(prefix)));
    }
    Ok(EventInput {
        event_type: event_type(&mut map)?,
        metadata: metadata(&mut map)?,
        source: source(&mut map)?,
        idempotency_key,
        offset: match map.get("offset") {
            None => None,
            Some(v) => Some(offset(v)?),
        },
        payload: map.remove("payload"),
        written_fields: None,
    })
}

/// Validates a full committed event strictly (the `reduce` preview's input).
pub fn parse_committed_event(value: Value) -> Result<Event, String> {
    let mut map = envelope(value, &COMMITTED_KEYS)?;
    let offset = offset(map.get("offset").ok_or("offset is required")?)?;
    let created_at = match map.remove("createdAt") {
        Some(Value::String(s)) if parse_rfc3339_ms(&s).is_some() => s,
        Some(_) => return Err("createdAt must be an RFC 3339 time".into()),
        None => return Err("createdAt is required".into()),
    };
    let event_type = event_type(&mut map)?;
    let metadata = metadata(&mut map)?;
    let source = source(&mut map)?;
    let idempotency_key = idempotency_key(&map)?;
    Ok(Event { event_type, payload: map.remove("payload"), metadata, source, idempotency_key, offset, created_at })
}

fn envelope(value: Value, allowed: &[&str]) -> Result<Map<String, Value>, String> {
    let Value::Object(map) = value else { return Err("event must be an object".into()) };
    if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(format!("unknown key {}", quote(unknown)));
    }
    if map.values().map(depth).max().unwrap_or(0) > MAX_JSON_DEPTH {
        return Err(format!("values may nest at most {MAX_JSON_DEPTH} levels deep"));
    }
    Ok(map)
}

fn event_type(map: &mut Map<String, Value>) -> Result<String, String> {
    match map.remove("type") {
        Some(Value::String(t)) if (1..=MAX_TYPE_BYTES).contains(&t.len()) => Ok(t),
        Some(Value::String(t)) => Err(format!("type must be 1 to {MAX_TYPE_BYTES} bytes, got {}", t.len())),
        Some(_) => Err("type must be a string".into()),
        None => Err("type is required".into()),
    }
}

fn metadata(map: &mut Map<String, Value>) -> Result<Option<Map<String, Value>>, String> {
    match map.remove("metadata") {
        None => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err("metadata must be an object".into()),
    }
}

/// `source` is strictly `{processor?: {slug: string, version: string}}`.
fn source(map: &mut Map<String, Value>) -> Result<Option<Value>, String> {
    let Some(source) = map.remove("source") else { return Ok(None) };
    let object = source.as_object().ok_or("source must be an object")?;
    if let Some(unknown) = object.keys().find(|k| k.as_str() != "processor") {
        return Err(format!("source: unknown key {}", quote(unknown)));
    }
    if let Some(processor) = object.get("processor") {
        let processor = processor.as_object().ok_or("source.processor must be an object")?;
        if let Some(unknown) = processor.keys().find(|k| !matches!(k.as_str(), "slug" | "version")) {
            return Err(format!("source.processor: unknown key {}", quote(unknown)));
        }
        for field in ["slug", "version"] {
            if !processor.get(field).is_some_and(Value::is_string) {
                return Err(format!("source.processor.{field} must be a string"));
            }
        }
    }
    Ok(Some(source))
}

fn idempotency_key(map: &Map<String, Value>) -> Result<Option<String>, String> {
    match map.get("idempotencyKey") {
        None => Ok(None),
        Some(Value::String(k)) => trimmed_key(k).map(Some),
        Some(_) => Err("idempotencyKey must be a string".into()),
    }
}

/// Trims an idempotency key and checks it is 1 to 1024 bytes.
pub fn trimmed_key(key: &str) -> Result<String, String> {
    let key = key.trim();
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_BYTES {
        return Err(format!("idempotencyKey must be 1 to {MAX_IDEMPOTENCY_KEY_BYTES} bytes once trimmed"));
    }
    Ok(key.to_owned())
}

fn offset(value: &Value) -> Result<u64, String> {
    value
        .as_u64()
        .filter(|o| *o <= MAX_SAFE_INTEGER)
        .ok_or_else(|| format!("offset must be an integer from 0 to {MAX_SAFE_INTEGER}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn committed_events_serialise_in_wire_key_order() {
        let input = parse_event_input(json!({
            "idempotencyKey": "  m-1 ", "payload": {"text": "hi", "a": 1}, "type": "app/msg"
        }))
        .unwrap();
        assert_eq!(input.idempotency_key.as_deref(), Some("m-1"));
        let event = input.commit(3, "2026-01-05T10:00:00.123Z".into());
        assert_eq!(
            event.to_json(),
            r#"{"type":"app/msg","payload":{"text":"hi","a":1},"idempotencyKey":"m-1","offset":3,"createdAt":"2026-01-05T10:00:00.123Z"}"#
        );
        assert_eq!(Event::from_stored_json(&event.to_json()).unwrap(), event);
    }

    #[test]
    fn committing_adds_at_most_committed_extra_bytes() {
        let input = json!({"type": "x", "payload": [1]});
        let input_bytes = to_json_string_sized(&input, 0).unwrap().len();
        let longest = parse_event_input(input).unwrap().commit(MAX_SAFE_INTEGER, "+275760-09-13T00:00:00.000Z".into());
        assert_eq!(longest.to_json().len() - input_bytes, COMMITTED_EXTRA_BYTES);
    }

    #[test]
    fn explicit_null_payload_is_kept_and_absent_is_omitted() {
        let with_null = parse_event_input(json!({"type": "x", "payload": null})).unwrap().commit(1, "t".into());
        assert_eq!(with_null.to_json(), r#"{"type":"x","payload":null,"offset":1,"createdAt":"t"}"#);
        assert_eq!(Event::from_stored_json(&with_null.to_json()).unwrap().payload, Some(Value::Null));
        let absent = parse_event_input(json!({"type": "x"})).unwrap().commit(1, "t".into());
        assert_eq!(absent.to_json(), r#"{"type":"x","offset":1,"createdAt":"t"}"#);
    }

    #[test]
    fn inputs_are_validated_strictly() {
        let cases = [
            (json!({"type": "x", "foo": 1}), "unknown key \"foo\""),
            (json!({"type": ""}), "type must be 1 to 256 bytes, got 0"),
            (json!({"type": "x".repeat(257)}), "type must be 1 to 256 bytes, got 257"),
            (json!({"type": 5}), "type must be a string"),
            (json!({}), "type is required"),
            (json!({"type": "x", "source": {"x": 1}}), "source: unknown key \"x\""),
            (json!({"type": "x", "source": {"processor": {"slug": "a"}}}), "source.processor.version must be a string"),
            (json!({"type": "x", "idempotencyKey": "   "}), "idempotencyKey must be 1 to 1024 bytes once trimmed"),
            (
                json!({"type": "x", "idempotencyKey": " stream-paused:5"}),
                "idempotencyKey must not start with \"stream-paused:\": the prefix is reserved for the stream itself",
            ),
            (
                json!({"type": types::CHILD_STREAM_CREATED, "payload": {"childPath": "/a"}, "idempotencyKey": "child-stream-created:/:/a"}),
                "idempotencyKey must not start with \"child-stream-created:\": the prefix is reserved for the stream itself",
            ),
            (json!({"type": "x", "metadata": []}), "metadata must be an object"),
            (json!({"type": "x", "offset": -1}), "offset must be an integer from 0 to 9007199254740991"),
            (json!({"type": "x", "offset": 1.5}), "offset must be an integer from 0 to 9007199254740991"),
            (json!("x"), "event must be an object"),
        ];
        for (input, want) in cases {
            assert_eq!(parse_event_input(input.clone()).unwrap_err(), want, "{input}");
        }
        assert!(parse_event_input(json!({"type": "x".repeat(256)})).is_ok());
        assert!(parse_event_input(json!({"type": "x", "idempotencyKey": "my-stream-paused:5"})).is_ok());
        let ok = parse_event_input(json!({"type": "x", "source": {"processor": {"slug": "a", "version": "1"}}}));
        assert!(ok.is_ok());
    }

    #[test]
    fn committed_events_need_offset_and_a_valid_created_at() {
        let ok = json!({"type": "x", "offset": 1, "createdAt": "2026-01-05T10:00:00.123+01:00"});
        assert_eq!(parse_committed_event(ok).unwrap().offset, 1);
        let trip = json!({"type": types::PAUSED, "payload": {}, "idempotencyKey": "stream-paused:5", "offset": 6, "createdAt": "2026-01-05T10:00:00Z"});
        assert!(parse_committed_event(trip).is_ok(), "reduce previews the stream's own events too");
        assert_eq!(parse_committed_event(json!({"type": "x", "offset": 1})).unwrap_err(), "createdAt is required");
        let bad_time = json!({"type": "x", "offset": 1, "createdAt": "soon"});
        assert_eq!(parse_committed_event(bad_time).unwrap_err(), "createdAt must be an RFC 3339 time");
    }

    #[test]
    fn reserved_types_are_the_stream_written_ones() {
        assert!(types::is_reserved(types::WOKEN));
        assert!(types::is_reserved(types::SUBSCRIBER_CONNECTED));
        assert!(!types::is_reserved(types::PAUSED));
        assert!(types::is_system(types::PAUSED));
        assert!(!types::is_system("app/x"));
    }
}
