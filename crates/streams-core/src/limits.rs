//! Every cap the stream enforces, in one place (docs/protocol.md#limits, docs/architecture.md#storage, docs/protocol.md#naming-and-paths).

/// Longest path or `streamPath`, in UTF-8 bytes.
pub const MAX_PATH_BYTES: usize = 1023;
/// Event `type`, in UTF-8 bytes.
pub const MAX_TYPE_BYTES: usize = 256;
/// A trimmed `idempotencyKey`, in UTF-8 bytes.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 1024;
/// A trimmed `subscriptionKey`, in UTF-8 bytes.
pub const MAX_SUBSCRIPTION_KEY_BYTES: usize = 256;
/// One committed event as compact JSON, in bytes.
pub const MAX_EVENT_JSON_BYTES: usize = 8_388_608;
/// Events in one `appendBatch`.
pub const MAX_BATCH_EVENTS: usize = 1000;
/// Input JSON of one `appendBatch`, and an HTTP body, in bytes.
pub const MAX_BATCH_JSON_BYTES: usize = 16_777_216;
/// `getEvents` page size: default and maximum.
pub const DEFAULT_GET_EVENTS_LIMIT: usize = 100;
pub const MAX_GET_EVENTS_LIMIT: usize = 1000;
/// Longest `getEvents` long-poll wait (`waitMs`), in milliseconds.
pub const MAX_WAIT_MS: u64 = 60_000;
/// A `getEvents` result stops before this much event JSON (at least one event).
pub const MAX_GET_EVENTS_BYTES: usize = 16 * 1024 * 1024;
/// A delivered subscriber batch: events, and bytes (a bigger event goes alone).
pub const MAX_DELIVERY_EVENTS: usize = 100;
pub const MAX_DELIVERY_BYTES: usize = 8 * 1024 * 1024;
/// Slice size for event and state JSON rows; DO SQLite caps a row at 2 MB.
/// An event whose JSON fits one slice is stored inline in its own row.
pub const EVENT_CHUNK_SIZE: usize = 524_288;
/// Events reduced per page during rebuild and catch-up.
pub const REPLAY_PAGE_EVENTS: usize = 1000;
/// The stored state is rewritten when a commit crosses a multiple of this
/// many offsets; boot catches up over the rest (docs/architecture.md#storage).
pub const STATE_SNAPSHOT_EVERY: u64 = 1000;
/// Entries the state's `childPaths` keeps (docs/protocol.md#child-streams).
pub const MAX_CHILD_PATHS: usize = 100;
/// Largest integer a JS number holds exactly (2^53 − 1).
pub const MAX_SAFE_INTEGER: u64 = 9_007_199_254_740_991;
/// Deepest JSON nesting accepted in any value (serde_json's own parse limit).
pub const MAX_JSON_DEPTH: usize = 128;
/// A WebSocket attachment, in bytes of JSON.
pub const MAX_ATTACHMENT_BYTES: usize = 2048;
