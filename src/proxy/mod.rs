//! `deliberate serve`: the gateway as an HTTP server.
//!
//! [`run`] serves HTTP/1.1 and HTTP/2 (h2c, prior knowledge) on a listener until a shutdown
//! future completes, then stops accepting and lets open requests finish (up to
//! [`Timeouts::shutdown_grace`]). Routes:
//!
//! - `POST /v1/chat/completions`: enforced by the [`PolicyLayer`](crate::layer::PolicyLayer),
//!   then forwarded to the upstream;
//! - other `/v1/*`: forwarded untouched, or refused with `403` ([`OtherRoutes`]);
//! - `GET /healthz` (alive), `/readyz` (policy loaded; names it and the upstream), `/metrics`
//!   (Prometheus text format).
//!
//! With no upstream configured, the built-in [`Echo`] answers.
//!
//! ```no_run
//! use deliberate::proxy::{Config, run};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let config = Config { policies: vec!["policies/default.yaml".into()], ..Config::default() };
//! run(listener, config, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```

mod audit;
pub mod client;
mod config;
mod echo;
mod metrics;
mod reload;
mod upstream;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::{Layer, Service, ServiceExt};
use tower_http::catch_panic::CatchPanicLayer;

pub use audit::{AuditLog, ProxyObserver};
pub use config::{
    Config, ConfigError, OtherRoutes, Timeouts, UpstreamConfig, parse_duration, parse_size,
};
pub use echo::Echo;
pub use metrics::Metrics;
pub use reload::{load_set, reload};
pub use upstream::{Backend, HttpUpstream, ProxyBody, TimedBody, UpstreamConfigError};

use crate::layer::error::Fault;
use crate::layer::{PolicyLayer, PolicyService, RequestBody, SharedPolicies, is_enforced};
use crate::wire::error::openai_error_body;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// No policy file was given.
    #[error("no policy: give --policy FILE or `policies:` in the config file")]
    NoPolicy,
    /// A policy did not compile.
    #[error("policy does not compile:\n{0}")]
    Policy(String),
    /// The upstream settings are unusable.
    #[error(transparent)]
    Upstream(#[from] UpstreamConfigError),
    /// Serving failed (the listener).
    #[error("serving failed: {0}")]
    Io(#[from] std::io::Error),
    /// The audit log cannot be opened.
    #[error("cannot open the audit log {path}: {source}")]
    Audit {
        /// The path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Everything the routes share.
struct State {
    chat: PolicyService<Backend>,
    backend: Backend,
    policies: SharedPolicies,
    metrics: Arc<Metrics>,
    other_routes: OtherRoutes,
}

/// A built gateway: policies loaded, upstream client, audit log, reloader.
pub struct Gateway {
    state: Arc<State>,
    observer: Arc<ProxyObserver>,
    config: Config,
    reloader: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("policy", &self.state.policies.current().label())
            .field("upstream", &self.state.backend.describe())
            .finish()
    }
}

impl Gateway {
    /// Loads the policies, builds the upstream client and opens the audit log. Must run inside
    /// a tokio runtime (the reloader is spawned).
    pub fn new(config: Config) -> Result<Gateway, ServeError> {
        if config.policies.is_empty() {
            return Err(ServeError::NoPolicy);
        }
        let set = load_set(&config.policies).map_err(ServeError::Policy)?;
        let metrics = Arc::new(Metrics::default());
        metrics.set_policy(set.label());
        let policies = SharedPolicies::new(set);
        let log = match &config.audit_path {
            Some(p) => Some(std::sync::Mutex::new(AuditLog::open(p).map_err(
                |source| ServeError::Audit {
                    path: p.display().to_string(),
                    source,
                },
            )?)),
            None => None,
        };
        let observer = Arc::new(ProxyObserver {
            metrics: metrics.clone(),
            log,
        });
        let backend = match &config.upstream {
            Some(u) => Backend::Http(Arc::new(HttpUpstream::new(u, config.timeouts)?)),
            None => Backend::Echo(Echo {
                delay: config.echo_delay,
            }),
        };
        let layer = PolicyLayer::new(policies.clone())
            .options(config.enforce.clone())
            .observer(observer.clone());
        let state = Arc::new(State {
            chat: layer.layer(backend.clone()),
            backend,
            policies: policies.clone(),
            metrics: metrics.clone(),
            other_routes: config.other_routes,
        });
        let reloader = Some(reload::spawn(
            config.policies.clone(),
            policies,
            metrics,
            config.reload,
        ));
        Ok(Gateway {
            state,
            observer,
            config,
            reloader,
        })
    }

    /// The policies in force (reload them with [`SharedPolicies::replace`] or [`reload`]).
    pub fn policies(&self) -> &SharedPolicies {
        &self.state.policies
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.state.metrics
    }

    /// The request service: routes, enforcement, panic isolation.
    pub fn service(&self) -> GatewayService {
        GatewayService {
            state: self.state.clone(),
        }
    }

    /// Serves on `listener` until `shutdown` completes, then drains open connections.
    pub async fn serve(
        mut self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.config.timeouts.header_read)
            .max_buf_size(self.config.max_header_bytes.max(8192));
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(self.config.max_header_bytes).unwrap_or(u32::MAX));
        let graceful = GracefulShutdown::new();
        let addr = listener.local_addr()?;
        match &self.state.backend {
            Backend::Echo(_) => tracing::warn!(
                "NO UPSTREAM CONFIGURED: answering with the built-in ECHO upstream (replies repeat \
                 the last user message). Give --upstream URL to reach a real model."
            ),
            Backend::Http(_) => {
                tracing::info!(upstream = %self.state.backend.describe(), "forwarding to upstream")
            }
        }
        tracing::info!(%addr, policy = %self.state.policies.current().label(), "deliberate listening");
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                res = listener.accept() => {
                    let (stream, _peer) = match res {
                        Ok(x) => x,
                        Err(e) => {
                            // Out of file descriptors and the like: back off, keep serving.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let svc = CatchPanicLayer::custom(panic_response).layer(self.service());
                    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc));
                    let conn = graceful.watch(conn.into_owned());
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                    });
                }
                () = &mut shutdown => break,
            }
        }
        drop(listener);
        tracing::info!(
            open = graceful.count(),
            "shutting down: draining connections"
        );
        tokio::select! {
            () = graceful.shutdown() => {}
            () = tokio::time::sleep(self.config.timeouts.shutdown_grace) => {
                tracing::warn!("shutdown grace period over; closing the remaining connections");
            }
        }
        self.close();
        Ok(())
    }

    fn close(&mut self) {
        if let Some(r) = self.reloader.take() {
            r.abort();
        }
        if let Some(log) = &self.observer.log
            && let Ok(mut log) = log.lock()
        {
            log.close();
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.close();
    }
}

/// Builds a [`Gateway`] from `config` and serves on `listener` until `shutdown` completes.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let gw = Gateway::new(config)?;
    Ok(gw.serve(listener, shutdown).await?)
}

fn panic_response(err: Box<dyn std::any::Any + Send + 'static>) -> Response<Full<Bytes>> {
    let detail = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("unknown");
    tracing::error!(panic = %detail, "a request panicked");
    let body = openai_error_body(
        "internal error in the gateway",
        "server_error",
        Some("internal_error"),
    );
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn json(status: StatusCode, body: String) -> Response<ProxyBody> {
    let mut r = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|e| match e {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn fault_json(fault: &Fault) -> Response<ProxyBody> {
    json(fault.status(), fault.info().openai_body().to_string())
}

/// The gateway's request service (see [`Gateway::service`]).
#[derive(Clone)]
pub struct GatewayService {
    state: Arc<State>,
}

impl std::fmt::Debug for GatewayService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GatewayService")
    }
}

impl Service<Request<Incoming>> for GatewayService {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let state = self.state.clone();
        Box::pin(async move { Ok(route(state, req).await) })
    }
}

async fn route(state: Arc<State>, req: Request<Incoming>) -> Response<ProxyBody> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    if is_enforced(&method, &path) {
        return match state.chat.clone().oneshot(req).await {
            Ok(r) => r.map(BodyExt::boxed_unsync),
            Err(e) => fault_json(&Fault::from_error(&*e)),
        };
    }
    let (label, resp) = match (&method, path.as_str()) {
        (&Method::GET, "/healthz") => (
            "/healthz",
            json(StatusCode::OK, r#"{"status":"ok"}"#.to_owned()),
        ),
        (&Method::GET, "/readyz") => {
            let set = state.policies.current();
            let ready = !set.is_empty();
            let body = serde_json::json!({
                "status": if ready { "ready" } else { "not ready" },
                "policy": set.label(),
                "upstream": state.backend.describe(),
            });
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            ("/readyz", json(status, body.to_string()))
        }
        (&Method::GET, "/metrics") => {
            let mut r = Response::new(
                Full::new(Bytes::from(state.metrics.render()))
                    .map_err(|e| match e {})
                    .boxed_unsync(),
            );
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            ("/metrics", r)
        }
        (_, p) if p == "/v1" || p.starts_with("/v1/") => match state.other_routes {
            OtherRoutes::Pass => {
                let resp = match state
                    .backend
                    .clone()
                    .oneshot(req.map(RequestBody::passed))
                    .await
                {
                    Ok(r) => r,
                    Err(e) => fault_json(&Fault::from_error(&*e)),
                };
                ("/v1/*", resp)
            }
            OtherRoutes::Refuse => {
                let msg = format!("{method} {p} is not served by this gateway");
                let body = openai_error_body(&msg, "invalid_request_error", Some("route_refused"));
                ("/v1/*", json(StatusCode::FORBIDDEN, body.to_string()))
            }
        },
        (_, p) => {
            let body = openai_error_body(
                &format!("no route {method} {p}"),
                "invalid_request_error",
                Some("unknown_url"),
            );
            ("other", json(StatusCode::NOT_FOUND, body.to_string()))
        }
    };
    state
        .metrics
        .request(label, Some(resp.status().as_u16()), "none");
    resp
}
