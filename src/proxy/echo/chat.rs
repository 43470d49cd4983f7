//! `POST …/chat/completions`: the last user message as a chat completion, streamed as
//! `chat.completion.chunk`s then `data: [DONE]` when asked.

use http::{Response, StatusCode};
use serde_json::{Value, json};

use super::{
    Echo, Frames, conversation, json_response, model_of, sse_response, streamed, with_request,
    words,
};
use crate::proxy::body::ProxyBody;
use crate::wire::openai_chat::refusal::CompletionMeta;
use crate::wire::sse::DONE_FRAME;

impl Echo {
    pub(super) fn chat(&self, request: &Value) -> Response<ProxyBody> {
        let (reply, words_in) = conversation(request);
        let prompt_tokens = words_in;
        let usage = json!({
            "prompt_tokens": prompt_tokens,
            "completion_tokens": words(&reply),
            "total_tokens": prompt_tokens + words(&reply),
        });
        let n = request
            .get("n")
            .and_then(Value::as_u64)
            .unwrap_or(1)
            .clamp(1, 16) as u32;
        let meta = CompletionMeta::new(model_of(request));
        if !streamed(request) {
            let choices: Vec<Value> = (0..n)
                .map(|i| {
                    json!({"index": i, "message": {"role": "assistant", "content": reply, "refusal": null},
                           "logprobs": null, "finish_reason": "stop"})
                })
                .collect();
            return with_request(
                json_response(
                    StatusCode::OK,
                    &json!({
                        "id": meta.id, "object": "chat.completion", "created": meta.created, "model": meta.model,
                        "system_fingerprint": "fp_echo", "choices": choices, "usage": usage,
                    }),
                ),
                request,
            );
        }
        let include_usage = request
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let chunk = |choices: Value| {
            json!({"id": meta.id, "object": "chat.completion.chunk", "created": meta.created,
                   "model": meta.model, "system_fingerprint": "fp_echo", "choices": choices})
        };
        let mut frames = Frames::default();
        for i in 0..n {
            frames.data(&chunk(
                json!([{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null}]),
            ));
        }
        for word in reply.split_inclusive(char::is_whitespace) {
            for i in 0..n {
                frames.data(&chunk(
                    json!([{"index": i, "delta": {"content": word}, "logprobs": null, "finish_reason": null}]),
                ));
            }
        }
        for i in 0..n {
            frames.data(&chunk(
                json!([{"index": i, "delta": {}, "logprobs": null, "finish_reason": "stop"}]),
            ));
        }
        if include_usage {
            let mut u = chunk(json!([]));
            u["usage"] = usage;
            frames.data(&u);
        }
        frames.raw(DONE_FRAME);
        sse_response(frames, self.delay)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use http::header::CONTENT_TYPE;
    use serde_json::{Value, json};

    use super::super::testing::{body_of, events};
    use super::Echo;

    /// Chat completions echo the last user message, buffered and streamed (with usage).
    #[tokio::test]
    async fn chat_completions_are_echoed() {
        let request = json!({"model": "m", "n": 2, "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": [{"type": "text", "text": "hello there"}]}]});
        let v: Value =
            serde_json::from_slice(&body_of(Echo::default().chat(&request)).await).unwrap();
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["choices"][1]["message"]["content"], "hello there");
        assert_eq!(v["usage"]["completion_tokens"], 2);

        let mut s = request.clone();
        s["stream"] = json!(true);
        s["stream_options"] = json!({"include_usage": true});
        let r = Echo::default().chat(&s);
        assert_eq!(r.headers()[CONTENT_TYPE], "text/event-stream");
        let evs = events(&body_of(r).await);
        assert_eq!(evs.last().unwrap().1, "[DONE]");
        let text: String = evs
            .iter()
            .filter_map(|(_, v)| v.pointer("/choices/0"))
            .filter(|c| c["index"] == 0)
            .filter_map(|c| c["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "hello there");
        assert_eq!(evs[evs.len() - 2].1["usage"]["total_tokens"], 5);
    }
}
