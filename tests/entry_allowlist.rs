//! `src/entry.mjs` must forward exactly the DO methods of the Rust allowlist
//! (docs/protocol.md#durable-object-rpc): no more, so internals stay unreachable, and no fewer.

use std::collections::BTreeSet;

use streams_core::rpc::StreamMethod;

const ENTRY: &str = include_str!("../src/entry.mjs");
const RUNTIME_HANDLERS: [&str; 6] = ["fetch", "alarm", "webSocketMessage", "webSocketClose", "webSocketError", "constructor"];

fn forwarded_methods() -> BTreeSet<String> {
    let after_stream = ENTRY.split("class Stream extends DurableObject").nth(1).expect("entry.mjs declares the Stream class");
    // Only the Stream class: other classes (the directory shards) have their own methods.
    let class_body = after_stream.split("\nexport class ").next().unwrap_or(after_stream);
    class_body
        .lines()
        .map(str::trim)
        .filter_map(|line| {
            let name: String = line.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
            (!name.is_empty() && line[name.len()..].starts_with('(') && line.contains(") {")).then_some(name)
        })
        .filter(|name| !RUNTIME_HANDLERS.contains(&name.as_str()))
        .collect()
}

#[test]
fn entry_forwards_exactly_the_allowlisted_methods() {
    let allowlist: BTreeSet<String> = StreamMethod::ALL.iter().map(|m| m.js_name().to_owned()).collect();
    assert_eq!(forwarded_methods(), allowlist);
}

#[test]
fn entry_keeps_the_rust_object_private() {
    assert!(ENTRY.contains("#inner"), "the Rust object must be a private field, invisible to RPC");
}
