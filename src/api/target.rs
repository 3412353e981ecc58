//! What the entrypoint and HTTP share: naming the target stream from
//! `{namespace?, path, streamPath?}` before any DO is touched (docs/protocol.md#streampath, #service-binding),
//! and calling it.

use wasm_bindgen::JsValue;
use worker::Env;

use streams_core::name::{resolve_stream_path, DEFAULT_NAMESPACE};
use streams_core::rpc::StreamMethod;
use streams_core::{StreamError, StreamName, StreamResult};
use crate::stub::call_stream_raw;

/// Validates the namespace (default `default`), then the path, then resolves
/// `streamPath` against the path when the method takes one.
pub fn target_stream(
    method: StreamMethod,
    namespace: Option<&str>,
    path: Option<&str>,
    stream_path: Option<&str>,
) -> StreamResult<StreamName> {
    let namespace = namespace.unwrap_or(DEFAULT_NAMESPACE);
    streams_core::name::validate_namespace(namespace)?;
    let path = match path {
        None | Some("") => return Err(StreamError::invalid_path("path is required")),
        Some(path) => path,
    };
    let name = StreamName::new(namespace, path)?;
    match stream_path {
        Some(sp) if method.takes_stream_path() => {
            let resolved = resolve_stream_path(&name.path, sp)?;
            Ok(name.sibling(resolved))
        }
        _ => Ok(name),
    }
}

/// `env.STREAM.getByName(name)[method](arg)`; a rejection is passed on unchanged.
pub async fn call_target(env: &Env, name: &StreamName, method: StreamMethod, arg: &JsValue) -> Result<JsValue, JsValue> {
    let arg = (!arg.is_undefined()).then_some(arg);
    call_stream_raw(env, name, method, arg).await
}
