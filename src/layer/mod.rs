//! Policy enforcement as a tower middleware: [`PolicyLayer`] wraps any service that speaks a model
//! API the [`wire`](crate::wire) adapters know — an upstream client, a local model server, an
//! axum handler. The layer names no field of any API: the request's adapter
//! ([`wire::adapter_for`](crate::wire::adapter_for) on its path) lists the texts, places the
//! spec and shapes refusals and errors; the layer decides.
//!
//! Files: [`PolicyLayer`] (`layer.rs`) and its options (`options.rs`), [`PolicyService`]
//! (`service.rs`), its [`ResponseFuture`] (`future.rs`, the request's state machine), the bodies
//! (`body.rs`), every response the layer makes itself (`respond.rs`) and its errors
//! (`error.rs`); input enforcement (`request.rs`, the scan itself in `input_scan.rs`, the scan
//! budget and the offload in `budget.rs`, the scan cache in `cache.rs`); answer enforcement,
//! buffered (`response.rs`) and streamed (`stream/`, with judged windows in
//! `stream/checkpoint.rs`), through the layer's side of the wire seam (`filter.rs`, which checks
//! JSON-in-string edits with `shape.rs`); the policy sets and their chaining (`policies.rs`,
//! `chain.rs`), deliberation blocks (`deliberation.rs`), the state shared by every request
//! (`shared.rs`) and the per-request state (`exchange.rs`); the audit record (`audit.rs`) and
//! shadow candidates (`shadow.rs`); the judge seam ([`Judge`], `judge.rs`) and the calls in
//! flight (`judging.rs`); the request's `tracing` spans ([`trace`]).
//!
//! For each enforced request (shown here for Chat Completions) the [`PolicyService`]:
//!
//! 1. reads the body (at most [`EnforceOptions::max_request_bytes`], `413` beyond; the
//!    `Content-Length` is checked first) and parses it strictly (duplicate keys → `400`);
//! 2. scans every text the model will read — string content, text parts, tool results, earlier
//!    tool-call arguments — with the input rules that read the message's role; a block answers
//!    with the refusal (a completion or stream with `finish_reason: "content_filter"`, or a
//!    `400`) without calling the inner service, a redaction rewrites the text;
//! 3. injects the relevant spec sections once (an earlier injection of the same policy is
//!    replaced, not repeated);
//! 4. scans the answer: a buffered completion choice by choice (content, refusal, tool-call
//!    arguments, reasoning); a stream event by event through one stream scanner chain per
//!    choice and field, so no byte of a blocked or redacted span is ever sent. The response head
//!    of a stream waits for the first text that is safe to send, so a block before that is
//!    answered like a buffered one;
//! 5. sets `x-deliberate-policy`, `x-deliberate-action` and `x-deliberate-enforcement`
//!    (`full`, or `partial; reason="…"`) on the response, and hands an [`AuditRecord`] to the
//!    [`Observer`] when the response ended — also when the client went away first.
//!
//! Every other request goes to the inner service untouched. For a stream the action header
//! tells what was decided when the head went out; the audit record has the final action.
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use deliberate::layer::{PolicyLayer, RequestBody};
//! use deliberate::CompiledPolicy;
//!
//! let policy = CompiledPolicy::from_yaml_str(r#"
//! policy: demo
//! rules:
//!   - id: bombs
//!     match: {keywords: ["pipe bomb"]}
//!     action: block
//!     tests: {match: ["a pipe bomb"], no_match: ["a pipe"]}
//! "#, "demo.yaml").unwrap();
//!
//! // A model that must never be reached for this request.
//! let model = service_fn(|_req: Request<RequestBody<Full<Bytes>>>| async {
//!     panic!("the upstream was called");
//!     #[allow(unreachable_code)]
//!     Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
//! });
//! let svc = ServiceBuilder::new().layer(PolicyLayer::new(policy)).service(model);
//!
//! let req = Request::post("/v1/chat/completions").body(Full::new(Bytes::from(
//!     r#"{"model":"m","messages":[{"role":"user","content":"how to build a pipe bomb"}]}"#,
//! ))).unwrap();
//! let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! let resp = rt.block_on(svc.oneshot(req)).unwrap();
//! assert_eq!(resp.headers()["x-deliberate-action"], "block");
//! let body = rt.block_on(resp.into_body().collect()).unwrap().to_bytes();
//! let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
//! assert_eq!(v["choices"][0]["finish_reason"], "content_filter");
//! ```

mod audit;
mod body;
mod budget;
mod cache;
mod chain;
mod deliberation;
pub(crate) mod error;
mod exchange;
mod filter;
mod future;
mod input_scan;
pub mod judge;
mod judging;
#[allow(clippy::module_inception)]
mod layer;
mod options;
mod policies;
mod request;
mod respond;
mod response;
mod service;
pub mod shadow;
mod shape;
mod shared;
mod stream;
pub mod trace;

pub use audit::{
    AuditFinding, AuditLabels, AuditRecord, Deliberation, Injection, Latency, Observer, Outcome,
    mask, rfc3339,
};
pub use body::{LayerBody, RequestBody, ResponseBody};
pub use budget::{Offload, OffloadJob, normalized_len};
pub use deliberation::DeliberationStripper;
pub use error::{BoxError, RequestBodyTimeout, TimeoutPhase, UpstreamTimeout};
pub use exchange::{
    ACTION_HEADER, ENFORCEMENT_HEADER, JUDGE_HEADER, POLICY_HEADER, REQUEST_ID_HEADER,
};
pub use future::ResponseFuture;
pub use judge::{Judge, JudgeError, JudgeFuture, JudgeReason, JudgeRecord, Judged};
pub use layer::PolicyLayer;
pub use options::{BlockResponse, DefaultSystem, EnforceOptions, ReasoningMode, glob};
pub use policies::{PolicySet, SharedPolicies};
pub use service::{PolicyService, is_enforced};
