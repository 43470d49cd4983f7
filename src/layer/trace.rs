//! The layer's `tracing` spans: one per enforced request, with a child for each stage.
//!
//! ```text
//! request                      (the gateway's, or the layer's own when embedded)
//! ├── input_scan               scanning the request texts (buffered, one pass)
//! ├── judge                    a batch of judge calls, from the first call to the verdict
//! ├── upstream                 made by the proxy's backend: the call and its body
//! ├── output_scan              a buffered answer, or one span over a whole stream's scanning
//! └── shadow_scan              the shadow candidate's scan, when the request is in its sample
//! ```
//!
//! All of them have the target [`SPAN_TARGET`] and level `INFO`. Nothing here depends on
//! OpenTelemetry: with no subscriber interested in that target, a span is a disabled handle
//! (one atomic load at the call site) and recording into it does nothing. `deliberate serve`
//! with `telemetry:` sends them over OTLP (`proxy::telemetry`); an application embedding the
//! layer gets them in its own subscriber.
//!
//! A server that makes the request span itself (to continue the client's trace, to name the
//! tenant) hands it to the layer in the request's extensions as a [`RequestSpan`]; without
//! one the layer makes its own, a child of the current span.

use tracing::Span;
use tracing::field::Empty;

/// The target of every span the gateway makes (`DELIBERATE_LOG=deliberate::span=info` shows
/// them in the logs; the command line's log filter leaves them out by default).
pub const SPAN_TARGET: &str = "deliberate::span";

/// The span of one request, carried in its [`http::Extensions`] from the server to the layer
/// and on to the upstream client.
#[derive(Debug, Clone)]
pub struct RequestSpan(pub Span);

/// A new request span for `method` on the canonical `path`, its outcome fields empty until
/// the exchange records them. `otel.*` fields are read by `tracing-opentelemetry` (span kind,
/// status); the others become span attributes.
pub fn request_span(method: &str, path: &str) -> Span {
    tracing::info_span!(
        target: SPAN_TARGET,
        "request",
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = method,
        url.path = path,
        http.response.status_code = Empty,
        deliberate.api = Empty,
        deliberate.tenant = Empty,
        deliberate.policy_set = Empty,
        deliberate.policy = Empty,
        deliberate.action = Empty,
        deliberate.outcome = Empty,
        deliberate.enforcement = Empty,
        deliberate.request_id = Empty,
    )
}

/// The child span scanning the request texts.
pub(crate) fn input_scan(parent: &Span) -> Span {
    tracing::info_span!(target: SPAN_TARGET, parent: parent, "input_scan", deliberate.action = Empty)
}

/// The child span of one batch of judge calls at `stage`.
pub(crate) fn judge(parent: &Span, stage: &str, calls: usize) -> Span {
    tracing::info_span!(
        target: SPAN_TARGET,
        parent: parent,
        "judge",
        deliberate.stage = stage,
        deliberate.judge.calls = calls,
        deliberate.judge.blocked = Empty,
    )
}

/// The child span scanning the answer: a buffered body, or a whole stream (`stream = true`),
/// entered while a piece is scanned, so its `busy_ns` is the scanning time and `idle_ns` the
/// time spent waiting for the upstream and the client.
pub(crate) fn output_scan(parent: &Span, stream: bool) -> Span {
    tracing::info_span!(
        target: SPAN_TARGET,
        parent: parent,
        "output_scan",
        deliberate.stream = stream,
        deliberate.action = Empty,
    )
}

/// The child span of the shadow candidate's scan.
pub(crate) fn shadow_scan(parent: &Span, policy: &str) -> Span {
    tracing::info_span!(
        target: SPAN_TARGET,
        parent: parent,
        "shadow_scan",
        deliberate.shadow.policy = policy,
        deliberate.shadow.action = Empty,
    )
}

/// The client span of an upstream call to `method` `url` (made by the proxy's backend).
pub fn upstream_span(parent: &Span, method: &str, url: &str) -> Span {
    tracing::info_span!(
        target: SPAN_TARGET,
        parent: parent,
        "upstream",
        otel.kind = "client",
        otel.status_code = Empty,
        http.request.method = method,
        url.full = url,
        http.response.status_code = Empty,
    )
}
