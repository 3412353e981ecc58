//! Outbound subscribers: the stream dials configured callables over JS RPC,
//! delivers batches one at a time, re-dials with back-off on failure, and
//! idles connections out; one DO alarm drives both timers (docs/protocol.md#outbound-subscribers).

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use serde_json::{json, Map, Value};
use wasm_bindgen::JsValue;

use super::{now_iso, Inner, Incarnation};
use streams_core::payload::DisconnectReason;
use streams_core::state::Direction;
use streams_core::subscriber::{parse_descriptor, BindingTarget, CallableSubscriber};
use streams_core::subscription::{
    delivery_arguments, dial_arguments, next_batch, DialReply, PumpCursor, Recipient, Redial, IDLE_DEADLINE_KEY, REDIAL_PREFIX,
};
use streams_core::time::iso_from_ms;
use streams_core::{types, EventInput};
use crate::js::{from_json_text, to_json};
use crate::stub::call_method;

const DELIVERY_METHOD: &str = "processEventBatch";

/// Live outbound connections and dials in flight, for one incarnation.
#[derive(Default)]
pub(super) struct Outbound {
    connections: BTreeMap<String, Connection>,
    dialing: BTreeSet<String>,
    next_id: u64,
    /// The alarm time this incarnation last set, if any.
    alarm_at: Option<f64>,
    /// `runtime_meta.idleDeadlineMs`, once read: every commit consults it.
    idle_deadline: Option<Option<f64>>,
    /// Keys whose last dial stopped at a configuration problem: they arm no
    /// alarm and wait for the next trigger (docs/protocol.md#outbound-subscribers).
    misconfigured: BTreeSet<String>,
}

struct Connection {
    id: u64,
    /// Made at dial; the dial and every delivery carry it.
    connection_id: String,
    target: JsValue,
    shallow_merge: Option<Map<String, Value>>,
    pump: PumpCursor,
    started_at: String,
    batches_sent: u64,
    events_sent: u64,
    last_delivered_at: Option<String>,
    /// At most one delivery is in flight.
    delivering: bool,
    delivered_since_dial: bool,
}

impl Inner {
    fn with_outbound<T>(&self, f: impl FnOnce(&mut Outbound) -> T) -> Option<T> {
        match &mut *self.incarnation.borrow_mut() {
            Incarnation::Running(rt) => Some(f(&mut rt.outbound)),
            _ => None,
        }
    }

    /// The back-off rows; a read error is logged and is not "no rows".
    fn redial_rows(&self) -> Option<Vec<(String, Redial)>> {
        let rows = self.store.meta_with_prefix(REDIAL_PREFIX).inspect_err(|err| worker::console_error!("redial rows: {err}")).ok()?;
        Some(
            rows.into_iter()
                .filter_map(|(k, v)| {
                    let key = k.strip_prefix(REDIAL_PREFIX)?.to_owned();
                    let row = serde_json::from_str(&v).inspect_err(|err| worker::console_error!("redial row {key}: {err}")).ok()?;
                    Some((key, row))
                })
                .collect(),
        )
    }

    /// The key's back-off; `Err` when it cannot be read (then nothing dials).
    fn redial(&self, key: &str) -> Result<Option<Redial>, ()> {
        let row = self.store.meta(&format!("{REDIAL_PREFIX}{key}")).map_err(|err| worker::console_error!("redial row {key}: {err}"))?;
        Ok(row.and_then(|v| serde_json::from_str(&v).inspect_err(|err| worker::console_error!("redial row {key}: {err}")).ok()))
    }

    /// A new configuration (or a delivery) ends the back-off and any configuration block.
    pub(super) fn clear_redial(self: &Rc<Self>, key: &str) {
        if let Err(err) = self.store.delete_meta(&format!("{REDIAL_PREFIX}{key}")) {
            worker::console_error!("{err}");
        }
        self.with_outbound(|o| o.misconfigured.remove(key));
        self.rearm_alarm();
    }

    /// A configured key with no connection, no dial in flight and no pending back-off.
    fn dialable(&self, key: &str, now: f64) -> bool {
        let busy = self.with_outbound(|o| o.connections.contains_key(key) || o.dialing.contains(key)).unwrap_or(true);
        !busy && self.redial(key).is_ok_and(|r| r.is_none_or(|r| r.retry_at_ms <= now))
    }

    pub(super) fn has_undialed_subscription(&self) -> bool {
        let now = js_sys::Date::now();
        let keys: Vec<String> = self.with_state(|s| s.subscriptions_by_key.keys().cloned().collect()).unwrap_or_default();
        keys.iter().any(|k| self.dialable(k, now))
    }

    /// Closes connections whose subscription is gone and dials the rest.
    pub(super) fn reconcile(self: &Rc<Self>) {
        let Ok(state) = self.state() else { return };
        let connected: Vec<String> = self.with_outbound(|o| o.connections.keys().cloned().collect()).unwrap_or_default();
        for key in connected.iter().filter(|k| !state.subscriptions_by_key.contains_key(*k)) {
            self.close_outbound(key, DisconnectReason::SubscriptionRemoved);
        }
        for (key, _) in self.redial_rows().unwrap_or_default() {
            if !state.subscriptions_by_key.contains_key(&key) {
                if let Err(err) = self.store.delete_meta(&format!("{REDIAL_PREFIX}{key}")) {
                    worker::console_error!("{err}");
                }
            }
        }
        self.with_outbound(|o| o.misconfigured.retain(|key| state.subscriptions_by_key.contains_key(key)));
        let now = js_sys::Date::now();
        for key in state.subscriptions_by_key.keys() {
            if self.dialable(key, now) {
                self.start_dial(key);
            }
        }
    }

    fn start_dial(self: &Rc<Self>, key: &str) {
        if self.with_outbound(|o| o.dialing.insert(key.to_owned())) != Some(true) {
            return;
        }
        let inner = self.clone();
        let key = key.to_owned();
        wasm_bindgen_futures::spawn_local(async move { inner.dial(key).await });
    }

    async fn dial(self: Rc<Self>, key: String) {
        let generation = self.generation.get();
        let connection_id = super::random_uuid();
        let prepared = self.prepare_dial(&key, &connection_id);
        let Some((subscriber, target, configured_offset, args)) = prepared else {
            // A configuration problem (logged): no back-off, no alarm.
            self.with_outbound(|o| {
                o.dialing.remove(&key);
                o.misconfigured.insert(key.clone());
            });
            return self.rearm_alarm();
        };
        let reply = call_method(&target, &subscriber.rpc_method, Some(&args)).await;
        if self.generation.get() != generation {
            return;
        }
        // The configuration was usable: whatever the reply, the block is over.
        self.with_outbound(|o| {
            o.dialing.remove(&key);
            o.misconfigured.remove(&key);
        });
        let reply = reply
            .map_err(|e| crate::js::from_js_error(&e).to_string())
            .and_then(|r| if r.is_undefined() { Ok(None) } else { to_json(&r, "reply").map(Some) })
            .and_then(|r| DialReply::parse(r.as_ref()));
        let reply = match reply {
            Ok(reply) => reply,
            Err(why) => return self.record_failure(&key, &format!("dial failed: {why}")),
        };
        let Ok(state) = self.state() else { return };
        if state.subscriptions_by_key.get(&key).map(|e| e.latest_configured_event.offset) != Some(configured_offset) {
            return self.reconcile();
        }
        self.replace_connection(&key);
        let connection = Connection {
            id: 0,
            connection_id,
            target,
            shallow_merge: subscriber.shallow_merge,
            pump: PumpCursor::starting_at(reply.replay_after_offset.unwrap_or(state.max_offset), true, reply.filter),
            started_at: now_iso(),
            batches_sent: 0,
            events_sent: 0,
            last_delivered_at: None,
            delivering: false,
            delivered_since_dial: false,
        };
        self.with_outbound(|o| {
            o.next_id += 1;
            o.connections.insert(key.clone(), Connection { id: o.next_id, ..connection });
        });
        let mut payload = json!({"subscriptionKey": key, "direction": Direction::Outbound.as_str()});
        if let Some(descriptor) = reply.subscriber {
            match parse_descriptor(&descriptor) {
                Ok(descriptor) => payload["subscriber"] = descriptor,
                Err(why) => worker::console_warn!("{key}: dropping the subscriber descriptor: payload.subscriber{why}"),
            }
        }
        self.append_presence(EventInput::system(types::SUBSCRIBER_CONNECTED, payload));
    }

    /// The callable, its target and the dial arguments; `None` for a
    /// configuration problem, which is logged and waits for the next trigger.
    fn prepare_dial(&self, key: &str, connection_id: &str) -> Option<(CallableSubscriber, JsValue, u64, JsValue)> {
        let state = self.state().ok()?;
        let entry = state.subscriptions_by_key.get(key)?;
        let problem = |why: String| worker::console_error!("subscription {key}: {why}");
        let subscriber = CallableSubscriber::parse(entry.latest_configured_event.payload.get("subscriber")).map_err(problem).ok()?;
        subscriber.check_allowed(&self.settings.allowed_bindings).map_err(|e| problem(e.to_string())).ok()?;
        let target = match &subscriber.target {
            BindingTarget::DurableObject { name } => self
                .env
                .durable_object(&subscriber.binding_name)
                .and_then(|ns| ns.get_by_name(name))
                .map(|stub| stub.into_rpc::<JsValue>()),
            BindingTarget::Service => self.env.service(&subscriber.binding_name).map(|f| f.into_rpc::<JsValue>()),
        };
        let target = target.map_err(|e| problem(format!("binding {} is missing or of the wrong kind: {e}", subscriber.binding_name))).ok()?;
        let to = Recipient { subscription_key: key, connection_id };
        let args = from_json_text(&dial_arguments(&state, to, entry, subscriber.shallow_merge.as_ref())).map_err(|e| problem(e.to_string())).ok()?;
        Some((subscriber, target, entry.latest_configured_event.offset, args))
    }

    /// Records a failed dial or delivery and schedules the re-dial.
    fn record_failure(self: &Rc<Self>, key: &str, why: &str) {
        worker::console_warn!("subscription {key}: {why}");
        let Ok(previous) = self.redial(key) else { return };
        let next = Redial::after_failure(previous, js_sys::Date::now(), self.settings.redial_base_ms, self.settings.redial_max_ms);
        let row = serde_json::to_string(&next).unwrap_or_default();
        if let Err(err) = self.store.set_meta(&format!("{REDIAL_PREFIX}{key}"), &row) {
            worker::console_error!("{err}");
        }
        if next.alarmed() {
            self.rearm_alarm();
        }
    }

    /// Removes the connection and records why; `false` if there was none.
    pub(super) fn close_outbound(self: &Rc<Self>, key: &str, reason: DisconnectReason) -> bool {
        let removed = self.with_outbound(|o| o.connections.remove(key)).flatten().is_some();
        if removed {
            self.append_presence(EventInput::system(
                types::SUBSCRIBER_DISCONNECTED,
                json!({"subscriptionKey": key, "reason": reason.as_str()}),
            ));
        }
        removed
    }

    /// Post-commit: every socket pump and every outbound delivery loop.
    pub(super) fn wake_pumps(self: &Rc<Self>) {
        self.wake_sockets();
        let keys: Vec<String> = self.with_outbound(|o| o.connections.keys().cloned().collect()).unwrap_or_default();
        for key in keys {
            let start = self.with_outbound(|o| match o.connections.get_mut(&key) {
                Some(c) if !c.delivering => {
                    c.delivering = true;
                    true
                }
                _ => false,
            });
            if start == Some(true) {
                let inner = self.clone();
                wasm_bindgen_futures::spawn_local(async move { inner.deliver(key).await });
            }
        }
    }

    /// Delivers batches until none is owed, one `processEventBatch` at a time.
    async fn deliver(self: Rc<Self>, key: String) {
        let generation = self.generation.get();
        loop {
            let (id, target, args, count) = match self.next_delivery(&key) {
                Ok(Some(next)) => next,
                Ok(None) => return,
                Err(why) => {
                    // The delivery cannot be built: end the connection and re-dial.
                    self.close_outbound(&key, DisconnectReason::DeliveryFailed);
                    return self.record_failure(&key, &why);
                }
            };
            let result = call_method(&target, DELIVERY_METHOD, Some(&args)).await;
            if self.generation.get() != generation {
                return;
            }
            let current = self.with_outbound(|o| o.connections.get(&key).is_some_and(|c| c.id == id)) == Some(true);
            if !current {
                return; // closed meanwhile: the result no longer matters
            }
            match result {
                Ok(_) => {
                    let first = self
                        .with_outbound(|o| {
                            let c = o.connections.get_mut(&key)?;
                            c.batches_sent += 1;
                            c.events_sent += count;
                            c.last_delivered_at = Some(now_iso());
                            Some(!std::mem::replace(&mut c.delivered_since_dial, true))
                        })
                        .flatten();
                    if first == Some(true) && self.redial(&key).is_ok_and(|r| r.is_some()) {
                        self.clear_redial(&key);
                    }
                }
                Err(err) => {
                    self.close_outbound(&key, DisconnectReason::DeliveryFailed);
                    return self.record_failure(&key, &format!("delivery failed: {}", crate::js::from_js_error(&err)));
                }
            }
        }
    }

    /// The next batch's arguments; `Ok(None)` (and the loop stops) when
    /// nothing is owed. Whenever it does not return a batch, `delivering` is
    /// cleared, so a later commit starts a new loop.
    #[allow(clippy::type_complexity)]
    fn next_delivery(&self, key: &str) -> Result<Option<(u64, JsValue, JsValue, u64)>, String> {
        let mut incarnation = self.incarnation.borrow_mut();
        let Incarnation::Running(rt) = &mut *incarnation else { return Ok(None) };
        let (state, state_json) = (&rt.state, &rt.state_json);
        let Some(c) = rt.outbound.connections.get_mut(key) else { return Ok(None) };
        let built = match next_batch(&self.store, state, &mut c.pump) {
            Ok(Some(batch)) => {
                let to = Recipient { subscription_key: key, connection_id: &c.connection_id };
                let args = delivery_arguments(to, state, &batch, state_json, c.shallow_merge.as_ref());
                from_json_text(&args)
                    .map(|args| Some((c.id, c.target.clone(), args, batch.events.len() as u64)))
                    .map_err(|err| format!("delivery arguments: {err}"))
            }
            Ok(None) => Ok(None),
            Err(err) => Err(format!("reading the next batch: {err}")),
        };
        if !matches!(built, Ok(Some(_))) {
            c.delivering = false;
        }
        built
    }

    // ---- idle teardown and the alarm ----

    pub(super) fn idle_deadline(&self) -> Option<f64> {
        if let Some(cached) = self.with_outbound(|o| o.idle_deadline).flatten() {
            return cached;
        }
        let stored = self.store.meta(IDLE_DEADLINE_KEY).ok().flatten().and_then(|v| v.parse().ok());
        self.with_outbound(|o| o.idle_deadline = Some(stored));
        stored
    }

    fn set_idle_deadline(&self, deadline: Option<f64>) {
        let written = match deadline {
            Some(at) => self.store.set_meta(IDLE_DEADLINE_KEY, &at.to_string()),
            None => self.store.delete_meta(IDLE_DEADLINE_KEY),
        };
        match written {
            Ok(()) => {
                self.with_outbound(|o| o.idle_deadline = Some(deadline));
            }
            Err(err) => worker::console_error!("{err}"),
        }
    }

    pub(super) fn idle_deadline_passed(&self) -> bool {
        self.idle_deadline().is_some_and(|d| d <= js_sys::Date::now())
    }

    /// The idle deadline, while an outbound connection is live to tear down.
    pub(super) fn pending_idle_teardown(&self) -> Option<f64> {
        self.idle_deadline().filter(|_| self.has_live_outbound())
    }

    fn has_live_outbound(&self) -> bool {
        self.with_outbound(|o| !o.connections.is_empty()).unwrap_or(false)
    }

    /// After every commit: a live connection pushes the deadline out; with
    /// none, a future deadline is dropped. A passed one stays, marking the
    /// stream dormant until a domain append re-dials.
    pub(super) fn refresh_idle_deadline(self: &Rc<Self>) {
        let now = js_sys::Date::now();
        if self.has_live_outbound() {
            self.set_idle_deadline(Some(now + self.settings.idle_teardown_ms));
            self.rearm_alarm();
        } else if self.idle_deadline().is_some_and(|d| d > now) {
            self.set_idle_deadline(None);
            self.rearm_alarm();
        }
    }

    /// Closes every outbound connection as `idle`; inbound sockets stay.
    pub(super) fn idle_teardown(self: &Rc<Self>) {
        let keys: Vec<String> = self.with_outbound(|o| o.connections.keys().cloned().collect()).unwrap_or_default();
        let mut closed = false;
        for key in keys {
            closed |= self.close_outbound(&key, DisconnectReason::Idle);
        }
        if closed {
            self.set_idle_deadline(Some(js_sys::Date::now()));
        }
    }

    pub(super) fn on_alarm(self: &Rc<Self>) {
        self.with_outbound(|o| o.alarm_at = None);
        let now = js_sys::Date::now();
        if self.has_live_outbound() && self.idle_deadline().is_some_and(|d| d <= now) {
            self.idle_teardown();
        }
        let configured: BTreeSet<String> = self.with_state(|s| s.subscriptions_by_key.keys().cloned().collect()).unwrap_or_default();
        for (key, redial) in self.redial_rows().unwrap_or_default() {
            let misconfigured = self.with_outbound(|o| o.misconfigured.contains(&key)).unwrap_or(true);
            if redial.retry_at_ms <= now && configured.contains(&key) && !misconfigured && self.dialable(&key, now) {
                self.start_dial(&key);
            }
        }
        self.rearm_alarm();
    }

    /// Sets the alarm to the earliest timer, or deletes it when there is none.
    /// Timers: the idle deadline while a connection is live, and the retry
    /// time of each key waiting on back-off (not connected, not dialing). A
    /// later deadline leaves a pending earlier alarm in place: it fires, finds
    /// nothing due, and re-arms.
    pub(super) fn rearm_alarm(self: &Rc<Self>) {
        let now = js_sys::Date::now();
        let idle = if self.has_live_outbound() { self.idle_deadline() } else { None };
        // Rows that cannot be read leave the alarm as it is (and the back-off with it).
        let Some(rows) = self.redial_rows() else { return };
        let waiting: Vec<f64> = rows
            .into_iter()
            .filter(|(key, r)| {
                let idle_key = |o: &mut Outbound| !o.connections.contains_key(key) && !o.dialing.contains(key) && !o.misconfigured.contains(key);
                r.alarmed() && self.with_outbound(idle_key) == Some(true)
            })
            .map(|(_, r)| r.retry_at_ms)
            .collect();
        let desired = idle.into_iter().chain(waiting).reduce(f64::min);
        let current = self.with_outbound(|o| o.alarm_at).flatten();
        let change = match (desired, current) {
            (None, None) => None,
            (Some(d), Some(c)) if d >= c && c > now => None,
            (d, _) => Some(d),
        };
        let Some(desired) = change else { return };
        self.with_outbound(|o| o.alarm_at = desired);
        let storage = self.ctx.storage();
        wasm_bindgen_futures::spawn_local(async move {
            let result = match desired {
                Some(at) => storage.set_alarm((at - js_sys::Date::now()).max(0.0) as i64).await,
                None => storage.delete_alarm().await,
            };
            if let Err(err) = result {
                worker::console_error!("alarm: {err}");
            }
        });
    }

    // ---- runtimeState ----

    pub(super) fn connections_report(&self) -> Value {
        let mut report: Map<String, Value> = self.socket_reports().into_iter().collect();
        self.with_outbound(|o| {
            for (key, c) in &o.connections {
                let mut entry = json!({"direction": "outbound", "startedAt": c.started_at, "cursor": c.pump.cursor, "batchesSent": c.batches_sent, "eventsSent": c.events_sent});
                if let Some(at) = &c.last_delivered_at {
                    entry["lastDeliveredAt"] = Value::String(at.clone());
                }
                report.insert(key.clone(), entry);
            }
        });
        Value::Object(report)
    }

    pub(super) fn redial_report(&self) -> Value {
        let report: Map<String, Value> = self
            .redial_rows()
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, r)| r.failures > 0)
            .map(|(key, r)| (key, json!({"failures": r.failures, "retryAt": iso_from_ms(r.retry_at_ms)})))
            .collect();
        Value::Object(report)
    }
}

