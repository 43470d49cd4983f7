//! Regression tests for the red team's findings on Anthropic Messages (FINDINGS.md §4–§6):
//! strings of an unexpected shape, upstream-written fields once taken for metadata, and
//! top-level request fields are read.

use bytes::Bytes;
use serde_json::{Value, json};

use super::stream::{block_start, block_stop, decode, delta, ev, run, start};
use super::{EngineFilter, RecordingSink, json};
use crate::wire::anthropic::Messages;
use crate::wire::{Adapter, WireRequest};

const BOMB: &str = "a pipe bomb";

/// A buffered message saying `ok`, then `edit` applied.
fn message(edit: impl FnOnce(&mut Value)) -> Bytes {
    let mut m = json!({"id": "msg_01", "type": "message", "role": "assistant",
        "model": "claude-x", "content": [{"type": "text", "text": "ok"}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 12, "output_tokens": 7}});
    edit(&mut m);
    Bytes::from(m.to_string())
}

#[test]
fn buffered_fields_of_an_unexpected_shape_and_upstream_metadata_are_scanned() {
    type Edit = fn(&mut Value);
    let cases: &[(&str, Edit)] = &[
        // `a_text_nonstr`
        ("text not a string", |m| {
            m["content"] = json!([{"type": "text", "text": [BOMB]}])
        }),
        ("text an object", |m| {
            m["content"] = json!([{"type": "text", "text": {"t": BOMB}}])
        }),
        (
            "thinking not a string",
            |m| {
                m["content"] =
                    json!([{"type": "thinking", "thinking": [BOMB], "signature": "c2ln"}])
            },
        ),
        (
            "tool name not a string",
            |m| {
                m["content"] = json!([{"type": "tool_use", "id": "t", "name": [BOMB], "input": {}}])
            },
        ),
        ("redacted_thinking data not a string", |m| {
            m["content"] = json!([{"type": "redacted_thinking", "data": [BOMB]}])
        }),
        (
            "an id that is not a string",
            |m| {
                m["content"] = json!([{"type": "tool_use", "id": [BOMB], "name": "f", "input": {}}])
            },
        ),
        (
            "a signature that is not one",
            |m| m["content"] = json!([{"type": "thinking", "thinking": "ok", "signature": BOMB}]),
        ),
        (
            "a signature on a text block",
            |m| m["content"] = json!([{"type": "text", "text": "ok", "signature": BOMB}]),
        ),
        // `a_stopseq`, `a_usage`, `a_container`
        ("stop_sequence", |m| m["stop_sequence"] = BOMB.into()),
        ("usage", |m| m["usage"]["service_tier"] = BOMB.into()),
        ("container", |m| {
            m["container"] = json!({"id": "c", "expires_at": BOMB})
        }),
    ];
    for (what, edit) in cases {
        let mut f = EngineFilter::default();
        let a = Messages.answer(&message(edit), &mut f).unwrap();
        assert!(a.all_blocked, "{what}: not blocked");
        assert!(
            !String::from_utf8_lossy(&a.body).contains("pipe"),
            "{what}: leaked"
        );
    }
    // A real signature still passes unread, byte for byte.
    let body = message(|m| {
        m["content"] = json!([{"type": "thinking", "thinking": "ok",
                               "signature": "EqQBCkYIARgCIkA+/_-="}])
    });
    let a = Messages
        .answer(&body, &mut EngineFilter::default())
        .unwrap();
    assert_eq!(a.body, body);
}

#[test]
fn streamed_stop_sequence_usage_and_stray_signatures_are_read() {
    let text = || block_start(0, json!({"type": "text", "text": ""}));
    let ok = || delta(0, json!({"type": "text_delta", "text": "ok"}));
    let msg_delta = |d: Value, usage: Value| {
        ev(
            "message_delta",
            json!({"type": "message_delta", "delta": d, "usage": usage}),
        )
    };
    let stop = || ev("message_stop", json!({"type": "message_stop"}));
    let cases: Vec<(&str, Vec<_>)> = vec![
        // `as_msgdelta_stopseq`
        (
            "message_delta stop_sequence",
            vec![
                start(),
                text(),
                ok(),
                block_stop(0),
                msg_delta(
                    json!({"stop_reason": "stop_sequence", "stop_sequence": BOMB}),
                    json!({"output_tokens": 3}),
                ),
                stop(),
            ],
        ),
        (
            "message_delta usage",
            vec![
                start(),
                text(),
                ok(),
                block_stop(0),
                msg_delta(
                    json!({"stop_reason": "end_turn"}),
                    json!({"output_tokens": 3, "x": BOMB}),
                ),
                stop(),
            ],
        ),
        (
            "message_start stop_sequence",
            vec![
                ev(
                    "message_start",
                    json!({"type": "message_start", "message": {
                    "id": "m", "type": "message", "role": "assistant", "model": "x",
                    "content": [], "stop_reason": null, "stop_sequence": BOMB,
                    "usage": {"input_tokens": 1}}}),
                ),
                text(),
                ok(),
                block_stop(0),
            ],
        ),
        (
            "text block start with text not a string",
            vec![
                start(),
                block_start(0, json!({"type": "text", "text": [BOMB]})),
            ],
        ),
        // `as2_block_start_tool_input_str` and its kin: a block start whose tool input is not
        // an object, whose name is not a string, or whose redacted data is not a string.
        (
            "tool_use start with a string input",
            vec![
                start(),
                block_start(
                    0,
                    json!({"type": "tool_use", "id": "t", "name": "f", "input": BOMB}),
                ),
            ],
        ),
        (
            "server_tool_use start with a list input",
            vec![
                start(),
                block_start(
                    0,
                    json!({"type": "server_tool_use", "id": "t", "name": "f", "input": [1, BOMB]}),
                ),
            ],
        ),
        (
            "tool_use start with a list name",
            vec![
                start(),
                block_start(
                    0,
                    json!({"type": "tool_use", "id": "t", "name": [BOMB], "input": {}}),
                ),
            ],
        ),
        (
            "redacted_thinking start with object data",
            vec![
                start(),
                block_start(0, json!({"type": "redacted_thinking", "data": {"x": BOMB}})),
            ],
        ),
        (
            "thinking signature_delta that is not a signature",
            vec![
                start(),
                block_start(0, json!({"type": "thinking", "thinking": ""})),
                delta(0, json!({"type": "thinking_delta", "thinking": "ok"})),
                delta(0, json!({"type": "signature_delta", "signature": BOMB})),
                block_stop(0),
            ],
        ),
    ];
    for (what, events) in cases {
        let (out, end) = run(&events);
        assert!(
            !String::from_utf8_lossy(&out).contains("pipe"),
            "{what}: leaked"
        );
        assert!(end.all_blocked, "{what}: not blocked");
    }
    // `as_sig_in_text`: a signature on a text block is left out, the text goes on.
    let (out, end) = run(&[
        start(),
        text(),
        ok(),
        delta(0, json!({"type": "signature_delta", "signature": BOMB})),
        block_stop(0),
    ]);
    assert!(!String::from_utf8_lossy(&out).contains("pipe"));
    assert!(!end.all_blocked);
    assert!(
        decode(&out)
            .iter()
            .all(|(_, d)| d["delta"]["type"] != "signature_delta")
    );
}

fn texts(body: &Value) -> (RecordingSink, Box<dyn WireRequest>) {
    let mut req = Messages.request(body.to_string().as_bytes()).unwrap();
    let mut sink = RecordingSink::default();
    req.texts(&mut sink);
    (sink, req)
}

#[test]
fn top_level_request_fields_are_read_and_redactions_forwarded() {
    let base = || {
        json!({"model": "claude-x", "max_tokens": 5, "temperature": 0.5,
                         "stream": false, "messages": [{"role": "user", "content": "hi"}]})
    };
    type Edit = fn(&mut Value);
    let cases: &[(&str, Edit)] = &[
        ("output_format schema", |b| {
            b["output_format"] = json!({"type": "json_schema",
                "schema": {"type": "object", "properties": {"a": {"description": BOMB}}}})
        }),
        ("output_config.format schema", |b| {
            b["output_config"] = json!({"format": {"type": "json_schema",
                "schema": {"enum": [BOMB]}}})
        }),
        ("stop_sequences", |b| b["stop_sequences"] = json!([BOMB])),
        ("metadata", |b| b["metadata"] = json!({"user_id": BOMB})),
        ("tool_choice", |b| {
            b["tool_choice"] = json!({"type": "tool", "name": BOMB})
        }),
        ("unknown field", |b| b["x_prompt"] = json!({"deep": [BOMB]})),
    ];
    for (what, edit) in cases {
        let mut b = base();
        edit(&mut b);
        let (sink, _) = texts(&b);
        assert!(sink.stopped, "{what}: not blocked");
        let seen = sink.seen.last().unwrap();
        assert_eq!(
            (seen.role.as_deref(), seen.text.as_str()),
            (None, BOMB),
            "{what}"
        );
    }
    // Settings that hold no free text are not read.
    let (sink, req) = texts(&base());
    let seen: Vec<&str> = sink.seen.iter().map(|s| s.location.as_str()).collect();
    assert_eq!(seen, ["messages[0].content"]);
    assert_eq!(req.to_bytes().unwrap(), base().to_string().as_bytes());
    // A redaction in a top-level field reaches the provider redacted; the rest as it was.
    let mut b = base();
    b["metadata"] = json!({"user_id": "u secret-1234"});
    b["stop_sequences"] = json!(["END"]);
    let (sink, req) = texts(&b);
    assert!(!sink.stopped);
    let out = json(&req.to_bytes().unwrap());
    assert_eq!(out["metadata"]["user_id"], "u [secret]");
    assert_eq!(out["stop_sequences"], json!(["END"]));
    assert_eq!(out["messages"], base()["messages"]);
}

#[test]
fn container_files_are_partial() {
    let mut b = json!({"model": "m", "container": "container_1", "messages": []});
    let (sink, _) = texts(&b);
    assert_eq!(
        sink.partial,
        ["files of a code-execution container not scanned"]
    );
    b["container"] = Value::Null;
    b["messages"] = json!([{"role": "user", "content": [
        {"type": "container_upload", "file_id": "file_1"}]}]);
    let (sink, _) = texts(&b);
    assert_eq!(sink.partial, ["image, PDF or file content not scanned"]);
}
