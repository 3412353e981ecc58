//! Inbound subscribers: hibernatable WebSockets whose cursor lives in the
//! socket attachment, so delivery survives a wake with no gap and no
//! duplicate (docs/protocol.md#subscriptions, #inbound-subscribers).

use std::rc::Rc;

use serde_json::{json, Value};
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;
use worker::{Request, Response, State, WebSocket, WebSocketIncomingMessage, WebSocketPair};

use super::{now_iso, random_uuid, Inner};
use streams_core::payload::DisconnectReason;
use streams_core::state::Direction;
use streams_core::subscription::{batch_frame, configured_key_error, next_batch, Recipient, SocketAttachment, SubscribeParams};
use streams_core::limits::MAX_BATCH_EVENTS;
use streams_core::{types, EventInput, Origin, StreamError, StreamResult};

const CLOSE_NORMAL: u16 = 1000;
const CLOSE_REPLACED: u16 = 4001;

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
        let url = req.url().map_err(|_| StreamError::invalid_request("invalid URL"))?;
        let query: Vec<(String, String)> = url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        let params = SubscribeParams::parse(&query)?;
        let state = self.state()?;
        let key = params.subscription_key.clone().unwrap_or_else(random_uuid);
        if state.subscriptions_by_key.contains_key(&key) {
            return Err(configured_key_error(&key));
        }
        let cursor = params.start_cursor(&state);
        self.ensure_kept(cursor + 1)?;
        let attachment = SocketAttachment {
            subscription_key: key.clone(),
            connection_id: random_uuid(),
            cursor,
            event_types: params.filter.clone(),
            events: params.events,
            initial_push_owed: true,
            started_at: now_iso(),
            batches_sent: 0,
            events_sent: 0,
            last_delivered_at: None,
            closed: false,
        };
        attachment.check_size()?;
        self.replace_connection(&key);
        let pair = WebSocketPair::new().map_err(|_| StreamError::internal())?;
        self.may_have_sockets.set(true);
        self.ctx.accept_web_socket(&pair.server);
        pair.server.serialize_attachment(&attachment).map_err(|_| StreamError::internal())?;
        self.append_presence(EventInput::system(
            types::SUBSCRIBER_CONNECTED,
            json!({"subscriptionKey": key, "direction": Direction::Inbound.as_str()}),
        ));
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

    /// Boot step 5: `woken` emptied the roster, so open sockets announce
    /// again, all in one commit (in batches of the append limit).
    pub(super) fn reannounce_sockets(self: &Rc<Self>) {
        self.may_have_sockets.set(!self.ctx.get_websockets().is_empty());
        let facts: Vec<EventInput> = self
            .open_sockets()
            .into_iter()
            .map(|(_, attachment)| {
                EventInput::system(
                    types::SUBSCRIBER_CONNECTED,
                    json!({"subscriptionKey": attachment.subscription_key, "direction": Direction::Inbound.as_str()}),
                )
            })
            .collect();
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
                // Each step is synchronous and re-reads the attachment and
                // the state, so the pump sees every commit made meanwhile.
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
                    let _ = JsFuture::from(js_sys::Promise::resolve(&JsValue::UNDEFINED)).await;
                }
                inner.pumping.borrow_mut().remove(&attachment.connection_id);
            });
        }
    }

    /// Sends the next batch; `false` when nothing is owed or the socket is gone.
    fn pump_socket_once(&self, ws: &WebSocket) -> bool {
        let Ok(Some(mut attachment)) = ws.deserialize_attachment::<SocketAttachment>() else { return false };
        if attachment.closed {
            return false;
        }
        let mut pump = attachment.pump_cursor();
        let frame = self.with_state_json(|state, state_json| {
            let batch = next_batch(&self.store, state, &mut pump)?;
            let to = Recipient { subscription_key: &attachment.subscription_key, connection_id: &attachment.connection_id };
            Ok::<_, streams_core::StoreError>(batch.map(|batch| (batch_frame(to, state, &batch, &state_json.of(state)), batch.events.len())))
        });
        let (frame, count) = match frame {
            Ok(Ok(Some(frame))) => frame,
            Ok(Ok(None)) | Err(_) => return false,
            Ok(Err(err)) => {
                if !err.is_pending() {
                    worker::console_error!("inbound pump: {err}");
                }
                return false;
            }
        };
        if let Err(err) = ws.send_with_str(frame) {
            worker::console_warn!("inbound send to {}: {err}", attachment.subscription_key);
            return false;
        }
        attachment.record(&pump, count, now_iso());
        match ws.serialize_attachment(&attachment) {
            Ok(()) => true,
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
        self.append_presence(EventInput::system(
            types::SUBSCRIBER_DISCONNECTED,
            json!({"subscriptionKey": attachment.subscription_key, "reason": reason.as_str()}),
        ));
        if let Some((code, text)) = close {
            let _ = ws.close(Some(code), Some(text));
        }
    }

    /// Closes whatever holds `key` now, inbound or outbound, as `replaced`.
    pub(super) fn replace_connection(self: &Rc<Self>, key: &str) {
        self.replace_inbound(key);
        self.close_outbound(key, DisconnectReason::Replaced);
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
        self.open_sockets()
            .into_iter()
            .map(|(_, a)| {
                let mut report = json!({"direction": "inbound", "startedAt": a.started_at, "cursor": a.cursor, "batchesSent": a.batches_sent, "eventsSent": a.events_sent});
                if let Some(at) = a.last_delivered_at {
                    report["lastDeliveredAt"] = Value::String(at);
                }
                (a.subscription_key, report)
            })
            .collect()
    }
}
