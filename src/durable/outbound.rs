//! Outbound subscribers, executed (docs/protocol.md#outbound-subscribers). Every decision — when to
//! dial, which batch goes next, back-off, idle teardown, the alarm — is the
//! core's `Outbound` machine; this file only runs its effects (JS RPC dials
//! and deliveries, `runtime_meta` rows, the alarm) and feeds each result back
//! tagged with the dial's tag. A result that arrives after the incarnation
//! changed is dropped here; one from a superseded dial is ignored by the
//! machine.

use std::collections::BTreeMap;
use std::rc::Rc;

use serde_json::{json, Map, Value};
use wasm_bindgen::JsValue;

use super::{random_uuid, Incarnation, Inner};
use crate::js::{from_json_text, rejection_text, to_json};
use crate::stub::call_method;
use streams_core::outbound::{CommitSummary, DialOutcome, Effect, Outbound, Snapshot, Tag};
use streams_core::payload::DisconnectReason;
use streams_core::subscriber::{BindingTarget, CallableSubscriber};
use streams_core::subscription::{delivery_arguments, dial_arguments, Batch, DialReply, Recipient, Redial, IDLE_DEADLINE_KEY, REDIAL_PREFIX};
use streams_core::StoreError;

const DELIVERY_METHOD: &str = "processEventBatch";

/// The platform side of the dials and connections of one incarnation, by tag.
#[derive(Default)]
pub(super) struct Links(BTreeMap<Tag, Link>);

struct Link {
    target: JsValue,
    shallow_merge: Option<Map<String, Value>>,
    /// Made at dial; the dial and every delivery carry it.
    connection_id: String,
}

impl Inner {
    /// The machine of a new incarnation, from the stored back-off rows and
    /// idle deadline. A read error fails the boot: the rows are not "none".
    pub(super) fn load_outbound(&self) -> Result<Outbound, StoreError> {
        let mut redials = Vec::new();
        for (row, value) in self.store.meta_with_prefix(REDIAL_PREFIX)? {
            let Some(key) = row.strip_prefix(REDIAL_PREFIX) else { continue };
            match serde_json::from_str::<Redial>(&value) {
                Ok(redial) => redials.push((key.to_owned(), redial)),
                Err(err) => worker::console_error!("redial row {key} is unreadable, dropped: {err}"),
            }
        }
        let idle_deadline = self.store.meta(IDLE_DEADLINE_KEY)?.and_then(|v| v.parse().ok());
        Ok(Outbound::new(self.settings.timing(), redials, idle_deadline))
    }

    /// Feeds one input to the machine, then runs the effects it returns
    /// (with no borrow held: running them may commit, which feeds it again).
    fn drive(self: &Rc<Self>, input: impl FnOnce(&mut Outbound, Snapshot<'_>, f64) -> Vec<Effect>) {
        let now = js_sys::Date::now();
        let effects = match &mut *self.incarnation.borrow_mut() {
            Incarnation::Running(rt) => {
                let rt = &mut **rt;
                input(&mut rt.outbound, Snapshot { state: &rt.state, json: &rt.state_json }, now)
            }
            _ => return,
        };
        for effect in effects {
            self.execute(effect);
        }
    }

    fn with_links<T>(&self, f: impl FnOnce(&mut Links) -> T) -> Option<T> {
        match &mut *self.incarnation.borrow_mut() {
            Incarnation::Running(rt) => Some(f(&mut rt.links)),
            _ => None,
        }
    }

    fn with_machine<T>(&self, f: impl FnOnce(&Outbound) -> T) -> Option<T> {
        match &*self.incarnation.borrow() {
            Incarnation::Running(rt) => Some(f(&rt.outbound)),
            _ => None,
        }
    }

    fn execute(self: &Rc<Self>, effect: Effect) {
        match effect {
            Effect::Dial { key, tag } => self.dial(key, tag),
            Effect::ReplaceInbound { key } => self.replace_inbound(&key),
            Effect::Deliver { key, tag, batch, state_json } => self.deliver(key, tag, batch, &state_json),
            Effect::Forget { tag } => {
                self.with_links(|links| links.0.remove(&tag));
            }
            Effect::Append(fact) => self.append_presence(fact),
            Effect::SaveRedial { key, redial } => {
                let row = format!("{REDIAL_PREFIX}{key}");
                let written = match redial.map(|r| serde_json::to_string(&r)) {
                    Some(Ok(value)) => self.store.set_meta(&row, &value),
                    Some(Err(err)) => Err(StoreError(err.to_string())),
                    None => self.store.delete_meta(&row),
                };
                if let Err(err) = written {
                    worker::console_error!("{row}: {err}");
                }
            }
            Effect::SaveIdleDeadline(deadline) => {
                let written = match deadline {
                    Some(at) => self.store.set_meta(IDLE_DEADLINE_KEY, &at.to_string()),
                    None => self.store.delete_meta(IDLE_DEADLINE_KEY),
                };
                if let Err(err) = written {
                    worker::console_error!("{IDLE_DEADLINE_KEY}: {err}");
                }
            }
            // The machine's alarm shares the one alarm with socket expiries.
            Effect::SetAlarm(_) | Effect::DeleteAlarm => self.arm_alarm(),
            Effect::Log(message) => worker::console_warn!("{message}"),
            Effect::FetchArchived => {
                let inner = self.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    match inner.fetch_missing().await {
                        Ok(true) => {
                            let store = inner.store.clone();
                            inner.drive(|machine, at, now| machine.pump_now(at, now, &store));
                        }
                        Ok(false) => {}
                        Err(err) => worker::console_error!("outbound replay: {err}"),
                    }
                });
            }
        }
    }

    // ---- inputs ----

    /// After every commit, with what it held.
    pub(super) fn outbound_after_commit(self: &Rc<Self>, commit: &CommitSummary) {
        let store = &self.store;
        self.drive(|machine, at, now| machine.on_commit(at, commit, now, store));
    }

    pub(super) fn on_alarm(self: &Rc<Self>) {
        self.drive(|machine, at, now| machine.on_alarm(at.state, now));
    }

    /// Closes every outbound connection as `idle`; inbound sockets stay.
    pub(super) fn idle_teardown(self: &Rc<Self>) {
        self.drive(|machine, _, now| machine.idle_teardown(now));
    }

    pub(super) fn close_outbound(self: &Rc<Self>, key: &str, reason: DisconnectReason) {
        self.drive(|machine, _, _| machine.close_key(key, reason));
    }

    // ---- dial ----

    fn dial(self: &Rc<Self>, key: String, tag: Tag) {
        let connection_id = random_uuid();
        let (subscriber, target, configured_offset, args) = match self.prepare_dial(&key, &connection_id) {
            Ok(prepared) => prepared,
            Err(why) => {
                let store = &self.store;
                return self.drive(|machine, at, now| machine.on_dial_result(&key, tag, DialOutcome::Misconfigured(why), at, now, store));
            }
        };
        let link = Link { target: target.clone(), shallow_merge: subscriber.shallow_merge, connection_id };
        self.with_links(|links| links.0.insert(tag, link));
        let inner = self.clone();
        let generation = self.generation.get();
        wasm_bindgen_futures::spawn_local(async move {
            let reply = call_method(&target, &subscriber.rpc_method, Some(&args)).await;
            if inner.generation.get() != generation {
                return;
            }
            // The subscriber's own `<code>: <message>` is the failure's cause (docs/protocol.md#runtimestate).
            let reply = reply.map_err(|e| rejection_text(&e)).and_then(|r| {
                let json = if r.is_undefined() { Ok(None) } else { to_json(&r, "reply").map(Some) };
                json.and_then(|r| DialReply::parse(r.as_ref())).map_err(|why| format!("invalid_reply: {why}"))
            });
            let outcome = match reply {
                Ok(reply) => DialOutcome::Replied { reply, configured_offset },
                Err(why) => DialOutcome::Failed(why),
            };
            let store = &inner.store;
            inner.drive(|machine, at, now| machine.on_dial_result(&key, tag, outcome, at, now, store));
        });
    }

    /// The callable, its target, the configuration offset and the dial
    /// arguments; `Err` is a configuration problem (no back-off, no alarm).
    fn prepare_dial(&self, key: &str, connection_id: &str) -> Result<(CallableSubscriber, JsValue, u64, JsValue), String> {
        let prepared = self.with_state(|state| {
            let entry = state.subscriptions_by_key.get(key).ok_or("the subscription is gone")?;
            let subscriber = CallableSubscriber::parse(entry.latest_configured_event.payload.get("subscriber"))?;
            subscriber.check_allowed(&self.settings.allowed_bindings).map_err(|e| e.to_string())?;
            let to = Recipient { subscription_key: key, connection_id };
            let args = dial_arguments(state, to, entry, self.store.first_offset(), subscriber.shallow_merge.as_ref());
            Ok::<_, String>((subscriber, entry.latest_configured_event.offset, args))
        });
        let (subscriber, configured_offset, args) = prepared.map_err(|e| e.to_string())??;
        let target = match &subscriber.target {
            BindingTarget::DurableObject { name } => self
                .env
                .durable_object(&subscriber.binding_name)
                .and_then(|ns| ns.get_by_name(name))
                .map(|stub| stub.into_rpc::<JsValue>()),
            BindingTarget::Service => self.env.service(&subscriber.binding_name).map(|f| f.into_rpc::<JsValue>()),
        };
        let target = target.map_err(|e| format!("binding {} is missing or of the wrong kind: {e}", subscriber.binding_name))?;
        let args = from_json_text(&args).map_err(|e| format!("dial arguments: {e}"))?;
        Ok((subscriber, target, configured_offset, args))
    }

    // ---- delivery ----

    /// One `processEventBatch`; every way it can fail is fed back as a failure.
    fn deliver(self: &Rc<Self>, key: String, tag: Tag, batch: Batch, state_json: &str) {
        let call = match &*self.incarnation.borrow() {
            Incarnation::Running(rt) => rt.links.0.get(&tag).map(|link| {
                let to = Recipient { subscription_key: &key, connection_id: &link.connection_id };
                let args = delivery_arguments(to, &rt.state, &batch, state_json, link.shallow_merge.as_ref());
                from_json_text(&args).map(|args| (link.target.clone(), args)).map_err(|e| format!("internal: delivery arguments: {e}"))
            }),
            _ => return,
        };
        let call = call.unwrap_or_else(|| Err("internal: the connection has no target".into()));
        let (target, args) = match call {
            Ok(call) => call,
            Err(why) => {
                let store = &self.store;
                return self.drive(|machine, at, now| machine.on_delivery_result(&key, tag, Err(why), at, now, store));
            }
        };
        let inner = self.clone();
        let generation = self.generation.get();
        wasm_bindgen_futures::spawn_local(async move {
            let result = call_method(&target, DELIVERY_METHOD, Some(&args)).await;
            if inner.generation.get() != generation {
                return;
            }
            let result = result.map(|_| ()).map_err(|e| rejection_text(&e));
            let store = &inner.store;
            inner.drive(|machine, at, now| machine.on_delivery_result(&key, tag, result, at, now, store));
        });
    }

    // ---- runtimeState ----

    /// The idle deadline, while an outbound connection is live to tear down.
    pub(super) fn pending_idle_teardown(&self) -> Option<f64> {
        self.with_machine(Outbound::pending_idle_teardown).flatten()
    }

    /// The `pendingWork` test hook's outbound part: what the machine has started or scheduled
    /// (nothing while no incarnation runs).
    pub(super) fn outbound_work_report(&self) -> Value {
        self.with_machine(|m| {
            let (dialing, delivering) = m.calls_in_flight();
            json!({"outboundAlarmAt": m.alarm_at(), "dialing": dialing, "delivering": delivering, "dialsStarted": m.dials_started()})
        })
        .unwrap_or_else(|| json!({"outboundAlarmAt": null, "dialing": [], "delivering": [], "dialsStarted": 0}))
    }

    pub(super) fn connections_report(&self) -> Value {
        let mut report: Map<String, Value> = self.socket_reports().into_iter().collect();
        report.extend(self.with_machine(Outbound::connection_reports).unwrap_or_default());
        Value::Object(report)
    }

    pub(super) fn redial_report(&self) -> Value {
        Value::Object(self.with_machine(Outbound::redial_reports).unwrap_or_default())
    }
}
