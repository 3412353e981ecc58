//! The directory of streams (docs/architecture.md#the-directory, docs/protocol.md#liststreams):
//! what a stream reports, which shard holds it, the `listStreams` arguments,
//! the merge of the shards' pages, and when a stream reports again.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::{StreamError, StreamResult};
use super::limits::MAX_PATH_BYTES;
use super::name::{quote, validate_namespace, DEFAULT_NAMESPACE};

/// Directory objects per namespace; a path's shard is a hash of it, so no
/// prefix, however busy, lands on one object.
pub const DIRECTORY_SHARDS: u32 = 16;
pub const DEFAULT_LIST_LIMIT: usize = 100;
pub const MAX_LIST_LIMIT: usize = 1000;
/// A stream reports at once on its first commit, then at most this often.
pub const REPORT_EVERY_MS: f64 = 1000.0;

/// One stream as the directory lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryEntry {
    pub path: String,
    pub stream_id: Option<String>,
    pub created_at: String,
    pub max_offset: u64,
    pub last_event_at: String,
}

/// The directory object that holds `path` of `namespace`: `<namespace>#<shard>`.
pub fn shard_name(namespace: &str, path: &str) -> String {
    format!("{namespace}#{}", fnv1a(path.as_bytes()) % DIRECTORY_SHARDS)
}

/// Every shard of a namespace, for a listing.
pub fn shard_names(namespace: &str) -> Vec<String> {
    (0..DIRECTORY_SHARDS).map(|shard| format!("{namespace}#{shard}")).collect()
}

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |hash, b| (hash ^ u32::from(*b)).wrapping_mul(0x0100_0193))
}

/// `listStreams` arguments, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListArgs {
    pub namespace: String,
    pub prefix: String,
    /// The `next` of the previous page: list paths after it.
    pub after: Option<String>,
    pub limit: usize,
}

impl ListArgs {
    pub fn parse(args: &Map<String, Value>) -> StreamResult<Self> {
        if let Some(unknown) = args.keys().find(|k| !["namespace", "prefix", "after", "limit"].contains(&k.as_str())) {
            return Err(StreamError::invalid_request(format!("unknown argument {}", quote(unknown))));
        }
        let text = |key: &str| match args.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(StreamError::invalid_request(format!("{key} must be a string"))),
        };
        let namespace = text("namespace")?.unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        validate_namespace(&namespace)?;
        let prefix = text("prefix")?.unwrap_or_default();
        if prefix.len() > MAX_PATH_BYTES {
            return Err(StreamError::invalid_request(format!("prefix must be at most {MAX_PATH_BYTES} bytes")));
        }
        let limit = match args.get("limit") {
            None | Some(Value::Null) => DEFAULT_LIST_LIMIT,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=MAX_LIST_LIMIT as u64).contains(n))
                .ok_or_else(|| StreamError::invalid_request("listStreams limit must be an integer from 1 to 1000"))? as usize,
        };
        Ok(Self { namespace, prefix, after: text("after")?.filter(|a| !a.is_empty()), limit })
    }

    /// Paths are listed from here (exclusive) in a shard: the cursor, or just before the prefix.
    pub fn lower_bound(&self) -> &str {
        match &self.after {
            Some(after) if after.as_str() >= self.prefix.as_str() => after,
            _ => &self.prefix,
        }
    }

    /// Whether `lower_bound` itself may be listed (it is the prefix, not a listed path).
    pub fn includes_lower_bound(&self) -> bool {
        self.lower_bound() == self.prefix && self.after.as_deref() != Some(self.prefix.as_str())
    }

    /// The first string after every path that starts with the prefix, or
    /// `None` when there is none: the last character incremented (code point
    /// order is UTF-8 byte order, as SQLite compares text).
    pub fn upper_bound(&self) -> Option<String> {
        let mut chars: Vec<char> = self.prefix.chars().collect();
        while let Some(last) = chars.pop() {
            let next = (u32::from(last) + 1..=0x10FFFF).find_map(char::from_u32);
            if let Some(next) = next {
                chars.push(next);
                return Some(chars.into_iter().collect());
            }
        }
        None
    }
}

/// A page of the listing: `{streams, next}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListPage {
    pub streams: Vec<DirectoryEntry>,
    /// The cursor for the next page; `None` when the listing is complete.
    pub next: Option<String>,
}

/// Merges the shards' pages (each sorted by path, at most `limit` long) into
/// the first `limit` paths; `visible` hides what the caller may not see
/// without stopping the cursor, which moves past every path examined.
pub fn merge_pages(pages: Vec<Vec<DirectoryEntry>>, limit: usize, visible: &dyn Fn(&str) -> bool) -> ListPage {
    let any_full = pages.iter().any(|page| page.len() >= limit);
    let mut all: Vec<DirectoryEntry> = pages.into_iter().flatten().collect();
    all.sort_by(|a, b| a.path.cmp(&b.path));
    let more = any_full || all.len() > limit;
    all.truncate(limit);
    let next = if more { all.last().map(|e| e.path.clone()) } else { None };
    ListPage { streams: all.into_iter().filter(|e| visible(&e.path)).collect(), next }
}

/// What a stream does about the directory after a commit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReportStep {
    Now,
    /// A report is due in this many milliseconds; schedule it.
    Later(f64),
    /// A report is scheduled already and will carry this commit.
    Nothing,
}

/// The first commit reports at once; later ones at most every `REPORT_EVERY_MS`.
pub fn next_report(last_sent_ms: Option<f64>, scheduled: bool, now_ms: f64) -> ReportStep {
    if scheduled {
        return ReportStep::Nothing;
    }
    match last_sent_ms {
        Some(sent) if now_ms - sent < REPORT_EVERY_MS => ReportStep::Later(REPORT_EVERY_MS - (now_ms - sent)),
        _ => ReportStep::Now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(path: &str) -> DirectoryEntry {
        DirectoryEntry { path: path.into(), stream_id: None, created_at: "t".into(), max_offset: 1, last_event_at: "t".into() }
    }

    fn parse(v: Value) -> StreamResult<ListArgs> {
        ListArgs::parse(v.as_object().unwrap())
    }

    #[test]
    fn shards_spread_paths_and_are_stable() {
        let mut counts = [0u32; DIRECTORY_SHARDS as usize];
        for i in 0..16_000 {
            let name = shard_name("default", &format!("/users/{i}/inbox"));
            let shard: usize = name.rsplit('#').next().unwrap().parse().unwrap();
            counts[shard] += 1;
        }
        assert!(counts.iter().all(|c| (800..1200).contains(c)), "{counts:?}");
        assert_eq!(shard_name("ns", "/a"), shard_name("ns", "/a"));
        assert_eq!(shard_names("ns").len(), 16);
    }

    #[test]
    fn arguments_are_checked() {
        let args = parse(json!({})).unwrap();
        assert_eq!((args.namespace.as_str(), args.prefix.as_str(), args.after, args.limit), ("default", "", None, 100));
        assert_eq!(parse(json!({"limit": 0})).unwrap_err().message, "listStreams limit must be an integer from 1 to 1000");
        assert_eq!(parse(json!({"limit": 1001})).unwrap_err().message, "listStreams limit must be an integer from 1 to 1000");
        assert_eq!(parse(json!({"prefix": 3})).unwrap_err().message, "prefix must be a string");
        assert_eq!(parse(json!({"path": "/a"})).unwrap_err().message, "unknown argument \"path\"");
        assert_eq!(parse(json!({"namespace": "bad ns"})).unwrap_err().code, crate::ErrorCode::InvalidNamespace);
    }

    #[test]
    fn bounds_cover_exactly_the_prefix() {
        let args = parse(json!({"prefix": "/a"})).unwrap();
        assert_eq!((args.lower_bound(), args.includes_lower_bound(), args.upper_bound().as_deref()), ("/a", true, Some("/b")));
        let args = parse(json!({"prefix": "/a", "after": "/a/x"})).unwrap();
        assert_eq!((args.lower_bound(), args.includes_lower_bound()), ("/a/x", false));
        let args = parse(json!({"prefix": "/a/", "after": "/0"})).unwrap();
        assert_eq!(args.lower_bound(), "/a/", "a cursor before the prefix starts at the prefix");
        assert_eq!(parse(json!({"prefix": "/\u{10FFFF}"})).unwrap().upper_bound().as_deref(), Some("0"));
        assert_eq!(parse(json!({})).unwrap().upper_bound(), None);
    }

    #[test]
    fn pages_merge_in_path_order_and_the_cursor_passes_hidden_paths() {
        let pages = vec![vec![entry("/a"), entry("/d")], vec![entry("/b"), entry("/c")]];
        let page = merge_pages(pages.clone(), 3, &|_| true);
        assert_eq!(page.streams.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(), ["/a", "/b", "/c"]);
        assert_eq!(page.next.as_deref(), Some("/c"));
        let hidden = merge_pages(pages.clone(), 3, &|p| p == "/a");
        assert_eq!((hidden.streams.len(), hidden.next.as_deref()), (1, Some("/c")));
        let last = merge_pages(pages, 10, &|_| true);
        assert_eq!((last.streams.len(), last.next), (4, None));
        let full_shard = merge_pages(vec![vec![entry("/a"), entry("/b")], vec![]], 2, &|_| true);
        assert_eq!(full_shard.next.as_deref(), Some("/b"), "a full shard page may have more");
    }

    #[test]
    fn reports_are_throttled() {
        assert_eq!(next_report(None, false, 5000.0), ReportStep::Now, "the first commit reports at once");
        assert_eq!(next_report(Some(4800.0), false, 5000.0), ReportStep::Later(800.0));
        assert_eq!(next_report(Some(4800.0), true, 5000.0), ReportStep::Nothing);
        assert_eq!(next_report(Some(3000.0), false, 5000.0), ReportStep::Now);
    }
}
