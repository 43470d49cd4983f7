//! The OTLP exporter (the `otel` feature): a tracer provider with a batch span processor, an
//! OTLP/HTTP protobuf exporter over the gateway's hyper client, and the `tracing` layer that
//! turns the gateway's spans into OpenTelemetry spans.
//!
//! A request never waits on the exporter: a finished span goes into the batch processor's
//! bounded queue (2048 spans by default; when it is full, spans are dropped, never waited for).
//! The processor's own thread collects batches (every 5 s or 512 spans) and hands each to
//! [`ExportClient`], which runs the HTTP call on the tokio runtime and waits for it with the
//! export timeout. A collector that cannot be reached costs that thread's time, not a
//! request's, and is reported by one warning a minute at most.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt, Full, Limited};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_http::{HeaderExtractor, HeaderInjector, HttpClient, HttpError};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchSpanProcessor, Sampler, SdkTracerProvider, Tracer};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::registry::LookupSpan;

use super::TelemetryConfig;
use crate::layer::trace::SPAN_TARGET;
use crate::proxy::client::{ClientBuilder, HttpsClient};

/// At most one export warning per this long.
const WARN_EVERY: Duration = Duration::from_secs(60);
/// The largest collector answer read (an OTLP answer is a few bytes).
const MAX_ANSWER_BYTES: usize = 64 << 10;
/// How long shutdown waits for the last spans to be sent.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Why traces could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// The endpoint is not an absolute `http`/`https` URL.
    #[error("telemetry otlp_endpoint `{0}` must be an absolute http:// or https:// URL")]
    Endpoint(String),
    /// TLS setup for an `https://` collector failed.
    #[error("TLS setup for the OTLP exporter failed: {0}")]
    Tls(String),
    /// The OTLP exporter refused its settings.
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(String),
}

/// The running exporter. Install [`Telemetry::layer`] in the subscriber; call
/// [`Telemetry::shutdown`] after the server drained, so the last spans are sent.
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
    tracer: Tracer,
    url: String,
}

impl Telemetry {
    /// Builds the exporter for `cfg`; its HTTP calls run on `runtime`.
    pub fn start(
        cfg: &TelemetryConfig,
        runtime: tokio::runtime::Handle,
    ) -> Result<Telemetry, TelemetryError> {
        let url = cfg.traces_url();
        let uri: Uri = url
            .parse()
            .map_err(|_| TelemetryError::Endpoint(cfg.otlp_endpoint.clone()))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
            return Err(TelemetryError::Endpoint(cfg.otlp_endpoint.clone()));
        }
        let client = ExportClient {
            client: ClientBuilder::new()
                .connect_timeout(cfg.export_timeout)
                .pool(2, Duration::from_secs(90))
                .build()
                .map_err(|e| TelemetryError::Tls(e.to_string()))?,
            runtime,
            timeout: cfg.export_timeout,
            warnings: Mutex::new(Warnings::default()),
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url.clone())
            .with_timeout(cfg.export_timeout)
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name(cfg.service_name.clone())
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(BatchSpanProcessor::builder(exporter).build())
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                cfg.sample_ratio,
            ))))
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("deliberate");
        Ok(Telemetry {
            provider,
            tracer,
            url,
        })
    }

    /// Where spans go.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The `tracing` layer that records the gateway's spans (target [`SPAN_TARGET`]) and
    /// nothing else: log events stay logs.
    pub fn layer<S>(&self) -> impl Layer<S> + use<S>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.tracer.clone())
            .with_location(false)
            .with_filter(Targets::new().with_target(SPAN_TARGET, tracing::Level::INFO))
    }

    /// Sends the spans still queued (waiting at most 5 s) and stops the exporter.
    pub async fn shutdown(self) {
        let provider = self.provider;
        let done =
            tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(FLUSH_TIMEOUT))
                .await;
        match done {
            Ok(Ok(())) => tracing::debug!("traces flushed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "could not flush the last traces"),
            Err(e) => tracing::warn!(error = %e, "could not flush the last traces"),
        }
    }
}

/// Continues the client's trace in `span` (see [`super::continue_trace`]).
pub(super) fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    if span.is_disabled() || !headers.contains_key("traceparent") {
        return;
    }
    let cx = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    if cx.span().span_context().is_valid() {
        // Fails only when no tracer records the span (no OpenTelemetry layer): nothing to do.
        let _ = span.set_parent(cx);
    }
}

/// Writes `span`'s trace context into `headers` (see [`super::inject`]).
pub(super) fn inject(span: &tracing::Span, headers: &mut http::HeaderMap) {
    if span.is_disabled() {
        return;
    }
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return;
    }
    TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(headers));
}

/// The exporter's HTTP client: the gateway's hyper + rustls client, its calls spawned on the
/// tokio runtime (the batch processor calls from its own thread), failures warned about once
/// a minute at most.
#[derive(Debug)]
struct ExportClient {
    client: HttpsClient<Full<Bytes>>,
    runtime: tokio::runtime::Handle,
    timeout: Duration,
    warnings: Mutex<Warnings>,
}

/// When the last warning went out, and how many failures were not reported since.
#[derive(Debug, Default)]
struct Warnings {
    last: Option<Instant>,
    suppressed: u64,
}

impl ExportClient {
    /// Logs an export failure, unless one was logged less than [`WARN_EVERY`] ago.
    fn warn(&self, url: &Uri, problem: &str) {
        let Ok(mut w) = self.warnings.lock() else {
            return;
        };
        let now = Instant::now();
        if w.last.is_some_and(|t| now.duration_since(t) < WARN_EVERY) {
            w.suppressed += 1;
            return;
        }
        let suppressed = std::mem::take(&mut w.suppressed);
        w.last = Some(now);
        drop(w);
        tracing::warn!(
            %url,
            problem,
            failures_not_logged = suppressed,
            "cannot export traces to the OTLP collector; their spans are dropped (this warning \
             repeats once a minute at most)"
        );
    }
}

#[async_trait::async_trait]
impl HttpClient for ExportClient {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, HttpError> {
        let url = request.uri().clone();
        let client = self.client.clone();
        let timeout = self.timeout;
        let call = self.runtime.spawn(async move {
            let exchange = async {
                let resp = client.request(request.map(Full::new)).await?;
                let (parts, body) = resp.into_parts();
                let body = Limited::new(body, MAX_ANSWER_BYTES).collect().await?;
                Ok::<_, HttpError>(http::Response::from_parts(parts, body.to_bytes()))
            };
            match tokio::time::timeout(timeout, exchange).await {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {timeout:?}").into()),
            }
        });
        let res = match call.await {
            Ok(r) => r,
            // The runtime is shutting down.
            Err(e) => Err(Box::new(e) as HttpError),
        };
        match &res {
            Err(e) => self.warn(&url, &e.to_string()),
            Ok(r) if !r.status().is_success() => {
                self.warn(&url, &format!("the collector answered {}", r.status()));
            }
            Ok(_) => {}
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unreachable collector logs once, then counts quietly until a minute has passed.
    #[test]
    fn warnings_are_rate_limited() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let c = ExportClient {
            client: ClientBuilder::new().build().unwrap(),
            runtime: rt.handle().clone(),
            timeout: Duration::from_secs(1),
            warnings: Mutex::new(Warnings::default()),
        };
        let url: Uri = "http://127.0.0.1:9/v1/traces".parse().unwrap();
        for _ in 0..5 {
            c.warn(&url, "refused");
        }
        let w = c.warnings.lock().unwrap();
        assert!(w.last.is_some());
        assert_eq!(w.suppressed, 4);
    }
}
