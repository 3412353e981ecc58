//! Error codes and the one error type every operation returns (docs/protocol.md#errors).
//! HTTP statuses live in the API layer; the core knows only codes and messages.

use std::fmt;

/// Stable snake_case codes; persisted in clients' logic, never rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    BatchTooLarge,
    EventTooLarge,
    Forbidden,
    IdempotencyConflict,
    Internal,
    InvalidEvent,
    InvalidNamespace,
    InvalidPath,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    OffsetMismatch,
    StreamPaused,
    SubscriberNotAllowed,
    SubscriptionKeyInUse,
    Trimmed,
    Unauthorized,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 17] = [
        Self::BatchTooLarge,
        Self::EventTooLarge,
        Self::Forbidden,
        Self::IdempotencyConflict,
        Self::Internal,
        Self::InvalidEvent,
        Self::InvalidNamespace,
        Self::InvalidPath,
        Self::InvalidRequest,
        Self::MethodNotAllowed,
        Self::NotFound,
        Self::OffsetMismatch,
        Self::StreamPaused,
        Self::SubscriberNotAllowed,
        Self::SubscriptionKeyInUse,
        Self::Trimmed,
        Self::Unauthorized,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BatchTooLarge => "batch_too_large",
            Self::EventTooLarge => "event_too_large",
            Self::Forbidden => "forbidden",
            Self::IdempotencyConflict => "idempotency_conflict",
            Self::Internal => "internal",
            Self::InvalidEvent => "invalid_event",
            Self::InvalidNamespace => "invalid_namespace",
            Self::InvalidPath => "invalid_path",
            Self::InvalidRequest => "invalid_request",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::NotFound => "not_found",
            Self::OffsetMismatch => "offset_mismatch",
            Self::StreamPaused => "stream_paused",
            Self::SubscriberNotAllowed => "subscriber_not_allowed",
            Self::SubscriptionKeyInUse => "subscription_key_in_use",
            Self::Trimmed => "trimmed",
            Self::Unauthorized => "unauthorized",
        }
    }

    pub fn from_wire(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == code)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure with its code and human message. Displays as `<code>: <message>`,
/// the form JS-RPC callers see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamError {
    pub code: ErrorCode,
    pub message: String,
}

impl StreamError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
    pub fn invalid_event(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidEvent, message)
    }
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }
    pub fn invalid_path(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidPath, message)
    }
    /// Clients see only "internal error"; the detail belongs in the log.
    pub fn internal() -> Self {
        Self::new(ErrorCode::Internal, "internal error")
    }

    /// Parses `<code>: <message>` back into an error (errors crossing an RPC hop).
    pub fn parse(text: &str) -> Option<Self> {
        let (code, message) = text.split_once(": ")?;
        Some(Self::new(ErrorCode::from_wire(code)?, message))
    }
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for StreamError {}

pub type StreamResult<T> = Result<T, StreamError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_their_wire_names() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_wire(code.as_str()), Some(code));
        }
    }

    #[test]
    fn errors_display_and_parse_as_code_colon_message() {
        let err = StreamError::new(ErrorCode::OffsetMismatch, "expected offset 4, got 6");
        assert_eq!(err.to_string(), "offset_mismatch: expected offset 4, got 6");
        assert_eq!(StreamError::parse(&err.to_string()), Some(err));
        assert_eq!(StreamError::parse("nonsense"), None);
    }
}
