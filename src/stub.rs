//! Calling another stream's DO over JS RPC (forwarding and ancestor notices).

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use worker::Env;

use crate::core::rpc::StreamMethod;
use crate::core::{StreamError, StreamName};
use crate::js::from_js_error;

pub const STREAM_BINDING: &str = "STREAM";

/// `env.STREAM.getByName(name)[method](arg)`. Errors keep their code and message.
pub async fn call_stream(env: &Env, name: &StreamName, method: StreamMethod, arg: Option<&JsValue>) -> Result<JsValue, StreamError> {
    let stub = env
        .durable_object(STREAM_BINDING)
        .and_then(|ns| ns.get_by_name(&name.do_name()))
        .map_err(|e| {
            worker::console_error!("no stub for {}: {e}", name.do_name());
            StreamError::internal()
        })?
        .into_rpc::<js_sys::Object>();
    call_method(&stub, method.js_name(), arg).await.map_err(|e| from_js_error(&e))
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
