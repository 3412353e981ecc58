//! Public HTTP (docs/protocol.md#http-routes): `/api/streams/<method>` for the allowlisted
//! methods and the WebSocket route. Checks run in this order: CORS preflight
//! and WebSocket origin → credentials → route and verb → admin token →
//! operation → body (size, then JSON) → names → `configure` for control
//! events → token scope → call.

use futures::StreamExt;
use serde_json::{Map, Value};
use wasm_bindgen::JsValue;
use worker::{event, ByteStream, Context, Env, Headers, Method, Request, RequestInit, Response};

use super::auth::{Gate, ACCESS_TOKEN_PARAM};
use super::target::{call_target, target_stream};
use crate::wire::{error_response, json_response};
use streams_core::access::{is_admin, Access};
use streams_core::inbound::{SocketIdentity, IDENTITY_HEADER};
use crate::directory::list_streams;
use streams_core::directory::ListArgs;
use streams_core::json::{parse_json, to_json_string, to_json_string_sized};
use streams_core::limits::MAX_BATCH_JSON_BYTES;
use streams_core::name::quote;
use streams_core::rpc::{HttpAccess, StreamMethod};
use streams_core::token::Op;
use streams_core::{ErrorCode, StreamError, StreamName, StreamResult};
use crate::js::from_json_text;
use crate::query;
use crate::stub::stream_stub;

const ROUTE_PREFIX: &str = "/api/streams/";
const SUBSCRIBE: &str = "subscribe";
const LIST_STREAMS: &str = "listStreams";

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    console_error_panic_hook::set_once();
    let gate = Gate::from_env(&env);
    let origin = req.headers().get("origin").ok().flatten();
    let response = match serve(req, &env, &gate).await {
        Ok(response) => response,
        Err(Refusal { error, status, allow }) => {
            let mut response = error_response(&error, status)?;
            if let Some(allow) = allow {
                response.headers_mut().set("allow", allow)?;
            }
            response
        }
    };
    gate.with_cors(response, origin.as_deref())
}

pub(super) struct Refusal {
    error: StreamError,
    status: Option<u16>,
    allow: Option<&'static str>,
}

impl From<StreamError> for Refusal {
    fn from(error: StreamError) -> Self {
        Self { error, status: None, allow: None }
    }
}

fn unauthorized(message: &str, status: u16) -> Refusal {
    Refusal { error: StreamError::new(ErrorCode::Unauthorized, message), status: Some(status), allow: None }
}

/// Which route a request names.
enum Route {
    Method(StreamMethod),
    Subscribe,
    ListStreams,
}

async fn serve(mut req: Request, env: &Env, gate: &Gate) -> Result<Response, Refusal> {
    let path = req.path();
    let raw_query = query::raw_query(&req);
    let verb = req.method();
    let origin = req.headers().get("origin").ok().flatten();
    if verb == Method::Options {
        if let Some(answer) = gate.preflight(origin.as_deref()) {
            return Ok(answer?);
        }
    }
    let query = Query::parse(&raw_query);
    // Browsers cannot set headers on a WebSocket, so only that route reads a
    // token from the query.
    let on_socket_route = path.strip_prefix(ROUTE_PREFIX) == Some(SUBSCRIBE);
    if on_socket_route && (is_upgrade(&req) || wants_sse(&req)) {
        gate.check_upgrade_origin(origin.as_deref())?;
    }
    let bearer = bearer_token(req.headers());
    let query_token = if on_socket_route { query.get(ACCESS_TOKEN_PARAM) } else { None };
    let access = Access::authenticate(&gate.keys(), bearer.as_deref(), query_token, js_sys::Date::now())?;

    let route = route(&path, &verb)?;

    if let Route::Method(method) = route {
        if method.needs_admin() && !is_admin(&gate.keys(), bearer.as_deref()) {
            return Err(unauthorized("admin token required", 403));
        }
    }
    let op = match route {
        Route::Subscribe | Route::ListStreams => Some(Op::Read),
        Route::Method(method) => Op::for_method(method),
    };
    if let Some(op) = op {
        access.allow_op(op)?;
    }

    match route {
        Route::Subscribe => {
            let name = target_stream(StreamMethod::GetEvents, query.get("namespace"), query.get("path"), None)?;
            access.allow_stream(&name)?;
            let identity = SocketIdentity::of(&access, bearer.as_deref().or(query_token));
            subscribe(req, env, &name, &raw_query, &identity).await
        }
        Route::ListStreams => {
            let mut args = query.arguments()?;
            if let Some(namespace) = query.get("namespace") {
                args.insert("namespace".into(), Value::String(namespace.to_owned()));
            }
            let args = ListArgs::parse(&args)?;
            access.allow_namespace(&args.namespace)?;
            let page = list_streams(env, &args, &|path| access.covers(&args.namespace, path)).await?;
            Ok(json_response(to_json_string(&page).map_err(|_| StreamError::internal())?).map_err(|_| StreamError::internal())?)
        }
        Route::Method(method) => {
            let (name, args, body_bytes) = if verb == Method::Get {
                let name = target_stream(method, query.get("namespace"), query.get("path"), None)?;
                (name, query.arguments()?, 0)
            } else {
                let (mut args, body_bytes) = read_body(&mut req).await?;
                let stream_path = method.take_stream_path(&mut args)?;
                let namespace = name_part(&query, &mut args, "namespace")?;
                let path = name_part(&query, &mut args, "path")?;
                let name = target_stream(method, namespace.as_deref(), path.as_deref(), stream_path.as_deref())?;
                access.allow_control_events(method, &args)?;
                if access.summarizes_hits(method) {
                    args.insert("summarizeHits".to_owned(), Value::Bool(true));
                }
                (name, args, body_bytes)
            };
            access.allow_stream(&name)?;
            call(env, &name, method, args, body_bytes).await
        }
    }
}

fn route(path: &str, verb: &Method) -> Result<Route, Refusal> {
    let not_found = || StreamError::new(ErrorCode::NotFound, format!("no route for {verb} {path}"));
    let name = path.strip_prefix(ROUTE_PREFIX).ok_or_else(not_found)?;
    if name.is_empty() || name.contains('/') {
        return Err(not_found().into());
    }
    let wrong_verb = |allow: &'static str| Refusal {
        error: StreamError::new(ErrorCode::MethodNotAllowed, format!("method {} does not allow {verb}", quote(name))),
        status: Some(405),
        allow: Some(allow),
    };
    if name == SUBSCRIBE || name == LIST_STREAMS {
        if *verb != Method::Get {
            return Err(wrong_verb("GET"));
        }
        return Ok(if name == SUBSCRIBE { Route::Subscribe } else { Route::ListStreams });
    }
    let unknown = || StreamError::new(ErrorCode::NotFound, format!("unknown method {}", quote(name)));
    let method = StreamMethod::from_js_name(name).ok_or_else(unknown)?;
    match (method.http(), verb) {
        (HttpAccess::Unreachable, _) => Err(unknown().into()),
        (HttpAccess::Post, Method::Post) | (HttpAccess::GetOrPost, Method::Get | Method::Post) => Ok(Route::Method(method)),
        (HttpAccess::Post, _) => Err(wrong_verb("POST")),
        (HttpAccess::GetOrPost, _) => Err(wrong_verb("GET, POST")),
    }
}

/// The query string; the first value of a repeated key wins.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw_query: &str) -> Self {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (k, v) in query::pairs(raw_query) {
            if !pairs.iter().any(|(existing, _)| *existing == k) {
                pairs.push((k, v));
            }
        }
        Self(pairs)
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// GET arguments: decimal integers become numbers; the DO judges the rest.
    fn arguments(&self) -> StreamResult<Map<String, Value>> {
        let mut args = Map::new();
        for (key, value) in &self.0 {
            match key.as_str() {
                "namespace" | "path" => {}
                "offset" | "afterOffset" | "beforeOffset" | "limit" | "last" | "waitMs" | "atOffset" => {
                    let number = value.parse::<u64>().ok().filter(|_| value.bytes().all(|b| b.is_ascii_digit()));
                    args.insert(key.clone(), number.map_or_else(|| Value::String(value.clone()), Value::from));
                }
                _ => {
                    args.insert(key.clone(), Value::String(value.clone()));
                }
            }
        }
        Ok(args)
    }
}

/// `namespace` or `path` of a POST: from the query or the JSON body; both
/// present and different is refused rather than one silently winning.
fn name_part(query: &Query, body: &mut Map<String, Value>, key: &str) -> StreamResult<Option<String>> {
    let from_body = match body.remove(key) {
        None => None,
        Some(Value::String(value)) => Some(value),
        Some(_) => return Err(StreamError::invalid_request(format!("{key} must be a string"))),
    };
    match (query.get(key), from_body) {
        (Some(q), Some(b)) if q != b => Err(StreamError::invalid_request(format!(
            "{key} is {} in the query but {} in the body",
            quote(q),
            quote(&b)
        ))),
        (Some(q), _) => Ok(Some(q.to_owned())),
        (None, b) => Ok(b),
    }
}

/// Reads at most 16 MiB of body, refusing more without buffering it, then parses
/// it as a JSON object (an empty body is `{}`); also returns the body's length.
async fn read_body(req: &mut Request) -> Result<(Map<String, Value>, usize), Refusal> {
    let too_large = || StreamError::new(ErrorCode::BatchTooLarge, format!("request body exceeds {MAX_BATCH_JSON_BYTES} bytes"));
    let declared = req.headers().get("content-length").ok().flatten().and_then(|l| l.parse::<usize>().ok());
    if declared.is_some_and(|l| l > MAX_BATCH_JSON_BYTES) {
        return Err(too_large().into());
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0));
    if let Ok(mut stream) = req.stream() {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|_| StreamError::invalid_request("could not read the request body"))?;
            if body.len() + chunk.len() > MAX_BATCH_JSON_BYTES {
                drain(&mut stream, body.len() + chunk.len()).await;
                return Err(too_large().into());
            }
            body.extend_from_slice(&chunk);
        }
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok((Map::new(), 0));
    }
    let text = std::str::from_utf8(&body).map_err(|_| StreamError::invalid_request("request body is not valid UTF-8"))?;
    match parse_json(text) {
        Ok(Value::Object(map)) => Ok((map, body.len())),
        Ok(_) => Err(StreamError::invalid_request("request body must be a JSON object").into()),
        Err(e) => Err(StreamError::invalid_request(format!("request body is not valid JSON: {e}")).into()),
    }
}

/// Reads and drops the rest of an over-limit body of unknown length (up to twice the limit in all),
/// so that a client still streaming it gets the 413 rather than a reset connection (or, behind
/// `wrangler dev`'s proxy, a plain-text 503). A longer body is refused at once.
async fn drain(stream: &mut ByteStream, mut read: usize) {
    while read <= 2 * MAX_BATCH_JSON_BYTES {
        match stream.next().await {
            Some(Ok(chunk)) => read += chunk.len(),
            _ => return,
        }
    }
}

/// Calls the stream with `args`, written out as JSON in a buffer the size of
/// the body they came from (about their size: a 16 MiB batch is not doubled).
async fn call(env: &Env, name: &StreamName, method: StreamMethod, args: Map<String, Value>, body_bytes: usize) -> Result<Response, Refusal> {
    let arg = from_json_text(&to_json_string_sized(&Value::Object(args), body_bytes).map_err(|_| StreamError::internal())?)?;
    match call_target(env, name, method, &arg).await {
        Ok(result) if result.is_undefined() => Ok(json_response("null".into()).map_err(|_| StreamError::internal())?),
        Ok(result) => {
            let body = js_sys::JSON::stringify(&result).ok().and_then(|s| crate::js::string_of(&s)).ok_or_else(StreamError::internal)?;
            Ok(json_response(body).map_err(|_| StreamError::internal())?)
        }
        Err(err) => Err(crate::js::from_js_error(&err).into()),
    }
}

/// Forwards the upgrade request to the stream's DO at `/subscribe`, with the
/// caller's socket identity in place of any the caller sent.
async fn subscribe(req: Request, env: &Env, name: &StreamName, raw_query: &str, identity: &SocketIdentity) -> Result<Response, Refusal> {
    if !is_upgrade(&req) {
        if wants_sse(&req) {
            return super::sse::serve(&req, env, name, raw_query, identity).await;
        }
        return Err(StreamError::invalid_request("expected a WebSocket upgrade").into());
    }
    let internal = |e: worker::Error| {
        worker::console_error!("subscribe forwarding failed: {e}");
        Refusal::from(StreamError::internal())
    };
    let target = format!("https://stream/subscribe?{}", without_access_token(raw_query));
    let headers = req.headers().clone();
    headers.delete(IDENTITY_HEADER).map_err(internal)?;
    if let Some(value) = identity.to_header() {
        headers.set(IDENTITY_HEADER, &value).map_err(internal)?;
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Get).with_headers(headers);
    let forwarded = Request::new_with_init(&target, &init).map_err(internal)?;
    let stub = stream_stub(env, name)?;
    stub.fetch_with_request(forwarded).await.map_err(internal)
}

fn wants_sse(req: &Request) -> bool {
    streams_core::sse::wants_event_stream(req.headers().get("accept").ok().flatten().as_deref())
}

fn is_upgrade(req: &Request) -> bool {
    req.headers().get("upgrade").ok().flatten().is_some_and(|u| u.eq_ignore_ascii_case("websocket"))
}

/// The query to forward to the stream: the token stays at the edge.
fn without_access_token(raw_query: &str) -> String {
    let pairs: Vec<(String, String)> = query::pairs(raw_query).collect();
    if !pairs.iter().any(|(key, _)| key == ACCESS_TOKEN_PARAM) {
        return raw_query.to_owned();
    }
    query::encode(pairs.iter().filter(|(key, _)| key != ACCESS_TOKEN_PARAM).map(|(k, v)| (k.as_str(), v.as_str())))
}

fn bearer_token(headers: &Headers) -> Option<String> {
    let value = headers.get("authorization").ok().flatten()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
}

impl From<JsValue> for Refusal {
    fn from(err: JsValue) -> Self {
        crate::js::from_js_error(&err).into()
    }
}
