//! Payload rules for the stream's own event types (docs/protocol.md#system-events). Parsing turns a
//! payload into a typed `CorePayload` that the reducer applies; a failure is
//! the detail of an `invalid_event`, naming the field.

use serde_json::{Map, Value};

use super::breaker::BreakerConfig;
use super::event::types;
use super::limits::{MAX_SAFE_INTEGER, MAX_SUBSCRIPTION_KEY_BYTES};
use super::name::quote;
use super::state::Direction;
use super::subscriber::{parse_descriptor, CallableSubscriber};
use super::tiers::Retention;

#[derive(Debug, Clone, PartialEq)]
pub enum CorePayload {
    /// `stream_id` is absent on streams created before it existed.
    Created { namespace: String, path: String, stream_id: Option<String> },
    /// `inbound_kept`: hibernated sockets survived the wake (docs/protocol.md#boot).
    Woken { incarnation_id: String, inbound_kept: bool },
    Configured { simulated_storage_sync_delay_ms: Option<u64>, circuit_breaker: Option<BreakerConfig>, retention: Option<Retention> },
    MetadataUpdated { metadata: Map<String, Value> },
    ChildStreamCreated { child_path: String },
    /// `subscriber` is `Err` for a shape this runtime cannot dial: append
    /// rejects it, replay deletes the key.
    SubscriptionConfigured { subscription_key: String, subscriber: Result<CallableSubscriber, String> },
    SubscriptionRemoved { subscription_key: String },
    SubscriberConnected { subscription_key: String, direction: Direction, subscriber: Option<Value> },
    SubscriberDisconnected { subscription_key: String, reason: DisconnectReason },
    ErrorOccurred,
    Paused { reason: Option<String> },
    Resumed,
    /// Any other type, legacy ones included.
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    Replaced,
    Unsubscribed,
    RpcBroken,
    DeliveryFailed,
    SubscriptionRemoved,
    Idle,
    TokenExpired,
    /// A new `S/subscription-configured` for the key replaced the configuration the connection used.
    Reconfigured,
}

impl DisconnectReason {
    pub const ALL: [Self; 8] = [
        Self::Replaced,
        Self::Unsubscribed,
        Self::RpcBroken,
        Self::DeliveryFailed,
        Self::SubscriptionRemoved,
        Self::Idle,
        Self::TokenExpired,
        Self::Reconfigured,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Replaced => "replaced",
            Self::Unsubscribed => "unsubscribed",
            Self::RpcBroken => "rpc-broken",
            Self::DeliveryFailed => "delivery-failed",
            Self::SubscriptionRemoved => "subscription-removed",
            Self::Idle => "idle",
            Self::TokenExpired => "token-expired",
            Self::Reconfigured => "reconfigured",
        }
    }
}

/// Parses the payload of a core type; other types are `Other` whatever their payload.
pub fn parse_core_payload(event_type: &str, payload: Option<&Value>) -> Result<CorePayload, String> {
    if !types::is_system(event_type) {
        return Ok(CorePayload::Other);
    }
    let p = || Fields::of(payload);
    Ok(match event_type {
        types::CREATED => {
            let p = p()?;
            CorePayload::Created { namespace: p.str("namespace")?, path: p.str("path")?, stream_id: p.optional_str("streamId")? }
        }
        types::WOKEN => {
            let p = p()?;
            CorePayload::Woken { incarnation_id: p.str("incarnationId")?, inbound_kept: p.0.get("inboundKept") == Some(&Value::Bool(true)) }
        }
        types::CONFIGURED => configured(&p()?)?,
        types::METADATA_UPDATED => CorePayload::MetadataUpdated { metadata: p()?.object("metadata")?.clone() },
        types::CHILD_STREAM_CREATED => CorePayload::ChildStreamCreated { child_path: p()?.str("childPath")? },
        types::SUBSCRIPTION_CONFIGURED => {
            let p = p()?;
            CorePayload::SubscriptionConfigured {
                subscription_key: p.subscription_key()?,
                subscriber: CallableSubscriber::parse(p.0.get("subscriber")),
            }
        }
        types::SUBSCRIPTION_REMOVED => CorePayload::SubscriptionRemoved { subscription_key: p()?.subscription_key()? },
        types::SUBSCRIBER_CONNECTED => {
            let p = p()?;
            let direction = match p.0.get("direction").and_then(Value::as_str) {
                Some("inbound") => Direction::Inbound,
                Some("outbound") => Direction::Outbound,
                _ => return Err("payload.direction must be \"inbound\" or \"outbound\"".into()),
            };
            let subscriber = match p.0.get("subscriber") {
                None => None,
                Some(d) => Some(parse_descriptor(d).map_err(|e| format!("payload.subscriber{e}"))?),
            };
            CorePayload::SubscriberConnected { subscription_key: p.subscription_key()?, direction, subscriber }
        }
        types::SUBSCRIBER_DISCONNECTED => {
            let p = p()?;
            let reason = p.0.get("reason").and_then(Value::as_str);
            let reason = DisconnectReason::ALL
                .into_iter()
                .find(|r| Some(r.as_str()) == reason)
                .ok_or("payload.reason must be one of replaced, unsubscribed, rpc-broken, delivery-failed, subscription-removed, idle, token-expired, reconfigured")?;
            CorePayload::SubscriberDisconnected { subscription_key: p.subscription_key()?, reason }
        }
        types::ERROR_OCCURRED => {
            let p = p()?;
            p.str("message")?;
            if let Some(error) = p.0.get("error") {
                let e = Fields(error.as_object().ok_or("payload.error must be an object")?, "payload.error");
                e.str("message")?;
                for field in ["name", "code", "stack"] {
                    e.optional_str(field)?;
                }
            }
            CorePayload::ErrorOccurred
        }
        types::PAUSED => CorePayload::Paused { reason: p()?.optional_str("reason")? },
        types::RESUMED => {
            p()?.optional_str("reason")?;
            CorePayload::Resumed
        }
        _ => CorePayload::Other,
    })
}

fn configured(p: &Fields<'_>) -> Result<CorePayload, String> {
    let config = Fields(p.object("config")?, "payload.config");
    let simulated_storage_sync_delay_ms = match config.0.get("simulatedStorageSyncDelayMs") {
        None => None,
        Some(v) => Some(
            v.as_u64().ok_or("payload.config.simulatedStorageSyncDelayMs must be an integer >= 0")?,
        ),
    };
    let circuit_breaker = match config.0.get("circuitBreaker") {
        None => None,
        Some(v) => {
            let cb = Fields(v.as_object().ok_or("payload.config.circuitBreaker must be an object")?, "payload.config.circuitBreaker");
            Some(BreakerConfig {
                burst_capacity: cb.positive_integer("burstCapacity")?,
                refill_rate_per_minute: cb.positive_integer("refillRatePerMinute")?,
            })
        }
    };
    let retention = match config.0.get("retention") {
        None => None,
        Some(v) => {
            let r = Fields(v.as_object().ok_or("payload.config.retention must be an object")?, "payload.config.retention");
            if let Some(unknown) = r.0.keys().find(|k| !matches!(k.as_str(), "maxEvents" | "maxAgeSeconds")) {
                return Err(format!("payload.config.retention: unknown key \"{unknown}\""));
            }
            let limit = |name: &str| match r.0.get(name) {
                None => Ok(None),
                Some(n) => n.as_u64().filter(|n| (1..=MAX_SAFE_INTEGER).contains(n)).map(Some).ok_or_else(|| format!("payload.config.retention.{name} must be a positive integer")),
            };
            Some(Retention { max_events: limit("maxEvents")?, max_age_seconds: limit("maxAgeSeconds")? })
        }
    };
    Ok(CorePayload::Configured { simulated_storage_sync_delay_ms, circuit_breaker, retention })
}

/// An object's fields, with the prefix used to name them in messages.
struct Fields<'a>(&'a Map<String, Value>, &'static str);

impl<'a> Fields<'a> {
    fn of(payload: Option<&'a Value>) -> Result<Self, String> {
        payload.and_then(Value::as_object).map(|m| Fields(m, "payload")).ok_or_else(|| "payload must be an object".into())
    }

    /// A string that is non-empty once trimmed; returns it trimmed.
    fn str(&self, field: &str) -> Result<String, String> {
        match self.0.get(field) {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
            _ => Err(format!("{}.{field} must be a non-empty string", self.1)),
        }
    }

    fn optional_str(&self, field: &str) -> Result<Option<String>, String> {
        match self.0.get(field) {
            None => Ok(None),
            Some(_) => self.str(field).map(Some),
        }
    }

    fn object(&self, field: &str) -> Result<&'a Map<String, Value>, String> {
        self.0.get(field).and_then(Value::as_object).ok_or_else(|| format!("{}.{field} must be an object", self.1))
    }

    fn positive_integer(&self, field: &str) -> Result<f64, String> {
        match self.0.get(field).and_then(Value::as_f64) {
            Some(n) if n > 0.0 && n.fract() == 0.0 && n.is_finite() => Ok(n),
            _ => Err(format!("{}.{field} must be a positive integer", self.1)),
        }
    }

    fn subscription_key(&self) -> Result<String, String> {
        match self.0.get("subscriptionKey") {
            Some(Value::String(s)) if s.trim().is_empty() => Err("subscriptionKey must not be blank.".into()),
            Some(Value::String(s)) if s.trim().len() > MAX_SUBSCRIPTION_KEY_BYTES => {
                Err(format!("{}.subscriptionKey must be at most {MAX_SUBSCRIPTION_KEY_BYTES} bytes", self.1))
            }
            Some(Value::String(s)) => Ok(s.trim().to_owned()),
            Some(other) => Err(format!("{}.subscriptionKey must be a string, got {}", self.1, quote(&other.to_string()))),
            None => Err(format!("{}.subscriptionKey must be a non-empty string", self.1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(t: &str, p: Value) -> Result<CorePayload, String> {
        parse_core_payload(t, Some(&p))
    }

    #[test]
    fn domain_types_accept_any_payload() {
        assert_eq!(parse_core_payload("app/x", None), Ok(CorePayload::Other));
        assert_eq!(parse("events.iterate.com/stream/processor-registered", json!(1)), Ok(CorePayload::Other));
    }

    #[test]
    fn core_payloads_name_the_failing_field() {
        assert_eq!(parse(types::CREATED, json!({"namespace": " ", "path": "/a"})).unwrap_err(), "payload.namespace must be a non-empty string");
        assert_eq!(
            parse(types::CONFIGURED, json!({"config": {"circuitBreaker": {"burstCapacity": 0, "refillRatePerMinute": 1}}})).unwrap_err(),
            "payload.config.circuitBreaker.burstCapacity must be a positive integer"
        );
        assert_eq!(parse(types::CONFIGURED, json!({"config": {"simulatedStorageSyncDelayMs": -1}})).unwrap_err(), "payload.config.simulatedStorageSyncDelayMs must be an integer >= 0");
        assert_eq!(parse_core_payload(types::PAUSED, None).unwrap_err(), "payload must be an object");
        assert_eq!(parse(types::SUBSCRIPTION_REMOVED, json!({"subscriptionKey": "  "})).unwrap_err(), "subscriptionKey must not be blank.");
        assert!(parse(types::SUBSCRIBER_DISCONNECTED, json!({"subscriptionKey": "k", "reason": "bored"})).is_err());
        assert!(parse(types::ERROR_OCCURRED, json!({"message": "m", "error": {"name": "E"}})).is_err());
    }

    #[test]
    fn strings_are_trimmed_for_the_reducer() {
        assert_eq!(
            parse(types::PAUSED, json!({"reason": "  maintenance "})).unwrap(),
            CorePayload::Paused { reason: Some("maintenance".into()) }
        );
        assert_eq!(parse(types::PAUSED, json!({})).unwrap(), CorePayload::Paused { reason: None });
    }
}
