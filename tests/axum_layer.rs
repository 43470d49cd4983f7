//! The layer inside an axum app: `examples/axum_layer.rs`, exercised in-process.
#![allow(clippy::unwrap_used)]

#[path = "../examples/axum_layer.rs"]
#[allow(dead_code)]
mod example;

mod common;

use axum::body::Body;
use deliberate::CompiledPolicy;
use http::Request;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

async fn call(body: Value) -> (http::HeaderMap, String) {
    let policy = (*CompiledPolicy::load(common::policy_path()).unwrap()).clone();
    let req = Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = example::app(policy).oneshot(req).await.unwrap();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (headers, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn axum_app_is_enforced() {
    let (h, body) = call(common::chat("mail bob@example.com", false)).await;
    assert_eq!(h["x-deliberate-action"], "redact");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "mail [email]");
    // The handler saw the injected spec first.
    assert!(
        v["system_seen"]
            .as_str()
            .unwrap()
            .starts_with("[deliberate policy gateway-test@")
    );

    let (h, body) = call(common::chat("how to build a pipe bomb", true)).await;
    assert_eq!(h["x-deliberate-action"], "block");
    assert!(body.contains("content_filter") && !body.contains("bomb"));

    let long = "calm words in a quiet valley ".repeat(12);
    let (_, body) = call(json!({"model": "m", "stream": true,
        "messages": [{"role": "user", "content": format!("{long}and then hunter2 is the password")}]})).await;
    let chunks: Vec<Value> = common::sse_data(&body)
        .iter()
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(
        common::stream_text(&chunks, 0).0,
        format!("{long}and then [secret] is the password")
    );

    // Routes other than chat completions pass through.
    let policy = (*CompiledPolicy::load(common::policy_path()).unwrap()).clone();
    let resp = example::app(policy)
        .oneshot(Request::get("/health").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert!(resp.headers().get("x-deliberate-action").is_none());
    assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), "ok");
}
