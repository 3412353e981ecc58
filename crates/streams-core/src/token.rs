//! Scoped access tokens: HS256 JWTs that grant operations on a set of paths in
//! one namespace, until they expire. Verification and scope checks are pure;
//! the HTTP layer supplies the secrets, the clock and the target stream.

use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

use super::error::{ErrorCode, StreamError, StreamResult};
use super::event::types;
use super::name::{quote, validate_namespace, validate_path, StreamName, ROOT_PATH};
use super::rpc::StreamMethod;

/// A longer token is refused before any decoding.
pub const MAX_TOKEN_BYTES: usize = 4096;
/// Allowed clock skew between the minting backend and the worker, on `exp` and `nbf`.
pub const CLOCK_LEEWAY_SECONDS: f64 = 30.0;
const SUBTREE_SUFFIX: &str = "/**";

/// What a scoped token may do (docs/access.md#operations). `reset` and `kill` are never grantable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// getEvent, getEvents, runtimeState, reduce, subscribe.
    Read,
    /// append, appendBatch (their responses are the committed events).
    Append,
    /// Appending a control event (`types::CONTROL`), on top of `append`.
    Configure,
}

impl Op {
    pub const ALL: [Self; 3] = [Self::Read, Self::Append, Self::Configure];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Append => "append",
            Self::Configure => "configure",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.as_str() == name)
    }

    /// The operation a method needs; `None` when no scoped token can call it.
    pub fn for_method(method: StreamMethod) -> Option<Self> {
        match method {
            StreamMethod::GetEvent | StreamMethod::GetEvents | StreamMethod::GetState | StreamMethod::RuntimeState | StreamMethod::Reduce => {
                Some(Self::Read)
            }
            StreamMethod::Append | StreamMethod::AppendBatch => Some(Self::Append),
            StreamMethod::Reset
            | StreamMethod::Kill
            | StreamMethod::RunIdleTeardownNow
            | StreamMethod::SimulateHibernation
            | StreamMethod::MemoryUsage
            | StreamMethod::NotifyChildStreamCreated
            | StreamMethod::DeleteStream
            | StreamMethod::RunArchiveNow
            | StreamMethod::PendingWork => None,
        }
    }
}

/// The first control event type among an `append`/`appendBatch` argument's
/// events (`event`, or the items of `events`): appending it needs `configure`.
/// Malformed arguments name none; the stream refuses them itself.
pub fn control_event_type(method: StreamMethod, args: &Map<String, Value>) -> Option<&'static str> {
    let control = |event: &Value| {
        let event_type = event.get("type")?.as_str()?;
        types::CONTROL.into_iter().find(|control| *control == event_type)
    };
    match method {
        StreamMethod::Append => args.get("event").and_then(control),
        StreamMethod::AppendBatch => args.get("events")?.as_array()?.iter().find_map(control),
        _ => None,
    }
}

/// One entry of the `paths` claim: `/a/b` (that path only) or `/a/b/**`
/// (that path and every path below it; `/**` is every path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathScope {
    Exact(String),
    Subtree(String),
}

impl PathScope {
    pub fn parse(scope: &str) -> Result<Self, String> {
        let parsed = match scope.strip_suffix(SUBTREE_SUFFIX) {
            Some("") => Self::Subtree(ROOT_PATH.to_owned()),
            Some(base) => Self::Subtree(base.to_owned()),
            None => Self::Exact(scope.to_owned()),
        };
        let (Self::Exact(path) | Self::Subtree(path)) = &parsed;
        validate_path(path).map_err(|_| format!("path scope {} is not a path or a path ending in /**", quote(scope)))?;
        Ok(parsed)
    }

    /// Segment-wise: `/a/**` covers `/a` and `/a/b` but not `/ab`.
    pub fn covers(&self, path: &str) -> bool {
        match self {
            Self::Exact(exact) => exact == path,
            Self::Subtree(base) if base == ROOT_PATH => true,
            Self::Subtree(base) => path
                .strip_prefix(base.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
        }
    }
}

/// The verified claims of a scoped token.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    pub namespace: String,
    pub paths: Vec<PathScope>,
    pub ops: Vec<Op>,
    /// `exp`, in seconds since the epoch.
    pub expires_at: f64,
    pub not_before: Option<f64>,
    /// `sub`: who the token was minted for; sockets opened with tokens of one
    /// subject may replace each other (docs/access.md#subscription-keys).
    pub subject: Option<String>,
}

impl Claims {
    pub fn allow_op(&self, op: Op) -> StreamResult<()> {
        if self.ops.contains(&op) {
            Ok(())
        } else {
            Err(forbidden(format!("token does not allow {}", op.as_str())))
        }
    }

    /// `configure` for a call appending a control event; the whole call is refused.
    pub fn allow_control_events(&self, method: StreamMethod, args: &Map<String, Value>) -> StreamResult<()> {
        match control_event_type(method, args) {
            Some(event_type) if !self.ops.contains(&Op::Configure) => {
                Err(forbidden(format!("token does not allow configure, which appending {} needs", quote(event_type))))
            }
            _ => Ok(()),
        }
    }

    pub fn allow_namespace(&self, namespace: &str) -> StreamResult<()> {
        if namespace != self.namespace {
            return Err(forbidden(format!("token does not cover namespace {}", quote(namespace))));
        }
        Ok(())
    }

    /// The namespace first, then the path, so the message names what is missing.
    pub fn allow_stream(&self, name: &StreamName) -> StreamResult<()> {
        self.allow_namespace(&name.namespace)?;
        if !self.paths.iter().any(|scope| scope.covers(&name.path)) {
            return Err(forbidden(format!("token does not cover path {}", quote(&name.path))));
        }
        Ok(())
    }
}

/// Verifies `token` against each secret in turn (current, then previous) and
/// at `now_ms`. Every failure is `unauthorized`; messages never echo the token.
pub fn verify(token: &str, secrets: &[&[u8]], now_ms: f64) -> StreamResult<Claims> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(unauthorized(format!("token exceeds {MAX_TOKEN_BYTES} bytes")));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(malformed("expected three dot-separated parts"));
    };
    let header = decode_json_object(header).ok_or_else(|| malformed("the header is not base64url JSON"))?;
    match header.get("alg") {
        Some(Value::String(alg)) if alg == "HS256" => {}
        _ => return Err(unauthorized("token alg must be HS256")),
    }
    let signature = base64url_decode(signature).ok_or_else(|| malformed("the signature is not base64url"))?;
    let signing_input = &token[..header_and_payload_len(token)];
    if !secrets.iter().any(|secret| signs(secret, signing_input, &signature)) {
        return Err(unauthorized("token signature does not match"));
    }
    let claims = decode_json_object(payload).ok_or_else(|| malformed("the payload is not base64url JSON"))?;
    let claims = parse_claims(&claims).map_err(|why| malformed(&why))?;
    let now = now_ms / 1000.0;
    if now > claims.expires_at + CLOCK_LEEWAY_SECONDS {
        return Err(unauthorized("token expired"));
    }
    if claims.not_before.is_some_and(|nbf| now + CLOCK_LEEWAY_SECONDS < nbf) {
        return Err(unauthorized("token not valid yet"));
    }
    Ok(claims)
}

/// `header.payload`, the bytes the signature covers.
fn header_and_payload_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(token.len())
}

fn signs(secret: &[u8], signing_input: &str, signature: &[u8]) -> bool {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else { return false };
    mac.update(signing_input.as_bytes());
    // Constant time, so timing does not reveal how much of a forged signature matches.
    mac.verify_slice(signature).is_ok()
}

fn parse_claims(claims: &Map<String, Value>) -> Result<Claims, String> {
    let time = |name: &str, required: bool| -> Result<Option<f64>, String> {
        match claims.get(name) {
            None if !required => Ok(None),
            Some(Value::Number(n)) => n.as_f64().filter(|t| t.is_finite()).map(Some).ok_or_else(|| format!("{name} must be a number")),
            _ => Err(format!("{name} is required and must be a number of seconds")),
        }
    };
    let expires_at = time("exp", true)?.ok_or("exp is required")?;
    let not_before = time("nbf", false)?;
    time("iat", false)?;
    let namespace = match claims.get("ns") {
        Some(Value::String(ns)) if validate_namespace(ns).is_ok() => ns.clone(),
        _ => return Err("ns is required and must be a valid namespace".into()),
    };
    let paths = non_empty_strings(claims, "paths")?.into_iter().map(PathScope::parse).collect::<Result<Vec<_>, _>>()?;
    let ops = non_empty_strings(claims, "ops")?
        .into_iter()
        .map(|op| Op::parse(op).ok_or_else(|| format!("unknown op {}; expected \"read\", \"append\" or \"configure\"", quote(op))))
        .collect::<Result<Vec<_>, _>>()?;
    // A `sub` that is not a non-empty string names no one: the token itself is the identity.
    let subject = claims.get("sub").and_then(Value::as_str).filter(|sub| !sub.is_empty()).map(str::to_owned);
    Ok(Claims { namespace, paths, ops, expires_at, not_before, subject })
}

fn non_empty_strings<'a>(claims: &'a Map<String, Value>, name: &str) -> Result<Vec<&'a str>, String> {
    let invalid = || format!("{name} is required and must be a non-empty array of strings");
    let Some(Value::Array(items)) = claims.get(name) else { return Err(invalid()) };
    if items.is_empty() {
        return Err(invalid());
    }
    items.iter().map(|item| item.as_str().ok_or_else(invalid)).collect()
}

fn decode_json_object(part: &str) -> Option<Map<String, Value>> {
    let bytes = base64url_decode(part)?;
    // from_str, not from_slice: the worker already carries that parser.
    match serde_json::from_str(std::str::from_utf8(&bytes).ok()?).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// Unpadded base64url (RFC 7515 §2), strictly: no padding, no stray bits.
pub fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'-' => Some(62),
            b'_' => Some(63),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if bytes.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut bits = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            bits |= sextet(c)? << (18 - 6 * i);
        }
        let kept = chunk.len() * 6 / 8;
        // Bits past the last whole byte must be zero, so each byte string has one encoding.
        if bits & (0x00ff_ffff >> (kept * 8)) != 0 {
            return None;
        }
        out.extend_from_slice(&bits.to_be_bytes()[1..=kept]);
    }
    Some(out)
}

fn unauthorized(message: impl Into<String>) -> StreamError {
    StreamError::new(ErrorCode::Unauthorized, message)
}

fn malformed(why: &str) -> StreamError {
    unauthorized(format!("malformed token: {why}"))
}

fn forbidden(message: String) -> StreamError {
    StreamError::new(ErrorCode::Forbidden, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const SECRET: &[u8] = b"test-secret";
    const NOW_MS: f64 = 1_800_000_000_000.0;
    const NOW: f64 = NOW_MS / 1000.0;

    fn b64(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            }
        }
        out
    }

    fn sign(header: &Value, claims: &Value, secret: &[u8]) -> String {
        let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(input.as_bytes());
        format!("{input}.{}", b64(&mac.finalize().into_bytes()))
    }

    fn claims() -> Value {
        json!({"exp": NOW + 60.0, "ns": "app", "paths": ["/a/**", "/x"], "ops": ["read"]})
    }

    fn token(claims: &Value) -> String {
        sign(&json!({"alg": "HS256", "typ": "JWT"}), claims, SECRET)
    }

    fn refusal(result: StreamResult<Claims>) -> (ErrorCode, String) {
        let err = result.unwrap_err();
        (err.code, err.message)
    }

    #[test]
    fn a_signed_token_yields_its_claims() {
        let claims = verify(&token(&claims()), &[SECRET], NOW_MS).unwrap();
        assert_eq!(claims.namespace, "app");
        assert_eq!(claims.paths, vec![PathScope::Subtree("/a".into()), PathScope::Exact("/x".into())]);
        assert_eq!(claims.ops, vec![Op::Read]);
    }

    #[test]
    fn rotation_accepts_the_previous_secret_only_while_it_is_configured() {
        let old = sign(&json!({"alg": "HS256"}), &claims(), b"old-secret");
        assert!(verify(&old, &[SECRET, b"old-secret"], NOW_MS).is_ok());
        assert_eq!(refusal(verify(&old, &[SECRET], NOW_MS)).1, "token signature does not match");
    }

    #[test]
    fn wrong_algorithms_and_signatures_are_unauthorized() {
        let cases = [
            (sign(&json!({"alg": "HS256"}), &claims(), b"other"), "token signature does not match"),
            (sign(&json!({"alg": "none"}), &claims(), SECRET), "token alg must be HS256"),
            (format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(claims().to_string().as_bytes())), "token alg must be HS256"),
            (sign(&json!({"alg": "RS256"}), &claims(), SECRET), "token alg must be HS256"),
            (sign(&json!({"typ": "JWT"}), &claims(), SECRET), "token alg must be HS256"),
        ];
        for (token, message) in cases {
            assert_eq!(refusal(verify(&token, &[SECRET], NOW_MS)), (ErrorCode::Unauthorized, message.to_owned()));
        }
    }

    #[test]
    fn expiry_and_not_before_allow_thirty_seconds_of_skew() {
        let at = |exp: f64, nbf: Option<f64>| {
            let mut c = claims();
            c["exp"] = json!(exp);
            if let Some(nbf) = nbf {
                c["nbf"] = json!(nbf);
            }
            verify(&token(&c), &[SECRET], NOW_MS)
        };
        assert!(at(NOW - 30.0, None).is_ok());
        assert_eq!(refusal(at(NOW - 30.001, None)).1, "token expired");
        assert!(at(NOW + 60.0, Some(NOW + 30.0)).is_ok());
        assert_eq!(refusal(at(NOW + 60.0, Some(NOW + 30.5))).1, "token not valid yet");
    }

    #[test]
    fn malformed_claims_are_unauthorized() {
        let mut cases = vec![];
        for (key, value) in [
            ("exp", json!("soon")),
            ("ns", json!("Bad NS")),
            ("paths", json!([])),
            ("paths", json!(["a"])),
            ("paths", json!(["/a/*"])),
            ("paths", json!(["/a/**/b"])),
            ("ops", json!([])),
            ("ops", json!(["reset"])),
            ("nbf", json!(null)),
        ] {
            let mut c = claims();
            c[key] = value;
            cases.push(c);
        }
        for required in ["exp", "ns", "paths", "ops"] {
            let mut c = claims();
            c.as_object_mut().unwrap().remove(required);
            cases.push(c);
        }
        for c in cases {
            let (code, message) = refusal(verify(&token(&c), &[SECRET], NOW_MS));
            assert_eq!(code, ErrorCode::Unauthorized, "{c}");
            assert!(message.starts_with("malformed token: "), "{c}: {message}");
        }
        for garbage in ["", "a.b", "a.b.c.d", "!!.e30.e30", "e30.e30.e30"] {
            assert_eq!(verify(garbage, &[SECRET], NOW_MS).unwrap_err().code, ErrorCode::Unauthorized, "{garbage}");
        }
    }

    #[test]
    fn oversized_tokens_are_refused_before_decoding() {
        let mut c = claims();
        c["sub"] = json!("x".repeat(MAX_TOKEN_BYTES));
        assert_eq!(refusal(verify(&token(&c), &[SECRET], NOW_MS)).1, "token exceeds 4096 bytes");
    }

    #[test]
    fn scopes_match_whole_segments() {
        let subtree = PathScope::parse("/a/**").unwrap();
        assert!(subtree.covers("/a") && subtree.covers("/a/b") && subtree.covers("/a/b/c"));
        assert!(!subtree.covers("/ab") && !subtree.covers("/") && !subtree.covers("/b/a"));
        let exact = PathScope::parse("/a").unwrap();
        assert!(exact.covers("/a") && !exact.covers("/a/b") && !exact.covers("/"));
        let everything = PathScope::parse("/**").unwrap();
        assert!(everything.covers("/") && everything.covers("/x/y"));
        assert!(PathScope::parse("/").unwrap().covers("/") && !PathScope::parse("/").unwrap().covers("/a"));
    }

    #[test]
    fn refusals_name_the_namespace_path_or_operation() {
        let claims = verify(&token(&claims()), &[SECRET], NOW_MS).unwrap();
        let name = |ns: &str, path: &str| StreamName::new(ns, path).unwrap();
        assert!(claims.allow_stream(&name("app", "/a/b")).is_ok());
        let denied = |r: StreamResult<()>| {
            let e = r.unwrap_err();
            assert_eq!(e.code, ErrorCode::Forbidden);
            e.message
        };
        assert_eq!(denied(claims.allow_stream(&name("other", "/a"))), "token does not cover namespace \"other\"");
        assert_eq!(denied(claims.allow_stream(&name("app", "/ab"))), "token does not cover path \"/ab\"");
        assert_eq!(denied(claims.allow_op(Op::Append)), "token does not allow append");
        assert!(claims.allow_op(Op::Read).is_ok());
    }

    #[test]
    fn appending_a_control_event_needs_configure_and_refuses_the_whole_batch() {
        let token_with = |ops: Value| {
            let mut c = claims();
            c["ops"] = ops;
            verify(&token(&c), &[SECRET], NOW_MS).unwrap()
        };
        let append_only = token_with(json!(["append"]));
        let configure = token_with(json!(["append", "configure"]));
        assert_eq!(configure.ops, vec![Op::Append, Op::Configure]);
        let args = |v: Value| v.as_object().unwrap().clone();
        for control in types::CONTROL {
            let single = args(json!({"event": {"type": control, "payload": {}}}));
            let err = append_only.allow_control_events(StreamMethod::Append, &single).unwrap_err();
            assert_eq!(err.code, ErrorCode::Forbidden);
            assert_eq!(err.message, format!("token does not allow configure, which appending \"{control}\" needs"));
            assert!(configure.allow_control_events(StreamMethod::Append, &single).is_ok());
            let batch = args(json!({"events": [{"type": "app/x"}, {"type": control}, {"type": "app/y"}]}));
            assert_eq!(control_event_type(StreamMethod::AppendBatch, &batch), Some(control));
            assert!(append_only.allow_control_events(StreamMethod::AppendBatch, &batch).is_err());
        }
        for harmless in [
            json!({"event": {"type": "app/x"}}),
            json!({"event": {"type": format!("{} ", types::PAUSED)}}),
            json!({"event": {"type": types::ERROR_OCCURRED}}),
            json!({"event": "not an object"}),
            json!({"events": [{"type": 7}, null]}),
        ] {
            let harmless = args(harmless);
            assert!(append_only.allow_control_events(StreamMethod::Append, &harmless).is_ok(), "{harmless:?}");
            assert!(append_only.allow_control_events(StreamMethod::AppendBatch, &harmless).is_ok(), "{harmless:?}");
        }
        // Only appends carry events.
        assert_eq!(control_event_type(StreamMethod::Reduce, &args(json!({"event": {"type": types::PAUSED}}))), None);
    }

    #[test]
    fn every_public_method_but_reset_and_kill_is_grantable() {
        for method in StreamMethod::ALL {
            let admin_only = method.needs_admin() || method.http() == crate::rpc::HttpAccess::Unreachable;
            assert_eq!(Op::for_method(method).is_none(), admin_only, "{method:?}");
        }
    }

    proptest! {
        #[test]
        fn base64url_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(base64url_decode(&b64(&bytes)), Some(bytes));
        }

        #[test]
        fn base64url_accepts_only_canonical_text(text in "[A-Za-z0-9_=+/-]{0,12}") {
            if let Some(bytes) = base64url_decode(&text) {
                prop_assert_eq!(b64(&bytes), text);
            }
        }

        #[test]
        fn subtree_covers_exactly_the_prefix_and_its_descendants(
            base in "(/[a-c]{1,2}){1,3}",
            path in "(/[a-c]{1,2}){1,4}",
        ) {
            let covered = PathScope::parse(&format!("{base}/**")).unwrap().covers(&path);
            let base_segments: Vec<&str> = base.split('/').collect();
            let path_segments: Vec<&str> = path.split('/').collect();
            prop_assert_eq!(covered, path_segments.starts_with(&base_segments));
        }

        #[test]
        fn any_changed_byte_breaks_the_signature(index in 0usize..200, replacement in "[A-Za-z0-9_-]") {
            let good = token(&claims());
            let index = index % good.len();
            let mut forged = good.clone().into_bytes();
            if forged[index] == b'.' || forged[index] == replacement.as_bytes()[0] {
                return Ok(());
            }
            forged[index] = replacement.as_bytes()[0];
            let forged = String::from_utf8(forged).unwrap();
            prop_assert!(verify(&forged, &[SECRET], NOW_MS).is_err());
        }
    }
}
