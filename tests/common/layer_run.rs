//! Runs requests through the [`PolicyLayer`] around a scripted inner service, in-process.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use deliberate::CompiledPolicy;
use deliberate::layer::{AuditRecord, EnforceOptions, Observer, PolicyLayer, RequestBody};
use futures_util::stream;
use http::{Request, Response};
use http_body::Frame;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use serde_json::Value;
use tower::{Layer, ServiceExt, service_fn};

use super::{BoxError, Reply, policy_path};

#[derive(Default)]
pub struct Records(pub Mutex<Vec<AuditRecord>>);

impl Observer for Records {
    fn record(&self, r: &AuditRecord) {
        self.0.lock().unwrap().push(r.clone());
    }
}

pub struct Run {
    pub reply: Reply,
    pub records: Vec<AuditRecord>,
    pub upstream: Vec<Value>,
}

/// Sends `req` through the layer to an inner service answering `frames` (SSE when
/// `sse`, JSON otherwise).
pub async fn run(opts: EnforceOptions, req: &Value, sse: bool, frames: Vec<Vec<u8>>) -> Run {
    let mut runs = run_many(opts, std::slice::from_ref(req), sse, frames).await;
    runs.pop().unwrap()
}

/// Sends each of `reqs` in turn through one layer (one scan cache); each run holds what that
/// request produced.
pub async fn run_many(
    opts: EnforceOptions,
    reqs: &[Value],
    sse: bool,
    frames: Vec<Vec<u8>>,
) -> Vec<Run> {
    run_with(opts, "/v1/chat/completions", reqs, 200, sse, frames).await
}

/// [`run_many`] on `path`, the inner service answering with `status`.
pub async fn run_with(
    opts: EnforceOptions,
    path: &str,
    reqs: &[Value],
    status: u16,
    sse: bool,
    frames: Vec<Vec<u8>>,
) -> Vec<Run> {
    let policy = CompiledPolicy::load(policy_path()).unwrap();
    run_policy(policy, opts, path, reqs, status, sse, frames).await
}

/// [`run_with`] under `policy`.
pub async fn run_policy(
    policy: impl Into<deliberate::layer::SharedPolicies>,
    opts: EnforceOptions,
    path: &str,
    reqs: &[Value],
    status: u16,
    sse: bool,
    frames: Vec<Vec<u8>>,
) -> Vec<Run> {
    let records = Arc::new(Records::default());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let inner = service_fn(move |r: Request<RequestBody<Full<Bytes>>>| {
        let frames = frames.clone();
        let seen = seen2.clone();
        async move {
            let body = r.into_body().collect().await.unwrap().to_bytes();
            seen.lock()
                .unwrap()
                .push(serde_json::from_slice::<Value>(&body).unwrap());
            let body = StreamBody::new(stream::iter(
                frames
                    .into_iter()
                    .map(|f| Ok::<_, BoxError>(Frame::data(Bytes::from(f)))),
            ));
            let mut resp = Response::new(BoxBody::new(body));
            *resp.status_mut() = http::StatusCode::from_u16(status).unwrap();
            let ct = if sse {
                "text/event-stream"
            } else {
                "application/json"
            };
            resp.headers_mut()
                .insert("content-type", ct.parse().unwrap());
            Ok::<_, BoxError>(resp)
        }
    });
    let svc = PolicyLayer::new(policy)
        .options(opts)
        .observer(records.clone())
        .layer(inner);
    let mut runs = Vec::new();
    for req in reqs {
        let http_req = Request::post(path)
            .body(Full::new(Bytes::from(req.to_string())))
            .unwrap();
        let resp = svc
            .clone()
            .oneshot(http_req)
            .await
            .map_err(|_| "inner error")
            .unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let records = std::mem::take(&mut *records.0.lock().unwrap());
        let upstream = std::mem::take(&mut *seen.lock().unwrap());
        runs.push(Run {
            reply: Reply {
                status,
                headers,
                body,
            },
            records,
            upstream,
        });
    }
    runs
}
