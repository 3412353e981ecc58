//! `streams`: a durable, append-only event stream per path, one Durable Object
//! (`Stream`) per stream. `core` is the pure logic; `durable` adapts it to DO
//! SQLite and the runtime; `api` is the public surface (entrypoint and HTTP).

pub mod core;

mod api;
mod durable;
mod js;
mod settings;
mod stub;

pub use durable::Stream;
