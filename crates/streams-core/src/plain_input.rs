//! The append path's shortcut (docs/architecture.md#the-append-path): the inputs of an `append`
//! or `appendBatch` read straight from the text `JSON.stringify` wrote for its argument. A
//! caller's payload and metadata go into the committed JSON as that very text, with no tree
//! parsed and written back: for such text (`is_plain_js_text`) both give the same bytes.
//! Anything else — a stream-written type, a `source`, a `streamPath`, a value that text may
//! misrepresent, an input that breaks a rule — is `None`, and the call takes the general path
//! (`parse_event_input`), which also words every error.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::event::{trimmed_key, types, EventInput};
use super::json::is_plain_js_text;
use super::limits::{MAX_JSON_DEPTH, MAX_SAFE_INTEGER, MAX_TYPE_BYTES};

/// `append`'s argument (`event`) or `appendBatch`'s (`events`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Arguments<'a> {
    #[serde(borrow)]
    event: Option<Input<'a>>,
    #[serde(borrow)]
    events: Option<Vec<Input<'a>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input<'a> {
    #[serde(rename = "type", borrow)]
    event_type: Cow<'a, str>,
    #[serde(borrow)]
    payload: Option<&'a RawValue>,
    #[serde(borrow)]
    metadata: Option<&'a RawValue>,
    #[serde(rename = "idempotencyKey", borrow)]
    idempotency_key: Option<Cow<'a, str>>,
    offset: Option<u64>,
}

/// A call's inputs, read by `plain_append_inputs`.
#[derive(Debug, Clone, PartialEq)]
pub struct PlainInputs {
    pub inputs: Vec<EventInput>,
    /// The JSON length of the inputs as an array (`[a,b,…]`), which the batch limit counts.
    pub bytes: usize,
}

/// The inputs of an `append` (`single`) or `appendBatch` argument, from the text
/// `JSON.stringify` wrote for it; `None`: take the general path.
pub fn plain_append_inputs(text: &str, single: bool) -> Option<PlainInputs> {
    if !is_plain_js_text(text, MAX_JSON_DEPTH) {
        return None;
    }
    // The text holds only the one key (unknown keys are refused) and no whitespace, so
    // the events' array is the text without `{"events":` and `}`; an event alone also
    // lacks the array's brackets.
    let (events, bytes) = match (serde_json::from_str::<Arguments>(text).ok()?, single) {
        (Arguments { event: Some(event), events: None }, true) => (vec![event], (text.len() + 2).checked_sub(r#"{"event":}"#.len())?),
        (Arguments { event: None, events: Some(events) }, false) => (events, text.len().checked_sub(r#"{"events":}"#.len())?),
        _ => return None,
    };
    let inputs = events.into_iter().map(plain_input).collect::<Option<Vec<_>>>()?;
    Some(PlainInputs { inputs, bytes })
}

fn plain_input(input: Input<'_>) -> Option<EventInput> {
    let event_type = input.event_type.into_owned();
    if !(1..=MAX_TYPE_BYTES).contains(&event_type.len()) || types::is_system(&event_type) {
        return None;
    }
    let idempotency_key = match input.idempotency_key {
        Some(key) => Some(trimmed_key(&key).ok().filter(|key| types::reserved_key_prefix(key).is_none())?),
        None => None,
    };
    if input.offset.is_some_and(|offset| offset > MAX_SAFE_INTEGER) || input.metadata.is_some_and(|m| !m.get().starts_with('{')) {
        return None;
    }
    let fields_bytes = input.payload.map_or(0, |p| p.get().len() + 12) + input.metadata.map_or(0, |m| m.get().len() + 13);
    let mut fields = String::with_capacity(fields_bytes);
    for (name, value) in [("payload", input.payload), ("metadata", input.metadata)] {
        if let Some(value) = value {
            fields.push_str(",\"");
            fields.push_str(name);
            fields.push_str("\":");
            fields.push_str(value.get());
        }
    }
    Some(EventInput {
        event_type,
        payload: None,
        metadata: None,
        source: None,
        idempotency_key,
        offset: input.offset,
        written_fields: Some(fields),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str, single: bool) -> Option<Vec<(Option<String>, Option<String>)>> {
        plain_append_inputs(text, single).map(|plain| plain.inputs.into_iter().map(|input| (input.written_fields, input.idempotency_key)).collect())
    }

    #[test]
    fn domain_events_keep_their_text() {
        let event = r#"{"payload":{"n":1.5,"s":"a\"b\n","a":[1,true,{"x":-2e-7}]},"type":"app/x","metadata":{"m":"2026"},"idempotencyKey":" k "}"#;
        let array = format!(r#"[{event},{{"type":"app/y"}}]"#);
        let plain = plain_append_inputs(&format!(r#"{{"events":{array}}}"#), false).unwrap();
        assert_eq!(plain.bytes, array.len());
        let got: Vec<_> = plain.inputs.into_iter().map(|input| (input.written_fields, input.idempotency_key)).collect();
        assert_eq!(got[0], (Some(r#","payload":{"n":1.5,"s":"a\"b\n","a":[1,true,{"x":-2e-7}]},"metadata":{"m":"2026"}"#.to_owned()), Some("k".to_owned())));
        assert_eq!(got[1], (Some(String::new()), None));
        let single = r#"{"type":"app/x","offset":7}"#;
        assert_eq!(plain_append_inputs(&format!(r#"{{"event":{single}}}"#), true).unwrap().bytes, single.len() + 2, "as a batch of one");
    }

    #[test]
    fn anything_unusual_takes_the_general_path() {
        for text in [
            r#"{"events":[{"type":"app/x","payload":null}]}"#,
            r#"{"events":[{"type":"app/x","payload":{"a":[1,null]}}]}"#,
            r#"{"events":[{"type":"app/x","payload":{}}]}"#,
            r#"{"events":[{"type":"app/x","payload":{"0":1}}]}"#,
            r#"{"events":[{"type":"app/x","payload":"2026-01-05T10:00:00.000Z"}]}"#,
            r#"{"events":[{"type":"app/x","payload":"\ud800"}]}"#,
            r#"{"events":[{"type":"events.iterate.com/stream/paused","payload":{"reason":"r"}}]}"#,
            r#"{"events":[{"type":"app/x","source":{"processor":{"slug":"s","version":"1"}}}]}"#,
            r#"{"events":[{"type":"app/x"}],"streamPath":"/a"}"#,
            r#"{"events":[{"type":"app/x","foo":1}]}"#,
            r#"{"events":[{"type":"app/x","type":"app/y"}]}"#,
            r#"{"events":[{"type":""}]}"#,
            r#"{"events":[{"type":5}]}"#,
            r#"{"events":[{"type":"app/x","idempotencyKey":"  "}]}"#,
            r#"{"events":[{"type":"app/x","idempotencyKey":"stream-paused:3"}]}"#,
            r#"{"events":[{"type":"app/x","offset":-1}]}"#,
            r#"{"events":[{"type":"app/x","offset":9007199254740992}]}"#,
            r#"{"events":[{"type":"app/x","metadata":[1]}]}"#,
            r#"{"events":["app/x"]}"#,
            r#"{"event":{"type":"app/x"}}"#,
            r#"{"events":[{"type":"app/x"}"#,
        ] {
            assert!(fields(text, false).is_none(), "{text}");
        }
        assert!(fields(r#"{"events":[{"type":"app/x"}]}"#, true).is_none(), "append takes `event`");
        let deep = format!(r#"{{"events":[{{"type":"app/x","payload":{}1{}}}]}}"#, "[".repeat(126), "]".repeat(126));
        assert!(fields(&deep, false).is_none());
        let deep_enough = format!(r#"{{"events":[{{"type":"app/x","payload":{}1{}}}]}}"#, "[".repeat(125), "]".repeat(125));
        assert!(fields(&deep_enough, false).is_some());
    }
}
