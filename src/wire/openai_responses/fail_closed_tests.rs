//! Regression tests for the red team's findings on Responses answers: every string the
//! upstream writes is read — extra fields of known items, parts and events, fields of an
//! unexpected shape, the members of the response object — or the stream is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use serde_json::{Value, json};

use super::Responses;
use super::items::ENCRYPTED_REASONING;
use super::tests::response;
use crate::wire::sse::SseEvent;
use crate::wire::testing::{REFUSAL, TestFilter, json_events, run_stream};
use crate::wire::{Adapter, Emit, RequestFacts};

const BOMB: &str = "a pipe bomb";

fn ok_message() -> Value {
    json!({"id": "msg_1", "type": "message", "status": "completed", "role": "assistant",
           "content": [{"type": "output_text", "text": "ok", "annotations": []}]})
}

/// A completed response with one `ok` message, then `edit` applied.
fn buffered(edit: impl FnOnce(&mut Value)) -> Bytes {
    let mut r = response("completed", vec![ok_message()]);
    edit(&mut r);
    Bytes::from(r.to_string())
}

fn leaks(body: &[u8]) -> bool {
    String::from_utf8_lossy(body).contains("pipe")
}

// === buffered ===

#[test]
fn buffered_strings_outside_the_known_fields_are_scanned() {
    // Each of these passed unread with `full` (FINDINGS.md §4): the blocked phrase reached
    // the client byte for byte.
    type Edit = fn(&mut Value);
    let cases: &[(&str, Edit)] = &[
        ("message item extra", |r| {
            r["output"][0]["x_text"] = BOMB.into()
        }),
        ("output_text part extra", |r| {
            r["output"][0]["content"][0]["x_text"] = BOMB.into()
        }),
        ("output_text part logprobs", |r| {
            r["output"][0]["content"][0]["logprobs"] =
                json!([{"token": "ok", "logprob": 0, "top_logprobs": [{"token": BOMB}]}])
        }),
        ("message content a string", |r| {
            r["output"][0]["content"] = BOMB.into()
        }),
        ("message content an object", |r| {
            r["output"][0]["content"] = json!({"type": "output_text", "text": BOMB})
        }),
        ("function_call extra", |r| {
            r["output"] = json!([{"type": "function_call", "id": "fc_1", "call_id": "c",
                                  "name": "f", "arguments": "{}", "x_text": BOMB}])
        }),
        ("function_call arguments not a string", |r| {
            r["output"] = json!([{"type": "function_call", "id": "fc_1", "call_id": "c",
                                  "name": "f", "arguments": [BOMB]}])
        }),
        ("reasoning summary entry extra", |r| {
            r["output"] = json!([{"type": "reasoning", "id": "rs_1",
                                  "summary": [{"type": "summary_text", "text": "ok", "x": BOMB}]}])
        }),
        ("reasoning summary text not a string", |r| {
            r["output"] = json!([{"type": "reasoning", "id": "rs_1",
                                  "summary": [{"type": "summary_text", "text": [BOMB]}]}])
        }),
        ("output item a string", |r| r["output"] = json!([BOMB])),
        ("output an object", |r| {
            r["output"] = json!({"0": {"type": "message", "content": [
                {"type": "output_text", "text": BOMB}]}})
        }),
        ("unknown response field", |r| r["x_text"] = BOMB.into()),
        ("instructions", |r| r["instructions"] = BOMB.into()),
        ("metadata", |r| r["metadata"] = json!({"a": BOMB})),
        ("text format schema", |r| {
            r["text"] = json!({"format": {"type": "json_schema", "name": "x",
                                          "schema": {"description": BOMB}}})
        }),
        (
            "tools",
            |r| r["tools"] = json!([{"type": "function", "name": "f", "description": BOMB}]),
        ),
        ("reasoning.summary", |r| {
            r["reasoning"] = json!({"effort": null, "summary": BOMB})
        }),
        ("incomplete_details", |r| {
            r["incomplete_details"] = json!({"reason": BOMB})
        }),
        ("user", |r| r["user"] = BOMB.into()),
        ("prompt", |r| {
            r["prompt"] = json!({"id": "p", "variables": {"a": BOMB}})
        }),
        ("usage", |r| r["usage"] = json!({"note": BOMB})),
    ];
    for (what, edit) in cases {
        let body = buffered(edit);
        let mut f = TestFilter::new();
        let a = Responses.answer(&body, &mut f).unwrap();
        assert!(a.all_blocked, "{what}: not blocked");
        assert!(
            !leaks(&a.body),
            "{what}: leaked {}",
            String::from_utf8_lossy(&a.body)
        );
        let v: Value = serde_json::from_slice(&a.body).unwrap();
        assert_eq!(v["output"][0]["content"][0]["refusal"], REFUSAL, "{what}");
        assert_eq!(
            v["incomplete_details"]["reason"], "content_filter",
            "{what}"
        );
    }
}

#[test]
fn buffered_redactions_in_response_members_are_written_back() {
    let body = buffered(|r| {
        r["metadata"] = json!({"k": "key secret-1234"});
        r["instructions"] = "say secret-5678".into();
        r["output"][0]["x_note"] = "secret-9012".into();
    });
    let a = Responses.answer(&body, &mut TestFilter::new()).unwrap();
    assert!(!a.all_blocked);
    let v: Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(v["metadata"]["k"], "key [secret]");
    assert_eq!(v["instructions"], "say [secret]");
    assert_eq!(v["output"][0]["x_note"], "[secret]");
}

#[test]
fn buffered_identifiers_pass_unread_and_benign_bodies_unchanged() {
    let body = buffered(|r| {
        r["instructions"] = "be brief".into();
        r["metadata"] = json!({"k": "v"});
    });
    let mut f = TestFilter::new();
    let a = Responses.answer(&body, &mut f).unwrap();
    assert_eq!(a.body, body);
    let seen: Vec<&str> = f.scanned.iter().map(|(c, _)| c.location.as_str()).collect();
    for unread in [
        "id",
        "object",
        "status",
        "model",
        "output[0].id",
        "output[0].type",
    ] {
        assert!(!seen.contains(&unread), "{unread} was scanned: {seen:?}");
    }
    for read in [
        "instructions",
        "metadata.k",
        "tool_choice",
        "output[0].role",
    ] {
        assert!(seen.contains(&read), "{read} was not scanned: {seen:?}");
    }
}

#[test]
fn buffered_encrypted_reasoning_is_partial() {
    let body = buffered(|r| {
        r["output"] = json!([{"type": "reasoning", "id": "rs_1", "summary": [],
                              "encrypted_content": "gAAAA"}, ok_message()]);
    });
    let mut f = TestFilter::new();
    let a = Responses.answer(&body, &mut f).unwrap();
    assert!(!a.all_blocked);
    assert_eq!(f.partial, [ENCRYPTED_REASONING]);
    // Without it, the answer is fully read.
    let mut f = TestFilter::new();
    Responses.answer(&buffered(|_| {}), &mut f).unwrap();
    assert!(f.partial.is_empty());
}

// === streamed ===

/// An SSE body: each event named by its type.
fn sse(events: &[Value]) -> Vec<u8> {
    let mut out = String::new();
    for e in events {
        out.push_str(&format!(
            "event: {}\ndata: {e}\n\n",
            e["type"].as_str().unwrap()
        ));
    }
    out.into_bytes()
}

/// A stream of one message saying `ok`, its events as JSON (indexed as below).
fn stream_events() -> Vec<Value> {
    let empty = json!({"id": "msg_1", "type": "message", "status": "in_progress",
                       "role": "assistant", "content": []});
    let base = json!({"item_id": "msg_1", "output_index": 0, "content_index": 0});
    let with = |t: &str, k: &str, v: Value| {
        let mut e = base.clone();
        e["type"] = t.into();
        e[k] = v;
        e
    };
    let part = |t: &str| json!({"type": "output_text", "text": t, "annotations": []});
    vec![
        /* 0 */
        json!({"type": "response.created", "response": response("in_progress", vec![])}),
        /* 1 */
        json!({"type": "response.in_progress", "response": response("in_progress", vec![])}),
        /* 2 */
        json!({"type": "response.output_item.added", "output_index": 0, "item": empty}),
        /* 3 */ with("response.content_part.added", "part", part("")),
        /* 4 */ with("response.output_text.delta", "delta", "ok".into()),
        /* 5 */ with("response.output_text.done", "text", "ok".into()),
        /* 6 */ with("response.content_part.done", "part", part("ok")),
        /* 7 */
        json!({"type": "response.output_item.done", "output_index": 0, "item": ok_message()}),
        /* 8 */
        json!({"type": "response.completed", "response": response("completed", vec![ok_message()])}),
    ]
}

fn run(events: &[Value]) -> (String, crate::wire::StreamEnd, TestFilter) {
    let mut f = TestFilter::new();
    let mut rw = Responses.stream(&RequestFacts::default());
    let body = sse(events);
    let (out, end, _) = run_stream(rw.as_mut(), &mut f, &[&body]);
    (String::from_utf8(out).unwrap(), end, f)
}

#[test]
fn streamed_strings_outside_the_known_fields_are_scanned() {
    // Each of these passed unread with `full` (FINDINGS.md §4).
    type Edit = fn(&mut Vec<Value>);
    let cases: &[(&str, Edit)] = &[
        ("created instructions", |e| {
            e[0]["response"]["instructions"] = BOMB.into()
        }),
        ("created unknown field", |e| {
            e[0]["response"]["x_text"] = BOMB.into()
        }),
        ("in_progress top-level field", |e| {
            e[1]["delta"] = BOMB.into()
        }),
        ("completed unknown field", |e| {
            e[8]["response"]["x_text"] = BOMB.into()
        }),
        ("completed metadata", |e| {
            e[8]["response"]["metadata"] = json!({"k": BOMB})
        }),
        ("completed top-level field", |e| e[8]["x"] = BOMB.into()),
        ("output_item.added top-level field", |e| {
            e[2]["x_text"] = BOMB.into()
        }),
        ("content_part.added top-level field", |e| {
            e[3]["x_text"] = BOMB.into()
        }),
        ("content_part.added part extra", |e| {
            e[3]["part"]["x_text"] = BOMB.into()
        }),
        ("delta event extra", |e| e[4]["x_text"] = BOMB.into()),
        (
            "delta event logprobs",
            |e| e[4]["logprobs"] = json!([{"token": "ok", "top_logprobs": [{"token": BOMB}]}]),
        ),
        ("text.done extra", |e| e[5]["x_text"] = BOMB.into()),
        ("output_item.added function_call extra", |e| {
            e.insert(
                7,
                json!({"type": "response.output_item.added", "output_index": 1,
                       "item": {"type": "function_call", "id": "fc", "call_id": "c",
                                "name": "f", "arguments": "", "x_text": BOMB}}),
            )
        }),
        ("output_item.done message content a string", |e| {
            e[7]["item"]["content"] = BOMB.into()
        }),
        ("completed message content a string", |e| {
            e[8]["response"]["output"][0]["content"] = BOMB.into()
        }),
        ("completed output an object", |e| {
            e[8]["response"]["output"] = json!({"0": {"type": "message", "content": BOMB}})
        }),
        ("created response not an object", |e| {
            e[0]["response"] = BOMB.into()
        }),
    ];
    for (what, edit) in cases {
        let mut events = stream_events();
        edit(&mut events);
        let (out, end, _) = run(&events);
        assert!(!out.contains("pipe"), "{what}: leaked\n{out}");
        assert!(end.all_blocked, "{what}: not blocked\n{out}");
    }
}

#[test]
fn streamed_summary_part_extras_are_scanned() {
    let mut events = stream_events();
    let base = json!({"item_id": "rs_1", "output_index": 1, "summary_index": 0});
    let mut added = base.clone();
    added["type"] = "response.reasoning_summary_part.added".into();
    added["part"] = json!({"type": "summary_text", "text": "", "x": BOMB});
    events.insert(
        8,
        json!({"type": "response.output_item.added", "output_index": 1,
               "item": {"type": "reasoning", "id": "rs_1", "summary": []}}),
    );
    events.insert(9, added);
    let (out, end, _) = run(&events);
    assert!(!out.contains("pipe"), "{out}");
    assert!(end.all_blocked);
}

#[test]
fn a_phrase_split_across_unknown_delta_events_is_still_joined() {
    let mut events = stream_events();
    for (i, d) in ["a pi", "pe bomb"].into_iter().enumerate() {
        events.insert(
            5 + i,
            json!({"type": "response.foo.delta", "output_index": 0, "delta": d}),
        );
    }
    let (out, end, _) = run(&events);
    assert!(!out.contains("pe bomb"), "{out}");
    assert!(end.all_blocked);
}

#[test]
fn an_event_name_that_disagrees_with_its_type_is_an_upstream_fault() {
    // `rs_event_mismatch2`: named as output text, typed as `in_progress`, carrying a delta.
    let mut rw = Responses.stream(&RequestFacts::default());
    let mut f = TestFilter::new();
    let mut out = Emit::default();
    let created = SseEvent {
        event: Some("response.created".into()),
        data: stream_events()[0].to_string(),
        id: None,
    };
    rw.event(&created, &mut f, &mut out).unwrap();
    let odd = SseEvent {
        event: Some("response.output_text.delta".into()),
        data: json!({"type": "response.in_progress", "output_index": 0, "content_index": 0,
                     "item_id": "msg_1", "delta": "hello"})
        .to_string(),
        id: None,
    };
    assert!(rw.event(&odd, &mut f, &mut out).is_err());
    assert!(!String::from_utf8_lossy(&out.buf).contains("hello"));
    // An event without a name is read by its type, as before.
    let mut rw = Responses.stream(&RequestFacts::default());
    let unnamed = SseEvent {
        event: None,
        data: stream_events()[0].to_string(),
        id: None,
    };
    assert!(rw.event(&unnamed, &mut f, &mut out).is_ok());
}

#[test]
fn streamed_encrypted_reasoning_is_partial() {
    let mut events = stream_events();
    events[8]["response"]["output"] = json!([{"type": "reasoning", "id": "rs_1",
        "summary": [], "encrypted_content": "gAAAA"}, ok_message()]);
    let (out, end, f) = run(&events);
    assert!(!end.all_blocked && end.complete, "{out}");
    assert_eq!(f.partial, [ENCRYPTED_REASONING]);
    let (_, _, f) = run(&stream_events());
    assert!(f.partial.is_empty());
}

#[test]
fn streamed_redaction_in_a_response_member_is_written_back() {
    let mut events = stream_events();
    events[8]["response"]["metadata"] = json!({"k": "key secret-1234"});
    let (out, _, _) = run(&events);
    let last = json_events(out.as_bytes()).pop().unwrap();
    assert_eq!(last["response"]["metadata"]["k"], "key [secret]");
}
