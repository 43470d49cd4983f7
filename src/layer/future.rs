//! The response future of the [`PolicyService`](super::PolicyService): read and enforce the
//! request, call the inner service, enforce the response head and (buffered) body, or start
//! the filtered stream.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::header::{
    CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, TRANSFER_ENCODING,
};
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::combinators::Collect;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use pin_project_lite::pin_project;
use tower::Service;

use super::audit::Outcome;
use super::body::{RequestBody, ResponseBody};
use super::error::{BoxError, Fault, json_bytes};
use super::exchange::Exchange;
use super::options::BlockResponse;
use super::request::{self, Input};
use super::stream::{StreamFilter, poll_start};
use super::{refusal, response};
use crate::openai::openai_error_body;

pin_project! {
    /// Response future of [`PolicyService`](super::PolicyService).
    pub struct ResponseFuture<S, ReqB, ResB>
    where
        S: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>>,
        ReqB: Body,
        ReqB::Error: Into<BoxError>,
        ResB: Body,
        ResB::Error: Into<BoxError>,
    {
        #[pin]
        state: State<S, ReqB, ResB>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqB, ResB>
    where
        S: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>>,
        ReqB: Body,
        ReqB::Error: Into<BoxError>,
        ResB: Body,
        ResB::Error: Into<BoxError>,
    {
        Passthrough { #[pin] fut: S::Future },
        Reading {
            #[pin] collect: Collect<Limited<ReqB>>,
            inner: Option<S>,
            parts: Option<http::request::Parts>,
            ex: Option<Box<Exchange>>,
        },
        Calling { #[pin] fut: S::Future, ex: Option<Box<Exchange>> },
        Buffering {
            #[pin] collect: Collect<Limited<ResB>>,
            parts: Option<http::response::Parts>,
            ex: Option<Box<Exchange>>,
        },
        Starting {
            body: Option<Pin<Box<ResB>>>,
            parts: Option<http::response::Parts>,
            filter: Option<Box<StreamFilter>>,
        },
        Ready { response: Option<Response<ResponseBody<ResB>>> },
    }
}

impl<S, ReqB, ResB> std::fmt::Debug for ResponseFuture<S, ReqB, ResB>
where
    S: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>>,
    ReqB: Body,
    ReqB::Error: Into<BoxError>,
    ResB: Body,
    ResB::Error: Into<BoxError>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResponseFuture")
    }
}

impl<S, ReqB, ResB> ResponseFuture<S, ReqB, ResB>
where
    S: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>>,
    ReqB: Body<Data = Bytes>,
    ReqB::Error: Into<BoxError>,
    ResB: Body<Data = Bytes>,
    ResB::Error: Into<BoxError>,
{
    pub(crate) fn passthrough(fut: S::Future) -> Self {
        ResponseFuture {
            state: State::Passthrough { fut },
        }
    }

    pub(crate) fn reading(
        body: ReqB,
        limit: usize,
        inner: S,
        parts: http::request::Parts,
        ex: Box<Exchange>,
    ) -> Self {
        ResponseFuture {
            state: State::Reading {
                collect: Limited::new(body, limit).collect(),
                inner: Some(inner),
                parts: Some(parts),
                ex: Some(ex),
            },
        }
    }

    pub(crate) fn ready(response: Response<ResponseBody<ResB>>) -> Self {
        ResponseFuture {
            state: State::Ready {
                response: Some(response),
            },
        }
    }
}

impl<S, ReqB, ResB> Future for ResponseFuture<S, ReqB, ResB>
where
    S: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
    ReqB: Body<Data = Bytes>,
    ReqB::Error: Into<BoxError>,
    ResB: Body<Data = Bytes>,
    ResB::Error: Into<BoxError>,
{
    type Output = Result<Response<ResponseBody<ResB>>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let mut this = self.as_mut().project();
            let next = match this.state.as_mut().project() {
                StateProj::Passthrough { fut } => {
                    let res = ready!(fut.poll(cx));
                    return Poll::Ready(res.map(|r| r.map(ResponseBody::passed)));
                }
                StateProj::Ready { response } => {
                    let r = response
                        .take()
                        .unwrap_or_else(|| Response::new(ResponseBody::full(Bytes::new())));
                    return Poll::Ready(Ok(r));
                }
                StateProj::Reading {
                    collect,
                    inner,
                    parts,
                    ex,
                } => {
                    let res = ready!(collect.poll(cx));
                    let (Some(mut ex), Some(mut parts), Some(mut inner)) =
                        (ex.take(), parts.take(), inner.take())
                    else {
                        return Poll::Ready(Ok(done_response()));
                    };
                    let body = match res {
                        Ok(c) => c.to_bytes(),
                        Err(e) => {
                            let r = if e.downcast_ref::<LengthLimitError>().is_some() {
                                too_large(&mut ex)
                            } else {
                                let msg = format!("could not read the request body: {e}");
                                error_response(
                                    &mut ex,
                                    StatusCode::BAD_REQUEST,
                                    openai_error_body(
                                        &msg,
                                        "invalid_request_error",
                                        Some("body_read_error"),
                                    ),
                                    Outcome::Rejected,
                                    msg,
                                )
                            };
                            return Poll::Ready(Ok(r));
                        }
                    };
                    match ex.timed(|ex| request::enforce(body, ex)) {
                        Err(wire) => {
                            let msg = wire.to_string();
                            return Poll::Ready(Ok(error_response(
                                &mut ex,
                                StatusCode::BAD_REQUEST,
                                wire.error_body(),
                                Outcome::Rejected,
                                msg,
                            )));
                        }
                        Ok(Input::Block((pi, f))) => {
                            ex.act(crate::policy::Action::Block);
                            let text = ex
                                .set
                                .policies()
                                .get(pi)
                                .map(|p| p.refusal_for(p.rule(&f.rule)))
                                .unwrap_or_default();
                            return Poll::Ready(Ok(blocked_input(&mut ex, &text)));
                        }
                        Ok(Input::Forward(bytes)) => {
                            parts.headers.remove(TRANSFER_ENCODING);
                            parts
                                .headers
                                .insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
                            // The gateway must read what the upstream answers.
                            parts.headers.insert(
                                http::header::ACCEPT_ENCODING,
                                HeaderValue::from_static("identity"),
                            );
                            ex.upstream_called();
                            let fut =
                                inner.call(Request::from_parts(parts, RequestBody::full(bytes)));
                            State::Calling { fut, ex: Some(ex) }
                        }
                    }
                }
                StateProj::Calling { fut, ex } => {
                    let res = ready!(fut.poll(cx));
                    let Some(mut ex) = ex.take() else {
                        return Poll::Ready(Ok(done_response()));
                    };
                    let resp = match res {
                        Ok(r) => r,
                        Err(e) => {
                            let e: BoxError = e.into();
                            let fault = Fault::from_error(&*e);
                            return Poll::Ready(Ok(fault_response(&mut ex, &fault)));
                        }
                    };
                    let (mut parts, body) = resp.into_parts();
                    ex.upstream_answered(parts.status.as_u16());
                    if !parts.status.is_success() {
                        // Upstream errors carry no model output: passed on as they are, with
                        // `Retry-After` and the rest of the head.
                        ex.set_headers(&mut parts.headers);
                        let status = parts.status.as_u16();
                        ex.finish(Outcome::UpstreamStatus, Some(status), None);
                        return Poll::Ready(Ok(Response::from_parts(
                            parts,
                            ResponseBody::passed(body),
                        )));
                    }
                    if let Some(enc) = parts.headers.get(CONTENT_ENCODING)
                        && !enc.as_bytes().eq_ignore_ascii_case(b"identity")
                    {
                        let fault = Fault::Protocol(format!(
                            "upstream sent a compressed body ({enc:?}) the gateway cannot scan"
                        ));
                        return Poll::Ready(Ok(fault_response(&mut ex, &fault)));
                    }
                    let is_sse = parts
                        .headers
                        .get(CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|v| {
                            v.trim_start()
                                .to_ascii_lowercase()
                                .starts_with("text/event-stream")
                        });
                    if is_sse {
                        State::Starting {
                            body: Some(Box::pin(body)),
                            parts: Some(parts),
                            filter: Some(Box::new(StreamFilter::new(*ex))),
                        }
                    } else {
                        let limit = ex.shared.opts.max_response_bytes;
                        State::Buffering {
                            collect: Limited::new(body, limit).collect(),
                            parts: Some(parts),
                            ex: Some(ex),
                        }
                    }
                }
                StateProj::Buffering { collect, parts, ex } => {
                    let res = ready!(collect.poll(cx));
                    let (Some(mut ex), Some(mut parts)) = (ex.take(), parts.take()) else {
                        return Poll::Ready(Ok(done_response()));
                    };
                    let bytes = match res {
                        Ok(c) => c.to_bytes(),
                        Err(e) => {
                            let fault = if e.downcast_ref::<LengthLimitError>().is_some() {
                                Fault::Protocol(format!(
                                    "response body larger than {} bytes",
                                    ex.shared.opts.max_response_bytes
                                ))
                            } else {
                                Fault::from_error(&*e)
                            };
                            return Poll::Ready(Ok(fault_response(&mut ex, &fault)));
                        }
                    };
                    match ex.timed(|ex| response::enforce(&bytes, ex)) {
                        Err(fault) => return Poll::Ready(Ok(fault_response(&mut ex, &fault))),
                        Ok((out, all_blocked)) => {
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
                            return Poll::Ready(Ok(Response::from_parts(
                                parts,
                                ResponseBody::full(out),
                            )));
                        }
                    }
                }
                StateProj::Starting {
                    body,
                    parts,
                    filter,
                } => {
                    let (Some(b), Some(f)) = (body.as_mut(), filter.as_mut()) else {
                        return Poll::Ready(Ok(done_response()));
                    };
                    ready!(poll_start(b.as_mut(), f, cx));
                    if let Some(fault) = f.take_fault() {
                        return Poll::Ready(Ok(fault_response(&mut f.ex, &fault)));
                    }
                    let (Some(body), Some(mut parts), Some(mut filter)) =
                        (body.take(), parts.take(), filter.take())
                    else {
                        return Poll::Ready(Ok(done_response()));
                    };
                    let prefix = filter.take_output().unwrap_or_default();
                    filter.commit();
                    parts.headers.remove(CONTENT_LENGTH);
                    parts.headers.remove(TRANSFER_ENCODING);
                    filter.ex.set_headers(&mut parts.headers);
                    filter.ex.sent(parts.status.as_u16());
                    filter.ex.open_stream();
                    return Poll::Ready(Ok(Response::from_parts(
                        parts,
                        ResponseBody::stream(body, filter, prefix),
                    )));
                }
            };
            this.state.set(next);
        }
    }
}

fn done_response<B>() -> Response<ResponseBody<B>> {
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

fn error_response<B>(
    ex: &mut Exchange,
    status: StatusCode,
    body: serde_json::Value,
    outcome: Outcome,
    msg: String,
) -> Response<ResponseBody<B>> {
    own_response(
        ex,
        status,
        "application/json",
        json_bytes(&body),
        outcome,
        Some(msg),
    )
}

fn fault_response<B>(ex: &mut Exchange, fault: &Fault) -> Response<ResponseBody<B>> {
    let outcome = match fault {
        Fault::Timeout(_) => Outcome::Timeout,
        _ => Outcome::UpstreamError,
    };
    error_response(ex, fault.status(), fault.body(), outcome, fault.message())
}

pub(crate) fn too_large<B>(ex: &mut Exchange) -> Response<ResponseBody<B>> {
    let limit = ex.shared.opts.max_request_bytes;
    let msg = format!("request body larger than {limit} bytes");
    error_response(
        ex,
        StatusCode::PAYLOAD_TOO_LARGE,
        openai_error_body(&msg, "invalid_request_error", Some("request_too_large")),
        Outcome::Rejected,
        msg,
    )
}

fn blocked_input<B>(ex: &mut Exchange, text: &str) -> Response<ResponseBody<B>> {
    match ex.shared.opts.block_response {
        BlockResponse::Error400 => {
            let mut body = openai_error_body(
                text,
                "invalid_request_error",
                Some("content_policy_violation"),
            );
            body["error"]["param"] = serde_json::Value::from("messages");
            own_response(
                ex,
                StatusCode::BAD_REQUEST,
                "application/json",
                json_bytes(&body),
                Outcome::BlockedInput,
                None,
            )
        }
        BlockResponse::Completion if ex.stream => {
            let body = refusal::stream(ex, text);
            own_response(
                ex,
                StatusCode::OK,
                "text/event-stream",
                body,
                Outcome::BlockedInput,
                None,
            )
        }
        BlockResponse::Completion => {
            let body = refusal::completion(ex, text);
            own_response(
                ex,
                StatusCode::OK,
                "application/json",
                body,
                Outcome::BlockedInput,
                None,
            )
        }
    }
}
