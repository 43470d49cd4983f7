//! The upstream: an HTTP(S) client to a real OpenAI-compatible endpoint, or the built-in echo.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, HOST, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{HeaderMap, Request, Response, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower::Service;

use super::body::ProxyBody;
use super::client::{ClientBuilder, HttpsClient};
use super::config::{Timeouts, UpstreamConfig};
use super::echo::Echo;
use super::telemetry;
use crate::layer::trace::{RequestSpan, upstream_span};
use crate::layer::{BoxError, RequestBody, TimeoutPhase, UpstreamTimeout};
use tracing::Instrument as _;

/// What the gateway forwards to: a real endpoint or the echo.
#[derive(Clone, Debug)]
pub enum Backend {
    /// An HTTP(S) endpoint.
    Http(std::sync::Arc<HttpUpstream>),
    /// The built-in echo.
    Echo(Echo),
}

impl Backend {
    /// `echo`, or the upstream's base URL.
    pub fn describe(&self) -> String {
        match self {
            Backend::Http(h) => h.base.to_string(),
            Backend::Echo(_) => "echo".to_owned(),
        }
    }
}

impl Service<Request<RequestBody<Incoming>>> for Backend {
    type Response = Response<ProxyBody>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<RequestBody<Incoming>>) -> Self::Future {
        let parent = req.extensions().get::<RequestSpan>().map(|s| &s.0);
        match self {
            Backend::Http(h) => {
                let span = parent.map_or_else(tracing::Span::none, |p| h.span(p, &req));
                Box::pin(h.clone().forward(req, span))
            }
            Backend::Echo(e) => {
                let span = parent.map_or_else(tracing::Span::none, |p| {
                    upstream_span(p, req.method().as_str(), "echo")
                });
                Box::pin(e.clone().answer(req).instrument(span))
            }
        }
    }
}

/// A pooled HTTP/1.1 and HTTP/2 client (TLS with the webpki roots) to one base URL, built by
/// [`super::client::ClientBuilder`].
#[derive(Clone, Debug)]
pub struct HttpUpstream {
    client: HttpsClient<RequestBody<Incoming>>,
    base: Uri,
    api_key: Option<HeaderValue>,
    replace_authorization: bool,
    timeouts: Timeouts,
}

/// Why an upstream client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamConfigError {
    /// The URL is not an absolute `http`/`https` URL.
    #[error("upstream url `{0}` must be an absolute http:// or https:// URL")]
    Url(String),
    /// TLS setup failed.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// The API key has characters a header cannot carry.
    #[error("the upstream API key from ${0} is not a valid header value")]
    Key(String),
}

impl HttpUpstream {
    /// A client for `cfg`.
    pub fn new(cfg: &UpstreamConfig, timeouts: Timeouts) -> Result<Self, UpstreamConfigError> {
        let base: Uri = cfg
            .url
            .trim_end_matches('/')
            .parse()
            .map_err(|_| UpstreamConfigError::Url(cfg.url.clone()))?;
        if !matches!(base.scheme_str(), Some("http" | "https")) || base.authority().is_none() {
            return Err(UpstreamConfigError::Url(cfg.url.clone()));
        }
        let api_key = match &cfg.api_key_env {
            Some(var) => match std::env::var(var) {
                Ok(k) if !k.is_empty() => Some(
                    HeaderValue::from_str(&format!("Bearer {k}"))
                        .map_err(|_| UpstreamConfigError::Key(var.clone()))?,
                ),
                _ => {
                    tracing::warn!(var = %var, "upstream api_key_env is set but the variable is empty or missing");
                    None
                }
            },
            None => None,
        };
        let client = ClientBuilder::new()
            .connect_timeout(timeouts.connect)
            .http2(true)
            .pool(cfg.pool_max_idle_per_host, cfg.pool_idle_timeout)
            .build()
            .map_err(|e| UpstreamConfigError::Tls(e.to_string()))?;
        let mut base_with_path = base;
        if base_with_path.path() == "/" {
            base_with_path = Uri::builder()
                .scheme(base_with_path.scheme_str().unwrap_or("http"))
                .authority(
                    base_with_path
                        .authority()
                        .map(|a| a.as_str())
                        .unwrap_or_default(),
                )
                .path_and_query("")
                .build()
                .map_err(|_| UpstreamConfigError::Url(cfg.url.clone()))?;
        }
        Ok(HttpUpstream {
            client,
            base: base_with_path,
            api_key,
            replace_authorization: cfg.replace_authorization,
            timeouts,
        })
    }

    /// `host:port` of the upstream, what the readiness probe connects to.
    pub(crate) fn authority(&self) -> String {
        let host = self.base.host().unwrap_or_default();
        let port = self
            .base
            .port_u16()
            .unwrap_or(match self.base.scheme_str() {
                Some("https") => 443,
                _ => 80,
            });
        if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        }
    }

    /// The upstream URL for a gateway request URI: `/v1/x?q` → `<base>/x?q`.
    fn target(&self, uri: &Uri) -> Result<Uri, BoxError> {
        let path = uri.path();
        let rest = path.strip_prefix("/v1").unwrap_or(path);
        let base_path = self.base.path().trim_end_matches('/');
        let mut pq = format!("{base_path}{rest}");
        if let Some(q) = uri.query() {
            pq.push('?');
            pq.push_str(q);
        }
        let pq: PathAndQuery = pq.parse()?;
        let mut parts = self.base.clone().into_parts();
        parts.path_and_query = Some(pq);
        Ok(Uri::from_parts(parts)?)
    }

    /// The `upstream` span of `req`, a child of `parent`: method and URL without the query.
    fn span(&self, parent: &tracing::Span, req: &Request<RequestBody<Incoming>>) -> tracing::Span {
        if parent.is_disabled() {
            return tracing::Span::none();
        }
        let url = match self.target(req.uri()) {
            Ok(u) => format!(
                "{}://{}{}",
                u.scheme_str().unwrap_or("http"),
                u.authority().map_or("", |a| a.as_str()),
                u.path()
            ),
            Err(_) => self.base.to_string(),
        };
        upstream_span(parent, req.method().as_str(), &url)
    }

    async fn forward(
        self: std::sync::Arc<Self>,
        req: Request<RequestBody<Incoming>>,
        span: tracing::Span,
    ) -> Result<Response<ProxyBody>, BoxError> {
        let res = self.forward_in(req, &span).await;
        match &res {
            Ok(r) => {
                span.record("http.response.status_code", r.status().as_u16());
                if r.status().is_server_error() {
                    span.record("otel.status_code", "error");
                }
            }
            Err(_) => {
                span.record("otel.status_code", "error");
            }
        }
        if span.is_disabled() {
            return res;
        }
        // The span stays open until the upstream body ended.
        res.map(|r| r.map(|b| telemetry::InSpan::new(b, span).boxed_unsync()))
    }

    async fn forward_in(
        &self,
        req: Request<RequestBody<Incoming>>,
        span: &tracing::Span,
    ) -> Result<Response<ProxyBody>, BoxError> {
        let started = Instant::now();
        let total_deadline = started + self.timeouts.total;
        let (mut parts, body) = req.into_parts();
        parts.uri = self.target(&parts.uri)?;
        parts.version = Version::HTTP_11;
        strip_hop_by_hop(&mut parts.headers);
        parts.headers.remove(HOST);
        // The upstream continues the gateway's trace (its `traceparent` replaces the client's).
        telemetry::inject(span, &mut parts.headers);
        if let Some(key) = &self.api_key
            && (self.replace_authorization || !parts.headers.contains_key(AUTHORIZATION))
        {
            parts.headers.insert(AUTHORIZATION, key.clone());
        }
        let (wait, phase) = if self.timeouts.first_byte < self.timeouts.total {
            (self.timeouts.first_byte, TimeoutPhase::FirstByte)
        } else {
            (self.timeouts.total, TimeoutPhase::Total)
        };
        let fut = self.client.request(Request::from_parts(parts, body));
        let resp = match tokio::time::timeout(wait, fut).await {
            Err(_) => return Err(Box::new(UpstreamTimeout { phase, after: wait })),
            Ok(Err(e)) => {
                if e.is_connect() && is_timeout(&e) {
                    return Err(Box::new(UpstreamTimeout {
                        phase: TimeoutPhase::Connect,
                        after: self.timeouts.connect,
                    }));
                }
                return Err(Box::new(e));
            }
            Ok(Ok(r)) => r,
        };
        let (mut parts, body) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        let body = TimedBody::new(
            body,
            self.timeouts.idle,
            total_deadline,
            self.timeouts.total,
        );
        Ok(Response::from_parts(parts, body.boxed_unsync()))
    }
}

fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        if e.to_string().contains("timed out") || e.to_string().contains("timeout") {
            return true;
        }
        cur = e.source();
    }
    false
}

/// Removes the hop-by-hop headers (RFC 9110 §7.6.1) and those the `Connection` header names.
pub(crate) fn strip_hop_by_hop(h: &mut HeaderMap) {
    use http::header::{
        CONNECTION, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING,
        UPGRADE,
    };
    // Named by value, not parsed from strings on every request.
    const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
    const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
    if h.contains_key(CONNECTION) {
        let named: Vec<HeaderName> = h
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .collect();
        for n in named {
            h.remove(n);
        }
    }
    for n in [
        CONNECTION,
        KEEP_ALIVE,
        PROXY_CONNECTION,
        PROXY_AUTHENTICATE,
        PROXY_AUTHORIZATION,
        TE,
        TRAILER,
        TRANSFER_ENCODING,
        UPGRADE,
    ] {
        h.remove(n);
    }
}

pin_project! {
    /// An upstream body with an idle timeout (between two frames) and a total deadline.
    pub struct TimedBody<B> {
        #[pin]
        inner: B,
        idle: Duration,
        total: Duration,
        #[pin]
        idle_sleep: Sleep,
        #[pin]
        total_sleep: Sleep,
        done: bool,
    }
}

impl<B> TimedBody<B> {
    /// Wraps `inner`.
    pub fn new(inner: B, idle: Duration, deadline: Instant, total: Duration) -> Self {
        TimedBody {
            inner,
            idle,
            total,
            idle_sleep: tokio::time::sleep(idle),
            total_sleep: tokio::time::sleep_until(deadline),
            done: false,
        }
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => {
                let next = Instant::now() + *this.idle;
                this.idle_sleep.as_mut().reset(next);
                Poll::Ready(Some(Ok(f)))
            }
            Poll::Ready(Some(Err(e))) => {
                *this.done = true;
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                *this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => {
                let phase = if this.total_sleep.as_mut().poll(cx).is_ready() {
                    Some((TimeoutPhase::Total, *this.total))
                } else if this.idle_sleep.as_mut().poll(cx).is_ready() {
                    Some((TimeoutPhase::Idle, *this.idle))
                } else {
                    None
                };
                match phase {
                    Some((phase, after)) => {
                        *this.done = true;
                        Poll::Ready(Some(Err(Box::new(UpstreamTimeout { phase, after }))))
                    }
                    None => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hop-by-hop headers (the fixed list and those the `Connection` header names) are not
    /// forwarded; every other header is.
    #[test]
    fn strips_hop_by_hop_headers() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, x-private"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("proxy-authenticate", "Basic"),
            ("proxy-authorization", "Basic abc"),
            ("te", "trailers"),
            ("trailer", "x-t"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("x-private", "1"),
            ("authorization", "Bearer k"),
            ("content-type", "application/json"),
        ] {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        strip_hop_by_hop(&mut h);
        let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["authorization", "content-type"]);

        let mut plain = HeaderMap::new();
        plain.insert(AUTHORIZATION, HeaderValue::from_static("Bearer k"));
        strip_hop_by_hop(&mut plain);
        assert_eq!(plain.len(), 1);
    }
}
