//! Outbound subscriber configuration: the callable shape of
//! `S/subscription-configured`, the binding allowlist, and the descriptor a
//! subscriber announces itself with (docs/protocol.md#system-events, #outbound-subscribers).

use serde_json::{Map, Value};

use super::error::{ErrorCode, StreamError};
use super::name::quote;
use super::subscription::STREAM_ARGUMENT_KEYS;

pub const DEFAULT_RPC_METHOD: &str = "requestStreamSubscription";
/// The stream's own namespace binding is never a subscriber target.
const FORBIDDEN_BINDING: &str = "STREAM";

#[derive(Debug, Clone, PartialEq)]
pub enum BindingTarget {
    /// `env[binding].getByName(name)`.
    DurableObject { name: String },
    /// `env[binding]` itself.
    Service,
}

/// A subscriber the stream can dial over JS RPC.
#[derive(Debug, Clone, PartialEq)]
pub struct CallableSubscriber {
    pub binding_name: String,
    pub target: BindingTarget,
    pub rpc_method: String,
    /// Merged shallowly into the dial arguments and every delivery.
    pub shallow_merge: Option<Map<String, Value>>,
}

impl CallableSubscriber {
    /// Parses `payload.subscriber`; the error explains what shape is expected.
    pub fn parse(subscriber: Option<&Value>) -> Result<Self, String> {
        let subscriber = strict(subscriber, "payload.subscriber", &["type", "callable"])?;
        if subscriber.get("type").and_then(Value::as_str) != Some("callable") {
            return Err("payload.subscriber.type must be \"callable\"".into());
        }
        let callable = strict(
            subscriber.get("callable"),
            "payload.subscriber.callable",
            &["type", "via", "rpcMethod", "argsMode", "transformInput"],
        )?;
        if callable.get("type").and_then(Value::as_str) != Some("workers-rpc") {
            return Err("payload.subscriber.callable.type must be \"workers-rpc\"".into());
        }
        let via = strict(
            callable.get("via"),
            "payload.subscriber.callable.via",
            &["type", "bindingType", "bindingName", "durableObject"],
        )?;
        if via.get("type").and_then(Value::as_str) != Some("env-binding") {
            return Err("payload.subscriber.callable.via.type must be \"env-binding\"".into());
        }
        let binding_name = match via.get("bindingName").and_then(Value::as_str) {
            Some(name) if !name.trim().is_empty() => name.trim().to_owned(),
            _ => return Err("payload.subscriber.callable.via.bindingName must be a non-empty string".into()),
        };
        let target = match via.get("bindingType").and_then(Value::as_str) {
            Some("durable-object-namespace") => {
                let object = strict(via.get("durableObject"), "payload.subscriber.callable.via.durableObject", &["name"])?;
                match object.get("name").and_then(Value::as_str) {
                    Some(name) if !name.is_empty() => BindingTarget::DurableObject { name: name.to_owned() },
                    _ => return Err("payload.subscriber.callable.via.durableObject.name must be a non-empty string".into()),
                }
            }
            Some("service") if via.get("durableObject").is_none() => BindingTarget::Service,
            Some("service") => return Err("payload.subscriber.callable.via.durableObject is only for durable-object-namespace bindings".into()),
            _ => return Err("payload.subscriber.callable.via.bindingType must be \"durable-object-namespace\" or \"service\"".into()),
        };
        let rpc_method = match callable.get("rpcMethod") {
            None => DEFAULT_RPC_METHOD.to_owned(),
            Some(Value::String(m)) if is_js_identifier(m) && m != "constructor" => m.clone(),
            Some(_) => return Err("payload.subscriber.callable.rpcMethod must be a JavaScript identifier other than \"constructor\"".into()),
        };
        if callable.get("argsMode").is_some_and(|m| m.as_str() != Some("object")) {
            return Err("payload.subscriber.callable.argsMode must be \"object\"".into());
        }
        let shallow_merge = match callable.get("transformInput") {
            None => None,
            Some(t) => {
                let t = strict(Some(t), "payload.subscriber.callable.transformInput", &["shallowMerge"])?;
                match t.get("shallowMerge") {
                    None => None,
                    Some(Value::Object(m)) => {
                        if let Some(key) = m.keys().find(|key| STREAM_ARGUMENT_KEYS.contains(&key.as_str())) {
                            return Err(format!(
                                "payload.subscriber.callable.transformInput.shallowMerge.{key} is set by the stream and cannot be replaced"
                            ));
                        }
                        Some(m.clone())
                    }
                    Some(_) => return Err("payload.subscriber.callable.transformInput.shallowMerge must be an object".into()),
                }
            }
        };
        Ok(Self { binding_name, target, rpc_method, shallow_merge })
    }

    /// The allowlist check, repeated at append and at dial.
    pub fn check_allowed(&self, allowed_bindings: &[String]) -> Result<(), StreamError> {
        if self.binding_name != FORBIDDEN_BINDING && allowed_bindings.contains(&self.binding_name) {
            Ok(())
        } else {
            Err(StreamError::new(
                ErrorCode::SubscriberNotAllowed,
                format!("binding {} is not allowed; add it to STREAM_SUBSCRIBER_BINDINGS", quote(&self.binding_name)),
            ))
        }
    }
}

/// `STREAM_SUBSCRIBER_BINDINGS`: a comma list, entries trimmed, empties dropped.
pub fn parse_binding_allowlist(var: &str) -> Vec<String> {
    var.split(',').map(str::trim).filter(|b| !b.is_empty()).map(str::to_owned).collect()
}

fn strict<'a>(value: Option<&'a Value>, name: &str, allowed: &[&str]) -> Result<&'a Map<String, Value>, String> {
    let map = value.and_then(Value::as_object).ok_or_else(|| format!("{name} must be an object"))?;
    match map.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(unknown) => Err(format!("{name}: unknown key {}", quote(unknown))),
        None => Ok(map),
    }
}

fn is_js_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

/// Validates a subscriber descriptor and wraps a bare announcement as
/// `{announcement}`. The error continues the text `payload.subscriber`.
pub fn parse_descriptor(descriptor: &Value) -> Result<Value, String> {
    let map = descriptor.as_object().ok_or(" must be an object")?;
    let mut normalized = map.clone();
    if let Some(id) = map.get("incarnationId") {
        if id.as_str().is_none_or(|s| s.trim().is_empty()) {
            return Err(".incarnationId must be a non-empty string".into());
        }
    }
    if map.get("description").is_some_and(|d| !d.is_string()) {
        return Err(".description must be a string".into());
    }
    if let Some(processor) = map.get("processor") {
        let processor = processor.as_object().ok_or(".processor must be an object")?;
        let wrapped = if processor.contains_key("slug") {
            let mut m = Map::new();
            m.insert("announcement".into(), Value::Object(processor.clone()));
            m
        } else {
            processor.clone()
        };
        let announcement = wrapped.get("announcement").ok_or(".processor.announcement is required")?;
        check_announcement(announcement).map_err(|e| format!(".processor.announcement{e}"))?;
        normalized.insert("processor".into(), Value::Object(wrapped));
    }
    Ok(Value::Object(normalized))
}

/// The announcement of a descriptor, when it has one.
pub fn announcement_of(descriptor: &Value) -> Option<(&str, &Value)> {
    let announcement = descriptor.get("processor")?.get("announcement")?;
    Some((announcement.get("slug")?.as_str()?.trim(), announcement))
}

fn check_announcement(announcement: &Value) -> Result<(), String> {
    let map = announcement.as_object().ok_or(" must be an object")?;
    for field in ["slug", "version"] {
        if map.get(field).and_then(Value::as_str).is_none_or(|s| s.trim().is_empty()) {
            return Err(format!(".{field} must be a non-empty string"));
        }
    }
    if map.get("description").is_some_and(|d| !d.is_string()) {
        return Err(".description must be a string".into());
    }
    for list in ["consumes", "emits"] {
        if map.get(list).is_some_and(|l| !l.is_array()) {
            return Err(format!(".{list} must be an array"));
        }
    }
    if let Some(owned) = map.get("ownedEvents") {
        let owned = owned.as_array().ok_or(".ownedEvents must be an array")?;
        for (i, entry) in owned.iter().enumerate() {
            let ok = entry.get("type").and_then(Value::as_str).is_some_and(|t| !t.trim().is_empty())
                && entry.get("description").is_none_or(Value::is_string);
            if !ok {
                return Err(format!(".ownedEvents[{i}] must be {{type: string, description?: string}}"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn echo_subscriber() -> Value {
        json!({"type":"callable","callable":{"type":"workers-rpc",
            "via":{"type":"env-binding","bindingType":"durable-object-namespace","bindingName":"ECHO_HOST","durableObject":{"name":"echo-1"}},
            "rpcMethod":"requestStreamSubscription","argsMode":"object","transformInput":{"shallowMerge":{"processorName":"echo-example"}}}})
    }

    #[test]
    fn the_spec_example_parses() {
        let s = CallableSubscriber::parse(Some(&echo_subscriber())).unwrap();
        assert_eq!(s.binding_name, "ECHO_HOST");
        assert_eq!(s.target, BindingTarget::DurableObject { name: "echo-1".into() });
        assert_eq!(s.rpc_method, "requestStreamSubscription");
        assert_eq!(s.shallow_merge.unwrap()["processorName"], "echo-example");
    }

    #[test]
    fn other_shapes_are_refused() {
        assert!(CallableSubscriber::parse(Some(&json!({"type": "built-in"}))).is_err());
        let mut bad_method = echo_subscriber();
        bad_method["callable"]["rpcMethod"] = json!("constructor");
        assert!(CallableSubscriber::parse(Some(&bad_method)).is_err());
        let mut service_with_object = echo_subscriber();
        service_with_object["callable"]["via"]["bindingType"] = json!("service");
        assert!(CallableSubscriber::parse(Some(&service_with_object)).is_err());
        let mut args_mode = echo_subscriber();
        args_mode["callable"]["argsMode"] = json!("positional");
        assert!(CallableSubscriber::parse(Some(&args_mode)).is_err());
    }

    #[test]
    fn shallow_merge_cannot_replace_what_the_stream_sends() {
        for key in STREAM_ARGUMENT_KEYS {
            let mut subscriber = echo_subscriber();
            subscriber["callable"]["transformInput"]["shallowMerge"][key] = json!(9e15);
            let err = CallableSubscriber::parse(Some(&subscriber)).unwrap_err();
            assert_eq!(err, format!("payload.subscriber.callable.transformInput.shallowMerge.{key} is set by the stream and cannot be replaced"));
        }
        // Keys of its own (a processor name, a tenant) still pass.
        let mut subscriber = echo_subscriber();
        subscriber["callable"]["transformInput"]["shallowMerge"]["tenant"] = json!({"path": "/x"});
        assert!(CallableSubscriber::parse(Some(&subscriber)).is_ok());
    }

    #[test]
    fn the_allowlist_is_a_trimmed_comma_list_and_never_allows_stream() {
        let allowed = parse_binding_allowlist(" ECHO_HOST , ,OTHER,STREAM");
        assert_eq!(allowed, vec!["ECHO_HOST", "OTHER", "STREAM"]);
        let s = CallableSubscriber::parse(Some(&echo_subscriber())).unwrap();
        assert!(s.check_allowed(&allowed).is_ok());
        let err = s.check_allowed(&[]).unwrap_err();
        assert_eq!(err.to_string(), "subscriber_not_allowed: binding \"ECHO_HOST\" is not allowed; add it to STREAM_SUBSCRIBER_BINDINGS");
        let mut own = s.clone();
        own.binding_name = "STREAM".into();
        assert!(own.check_allowed(&allowed).is_err());
    }

    #[test]
    fn bare_announcements_are_wrapped() {
        let d = parse_descriptor(&json!({"processor": {"slug": "echo-example", "version": "0.1.0"}})).unwrap();
        assert_eq!(announcement_of(&d).unwrap().0, "echo-example");
        assert!(parse_descriptor(&json!({"processor": {"announcement": {"slug": "x"}}})).is_err());
    }
}
