//! What the entrypoint and HTTP share: naming the target stream from
//! `{namespace?, path, streamPath?}` before any DO is touched (spec §5.3, §9.2),
//! and calling it.

use wasm_bindgen::JsValue;
use worker::Env;

use crate::core::name::{resolve_stream_path, DEFAULT_NAMESPACE};
use crate::core::rpc::StreamMethod;
use crate::core::{StreamError, StreamName, StreamResult};
use crate::stub::{call_method, STREAM_BINDING};

/// Validates the namespace (default `default`), then the path, then resolves
/// `streamPath` against the path when the method takes one.
pub fn target_stream(
    method: StreamMethod,
    namespace: Option<&str>,
    path: Option<&str>,
    stream_path: Option<&str>,
) -> StreamResult<StreamName> {
    let namespace = namespace.unwrap_or(DEFAULT_NAMESPACE);
    crate::core::name::validate_namespace(namespace)?;
    let path = match path {
        None | Some("") => return Err(StreamError::invalid_path("path is required")),
        Some(path) => path,
    };
    let name = StreamName::new(namespace, path)?;
    match stream_path {
        Some(sp) if matches!(method, StreamMethod::Append | StreamMethod::AppendBatch) => {
            let resolved = resolve_stream_path(&name.path, sp)?;
            Ok(name.sibling(resolved))
        }
        _ => Ok(name),
    }
}

/// `env.STREAM.getByName(name)[method](arg)`; a rejection is passed on unchanged.
pub async fn call_target(env: &Env, name: &StreamName, method: StreamMethod, arg: &JsValue) -> Result<JsValue, JsValue> {
    let stub = env
        .durable_object(STREAM_BINDING)
        .and_then(|ns| ns.get_by_name(&name.do_name()))
        .map_err(|e| {
            worker::console_error!("no stub for {}: {e}", name.do_name());
            crate::js::to_js_error(&StreamError::internal())
        })?
        .into_rpc::<js_sys::Object>();
    let arg = (!arg.is_undefined()).then_some(arg);
    call_method(&stub, method.js_name(), arg).await
}
