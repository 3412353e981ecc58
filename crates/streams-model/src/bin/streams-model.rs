//! The model as a process, for the Miniflare tests (miniflare/helpers/model.mjs): one JSON request
//! per stdin line, one JSON reply per stdout line.
//!
//! `{"check": {"log": [committed events…], "state": <live core state>, "liveBatches": [[first, last]…], "name": "<namespace>:<path>"}}`
//! folds the log through the model, checking the breaker's trip after each live batch
//! (`Stream::from_log_with_trips`), and answers `{"ok": true, "state": <model state>}` or `{"ok": false, "diff": "<first difference>"}`
//! (or `{"ok": false, "error": "<why the model refused the log>"}`).
use std::io::{BufRead, Write};

use serde_json::{json, Value};
use streams_model::{diff, Stream};

fn answer(request: &Value) -> Value {
    let Some(check) = request.get("check") else { return json!({"ok": false, "error": "unknown request"}) };
    let log = check.get("log").and_then(Value::as_array).cloned().unwrap_or_default();
    let batches: Vec<(u64, u64)> = check
        .get("liveBatches")
        .and_then(Value::as_array)
        .map(|b| b.iter().filter_map(|r| Some((r.get(0)?.as_u64()?, r.get(1)?.as_u64()?))).collect())
        .unwrap_or_default();
    let stream = match Stream::from_log_with_trips(&log, &batches) {
        Ok(s) => s,
        Err(e) => return json!({"ok": false, "error": e}),
    };
    let mut state = stream.state;
    // A stream that was never written (or was reset) reads as the initial state named after its
    // path (docs/protocol.md#reads-create-nothing); `name` says which.
    if log.is_empty() {
        if let Some((namespace, path)) = check.get("name").and_then(Value::as_str).and_then(|n| n.split_once(':')) {
            state.namespace = namespace.to_owned();
            state.path = path.to_owned();
        }
    }
    let expected = state.json();
    match check.get("state").and_then(|live| diff(&expected, live, "state")) {
        Some(d) => json!({"ok": false, "diff": d, "state": expected}),
        None => json!({"ok": true, "state": expected}),
    }
}

fn main() {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let reply = match serde_json::from_str::<Value>(&line) {
            Ok(request) => answer(&request),
            Err(e) => json!({"ok": false, "error": format!("bad request: {e}")}),
        };
        if writeln!(out, "{reply}").and_then(|()| out.flush()).is_err() {
            break;
        }
    }
}
