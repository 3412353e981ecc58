//! Who may call what over public HTTP: the master tokens, scoped tokens
//! (see `token`) and the CORS origin list. Pure; the HTTP layer reads the
//! configuration and the request and applies the answers.

use serde_json::{Map, Value};

use super::error::{ErrorCode, StreamError, StreamResult};
use super::name::{quote, StreamName};
use super::rpc::StreamMethod;
use super::token::{verify, Claims, Op};

/// The credentials the deployment configures; empty values count as unset.
#[derive(Debug, Default)]
pub struct AccessKeys<'a> {
    pub api_token: Option<&'a str>,
    pub admin_token: Option<&'a str>,
    /// The current JWT secret first, then the previous one during a rotation.
    pub jwt_secrets: Vec<&'a [u8]>,
    /// `STREAMS_OPEN_ACCESS = "true"`: with no API token and no JWT secret,
    /// every request is let in (local development) instead of refused.
    pub open_access: bool,
}

/// What an authenticated request may do.
#[derive(Debug, Clone, PartialEq)]
pub enum Access {
    /// The API or admin token, or an open API (`STREAMS_OPEN_ACCESS` with no credentials configured).
    Full,
    Scoped(Claims),
}

const MISSING: &str = "missing or invalid bearer token";
/// docs/access.md#closed-by-default
pub const CLOSED: &str =
    "the API is closed: set STREAMS_API_TOKEN or STREAMS_JWT_SECRET (or STREAMS_OPEN_ACCESS=\"true\" for local development)";

impl Access {
    /// `bearer` is the `Authorization: Bearer` value; `query_token` the
    /// `access_token` parameter, which only the subscribe route passes and
    /// which can only carry a scoped token. While neither `api_token` nor a
    /// JWT secret is set, the API is closed (only the admin token gets in)
    /// unless `open_access` opens it.
    pub fn authenticate(keys: &AccessKeys, bearer: Option<&str>, query_token: Option<&str>, now_ms: f64) -> StreamResult<Self> {
        let master = [keys.api_token, keys.admin_token].into_iter().flatten();
        if let Some(bearer) = bearer {
            // Not short-circuited, so timing does not tell which token matched.
            if master.fold(false, |matched, token| matched | constant_time_eq(bearer, token)) {
                return Ok(Self::Full);
            }
        }
        if keys.api_token.is_none() && keys.jwt_secrets.is_empty() {
            return if keys.open_access { Ok(Self::Full) } else { Err(StreamError::new(ErrorCode::Unauthorized, CLOSED)) };
        }
        match bearer.or(query_token) {
            Some(token) if !keys.jwt_secrets.is_empty() && looks_like_jwt(token) => {
                verify(token, &keys.jwt_secrets, now_ms).map(Self::Scoped)
            }
            _ => Err(StreamError::new(ErrorCode::Unauthorized, MISSING)),
        }
    }

    pub fn allow_op(&self, op: Op) -> StreamResult<()> {
        match self {
            Self::Full => Ok(()),
            Self::Scoped(claims) => claims.allow_op(op),
        }
    }

    /// A scoped token needs `configure` to append a control event (docs/access.md#operations).
    pub fn allow_control_events(&self, method: StreamMethod, args: &Map<String, Value>) -> StreamResult<()> {
        match self {
            Self::Full => Ok(()),
            Self::Scoped(claims) => claims.allow_control_events(method, args),
        }
    }

    /// Whether an append by this principal answers idempotency hits with
    /// summaries: without `read`, a hit must not reveal another writer's
    /// event (docs/access.md#operations).
    pub fn summarizes_hits(&self, method: StreamMethod) -> bool {
        matches!(method, StreamMethod::Append | StreamMethod::AppendBatch)
            && matches!(self, Self::Scoped(claims) if !claims.ops.contains(&Op::Read))
    }

    pub fn allow_namespace(&self, namespace: &str) -> StreamResult<()> {
        match self {
            Self::Full => Ok(()),
            Self::Scoped(claims) => claims.allow_namespace(namespace),
        }
    }

    /// Whether a listing shows `path` of `namespace` to this caller.
    pub fn covers(&self, namespace: &str, path: &str) -> bool {
        match self {
            Self::Full => true,
            Self::Scoped(claims) => claims.namespace == namespace && claims.paths.iter().any(|scope| scope.covers(path)),
        }
    }

    pub fn allow_stream(&self, name: &StreamName) -> StreamResult<()> {
        match self {
            Self::Full => Ok(()),
            Self::Scoped(claims) => claims.allow_stream(name),
        }
    }
}

/// A JWT has exactly three dot-separated parts; anything else is a wrong
/// master token and gets the master token's message.
fn looks_like_jwt(token: &str) -> bool {
    token.bytes().filter(|b| *b == b'.').count() == 2
}

/// `Authorization: Bearer <admin token>`, compared in constant time.
pub fn is_admin(keys: &AccessKeys, bearer: Option<&str>) -> bool {
    keys.admin_token.zip(bearer).is_some_and(|(admin, bearer)| constant_time_eq(bearer, admin))
}

/// Compares without an early exit, so timing does not reveal the matching prefix.
pub fn constant_time_eq(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

/// `STREAMS_CORS_ORIGINS`: a comma list of origins, or `*` for any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    Any,
    List(Vec<String>),
}

impl CorsOrigins {
    /// `None` when the list is empty: CORS is off and no headers are sent.
    pub fn parse(config: &str) -> Option<Self> {
        let origins: Vec<String> = config
            .split(',')
            .map(|origin| origin.trim().trim_end_matches('/').to_ascii_lowercase())
            .filter(|origin| !origin.is_empty())
            .collect();
        if origins.iter().any(|origin| origin == "*") {
            Some(Self::Any)
        } else {
            (!origins.is_empty()).then_some(Self::List(origins))
        }
    }

    /// Origins are compared whole (scheme, host and port), ignoring ASCII case.
    pub fn allows(&self, origin: &str) -> bool {
        match self {
            Self::Any => true,
            Self::List(origins) => origins.iter().any(|allowed| allowed.eq_ignore_ascii_case(origin)),
        }
    }

    /// A WebSocket upgrade from a page on another origin. A request with no
    /// `Origin` does not come from a browser page and passes.
    pub fn check_upgrade(&self, origin: Option<&str>) -> StreamResult<()> {
        match origin {
            Some(origin) if !self.allows(origin) => Err(origin_refused(origin)),
            _ => Ok(()),
        }
    }
}

pub fn origin_refused(origin: &str) -> StreamError {
    StreamError::new(ErrorCode::Forbidden, format!("origin {} is not in STREAMS_CORS_ORIGINS", quote(origin)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys<'a>(api: Option<&'a str>, admin: Option<&'a str>, secrets: &[&'a [u8]]) -> AccessKeys<'a> {
        AccessKeys { api_token: api, admin_token: admin, jwt_secrets: secrets.to_vec(), open_access: false }
    }

    fn open(mut keys: AccessKeys<'_>) -> AccessKeys<'_> {
        keys.open_access = true;
        keys
    }

    fn code(result: StreamResult<Access>) -> (ErrorCode, String) {
        let err = result.unwrap_err();
        (err.code, err.message)
    }

    #[test]
    fn closed_unless_configured_or_explicitly_open() {
        let closed = (ErrorCode::Unauthorized, CLOSED.to_owned());
        assert_eq!(code(Access::authenticate(&keys(None, None, &[]), None, None, 0.0)), closed);
        assert_eq!(code(Access::authenticate(&keys(None, None, &[]), Some("guess"), Some("a.b.c"), 0.0)), closed);
        // The admin token alone keeps the API closed to everyone else, but itself gets in.
        assert_eq!(code(Access::authenticate(&keys(None, Some("adm"), &[]), None, None, 0.0)), closed);
        assert_eq!(Access::authenticate(&keys(None, Some("adm"), &[]), Some("adm"), None, 0.0), Ok(Access::Full));
        // STREAMS_OPEN_ACCESS opens only an API with no credentials configured.
        assert_eq!(Access::authenticate(&open(keys(None, None, &[])), None, None, 0.0), Ok(Access::Full));
        assert_eq!(Access::authenticate(&open(keys(None, Some("adm"), &[])), None, None, 0.0), Ok(Access::Full));
        let missing = (ErrorCode::Unauthorized, MISSING.to_owned());
        assert_eq!(code(Access::authenticate(&keys(Some("a"), None, &[]), None, None, 0.0)), missing);
        assert_eq!(code(Access::authenticate(&keys(None, None, &[b"s"]), None, None, 0.0)), missing);
        assert_eq!(code(Access::authenticate(&open(keys(Some("a"), None, &[])), None, None, 0.0)), missing);
        assert_eq!(code(Access::authenticate(&open(keys(None, None, &[b"s"])), None, None, 0.0)), missing);
    }

    #[test]
    fn master_tokens_come_only_from_the_header() {
        let k = keys(Some("api"), Some("adm"), &[b"s"]);
        assert_eq!(Access::authenticate(&k, Some("api"), None, 0.0), Ok(Access::Full));
        assert_eq!(Access::authenticate(&k, Some("adm"), None, 0.0), Ok(Access::Full));
        assert_eq!(code(Access::authenticate(&k, None, Some("api"), 0.0)).0, ErrorCode::Unauthorized);
        assert_eq!(code(Access::authenticate(&k, Some("apix"), None, 0.0)), (ErrorCode::Unauthorized, MISSING.to_owned()));
    }

    #[test]
    fn jwt_shaped_credentials_get_the_verifier_message() {
        let k = keys(None, None, &[b"s"]);
        let (code, message) = code(Access::authenticate(&k, Some("a.b.c"), None, 0.0));
        assert_eq!(code, ErrorCode::Unauthorized);
        assert!(message.starts_with("malformed token"), "{message}");
        // Without a JWT secret a JWT is just a wrong bearer token.
        let k = keys(Some("api"), None, &[]);
        assert_eq!(self::code(Access::authenticate(&k, Some("a.b.c"), None, 0.0)).1, MISSING);
    }

    #[test]
    fn admin_needs_the_exact_admin_token() {
        assert!(is_admin(&keys(None, Some("adm"), &[]), Some("adm")));
        assert!(!is_admin(&keys(Some("adm"), None, &[]), Some("adm")));
        assert!(!is_admin(&keys(None, Some("adm"), &[]), Some("ad")));
        assert!(!is_admin(&keys(None, None, &[]), Some("")));
    }

    #[test]
    fn cors_origins_parse_and_match_whole_origins() {
        assert_eq!(CorsOrigins::parse(""), None);
        assert_eq!(CorsOrigins::parse(" , "), None);
        assert_eq!(CorsOrigins::parse("https://a.example, *"), Some(CorsOrigins::Any));
        let list = CorsOrigins::parse(" https://App.example/ ,http://127.0.0.1:8080").unwrap();
        assert!(list.allows("https://app.example"));
        assert!(list.allows("http://127.0.0.1:8080"));
        assert!(!list.allows("http://127.0.0.1:8081"));
        assert!(!list.allows("https://app.example.evil"));
        assert!(!list.allows("null"));
        assert!(list.check_upgrade(None).is_ok());
        let refused = list.check_upgrade(Some("https://evil.example")).unwrap_err();
        assert_eq!(refused.code, ErrorCode::Forbidden);
        assert_eq!(refused.message, "origin \"https://evil.example\" is not in STREAMS_CORS_ORIGINS");
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
        assert!(!constant_time_eq("", "a"));
        assert!(constant_time_eq("", ""));
    }
}
