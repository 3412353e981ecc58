//! The core state: the reduction of every event, in its wire key order (docs/protocol.md#state-shape).

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::breaker::{BreakerConfig, BreakerState};
use super::json::to_json_string;
use super::limits::MAX_SAFE_INTEGER;
use super::tiers::Retention;

/// Bump whenever the reducer derives state differently (docs/operations.md#migrations-and-state-versions).
pub const CORE_STATE_VERSION: i64 = 7;

const UNINITIALIZED: &str = "uninitialized";

/// Missing fields take their initial values; unknown fields are dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CoreState {
    pub namespace: String,
    pub path: String,
    pub created_at: String,
    /// The identity of this life of the log: a random UUID made at creation
    /// (a reset makes a new one); `None` for streams created before it existed.
    pub stream_id: Option<String>,
    pub incarnation_id: String,
    pub metadata: Map<String, Value>,
    pub config: StreamConfig,
    pub event_count: u64,
    pub max_offset: u64,
    /// The first `MAX_CHILD_PATHS` immediate children; the directory lists them all.
    pub child_paths: Vec<String>,
    /// Streams created below this path, each counted once.
    pub child_count: u64,
    pub paused: bool,
    pub pause_reason: Option<String>,
    pub processors_by_slug: IndexMap<String, ProcessorEntry>,
    pub subscriptions_by_key: IndexMap<String, SubscriptionEntry>,
    pub connections_by_key: IndexMap<String, ConnectionEntry>,
    pub circuit_breaker: BreakerState,
}

impl Default for CoreState {
    fn default() -> Self {
        Self {
            namespace: UNINITIALIZED.into(),
            path: UNINITIALIZED.into(),
            created_at: UNINITIALIZED.into(),
            stream_id: None,
            incarnation_id: UNINITIALIZED.into(),
            metadata: Map::new(),
            config: StreamConfig::default(),
            event_count: 0,
            max_offset: 0,
            child_paths: Vec::new(),
            child_count: 0,
            paused: false,
            pause_reason: None,
            processors_by_slug: IndexMap::new(),
            subscriptions_by_key: IndexMap::new(),
            connections_by_key: IndexMap::new(),
            circuit_breaker: BreakerState::default(),
        }
    }
}

impl CoreState {
    pub fn to_json(&self) -> String {
        // Strings, numbers and JSON values only: serialising cannot fail.
        to_json_string(self).unwrap_or_default()
    }

    /// Parses a state; `Err` names the first field of the wrong type.
    pub fn from_value(value: Value) -> Result<Self, String> {
        check_object_shapes(&value)?;
        // Offsets never pass MAX_SAFE_INTEGER, so neither may the counters: reducing one more
        // event must not overflow. Any other value (negative, fractional, not a number) gets the
        // same message (docs/protocol.md#errors).
        for field in ["eventCount", "maxOffset"] {
            if value.get(field).is_some_and(|n| n.as_u64().is_none_or(|n| n > MAX_SAFE_INTEGER)) {
                return Err(format!("{field} must be an integer from 0 to {MAX_SAFE_INTEGER}"));
            }
        }
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    pub fn from_json(json: &str) -> Result<Self, String> {
        serde_json::from_str::<Value>(json).map_err(|e| e.to_string()).and_then(Self::from_value)
    }
}

/// serde lets a struct be read from an array, by position; a state must use
/// objects wherever the shape has one.
fn check_object_shapes(value: &Value) -> Result<(), String> {
    fn object<'a>(value: &'a Value, name: &str) -> Result<&'a Map<String, Value>, String> {
        value.as_object().ok_or_else(|| format!("{name} must be an object"))
    }
    let state = object(value, "the state")?;
    if let Some(config) = state.get("config") {
        if let Some(breaker) = object(config, "config")?.get("circuitBreaker") {
            object(breaker, "config.circuitBreaker")?;
        }
    }
    if let Some(breaker) = state.get("circuitBreaker") {
        object(breaker, "circuitBreaker")?;
    }
    for (field, inner) in [("processorsBySlug", None), ("subscriptionsByKey", Some("latestConfiguredEvent")), ("connectionsByKey", None)] {
        let Some(Value::Object(entries)) = state.get(field) else { continue };
        for (key, entry) in entries {
            let entry = object(entry, &format!("{field}.{key}"))?;
            if let Some(inner) = inner.and_then(|i| entry.get(i).map(|v| (i, v))) {
                object(inner.1, &format!("{field}.{key}.{}", inner.0))?;
            }
        }
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[derive(Default)]
pub struct StreamConfig {
    /// Accepted for wire compatibility; it does nothing.
    pub simulated_storage_sync_delay_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<BreakerConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
}


#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessorEntry {
    pub announced_at_offset: u64,
    pub announcement: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionEntry {
    pub latest_configured_event: ConfiguredEventRef,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfiguredEventRef {
    pub offset: u64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub payload: Value,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionEntry {
    pub direction: Direction,
    pub connected_at_offset: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriber: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
        }
    }
}

/// The state's JSON, made on first use and shared until the state changes:
/// a commit with no subscriber to send it to never serialises the state.
#[derive(Debug, Default, Clone)]
pub struct StateJson(std::cell::OnceCell<std::rc::Rc<str>>);

impl StateJson {
    pub fn of(&self, state: &CoreState) -> std::rc::Rc<str> {
        self.0.get_or_init(|| state.to_json().into()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn initial_state_serialises_exactly_as_specified() {
        assert_eq!(
            CoreState::default().to_json(),
            concat!(
                r#"{"namespace":"uninitialized","path":"uninitialized","createdAt":"uninitialized","streamId":null,"incarnationId":"uninitialized","#,
                r#""metadata":{},"config":{"simulatedStorageSyncDelayMs":0},"eventCount":0,"maxOffset":0,"childPaths":[],"childCount":0,"#,
                r#""paused":false,"pauseReason":null,"processorsBySlug":{},"subscriptionsByKey":{},"connectionsByKey":{},"#,
                r#""circuitBreaker":{"availableTokens":100000,"lastRefillAtMs":null,"burstCapacity":100000,"refillRatePerMinute":6000000}}"#
            )
        );
    }

    #[test]
    fn supplied_states_fill_missing_fields_and_reject_wrong_types() {
        let partial = CoreState::from_value(json!({"path": "/a", "bogus": 1, "circuitBreaker": {"availableTokens": 3}})).unwrap();
        assert_eq!(partial.path, "/a");
        assert_eq!(partial.namespace, "uninitialized");
        assert_eq!(partial.circuit_breaker.available_tokens, 3.0);
        assert_eq!(partial.circuit_breaker.burst_capacity, 100_000.0);
        for field in ["eventCount", "maxOffset"] {
            for n in [json!(u64::MAX), json!(MAX_SAFE_INTEGER + 1), json!(-1), json!(1.5), json!("many"), json!(null)] {
                let err = CoreState::from_value(json!({ field: n })).unwrap_err();
                assert_eq!(err, format!("{field} must be an integer from 0 to 9007199254740991"), "{n}");
            }
            assert!(CoreState::from_value(json!({ field: MAX_SAFE_INTEGER })).is_ok());
        }
        assert!(CoreState::from_value(json!({"connectionsByKey": {"k": {"direction": "sideways", "connectedAtOffset": 1}}})).is_err());
    }

    #[test]
    fn arrays_never_stand_in_for_objects() {
        for bad in [
            json!([]),
            json!({"config": []}),
            json!({"config": [5]}),
            json!({"config": {"circuitBreaker": [1, 1]}}),
            json!({"circuitBreaker": [1, null, 1, 1]}),
            json!({"connectionsByKey": {"k": ["inbound", 3]}}),
            json!({"subscriptionsByKey": {"k": {"latestConfiguredEvent": [1, "t", {}, "x"]}}}),
        ] {
            assert!(CoreState::from_value(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut state = CoreState::default();
        state.paused = true;
        state.pause_reason = Some("why".into());
        state.child_paths.push("/a".into());
        assert_eq!(CoreState::from_json(&state.to_json()).unwrap(), state);
    }
}
