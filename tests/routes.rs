//! Canonical routes end to end: every spelling of an enforced path is enforced (or refused),
//! the upstream is called on the canonical path, routes without an adapter are refused by
//! default and passed, marked `skipped`, only with `other_routes: pass`.
//!
//! Regression: with the old default (`other_routes: pass`, routes matched on the raw path),
//! `/v1/chat/%63ompletions`, `/v1/chat%2Fcompletions`, `/v1/Chat/Completions`,
//! `/v1/chat//completions` and `/v1/chat/completions;x` went upstream unscanned and uninjected,
//! and servers that decode the path served them as chat completions.
#![allow(clippy::unwrap_used)]

mod common;

use common::raw::{RawReply, request};
use common::*;
use deliberate::proxy::OtherRoutes;
use serde_json::json;

const BLOCKED: &str = "how to build a pipe bomb";

fn ok_completion() -> serde_json::Value {
    json!({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
           "choices": [{"index": 0, "finish_reason": "stop",
                        "message": {"role": "assistant", "content": "fine"}}]})
}

fn body(text: &str) -> Vec<u8> {
    chat(text, false).to_string().into_bytes()
}

/// Spellings of `/v1/chat/completions`; `true`: enforced, `false`: refused with a 4xx.
const SPELLINGS: &[(&str, bool)] = &[
    ("/v1/chat/completions", true),
    ("/v1/chat/%63ompletions", true),
    ("/v1/chat%2Fcompletions", true),
    ("/v1/chat%2fcompletions", true),
    ("/v1/Chat/Completions", true),
    ("/V1/CHAT/COMPLETIONS", true),
    ("/v1/chat//completions", true),
    ("//v1/chat/completions", true),
    ("/v1/./chat/completions", true),
    ("/v1/x/../chat/completions", true),
    ("/v1/%2e%2e/v1/chat/completions", true),
    ("/v1/chat/completions;x", true),
    ("/v1;a/chat;b/completions;c=d", true),
    ("/v1/chat/completions/", true),
    ("/v1/chat/completions//", true),
    ("/v1/Chat%2F%2F./%43ompletions;x/", true),
    ("/v1/chat/completions?stream=false", true),
    // No canonical form: 400.
    ("/v1/chat/%2563ompletions", false),
    ("/v1/chat/completions%00", false),
    ("/v1/chat/%zzompletions", false),
    ("/v1/chat%5Ccompletions", false),
    ("/v1/chat\\completions", false),
    ("/v1/chat/compl%C3%A9tions", false),
    ("/v1/chat/completions%FF", false),
    // Not chat completions: refused.
    ("/v1/chat/completions%3Fx", false),
    ("/v1/chat/completions.json", false),
];

fn assert_enforced(r: &RawReply, spelling: &str) {
    assert_eq!(r.status, 200, "{spelling}: {:?}", r.json());
    assert!(
        r.header("x-deliberate-policy").starts_with("gateway-test@"),
        "{spelling}"
    );
    assert_eq!(r.header("x-deliberate-enforcement"), "full", "{spelling}");
}

#[tokio::test]
async fn every_spelling_of_chat_completions_is_enforced_or_refused() {
    let up = MockUpstream::start(|_| Script::json(200, &ok_completion())).await;
    let gw = Gateway::start(Some(up.url()), |_| {}).await;
    for (spelling, enforced) in SPELLINGS {
        let before = up.received().len();
        let r = request(gw.addr, "POST", spelling.as_bytes(), &body(BLOCKED)).await;
        if *enforced {
            assert_enforced(&r, spelling);
            assert_eq!(r.header("x-deliberate-action"), "block", "{spelling}");
            assert_eq!(r.json()["choices"][0]["finish_reason"], "content_filter");
            assert_eq!(up.received().len(), before, "{spelling}: upstream called");

            let r = request(gw.addr, "POST", spelling.as_bytes(), &body("hello")).await;
            assert_enforced(&r, spelling);
            assert_eq!(r.header("x-deliberate-action"), "allow", "{spelling}");
            let got = up.received();
            assert_eq!(got.len(), before + 1, "{spelling}");
            let rec = got.last().unwrap();
            let query = spelling.split_once('?').map(|(_, q)| q);
            let want = match query {
                Some(q) => format!("/v1/chat/completions?{q}"),
                None => "/v1/chat/completions".to_owned(),
            };
            assert_eq!(rec.path, want, "{spelling}: upstream path");
            // Injected: the spec went in front of the user's message.
            assert_eq!(rec.json()["messages"].as_array().unwrap().len(), 2);
        } else {
            assert!(
                r.status == 400 || r.status == 404,
                "{spelling}: {} {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            );
            assert_eq!(up.received().len(), before, "{spelling}: upstream called");
            if r.status == 400 && r.header("content-type") == "application/json" {
                let code = r.json()["error"]["code"].clone();
                assert_eq!(code, "invalid_path", "{spelling}");
            }
        }
    }
    gw.stop().await;
}

#[tokio::test]
async fn apis_without_an_adapter_are_refused_by_default() {
    let up = MockUpstream::start(|_| Script::json(200, &ok_completion())).await;
    let gw = Gateway::start(Some(up.url()), |_| {}).await;
    for path in [
        "/v1/responses/resp_1/input_items",
        "/v1/messages/count_tokens",
        "/v1/embeddings",
        "/v1/images/generations",
        "/v1/audio/transcriptions",
        "/v1/files",
        "/v1/fine_tuning/jobs",
        "/v1/assistants",
        "/v1/threads/t1/messages",
        "/v1/vector_stores",
        "/v1/batches",
        "/v1/uploads",
        "/v1/moderations",
        "/v1/something/new",
    ] {
        let r = request(gw.addr, "POST", path.as_bytes(), &body(BLOCKED)).await;
        assert_eq!(r.status, 404, "{path}");
        let err = &r.json()["error"];
        assert_eq!(err["code"], "route_not_enforced", "{path}");
        assert_eq!(err["type"], "invalid_request_error", "{path}");
        assert!(
            err["message"]
                .as_str()
                .unwrap()
                .contains("other_routes: pass"),
            "{path}: {err}"
        );
        assert!(r.header("x-deliberate-policy").starts_with("gateway-test@"));
    }
    // Stored chat completions carry text as well.
    let r = request(gw.addr, "GET", b"/v1/chat/completions", b"").await;
    assert_eq!(r.status, 404);
    assert!(up.received().is_empty(), "upstream called");
    // Admin routes still answer, on their canonical path too.
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/healthz/",
        "//metrics;x",
    ] {
        assert_eq!(get(&gw.url(path)).await.status, 200, "{path}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn other_routes_pass_is_explicit_and_marked_skipped() {
    let up =
        MockUpstream::start(|rec| Script::json(200, &json!({"object": "list", "path": rec.path})))
            .await;
    let gw = Gateway::start(Some(up.url()), |c| c.other_routes = OtherRoutes::Pass).await;
    for (spelling, canonical) in [
        ("/v1/moderations", "/v1/moderations"),
        ("/v1/Embeddings/", "/v1/embeddings"),
        ("/v1/files/file-AbC;x", "/v1/files/file-AbC"),
        ("/v1/x/../embeddings?a=1", "/v1/embeddings?a=1"),
        ("/v1/something/New", "/v1/something/New"),
    ] {
        let r = request(gw.addr, "POST", spelling.as_bytes(), br#"{"input":"x"}"#).await;
        assert_eq!(r.status, 200, "{spelling}");
        assert_eq!(
            r.header("x-deliberate-enforcement"),
            "skipped",
            "{spelling}"
        );
        assert!(r.header("x-deliberate-policy").starts_with("gateway-test@"));
        assert_eq!(r.json()["path"], canonical, "{spelling}");
        assert_eq!(up.received().last().unwrap().body, &br#"{"input":"x"}"#[..]);
    }
    // Chat completions stay enforced.
    let r = request(gw.addr, "POST", b"/v1/chat%2Fcompletions", &body(BLOCKED)).await;
    assert_eq!(r.header("x-deliberate-action"), "block");
    // Outside /v1, an unknown path is still not forwarded.
    let r = request(gw.addr, "GET", b"/nope", b"").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "unknown_url");
    let m = get(&gw.url("/metrics")).await.text();
    assert!(
        m.contains(
            "deliberate_requests_total{route=\"moderations\",status=\"200\",action=\"skipped\"} 1"
        ),
        "{m}"
    );
    gw.stop().await;
}

/// Every API with an adapter is enforced on every spelling of its route: a blocked phrase in
/// its own request shape never reaches the upstream.
#[tokio::test]
async fn apis_with_an_adapter_are_enforced_on_every_spelling() {
    let up = MockUpstream::start(|_| Script::json(200, &ok_completion())).await;
    let gw = Gateway::start(Some(up.url()), |_| {}).await;
    let responses = json!({"model": "m", "input": BLOCKED}).to_string();
    let completions = json!({"model": "m", "prompt": BLOCKED}).to_string();
    let messages = json!({"model": "m", "max_tokens": 16,
                          "messages": [{"role": "user", "content": BLOCKED}]})
    .to_string();
    let cases: [(&str, &str); 9] = [
        ("/v1/responses", &responses),
        ("/v1/Responses/", &responses),
        ("/v1/%72esponses;x", &responses),
        ("/v1/completions", &completions),
        ("/v1/%43ompletions", &completions),
        ("/v1/x/../completions/", &completions),
        ("/v1/messages", &messages),
        ("/v1//Messages", &messages),
        ("/v1/%6Dessages", &messages),
    ];
    for (path, req) in cases {
        let r = request(gw.addr, "POST", path.as_bytes(), req.as_bytes()).await;
        assert_eq!(
            r.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.header("x-deliberate-action"), "block", "{path}");
        assert_eq!(r.header("x-deliberate-enforcement"), "full", "{path}");
        assert!(
            !String::from_utf8_lossy(&r.body).contains("pipe bomb"),
            "{path}"
        );
    }
    assert!(up.received().is_empty(), "upstream called");
    gw.stop().await;
}
