//! Reads of a stream that was never written (docs/protocol.md#reads-create-nothing). A read must
//! not create the stream: creating writes `S/created` and tells every ancestor, so reads of random
//! paths would grow `childPaths` without limit. A read that reaches an object holding no stream is
//! answered here, from nothing, and the platform writes nothing.

use serde_json::{json, Value};

use super::append::{plan_append, plan_inputs, AppendContext, Origin};
use super::error::{ErrorCode, StreamError, StreamResult};
use super::event::{types, EventInput};
use super::name::StreamName;
use super::reducer::reduce;
use super::rpc::{Call, GetEventArgs};
use super::state::CoreState;
use super::store::{EventStore, NewEvent, StoreError, StoredEvent, StoredState};

/// What a call on an object holding no stream does.
#[derive(Debug, Clone, PartialEq)]
pub enum OnUnwritten {
    /// Create the stream, then serve the call: an append, a subscription, an admin, internal or test call.
    Create,
    /// A read: reply with this JSON (`None`: `undefined`), as the empty stream would, writing nothing.
    Answer(Option<String>),
}

/// Decides a call on the never-written stream `name`. Reads are answered here
/// and create nothing; a read added later gets its empty answer here too (the
/// match is exhaustive). A long-poll (`waitMs`) is the platform's: it waits
/// for the first commit without creating anything.
pub fn on_unwritten(call: &Call, name: &StreamName) -> StreamResult<OnUnwritten> {
    Ok(OnUnwritten::Answer(match call {
        Call::GetEvents(_) => Some("[]".to_owned()),
        Call::GetEvent(GetEventArgs::ByOffset(offset)) => return Err(event_not_found(*offset)),
        Call::GetEvent(GetEventArgs::ByIdempotencyKey(_)) => None,
        Call::RuntimeState => Some(runtime_state_json(&empty_state(name), &empty_runtime())),
        // The state at offset 0 (or now) is the empty one; any later offset does not exist.
        Call::GetState(None | Some(0)) => Some(empty_state(name).to_json()),
        Call::GetState(Some(at)) => return Err(event_not_found(*at)),
        Call::Reduce(event, supplied) => {
            let mut state = supplied.as_deref().cloned().unwrap_or_else(|| empty_state(name));
            reduce(&mut state, event).map_err(|e| StreamError::invalid_event(format!("event[0]: {e}")))?;
            Some(state.to_json())
        }
        // Nothing to delete: answered without creating the stream (and telling its ancestors).
        Call::DeleteStream => None,
        Call::Append(_)
        | Call::Reset
        | Call::Kill
        | Call::RunIdleTeardownNow
        | Call::SimulateHibernation
        | Call::MemoryUsage
        | Call::NotifyChildStreamCreated { .. }
        | Call::RunArchiveNow { .. } => return Ok(OnUnwritten::Create),
        // The platform answers it before any boot: looking creates nothing.
        Call::PendingWork => None,
    }))
}

/// The state of a stream with no events: the initial state, named.
pub fn empty_state(name: &StreamName) -> CoreState {
    CoreState { namespace: name.namespace.clone(), path: name.path.clone(), ..CoreState::default() }
}

/// `runtime` of a stream with no connection, no pending re-dial, no teardown and nothing stored.
pub fn empty_runtime() -> Value {
    json!({
        "connections": {},
        "redial": {},
        "idleTeardownAt": null,
        "storage": {"firstOffset": 1, "hotEvents": 0, "hotBytes": 0, "archivedSegments": 0, "archivedEvents": 0, "archivedBytes": 0},
    })
}

/// `runtimeState`'s reply (docs/protocol.md#runtimestate).
pub fn runtime_state_json(state: &CoreState, runtime: &Value) -> String {
    format!(r#"{{"coreProcessorState":{},"runtime":{}}}"#, state.to_json(), runtime)
}

pub fn event_not_found(offset: u64) -> StreamError {
    StreamError::new(ErrorCode::NotFound, format!("No stream event found at offset {offset}."))
}

/// The store of a stream that was never written: no events, no state.
pub struct NoEvents;

impl EventStore for NoEvents {
    fn max_offset(&self) -> Result<u64, StoreError> {
        Ok(0)
    }
    fn read_range(&self, _: u64, _: Option<u64>, _: usize, _: usize) -> Result<Vec<StoredEvent>, StoreError> {
        Ok(Vec::new())
    }
    fn event_at(&self, _: u64) -> Result<Option<StoredEvent>, StoreError> {
        Ok(None)
    }
    fn event_by_idempotency_key(&self, _: &str) -> Result<Option<StoredEvent>, StoreError> {
        Ok(None)
    }
    fn read_state(&self) -> Result<Option<StoredState>, StoreError> {
        Ok(None)
    }
    fn commit(&self, _: &[NewEvent<'_>], _: Option<&str>) -> Result<(), StoreError> {
        Err(StoreError("a never-written stream is not written by a check".into()))
    }
    fn write_state(&self, _: &str) -> Result<(), StoreError> {
        Err(StoreError("a never-written stream is not written by a check".into()))
    }
}

/// Refuses, before anything is written, a first append that the new stream
/// would refuse: the inputs are planned after the `created` and `woken` its
/// boot writes, against a store holding nothing. So a refused append leaves a
/// never-written path as it was: no stream, no notice to any ancestor.
pub fn check_first_append(name: &StreamName, inputs: Vec<Value>, ctx: &AppendContext<'_>) -> StreamResult<()> {
    const PLACEHOLDER_ID: &str = "00000000-0000-4000-8000-000000000000";
    let boot = [
        EventInput::system(types::CREATED, json!({"namespace": name.namespace, "path": name.path, "streamId": PLACEHOLDER_ID})),
        EventInput::system(types::WOKEN, json!({"incarnationId": PLACEHOLDER_ID})),
    ];
    let stream = AppendContext { now_ms: ctx.now_ms, allowed_bindings: ctx.allowed_bindings, origin: Origin::Stream };
    let booted = plan_inputs(&CoreState::default(), boot.into(), &NoEvents, &stream)?;
    plan_append(&booted.state, inputs, &NoEvents, ctx).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::StreamMethod;

    fn name() -> StreamName {
        StreamName::new("app", "/a/b").unwrap()
    }

    fn answer(method: StreamMethod, args: Value) -> StreamResult<OnUnwritten> {
        on_unwritten(&Call::parse(method, Some(args))?, &name())
    }

    #[test]
    fn reads_answer_as_the_empty_stream() {
        assert_eq!(answer(StreamMethod::GetEvents, json!({"afterOffset": 0, "limit": 5})), Ok(OnUnwritten::Answer(Some("[]".into()))));
        let missing = answer(StreamMethod::GetEvent, json!({"offset": 1})).unwrap_err();
        assert_eq!(missing.to_string(), "not_found: No stream event found at offset 1.");
        assert_eq!(answer(StreamMethod::GetEvent, json!({"idempotencyKey": "k"})), Ok(OnUnwritten::Answer(None)));
        let Ok(OnUnwritten::Answer(Some(runtime))) = answer(StreamMethod::RuntimeState, json!({})) else { panic!("runtimeState answers") };
        let runtime: Value = serde_json::from_str(&runtime).unwrap();
        assert_eq!(runtime["coreProcessorState"]["path"], "/a/b");
        assert_eq!(runtime["coreProcessorState"]["namespace"], "app");
        assert_eq!(runtime["coreProcessorState"]["eventCount"], 0);
        assert_eq!(runtime["coreProcessorState"]["childPaths"], json!([]));
        assert_eq!(runtime["runtime"], empty_runtime());
        let Ok(OnUnwritten::Answer(Some(state))) = answer(StreamMethod::GetState, json!({})) else { panic!("getState answers") };
        assert_eq!(serde_json::from_str::<Value>(&state).unwrap()["maxOffset"], 0);
        assert_eq!(answer(StreamMethod::GetState, json!({"atOffset": 4})).unwrap_err().to_string(), "not_found: No stream event found at offset 4.");
        let event = json!({"type": "app/x", "offset": 1, "createdAt": "2026-01-05T10:00:00.000Z"});
        let Ok(OnUnwritten::Answer(Some(reduced))) = answer(StreamMethod::Reduce, json!({ "event": event })) else { panic!("reduce answers") };
        assert_eq!(serde_json::from_str::<Value>(&reduced).unwrap()["eventCount"], 1);
    }

    #[test]
    fn writes_create_the_stream() {
        assert_eq!(answer(StreamMethod::Append, json!({"event": {"type": "x"}})), Ok(OnUnwritten::Create));
        assert_eq!(answer(StreamMethod::Reset, json!({})), Ok(OnUnwritten::Create));
        assert_eq!(answer(StreamMethod::NotifyChildStreamCreated, json!({"childPath": "/a/b/c"})), Ok(OnUnwritten::Create));
    }

    #[test]
    fn a_first_append_is_checked_as_the_new_stream_would_check_it() {
        let now = || 1_767_000_000_000.0;
        let ctx = AppendContext { now_ms: &now, allowed_bindings: &[], origin: Origin::Caller };
        let check = |inputs: Value| check_first_append(&name(), inputs.as_array().cloned().unwrap(), &ctx);
        assert_eq!(check(json!([{"type": "app/x"}, {"type": "app/y", "idempotencyKey": "k"}, {"type": "app/y", "idempotencyKey": "k"}])), Ok(()));
        assert_eq!(check(json!([{"type": "app/x", "offset": 3}])), Ok(()), "the first caller event lands at offset 3");
        assert_eq!(check(json!([{"type": "app/x", "offset": 1}])).unwrap_err().to_string(), "offset_mismatch: expected offset 3, got 1");
        assert_eq!(check(json!([{"type": "app/x"}, {"type": types::CREATED}])).unwrap_err().code, ErrorCode::InvalidEvent);
        assert_eq!(check(json!([{"type": ""}])).unwrap_err().code, ErrorCode::InvalidEvent);
        let subscription = json!({"type": types::SUBSCRIPTION_CONFIGURED, "payload": {"subscriptionKey": "k", "subscriber": {"type": "callable",
            "callable": {"type": "workers-rpc", "via": {"type": "env-binding", "bindingType": "service", "bindingName": "NOPE"}}}}});
        assert_eq!(check(json!([subscription])).unwrap_err().code, ErrorCode::SubscriberNotAllowed);
    }
}
