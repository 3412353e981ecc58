//! Server-Sent Events on `GET /api/streams/subscribe` (docs/protocol.md#server-sent-events): the
//! Worker opens the same inbound WebSocket into the stream that a socket
//! client gets, and writes each frame as one event. So cursors, filters,
//! replay and presence are the socket's own; only the framing lives here
//! (`core::sse`).

use std::rc::Rc;
use std::time::Duration;

use futures::channel::mpsc::{unbounded, UnboundedSender};
use futures::StreamExt;
use worker::{Delay, Env, Headers, Method, Request, RequestInit, Response, WebSocket, WebsocketEvent};

use super::auth::ACCESS_TOKEN_PARAM;
use super::http::Refusal;
use crate::query;
use crate::stub::stream_stub;
use streams_core::inbound::{SocketIdentity, IDENTITY_HEADER};
use streams_core::sse::{close_event, frame_event, heartbeat, opening, resume_query, HEARTBEAT_MS};
use streams_core::{StreamError, StreamName};

type Chunks = UnboundedSender<Result<Vec<u8>, worker::Error>>;

/// Opens the stream's socket (a refusal, e.g. 410 `trimmed`, is answered
/// before any event) and answers `text/event-stream` fed by it.
/// The stream's socket carries the caller's identity, so the key rule and
/// token expiry apply as to any socket (docs/access.md#subscription-keys).
pub(super) async fn serve(req: &Request, env: &Env, name: &StreamName, raw_query: &str, identity: &SocketIdentity) -> Result<Response, Refusal> {
    let internal = |e: worker::Error| {
        worker::console_error!("event stream: {e}");
        Refusal::from(StreamError::internal())
    };
    let query: Vec<(String, String)> = query::pairs(raw_query).filter(|(key, _)| key != ACCESS_TOKEN_PARAM).collect();
    let last_event_id = req.headers().get("last-event-id").ok().flatten();
    let query = resume_query(query, last_event_id.as_deref())?;
    let target = format!("https://stream/subscribe?{}", query::encode(query.iter().map(|(k, v)| (k.as_str(), v.as_str()))));
    let headers = Headers::new();
    headers.set("upgrade", "websocket").map_err(internal)?;
    if let Some(value) = identity.to_header() {
        headers.set(IDENTITY_HEADER, &value).map_err(internal)?;
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Get).with_headers(headers);
    let forwarded = Request::new_with_init(target.as_str(), &init).map_err(internal)?;
    let answer = stream_stub(env, name)?.fetch_with_request(forwarded).await.map_err(internal)?;
    if answer.status_code() != 101 {
        return Ok(answer);
    }
    let socket = Rc::new(answer.websocket().ok_or_else(StreamError::internal)?);
    socket.accept().map_err(internal)?;
    let (chunks, body) = unbounded();
    let _ = chunks.unbounded_send(Ok(opening().into_bytes()));
    wasm_bindgen_futures::spawn_local(relay(socket.clone(), chunks.clone()));
    wasm_bindgen_futures::spawn_local(keep_alive(socket, chunks));
    let headers = Headers::new();
    for (name, value) in [("content-type", "text/event-stream"), ("cache-control", "no-cache"), ("x-accel-buffering", "no")] {
        headers.set(name, value).map_err(internal)?;
    }
    Ok(Response::from_stream(body).map_err(internal)?.with_headers(headers))
}

/// Each frame becomes an event; the socket's close becomes a `close` event and ends the body.
async fn relay(socket: Rc<WebSocket>, chunks: Chunks) {
    if let Ok(mut events) = socket.events() {
        while let Some(event) = events.next().await {
            let chunk = match event {
                Ok(WebsocketEvent::Message(message)) => message.text().map(|frame| frame_event(&frame)),
                Ok(WebsocketEvent::Close(close)) => {
                    let _ = chunks.unbounded_send(Ok(close_event(close.code(), &close.reason()).into_bytes()));
                    break;
                }
                Err(_) => break,
            };
            if chunk.is_some_and(|chunk| chunks.unbounded_send(Ok(chunk.into_bytes())).is_err()) {
                // The client went away: let the stream record the disconnect.
                let _ = socket.close(Some(1000), Some("event stream closed"));
                break;
            }
        }
    }
    chunks.close_channel();
}

/// A comment every `HEARTBEAT_MS` until the body ends; a client gone closes the socket.
async fn keep_alive(socket: Rc<WebSocket>, chunks: Chunks) {
    loop {
        Delay::from(Duration::from_millis(HEARTBEAT_MS)).await;
        if chunks.is_closed() {
            return;
        }
        if chunks.unbounded_send(Ok(heartbeat().as_bytes().to_vec())).is_err() {
            let _ = socket.close(Some(1000), Some("event stream closed"));
            return;
        }
    }
}
