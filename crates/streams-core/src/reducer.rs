//! `reduce(state, event)`: the pure fold of one committed event into the core
//! state (docs/protocol.md#system-events). It reads no clock and no environment.

use super::breaker::{BreakerConfig, BreakerEffect};
use super::event::{types, Event};
use super::limits::MAX_CHILD_PATHS;
use super::name::immediate_child;
use super::payload::{parse_core_payload, CorePayload};
use super::state::{ConfiguredEventRef, ConnectionEntry, CoreState, Direction, ProcessorEntry, SubscriptionEntry};
use super::subscriber::announcement_of;
use super::time::parse_rfc3339_ms;

pub const CREATED_MUST_BE_FIRST: &str =
    "events.iterate.com/stream/created must be the first event and have offset 1";

/// Why an event could not be reduced; `state` is then unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReduceError {
    /// A detail for `event[<i>]: …`.
    Invalid(String),
    /// `S/created` anywhere but offset 1.
    CreatedNotFirst,
}

impl std::fmt::Display for ReduceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid(detail) => f.write_str(detail),
            Self::CreatedNotFirst => f.write_str(CREATED_MUST_BE_FIRST),
        }
    }
}

/// Applies `event` to `state`. On `Err` the state is untouched.
pub fn reduce(state: &mut CoreState, event: &Event) -> Result<(), ReduceError> {
    let t = parse_rfc3339_ms(&event.created_at)
        .ok_or_else(|| ReduceError::Invalid("createdAt must be an RFC 3339 time".into()))?;
    let payload = parse_core_payload(&event.event_type, event.payload.as_ref()).map_err(ReduceError::Invalid)?;
    if matches!(payload, CorePayload::Created { .. }) && event.offset != 1 {
        return Err(ReduceError::CreatedNotFirst);
    }

    state.event_count = state.event_count.checked_add(1).ok_or_else(|| ReduceError::Invalid("eventCount is at its limit".into()))?;
    state.max_offset = event.offset;

    let breaker = apply(state, event, payload);
    let effect = match &breaker {
        Effect::Configure(config) => BreakerEffect::Configure(config.as_ref()),
        Effect::Refill => BreakerEffect::Refill,
        Effect::Free => BreakerEffect::Free,
        Effect::Spend => BreakerEffect::Spend,
    };
    state.circuit_breaker.apply(effect, t);
    Ok(())
}

enum Effect {
    Configure(Option<BreakerConfig>),
    Refill,
    Free,
    Spend,
}

fn apply(state: &mut CoreState, event: &Event, payload: CorePayload) -> Effect {
    match payload {
        CorePayload::Created { namespace, path, stream_id } => {
            state.namespace = namespace;
            state.path = path;
            state.created_at.clone_from(&event.created_at);
            state.stream_id = stream_id;
        }
        CorePayload::Woken { incarnation_id, inbound_kept } => {
            state.incarnation_id = incarnation_id;
            // Outbound connections never outlive an incarnation; hibernated sockets may.
            if inbound_kept {
                let outbound: Vec<String> = state.connections_by_key.iter().filter(|(_, c)| c.direction == Direction::Outbound).map(|(k, _)| k.clone()).collect();
                for key in &outbound {
                    state.connections_by_key.shift_remove(key);
                }
            } else {
                state.connections_by_key.clear();
            }
            return Effect::Free;
        }
        CorePayload::Configured { simulated_storage_sync_delay_ms, circuit_breaker, retention } => {
            if retention.is_some() {
                state.config.retention = retention;
            }
            if let Some(ms) = simulated_storage_sync_delay_ms {
                state.config.simulated_storage_sync_delay_ms = ms;
            }
            if circuit_breaker.is_some() {
                state.config.circuit_breaker.clone_from(&circuit_breaker);
            }
            return Effect::Configure(circuit_breaker);
        }
        CorePayload::MetadataUpdated { metadata } => state.metadata = metadata,
        CorePayload::ChildStreamCreated { child_path } => {
            if let Some(child) = immediate_child(&state.path, &child_path) {
                state.child_count += 1;
                if state.child_paths.len() < MAX_CHILD_PATHS && !state.child_paths.contains(&child) {
                    state.child_paths.push(child);
                }
            }
        }
        CorePayload::SubscriptionConfigured { subscription_key, subscriber } => {
            if subscriber.is_ok() {
                let latest_configured_event = ConfiguredEventRef {
                    offset: event.offset,
                    event_type: event.event_type.clone(),
                    payload: event.payload.clone().unwrap_or_default(),
                    created_at: event.created_at.clone(),
                };
                state.subscriptions_by_key.insert(subscription_key, SubscriptionEntry { latest_configured_event });
            } else {
                state.subscriptions_by_key.shift_remove(&subscription_key);
            }
        }
        CorePayload::SubscriptionRemoved { subscription_key } => {
            state.subscriptions_by_key.shift_remove(&subscription_key);
        }
        CorePayload::SubscriberConnected { subscription_key, direction, subscriber } => {
            if let Some((slug, announcement)) = subscriber.as_ref().and_then(announcement_of) {
                state.processors_by_slug.insert(
                    slug.to_owned(),
                    ProcessorEntry { announced_at_offset: event.offset, announcement: announcement.clone() },
                );
            }
            state
                .connections_by_key
                .insert(subscription_key, ConnectionEntry { direction, connected_at_offset: event.offset, subscriber });
            // Presence is the stream's own record of its sockets: a reader opening and closing
            // sockets must not drain the bucket and pause the stream for every writer.
            return Effect::Free;
        }
        CorePayload::SubscriberDisconnected { subscription_key, .. } => {
            state.connections_by_key.shift_remove(&subscription_key);
            return Effect::Free;
        }
        CorePayload::Paused { reason } => {
            state.paused = true;
            state.pause_reason = reason;
            return Effect::Refill;
        }
        CorePayload::Resumed => {
            state.paused = false;
            state.pause_reason = None;
            return Effect::Refill;
        }
        CorePayload::ErrorOccurred | CorePayload::Other => {}
    }
    Effect::Spend
}

/// Whether the pause gate lets `event_type` through while paused (docs/protocol.md#pause-gate).
pub fn passes_pause_gate(event_type: &str) -> bool {
    matches!(
        event_type,
        types::RESUMED | types::ERROR_OCCURRED | types::WOKEN | types::SUBSCRIBER_CONNECTED | types::SUBSCRIBER_DISCONNECTED
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::event;
    use serde_json::json;

    fn fold(events: &[Event]) -> CoreState {
        let mut state = CoreState::default();
        for e in events {
            reduce(&mut state, e).unwrap();
        }
        state
    }

    #[test]
    fn created_woken_configured_set_their_fields() {
        let state = fold(&[
            event(1, types::CREATED, json!({"namespace": "default", "path": "test"}), "2026-01-05T10:00:00.000Z"),
            event(2, types::WOKEN, json!({"incarnationId": "abc"}), "2026-01-05T10:00:00.001Z"),
            event(3, types::CONFIGURED, json!({"config": {"simulatedStorageSyncDelayMs": 25}}), "2026-01-05T10:00:00.002Z"),
        ]);
        assert_eq!((state.namespace.as_str(), state.path.as_str()), ("default", "test"));
        assert_eq!(state.created_at, "2026-01-05T10:00:00.000Z");
        assert_eq!(state.stream_id, None, "streams created before streamId existed");
        assert_eq!(state.incarnation_id, "abc");
        let with_id = fold(&[event(1, types::CREATED, json!({"namespace": "d", "path": "/t", "streamId": "s-1"}), "2026-01-05T10:00:00.000Z")]);
        assert_eq!(with_id.stream_id.as_deref(), Some("s-1"));
        assert_eq!(state.config.simulated_storage_sync_delay_ms, 25);
        assert_eq!((state.event_count, state.max_offset), (3, 3));
    }

    #[test]
    fn created_elsewhere_than_offset_one_is_refused_and_changes_nothing() {
        let mut state = CoreState::default();
        let err = reduce(&mut state, &event(5, types::CREATED, json!({"namespace": "a", "path": "/a"}), "2026-01-05T10:00:00.000Z"));
        assert_eq!(err.unwrap_err().to_string(), CREATED_MUST_BE_FIRST);
        assert_eq!(state, CoreState::default());
    }

    #[test]
    fn a_full_event_count_is_refused_not_wrapped() {
        let mut state = CoreState { event_count: u64::MAX, ..CoreState::default() };
        let err = reduce(&mut state, &event(7, "app/x", json!({}), "2026-01-05T10:00:00.000Z")).unwrap_err();
        assert_eq!(err.to_string(), "eventCount is at its limit");
        assert_eq!(state.event_count, u64::MAX);
    }

    #[test]
    fn subscriptions_and_connections_track_the_roster() {
        let subscriber = json!({"type":"callable","callable":{"type":"workers-rpc","via":{"type":"env-binding","bindingType":"service","bindingName":"SVC"}}});
        let mut state = fold(&[
            event(1, types::SUBSCRIPTION_CONFIGURED, json!({"subscriptionKey": "echo", "subscriber": subscriber}), "2026-01-05T10:00:00.000Z"),
            event(2, types::SUBSCRIBER_CONNECTED, json!({"subscriptionKey": "echo", "direction": "outbound",
                "subscriber": {"processor": {"announcement": {"slug": "echo-example", "version": "0.1.0"}}}}), "2026-01-05T10:00:00.000Z"),
        ]);
        assert_eq!(state.subscriptions_by_key["echo"].latest_configured_event.offset, 1);
        assert_eq!(state.processors_by_slug["echo-example"].announced_at_offset, 2);
        assert!(state.connections_by_key.contains_key("echo"));

        let built_in = event(3, types::SUBSCRIPTION_CONFIGURED, json!({"subscriptionKey": "echo", "subscriber": {"type": "built-in"}}), "2026-01-05T10:00:00.000Z");
        reduce(&mut state, &built_in).unwrap();
        assert!(!state.subscriptions_by_key.contains_key("echo"));

        let gone = event(4, types::SUBSCRIBER_DISCONNECTED, json!({"subscriptionKey": "echo", "reason": "idle"}), "2026-01-05T10:00:00.000Z");
        reduce(&mut state, &gone).unwrap();
        assert!(state.connections_by_key.is_empty());

        let inbound = event(5, types::SUBSCRIBER_CONNECTED, json!({"subscriptionKey": "k", "direction": "inbound"}), "2026-01-05T10:00:00.000Z");
        reduce(&mut state, &inbound).unwrap();
        reduce(&mut state, &event(6, types::WOKEN, json!({"incarnationId": "x"}), "2026-01-05T10:00:00.000Z")).unwrap();
        assert!(state.connections_by_key.is_empty(), "woken empties the roster");
    }

    #[test]
    fn woken_with_inbound_kept_keeps_only_the_sockets() {
        let at = "2026-01-05T10:00:00.000Z";
        let mut state = fold(&[
            event(1, types::SUBSCRIBER_CONNECTED, json!({"subscriptionKey": "out", "direction": "outbound"}), at),
            event(2, types::SUBSCRIBER_CONNECTED, json!({"subscriptionKey": "a", "direction": "inbound"}), at),
            event(3, types::SUBSCRIBER_CONNECTED, json!({"subscriptionKey": "b", "direction": "inbound"}), at),
        ]);
        reduce(&mut state, &event(4, types::WOKEN, json!({"incarnationId": "x", "inboundKept": true}), at)).unwrap();
        let kept: Vec<(&str, u64)> = state.connections_by_key.iter().map(|(k, c)| (k.as_str(), c.connected_at_offset)).collect();
        assert_eq!(kept, [("a", 2), ("b", 3)], "the sockets keep their entries, in order; the outbound one is gone");
        reduce(&mut state, &event(5, types::WOKEN, json!({"incarnationId": "y", "inboundKept": "yes"}), at)).unwrap();
        assert!(state.connections_by_key.is_empty(), "only `true` keeps them");
    }

    #[test]
    fn child_paths_keep_only_immediate_children() {
        let mut state = CoreState { path: "/a".into(), ..CoreState::default() };
        for (i, e) in [
            event(1, types::CHILD_STREAM_CREATED, json!({"childPath": "/a/b/c"}), "2026-01-05T10:00:00.000Z"),
            event(2, types::METADATA_UPDATED, json!({"metadata": {"k": 1}}), "2026-01-05T10:00:00.000Z"),
            event(3, types::ERROR_OCCURRED, json!({"message": "boom"}), "2026-01-05T10:00:00.000Z"),
            event(4, types::CHILD_STREAM_CREATED, json!({"childPath": "/a/b"}), "2026-01-05T10:00:00.000Z"),
        ]
        .iter()
        .enumerate()
        {
            reduce(&mut state, e).unwrap_or_else(|err| panic!("{i}: {err}"));
        }
        assert_eq!(state.child_paths, vec!["/a/b"]);
        assert_eq!(state.max_offset, 4);
        assert_eq!(state.metadata["k"], 1);

        let mut root = CoreState { path: "/".into(), ..CoreState::default() };
        reduce(&mut root, &event(1, types::CHILD_STREAM_CREATED, json!({"childPath": "/x/y"}), "2026-01-05T10:00:00.000Z")).unwrap();
        assert_eq!(root.child_paths, vec!["/x"]);
    }

    #[test]
    fn child_paths_stop_at_a_hundred_and_child_count_counts_every_stream_below() {
        let mut state = CoreState { path: "/p".into(), ..CoreState::default() };
        for i in 0..150u64 {
            let notice = event(i + 1, types::CHILD_STREAM_CREATED, json!({"childPath": format!("/p/c{i}/leaf")}), "2026-01-05T10:00:00.000Z");
            reduce(&mut state, &notice).unwrap();
        }
        assert_eq!(state.child_paths.len(), 100);
        assert_eq!((state.child_paths[0].as_str(), state.child_paths[99].as_str()), ("/p/c0", "/p/c99"));
        assert_eq!(state.child_count, 150);
    }

    #[test]
    fn the_breaker_spends_refills_and_configures() {
        let mut state = CoreState::default();
        let cfg = event(1, types::CONFIGURED, json!({"config": {"circuitBreaker": {"burstCapacity": 10, "refillRatePerMinute": 60}}}), "2026-01-05T12:00:00.000Z");
        reduce(&mut state, &cfg).unwrap();
        let b = &state.circuit_breaker;
        assert_eq!((b.available_tokens, b.burst_capacity, b.refill_rate_per_minute), (10.0, 10.0, 60.0));
        assert_eq!(
            serde_json::to_value(state.config.circuit_breaker.as_ref().unwrap()).unwrap(),
            json!({"burstCapacity": 10.0, "refillRatePerMinute": 60.0})
        );
    }

    #[test]
    fn the_paused_and_resumed_sequence_holds() {
        let s = |o, t: &str, p, at: &str| event(o, t, p, &format!("2026-01-05T12:00:{at}Z"));
        let mut state = fold(&[
            s(1, types::CREATED, json!({"namespace": "t", "path": "/a"}), "00.000"),
            s(2, types::CONFIGURED, json!({"config": {"circuitBreaker": {"burstCapacity": 1, "refillRatePerMinute": 1}}}), "00.100"),
            s(3, types::METADATA_UPDATED, json!({"metadata": {}}), "01.000"),
        ]);
        assert!((state.circuit_breaker.available_tokens - 0.0).abs() < 1e-9);
        reduce(&mut state, &s(4, types::METADATA_UPDATED, json!({"metadata": {}}), "02.000")).unwrap();
        assert!((state.circuit_breaker.available_tokens - -0.983_333_333_333).abs() < 1e-9);
        reduce(&mut state, &s(5, types::PAUSED, json!({}), "03.000")).unwrap();
        assert!(state.paused);
        assert_eq!(state.pause_reason, None);
        assert_eq!(state.circuit_breaker.available_tokens, 1.0);
        reduce(&mut state, &s(6, types::RESUMED, json!({}), "04.000")).unwrap();
        assert!(!state.paused);
        assert_eq!(state.circuit_breaker.available_tokens, 1.0);
    }

    #[test]
    fn woken_leaves_the_bucket_and_configured_without_breaker_refills() {
        let mut state = CoreState::default();
        state.circuit_breaker.available_tokens = -0.5;
        state.circuit_breaker.last_refill_at_ms = Some(0.0);
        let before = state.circuit_breaker.clone();
        reduce(&mut state, &event(1, types::WOKEN, json!({"incarnationId": "i"}), "2026-01-05T12:00:00.000Z")).unwrap();
        assert_eq!(state.circuit_breaker, before);
        reduce(&mut state, &event(2, types::CONFIGURED, json!({"config": {}}), "2026-01-05T12:00:00.000Z")).unwrap();
        assert_eq!(state.circuit_breaker.available_tokens, 100_000.0);
    }

    #[test]
    fn presence_events_spend_no_tokens() {
        let mut state = CoreState::default();
        state.circuit_breaker.available_tokens = 0.5;
        state.circuit_breaker.last_refill_at_ms = Some(0.0);
        let before = state.circuit_breaker.clone();
        let connected = json!({"subscriptionKey": "k", "direction": "inbound"});
        let disconnected = json!({"subscriptionKey": "k", "reason": "rpc-broken"});
        for offset in 1..=50 {
            let (t, payload) = if offset % 2 == 1 { (types::SUBSCRIBER_CONNECTED, &connected) } else { (types::SUBSCRIBER_DISCONNECTED, &disconnected) };
            reduce(&mut state, &event(offset, t, payload.clone(), "1970-01-01T00:00:00.000Z")).unwrap();
        }
        assert_eq!(state.circuit_breaker, before);
        assert!(!state.circuit_breaker.in_deficit());
    }

    #[test]
    fn the_pause_gate_lets_only_recovery_and_presence_through() {
        for t in [types::RESUMED, types::ERROR_OCCURRED, types::WOKEN, types::SUBSCRIBER_CONNECTED, types::SUBSCRIBER_DISCONNECTED] {
            assert!(passes_pause_gate(t));
        }
        for t in [types::PAUSED, types::CONFIGURED, "app/x"] {
            assert!(!passes_pause_gate(t));
        }
    }
}
