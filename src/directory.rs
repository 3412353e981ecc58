//! The directory (docs/architecture.md#the-directory): the `Directory` Durable Object, one per
//! namespace shard, holding one SQLite row per stream; the stream side that
//! reports to it; and the listing that merges every shard. The decisions
//! (shards, arguments, merge, throttle) are in `core::directory`.

use futures::future::join_all;
use serde_json::{json, Value};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use worker::{durable_object, Env, Request, Response, SqlStorage, SqlStorageValue, State};

use crate::js::{argument_json, from_js_error, from_json_text, to_js_error};
use crate::stub::call_method;
use streams_core::directory::{merge_pages, shard_name, shard_names, DirectoryEntry, ListArgs, ListPage};
use streams_core::{ErrorCode, StreamError, StreamResult};

const DIRECTORY_BINDING: &str = "DIRECTORY";

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS streams (path TEXT PRIMARY KEY, stream_id TEXT, created_at TEXT NOT NULL, max_offset INTEGER NOT NULL, last_event_at TEXT NOT NULL) WITHOUT ROWID";
/// Upserts `?1`, a JSON array of entries, in one statement. A report of the
/// same life of a stream never lowers `maxOffset` (reports may cross); a new
/// `streamId` (the path was reset and written again) replaces the row.
const RECORD: &str = "INSERT INTO streams (path, stream_id, created_at, max_offset, last_event_at) \
    SELECT value->>'path', value->>'streamId', value->>'createdAt', value->>'maxOffset', value->>'lastEventAt' FROM json_each(?1) WHERE true \
    ON CONFLICT (path) DO UPDATE SET \
    max_offset = CASE WHEN stream_id IS excluded.stream_id THEN max(max_offset, excluded.max_offset) ELSE excluded.max_offset END, \
    last_event_at = CASE WHEN stream_id IS excluded.stream_id THEN max(last_event_at, excluded.last_event_at) ELSE excluded.last_event_at END, \
    created_at = excluded.created_at, stream_id = excluded.stream_id";
/// Removes a path, only while it is still the life that was deleted.
const REMOVE: &str = "DELETE FROM streams WHERE path = ?1 AND stream_id IS ?2";
/// Up to ?4 paths after ?1 (from ?1 itself when ?2 is 1) and before ?3 (no bound when NULL), as a JSON array.
const LIST: &str = "SELECT json_group_array(json_object('path', path, 'streamId', stream_id, 'createdAt', created_at, 'maxOffset', max_offset, 'lastEventAt', last_event_at)) \
    FROM (SELECT * FROM streams WHERE (path > ?1 OR (?2 = 1 AND path = ?1)) AND (?3 IS NULL OR path < ?3) ORDER BY path LIMIT CAST(?4 AS INTEGER))";

#[durable_object]
pub struct Directory {
    sql: SqlStorage,
}

impl worker::DurableObject for Directory {
    fn new(ctx: State, _env: Env) -> Self {
        let sql = ctx.storage().sql();
        if let Err(err) = sql.exec(SCHEMA, None) {
            worker::console_error!("directory schema: {err}");
        }
        Self { sql }
    }

    async fn fetch(&self, req: Request) -> worker::Result<Response> {
        let err = StreamError::new(ErrorCode::NotFound, format!("no route for {} {}", req.method(), req.path()));
        crate::wire::error_response(&err, None)
    }
}

/// The JS-RPC methods, called by streams (`record`, `remove`) and by the listing (`list`).
#[wasm_bindgen]
impl Directory {
    /// `{entries: [DirectoryEntry]}`.
    pub fn record(&self, arg: JsValue) -> Result<JsValue, JsValue> {
        let entries = argument(&arg, "entries").map_err(|e| to_js_error(&e))?;
        self.exec(RECORD, vec![JsValue::from_str(&entries.to_string())]).map(|_| JsValue::UNDEFINED)
    }

    /// `{path, streamId}`.
    pub fn remove(&self, arg: JsValue) -> Result<JsValue, JsValue> {
        let text = |key| argument(&arg, key).map(|v| v.as_str().map_or(JsValue::NULL, JsValue::from_str)).map_err(|e| to_js_error(&e));
        self.exec(REMOVE, vec![text("path")?, text("streamId")?]).map(|_| JsValue::UNDEFINED)
    }

    /// `{lowerBound, includeLowerBound, upperBound, limit}` → the entries, sorted by path.
    pub fn list(&self, arg: JsValue) -> Result<JsValue, JsValue> {
        let value = |key| argument(&arg, key).map_err(|e| to_js_error(&e));
        let (lower, include, upper, limit) = (value("lowerBound")?, value("includeLowerBound")?, value("upperBound")?, value("limit")?);
        let bindings = vec![
            JsValue::from_str(lower.as_str().unwrap_or("")),
            JsValue::from_f64(if include.as_bool() == Some(true) { 1.0 } else { 0.0 }),
            upper.as_str().map_or(JsValue::NULL, JsValue::from_str),
            JsValue::from_f64(limit.as_f64().unwrap_or(0.0)),
        ];
        let cursor = self.exec(LIST, bindings)?;
        let text = cursor.raw().next().and_then(Result::ok).and_then(|row| match row.into_iter().next() {
            Some(SqlStorageValue::String(text)) => Some(text),
            _ => None,
        });
        from_json_text(text.as_deref().unwrap_or("[]")).map_err(|e| to_js_error(&e))
    }
}

impl Directory {
    fn exec(&self, query: &str, bindings: Vec<JsValue>) -> Result<worker::SqlCursor, JsValue> {
        self.sql.exec_raw(query, bindings).map_err(|err| {
            worker::console_error!("directory: {err}");
            to_js_error(&StreamError::internal())
        })
    }
}

fn argument(arg: &JsValue, key: &str) -> StreamResult<Value> {
    let args = argument_json(arg)?.unwrap_or(Value::Null);
    Ok(args.get(key).cloned().unwrap_or(Value::Null))
}

/// `env.DIRECTORY.getByName(name)[method](arg)`; `None` when the deployment has no directory binding.
async fn call_shard(env: &Env, name: &str, method: &str, arg: &Value) -> Option<Result<JsValue, StreamError>> {
    let stub = env.durable_object(DIRECTORY_BINDING).and_then(|ns| ns.get_by_name(name)).ok()?.into_rpc::<js_sys::Object>();
    let arg = match from_json_text(&arg.to_string()) {
        Ok(arg) => arg,
        Err(err) => return Some(Err(err)),
    };
    Some(call_method(&stub, method, Some(&arg)).await.map_err(|e| from_js_error(&e)))
}

/// Records a stream's entry in its shard; failures are only logged.
pub async fn report(env: &Env, namespace: &str, entry: DirectoryEntry) {
    let name = shard_name(namespace, &entry.path);
    if let Some(Err(err)) = call_shard(env, &name, "record", &json!({"entries": [entry]})).await {
        worker::console_warn!("directory report for {name} failed: {err}");
    }
}

/// Removes a deleted (or reset) life of a stream from its shard.
pub async fn forget(env: &Env, namespace: &str, path: &str, stream_id: Option<&str>) {
    let name = shard_name(namespace, path);
    if let Some(Err(err)) = call_shard(env, &name, "remove", &json!({"path": path, "streamId": stream_id})).await {
        worker::console_warn!("directory removal for {name} failed: {err}");
    }
}

/// One page of `listStreams`: every shard asked for `limit` paths, merged;
/// `visible` hides paths the caller may not read.
pub async fn list_streams(env: &Env, args: &ListArgs, visible: &dyn Fn(&str) -> bool) -> StreamResult<ListPage> {
    let query = json!({
        "lowerBound": args.lower_bound(),
        "includeLowerBound": args.includes_lower_bound(),
        "upperBound": args.upper_bound(),
        "limit": args.limit,
    });
    let names = shard_names(&args.namespace);
    let answers = join_all(names.iter().map(|name| call_shard(env, name, "list", &query))).await;
    let mut pages = Vec::with_capacity(answers.len());
    for answer in answers {
        let value = answer.ok_or_else(|| StreamError::new(ErrorCode::Internal, "the directory binding DIRECTORY is missing"))??;
        let text = js_sys::JSON::stringify(&value).ok().and_then(|s| crate::js::string_of(&s)).ok_or_else(StreamError::internal)?;
        pages.push(serde_json::from_str::<Vec<DirectoryEntry>>(&text).map_err(|_| StreamError::internal())?);
    }
    Ok(merge_pages(pages, args.limit, visible))
}
