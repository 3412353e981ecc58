//! `streams`: a durable, append-only event stream per path, one Durable Object
//! (`Stream`) per stream. The pure logic is the `streams-core` crate; `durable`
//! adapts it to DO SQLite and the runtime; `api` is the public surface
//! (entrypoint and HTTP).

#[cfg(target_arch = "wasm32")]
mod alloc;
mod api;
mod directory;
mod durable;
mod js;
mod query;
mod settings;
mod stub;
mod wire;

pub use directory::Directory;
pub use durable::Stream;
