//! The pure core of a stream: names, the event model, validation, the reducer,
//! the circuit breaker, chunking, append planning, load/rebuild and the RPC
//! allowlist. It has no platform dependency: no `worker`, `wasm-bindgen`,
//! `js-sys` or `web-sys` (the test script checks its dependency tree).

pub mod access;
pub mod append;
pub mod breaker;
pub mod chunk;
pub mod directory;
pub mod error;
pub mod event;
pub mod inbound;
pub mod json;
pub mod limits;
pub mod name;
pub mod outbound;
pub mod payload;
pub mod plain_input;
pub mod read;
pub mod reducer;
pub mod rpc;
pub mod sse;
pub mod state;
pub mod store;
pub mod subscription;
pub mod subscriber;
pub mod tiers;
pub mod time;
pub mod token;
pub mod unwritten;

#[cfg(any(test, feature = "test-util"))]
pub mod testing;

pub use append::{child_notice, plan_append, plan_inputs, AppendContext, AppendPlan, Origin, Slot};
pub use error::{ErrorCode, StreamError, StreamResult};
pub use event::{types, Event, EventInput};
pub use name::StreamName;
pub use state::{CoreState, CORE_STATE_VERSION};
pub use store::{load_state, EventStore, NewEvent, StoreError, StoredEvent, StoredState};
