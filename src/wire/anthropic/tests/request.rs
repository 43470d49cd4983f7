//! Requests: texts with provenance, redaction in place, the spec in `system`, strict parsing.

use super::{RecordingSink, json};
use crate::policy::InjectRole;
use crate::wire::anthropic::Messages;
use crate::wire::{Adapter, Placement, WireError, WireRequest};

const SPEC: &str = "[deliberate policy t@abc]\nBe careful.\n[end of deliberate policy t@abc]";

fn parse(body: &str) -> Box<dyn WireRequest> {
    Messages.request(body.as_bytes()).expect("parses")
}

fn texts(body: &str) -> (RecordingSink, Box<dyn WireRequest>) {
    let mut req = parse(body);
    let mut sink = RecordingSink::default();
    req.texts(&mut sink);
    (sink, req)
}

#[test]
fn facts_are_read() {
    let req = parse(r#"{"model":"claude-x","stream":true,"max_tokens":5,"messages":[]}"#);
    let f = req.facts();
    assert!(f.stream);
    assert_eq!(f.n, 1);
    assert_eq!(f.model, "claude-x");
    assert!(!parse(r#"{"messages":[]}"#).facts().stream);
}

#[test]
fn every_text_is_handed_over_with_its_role() {
    let body = r#"{
      "model": "m", "max_tokens": 10,
      "system": [{"type": "text", "text": "Operator rules."}],
      "tools": [{"name": "lookup", "description": "Looks things up.",
                 "input_schema": {"type": "object", "properties": {
                   "q": {"type": "string", "description": "The query."},
                   "mode": {"type": "string", "enum": ["fast", "deep"]}}}}],
      "messages": [
        {"role": " User ", "content": "Hello"},
        {"role": "user", "content": [
          {"type": "text", "text": "Look at this", "cache_control": {"type": "ephemeral"}},
          {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
          {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Doc body"},
           "title": "Doc title", "context": "Doc context"},
          {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}}
        ]},
        {"role": "assistant", "content": [
          {"type": "thinking", "thinking": "Earlier thought", "signature": "sig=="},
          {"type": "redacted_thinking", "data": "opaque"},
          {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "weather"}}
        ]},
        {"role": "user", "content": [
          {"type": "tool_result", "tool_use_id": "toolu_1", "content": "Sunny"},
          {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "Warm"}]},
          {"type": "future_block", "note": "Unknown text", "nested": {"deep": "Deeper"}}
        ]}
      ]}"#;
    let (sink, _) = texts(body);
    let seen: Vec<(Option<&str>, &str, &str, bool)> = sink
        .seen
        .iter()
        .map(|s| {
            (
                s.role.as_deref(),
                s.location.as_str(),
                s.text.as_str(),
                s.json,
            )
        })
        .collect();
    let td = Some("tool_definition");
    assert_eq!(
        seen,
        [
            (td, "tools[0].name", "lookup", false),
            (td, "tools[0].description", "Looks things up.", false),
            (
                td,
                "tools[0].input_schema.properties.mode.enum[0]",
                "fast",
                false
            ),
            (
                td,
                "tools[0].input_schema.properties.mode.enum[1]",
                "deep",
                false
            ),
            (
                td,
                "tools[0].input_schema.properties.q.description",
                "The query.",
                false
            ),
            (Some("system"), "system[0].text", "Operator rules.", false),
            (Some("user"), "messages[0].content", "Hello", false),
            (
                Some("user"),
                "messages[1].content[0].text",
                "Look at this",
                false
            ),
            (
                Some("user"),
                "messages[1].content[2].source.data",
                "Doc body",
                false
            ),
            (
                Some("user"),
                "messages[1].content[2].context",
                "Doc context",
                false
            ),
            (
                Some("user"),
                "messages[1].content[2].title",
                "Doc title",
                false
            ),
            (
                Some("assistant"),
                "messages[2].content[0].thinking",
                "Earlier thought",
                false
            ),
            (
                Some("assistant"),
                "messages[2].content[2].name",
                "lookup",
                false
            ),
            (
                Some("assistant"),
                "messages[2].content[2].input",
                r#"{"q":"weather"}"#,
                true
            ),
            (
                Some("tool"),
                "messages[3].content[0].content",
                "Sunny",
                false
            ),
            (
                Some("tool"),
                "messages[3].content[1].content[0].text",
                "Warm",
                false
            ),
            (None, "messages[3].content[2].nested.deep", "Deeper", false),
            (None, "messages[3].content[2].note", "Unknown text", false),
        ]
    );
    let mut partial = sink.partial.clone();
    partial.sort_unstable();
    assert_eq!(
        partial,
        [
            "PDF or document by reference not scanned",
            "image content not scanned",
            "redacted thinking not scanned",
        ]
    );
}

#[test]
fn unscanned_request_is_forwarded_as_it_came() {
    let body = r#"{ "model" : "m", "messages": [{"role": "user", "content": "hi"}] }"#;
    let (_, req) = texts(body);
    assert_eq!(&req.to_bytes().unwrap()[..], body.as_bytes());
}

#[test]
fn redaction_is_written_back_and_a_block_stops() {
    let body = r#"{"model":"m","tools":[{"name":"t","input_schema":{"type":"object"}}],
      "messages":[{"role":"user","content":[
        {"type":"tool_result","tool_use_id":"x","content":"key secret-1234 here"}]}]}"#;
    let (sink, req) = texts(body);
    assert!(!sink.stopped);
    let out = json(&req.to_bytes().unwrap());
    assert_eq!(
        out["messages"][0]["content"][0]["content"],
        "key [secret] here"
    );
    // Untouched members stay as they were.
    assert_eq!(out["tools"][0]["name"], "t");

    // An escaped keyword in a tool call's input is read decoded.
    let body = r#"{"model":"m","messages":[{"role":"assistant","content":[
        {"type":"tool_use","id":"t1","name":"n","input":{"q":"pipe \u0062omb"}}]},
        {"role":"user","content":"after"}]}"#;
    let (sink, _) = texts(body);
    assert!(sink.stopped);
    assert_eq!(sink.seen.len(), 2, "nothing is read after the stop");

    // Redaction inside a tool call's input keeps it an object.
    let body = r#"{"messages":[{"role":"assistant","content":[
        {"type":"tool_use","id":"t1","name":"n","input":{"k":"secret-9876"}}]}]}"#;
    let (_, req) = texts(body);
    let out = json(&req.to_bytes().unwrap());
    assert_eq!(out["messages"][0]["content"][0]["input"]["k"], "[secret]");
}

/// The operator's system blocks, `cache_control` included, reach the provider byte for byte,
/// behind the spec block.
#[test]
fn spec_goes_first_in_system_blocks_keeping_their_bytes() {
    let blocks = r#"[ {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
    {"type": "text", "text": "Second."} ]"#;
    let body = format!(
        r#"{{"model": "m", "system": {blocks}, "messages": [{{"role": "user", "content": "hi secret-1111"}}]}}"#
    );
    let mut req = parse(&body);
    let mut sink = RecordingSink::default();
    req.texts(&mut sink);
    req.place_spec(SPEC.to_owned(), InjectRole::Developer, Placement::Prepend);
    let bytes = req.to_bytes().unwrap();
    let text = std::str::from_utf8(&bytes).unwrap();
    assert!(text.contains(&blocks[1..]), "{text}");
    let out = json(&bytes);
    assert_eq!(
        out["system"][0],
        serde_json::json!({"type": "text", "text": SPEC})
    );
    assert_eq!(out["system"][1]["cache_control"]["ttl"], "1h");
    assert_eq!(out["system"].as_array().unwrap().len(), 3);
    assert_eq!(out["messages"][0]["content"], "hi [secret]");

    // The injection is found again, taken out, and placed afresh: the same bytes.
    let mut again = Messages.request(&bytes).unwrap();
    let changed = again.instructions(&mut |t: &mut String| {
        let had = t.contains("[deliberate policy t@");
        if had {
            t.clear();
        }
        had
    });
    assert!(changed);
    again.place_spec(SPEC.to_owned(), InjectRole::System, Placement::Merge);
    assert_eq!(json(&again.to_bytes().unwrap()), out);

    // An empty block list gets the spec alone.
    let mut req = parse(r#"{"system": [], "messages": []}"#);
    req.place_spec(SPEC.to_owned(), InjectRole::System, Placement::Prepend);
    let out = json(&req.to_bytes().unwrap());
    assert_eq!(out["system"].as_array().unwrap().len(), 1);
}

#[test]
fn spec_goes_in_front_of_a_system_string() {
    for placement in [Placement::Prepend, Placement::Merge] {
        let mut req = parse(r#"{"system": "Be brief.", "messages": []}"#);
        req.place_spec(SPEC.to_owned(), InjectRole::System, placement);
        let out = json(&req.to_bytes().unwrap());
        assert_eq!(out["system"], format!("{SPEC}\n\nBe brief."));
    }
    let mut req = parse(r#"{"messages": []}"#);
    req.place_spec(SPEC.to_owned(), InjectRole::System, Placement::Prepend);
    let bytes = req.to_bytes().unwrap();
    assert!(bytes.starts_with(br#"{"system":"#));
    assert_eq!(json(&bytes)["system"], SPEC);
}

#[test]
fn instructions_drop_what_they_empty() {
    let mut req = parse(r#"{"system": "OLD", "messages": []}"#);
    assert!(req.instructions(&mut |t: &mut String| {
        t.clear();
        true
    }));
    assert!(json(&req.to_bytes().unwrap()).get("system").is_none());

    let mut req = parse(
        r#"{"system": [{"type":"text","text":"OLD"},{"type":"text","text":"keep"}], "messages": []}"#,
    );
    assert!(req.instructions(&mut |t: &mut String| {
        let old = t == "OLD";
        if old {
            t.clear();
        }
        old
    }));
    let out = json(&req.to_bytes().unwrap());
    assert_eq!(
        out["system"],
        serde_json::json!([{"type": "text", "text": "keep"}])
    );

    let mut req = parse(r#"{"system": "x", "messages": []}"#);
    assert!(!req.instructions(&mut |_: &mut String| false));
}

#[test]
fn malformed_requests_are_refused() {
    for body in [
        r#"{"messages": [], "messages": []}"#,
        r#"[1]"#,
        r#"{"stream": "yes"}"#,
        r#"{"system": 3}"#,
        r#"{"messages": {}}"#,
        r#"{"messages": [{"content": "no role"}]}"#,
        r#"{"messages": [{"role": "user", "content": 5}]}"#,
        r#"{"messages": [{"role": "user", "content": ["bare string"]}]}"#,
        r#"{"tools": "x"}"#,
    ] {
        let err = Messages.request(body.as_bytes()).err();
        assert!(
            matches!(
                err,
                Some(WireError::DuplicateKey { .. } | WireError::Shape { .. })
            ),
            "{body}: {err:?}"
        );
    }
}

#[test]
fn mcp_servers_are_reported_partial() {
    let (sink, _) =
        texts(r#"{"mcp_servers": [{"type": "url", "url": "https://x"}], "messages": []}"#);
    assert_eq!(sink.partial, ["tools of MCP servers not scanned"]);
}
