//! Crossing the JS boundary: JS values into strict JSON (rejecting what JSON
//! cannot hold), JSON text back into JS values, and errors as JS `Error`s
//! whose message is `<code>: <message>` (spec §3.1, §8).

use js_sys::{Array, JsString, Object, Reflect};
use serde_json::{Map, Value};
use wasm_bindgen::{JsCast, JsValue};

use crate::core::json::{js_key_order, number_value};
use crate::core::limits::MAX_JSON_DEPTH;
use crate::core::{ErrorCode, StreamError};

/// Converts a structured-clone value into JSON. A property set to `undefined`
/// is absent; NaN, ±Infinity, BigInt, Date, Map, typed arrays, functions and
/// other class instances are refused. The error is `<path>: <why>`.
pub fn to_json(value: &JsValue, path: &str) -> Result<Value, String> {
    convert(value, path, 0)
}

fn convert(value: &JsValue, path: &str, depth: usize) -> Result<Value, String> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    if let Some(b) = value.as_bool() {
        return Ok(Value::Bool(b));
    }
    if let Some(x) = value.as_f64() {
        if !x.is_finite() {
            return Err(describe(path, &format!("{x} is not a JSON number")));
        }
        return Ok(number_value(x));
    }
    if value.is_string() {
        let s: &JsString = value.unchecked_ref();
        if !s.is_valid_utf16() {
            return Err(describe(path, "strings must be valid Unicode (found a lone surrogate)"));
        }
        return Ok(Value::String(String::from(s)));
    }
    if depth >= MAX_JSON_DEPTH {
        return Err(describe(path, &format!("values may nest at most {MAX_JSON_DEPTH} levels deep")));
    }
    if Array::is_array(value) {
        let array: &Array = value.unchecked_ref();
        let mut items = Vec::with_capacity(array.length() as usize);
        for (i, item) in array.iter().enumerate() {
            items.push(convert(&item, &format!("{path}[{i}]"), depth + 1)?);
        }
        return Ok(Value::Array(items));
    }
    if value.is_object() && is_plain_object(value) {
        let object: &Object = value.unchecked_ref();
        let mut entries = Vec::new();
        for key in Object::keys(object).iter() {
            let Some(name) = key.as_string() else { continue };
            let item = Reflect::get(object, &key).map_err(|_| describe(path, "unreadable property"))?;
            if item.is_undefined() {
                continue;
            }
            let child = if path.is_empty() { name.clone() } else { format!("{path}.{name}") };
            entries.push((name, convert(&item, &child, depth + 1)?));
        }
        return Ok(Value::Object(js_key_order(entries.into_iter())));
    }
    Err(describe(path, &format!("{} is not a JSON value", kind_of(value))))
}

fn describe(path: &str, why: &str) -> String {
    if path.is_empty() {
        why.to_owned()
    } else {
        format!("{path}: {why}")
    }
}

/// An object whose prototype is `Object.prototype` or null.
fn is_plain_object(value: &JsValue) -> bool {
    let proto = Object::get_prototype_of(value);
    proto.is_null() || Object::get_prototype_of(&proto).is_null()
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

/// Converts an RPC argument object key by key, so an event's problem is an
/// `invalid_event` naming the event and anything else an `invalid_request`.
pub fn arguments_to_json(arg: &JsValue) -> Result<Option<Value>, StreamError> {
    if arg.is_undefined() || arg.is_null() {
        return Ok(None);
    }
    if !arg.is_object() || Array::is_array(arg) || !is_plain_object(arg) {
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

/// Parses JSON text this crate wrote into a JS value.
pub fn from_json_text(json: &str) -> Result<JsValue, StreamError> {
    js_sys::JSON::parse(json).map_err(|_| StreamError::internal())
}

pub fn to_js_error(err: &StreamError) -> JsValue {
    js_sys::Error::new(&err.to_string()).into()
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
