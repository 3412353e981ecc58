//! Inbound subscribers, executed: hibernatable WebSockets whose whole state
//! is their attachment (docs/protocol.md#subscriptions, #inbound-subscribers).
//! Every decision — who may take a key, what each pump step sends or only
//! stores, when a replay yields, when a token's socket closes — is the core's
//! `inbound` machine; this file holds the sockets, sends, stores and closes.

use std::rc::Rc;

use serde_json::Value;
use worker::{Request, Response, State, WebSocket, WebSocketIncomingMessage, WebSocketPair};

use super::{next_task, now_iso, random_uuid, Incarnation, Inner};
use streams_core::inbound::{
    admit, next_expiry, step, wake_presence, SocketAttachment, SocketIdentity, Step, Upgrade, CLOSE_NORMAL, CLOSE_REPLACED, CLOSE_TOKEN_EXPIRED, CLOSE_TRIMMED, IDENTITY_HEADER,
};
use streams_core::limits::MAX_BATCH_EVENTS;
use streams_core::outbound::Snapshot;
use streams_core::payload::DisconnectReason;
use streams_core::subscription::SubscribeParams;
use streams_core::{EventInput, Origin, StreamError, StreamResult};

/// `{"type":"ping"}` is answered by the runtime without waking the object.
pub(super) fn answer_pings(ctx: &State) {
    if let Ok(pair) = worker::worker_sys::WebSocketRequestResponsePair::new(r#"{"type":"ping"}"#, r#"{"type":"pong"}"#) {
        ctx.set_websocket_auto_response(&pair);
    }
}

impl Inner {
    /// Accepts an inbound subscriber (docs/protocol.md#inbound-subscribers).
    pub(super) fn subscribe(self: &Rc<Self>, req: &Request) -> StreamResult<Response> {
        let upgrade = req.headers().get("upgrade").ok().flatten();
        if !upgrade.is_some_and(|u| u.eq_ignore_ascii_case("websocket")) {
            return Err(StreamError::invalid_request("expected a WebSocket upgrade"));
        }
        let query: Vec<(String, String)> = crate::query::pairs(&crate::query::raw_query(req)).collect();
        let params = SubscribeParams::parse(&query)?;
        let identity = SocketIdentity::from_header(req.headers().get(IDENTITY_HEADER).ok().flatten().as_deref())?;
        let upgrade = Upgrade { identity, random_key: random_uuid(), connection_id: random_uuid(), now_iso: now_iso() };
        let open = self.open_sockets();
        let live: Vec<SocketAttachment> = open.iter().map(|(_, a)| a.clone()).collect();
        let admission = self.with_state(|state| admit(&params, upgrade, state, &live))??;
        let attachment = admission.attachment;
        self.ensure_kept(attachment.cursor + 1)?;
        for (ws, held) in &open {
            if admission.replaces.contains(&held.connection_id) {
                self.close_socket(ws, DisconnectReason::Replaced, Some((CLOSE_REPLACED, "replaced")));
            }
        }
        self.close_outbound(&attachment.subscription_key, DisconnectReason::Replaced);
        let pair = WebSocketPair::new().map_err(|_| StreamError::internal())?;
        self.may_have_sockets.set(true);
        self.ctx.accept_web_socket(&pair.server);
        pair.server.serialize_attachment(&attachment).map_err(|_| StreamError::internal())?;
        if attachment.expires_at_ms.is_some() {
            self.arm_alarm();
        }
        self.append_presence(attachment.connected_fact());
        Response::from_websocket(pair.client).map_err(|_| StreamError::internal())
    }

    /// Open sockets with their attachments; closed ones are skipped.
    pub(super) fn open_sockets(&self) -> Vec<(WebSocket, SocketAttachment)> {
        self.ctx
            .get_websockets()
            .into_iter()
            .filter_map(|ws| {
                let attachment = ws.deserialize_attachment::<SocketAttachment>().ok().flatten()?;
                (!attachment.closed).then_some((ws, attachment))
            })
            .collect()
    }

    /// Boot step 3: the roster comes to list exactly the open sockets, in
    /// one commit (in batches of the append limit); nothing after a plain
    /// hibernation, whose `woken` kept them.
    pub(super) fn reconcile_presence(self: &Rc<Self>, open: &[(WebSocket, SocketAttachment)]) {
        self.may_have_sockets.set(!self.ctx.get_websockets().is_empty());
        let Ok(facts) = self.with_state(|state| wake_presence(state, open.iter().map(|(_, a)| a))) else { return };
        let mut facts = facts.into_iter().peekable();
        while facts.peek().is_some() {
            let batch: Vec<EventInput> = facts.by_ref().take(MAX_BATCH_EVENTS).collect();
            if let Err(err) = self.append_inputs(batch, Origin::Stream) {
                worker::console_warn!("presence facts not appended: {err}");
            }
        }
    }

    /// Schedules a pump for every open socket that has none scheduled.
    pub(super) fn wake_sockets(self: &Rc<Self>) {
        if !self.may_have_sockets.get() {
            return;
        }
        for (ws, attachment) in self.open_sockets() {
            if !self.pumping.borrow_mut().insert(attachment.connection_id.clone()) {
                continue; // the scheduled pump will read this commit too
            }
            let inner = self.clone();
            let generation = self.generation.get();
            wasm_bindgen_futures::spawn_local(async move {
                // Each step re-reads the attachment and the state, so the pump
                // sees every commit made meanwhile. Between steps of a
                // catch-up it yields a whole task, so other calls run.
                while inner.generation.get() == generation {
                    if !inner.pump_socket_once(&ws) {
                        // A replay that reached an archived segment fetches it and goes on.
                        match inner.fetch_missing().await {
                            Ok(true) => continue,
                            Ok(false) => break,
                            Err(err) => {
                                worker::console_error!("inbound replay: {err}");
                                break;
                            }
                        }
                    }
                    next_task().await;
                }
                inner.pumping.borrow_mut().remove(&attachment.connection_id);
            });
        }
    }

    /// Runs one step of the socket's pump; `true` when another is owed.
    fn pump_socket_once(self: &Rc<Self>, ws: &WebSocket) -> bool {
        let Ok(Some(mut attachment)) = ws.deserialize_attachment::<SocketAttachment>() else { return false };
        let now = js_sys::Date::now();
        let stepped = match &*self.incarnation.borrow() {
            // Sockets at the same cursor share the page read (a wake, an append they all wait for).
            Incarnation::Running(rt) => {
                let store = rt.page.over(&self.store, rt.state.max_offset);
                step(&mut attachment, &store, Snapshot { state: &rt.state, json: &rt.state_json }, now, &now_iso())
            }
            _ => return false,
        };
        let step = match stepped {
            Ok(step) => step,
            Err(err) => {
                if !err.is_pending() {
                    worker::console_error!("inbound pump: {err}");
                }
                return false;
            }
        };
        match &step {
            Step::Idle => return false,
            Step::Expire => {
                self.close_socket(ws, DisconnectReason::TokenExpired, Some((CLOSE_TOKEN_EXPIRED, "token-expired")));
                return false;
            }
            Step::Trimmed => {
                self.close_socket(ws, DisconnectReason::DeliveryFailed, Some((CLOSE_TRIMMED, "trimmed")));
                return false;
            }
            Step::Advance { .. } => {}
            Step::Send { frame, .. } => {
                if let Err(err) = ws.send_with_str(frame) {
                    worker::console_warn!("inbound send to {}: {err}", attachment.subscription_key);
                    return false;
                }
            }
        }
        match ws.serialize_attachment(&attachment) {
            Ok(()) => step.more(),
            Err(err) => {
                worker::console_error!("inbound attachment of {}: {err}", attachment.subscription_key);
                false
            }
        }
    }

    pub(super) fn on_socket_message(self: &Rc<Self>, ws: &WebSocket, message: WebSocketIncomingMessage) {
        let WebSocketIncomingMessage::String(text) = message else { return };
        let is_unsubscribe = serde_json::from_str::<Value>(&text).ok().is_some_and(|v| v.get("type").and_then(Value::as_str) == Some("unsubscribe"));
        if is_unsubscribe {
            self.close_socket(ws, DisconnectReason::Unsubscribed, Some((CLOSE_NORMAL, "unsubscribed")));
        }
    }

    /// The peer closed the socket, or it errored.
    pub(super) fn on_socket_gone(self: &Rc<Self>, ws: &WebSocket) {
        self.close_socket(ws, DisconnectReason::RpcBroken, None);
        let _ = ws.close(Some(CLOSE_NORMAL), Some("closed"));
    }

    /// Marks the socket closed first, so it gets at most one disconnect fact.
    pub(super) fn close_socket(self: &Rc<Self>, ws: &WebSocket, reason: DisconnectReason, close: Option<(u16, &str)>) {
        let Ok(Some(mut attachment)) = ws.deserialize_attachment::<SocketAttachment>() else { return };
        if attachment.closed {
            return;
        }
        attachment.closed = true;
        let _ = ws.serialize_attachment(&attachment);
        self.append_presence(attachment.disconnected_fact(reason));
        if let Some((code, text)) = close {
            let _ = ws.close(Some(code), Some(text));
        }
    }

    /// Closes the socket that holds `key`, if one does, as `replaced`.
    pub(super) fn replace_inbound(self: &Rc<Self>, key: &str) {
        for (ws, attachment) in self.open_sockets() {
            if attachment.subscription_key == key {
                self.close_socket(&ws, DisconnectReason::Replaced, Some((CLOSE_REPLACED, "replaced")));
            }
        }
    }

    /// Presence facts are best effort: a failure is only logged.
    pub(super) fn append_presence(self: &Rc<Self>, fact: EventInput) {
        if let Err(err) = self.append_inputs(vec![fact], Origin::Stream) {
            worker::console_warn!("presence fact not appended: {err}");
        }
    }

    /// `runtime.connections` entries for the open sockets.
    pub(super) fn socket_reports(&self) -> Vec<(String, Value)> {
        self.open_sockets().into_iter().map(|(_, a)| (a.subscription_key.clone(), a.report())).collect()
    }

    // ---- token expiry (docs/protocol.md#websocket-frames) ----

    /// The alarm: closes the sockets whose token expired, with 4002.
    pub(super) fn close_expired_sockets(self: &Rc<Self>) {
        let now = js_sys::Date::now();
        for (ws, attachment) in self.open_sockets() {
            if attachment.expired(now) {
                self.close_socket(&ws, DisconnectReason::TokenExpired, Some((CLOSE_TOKEN_EXPIRED, "token-expired")));
            }
        }
        self.arm_alarm();
    }

    /// Sets the one alarm to whichever comes first: the outbound machine's
    /// (back-off, idle teardown), the first socket token's expiry, or the
    /// archive's (a retry, retention by age; docs/architecture.md#storage-tiers).
    pub(super) fn arm_alarm(&self) {
        let outbound = match &*self.incarnation.borrow() {
            Incarnation::Running(rt) => rt.outbound.alarm_at(),
            _ => return,
        };
        let sockets = if self.may_have_sockets.get() { self.open_sockets() } else { Vec::new() };
        let at = outbound.into_iter().chain(next_expiry(sockets.iter().map(|(_, a)| a))).chain(self.archive_alarm_at()).reduce(f64::min);
        let storage = self.ctx.storage();
        wasm_bindgen_futures::spawn_local(async move {
            let result = match at {
                Some(at) => storage.set_alarm((at - js_sys::Date::now()).max(0.0) as i64).await,
                None => storage.delete_alarm().await,
            };
            if let Err(err) = result {
                worker::console_error!("alarm: {err}");
            }
        });
    }
}
