//! Every response the proxy makes itself (the policy layer makes its own): OpenAI-shaped JSON
//! errors (`{"error": {"message", "type", "param", "code"}}`) with their status, and the
//! headers that mark a route passed without enforcement.

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};

use super::body::ProxyBody;
use super::routes::PathError;
use crate::layer::error::Fault;
use crate::layer::{ENFORCEMENT_HEADER, POLICY_HEADER};
use crate::wire::error::openai_error_body;

/// A JSON response.
pub(crate) fn json(status: StatusCode, body: String) -> Response<ProxyBody> {
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

fn error(status: StatusCode, message: &str, kind: &str, code: &str) -> Response<ProxyBody> {
    json(
        status,
        openai_error_body(message, kind, Some(code)).to_string(),
    )
}

/// Adds `Connection: close` (HTTP/1: hyper closes the connection after this response).
fn closing(mut r: Response<ProxyBody>) -> Response<ProxyBody> {
    r.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    r
}

/// An upstream fault before any byte was sent.
pub(crate) fn fault(fault: &Fault) -> Response<ProxyBody> {
    json(fault.status(), fault.info().openai_body().to_string())
}

/// A panic in a request: `500`.
pub(crate) fn panic_response(
    err: Box<dyn std::any::Any + Send + 'static>,
) -> Response<Full<Bytes>> {
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

/// A failure of the gateway itself: `500`.
pub(crate) fn internal(message: &str) -> Response<ProxyBody> {
    tracing::error!(%message, "internal error");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        message,
        "server_error",
        "internal_error",
    )
}

/// A path with no canonical form: `400`, code `invalid_path`.
pub(crate) fn invalid_path(err: &PathError) -> Response<ProxyBody> {
    error(
        StatusCode::BAD_REQUEST,
        &format!("invalid request path: {err}"),
        "invalid_request_error",
        "invalid_path",
    )
}

/// A route the gateway does not enforce, refused: `404`, code `route_not_enforced`.
pub(crate) fn not_enforced(method: &str, path: &str, api: Option<&str>) -> Response<ProxyBody> {
    let what = match api {
        Some(api) => {
            format!("is a `{api}` route, and this gateway has no adapter that reads its texts yet")
        }
        None => "is not a route this gateway knows".to_owned(),
    };
    let msg = format!(
        "{method} {path} {what}, so it is refused rather than passed unscanned. To forward such \
         routes to the upstream without enforcement, set `other_routes: pass` in the config \
         (or `--other-routes pass`); their answers then say `x-deliberate-enforcement: skipped`."
    );
    error(
        StatusCode::NOT_FOUND,
        &msg,
        "invalid_request_error",
        "route_not_enforced",
    )
}

/// A path outside `/v1/` that no rule knows: `404`, code `unknown_url`.
pub(crate) fn unknown_url(method: &str, path: &str) -> Response<ProxyBody> {
    error(
        StatusCode::NOT_FOUND,
        &format!("no route {method} {path}"),
        "invalid_request_error",
        "unknown_url",
    )
}

/// The request body did not arrive in time: `408`, connection closed.
pub(crate) fn body_timeout(after: Duration) -> Response<ProxyBody> {
    closing(error(
        StatusCode::REQUEST_TIMEOUT,
        &format!(
            "the request body did not arrive within {after:?} (timeouts.request_body); \
             the connection is closed"
        ),
        "invalid_request_error",
        "request_timeout",
    ))
}

/// A passed body over the limit: `413`.
pub(crate) fn too_large(limit: usize) -> Response<ProxyBody> {
    closing(error(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("request body larger than {limit} bytes (limits.max_request_bytes)"),
        "invalid_request_error",
        "request_too_large",
    ))
}

/// A body that could not be read: `400`.
pub(crate) fn body_read_error(err: &dyn std::fmt::Display) -> Response<ProxyBody> {
    closing(error(
        StatusCode::BAD_REQUEST,
        &format!("could not read the request body: {err}"),
        "invalid_request_error",
        "body_read_error",
    ))
}

/// Beyond the connection cap: `503`, `Retry-After: 1`, connection closed.
pub(crate) fn too_many_connections(max: usize) -> Response<ProxyBody> {
    let mut r = closing(error(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!(
            "the gateway has {max} client connections open (limits.max_connections); \
             retry shortly"
        ),
        "server_error",
        "too_many_connections",
    ));
    r.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// Marks an answer passed without enforcement: `x-deliberate-policy` and
/// `x-deliberate-enforcement: skipped` (with `; reason=…` when given).
pub(crate) fn mark_skipped(r: &mut Response<ProxyBody>, policy: &str, reason: Option<&str>) {
    if let Ok(v) = HeaderValue::from_str(policy) {
        r.headers_mut().insert(POLICY_HEADER, v);
    }
    let value = match reason {
        Some(reason) => format!("skipped; reason={reason}"),
        None => "skipped".to_owned(),
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        r.headers_mut().insert(ENFORCEMENT_HEADER, v);
    }
}

/// Adds `x-deliberate-policy` to a response the proxy made itself.
pub(crate) fn mark_policy(r: &mut Response<ProxyBody>, policy: &str) {
    if let Ok(v) = HeaderValue::from_str(policy) {
        r.headers_mut().insert(POLICY_HEADER, v);
    }
}

/// The policy set a request selects has never loaded: `503`, the upstream not called (fail
/// closed: an unloaded set is never "no rules").
pub(crate) fn policy_not_loaded(set: &str) -> Response<ProxyBody> {
    let mut r = error(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("the policy set `{set}` for this request has not loaded; see /readyz"),
        "server_error",
        "policy_not_loaded",
    );
    r.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("5"));
    r
}
