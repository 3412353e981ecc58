//! The public surface: the service-binding entrypoint and public HTTP (spec §9.2, §9.3).

mod auth;
mod entrypoint;
mod http;
mod target;
