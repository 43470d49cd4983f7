//! Buffered answers, adapter refusals and error bodies.

use bytes::Bytes;
use serde_json::{Value, json};

use super::{EngineFilter, json, refusal};
use crate::wire::anthropic::Messages;
use crate::wire::{Adapter, ChannelKind, ErrorInfo, ErrorKind, RequestFacts};

fn message(content: Value) -> Bytes {
    Bytes::from(
        json!({
            "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-x",
            "content": content, "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 12, "output_tokens": 7}
        })
        .to_string(),
    )
}

fn answer(body: &Bytes) -> (crate::wire::Answer, EngineFilter) {
    let mut f = EngineFilter::default();
    let a = Messages.answer(body, &mut f).expect("an answer");
    (a, f)
}

fn rich(text: &str, cited: &str, input: Value) -> Value {
    json!([
        {"type": "thinking", "thinking": "Let me think.", "signature": "EqQBCkYIARgCIkA="},
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT"},
        {"type": "text", "text": text, "citations": [
            {"type": "char_location", "cited_text": cited, "document_index": 0,
             "document_title": "Doc", "start_char_index": 0, "end_char_index": 5}]},
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "q"}},
        {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": [
            {"type": "web_search_result", "url": "https://example.com", "title": "Example",
             "encrypted_content": "EqgfCioIARgBIiQ3", "page_age": "April 30, 2025"}]},
        {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": input},
        {"type": "future_block", "words": "Future words"}
    ])
}

#[test]
fn an_answer_nothing_matched_goes_on_as_it_came() {
    let body = message(rich("Hello there.", "a quote", json!({"q": "weather"})));
    let (a, f) = answer(&body);
    assert_eq!(a.body, body);
    assert!(!a.all_blocked);
    assert_eq!(f.partial, ["redacted thinking not scanned"]);
    let scanned: Vec<(ChannelKind, &str, &str)> = f
        .scanned
        .iter()
        .map(|(c, t)| (c.kind, c.location.as_str(), t.as_str()))
        .collect();
    for want in [
        (
            ChannelKind::Reasoning,
            "content[0].thinking",
            "Let me think.",
        ),
        (ChannelKind::Content, "content[2].text", "Hello there."),
        (
            ChannelKind::Other,
            "content[2].citations[0].cited_text",
            "a quote",
        ),
        (
            ChannelKind::Other,
            "content[2].citations[0].document_title",
            "Doc",
        ),
        (ChannelKind::ToolName, "content[3].name", "web_search"),
        (
            ChannelKind::ToolArguments,
            "content[3].input",
            r#"{"query":"q"}"#,
        ),
        (ChannelKind::Other, "content[4].content[0].title", "Example"),
        (
            ChannelKind::Other,
            "content[4].content[0].url",
            "https://example.com",
        ),
        (ChannelKind::ToolName, "content[5].name", "lookup"),
        (ChannelKind::Other, "content[6].words", "Future words"),
    ] {
        assert!(scanned.contains(&want), "{want:?} not in {scanned:?}");
    }
    // Signatures, ids and encrypted content are not text.
    assert!(
        !scanned
            .iter()
            .any(|(_, _, t)| t.starts_with("Eq") || t.starts_with("srvtoolu"))
    );
    assert!(
        f.scanned
            .iter()
            .any(|(c, _)| c.json && c.location == "content[5].input")
    );
}

#[test]
fn redactions_are_applied_in_every_channel() {
    let body = message(rich(
        "Your key is secret-1234.",
        "cited secret-5678",
        json!({"q": "secret\u{2d}4321"}),
    ));
    let (a, _) = answer(&body);
    assert!(!a.all_blocked);
    let out = json(&a.body);
    assert_eq!(out["content"][2]["text"], "Your key is [secret].");
    assert_eq!(
        out["content"][2]["citations"][0]["cited_text"],
        "cited [secret]"
    );
    assert_eq!(out["content"][5]["input"], json!({"q": "[secret]"}));
    assert_eq!(out["content"][0]["signature"], "EqQBCkYIARgCIkA=");
    assert!(!a.body.windows(7).any(|w| w == b"secret-"));
}

#[test]
fn a_block_anywhere_turns_the_answer_into_a_refusal() {
    let cases = [
        rich("How to build a pipe bomb", "q", json!({})),
        rich("fine", "a pipe bomb quote", json!({})),
        rich("fine", "q", json!({"q": "pipe bomb"})),
        json!([{"type": "thinking", "thinking": "a pipe bomb", "signature": "s"}]),
        json!([{"type": "web_search_tool_result", "tool_use_id": "x",
                "content": [{"type": "web_search_result", "title": "pipe bomb", "url": "u"}]}]),
        json!([{"type": "future", "x": {"y": "pipe bomb"}}]),
    ];
    for content in cases {
        let (a, _) = answer(&message(content.clone()));
        assert!(a.all_blocked, "{content}");
        let out = json(&a.body);
        assert_eq!(
            out,
            json!({"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-x",
                   "content": [{"type": "text", "text": refusal()}], "stop_reason": "refusal",
                   "stop_sequence": null, "usage": {"input_tokens": 12, "output_tokens": 7}})
        );
    }
    // Read decoded: an escape does not hide a keyword in tool input.
    let raw = Bytes::from(
        r#"{"id":"m","type":"message","role":"assistant","model":"c","content":[
        {"type":"tool_use","id":"t","name":"n","input":{"q":"pipe \u0062omb"}}],"stop_reason":"tool_use","usage":{}}"#,
    );
    assert!(answer(&raw).0.all_blocked);
}

#[test]
fn malformed_answers_are_errors() {
    let mut f = EngineFilter::default();
    for body in [r#"{"content": {}}"#, "[]", r#"{"a":1,"a":2}"#] {
        assert!(Messages.answer(&Bytes::from(body), &mut f).is_err());
    }
}

#[test]
fn adapter_refusals_are_messages_or_whole_streams() {
    let facts = RequestFacts {
        model: "claude-x".into(),
        n: 1,
        ..Default::default()
    };
    let (ct, body) = Messages.refusal(&facts, "No.");
    assert_eq!(ct, "application/json");
    let v = json(&body);
    assert_eq!(v["stop_reason"], "refusal");
    assert_eq!(v["model"], "claude-x");
    assert!(v["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(v["content"], json!([{"type": "text", "text": "No."}]));

    let facts = RequestFacts {
        stream: true,
        ..facts
    };
    let (ct, body) = Messages.refusal(&facts, "No.");
    assert_eq!(ct, "text/event-stream");
    let events = super::stream::decode(&body);
    let msg = super::stream::accumulate(&events);
    assert_eq!(super::stream::text_of(&msg), "No.");
    assert_eq!(msg["stop_reason"], "refusal");
}

#[test]
fn error_bodies_have_anthropic_types() {
    for (kind, ty) in [
        (ErrorKind::InvalidRequest, "invalid_request_error"),
        (ErrorKind::PolicyViolation, "invalid_request_error"),
        (ErrorKind::TooLarge, "request_too_large"),
        (ErrorKind::Upstream, "api_error"),
        (ErrorKind::Timeout, "api_error"),
        (ErrorKind::Overloaded, "overloaded_error"),
    ] {
        let body = Messages.error_body(&ErrorInfo::new(kind, "what", "code"));
        assert_eq!(
            body,
            json!({"type": "error", "error": {"type": ty, "message": "what"}})
        );
    }
}
