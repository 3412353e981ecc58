//! Crossing the JS boundary: a call's argument into JSON in one crossing (or,
//! when its text cannot be trusted, by walking it and refusing what JSON cannot
//! hold), JSON text back into JS values, and errors as JS `Error`s whose message
//! is `<code>: <message>` (docs/protocol.md#append-input, #errors).

use js_sys::{Array, JsString, Object, Reflect};
use serde_json::{Map, Value};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};

use streams_core::json::{js_key_order, number_value, parse_js_text, raw_array};
use streams_core::limits::MAX_JSON_DEPTH;
use streams_core::{ErrorCode, StreamError};

/// Converts a structured-clone value into JSON. A property set to `undefined`
/// is absent; NaN, ±Infinity, BigInt, Date, Map, typed arrays, functions and
/// other class instances are refused. The error is `<path>: <why>`.
pub fn to_json(value: &JsValue, path: &str) -> Result<Value, String> {
    convert(value, 0).map_err(|problem| problem.describe(path))
}

/// A value JSON cannot hold: where (innermost segment first) and why.
struct Problem {
    reversed_path: Vec<String>,
    why: String,
}

impl Problem {
    fn new(why: String) -> Self {
        Self { reversed_path: Vec::new(), why }
    }

    fn within(mut self, segment: String) -> Self {
        self.reversed_path.push(segment);
        self
    }

    fn describe(self, root: &str) -> String {
        let mut path = root.to_owned();
        for segment in self.reversed_path.into_iter().rev() {
            if !segment.starts_with('[') && !path.is_empty() {
                path.push('.');
            }
            path.push_str(&segment);
        }
        if path.is_empty() {
            self.why
        } else {
            format!("{path}: {}", self.why)
        }
    }
}

fn convert(value: &JsValue, depth: usize) -> Result<Value, Problem> {
    convert_or_undefined(value, depth)?.ok_or_else(|| Problem::new("undefined is not a JSON value".into()))
}

/// `None` for `undefined`, which only a property may be (it is then absent).
/// Every probe is a crossing into JS, so the likely kinds come first, and
/// `undefined` (refused or skipped) is asked about only once nothing else fits.
fn convert_or_undefined(value: &JsValue, depth: usize) -> Result<Option<Value>, Problem> {
    if let Some(text) = value.as_string() {
        // The UTF-16 → UTF-8 copy turns a lone surrogate into U+FFFD; only
        // then is the original worth a second look.
        if text.contains('\u{FFFD}') && !value.unchecked_ref::<JsString>().is_valid_utf16() {
            return Err(Problem::new("strings must be valid Unicode (found a lone surrogate)".into()));
        }
        return Ok(Some(Value::String(text)));
    }
    if let Some(x) = value.as_f64() {
        if !x.is_finite() {
            // Named by hand: formatting an f64 would link Rust's float printer.
            let name = if x.is_nan() { "NaN" } else if x > 0.0 { "inf" } else { "-inf" };
            return Err(Problem::new(format!("{name} is not a JSON number")));
        }
        return Ok(Some(number_value(x)));
    }
    if value.is_object() {
        return convert_object(value, depth).map(Some);
    }
    if let Some(b) = value.as_bool() {
        return Ok(Some(Value::Bool(b)));
    }
    if value.is_null() {
        return Ok(Some(Value::Null));
    }
    if value.is_undefined() {
        return Ok(None);
    }
    Err(Problem::new(format!("{} is not a JSON value", kind_of(value))))
}

/// An array or a plain object (anything else is refused by its class name).
fn convert_object(value: &JsValue, depth: usize) -> Result<Value, Problem> {
    if depth >= MAX_JSON_DEPTH {
        return Err(Problem::new(format!("values may nest at most {MAX_JSON_DEPTH} levels deep")));
    }
    if Array::is_array(value) {
        let array: &Array = value.unchecked_ref();
        let mut items = Vec::with_capacity(array.length() as usize);
        for (i, item) in array.iter().enumerate() {
            items.push(convert(&item, depth + 1).map_err(|p| p.within(format!("[{i}]")))?);
        }
        return Ok(Value::Array(items));
    }
    if !is_plain_object(value) {
        return Err(Problem::new(format!("{} is not a JSON value", kind_of(value))));
    }
    let object: &Object = value.unchecked_ref();
    let mut entries = Vec::new();
    for key in Object::keys(object).iter() {
        let Some(name) = key.as_string() else { continue };
        let item = Reflect::get(object, &key).map_err(|_| Problem::new("unreadable property".into()))?;
        if let Some(converted) = convert_or_undefined(&item, depth + 1).map_err(|p| p.within(name.clone()))? {
            entries.push((name, converted));
        }
    }
    Ok(Value::Object(js_key_order(entries.into_iter())))
}

thread_local! {
    /// This realm's `Object.prototype`, where structured clones of plain objects point.
    static OBJECT_PROTOTYPE: Object = Object::get_prototype_of(&Object::new());
}

/// An object whose prototype is `Object.prototype` or null, or whose
/// prototype's prototype is null.
fn is_plain_object(value: &JsValue) -> bool {
    let proto = Object::get_prototype_of(value);
    OBJECT_PROTOTYPE.with(|object_prototype| proto == *object_prototype) || proto.is_null() || Object::get_prototype_of(&proto).is_null()
}

fn kind_of(value: &JsValue) -> String {
    if value.is_undefined() {
        return "undefined".into();
    }
    if value.is_bigint() {
        return "a BigInt".into();
    }
    if value.is_function() {
        return "a function".into();
    }
    if value.is_symbol() {
        return "a symbol".into();
    }
    let name = Reflect::get(&Object::get_prototype_of(value), &JsValue::from_str("constructor"))
        .ok()
        .and_then(|c| Reflect::get(&c, &JsValue::from_str("name")).ok())
        .and_then(|n| n.as_string())
        .unwrap_or_else(|| "object".into());
    format!("a {name}")
}

/// Above this many UTF-16 units an argument is walked rather than copied in as
/// text: its big strings cost the same either way, and the text would double
/// the argument's footprint in wasm memory while it is parsed.
const TEXT_LIMIT_UNITS: u32 = 1024 * 1024;

/// A call's argument as JSON (`None`: absent): `JSON.stringify` in JS, one
/// copy of the text into wasm, one parse. A value whose text may misrepresent
/// it (`parse_js_text`), or that `JSON.stringify` refuses (a BigInt, a cycle),
/// is walked by `arguments_to_json`, which names the refused value exactly.
pub fn argument_json(arg: &JsValue) -> Result<Option<Value>, StreamError> {
    if arg.is_undefined() {
        return Ok(None);
    }
    argument_json_from(arg, argument_text(arg).as_deref())
}

/// `argument_json`, given the argument's `argument_text`.
pub fn argument_json_from(arg: &JsValue, text: Option<&str>) -> Result<Option<Value>, StreamError> {
    match text.and_then(parse_js_text) {
        Some(value) => Ok(Some(value)),
        None => arguments_to_json(arg),
    }
}

/// The text `JSON.stringify` writes for a call's argument, copied into wasm once; `None`
/// when it refuses the value or the text is too long to take whole.
pub fn argument_text(arg: &JsValue) -> Option<String> {
    // `JSON.stringify` answers `undefined` for `undefined` and a function.
    let text = js_sys::JSON::stringify(arg).ok().filter(|text| text.is_string())?;
    if text.length() > TEXT_LIMIT_UNITS {
        return None;
    }
    string_of(&text)
}

/// Converts an RPC argument object key by key, so an event's problem is an
/// `invalid_event` naming the event and anything else an `invalid_request`.
pub fn arguments_to_json(arg: &JsValue) -> Result<Option<Value>, StreamError> {
    if !arg.is_object() {
        return if arg.is_undefined() || arg.is_null() { Ok(None) } else { Err(StreamError::invalid_request("arguments must be an object")) };
    }
    if Array::is_array(arg) || !is_plain_object(arg) {
        return Err(StreamError::invalid_request("arguments must be an object"));
    }
    let object: &Object = arg.unchecked_ref();
    let mut map = Map::new();
    for key in Object::keys(object).iter() {
        let Some(name) = key.as_string() else { continue };
        let item = Reflect::get(object, &key).map_err(|_| StreamError::internal())?;
        if item.is_undefined() {
            continue;
        }
        let value = match name.as_str() {
            "event" => to_json(&item, "").map_err(|e| StreamError::invalid_event(format!("event[0]: {e}")))?,
            "events" if Array::is_array(&item) => {
                let array: &Array = item.unchecked_ref();
                let mut events = Vec::with_capacity(array.length() as usize);
                for (i, event) in array.iter().enumerate() {
                    events.push(to_json(&event, "").map_err(|e| StreamError::invalid_event(format!("event[{i}]: {e}")))?);
                }
                Value::Array(events)
            }
            _ => to_json(&item, &name).map_err(StreamError::invalid_request)?,
        };
        map.insert(name, value);
    }
    Ok(Some(Value::Object(map)))
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = JSON, js_name = parse, catch)]
    fn json_parse(text: &JsValue) -> Result<JsValue, JsValue>;

    type TextEncoder;
    #[wasm_bindgen(constructor)]
    fn new() -> TextEncoder;
    #[wasm_bindgen(method)]
    fn encode(this: &TextEncoder, text: &JsValue) -> js_sys::Uint8Array;
}

thread_local! {
    static UTF8: TextEncoder = TextEncoder::new();
}

/// Below this many UTF-16 units, wasm-bindgen's own copy is as fast.
const SHORT_TEXT_UNITS: u32 = 256;

/// A JS string as a Rust one (`None`: not a string). wasm-bindgen copies a
/// string one UTF-16 unit at a time in a JS loop, which cost a 100-event batch
/// a third of its time; `TextEncoder` and one bulk copy do it natively. Both
/// turn a lone surrogate into U+FFFD.
pub fn string_of(value: &JsValue) -> Option<String> {
    if !value.is_string() {
        return None;
    }
    if value.unchecked_ref::<JsString>().length() < SHORT_TEXT_UNITS {
        return value.as_string();
    }
    String::from_utf8(UTF8.with(|utf8| utf8.encode(value)).to_vec()).ok()
}

/// `JSON.parse` of a JS string that never enters wasm (e.g. a page SQLite
/// joined); `None` when it is not a string or not JSON.
pub fn parse_in_js(text: &JsValue) -> Option<JsValue> {
    if !text.is_string() {
        return None;
    }
    json_parse(text).ok()
}

/// Parses JSON text this crate wrote into a JS value.
pub fn from_json_text(json: &str) -> Result<JsValue, StreamError> {
    js_sys::JSON::parse(json).map_err(|_| StreamError::internal())
}

/// Up to this much JSON, an array of texts is joined and parsed at once;
/// above it, each text is parsed alone (no joined copy in wasm memory).
const JOIN_LIMIT_BYTES: usize = 1024 * 1024;

/// A JS array of JSON texts this crate wrote (stored or committed events).
pub fn from_json_texts(texts: &[&str]) -> Result<JsValue, StreamError> {
    if texts.iter().map(|t| t.len() + 1).sum::<usize>() <= JOIN_LIMIT_BYTES {
        return from_json_text(&raw_array(texts.iter().copied()));
    }
    let array = Array::new_with_length(texts.len() as u32);
    for (i, text) in texts.iter().enumerate() {
        array.set(i as u32, from_json_text(text)?);
    }
    Ok(array.into())
}

pub fn to_js_error(err: &StreamError) -> JsValue {
    js_sys::Error::new(&err.to_string()).into()
}

/// Whether `err` carries a `<code>: <message>` of ours.
pub fn is_coded_error(err: &JsValue) -> bool {
    Reflect::get(err, &JsValue::from_str("message"))
        .ok()
        .and_then(|m| m.as_string())
        .is_some_and(|m| StreamError::parse(&m).is_some())
}

/// The text of a subscriber's rejection, kept whole: its `message` (prefixed with the
/// error's name unless that is plain `Error`), or what the value prints as.
pub fn rejection_text(err: &JsValue) -> String {
    let text = |key: &str| Reflect::get(err, &JsValue::from_str(key)).ok().and_then(|v| v.as_string());
    match (text("name"), text("message")) {
        (Some(name), Some(message)) if name != "Error" => format!("{name}: {message}"),
        (_, Some(message)) => message,
        _ => err.as_string().unwrap_or_else(|| format!("{err:?}")),
    }
}

/// Reads a `<code>: <message>` error thrown across an RPC hop; anything else
/// is logged and becomes `internal`.
pub fn from_js_error(err: &JsValue) -> StreamError {
    let message = Reflect::get(err, &JsValue::from_str("message")).ok().and_then(|m| m.as_string());
    match message.as_deref().and_then(StreamError::parse) {
        Some(parsed) => parsed,
        None => {
            worker::console_error!("call failed: {}", message.unwrap_or_else(|| format!("{err:?}")));
            StreamError::new(ErrorCode::Internal, "internal error")
        }
    }
}
