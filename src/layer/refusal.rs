//! The answers the layer gives itself when it refuses a request.

use bytes::Bytes;
use serde_json::Value;

use super::exchange::Exchange;
use crate::openai::chunking::{
    CONTENT_FILTER, CompletionMeta, refusal_chunks_with, refusal_completion_with, sse_body,
    usage_chunk,
};

fn meta(ex: &Exchange) -> CompletionMeta {
    CompletionMeta::new(if ex.model.is_empty() {
        "deliberate"
    } else {
        &ex.model
    })
}

/// A `chat.completion` with one refusal choice per requested choice.
pub(crate) fn completion(ex: &Exchange, text: &str) -> Bytes {
    let mut v = refusal_completion_with(&meta(ex), text, CONTENT_FILTER);
    if ex.n > 1
        && let Some(Value::Array(choices)) = v.get_mut("choices")
        && let Some(first) = choices.first().cloned()
    {
        for i in 1..ex.n {
            let mut c = first.clone();
            c["index"] = Value::from(i);
            choices.push(c);
        }
    }
    Bytes::from(v.to_string())
}

/// A whole SSE stream refusing every requested choice, then `data: [DONE]`.
pub(crate) fn stream(ex: &Exchange, text: &str) -> Bytes {
    stream_with(&meta(ex), ex.n, ex.include_usage, text)
}

/// [`stream`] with the completion's id, model and creation time given: `n` refusal choices,
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
