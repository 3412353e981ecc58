//! The Worker entrypoint's RPC methods for service bindings (docs/protocol.md#service-binding): each
//! takes `{namespace? = "default", path, ...DO args}`, validates the names and
//! resolves `streamPath` here, then calls the target stream directly. Every
//! free `#[wasm_bindgen]` function becomes an entrypoint method, so this file
//! exports exactly the ten public stream methods and `listStreams`, nothing else.

use js_sys::{Object, Reflect};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::Env;

use super::target::{call_target, target_stream};
use streams_core::rpc::StreamMethod;
use streams_core::{StreamError, StreamResult};
use crate::js::{argument_json, arguments_to_json, from_js_error, from_json_text, to_js_error};
use serde_json::Value;
use streams_core::directory::ListArgs;
use streams_core::json::{parse_js_text, to_json_string};

#[wasm_bindgen(module = "cloudflare:workers")]
extern "C" {
    /// Entrypoint methods get no `env` argument; the importable `env` stands in.
    #[wasm_bindgen(thread_local_v2, js_name = env)]
    static WORKER_ENV: JsValue;
}

#[wasm_bindgen]
pub async fn append(arg: JsValue) -> Result<JsValue, JsValue> {
    forward(StreamMethod::Append, arg).await
}
#[wasm_bindgen(js_name = appendBatch)]
pub async fn append_batch(arg: JsValue) -> Result<JsValue, JsValue> {
    forward(StreamMethod::AppendBatch, arg).await
}
#[wasm_bindgen(js_name = getEvent)]
pub async fn get_event(arg: JsValue) -> Result<JsValue, JsValue> {
    forward(StreamMethod::GetEvent, arg).await
}
#[wasm_bindgen(js_name = getEvents)]
pub async fn get_events(arg: JsValue) -> Result<JsValue, JsValue> {
    forward(StreamMethod::GetEvents, arg).await
}
#[wasm_bindgen(js_name = getState)]
pub async fn get_state(arg: JsValue) -> Result<JsValue, JsValue> {
    forward(StreamMethod::GetState, arg).await
}
#[wasm_bindgen(js_name = runtimeState)]
pub async fn runtime_state(arg: JsValue) -> Result<JsValue, JsValue> {
    forward(StreamMethod::RuntimeState, arg).await
}
#[wasm_bindgen]
pub async fn reduce(arg: JsValue) -> Result<JsValue, JsValue> {
    forward(StreamMethod::Reduce, arg).await
}
#[wasm_bindgen]
pub async fn reset(arg: JsValue) -> Result<JsValue, JsValue> {
    forward(StreamMethod::Reset, arg).await
}
#[wasm_bindgen]
pub async fn kill(arg: JsValue) -> Result<JsValue, JsValue> {
    forward(StreamMethod::Kill, arg).await
}
#[wasm_bindgen(js_name = deleteStream)]
pub async fn delete_stream(arg: JsValue) -> Result<JsValue, JsValue> {
    forward(StreamMethod::DeleteStream, arg).await
}

/// `{namespace? = "default", prefix?, after?, limit? = 100}` → `{streams, next}` (docs/protocol.md#liststreams).
#[wasm_bindgen(js_name = listStreams)]
pub async fn list_streams(arg: JsValue) -> Result<JsValue, JsValue> {
    let env: Env = WORKER_ENV.with(JsValue::clone).unchecked_into();
    let page = async {
        let args = match argument_json(&arg)? {
            None => serde_json::Map::new(),
            Some(serde_json::Value::Object(map)) => map,
            Some(_) => return Err(StreamError::invalid_request("arguments must be an object")),
        };
        let page = crate::directory::list_streams(&env, &ListArgs::parse(&args)?, &|_| true).await?;
        from_json_text(&to_json_string(&page).map_err(|_| StreamError::internal())?)
    };
    page.await.map_err(|e| to_js_error(&e))
}

async fn forward(method: StreamMethod, arg: JsValue) -> Result<JsValue, JsValue> {
    let (name, rest) = split_arguments(method, &arg).map_err(|e| to_js_error(&e))?;
    let env: Env = WORKER_ENV.with(JsValue::clone).unchecked_into();
    call_target(&env, &name, method, &rest).await.map_err(|err| {
        if crate::js::is_coded_error(&err) {
            return err;
        }
        // The call failed before the stream could answer (e.g. an argument the
        // runtime cannot serialise): name the problem as the stream would.
        match arguments_to_json(&rest) {
            Err(problem) => to_js_error(&problem),
            Ok(_) => to_js_error(&from_js_error(&err)),
        }
    })
}

/// Takes `namespace`, `path` (and an append's `streamPath`) off the argument; the DO gets the rest.
/// The argument is read as text once (`parse_js_text`); one whose text cannot be trusted is split
/// key by key instead, so the stream still sees, and names, the values it refuses.
fn split_arguments(method: StreamMethod, arg: &JsValue) -> StreamResult<(streams_core::StreamName, JsValue)> {
    if !arg.is_object() || js_sys::Array::is_array(arg) {
        return Err(StreamError::invalid_request("arguments must be an object with a path"));
    }
    let text = js_sys::JSON::stringify(arg).ok().and_then(|t| crate::js::string_of(&t));
    let Some(Value::Object(mut args)) = text.as_deref().and_then(parse_js_text) else { return split_walking(method, arg) };
    let mut take = |key: &str| match args.remove(key) {
        None => Ok(None),
        Some(Value::String(value)) => Ok(Some(value)),
        Some(_) => Err(StreamError::invalid_request(format!("{key} must be a string"))),
    };
    let stream_path = if method.takes_stream_path() { take("streamPath")? } else { None };
    let (namespace, path) = (take("namespace")?, take("path")?);
    let name = target_stream(method, namespace.as_deref(), path.as_deref(), stream_path.as_deref())?;
    Ok((name, from_json_text(&Value::Object(args).to_string())?))
}

/// `split_arguments` by reading and copying each key.
fn split_walking(method: StreamMethod, arg: &JsValue) -> StreamResult<(streams_core::StreamName, JsValue)> {
    let text = |key: &str| -> StreamResult<Option<String>> {
        let value = Reflect::get(arg, &JsValue::from_str(key)).map_err(|_| StreamError::internal())?;
        if value.is_undefined() {
            return Ok(None);
        }
        value.as_string().map(Some).ok_or_else(|| StreamError::invalid_request(format!("{key} must be a string")))
    };
    let takes_stream_path = method.takes_stream_path();
    let stream_path = if takes_stream_path { text("streamPath")? } else { None };
    let name = target_stream(method, text("namespace")?.as_deref(), text("path")?.as_deref(), stream_path.as_deref())?;
    let rest = Object::new();
    let object: &Object = arg.unchecked_ref();
    for key in Object::keys(object).iter() {
        let key_name = key.as_string();
        if matches!(key_name.as_deref(), Some("namespace" | "path")) || (takes_stream_path && key_name.as_deref() == Some("streamPath")) {
            continue;
        }
        let value = Reflect::get(arg, &key).map_err(|_| StreamError::internal())?;
        Reflect::set(&rest, &key, &value).map_err(|_| StreamError::internal())?;
    }
    Ok((name, rest.into()))
}
