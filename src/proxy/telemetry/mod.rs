//! Traces: the request spans of [`crate::layer::trace`] sent over OTLP, and W3C trace context
//! carried from the client through the gateway to the upstream.
//!
//! Off unless the serve config has `telemetry:` ([`TelemetryConfig`]). With the `otel` feature
//! (in `default`), [`Telemetry::start`] builds the exporter: OTLP/HTTP with protobuf bodies,
//! sent through the gateway's own hyper + rustls client ([`crate::proxy::client`]) from a
//! batch processor, so a request only ever hands a finished span to a bounded queue. Without
//! the feature, a config that asks for traces is refused at start.
//!
//! Propagation ([`continue_trace`], [`inject`]): a request carrying a valid `traceparent` (and
//! `tracestate`) continues that trace; otherwise a new one starts. The upstream request carries
//! the `traceparent` of the gateway's `upstream` span in place of the client's. Without a
//! tracer (telemetry off), both do nothing and a client's `traceparent` goes upstream as it
//! came.

#[cfg(feature = "otel")]
mod export;

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

#[cfg(feature = "otel")]
pub use export::{Telemetry, TelemetryError};

/// The `telemetry:` section of the serve config.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// The OTLP/HTTP endpoint: a collector's base URL (`http://otel-collector:4318`), to which
    /// `/v1/traces` is added, or the full URL of its traces route (ending in `/v1/traces`).
    pub otlp_endpoint: String,
    /// `service.name` of the spans.
    pub service_name: String,
    /// Share of new traces recorded, `0.0..=1.0`. A request that continues a client's trace
    /// follows the client's sampled flag instead.
    pub sample_ratio: f64,
    /// How long one export (retries included) may take before its spans are dropped.
    pub export_timeout: Duration,
}

// `sample_ratio` is checked to be within 0..=1 when read, so never NaN.
impl Eq for TelemetryConfig {}

impl TelemetryConfig {
    /// Defaults for `otlp_endpoint`: service `deliberate`, every trace, 10 s exports.
    pub fn new(otlp_endpoint: impl Into<String>) -> Self {
        TelemetryConfig {
            otlp_endpoint: otlp_endpoint.into(),
            service_name: "deliberate".to_owned(),
            sample_ratio: 1.0,
            export_timeout: Duration::from_secs(10),
        }
    }

    /// The URL spans are posted to.
    pub fn traces_url(&self) -> String {
        let base = self.otlp_endpoint.trim_end_matches('/');
        if base.ends_with("/v1/traces") {
            base.to_owned()
        } else {
            format!("{base}/v1/traces")
        }
    }
}

/// Makes `span` continue the trace of the client's `traceparent` / `tracestate` headers, when
/// they hold a valid one. Must run before `span` is entered or has children.
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    #[cfg(feature = "otel")]
    export::continue_trace(span, headers);
    #[cfg(not(feature = "otel"))]
    let _ = (span, headers);
}

/// Puts the W3C trace context of `span` into `headers` (`traceparent`, `tracestate`),
/// replacing the client's. Does nothing when `span` is not recorded by a tracer.
pub fn inject(span: &tracing::Span, headers: &mut http::HeaderMap) {
    #[cfg(feature = "otel")]
    export::inject(span, headers);
    #[cfg(not(feature = "otel"))]
    let _ = (span, headers);
}

pin_project! {
    /// A response body that keeps a span open until the body ends or is dropped: a request
    /// span then covers the whole answer, streams included.
    pub struct InSpan<B> {
        #[pin]
        inner: B,
        span: Option<tracing::Span>,
    }
}

impl<B> InSpan<B> {
    /// Wraps `inner`.
    pub fn new(inner: B, span: tracing::Span) -> Self {
        InSpan {
            inner,
            span: Some(span),
        }
    }
}

impl<B: Body> Body for InSpan<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let r = this.inner.poll_frame(cx);
        if matches!(r, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            this.span.take();
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_url_adds_the_signal_path_once() {
        for (given, url) in [
            ("http://c:4318", "http://c:4318/v1/traces"),
            ("http://c:4318/", "http://c:4318/v1/traces"),
            ("http://c:4318/v1/traces", "http://c:4318/v1/traces"),
            ("https://c/otlp", "https://c/otlp/v1/traces"),
        ] {
            assert_eq!(TelemetryConfig::new(given).traces_url(), url, "{given}");
        }
    }
}
