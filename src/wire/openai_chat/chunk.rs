//! Decoding a chat completion chunk off the wire, fast for the usual shape.

use serde_json::{Map, Value};

use super::types::{AssistantMessage, ChatChunk, Choices, ChunkChoice, Delta, Nullable};
use crate::wire::WireError;
use crate::wire::json::from_value;

/// The [`ChatChunk`] of a parsed event, as `from_value` would make it.
///
/// `from_value` goes through serde's `flatten` machinery, which copies every field into an
/// intermediate buffer: per event that cost as much as parsing the JSON. The usual shape (text
/// deltas: no tool calls) is taken apart by hand here instead, moving the parsed strings; every
/// other shape, and everything serde would reject, still goes through `from_value`, so errors
/// and edge cases are serde's own.
pub(crate) fn chunk_from_value(v: Value) -> Result<ChatChunk, WireError> {
    match v {
        Value::Object(map) if is_text_chunk(&map) => Ok(take_chunk(map)),
        v => from_value(v),
    }
}

/// Whether `take_chunk` reads `map` exactly as serde would.
fn is_text_chunk(map: &Map<String, Value>) -> bool {
    is_text_choices(map, "delta")
}

/// Whether every choice of `map` (a chunk or a completion) is one the take-apart reads as
/// serde would: an index, a finish reason, and its `message_key` (`delta` or `message`)
/// absent, `null` or a message without tool calls.
pub(super) fn is_text_choices(map: &Map<String, Value>, message_key: &str) -> bool {
    let text_choice = |c: &Value| {
        let Value::Object(c) = c else {
            return false;
        };
        let message_ok = match c.get(message_key) {
            None | Some(Value::Null) => true,
            Some(Value::Object(m)) => is_text_message(m),
            Some(_) => false,
        };
        index_ok(c.get("index")) && message_ok && nullable_str(c.get("finish_reason"))
    };
    match map.get("choices") {
        None => true,
        Some(Value::Array(cs)) => cs.iter().all(text_choice),
        Some(_) => false,
    }
}

/// A field serde reads as `Nullable<String>`: absent, `null` or a string.
pub(super) fn nullable_str(v: Option<&Value>) -> bool {
    matches!(v, None | Some(Value::Null | Value::String(_)))
}

/// A choice `index` serde reads as `u32` with a default: absent or an integer that fits.
pub(super) fn index_ok(v: Option<&Value>) -> bool {
    match v {
        None => true,
        Some(i) => i.as_u64().is_some_and(|i| u32::try_from(i).is_ok()),
    }
}

/// Whether [`take_message`] reads `d` exactly as serde reads an [`AssistantMessage`]: its
/// text fields absent, `null` or strings, no tool calls.
pub(super) fn is_text_message(d: &Map<String, Value>) -> bool {
    [
        "role",
        "content",
        "refusal",
        "reasoning_content",
        "reasoning",
    ]
    .iter()
    .all(|k| nullable_str(d.get(*k)))
        && matches!(d.get("tool_calls"), None | Some(Value::Null))
}

/// Takes apart a chunk `is_text_chunk` accepted.
fn take_chunk(map: Map<String, Value>) -> ChatChunk {
    take_choices(map, take_choice)
}

/// Takes apart a chunk or a completion whose shape was checked: each object of `choices`
/// through `choice`, every other member kept as it was.
pub(super) fn take_choices<C>(
    mut map: Map<String, Value>,
    choice: fn(Map<String, Value>) -> C,
) -> Choices<C> {
    let choices = match map.remove("choices") {
        Some(Value::Array(cs)) => cs
            .into_iter()
            .filter_map(|c| match c {
                Value::Object(c) => Some(choice(c)),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    Choices {
        choices,
        extra: map,
    }
}

fn take_choice(mut c: Map<String, Value>) -> ChunkChoice {
    let index = take_index(&mut c);
    let delta = match c.remove("delta") {
        Some(Value::Object(d)) => take_message(d),
        _ => Delta::default(),
    };
    let finish_reason = take_nullable_str(&mut c, "finish_reason");
    ChunkChoice {
        index,
        delta,
        finish_reason,
        extra: c,
    }
}

/// Takes out a choice `index` [`index_ok`] accepted.
pub(super) fn take_index(c: &mut Map<String, Value>) -> u32 {
    c.remove("index")
        .and_then(|i| i.as_u64())
        .and_then(|i| u32::try_from(i).ok())
        .unwrap_or(0)
}

/// Takes apart a message [`is_text_message`] accepted.
pub(super) fn take_message(mut d: Map<String, Value>) -> AssistantMessage {
    AssistantMessage {
        role: take_nullable_str(&mut d, "role"),
        content: take_nullable_str(&mut d, "content"),
        refusal: take_nullable_str(&mut d, "refusal"),
        tool_calls: match d.remove("tool_calls") {
            Some(Value::Null) => Nullable::Null,
            _ => Nullable::Absent,
        },
        reasoning_content: take_nullable_str(&mut d, "reasoning_content"),
        reasoning: take_nullable_str(&mut d, "reasoning"),
        extra: d,
    }
}

pub(super) fn take_nullable_str(map: &mut Map<String, Value>, key: &str) -> Nullable<String> {
    match map.remove(key) {
        Some(Value::String(s)) => Nullable::Present(s),
        Some(Value::Null) => Nullable::Null,
        _ => Nullable::Absent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::parse_strict;
    use crate::wire::sse::encode_data;
    use bytes::{BufMut, BytesMut};

    /// `emit` writes what `encode_data` of the serialized chunk writes, line breaks in the
    /// text included.
    #[test]
    fn emit_matches_encode_data() {
        let v = parse_strict(
            br#"{"id":"c","choices":[{"index":0,"delta":{"content":"a\nb\r\nc\u2028"}}]}"#,
        )
        .expect("valid");
        let chunk = chunk_from_value(v).expect("a chunk");
        let mut want = BytesMut::new();
        encode_data(
            &serde_json::to_string(&chunk).expect("serializable"),
            &mut want,
        );
        let mut out = BytesMut::new();
        out.extend_from_slice(b"data: ");
        serde_json::to_writer((&mut out).writer(), &chunk).expect("serializable");
        out.extend_from_slice(b"\n\n");
        assert_eq!(out, want);
    }

    /// The hand-made decoding of text chunks must give what serde gives, and leave every other
    /// shape (and every error) to serde.
    #[test]
    fn chunk_from_value_matches_serde() {
        let cases = [
            r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{"content":"hello"},"finish_reason":null}]}"#,
            r#"{"id":"c1","choices":[{"index":1,"delta":{"content":null,"refusal":"no","reasoning":"r","reasoning_content":"rc","x":1},"finish_reason":"stop","content_filter_results":{}}]}"#,
            r#"{"id":"c1","choices":[{"delta":null}]}"#,
            r#"{"id":"c1","choices":[{}]}"#,
            r#"{"id":"c1","choices":[],"usage":{"prompt_tokens":1}}"#,
            r#"{"id":"c1","usage":null}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":null}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"function_call":{"arguments":"{"}}}]}"#,
            r#"{"choices":[{"index":4294967295,"delta":{"content":"a"}},{"index":2,"delta":{"content":"b"}}]}"#,
            // Shapes serde rejects: the same error either way.
            r#"{"choices":null}"#,
            r#"{"choices":{}}"#,
            r#"{"choices":[1]}"#,
            r#"{"choices":[{"index":-1}]}"#,
            r#"{"choices":[{"index":4294967296}]}"#,
            r#"{"choices":[{"index":1.5}]}"#,
            r#"{"choices":[{"index":null}]}"#,
            r#"{"choices":[{"delta":"x"}]}"#,
            r#"{"choices":[{"delta":{"content":1}}]}"#,
            r#"{"choices":[{"delta":{"role":false}}]}"#,
            r#"{"choices":[{"finish_reason":3}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":"x"}}]}"#,
            r#"[1,2]"#,
            r#""text""#,
        ];
        crate::wire::openai_chat::documents::tests::same_as_serde(&cases, chunk_from_value);
    }
}
