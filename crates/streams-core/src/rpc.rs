//! The one allowlist of stream methods, the surfaces each appears on, and the
//! parsing of their arguments (docs/protocol.md#rpc-methods). Every surface — DO JS-RPC, the Worker
//! entrypoint and HTTP — consults this enum and nothing else. A call's argument
//! arrives as one JSON value and is parsed here once, into a `Call`.

use serde_json::{Map, Value};

use super::error::{StreamError, StreamResult};
use super::event::{parse_committed_event, trimmed_key, Event};
use super::limits::{DEFAULT_GET_EVENTS_LIMIT, MAX_GET_EVENTS_LIMIT, MAX_SAFE_INTEGER, MAX_WAIT_MS};
use super::name::quote;
use super::read::Start;
use super::state::CoreState;
use super::subscription::EventFilter;
use super::time::parse_rfc3339_ms;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamMethod {
    Append,
    AppendBatch,
    GetEvent,
    GetEvents,
    GetState,
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
    PendingWork,
}

/// Which HTTP verbs reach a method on the public API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpAccess {
    Unreachable,
    Post,
    GetOrPost,
}

impl StreamMethod {
    pub const ALL: [Self; 16] = [
        Self::Append,
        Self::AppendBatch,
        Self::GetEvent,
        Self::GetEvents,
        Self::GetState,
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
        Self::PendingWork,
    ];

    pub fn js_name(self) -> &'static str {
        match self {
            Self::Append => "append",
            Self::AppendBatch => "appendBatch",
            Self::GetEvent => "getEvent",
            Self::GetEvents => "getEvents",
            Self::GetState => "getState",
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
            Self::PendingWork => "pendingWork",
        }
    }

    pub fn from_js_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.js_name() == name)
    }

    /// Internal hooks: DO JS-RPC only, and only with `STREAMS_TEST_HOOKS=1`.
    pub fn is_test_hook(self) -> bool {
        matches!(self, Self::RunIdleTeardownNow | Self::SimulateHibernation | Self::MemoryUsage | Self::RunArchiveNow | Self::PendingWork)
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
            Self::GetEvent | Self::GetEvents | Self::GetState | Self::RuntimeState => HttpAccess::GetOrPost,
            Self::Append | Self::AppendBatch | Self::Reduce | Self::Reset | Self::Kill | Self::DeleteStream => HttpAccess::Post,
            Self::RunIdleTeardownNow | Self::SimulateHibernation | Self::MemoryUsage | Self::NotifyChildStreamCreated | Self::RunArchiveNow | Self::PendingWork => HttpAccess::Unreachable,
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
            Self::Append => &["streamPath", "event", "summarizeHits"],
            Self::AppendBatch => &["streamPath", "events", "summarizeHits"],
            Self::GetEvent => &["offset", "idempotencyKey"],
            Self::GetEvents => &["afterOffset", "beforeOffset", "limit", "sinceTime", "last", "eventTypes", "waitMs"],
            Self::GetState => &["atOffset"],
            Self::Reduce => &["event", "coreProcessorState"],
            Self::NotifyChildStreamCreated => &["childPath"],
            Self::RunArchiveNow => &["nowMs", "holdAfterUpload"],
            Self::RuntimeState | Self::Reset | Self::Kill | Self::DeleteStream | Self::RunIdleTeardownNow | Self::SimulateHibernation | Self::MemoryUsage | Self::PendingWork => &[],
        }
    }

    /// Checks the argument is an object (or absent) with only known keys.
    fn arguments(self, arg: Option<Value>) -> StreamResult<Map<String, Value>> {
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

/// A call with its arguments parsed and checked: what the object executes.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Append(AppendArgs),
    GetEvent(GetEventArgs),
    GetEvents(GetEventsArgs),
    /// The state right after this offset; the current state when `None`.
    GetState(Option<u64>),
    RuntimeState,
    /// The `reduce` preview: the event, and the state to reduce it into (the live one when absent).
    Reduce(Box<Event>, Option<Box<CoreState>>),
    Reset,
    Kill,
    RunIdleTeardownNow,
    SimulateHibernation,
    MemoryUsage,
    NotifyChildStreamCreated { child_path: String },
    DeleteStream,
    /// The archive test hook: a clock for retention, and whether seals stop after their upload.
    RunArchiveNow { now_ms: Option<f64>, hold_after_upload: bool },
    PendingWork,
}

impl Call {
    /// Parses `method`'s argument (absent, or the JSON value the caller sent).
    pub fn parse(method: StreamMethod, arg: Option<Value>) -> StreamResult<Self> {
        let mut args = method.arguments(arg)?;
        Ok(match method {
            StreamMethod::Append | StreamMethod::AppendBatch => Self::Append(AppendArgs::parse(method, args)?),
            StreamMethod::GetEvent => Self::GetEvent(GetEventArgs::parse(&args)?),
            StreamMethod::GetEvents => Self::GetEvents(GetEventsArgs::parse(&args)?),
            StreamMethod::GetState => match args.get("atOffset") {
                None | Some(Value::Null) => Self::GetState(None),
                Some(v) => Self::GetState(Some(non_negative("atOffset", v)?)),
            },
            StreamMethod::RuntimeState => Self::RuntimeState,
            StreamMethod::Reduce => {
                let event = args.remove("event").ok_or_else(|| StreamError::invalid_request("event is required"))?;
                let event = parse_committed_event(event).map_err(|d| StreamError::invalid_event(format!("event[0]: {d}")))?;
                let state = match args.remove("coreProcessorState") {
                    Some(supplied) => Some(Box::new(
                        CoreState::from_value(supplied).map_err(|e| StreamError::invalid_request(format!("coreProcessorState: {e}")))?,
                    )),
                    None => None,
                };
                Self::Reduce(Box::new(event), state)
            }
            StreamMethod::Reset => Self::Reset,
            StreamMethod::Kill => Self::Kill,
            StreamMethod::RunIdleTeardownNow => Self::RunIdleTeardownNow,
            StreamMethod::SimulateHibernation => Self::SimulateHibernation,
            StreamMethod::MemoryUsage => Self::MemoryUsage,
            StreamMethod::NotifyChildStreamCreated => match args.remove("childPath") {
                Some(Value::String(child_path)) => Self::NotifyChildStreamCreated { child_path },
                _ => return Err(StreamError::invalid_request("childPath must be a string")),
            },
            StreamMethod::DeleteStream => Self::DeleteStream,
            StreamMethod::RunArchiveNow => Self::RunArchiveNow {
                now_ms: args.get("nowMs").and_then(Value::as_f64),
                hold_after_upload: args.get("holdAfterUpload").and_then(Value::as_bool).unwrap_or(false),
            },
            StreamMethod::PendingWork => Self::PendingWork,
        })
    }
}

/// `append` / `appendBatch` arguments, the single event seen as a batch of one.
#[derive(Debug, Clone, PartialEq)]
pub struct AppendArgs {
    pub stream_path: Option<String>,
    pub events: Vec<Value>,
    /// `append` returns the single event rather than an array.
    pub single: bool,
    /// An idempotency hit on an earlier call's event answers only its offset,
    /// type, key and `createdAt` (docs/access.md#operations): public HTTP sets
    /// it for a principal without `read`.
    pub summarize_hits: bool,
}

impl AppendArgs {
    fn parse(method: StreamMethod, mut args: Map<String, Value>) -> StreamResult<Self> {
        let stream_path = method.take_stream_path(&mut args)?;
        let (events, single) = if method == StreamMethod::Append {
            (vec![args.remove("event").ok_or_else(|| StreamError::invalid_request("event is required"))?], true)
        } else {
            match args.remove("events") {
                Some(Value::Array(events)) => (events, false),
                _ => return Err(StreamError::invalid_request("events must be an array")),
            }
        };
        let summarize_hits = match args.remove("summarizeHits") {
            None | Some(Value::Bool(false)) => false,
            Some(Value::Bool(true)) => true,
            Some(_) => return Err(StreamError::invalid_request("summarizeHits must be a boolean")),
        };
        Ok(Self { stream_path, events, single, summarize_hits })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GetEventArgs {
    ByOffset(u64),
    ByIdempotencyKey(String),
}

impl GetEventArgs {
    fn parse(args: &Map<String, Value>) -> StreamResult<Self> {
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

#[derive(Debug, Clone, PartialEq)]
pub struct GetEventsArgs {
    pub start: Start,
    pub before: Option<u64>,
    pub limit: usize,
    pub filter: EventFilter,
    /// How long to wait for a first event when there is none yet (long-poll).
    pub wait_ms: u64,
}

impl GetEventsArgs {
    fn parse(args: &Map<String, Value>) -> StreamResult<Self> {
        let starts = ["afterOffset", "sinceTime", "last"].into_iter().filter(|k| args.get(*k).is_some_and(|v| !v.is_null())).count();
        if starts > 1 {
            return Err(StreamError::invalid_request("getEvents takes at most one of afterOffset, sinceTime and last"));
        }
        let start = match (args.get("afterOffset"), args.get("sinceTime"), args.get("last")) {
            (Some(v), _, _) if !v.is_null() => Start::After(non_negative("afterOffset", v)?),
            (_, Some(Value::String(time)), _) => Start::SinceMs(parse_rfc3339_ms(time).ok_or_else(|| bad_since_time(time))?),
            (_, Some(v), _) if !v.is_null() => return Err(StreamError::invalid_request("sinceTime must be a string")),
            (_, _, Some(v)) if !v.is_null() => match v.as_u64() {
                Some(n) if (1..=MAX_GET_EVENTS_LIMIT as u64).contains(&n) => Start::Last(n),
                _ => return Err(StreamError::invalid_request("last must be an integer from 1 to 1000")),
            },
            _ => Start::After(0),
        };
        let before = match args.get("beforeOffset") {
            None | Some(Value::Null) => None,
            Some(v) => Some(non_negative("beforeOffset", v)?),
        };
        let limit = match (args.get("limit"), start) {
            (None, Start::Last(n)) => n as usize,
            (None, _) => DEFAULT_GET_EVENTS_LIMIT,
            (Some(_), Start::Last(_)) => return Err(StreamError::invalid_request("last and limit are exclusive")),
            (Some(v), _) => match v.as_u64() {
                Some(n) if n > MAX_GET_EVENTS_LIMIT as u64 => {
                    return Err(StreamError::invalid_request("getEvents limit must be at most 1000."))
                }
                Some(n) if n > 0 => n as usize,
                _ => return Err(StreamError::invalid_request("getEvents limit must be a positive integer.")),
            },
        };
        let filter = match args.get("eventTypes") {
            None | Some(Value::Null) => EventFilter::default(),
            // Over HTTP the query carries a comma-separated list.
            Some(Value::String(list)) => EventFilter::from_types(list.split(',').map(str::to_owned)),
            Some(Value::Array(items)) => EventFilter::from_types(
                items
                    .iter()
                    .map(|t| t.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| StreamError::invalid_request("eventTypes must be an array of strings"))?,
            ),
            Some(_) => return Err(StreamError::invalid_request("eventTypes must be an array of strings")),
        };
        let wait_ms = match args.get("waitMs") {
            None | Some(Value::Null) => 0,
            Some(v) => v
                .as_u64()
                .filter(|n| *n <= MAX_WAIT_MS)
                .ok_or_else(|| StreamError::invalid_request("waitMs must be an integer from 0 to 60000"))?,
        };
        Ok(Self { start, before, limit, filter, wait_ms })
    }
}

fn bad_since_time(given: &str) -> StreamError {
    StreamError::invalid_request(format!("sinceTime {} is not an ISO 8601 time (e.g. 2026-01-05T10:00:00Z)", quote(given)))
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

    #[test]
    fn method_names_round_trip_and_hooks_stay_internal() {
        for m in StreamMethod::ALL {
            assert_eq!(StreamMethod::from_js_name(m.js_name()), Some(m));
        }
        let public: Vec<_> = StreamMethod::ALL.into_iter().filter(|m| m.on_entrypoint()).map(StreamMethod::js_name).collect();
        assert_eq!(public, ["append", "appendBatch", "getEvent", "getEvents", "getState", "runtimeState", "reduce", "reset", "kill", "deleteStream"]);
        for hook in [StreamMethod::RunIdleTeardownNow, StreamMethod::SimulateHibernation, StreamMethod::MemoryUsage, StreamMethod::RunArchiveNow, StreamMethod::PendingWork, StreamMethod::NotifyChildStreamCreated] {
            assert_eq!(hook.http(), HttpAccess::Unreachable);
        }
        for internal in ["readCoreProcessorState", "writeCoreProcessorState", "subscribeOutbound", "fetch", "constructor"] {
            assert_eq!(StreamMethod::from_js_name(internal), None);
        }
    }

    #[test]
    fn unknown_arguments_are_refused() {
        let err = Call::parse(StreamMethod::GetEvents, Some(json!({"after": 1}))).unwrap_err();
        assert_eq!(err.to_string(), "invalid_request: unknown argument \"after\"");
        assert_eq!(Call::parse(StreamMethod::RuntimeState, None).unwrap(), Call::RuntimeState);
        assert_eq!(Call::parse(StreamMethod::Kill, Some(Value::Null)).unwrap(), Call::Kill);
        for not_an_object in [json!([]), json!("x"), json!(5)] {
            assert_eq!(Call::parse(StreamMethod::Kill, Some(not_an_object)).unwrap_err().message, "arguments must be an object");
        }
    }

    fn get_events(v: Value) -> StreamResult<GetEventsArgs> {
        match Call::parse(StreamMethod::GetEvents, Some(v))? {
            Call::GetEvents(args) => Ok(args),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn get_events_limits_are_checked() {
        let parse = get_events;
        let plain = |after, before, limit| GetEventsArgs { start: Start::After(after), before, limit, filter: EventFilter::default(), wait_ms: 0 };
        assert_eq!(parse(json!({})).unwrap(), plain(0, None, 100));
        assert_eq!(parse(json!({"limit": 0})).unwrap_err().message, "getEvents limit must be a positive integer.");
        assert_eq!(parse(json!({"limit": 1.5})).unwrap_err().message, "getEvents limit must be a positive integer.");
        assert_eq!(parse(json!({"limit": 1001})).unwrap_err().message, "getEvents limit must be at most 1000.");
        assert_eq!(parse(json!({"afterOffset": -1})).unwrap_err().message, "afterOffset must be a non-negative integer");
        assert_eq!(parse(json!({"afterOffset": 2, "beforeOffset": null, "limit": 2})).unwrap(), plain(2, None, 2));
    }

    #[test]
    fn get_events_by_time_tail_type_and_wait() {
        let parse = get_events;
        assert_eq!(parse(json!({"sinceTime": "1970-01-01T00:00:01Z"})).unwrap().start, Start::SinceMs(1000.0));
        assert_eq!(
            parse(json!({"sinceTime": "yesterday"})).unwrap_err().message,
            "sinceTime \"yesterday\" is not an ISO 8601 time (e.g. 2026-01-05T10:00:00Z)"
        );
        assert_eq!(parse(json!({"sinceTime": 5})).unwrap_err().message, "sinceTime must be a string");
        let last = parse(json!({"last": 20})).unwrap();
        assert_eq!((last.start, last.limit), (Start::Last(20), 20));
        for bad in [json!({"last": 0}), json!({"last": 1001}), json!({"last": "3"})] {
            assert_eq!(parse(bad).unwrap_err().message, "last must be an integer from 1 to 1000");
        }
        assert_eq!(parse(json!({"last": 2, "limit": 5})).unwrap_err().message, "last and limit are exclusive");
        for both in [json!({"last": 2, "afterOffset": 1}), json!({"sinceTime": "2026-01-05T10:00:00Z", "afterOffset": 1}), json!({"last": 1, "sinceTime": "x"})] {
            assert_eq!(parse(both).unwrap_err().message, "getEvents takes at most one of afterOffset, sinceTime and last");
        }
        assert_eq!(parse(json!({"eventTypes": "a, b"})).unwrap().filter, EventFilter(Some(vec!["a".into(), "b".into()])));
        assert_eq!(parse(json!({"eventTypes": ["a"]})).unwrap().filter, EventFilter(Some(vec!["a".into()])));
        assert_eq!(parse(json!({"eventTypes": [1]})).unwrap_err().message, "eventTypes must be an array of strings");
        assert_eq!(parse(json!({"waitMs": 60000})).unwrap().wait_ms, 60000);
        for bad in [json!({"waitMs": 60001}), json!({"waitMs": -1}), json!({"waitMs": 0.5})] {
            assert_eq!(parse(bad).unwrap_err().message, "waitMs must be an integer from 0 to 60000");
        }
    }

    #[test]
    fn get_event_needs_exactly_one_selector() {
        let parse = |v| Call::parse(StreamMethod::GetEvent, Some(v));
        assert_eq!(parse(json!({"offset": 3})).unwrap(), Call::GetEvent(GetEventArgs::ByOffset(3)));
        assert_eq!(parse(json!({"idempotencyKey": " k "})).unwrap(), Call::GetEvent(GetEventArgs::ByIdempotencyKey("k".into())));
        for bad in [json!({}), json!({"offset": 1, "idempotencyKey": "k"})] {
            assert_eq!(parse(bad).unwrap_err().message, "getEvent requires exactly one of offset or idempotencyKey.");
        }
    }

    #[test]
    fn append_arguments_become_a_batch() {
        let Call::Append(one) = Call::parse(StreamMethod::Append, Some(json!({"event": {"type": "x"}, "streamPath": "c"}))).unwrap() else { panic!() };
        assert_eq!((one.events.len(), one.single, one.stream_path.as_deref()), (1, true, Some("c")));
        assert_eq!(Call::parse(StreamMethod::AppendBatch, Some(json!({"events": {}}))).unwrap_err().message, "events must be an array");
        assert_eq!(Call::parse(StreamMethod::Append, Some(json!({}))).unwrap_err().message, "event is required");
    }

    #[test]
    fn reduce_and_child_notice_arguments_are_checked() {
        let parse = |m, v| Call::parse(m, Some(v)).unwrap_err().to_string();
        assert_eq!(parse(StreamMethod::Reduce, json!({})), "invalid_request: event is required");
        assert_eq!(parse(StreamMethod::Reduce, json!({"event": {"type": "x"}})), "invalid_event: event[0]: offset is required");
        let event = json!({"type": "x", "offset": 1, "createdAt": "2026-01-05T10:00:00.000Z"});
        assert!(parse(StreamMethod::Reduce, json!({"event": event, "coreProcessorState": 1})).starts_with("invalid_request: coreProcessorState: "));
        assert!(matches!(Call::parse(StreamMethod::Reduce, Some(json!({"event": event}))), Ok(Call::Reduce(_, None))));
        assert_eq!(parse(StreamMethod::NotifyChildStreamCreated, json!({"childPath": 1})), "invalid_request: childPath must be a string");
    }
}
