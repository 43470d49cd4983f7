//! Single stream events: progress, texts in start blocks, citations, unknown events, upstream
//! errors, truncated streams, the rewriter's own refusal and error events.

use serde_json::json;

use super::EngineFilter;
use super::refusal;
use super::stream::{
    accumulate, block_start, block_stop, decode, delta, ev, facts, finish, run, start, text_of,
};
use crate::wire::anthropic::Messages;
use crate::wire::{Adapter, Emit, ErrorInfo, ErrorKind, SseEvent, Step};

fn step(
    rw: &mut dyn crate::wire::StreamRewriter,
    f: &mut EngineFilter,
    e: SseEvent,
) -> (Emit, Step) {
    let mut out = Emit::default();
    let s = rw.event(&e, f, &mut out).expect("valid event");
    (out, s)
}

#[test]
fn message_start_and_ping_are_not_progress() {
    let mut rw = Messages.stream(&facts());
    let mut f = EngineFilter::default();
    let (out, _) = step(rw.as_mut(), &mut f, start());
    assert!(!out.progress && !out.buf.is_empty());
    let (out, _) = step(rw.as_mut(), &mut f, ev("ping", json!({"type": "ping"})));
    assert!(!out.progress);
    assert_eq!(&out.buf[..], b"event: ping\ndata: {\"type\":\"ping\"}\n\n");
}

#[test]
fn text_in_start_blocks_goes_through_the_filter() {
    let evs = [
        vec![
            start(),
            block_start(0, json!({"type": "text", "text": "take secret-1234"})),
        ],
        vec![block_stop(0)],
        finish("end_turn").to_vec(),
    ]
    .concat();
    let msg = accumulate(&decode(&run(&evs).0));
    assert_eq!(text_of(&msg), "take [secret]");

    let evs = [
        vec![
            start(),
            block_start(0, json!({"type": "text", "text": "a pipe bomb"})),
        ],
        vec![block_stop(0)],
        finish("end_turn").to_vec(),
    ]
    .concat();
    let (out, end) = run(&evs);
    assert!(end.all_blocked);
    // The scanner may release the safe text before the blocked phrase ("a "): the refusal is
    // shown in its place only when nothing was sent; never any byte of the phrase.
    let text = text_of(&accumulate(&decode(&out)));
    assert!(text == refusal() || "a ".starts_with(&text), "{text}");

    let tool = json!({"type": "tool_use", "id": "t", "name": "n", "input": {"k": "secret-1234"}});
    let evs = [
        vec![start(), block_start(0, tool), block_stop(0)],
        finish("tool_use").to_vec(),
    ]
    .concat();
    let msg = accumulate(&decode(&run(&evs).0));
    assert_eq!(msg["content"][0]["input"], json!({"k": "[secret]"}));
}

#[test]
fn citations_and_unknown_events_are_scanned() {
    let cite = json!({"type": "citations_delta", "citation": {"type": "char_location",
                      "cited_text": "see secret-1234", "document_index": 0}});
    let mut rw = Messages.stream(&facts());
    let mut f = EngineFilter::default();
    step(rw.as_mut(), &mut f, start());
    step(
        rw.as_mut(),
        &mut f,
        block_start(0, json!({"type": "text", "text": ""})),
    );
    let (out, _) = step(rw.as_mut(), &mut f, delta(0, cite));
    let s = String::from_utf8_lossy(&out.buf).into_owned();
    assert!(s.contains("see [secret]") && out.progress, "{s}");
    let sig = delta(0, json!({"type": "signature_delta", "signature": "abc/+="}));
    // Only thinking blocks are signed: a signature on a text block is left out (it was
    // passed unread, whatever it held: `as_sig_in_text`).
    let (out, _) = step(rw.as_mut(), &mut f, sig);
    assert!(out.buf.is_empty());
    let odd = ev(
        "future_event",
        json!({"type": "future_event", "note": "a pipe bomb"}),
    );
    let (out, s) = step(rw.as_mut(), &mut f, odd);
    assert!(matches!(s, Step::Ended(e) if e.all_blocked));
    let text = String::from_utf8_lossy(&out.buf).into_owned();
    assert!(
        !text.contains("bomb") && text.contains("\"stop_reason\":\"refusal\""),
        "{text}"
    );
}

#[test]
fn upstream_error_events_are_scanned() {
    for (message, want) in [
        ("Overloaded", "Overloaded"),
        ("bad secret-1234", "bad [secret]"),
        (
            "about a pipe bomb",
            "upstream error (its message was withheld by policy)",
        ),
    ] {
        let mut rw = Messages.stream(&facts());
        let mut f = EngineFilter::default();
        step(rw.as_mut(), &mut f, start());
        let e = ev(
            "error",
            json!({"type": "error", "error": {"type": "overloaded_error", "message": message}}),
        );
        let (out, s) = step(rw.as_mut(), &mut f, e);
        assert!(matches!(s, Step::Ended(e) if !e.complete && e.terminal_seen));
        let evs = decode(&out.buf);
        assert_eq!(evs[0].0.as_deref(), Some("error"));
        assert_eq!(evs[0].1["error"]["message"], want);
    }
}

#[test]
fn truncated_streams_end_cleanly() {
    // The stop reason came, `message_stop` did not: it is written.
    let evs = [
        vec![
            start(),
            block_start(0, json!({"type": "text", "text": ""})),
            delta(0, json!({"type": "text_delta", "text": "hi"})),
            block_stop(0),
        ],
        vec![finish("end_turn")[0].clone()],
    ]
    .concat();
    let (out, end) = run(&evs);
    assert!(end.complete && !end.terminal_seen);
    assert_eq!(text_of(&accumulate(&decode(&out))), "hi");
    // Cut mid-block: what was held is released, then an error event.
    let evs = [
        start(),
        block_start(0, json!({"type": "text", "text": ""})),
        delta(0, json!({"type": "text_delta", "text": "held secret-12"})),
    ];
    let (out, end) = run(&evs);
    assert!(!end.complete);
    let events = decode(&out);
    let last = &events.last().unwrap().1;
    assert_eq!(last["type"], "error");
    assert_eq!(last["error"]["type"], "api_error");
    // An empty body.
    let mut rw = Messages.stream(&facts());
    let mut out = Emit::default();
    let e = rw.end(&mut EngineFilter::default(), &mut out);
    assert!(!e.complete && out.progress);
}

#[test]
fn error_and_refusal_streams_are_valid() {
    let rw = Messages.stream(&facts());
    let mut out = Emit::default();
    rw.error(
        &ErrorInfo::new(ErrorKind::Timeout, "too slow", "upstream_timeout"),
        &mut out,
    );
    let evs = decode(&out.buf);
    assert_eq!(
        evs,
        [(
            Some("error".to_owned()),
            json!({"type": "error", "error": {"type": "api_error", "message": "too slow"}})
        )]
    );
    let msg = accumulate(&decode(&rw.refusal("No.")));
    assert_eq!(text_of(&msg), "No.");
    assert_eq!(msg["stop_reason"], "refusal");
    assert_eq!(msg["model"], "claude-x");
}

#[test]
fn malformed_events_are_errors() {
    let mut rw = Messages.stream(&facts());
    let mut f = EngineFilter::default();
    for data in [
        "not json",
        "[1]",
        r#"{"type":"content_block_delta","delta":{}}"#,
    ] {
        let e = SseEvent {
            event: Some("x".into()),
            data: data.into(),
            id: None,
        };
        assert!(
            rw.event(&e, &mut f, &mut Emit::default()).is_err(),
            "{data}"
        );
    }
}
