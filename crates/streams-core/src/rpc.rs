//! The one allowlist of stream methods, the surfaces each appears on, and the
//! parsing of their arguments (docs/protocol.md#rpc-methods). Every surface — DO JS-RPC, the Worker
//! entrypoint and HTTP — consults this enum and nothing else.

use serde_json::{Map, Value};

use super::error::{StreamError, StreamResult};
use super::event::trimmed_key;
use super::limits::{DEFAULT_GET_EVENTS_LIMIT, MAX_GET_EVENTS_LIMIT, MAX_SAFE_INTEGER};
use super::name::quote;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamMethod {
    Append,
    AppendBatch,
    GetEvent,
    GetEvents,
    RuntimeState,
    Reduce,
    Reset,
    Kill,
    RunIdleTeardownNow,
    SimulateHibernation,
    MemoryUsage,
    NotifyChildStreamCreated,
    DeleteStream,
    RunArchiveNow,
}

/// Which HTTP verbs reach a method on the public API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpAccess {
    Unreachable,
    Post,
    GetOrPost,
}

impl StreamMethod {
    pub const ALL: [Self; 14] = [
        Self::Append,
        Self::AppendBatch,
        Self::GetEvent,
        Self::GetEvents,
        Self::RuntimeState,
        Self::Reduce,
        Self::Reset,
        Self::Kill,
        Self::RunIdleTeardownNow,
        Self::SimulateHibernation,
        Self::MemoryUsage,
        Self::NotifyChildStreamCreated,
        Self::DeleteStream,
        Self::RunArchiveNow,
    ];

    pub fn js_name(self) -> &'static str {
        match self {
            Self::Append => "append",
            Self::AppendBatch => "appendBatch",
            Self::GetEvent => "getEvent",
            Self::GetEvents => "getEvents",
            Self::RuntimeState => "runtimeState",
            Self::Reduce => "reduce",
            Self::Reset => "reset",
            Self::Kill => "kill",
            Self::RunIdleTeardownNow => "runIdleTeardownNow",
            Self::SimulateHibernation => "simulateHibernation",
            Self::MemoryUsage => "memoryUsage",
            Self::NotifyChildStreamCreated => "notifyChildStreamCreated",
            Self::DeleteStream => "deleteStream",
            Self::RunArchiveNow => "runArchiveNow",
        }
    }

    pub fn from_js_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.js_name() == name)
    }

    /// Internal hooks: DO JS-RPC only, and only with `STREAMS_TEST_HOOKS=1`.
    pub fn is_test_hook(self) -> bool {
        matches!(self, Self::RunIdleTeardownNow | Self::SimulateHibernation | Self::MemoryUsage | Self::RunArchiveNow)
    }

    /// Stream-to-stream: a new stream tells an ancestor about itself. DO
    /// JS-RPC only; the receiver derives the notice's key itself, so a
    /// caller's `append` never needs a reserved key.
    pub fn is_internal(self) -> bool {
        self == Self::NotifyChildStreamCreated
    }

    /// On the service-binding entrypoint: the eight public methods.
    pub fn on_entrypoint(self) -> bool {
        !self.is_test_hook() && !self.is_internal()
    }

    pub fn http(self) -> HttpAccess {
        match self {
            Self::GetEvent | Self::GetEvents | Self::RuntimeState => HttpAccess::GetOrPost,
            Self::Append | Self::AppendBatch | Self::Reduce | Self::Reset | Self::Kill | Self::DeleteStream => HttpAccess::Post,
            Self::RunIdleTeardownNow | Self::SimulateHibernation | Self::MemoryUsage | Self::NotifyChildStreamCreated | Self::RunArchiveNow => HttpAccess::Unreachable,
        }
    }

    /// Over HTTP these need the admin token.
    pub fn needs_admin(self) -> bool {
        matches!(self, Self::Reset | Self::Kill | Self::DeleteStream)
    }

    /// Only the appends take a `streamPath` (docs/protocol.md#streampath); elsewhere it goes on
    /// to the DO, which refuses it as an unknown argument.
    pub fn takes_stream_path(self) -> bool {
        matches!(self, Self::Append | Self::AppendBatch)
    }

    /// Takes a string `streamPath` off the arguments when the method takes one.
    pub fn take_stream_path(self, args: &mut Map<String, Value>) -> StreamResult<Option<String>> {
        if !self.takes_stream_path() {
            return Ok(None);
        }
        match args.remove("streamPath") {
            None => Ok(None),
            Some(Value::String(stream_path)) => Ok(Some(stream_path)),
            Some(_) => Err(StreamError::invalid_request("streamPath must be a string")),
        }
    }

    /// The argument keys the DO accepts.
    pub fn argument_keys(self) -> &'static [&'static str] {
        match self {
            Self::Append => &["streamPath", "event"],
            Self::AppendBatch => &["streamPath", "events"],
            Self::GetEvent => &["offset", "idempotencyKey"],
            Self::GetEvents => &["afterOffset", "beforeOffset", "limit"],
            Self::Reduce => &["event", "coreProcessorState"],
            Self::NotifyChildStreamCreated => &["childPath"],
            Self::RunArchiveNow => &["nowMs", "holdAfterUpload"],
            Self::RuntimeState | Self::Reset | Self::Kill | Self::DeleteStream | Self::RunIdleTeardownNow | Self::SimulateHibernation | Self::MemoryUsage => &[],
        }
    }

    /// Checks the argument is an object (or absent) with only known keys.
    pub fn arguments(self, arg: Option<Value>) -> StreamResult<Map<String, Value>> {
        let map = match arg {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(map)) => map,
            Some(_) => return Err(StreamError::invalid_request("arguments must be an object")),
        };
        if let Some(unknown) = map.keys().find(|k| !self.argument_keys().contains(&k.as_str())) {
            return Err(StreamError::invalid_request(format!("unknown argument {}", quote(unknown))));
        }
        Ok(map)
    }
}

/// `append` / `appendBatch` arguments, the single event seen as a batch of one.
#[derive(Debug, Clone, PartialEq)]
pub struct AppendArgs {
    pub stream_path: Option<String>,
    pub events: Vec<Value>,
    /// `append` returns the single event rather than an array.
    pub single: bool,
}

impl AppendArgs {
    pub fn parse(method: StreamMethod, mut args: Map<String, Value>) -> StreamResult<Self> {
        let stream_path = method.take_stream_path(&mut args)?;
        let (events, single) = if method == StreamMethod::Append {
            (vec![args.remove("event").ok_or_else(|| StreamError::invalid_request("event is required"))?], true)
        } else {
            match args.remove("events") {
                Some(Value::Array(events)) => (events, false),
                _ => return Err(StreamError::invalid_request("events must be an array")),
            }
        };
        Ok(Self { stream_path, events, single })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GetEventArgs {
    ByOffset(u64),
    ByIdempotencyKey(String),
}

impl GetEventArgs {
    pub fn parse(args: &Map<String, Value>) -> StreamResult<Self> {
        match (args.get("offset"), args.get("idempotencyKey")) {
            (Some(offset), None) => Ok(Self::ByOffset(non_negative("offset", offset)?)),
            (None, Some(Value::String(key))) => {
                trimmed_key(key).map(Self::ByIdempotencyKey).map_err(StreamError::invalid_request)
            }
            (None, Some(_)) => Err(StreamError::invalid_request("idempotencyKey must be a string")),
            _ => Err(StreamError::invalid_request("getEvent requires exactly one of offset or idempotencyKey.")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetEventsArgs {
    pub after: u64,
    pub before: Option<u64>,
    pub limit: usize,
}

impl GetEventsArgs {
    pub fn parse(args: &Map<String, Value>) -> StreamResult<Self> {
        let after = match args.get("afterOffset") {
            None => 0,
            Some(v) => non_negative("afterOffset", v)?,
        };
        let before = match args.get("beforeOffset") {
            None | Some(Value::Null) => None,
            Some(v) => Some(non_negative("beforeOffset", v)?),
        };
        let limit = match args.get("limit") {
            None => DEFAULT_GET_EVENTS_LIMIT,
            Some(v) => match v.as_u64() {
                Some(n) if n > MAX_GET_EVENTS_LIMIT as u64 => {
                    return Err(StreamError::invalid_request("getEvents limit must be at most 1000."))
                }
                Some(n) if n > 0 => n as usize,
                _ => return Err(StreamError::invalid_request("getEvents limit must be a positive integer.")),
            },
        };
        Ok(Self { after, before, limit })
    }
}

fn non_negative(name: &str, value: &Value) -> StreamResult<u64> {
    value
        .as_u64()
        .filter(|n| *n <= MAX_SAFE_INTEGER)
        .ok_or_else(|| StreamError::invalid_request(format!("{name} must be a non-negative integer")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn method_names_round_trip_and_hooks_stay_internal() {
        for m in StreamMethod::ALL {
            assert_eq!(StreamMethod::from_js_name(m.js_name()), Some(m));
        }
        let public: Vec<_> = StreamMethod::ALL.into_iter().filter(|m| m.on_entrypoint()).map(StreamMethod::js_name).collect();
        assert_eq!(public, ["append", "appendBatch", "getEvent", "getEvents", "runtimeState", "reduce", "reset", "kill"]);
        for hook in [StreamMethod::RunIdleTeardownNow, StreamMethod::SimulateHibernation, StreamMethod::MemoryUsage, StreamMethod::NotifyChildStreamCreated] {
            assert_eq!(hook.http(), HttpAccess::Unreachable);
        }
        for internal in ["readCoreProcessorState", "writeCoreProcessorState", "subscribeOutbound", "fetch", "constructor"] {
            assert_eq!(StreamMethod::from_js_name(internal), None);
        }
    }

    #[test]
    fn unknown_arguments_are_refused() {
        let err = StreamMethod::GetEvents.arguments(Some(json!({"after": 1}))).unwrap_err();
        assert_eq!(err.to_string(), "invalid_request: unknown argument \"after\"");
        assert!(StreamMethod::RuntimeState.arguments(None).unwrap().is_empty());
        assert!(StreamMethod::Kill.arguments(Some(json!([]))).is_err());
    }

    #[test]
    fn get_events_limits_are_checked() {
        let parse = |v| GetEventsArgs::parse(&map(v));
        assert_eq!(parse(json!({})).unwrap(), GetEventsArgs { after: 0, before: None, limit: 100 });
        assert_eq!(parse(json!({"limit": 0})).unwrap_err().message, "getEvents limit must be a positive integer.");
        assert_eq!(parse(json!({"limit": 1.5})).unwrap_err().message, "getEvents limit must be a positive integer.");
        assert_eq!(parse(json!({"limit": 1001})).unwrap_err().message, "getEvents limit must be at most 1000.");
        assert_eq!(parse(json!({"afterOffset": -1})).unwrap_err().message, "afterOffset must be a non-negative integer");
        assert_eq!(parse(json!({"afterOffset": 2, "beforeOffset": null, "limit": 2})).unwrap(), GetEventsArgs { after: 2, before: None, limit: 2 });
    }

    #[test]
    fn get_event_needs_exactly_one_selector() {
        assert_eq!(GetEventArgs::parse(&map(json!({"offset": 3}))).unwrap(), GetEventArgs::ByOffset(3));
        assert_eq!(GetEventArgs::parse(&map(json!({"idempotencyKey": " k "}))).unwrap(), GetEventArgs::ByIdempotencyKey("k".into()));
        for bad in [json!({}), json!({"offset": 1, "idempotencyKey": "k"})] {
            assert_eq!(GetEventArgs::parse(&map(bad)).unwrap_err().message, "getEvent requires exactly one of offset or idempotencyKey.");
        }
    }

    #[test]
    fn append_arguments_become_a_batch() {
        let one = AppendArgs::parse(StreamMethod::Append, map(json!({"event": {"type": "x"}, "streamPath": "c"}))).unwrap();
        assert_eq!((one.events.len(), one.single, one.stream_path.as_deref()), (1, true, Some("c")));
        assert!(AppendArgs::parse(StreamMethod::AppendBatch, map(json!({"events": {}}))).is_err());
        assert!(AppendArgs::parse(StreamMethod::Append, map(json!({}))).is_err());
    }
}
