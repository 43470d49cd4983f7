//! The enforcement layer in-process, around a scripted inner service whose body frames arrive
//! exactly as scripted: splits at every position, escapes, CRLF, keep-alives, n > 1, tool
//! calls, truncated streams, deliberation blocks, reasoning, buffered responses, injection,
//! input refusals, limits and the audit record of a cancelled stream.
//!
//! One concern in one file (over 600 lines): the layer's Chat Completions behaviour in-process,
//! one scripted scenario per test over the shared helpers at the top.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::layer_run::{Records, Run, run, run_many};
use common::*;
use deliberate::CompiledPolicy;
use deliberate::layer::{
    BlockResponse, DefaultSystem, EnforceOptions, Outcome, PolicyLayer, ReasoningMode, RequestBody,
};
use deliberate::wire::Placement;
use futures_util::stream;
use http::{Request, Response};
use http_body::Frame;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use serde_json::{Value, json};
use tower::{Layer, ServiceExt, service_fn};

fn opts() -> EnforceOptions {
    EnforceOptions::default()
}

const REFUSAL: &str = "I can't help with that. (policy section: illicit)";

/// A long harmless lead-in, longer than the output holdback, so text is released before the
/// blocked phrase arrives.
fn lead_in() -> String {
    "The weather is calm and the sky is clear today. ".repeat(8)
}

#[tokio::test]
async fn blocked_phrase_split_at_every_delta_position() {
    let text = format!("{}Now: build a pipe bomb with care.", lead_in());
    let span = text.find("pipe bomb").unwrap();
    let bounds: Vec<usize> = (1..text.len())
        .filter(|&i| text.is_char_boundary(i))
        .collect();
    for i in bounds {
        let frames = vec![sse_stream(&[&text[..i], &text[i..]])];
        let r = run(opts(), &chat("hi", true), true, frames).await;
        let chunks = r.reply.chunks();
        let (got, finish) = stream_text(&chunks, 0);
        assert_eq!(finish.as_deref(), Some("content_filter"), "split {i}");
        assert!(
            !r.reply.text().contains("bomb"),
            "split {i}: leaked {got:?}"
        );
        assert!(
            got == REFUSAL || (text.starts_with(&got) && got.len() <= span),
            "split {i}: {got:?}"
        );
        assert_eq!(r.reply.events().last().map(String::as_str), Some("[DONE]"));
        assert_eq!(r.records[0].outcome, Outcome::BlockedOutput, "split {i}");
    }
}

#[tokio::test]
async fn blocked_phrase_split_at_every_byte_of_the_event_stream() {
    let lead = lead_in();
    let pieces: Vec<String> = lead
        .as_bytes()
        .chunks(40)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .chain([
            "Now: build a pi".to_owned(),
            "pe bo".to_owned(),
            "mb with care.".to_owned(),
        ])
        .collect();
    let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
    let sse = sse_stream(&refs);
    // Every split point in the part of the stream around the phrase.
    let from = sse.windows(6).position(|w| w == b"Now: b").unwrap() - 200;
    for p in from..sse.len() {
        let frames = vec![sse[..p].to_vec(), sse[p..].to_vec()];
        let r = run(opts(), &chat("hi", true), true, frames).await;
        let (got, finish) = stream_text(&r.reply.chunks(), 0);
        assert_eq!(finish.as_deref(), Some("content_filter"), "split {p}");
        assert!(!r.reply.text().contains("pe bo"), "split {p}: {got:?}");
        if got != REFUSAL {
            assert!(
                lead.starts_with(&got) || got.starts_with(&lead),
                "split {p}: {got:?}"
            );
            assert!(!got.contains("pi"), "split {p}: {got:?}");
        }
    }
}

#[tokio::test]
async fn text_before_the_block_is_released_and_the_stream_ends_in_band() {
    let text = format!("{}Now: build a pipe bomb.", lead_in());
    // One upstream read per event, so the head goes out before the phrase arrives.
    let mut frames = vec![frame(&role_chunk(0))];
    frames.extend(
        text.split_inclusive(' ')
            .map(|w| frame(&content_chunk(0, w))),
    );
    frames.push(frame(&finish_chunk(0, "stop")));
    frames.push(DONE.to_vec());
    let r = run(opts(), &chat("hi", true), true, frames).await;
    // The head went out before the block: it reports what was known then.
    assert_eq!(r.reply.header("x-deliberate-action"), "allow");
    let chunks = r.reply.chunks();
    let (got, finish) = stream_text(&chunks, 0);
    assert!(got.len() > 100 && text.starts_with(&got), "{got:?}");
    assert_eq!(finish.as_deref(), Some("content_filter"));
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "content_filter");
    // Upstream fields survive on every chunk.
    for c in &chunks {
        assert_eq!(c["id"], "chatcmpl-up");
        assert_eq!(c["model"], "up-model");
        assert_eq!(c["created"], 1700000000);
        assert_eq!(c["system_fingerprint"], "fp_up");
    }
    assert_eq!(r.records[0].action.as_str(), "block");
}

#[tokio::test]
async fn nothing_sent_yet_is_answered_like_a_buffered_block() {
    let r = run(
        opts(),
        &chat("hi", true),
        true,
        vec![sse_stream(&["build a ", "pipe bomb"])],
    )
    .await;
    assert_eq!(r.reply.header("x-deliberate-action"), "block");
    let chunks = r.reply.chunks();
    assert_eq!(
        stream_text(&chunks, 0),
        (REFUSAL.to_owned(), Some("content_filter".to_owned()))
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");

    // A client that asked for usage gets the usage chunk, as on an input block.
    let mut req = chat("hi", true);
    req["stream_options"] = json!({"include_usage": true});
    let r = run(
        opts(),
        &req,
        true,
        vec![sse_stream(&["build a ", "pipe bomb"])],
    )
    .await;
    let chunks = r.reply.chunks();
    assert_eq!(stream_text(&chunks, 0).0, REFUSAL);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]), "{chunks:?}");
    assert!(last["usage"].is_object(), "{chunks:?}");
}

#[tokio::test]
async fn multibyte_characters_split_across_reads() {
    let sse = sse_stream(&["これは", "爆弾", "です"]);
    let at = sse.windows(3).position(|w| w == "爆".as_bytes()).unwrap();
    for p in at..at + 6 {
        let r = run(
            opts(),
            &chat("hi", true),
            true,
            vec![sse[..p].to_vec(), sse[p..].to_vec()],
        )
        .await;
        assert_eq!(
            stream_text(&r.reply.chunks(), 0).1.as_deref(),
            Some("content_filter"),
            "split {p}"
        );
        assert!(!r.reply.text().contains('爆'));
    }
    // Harmless multibyte text passes whole.
    let sse = sse_stream(&["こんに", "ちは"]);
    let r = run(
        opts(),
        &chat("hi", true),
        true,
        sse.chunks(1).map(<[u8]>::to_vec).collect(),
    )
    .await;
    assert_eq!(
        stream_text(&r.reply.chunks(), 0),
        ("こんにちは".to_owned(), Some("stop".to_owned()))
    );
}

#[tokio::test]
async fn json_escapes_are_decoded_before_scanning() {
    let raw = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a pipe \\u0062omb\"}}]}\n\ndata: [DONE]\n\n";
    let r = run(opts(), &chat("hi", true), true, vec![raw.to_vec()]).await;
    assert_eq!(
        stream_text(&r.reply.chunks(), 0).1.as_deref(),
        Some("content_filter")
    );
}

#[tokio::test]
async fn crlf_events_and_keep_alive_comments() {
    let mut sse = Vec::new();
    sse.extend(b": keep-alive\r\n\r\n");
    for c in [
        role_chunk(0),
        content_chunk(0, "mail bob@"),
        content_chunk(0, "example.com now"),
    ] {
        sse.extend(format!("data: {c}\r\n\r\n").into_bytes());
    }
    sse.extend(b": keep-alive\r\n\r\n");
    sse.extend(
        format!(
            "data: {}\r\n\r\ndata: [DONE]\r\n\r\n",
            finish_chunk(0, "stop")
        )
        .into_bytes(),
    );
    let frames: Vec<Vec<u8>> = sse.chunks(7).map(<[u8]>::to_vec).collect();
    let r = run(opts(), &chat("hi", true), true, frames).await;
    assert_eq!(
        stream_text(&r.reply.chunks(), 0),
        ("mail [email] now".to_owned(), Some("stop".to_owned()))
    );
    assert!(!r.reply.text().contains("bob@"));
    assert_eq!(r.records[0].action.as_str(), "redact");
    assert_eq!(r.records[0].findings[0].text, "[masked]");
}

#[tokio::test]
async fn redaction_split_at_every_position() {
    let text = "please write to bob.smith@example.com today, thanks";
    for i in 1..text.len() {
        let r = run(
            opts(),
            &chat("hi", true),
            true,
            vec![sse_stream(&[&text[..i], &text[i..]])],
        )
        .await;
        let (got, finish) = stream_text(&r.reply.chunks(), 0);
        assert_eq!(got, "please write to [email] today, thanks", "split {i}");
        assert_eq!(finish.as_deref(), Some("stop"));
        assert!(!r.reply.text().contains("example.com"));
    }
}

#[tokio::test]
async fn choices_are_scanned_separately() {
    let mut sse = frame(&role_chunk(0));
    sse.extend(frame(&role_chunk(1)));
    let lead = lead_in();
    for (a, b) in [
        (lead.as_str(), "fine words"),
        (" a pipe bomb", " and more"),
        (" end", " end"),
    ] {
        sse.extend(frame(&content_chunk(0, a)));
        sse.extend(frame(&content_chunk(1, b)));
    }
    sse.extend(frame(&finish_chunk(0, "stop")));
    sse.extend(frame(&finish_chunk(1, "stop")));
    sse.extend(frame(&usage_chunk()));
    sse.extend_from_slice(DONE);
    let mut req = chat("hi", true);
    req["n"] = json!(2);
    let r = run(opts(), &req, true, vec![sse]).await;
    let chunks = r.reply.chunks();
    let (t0, f0) = stream_text(&chunks, 0);
    assert_eq!(f0.as_deref(), Some("content_filter"));
    assert!(!t0.contains("bomb"));
    assert_eq!(
        stream_text(&chunks, 1),
        (
            "fine words and more end".to_owned(),
            Some("stop".to_owned())
        )
    );
    assert_eq!(r.records[0].outcome, Outcome::Completed);
}

#[tokio::test]
async fn usage_chunks_and_unknown_fields_pass() {
    let mut sse = frame(&role_chunk(0));
    sse.extend(frame(&content_chunk(0, "hello")));
    sse.extend(frame(&finish_chunk(0, "stop")));
    sse.extend(frame(&usage_chunk()));
    sse.extend_from_slice(DONE);
    let r = run(opts(), &chat("hi", true), true, vec![sse]).await;
    let chunks = r.reply.chunks();
    assert_eq!(chunks.last().unwrap()["usage"]["total_tokens"], 8);
    assert_eq!(chunks[1]["x_vendor"]["keep"], true);
    assert_eq!(
        stream_text(&chunks, 0),
        ("hello".to_owned(), Some("stop".to_owned()))
    );
}

/// A piece held back whole (`pi` may begin `pipe bomb`) is not sent as an empty delta.
#[tokio::test]
async fn held_pieces_send_no_empty_deltas() {
    let mut sse = frame(&role_chunk(0));
    for piece in ["Hello ", "pi", "zza time"] {
        sse.extend(frame(&content_chunk(0, piece)));
    }
    sse.extend(frame(&finish_chunk(0, "stop")));
    sse.extend_from_slice(DONE);
    let r = run(opts(), &chat("hi", true), true, vec![sse]).await;
    let chunks = r.reply.chunks();
    for c in &chunks {
        // (The upstream's own role chunk carries an empty content and goes on as it is.)
        for ch in c["choices"].as_array().into_iter().flatten() {
            if ch["delta"]["role"].is_string() {
                continue;
            }
            assert_ne!(ch["delta"]["content"], json!(""), "empty delta sent: {c}");
        }
    }
    assert_eq!(
        stream_text(&chunks, 0),
        ("Hello pizza time".to_owned(), Some("stop".to_owned()))
    );
}

fn tool_chunk(call: Value) -> Value {
    json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
           "choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": null}]})
}

#[tokio::test]
async fn tool_call_arguments_are_scanned() {
    let mut sse = frame(&role_chunk(0));
    sse.extend(frame(&tool_chunk(
        json!({"index": 0, "id": "call_1", "type": "function",
        "function": {"name": "send_mail", "arguments": ""}}),
    )));
    for piece in ["{\"to\": \"bob@exa", "mple.com\", \"body\": ", "\"hi\"}"] {
        sse.extend(frame(&tool_chunk(
            json!({"index": 0, "function": {"arguments": piece}}),
        )));
    }
    sse.extend(frame(&finish_chunk(0, "tool_calls")));
    sse.extend_from_slice(DONE);
    let r = run(opts(), &chat("hi", true), true, vec![sse]).await;
    let mut args = String::new();
    let mut name = None;
    for c in r.reply.chunks() {
        for call in c["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            args.push_str(call["function"]["arguments"].as_str().unwrap_or(""));
            if let Some(n) = call["function"]["name"].as_str() {
                name = Some(n.to_owned());
            }
        }
    }
    assert_eq!(name.as_deref(), Some("send_mail"));
    assert_eq!(args, "{\"to\": \"[email]\", \"body\": \"hi\"}");

    // A blocked phrase in the arguments ends the choice.
    let mut sse = frame(&tool_chunk(
        json!({"index": 0, "id": "call_1", "type": "function",
        "function": {"name": "f", "arguments": "{\"q\": \"pipe "}}),
    ));
    sse.extend(frame(&tool_chunk(
        json!({"index": 0, "function": {"arguments": "bomb\"}"}}),
    )));
    sse.extend(frame(&finish_chunk(0, "tool_calls")));
    sse.extend_from_slice(DONE);
    let r = run(opts(), &chat("hi", true), true, vec![sse]).await;
    assert!(!r.reply.text().contains("bomb"));
    assert_eq!(
        stream_text(&r.reply.chunks(), 0).1.as_deref(),
        Some("content_filter")
    );
}

#[tokio::test]
async fn stream_without_done_is_completed_or_reported() {
    // Every choice finished: the gateway adds `[DONE]`.
    let mut sse = frame(&role_chunk(0));
    sse.extend(frame(&content_chunk(0, "hello")));
    sse.extend(frame(&finish_chunk(0, "stop")));
    let r = run(opts(), &chat("hi", true), true, vec![sse]).await;
    assert_eq!(
        stream_text(&r.reply.chunks(), 0),
        ("hello".to_owned(), Some("stop".to_owned()))
    );
    assert_eq!(r.reply.events().last().map(String::as_str), Some("[DONE]"));
    assert_eq!(r.records[0].outcome, Outcome::Completed);

    // Cut short: what was decided goes out, then an error event and `[DONE]`.
    let mut sse = frame(&role_chunk(0));
    sse.extend(frame(&content_chunk(0, &lead_in())));
    let r = run(opts(), &chat("hi", true), true, vec![sse]).await;
    let events = r.reply.events();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let err: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(err["error"]["code"], "upstream_truncated");
    assert_eq!(r.records[0].outcome, Outcome::UpstreamError);
}

#[tokio::test]
async fn deliberation_block_is_stripped_and_audited() {
    let pieces = [
        "<delib",
        "eration>the privacy section applies; bob@example.com</delib",
        "eration>\n\nHere you go.",
    ];
    for split_frames in [false, true] {
        let sse = sse_stream(&pieces);
        let frames = if split_frames {
            sse.chunks(5).map(<[u8]>::to_vec).collect()
        } else {
            vec![sse]
        };
        let r = run(opts(), &chat("hi", true), true, frames).await;
        assert_eq!(stream_text(&r.reply.chunks(), 0).0, "Here you go.");
        let d = &r.records[0].deliberation;
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].text, "the privacy section applies; [email]");
    }
    // Buffered too.
    let body = json!({"id": "x", "object": "chat.completion", "choices": [{"index": 0, "finish_reason": "stop",
        "message": {"role": "assistant", "content": "<deliberation>think</deliberation>Answer."}}]});
    let r = run(
        opts(),
        &chat("hi", false),
        false,
        vec![body.to_string().into_bytes()],
    )
    .await;
    assert_eq!(
        r.reply.json()["choices"][0]["message"]["content"],
        "Answer."
    );
    assert_eq!(r.records[0].deliberation[0].text, "think");
}

#[tokio::test]
async fn reasoning_fields_follow_the_mode() {
    let chunk = |field: &str, text: &str| json!({"id": "c", "choices": [{"index": 0, "delta": {field: text}, "finish_reason": null}]});
    let mut sse = frame(&chunk("reasoning_content", "we need a detonator"));
    sse.extend(frame(&chunk("content", "ok")));
    sse.extend(frame(&finish_chunk(0, "stop")));
    sse.extend_from_slice(DONE);
    // scan (default): the reasoning stage blocks.
    let r = run(opts(), &chat("hi", true), true, vec![sse.clone()]).await;
    assert!(!r.reply.text().contains("detonator"));
    assert_eq!(
        stream_text(&r.reply.chunks(), 0).1.as_deref(),
        Some("content_filter")
    );
    // strip: removed, the answer goes on.
    let r = run(
        EnforceOptions {
            reasoning: ReasoningMode::Strip,
            ..opts()
        },
        &chat("hi", true),
        true,
        vec![sse.clone()],
    )
    .await;
    assert!(!r.reply.text().contains("reasoning_content"));
    assert_eq!(
        stream_text(&r.reply.chunks(), 0),
        ("ok".to_owned(), Some("stop".to_owned()))
    );
    // pass: passed on, and the enforcement says so.
    let r = run(
        EnforceOptions {
            reasoning: ReasoningMode::Pass,
            ..opts()
        },
        &chat("hi", true),
        true,
        vec![sse],
    )
    .await;
    assert!(r.reply.text().contains("detonator"));
    assert!(
        r.records[0].enforcement.starts_with("partial"),
        "{}",
        r.records[0].enforcement
    );
}

#[tokio::test]
async fn buffered_completions_scan_every_choice_and_field() {
    let body = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 5, "model": "up", "service_tier": "default",
        "choices": [
            {"index": 0, "finish_reason": "stop", "logprobs": {"content": [{"token": "pipe"}]},
             "message": {"role": "assistant", "content": "here is a pipe bomb recipe"}},
            {"index": 1, "finish_reason": "stop", "message": {"role": "assistant", "content": "write bob@example.com"}},
            {"index": 2, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
             "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"to\":\"amy@example.org\"}"}}]}},
            {"index": 3, "finish_reason": "stop", "message": {"role": "assistant", "content": null, "refusal": "the secret is hunter2"}}
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    });
    let r = run(
        opts(),
        &chat("hi", false),
        false,
        vec![body.to_string().into_bytes()],
    )
    .await;
    assert_eq!(r.reply.status, 200);
    assert_eq!(r.reply.header("x-deliberate-action"), "block");
    let v = r.reply.json();
    assert_eq!(v["choices"][0]["message"]["content"], REFUSAL);
    assert_eq!(v["choices"][0]["finish_reason"], "content_filter");
    assert!(v["choices"][0]["logprobs"].is_null());
    assert_eq!(v["choices"][1]["message"]["content"], "write [email]");
    assert_eq!(
        v["choices"][2]["message"]["tool_calls"][0]["function"]["arguments"],
        "{\"to\":\"[email]\"}"
    );
    assert_eq!(
        v["choices"][3]["message"]["refusal"],
        "the secret is [secret]"
    );
    assert_eq!(v["service_tier"], "default");
    assert_eq!(v["usage"]["total_tokens"], 3);
    assert_eq!(
        r.reply.header("content-length"),
        r.reply.body.len().to_string()
    );
}

#[tokio::test]
async fn input_is_scanned_redacted_and_refused() {
    // Redacted before the upstream sees it; tool results and text parts too.
    let req = json!({"model": "m", "messages": [
        {"role": "system", "content": "You are terse. Contact admin@example.com."},
        {"role": "user", "content": [{"type": "text", "text": "mail bob@example.com"},
                                      {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
        {"role": "tool", "tool_call_id": "t1", "content": "found carol@example.net"}
    ], "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
       "tool_choice": "auto", "response_format": {"type": "text"}, "top_k": 3});
    let ok = json!({"choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}]});
    let r = run(opts(), &req, false, vec![ok.to_string().into_bytes()]).await;
    let up = &r.upstream[0];
    let msgs = up["messages"].as_array().unwrap();
    // Injected first; the operator's system message (role not read by the rule) is untouched.
    assert_eq!(msgs[0]["role"], "system");
    assert!(
        msgs[0]["content"]
            .as_str()
            .unwrap()
            .starts_with("[deliberate policy gateway-test@")
    );
    assert_eq!(
        msgs[1]["content"],
        "You are terse. Contact admin@example.com."
    );
    assert_eq!(msgs[2]["content"][0]["text"], "mail [email]");
    assert_eq!(msgs[2]["content"][1]["image_url"]["url"], "https://x/y.png");
    assert_eq!(msgs[3]["content"], "found [email]");
    assert_eq!(up["tools"], req["tools"]);
    assert_eq!(up["tool_choice"], "auto");
    assert_eq!(up["response_format"], req["response_format"]);
    assert_eq!(up["top_k"], 3);
    assert_eq!(
        r.reply.header("x-deliberate-enforcement"),
        "partial; reason=\"image parts not scanned\""
    );

    // A block never reaches the upstream.
    let r = run(
        opts(),
        &chat("how to build a pipe bomb", false),
        false,
        vec![],
    )
    .await;
    assert!(r.upstream.is_empty());
    let v = r.reply.json();
    assert_eq!(v["choices"][0]["message"]["content"], REFUSAL);
    assert_eq!(v["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(r.records[0].outcome, Outcome::BlockedInput);

    // ... or is a 400 when configured.
    let o = EnforceOptions {
        block_response: BlockResponse::Error400,
        ..opts()
    };
    let r = run(o, &chat("how to build a pipe bomb", true), false, vec![]).await;
    assert_eq!(r.reply.status, 400);
    assert_eq!(r.reply.json()["error"]["code"], "content_policy_violation");
}

/// Repeated texts (a fixed system prompt, earlier turns) come from the scan cache: the same
/// redactions, refusals, injected sections and audit findings as a fresh scan, with the cache
/// on or off.
#[tokio::test]
async fn repeated_texts_get_the_same_decisions_from_the_scan_cache() {
    let ok = json!({"choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}]});
    let redacted = json!({"model": "m", "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "mail bob@example.com"}
    ]});
    let blocked = chat("how to build a pipe bomb", false);
    let reqs = [redacted.clone(), blocked.clone(), redacted, blocked];
    let frames = vec![ok.to_string().into_bytes()];
    let cached = run_many(opts(), &reqs, false, frames.clone()).await;
    let uncached = run_many(
        EnforceOptions {
            scan_cache_bytes: 0,
            ..opts()
        },
        &reqs,
        false,
        frames,
    )
    .await;
    for runs in [&cached, &uncached] {
        for r in [&runs[0], &runs[2]] {
            assert_eq!(r.upstream[0]["messages"][2]["content"], "mail [email]");
            assert_eq!(r.records[0].outcome, Outcome::Completed);
        }
        for r in [&runs[1], &runs[3]] {
            assert!(r.upstream.is_empty());
            assert_eq!(r.reply.json()["choices"][0]["message"]["content"], REFUSAL);
            assert_eq!(r.records[0].outcome, Outcome::BlockedInput);
        }
    }
    for (a, b) in cached.iter().zip(&uncached) {
        assert_eq!(a.upstream, b.upstream);
        let findings = |r: &Run| serde_json::to_value(&r.records[0].findings).unwrap();
        assert_eq!(findings(a), findings(b));
    }
}

#[tokio::test]
async fn injection_happens_once_and_can_merge() {
    let ok = json!({"choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}]});
    let frames = vec![ok.to_string().into_bytes()];
    let first = run(opts(), &chat("my address?", false), false, frames.clone()).await;
    let injected = first.upstream[0].clone();
    assert_eq!(injected["messages"].as_array().unwrap().len(), 2);
    let sys = injected["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(sys.contains("## Personal data (privacy)"), "{sys}");
    assert!(!sys.contains("## Illicit"), "{sys}");
    // The same request again (a retry, a second gateway): injected once, identically.
    let again = run(opts(), &injected, false, frames.clone()).await;
    assert_eq!(again.upstream[0], injected);
    assert!(again.records[0].injection.as_ref().unwrap().replaced);

    // Merge into the operator's system message, also idempotently.
    let o = EnforceOptions {
        placement: Placement::Merge,
        ..opts()
    };
    let req = json!({"model": "m", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]});
    let m1 = run(o.clone(), &req, false, frames.clone()).await;
    let msgs = m1.upstream[0]["messages"].as_array().unwrap().clone();
    assert_eq!(msgs.len(), 2);
    let text = msgs[0]["content"].as_str().unwrap();
    assert!(
        text.starts_with("[deliberate policy") && text.ends_with("\n\nBe brief."),
        "{text}"
    );
    let m2 = run(o, &m1.upstream[0], false, frames).await;
    assert_eq!(m2.upstream[0], m1.upstream[0]);
}

/// A model's default system prompt heads the injection when the client sent no instruction
/// text (as its chat template would have added it), only for the models it names, never next
/// to the client's own system message, and once on a retry.
#[tokio::test]
async fn the_models_default_system_prompt_heads_the_injection_without_a_system_message() {
    let ok = json!({"choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}]});
    let frames = vec![ok.to_string().into_bytes()];
    let o = EnforceOptions {
        default_system: vec![
            DefaultSystem {
                model: Some("qwen*".into()),
                text: "You are Qwen, created by Alibaba Cloud.".into(),
            },
            DefaultSystem {
                model: Some("test-*".into()),
                text: "You are a test model.".into(),
            },
        ],
        ..opts()
    };
    let first = run(
        o.clone(),
        &chat("my address?", false),
        false,
        frames.clone(),
    )
    .await;
    let sys = first.upstream[0]["messages"][0]["content"]
        .as_str()
        .unwrap();
    let (marker, rest) = sys.split_once('\n').unwrap();
    assert!(marker.starts_with("[deliberate policy "), "{sys}");
    assert!(rest.starts_with("You are a test model.\n\n"), "{sys}");
    assert!(sys.contains("## Personal data (privacy)"), "{sys}");
    assert!(first.records[0].injection.as_ref().unwrap().default_system);
    // A retry: the head sits inside the markers and goes out with the old injection.
    let again = run(o.clone(), &first.upstream[0], false, frames.clone()).await;
    assert_eq!(again.upstream[0], first.upstream[0]);

    // Another model: no head.
    let mut other = chat("my address?", false);
    other["model"] = json!("llama-3");
    let r = run(o.clone(), &other, false, frames.clone()).await;
    let sys = r.upstream[0]["messages"][0]["content"].as_str().unwrap();
    assert!(!sys.contains("You are"), "{sys}");
    assert!(!r.records[0].injection.as_ref().unwrap().default_system);

    // The client's own system message: the template would not add its default, nor do we.
    let req = json!({"model": "qwen2.5", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "my address?"}]});
    let r = run(o, &req, false, frames).await;
    let msgs = r.upstream[0]["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3);
    assert!(
        !msgs[0]["content"]
            .as_str()
            .unwrap()
            .contains("You are Qwen")
    );
    assert_eq!(msgs[1]["content"], "Be brief.");
}

#[tokio::test]
async fn malformed_and_oversized_requests() {
    let cases: &[(&[u8], &str)] = &[
        (b"{\"messages\": [", "invalid_json"),
        (
            br#"{"messages": [{"role": "user", "role": "system", "content": "x"}]}"#,
            "duplicate_key",
        ),
        (b"{\"messages\": 5}", "invalid_request_shape"),
        (b"\xff\xfe", "invalid_utf8"),
    ];
    for (body, code) in cases {
        let policy = CompiledPolicy::load(policy_path()).unwrap();
        let inner = service_fn(|_r: Request<RequestBody<Full<Bytes>>>| async {
            Ok::<_, BoxError>(Response::new(Full::new(Bytes::new())))
        });
        let svc = PolicyLayer::new(policy).layer(inner);
        let resp = svc
            .oneshot(
                Request::post("/v1/chat/completions")
                    .body(Full::new(Bytes::from_static(body)))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        let v: Value =
            serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert_eq!(v["error"]["code"], *code, "{v}");
    }
    let o = EnforceOptions {
        max_request_bytes: 100,
        ..opts()
    };
    let r = run(o, &chat(&"x".repeat(200), false), false, vec![]).await;
    assert_eq!(r.reply.status, 413);
    assert!(r.upstream.is_empty());
}

#[tokio::test]
async fn a_cancelled_stream_is_audited() {
    let policy = CompiledPolicy::load(policy_path()).unwrap();
    let records = Arc::new(Records::default());
    let inner = service_fn(|_r: Request<RequestBody<Full<Bytes>>>| async {
        // Text, then nothing more for a long time.
        let mut first = frame(&role_chunk(0));
        first.extend(frame(&content_chunk(0, &lead_in())));
        first.extend(frame(&content_chunk(0, &lead_in())));
        let first = Bytes::from(first);
        let body = StreamBody::new(
            stream::iter([Ok::<_, BoxError>(Frame::data(first))]).chain(stream::pending()),
        );
        let mut resp = Response::new(BoxBody::new(body));
        resp.headers_mut()
            .insert("content-type", "text/event-stream".parse().unwrap());
        Ok::<_, BoxError>(resp)
    });
    let svc = PolicyLayer::new(policy)
        .observer(records.clone())
        .layer(inner);
    let req = Request::post("/v1/chat/completions")
        .body(Full::new(Bytes::from(chat("hi", true).to_string())))
        .unwrap();
    let resp = svc.oneshot(req).await.unwrap();
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.is_data());
    assert!(records.0.lock().unwrap().is_empty());
    drop(body);
    let recs = records.0.lock().unwrap().clone();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].outcome, Outcome::Cancelled);
    assert_eq!(recs[0].status, Some(200));
}

use futures_util::StreamExt as _;

/// An offload that drops every job without running it, as tokio's blocking pool does at
/// shutdown.
struct DroppingOffload;

impl deliberate::layer::Offload for DroppingOffload {
    fn run(
        &self,
        job: deliberate::layer::OffloadJob,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        drop(job);
        Box::pin(async {})
    }
}

/// A scan the offload dropped is a `503` in the error shape of the request's API (Anthropic
/// here), and the upstream is never called.
#[tokio::test]
async fn a_dropped_offloaded_scan_is_a_503_in_the_apis_shape() {
    let policy = CompiledPolicy::load(policy_path()).unwrap();
    let called = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = called.clone();
    let inner = service_fn(move |_req: Request<RequestBody<Full<Bytes>>>| {
        seen.store(true, std::sync::atomic::Ordering::SeqCst);
        async { Ok::<_, BoxError>(Response::new(Full::new(Bytes::new()))) }
    });
    let opts = EnforceOptions {
        offload_scan_bytes: 0,
        ..opts()
    };
    let svc = PolicyLayer::new(policy)
        .options(opts)
        .offload(Arc::new(DroppingOffload))
        .layer(inner);
    let body = json!({"model": "claude", "max_tokens": 10,
                      "messages": [{"role": "user", "content": "hello"}]});
    let req = Request::post("/v1/messages")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let resp = svc.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 503);
    let v: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["message"], "the gateway is shutting down", "{v}");
    assert!(!called.load(std::sync::atomic::Ordering::SeqCst));
}
