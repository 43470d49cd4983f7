//! The gateway's request service: canonical route, then enforcement, a marked pass-through,
//! an admin route, or a refusal.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use tower::{Service, ServiceExt};

use super::body::ProxyBody;
use super::config::OtherRoutes;
use super::front::{ClientBody, ConnActivity, RequestBodyTimeout, Tracked};
use super::health::Health;
use super::metrics::Metrics;
use super::respond;
use super::routes::{Route, RouteClass, RouteTable, canonicalize};
use super::telemetry::{self, InSpan};
use super::tenants::{RequestKey, Selection, body_model, key_sha256};
use super::upstream::Backend;
use crate::layer::error::Fault;
use crate::layer::trace::{RequestSpan, request_span};
use crate::layer::{
    AuditLabels, BoxError, PolicyService, RequestBody, SharedPolicies, is_enforced,
};

/// Everything the routes share.
pub(crate) struct State {
    pub(crate) chat: PolicyService<ClientBackend>,
    pub(crate) backend: Backend,
    pub(crate) policies: SharedPolicies,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) other_routes: OtherRoutes,
    pub(crate) routes: RouteTable,
    pub(crate) request_body: Duration,
    pub(crate) max_request_bytes: usize,
    /// The policy playground at `/playground`, when configured.
    pub(crate) playground: Option<Arc<crate::playground::Playground>>,
    pub(crate) health: Arc<Health>,
    /// How long `/readyz` waits for the first upstream probe.
    pub(crate) probe_timeout: Duration,
    /// The policy sets besides `default` (`chat` and `policies` above).
    pub(crate) sets: Vec<SetRuntime>,
    /// Which set a request gets.
    pub(crate) selection: Selection,
}

/// One policy set besides `default`: its policies and the layer enforcing them.
pub(crate) struct SetRuntime {
    pub(crate) name: String,
    pub(crate) policies: SharedPolicies,
    pub(crate) service: PolicyService<ClientBackend>,
}

impl State {
    /// The layer and policies of the set named `name` (`default` when unknown).
    fn set(&self, name: &str) -> (&PolicyService<ClientBackend>, &SharedPolicies) {
        self.sets
            .iter()
            .find(|s| s.name == name)
            .map_or((&self.chat, &self.policies), |s| (&s.service, &s.policies))
    }
}

/// The [`Backend`] behind the policy layer: the layer hands it the (edited) body it read whole;
/// the backend takes it as one buffer.
#[derive(Clone, Debug)]
pub struct ClientBackend(pub(crate) Backend);

impl<B> Service<Request<RequestBody<B>>> for ClientBackend
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ProxyBody>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<RequestBody<B>>) -> Self::Future {
        let backend = self.0.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let bytes = body.collect().await?.to_bytes();
            let req = Request::from_parts(parts, RequestBody::<Incoming>::full(bytes));
            backend.oneshot(req).await
        })
    }
}

/// The gateway's request service (see [`Gateway::service`](super::Gateway::service)).
#[derive(Clone)]
pub struct GatewayService {
    pub(crate) state: Arc<State>,
    /// The connection's activity, when served by the gateway's own listener.
    pub(crate) conn: Option<ConnActivity>,
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
        let guard = self.conn.as_ref().map(ConnActivity::start);
        Box::pin(async move {
            let resp = route(state, req).await;
            Ok(match guard {
                Some(g) => resp.map(|b| Tracked::new(b, Some(g)).boxed_unsync()),
                None => resp,
            })
        })
    }
}

/// The admin routes, on the canonical path: `/healthz`, `/readyz`, `/metrics`.
pub(crate) fn admin(state: &State, method: &Method, path: &str) -> Option<Response<ProxyBody>> {
    if method != Method::GET {
        return None;
    }
    let resp = match path {
        "/healthz" => respond::json(StatusCode::OK, r#"{"status":"ok"}"#.to_owned()),
        "/readyz" => {
            let (ready, body) = state.health.report(&state.backend.describe());
            let ready = ready && !state.policies.current().is_empty();
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            respond::json(status, body.to_string())
        }
        "/metrics" => {
            let mut r = Response::new(
                Full::new(Bytes::from(state.metrics.render()))
                    .map_err(|e| match e {})
                    .boxed_unsync(),
            );
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        _ => return None,
    };
    state
        .metrics
        .request(path, Some(resp.status().as_u16()), "none");
    Some(resp)
}

/// `uri` with `path` in place of its path, the query kept.
fn with_path(uri: &Uri, path: &str) -> Result<Uri, http::Error> {
    let pq = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(pq.parse::<PathAndQuery>()?);
    Ok(Uri::from_parts(parts)?)
}

async fn route(state: Arc<State>, req: Request<Incoming>) -> Response<ProxyBody> {
    let method = req.method().clone();
    let policies = state.policies.current();
    let label = policies.label();
    let segments = match canonicalize(req.uri().path()) {
        Ok(s) => s,
        Err(e) => {
            state.metrics.request("invalid_path", Some(400), "none");
            let mut r = respond::invalid_path(&e);
            respond::mark_policy(&mut r, label);
            return r;
        }
    };
    let route = state.routes.classify(method.as_str(), &segments);
    if route.path == "/readyz" {
        state.health.first_probe(state.probe_timeout).await;
    }
    if let Some(r) = admin(&state, &method, &route.path) {
        return r;
    }
    if let Some(pg) = &state.playground
        && (route.path == "/playground" || route.path.starts_with("/playground/"))
    {
        // The same whole-body read timeout as every other route.
        let body = ClientBody::new(req.into_body(), state.request_body);
        let resp = crate::playground::handle(pg.clone(), &method, &route.path, body).await;
        state
            .metrics
            .request("playground", Some(resp.status().as_u16()), "none");
        return resp.map(|b| b.map_err(|e| match e {}).boxed_unsync());
    }
    // One span per proxied request (admin routes and the playground have none), continuing
    // the client's trace; the layer and the upstream client find it in the extensions.
    let span = request_span(method.as_str(), &route.path);
    if span.is_disabled() {
        return proxied(&state, req, &route, label).await;
    }
    telemetry::continue_trace(&span, req.headers());
    if let Some(api) = route.api {
        span.record("deliberate.api", api);
    }
    let mut req = req;
    req.extensions_mut().insert(RequestSpan(span.clone()));
    let resp = proxied(&state, req, &route, label).await;
    span.record("http.response.status_code", resp.status().as_u16());
    if resp.status().is_server_error() {
        span.record("otel.status_code", "error");
    }
    resp.map(|b| InSpan::new(b, span).boxed_unsync())
}

/// A request to a model route: enforced, passed or refused.
async fn proxied(
    state: &Arc<State>,
    req: Request<Incoming>,
    route: &Route,
    label: &str,
) -> Response<ProxyBody> {
    let (state, method) = (state.clone(), req.method().clone());
    let (mut parts, body) = req.into_parts();
    match with_path(&parts.uri, &route.path) {
        Ok(uri) => parts.uri = uri,
        // The canonical path is percent-encoded where a URI needs it: not expected to fail.
        Err(e) => return respond::internal(&format!("cannot rewrite the request path: {e}")),
    }
    let body = ClientBody::new(body, state.request_body);
    let expired = body.expired();
    let req = Request::from_parts(parts, body);
    let passes = match route.class {
        RouteClass::Enforced => {
            // The table and the layer must agree; a route the layer would pass through
            // untouched is refused, never forwarded as if enforced.
            if !is_enforced(&method, &route.path) {
                tracing::error!(path = %route.path, "route table enforces a route the policy layer does not");
                return refuse(&state, &method, route, label);
            }
            let resp = match enforce(&state, route.api, req).await {
                Ok(r) => r,
                Err(r) => return r,
            };
            if expired.load(Ordering::Relaxed) {
                state.metrics.connection_closed("request_body");
                return respond::body_timeout(state.request_body);
            }
            return resp;
        }
        RouteClass::Harmless => Some("no-model-text"),
        RouteClass::NoAdapter => (state.other_routes == OtherRoutes::Pass).then_some(""),
        RouteClass::Unknown if route.path == "/v1" || route.path.starts_with("/v1/") => {
            (state.other_routes == OtherRoutes::Pass).then_some("")
        }
        RouteClass::Unknown => {
            state.metrics.request("unknown", Some(404), "none");
            let mut r = respond::unknown_url(method.as_str(), &route.path);
            respond::mark_policy(&mut r, label);
            return r;
        }
    };
    let Some(reason) = passes else {
        return refuse(&state, &method, route, label);
    };
    let mut resp = pass(&state, req).await;
    respond::mark_skipped(&mut resp, label, (!reason.is_empty()).then_some(reason));
    state.metrics.request(
        route.api.unwrap_or("unknown"),
        Some(resp.status().as_u16()),
        "skipped",
    );
    resp
}

/// Selects the policy set of an enforced request and runs it through that set's layer. When a
/// `select` rule looks at the model, the body is read here first (within the same limits).
async fn enforce(
    state: &State,
    api: Option<&'static str>,
    req: Request<ClientBody>,
) -> Result<Response<ProxyBody>, Response<ProxyBody>> {
    let sel = &state.selection;
    let (mut parts, body) = req.into_parts();
    let tenant = sel.tenant(&parts.headers).map(str::to_owned);
    let mut key = RequestKey {
        api,
        model: None,
        key_sha256: sel
            .rules
            .iter()
            .any(|r| r.api_key_sha256.is_some())
            .then(|| key_sha256(&parts.headers))
            .flatten(),
        tenant: tenant.as_deref(),
    };
    let body = if sel.needs_model() {
        Pending::Read(read_body(state, body).await?)
    } else {
        Pending::Stream(body)
    };
    let model = match &body {
        Pending::Read(b) => body_model(b),
        Pending::Stream(_) => None,
    };
    key.model = model.as_deref();
    let name = sel.select(&key).to_owned();
    let (service, policies) = state.set(&name);
    if policies.current().is_empty() {
        state
            .metrics
            .request(api.unwrap_or("unknown"), Some(503), "policy_not_loaded");
        return Err(respond::policy_not_loaded(&name));
    }
    if let Some(RequestSpan(span)) = parts.extensions.get::<RequestSpan>() {
        span.record("deliberate.policy_set", name.as_str());
        if sel.tenant_header.is_some() {
            span.record(
                "deliberate.tenant",
                sel.tenant_label(tenant.as_deref()).as_str(),
            );
        }
    }
    if !sel.sets.is_empty() || sel.tenant_header.is_some() {
        parts.extensions.insert(AuditLabels {
            tenant: sel.tenant_label(tenant.as_deref()),
            set: name,
        });
    }
    let out = match body {
        Pending::Read(bytes) => {
            let req = Request::from_parts(parts, Full::new(bytes));
            service.clone().oneshot(req).await
        }
        Pending::Stream(body) => {
            service
                .clone()
                .oneshot(Request::from_parts(parts, body))
                .await
        }
    };
    Ok(match out {
        Ok(r) => r.map(BodyExt::boxed_unsync),
        Err(e) => respond::fault(&Fault::from_error(&*e)),
    })
}

/// A request body: read already (to select by model), or still to come.
enum Pending {
    Read(Bytes),
    Stream(ClientBody),
}

/// Reads a client body whole within `limits.max_request_bytes` and `timeouts.request_body`.
async fn read_body(state: &State, body: ClientBody) -> Result<Bytes, Response<ProxyBody>> {
    match Limited::new(body, state.max_request_bytes).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<RequestBodyTimeout>().is_some() => {
            state.metrics.connection_closed("request_body");
            Err(respond::body_timeout(state.request_body))
        }
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(respond::too_large(state.max_request_bytes))
        }
        Err(e) => Err(respond::body_read_error(&e)),
    }
}

fn refuse(state: &State, method: &Method, route: &Route, label: &str) -> Response<ProxyBody> {
    state
        .metrics
        .request(route.api.unwrap_or("unknown"), Some(404), "refused");
    let mut r = respond::not_enforced(method.as_str(), &route.path, route.api);
    respond::mark_policy(&mut r, label);
    r
}

/// Forwards a route without enforcement: the body is read whole first (within
/// `timeouts.request_body` and `limits.max_request_bytes`), so a slow body cannot hold an
/// upstream connection.
async fn pass(state: &State, req: Request<ClientBody>) -> Response<ProxyBody> {
    let (parts, body) = req.into_parts();
    let bytes = match read_body(state, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let req = Request::from_parts(parts, RequestBody::<Incoming>::full(bytes));
    match state.backend.clone().oneshot(req).await {
        Ok(r) => r,
        Err(e) => respond::fault(&Fault::from_error(&*e)),
    }
}
