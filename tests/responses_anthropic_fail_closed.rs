//! No way around the filter on the Responses and Anthropic Messages APIs, end to end through
//! the layer: strings outside the handled shapes (extra fields, request echoes, fields of an
//! unexpected type), SSE event names that disagree with their type, top-level request fields
//! and files the gateway cannot read. Each case was a bypass marked `full` (the red team's
//! FINDINGS.md §4–§6, §8).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::layer_run::{Run, run_with};
use deliberate::layer::EnforceOptions;
use serde_json::{Value, json};

const BOMB: &str = "how to build a pipe bomb";

async fn once(path: &str, req: Value, sse: bool, body: Vec<u8>) -> Run {
    let mut runs = run_with(
        EnforceOptions::default(),
        path,
        &[req],
        200,
        sse,
        vec![body],
    )
    .await;
    runs.pop().unwrap()
}

fn responses_req(stream: bool) -> Value {
    json!({"model": "m", "input": "hi", "stream": stream})
}

fn response(output: Value) -> Value {
    json!({"id": "resp_1", "object": "response", "created_at": 1, "status": "completed",
           "model": "m", "output": output, "tools": [], "instructions": null, "error": null})
}

fn ok_message() -> Value {
    json!({"id": "msg_1", "type": "message", "status": "completed", "role": "assistant",
           "content": [{"type": "output_text", "text": "ok", "annotations": []}]})
}

fn sse(events: &[Value], name: impl Fn(&Value) -> String) -> Vec<u8> {
    let mut out = String::new();
    for e in events {
        out.push_str(&format!("event: {}\ndata: {e}\n\n", name(e)));
    }
    out.into_bytes()
}

fn by_type(e: &Value) -> String {
    e["type"].as_str().unwrap().to_owned()
}

fn responses_stream(middle: Vec<Value>) -> Vec<Value> {
    let base = json!({"item_id": "msg_1", "output_index": 0, "content_index": 0});
    let with = |t: &str, k: &str, v: Value| {
        let mut e = base.clone();
        e["type"] = t.into();
        e[k] = v;
        e
    };
    let mut ev = vec![
        json!({"type": "response.created", "response": response(json!([]))}),
        json!({"type": "response.output_item.added", "output_index": 0,
               "item": {"id": "msg_1", "type": "message", "status": "in_progress",
                        "role": "assistant", "content": []}}),
        with(
            "response.content_part.added",
            "part",
            json!({"type": "output_text", "text": "", "annotations": []}),
        ),
        with(
            "response.output_text.delta",
            "delta",
            "hello world. ".into(),
        ),
    ];
    ev.extend(middle);
    ev.push(with(
        "response.output_text.done",
        "text",
        "hello world. ".into(),
    ));
    ev.push(json!({"type": "response.completed", "response": response(json!([ok_message()]))}));
    ev
}

#[tokio::test]
async fn responses_buffered_echoes_and_extras_are_scanned() {
    for (what, body) in [
        ("instructions echo", {
            let mut r = response(json!([ok_message()]));
            r["instructions"] = BOMB.into();
            r
        }),
        ("metadata echo", {
            let mut r = response(json!([ok_message()]));
            r["metadata"] = json!({"k": BOMB});
            r
        }),
        ("message item extra", {
            let mut m = ok_message();
            m["x_text"] = BOMB.into();
            response(json!([m]))
        }),
        ("message content a string", {
            let mut m = ok_message();
            m["content"] = BOMB.into();
            response(json!([m]))
        }),
        (
            "output an object",
            response(json!({"0": {"type": "message", "content": BOMB}})),
        ),
    ] {
        let r = once(
            "/v1/responses",
            responses_req(false),
            false,
            body.to_string().into_bytes(),
        )
        .await;
        assert!(
            !r.reply.text().contains("pipe bomb"),
            "{what}: {}",
            r.reply.text()
        );
        assert_eq!(
            r.reply.json()["incomplete_details"]["reason"],
            "content_filter",
            "{what}"
        );
    }
    // A redaction in an echo is written back.
    let mut body = response(json!([ok_message()]));
    body["metadata"] = json!({"k": "mail bob@example.com"});
    let r = once(
        "/v1/responses",
        responses_req(false),
        false,
        body.to_string().into_bytes(),
    )
    .await;
    assert_eq!(r.reply.json()["metadata"]["k"], "mail [email]");
}

#[tokio::test]
async fn responses_encrypted_reasoning_output_is_partial() {
    let body = response(json!([{"type": "reasoning", "id": "rs_1", "summary": [],
                                "encrypted_content": "gAAAA"}, ok_message()]));
    let r = once(
        "/v1/responses",
        responses_req(false),
        false,
        body.to_string().into_bytes(),
    )
    .await;
    let h = r.reply.header("x-deliberate-enforcement");
    assert!(h.starts_with("partial") && h.contains("encrypted"), "{h}");
    let r = once(
        "/v1/responses",
        responses_req(false),
        false,
        response(json!([ok_message()])).to_string().into_bytes(),
    )
    .await;
    assert_eq!(r.reply.header("x-deliberate-enforcement"), "full");
}

#[tokio::test]
async fn responses_stream_extra_fields_of_known_events_are_scanned() {
    let cases = [
        (
            "in_progress extra",
            json!({"type": "response.in_progress",
            "response": response(json!([])), "x": BOMB}),
        ),
        (
            "content_part.added extra",
            json!({"type": "response.content_part.added",
            "item_id": "msg_1", "output_index": 0, "content_index": 1,
            "part": {"type": "output_text", "text": "", "annotations": []}, "x_text": BOMB}),
        ),
        (
            "function_call item extra",
            json!({"type": "response.output_item.added",
            "output_index": 1, "item": {"type": "function_call", "id": "fc", "call_id": "c",
            "name": "f", "arguments": "", "x_text": BOMB}}),
        ),
    ];
    for (what, extra) in cases {
        let body = sse(&responses_stream(vec![extra]), by_type);
        let r = once("/v1/responses", responses_req(true), true, body).await;
        let text = r.reply.text();
        assert!(!text.contains("pipe bomb"), "{what}: {text}");
        assert!(text.contains("content_filter"), "{what}: {text}");
    }
}

#[tokio::test]
async fn responses_stream_event_name_that_disagrees_with_its_type_fails_closed() {
    // `rs_event_mismatch2`: named as output text, typed as `in_progress`.
    let odd = json!({"type": "response.in_progress", "item_id": "msg_1", "output_index": 0,
                     "content_index": 0, "delta": BOMB});
    let events = responses_stream(vec![odd]);
    let body = sse(&events, |e| {
        if e["type"] == "response.in_progress" {
            "response.output_text.delta".to_owned()
        } else {
            by_type(e)
        }
    });
    let r = once("/v1/responses", responses_req(true), true, body).await;
    let text = r.reply.text();
    assert!(!text.contains("pipe bomb"), "{text}");
    assert!(
        !text.contains("response.completed"),
        "the stream ends at the fault: {text}"
    );
}

fn messages_req(stream: bool) -> Value {
    json!({"model": "claude-x", "max_tokens": 10, "stream": stream,
           "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn anthropic_answers_read_fields_of_an_unexpected_shape() {
    let body = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
        "content": [{"type": "text", "text": [BOMB]}], "stop_reason": "end_turn",
        "stop_sequence": null, "usage": {"input_tokens": 1, "output_tokens": 1}});
    let r = once(
        "/v1/messages",
        messages_req(false),
        false,
        body.to_string().into_bytes(),
    )
    .await;
    assert!(!r.reply.text().contains("pipe bomb"), "{}", r.reply.text());
    assert_eq!(r.reply.json()["stop_reason"], "refusal");

    // `as_msgdelta_stopseq`: the stop sequence the upstream says it met is read.
    let events = [
        json!({"type": "message_start", "message": {"id": "m", "type": "message",
            "role": "assistant", "model": "m", "content": [], "stop_reason": null,
            "stop_sequence": null, "usage": {"input_tokens": 1, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0,
               "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 0,
               "delta": {"type": "text_delta", "text": "ok"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "message_delta", "delta": {"stop_reason": "stop_sequence",
               "stop_sequence": BOMB}, "usage": {"output_tokens": 3}}),
        json!({"type": "message_stop"}),
    ];
    let r = once(
        "/v1/messages",
        messages_req(true),
        true,
        sse(&events, by_type),
    )
    .await;
    let text = r.reply.text();
    assert!(!text.contains("pipe bomb"), "{text}");
    assert!(text.contains("refusal"), "{text}");
}

#[tokio::test]
async fn anthropic_top_level_request_fields_are_read() {
    let ok = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
        "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
        "stop_sequence": null, "usage": {"input_tokens": 1, "output_tokens": 1}})
    .to_string()
    .into_bytes();
    for (what, key, value) in [
        (
            "output_format schema",
            "output_format",
            json!({"type": "json_schema",
            "schema": {"type": "object", "description": BOMB}}),
        ),
        (
            "output_config.format",
            "output_config",
            json!({"format": {"type": "json_schema",
            "schema": {"enum": [BOMB]}}}),
        ),
        ("stop_sequences", "stop_sequences", json!([BOMB])),
        ("unknown field", "x_prompt", json!(BOMB)),
    ] {
        let mut req = messages_req(false);
        req[key] = value;
        let r = once("/v1/messages", req, false, ok.clone()).await;
        assert!(r.upstream.is_empty(), "{what}: forwarded");
        assert_eq!(r.reply.json()["stop_reason"], "refusal", "{what}");
    }
    // Redactions reach the provider redacted.
    let mut req = messages_req(false);
    req["metadata"] = json!({"user_id": "bob@example.com"});
    let r = once("/v1/messages", req, false, ok.clone()).await;
    assert_eq!(r.upstream[0]["metadata"]["user_id"], "[email]");
    assert_eq!(r.upstream[0]["messages"], messages_req(false)["messages"]);
    // A container's files cannot be read.
    let mut req = messages_req(false);
    req["container"] = "container_1".into();
    let r = once("/v1/messages", req, false, ok).await;
    let h = r.reply.header("x-deliberate-enforcement");
    assert!(h.starts_with("partial") && h.contains("container"), "{h}");
}
