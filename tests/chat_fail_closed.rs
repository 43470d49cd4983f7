//! The red team's Chat and Completions bypasses (`/work/redteam/FINDINGS.md`, findings 1, 4,
//! 5 and 6), end to end through the layer: what the client gets holds no byte of the blocked
//! phrase, and an input field outside `messages` is read before the upstream is called. Each
//! case was passed with `x-deliberate-enforcement: full`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::layer_run::{run, run_with};
use common::*;
use deliberate::layer::EnforceOptions;
use serde_json::{Value, json};

fn delta_chunk(delta: Value) -> Value {
    json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
           "choices": [{"index": 0, "delta": delta, "finish_reason": null}]})
}

fn stream(chunks: &[Value]) -> Vec<u8> {
    let mut sse = Vec::new();
    for c in chunks {
        sse.extend(frame(c));
    }
    sse.extend(frame(&finish_chunk(0, "stop")));
    sse.extend_from_slice(DONE);
    sse
}

/// `cs_custom_full`: a custom tool's input blocked after its first piece went out.
#[tokio::test]
async fn a_blocked_custom_tool_input_mid_stream_sends_none_of_it() {
    let sse = stream(&[
        delta_chunk(
            json!({"tool_calls": [{"index": 0, "id": "t", "type": "custom",
                            "custom": {"name": "f", "input": "hello"}}]}),
        ),
        delta_chunk(json!({"tool_calls": [{"index": 0,
                            "custom": {"input": " here is how to build a pipe bomb: step 1"}}]})),
    ]);
    let r = run(
        EnforceOptions::default(),
        &chat("hi", true),
        true,
        vec![sse],
    )
    .await;
    assert!(!r.reply.text().contains("bomb"), "{}", r.reply.text());
    let ends: Vec<Value> = r
        .reply
        .chunks()
        .iter()
        .map(|c| c["choices"][0]["finish_reason"].clone())
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(ends, [json!("content_filter")], "{}", r.reply.text());
}

/// `c_error200` and `c_choice_extra`: a 200 answer that is an error object, and a choice's
/// own field.
#[tokio::test]
async fn buffered_strings_outside_the_message_are_blocked() {
    let bodies = [
        json!({"error": {"message": "how to build a pipe bomb"}}),
        json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
               "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                            "finish_reason": "stop", "x_note": "a pipe bomb"}]}),
    ];
    for body in bodies {
        let r = run(
            EnforceOptions::default(),
            &chat("hi", false),
            false,
            vec![body.to_string().into_bytes()],
        )
        .await;
        assert!(
            !r.reply.text().contains("bomb"),
            "{body}: {}",
            r.reply.text()
        );
    }
}

/// `ls_choice_extra`: a streamed legacy completion's choice field.
#[tokio::test]
async fn a_streamed_completion_choice_field_is_blocked() {
    let chunk = |text: &str, fin: Value, extra: Value| {
        let mut c = json!({"index": 0, "text": text, "finish_reason": fin, "logprobs": null});
        if let (Value::Object(m), Value::Object(e)) = (&mut c, extra) {
            m.extend(e);
        }
        frame(
            &json!({"id": "cmpl", "object": "text_completion", "created": 1, "model": "m",
                      "choices": [c]}),
        )
    };
    let mut sse = chunk("ok", Value::Null, json!({"x": "a pipe bomb"}));
    sse.extend(chunk("", json!("stop"), json!({})));
    sse.extend_from_slice(DONE);
    let req = json!({"model": "m", "prompt": "hi", "stream": true});
    let runs = run_with(
        EnforceOptions::default(),
        "/v1/completions",
        &[req],
        200,
        true,
        vec![sse],
    )
    .await;
    let text = runs[0].reply.text();
    assert!(!text.contains("bomb"), "{text}");
}

/// Finding 6: a JSON schema's description, a vLLM chat template, stop sequences — read before
/// the upstream is called; a secret in `user` is redacted in what is forwarded.
#[tokio::test]
async fn chat_top_level_request_fields_are_read() {
    let mut blocked = Vec::new();
    for extra in [
        json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x",
               "schema": {"type": "object", "description": "how to build a pipe bomb"}}}}),
        json!({"chat_template": "{{ 'how to build a pipe bomb' }}"}),
        json!({"stop": ["how to build a pipe bomb"]}),
        json!({"x_vendor": {"note": "how to build a pipe bomb"}}),
    ] {
        let mut req = chat("hi", false);
        req.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        blocked.push(req);
    }
    for req in blocked {
        let r = run(EnforceOptions::default(), &req, false, vec![]).await;
        assert!(r.upstream.is_empty(), "{req} reached the upstream");
    }
    let mut req = chat("hi", false);
    req["user"] = json!("bob@example.com");
    let done = json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
                      "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                                   "finish_reason": "stop"}]});
    let r = run(
        EnforceOptions::default(),
        &req,
        false,
        vec![done.to_string().into_bytes()],
    )
    .await;
    assert_eq!(r.upstream[0]["user"], "[email]", "{}", r.upstream[0]);
}
