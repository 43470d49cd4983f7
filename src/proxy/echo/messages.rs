//! `POST …/v1/messages`: the last user message's text as an Anthropic Messages answer.

use http::{Response, StatusCode};
use serde_json::{Value, json};

use super::{
    Echo, Frames, conversation, json_response, sse_response, text_of, with_request, words,
};
use crate::proxy::body::ProxyBody;
use crate::wire::anthropic::MessageMeta;

impl Echo {
    /// `POST /v1/messages`: the last user message's text as an Anthropic Messages answer,
    /// streamed word by word (`message_start` … `message_stop`) when asked.
    pub(super) fn messages(&self, request: &Value) -> Response<ProxyBody> {
        let (reply, words_in) = conversation(request);
        let input_tokens = words_in + request.get("system").map_or(0, |s| words(&text_of(s)));
        let output_tokens = words(&reply);
        let model = request
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or("echo");
        let meta = MessageMeta::new(model);
        let usage = json!({"input_tokens": input_tokens, "output_tokens": output_tokens});
        if request.get("stream").and_then(Value::as_bool) != Some(true) {
            return with_request(
                json_response(
                    StatusCode::OK,
                    &json!({
                        "id": meta.id, "type": "message", "role": "assistant", "model": meta.model,
                        "content": [{"type": "text", "text": reply}],
                        "stop_reason": "end_turn", "stop_sequence": null, "usage": usage,
                    }),
                ),
                request,
            );
        }
        let mut frames = Frames::default();
        let mut push = |name: &str, v: Value| frames.event(name, &v);
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use http::header::CONTENT_TYPE;
    use serde_json::{Value, json};

    use super::super::testing::{body_of, echoed};
    use super::Echo;
    use crate::wire::sse::{SseDecoder, SseItem};

    /// `POST /v1/messages` is echoed in Anthropic's shapes, buffered and streamed.
    #[tokio::test]
    async fn messages_are_echoed_in_anthropic_shapes() {
        let request = json!({"model": "claude-x", "max_tokens": 10, "system": "Be brief.",
            "messages": [{"role": "user", "content": "first"},
                         {"role": "assistant", "content": "ok"},
                         {"role": "user", "content": [{"type": "text", "text": "say hello there"}]}]});
        let r = Echo::default().messages(&request);
        assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
        let seen = echoed(&r);
        let v: Value = serde_json::from_slice(&body_of(r).await).unwrap();
        assert_eq!(v["type"], "message");
        assert_eq!(v["model"], "claude-x");
        assert_eq!(
            v["content"],
            json!([{"type": "text", "text": "say hello there"}])
        );
        assert_eq!(v["stop_reason"], "end_turn");
        assert_eq!(v["usage"]["output_tokens"], 3);
        assert_eq!(seen["system"], "Be brief.");

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
