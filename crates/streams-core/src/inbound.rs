//! Inbound sockets as a state machine without I/O
//! (docs/protocol.md#inbound-subscribers), like `outbound`: the platform
//! holds the sockets and their attachments and asks, at each turn, what to do.
//!
//! - `admit` decides whether an upgrade may take its subscription key
//!   (identity rule, docs/access.md#subscription-keys) and which live sockets
//!   it replaces.
//! - `step` decides one turn of a socket's pump: send a frame, only store a
//!   cursor the filter moved, close an expired socket, or nothing. One step
//!   reads at most `SCAN_PAGES_PER_STEP` pages, and `more` tells the platform
//!   to yield to other calls before the next step (fair replay).
//! - `expired` and `next_expiry` drive the alarm that closes sockets whose
//!   token expired.
//!
//! The attachment is the whole state of a socket: everything a step changes
//! is in it, so a wake (which drops memory) resumes exactly where it was.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::access::Access;
use super::error::{ErrorCode, StreamError, StreamResult};
use super::event::{types, EventInput};
use super::json::to_json_string;
use super::limits::MAX_ATTACHMENT_BYTES;
use super::name::quote;
use super::outbound::Snapshot;
use super::payload::DisconnectReason;
use super::state::Direction;
use super::store::{EventStore, StoreError};
use super::subscription::{batch_frame, configured_key_error, next_batch_within, EventFilter, PumpCursor, Recipient, SubscribeParams};
use super::tiers::ensure_kept;

pub const CLOSE_NORMAL: u16 = 1000;
/// Another socket took the key.
pub const CLOSE_REPLACED: u16 = 4001;
/// The scoped token the socket was opened with expired.
pub const CLOSE_TOKEN_EXPIRED: u16 = 4002;
/// Retention removed events the socket had not been sent yet.
pub const CLOSE_TRIMMED: u16 = 4003;

/// Pages (of at most 100 events) one step may read: a filter that matches
/// little scans at most this much before the socket yields to other calls.
pub const SCAN_PAGES_PER_STEP: usize = 10;

/// The request header that carries a socket's identity from the HTTP edge to
/// the stream. The edge removes any the caller sent.
pub const IDENTITY_HEADER: &str = "x-streams-socket-identity";

/// Who opened a socket, as far as its key and its lifetime are concerned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SocketIdentity {
    /// A digest of the `sub` claim (or, without one, of the token). `None`:
    /// the API or admin token, an open API or a service binding, which may
    /// take any key.
    pub owner: Option<String>,
    /// The token's `exp`, in milliseconds since the epoch.
    pub expires_at_ms: Option<f64>,
}

impl SocketIdentity {
    /// The identity of a request that passed `access`; `token` is the scoped
    /// token it presented (header or query).
    pub fn of(access: &Access, token: Option<&str>) -> Self {
        match access {
            Access::Full => Self::default(),
            Access::Scoped(claims) => {
                let principal = match &claims.subject {
                    Some(sub) => format!("sub:{sub}"),
                    None => format!("token:{}", token.unwrap_or_default()),
                };
                Self { owner: Some(digest(&principal)), expires_at_ms: Some(claims.expires_at * 1000.0) }
            }
        }
    }

    /// The header value, `<owner digest> <exp in ms>`; `None` for full access (no header).
    pub fn to_header(&self) -> Option<String> {
        let owner = self.owner.as_deref()?;
        Some(format!("{owner} {}", self.expires_at_ms.unwrap_or(f64::INFINITY)))
    }

    /// From the header: absent is full access (the request came from inside).
    pub fn from_header(value: Option<&str>) -> StreamResult<Self> {
        let Some(text) = value else { return Ok(Self::default()) };
        let malformed = || StreamError::invalid_request(format!("malformed {IDENTITY_HEADER} header"));
        let (owner, expires) = text.split_once(' ').ok_or_else(malformed)?;
        let expires: f64 = expires.parse().map_err(|_| malformed())?;
        Ok(Self { owner: Some(owner.to_owned()), expires_at_ms: expires.is_finite().then_some(expires) })
    }

    fn may_take(&self, holder: &SocketAttachment) -> bool {
        self.owner.is_none() || self.owner == holder.owner
    }
}

fn digest(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    Sha256::digest(text.as_bytes()).iter().flat_map(|b| [HEX[usize::from(b >> 4)] as char, HEX[usize::from(b & 15)] as char]).collect()
}

/// What an inbound socket keeps across hibernation (≤ 2048 bytes as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SocketAttachment {
    pub subscription_key: String,
    /// Made at accept; every frame of this socket carries it.
    #[serde(default)]
    pub connection_id: String,
    /// How far the pump has read, filtered-out events included.
    pub cursor: u64,
    /// The `throughOffset` of the last frame sent (the start before any):
    /// the next frame's `afterOffset`. Absent in attachments from before it
    /// was kept, where it equals `cursor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_through: Option<u64>,
    pub event_types: EventFilter,
    pub events: bool,
    pub initial_push_owed: bool,
    pub started_at: String,
    pub batches_sent: u64,
    pub events_sent: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivered_at: Option<String>,
    pub closed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<f64>,
}

impl SocketAttachment {
    pub fn pump_cursor(&self) -> PumpCursor {
        PumpCursor {
            cursor: self.cursor,
            delivered_through: self.delivered_through.unwrap_or(self.cursor),
            events: self.events,
            filter: self.event_types.clone(),
            initial_push_owed: self.initial_push_owed,
        }
    }

    fn recipient(&self) -> Recipient<'_> {
        Recipient { subscription_key: &self.subscription_key, connection_id: &self.connection_id }
    }

    fn moved_to(&mut self, pump: &PumpCursor) {
        self.cursor = pump.cursor;
        self.delivered_through = (pump.delivered_through != pump.cursor).then_some(pump.delivered_through);
        self.initial_push_owed = pump.initial_push_owed;
    }

    /// Whether its token has expired at `now_ms`.
    pub fn expired(&self, now_ms: f64) -> bool {
        self.expires_at_ms.is_some_and(|at| at <= now_ms)
    }

    /// `runtime.connections[key]` for this socket.
    pub fn report(&self) -> serde_json::Value {
        let mut report = json!({"direction": "inbound", "startedAt": self.started_at, "cursor": self.cursor, "batchesSent": self.batches_sent, "eventsSent": self.events_sent});
        if let Some(at) = &self.last_delivered_at {
            report["lastDeliveredAt"] = json!(at);
        }
        report
    }

    /// `S/subscriber-connected` for this socket.
    pub fn connected_fact(&self) -> EventInput {
        EventInput::system(types::SUBSCRIBER_CONNECTED, json!({"subscriptionKey": self.subscription_key, "direction": Direction::Inbound.as_str()}))
    }

    /// `S/subscriber-disconnected` for this socket.
    pub fn disconnected_fact(&self, reason: DisconnectReason) -> EventInput {
        disconnected_fact(&self.subscription_key, reason)
    }
}

fn disconnected_fact(subscription_key: &str, reason: DisconnectReason) -> EventInput {
    EventInput::system(types::SUBSCRIBER_DISCONNECTED, json!({"subscriptionKey": subscription_key, "reason": reason.as_str()}))
}

/// `S/woken` for a boot that found hibernated sockets still open, or none
/// (docs/protocol.md#boot): with some, it keeps the roster's inbound entries,
/// so a wake costs each socket one event however many sockets there are.
pub fn woken_fact(incarnation_id: &str, sockets_open: bool) -> EventInput {
    let mut payload = json!({"incarnationId": incarnation_id});
    if sockets_open {
        payload["inboundKept"] = json!(true);
    }
    EventInput::system(types::WOKEN, payload)
}

/// What the boot writes after its `woken` so that the roster lists exactly
/// the open sockets (docs/protocol.md#boot): `rpc-broken` for an inbound
/// entry whose socket is gone, `S/subscriber-connected` for an open socket
/// the roster lacks. After a plain hibernation: nothing.
pub fn wake_presence<'a>(state: &crate::CoreState, open: impl IntoIterator<Item = &'a SocketAttachment>) -> Vec<EventInput> {
    let open: Vec<&SocketAttachment> = open.into_iter().filter(|s| !s.closed).collect();
    let open_keys: HashSet<&str> = open.iter().map(|s| s.subscription_key.as_str()).collect();
    let inbound = |key: &str| state.connections_by_key.get(key).is_some_and(|c| c.direction == Direction::Inbound);
    let gone = state
        .connections_by_key
        .keys()
        .filter(|key| inbound(key) && !open_keys.contains(key.as_str()))
        .map(|key| disconnected_fact(key, DisconnectReason::RpcBroken));
    let unlisted = open.iter().filter(|s| !inbound(&s.subscription_key)).map(|s| s.connected_fact());
    gone.chain(unlisted).collect()
}

/// What the platform brings to an upgrade besides its query.
#[derive(Debug, Clone)]
pub struct Upgrade {
    pub identity: SocketIdentity,
    /// The key to use when the query names none (a random UUID).
    pub random_key: String,
    pub connection_id: String,
    pub now_iso: String,
}

/// An accepted upgrade: the new socket's attachment and the connection ids
/// of the live sockets it replaces (closed with 4001, `replaced`, before it
/// announces itself).
#[derive(Debug, Clone, PartialEq)]
pub struct Admission {
    pub attachment: SocketAttachment,
    pub replaces: Vec<String>,
}

/// Decides an upgrade. Refused: a key of a configured outbound subscription
/// (400), a key a live socket of another identity holds (409
/// `subscription_key_in_use`; that socket is untouched), parameters too
/// large to keep (400).
pub fn admit(params: &SubscribeParams, upgrade: Upgrade, state: &crate::CoreState, live: &[SocketAttachment]) -> StreamResult<Admission> {
    let key = params.subscription_key.clone().unwrap_or(upgrade.random_key);
    if state.subscriptions_by_key.contains_key(&key) {
        return Err(configured_key_error(&key));
    }
    let holders: Vec<&SocketAttachment> = live.iter().filter(|s| !s.closed && s.subscription_key == key).collect();
    if holders.iter().any(|holder| !upgrade.identity.may_take(holder)) {
        return Err(StreamError::new(
            ErrorCode::SubscriptionKeyInUse,
            format!("subscriptionKey {} is held by another subscriber's live socket", quote(&key)),
        ));
    }
    let cursor = params.start_cursor(state);
    let attachment = SocketAttachment {
        subscription_key: key,
        connection_id: upgrade.connection_id,
        cursor,
        delivered_through: None,
        event_types: params.filter.clone(),
        events: params.events,
        initial_push_owed: true,
        started_at: upgrade.now_iso,
        batches_sent: 0,
        events_sent: 0,
        last_delivered_at: None,
        closed: false,
        owner: upgrade.identity.owner,
        expires_at_ms: upgrade.identity.expires_at_ms,
    };
    match to_json_string(&attachment) {
        Ok(json) if json.len() <= MAX_ATTACHMENT_BYTES => {}
        _ => return Err(StreamError::invalid_request("subscription parameters are too large")),
    }
    Ok(Admission { attachment, replaces: holders.iter().map(|s| s.connection_id.clone()).collect() })
}

/// One turn of a socket's pump. Every variant but `Idle` changed the
/// attachment in place; the platform stores it after executing the step.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Nothing is owed.
    Idle,
    /// Send `frame` (a batch of `events` events), then store the attachment.
    Send { frame: String, events: usize, more: bool },
    /// Only store the attachment: the filter matched nothing in what was read.
    Advance { more: bool },
    /// The token expired: mark it closed, append its `token-expired`
    /// disconnect, close with 4002.
    Expire,
    /// Retention removed events the socket had not been sent: mark it
    /// closed, append its `delivery-failed` disconnect, close with 4003.
    Trimmed,
}

impl Step {
    /// Whether another step is owed at once (after yielding to other calls).
    pub fn more(&self) -> bool {
        matches!(self, Self::Send { more: true, .. } | Self::Advance { more: true })
    }
}

/// Decides the next turn of `socket` at `now_ms` (its clock as ISO text for
/// the report). The state goes into the connection's first frame and into
/// every state-only frame, nowhere else (docs/protocol.md#websocket-frames).
pub fn step<S: EventStore + ?Sized>(socket: &mut SocketAttachment, store: &S, at: Snapshot<'_>, now_ms: f64, now_iso: &str) -> Result<Step, StoreError> {
    if socket.closed {
        return Ok(Step::Idle);
    }
    if socket.expired(now_ms) {
        socket.closed = true;
        return Ok(Step::Expire);
    }
    let mut pump = socket.pump_cursor();
    // Sending on from the first kept offset would skip events unseen (docs/protocol.md#retention).
    if pump.events && ensure_kept(pump.cursor + 1, store.first_offset()).is_err() {
        socket.closed = true;
        return Ok(Step::Trimmed);
    }
    let with_state = pump.initial_push_owed || !pump.events;
    let batch = match next_batch_within(store, at.state, &mut pump, SCAN_PAGES_PER_STEP) {
        Ok(batch) => batch,
        // Pages a filter scanned before an archived segment not yet fetched stay scanned: the
        // caller fetches it and the next step goes on from there (docs/architecture.md#storage-tiers).
        Err(err) if err.is_pending() && pump.cursor != socket.cursor => None,
        Err(err) => return Err(err),
    };
    let more = pump.events && pump.cursor < at.state.max_offset;
    let Some(batch) = batch else {
        if pump.cursor == socket.cursor {
            return Ok(Step::Idle);
        }
        socket.moved_to(&pump);
        return Ok(Step::Advance { more });
    };
    let state_json = with_state.then(|| at.json.of(at.state));
    let frame = batch_frame(socket.recipient(), at.state, &batch, state_json.as_deref());
    socket.moved_to(&pump);
    socket.batches_sent += 1;
    socket.events_sent += batch.events.len() as u64;
    socket.last_delivered_at = Some(now_iso.to_owned());
    Ok(Step::Send { frame, events: batch.events.len(), more })
}

/// The earliest expiry among open sockets, for the alarm.
pub fn next_expiry<'a>(sockets: impl IntoIterator<Item = &'a SocketAttachment>) -> Option<f64> {
    sockets.into_iter().filter(|s| !s.closed).filter_map(|s| s.expires_at_ms).reduce(f64::min)
}

#[cfg(test)]
mod tests;
