//! Calling a stream's DO: the one place that builds a `Stream` stub, and JS
//! RPC calls on it (forwarding, ancestor notices, the public surfaces).

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use worker::{Env, Stub};

use crate::js::from_js_error;
use streams_core::rpc::StreamMethod;
use streams_core::{StreamError, StreamName};

const STREAM_BINDING: &str = "STREAM";

/// `env.STREAM.getByName(name)`; a missing binding is logged and `internal`.
pub fn stream_stub(env: &Env, name: &StreamName) -> Result<Stub, StreamError> {
    env.durable_object(STREAM_BINDING).and_then(|ns| ns.get_by_name(&name.do_name())).map_err(|e| {
        worker::console_error!("no stub for {}: {e}", name.do_name());
        StreamError::internal()
    })
}

/// `env.STREAM.getByName(name)[method](arg)`; a rejection is passed on unchanged.
pub async fn call_stream_raw(env: &Env, name: &StreamName, method: StreamMethod, arg: Option<&JsValue>) -> Result<JsValue, JsValue> {
    let stub = stream_stub(env, name).map_err(|e| crate::js::to_js_error(&e))?.into_rpc::<js_sys::Object>();
    call_method(&stub, method.js_name(), arg).await
}

/// `env.STREAM.getByName(name)[method](arg)`. Errors keep their code and message.
pub async fn call_stream(env: &Env, name: &StreamName, method: StreamMethod, arg: Option<&JsValue>) -> Result<JsValue, StreamError> {
    call_stream_raw(env, name, method, arg).await.map_err(|e| from_js_error(&e))
}

/// `target[method](arg)`, awaited.
pub async fn call_method(target: &JsValue, method: &str, arg: Option<&JsValue>) -> Result<JsValue, JsValue> {
    let function: Function = Reflect::get(target, &JsValue::from_str(method))?.dyn_into()?;
    let args = js_sys::Array::new();
    if let Some(arg) = arg {
        args.push(arg);
    }
    // Reflect.apply, not `function.call(…)`: on an RPC stub `.call` would be
    // read as a remote property.
    let returned = Reflect::apply(&function, target, &args)?;
    JsFuture::from(Promise::resolve(&returned)).await
}
