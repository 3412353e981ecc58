//! Server-Sent Events on the subscribe route (docs/protocol.md#server-sent-events): which requests
//! want them, where a reconnect resumes, and how a WebSocket frame is written as an event.

use serde::Deserialize;

use super::error::{StreamError, StreamResult};
use super::limits::MAX_SAFE_INTEGER;

/// A comment line this often keeps proxies from closing an idle stream.
pub const HEARTBEAT_MS: u64 = 15_000;
/// How soon a browser reconnects after the stream ends (the `retry:` field).
pub const RECONNECT_MS: u64 = 1_000;
/// The query parameter a reconnect's `Last-Event-ID` replaces.
const REPLAY_AFTER_OFFSET: &str = "replayAfterOffset";

/// Whether a request without a WebSocket upgrade asks for an event stream.
pub fn wants_event_stream(accept: Option<&str>) -> bool {
    accept.is_some_and(|accept| accept.split(',').any(|item| item.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("text/event-stream"))))
}

/// The subscription query for a (re)connection: `Last-Event-ID`, the
/// `throughOffset` of the last batch the client received, wins over `replayAfterOffset`.
pub fn resume_query(query: Vec<(String, String)>, last_event_id: Option<&str>) -> StreamResult<Vec<(String, String)>> {
    let Some(id) = last_event_id.map(str::trim).filter(|id| !id.is_empty()) else { return Ok(query) };
    let valid = id.bytes().all(|b| b.is_ascii_digit()) && id.parse::<u64>().is_ok_and(|n| n <= MAX_SAFE_INTEGER);
    if !valid {
        return Err(StreamError::invalid_request("Last-Event-ID must be a non-negative integer (a batch's throughOffset)"));
    }
    let mut query: Vec<(String, String)> = query.into_iter().filter(|(key, _)| key != REPLAY_AFTER_OFFSET).collect();
    query.push((REPLAY_AFTER_OFFSET.to_owned(), id.to_owned()));
    Ok(query)
}

/// The first bytes of the stream: the reconnect delay.
pub fn opening() -> String {
    format!("retry: {RECONNECT_MS}\n\n")
}

/// One WebSocket frame as one event: `id:` is a batch's `throughOffset`.
pub fn frame_event(frame: &str) -> String {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Head {
        through_offset: Option<u64>,
    }
    let id = serde_json::from_str::<Head>(frame).ok().and_then(|head| head.through_offset);
    // Frames are compact JSON: one line, so one `data:` field.
    match id {
        Some(id) => format!("id: {id}\ndata: {frame}\n\n"),
        None => format!("data: {frame}\n\n"),
    }
}

/// The stream closed the socket: a `close` event with its code and reason, then the end.
pub fn close_event(code: u16, reason: &str) -> String {
    format!("event: close\ndata: {}\n\n", serde_json::json!({"code": code, "reason": reason}))
}

pub fn heartbeat() -> &'static str {
    ": heartbeat\n\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn only_event_stream_requests_are_taken() {
        assert!(wants_event_stream(Some("text/event-stream")));
        assert!(wants_event_stream(Some("text/html, Text/Event-Stream;q=0.9")));
        assert!(!wants_event_stream(Some("application/json")));
        assert!(!wants_event_stream(None));
    }

    #[test]
    fn last_event_id_wins_over_replay_after_offset() {
        let query = pairs(&[("path", "/a"), ("replayAfterOffset", "3")]);
        assert_eq!(resume_query(query.clone(), None).unwrap(), query);
        assert_eq!(resume_query(query.clone(), Some(" ")).unwrap(), query);
        assert_eq!(resume_query(query.clone(), Some("17")).unwrap(), pairs(&[("path", "/a"), ("replayAfterOffset", "17")]));
        for bad in ["-1", "x", "1.5", "99999999999999999999"] {
            assert_eq!(
                resume_query(query.clone(), Some(bad)).unwrap_err().message,
                "Last-Event-ID must be a non-negative integer (a batch's throughOffset)"
            );
        }
    }

    #[test]
    fn frames_become_events_with_their_through_offset() {
        let frame = r#"{"type":"batch","afterOffset":3,"throughOffset":5,"events":[{"type":"a\nb"}]}"#;
        assert_eq!(frame_event(frame), format!("id: 5\ndata: {frame}\n\n"));
        assert_eq!(frame_event(r#"{"type":"other"}"#), "data: {\"type\":\"other\"}\n\n");
        assert_eq!(close_event(1012, "kill requested"), "event: close\ndata: {\"code\":1012,\"reason\":\"kill requested\"}\n\n");
        assert_eq!(opening(), "retry: 1000\n\n");
    }
}
