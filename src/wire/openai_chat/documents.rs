//! Decoding requests and buffered completions off the wire, fast for the usual shapes.
//!
//! As for stream chunks (`chunk.rs`), `from_value` goes through serde's `flatten` machinery,
//! which copies every field of every object into an intermediate buffer before it is read:
//! for a request or a completion that cost about as much as the strict parse itself. The
//! usual shapes (string message contents; completions without tool calls) are taken apart by
//! hand here, moving the parsed strings; every other shape, and everything serde would
//! reject, still goes through `from_value`, so errors and edge cases are serde's own. The
//! parse itself stays [`parse_strict`](crate::wire::parse_strict): duplicate keys, the nesting
//! limit and UTF-8 are checked before anything here runs.

use serde_json::{Map, Value};

use super::chunk::{
    is_text_choices, nullable_str, take_choices, take_index, take_message, take_nullable_str,
};
use super::types::{ChatCompletion, ChatRequest, Choice, Content, Message, Nullable};
use crate::wire::WireError;
use crate::wire::json::from_value;

/// The [`ChatRequest`] of a parsed body, as `from_value` would make it.
pub(crate) fn request_from_value(v: Value) -> Result<ChatRequest, WireError> {
    match v {
        Value::Object(map) if is_plain_request(&map) => Ok(take_request(map)),
        v => from_value(v),
    }
}

/// The [`ChatCompletion`] of a parsed body, as `from_value` would make it.
pub(crate) fn completion_from_value(v: Value) -> Result<ChatCompletion, WireError> {
    match v {
        Value::Object(map) if is_text_completion(&map) => Ok(take_completion(map)),
        v => from_value(v),
    }
}

// === requests ===

/// Whether `take_request` reads `map` exactly as serde would: `messages` an array of objects
/// whose `role` is a string and whose `content` is absent, `null` or a string; `model`,
/// `stream` and `n` absent, `null` or of their type.
fn is_plain_request(map: &Map<String, Value>) -> bool {
    let message = |m: &Value| {
        let Value::Object(m) = m else {
            return false;
        };
        matches!(m.get("role"), Some(Value::String(_))) && nullable_str(m.get("content"))
    };
    let n_ok = match map.get("n") {
        None | Some(Value::Null) => true,
        Some(n) => n.as_u64().is_some_and(|n| u32::try_from(n).is_ok()),
    };
    matches!(map.get("messages"), Some(Value::Array(ms)) if ms.iter().all(message))
        && nullable_str(map.get("model"))
        && matches!(map.get("stream"), None | Some(Value::Null | Value::Bool(_)))
        && n_ok
}

/// Takes apart a request `is_plain_request` accepted.
fn take_request(mut map: Map<String, Value>) -> ChatRequest {
    let messages = match map.remove("messages") {
        Some(Value::Array(ms)) => ms
            .into_iter()
            .filter_map(|m| match m {
                Value::Object(m) => Some(take_plain_message(m)),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let model = take_nullable_str(&mut map, "model");
    let stream = match map.remove("stream") {
        Some(Value::Bool(b)) => Nullable::Present(b),
        Some(_) => Nullable::Null,
        None => Nullable::Absent,
    };
    let n = match map.remove("n") {
        Some(Value::Null) => Nullable::Null,
        Some(n) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map_or(Nullable::Null, Nullable::Present),
        None => Nullable::Absent,
    };
    ChatRequest {
        model,
        messages,
        stream,
        n,
        extra: map,
    }
}

fn take_plain_message(mut m: Map<String, Value>) -> Message {
    let role = match m.remove("role") {
        Some(Value::String(r)) => r,
        _ => String::new(),
    };
    let content = match m.remove("content") {
        Some(Value::String(s)) => Nullable::Present(Content::Text(s)),
        Some(_) => Nullable::Null,
        None => Nullable::Absent,
    };
    Message {
        role,
        content,
        extra: m,
    }
}

// === completions ===

/// Whether `take_completion` reads `map` exactly as serde would: choices whose `message` is
/// absent, `null` or a message without tool calls.
fn is_text_completion(map: &Map<String, Value>) -> bool {
    is_text_choices(map, "message")
}

/// Takes apart a completion `is_text_completion` accepted.
fn take_completion(map: Map<String, Value>) -> ChatCompletion {
    take_choices(map, take_choice)
}

fn take_choice(mut c: Map<String, Value>) -> Choice {
    let index = take_index(&mut c);
    let message = match c.remove("message") {
        Some(Value::Object(m)) => Nullable::Present(take_message(m)),
        Some(_) => Nullable::Null,
        None => Nullable::Absent,
    };
    let finish_reason = take_nullable_str(&mut c, "finish_reason");
    Choice {
        index,
        message,
        finish_reason,
        extra: c,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::wire::parse_strict;

    /// Checks that the hand-made decoding gives what serde gives (values, errors and the JSON
    /// written back) on every case.
    pub(in crate::wire::openai_chat) fn same_as_serde<T>(
        cases: &[&str],
        fast: fn(Value) -> Result<T, WireError>,
    ) where
        T: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug,
    {
        for case in cases {
            let v = parse_strict(case.as_bytes()).expect(case);
            let ours = fast(v.clone());
            let serde = from_value::<T>(v);
            assert_eq!(ours, serde, "{case}");
            if let (Ok(a), Ok(b)) = (&ours, &serde) {
                assert_eq!(
                    serde_json::to_string(a).ok(),
                    serde_json::to_string(b).ok(),
                    "{case}"
                );
            }
        }
    }

    #[test]
    fn request_from_value_matches_serde() {
        same_as_serde(
            &[
                r#"{"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"hi","name":"n"}],"temperature":0.2,"stream":false}"#,
                r#"{"messages":[]}"#,
                r#"{"model":null,"messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]}],"stream":null,"n":null}"#,
                r#"{"messages":[{"role":"assistant"}],"n":3,"stream":true,"stream_options":{"include_usage":true}}"#,
                r#"{"messages":[{"role":"user","content":"x"}],"n":4294967295}"#,
                // Shapes left to serde, errors included.
                r#"{"messages":[{"role":"user","content":[{"type":"text","text":"a"}]}]}"#,
                r#"{"model":"m"}"#,
                r#"{"messages":null}"#,
                r#"{"messages":{}}"#,
                r#"{"messages":[1]}"#,
                r#"{"messages":[{"content":"no role"}]}"#,
                r#"{"messages":[{"role":null,"content":"x"}]}"#,
                r#"{"messages":[{"role":1}]}"#,
                r#"{"messages":[{"role":"user","content":1}]}"#,
                r#"{"messages":[{"role":"user","content":{}}]}"#,
                r#"{"messages":[],"model":5}"#,
                r#"{"messages":[],"stream":"yes"}"#,
                r#"{"messages":[],"n":-1}"#,
                r#"{"messages":[],"n":1.0}"#,
                r#"{"messages":[],"n":4294967296}"#,
                r#"{"messages":[],"n":"2"}"#,
                r#"[]"#,
                r#""x""#,
            ],
            request_from_value,
        );
    }

    #[test]
    fn completion_from_value_matches_serde() {
        same_as_serde(
            &[
                r#"{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"total_tokens":3}}"#,
                r#"{"choices":[{"message":{"content":null,"refusal":"no","reasoning":"r","reasoning_content":"rc","annotations":[]}}]}"#,
                r#"{"choices":[{"index":2,"message":null,"finish_reason":null},{"index":1}]}"#,
                r#"{"choices":[{"message":{"tool_calls":null,"function_call":{"name":"f","arguments":"{}"}}}]}"#,
                r#"{"choices":[]}"#,
                r#"{"id":"only"}"#,
                // Shapes left to serde, errors included.
                r#"{"choices":[{"message":{"tool_calls":[{"id":"c","function":{"name":"f","arguments":"{}"}}]}}]}"#,
                r#"{"choices":null}"#,
                r#"{"choices":{}}"#,
                r#"{"choices":[1]}"#,
                r#"{"choices":[{"index":-1}]}"#,
                r#"{"choices":[{"index":null}]}"#,
                r#"{"choices":[{"index":4294967296}]}"#,
                r#"{"choices":[{"message":"x"}]}"#,
                r#"{"choices":[{"message":{"content":1}}]}"#,
                r#"{"choices":[{"message":{"role":false}}]}"#,
                r#"{"choices":[{"finish_reason":3}]}"#,
                r#"{"choices":[{"message":{"tool_calls":"x"}}]}"#,
                r#"[1]"#,
            ],
            completion_from_value,
        );
    }
}
