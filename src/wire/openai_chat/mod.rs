//! OpenAI Chat Completions (`POST /v1/chat/completions`): the first wire adapter, and the
//! reference for the others.
//!
//! - [`types`]: lenient wire types that type only what the gateway touches and keep every other
//!   field, so a parse → edit → serialize round trip changes nothing else;
//! - `request`: every text the model reads — string content and text parts, refusal parts,
//!   `name`s, earlier tool calls (arguments as JSON), legacy `function_call`s, tool
//!   definitions, and any string of a field or part type the adapter does not know; roles read
//!   case-insensitively (`function` as `tool`, unknown roles as the most restrictive); images,
//!   audio and files reported as not scanned;
//! - `answer`: every text of a buffered completion, by channel;
//! - `stream`: every channel of every choice of a stream, re-encoded chunk by chunk;
//! - [`refusal`]: the gateway's own responses — refusals, buffered and streamed, and the chunk
//!   that ends a stream with `finish_reason: "content_filter"`.
//!
//! ```
//! use deliberate::wire::sse::{DONE, SseDecoder, SseItem, encode_data};
//! use deliberate::wire::json::parse_strict_as;
//! use deliberate::wire::openai_chat::{ChatChunk, ChatRequest};
//!
//! // A request: read and redact the text the model would see; keep everything else.
//! let body = br#"{"model":"gpt-4o","stream":true,"top_k":5,
//!     "messages":[{"role":"user","content":"my card is 4111 1111 1111 1111"}]}"#;
//! let mut req: ChatRequest = parse_strict_as(body)?;
//! assert!(req.is_stream());
//! for text in req.messages[0].text_parts_mut() {
//!     *text = text.replace("4111 1111 1111 1111", "[card number]");
//! }
//! let forwarded = serde_json::to_value(&req)?;
//! assert_eq!(forwarded["messages"][0]["content"], "my card is [card number]");
//! assert_eq!(forwarded["top_k"], 5);
//!
//! // A streamed response, split at awkward places.
//! let mut decoder = SseDecoder::new(64 * 1024);
//! let mut out = Vec::new();
//! for piece in [&b"data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"cont"[..],
//!               b"ent\":\"Hi\"},\"finish_reason\":null}]}\r", b"\n\r\ndata: [DONE]\n\n"] {
//!     for item in decoder.push(piece)? {
//!         let SseItem::Event(event) = item else { continue };
//!         if event.data == DONE {
//!             out.extend_from_slice(b"data: [DONE]\n\n");
//!             continue;
//!         }
//!         let mut chunk: ChatChunk = parse_strict_as(event.data.as_bytes())?;
//!         if let Some(text) = chunk.choices[0].delta.content.get_mut() {
//!             *text = text.to_uppercase();
//!         }
//!         encode_data(&serde_json::to_string(&chunk)?, &mut out);
//!     }
//! }
//! assert_eq!(
//!     String::from_utf8(out)?,
//!     "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"HI\"},\"finish_reason\":null}],\"id\":\"c1\"}\n\n\
//!      data: [DONE]\n\n"
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

/// The top-level members of a completion or chunk that are identifiers or enums, read by no
/// rule (see `answer::COMPLETION_META` and `stream::CHUNK_META` for why each).
const UNREAD_TOP_LEVEL: [&str; 6] = [
    "id",
    "object",
    "created",
    "model",
    "system_fingerprint",
    "service_tier",
];

mod answer;
mod chunk;
mod documents;
pub mod refusal;
mod request;
mod stream;
#[cfg(test)]
mod stream_tests;
pub mod types;

use bytes::Bytes;

pub use types::{
    AssistantMessage, ChatChunk, ChatCompletion, ChatRequest, Choice, Choices, ChunkChoice,
    Content, ContentPart, Delta, FunctionCall, Message, Nullable, ResponseMessage, ToolCall,
};

use crate::wire::{
    Adapter, Answer, RequestFacts, StreamRewriter, TextFilter, WireError, WireRequest,
};

/// The Chat Completions adapter.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChatCompletions;

impl Adapter for ChatCompletions {
    fn name(&self) -> &'static str {
        "openai.chat"
    }

    fn request(&self, body: &[u8]) -> Result<Box<dyn WireRequest>, WireError> {
        Ok(Box::new(request::ChatRequestDoc::parse(body)?))
    }

    fn answer(&self, body: &Bytes, filter: &mut dyn TextFilter) -> Result<Answer, WireError> {
        answer::enforce(body, filter)
    }

    fn stream(&self, facts: &RequestFacts) -> Box<dyn StreamRewriter> {
        Box::new(stream::ChatStream::new(facts))
    }

    fn refusal_answer(&self, facts: &RequestFacts, text: &str) -> Bytes {
        refusal::completion(facts, text)
    }
}
