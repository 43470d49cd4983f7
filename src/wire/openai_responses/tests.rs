#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::Responses;
use crate::wire::testing::{REFUSAL, TestFilter, json_events, run_stream, splits};
use crate::wire::{Adapter, ErrorInfo, ErrorKind, RequestFacts, StreamEnd};

// === answers ===

/// The channels of the test stream, in output order.
const CHANNELS: [&str; 5] = ["reasoning", "content", "arguments", "code", "refusal"];

fn message(id: &str, text: &str, status: &str) -> Value {
    json!({"id": id, "type": "message", "status": status, "role": "assistant",
           "content": if status == "in_progress" { json!([]) } else {
               json!([{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]) }})
}

/// The output items of a response whose channel texts are `t`.
pub(super) fn output(t: &[String; 5]) -> Vec<Value> {
    vec![
        json!({"id": "rs_1", "type": "reasoning", "summary": [{"type": "summary_text", "text": t[0]}]}),
        message("msg_1", &t[1], "completed"),
        json!({"id": "fc_1", "type": "function_call", "call_id": "call_1", "name": "search", "arguments": t[2], "status": "completed"}),
        json!({"id": "ci_1", "type": "code_interpreter_call", "container_id": "cntr", "code": t[3], "status": "completed"}),
        json!({"id": "msg_2", "type": "message", "status": "completed", "role": "assistant",
               "content": [{"type": "refusal", "refusal": t[4]}]}),
    ]
}

pub(super) fn response(status: &str, output: Vec<Value>) -> Value {
    json!({"id": "resp_1", "object": "response", "created_at": 1, "status": status, "model": "m",
           "output": output, "parallel_tool_calls": true, "tool_choice": "auto", "tools": [],
           "instructions": null, "error": null, "incomplete_details": null, "usage": null})
}

/// `base` with its `type` set to `t` and `k` set to `v`.
fn with(base: &Value, t: &str, k: &str, v: Value) -> Value {
    let mut e = base.clone();
    e["type"] = t.into();
    e[k] = v;
    e
}

/// `{family}.delta` events carrying `pieces`, then `{family}.done` with the whole text under
/// `key`; `logprobs` gives each delta a logprob list as OpenAI sends for output text.
fn deltas(
    ev: &mut Vec<Value>,
    base: &Value,
    family: &str,
    key: &str,
    pieces: &[String],
    logprobs: bool,
) {
    for p in pieces {
        let mut e = with(base, &format!("{family}.delta"), "delta", p.as_str().into());
        if logprobs {
            e["logprobs"] = json!([{"token": p, "logprob": -0.1, "bytes": []}]);
        }
        ev.push(e);
    }
    ev.push(with(
        base,
        &format!("{family}.done"),
        key,
        pieces.concat().into(),
    ));
}

/// A part of an item: `{kind}.added` with the part `empty`, the events `inner` pushes, then
/// `{kind}.done` with the part `whole`.
fn part(
    ev: &mut Vec<Value>,
    base: &Value,
    kind: &str,
    empty: Value,
    whole: Value,
    inner: impl FnOnce(&mut Vec<Value>),
) {
    ev.push(with(base, &format!("{kind}.added"), "part", empty));
    inner(ev);
    ev.push(with(base, &format!("{kind}.done"), "part", whole));
}

/// A realistic upstream stream: each channel's text sent as the deltas `pieces[i]`.
pub(super) fn stream_body(pieces: &[Vec<String>; 5]) -> Vec<u8> {
    let full: [String; 5] = std::array::from_fn(|i| pieces[i].concat());
    let items = output(&full);
    let mut ev = vec![
        json!({"type": "response.created", "response": response("in_progress", vec![])}),
        json!({"type": "response.in_progress", "response": response("in_progress", vec![])}),
    ];
    let added = |oi: usize, item: Value| json!({"type": "response.output_item.added", "output_index": oi, "item": item});
    let done = |oi: usize| json!({"type": "response.output_item.done", "output_index": oi, "item": items[oi]});
    // Reasoning summary.
    ev.push(added(
        0,
        json!({"id": "rs_1", "type": "reasoning", "summary": []}),
    ));
    let base = json!({"item_id": "rs_1", "output_index": 0, "summary_index": 0});
    let summary = |t: &str| json!({"type": "summary_text", "text": t});
    part(
        &mut ev,
        &base,
        "response.reasoning_summary_part",
        summary(""),
        summary(&full[0]),
        |ev| {
            deltas(
                ev,
                &base,
                "response.reasoning_summary_text",
                "text",
                &pieces[0],
                false,
            )
        },
    );
    ev.push(done(0));
    // Message text.
    ev.push(added(1, message("msg_1", "", "in_progress")));
    let base = json!({"item_id": "msg_1", "output_index": 1, "content_index": 0});
    let empty = json!({"type": "output_text", "text": "", "annotations": []});
    part(
        &mut ev,
        &base,
        "response.content_part",
        empty,
        items[1]["content"][0].clone(),
        |ev| deltas(ev, &base, "response.output_text", "text", &pieces[1], true),
    );
    ev.push(done(1));
    // Function call.
    ev.push(added(2, json!({"id": "fc_1", "type": "function_call", "call_id": "call_1", "name": "search", "arguments": "", "status": "in_progress"})));
    let base = json!({"item_id": "fc_1", "output_index": 2});
    deltas(
        &mut ev,
        &base,
        "response.function_call_arguments",
        "arguments",
        &pieces[2],
        false,
    );
    ev.push(done(2));
    // An event family the adapter does not know by name.
    ev.push(added(3, json!({"id": "ci_1", "type": "code_interpreter_call", "container_id": "cntr", "code": "", "status": "in_progress"})));
    let base = json!({"item_id": "ci_1", "output_index": 3});
    deltas(
        &mut ev,
        &base,
        "response.code_interpreter_call_code",
        "code",
        &pieces[3],
        false,
    );
    ev.push(done(3));
    // A refusal part.
    ev.push(added(4, json!({"id": "msg_2", "type": "message", "status": "in_progress", "role": "assistant", "content": []})));
    let base = json!({"item_id": "msg_2", "output_index": 4, "content_index": 0});
    let empty = json!({"type": "refusal", "refusal": ""});
    part(
        &mut ev,
        &base,
        "response.content_part",
        empty,
        items[4]["content"][0].clone(),
        |ev| deltas(ev, &base, "response.refusal", "refusal", &pieces[4], false),
    );
    ev.push(done(4));
    let mut fin = response("completed", items);
    fin["output_text"] = full[1].as_str().into();
    ev.push(json!({"type": "response.completed", "response": fin}));
    let mut out = Vec::new();
    for (i, mut e) in ev.into_iter().enumerate() {
        e["sequence_number"] = i.into();
        out.extend_from_slice(
            format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap()).as_bytes(),
        );
    }
    out
}

pub(super) fn benign() -> [String; 5] {
    [
        "Thinking about the query.".into(),
        "Here is the answer, plainly.".into(),
        r#"{"q":"weather in Paris","n":3}"#.into(),
        "print(1 + 1)".into(),
        "I won't do that part.".into(),
    ]
}

/// What the client reads on each channel: (concatenated deltas, `.done`-level text, text in
/// `response.completed` / `incomplete`).
fn channel_texts(events: &[Value]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = vec![(String::new(), Vec::new()); 5];
    for e in events {
        let t = e["type"].as_str().unwrap();
        let oi = e["output_index"].as_u64().unwrap_or(0) as usize;
        if t.ends_with(".delta") && oi < 5 {
            out[oi].0.push_str(e["delta"].as_str().unwrap());
        }
        for k in ["text", "arguments", "code", "refusal"] {
            if t.ends_with(".done")
                && !t.starts_with("response.output_item")
                && oi < 5
                && let Some(s) = e[k].as_str()
            {
                out[oi].1.push(s.to_owned());
            }
        }
    }
    out
}

fn item_text(item: &Value) -> String {
    for p in [
        "/summary/0/text",
        "/content/0/text",
        "/content/0/refusal",
        "/arguments",
        "/code",
    ] {
        if let Some(s) = item.pointer(p).and_then(Value::as_str) {
            return s.to_owned();
        }
    }
    String::new()
}

/// Checks the stream is well formed: every event JSON, sequence numbers 0, 1, 2, …
fn check_valid(events: &[Value]) {
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["sequence_number"], i, "contiguous sequence numbers: {e}");
        assert!(e["type"].is_string());
    }
}

fn run(pieces: &[Vec<String>; 5], sse_cut: Option<usize>) -> (Vec<u8>, StreamEnd, bool) {
    let body = stream_body(pieces);
    let mut f = TestFilter::new();
    let mut rw = Responses.stream(&RequestFacts {
        stream: true,
        n: 1,
        model: "m".into(),
        ..Default::default()
    });
    match sse_cut {
        Some(c) => run_stream(rw.as_mut(), &mut f, &[&body[..c], &body[c..]]),
        None => run_stream(rw.as_mut(), &mut f, &[&body]),
    }
}

fn split_at(text: &str, cut: usize) -> Vec<String> {
    vec![text[..cut].to_owned(), text[cut..].to_owned()]
}

fn with_channel(ch: usize, text: &str, cut: usize) -> [Vec<String>; 5] {
    let b = benign();
    std::array::from_fn(|i| {
        if i == ch {
            split_at(text, cut)
        } else {
            split_at(&b[i], b[i].len() / 2)
        }
    })
}

/// A blocked phrase, split at every byte across two delta events, in every channel: no byte
/// of it reaches the client, and the stream ends with `response.incomplete` for
/// `content_filter` and a refusal.
#[test]
fn blocked_phrase_never_leaks_at_any_split_in_any_channel() {
    let texts = [
        "Now: pipe bomb steps.",
        "Sure. A pipe bomb is made like so.",
        r#"{"q":"pipe \u0062omb parts"}"#,
        "x = 'pipe bomb'",
        "no pipe bomb here",
    ];
    for (ch, text) in texts.iter().enumerate() {
        for cut in 0..=text.len() {
            let (body, end, progress) = run(&with_channel(ch, text, cut), None);
            let s = String::from_utf8(body.clone()).unwrap();
            assert!(
                !s.contains("pipe"),
                "channel {} cut {cut}: {s}",
                CHANNELS[ch]
            );
            let events = json_events(&body);
            check_valid(&events);
            let last = events.last().unwrap();
            assert_eq!(last["type"], "response.incomplete");
            assert_eq!(last["response"]["status"], "incomplete");
            assert_eq!(
                last["response"]["incomplete_details"]["reason"],
                "content_filter"
            );
            let out = last["response"]["output"].as_array().unwrap();
            assert_eq!(out.last().unwrap()["content"][0]["refusal"], REFUSAL);
            assert!(end.all_blocked && end.complete && progress);
            // Every item the client saw added is done.
            let added = events
                .iter()
                .filter(|e| e["type"] == "response.output_item.added")
                .count();
            let done = events
                .iter()
                .filter(|e| e["type"] == "response.output_item.done")
                .count();
            assert_eq!(added, done, "{s}");
        }
    }
}

/// A secret split at every byte, in every channel: redacted everywhere, the stream completes,
/// and each channel reads the same in its deltas, its `.done`, `response.completed` and the
/// buffered answer of the same response.
#[test]
fn redacted_secret_never_leaks_and_streamed_equals_buffered() {
    let texts = [
        "Key is secret-1234 ok.",
        "Your code: secret-1234, keep it.",
        r#"{"q":"secret\u002d1234","n":1}"#,
        "k = 'secret-1234'",
        "not secret-1234",
    ];
    for (ch, text) in texts.iter().enumerate() {
        for cut in 0..=text.len() {
            let pieces = with_channel(ch, text, cut);
            let (body, end, _) = run(&pieces, None);
            let s = String::from_utf8(body.clone()).unwrap();
            assert!(
                !s.contains("secret-1234") && !s.contains(r"secret\\u002d1234"),
                "{s}"
            );
            assert!(s.contains("[secret]"), "{s}");
            let events = json_events(&body);
            check_valid(&events);
            assert!(!end.all_blocked && end.complete && end.terminal_seen);
            let last = events.last().unwrap();
            assert_eq!(last["type"], "response.completed");
            // Buffered: the same response as one body.
            let full: [String; 5] = std::array::from_fn(|i| pieces[i].concat());
            let buffered = Bytes::from(response("completed", output(&full)).to_string());
            let mut f = TestFilter::new();
            let a = Responses.answer(&buffered, &mut f).unwrap();
            let a: Value = serde_json::from_slice(&a.body).unwrap();
            let per = channel_texts(&events);
            for i in 0..5 {
                let want = item_text(&a["output"][i]);
                assert_eq!(per[i].0, want, "deltas of {} (cut {cut})", CHANNELS[i]);
                for d in &per[i].1 {
                    assert_eq!(*d, want, ".done of {}", CHANNELS[i]);
                }
                assert_eq!(item_text(&last["response"]["output"][i]), want);
            }
            assert_eq!(last["response"]["output_text"], item_text(&a["output"][1]));
            let args: Value = serde_json::from_str(&item_text(&a["output"][2])).unwrap();
            assert!(args.is_object(), "redacted arguments still parse");
        }
    }
}

/// The same stream cut at every byte of the SSE body reads the same.
#[test]
fn any_sse_split_gives_the_same_output() {
    let pieces = with_channel(1, "Your code: secret-1234, then pipe bomb.", 15);
    let body = stream_body(&pieces);
    let (want, _, _) = run(&pieces, None);
    for (a, b) in splits(&body) {
        let mut f = TestFilter::new();
        let mut rw = Responses.stream(&RequestFacts::default());
        let (got, _, _) = run_stream(rw.as_mut(), &mut f, &[a, b]);
        // Ids the gateway makes are fresh each run: compare without them.
        let strip = |v: &[u8]| {
            let s = String::from_utf8(v.to_vec()).unwrap();
            s.split("deliberate_")
                .map(|p| p.get(24..).unwrap_or(""))
                .collect::<String>()
        };
        assert_eq!(strip(&got), strip(&want));
    }
}

#[test]
fn benign_stream_passes_with_renumbered_events() {
    let b = benign();
    let pieces: [Vec<String>; 5] = std::array::from_fn(|i| split_at(&b[i], 3));
    let (body, end, _) = run(&pieces, None);
    let events = json_events(&body);
    check_valid(&events);
    assert!(end.terminal_seen);
    let per = channel_texts(&events);
    for i in 0..5 {
        assert_eq!(per[i].0, b[i]);
    }
}

#[test]
fn stripped_reasoning_is_left_out_everywhere() {
    let b = benign();
    let pieces: [Vec<String>; 5] = std::array::from_fn(|i| split_at(&b[i], 3));
    let body = stream_body(&pieces);
    let mut f = TestFilter::new();
    f.strip_reasoning = true;
    let mut rw = Responses.stream(&RequestFacts::default());
    let (out, _, _) = run_stream(rw.as_mut(), &mut f, &[&body]);
    let s = String::from_utf8(out.clone()).unwrap();
    assert!(!s.contains("Thinking"), "{s}");
    check_valid(&json_events(&out));
}

#[test]
fn buffered_block_is_an_incomplete_refusal() {
    let mut t = benign();
    t[2] = r#"{"q":"pipe \u0062omb"}"#.into();
    let body = Bytes::from(response("completed", output(&t)).to_string());
    let mut f = TestFilter::new();
    let a = Responses.answer(&body, &mut f).unwrap();
    assert!(a.all_blocked);
    let v: Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(v["status"], "incomplete");
    assert_eq!(v["incomplete_details"]["reason"], "content_filter");
    assert_eq!(v["output"].as_array().unwrap().len(), 1);
    assert_eq!(
        v["output"][0]["content"][0],
        json!({"type": "refusal", "refusal": REFUSAL})
    );
    assert!(!a.body.windows(4).any(|w| w == b"pipe"));
    // Untouched answers go on as the upstream's bytes.
    let body = Bytes::from(response("completed", output(&benign())).to_string());
    let a = Responses.answer(&body, &mut TestFilter::new()).unwrap();
    assert_eq!(a.body, body);
}

#[test]
fn buffered_scans_annotations_and_unknown_items() {
    let mut out = output(&benign());
    out[1]["content"][0]["annotations"] = json!([{"type": "url_citation", "title": "secret-9999", "url": "u", "start_index": 0, "end_index": 1}]);
    out.push(json!({"type": "mystery", "id": "z", "note": {"deep": "secret-4321"}}));
    let body = Bytes::from(response("completed", out).to_string());
    let a = Responses.answer(&body, &mut TestFilter::new()).unwrap();
    let v: Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(
        v["output"][1]["content"][0]["annotations"][0]["title"],
        "[secret]"
    );
    assert_eq!(v["output"][5]["note"]["deep"], "[secret]");
}

#[test]
fn refusals_are_valid_responses() {
    let facts = RequestFacts {
        stream: true,
        n: 1,
        model: "m".into(),
        ..Default::default()
    };
    let (ct, body) = Responses.refusal(&facts, "No.");
    assert_eq!(ct, "text/event-stream");
    let events = json_events(&body);
    check_valid(&events);
    assert_eq!(events[0]["type"], "response.created");
    let last = events.last().unwrap();
    assert_eq!(last["type"], "response.incomplete");
    assert_eq!(
        last["response"]["output"][0]["content"][0]["refusal"],
        "No."
    );
    assert!(
        last["response"]["id"]
            .as_str()
            .unwrap()
            .starts_with("resp_deliberate_")
    );
    let rw = Responses.stream(&facts);
    assert_eq!(json_events(&rw.refusal("No.")).len(), events.len());
    let mut out = crate::wire::Emit::default();
    rw.error(
        &ErrorInfo::new(ErrorKind::Upstream, "gone", "upstream_error"),
        &mut out,
    );
    let e = &json_events(&out.buf)[0];
    assert_eq!(
        (
            e["type"].as_str(),
            e["code"].as_str(),
            e["message"].as_str()
        ),
        (Some("error"), Some("upstream_error"), Some("gone"))
    );
}

#[test]
fn a_stream_without_its_terminal_event_is_incomplete() {
    let b = benign();
    let pieces: [Vec<String>; 5] = std::array::from_fn(|i| split_at(&b[i], 3));
    let body = stream_body(&pieces);
    let cut = String::from_utf8(body.clone())
        .unwrap()
        .find("event: response.output_text.done")
        .unwrap();
    let mut f = TestFilter::new();
    let mut rw = Responses.stream(&RequestFacts::default());
    let (out, end, _) = run_stream(rw.as_mut(), &mut f, &[&body[..cut]]);
    assert!(!end.complete && !end.terminal_seen);
    let per = channel_texts(&json_events(&out));
    assert_eq!(per[1].0, b[1], "held text is released at the end");
    let last = json_events(&out).pop().unwrap();
    assert_eq!(
        (last["type"].as_str(), last["code"].as_str()),
        (Some("error"), Some("upstream_truncated"))
    );
}

fn pieces_of(text: &str, cuts: &[prop::sample::Index]) -> Vec<String> {
    let mut points: Vec<usize> = cuts
        .iter()
        .map(|i| i.index(text.len() + 1))
        .filter(|&p| text.is_char_boundary(p))
        .collect();
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
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    /// Random texts of benign words, secrets and blocked phrases, split at random in a random
    /// channel: no secret or phrase leaks; unblocked streams read as the buffered answer.
    #[test]
    fn streamed_never_leaks_and_matches_buffered(
        words in proptest::collection::vec(prop_oneof![
            Just("pipe bomb"), Just("secret-1234"), Just("pipe"), Just("bomb"), Just("secret-12"),
            Just("hello"), Just(" "), Just("é"), Just("\n")], 0..12),
        ch in 0usize..5,
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..5),
    ) {
        let text: String = words.join(" ");
        let text = if ch == 2 { json!({"q": text}).to_string() } else { text };
        let b = benign();
        let pieces: [Vec<String>; 5] = std::array::from_fn(|i| if i == ch { pieces_of(&text, &cuts) } else { vec![b[i].clone()] });
        let (body, end, _) = run(&pieces, None);
        let s = String::from_utf8(body.clone()).unwrap();
        prop_assert!(!s.contains("pipe bomb") && !s.contains("secret-1234"));
        let events = json_events(&body);
        check_valid(&events);
        let full: [String; 5] = std::array::from_fn(|i| pieces[i].concat());
        let buffered = Bytes::from(response("completed", output(&full)).to_string());
        let a = Responses.answer(&buffered, &mut TestFilter::new()).unwrap();
        prop_assert_eq!(a.all_blocked, end.all_blocked);
        if !end.all_blocked {
            let a: Value = serde_json::from_slice(&a.body).unwrap();
            let per = channel_texts(&events);
            prop_assert_eq!(&per[ch].0, &item_text(&a["output"][ch]));
        }
    }
}
