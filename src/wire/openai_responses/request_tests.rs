#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use serde_json::{Value, json};

use super::Responses;
use crate::policy::InjectRole;
use crate::wire::testing::TestSink;
use crate::wire::{Adapter, ErrorInfo, ErrorKind, Placement, RequestFacts};

// === requests ===

fn req(body: Value) -> Box<dyn crate::wire::WireRequest> {
    Responses.request(body.to_string().as_bytes()).unwrap()
}

#[test]
fn input_string_is_a_user_text() {
    let mut r = req(json!({"model": "m", "input": "hi secret-1234", "instructions": "be kind"}));
    let mut sink = TestSink::default();
    r.texts(&mut sink);
    let roles: Vec<_> = sink
        .texts
        .iter()
        .map(|t| (t.0.as_deref(), t.1.as_str()))
        .collect();
    assert_eq!(
        roles,
        [(Some("system"), "instructions"), (Some("user"), "input")]
    );
    let out: Value = serde_json::from_slice(&r.to_bytes().unwrap()).unwrap();
    assert_eq!(out["input"], "hi [secret]");
    assert_eq!(
        r.facts(),
        RequestFacts {
            stream: false,
            n: 1,
            include_usage: false,
            model: "m".into()
        }
    );
}

/// `metadata`, `user` and the caller's identifiers leave the gateway too: a secret in them is
/// redacted in what is forwarded.
#[test]
fn caller_metadata_is_read() {
    let mut r = req(json!({"model": "m", "input": "hi", "user": "secret-1234",
                           "metadata": {"note": "key secret-5678"}, "safety_identifier": "secret-9999"}));
    let mut sink = TestSink::default();
    r.texts(&mut sink);
    let out: Value = serde_json::from_slice(&r.to_bytes().unwrap()).unwrap();
    assert_eq!(out["user"], "[secret]");
    assert_eq!(out["metadata"]["note"], "key [secret]");
    assert_eq!(out["safety_identifier"], "[secret]");
}

#[test]
fn input_items_are_read_with_their_roles() {
    let mut r = req(json!({"model": "m", "stream": true, "input": [
        {"role": " User ", "content": "a"},
        {"type": "message", "role": "assistant", "content": [
            {"type": "output_text", "text": "b"}, {"type": "refusal", "refusal": "c"}]},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "d"}, {"type": "input_image", "image_url": "http://x"}]},
        {"type": "function_call", "call_id": "k", "name": "f", "arguments": "{\"q\":\"secret\\u002d1234\"}"},
        {"type": "function_call_output", "call_id": "k", "output": "e"},
        {"type": "reasoning", "id": "rs", "summary": [{"type": "summary_text", "text": "g"}]},
        {"type": "custom_tool_call", "call_id": "c", "name": "x", "input": "h"},
        {"type": "web_search_call", "id": "ws", "action": {"query": "i"}},
    ], "tools": [{"type": "function", "name": "f", "description": "j",
                  "parameters": {"type": "object", "properties": {"q": {"type": "string", "description": "k"}}}}]}));
    assert!(r.facts().stream);
    let mut sink = TestSink::default();
    r.texts(&mut sink);
    let got: Vec<_> = sink
        .texts
        .iter()
        .map(|t| (t.0.as_deref(), t.2.as_str()))
        .collect();
    assert!(got.contains(&(Some("user"), "a")));
    assert!(got.contains(&(Some("assistant"), "b")));
    assert!(got.contains(&(Some("assistant"), "c")));
    assert!(got.contains(&(Some("user"), "d")));
    assert!(got.contains(&(Some("tool"), "e")));
    assert!(got.contains(&(Some("assistant"), "g")));
    assert!(got.contains(&(Some("assistant"), "h")));
    assert!(
        got.contains(&(None, "i")),
        "unknown items are walked: {got:?}"
    );
    assert!(got.contains(&(Some("tool_definition"), "j")));
    assert!(got.contains(&(Some("tool_definition"), "k")));
    let args = sink
        .texts
        .iter()
        .find(|t| t.1 == "input[3].arguments")
        .unwrap();
    assert!(args.3, "arguments are JSON text");
    assert_eq!(
        sink.partial,
        ["non-text input parts (images, files, audio) not scanned"]
    );
    let out: Value = serde_json::from_slice(&r.to_bytes().unwrap()).unwrap();
    let args: Value = serde_json::from_str(out["input"][3]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args["q"], "[secret]");
}

#[test]
fn a_block_stops_the_walk() {
    let mut r = req(
        json!({"input": [{"role": "user", "content": "a pipe bomb"}, {"role": "user", "content": "b"}]}),
    );
    let mut sink = TestSink::default();
    r.texts(&mut sink);
    assert!(sink.blocked);
    assert_eq!(sink.texts.len(), 1);
}

#[test]
fn provider_state_is_reported_partial() {
    let mut r = req(json!({"input": "x", "previous_response_id": "resp_1"}));
    let mut sink = TestSink::default();
    r.texts(&mut sink);
    assert_eq!(
        sink.partial,
        ["earlier turns kept by the provider (previous_response_id) not scanned"]
    );
    let mut r = req(json!({"input": "x", "conversation": "conv_1",
        "input": [{"type": "item_reference", "id": "msg_1"}]}));
    let mut sink = TestSink::default();
    r.texts(&mut sink);
    assert_eq!(sink.partial.len(), 2);
}

#[test]
fn spec_goes_first_in_instructions_and_comes_out_again() {
    let body = json!({"model": "m", "input": "x"}).to_string();
    let mut r = Responses.request(body.as_bytes()).unwrap();
    assert_eq!(
        r.to_bytes().unwrap(),
        Bytes::from(body.clone()),
        "unchanged: the client's bytes"
    );
    r.place_spec("SPEC".into(), InjectRole::System, Placement::Prepend);
    let out: Value = serde_json::from_slice(&r.to_bytes().unwrap()).unwrap();
    assert_eq!(out["instructions"], "SPEC");

    for placement in [Placement::Prepend, Placement::Merge] {
        let mut r = req(
            json!({"input": [{"role": "developer", "content": "dev"}], "instructions": "mine"}),
        );
        r.place_spec("SPEC".into(), InjectRole::Developer, placement);
        let out: Value = serde_json::from_slice(&r.to_bytes().unwrap()).unwrap();
        assert_eq!(out["instructions"], "SPEC\n\nmine");
        assert_eq!(out["input"].as_array().unwrap().len(), 1);
        // `instructions()` sees it again, and taking it out leaves the client's text.
        let mut seen = Vec::new();
        r.instructions(&mut |s| {
            seen.push(s.clone());
            if let Some(rest) = s.strip_prefix("SPEC\n\n") {
                *s = rest.to_owned();
                return true;
            }
            false
        });
        assert_eq!(seen, ["SPEC\n\nmine", "dev"]);
        let out: Value = serde_json::from_slice(&r.to_bytes().unwrap()).unwrap();
        assert_eq!(out["instructions"], "mine");
    }
    // An instruction emptied by the edit goes.
    let mut r = req(
        json!({"instructions": "SPEC", "input": [{"role": "system", "content": "SPEC"}, {"role": "user", "content": "u"}]}),
    );
    assert!(r.instructions(&mut |s| {
        s.clear();
        true
    }));
    let out: Value = serde_json::from_slice(&r.to_bytes().unwrap()).unwrap();
    assert!(out.get("instructions").is_none());
    assert_eq!(out["input"], json!([{"role": "user", "content": "u"}]));
}

#[test]
fn bad_requests_are_errors() {
    assert!(Responses.request(br#"{"input":"a","input":"b"}"#).is_err());
    assert!(Responses.request(b"[1]").is_err());
    let e = ErrorInfo::new(ErrorKind::InvalidRequest, "bad", "invalid_json");
    assert_eq!(Responses.error_body(&e)["error"]["code"], "invalid_json");
}
