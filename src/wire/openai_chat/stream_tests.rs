//! The stream rewriter against the red team's Chat stream scenarios (`/work/redteam/cases.py`):
//! a block or a redaction in a field other than the text channels — custom tool input, unknown
//! fields of a delta, a choice, a `function`, a chunk, chunk metadata — after the choice already
//! released text. Each case leaked before its fix.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};

use super::ChatCompletions;
use crate::wire::testing::{TestFilter, json_events, run_stream};
use crate::wire::{Adapter, RequestFacts};

fn facts() -> RequestFacts {
    RequestFacts {
        stream: true,
        n: 1,
        include_usage: false,
        model: "m".into(),
    }
}

/// A chunk of choice 0, as the red team's `cc` builds it: `extra` on the chunk, `cextra` on
/// the choice.
fn cc(delta: Value, fin: Value, extra: Value, cextra: Value) -> Value {
    let mut ch = json!({"index": 0, "delta": delta, "finish_reason": fin});
    if let Value::Object(m) = cextra {
        ch.as_object_mut().unwrap().extend(m);
    }
    let mut c = json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                       "choices": [ch]});
    if let Value::Object(m) = extra {
        c.as_object_mut().unwrap().extend(m);
    }
    c
}

fn delta(d: Value) -> Value {
    cc(d, Value::Null, Value::Null, Value::Null)
}

/// The SSE body of `chunks`, then the red team's end: a `stop` chunk and `[DONE]`.
fn sse(chunks: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in chunks {
        out.extend_from_slice(format!("data: {c}\n\n").as_bytes());
    }
    let end = cc(json!({}), json!("stop"), Value::Null, Value::Null);
    out.extend_from_slice(format!("data: {end}\n\ndata: [DONE]\n\n").as_bytes());
    out
}

/// What the client gets for `chunks`, and the filter after it.
fn run(chunks: &[Value]) -> (String, TestFilter) {
    let mut rw = ChatCompletions.stream(&facts());
    let mut f = TestFilter::new();
    let body = sse(chunks);
    let (out, _, _) = run_stream(rw.as_mut(), &mut f, &[&body]);
    (String::from_utf8(out).unwrap(), f)
}

fn finish_reasons(out: &str) -> Vec<String> {
    json_events(out.as_bytes())
        .iter()
        .filter_map(|c| c["choices"][0]["finish_reason"].as_str().map(str::to_owned))
        .collect()
}

/// Red team finding 1: a block in a secondary field after the choice released text went out in
/// the very chunk that said `content_filter`. Now nothing of the blocked field is sent, and the
/// choice ends in-band.
#[test]
fn a_block_in_a_secondary_field_after_released_text_sends_none_of_it() {
    let cases: [(&str, Vec<Value>); 7] = [
        (
            "cs_custom_full",
            vec![
                delta(
                    json!({"tool_calls": [{"index": 0, "id": "t", "type": "custom",
                                 "custom": {"name": "f", "input": "hello"}}]}),
                ),
                delta(json!({"tool_calls": [{"index": 0,
                                 "custom": {"input": " here is how to build a pipe bomb: step 1"}}]})),
            ],
        ),
        (
            "cs_content_then_extra",
            vec![
                delta(json!({"content": "hello world. "})),
                delta(json!({"content": "more. ", "x_text": "a pipe bomb"})),
            ],
        ),
        (
            "cs_content_then_cextra",
            vec![
                delta(json!({"content": "hello world. "})),
                cc(
                    json!({"content": "more. "}),
                    Value::Null,
                    Value::Null,
                    json!({"x_text": "a pipe bomb"}),
                ),
            ],
        ),
        (
            "cs_content_then_fnextra",
            vec![
                delta(
                    json!({"tool_calls": [{"index": 0, "id": "t", "type": "function",
                                 "function": {"name": "f", "arguments": "{}"}}]}),
                ),
                delta(json!({"tool_calls": [{"index": 0, "function": {"x": "a pipe bomb"}}]})),
            ],
        ),
        (
            // A legacy `function_call`'s unknown field.
            "function_call extra",
            vec![
                delta(json!({"content": "hello world. "})),
                delta(json!({"function_call": {"name": "f", "x": "a pipe bomb"}})),
            ],
        ),
        (
            // A field after the blocked one is not read: it must not go out either.
            "unread after block",
            vec![
                delta(json!({"content": "hello world. "})),
                delta(json!({"a_text": "a pipe bomb", "b_text": "a zorkmid pipe bomb"})),
            ],
        ),
        (
            // A content block: the delta's and the choice's other fields were never read.
            "fields beside blocked content",
            vec![
                delta(json!({"content": "hello world. "})),
                cc(
                    json!({"content": "a pipe bomb", "x_text": "zork pipe bomb"}),
                    Value::Null,
                    Value::Null,
                    json!({"x_note": "note pipe bomb"}),
                ),
            ],
        ),
    ];
    for (name, chunks) in cases {
        let (out, _) = run(&chunks);
        assert!(!out.contains("bomb"), "{name}: {out}");
        assert_eq!(
            finish_reasons(&out).last().map(String::as_str),
            Some("content_filter"),
            "{name}: {out}"
        );
    }
}

/// A redaction in a secondary field is written into what is sent.
#[test]
fn a_redaction_in_a_secondary_field_is_applied() {
    let chunks = [
        delta(
            json!({"tool_calls": [{"index": 0, "id": "t", "type": "custom",
                         "custom": {"name": "f", "input": "key secret-1234"}}]}),
        ),
        cc(
            json!({"x_text": "also secret-5678"}),
            Value::Null,
            json!({"x_top": "and secret-9012"}),
            json!({"x_note": "secret-3456"}),
        ),
    ];
    let (out, _) = run(&chunks);
    assert!(!out.contains("secret-"), "{out}");
    assert_eq!(out.matches("[secret]").count(), 4, "{out}");
    assert_eq!(finish_reasons(&out), ["stop"], "{out}");
}

/// Red team finding 5 (`cs_meta`, `cs_usage`, `cs_usage_first`): chunk fields that can carry
/// free text (`obfuscation`, strings in `usage`) and choice fields (`stop_reason`,
/// `content_filter_results`) are scanned; identifiers and enums are not.
#[test]
fn free_text_chunk_metadata_is_scanned() {
    let meta = cc(
        json!({"content": "ok"}),
        Value::Null,
        json!({"obfuscation": "a pipe bomb"}),
        Value::Null,
    );
    let stop_reason = cc(
        json!({"content": "ok"}),
        Value::Null,
        Value::Null,
        json!({"stop_reason": "a pipe bomb"}),
    );
    let cfr = cc(
        json!({"content": "ok"}),
        Value::Null,
        Value::Null,
        json!({"content_filter_results": {"x": {"filtered": false, "detail": "a pipe bomb"}}}),
    );
    let usage = json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                       "choices": [], "usage": {"note": "a pipe bomb"}});
    let usage_first = json!({"id": "c1", "object": "chat.completion.chunk", "created": 1,
                             "model": "m", "choices": [],
                             "usage": {"prompt_tokens_details": {"x": "a pipe bomb"}}});
    let cases = [
        ("cs_meta obfuscation", vec![meta]),
        ("cs_meta stop_reason", vec![stop_reason]),
        ("cs_meta content_filter_results", vec![cfr]),
        ("cs_usage", vec![delta(json!({"content": "ok"})), usage]),
        (
            "cs_usage_first",
            vec![usage_first, delta(json!({"content": "ok"}))],
        ),
    ];
    for (name, chunks) in cases {
        let (out, _) = run(&chunks);
        assert!(!out.contains("bomb"), "{name}: {out}");
    }
    // Identifiers and enums are not read, so a rule cannot trip on them; numbers in usage pass.
    let c = cc(
        json!({"content": "ok"}),
        Value::Null,
        json!({"system_fingerprint": "fp_secret-1234", "service_tier": "default",
               "usage": {"prompt_tokens": 3}}),
        Value::Null,
    );
    let (out, f) = run(&[c]);
    assert!(out.contains("fp_secret-1234"), "{out}");
    assert!(out.contains("\"prompt_tokens\":3"), "{out}");
    assert!(
        f.scanned
            .iter()
            .all(|(c, _)| !c.location.contains("system_fingerprint")),
        "{:?}",
        f.scanned
    );
}

/// A first chunk whose own unknown field blocks: the chunks the gateway writes itself (the
/// in-band end of every choice) copy nothing of it.
#[test]
fn a_blocked_first_chunk_field_is_not_copied_into_the_gateways_chunks() {
    let first = cc(
        json!({"content": "hello"}),
        Value::Null,
        json!({"x_text": "a pipe bomb", "error": {"message": "a pipe bomb"}}),
        Value::Null,
    );
    let (out, _) = run(&[first]);
    assert!(!out.contains("bomb"), "{out}");
    // A redacted one: the later chunks carry no copy of the original either.
    let first = cc(
        json!({"content": "hello"}),
        Value::Null,
        json!({"x_text": "key secret-1234"}),
        Value::Null,
    );
    let (out, _) = run(&[first, delta(json!({"content": " world"}))]);
    assert!(!out.contains("secret-1234"), "{out}");
}
