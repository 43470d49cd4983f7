//! The built-in echo upstream: answers every chat completion with the last user message,
//! streamed word by word when asked. It lets anyone see injection and filtering work without a
//! model; the non-streamed answer also carries the request as the upstream received it (in an
//! extra `echo` field), so the injected spec can be seen.

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
use crate::wire::error::openai_error_body;
use crate::wire::openai_chat::refusal::CompletionMeta;
use crate::wire::sse::{DONE_FRAME, encode_data};

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
        if req.method() != http::Method::POST || !path.ends_with("/chat/completions") {
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
        let delay = self.delay;
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
        Ok(r)
    }
}
