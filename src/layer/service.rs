//! The [`PolicyService`]: enforcement around an inner service.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body::Body;
use tower::Service;

use super::body::{RequestBody, ResponseBody};
use super::error::BoxError;
use super::exchange::Exchange;
use super::future::ResponseFuture;
use super::respond::too_large;
use super::shared::Shared;
use crate::wire::adapter_for;

/// Enforces the policies on `POST` requests to a route an adapter serves; passes every other
/// request through untouched. Made by [`PolicyLayer`](super::PolicyLayer).
#[derive(Clone)]
pub struct PolicyService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> std::fmt::Debug for PolicyService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyService")
            .field("policy", &self.shared.policies.current().label())
            .finish()
    }
}

impl<S> PolicyService<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        PolicyService { inner, shared }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

/// Whether the layer enforces a request: a `POST` to a path an adapter serves
/// ([`wire::adapter_for`](crate::wire::adapter_for)).
pub fn is_enforced(method: &Method, path: &str) -> bool {
    method == Method::POST && adapter_for(path).is_some()
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for PolicyService<S>
where
    S: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    ReqB: Body<Data = Bytes>,
    ReqB::Error: Into<BoxError>,
    ResB: Body<Data = Bytes>,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqB, ResB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let adapter = match adapter_for(req.uri().path()) {
            Some(a) if req.method() == Method::POST => a,
            _ => return ResponseFuture::passthrough(self.inner.call(req.map(RequestBody::passed))),
        };
        let span = req
            .extensions()
            .get::<super::trace::RequestSpan>()
            .map(|s| s.0.clone());
        let mut ex = Exchange::new(
            self.shared.clone(),
            adapter,
            req.uri().path(),
            req.headers(),
            span,
        );
        if let Some(l) = req.extensions().get::<super::audit::AuditLabels>() {
            ex.record.tenant = Some(l.tenant.clone());
            ex.record.policy_set = Some(l.set.clone());
        }
        let limit = self.shared.opts.max_request_bytes;
        let declared = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return ResponseFuture::ready(too_large(&mut ex));
        }
        if ex.set.is_empty() {
            ex.partial("no policy loaded");
        }
        // The ready service goes into the future; a fresh clone stays here.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let (parts, body) = req.into_parts();
        ResponseFuture::reading(body, limit, inner, parts, Box::new(ex))
    }
}
