//! Access control on public HTTP, wired to the configuration: the master and
//! admin tokens, scoped tokens (`STREAMS_JWT_SECRET`, `…_PREVIOUS`), CORS
//! (`STREAMS_CORS_ORIGINS`) and the open-API switch (`STREAMS_OPEN_ACCESS`). The decisions are in `core::access`.

use worker::{Env, Headers, Response, ResponseBuilder};

use streams_core::access::{origin_refused, AccessKeys, CorsOrigins};
use streams_core::StreamError;
use crate::settings::text;

/// The query parameter that may carry a scoped token on the WebSocket route.
pub const ACCESS_TOKEN_PARAM: &str = "access_token";
const ALLOW_METHODS: &str = "GET, POST, OPTIONS";
const ALLOW_HEADERS: &str = "Authorization, Content-Type";
const EXPOSE_HEADERS: &str = "Allow";
const PREFLIGHT_MAX_AGE_SECONDS: &str = "600";

/// The access configuration of one request.
pub struct Gate {
    api_token: Option<String>,
    admin_token: Option<String>,
    jwt_secrets: Vec<String>,
    open_access: bool,
    pub cors: Option<CorsOrigins>,
}

impl Gate {
    pub fn from_env(env: &Env) -> Self {
        let set = |name: &str| text(env, name).filter(|v| !v.is_empty());
        Self {
            api_token: set("STREAMS_API_TOKEN"),
            admin_token: set("STREAMS_ADMIN_TOKEN"),
            jwt_secrets: ["STREAMS_JWT_SECRET", "STREAMS_JWT_SECRET_PREVIOUS"].into_iter().filter_map(set).collect(),
            open_access: text(env, "STREAMS_OPEN_ACCESS").as_deref() == Some("true"),
            cors: set("STREAMS_CORS_ORIGINS").and_then(|list| CorsOrigins::parse(&list)),
        }
    }

    pub fn keys(&self) -> AccessKeys<'_> {
        AccessKeys {
            api_token: self.api_token.as_deref(),
            admin_token: self.admin_token.as_deref(),
            jwt_secrets: self.jwt_secrets.iter().map(String::as_bytes).collect(),
            open_access: self.open_access,
        }
    }

    /// The answer to `OPTIONS` while CORS is on (`None` while it is off): 204
    /// with the allowed methods and headers for a listed origin, 403
    /// `forbidden` otherwise.
    pub fn preflight(&self, origin: Option<&str>) -> Option<Result<Response, StreamError>> {
        let cors = self.cors.as_ref()?;
        Some(match origin {
            Some(origin) if cors.allows(origin) => ResponseBuilder::new()
                .with_status(204)
                .with_header("access-control-allow-methods", ALLOW_METHODS)
                .and_then(|r| r.with_header("access-control-allow-headers", ALLOW_HEADERS))
                .and_then(|r| r.with_header("access-control-max-age", PREFLIGHT_MAX_AGE_SECONDS))
                .map(ResponseBuilder::empty)
                .map_err(|_| StreamError::internal()),
            Some(origin) => Err(origin_refused(origin)),
            None => Err(StreamError::invalid_request("a CORS preflight needs an Origin header")),
        })
    }

    /// While CORS is on, a WebSocket upgrade from an unlisted page origin is refused.
    pub fn check_upgrade_origin(&self, origin: Option<&str>) -> Result<(), StreamError> {
        self.cors.as_ref().map_or(Ok(()), |cors| cors.check_upgrade(origin))
    }

    /// Adds `Vary: Origin` to every response while CORS is on, and the allow
    /// and expose headers when the request's origin is listed. WebSocket
    /// upgrades (101) pass unchanged: browsers apply no CORS to them.
    pub fn with_cors(&self, response: Response, origin: Option<&str>) -> worker::Result<Response> {
        let Some(cors) = &self.cors else { return Ok(response) };
        if response.status_code() == 101 {
            return Ok(response);
        }
        // Headers of a forwarded response may be immutable, so copy them.
        let headers = Headers::new();
        for (name, value) in response.headers().entries() {
            headers.append(&name, &value)?;
        }
        headers.append("vary", "Origin")?;
        if let Some(origin) = origin.filter(|origin| cors.allows(origin)) {
            headers.set("access-control-allow-origin", origin)?;
            headers.set("access-control-expose-headers", EXPOSE_HEADERS)?;
        }
        Ok(response.with_headers(headers))
    }
}
