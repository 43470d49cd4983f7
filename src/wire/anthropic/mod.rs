//! The Anthropic Messages adapter: `POST /v1/messages`, buffered and streamed.
//!
//! - **Requests** ([`request`]): every text the model reads, with its provenance — `system`
//!   (role `system`), each message's string or blocks (role `user` / `assistant`, matched
//!   case-insensitively after trimming), `tool_result` contents (role `tool`), earlier turns'
//!   `thinking`, `document` text sources, titles and contexts, `tool_use.input` (serialized and
//!   handed as JSON text, so keys and values are read as the model reads them), tool
//!   definitions' `name`, `description` and the descriptive strings of their `input_schema`
//!   (role `tool_definition`), and every string of a block type the adapter does not know
//!   (role `None`: every input rule reads it), and every string of every other top-level member
//!   (`output_format` / `output_config` schemas, `stop_sequences`, `metadata`, `tool_choice`,
//!   unknown fields; role `None`; redactions are forwarded) but the settings that hold no free
//!   text (`model`, `max_tokens`, `stream`, `temperature`, `top_p`, `top_k`, `service_tier`).
//!   Images, PDFs and files by reference (`container_upload` too), a code-execution
//!   `container`, redacted thinking, encrypted or signed strings and MCP servers cannot be
//!   scanned: the request is reported `partial`. The spec goes into `system`; Anthropic has no system role inside
//!   `messages`, so the requested [`InjectRole`](crate::policy::InjectRole) is ignored.
//! - **Answers** ([`answer`]) and **streams** ([`stream`]): `text` blocks and their citations,
//!   `thinking` (reasoning; its `signature` is dropped, and the answer marked `partial`, when a
//!   redaction changed the text), `tool_use` / `server_tool_use`
//!   names and inputs (JSON), and every other string (`stop_sequence`, `usage`, `container`, a
//!   field of an unexpected shape such as a `text` that is not a string, a `signature` that
//!   does not read as one); a signature delta on a block that is not `thinking` is left out;
//!   a block ends the answer the way
//!   Anthropic's own classifier does, with `stop_reason: "refusal"`.
//! - **Errors**: `{"type":"error","error":{"type","message"}}` with Anthropic's error types.
//!
//! Headers (`x-api-key`, `anthropic-version`, `anthropic-beta`) are the proxy's business: the
//! adapter never reads or writes them, so they pass through untouched.
//!
//! ```
//! use deliberate::wire::{adapter_for, RequestFacts};
//!
//! let a = adapter_for("/v1/messages").unwrap();
//! let facts = RequestFacts { stream: false, n: 1, model: "claude".into(), ..Default::default() };
//! let (ct, body) = a.refusal(&facts, "I can't help with that.");
//! assert_eq!(ct, "application/json");
//! let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
//! assert_eq!(v["stop_reason"], "refusal");
//! assert_eq!(v["content"][0]["text"], "I can't help with that.");
//! ```

pub mod answer;
mod block;
pub mod request;
mod run;
pub mod stream;
mod walk;

#[cfg(test)]
mod tests;

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use serde_json::{Value, json};

use super::sse::encode_event;
use super::{
    Adapter, Answer, ErrorInfo, ErrorKind, RequestFacts, SseEvent, StreamRewriter, TextFilter,
    WireError, WireRequest,
};

/// The `stop_reason` of an answer the policy (or Anthropic's own classifier) stopped.
pub const REFUSAL: &str = "refusal";

/// The prefix of every message id the gateway makes up.
pub const ID_PREFIX: &str = "msg_deliberate_";

/// The Anthropic Messages API. See the [module docs](self).
#[derive(Debug, Clone, Copy, Default)]
pub struct Messages;

impl Adapter for Messages {
    fn name(&self) -> &'static str {
        "anthropic.messages"
    }

    fn request(&self, body: &[u8]) -> Result<Box<dyn WireRequest>, WireError> {
        Ok(Box::new(request::MessagesRequest::parse(body)?))
    }

    fn answer(&self, body: &Bytes, filter: &mut dyn TextFilter) -> Result<Answer, WireError> {
        answer::enforce(body, filter)
    }

    fn stream(&self, facts: &RequestFacts) -> Box<dyn StreamRewriter> {
        Box::new(stream::MessagesStream::new(&facts.model))
    }

    fn refusal_answer(&self, facts: &RequestFacts, text: &str) -> Bytes {
        let meta = MessageMeta::new(&facts.model);
        Bytes::from(refusal_message(&meta, text).to_string())
    }

    fn error_body(&self, error: &ErrorInfo) -> Value {
        error_body(error)
    }
}

/// Anthropic's error `type` for a kind of error.
pub fn error_type(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest | ErrorKind::PolicyViolation => "invalid_request_error",
        ErrorKind::TooLarge => "request_too_large",
        ErrorKind::Upstream | ErrorKind::Timeout => "api_error",
        ErrorKind::Overloaded => "overloaded_error",
    }
}

/// The Anthropic-shaped error body: `{"type":"error","error":{"type","message"}}`.
///
/// ```
/// use deliberate::wire::{ErrorInfo, ErrorKind};
/// use deliberate::wire::anthropic::error_body;
///
/// let b = error_body(&ErrorInfo::new(ErrorKind::TooLarge, "too big", "body_too_large"));
/// assert_eq!(b["type"], "error");
/// assert_eq!(b["error"]["type"], "request_too_large");
/// assert_eq!(b["error"]["message"], "too big");
/// ```
pub fn error_body(error: &ErrorInfo) -> Value {
    json!({
        "type": "error",
        "error": {"type": error_type(error.kind), "message": error.message},
    })
}

/// What the gateway's own messages share with the upstream's: `id`, `model` and `usage`.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageMeta {
    /// The message id (`msg_…`).
    pub id: String,
    /// The model to report.
    pub model: String,
    /// The usage object to report.
    pub usage: Value,
}

impl MessageMeta {
    /// A fresh id, `model`, zero usage (no upstream tokens were spent).
    pub fn new(model: &str) -> Self {
        MessageMeta {
            id: new_id(),
            model: model.to_owned(),
            usage: json!({"input_tokens": 0, "output_tokens": 0}),
        }
    }

    /// The `id`, `model` and `usage` of an upstream message object; what is missing is made
    /// up as in [`MessageMeta::new`] (the model falls back to `model`).
    pub fn from_message(message: &Value, model: &str) -> Self {
        let mut meta = MessageMeta::new(model);
        let text = |k: &str| {
            message
                .get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        if let Some(id) = text("id") {
            meta.id = id.to_owned();
        }
        if let Some(m) = text("model") {
            meta.model = m.to_owned();
        }
        // Only the counts: a string member (`service_tier`, or anything an upstream writes
        // there) may be what a refusal built on this is refusing.
        if let Some(Value::Object(u)) = message.get("usage") {
            let counts = u.iter().filter(|(_, v)| !crate::wire::walk::has_string(v));
            meta.usage = Value::Object(counts.map(|(k, v)| (k.clone(), v.clone())).collect());
        }
        meta
    }
}

/// A complete Messages response whose one text block says `text`, with
/// `stop_reason: "refusal"`.
pub fn refusal_message(meta: &MessageMeta, text: &str) -> Value {
    json!({
        "id": meta.id,
        "type": "message",
        "role": "assistant",
        "model": meta.model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": REFUSAL,
        "stop_sequence": null,
        "usage": meta.usage,
    })
}

/// A complete Messages stream (`message_start` … `message_stop`) saying `text`, with
/// `stop_reason: "refusal"`.
pub fn refusal_stream(meta: &MessageMeta, text: &str) -> Bytes {
    let mut out = BytesMut::new();
    let mut usage = meta.usage.clone();
    if let Some(u) = usage.as_object_mut() {
        u.insert("output_tokens".to_owned(), json!(0));
    }
    let start = json!({
        "type": "message_start",
        "message": {
            "id": meta.id, "type": "message", "role": "assistant", "model": meta.model,
            "content": [], "stop_reason": null, "stop_sequence": null, "usage": usage,
        },
    });
    write_event(&mut out, "message_start", &start);
    write_text_block(&mut out, 0, text);
    write_end(&mut out, REFUSAL, 0);
    out.freeze()
}

/// Writes a whole text block `index` holding `text`: start, one delta, stop.
fn write_text_block(out: &mut BytesMut, index: u64, text: &str) {
    let start = json!({"type": "content_block_start", "index": index,
                       "content_block": {"type": "text", "text": ""}});
    write_event(out, "content_block_start", &start);
    let delta = json!({"type": "content_block_delta", "index": index,
                       "delta": {"type": "text_delta", "text": text}});
    write_event(out, "content_block_delta", &delta);
    write_event(
        out,
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": index}),
    );
}

/// Writes `message_delta` with `stop_reason` and `message_stop`.
fn write_end(out: &mut BytesMut, stop_reason: &str, output_tokens: u64) {
    let delta = json!({"type": "message_delta",
                       "delta": {"stop_reason": stop_reason, "stop_sequence": null},
                       "usage": {"output_tokens": output_tokens}});
    write_event(out, "message_delta", &delta);
    write_event(out, "message_stop", &json!({"type": "message_stop"}));
}

/// Writes one event named `name` with `data` as its JSON.
fn write_event(out: &mut BytesMut, name: &str, data: &Value) {
    let ev = SseEvent {
        event: Some(name.to_owned()),
        data: data.to_string(),
        id: None,
    };
    // Names are the fixed event names above and Anthropic's own (read off one SSE line), and
    // `id` is `None`: nothing here holds a line break, so encoding cannot fail.
    let _ = encode_event(&ev, out);
}

/// `msg_deliberate_` and 24 hex digits: 64 random bits and a process-wide counter.
fn new_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(count);
    format!("{ID_PREFIX}{:016x}{:08x}", hasher.finish(), count as u32)
}
