//! The public surface: the service-binding entrypoint and public HTTP (docs/protocol.md#service-binding, #http-routes).

mod auth;
mod entrypoint;
mod http;
mod sse;
mod target;
