//! The policy layer inside an axum app.
//!
//! A toy "model" answers `POST /v1/chat/completions` by repeating the last user message
//! (streamed word by word when asked); [`PolicyLayer`] in front of it scans the request,
//! injects the spec, and scans the answer — the handler never sees a blocked request, the
//! client never sees a blocked answer.
//!
//! ```text
//! cargo run --example axum_layer -- tests/fixtures/gateway.yaml
//! curl -s localhost:3000/v1/chat/completions \
//!   -d '{"model":"m","messages":[{"role":"user","content":"mail bob@example.com"}]}'
//! ```

use std::convert::Infallible;

use axum::Router;
use axum::body::Body;
use axum::extract::Json;
use axum::http::{Response, header};
use axum::routing::{get, post};
use deliberate::CompiledPolicy;
use deliberate::layer::{EnforceOptions, PolicyLayer};
use serde_json::{Value, json};

/// The app: a model route behind the policy layer, and a route the layer passes through.
pub fn app(policy: CompiledPolicy) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(model))
        .route("/health", get(|| async { "ok" }))
        .layer(PolicyLayer::new(policy).options(EnforceOptions::default()))
}

/// A stand-in for a model: repeats the last user message.
async fn model(Json(req): Json<Value>) -> Response<Body> {
    let last = req["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_owned();
    let system = req["messages"][0]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if req["stream"] == true {
        let mut events: Vec<Result<String, Infallible>> = Vec::new();
        for word in last.split_inclusive(' ') {
            let chunk = json!({"id": "chatcmpl-axum", "object": "chat.completion.chunk", "created": 0,
                "model": "toy", "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": null}]});
            events.push(Ok(format!("data: {chunk}\n\n")));
        }
        let done = json!({"id": "chatcmpl-axum", "object": "chat.completion.chunk", "created": 0,
            "model": "toy", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
        events.push(Ok(format!("data: {done}\n\ndata: [DONE]\n\n")));
        return Response::builder()
            .header(header::CONTENT_TYPE, "text/event-stream")
            .body(Body::from_stream(futures_util::stream::iter(events)))
            .unwrap_or_default();
    }
    let body = json!({
        "id": "chatcmpl-axum", "object": "chat.completion", "created": 0, "model": "toy",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": last}}],
        "system_seen": system,
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap_or_default()
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "tests/fixtures/gateway.yaml".to_owned());
    let policy = CompiledPolicy::load(&path)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!(
        "listening on http://{} with policy {}",
        listener.local_addr()?,
        policy.label()
    );
    axum::serve(listener, app((*policy).clone())).await?;
    Ok(())
}
