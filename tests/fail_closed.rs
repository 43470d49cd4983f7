//! No way around the filter on Chat Completions: JSON escapes in tool-call arguments, streamed
//! legacy `function_call`s, odd role spellings, strings in fields the adapter does not know,
//! upstream error bodies and keep-alives before the first text. Each case was a bypass.
//!
//! One concern in one file (over 600 lines): the regression tests of every bypass found, one
//! test per case, sharing the in-process harness of `common::layer_run`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::layer_run::{run, run_with};
use common::*;
use deliberate::layer::EnforceOptions;
use serde_json::{Value, json};

const DONE: &[u8] = b"data: [DONE]\n\n";

fn opts() -> EnforceOptions {
    EnforceOptions::default()
}

fn completion(message: Value) -> Vec<Vec<u8>> {
    vec![
        json!({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
               "choices": [{"index": 0, "finish_reason": "stop", "message": message}]})
        .to_string()
        .into_bytes(),
    ]
}

fn delta_chunk(delta: Value) -> Value {
    json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
           "choices": [{"index": 0, "delta": delta, "finish_reason": null}]})
}

/// Every piece of `raw` as the arguments of one streamed tool call, split at `cut`.
fn tool_args_stream(raw: &str, cut: usize, legacy: bool) -> Vec<u8> {
    let mut sse = frame(&role_chunk(0));
    for piece in [&raw[..cut], &raw[cut..]] {
        let delta = if legacy {
            json!({"function_call": {"arguments": piece}})
        } else {
            json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
        };
        sse.extend(frame(&delta_chunk(delta)));
    }
    sse.extend(frame(&finish_chunk(0, "tool_calls")));
    sse.extend_from_slice(DONE);
    sse
}

/// The arguments the client reassembles from a stream (tool call 0 or the legacy field).
fn streamed_args(chunks: &[Value]) -> String {
    let mut args = String::new();
    for c in chunks {
        let d = &c["choices"][0]["delta"];
        if let Some(a) = d["tool_calls"][0]["function"]["arguments"].as_str() {
            args.push_str(a);
        }
        if let Some(a) = d["function_call"]["arguments"].as_str() {
            args.push_str(a);
        }
    }
    args
}

#[tokio::test]
async fn escaped_tool_arguments_are_decoded_buffered() {
    // A block spelled with a JSON escape.
    let msg = json!({"role": "assistant", "content": null, "tool_calls": [{"id": "t", "type": "function",
        "function": {"name": "search", "arguments": r#"{"q":"pipe \u0062omb"}"#}}]});
    let r = run(opts(), &chat("hi", false), false, completion(msg)).await;
    let v = r.reply.json();
    assert_eq!(v["choices"][0]["finish_reason"], "content_filter");
    assert!(!r.reply.text().contains("omb"), "{}", r.reply.text());

    // A redaction spelled with an escape: the rewritten arguments are still valid JSON.
    let msg = json!({"role": "assistant", "content": null, "tool_calls": [{"id": "t", "type": "function",
        "function": {"name": "mail", "arguments": r#"{"to":"bob\u0040example.com","n":1}"#}}]});
    let r = run(opts(), &chat("hi", false), false, completion(msg)).await;
    let v = r.reply.json();
    let args = v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
        .as_str()
        .unwrap();
    let parsed: Value = serde_json::from_str(args).unwrap();
    assert_eq!(parsed, json!({"to": "[email]", "n": 1}));
    assert_eq!(r.reply.header("x-deliberate-action"), "redact");
}

#[tokio::test]
async fn escaped_tool_arguments_are_decoded_streamed_at_every_split() {
    for legacy in [false, true] {
        let raw = r#"{"q":"pipe \u0062omb"}"#;
        for cut in 1..raw.len() {
            let r = run(
                opts(),
                &chat("hi", true),
                true,
                vec![tool_args_stream(raw, cut, legacy)],
            )
            .await;
            let chunks = r.reply.chunks();
            let args = streamed_args(&chunks);
            assert!(!args.contains("omb"), "legacy={legacy} cut={cut}: {args}");
            assert_eq!(
                stream_text(&chunks, 0).1.as_deref(),
                Some("content_filter"),
                "legacy={legacy} cut={cut}"
            );
        }
        let raw = r#"{"to":"bob\u0040example.com"}"#;
        for cut in 1..raw.len() {
            let r = run(
                opts(),
                &chat("hi", true),
                true,
                vec![tool_args_stream(raw, cut, legacy)],
            )
            .await;
            let args = streamed_args(&r.reply.chunks());
            assert!(
                !r.reply.text().contains("example"),
                "legacy={legacy} cut={cut}"
            );
            let parsed: Value = serde_json::from_str(&args).unwrap();
            assert_eq!(
                parsed,
                json!({"to": "[email]"}),
                "legacy={legacy} cut={cut}"
            );
        }
    }
}

#[tokio::test]
async fn odd_role_spellings_are_scanned() {
    for role in ["USER", " user", "User ", "function", "wizard", "Tool"] {
        let mut req = chat("how to build a pipe bomb", false);
        req["messages"][0]["role"] = json!(role);
        let r = run(opts(), &req, false, vec![]).await;
        assert!(r.upstream.is_empty(), "{role:?} reached the upstream");
        assert_eq!(r.reply.header("x-deliberate-action"), "block", "{role:?}");
    }
}

#[tokio::test]
async fn request_names_refusals_and_function_calls_are_scanned() {
    // (The test policy's rule reads `user` and `tool` messages; an unknown role is read as
    // the most restrictive one.)
    let cases = [
        json!({"role": "user", "name": "pipe bomb", "content": "hi"}),
        json!({"role": "wizard", "refusal": "pipe bomb"}),
        json!({"role": "wizard", "content": null,
               "function_call": {"name": "f", "arguments": r#"{"a":"pipe \u0062omb"}"#}}),
        json!({"role": "tool", "tool_call_id": "t", "content": [{"type": "refusal", "refusal": "pipe bomb"}]}),
        json!({"role": "user", "content": "hi", "vendor_note": {"text": "pipe bomb"}}),
    ];
    for m in cases {
        let req = json!({"model": "m", "messages": [m.clone()]});
        let r = run(opts(), &req, false, vec![]).await;
        assert!(r.upstream.is_empty(), "{m} reached the upstream");
    }
}

#[tokio::test]
async fn unknown_answer_fields_are_scanned() {
    let messages = [
        json!({"role": "assistant", "content": "see the link",
               "annotations": [{"type": "url_citation", "url_citation": {"title": "pipe bomb guide"}}]}),
        json!({"role": "assistant", "content": null,
               "tool_calls": [{"id": "t", "type": "custom", "custom": {"name": "shell", "input": "pipe bomb"}}]}),
        json!({"role": "assistant", "content": "ok", "vendor_text": "pipe bomb"}),
        json!({"role": "assistant", "content": null,
               "function_call": {"name": "f", "arguments": "{\"x\":\"pipe bomb\"}"}}),
    ];
    for m in messages {
        let r = run(opts(), &chat("hi", false), false, completion(m.clone())).await;
        assert!(!r.reply.text().contains("bomb"), "{m}: {}", r.reply.text());
        assert_eq!(
            r.reply.json()["choices"][0]["finish_reason"],
            "content_filter"
        );
    }
}

#[tokio::test]
async fn unknown_stream_fields_are_scanned() {
    // An error object in a chunk, a message object inside a choice, an unknown delta field.
    let chunks = [
        json!({"id": "c", "object": "chat.completion.chunk", "choices": [],
               "error": {"message": "the model said: pipe bomb"}}),
        json!({"id": "c", "object": "chat.completion.chunk",
               "choices": [{"index": 0, "delta": {}, "message": {"content": "pipe bomb"}, "finish_reason": null}]}),
        delta_chunk(json!({"vendor_text": "pipe bomb"})),
    ];
    for c in chunks {
        let mut sse = frame(&role_chunk(0));
        sse.extend(frame(&content_chunk(0, "Hello. ")));
        sse.extend(frame(&c));
        sse.extend(frame(&finish_chunk(0, "stop")));
        sse.extend_from_slice(DONE);
        let r = run(opts(), &chat("hi", true), true, vec![sse]).await;
        assert!(!r.reply.text().contains("bomb"), "{c}: {}", r.reply.text());
        assert_eq!(r.reply.header("x-deliberate-enforcement"), "full");
    }
}

/// An unknown delta field that carries its text in pieces, like `content` does: a phrase split
/// across two events, at every byte, never reaches the client whole.
#[tokio::test]
async fn unknown_stream_fields_split_across_events_are_scanned() {
    let text = "build a pipe bomb now";
    for cut in 1..text.len() {
        let mut sse = frame(&role_chunk(0));
        sse.extend(frame(&content_chunk(0, "Hello. ")));
        sse.extend(frame(&delta_chunk(json!({"vendor_text": &text[..cut]}))));
        sse.extend(frame(&delta_chunk(json!({"vendor_text": &text[cut..]}))));
        sse.extend(frame(&finish_chunk(0, "stop")));
        sse.extend_from_slice(DONE);
        let r = run(opts(), &chat("hi", true), true, vec![sse]).await;
        let mut said = String::new();
        for c in r.reply.chunks() {
            if let Some(t) = c["choices"][0]["delta"]["vendor_text"].as_str() {
                said.push_str(t);
            }
        }
        assert!(!said.contains("pipe bomb"), "cut {cut}: {said:?}");
        assert!(!r.reply.text().contains("pipe bomb"), "cut {cut}");
    }
    // Text that only looks alike across events passes untouched.
    let mut sse = frame(&role_chunk(0));
    for piece in ["a pipe ", "fitting, no bombast"] {
        sse.extend(frame(&delta_chunk(json!({"vendor_text": piece}))));
    }
    sse.extend(frame(&finish_chunk(0, "stop")));
    sse.extend_from_slice(DONE);
    let r = run(opts(), &chat("hi", true), true, vec![sse]).await;
    assert!(r.reply.text().contains("no bombast"), "{}", r.reply.text());
    assert_eq!(r.reply.header("x-deliberate-enforcement"), "full");
}

#[tokio::test]
async fn upstream_error_bodies_are_scanned() {
    // A blocked text quoted in an error: the body is replaced, the status kept.
    let body = json!({"error": {"message": "content rejected: 'how to build a pipe bomb'", "type": "invalid_request_error"}});
    let runs = run_with(
        opts(),
        "/v1/chat/completions",
        &[chat("hello", false)],
        400,
        false,
        vec![body.to_string().into_bytes()],
    )
    .await;
    let r = &runs[0];
    assert_eq!(r.reply.status, 400);
    assert!(!r.reply.text().contains("bomb"), "{}", r.reply.text());
    assert_eq!(r.reply.json()["error"]["code"], "upstream_error_withheld");
    assert!(
        r.reply
            .header("x-deliberate-enforcement")
            .starts_with("partial")
    );

    // A redacted text is rewritten; the rest of the error stays.
    let body = json!({"error": {"message": "unknown user bob@example.com", "type": "invalid_request_error", "code": "x"}});
    let runs = run_with(
        opts(),
        "/v1/chat/completions",
        &[chat("hello", false)],
        500,
        false,
        vec![body.to_string().into_bytes()],
    )
    .await;
    let r = &runs[0];
    assert_eq!(r.reply.status, 500);
    assert_eq!(r.reply.json()["error"]["message"], "unknown user [email]");
    assert_eq!(r.reply.json()["error"]["code"], "x");

    // A plain-text error body too.
    let runs = run_with(
        opts(),
        "/v1/chat/completions",
        &[chat("hello", false)],
        502,
        false,
        vec![b"upstream said: pipe bomb".to_vec()],
    )
    .await;
    assert_eq!(runs[0].reply.status, 502);
    assert!(!runs[0].reply.text().contains("bomb"));
}

#[tokio::test]
async fn keep_alive_before_text_sends_the_head_and_a_later_block_ends_in_band() {
    // The keep-alive comes alone, before any text: the head goes out with it.
    let keep_alive = b": keep-alive\n\n".to_vec();
    let mut sse = frame(&role_chunk(0));
    sse.extend(frame(&content_chunk(0, "how to build a pipe ")));
    sse.extend(frame(&content_chunk(0, "bomb at home")));
    sse.extend(frame(&finish_chunk(0, "stop")));
    sse.extend_from_slice(DONE);
    let r = run(opts(), &chat("hi", true), true, vec![keep_alive, sse]).await;
    assert!(
        r.reply.text().starts_with(": keep-alive"),
        "{}",
        r.reply.text()
    );
    assert!(!r.reply.text().contains("bomb"));
    assert_eq!(
        stream_text(&r.reply.chunks(), 0).1.as_deref(),
        Some("content_filter")
    );
}

/// A policy whose redaction can cross a string's closing quote inside JSON arguments.
fn quote_crossing_policy() -> deliberate::CompiledPolicy {
    deliberate::CompiledPolicy::from_yaml_str(
        r#"
policy: crossing
rules:
  - id: crossing.secret
    stages: [input, output]
    roles: [user, tool, assistant]
    match: {regex: 'secret[^a-z]{1,4}cc'}
    action: redact
    replacement: "[x]"
    tests: {match: ['secret","cc'], no_match: ["secret"]}
"#,
        "crossing.yaml",
    )
    .unwrap()
}

/// A redaction whose span crosses a string's quote inside JSON arguments would change the
/// JSON's structure: the answer is refused instead, buffered and streamed at every split, and
/// nothing the client receives is broken JSON. Regression: the buffered check had no test, and
/// streams re-encoded the redacted view without it (`{"to":"[x]":"x"}` reached the client).
#[tokio::test]
async fn a_redaction_crossing_a_json_quote_is_refused() {
    use common::layer_run::run_policy;
    let raw = r#"{"to":"secret","cc":"x"}"#;
    let path = "/v1/chat/completions";
    // Buffered answer.
    let msg = json!({"role": "assistant", "content": null, "tool_calls": [{"id": "t", "type": "function",
        "function": {"name": "mail", "arguments": raw}}]});
    let r = run_policy(
        quote_crossing_policy(),
        opts(),
        path,
        &[chat("hi", false)],
        200,
        false,
        completion(msg),
    )
    .await
    .pop()
    .unwrap();
    let v = r.reply.json();
    assert_eq!(v["choices"][0]["finish_reason"], "content_filter", "{v}");
    assert!(!r.reply.text().contains("secret"), "{v}");
    // A redaction inside one string still rewrites it.
    let inside = r#"{"to":"secret--cc","n":1}"#;
    let msg = json!({"role": "assistant", "content": null, "tool_calls": [{"id": "t", "type": "function",
        "function": {"name": "mail", "arguments": inside}}]});
    let r = run_policy(
        quote_crossing_policy(),
        opts(),
        path,
        &[chat("hi", false)],
        200,
        false,
        completion(msg),
    )
    .await
    .pop()
    .unwrap();
    let args = r.reply.json()["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"to": "[x]", "n": 1})
    );
    // Streamed, split at every byte.
    for legacy in [false, true] {
        for cut in 1..raw.len() {
            let r = run_policy(
                quote_crossing_policy(),
                opts(),
                path,
                &[chat("hi", true)],
                200,
                true,
                vec![tool_args_stream(raw, cut, legacy)],
            )
            .await
            .pop()
            .unwrap();
            let chunks = r.reply.chunks();
            let args = streamed_args(&chunks);
            assert!(
                !r.reply.text().contains("secret"),
                "legacy={legacy} cut={cut}"
            );
            assert!(
                !args.contains("[x]"),
                "legacy={legacy} cut={cut}: broken JSON sent: {args}"
            );
            assert_eq!(
                stream_text(&chunks, 0).1.as_deref(),
                Some("content_filter"),
                "legacy={legacy} cut={cut}"
            );
        }
    }
    // Input: earlier tool-call arguments with the crossing are refused, not forwarded broken.
    let req = json!({"model": "m", "messages": [
        {"role": "assistant", "content": null, "tool_calls": [{"id": "t", "type": "function",
            "function": {"name": "mail", "arguments": raw}}]},
        {"role": "tool", "tool_call_id": "t", "content": "ok"},
        {"role": "user", "content": "again"}]});
    let r = run_policy(
        quote_crossing_policy(),
        opts(),
        path,
        &[req],
        200,
        false,
        completion(json!({})),
    )
    .await
    .pop()
    .unwrap();
    assert!(r.upstream.is_empty(), "forwarded: {:?}", r.upstream);
    assert_eq!(
        r.reply.json()["choices"][0]["finish_reason"],
        "content_filter"
    );
}

// === Anthropic and Responses streams: restarted blocks, blocks split across text blocks ===

/// One Anthropic SSE event.
fn a_ev(data: Value) -> Vec<u8> {
    let name = data["type"].as_str().unwrap().to_owned();
    format!("event: {name}\ndata: {data}\n\n").into_bytes()
}

fn a_start() -> Vec<u8> {
    a_ev(
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message",
        "role": "assistant", "model": "claude-x", "content": [], "stop_reason": null,
        "stop_sequence": null, "usage": {"input_tokens": 5, "output_tokens": 1}}}),
    )
}

fn a_block(index: u64) -> Vec<u8> {
    a_ev(json!({"type": "content_block_start", "index": index,
                "content_block": {"type": "text", "text": ""}}))
}

fn a_text(index: u64, text: &str) -> Vec<u8> {
    a_ev(json!({"type": "content_block_delta", "index": index,
                "delta": {"type": "text_delta", "text": text}}))
}

fn a_stop(index: u64) -> Vec<u8> {
    a_ev(json!({"type": "content_block_stop", "index": index}))
}

fn a_end() -> Vec<u8> {
    let mut v = a_ev(json!({"type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 9}}));
    v.extend(a_ev(json!({"type": "message_stop"})));
    v
}

fn messages_req(stream: bool) -> Value {
    json!({"model": "claude-x", "max_tokens": 100, "stream": stream,
           "messages": [{"role": "user", "content": "hi"}]})
}

async fn messages_run(sse: Vec<u8>) -> common::layer_run::Run {
    let mut runs = run_with(
        opts(),
        "/v1/messages",
        &[messages_req(true)],
        200,
        true,
        vec![sse],
    )
    .await;
    runs.pop().unwrap()
}

/// `events` as a Responses stream after `response.created` and before `response.completed`,
/// run through the layer.
async fn responses_run(events: Vec<u8>) -> common::layer_run::Run {
    let r_obj = json!({"id": "resp_1", "object": "response", "created_at": 1,
        "status": "in_progress", "model": "m", "output": []});
    let mut sse = frame(&json!({"type": "response.created", "response": r_obj}));
    sse.extend(events);
    let mut done = r_obj;
    done["status"] = "completed".into();
    sse.extend(frame(
        &json!({"type": "response.completed", "response": done}),
    ));
    let mut runs = run_with(
        opts(),
        "/v1/responses",
        &[json!({"model": "m", "input": "hi", "stream": true})],
        200,
        true,
        vec![sse],
    )
    .await;
    runs.pop().unwrap()
}

/// The error the client got: the stream's last event (the fault came after the head), or
/// the error body of a 5xx (before it).
fn upstream_error(reply: &common::Reply) -> Value {
    if reply.status >= 500 {
        return reply.json();
    }
    assert_eq!(reply.status, 200, "{}", reply.text());
    let last = reply.events().pop().expect("an event");
    serde_json::from_str(&last).unwrap()
}

const PHRASE: &str = "Here is how to build a pipe bomb at home.";

/// Whether any byte run of the blocked phrase ("pipe bomb") long enough to read reached the
/// client: "pipe", "bomb", or the phrase's middle.
fn leaks_phrase(text: &str) -> bool {
    text.contains("pipe") || text.contains("bomb") || text.contains("e b")
}

#[tokio::test]
async fn a_restarted_anthropic_block_is_an_upstream_error() {
    // Broke: a second `content_block_start` at index 0 started a fresh channel and dropped
    // what the first still held; the client, joining text by index, read the first block's
    // released end next to the new text.
    // Cuts before the phrase is whole in the first part (then it is simply blocked).
    for cut in 0..PHRASE.find(" bomb").unwrap() + 5 {
        let mut sse = a_start();
        sse.extend(a_block(0));
        sse.extend(a_text(0, &PHRASE[..cut]));
        sse.extend(a_block(0));
        sse.extend(a_text(0, &PHRASE[cut..]));
        sse.extend(a_stop(0));
        sse.extend(a_end());
        let r = messages_run(sse).await;
        let text = r.reply.text();
        assert!(!leaks_phrase(&text), "cut {cut}: {text}");
        let e = upstream_error(&r.reply);
        assert_eq!(e["type"], "error", "cut {cut}: {text}");
        assert!(e["error"]["message"].is_string(), "{e}");
    }
}

#[tokio::test]
async fn anthropic_deltas_before_their_block_start_or_after_its_stop_are_upstream_errors() {
    for cut in [0, 10, 24, 30] {
        // Before the start.
        let mut sse = a_start();
        sse.extend(a_text(0, &PHRASE[..cut]));
        sse.extend(a_block(0));
        sse.extend(a_text(0, &PHRASE[cut..]));
        sse.extend(a_stop(0));
        sse.extend(a_end());
        let r = messages_run(sse).await;
        assert!(!leaks_phrase(&r.reply.text()), "{}", r.reply.text());
        assert_eq!(upstream_error(&r.reply)["type"], "error");
        // After the stop.
        let mut sse = a_start();
        sse.extend(a_block(0));
        sse.extend(a_text(0, &PHRASE[..cut]));
        sse.extend(a_stop(0));
        sse.extend(a_text(0, &PHRASE[cut..]));
        sse.extend(a_end());
        let r = messages_run(sse).await;
        assert!(!leaks_phrase(&r.reply.text()), "{}", r.reply.text());
        assert_eq!(upstream_error(&r.reply)["type"], "error");
    }
}

#[tokio::test]
async fn a_restarted_responses_item_is_an_upstream_error() {
    // Broke like the Anthropic case: `response.output_item.added` again at output_index 0.
    let added = json!({"type": "response.output_item.added", "output_index": 0,
        "item": {"id": "msg_1", "type": "message", "status": "in_progress", "role": "assistant", "content": []}});
    let part = json!({"type": "response.content_part.added", "item_id": "msg_1", "output_index": 0,
        "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}});
    let delta = |t: &str| {
        json!({"type": "response.output_text.delta", "item_id": "msg_1",
        "output_index": 0, "content_index": 0, "delta": t})
    };
    // Cuts before the phrase is whole in the first part (then it is simply blocked).
    for cut in 0..PHRASE.find(" bomb").unwrap() + 5 {
        let mut sse = frame(&added);
        sse.extend(frame(&part));
        sse.extend(frame(&delta(&PHRASE[..cut])));
        sse.extend(frame(&added));
        sse.extend(frame(&part));
        sse.extend(frame(&delta(&PHRASE[cut..])));
        let r = responses_run(sse).await;
        let text = r.reply.text();
        assert!(!leaks_phrase(&text), "cut {cut}: {text}");
        let e = upstream_error(&r.reply);
        assert!(
            e["type"] == "error" || e["error"]["message"].is_string(),
            "cut {cut}: {text}"
        );
    }
}

#[tokio::test]
async fn a_phrase_split_across_two_anthropic_text_blocks_is_blocked() {
    // Broke: each text block was scanned alone, so "…pipe" | " bomb…" passed, and clients
    // show consecutive text blocks as one text.
    for cut in 0..=PHRASE.len() {
        let (a, b) = PHRASE.split_at(cut);
        // Streamed, byte by byte.
        let mut sse = a_start();
        for (i, part) in [a, b].into_iter().enumerate() {
            sse.extend(a_block(i as u64));
            for k in 0..part.len() {
                sse.extend(a_text(i as u64, &part[k..k + 1]));
            }
            sse.extend(a_stop(i as u64));
        }
        sse.extend(a_end());
        let r = messages_run(sse).await;
        let mut text = String::new();
        for e in r.reply.events() {
            let v: Value = serde_json::from_str(&e).unwrap();
            if let Some(t) = v["delta"]["text"].as_str() {
                text.push_str(t);
            }
        }
        assert!(!leaks_phrase(&text), "cut {cut}: {text}");
        assert!(
            r.reply.text().contains(r#""stop_reason":"refusal""#),
            "cut {cut}"
        );
        assert_eq!(r.reply.header("x-deliberate-enforcement"), "full");
        // Buffered.
        let body = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [{"type": "text", "text": a}, {"type": "text", "text": b}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 5, "output_tokens": 9}});
        let mut runs = run_with(
            opts(),
            "/v1/messages",
            &[messages_req(false)],
            200,
            false,
            vec![body.to_string().into_bytes()],
        )
        .await;
        let r = runs.pop().unwrap();
        assert!(
            !leaks_phrase(&r.reply.text()),
            "cut {cut}: {}",
            r.reply.text()
        );
        assert_eq!(r.reply.json()["stop_reason"], "refusal", "cut {cut}");
    }
}

fn thinking_policy() -> deliberate::CompiledPolicy {
    deliberate::CompiledPolicy::from_yaml_str(
        r#"
policy: thinking
rules:
  - id: thinking.secret
    stages: [output, reasoning]
    roles: [assistant]
    match: {regex: 'secret-\d{4}'}
    action: redact
    replacement: "[secret]"
    tests: {match: ['secret-1234'], no_match: ["secret"]}
"#,
        "thinking.yaml",
    )
    .unwrap()
}

/// A thinking block `thinking` (split at `cut`) with its signature, then a text block.
fn thinking_stream(thinking: &str, cut: usize) -> Vec<u8> {
    let mut sse = a_start();
    sse.extend(a_ev(json!({"type": "content_block_start", "index": 0,
        "content_block": {"type": "thinking", "thinking": ""}})));
    for part in [&thinking[..cut], &thinking[cut..]] {
        sse.extend(a_ev(json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "thinking_delta", "thinking": part}})));
    }
    sse.extend(a_ev(json!({"type": "content_block_delta", "index": 0,
        "delta": {"type": "signature_delta", "signature": "EqQBCgIYAhIM"}})));
    sse.extend(a_stop(0));
    sse.extend(a_block(1));
    sse.extend(a_text(1, "Done."));
    sse.extend(a_stop(1));
    sse.extend(a_end());
    sse
}

#[tokio::test]
async fn redacted_thinking_drops_its_signature_and_says_so() {
    // Broke: a redacted thinking block kept the upstream's signature, which no longer signed
    // its text; the client was not told.
    use common::layer_run::run_policy;
    let send = |sse: bool, frames: Vec<u8>| async move {
        run_policy(
            thinking_policy(),
            opts(),
            "/v1/messages",
            &[messages_req(sse)],
            200,
            sse,
            vec![frames],
        )
        .await
        .pop()
        .unwrap()
    };
    let secret = "I recall secret-4321 from the file.";
    for cut in 0..=secret.len() {
        let r = send(true, thinking_stream(secret, cut)).await;
        let text = r.reply.text();
        assert!(!text.contains("4321"), "cut {cut}: {text}");
        assert!(text.contains("[secret]"), "cut {cut}: {text}");
        assert!(!text.contains("signature_delta"), "cut {cut}: {text}");
        assert!(text.contains("Done"), "cut {cut}: {text}");
        // The head went out with the first text, before the signature was decided: the audit
        // record says it.
        let record = r.records.last().expect("an audit record");
        assert!(
            record.enforcement.contains("signature dropped"),
            "{}",
            record.enforcement
        );
    }
    // Unchanged thinking keeps its signature, after its text and before its stop.
    let benign = "The user asks about birds.";
    let r = send(true, thinking_stream(benign, 7)).await;
    let events: Vec<Value> = r
        .reply
        .events()
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let sig = events
        .iter()
        .position(|e| e["delta"]["type"] == "signature_delta")
        .expect("the signature went out");
    let stop = events
        .iter()
        .position(|e| e["type"] == "content_block_stop" && e["index"] == 0)
        .unwrap();
    let last_thinking = events
        .iter()
        .rposition(|e| e["delta"]["type"] == "thinking_delta")
        .unwrap();
    assert!(last_thinking < sig && sig < stop, "{}", r.reply.text());
    assert_eq!(r.reply.header("x-deliberate-enforcement"), "full");
    // Buffered.
    let body = |thinking: &str| {
        json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [{"type": "thinking", "thinking": thinking, "signature": "EqQBCgIYAhIM"},
                        {"type": "text", "text": "Done."}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 5, "output_tokens": 9}})
        .to_string()
        .into_bytes()
    };
    let r = send(false, body(secret)).await;
    let v = r.reply.json();
    assert_eq!(
        v["content"][0]["thinking"],
        "I recall [secret] from the file."
    );
    assert!(v["content"][0].get("signature").is_none(), "{v}");
    assert!(
        r.reply
            .header("x-deliberate-enforcement")
            .contains("signature dropped")
    );
    let r = send(false, body(benign)).await;
    assert_eq!(r.reply.json()["content"][0]["signature"], "EqQBCgIYAhIM");
    assert_eq!(r.reply.header("x-deliberate-enforcement"), "full");
}

/// The Chat case above on the other streamed APIs: an unknown delta type (Anthropic) and an
/// unknown event (Responses) whose string field carries a phrase in two events, split at
/// every byte. The client never reads the phrase whole.
#[tokio::test]
async fn unknown_fields_split_across_events_are_scanned_on_every_api() {
    let text = "build a pipe bomb now";
    for cut in 1..text.len() {
        // Anthropic: a delta type the adapter does not know, inside a text block.
        let mut sse = a_start();
        sse.extend(a_block(0));
        sse.extend(a_text(0, "Hello. "));
        for piece in [&text[..cut], &text[cut..]] {
            sse.extend(a_ev(json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "vendor_delta", "vendor_text": piece}})));
        }
        sse.extend(a_stop(0));
        sse.extend(a_end());
        let r = messages_run(sse).await;
        let mut said = String::new();
        for e in r.reply.events() {
            let v: Value = serde_json::from_str(&e).unwrap();
            if let Some(t) = v["delta"]["vendor_text"].as_str() {
                said.push_str(t);
            }
        }
        assert!(!said.contains("pipe bomb"), "anthropic cut {cut}: {said:?}");
        assert!(!r.reply.text().contains("pipe bomb"), "anthropic cut {cut}");

        // Responses: an event type the adapter does not know.
        let mut sse = Vec::new();
        for piece in [&text[..cut], &text[cut..]] {
            sse.extend(frame(
                &json!({"type": "response.vendor.note", "note": piece}),
            ));
        }
        let r = responses_run(sse).await;
        let mut said = String::new();
        for e in r.reply.events() {
            if let Ok(v) = serde_json::from_str::<Value>(&e)
                && let Some(t) = v["note"].as_str()
            {
                said.push_str(t);
            }
        }
        assert!(!said.contains("pipe bomb"), "responses cut {cut}: {said:?}");
        assert!(!r.reply.text().contains("pipe bomb"), "responses cut {cut}");
    }
}
