//! The built-in echo upstream: answers every chat completion with the last user message,
//! streamed word by word when asked. It lets anyone see injection and filtering work without a
//! model; the non-streamed answer also carries the request as the upstream received it (in an
//! extra `echo` field), so the injected spec can be seen. `POST /v1/messages` is answered the
//! same way in Anthropic's shapes.

use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::upstream::ProxyBody;
use crate::layer::{BoxError, RequestBody};
use crate::wire::anthropic::{self, MessageMeta};
use crate::wire::error::openai_error_body;
use crate::wire::openai_chat::refusal::CompletionMeta;
use crate::wire::sse::{DONE_FRAME, encode_data, encode_event};
use crate::wire::{ErrorInfo, ErrorKind, SseEvent};

/// The echo upstream.
#[derive(Debug, Clone, Default)]
pub struct Echo {
    /// Pause between streamed words.
    pub delay: Duration,
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

/// The text of a message's `content` (string, or text parts joined by `\n`).
fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn words(s: &str) -> usize {
    s.split_whitespace().count()
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
        let anthropic = path.ends_with("/v1/messages");
        if req.method() != http::Method::POST || !(anthropic || path.ends_with("/chat/completions"))
        {
            return Ok(json_response(
                StatusCode::NOT_FOUND,
                &openai_error_body(
                    &format!("the echo upstream has no route {path}"),
                    "invalid_request_error",
                    Some("unknown_url"),
                ),
            ));
        }
        let body = req.into_body().collect().await?.to_bytes();
        let request: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) if anthropic => {
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
        if anthropic {
            return Ok(self.messages(&request));
        }
        let messages = request
            .get("messages")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let reply = messages
            .iter()
            .rev()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
            .and_then(|m| m.get("content"))
            .map(text_of)
            .unwrap_or_default();
        let prompt_tokens: usize = messages
            .iter()
            .filter_map(|m| m.get("content"))
            .map(|c| words(&text_of(c)))
            .sum();
        let usage = json!({
            "prompt_tokens": prompt_tokens,
            "completion_tokens": words(&reply),
            "total_tokens": prompt_tokens + words(&reply),
        });
        let model = request
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or("echo")
            .to_owned();
        let n = request
            .get("n")
            .and_then(Value::as_u64)
            .unwrap_or(1)
            .clamp(1, 16) as u32;
        let meta = CompletionMeta::new(&model);
        let stream = request
            .get("stream")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if !stream {
            let choices: Vec<Value> = (0..n)
                .map(|i| {
                    json!({"index": i, "message": {"role": "assistant", "content": reply, "refusal": null},
                           "logprobs": null, "finish_reason": "stop"})
                })
                .collect();
            return Ok(json_response(
                StatusCode::OK,
                &json!({
                    "id": meta.id, "object": "chat.completion", "created": meta.created, "model": meta.model,
                    "system_fingerprint": "fp_echo", "choices": choices, "usage": usage,
                    "echo": {"request": request},
                }),
            ));
        }
        let include_usage = request
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let chunk = |choices: Value| {
            json!({"id": meta.id, "object": "chat.completion.chunk", "created": meta.created,
                   "model": meta.model, "system_fingerprint": "fp_echo", "choices": choices})
        };
        let mut frames: Vec<Bytes> = Vec::new();
        let mut push = |v: Value| {
            let mut out = Vec::new();
            encode_data(&v.to_string(), &mut out);
            frames.push(Bytes::from(out));
        };
        for i in 0..n {
            push(chunk(
                json!([{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null}]),
            ));
        }
        for word in reply.split_inclusive(char::is_whitespace) {
            for i in 0..n {
                push(chunk(
                    json!([{"index": i, "delta": {"content": word}, "logprobs": null, "finish_reason": null}]),
                ));
            }
        }
        for i in 0..n {
            push(chunk(
                json!([{"index": i, "delta": {}, "logprobs": null, "finish_reason": "stop"}]),
            ));
        }
        if include_usage {
            let mut u = chunk(json!([]));
            u["usage"] = usage;
            push(u);
        }
        frames.push(Bytes::from_static(DONE_FRAME));
        Ok(sse_response(frames, self.delay))
    }

    /// `POST /v1/messages`: the last user message's text as an Anthropic Messages answer,
    /// streamed word by word (`message_start` … `message_stop`) when asked.
    fn messages(&self, request: &Value) -> Response<ProxyBody> {
        let messages = request
            .get("messages")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let reply = messages
            .iter()
            .rev()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
            .and_then(|m| m.get("content"))
            .map(text_of)
            .unwrap_or_default();
        let input_tokens: usize = messages
            .iter()
            .filter_map(|m| m.get("content"))
            .map(|c| words(&text_of(c)))
            .sum::<usize>()
            + request.get("system").map_or(0, |s| words(&text_of(s)));
        let output_tokens = words(&reply);
        let model = request
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or("echo");
        let meta = MessageMeta::new(model);
        let usage = json!({"input_tokens": input_tokens, "output_tokens": output_tokens});
        if request.get("stream").and_then(Value::as_bool) != Some(true) {
            return json_response(
                StatusCode::OK,
                &json!({
                    "id": meta.id, "type": "message", "role": "assistant", "model": meta.model,
                    "content": [{"type": "text", "text": reply}],
                    "stop_reason": "end_turn", "stop_sequence": null, "usage": usage,
                    "echo": {"request": request},
                }),
            );
        }
        let mut frames: Vec<Bytes> = Vec::new();
        let mut push = |name: &str, v: Value| {
            let mut out = Vec::new();
            let ev = SseEvent {
                event: Some(name.to_owned()),
                data: v.to_string(),
                id: None,
            };
            // Fixed event names without line breaks: encoding cannot fail.
            if encode_event(&ev, &mut out).is_ok() {
                frames.push(Bytes::from(out));
            }
        };
        push(
            "message_start",
            json!({"type": "message_start", "message": {
                "id": meta.id, "type": "message", "role": "assistant", "model": meta.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": input_tokens, "output_tokens": 1}}}),
        );
        push(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0,
                   "content_block": {"type": "text", "text": ""}}),
        );
        push("ping", json!({"type": "ping"}));
        for word in reply.split_inclusive(char::is_whitespace) {
            push(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0,
                       "delta": {"type": "text_delta", "text": word}}),
            );
        }
        push(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        );
        push(
            "message_delta",
            json!({"type": "message_delta",
                   "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                   "usage": {"output_tokens": output_tokens}}),
        );
        push("message_stop", json!({"type": "message_stop"}));
        sse_response(frames, self.delay)
    }
}

/// A `text/event-stream` response sending `frames`, `delay` apart.
fn sse_response(frames: Vec<Bytes>, delay: Duration) -> Response<ProxyBody> {
    let body = StreamBody::new(stream::unfold(
        (frames.into_iter(), true),
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::wire::sse::{SseDecoder, SseItem};

    async fn body_of(r: Response<ProxyBody>) -> Bytes {
        r.into_body().collect().await.unwrap().to_bytes()
    }

    /// `POST /v1/messages` is echoed in Anthropic's shapes, buffered and streamed.
    #[tokio::test]
    async fn messages_are_echoed_in_anthropic_shapes() {
        let request = json!({"model": "claude-x", "max_tokens": 10, "system": "Be brief.",
            "messages": [{"role": "user", "content": "first"},
                         {"role": "assistant", "content": "ok"},
                         {"role": "user", "content": [{"type": "text", "text": "say hello there"}]}]});
        let r = Echo::default().messages(&request);
        assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
        let v: Value = serde_json::from_slice(&body_of(r).await).unwrap();
        assert_eq!(v["type"], "message");
        assert_eq!(v["model"], "claude-x");
        assert_eq!(
            v["content"],
            json!([{"type": "text", "text": "say hello there"}])
        );
        assert_eq!(v["stop_reason"], "end_turn");
        assert_eq!(v["usage"]["output_tokens"], 3);
        assert_eq!(v["echo"]["request"]["system"], "Be brief.");

        let mut streamed = request.clone();
        streamed["stream"] = json!(true);
        let r = Echo::default().messages(&streamed);
        assert_eq!(r.headers()[CONTENT_TYPE], "text/event-stream");
        let body = body_of(r).await;
        let mut d = SseDecoder::new(1 << 16);
        let events: Vec<(String, Value)> = d
            .push(&body)
            .unwrap()
            .into_iter()
            .map(|i| match i {
                SseItem::Event(e) => (e.event.unwrap(), serde_json::from_str(&e.data).unwrap()),
                other => panic!("{other:?}"),
            })
            .collect();
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names[..3], ["message_start", "content_block_start", "ping"]);
        assert_eq!(
            names[names.len() - 3..],
            ["content_block_stop", "message_delta", "message_stop"]
        );
        assert!(events.iter().all(|(n, v)| v["type"] == n.as_str()));
        let text: String = events
            .iter()
            .filter(|(n, _)| n == "content_block_delta")
            .map(|(_, v)| v["delta"]["text"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(text, "say hello there");
        assert_eq!(
            events[names.len() - 2].1["delta"]["stop_reason"],
            "end_turn"
        );
    }
}
