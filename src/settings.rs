//! Environment variables and secrets, read once per incarnation (docs/operations.md#configuration).

use worker::Env;

use streams_core::outbound::Timing;
use streams_core::subscriber::parse_binding_allowlist;
use streams_core::tiers::SegmentLimits;

const DEFAULT_IDLE_TEARDOWN_MS: f64 = 300_000.0;
const DEFAULT_REDIAL_BASE_MS: f64 = 1000.0;
const DEFAULT_REDIAL_MAX_MS: f64 = 300_000.0;

#[derive(Debug, Clone)]
pub struct Settings {
    pub test_hooks: bool,
    pub allowed_bindings: Vec<String>,
    pub idle_teardown_ms: f64,
    pub redial_base_ms: f64,
    pub redial_max_ms: f64,
    /// When the hot tier is sealed into a segment (with `STREAMS_ARCHIVE` bound).
    pub segment_limits: SegmentLimits,
}

impl Settings {
    pub fn timing(&self) -> Timing {
        Timing { redial_base_ms: self.redial_base_ms, redial_max_ms: self.redial_max_ms, idle_teardown_ms: self.idle_teardown_ms }
    }

    pub fn from_env(env: &Env) -> Self {
        Self {
            test_hooks: text(env, "STREAMS_TEST_HOOKS").as_deref() == Some("1"),
            allowed_bindings: parse_binding_allowlist(&text(env, "STREAM_SUBSCRIBER_BINDINGS").unwrap_or_default()),
            idle_teardown_ms: positive_ms(env, "STREAM_IDLE_TEARDOWN_MS", DEFAULT_IDLE_TEARDOWN_MS),
            redial_base_ms: positive_ms(env, "STREAM_REDIAL_BASE_MS", DEFAULT_REDIAL_BASE_MS),
            redial_max_ms: positive_ms(env, "STREAM_REDIAL_MAX_MS", DEFAULT_REDIAL_MAX_MS),
            segment_limits: SegmentLimits {
                max_events: positive_integer(env, "STREAMS_SEGMENT_EVENTS", SegmentLimits::default().max_events),
                max_bytes: positive_integer(env, "STREAMS_SEGMENT_BYTES", SegmentLimits::default().max_bytes),
            },
        }
    }
}

/// A var or secret as text; `None` when unset.
pub fn text(env: &Env, name: &str) -> Option<String> {
    env.var(name).map(|v| v.to_string()).ok().or_else(|| env.secret(name).map(|s| s.to_string()).ok())
}

/// A positive finite number of milliseconds; anything else falls back, with a warning.
fn positive_ms(env: &Env, name: &str, default: f64) -> f64 {
    let Some(raw) = text(env, name) else { return default };
    match raw.trim().parse::<f64>() {
        Ok(ms) if ms.is_finite() && ms > 0.0 => ms,
        _ => {
            worker::console_warn!("{name}={raw:?} is not a positive finite number; using {default}");
            default
        }
    }
}

/// A positive integer; anything else falls back, with a warning.
fn positive_integer(env: &Env, name: &str, default: u64) -> u64 {
    let Some(raw) = text(env, name) else { return default };
    match raw.trim().parse::<u64>() {
        Ok(n) if n > 0 => n,
        _ => {
            worker::console_warn!("{name}={raw:?} is not a positive integer; using {default}");
            default
        }
    }
}
