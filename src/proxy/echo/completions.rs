//! `POST …/completions` (legacy): each prompt echoed as a `text_completion` choice (`n` per
//! prompt); streamed as `choices[].text` chunks, a `finish_reason` chunk per choice, the usage
//! chunk when asked for, then `data: [DONE]`. The format has no roles, so the gateway puts the
//! spec at the start of the prompt: the echo leaves a leading spec block out of its answer
//! (the buffered answer's `echo` field still shows the prompt as received).

use http::{Response, StatusCode};
use serde_json::{Value, json};

use super::{
    Echo, Frames, fresh, json_response, model_of, sse_response, streamed, with_request, words,
};
use crate::proxy::body::ProxyBody;
use crate::wire::sse::DONE_FRAME;

/// `prompt` without the spec blocks at its start (and the blank line after each).
fn without_spec(prompt: &str) -> &str {
    const START: &str = "[deliberate policy ";
    const END: &str = "[end of deliberate policy ";
    let mut s = prompt;
    while s.starts_with(START) {
        let Some(end) = s.find(END) else { break };
        let Some(close) = s[end..].find(']') else {
            break;
        };
        let rest = &s[end + close + 1..];
        s = rest.strip_prefix("\n\n").unwrap_or(rest);
    }
    s
}

/// The prompt strings (a string, or an array of strings; token prompts read as empty).
fn prompts(request: &Value) -> Vec<String> {
    match request.get("prompt") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(list)) if list.iter().all(Value::is_string) && !list.is_empty() => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => vec![String::new()],
    }
}

impl Echo {
    pub(super) fn completions(&self, request: &Value) -> Response<ProxyBody> {
        let prompts = prompts(request);
        let n = request
            .get("n")
            .and_then(Value::as_u64)
            .unwrap_or(1)
            .clamp(1, 16) as usize;
        // Choice `p * n + k` echoes prompt `p`.
        let replies: Vec<&str> = prompts
            .iter()
            .flat_map(|p| std::iter::repeat_n(without_spec(p), n))
            .collect();
        let prompt_tokens: usize = prompts.iter().map(|p| words(p)).sum();
        let completion_tokens: usize = replies.iter().map(|r| words(r)).sum();
        let usage = json!({
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        });
        let (meta, hex) = fresh(model_of(request));
        let object = |choices: Value| {
            json!({"id": format!("cmpl-echo-{hex}"), "object": "text_completion",
                   "created": meta.created, "model": meta.model, "system_fingerprint": "fp_echo",
                   "choices": choices})
        };
        let choice = |i: usize, text: &str, finish: Option<&str>| json!({"text": text, "index": i, "logprobs": null, "finish_reason": finish});
        if !streamed(request) {
            let choices: Vec<Value> = replies
                .iter()
                .enumerate()
                .map(|(i, r)| choice(i, r, Some("stop")))
                .collect();
            let mut v = object(Value::Array(choices));
            v["usage"] = usage;
            return with_request(json_response(StatusCode::OK, &v), request);
        }
        let mut frames = Frames::default();
        for (i, reply) in replies.iter().enumerate() {
            for word in reply.split_inclusive(char::is_whitespace) {
                frames.data(&object(json!([choice(i, word, None)])));
            }
            frames.data(&object(json!([choice(i, "", Some("stop"))])));
        }
        if request
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            == Some(true)
        {
            let mut u = object(json!([]));
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

    use super::super::testing::{body_of, echoed, events};
    use super::{Echo, without_spec};

    const SPEC: &str = "[deliberate policy p@1]\nBe good.\n[end of deliberate policy p@1]";

    #[test]
    fn the_leading_spec_is_left_out() {
        assert_eq!(without_spec(&format!("{SPEC}\n\nhello")), "hello");
        assert_eq!(without_spec(&format!("{SPEC}\n\n{SPEC}\n\nhi")), "hi");
        assert_eq!(without_spec(SPEC), "");
        assert_eq!(
            without_spec("plain [deliberate policy x]"),
            "plain [deliberate policy x]"
        );
        assert_eq!(
            without_spec("[deliberate policy unterminated"),
            "[deliberate policy unterminated"
        );
    }

    /// Buffered: a `text_completion` with the prompt (spec left out) as each choice's text.
    #[tokio::test]
    async fn a_prompt_is_echoed_as_a_text_completion() {
        let request = json!({"model": "m", "prompt": format!("{SPEC}\n\nhello there"), "n": 2});
        let r = Echo::default().completions(&request);
        assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
        let seen = echoed(&r);
        let v: Value = serde_json::from_slice(&body_of(r).await).unwrap();
        assert_eq!(v["object"], "text_completion");
        assert!(v["id"].as_str().unwrap().starts_with("cmpl-"));
        assert_eq!(v["model"], "m");
        let choices = v["choices"].as_array().unwrap();
        assert_eq!(choices.len(), 2);
        for (i, c) in choices.iter().enumerate() {
            assert_eq!(c["index"], i);
            assert_eq!(c["text"], "hello there");
            assert_eq!(c["finish_reason"], "stop");
        }
        assert_eq!(v["usage"]["completion_tokens"], 4);
        assert_eq!(seen, request);

        let list = json!({"prompt": ["a b", "c"]});
        let v: Value =
            serde_json::from_slice(&body_of(Echo::default().completions(&list)).await).unwrap();
        assert_eq!(v["choices"][0]["text"], "a b");
        assert_eq!(v["choices"][1]["text"], "c");
        assert_eq!(v["choices"][1]["index"], 1);
    }

    /// Streamed: text chunks per word, `finish_reason: "stop"`, usage when asked, `[DONE]`.
    #[tokio::test]
    async fn a_streamed_completion_ends_with_done() {
        let request = json!({"prompt": "one two three", "stream": true,
                             "stream_options": {"include_usage": true}});
        let r = Echo::default().completions(&request);
        assert_eq!(r.headers()[CONTENT_TYPE], "text/event-stream");
        let evs = events(&body_of(r).await);
        assert_eq!(evs.last().unwrap().1, "[DONE]");
        let chunks: Vec<&Value> = evs[..evs.len() - 1].iter().map(|(_, v)| v).collect();
        assert!(chunks.iter().all(|c| c["object"] == "text_completion"));
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"].get(0))
            .map(|c| c["text"].as_str().unwrap())
            .collect();
        assert_eq!(text, "one two three");
        assert_eq!(chunks[3]["choices"][0]["finish_reason"], "stop");
        assert_eq!(chunks[4]["choices"], json!([]));
        assert_eq!(chunks[4]["usage"]["total_tokens"], 6);
    }
}
