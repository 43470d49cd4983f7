//! `deliberate serve`: the gateway as an HTTP server.
//!
//! [`run`] serves HTTP/1.1 and HTTP/2 (h2c, prior knowledge) on a listener until a shutdown
//! future completes, then stops accepting and lets open requests finish (up to
//! [`Timeouts::shutdown_grace`]). Routes:
//!
//! - every path is first brought to its canonical form and classified ([`routes`]); the request
//!   goes on, and upstream, on that canonical path. A path with no canonical form is `400`;
//! - an API with an adapter (`POST …/chat/completions`): enforced by the
//!   [`PolicyLayer`], then forwarded to the upstream;
//! - `GET …/models`, `…/models/{id}`: forwarded, marked `x-deliberate-enforcement: skipped`;
//! - model routes of APIs without an adapter, and unknown `/v1/` routes: refused with `404`
//!   `route_not_enforced`, or forwarded and marked `skipped` with `other_routes: pass`
//!   ([`OtherRoutes`]);
//! - `GET /healthz` (alive), `/readyz` (every policy set loaded and the upstream reachable at
//!   the last probe; names the policies, the last reload error, see [`Health`]), `/metrics`
//!   (Prometheus text format);
//! - with `playground: true`, the [policy playground](crate::playground) at `/playground`
//!   (refused at start on a non-loopback address unless `playground_allow_remote: true`).
//!
//! Each connection is bounded at the front door ([`front`]): a connection cap, an idle timeout,
//! a header and a whole-body read timeout.
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
mod body;
pub mod client;
mod config;
mod config_error;
mod echo;
pub mod front;
mod health;
pub mod judge;
mod metrics;
pub mod offload;
pub mod overlay;
mod reload;
mod respond;
pub mod routes;
mod service;
pub mod telemetry;
pub mod tenants;
mod upstream;

use std::future::Future;
use std::sync::Arc;

use http::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tower::Layer;
use tower_http::catch_panic::CatchPanicLayer;

pub use audit::{AuditLog, ProxyObserver};
pub use body::ProxyBody;
pub use config::{
    Config, ConfigError, HealthConfig, OtherRoutes, Timeouts, UpstreamConfig, parse_duration,
    parse_size,
};
pub use echo::Echo;
pub use health::{Health, Probe, ReloadError, SetHealth};
pub use metrics::Metrics;
pub use reload::{SetSource, load_set, reload};
pub use routes::{PathError, Route, RouteClass, RouteTable, canonicalize};
pub use service::{ClientBackend, GatewayService};
pub use upstream::{Backend, HttpUpstream, TimedBody, UpstreamConfigError};

use crate::layer::{PolicyLayer, SharedPolicies};

/// The name of the policy set of the config's top-level `policies:`.
pub const DEFAULT_SET: &str = "default";
use front::{ConnActivity, FrontDoor};
use service::State;

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
    /// The judge endpoint is unusable.
    #[error(transparent)]
    Judge(#[from] judge::JudgeConfigError),
    /// The audit log cannot be opened.
    #[error("cannot open the audit log {path}: {source}")]
    Audit {
        /// The path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// A built gateway: policies loaded, upstream client, audit log, reloader.
pub struct Gateway {
    state: Arc<State>,
    observer: Arc<ProxyObserver>,
    config: Config,
    reloaders: Vec<tokio::task::JoinHandle<()>>,
    probe: Option<tokio::task::JoinHandle<()>>,
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
        let probing = config.upstream.is_some() && !config.health.upstream_probe.is_zero();
        let names = std::iter::once(DEFAULT_SET)
            .chain(config.selection.sets.iter().map(|s| s.name.as_str()));
        let health = Arc::new(Health::new(names, probing));
        health.loaded(DEFAULT_SET, set.label());
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
        let judge: Option<Arc<dyn crate::layer::Judge>> = match &config.judge {
            Some(j) => Some(Arc::new(judge::HttpJudge::new(
                j.clone(),
                Some(metrics.clone()),
            )?)),
            None => None,
        };
        let with_judge = |l: PolicyLayer| match &judge {
            Some(j) => l.judge(j.clone()),
            None => l,
        };
        let mut sources = vec![SetSource {
            name: DEFAULT_SET.to_owned(),
            paths: config.policies.clone(),
            policies: policies.clone(),
        }];
        let scans = offload::BlockingScans::for_this_machine();
        let layer = with_judge(enforcing(
            &config,
            &scans,
            DEFAULT_SET,
            &[],
            &policies,
            &mut sources,
        ))
        .observer(observer.clone());
        let probe = match &backend {
            Backend::Http(h) if probing => Some(health::spawn_probe(
                health.clone(),
                h.authority(),
                config.health.upstream_probe,
                config.health.probe_timeout,
            )),
            _ => None,
        };
        let mut sets = Vec::new();
        for s in &config.selection.sets {
            let paths = s.paths(&config.policies);
            // A set that does not load yet starts empty: requests selecting it are refused
            // (503) and /readyz says not ready until a reload succeeds.
            let set = match load_set(&paths) {
                Ok(set) => {
                    health.loaded(&s.name, set.label());
                    set
                }
                Err(e) => {
                    tracing::error!(set = %s.name, "policy set does not load; refusing its requests until it does:\n{e}");
                    health.failed(&s.name, &e);
                    crate::layer::PolicySet::new(Vec::new())
                }
            };
            let shared = SharedPolicies::new(set);
            let base = if s.base { &config.policies[..] } else { &[] };
            let layer = with_judge(enforcing(
                &config,
                &scans,
                &s.name,
                base,
                &shared,
                &mut sources,
            ))
            .observer(observer.clone());
            sets.push(service::SetRuntime {
                name: s.name.clone(),
                policies: shared.clone(),
                service: layer.layer(ClientBackend(backend.clone())),
            });
            sources.push(SetSource {
                name: s.name.clone(),
                paths,
                policies: shared,
            });
        }
        let state = Arc::new(State {
            sets,
            selection: config.selection.clone(),
            chat: layer.layer(ClientBackend(backend.clone())),
            health: health.clone(),
            probe_timeout: config.health.probe_timeout,
            backend,
            policies: policies.clone(),
            metrics: metrics.clone(),
            other_routes: config.other_routes,
            routes: RouteTable::standard(),
            request_body: config.timeouts.request_body,
            max_request_bytes: config.enforce.max_request_bytes,
            playground: config
                .playground
                .then(|| Arc::new(crate::playground::Playground::new(config.policies.clone()))),
        });
        let reloaders = sources
            .into_iter()
            .map(|s| reload::spawn(s, metrics.clone(), health.clone(), config.reload))
            .collect();
        Ok(Gateway {
            state,
            observer,
            config,
            reloaders,
            probe,
        })
    }

    /// The policies in force (reload them with [`SharedPolicies::replace`] or [`reload`]).
    pub fn policies(&self) -> &SharedPolicies {
        &self.state.policies
    }

    /// What `/readyz` reports.
    pub fn health(&self) -> &Arc<Health> {
        &self.state.health
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.state.metrics
    }

    /// The request service: routes, enforcement (panics are isolated by [`Gateway::serve`]).
    pub fn service(&self) -> GatewayService {
        GatewayService {
            state: self.state.clone(),
            conn: None,
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
        let mut refusals = auto::Builder::new(TokioExecutor::new());
        refusals
            .http1()
            .keep_alive(false)
            .timer(TokioTimer::new())
            .header_read_timeout(front::REFUSAL_GRACE);
        let door = FrontDoor::new(self.config.max_connections, self.state.metrics.clone());
        let client_idle = self.config.timeouts.client_idle;
        let graceful = GracefulShutdown::new();
        let addr = listener.local_addr()?;
        if self.state.playground.is_some() {
            if !addr.ip().is_loopback() && !self.config.playground_allow_remote {
                return Err(std::io::Error::other(format!(
                    "`playground: true` on {addr}, which is not a loopback address: the playground \
                     runs any policy it is sent; set `playground_allow_remote: true` to serve it there"
                )));
            }
            tracing::info!("policy playground at http://{addr}/playground");
        }
        match &self.state.backend {
            Backend::Echo(_) => tracing::warn!(
                "NO UPSTREAM CONFIGURED: answering with the built-in ECHO upstream (replies repeat \
                 the last user message). Give --upstream URL to reach a real model."
            ),
            Backend::Http(_) => {
                tracing::info!(upstream = %self.state.backend.describe(), "forwarding to upstream")
            }
        }
        tracing::info!(
            %addr,
            policy = %self.state.policies.current().label(),
            max_connections = door.max_connections(),
            "deliberate listening"
        );
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let stream = tokio::select! {
                res = listener.accept() => match res {
                    Ok((stream, _peer)) => stream,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        self.state.metrics.accept_error();
                        let pause = front::accept_pause(&e);
                        tracing::warn!(error = %e, ?pause, "accept failed; backing off");
                        tokio::select! {
                            () = tokio::time::sleep(pause) => continue,
                            () = &mut shutdown => break,
                        }
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let activity = ConnActivity::new();
            let Some(admitted) = door.admit(&activity) else {
                self.refuse(stream, &door, &refusals);
                continue;
            };
            let svc = GatewayService {
                state: self.state.clone(),
                conn: Some(activity.clone()),
            };
            let svc = CatchPanicLayer::custom(respond::panic_response).layer(svc);
            let conn =
                builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc));
            let conn = graceful.watch(conn.into_owned());
            let metrics = self.state.metrics.clone();
            tokio::spawn(async move {
                tokio::select! {
                    () = admitted.evicted() => {
                        tracing::debug!("closing an idle connection to make room for a new one");
                    }
                    res = conn => if let Err(e) = res {
                        if e.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_timeout) {
                            metrics.connection_closed("header_read");
                        }
                        tracing::debug!(error = %e, "connection ended with an error");
                    },
                    () = activity.idle_for(client_idle) => {
                        metrics.connection_closed("idle");
                        tracing::debug!(?client_idle, "closing an idle connection");
                    }
                }
            });
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

    /// Answers a connection beyond the cap `503` (admin routes still answer), or closes it at
    /// once when too many refusals are under way.
    fn refuse(&self, stream: TcpStream, door: &FrontDoor, builder: &auto::Builder<TokioExecutor>) {
        let Some(refusing) = door.refuse() else {
            drop(stream);
            return;
        };
        let state = self.state.clone();
        let max = door.max_connections();
        let svc = tower::service_fn(move |req: Request<hyper::body::Incoming>| {
            let path = canonicalize(req.uri().path())
                .map(|s| state.routes.classify(req.method().as_str(), &s).path)
                .unwrap_or_default();
            let resp = service::admin(&state, req.method(), &path)
                .unwrap_or_else(|| respond::too_many_connections(max));
            std::future::ready(Ok::<Response<ProxyBody>, std::convert::Infallible>(resp))
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
            .into_owned();
        tokio::spawn(async move {
            let _refusing = refusing;
            let _ = tokio::time::timeout(front::REFUSAL_GRACE, conn).await;
        });
    }

    fn close(&mut self) {
        for r in self.reloaders.drain(..) {
            r.abort();
        }
        if let Some(p) = self.probe.take() {
            p.abort();
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

/// The layer of set `name`: the config's options, its shadow candidate (`base` policies
/// first, then the candidate's; its reload source goes to `sources`), recorded texts.
fn enforcing(
    config: &Config,
    scans: &offload::BlockingScans,
    name: &str,
    base: &[std::path::PathBuf],
    policies: &SharedPolicies,
    sources: &mut Vec<SetSource>,
) -> PolicyLayer {
    let mut layer = PolicyLayer::new(policies.clone())
        .options(config.enforce.clone())
        .offload(Arc::new(scans.clone()))
        .record_texts(config.record_texts);
    let spec = config.selection.shadows.iter().find(|(n, _)| n == name);
    if let Some((_, spec)) = spec
        && spec.sample > 0.0
    {
        let mut paths = base.to_vec();
        paths.extend(spec.policies.iter().cloned());
        let set = load_set(&paths).unwrap_or_else(|e| {
            tracing::error!(set = %name, "shadow candidate does not load; no shadow until it does:\n{e}");
            crate::layer::PolicySet::new(Vec::new())
        });
        let shared = SharedPolicies::new(set);
        layer = layer.shadow(crate::layer::shadow::ShadowConfig {
            policies: shared.clone(),
            sample: spec.sample,
        });
        sources.push(SetSource {
            name: format!("{name}{}", health::SHADOW_SUFFIX),
            paths,
            policies: shared,
        });
    }
    layer
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
