#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::Completions;
use crate::policy::InjectRole;
use crate::wire::testing::{REFUSAL, TestFilter, TestSink, events, json_events, run_stream};
use crate::wire::{Adapter, Placement, RequestFacts, StreamEnd};

// === requests ===

fn req(v: Value) -> Box<dyn crate::wire::WireRequest> {
    Completions.request(v.to_string().as_bytes()).unwrap()
}

#[test]
fn prompts_are_user_texts_and_token_prompts_are_partial() {
    let mut r = req(
        json!({"model": "m", "prompt": ["a secret-1234", [1, 2, 3], "b"], "suffix": "s",
        "n": 3, "stream": true, "stream_options": {"include_usage": true}, "mystery": {"x": "y"}}),
    );
    assert_eq!(
        r.facts(),
        RequestFacts {
            stream: true,
            n: 3,
            include_usage: true,
            model: "m".into()
        }
    );
    let mut sink = TestSink::default();
    r.texts(&mut sink);
    let got: Vec<_> = sink
        .texts
        .iter()
        .map(|t| (t.0.as_deref(), t.1.as_str(), t.2.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (Some("user"), "prompt[0]", "a secret-1234"),
            (Some("user"), "prompt[2]", "b"),
            (Some("user"), "suffix", "s"),
            (None, "mystery.x", "y"),
        ]
    );
    assert_eq!(sink.partial, ["token prompts not scanned"]);
    let out: Value = serde_json::from_slice(&r.to_bytes().unwrap()).unwrap();
    assert_eq!(out["prompt"][0], "a [secret]");
    assert_eq!(out["prompt"][1], json!([1, 2, 3]));
}

#[test]
fn spec_goes_before_each_prompt_and_comes_out_again() {
    let body = json!({"model": "m", "prompt": "x"}).to_string();
    let r = Completions.request(body.as_bytes()).unwrap();
    assert_eq!(
        r.to_bytes().unwrap(),
        Bytes::from(body),
        "unchanged: the client's bytes"
    );
    for placement in [Placement::Prepend, Placement::Merge] {
        let mut r = req(json!({"prompt": ["one", "two"]}));
        r.place_spec("SPEC".into(), InjectRole::System, placement);
        let out: Value = serde_json::from_slice(&r.to_bytes().unwrap()).unwrap();
        assert_eq!(out["prompt"], json!(["SPEC\n\none", "SPEC\n\ntwo"]));
        assert!(r.instructions(&mut |s| {
            let rest = s.strip_prefix("SPEC\n\n").map(str::to_owned);
            rest.map(|r| *s = r).is_some()
        }));
        let out: Value = serde_json::from_slice(&r.to_bytes().unwrap()).unwrap();
        assert_eq!(out["prompt"], json!(["one", "two"]));
    }
    let mut r = req(json!({"model": "m"}));
    r.place_spec("SPEC".into(), InjectRole::Developer, Placement::Prepend);
    let out: Value = serde_json::from_slice(&r.to_bytes().unwrap()).unwrap();
    assert_eq!(out["prompt"], "SPEC");
}

#[test]
fn adapter_routes() {
    assert_eq!(
        crate::wire::adapter_for("/v1/completions").map(|a| a.name()),
        Some("openai.completions")
    );
    assert!(
        Completions
            .request(br#"{"prompt":"a","prompt":"b"}"#)
            .is_err()
    );
}

// === answers ===

fn chunk(i: u32, text: &str, finish: Option<&str>) -> Value {
    json!({"id": "cmpl-up", "object": "text_completion", "created": 5, "model": "m",
           "choices": [{"text": text, "index": i, "logprobs": {"tokens": [text]}, "finish_reason": finish}]})
}

/// Two choices, interleaved: choice `i`'s text as the deltas `pieces[i]`, then `stop`.
fn stream_body(pieces: &[Vec<String>; 2], usage: bool) -> Vec<u8> {
    let mut ev = Vec::new();
    let longest = pieces.iter().map(Vec::len).max().unwrap_or(0);
    for k in 0..longest {
        for (i, p) in pieces.iter().enumerate() {
            if let Some(t) = p.get(k) {
                ev.push(chunk(i as u32, t, None));
            }
        }
    }
    for i in 0..2 {
        ev.push(chunk(i, "", Some("stop")));
    }
    if usage {
        ev.push(json!({"id": "cmpl-up", "object": "text_completion", "created": 5, "model": "m", "choices": [],
                       "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}));
    }
    let mut out = Vec::new();
    for e in ev {
        out.extend_from_slice(format!("data: {e}\n\n").as_bytes());
    }
    out.extend_from_slice(b"data: [DONE]\n\n");
    out
}

fn buffered(texts: &[String; 2]) -> Bytes {
    let choices: Vec<Value> = texts.iter().enumerate()
        .map(|(i, t)| json!({"text": t, "index": i, "logprobs": {"tokens": [t]}, "finish_reason": "stop"}))
        .collect();
    Bytes::from(json!({"id": "cmpl-up", "object": "text_completion", "created": 5, "model": "m", "choices": choices}).to_string())
}

fn facts(n: u32) -> RequestFacts {
    RequestFacts {
        stream: true,
        n,
        include_usage: true,
        model: "m".into(),
    }
}

fn run(pieces: &[Vec<String>; 2]) -> (Vec<u8>, StreamEnd) {
    let body = stream_body(pieces, true);
    let mut f = TestFilter::new();
    let mut rw = Completions.stream(&facts(2));
    let (out, end, _) = run_stream(rw.as_mut(), &mut f, &[&body]);
    (out, end)
}

/// Per choice: (concatenated text, finish reasons).
fn per_choice(body: &[u8]) -> Vec<(String, Vec<String>)> {
    let mut out = vec![(String::new(), Vec::new()); 2];
    for e in json_events(body) {
        for c in e["choices"].as_array().into_iter().flatten() {
            let i = c["index"].as_u64().unwrap() as usize;
            out[i].0.push_str(c["text"].as_str().unwrap());
            if let Some(f) = c["finish_reason"].as_str() {
                out[i].1.push(f.to_owned());
            }
        }
    }
    out
}

fn ends_with_done(body: &[u8]) -> bool {
    events(body).last().is_some_and(|e| e.data == "[DONE]")
}

fn two(text: &str, cut: usize) -> [Vec<String>; 2] {
    [
        vec![text[..cut].to_owned(), text[cut..].to_owned()],
        vec!["All ".into(), "fine here.".into()],
    ]
}

#[test]
fn blocked_phrase_never_leaks_at_any_split() {
    let text = "Sure, a pipe bomb needs";
    for cut in 0..=text.len() {
        let (body, end) = run(&two(text, cut));
        let s = String::from_utf8(body.clone()).unwrap();
        assert!(!s.contains("pipe"), "cut {cut}: {s}");
        assert!(ends_with_done(&body));
        assert!(!end.all_blocked && end.complete);
        let per = per_choice(&body);
        assert_eq!(per[0].1, ["content_filter"], "{s}");
        assert_eq!(
            per[1],
            ("All fine here.".to_owned(), vec!["stop".to_owned()])
        );
    }
}

#[test]
fn redacted_secret_never_leaks_and_streamed_equals_buffered() {
    let text = "Your key is secret-1234, keep it.";
    for cut in 0..=text.len() {
        let pieces = two(text, cut);
        let (body, end) = run(&pieces);
        let s = String::from_utf8(body.clone()).unwrap();
        assert!(!s.contains("secret-1234") && s.contains("[secret]"), "{s}");
        assert!(end.terminal_seen && !end.all_blocked);
        let full = [pieces[0].concat(), pieces[1].concat()];
        let a = Completions
            .answer(&buffered(&full), &mut TestFilter::new())
            .unwrap();
        let a: Value = serde_json::from_slice(&a.body).unwrap();
        assert!(
            a["choices"][0]["logprobs"].is_null(),
            "logprobs of an edited text go"
        );
        let per = per_choice(&body);
        for i in 0..2 {
            assert_eq!(per[i].0, a["choices"][i]["text"].as_str().unwrap());
        }
        let last = json_events(&body).pop().unwrap();
        assert_eq!(last["usage"]["total_tokens"], 3, "the usage chunk goes on");
    }
}

#[test]
fn a_single_blocked_choice_ends_the_stream_with_the_refusal() {
    let mut f = TestFilter::new();
    let mut rw = Completions.stream(&facts(1));
    let body = b"data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"text\":\"pipe bomb\",\"finish_reason\":null}]}\n\n";
    let (out, end, progress) = run_stream(rw.as_mut(), &mut f, &[body]);
    assert!(end.all_blocked && end.complete && progress);
    let per = per_choice(&out);
    assert_eq!(
        per[0],
        (REFUSAL.to_owned(), vec!["content_filter".to_owned()])
    );
    assert!(ends_with_done(&out));
    // The whole-refusal stream the layer sends when the head has not gone out yet.
    let r = rw.refusal("No.");
    let evs = json_events(&r);
    assert_eq!(evs[0]["object"], "text_completion");
    assert_eq!(evs[0]["choices"][0]["text"], "No.");
    assert_eq!(evs[1]["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(evs[2]["usage"]["total_tokens"], 0);
    assert!(ends_with_done(&r));
}

#[test]
fn truncated_stream_says_so() {
    let mut f = TestFilter::new();
    let mut rw = Completions.stream(&facts(1));
    let body = b"data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"text\":\"half a secret-12\",\"finish_reason\":null}]}\n\n";
    let (out, end, _) = run_stream(rw.as_mut(), &mut f, &[body]);
    assert!(!end.complete && !end.terminal_seen);
    let evs = json_events(&out);
    assert_eq!(per_choice(&out)[0].0, "half a secret-12");
    assert_eq!(evs.last().unwrap()["error"]["code"], "upstream_truncated");
    assert!(ends_with_done(&out));
}

#[test]
fn buffered_block_and_refusal() {
    let a = Completions
        .answer(
            &buffered(&["a pipe bomb".into(), "fine".into()]),
            &mut TestFilter::new(),
        )
        .unwrap();
    assert!(!a.all_blocked);
    let v: Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(v["choices"][0]["text"], REFUSAL);
    assert_eq!(v["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(v["choices"][1]["text"], "fine");
    let body = buffered(&["ok".into(), "fine".into()]);
    assert_eq!(
        Completions
            .answer(&body, &mut TestFilter::new())
            .unwrap()
            .body,
        body
    );
    let (ct, r) = Completions.refusal(&RequestFacts { n: 2, ..facts(2) }, "No.");
    assert_eq!(ct, "text/event-stream");
    assert_eq!(
        per_choice(&r)[1],
        ("No.".to_owned(), vec!["content_filter".to_owned()])
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    /// Random texts and splits: nothing blocked or redacted leaks, and each unblocked choice
    /// reads as the buffered answer.
    #[test]
    fn streamed_never_leaks_and_matches_buffered(
        words in proptest::collection::vec(prop_oneof![
            Just("pipe bomb"), Just("secret-1234"), Just("pipe"), Just("secret-12"), Just("ok"), Just("é")], 0..10),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..5),
    ) {
        let text = words.join(" ");
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(text.len() + 1)).filter(|&p| text.is_char_boundary(p)).collect();
        points.sort_unstable();
        let mut pieces = Vec::new();
        let mut last = 0;
        for p in points {
            pieces.push(text[last..p].to_owned());
            last = p;
        }
        pieces.push(text[last..].to_owned());
        let (body, _) = run(&[pieces, vec!["x".into()]]);
        let s = String::from_utf8(body.clone()).unwrap();
        prop_assert!(!s.contains("pipe bomb") && !s.contains("secret-1234"));
        let a = Completions.answer(&buffered(&[text.clone(), "x".into()]), &mut TestFilter::new()).unwrap();
        let a: Value = serde_json::from_slice(&a.body).unwrap();
        let per = per_choice(&body);
        if per[0].1 != ["content_filter"] {
            prop_assert_eq!(&per[0].0, a["choices"][0]["text"].as_str().unwrap());
        } else {
            prop_assert_eq!(&a["choices"][0]["finish_reason"], "content_filter");
        }
    }
}

// === strings outside `text` ===

fn cbase(extra: Value) -> Value {
    let mut v = json!({"id": "cmpl", "object": "text_completion", "created": 1, "model": "m"});
    if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
        m.extend(e);
    }
    v
}

fn buffered_out(v: &Value) -> (String, bool) {
    let mut f = TestFilter::new();
    let a = Completions
        .answer(&Bytes::from(v.to_string()), &mut f)
        .unwrap();
    (String::from_utf8(a.body.to_vec()).unwrap(), a.all_blocked)
}

/// Red team finding 4, buffered Completions (`l_choice_extra`, `l_top_extra`,
/// `l_text_nonstr`, `l_message`, `l_logprobs`): only a string `text` was read.
#[test]
fn buffered_strings_outside_text_are_scanned() {
    let ok = |extra: Value| {
        let mut c = json!({"index": 0, "text": "ok", "finish_reason": "stop"});
        if let (Value::Object(m), Value::Object(e)) = (&mut c, extra) {
            m.extend(e);
        }
        c
    };
    let cases = [
        (
            "l_choice_extra",
            cbase(json!({"choices": [ok(json!({"x": "a pipe bomb"}))]})),
        ),
        (
            "l_top_extra",
            cbase(json!({"choices": [ok(json!({}))], "x": "a pipe bomb"})),
        ),
        (
            "l_text_nonstr",
            cbase(
                json!({"choices": [{"index": 0, "text": ["a pipe bomb"], "finish_reason": "stop"}]}),
            ),
        ),
        (
            "l_message",
            cbase(
                json!({"choices": [{"index": 0, "message": {"content": "a pipe bomb"},
                                      "finish_reason": "stop"}]}),
            ),
        ),
        (
            "l_logprobs",
            cbase(json!({"choices": [ok(json!({"logprobs": {"tokens": ["a pipe bomb"]}}))]})),
        ),
        (
            "usage",
            cbase(json!({"choices": [ok(json!({}))], "usage": {"note": "a pipe bomb"}})),
        ),
    ];
    for (name, v) in cases {
        let (out, all_blocked) = buffered_out(&v);
        assert!(!out.contains("bomb"), "{name}: {out}");
        assert!(all_blocked, "{name}: {out}");
        let got: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(got["choices"][0]["text"], REFUSAL, "{name}: {out}");
        assert_eq!(
            got["choices"][0]["finish_reason"], "content_filter",
            "{name}"
        );
    }
    // A redaction there is written back; identifiers are not read.
    let v = cbase(
        json!({"system_fingerprint": "fp_secret-1234", "x": "k secret-5678",
                         "choices": [ok(json!({"x": "k secret-9012"}))]}),
    );
    let (out, all_blocked) = buffered_out(&v);
    assert!(!all_blocked);
    let got: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(got["x"], "k [secret]");
    assert_eq!(got["choices"][0]["x"], "k [secret]");
    assert_eq!(got["system_fingerprint"], "fp_secret-1234");
}

fn stream_out(events: &[Value]) -> String {
    let mut body = Vec::new();
    for e in events {
        body.extend_from_slice(format!("data: {e}\n\n").as_bytes());
    }
    body.extend_from_slice(b"data: [DONE]\n\n");
    let mut f = TestFilter::new();
    let mut rw = Completions.stream(&facts(1));
    let (out, _, _) = run_stream(rw.as_mut(), &mut f, &[&body]);
    String::from_utf8(out).unwrap()
}

/// Red team finding 4, streamed Completions (`ls_choice_extra`, `ls_usage`, `ls_top_extra`,
/// `ls_logprobs`): strings of a chunk other than `text` went on unread.
#[test]
fn streamed_strings_outside_text_are_scanned() {
    let lc = |t: &str, fin: Option<&str>, extra: Value| {
        let mut ch = json!({"index": 0, "text": t, "finish_reason": fin, "logprobs": null});
        if let (Value::Object(m), Value::Object(e)) = (&mut ch, extra) {
            m.extend(e);
        }
        cbase(json!({"choices": [ch]}))
    };
    let stop = lc("", Some("stop"), json!({}));
    let cases = [
        (
            "ls_choice_extra",
            vec![lc("ok", None, json!({"x": "a pipe bomb"})), stop.clone()],
        ),
        (
            "ls_choice_extra after text",
            vec![
                lc("hello world. ", None, json!({})),
                lc("more. ", None, json!({"x": "a pipe bomb"})),
                stop.clone(),
            ],
        ),
        (
            "ls_usage",
            vec![
                lc("ok", None, json!({})),
                cbase(json!({"choices": [], "usage": {"x": "a pipe bomb"}})),
                stop.clone(),
            ],
        ),
        (
            "ls_top_extra",
            vec![
                {
                    let mut c = lc("ok", None, json!({}));
                    c["x"] = json!("a pipe bomb");
                    c
                },
                stop.clone(),
            ],
        ),
        (
            "ls_logprobs",
            vec![
                lc("ok", None, json!({"logprobs": {"tokens": ["a pipe bomb"]}})),
                stop.clone(),
            ],
        ),
    ];
    for (name, events) in cases {
        let out = stream_out(&events);
        assert!(!out.contains("bomb"), "{name}: {out}");
        assert!(out.contains("content_filter"), "{name}: {out}");
    }
    // A redaction in a choice's or a chunk's own field is written into the chunk sent.
    let mut c = lc("ok", None, json!({"x": "k secret-1234"}));
    c["y"] = json!("k secret-5678");
    let out = stream_out(&[c, stop]);
    assert!(!out.contains("secret-"), "{out}");
    assert_eq!(out.matches("k [secret]").count(), 2, "{out}");
}
