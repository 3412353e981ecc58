//! Errors and JSON on the wire, shared by the Durable Object and the HTTP layer: HTTP statuses and the JSON error body (docs/protocol.md#errors).

use serde_json::json;
use worker::{Response, ResponseBuilder};

use streams_core::{ErrorCode, StreamError};

/// The HTTP status of each code. Exhaustive: a new code will not compile
/// until it is mapped.
pub fn status(code: ErrorCode) -> u16 {
    match code {
        ErrorCode::InvalidRequest | ErrorCode::InvalidEvent | ErrorCode::InvalidPath | ErrorCode::InvalidNamespace => 400,
        ErrorCode::Unauthorized => 401,
        ErrorCode::SubscriberNotAllowed | ErrorCode::Forbidden => 403,
        ErrorCode::NotFound => 404,
        ErrorCode::MethodNotAllowed => 405,
        ErrorCode::OffsetMismatch | ErrorCode::IdempotencyConflict | ErrorCode::SubscriptionKeyInUse => 409,
        ErrorCode::Trimmed => 410,
        ErrorCode::EventTooLarge | ErrorCode::BatchTooLarge => 413,
        ErrorCode::StreamPaused => 423,
        ErrorCode::Internal => 500,
    }
}

/// `{"error":{"code","message"}}` with the code's status (or `status` when given).
pub fn error_response(err: &StreamError, status_override: Option<u16>) -> worker::Result<Response> {
    let body = json!({"error": {"code": err.code.as_str(), "message": err.message}});
    Ok(ResponseBuilder::new()
        .with_status(status_override.unwrap_or_else(|| status(err.code)))
        .with_header("content-type", "application/json")?
        .fixed(body.to_string().into_bytes()))
}

/// A 200 JSON response from JSON text.
pub fn json_response(json: String) -> worker::Result<Response> {
    Ok(ResponseBuilder::new()
        .with_status(200)
        .with_header("content-type", "application/json")?
        .fixed(json.into_bytes()))
}
