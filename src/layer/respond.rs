//! Every response the layer makes itself — refusals, errors, status mapping — built in one
//! place, in the shapes of the request's API (its adapter renders bodies).

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, TRANSFER_ENCODING};
use http::{Response, StatusCode};

use super::audit::Outcome;
use super::body::ResponseBody;
use super::error::{BoxError, Fault, RequestBodyTimeout, json_bytes};
use super::exchange::Exchange;
use super::options::BlockResponse;
use super::stream::StreamFilter;
use crate::wire::{Adapter, ErrorInfo, ErrorKind};

/// The answer of a future polled after it finished (never sent in practice).
pub(crate) fn done_response<B>() -> Response<ResponseBody<B>> {
    let mut r = Response::new(ResponseBody::full(Bytes::new()));
    *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    r
}

/// A response the layer makes itself; ends the exchange.
pub(crate) fn own_response<B>(
    ex: &mut Exchange,
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
    outcome: Outcome,
    error: Option<String>,
) -> Response<ResponseBody<B>> {
    let len = body.len();
    let mut r = Response::new(ResponseBody::full(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    if content_type == "text/event-stream" {
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    ex.set_headers(h);
    ex.finish(outcome, Some(status.as_u16()), error);
    r
}

/// An error in the shape of the request's API.
pub(crate) fn error_response<B>(
    ex: &mut Exchange,
    status: StatusCode,
    info: &ErrorInfo,
    outcome: Outcome,
) -> Response<ResponseBody<B>> {
    let body = ex.adapter.error_body(info);
    own_response(
        ex,
        status,
        "application/json",
        json_bytes(&body),
        outcome,
        Some(info.message.clone()),
    )
}

/// The offload dropped a scan without running it (the runtime is shutting down): `503`, in
/// the error shape of `adapter`'s API (the exchange went with the dropped job).
pub(crate) fn scan_lost<B>(adapter: &dyn Adapter) -> Response<ResponseBody<B>> {
    let info = ErrorInfo::new(
        ErrorKind::Overloaded,
        "the gateway is shutting down",
        "unavailable",
    );
    let mut r = Response::new(ResponseBody::full(json_bytes(&adapter.error_body(&info))));
    *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// The request could not be read or parsed.
pub(crate) fn bad_request<B>(ex: &mut Exchange, info: &ErrorInfo) -> Response<ResponseBody<B>> {
    error_response(ex, StatusCode::BAD_REQUEST, info, Outcome::Rejected)
}

/// The upstream failed before the response head went out.
pub(crate) fn fault_response<B>(ex: &mut Exchange, fault: &Fault) -> Response<ResponseBody<B>> {
    let outcome = match fault {
        Fault::Timeout(_) => Outcome::Timeout,
        _ => Outcome::UpstreamError,
    };
    error_response(ex, fault.status(), &fault.info(), outcome)
}

/// The request body is over the limit.
pub(crate) fn too_large<B>(ex: &mut Exchange) -> Response<ResponseBody<B>> {
    let limit = ex.shared.opts.max_request_bytes;
    let info = ErrorInfo::new(
        ErrorKind::TooLarge,
        format!("request body larger than {limit} bytes"),
        "request_too_large",
    );
    error_response(ex, StatusCode::PAYLOAD_TOO_LARGE, &info, Outcome::Rejected)
}

/// The request body did not arrive in time: `408`, as the gateway's front door answers it
/// (the same message; the front door also closes the connection).
pub(crate) fn body_timeout<B>(
    ex: &mut Exchange,
    after: std::time::Duration,
) -> Response<ResponseBody<B>> {
    let info = ErrorInfo::new(
        ErrorKind::InvalidRequest,
        format!(
            "the request body did not arrive within {after:?} (timeouts.request_body); \
             the connection is closed"
        ),
        "request_timeout",
    );
    error_response(ex, StatusCode::REQUEST_TIMEOUT, &info, Outcome::Rejected)
}

/// Scanning the request would cost more than the scan budget: `413`, like a body over the
/// limit (the request is too large to be enforced; retrying it cannot succeed).
pub(crate) fn over_budget<B>(ex: &mut Exchange, spent: usize) -> Response<ResponseBody<B>> {
    let budget = ex.shared.opts.max_scan_bytes;
    let info = ErrorInfo::new(
        ErrorKind::TooLarge,
        format!(
            "the request's texts normalize to more than {budget} bytes \
             (at least {spent}): over the gateway's scan budget"
        ),
        "scan_budget_exceeded",
    );
    error_response(ex, StatusCode::PAYLOAD_TOO_LARGE, &info, Outcome::Rejected)
}

/// The input scan refused the request: the refusal as the API's normal answer, or a `400`.
pub(crate) fn blocked_input<B>(ex: &mut Exchange, text: &str) -> Response<ResponseBody<B>> {
    match ex.shared.opts.block_response {
        BlockResponse::Error400 => {
            // No `param`: the field at fault differs by API (`messages`, `input`, `prompt`).
            let info = ErrorInfo::new(ErrorKind::PolicyViolation, text, "content_policy_violation");
            let body = ex.adapter.error_body(&info);
            own_response(
                ex,
                StatusCode::BAD_REQUEST,
                "application/json",
                json_bytes(&body),
                Outcome::BlockedInput,
                None,
            )
        }
        BlockResponse::Completion => {
            let (content_type, body) = ex.adapter.refusal(&ex.facts, text);
            own_response(
                ex,
                StatusCode::OK,
                content_type,
                body,
                Outcome::BlockedInput,
                None,
            )
        }
    }
}

/// An upstream error status whose body the gateway could not read: the status and head go on,
/// with a body of the gateway's own in the API's shape.
pub(crate) fn upstream_error<B>(
    ex: &mut Exchange,
    parts: http::response::Parts,
    fault: &Fault,
) -> Response<ResponseBody<B>> {
    let body = json_bytes(&ex.adapter.error_body(&fault.info()));
    relay_error(ex, parts, body)
}

/// Passes on an upstream error status with `body` (its own, scanned, or the gateway's).
pub(crate) fn relay_error<B>(
    ex: &mut Exchange,
    mut parts: http::response::Parts,
    body: Bytes,
) -> Response<ResponseBody<B>> {
    parts.headers.remove(http::header::TRANSFER_ENCODING);
    parts.headers.remove(http::header::CONTENT_ENCODING);
    parts
        .headers
        .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    ex.set_headers(&mut parts.headers);
    let status = parts.status.as_u16();
    ex.finish(Outcome::UpstreamStatus, Some(status), None);
    Response::from_parts(parts, ResponseBody::full(body))
}

/// A buffered answer going out: headers, the audit record, the body.
pub(crate) fn buffered_answer<B>(
    ex: &mut Exchange,
    mut parts: http::response::Parts,
    out: Bytes,
    all_blocked: bool,
) -> Response<ResponseBody<B>> {
    parts.headers.remove(TRANSFER_ENCODING);
    parts
        .headers
        .insert(CONTENT_LENGTH, HeaderValue::from(out.len()));
    ex.set_headers(&mut parts.headers);
    let outcome = if all_blocked {
        Outcome::BlockedOutput
    } else {
        Outcome::Completed
    };
    ex.finish(outcome, Some(parts.status.as_u16()), None);
    Response::from_parts(parts, ResponseBody::full(out))
}

/// A request body that could not be read: over the limit (`413`), too slow (`408`), or
/// broken (`400`).
pub(crate) fn unreadable_body<B>(ex: &mut Exchange, e: &BoxError) -> Response<ResponseBody<B>> {
    if e.downcast_ref::<http_body_util::LengthLimitError>()
        .is_some()
    {
        too_large(ex)
    } else if let Some(t) = e.downcast_ref::<RequestBodyTimeout>() {
        body_timeout(ex, t.after)
    } else {
        let info = ErrorInfo::new(
            ErrorKind::InvalidRequest,
            format!("could not read the request body: {e}"),
            "body_read_error",
        );
        bad_request(ex, &info)
    }
}

/// A stream held whole (judged `hold`) and sent as one body `out` under the upstream's head.
pub(crate) fn held_answer<B>(
    mut parts: http::response::Parts,
    filter: &mut StreamFilter,
    out: Bytes,
) -> Response<ResponseBody<B>> {
    parts.headers.remove(CONTENT_LENGTH);
    parts.headers.remove(TRANSFER_ENCODING);
    filter.ex.set_headers(&mut parts.headers);
    filter.ex.sent(parts.status.as_u16());
    filter.ex.release_record();
    Response::from_parts(parts, ResponseBody::full(out))
}

/// The head of a filtered stream: the upstream's, with the layer's headers; the body starts
/// with what the filter released before the head went out.
pub(crate) fn stream_head<B>(
    mut parts: http::response::Parts,
    body: std::pin::Pin<Box<B>>,
    mut filter: Box<StreamFilter>,
) -> Response<ResponseBody<B>> {
    let prefix = filter.take_head_output().unwrap_or_default();
    filter.commit();
    parts.headers.remove(CONTENT_LENGTH);
    parts.headers.remove(TRANSFER_ENCODING);
    filter.ex.set_headers(&mut parts.headers);
    filter.ex.sent(parts.status.as_u16());
    filter.ex.open_stream();
    Response::from_parts(parts, ResponseBody::stream(body, filter, prefix))
}
