//! Outbound subscriptions as a state machine without I/O
//! (docs/protocol.md#outbound-subscribers), in
//! the style of a sans-IO protocol codec: the platform feeds in what
//! happened (a commit, the alarm, a dial's or a delivery's outcome) with the
//! time, and gets back the effects to execute (`Effect`). No clock, no
//! randomness and no platform call happen in here; the store is read only
//! to pick the next batch.
//!
//! The machine owns every connection's cursor, the one-delivery-in-flight
//! rule, the back-off rows (mirrored: the platform persists `SaveRedial`),
//! the idle deadline and the alarm. Inputs that may pick a batch take the
//! state with its JSON (`Snapshot`), which every batch of a commit shares.
//! Each dial gets a fresh `Tag`; a result
//! carrying a tag that is no longer the key's current one is ignored, so a
//! late answer from a superseded connection cannot touch the new one.

use std::collections::BTreeMap;
use std::rc::Rc;

use serde_json::{json, Map, Value};

use super::event::{types, EventInput};
use super::payload::DisconnectReason;
use super::state::{CoreState, Direction, StateJson};
use super::store::EventStore;
use super::subscriber::parse_descriptor;
use super::subscription::{next_batch, Batch, DialReply, Failure, PumpCursor, Redial};
use super::tiers::ensure_kept;
use super::time::iso_from_ms;

/// Identifies one dial of one key (and the connection it opens).
pub type Tag = u64;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    pub redial_base_ms: f64,
    pub redial_max_ms: f64,
    pub idle_teardown_ms: f64,
}

/// What the platform must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Dial `key`'s subscriber; answer with `on_dial_result(key, tag, …)`.
    Dial { key: String, tag: Tag },
    /// Close whatever inbound socket holds `key`: an outbound connection takes it.
    ReplaceInbound { key: String },
    /// Call `processEventBatch` on the connection `tag` with `batch` and the
    /// state JSON it was read with; answer with `on_delivery_result`.
    Deliver { key: String, tag: Tag, batch: Batch, state_json: Rc<str> },
    /// The connection `tag` is over: drop its platform side.
    Forget { tag: Tag },
    /// Append this presence fact (best effort).
    Append(EventInput),
    /// Write `redial:<key>` (`None`: delete it).
    SaveRedial { key: String, redial: Option<Redial> },
    /// Write the idle deadline (`None`: delete it).
    SaveIdleDeadline(Option<f64>),
    SetAlarm(f64),
    DeleteAlarm,
    /// A batch needs archived events fetched first; call `pump_now` once they are.
    FetchArchived,
    /// Log a warning.
    Log(String),
}

/// The state a commit produced, with its JSON when something needs it.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot<'a> {
    pub state: &'a CoreState,
    pub json: &'a StateJson,
}

/// What a dial came to.
#[derive(Debug, Clone, PartialEq)]
pub enum DialOutcome {
    /// The subscription cannot be dialed as configured (binding missing or
    /// not allowed, …): no back-off, no alarm; the next trigger tries again.
    Misconfigured(String),
    /// The call failed or its reply was malformed (`<code>: <message>`, see
    /// `Failure::from_text`): back-off.
    Failed(String),
    /// The subscriber answered; `configured_offset` is the configuration the dial used.
    Replied { reply: DialReply, configured_offset: u64 },
}

/// What a commit held, as far as subscriptions care.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommitSummary {
    pub woken: bool,
    /// Keys of `S/subscription-configured` facts, in order.
    pub configured: Vec<String>,
    pub removed: bool,
    /// Any event that is not a system event.
    pub domain: bool,
}

impl CommitSummary {
    pub fn of<'a>(events: impl IntoIterator<Item = (&'a str, Option<&'a Map<String, Value>>)>) -> Self {
        let mut summary = Self::default();
        for (event_type, payload) in events {
            match event_type {
                types::WOKEN => summary.woken = true,
                types::SUBSCRIPTION_CONFIGURED => {
                    if let Some(key) = payload.and_then(|p| p.get("subscriptionKey")).and_then(Value::as_str) {
                        summary.configured.push(key.trim().to_owned());
                    }
                }
                types::SUBSCRIPTION_REMOVED => summary.removed = true,
                t if !types::is_system(t) => summary.domain = true,
                _ => {}
            }
        }
        summary
    }
}

/// A live outbound connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    pub tag: Tag,
    pub pump: PumpCursor,
    /// The number of events of the batch in flight, if one is.
    in_flight: Option<usize>,
    delivered_since_dial: bool,
    pub started_at_ms: f64,
    pub batches_sent: u64,
    pub events_sent: u64,
    pub last_delivered_at_ms: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
enum Link {
    #[default]
    Idle,
    Dialing(Tag),
    Connected(Box<Connection>),
}

#[derive(Debug, Clone, Default, PartialEq)]
struct KeyState {
    redial: Option<Redial>,
    /// The last dial stopped at the configuration: nothing is armed for it.
    misconfigured: bool,
    link: Link,
}

#[derive(Debug, Clone)]
pub struct Outbound {
    timing: Timing,
    keys: BTreeMap<String, KeyState>,
    last_tag: Tag,
    idle_deadline: Option<f64>,
    alarm_at: Option<f64>,
    out: Vec<Effect>,
}

impl Outbound {
    /// A fresh incarnation's machine, from the persisted back-off rows and idle deadline.
    pub fn new(timing: Timing, redials: Vec<(String, Redial)>, idle_deadline: Option<f64>) -> Self {
        let keys = redials.into_iter().map(|(key, r)| (key, KeyState { redial: Some(r), ..KeyState::default() })).collect();
        Self { timing, keys, last_tag: 0, idle_deadline, alarm_at: None, out: Vec::new() }
    }

    // ---- inputs ----

    /// After every commit; `state` is the state it produced.
    pub fn on_commit<S: EventStore + ?Sized>(&mut self, at: Snapshot<'_>, commit: &CommitSummary, now: f64, store: &S) -> Vec<Effect> {
        let state = at.state;
        for key in &commit.configured {
            // A live connection was dialed with the old configuration: it ends before anything of
            // this commit is pumped to it, and the reconcile below dials the new target.
            self.close(key, DisconnectReason::Reconfigured);
            self.clear_redial(key, now);
        }
        if (commit.woken && !self.idle_deadline_passed(now)) || !commit.configured.is_empty() || commit.removed {
            self.reconcile(state, now);
        }
        self.pump_all(at, now, store);
        if commit.domain && self.has_undialed(state, now) {
            self.reconcile(state, now);
        }
        self.refresh_idle_deadline(now);
        self.take()
    }

    pub fn on_dial_result<S: EventStore + ?Sized>(&mut self, key: &str, tag: Tag, outcome: DialOutcome, at: Snapshot<'_>, now: f64, store: &S) -> Vec<Effect> {
        let state = at.state;
        let Some(entry) = self.keys.get_mut(key).filter(|k| k.link == Link::Dialing(tag)) else { return self.take() };
        entry.link = Link::Idle;
        if !matches!(outcome, DialOutcome::Replied { .. }) {
            self.out.push(Effect::Forget { tag });
        }
        match outcome {
            DialOutcome::Misconfigured(why) => {
                entry.misconfigured = true;
                self.out.push(Effect::Log(format!("subscription {key}: {why}")));
                self.rearm(now);
            }
            DialOutcome::Failed(why) => {
                entry.misconfigured = false;
                self.failure(key, "dial failed", Failure::from_text(&why), now);
            }
            DialOutcome::Replied { reply, configured_offset } => {
                entry.misconfigured = false;
                if state.subscriptions_by_key.get(key).map(|e| e.latest_configured_event.offset) != Some(configured_offset) {
                    // Reconfigured or removed meanwhile: start over from the current state.
                    self.out.push(Effect::Forget { tag });
                    self.reconcile(state, now);
                    return self.take();
                }
                let start = reply.replay_after_offset.unwrap_or(state.max_offset);
                if let Err(refusal) = ensure_kept(start + 1, store.first_offset()) {
                    // The checkpoint was removed by retention: no connection, and no re-dial.
                    self.out.push(Effect::Forget { tag });
                    self.failure(key, "dial refused", refusal.into(), now);
                    return self.take();
                }
                self.out.push(Effect::ReplaceInbound { key: key.to_owned() });
                entry.link = Link::Connected(Box::new(Connection {
                    tag,
                    pump: PumpCursor::starting_at(start, true, reply.filter),
                    in_flight: None,
                    delivered_since_dial: false,
                    started_at_ms: now,
                    batches_sent: 0,
                    events_sent: 0,
                    last_delivered_at_ms: None,
                }));
                let mut payload = json!({"subscriptionKey": key, "direction": Direction::Outbound.as_str()});
                if let Some(descriptor) = reply.subscriber {
                    match parse_descriptor(&descriptor) {
                        Ok(descriptor) => payload["subscriber"] = descriptor,
                        Err(why) => self.out.push(Effect::Log(format!("{key}: dropping the subscriber descriptor: payload.subscriber{why}"))),
                    }
                }
                self.out.push(Effect::Append(EventInput::system(types::SUBSCRIBER_CONNECTED, payload)));
                self.pump(key, at, now, store);
            }
        }
        self.take()
    }

    /// A delivery's outcome. `Err` (`<code>: <message>`) covers every way it can fail,
    /// including arguments that could not be built: the connection ends and re-dials.
    pub fn on_delivery_result<S: EventStore + ?Sized>(&mut self, key: &str, tag: Tag, result: Result<(), String>, at: Snapshot<'_>, now: f64, store: &S) -> Vec<Effect> {
        let Some(c) = self.connection_mut(key).filter(|c| c.tag == tag && c.in_flight.is_some()) else { return self.take() };
        match result {
            Ok(()) => {
                c.batches_sent += 1;
                c.events_sent += c.in_flight.take().unwrap_or(0) as u64;
                c.last_delivered_at_ms = Some(now);
                let first = !std::mem::replace(&mut c.delivered_since_dial, true);
                if first && self.keys.get(key).is_some_and(|k| k.redial.is_some()) {
                    self.clear_redial(key, now);
                }
                self.pump(key, at, now, store);
            }
            Err(why) => {
                self.close(key, DisconnectReason::DeliveryFailed);
                self.failure(key, "delivery failed", Failure::from_text(&why), now);
            }
        }
        self.take()
    }

    pub fn on_alarm(&mut self, state: &CoreState, now: f64) -> Vec<Effect> {
        self.alarm_at = None;
        if self.has_live() && self.idle_deadline_passed(now) {
            self.teardown(now);
        }
        let due: Vec<String> = self
            .keys
            .iter()
            .filter(|(key, k)| {
                k.redial.as_ref().is_some_and(|r| r.due(now)) && !k.misconfigured && state.subscriptions_by_key.contains_key(*key)
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in due {
            if self.dialable(&key, now) {
                self.dial(&key);
            }
        }
        self.rearm(now);
        self.take()
    }

    /// When the machine wants the alarm (the platform may set it earlier for its own reasons).
    pub fn alarm_at(&self) -> Option<f64> {
        self.alarm_at
    }

    /// Closes every outbound connection as `idle` (the alarm, or the test hook).
    pub fn idle_teardown(&mut self, now: f64) -> Vec<Effect> {
        self.teardown(now);
        self.take()
    }

    /// A disconnect decided outside (the stream is being replaced): the
    /// connection of `key` ends with `reason`.
    pub fn close_key(&mut self, key: &str, reason: DisconnectReason) -> Vec<Effect> {
        self.close(key, reason);
        self.take()
    }

    // ---- reports ----

    pub fn connections(&self) -> impl Iterator<Item = (&str, &Connection)> {
        self.keys.iter().filter_map(|(key, k)| match &k.link {
            Link::Connected(c) => Some((key.as_str(), &**c)),
            _ => None,
        })
    }

    /// Keys whose dial, and keys whose delivery, is in flight (the `pendingWork` test hook).
    pub fn calls_in_flight(&self) -> (Vec<&str>, Vec<&str>) {
        let dialing = self.keys.iter().filter(|(_, k)| matches!(k.link, Link::Dialing(_))).map(|(key, _)| key.as_str()).collect();
        let delivering = self.connections().filter(|(_, c)| c.in_flight.is_some()).map(|(key, _)| key).collect();
        (dialing, delivering)
    }

    /// How many dials this incarnation has started.
    pub fn dials_started(&self) -> Tag {
        self.last_tag
    }

    /// Keys waiting on back-off: `(key, failures, retry time, last failure)`.
    pub fn redials(&self) -> impl Iterator<Item = (&str, &Redial)> {
        self.keys.iter().filter_map(|(key, k)| Some((key.as_str(), k.redial.as_ref()?))).filter(|(_, r)| r.failures > 0)
    }

    /// `runtimeState().runtime.redial`: per key `{failures, retryAt, lastError?: {code, message}}`;
    /// a stopped key has `retryAt: null` and `stopped: true`.
    pub fn redial_reports(&self) -> Map<String, Value> {
        self.redials()
            .map(|(key, r)| {
                let retry_at = if r.stopped { None } else { iso_from_ms(r.retry_at_ms) };
                let mut entry = json!({"failures": r.failures, "retryAt": retry_at});
                if r.stopped {
                    entry["stopped"] = Value::Bool(true);
                }
                if let Some(failure) = &r.last_error {
                    entry["lastError"] = json!({"code": failure.code, "message": failure.message});
                }
                (key.to_owned(), entry)
            })
            .collect()
    }

    /// The idle deadline, while a connection is live to tear down.
    pub fn pending_idle_teardown(&self) -> Option<f64> {
        self.idle_deadline.filter(|_| self.has_live())
    }

    pub fn idle_deadline_passed(&self, now: f64) -> bool {
        self.idle_deadline.is_some_and(|d| d <= now)
    }

    /// `runtime.connections` entries of the outbound connections.
    pub fn connection_reports(&self) -> Vec<(String, Value)> {
        self.connections()
            .map(|(key, c)| {
                let mut entry = json!({
                    "direction": "outbound",
                    "startedAt": iso_from_ms(c.started_at_ms),
                    "cursor": c.pump.cursor,
                    "batchesSent": c.batches_sent,
                    "eventsSent": c.events_sent,
                });
                if let Some(at) = c.last_delivered_at_ms.and_then(iso_from_ms) {
                    entry["lastDeliveredAt"] = Value::String(at);
                }
                (key.to_owned(), entry)
            })
            .collect()
    }

    // ---- transitions ----

    fn take(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.out)
    }

    fn connection_mut(&mut self, key: &str) -> Option<&mut Connection> {
        match &mut self.keys.get_mut(key)?.link {
            Link::Connected(c) => Some(c),
            _ => None,
        }
    }

    fn has_live(&self) -> bool {
        self.connections().next().is_some()
    }

    /// No connection, no dial in flight, no back-off pending and not stopped.
    fn dialable(&self, key: &str, now: f64) -> bool {
        self.keys.get(key).is_none_or(|k| k.link == Link::Idle && k.redial.as_ref().is_none_or(|r| r.due(now)))
    }

    fn has_undialed(&self, state: &CoreState, now: f64) -> bool {
        state.subscriptions_by_key.keys().any(|key| self.dialable(key, now))
    }

    /// Closes connections whose subscription is gone, drops their rows, dials the rest.
    fn reconcile(&mut self, state: &CoreState, now: f64) {
        let gone: Vec<String> = self.keys.keys().filter(|k| !state.subscriptions_by_key.contains_key(*k)).cloned().collect();
        for key in gone {
            self.close(&key, DisconnectReason::SubscriptionRemoved);
            if let Some(entry) = self.keys.get(&key) {
                if entry.redial.is_some() {
                    self.out.push(Effect::SaveRedial { key: key.clone(), redial: None });
                }
                if !matches!(entry.link, Link::Dialing(_)) {
                    self.keys.remove(&key);
                }
            }
        }
        let keys: Vec<String> = state.subscriptions_by_key.keys().cloned().collect();
        for key in keys {
            if self.dialable(&key, now) {
                self.dial(&key);
            }
        }
    }

    fn dial(&mut self, key: &str) {
        self.last_tag += 1;
        let tag = self.last_tag;
        self.keys.entry(key.to_owned()).or_default().link = Link::Dialing(tag);
        self.out.push(Effect::Dial { key: key.to_owned(), tag });
    }

    fn close(&mut self, key: &str, reason: DisconnectReason) {
        let Some(entry) = self.keys.get_mut(key) else { return };
        let Link::Connected(c) = std::mem::take(&mut entry.link) else { return };
        self.out.push(Effect::Forget { tag: c.tag });
        self.out.push(Effect::Append(EventInput::system(
            types::SUBSCRIBER_DISCONNECTED,
            json!({"subscriptionKey": key, "reason": reason.as_str()}),
        )));
    }

    /// Hands out the next batch of every idle connection (after archived events were fetched).
    pub fn pump_now<S: EventStore + ?Sized>(&mut self, at: Snapshot<'_>, now: f64, store: &S) -> Vec<Effect> {
        self.pump_all(at, now, store);
        self.take()
    }

    fn pump_all<S: EventStore + ?Sized>(&mut self, at: Snapshot<'_>, now: f64, store: &S) {
        let keys: Vec<String> = self.connections().map(|(key, _)| key.to_owned()).collect();
        for key in keys {
            self.pump(&key, at, now, store);
        }
    }

    /// Hands out the next batch unless one is in flight; a read error ends the connection.
    fn pump<S: EventStore + ?Sized>(&mut self, key: &str, at: Snapshot<'_>, now: f64, store: &S) {
        let Some(c) = self.connection_mut(key).filter(|c| c.in_flight.is_none()) else { return };
        if let Err(refusal) = ensure_kept(c.pump.cursor + 1, store.first_offset()) {
            // Retention removed events this connection had not been handed yet.
            self.close(key, DisconnectReason::DeliveryFailed);
            self.failure(key, "reading the next batch", refusal.into(), now);
            return;
        }
        match next_batch(store, at.state, &mut c.pump) {
            Ok(Some(batch)) => {
                c.in_flight = Some(batch.events.len());
                let tag = c.tag;
                self.out.push(Effect::Deliver { key: key.to_owned(), tag, batch, state_json: at.json.of(at.state) });
            }
            Ok(None) => {}
            Err(err) if err.is_pending() => self.out.push(Effect::FetchArchived),
            Err(err) => {
                self.close(key, DisconnectReason::DeliveryFailed);
                self.failure(key, "reading the next batch", Failure { code: "internal".into(), message: err.to_string() }, now);
            }
        }
    }

    /// Records a failed dial or delivery, with its cause, and schedules the re-dial; a `trimmed`
    /// one stops the key until it is configured again (docs/protocol.md#retention).
    fn failure(&mut self, key: &str, what: &str, failure: Failure, now: f64) {
        let entry = self.keys.entry(key.to_owned()).or_default();
        let next = Redial::after_failure(entry.redial.as_ref(), failure.clone(), now, self.timing.redial_base_ms, self.timing.redial_max_ms);
        let stopped = if next.stopped { " (not dialled again until it is configured again)" } else { "" };
        self.out.push(Effect::Log(format!("subscription {key}: {what}: {failure}{stopped}")));
        entry.redial = Some(next.clone());
        self.out.push(Effect::SaveRedial { key: key.to_owned(), redial: Some(next) });
        self.rearm(now);
    }

    /// A new configuration, or a delivery after a re-dial, ends the back-off.
    fn clear_redial(&mut self, key: &str, now: f64) {
        if let Some(entry) = self.keys.get_mut(key) {
            entry.misconfigured = false;
            if entry.redial.take().is_some() {
                self.out.push(Effect::SaveRedial { key: key.to_owned(), redial: None });
            }
        }
        self.rearm(now);
    }

    fn teardown(&mut self, now: f64) {
        let keys: Vec<String> = self.connections().map(|(key, _)| key.to_owned()).collect();
        for key in &keys {
            self.close(key, DisconnectReason::Idle);
        }
        if !keys.is_empty() {
            self.set_idle_deadline(Some(now));
        }
    }

    fn set_idle_deadline(&mut self, deadline: Option<f64>) {
        self.idle_deadline = deadline;
        self.out.push(Effect::SaveIdleDeadline(deadline));
    }

    /// A live connection pushes the deadline out; with none, a future
    /// deadline is dropped. A passed one stays, marking the stream dormant
    /// until a domain append re-dials.
    fn refresh_idle_deadline(&mut self, now: f64) {
        if self.has_live() {
            self.set_idle_deadline(Some(now + self.timing.idle_teardown_ms));
            self.rearm(now);
        } else if self.idle_deadline.is_some_and(|d| d > now) {
            self.set_idle_deadline(None);
            self.rearm(now);
        }
    }

    /// Sets the alarm to the earliest timer, or deletes it when there is
    /// none. Timers: the idle deadline while a connection is live, and the
    /// retry time of each key waiting on back-off (idle, not misconfigured,
    /// within the alarmed failures). A later timer leaves a pending earlier
    /// alarm in place: it fires, finds nothing due, and re-arms.
    fn rearm(&mut self, now: f64) {
        let idle = if self.has_live() { self.idle_deadline } else { None };
        let waiting = self
            .keys
            .values()
            .filter(|k| k.link == Link::Idle && !k.misconfigured)
            .filter_map(|k| k.redial.as_ref().filter(|r| r.alarmed()).map(|r| r.retry_at_ms));
        let desired = idle.into_iter().chain(waiting).reduce(f64::min);
        let change = match (desired, self.alarm_at) {
            (None, None) => return,
            (Some(d), Some(c)) if d >= c && c > now => return,
            (d, _) => d,
        };
        self.alarm_at = change;
        self.out.push(match change {
            Some(at) => Effect::SetAlarm(at),
            None => Effect::DeleteAlarm,
        });
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::append::{plan_inputs, AppendContext, Origin};
    use crate::subscription::EventFilter;
    use crate::testing::MemStore;

    const TIMING: Timing = Timing { redial_base_ms: 200.0, redial_max_ms: 300_000.0, idle_teardown_ms: 60_000.0 };
    const KEYS: [&str; 2] = ["a", "b"];

    fn configured(key: &str) -> EventInput {
        EventInput::system(
            types::SUBSCRIPTION_CONFIGURED,
            json!({"subscriptionKey": key, "subscriber": {"type": "callable", "callable": {"type": "workers-rpc",
                "via": {"type": "env-binding", "bindingType": "service", "bindingName": "HOST"}}}}),
        )
    }

    /// What the subscriber of one key has seen.
    #[derive(Default, Debug)]
    struct Subscriber {
        /// The `throughOffset` of the last batch it took: what it replays after.
        checkpoint: u64,
        seen: BTreeSet<u64>,
        filter: Option<Vec<String>>,
    }

    /// One stream, its store, the machine and everything in flight.
    struct World {
        store: MemStore,
        state: CoreState,
        json: StateJson,
        machine: Outbound,
        now: f64,
        generation: u64,
        /// Pending dials: (generation, key, tag, configured offset).
        dials: Vec<(u64, String, Tag, u64)>,
        /// Pending deliveries: (generation, key, tag, batch).
        deliveries: Vec<(u64, String, Tag, Batch)>,
        alarm: Option<f64>,
        rows: BTreeMap<String, Redial>,
        idle_deadline: Option<f64>,
        subscribers: BTreeMap<String, Subscriber>,
        /// Per connection: the last `throughOffset` handed out, for the chain check.
        chains: BTreeMap<(u64, Tag), u64>,
        misconfigured: BTreeSet<String>,
        alarms_after_misconfiguration: usize,
        /// Every committed event as (offset, type), retention's removals included.
        log: Vec<(u64, String)>,
    }

    impl World {
        fn new() -> Self {
            let mut world = Self {
                store: MemStore::default(),
                state: CoreState::default(),
                json: StateJson::default(),
                machine: Outbound::new(TIMING, Vec::new(), None),
                now: 1_767_000_000_000.0,
                generation: 0,
                dials: Vec::new(),
                deliveries: Vec::new(),
                alarm: None,
                rows: BTreeMap::new(),
                idle_deadline: None,
                subscribers: BTreeMap::new(),
                chains: BTreeMap::new(),
                misconfigured: BTreeSet::new(),
                alarms_after_misconfiguration: 0,
                log: Vec::new(),
            };
            world.commit(vec![
                EventInput::system(types::CREATED, json!({"namespace": "t", "path": "/p", "streamId": "s"})),
                EventInput::system(types::WOKEN, json!({"incarnationId": "i0"})),
            ]);
            world
        }

        fn commit(&mut self, inputs: Vec<EventInput>) {
            let now = self.now;
            let ctx = AppendContext { now_ms: &|| now, allowed_bindings: &["HOST".to_owned()], origin: Origin::Stream };
            let plan = plan_inputs(&self.state, inputs, &self.store, &ctx).expect("valid inputs");
            self.store.commit_plan(&plan);
            self.log.extend(plan.events.iter().map(|p| (p.event.offset, p.event.event_type.clone())));
            self.state = plan.state.clone();
            self.json = StateJson::default();
            let summary = CommitSummary::of(plan.events.iter().map(|p| (p.event.event_type.as_str(), p.event.payload_object())));
            let effects = self.machine.on_commit(Snapshot { state: &self.state, json: &self.json }, &summary, self.now, &self.store);
            self.run(effects);
        }

        fn run(&mut self, effects: Vec<Effect>) {
            for effect in effects {
                match effect {
                    Effect::Dial { key, tag } => {
                        assert!(!self.rows.get(&key).is_some_and(|r| r.stopped), "{key} is stopped: no dial until it is configured again");
                        let offset = self.state.subscriptions_by_key[&key].latest_configured_event.offset;
                        self.dials.push((self.generation, key, tag, offset));
                    }
                    Effect::Deliver { key, tag, batch, state_json } => {
                        assert_eq!(CoreState::from_json(&state_json).unwrap().max_offset, batch.stream_max_offset, "the batch's state");
                        // A superseded connection's call may still be running; the current one has at most one.
                        let in_flight = self.deliveries.iter().filter(|d| d.0 == self.generation && d.2 == tag).count();
                        assert_eq!(in_flight, 0, "a second delivery in flight for {key}");
                        if let Some(last) = self.chains.get(&(self.generation, tag)) {
                            assert_eq!(batch.after_offset, *last, "batches of one connection chain");
                        }
                        self.chains.insert((self.generation, tag), batch.through_offset);
                        self.deliveries.push((self.generation, key, tag, batch));
                    }
                    Effect::Append(fact) => self.commit(vec![fact]),
                    Effect::SaveRedial { key, redial: Some(r) } => {
                        assert!(r.last_error.is_some(), "a failure keeps its cause");
                        if r.stopped {
                            let sub = &self.subscribers[&key];
                            let first = self.store.first_offset();
                            assert!(sub.checkpoint + 1 < first, "{key} stopped at checkpoint {} with first kept offset {first}", sub.checkpoint);
                            let cause = r.last_error.as_ref().unwrap();
                            assert_eq!(cause.code, "trimmed");
                            assert!(cause.message.ends_with(&format!(" was removed by retention; the first kept offset is {first}.")), "{cause}");
                        }
                        let previous = self.rows.insert(key, r.clone());
                        let n = previous.map_or(0, |p| p.failures) + 1;
                        assert_eq!(r.failures, n, "failures count up by one");
                        let delay = (TIMING.redial_base_ms * 2f64.powi(n as i32 - 1)).min(TIMING.redial_max_ms);
                        assert_eq!(r.retry_at_ms, self.now + delay, "back-off min(base·2^(n−1), max)");
                    }
                    Effect::SaveRedial { key, redial: None } => {
                        self.rows.remove(&key);
                    }
                    Effect::SaveIdleDeadline(d) => self.idle_deadline = d,
                    Effect::SetAlarm(at) => self.alarm = Some(at),
                    Effect::DeleteAlarm => self.alarm = None,
                    Effect::ReplaceInbound { .. } | Effect::Forget { .. } | Effect::Log(_) => {}
                    Effect::FetchArchived => panic!("an in-memory store never defers a read"),
                }
            }
        }

        fn resolve_dial(&mut self, index: usize, ok: bool) {
            if self.dials.is_empty() {
                return;
            }
            let (generation, key, tag, offset) = self.dials.remove(index % self.dials.len());
            if generation != self.generation {
                return; // the platform drops results of an earlier incarnation
            }
            let outcome = if self.misconfigured.contains(&key) {
                DialOutcome::Misconfigured("binding HOST is missing".into())
            } else if !ok {
                DialOutcome::Failed("refused".into())
            } else {
                let sub = self.subscribers.entry(key.clone()).or_default();
                let reply = DialReply {
                    replay_after_offset: Some(sub.checkpoint),
                    filter: EventFilter(sub.filter.clone()),
                    subscriber: None,
                };
                DialOutcome::Replied { reply, configured_offset: offset }
            };
            let misconfigured = matches!(outcome, DialOutcome::Misconfigured(_));
            let effects = self.machine.on_dial_result(&key, tag, outcome, Snapshot { state: &self.state, json: &self.json }, self.now, &self.store);
            // An alarm may follow only for another key's back-off or the idle deadline.
            let other_timers: Vec<f64> = self.rows.iter().filter(|(k, _)| **k != key).map(|(_, r)| r.retry_at_ms).chain(self.idle_deadline).collect();
            if misconfigured && effects.iter().any(|e| matches!(e, Effect::SetAlarm(at) if !other_timers.contains(at))) {
                self.alarms_after_misconfiguration += 1;
            }
            self.run(effects);
        }

        fn resolve_delivery(&mut self, index: usize, ok: bool) {
            if self.deliveries.is_empty() {
                return;
            }
            let (generation, key, tag, batch) = self.deliveries.remove(index % self.deliveries.len());
            if generation != self.generation {
                return;
            }
            let result = if ok {
                let sub = self.subscribers.entry(key.clone()).or_default();
                let current = self.machine.connections().any(|(k, c)| k == key && c.tag == tag);
                if current {
                    for e in &batch.events {
                        assert!(e.offset > batch.after_offset && e.offset <= batch.through_offset);
                        sub.seen.insert(e.offset);
                    }
                    sub.checkpoint = batch.through_offset;
                }
                Ok(())
            } else {
                Err("host threw".into())
            };
            let effects = self.machine.on_delivery_result(&key, tag, result, Snapshot { state: &self.state, json: &self.json }, self.now, &self.store);
            self.run(effects);
        }

        fn fire_alarm(&mut self) {
            let Some(at) = self.alarm.take() else { return };
            self.now = self.now.max(at);
            let effects = self.machine.on_alarm(&self.state, self.now);
            self.run(effects);
        }

        /// Retention keeps the newest `kept` percent of the offsets.
        fn trim(&mut self, kept: u8) {
            let max = self.state.max_offset;
            self.store.trim_before(max - max * u64::from(kept) / 100 + 1);
        }

        /// Memory is lost; the persisted rows and deadline survive; the boot writes `woken`.
        fn kill(&mut self) {
            self.generation += 1;
            self.chains.clear();
            self.machine = Outbound::new(TIMING, self.rows.iter().map(|(k, r)| (k.clone(), r.clone())).collect(), self.idle_deadline);
            self.commit(vec![EventInput::system(types::WOKEN, json!({"incarnationId": format!("i{}", self.generation)}))]);
        }

        /// Everything succeeds from now on, until nothing is in flight.
        fn settle(&mut self) {
            self.misconfigured.clear();
            self.commit(vec![EventInput::system("app/last", json!({}))]);
            for _ in 0..10_000 {
                if !self.dials.is_empty() {
                    self.resolve_dial(0, true);
                } else if !self.deliveries.is_empty() {
                    self.resolve_delivery(0, true);
                } else if self.state.subscriptions_by_key.keys().any(|k| !self.machine.connections().any(|(c, _)| c == k)) && self.alarm.is_some() {
                    self.fire_alarm();
                } else {
                    return;
                }
            }
            panic!("the world did not settle");
        }
    }

    /// docs/protocol.md#re-dial-back-off: the alarm wakes the stream for the first 10 consecutive
    /// failures only; after that a retry waits for the next trigger (a domain append) once its
    /// retry time has passed.
    #[test]
    fn the_alarm_stops_after_ten_failed_redials_and_a_domain_append_retries() {
        let mut w = World::new();
        w.commit(vec![configured("k")]);
        for failures in 1..=10u32 {
            assert_eq!(w.dials.len(), 1, "dial {failures} started");
            w.resolve_dial(0, false);
            assert_eq!(w.rows["k"].failures, failures);
            if failures < 10 {
                assert_eq!(w.alarm, Some(w.rows["k"].retry_at_ms), "failure {failures}: the alarm is set for the retry");
                w.fire_alarm();
            }
        }
        // The 10th failure's retry still has the alarm; the 11th does not.
        assert_eq!(w.alarm, Some(w.rows["k"].retry_at_ms));
        w.fire_alarm();
        w.resolve_dial(0, false);
        assert_eq!(w.rows["k"].failures, 11);
        assert_eq!(w.alarm, None, "no alarm after the 11th failure");
        assert!(w.dials.is_empty());
        // A domain append before the retry time does not dial; one after it does.
        w.commit(vec![EventInput::system("app/early", json!({}))]);
        assert!(w.dials.is_empty(), "not before retryAt");
        w.now = w.rows["k"].retry_at_ms;
        w.commit(vec![EventInput::system("app/late", json!({}))]);
        assert_eq!(w.dials.len(), 1, "the next trigger after retryAt dials");
    }

    #[derive(Debug, Clone)]
    enum Step {
        Append(u8),
        Configure(usize, bool),
        Remove(usize),
        Dial(usize, bool),
        Deliver(usize, bool),
        Alarm,
        Wait(u32),
        Kill,
        Misconfigure(usize),
        /// Retention keeps this percentage of the log's newest offsets.
        Trim(u8),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0u8..3).prop_map(Step::Append),
            2 => (0..KEYS.len(), any::<bool>()).prop_map(|(k, f)| Step::Configure(k, f)),
            1 => (0..KEYS.len()).prop_map(Step::Remove),
            4 => (0..4usize, prop::bool::weighted(0.7)).prop_map(|(i, ok)| Step::Dial(i, ok)),
            5 => (0..4usize, prop::bool::weighted(0.8)).prop_map(|(i, ok)| Step::Deliver(i, ok)),
            1 => Just(Step::Alarm),
            1 => (0u32..120_000).prop_map(Step::Wait),
            1 => Just(Step::Kill),
            1 => (0..KEYS.len()).prop_map(Step::Misconfigure),
            1 => (0u8..=100).prop_map(Step::Trim),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Random interleavings of commits, alarms, dial and delivery results (late ones from
        /// superseded connections included), removals, kills, configuration failures and retention:
        /// at most one delivery in flight per key, every connection's batches chain, the back-off follows the protocol (checked on every row written), a key
        /// stops only when its subscriber's checkpoint was trimmed (with the `trimmed` refusal) and
        /// is never dialled while stopped, no configuration failure arms the alarm, and once things
        /// go well every configured subscriber that is not stopped has every matching event.
        #[test]
        fn every_subscriber_eventually_gets_every_matching_event(steps in prop::collection::vec(step(), 1..60)) {
            let mut w = World::new();
            for step in steps {
                match step {
                    Step::Append(t) => w.commit(vec![EventInput::system(&format!("app/t{t}"), json!({}))]),
                    Step::Configure(k, filtered) => {
                        // A subscriber states its filter when dialed; it keeps the one it started with.
                        w.subscribers.entry(KEYS[k].to_owned()).or_insert_with(|| Subscriber {
                            filter: filtered.then(|| vec!["app/t0".to_owned(), "app/last".to_owned()]),
                            ..Subscriber::default()
                        });
                        w.commit(vec![configured(KEYS[k])]);
                    }
                    Step::Remove(k) => w.commit(vec![EventInput::system(types::SUBSCRIPTION_REMOVED, json!({"subscriptionKey": KEYS[k]}))]),
                    Step::Dial(i, ok) => w.resolve_dial(i, ok),
                    Step::Deliver(i, ok) => w.resolve_delivery(i, ok),
                    Step::Alarm => w.fire_alarm(),
                    Step::Wait(ms) => w.now += f64::from(ms),
                    Step::Kill => w.kill(),
                    Step::Misconfigure(k) => { w.misconfigured.insert(KEYS[k].to_owned()); }
                    Step::Trim(kept) => w.trim(kept),
                }
            }
            prop_assert_eq!(w.alarms_after_misconfiguration, 0);
            w.settle();
            for key in w.state.subscriptions_by_key.keys() {
                let sub = &w.subscribers[key];
                if w.rows.get(key).is_some_and(|r| r.stopped) {
                    continue; // its checkpoint was trimmed: checked when the row was written
                }
                let filter = EventFilter(sub.filter.clone());
                let configured_at = w.state.subscriptions_by_key[key].latest_configured_event.offset;
                let wanted: Vec<u64> = w.log.iter()
                    .filter(|(offset, t)| *offset > configured_at && !types::is_system(t) && filter.matches(t))
                    .map(|(offset, _)| *offset)
                    .collect();
                for offset in wanted {
                    prop_assert!(sub.seen.contains(&offset), "{key} never got offset {offset}");
                }
            }
        }
    }

    #[test]
    fn a_configuration_failure_arms_nothing_even_over_a_stale_back_off_row() {
        let mut w = World::new();
        w.commit(vec![configured("a")]);
        w.resolve_dial(0, false); // a real failure: back-off row, alarm armed
        assert!(w.alarm.is_some());
        w.misconfigured.insert("a".into());
        w.fire_alarm(); // the retry is due: the dial stops at the configuration
        w.resolve_dial(0, true);
        assert_eq!(w.alarm, None, "no alarm for a misconfigured key");
        assert!(w.rows.contains_key("a"), "the back-off row stays for the next trigger");
        let effects = w.machine.on_alarm(&w.state, w.now + 1e9);
        assert!(!effects.iter().any(|e| matches!(e, Effect::Dial { .. } | Effect::SetAlarm(_))), "{effects:?}");
        w.misconfigured.clear();
        w.commit(vec![EventInput::system("app/x", json!({}))]); // the next trigger dials again
        assert_eq!(w.dials.len(), 1);
    }

    #[test]
    fn a_failed_dial_keeps_its_cause_for_the_log_the_row_and_the_report() {
        let mut w = World::new();
        w.commit(vec![configured("typo")]);
        let (_, _, tag, _) = w.dials.remove(0);
        let why = r#"processor_unknown: no processor "mesage-count" in this host (it has "message-count")"#;
        let effects = w.machine.on_dial_result("typo", tag, DialOutcome::Failed(why.into()), Snapshot { state: &w.state, json: &w.json }, w.now, &w.store);
        assert!(effects.contains(&Effect::Log(format!("subscription typo: dial failed: {why}"))), "{effects:?}");
        let cause = Failure { code: "processor_unknown".into(), message: why["processor_unknown: ".len()..].into() };
        assert!(effects.iter().any(|e| matches!(e, Effect::SaveRedial { redial: Some(r), .. } if r.last_error.as_ref() == Some(&cause))), "{effects:?}");
        let report = w.machine.redial_reports();
        assert_eq!(report["typo"]["failures"], 1);
        assert_eq!(report["typo"]["lastError"], json!({"code": "processor_unknown", "message": cause.message}));
        // A later failure replaces the cause: it is the last one's.
        w.run(effects);
        w.fire_alarm();
        let (_, _, tag, _) = w.dials.remove(0);
        w.machine.on_dial_result("typo", tag, DialOutcome::Failed("TypeError: boom".into()), Snapshot { state: &w.state, json: &w.json }, w.now, &w.store);
        assert_eq!(w.machine.redial_reports()["typo"]["lastError"], json!({"code": "internal", "message": "TypeError: boom"}));
    }

    #[test]
    fn results_of_superseded_connections_are_ignored() {
        let mut w = World::new();
        w.commit(vec![configured("a")]);
        let (_, _, first_tag, offset) = w.dials[0].clone();
        w.resolve_dial(0, true);
        w.resolve_delivery(0, false); // the connection ends; a re-dial follows the back-off
        w.fire_alarm();
        assert_eq!(w.dials.len(), 1);
        let late = w.machine.on_delivery_result("a", first_tag, Ok(()), Snapshot { state: &w.state, json: &w.json }, w.now, &w.store);
        assert!(late.is_empty(), "{late:?}");
        let reply = DialReply { replay_after_offset: None, filter: EventFilter(None), subscriber: None };
        let late = w.machine.on_dial_result("a", first_tag, DialOutcome::Replied { reply, configured_offset: offset }, Snapshot { state: &w.state, json: &w.json }, w.now, &w.store);
        assert!(late.is_empty(), "{late:?}");
        assert_eq!(w.machine.connections().count(), 0);
    }

    #[test]
    fn an_idle_stream_tears_down_and_stays_dormant_until_a_domain_append() {
        let mut w = World::new();
        w.commit(vec![configured("a")]);
        w.resolve_dial(0, true);
        w.resolve_delivery(0, true);
        let deadline = w.machine.pending_idle_teardown().unwrap();
        assert_eq!(w.alarm, Some(deadline));
        w.fire_alarm();
        assert_eq!(w.machine.connections().count(), 0);
        assert!(w.machine.idle_deadline_passed(w.now));
        w.kill(); // a boot while dormant does not dial
        assert!(w.dials.is_empty());
        w.commit(vec![EventInput::system("app/x", json!({}))]);
        assert_eq!(w.dials.len(), 1);
    }
    fn trimmed_after(checkpoint: u64, first: u64) -> Failure {
        let message = format!("Offset {} was removed by retention; the first kept offset is {first}.", checkpoint + 1);
        Failure { code: "trimmed".into(), message }
    }

    /// docs/protocol.md#retention: a subscriber whose checkpoint was trimmed is refused once, with
    /// the `trimmed` cause in the row, the report and the log, and is not dialled again by the
    /// alarm, a domain append or a boot, until the key is configured again.
    #[test]
    fn a_dial_reply_from_a_trimmed_checkpoint_stops_the_key_until_it_is_configured_again() {
        let mut w = World::new();
        for _ in 0..5 {
            w.commit(vec![EventInput::system("app/x", json!({}))]);
        }
        w.store.trim_before(5);
        w.subscribers.insert("a".into(), Subscriber { checkpoint: 2, ..Subscriber::default() });
        w.commit(vec![configured("a")]);
        let (_, _, tag, offset) = w.dials.remove(0);
        let reply = DialReply { replay_after_offset: Some(2), filter: EventFilter(None), subscriber: None };
        let effects = w.machine.on_dial_result("a", tag, DialOutcome::Replied { reply, configured_offset: offset }, Snapshot { state: &w.state, json: &w.json }, w.now, &w.store);
        let cause = trimmed_after(2, 5);
        assert!(effects.contains(&Effect::Log(format!("subscription a: dial refused: {cause} (not dialled again until it is configured again)"))), "{effects:?}");
        assert!(!effects.iter().any(|e| matches!(e, Effect::Deliver { .. } | Effect::Append(_) | Effect::SetAlarm(_) | Effect::ReplaceInbound { .. })), "{effects:?}");
        assert!(effects.contains(&Effect::Forget { tag }));
        assert_eq!(w.machine.connections().count(), 0);
        assert_eq!(w.machine.redial_reports()["a"], json!({"failures": 1, "retryAt": null, "stopped": true, "lastError": {"code": "trimmed", "message": cause.message}}));
        w.run(effects);
        assert!(w.rows["a"].stopped);
        // Neither the alarm, nor a domain append, nor a boot dials it.
        let later = w.machine.on_alarm(&w.state, w.now + 1e9);
        assert!(!later.iter().any(|e| matches!(e, Effect::Dial { .. })), "{later:?}");
        w.now += 1e9;
        w.commit(vec![EventInput::system("app/y", json!({}))]);
        w.kill();
        assert!(w.dials.is_empty(), "stopped across appends and a boot");
        assert_eq!(w.machine.redial_reports()["a"]["stopped"], true, "the row survives the boot");
        // A new configuration clears it and dials.
        w.commit(vec![configured("a")]);
        assert_eq!(w.dials.len(), 1);
        assert!(!w.rows.contains_key("a"));
    }

    #[test]
    fn a_subscriber_that_refuses_the_dial_as_trimmed_stops_the_key_too() {
        let mut w = World::new();
        w.commit(vec![configured("p")]);
        let (_, _, tag, _) = w.dials.remove(0);
        let why = "trimmed: Offset 1 was removed by retention; the first kept offset is 3.";
        let effects = w.machine.on_dial_result("p", tag, DialOutcome::Failed(why.into()), Snapshot { state: &w.state, json: &w.json }, w.now, &w.store);
        assert!(!effects.iter().any(|e| matches!(e, Effect::SetAlarm(_))), "no back-off alarm: {effects:?}");
        assert!(effects.iter().any(|e| matches!(e, Effect::SaveRedial { redial: Some(r), .. } if r.stopped)), "{effects:?}");
        assert_eq!(w.machine.redial_reports()["p"]["lastError"]["code"], "trimmed");
    }

    #[test]
    fn a_live_connection_overtaken_by_retention_ends_and_stops() {
        let mut w = World::new();
        w.commit(vec![configured("a")]);
        w.resolve_dial(0, true);
        w.resolve_delivery(0, true);
        let checkpoint = w.subscribers["a"].checkpoint;
        w.commit(vec![EventInput::system("app/x", json!({}))]); // in flight: the next batch waits
        w.commit(vec![EventInput::system("app/y", json!({}))]);
        let first = w.state.max_offset;
        w.store.trim_before(first);
        w.resolve_delivery(0, true);
        let checkpoint_after = w.subscribers["a"].checkpoint;
        assert!(checkpoint > 0 && checkpoint_after + 1 < first, "{checkpoint}, {checkpoint_after}, {first}");
        assert!(w.rows["a"].stopped, "the next batch would skip removed events");
        assert_eq!(w.rows["a"].last_error, Some(trimmed_after(checkpoint_after, first)));
        assert_eq!(w.machine.connections().count(), 0);
    }
}
