//! `POST …/responses`: the last user text (`input` as a string, or the last user message item)
//! as a Responses API `response` with one assistant `message` item of `output_text`; streamed
//! as `response.created`, `response.in_progress`, `response.output_item.added`,
//! `response.content_part.added`, one `response.output_text.delta` per word, the `.done`
//! events and `response.completed`, with contiguous `sequence_number`s.

use http::{Response, StatusCode};
use serde_json::{Value, json};

use super::{
    Echo, Frames, fresh, json_response, model_of, sse_response, streamed, text_of_parts,
    with_request, words,
};
use crate::proxy::body::ProxyBody;

/// Content part types that carry text in a Responses input message.
const TEXT_PARTS: &[&str] = &["input_text", "output_text", "text"];

/// The text of an input item (messages only).
fn item_text(item: &Value) -> String {
    let is_message = item
        .get("type")
        .and_then(Value::as_str)
        .is_none_or(|t| t == "message");
    match item.get("content") {
        Some(c) if is_message => text_of_parts(c, TEXT_PARTS),
        _ => String::new(),
    }
}

/// The text to echo and the words of all input (for usage).
fn reply_and_input_words(request: &Value) -> (String, usize) {
    let instructions = request
        .get("instructions")
        .and_then(Value::as_str)
        .map_or(0, words);
    match request.get("input") {
        Some(Value::String(s)) => (s.clone(), words(s) + instructions),
        Some(Value::Array(items)) => {
            let reply = items
                .iter()
                .rev()
                .find(|i| i.get("role").and_then(Value::as_str) == Some("user"))
                .map(item_text)
                .unwrap_or_default();
            let input: usize = items.iter().map(|i| words(&item_text(i))).sum();
            (reply, input + instructions)
        }
        _ => (String::new(), instructions),
    }
}

impl Echo {
    pub(super) fn responses(&self, request: &Value) -> Response<ProxyBody> {
        let (reply, input_tokens) = reply_and_input_words(request);
        let output_tokens = words(&reply);
        let (meta, hex) = fresh(model_of(request));
        let msg_id = format!("msg_echo_{hex}");
        let usage = json!({
            "input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        });
        let response = |status: &str, output: Value, usage: Value| {
            json!({
                "id": format!("resp_echo_{hex}"), "object": "response", "created_at": meta.created,
                "status": status, "error": null, "incomplete_details": null,
                "instructions": request.get("instructions").cloned().unwrap_or(Value::Null),
                "max_output_tokens": null, "model": meta.model, "output": output,
                "parallel_tool_calls": true, "previous_response_id": null,
                "reasoning": {"effort": null, "summary": null}, "store": false,
                "temperature": 1.0, "text": {"format": {"type": "text"}}, "tool_choice": "auto",
                "tools": [], "top_p": 1.0, "truncation": "disabled", "usage": usage,
                "metadata": {},
            })
        };
        let part = |text: &str| json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []});
        let message = |status: &str, content: Value| {
            json!({"id": msg_id, "type": "message", "role": "assistant", "status": status,
                   "content": content})
        };
        let done_item = message("completed", json!([part(&reply)]));
        if !streamed(request) {
            let r = response("completed", json!([done_item]), usage);
            return with_request(json_response(StatusCode::OK, &r), request);
        }
        let mut frames = Frames::default();
        let mut seq = 0u64;
        let mut push = |mut v: Value| {
            v["sequence_number"] = seq.into();
            seq += 1;
            let name = v["type"].as_str().unwrap_or_default().to_owned();
            frames.event(&name, &v);
        };
        let started = response("in_progress", json!([]), Value::Null);
        push(json!({"type": "response.created", "response": started}));
        push(json!({"type": "response.in_progress", "response": started}));
        push(
            json!({"type": "response.output_item.added", "output_index": 0,
                    "item": message("in_progress", json!([]))}),
        );
        let at =
            |t: &str| json!({"type": t, "item_id": msg_id, "output_index": 0, "content_index": 0});
        let mut e = at("response.content_part.added");
        e["part"] = part("");
        push(e);
        for word in reply.split_inclusive(char::is_whitespace) {
            let mut e = at("response.output_text.delta");
            e["delta"] = word.into();
            e["logprobs"] = json!([]);
            push(e);
        }
        let mut e = at("response.output_text.done");
        e["text"] = reply.as_str().into();
        e["logprobs"] = json!([]);
        push(e);
        let mut e = at("response.content_part.done");
        e["part"] = part(&reply);
        push(e);
        push(json!({"type": "response.output_item.done", "output_index": 0, "item": done_item}));
        push(json!({"type": "response.completed",
                    "response": response("completed", json!([done_item]), usage)}));
        sse_response(frames, self.delay)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use http::header::CONTENT_TYPE;
    use serde_json::{Value, json};

    use super::super::testing::{body_of, echoed, events};
    use super::Echo;

    /// A string `input` is echoed as one `output_text` message, with usage.
    #[tokio::test]
    async fn a_string_input_is_echoed_as_a_response() {
        let request =
            json!({"model": "gpt-x", "instructions": "Be brief.", "input": "hello there"});
        let r = Echo::default().responses(&request);
        assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
        let seen = echoed(&r);
        let v: Value = serde_json::from_slice(&body_of(r).await).unwrap();
        assert_eq!(v["object"], "response");
        assert_eq!(v["status"], "completed");
        assert_eq!(v["model"], "gpt-x");
        assert!(v["id"].as_str().unwrap().starts_with("resp_"));
        assert_eq!(v["output"].as_array().unwrap().len(), 1);
        assert_eq!(v["output"][0]["type"], "message");
        assert_eq!(v["output"][0]["role"], "assistant");
        assert_eq!(v["output"][0]["content"][0]["type"], "output_text");
        assert_eq!(v["output"][0]["content"][0]["text"], "hello there");
        assert_eq!(v["usage"]["input_tokens"], 4);
        assert_eq!(v["usage"]["output_tokens"], 2);
        assert_eq!(v["instructions"], "Be brief.");
        assert_eq!(seen, request);
    }

    /// With items, the last user message is echoed (string or `input_text` parts).
    #[tokio::test]
    async fn the_last_user_item_is_echoed() {
        let request = json!({"input": [
            {"role": "user", "content": "first"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "ok"}]},
            {"type": "function_call_output", "call_id": "c", "output": "tool says"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "say this"},
                                                            {"type": "input_image", "image_url": "x"}]},
        ]});
        let v: Value =
            serde_json::from_slice(&body_of(Echo::default().responses(&request)).await).unwrap();
        assert_eq!(v["output"][0]["content"][0]["text"], "say this");
        assert_eq!(v["model"], "echo");
        assert_eq!(v["usage"]["input_tokens"], 4);
    }

    /// Streamed: the lifecycle events in order, one delta per word, contiguous sequence numbers,
    /// event names equal to the `type`s, and the completed response carrying the whole text.
    #[tokio::test]
    async fn a_streamed_response_has_the_events_the_sdk_reads() {
        let request = json!({"model": "gpt-x", "input": "one two three", "stream": true});
        let r = Echo::default().responses(&request);
        assert_eq!(r.headers()[CONTENT_TYPE], "text/event-stream");
        let evs = events(&body_of(r).await);
        let types: Vec<&str> = evs
            .iter()
            .map(|(_, v)| v["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        for (i, (name, v)) in evs.iter().enumerate() {
            assert_eq!(v["sequence_number"], i as u64);
            assert_eq!(name.as_deref(), v["type"].as_str());
        }
        let deltas: Vec<&str> = evs
            .iter()
            .filter(|(_, v)| v["type"] == "response.output_text.delta")
            .map(|(_, v)| v["delta"].as_str().unwrap())
            .collect();
        assert_eq!(deltas, ["one ", "two ", "three"]);
        let created = &evs[0].1["response"];
        let completed = &evs[10].1["response"];
        assert_eq!(created["status"], "in_progress");
        assert_eq!(created["id"], completed["id"]);
        assert_eq!(completed["status"], "completed");
        assert_eq!(
            completed["output"][0]["content"][0]["text"],
            "one two three"
        );
        assert_eq!(completed["usage"]["output_tokens"], 3);
        let item_id = &evs[2].1["item"]["id"];
        assert!(
            evs[3..10]
                .iter()
                .all(|(_, v)| v.get("item_id").is_none_or(|i| i == item_id))
        );
        assert_eq!(evs[7].1["text"], "one two three");
        assert_eq!(evs[8].1["part"]["text"], "one two three");
    }
}
