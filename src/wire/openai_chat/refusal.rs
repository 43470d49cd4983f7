//! Synthetic responses the gateway answers with itself: refusals, buffered or streamed, and the
//! chunks that end a stream in-band when a rule fires mid-stream.
//!
//! They are shaped like OpenAI's own (`chat.completion` / `chat.completion.chunk`, `logprobs:
//! null`, `finish_reason`), so official SDKs read them with no special code.
//!
//! ```
//! use deliberate::wire::openai_chat::refusal::{refusal_chunks, sse_body};
//! use deliberate::wire::sse::DONE_FRAME;
//!
//! let chunks = refusal_chunks("gpt-4o", "I can't help with that.");
//! assert_eq!(chunks.len(), 3);
//! assert_eq!(chunks[2]["choices"][0]["finish_reason"], "content_filter");
//! let body = sse_body(&chunks);
//! assert!(body.ends_with(DONE_FRAME));
//! ```

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::types::ChatChunk;
use crate::wire::RequestFacts;
use crate::wire::sse::{DONE_FRAME, encode_data};

/// The prefix of every id the gateway makes up.
pub const ID_PREFIX: &str = "chatcmpl-deliberate-";

/// The `finish_reason` of a response the policy stopped.
pub const CONTENT_FILTER: &str = "content_filter";

/// What every chunk of one response shares: `id`, `created` and `model`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletionMeta {
    /// The response id (`chatcmpl-...`).
    pub id: String,
    /// Unix time in seconds.
    pub created: u64,
    /// The model name to report.
    pub model: String,
}

// === impl CompletionMeta ===

impl CompletionMeta {
    /// A fresh id (`chatcmpl-deliberate-` and 24 hex digits) and the current time.
    pub fn new(model: &str) -> Self {
        CompletionMeta {
            id: new_id(),
            created: now(),
            model: model.to_owned(),
        }
    }

    /// The `id`, `created` and `model` of an upstream chunk, so the gateway's own chunks in that
    /// stream match; a missing or malformed field is made up as in [`CompletionMeta::new`]
    /// (the model falls back to `model`).
    pub fn from_chunk(chunk: &ChatChunk, model: &str) -> Self {
        Self::from_extra(&chunk.extra, model)
    }

    /// Like [`CompletionMeta::from_chunk`], from the `extra` map of any response object.
    pub fn from_extra(extra: &Map<String, Value>, model: &str) -> Self {
        let text = |key: &str| {
            extra
                .get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        CompletionMeta {
            id: text("id").map_or_else(new_id, str::to_owned),
            created: extra
                .get("created")
                .and_then(Value::as_u64)
                .unwrap_or_else(now),
            model: text("model").unwrap_or(model).to_owned(),
        }
    }

    fn chunk(&self, choices: Value) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        })
    }
}

/// A complete `chat.completion` whose single choice says `text` and stopped for
/// `finish_reason` (normally [`CONTENT_FILTER`]). Usage is zero: no upstream tokens were spent.
pub fn refusal_completion(model: &str, text: &str, finish_reason: &str) -> Value {
    refusal_completion_with(&CompletionMeta::new(model), text, finish_reason)
}

/// [`refusal_completion`] with a given id, time and model.
pub fn refusal_completion_with(meta: &CompletionMeta, text: &str, finish_reason: &str) -> Value {
    json!({
        "id": meta.id,
        "object": "chat.completion",
        "created": meta.created,
        "model": meta.model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text, "refusal": null},
            "logprobs": null,
            "finish_reason": finish_reason,
        }],
        "usage": zero_usage(),
    })
}

/// The chunks of a streamed refusal: the role, the text, then an empty delta with
/// `finish_reason: "content_filter"`. Send each as an SSE `data:` event, then `data: [DONE]`
/// (see [`sse_body`]).
pub fn refusal_chunks(model: &str, text: &str) -> Vec<Value> {
    refusal_chunks_with(&CompletionMeta::new(model), text, CONTENT_FILTER)
}

/// [`refusal_chunks`] with a given id, time, model and finish reason.
pub fn refusal_chunks_with(meta: &CompletionMeta, text: &str, finish_reason: &str) -> Vec<Value> {
    vec![
        meta.chunk(json!([{
            "index": 0,
            "delta": {"role": "assistant", "content": "", "refusal": null},
            "logprobs": null,
            "finish_reason": null,
        }])),
        content_chunk(meta, 0, text),
        finish_chunk(meta, 0, finish_reason),
    ]
}

/// A chunk adding `text` to choice `index`.
pub fn content_chunk(meta: &CompletionMeta, index: u32, text: &str) -> Value {
    meta.chunk(json!([{
        "index": index,
        "delta": {"content": text},
        "logprobs": null,
        "finish_reason": null,
    }]))
}

/// The last chunk of choice `index`: an empty delta and `finish_reason` — with
/// [`CONTENT_FILTER`], how a stream is ended in-band when a rule fires after text was sent.
pub fn finish_chunk(meta: &CompletionMeta, index: u32, finish_reason: &str) -> Value {
    meta.chunk(json!([{
        "index": index,
        "delta": {},
        "logprobs": null,
        "finish_reason": finish_reason,
    }]))
}

/// The usage chunk a client that set `stream_options.include_usage` expects last: no choices
/// and zero usage.
pub fn usage_chunk(meta: &CompletionMeta) -> Value {
    let mut chunk = meta.chunk(json!([]));
    if let Some(obj) = chunk.as_object_mut() {
        obj.insert("usage".to_owned(), zero_usage());
    }
    chunk
}

/// A whole SSE body: each chunk as a `data:` event, then `data: [DONE]`.
pub fn sse_body(chunks: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in chunks {
        // Serialized JSON has no raw line breaks, so each chunk is one `data:` line.
        encode_data(&chunk.to_string(), &mut out);
    }
    out.extend_from_slice(DONE_FRAME);
    out
}

/// The meta of a refusal the gateway makes for a request: a fresh id, the request's model.
fn request_meta(facts: &RequestFacts) -> CompletionMeta {
    CompletionMeta::new(if facts.model.is_empty() {
        "deliberate"
    } else {
        &facts.model
    })
}

/// A `chat.completion` with one refusal choice per requested choice.
pub(crate) fn completion(facts: &RequestFacts, text: &str) -> Bytes {
    let mut v = refusal_completion_with(&request_meta(facts), text, CONTENT_FILTER);
    if facts.n > 1
        && let Some(Value::Array(choices)) = v.get_mut("choices")
        && let Some(first) = choices.first().cloned()
    {
        for i in 1..facts.n {
            let mut c = first.clone();
            c["index"] = Value::from(i);
            choices.push(c);
        }
    }
    Bytes::from(v.to_string())
}

/// A whole SSE stream refusing every requested choice, with the completion's id, model and
/// creation time given: `n` refusal choices,
/// the usage chunk when the client asked for one, then `data: [DONE]`.
pub(crate) fn stream_with(meta: &CompletionMeta, n: u32, include_usage: bool, text: &str) -> Bytes {
    let mut chunks = Vec::new();
    for i in 0..n {
        for mut c in refusal_chunks_with(meta, text, CONTENT_FILTER) {
            if let Some(Value::Array(choices)) = c.get_mut("choices") {
                for ch in choices {
                    ch["index"] = Value::from(i);
                }
            }
            chunks.push(c);
        }
    }
    if include_usage {
        chunks.push(usage_chunk(meta));
    }
    Bytes::from(sse_body(&chunks))
}

fn zero_usage() -> Value {
    json!({"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0})
}

/// Seconds since the Unix epoch (0 if the clock is before it).
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `chatcmpl-deliberate-` and 24 hex digits: 64 random bits (from the standard library's
/// randomly keyed hasher) and a process-wide counter, so ids never repeat within a process.
fn new_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(count);
    hasher.write_u64(now());
    format!("{ID_PREFIX}{:016x}{:08x}", hasher.finish(), count as u32)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::types::{ChatCompletion, Nullable};
    use super::*;
    use crate::wire::sse::{SseDecoder, SseItem};

    fn meta() -> CompletionMeta {
        CompletionMeta {
            id: "chatcmpl-x".into(),
            created: 7,
            model: "m".into(),
        }
    }

    #[test]
    fn refusal_completion_is_openai_shaped() {
        let v = refusal_completion_with(&meta(), "No.", CONTENT_FILTER);
        assert_eq!(
            v,
            json!({
                "id": "chatcmpl-x", "object": "chat.completion", "created": 7, "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "No.", "refusal": null},
                             "logprobs": null, "finish_reason": "content_filter"}],
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
            })
        );
        let typed: ChatCompletion = serde_json::from_value(v).unwrap();
        let message = typed.choices[0].message.get().unwrap();
        assert_eq!(message.content.as_deref(), Some("No."));

        let fresh = refusal_completion("gpt-4o", "No.", "stop");
        assert!(fresh["id"].as_str().unwrap().starts_with(ID_PREFIX));
        assert!(fresh["created"].as_u64().unwrap() > 1_600_000_000);
        assert_eq!(fresh["model"], "gpt-4o");
        assert_eq!(fresh["choices"][0]["finish_reason"], "stop");
    }

    #[test]
    fn refusal_chunks_stream_and_parse_back() {
        let chunks = refusal_chunks_with(&meta(), "No.", CONTENT_FILTER);
        let body = sse_body(&chunks);
        let mut dec = SseDecoder::new(1 << 16);
        let items = dec.push(&body).unwrap();
        assert_eq!(dec.finish().unwrap(), None);
        let data: Vec<String> = items
            .into_iter()
            .map(|i| match i {
                SseItem::Event(e) => e.data,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(data.len(), 4);
        assert_eq!(data[3], "[DONE]");
        let typed: Vec<ChatChunk> = data[..3]
            .iter()
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        for chunk in &typed {
            assert_eq!(chunk.extra["id"], "chatcmpl-x");
            assert_eq!(chunk.extra["object"], "chat.completion.chunk");
            assert_eq!(chunk.extra["created"], 7);
        }
        assert_eq!(typed[0].choices[0].delta.role.as_deref(), Some("assistant"));
        assert_eq!(typed[0].choices[0].finish_reason, Nullable::Null);
        assert_eq!(typed[1].choices[0].delta.content.as_deref(), Some("No."));
        assert_eq!(typed[2].choices[0].delta.content, Nullable::Absent);
        assert_eq!(
            typed[2].choices[0].finish_reason.as_deref(),
            Some(CONTENT_FILTER)
        );
    }

    #[test]
    fn refusal_chunks_share_one_fresh_id() {
        let chunks = refusal_chunks("m", "No.");
        assert!(chunks.iter().all(|c| c["id"] == chunks[0]["id"]));
        assert!(chunks[0]["id"].as_str().unwrap().starts_with(ID_PREFIX));
    }

    #[test]
    fn meta_follows_the_upstream_stream() {
        let chunk: ChatChunk = serde_json::from_value(json!(
            {"id": "chatcmpl-up", "created": 1700000000, "model": "gpt-4o-mini", "choices": []}
        ))
        .unwrap();
        let m = CompletionMeta::from_chunk(&chunk, "fallback");
        assert_eq!(
            m,
            CompletionMeta {
                id: "chatcmpl-up".into(),
                created: 1700000000,
                model: "gpt-4o-mini".into()
            }
        );
        let fin = finish_chunk(&m, 1, CONTENT_FILTER);
        assert_eq!(fin["choices"][0]["index"], 1);
        assert_eq!(fin["id"], "chatcmpl-up");

        // Azure's first chunk has empty strings: made up instead.
        let blank: ChatChunk =
            serde_json::from_value(json!({"id": "", "created": 0, "model": "", "choices": []}))
                .unwrap();
        let m = CompletionMeta::from_chunk(&blank, "fallback");
        assert!(m.id.starts_with(ID_PREFIX));
        assert_eq!(m.model, "fallback");
        assert_eq!(m.created, 0);
    }

    #[test]
    fn usage_chunk_has_no_choices() {
        let u = usage_chunk(&meta());
        assert_eq!(u["choices"], json!([]));
        assert_eq!(u["usage"]["total_tokens"], 0);
        let typed: ChatChunk = serde_json::from_value(u).unwrap();
        assert!(typed.choices.is_empty());
    }

    #[test]
    fn ids_are_unique() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| new_id()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|id| id.len() == ID_PREFIX.len() + 24));
    }
}
