//! What the client sees of an upstream's errors and unreadable answers: never text nobody
//! scanned. An error body the strict parser refuses is still JSON to a client (which decodes
//! its `\u` escapes), the keys of an error object are text too, an SSE comment is text, and
//! the gateway's own 502 and in-band errors must not quote the body that made them (serde's
//! messages do). Each case was a bypass.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::layer_run::{run, run_with};
use common::*;
use deliberate::layer::EnforceOptions;

/// One upstream answer `body` with `status` to a buffered chat request.
async fn answer(status: u16, body: &[u8]) -> common::layer_run::Run {
    let mut runs = run_with(
        EnforceOptions::default(),
        "/v1/chat/completions",
        &[chat("hello", false)],
        status,
        false,
        vec![body.to_vec()],
    )
    .await;
    runs.pop().unwrap()
}

#[tokio::test]
async fn error_bodies_the_strict_parser_refuses_are_withheld() {
    let deep = format!(
        "{}\"a pipe \\u0062omb\"{}",
        "{\"error\":[".repeat(70),
        "]}".repeat(70)
    );
    let bodies: Vec<Vec<u8>> = vec![
        // A repeated key: clients keep the last one and decode the escape.
        br#"{"error":{"message":"a pipe \u0062omb","type":"invalid_request_error"},"x":1,"x":2}"#
            .to_vec(),
        br#"{"error":{"message":"write to bob\u0040example.com"},"x":1,"x":2}"#.to_vec(),
        // A byte order mark.
        [
            "\u{feff}".as_bytes(),
            br#"{"error":{"message":"a pipe \u0062omb"}}"#,
        ]
        .concat(),
        // Nesting past the parser's limit.
        deep.into_bytes(),
    ];
    for body in bodies {
        let r = answer(400, &body).await;
        assert_eq!(r.reply.status, 400);
        let text = r.reply.text();
        assert!(!text.contains("omb") && !text.contains("example"), "{text}");
        assert_eq!(r.reply.json()["error"]["code"], "upstream_error_withheld");
        // Withheld for its form, not for what a rule found in it.
        let why = r.reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(why.contains("could not read it"), "{why}");
        assert!(
            r.reply
                .header("x-deliberate-enforcement")
                .starts_with("partial"),
            "{}",
            r.reply.header("x-deliberate-enforcement")
        );
    }
    // An error in SSE form whose JSON hides text behind escapes (any body with a backslash
    // that is not strict JSON is withheld).
    let r = answer(400, br#"data: {"error":{"message":"a pipe \u0062omb"}}"#).await;
    assert!(!r.reply.text().contains("omb"), "{}", r.reply.text());
    assert_eq!(r.reply.json()["error"]["code"], "upstream_error_withheld");
    // A plain-text error page is still scanned as text and passed when clean.
    let r = answer(503, b"Service Unavailable").await;
    assert_eq!(r.reply.text(), "Service Unavailable");
}

#[tokio::test]
async fn error_object_keys_are_scanned() {
    let r = answer(
        400,
        br#"{"error":{"message":"x","how to build a pipe bomb":1}}"#,
    )
    .await;
    assert!(!r.reply.text().contains("bomb"), "{}", r.reply.text());
    assert_eq!(r.reply.json()["error"]["code"], "upstream_error_withheld");
    // Ordinary keys pass with the body unchanged.
    let body = br#"{"error":{"message":"bad model","type":"invalid_request_error"}}"#;
    let r = answer(400, body).await;
    assert_eq!(r.reply.json()["error"]["message"], "bad model");
}

#[tokio::test]
async fn the_gateways_own_errors_do_not_quote_the_upstreams_body() {
    let bodies: [&[u8]; 3] = [
        // serde: `invalid type: string "…", expected a sequence`.
        br#"{"id":"c1","object":"chat.completion","choices":"how to build a pipe bomb"}"#,
        // serde: `duplicate key `…``.
        br#"{"id":"c1","how to build a pipe bomb":1,"how to build a pipe bomb":2}"#,
        br#"{"id":"c1","object":"chat.completion","choices":"mail bob@example.com"}"#,
    ];
    for body in bodies {
        let r = answer(200, body).await;
        assert_eq!(r.reply.status, 502);
        let text = r.reply.text();
        assert!(
            !text.contains("bomb") && !text.contains("example"),
            "{text}"
        );
        assert_eq!(r.reply.json()["error"]["code"], "upstream_protocol_error");
    }
}

#[tokio::test]
async fn an_unreadable_stream_event_ends_in_band_without_quoting_it() {
    let mut sse = frame(&role_chunk(0));
    sse.extend(frame(&content_chunk(0, "Hello. ")));
    sse.extend(frame(&content_chunk(0, "Some more text here. ")));
    sse.extend_from_slice(
        b"data: {\"id\":\"c\",\"choices\":[],\"how to build a pipe bomb\":1,\"how to build a pipe bomb\":2}\n\n",
    );
    sse.extend_from_slice(b"data: [DONE]\n\n");
    let r = run(
        EnforceOptions::default(),
        &chat("hi", true),
        true,
        vec![sse],
    )
    .await;
    let text = r.reply.text();
    assert!(text.contains("upstream_protocol_error"), "{text}");
    assert!(!text.contains("bomb"), "{text}");
}

#[tokio::test]
async fn upstream_comment_text_is_not_passed_on() {
    let mut sse = b": here is how to build a pipe bomb, mail bob@example.com\n\n".to_vec();
    sse.extend(frame(&role_chunk(0)));
    sse.extend(frame(&content_chunk(0, "Hello.")));
    sse.extend(frame(&finish_chunk(0, "stop")));
    sse.extend_from_slice(b"data: [DONE]\n\n");
    let r = run(
        EnforceOptions::default(),
        &chat("hi", true),
        true,
        vec![sse],
    )
    .await;
    let text = r.reply.text();
    // The comment still goes out (a keep-alive lets the head go), with the gateway's text.
    assert!(text.starts_with(": keep-alive\n\n"), "{text}");
    assert!(
        !text.contains("bomb") && !text.contains("example"),
        "{text}"
    );
}
