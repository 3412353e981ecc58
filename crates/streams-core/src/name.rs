//! Stream names: namespace and path rules, the DO name `<namespace>:<path>`,
//! `streamPath` resolution and the ancestor/child relations (docs/protocol.md#naming-and-paths, #streampath, #system-events).

use super::error::{ErrorCode, StreamError, StreamResult};
use super::limits::MAX_PATH_BYTES;

pub const DEFAULT_NAMESPACE: &str = "default";
/// The longest DO name the runtime reports back as `ctx.id.name`.
pub const MAX_DO_NAME_BYTES: usize = 1024;
/// Longest idempotency key a notice may carry (docs/protocol.md#limits).
const MAX_NOTICE_KEY_BYTES: usize = super::limits::MAX_IDEMPOTENCY_KEY_BYTES;
pub const ROOT_PATH: &str = "/";

/// Checks `^[a-z0-9][a-z0-9_-]{0,62}$`.
pub fn validate_namespace(namespace: &str) -> StreamResult<()> {
    let bytes = namespace.as_bytes();
    let head_ok = bytes.first().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let tail_ok = bytes
        .iter()
        .skip(1)
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-');
    if head_ok && tail_ok && bytes.len() <= 63 {
        Ok(())
    } else {
        Err(StreamError::new(
            ErrorCode::InvalidNamespace,
            format!("invalid namespace {}: must match ^[a-z0-9][a-z0-9_-]{{0,62}}$", quote(namespace)),
        ))
    }
}

/// Checks a path: `/`, or `/seg(/seg)*` with segments of `[A-Za-z0-9_.~-]+`
/// other than `.` and `..`, at most 1023 bytes. Paths are never normalised.
pub fn validate_path(path: &str) -> StreamResult<()> {
    path_problem(path).map_or(Ok(()), |why| {
        Err(StreamError::invalid_path(format!("invalid path {}: {why}", quote(path))))
    })
}

fn path_problem(path: &str) -> Option<String> {
    if path.is_empty() {
        return Some("must not be empty".into());
    }
    if path.len() > MAX_PATH_BYTES {
        return Some(format!("must be at most {MAX_PATH_BYTES} bytes"));
    }
    if path == ROOT_PATH {
        return None;
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Some("must start with \"/\"".into());
    };
    for segment in rest.split('/') {
        if segment.is_empty() {
            return Some("must not contain empty segments or end with \"/\"".into());
        }
        if segment == "." || segment == ".." {
            return Some(format!("segment {} is not allowed", quote(segment)));
        }
        if !segment.bytes().all(is_segment_byte) {
            return Some(format!(
                "segment {} may only contain A-Z a-z 0-9 _ . ~ -",
                quote(segment)
            ));
        }
    }
    None
}

fn is_segment_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'~' | b'-')
}

/// A validated (namespace, path) pair: the identity of one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamName {
    pub namespace: String,
    pub path: String,
}

impl StreamName {
    /// Validates the namespace first, then the path, as every surface must.
    pub fn new(namespace: &str, path: &str) -> StreamResult<Self> {
        validate_namespace(namespace)?;
        validate_path(path)?;
        // workerd gives an object no `ctx.id.name` for longer names, so such a
        // stream could never boot: refuse it here with a clear message.
        if namespace.len() + 1 + path.len() > MAX_DO_NAME_BYTES {
            return Err(StreamError::invalid_path(format!(
                "invalid path {}: \"<namespace>:<path>\" must be at most {MAX_DO_NAME_BYTES} bytes",
                quote(&truncate_for_message(path))
            )));
        }
        Ok(Self { namespace: namespace.to_owned(), path: path.to_owned() })
    }

    /// Parses a DO name, splitting on the first `:` only.
    pub fn parse(do_name: &str) -> StreamResult<Self> {
        match do_name.split_once(':') {
            Some((namespace, path)) => Self::new(namespace, path),
            None => {
                validate_namespace(do_name)?;
                Err(StreamError::invalid_path(format!(
                    "invalid path \"\": the stream name {} has no \"<namespace>:\" prefix",
                    quote(do_name)
                )))
            }
        }
    }

    pub fn do_name(&self) -> String {
        format!("{}:{}", self.namespace, self.path)
    }

    /// The stream at `path` in the same namespace.
    pub fn sibling(&self, path: String) -> Self {
        Self { namespace: self.namespace.clone(), path }
    }
}

/// Resolves `stream_path` against `base` (docs/protocol.md#streampath); the result is validated.
pub fn resolve_stream_path(base: &str, stream_path: &str) -> StreamResult<String> {
    if stream_path.len() > MAX_PATH_BYTES {
        return Err(StreamError::invalid_path(format!(
            "invalid path {}: streamPath must be at most {MAX_PATH_BYTES} bytes",
            quote(&truncate_for_message(stream_path))
        )));
    }
    let mut segments: Vec<&str> =
        if stream_path.starts_with('/') { Vec::new() } else { segments_of(base).collect() };
    for part in stream_path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if segments.pop().is_none() {
                    return Err(StreamError::invalid_path(format!(
                        "streamPath {} escapes the stream root (resolved from {})",
                        quote(stream_path),
                        quote(base)
                    )));
                }
            }
            other => segments.push(other),
        }
    }
    let resolved = format!("/{}", segments.join("/"));
    validate_path(&resolved)?;
    Ok(resolved)
}

fn segments_of(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

/// `/` plus each proper prefix of `path`, root first; empty for `/` itself.
pub fn ancestors(path: &str) -> Vec<String> {
    if path == ROOT_PATH {
        return Vec::new();
    }
    let segments: Vec<&str> = segments_of(path).collect();
    (0..segments.len()).map(|n| format!("/{}", segments[..n].join("/"))).collect()
}

/// The immediate child of `parent` on the way to `descendant`, if any (docs/protocol.md#system-events).
pub fn immediate_child(parent: &str, descendant: &str) -> Option<String> {
    if descendant == parent {
        return None;
    }
    let rest = if parent == ROOT_PATH {
        descendant
    } else {
        descendant.strip_prefix(parent)?.strip_prefix('/')?
    };
    let first = segments_of(rest).next()?;
    Some(if parent == ROOT_PATH { format!("/{first}") } else { format!("{parent}/{first}") })
}

/// The idempotency key of the `child-stream-created` notice `ancestor` gets
/// about `path` (docs/protocol.md#child-streams). A key over the 1024-byte limit is replaced by a
/// fixed-length digest of the same text, so deep paths still deduplicate.
pub fn child_notice_key(ancestor: &str, path: &str) -> String {
    let key = format!("child-stream-created:{ancestor}:{path}");
    if key.len() <= MAX_NOTICE_KEY_BYTES {
        return key;
    }
    // FNV-1a, twice with different offsets: 128 bits, stable across builds.
    let fnv = |seed: u64| key.bytes().fold(seed, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("child-stream-created:#{:016x}{:016x}", fnv(0xcbf2_9ce4_8422_2325), fnv(0x6c62_272e_07bb_0142))
}

/// JSON-style quoting for messages.
pub fn quote(text: &str) -> String {
    // Writing a string cannot fail.
    serde_json::to_string(text).unwrap_or_default()
}

fn truncate_for_message(text: &str) -> String {
    let mut end = text.len().min(64);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn do_names_split_on_the_first_colon() {
        let name = StreamName::parse("ns:/a").unwrap();
        assert_eq!((name.namespace.as_str(), name.path.as_str()), ("ns", "/a"));
        assert_eq!(StreamName::parse("ns:/a:b").unwrap_err().code, ErrorCode::InvalidPath);
        assert_eq!(StreamName::parse("ns").unwrap_err().code, ErrorCode::InvalidPath);
        assert_eq!(StreamName::parse("Bad:/x").unwrap_err().code, ErrorCode::InvalidNamespace);
    }

    #[test]
    fn paths_follow_the_spec_examples() {
        for ok in ["/", "/a", "/a/b-c/d.e~f"] {
            assert!(validate_path(ok).is_ok(), "{ok}");
        }
        for bad in ["a", "/a/", "/a//b", "/a/./b", "/a/..", "/a b", "/a:b", ""] {
            let err = validate_path(bad).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidPath, "{bad}");
            assert!(err.message.starts_with(&format!("invalid path {}: ", quote(bad))), "{}", err.message);
        }
    }

    #[test]
    fn paths_are_capped_at_1023_bytes() {
        let at_limit = format!("/{}", "a".repeat(1022));
        assert!(validate_path(&at_limit).is_ok());
        assert_eq!(StreamName::new("t", &at_limit).unwrap_err().code, ErrorCode::InvalidPath, "the DO name would be too long");
        let over = format!("/{}", "a".repeat(1023));
        assert_eq!(validate_path(&over).unwrap_err().code, ErrorCode::InvalidPath);
    }

    #[test]
    fn namespaces_match_the_pattern() {
        for ok in ["default", "t", "a-b_c", "0", &"a".repeat(63)] {
            assert!(validate_namespace(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Bad", "-a", "_a", "a.b", &"a".repeat(64)] {
            let err = validate_namespace(bad).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidNamespace);
        }
        assert_eq!(
            validate_namespace("Bad").unwrap_err().message,
            "invalid namespace \"Bad\": must match ^[a-z0-9][a-z0-9_-]{0,62}$"
        );
    }

    #[test]
    fn stream_paths_resolve_like_the_spec_examples() {
        assert_eq!(resolve_stream_path("/a/b", "c").unwrap(), "/a/b/c");
        assert_eq!(resolve_stream_path("/a/b", "../c").unwrap(), "/a/c");
        assert_eq!(resolve_stream_path("/a/b", "/x").unwrap(), "/x");
        assert_eq!(resolve_stream_path("/a/b", ".").unwrap(), "/a/b");
        assert_eq!(resolve_stream_path("/p", "c").unwrap(), "/p/c");
        assert_eq!(resolve_stream_path("/p", "/q").unwrap(), "/q");
        assert_eq!(resolve_stream_path("/p", "..").unwrap(), "/");
        let err = resolve_stream_path("/p", "../..").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid_path: streamPath \"../..\" escapes the stream root (resolved from \"/p\")"
        );
        assert_eq!(resolve_stream_path("/a/b", "../../..").unwrap_err().code, ErrorCode::InvalidPath);
        assert_eq!(resolve_stream_path("/a", "x y").unwrap_err().code, ErrorCode::InvalidPath);
    }

    #[test]
    fn do_names_longer_than_the_runtime_reports_are_refused() {
        let longest = format!("/{}", "a".repeat(MAX_DO_NAME_BYTES - 3));
        assert!(StreamName::new("t", &longest).is_ok());
        let err = StreamName::new("t", &format!("{longest}b")).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidPath);
    }

    #[test]
    fn child_notice_keys_stay_within_the_key_limit() {
        assert_eq!(child_notice_key("/", "/a"), "child-stream-created:/:/a");
        let deep = format!("/{}", "a".repeat(1000));
        let key = child_notice_key("/", &deep);
        assert!(key.len() <= 1024);
        assert_eq!(key, child_notice_key("/", &deep), "stable");
        assert_ne!(key, child_notice_key("/", &format!("{deep}b")));
    }

    #[test]
    fn ancestors_are_root_then_each_proper_prefix() {
        assert_eq!(ancestors("/a/b/c"), vec!["/", "/a", "/a/b"]);
        assert_eq!(ancestors("/a"), vec!["/"]);
        assert!(ancestors("/").is_empty());
    }

    #[test]
    fn immediate_children_follow_the_child_path_rule() {
        assert_eq!(immediate_child("/a", "/a/b/c").as_deref(), Some("/a/b"));
        assert_eq!(immediate_child("/", "/x/y").as_deref(), Some("/x"));
        assert_eq!(immediate_child("/a", "/b/c"), None);
        assert_eq!(immediate_child("/a", "/a"), None);
        assert_eq!(immediate_child("/a", "/ab/c"), None);
    }
}
