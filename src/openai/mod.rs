//! The OpenAI chat-completions wire adapter: how the gateway reads text out of requests,
//! responses and stream events, and puts edited text back.
//!
//! Pure data handling — no I/O, no async runtime:
//!
//! - [`json`]: strict parsing of bodies (duplicate keys, invalid UTF-8 and trailing data are
//!   errors, with `line:column`) and OpenAI-shaped error bodies;
//! - [`types`]: lenient wire types that type only what the gateway touches and keep every other
//!   field, so a parse → edit → serialize round trip changes nothing else;
//! - [`sse`]: an incremental server-sent-events decoder (any split, bounded memory) and encoder;
//! - [`chunking`]: the gateway's own responses — refusals, buffered and streamed, and the chunk
//!   that ends a stream with `finish_reason: "content_filter"`.
//!
//! ```
//! use deliberate::openai::sse::{DONE, SseDecoder, SseItem, encode_data};
//! use deliberate::openai::{ChatChunk, ChatRequest, parse_strict_as};
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

pub mod chunking;
pub mod json;
pub mod sse;
pub mod types;

pub use json::{WireError, from_value, openai_error_body, parse_strict, parse_strict_as};
pub use sse::{SseDecoder, SseError, SseEvent, SseItem};
pub use types::{
    ChatChunk, ChatCompletion, ChatRequest, Choice, ChunkChoice, Content, ContentPart, Delta,
    FunctionCall, Message, Nullable, ResponseMessage, ToolCall,
};
