//! An independent model of one stream, written from docs/protocol.md alone and sharing no code
//! with `streams-core` (docs/architecture.md#tests). It is the oracle of the property tests
//! (crates/streams-core/tests/core_properties.rs) and, through the `streams-model` binary, of the
//! Miniflare model tests: a reducer that is wrong in the same way when it folds and when it
//! rebuilds still disagrees with this.
//!
//! What it models: offsets and preconditions, idempotency, reserved types and keys, the documented
//! limits, every system payload, the pause gate, the circuit breaker's rules and trip, `childPaths`,
//! subscriptions, connections and processor announcements, and the state's exact key order.
//! Retention is the extension point `first_offset` (docs/protocol.md#reads-over-trimmed-ranges
//! once it is documented): reads below it are `trimmed`; the fold itself does not change.

use std::collections::{BTreeSet, HashMap};

use serde_json::{json, Map, Value};

pub const S: &str = "events.iterate.com/stream/";
pub const MAX_SAFE: f64 = 9_007_199_254_740_991.0;
pub const MAX_EVENT_BYTES: usize = 8_388_608;
pub const MAX_BATCH_EVENTS: usize = 1000;
pub const MAX_BATCH_BYTES: usize = 16_777_216;
pub const MAX_TYPE_BYTES: usize = 256;
pub const MAX_KEY_BYTES: usize = 1024;
pub const MAX_SUBSCRIPTION_KEY_BYTES: usize = 256;
pub const MAX_DEPTH: usize = 128;
/// `childPaths` keeps the first this many immediate children (docs/protocol.md#child-streams).
pub const MAX_CHILD_PATHS: usize = 100;
pub const TRIP_REASON: &str = "circuit breaker tripped: burst rate limit exceeded";

fn sys(x: &str) -> String {
    format!("{S}{x}")
}

/// An insertion-ordered map: re-setting a key keeps its place, removing closes the gap
/// (what a JavaScript object does, which is how the state reads on the wire).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ordered(Vec<(String, Value)>);

impl Ordered {
    fn set(&mut self, key: &str, value: Value) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key.to_owned(), value)),
        }
    }
    fn remove(&mut self, key: &str) {
        self.0.retain(|(k, _)| k != key);
    }
    fn json(&self) -> Value {
        Value::Object(self.0.iter().cloned().collect())
    }
}

/// The core state as docs/protocol.md#state-shape lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    pub namespace: String,
    pub path: String,
    pub created_at: String,
    pub stream_id: Option<String>,
    pub incarnation_id: String,
    pub metadata: Value,
    pub sync_delay: f64,
    pub breaker_config: Option<(f64, f64)>,
    /// `config.retention`: maxEvents and maxAgeSeconds, each when given.
    pub retention: Option<(Option<f64>, Option<f64>)>,
    pub event_count: u64,
    pub max_offset: u64,
    pub child_paths: Vec<String>,
    pub child_count: u64,
    pub paused: bool,
    pub pause_reason: Option<String>,
    pub processors: Ordered,
    pub subscriptions: Ordered,
    pub connections: Ordered,
    pub tokens: f64,
    pub last_refill: Option<f64>,
    pub burst: f64,
    pub rate_per_minute: f64,
}

impl Default for State {
    fn default() -> Self {
        let u = || "uninitialized".to_owned();
        State {
            namespace: u(),
            path: u(),
            created_at: u(),
            stream_id: None,
            incarnation_id: u(),
            metadata: json!({}),
            sync_delay: 0.0,
            breaker_config: None,
            retention: None,
            event_count: 0,
            max_offset: 0,
            child_paths: vec![],
            child_count: 0,
            paused: false,
            pause_reason: None,
            processors: Ordered::default(),
            subscriptions: Ordered::default(),
            connections: Ordered::default(),
            tokens: 100_000.0,
            last_refill: None,
            burst: 100_000.0,
            rate_per_minute: 6_000_000.0,
        }
    }
}

impl State {
    /// The state's JSON, keys in the documented order.
    pub fn json(&self) -> Value {
        let mut config = Map::new();
        config.insert("simulatedStorageSyncDelayMs".into(), num(self.sync_delay));
        if let Some((b, r)) = self.breaker_config {
            config.insert("circuitBreaker".into(), json!({"burstCapacity": num(b), "refillRatePerMinute": num(r)}));
        }
        if let Some((events, age)) = self.retention {
            let mut retention = Map::new();
            if let Some(n) = events {
                retention.insert("maxEvents".into(), num(n));
            }
            if let Some(s) = age {
                retention.insert("maxAgeSeconds".into(), num(s));
            }
            config.insert("retention".into(), Value::Object(retention));
        }
        let mut m = Map::new();
        m.insert("namespace".into(), json!(self.namespace));
        m.insert("path".into(), json!(self.path));
        m.insert("createdAt".into(), json!(self.created_at));
        m.insert("streamId".into(), json!(self.stream_id));
        m.insert("incarnationId".into(), json!(self.incarnation_id));
        m.insert("metadata".into(), self.metadata.clone());
        m.insert("config".into(), Value::Object(config));
        m.insert("eventCount".into(), json!(self.event_count));
        m.insert("maxOffset".into(), json!(self.max_offset));
        m.insert("childPaths".into(), json!(self.child_paths));
        m.insert("childCount".into(), json!(self.child_count));
        m.insert("paused".into(), json!(self.paused));
        m.insert("pauseReason".into(), json!(self.pause_reason));
        m.insert("processorsBySlug".into(), self.processors.json());
        m.insert("subscriptionsByKey".into(), self.subscriptions.json());
        m.insert("connectionsByKey".into(), self.connections.json());
        m.insert(
            "circuitBreaker".into(),
            json!({"availableTokens": num(self.tokens), "lastRefillAtMs": self.last_refill.map(num),
                   "burstCapacity": num(self.burst), "refillRatePerMinute": num(self.rate_per_minute)}),
        );
        Value::Object(m)
    }

    /// docs/protocol.md#rules: refill to the burst.
    fn refill(&mut self, t: f64) {
        self.tokens = self.burst;
        self.last_refill = Some(t);
    }

    /// docs/protocol.md#rules: refill for the elapsed time (never negative), capped at the burst,
    /// then always take one whole token.
    fn spend(&mut self, t: f64) {
        let refilled = match self.last_refill {
            None => self.burst,
            Some(last) => {
                let elapsed = if t > last { t - last } else { 0.0 };
                let topped = self.tokens + elapsed * self.rate_per_minute / 60_000.0;
                if topped < self.burst { topped } else { self.burst }
            }
        };
        self.tokens = refilled - 1.0;
        self.last_refill = Some(t);
    }

    /// Folds one committed event (one the stream accepted) into the state.
    pub fn fold(&mut self, event: &Value) -> Result<(), String> {
        let offset = event.get("offset").and_then(Value::as_u64).ok_or("offset is missing")?;
        let created_at = event.get("createdAt").and_then(Value::as_str).ok_or("createdAt is missing")?;
        let t = parse_iso_ms(created_at).ok_or_else(|| format!("createdAt {created_at:?} is not an ISO time"))?;
        let event_type = event.get("type").and_then(Value::as_str).ok_or("type is missing")?;
        let payload = event.get("payload");
        let p = Payload(payload);
        let mut next = self.clone();
        next.event_count += 1;
        next.max_offset = offset;
        let suffix = event_type.strip_prefix(S).unwrap_or("");
        match suffix {
            "created" => {
                if offset != 1 {
                    return Err("created must be offset 1".into());
                }
                next.namespace = p.trimmed("namespace").ok_or("created.namespace")?;
                next.path = p.trimmed("path").ok_or("created.path")?;
                next.created_at = created_at.to_owned();
                next.stream_id = p.trimmed("streamId");
                next.spend(t);
            }
            "woken" => {
                next.incarnation_id = p.trimmed("incarnationId").ok_or("woken.incarnationId")?;
                // Only `inboundKept: true` keeps the inbound entries; outbound ones always go.
                let kept = p.get("inboundKept") == Some(&Value::Bool(true));
                next.connections.0.retain(|(_, c)| kept && c.get("direction") == Some(&json!("inbound")));
            }
            "configured" => {
                let config = p.get("config").ok_or("configured.config")?;
                if let Some(ms) = config.get("simulatedStorageSyncDelayMs").and_then(Value::as_f64) {
                    next.sync_delay = ms;
                }
                if let Some(cb) = config.get("circuitBreaker") {
                    let b = cb.get("burstCapacity").and_then(Value::as_f64).ok_or("burstCapacity")?;
                    let r = cb.get("refillRatePerMinute").and_then(Value::as_f64).ok_or("refillRatePerMinute")?;
                    next.breaker_config = Some((b, r));
                    next.burst = b;
                    next.rate_per_minute = r;
                }
                if let Some(retention) = config.get("retention") {
                    next.retention = Some((retention.get("maxEvents").and_then(Value::as_f64), retention.get("maxAgeSeconds").and_then(Value::as_f64)));
                }
                next.refill(t);
            }
            "metadata-updated" => {
                next.metadata = p.get("metadata").cloned().ok_or("metadata-updated.metadata")?;
                next.spend(t);
            }
            "child-stream-created" => {
                let child = p.trimmed("childPath").ok_or("child-stream-created.childPath")?;
                if let Some(immediate) = immediate_child(&next.path, &child) {
                    next.child_count += 1;
                    if next.child_paths.len() < MAX_CHILD_PATHS && !next.child_paths.contains(&immediate) {
                        next.child_paths.push(immediate);
                    }
                }
                next.spend(t);
            }
            "subscription-configured" => {
                let key = p.trimmed("subscriptionKey").ok_or("subscription-configured.subscriptionKey")?;
                let entry = json!({"latestConfiguredEvent": {"offset": offset, "type": event_type,
                    "payload": payload.cloned().unwrap_or(Value::Null), "createdAt": created_at}});
                next.subscriptions.set(&key, entry);
                next.spend(t);
            }
            "subscription-removed" => {
                let key = p.trimmed("subscriptionKey").ok_or("subscription-removed.subscriptionKey")?;
                next.subscriptions.remove(&key);
                next.spend(t);
            }
            "subscriber-connected" => {
                let key = p.trimmed("subscriptionKey").ok_or("subscriber-connected.subscriptionKey")?;
                let direction = p.get("direction").cloned().ok_or("subscriber-connected.direction")?;
                let mut entry = Map::new();
                entry.insert("direction".into(), direction);
                entry.insert("connectedAtOffset".into(), json!(offset));
                if let Some(descriptor) = p.get("subscriber") {
                    let descriptor = wrap_announcement(descriptor);
                    if let Some(announcement) = descriptor.get("processor").and_then(|x| x.get("announcement")) {
                        if let Some(slug) = announcement.get("slug").and_then(Value::as_str) {
                            next.processors.set(
                                slug.trim(),
                                json!({"announcedAtOffset": offset, "announcement": announcement}),
                            );
                        }
                    }
                    entry.insert("subscriber".into(), descriptor);
                }
                next.connections.set(&key, Value::Object(entry));
                // Presence spends no token (docs/protocol.md#rules).
            }
            "subscriber-disconnected" => {
                let key = p.trimmed("subscriptionKey").ok_or("subscriber-disconnected.subscriptionKey")?;
                next.connections.remove(&key);
            }
            "paused" => {
                next.paused = true;
                next.pause_reason = p.trimmed("reason");
                next.refill(t);
            }
            "resumed" => {
                next.paused = false;
                next.pause_reason = None;
                next.refill(t);
            }
            // error-occurred, unknown system types and every domain event.
            _ => next.spend(t),
        }
        *self = next;
        Ok(())
    }
}

/// A processor descriptor whose `processor` is itself an announcement is wrapped as
/// `{announcement: …}` (docs/protocol.md#system-events).
fn wrap_announcement(descriptor: &Value) -> Value {
    let mut d = descriptor.clone();
    if let Some(p) = d.get_mut("processor") {
        if p.get("slug").is_some() {
            *p = json!({"announcement": p.clone()});
        }
    }
    d
}

/// docs/protocol.md#child-streams: the immediate child of `parent` on the way to `descendant`.
pub fn immediate_child(parent: &str, descendant: &str) -> Option<String> {
    let rest = if parent == "/" { descendant.strip_prefix('/')? } else { descendant.strip_prefix(parent)?.strip_prefix('/')? };
    let first = rest.split('/').next()?;
    if first.is_empty() {
        return None;
    }
    Some(if parent == "/" { format!("/{first}") } else { format!("{parent}/{first}") })
}

struct Payload<'a>(Option<&'a Value>);

impl<'a> Payload<'a> {
    fn get(&self, k: &str) -> Option<&'a Value> {
        self.0?.get(k)
    }
    fn trimmed(&self, k: &str) -> Option<String> {
        Some(self.get(k)?.as_str()?.trim().to_owned())
    }
}

fn num(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() <= MAX_SAFE {
        json!(x as i64)
    } else {
        json!(x)
    }
}

// ------------------------------------------------------------------ time (ISO 8601, UTC)

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DDTHH:MM:SS.sssZ`, the only form the stream writes.
pub fn parse_iso_ms(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    if b.len() != 24 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' || b[19] != b'.' || b[23] != b'Z' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let days = days_from_civil(n(0..4)?, n(5..7)?, n(8..10)?);
    Some((((days * 24 + n(11..13)?) * 60 + n(14..16)?) * 60 + n(17..19)?) as f64 * 1000.0 + n(20..23)? as f64)
}

pub fn iso_from_ms(ms: f64) -> String {
    let ms = ms as i64;
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

// ------------------------------------------------------------------ appends

/// Who appends: callers may not write the stream's reserved types (docs/protocol.md#reserved-types-and-keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    Caller,
    Stream,
}

/// What an append does: the committed (or existing) event of each input slot and the breaker's
/// `S/paused`, if the batch trips it; or every error code a documented rule gives for the batch
/// (the core may report any one of them: the docs do not order independent failures).
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Committed { results: Vec<Value>, trip: Option<Value> },
    Refused(BTreeSet<&'static str>),
}

/// One stream: its log and its state.
#[derive(Debug, Clone, Default)]
pub struct Stream {
    pub state: State,
    pub log: Vec<Value>,
    by_key: HashMap<String, usize>,
    /// Retention's extension point: the first kept offset (1 while nothing is trimmed).
    pub first_offset: u64,
}

const RESERVED_TYPES: [&str; 4] = ["created", "woken", "subscriber-connected", "subscriber-disconnected"];
const GATE_PASSES: [&str; 5] = ["resumed", "error-occurred", "woken", "subscriber-connected", "subscriber-disconnected"];
const RESERVED_KEY_PREFIXES: [&str; 2] = ["stream-paused:", "child-stream-created:"];

impl Stream {
    pub fn new() -> Self {
        Stream { first_offset: 1, ..Stream::default() }
    }

    /// A stream whose log is `events` (each folded in order).
    pub fn from_log(events: &[Value]) -> Result<Self, String> {
        let mut s = Stream::new();
        for (i, e) in events.iter().enumerate() {
            s.commit(e.clone()).map_err(|err| format!("event {i} (offset {:?}): {err}", e.get("offset")))?;
        }
        Ok(s)
    }

    /// Like `from_log`, and also checks the breaker's trips (docs/protocol.md#trip): `live_batches`
    /// lists the `[first, last]` offsets of each batch a caller's append committed. After each, when
    /// the stream is running and one of its events left the bucket below zero, the next event must be
    /// `S/paused {reason: TRIP_REASON}` keyed `stream-paused:<first such offset>`; and every event
    /// keyed `stream-paused:…` must be such a trip.
    pub fn from_log_with_trips(events: &[Value], live_batches: &[(u64, u64)]) -> Result<Self, String> {
        let mut s = Stream::new();
        let mut due: Option<(u64, u64)> = None; // (offset the trip must land at, first deficit)
        let mut first_deficit: Option<u64> = None;
        for e in events {
            let offset = e.get("offset").and_then(Value::as_u64).unwrap_or(0);
            let key = e.get("idempotencyKey").and_then(Value::as_str);
            if let Some((at, deficit)) = due.take() {
                let want = format!("stream-paused:{deficit}");
                let is_trip = e.get("type").and_then(Value::as_str) == Some(&sys("paused")) && key == Some(want.as_str())
                    && e.pointer("/payload/reason").and_then(Value::as_str) == Some(TRIP_REASON);
                if offset != at || !is_trip {
                    return Err(format!("the breaker must trip at offset {at} with key {want} (first event in deficit: {deficit}); found {e}"));
                }
            } else if key.is_some_and(|k| k.starts_with("stream-paused:")) {
                return Err(format!("a breaker trip at offset {offset} that no live batch called for: {e}"));
            }
            s.commit(e.clone()).map_err(|err| format!("offset {offset}: {err}"))?;
            if let Some(&(first, last)) = live_batches.iter().find(|(first, last)| (*first..=*last).contains(&offset)) {
                if offset == first {
                    first_deficit = None;
                }
                if s.state.tokens < 0.0 && first_deficit.is_none() {
                    first_deficit = Some(offset);
                }
                if offset == last {
                    if let (Some(deficit), false) = (first_deficit.take(), s.state.paused) {
                        due = Some((last + 1, deficit));
                    }
                }
            }
        }
        if let Some((at, deficit)) = due {
            return Err(format!("the breaker must trip at offset {at} with key stream-paused:{deficit}, but the log ends"));
        }
        Ok(s)
    }

    fn commit(&mut self, event: Value) -> Result<(), String> {
        self.state.fold(&event)?;
        if let Some(k) = event.get("idempotencyKey").and_then(Value::as_str) {
            self.by_key.insert(k.to_owned(), self.log.len());
        }
        self.log.push(event);
        Ok(())
    }

    /// The stored event with this key.
    pub fn by_key(&self, key: &str) -> Option<&Value> {
        self.by_key.get(key).map(|&i| &self.log[i])
    }

    /// Plans `inputs` appended at `now_ms` and, when accepted, commits them (and the breaker's trip,
    /// which the stream appends right after a live batch, docs/protocol.md#trip).
    pub fn append(&mut self, inputs: &[Value], now_ms: f64, writer: Writer, allowed_bindings: &[&str]) -> Outcome {
        let mut codes = BTreeSet::new();
        if inputs.len() > MAX_BATCH_EVENTS {
            codes.insert("batch_too_large");
        }
        let batch_bytes = 2 + inputs.len().saturating_sub(1) + inputs.iter().map(json_len).sum::<usize>();
        if batch_bytes > MAX_BATCH_BYTES {
            codes.insert("batch_too_large");
        }
        let mut working = self.clone();
        let mut results = Vec::new();
        let mut first_deficit: Option<u64> = None;
        let created_at = iso_from_ms(now_ms);
        for input in inputs {
            let parsed = match check_envelope(input, writer) {
                Ok(p) => p,
                Err(code) => {
                    codes.insert(code);
                    continue;
                }
            };
            let suffix = parsed.event_type.strip_prefix(S);
            if writer == Writer::Caller && suffix.is_some_and(|x| RESERVED_TYPES.contains(&x)) {
                codes.insert("invalid_event");
                continue;
            }
            if let Some(key) = &parsed.key {
                if let Some(existing) = working.by_key(key) {
                    let existing_offset = existing["offset"].as_u64().unwrap_or(0);
                    if parsed.offset.is_some_and(|o| o != existing_offset as f64) {
                        codes.insert("idempotency_conflict");
                    }
                    results.push(existing.clone());
                    continue;
                }
            }
            if working.state.paused && !suffix.is_some_and(|x| GATE_PASSES.contains(&x)) {
                codes.insert("stream_paused");
            }
            let offset = working.state.max_offset + 1;
            if parsed.offset.is_some_and(|o| o != offset as f64) {
                codes.insert("offset_mismatch");
            }
            if let Err(code) = check_payload(&parsed.event_type, input.get("payload"), allowed_bindings) {
                codes.insert(code);
                // Carry on with the other inputs without folding this one.
                results.push(Value::Null);
                continue;
            }
            let mut committed = Map::new();
            for k in ["type", "payload", "metadata", "source"] {
                if let Some(v) = input.get(k) {
                    committed.insert(k.into(), v.clone());
                }
            }
            if let Some(k) = &parsed.key {
                committed.insert("idempotencyKey".into(), json!(k));
            }
            committed.insert("offset".into(), json!(offset));
            committed.insert("createdAt".into(), json!(created_at));
            let committed = Value::Object(committed);
            if json_len(&committed) > MAX_EVENT_BYTES {
                codes.insert("event_too_large");
            }
            if let Err(e) = working.commit(committed.clone()) {
                panic!("the model refused its own event: {e}: {committed}");
            }
            if working.state.tokens < 0.0 && first_deficit.is_none() {
                first_deficit = Some(offset);
            }
            results.push(committed);
        }
        if !codes.is_empty() {
            return Outcome::Refused(codes);
        }
        let mut trip = None;
        if let (Some(at), false) = (first_deficit, working.state.paused) {
            let paused = json!({"type": sys("paused"), "payload": {"reason": TRIP_REASON}, "idempotencyKey": format!("stream-paused:{at}")});
            match working.append(&[paused], now_ms, Writer::Stream, allowed_bindings) {
                Outcome::Committed { results, .. } => trip = results.into_iter().next(),
                Outcome::Refused(c) => panic!("the breaker's own pause was refused: {c:?}"),
            }
        }
        *self = working;
        Outcome::Committed { results, trip }
    }
}

struct Input {
    event_type: String,
    key: Option<String>,
    offset: Option<f64>,
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// docs/protocol.md#append-input and #reserved-types-and-keys.
fn check_envelope(input: &Value, writer: Writer) -> Result<Input, &'static str> {
    const BAD: &str = "invalid_event";
    let o = input.as_object().ok_or(BAD)?;
    if o.keys().any(|k| !["type", "payload", "metadata", "source", "idempotencyKey", "offset"].contains(&k.as_str())) {
        return Err(BAD);
    }
    if o.values().any(|v| depth(v) > MAX_DEPTH) {
        return Err(BAD);
    }
    let event_type = o.get("type").and_then(Value::as_str).ok_or(BAD)?;
    if event_type.is_empty() || event_type.len() > MAX_TYPE_BYTES {
        return Err(BAD);
    }
    if o.get("metadata").is_some_and(|m| !m.is_object()) {
        return Err(BAD);
    }
    if let Some(source) = o.get("source") {
        let source = source.as_object().ok_or(BAD)?;
        if source.keys().any(|k| k != "processor") {
            return Err(BAD);
        }
        if let Some(p) = source.get("processor") {
            let p = p.as_object().ok_or(BAD)?;
            if p.len() != 2 || !p.get("slug").is_some_and(Value::is_string) || !p.get("version").is_some_and(Value::is_string) {
                return Err(BAD);
            }
        }
    }
    let key = match o.get("idempotencyKey") {
        None => None,
        Some(k) => {
            let k = k.as_str().ok_or(BAD)?.trim();
            let reserved = writer == Writer::Caller && RESERVED_KEY_PREFIXES.iter().any(|p| k.starts_with(p));
            if k.is_empty() || k.len() > MAX_KEY_BYTES || reserved {
                return Err(BAD);
            }
            Some(k.to_owned())
        }
    };
    let offset = match o.get("offset") {
        None => None,
        Some(v) => {
            let x = v.as_f64().ok_or(BAD)?;
            if !(0.0..=MAX_SAFE).contains(&x) || x.fract() != 0.0 {
                return Err(BAD);
            }
            Some(x)
        }
    };
    Ok(Input { event_type: event_type.to_owned(), key, offset })
}

fn non_empty(v: Option<&Value>) -> bool {
    v.and_then(Value::as_str).is_some_and(|s| !s.trim().is_empty())
}

fn positive_integer(v: Option<&Value>) -> bool {
    v.and_then(Value::as_f64).is_some_and(|x| x > 0.0 && x.fract() == 0.0 && x.is_finite())
}

/// docs/protocol.md#system-events: the payload of each system type.
fn check_payload(event_type: &str, payload: Option<&Value>, allowed: &[&str]) -> Result<(), &'static str> {
    const BAD: &str = "invalid_event";
    let Some(suffix) = event_type.strip_prefix(S) else { return Ok(()) };
    let object = || payload.and_then(Value::as_object).ok_or(BAD);
    let optional_str = |p: &Map<String, Value>, k: &str| p.get(k).is_none() || non_empty(p.get(k));
    match suffix {
        "created" => {
            let p = object()?;
            if !non_empty(p.get("namespace")) || !non_empty(p.get("path")) || !optional_str(p, "streamId") {
                return Err(BAD);
            }
        }
        "woken" => {
            if !non_empty(object()?.get("incarnationId")) {
                return Err(BAD);
            }
        }
        "configured" => {
            let config = object()?.get("config").and_then(Value::as_object).ok_or(BAD)?;
            if let Some(ms) = config.get("simulatedStorageSyncDelayMs") {
                if !ms.as_f64().is_some_and(|x| x >= 0.0 && x.fract() == 0.0 && x <= MAX_SAFE) {
                    return Err(BAD);
                }
            }
            if let Some(cb) = config.get("circuitBreaker") {
                let cb = cb.as_object().ok_or(BAD)?;
                if !positive_integer(cb.get("burstCapacity")) || !positive_integer(cb.get("refillRatePerMinute")) {
                    return Err(BAD);
                }
            }
            if let Some(retention) = config.get("retention") {
                let retention = retention.as_object().ok_or(BAD)?;
                let known = retention.keys().all(|k| k == "maxEvents" || k == "maxAgeSeconds");
                let valid = |k: &str| retention.get(k).is_none_or(|v| positive_integer(Some(v)) && v.as_f64().is_some_and(|x| x <= MAX_SAFE));
                if !known || !valid("maxEvents") || !valid("maxAgeSeconds") {
                    return Err(BAD);
                }
            }
        }
        "metadata-updated" => {
            object()?.get("metadata").and_then(Value::as_object).ok_or(BAD)?;
        }
        "child-stream-created" => {
            if !non_empty(object()?.get("childPath")) {
                return Err(BAD);
            }
        }
        "subscription-configured" => {
            let p = object()?;
            subscription_key(p)?;
            check_subscriber(p.get("subscriber").ok_or(BAD)?, allowed)?;
        }
        "subscription-removed" => subscription_key(object()?)?,
        "subscriber-connected" => {
            let p = object()?;
            subscription_key(p)?;
            if !matches!(p.get("direction").and_then(Value::as_str), Some("inbound" | "outbound")) {
                return Err(BAD);
            }
            if let Some(d) = p.get("subscriber") {
                check_descriptor(d).ok_or(BAD)?;
            }
        }
        "subscriber-disconnected" => {
            let p = object()?;
            subscription_key(p)?;
            let reasons = ["replaced", "unsubscribed", "rpc-broken", "delivery-failed", "subscription-removed", "idle", "token-expired", "reconfigured"];
            if !p.get("reason").and_then(Value::as_str).is_some_and(|r| reasons.contains(&r)) {
                return Err(BAD);
            }
        }
        "error-occurred" => {
            let p = object()?;
            if !non_empty(p.get("message")) {
                return Err(BAD);
            }
            if let Some(e) = p.get("error") {
                let e = e.as_object().ok_or(BAD)?;
                if !non_empty(e.get("message")) || !["name", "code", "stack"].iter().all(|k| optional_str(e, k)) {
                    return Err(BAD);
                }
            }
        }
        "paused" | "resumed" => {
            if !optional_str(object()?, "reason") {
                return Err(BAD);
            }
        }
        _ => {}
    }
    Ok(())
}

fn subscription_key(p: &Map<String, Value>) -> Result<(), &'static str> {
    let k = p.get("subscriptionKey").and_then(Value::as_str).ok_or("invalid_event")?.trim();
    if k.is_empty() || k.len() > MAX_SUBSCRIPTION_KEY_BYTES {
        return Err("invalid_event");
    }
    Ok(())
}

fn only_keys(o: &Map<String, Value>, allowed: &[&str]) -> bool {
    o.keys().all(|k| allowed.contains(&k.as_str()))
}

/// docs/protocol.md#outbound-subscribers: the subscriber's shape, then the binding allowlist.
fn check_subscriber(s: &Value, allowed: &[&str]) -> Result<(), &'static str> {
    const BAD: &str = "invalid_event";
    let s = s.as_object().ok_or(BAD)?;
    if !only_keys(s, &["type", "callable"]) || s.get("type") != Some(&json!("callable")) {
        return Err(BAD);
    }
    let c = s.get("callable").and_then(Value::as_object).ok_or(BAD)?;
    if !only_keys(c, &["type", "via", "rpcMethod", "argsMode", "transformInput"]) || c.get("type") != Some(&json!("workers-rpc")) {
        return Err(BAD);
    }
    let via = c.get("via").and_then(Value::as_object).ok_or(BAD)?;
    if !only_keys(via, &["type", "bindingType", "bindingName", "durableObject"]) || via.get("type") != Some(&json!("env-binding")) {
        return Err(BAD);
    }
    let binding = via.get("bindingName").and_then(Value::as_str).filter(|b| !b.trim().is_empty()).ok_or(BAD)?;
    match (via.get("bindingType").and_then(Value::as_str), via.get("durableObject")) {
        (Some("durable-object-namespace"), Some(d)) => {
            let d = d.as_object().ok_or(BAD)?;
            if !only_keys(d, &["name"]) || !non_empty(d.get("name")) {
                return Err(BAD);
            }
        }
        (Some("service"), None) => {}
        _ => return Err(BAD),
    }
    if let Some(m) = c.get("rpcMethod") {
        let m = m.as_str().ok_or(BAD)?;
        let mut chars = m.chars();
        let ident = chars.next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == '$')
            && chars.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == '$');
        if !ident || m == "constructor" {
            return Err(BAD);
        }
    }
    if c.get("argsMode").is_some_and(|m| m != "object") {
        return Err(BAD);
    }
    if let Some(t) = c.get("transformInput") {
        let t = t.as_object().ok_or(BAD)?;
        if !only_keys(t, &["shallowMerge"]) || !t.get("shallowMerge").is_some_and(Value::is_object) {
            return Err(BAD);
        }
        // The keys the stream sends itself cannot be replaced (docs/protocol.md#outbound-subscribers).
        const STREAM_SETS: [&str; 12] = [
            "namespace", "path", "subscriptionKey", "connectionId", "streamId", "streamMaxOffset",
            "subscriptionConfiguredEvent", "streamRuntimeState", "afterOffset", "throughOffset", "events", "state",
        ];
        if t.get("shallowMerge").and_then(Value::as_object).is_some_and(|m| m.keys().any(|k| STREAM_SETS.contains(&k.as_str()))) {
            return Err(BAD);
        }
    }
    if binding == "STREAM" || !allowed.contains(&binding) {
        return Err("subscriber_not_allowed");
    }
    Ok(())
}

/// docs/protocol.md#system-events: a subscriber descriptor and its processor announcement.
fn check_descriptor(d: &Value) -> Option<()> {
    let d = d.as_object()?;
    if d.get("incarnationId").is_some() && !non_empty(d.get("incarnationId")) {
        return None;
    }
    if d.get("description").is_some_and(|x| !x.is_string()) {
        return None;
    }
    if let Some(p) = d.get("processor") {
        let p = p.as_object()?;
        let a = if p.contains_key("slug") { p } else { p.get("announcement")?.as_object()? };
        if !non_empty(a.get("slug")) || !non_empty(a.get("version")) {
            return None;
        }
    }
    Some(())
}

fn json_len(v: &Value) -> usize {
    serde_json::to_string(v).map(|s| s.len()).unwrap_or(0)
}

// ------------------------------------------------------------------ comparing

/// The first difference between the model's value and the stream's, with its JSON path: key order
/// matters (the wire order is documented), numbers compare as doubles, and the breaker's token
/// count may differ by a few ULPs (a float sum in another order).
pub fn diff(expected: &Value, actual: &Value, at: &str) -> Option<String> {
    match (expected, actual) {
        (Value::Number(a), Value::Number(b)) => {
            let (x, y) = (a.as_f64()?, b.as_f64()?);
            let close = at.ends_with("availableTokens") && (x - y).abs() <= 1e-9 * x.abs().max(1.0);
            (x != y && !close).then(|| format!("{at}: expected {x}, got {y}"))
        }
        (Value::Object(a), Value::Object(b)) => {
            let (ka, kb): (Vec<_>, Vec<_>) = (a.keys().collect(), b.keys().collect());
            if ka != kb {
                return Some(format!("{at}: expected keys {ka:?}, got {kb:?}"));
            }
            a.iter().find_map(|(k, v)| diff(v, &b[k], &format!("{at}.{k}")))
        }
        (Value::Array(a), Value::Array(b)) => {
            if a.len() != b.len() {
                return Some(format!("{at}: expected {expected}, got {actual}"));
            }
            a.iter().zip(b).enumerate().find_map(|(i, (x, y))| diff(x, y, &format!("{at}[{i}]")))
        }
        _ => (expected != actual).then(|| format!("{at}: expected {expected}, got {actual}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/protocol.md#worked-example-the-bucket-under-a-steady-flood, step by step.
    #[test]
    fn the_steady_flood_example() {
        let mut s = State { burst: 1.0, rate_per_minute: 1.0, ..State::default() };
        s.refill(1000.0);
        let want = [0.0, -0.983_333_333_333_333_3, -1.966_666_666_666_666_7, -2.95, -3.933_333_333_333_333];
        for (i, t) in [2000.0, 3000.0, 4000.0, 5000.0, 6000.0].into_iter().enumerate() {
            s.spend(t);
            assert!((s.tokens - want[i]).abs() < 1e-12, "t={t}: {}", s.tokens);
        }
        let mut back = State { tokens: 5.0, last_refill: Some(10_000.0), ..State::default() };
        back.spend(9000.0);
        assert_eq!((back.tokens, back.last_refill), (4.0, Some(9000.0)));
    }

    /// docs/protocol.md#worked-example-a-burst-trips-the-breaker.
    #[test]
    fn the_burst_example_trips_at_the_first_deficit() {
        let t0 = 1_767_607_200_000.0;
        let mut s = Stream::new();
        let boot = [json!({"type": sys("created"), "payload": {"namespace": "t", "path": "/a", "streamId": "s"}}), json!({"type": sys("woken"), "payload": {"incarnationId": "i"}})];
        assert!(matches!(s.append(&boot, t0, Writer::Stream, &[]), Outcome::Committed { trip: None, .. }));
        let cfg = json!({"type": sys("configured"), "payload": {"config": {"circuitBreaker": {"burstCapacity": 1, "refillRatePerMinute": 1}}}});
        s.append(&[cfg], t0 + 1.0, Writer::Caller, &[]);
        let widgets = vec![json!({"type": "app/widget"}); 3];
        let Outcome::Committed { trip: Some(trip), .. } = s.append(&widgets, t0 + 2.0, Writer::Caller, &[]) else { panic!("no trip") };
        assert_eq!((trip["offset"].as_u64(), trip["idempotencyKey"].as_str()), (Some(7), Some("stream-paused:5")));
        assert_eq!(s.append(&[json!({"type": "app/widget"})], t0 + 3.0, Writer::Caller, &[]), Outcome::Refused(["stream_paused"].into()));
        let resumed = json!({"type": sys("resumed"), "payload": {}});
        assert!(matches!(s.append(&[resumed], t0 + 4.0, Writer::Caller, &[]), Outcome::Committed { .. }));
        assert!(!s.state.paused);
    }

    #[test]
    fn immediate_children() {
        assert_eq!(immediate_child("/a", "/a/b/c").as_deref(), Some("/a/b"));
        assert_eq!(immediate_child("/", "/x/y").as_deref(), Some("/x"));
        assert_eq!(immediate_child("/a", "/ab/c"), None);
        assert_eq!(immediate_child("/a", "/a"), None);
    }

    #[test]
    fn iso_round_trips() {
        for ms in [0.0, 1_767_607_200_123.0, 951_782_400_000.0, -86_400_001.0] {
            assert_eq!(parse_iso_ms(&iso_from_ms(ms)), Some(ms));
        }
        assert_eq!(iso_from_ms(1_767_607_200_123.0), "2026-01-05T10:00:00.123Z");
    }
}
