//! The built-in echo upstream: answers every request with the last user text, streamed word by
//! word when asked. It lets anyone see injection and filtering work without a model; the
//! non-streamed answer also carries the request as the upstream received it in its
//! `x-echo-request` header (the JSON, non-ASCII as `\u` escapes), so the injected spec can be
//! seen. Not in the body: the gateway scans every string of an answer as output, and a copy
//! of the injected spec there is what `system-prompt.leak` blocks.
//!
//! Routes: `…/chat/completions` ([`chat`]), `…/v1/messages` in Anthropic's shapes
//! ([`messages`]), `…/responses` in the Responses API's shapes ([`responses`]) and
//! `…/completions` as legacy text completions ([`completions`]); `GET /v1/models` lists `echo`.

mod chat;
mod completions;
mod messages;
mod responses;

use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::layer::{BoxError, RequestBody};
use crate::proxy::body::ProxyBody;
use crate::wire::anthropic;
use crate::wire::error::openai_error_body;
use crate::wire::openai_chat::refusal::{CompletionMeta, ID_PREFIX};
use crate::wire::sse::{encode_data, encode_event};
use crate::wire::{ErrorInfo, ErrorKind, SseEvent};

/// The echo upstream.
#[derive(Debug, Clone, Default)]
pub struct Echo {
    /// Pause between streamed words.
    pub delay: Duration,
}

/// The APIs the echo answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Chat,
    Messages,
    Responses,
    Completions,
}

impl Api {
    /// The API of `path`, as the gateway's adapters read it (one suffix table: the wire's).
    fn of(path: &str) -> Option<Api> {
        match crate::wire::adapter_for(path)?.name() {
            "anthropic.messages" => Some(Api::Messages),
            "openai.chat" => Some(Api::Chat),
            "openai.responses" => Some(Api::Responses),
            "openai.completions" => Some(Api::Completions),
            _ => None,
        }
    }
}

/// The header that carries the request an answer was made for.
pub const ECHO_REQUEST_HEADER: &str = "x-echo-request";

/// Requests longer than this (as JSON) are not copied into the header; it says `truncated`.
const ECHO_HEADER_MAX: usize = 32 * 1024;

/// `response` with the [`ECHO_REQUEST_HEADER`] holding `request`.
fn with_request(mut response: Response<ProxyBody>, request: &Value) -> Response<ProxyBody> {
    let mut ascii = String::new();
    for c in request.to_string().chars() {
        // DEL is not allowed in a header value either (JSON does not escape it).
        if c.is_ascii() && c != '\u{7f}' {
            ascii.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                ascii.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    if ascii.len() > ECHO_HEADER_MAX {
        ascii = "truncated".to_owned();
    }
    if let Ok(v) = HeaderValue::from_str(&ascii) {
        response.headers_mut().insert(ECHO_REQUEST_HEADER, v);
    }
    response
}

fn json_response(status: StatusCode, v: &Value) -> Response<ProxyBody> {
    let mut r = Response::new(
        Full::new(Bytes::from(v.to_string()))
            .map_err(|e| match e {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// The text of a message's `content`: a string, or the parts of the given `types` joined by
/// `\n`.
fn text_of_parts(content: &Value, types: &[&str]) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|p| {
                p.get("type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| types.contains(&t))
            })
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The text of a chat or Anthropic message's `content` (string, or `text` parts).
fn text_of(content: &Value) -> String {
    text_of_parts(content, &["text"])
}

/// The text of the last user message of `request["messages"]`, and the words of all of them.
fn conversation(request: &Value) -> (String, usize) {
    let messages = request
        .get("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let reply = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .and_then(|m| m.get("content"))
        .map(text_of)
        .unwrap_or_default();
    let count = messages
        .iter()
        .filter_map(|m| m.get("content"))
        .map(|c| words(&text_of(c)))
        .sum();
    (reply, count)
}

fn words(s: &str) -> usize {
    s.split_whitespace().count()
}

/// The request's `model` (`echo` when absent).
fn model_of(request: &Value) -> &str {
    request
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("echo")
}

/// Whether the request asks for a stream.
fn streamed(request: &Value) -> bool {
    request.get("stream").and_then(Value::as_bool) == Some(true)
}

/// A fresh id, its `created` time and 24 random hex digits to build ids of other shapes from.
fn fresh(model: &str) -> (CompletionMeta, String) {
    let meta = CompletionMeta::new(model);
    let hex = meta
        .id
        .strip_prefix(ID_PREFIX)
        .unwrap_or(&meta.id)
        .to_owned();
    (meta, hex)
}

/// SSE frames being put together.
#[derive(Debug, Default)]
struct Frames(Vec<Bytes>);

impl Frames {
    /// A `data:` frame.
    fn data(&mut self, v: &Value) {
        let mut out = Vec::new();
        encode_data(&v.to_string(), &mut out);
        self.0.push(Bytes::from(out));
    }

    /// An event named `name`.
    fn event(&mut self, name: &str, v: &Value) {
        let mut out = Vec::new();
        let ev = SseEvent {
            event: Some(name.to_owned()),
            data: v.to_string(),
            id: None,
        };
        // Fixed event names without line breaks: encoding cannot fail.
        if encode_event(&ev, &mut out).is_ok() {
            self.0.push(Bytes::from(out));
        }
    }

    fn raw(&mut self, frame: &'static [u8]) {
        self.0.push(Bytes::from_static(frame));
    }
}

impl Echo {
    pub(crate) async fn answer(
        self,
        req: Request<RequestBody<Incoming>>,
    ) -> Result<Response<ProxyBody>, BoxError> {
        let path = req.uri().path().trim_end_matches('/').to_owned();
        if req.method() == http::Method::GET && path == "/v1/models" {
            return Ok(json_response(
                StatusCode::OK,
                &json!({"object": "list", "data": [{"id": "echo", "object": "model", "created": 0, "owned_by": "deliberate"}]}),
            ));
        }
        let api = Api::of(&path).filter(|_| req.method() == http::Method::POST);
        let Some(api) = api else {
            return Ok(json_response(
                StatusCode::NOT_FOUND,
                &openai_error_body(
                    &format!("the echo upstream has no route {path}"),
                    "invalid_request_error",
                    Some("unknown_url"),
                ),
            ));
        };
        let body = req.into_body().collect().await?.to_bytes();
        let request: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) if api == Api::Messages => {
                let info = ErrorInfo::new(
                    ErrorKind::InvalidRequest,
                    format!("invalid JSON: {e}"),
                    "invalid_json",
                );
                return Ok(json_response(
                    StatusCode::BAD_REQUEST,
                    &anthropic::error_body(&info),
                ));
            }
            Err(e) => {
                return Ok(json_response(
                    StatusCode::BAD_REQUEST,
                    &openai_error_body(
                        &format!("invalid JSON: {e}"),
                        "invalid_request_error",
                        None,
                    ),
                ));
            }
        };
        Ok(match api {
            Api::Chat => self.chat(&request),
            Api::Messages => self.messages(&request),
            Api::Responses => self.responses(&request),
            Api::Completions => self.completions(&request),
        })
    }
}

/// A `text/event-stream` response sending `frames`, `delay` apart.
fn sse_response(frames: Frames, delay: Duration) -> Response<ProxyBody> {
    let body = StreamBody::new(stream::unfold(
        (frames.0.into_iter(), true),
        move |(mut it, first)| async move {
            let frame = it.next()?;
            if !first && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Some((Ok::<_, BoxError>(Frame::data(frame)), (it, false)))
        },
    ));
    let mut r = Response::new(body.boxed_unsync());
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    r
}

/// Helpers for the tests of each route.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(super) mod testing {
    use bytes::Bytes;
    use http::Response;
    use http_body_util::BodyExt;
    use serde_json::Value;

    use super::ProxyBody;
    use crate::wire::sse::{SseDecoder, SseItem};

    /// The request an echo answer says it was made for (its `x-echo-request` header).
    pub(crate) fn echoed(r: &Response<ProxyBody>) -> Value {
        let h = r.headers()[super::ECHO_REQUEST_HEADER].to_str().unwrap();
        serde_json::from_str(h).unwrap()
    }

    pub(crate) async fn body_of(r: Response<ProxyBody>) -> Bytes {
        r.into_body().collect().await.unwrap().to_bytes()
    }

    /// The events of an SSE body: name (if any) and data (`[DONE]` as a string).
    pub(crate) fn events(body: &[u8]) -> Vec<(Option<String>, Value)> {
        let mut d = SseDecoder::new(1 << 20);
        d.push(body)
            .unwrap()
            .into_iter()
            .map(|i| match i {
                SseItem::Event(e) => (
                    e.event,
                    serde_json::from_str(&e.data).unwrap_or(Value::String(e.data)),
                ),
                other => panic!("{other:?}"),
            })
            .collect()
    }
}
