//! Streams: recorded-shape event sequences, a blocked phrase and a redacted secret split at
//! every byte position across events, in every channel; streamed == buffered.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::{EngineFilter, policy, refusal};
use crate::engine::apply_redactions;
use crate::policy::{Action, Stage};
use crate::wire::anthropic::Messages;
use crate::wire::json_text::decode as json_view;
use crate::wire::sse::{SseDecoder, SseItem};
use crate::wire::{Adapter, Emit, RequestFacts, SseEvent, Step, StreamEnd};

pub(super) fn facts() -> RequestFacts {
    RequestFacts {
        stream: true,
        n: 1,
        model: "claude-x".into(),
        ..Default::default()
    }
}

pub(super) fn ev(name: &str, data: Value) -> SseEvent {
    SseEvent {
        event: Some(name.to_owned()),
        data: data.to_string(),
        id: None,
    }
}

pub(super) fn start() -> SseEvent {
    ev(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_01", "type": "message",
               "role": "assistant", "model": "claude-x", "content": [], "stop_reason": null,
               "stop_sequence": null, "usage": {"input_tokens": 25, "output_tokens": 1}}}),
    )
}

pub(super) fn block_start(index: u64, block: Value) -> SseEvent {
    ev(
        "content_block_start",
        json!({"type": "content_block_start", "index": index, "content_block": block}),
    )
}

pub(super) fn delta(index: u64, delta: Value) -> SseEvent {
    ev(
        "content_block_delta",
        json!({"type": "content_block_delta", "index": index, "delta": delta}),
    )
}

pub(super) fn block_stop(index: u64) -> SseEvent {
    ev(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": index}),
    )
}

pub(super) fn finish(reason: &str) -> [SseEvent; 2] {
    [
        ev(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": null},
                   "usage": {"output_tokens": 15}}),
        ),
        ev("message_stop", json!({"type": "message_stop"})),
    ]
}

/// The channel a payload is streamed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Where {
    Text,
    Thinking,
    Tool,
}

/// A recorded-shape stream carrying `pieces` in channel `w`, and the buffered answer with the
/// same content.
fn recorded(w: Where, pieces: &[&str]) -> (Vec<SseEvent>, Bytes) {
    let whole: String = pieces.concat();
    let mut evs = vec![start()];
    let content = match w {
        Where::Text => {
            evs.push(block_start(0, json!({"type": "text", "text": ""})));
            evs.push(ev("ping", json!({"type": "ping"})));
            for p in pieces {
                evs.push(delta(0, json!({"type": "text_delta", "text": p})));
            }
            evs.push(block_stop(0));
            evs.extend(finish("end_turn"));
            json!([{"type": "text", "text": whole}])
        }
        Where::Thinking => {
            evs.push(block_start(0, json!({"type": "thinking", "thinking": ""})));
            for p in pieces {
                evs.push(delta(0, json!({"type": "thinking_delta", "thinking": p})));
            }
            evs.push(delta(
                0,
                json!({"type": "signature_delta", "signature": "EqQBCgIYAhIM"}),
            ));
            evs.push(block_stop(0));
            evs.push(block_start(1, json!({"type": "text", "text": ""})));
            evs.push(delta(1, json!({"type": "text_delta", "text": "Done."})));
            evs.push(block_stop(1));
            evs.extend(finish("end_turn"));
            json!([{"type": "thinking", "thinking": whole, "signature": "EqQBCgIYAhIM"},
                   {"type": "text", "text": "Done."}])
        }
        Where::Tool => {
            evs.push(block_start(0, json!({"type": "text", "text": ""})));
            evs.push(delta(0, json!({"type": "text_delta", "text": "Checking."})));
            evs.push(block_stop(0));
            evs.push(block_start(
                1,
                json!({"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {}}),
            ));
            for p in pieces {
                evs.push(delta(
                    1,
                    json!({"type": "input_json_delta", "partial_json": p}),
                ));
            }
            evs.push(block_stop(1));
            evs.extend(finish("tool_use"));
            let input: Value = serde_json::from_str(&whole).expect("the payload is JSON");
            json!([{"type": "text", "text": "Checking."},
                   {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": input}])
        }
    };
    let body = json!({"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-x",
                      "content": content, "stop_reason": "end_turn", "stop_sequence": null,
                      "usage": {"input_tokens": 25, "output_tokens": 15}});
    (evs, Bytes::from(body.to_string()))
}

/// Drives a rewriter as the layer does: output goes out once progress was made; a stream
/// blocked before that is replaced by the rewriter's whole refusal.
pub(super) fn run(events: &[SseEvent]) -> (Bytes, StreamEnd) {
    let mut f = EngineFilter::default();
    let mut rw = Messages.stream(&facts());
    let mut sent = BytesMut::new();
    let mut held = BytesMut::new();
    let mut committed = false;
    for e in events {
        let mut out = Emit::default();
        let step = rw.event(e, &mut f, &mut out).expect("a valid event");
        let before = committed;
        held.extend_from_slice(&out.buf);
        committed |= out.progress;
        if let Step::Ended(end) = step {
            if end.all_blocked && !before {
                return (rw.refusal(&refusal()), end);
            }
            sent.extend_from_slice(&held);
            return (sent.freeze(), end);
        }
        if committed {
            sent.extend_from_slice(&held.split());
        }
    }
    let mut out = Emit::default();
    let end = rw.end(&mut f, &mut out);
    held.extend_from_slice(&out.buf);
    if end.all_blocked && !committed {
        return (rw.refusal(&refusal()), end);
    }
    sent.extend_from_slice(&held);
    (sent.freeze(), end)
}

/// The events of an SSE body: `(event name, data)`.
pub(super) fn decode(body: &[u8]) -> Vec<(Option<String>, Value)> {
    let mut d = SseDecoder::new(1 << 20);
    let mut items = d.push(body).expect("valid SSE");
    assert_eq!(
        d.finish().expect("valid SSE"),
        None,
        "the body ends on an event boundary"
    );
    items
        .drain(..)
        .map(|i| match i {
            SseItem::Event(e) => (e.event, serde_json::from_str(&e.data).expect("JSON data")),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

/// The final message, accumulated as the official SDKs do, checking the stream's order: one
/// `message_start` first, blocks started in index order, deltas that fit their block, one
/// `message_stop` last. Tool inputs are the parsed JSON of their deltas.
pub(super) fn accumulate(events: &[(Option<String>, Value)]) -> Value {
    let mut msg: Option<Value> = None;
    let mut bufs: Vec<Option<String>> = Vec::new();
    let mut stopped = false;
    for (name, data) in events {
        let ty = data["type"].as_str().expect("a type");
        assert_eq!(name.as_deref(), Some(ty), "event name matches its type");
        assert!(!stopped, "nothing after message_stop");
        if ty == "message_start" {
            assert!(msg.is_none(), "one message_start");
            msg = Some(data["message"].clone());
            continue;
        }
        let m = msg.as_mut().expect("message_start first");
        let content = m["content"].as_array_mut().expect("content list");
        match ty {
            "content_block_start" => {
                assert_eq!(data["index"], content.len(), "blocks start in order");
                content.push(data["content_block"].clone());
                bufs.push(None);
            }
            "content_block_delta" => {
                let i = data["index"].as_u64().expect("index") as usize;
                let b = &mut content[i];
                let d = &data["delta"];
                let (field, piece) = match d["type"].as_str() {
                    Some("text_delta") => ("text", &d["text"]),
                    Some("thinking_delta") => ("thinking", &d["thinking"]),
                    Some("signature_delta") => {
                        b["signature"] = d["signature"].clone();
                        continue;
                    }
                    Some("input_json_delta") => {
                        assert!(b["type"].as_str().unwrap().ends_with("tool_use"));
                        let buf = bufs[i].get_or_insert_with(String::new);
                        buf.push_str(d["partial_json"].as_str().expect("partial_json"));
                        continue;
                    }
                    other => panic!("unexpected delta {other:?}"),
                };
                assert_eq!(b["type"], field, "delta fits its block");
                let s = format!("{}{}", b[field].as_str().unwrap(), piece.as_str().unwrap());
                b[field] = Value::String(s);
            }
            "content_block_stop" => {
                let i = data["index"].as_u64().expect("index") as usize;
                assert!(i < content.len(), "stop of a started block");
                if let Some(buf) = bufs[i].take() {
                    content[i]["input"] = serde_json::from_str(&buf).unwrap_or(json!({}));
                    content[i]["json_deltas"] = Value::String(buf);
                }
            }
            "message_delta" => {
                m["stop_reason"] = data["delta"]["stop_reason"].clone();
                m["usage"]["output_tokens"] = data["usage"]["output_tokens"].clone();
            }
            "message_stop" => stopped = true,
            "ping" => {}
            other => panic!("unexpected event {other}"),
        }
    }
    assert!(stopped, "the stream ends with message_stop");
    msg.expect("a message")
}

/// The text of a message's `text` blocks.
pub(super) fn text_of(msg: &Value) -> String {
    blocks_of(msg, "text", "text")
}

fn blocks_of(msg: &Value, ty: &str, field: &str) -> String {
    msg["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == ty)
        .map(|b| b[field].as_str().unwrap_or("").to_owned())
        .collect()
}

/// What the client got in channel `w`, as the rules read it.
fn channel_text(msg: &Value, w: Where) -> String {
    match w {
        Where::Text => text_of(msg),
        Where::Thinking => blocks_of(msg, "thinking", "thinking"),
        Where::Tool => msg["content"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["type"] == "tool_use")
            .map(|b| json_view(b["json_deltas"].as_str().unwrap_or("")))
            .unwrap_or_default(),
    }
}

/// What the client got in channel `w`, as a value (a tool call's input is parsed).
fn channel_value(msg: &Value, w: Where) -> Value {
    match w {
        Where::Tool => msg["content"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["type"] == "tool_use")
            .map(|b| b["input"].clone())
            .unwrap_or_default(),
        _ => Value::String(channel_text(msg, w)),
    }
}

/// What the buffered path makes of the same answer.
fn buffered(body: &Bytes) -> Value {
    let mut f = EngineFilter::default();
    let a = Messages.answer(body, &mut f).expect("an answer");
    super::json(&a.body)
}

/// Checks one run of `pieces` in `w`: no byte of a blocked span, a valid stream ending with
/// `refusal` on a block, streamed == buffered otherwise.
fn check(w: Where, pieces: &[&str]) -> Result<(), TestCaseError> {
    let whole: String = pieces.concat();
    let view = if w == Where::Tool {
        json_view(&whole)
    } else {
        whole.clone()
    };
    let stage = if w == Where::Thinking {
        Stage::Reasoning
    } else {
        Stage::Output
    };
    let p = policy();
    let d = p.scan(&view, stage, None);
    let (events, body) = recorded(w, pieces);
    let (out, end) = run(&events);
    let msg = accumulate(&decode(&out));
    let got = channel_text(&msg, w);
    if let Some(b) = d.blocking_finding() {
        prop_assert!(end.all_blocked);
        prop_assert_eq!(&msg["stop_reason"], "refusal");
        let before: Vec<_> = d
            .findings
            .iter()
            .filter(|f| f.end <= b.start)
            .cloned()
            .collect();
        let safe = apply_redactions(&view[..b.start], &before, |id| p.replacement(id));
        let refused = w == Where::Text && got == refusal();
        prop_assert!(
            refused || safe.starts_with(&got),
            "leak: {:?} beyond {:?}",
            got,
            safe
        );
        prop_assert!(buffered(&body)["stop_reason"] == "refusal");
    } else {
        prop_assert!(!end.all_blocked && end.complete && end.terminal_seen);
        let want = buffered(&body);
        prop_assert_eq!(channel_value(&msg, w), channel_value(&want, w));
        prop_assert_eq!(text_of(&msg), text_of(&want));
        if d.action == Action::Redact {
            prop_assert!(got.contains("[secret]"));
        }
    }
    Ok(())
}

const CASES: &[(Where, &str)] = &[
    (Where::Text, "Sure: how to make a pipe bomb at home."),
    (Where::Text, "Your key is secret-1234, keep it."),
    (Where::Thinking, "The user wants a pipe bomb, so"),
    (Where::Thinking, "I recall secret-4321 from the file"),
    (Where::Tool, r#"{"q": "make a pipe \u0062omb now"}"#),
    (Where::Tool, r#"{"q": "key secret\u002d1234 ok", "n": 2}"#),
    (Where::Tool, r#"{"q": "pipe bomb"}"#),
];

#[test]
fn every_split_point_in_every_channel() {
    for &(w, text) in CASES {
        for cut in 0..=text.len() {
            check(w, &[&text[..cut], &text[cut..]]).unwrap();
        }
        let bytes: Vec<&str> = (0..text.len()).map(|i| &text[i..i + 1]).collect();
        check(w, &bytes).unwrap();
        check(w, &[text]).unwrap();
    }
}

#[test]
fn zero_bytes_of_a_blocked_span_in_the_output() {
    for &(w, text) in CASES.iter().filter(|(_, t)| t.contains("bomb")) {
        for cut in 0..=text.len() {
            let (out, end) = run(&recorded(w, &[&text[..cut], &text[cut..]]).0);
            assert!(end.all_blocked);
            let s = String::from_utf8(out.to_vec()).unwrap();
            assert!(
                !s.contains("bomb") && !s.contains("0062omb") && !s.contains("pipe"),
                "{s}"
            );
        }
    }
}

#[test]
fn redacted_stream_carries_the_replacement() {
    let (out, _) = run(&recorded(Where::Tool, &[r#"{"q": "key secr"#, r#"et-1234"}"#]).0);
    let msg = accumulate(&decode(&out));
    assert_eq!(msg["content"][1]["input"], json!({"q": "key [secret]"}));
    assert!(!String::from_utf8_lossy(&out).contains("1234"));
}

fn chunks(text: String, cuts: Vec<prop::sample::Index>) -> Vec<String> {
    let mut points: Vec<usize> = cuts.iter().map(|i| i.index(text.len() + 1)).collect();
    points.retain(|&p| text.is_char_boundary(p));
    points.sort_unstable();
    let mut out = Vec::new();
    let mut last = 0;
    for p in points {
        out.push(text[last..p].to_owned());
        last = p;
    }
    out.push(text[last..].to_owned());
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Random texts with blocked phrases and secrets, split anywhere, in any channel.
    #[test]
    fn streamed_equals_buffered_and_nothing_leaks(
        words in proptest::collection::vec(
            prop_oneof![
                Just("pipe bomb".to_owned()), Just("secret-1234".to_owned()),
                Just("pipe".to_owned()), Just("bomb".to_owned()), Just("secret-".to_owned()),
                "[a-z]{1,6}", Just("é".to_owned()), Just("\n".to_owned()), Just("\"".to_owned()),
            ],
            0..10,
        ),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
        w in prop_oneof![Just(Where::Text), Just(Where::Thinking), Just(Where::Tool)],
    ) {
        let text = words.join(" ");
        let text = if w == Where::Tool { json!({"q": text}).to_string() } else { text };
        let pieces = chunks(text, cuts);
        let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
        check(w, &refs)?;
    }
}

/// A text split into two consecutive text blocks at `cut`, and the buffered answer.
fn two_blocks(text: &str, cut: usize) -> (Vec<SseEvent>, Bytes) {
    let mut evs = vec![start()];
    for (i, part) in [&text[..cut], &text[cut..]].into_iter().enumerate() {
        let i = i as u64;
        evs.push(block_start(i, json!({"type": "text", "text": ""})));
        // Byte by byte, so every release point is exercised.
        for k in 0..part.len() {
            evs.push(delta(
                i,
                json!({"type": "text_delta", "text": &part[k..k + 1]}),
            ));
        }
        evs.push(block_stop(i));
    }
    evs.extend(finish("end_turn"));
    let body = json!({"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [{"type": "text", "text": &text[..cut]}, {"type": "text", "text": &text[cut..]}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 25, "output_tokens": 15}});
    (evs, Bytes::from(body.to_string()))
}

#[test]
fn a_phrase_split_across_two_text_blocks_is_blocked_at_every_byte() {
    // Broke: each text block was its own channel, so "…pipe" | " bomb…" passed both scans and
    // the client, showing the blocks as one text, read the blocked phrase.
    let text = "Sure: how to make a pipe bomb at home.";
    for cut in 0..=text.len() {
        let (events, body) = two_blocks(text, cut);
        let (out, end) = run(&events);
        assert!(end.all_blocked, "cut {cut}");
        let s = String::from_utf8(out.to_vec()).unwrap();
        let msg = accumulate(&decode(&out));
        assert_eq!(msg["stop_reason"], "refusal", "cut {cut}");
        let got = text_of(&msg);
        assert!(
            !got.contains("pipe") && !got.contains("bomb") && !s.contains("bomb"),
            "cut {cut}: {s}"
        );
        assert!(
            got == refusal() || "Sure: how to make a ".starts_with(&got.replace(&refusal(), "")),
            "cut {cut}: {got:?}"
        );
        assert_eq!(buffered(&body)["stop_reason"], "refusal", "cut {cut}");
    }
}

#[test]
fn a_secret_split_across_two_text_blocks_is_redacted_and_benign_blocks_keep_their_text() {
    let text = "Your key is secret-1234, keep it.";
    for cut in 0..=text.len() {
        let (events, body) = two_blocks(text, cut);
        let (out, end) = run(&events);
        assert!(!end.all_blocked && end.complete, "cut {cut}");
        let msg = accumulate(&decode(&out));
        assert_eq!(text_of(&msg), "Your key is [secret], keep it.", "cut {cut}");
        assert!(!String::from_utf8_lossy(&out).contains("1234"), "cut {cut}");
        assert_eq!(text_of(&buffered(&body)), "Your key is [secret], keep it.");
        assert_eq!(msg["content"].as_array().unwrap().len(), 2);
    }
    // Nothing edited: each block keeps its own text, streamed and buffered.
    let text = "The nightjar is a bird. It sings at dusk.";
    for cut in 0..=text.len() {
        let (events, body) = two_blocks(text, cut);
        let msg = accumulate(&decode(&run(&events).0));
        let want = buffered(&body);
        assert_eq!(msg["content"][0]["text"], &text[..cut], "cut {cut}");
        assert_eq!(msg["content"][1]["text"], &text[cut..], "cut {cut}");
        assert_eq!(want["content"], msg["content"], "cut {cut}");
    }
}
