//! The response future of the [`PolicyService`](super::PolicyService): read and enforce the
//! request, call the inner service, enforce the response head and (buffered) body, or start
//! the filtered stream. One concern in one file (over 600 lines): the states of one request,
//! and the moves between them.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use http::{Request, Response};
use http_body::Body;
use http_body_util::combinators::Collect;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use pin_project_lite::pin_project;
use tower::Service;

use super::audit::Outcome;
use super::body::{RequestBody, ResponseBody};
use super::error::{BoxError, Fault};
use super::exchange::Exchange;
use super::judging::{JudgeBatch, judges_escalations, queue_answer, stream_judging};
use super::request::ScanSlot;
use super::request::{self, Input};
use super::respond::{
    bad_request, blocked_input, buffered_answer, done_response, fault_response, held_answer,
    over_budget, relay_error, scan_lost, stream_head, unreadable_body, upstream_error,
};
use super::response;
use super::stream::{StreamFilter, poll_next, poll_start};
use super::trace;
use crate::engine::judge::StreamJudgeMode;
use crate::wire::Adapter;

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
        // The input scan of a big request, running on the layer's offload.
        Scanning {
            job: Pin<Box<dyn Future<Output = ()> + Send>>,
            slot: ScanSlot,
            adapter: &'static dyn Adapter,
            inner: Option<S>,
            parts: Option<http::request::Parts>,
        },
        Calling {
            #[pin] fut: S::Future,
            ex: Option<Box<Exchange>>,
            // The input judge, running beside the upstream call.
            judge: Option<JudgeBatch>,
        },
        // The upstream answered; the input judge has not.
        Held {
            response: Option<Response<ResB>>,
            ex: Option<Box<Exchange>>,
            judge: Option<JudgeBatch>,
        },
        // A buffered answer the rules passed, waiting for the output judge.
        JudgingAnswer {
            parts: Option<http::response::Parts>,
            upstream: Bytes,
            out: Bytes,
            all_blocked: bool,
            ex: Option<Box<Exchange>>,
            judge: Option<JudgeBatch>,
        },
        // A stream judged in `hold` mode: filtered to the end, nothing sent yet.
        Holding {
            body: Option<Pin<Box<ResB>>>,
            parts: Option<http::response::Parts>,
            filter: Option<Box<StreamFilter>>,
            held: BytesMut,
            judge: Option<JudgeBatch>,
        },
        Buffering {
            #[pin] collect: Collect<Limited<ResB>>,
            parts: Option<http::response::Parts>,
            ex: Option<Box<Exchange>>,
            // The upstream answered an error status.
            error: bool,
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
                    let (Some(mut ex), Some(parts), Some(inner)) =
                        (ex.take(), parts.take(), inner.take())
                    else {
                        return Poll::Ready(Ok(done_response()));
                    };
                    let body = match res {
                        Ok(c) => c.to_bytes(),
                        Err(e) => return Poll::Ready(Ok(unreadable_body(&mut ex, &e))),
                    };
                    let offload = ex.shared.opts.offload_scan_bytes;
                    if let Some(o) = ex.shared.offload.clone()
                        && body.len() >= offload
                    {
                        let slot = ScanSlot::default();
                        let out = slot.clone();
                        let adapter = ex.adapter;
                        let job = o.run(Box::new(move || {
                            let mut ex = ex;
                            let res = input_scan(&mut ex, body);
                            out.put(ex, res);
                        }));
                        State::Scanning {
                            job,
                            slot,
                            adapter,
                            inner: Some(inner),
                            parts: Some(parts),
                        }
                    } else {
                        let res = input_scan(&mut ex, body);
                        match scanned(res, ex, parts, inner) {
                            Ok(state) => state,
                            Err(r) => return Poll::Ready(Ok(*r)),
                        }
                    }
                }
                StateProj::Scanning {
                    job,
                    slot,
                    adapter,
                    inner,
                    parts,
                } => {
                    ready!(job.as_mut().poll(cx));
                    let (Some((ex, res)), Some(parts), Some(inner)) =
                        (slot.take(), parts.take(), inner.take())
                    else {
                        return Poll::Ready(Ok(scan_lost(*adapter)));
                    };
                    match scanned(res, ex, parts, inner) {
                        Ok(state) => state,
                        Err(r) => return Poll::Ready(Ok(*r)),
                    }
                }
                StateProj::Calling { fut, ex, judge } => {
                    if let (Some(b), Some(e)) = (judge.as_mut(), ex.as_mut()) {
                        match b.poll(e, cx) {
                            Poll::Ready(Some(block)) => {
                                let Some(mut ex) = ex.take() else {
                                    return Poll::Ready(Ok(done_response()));
                                };
                                let r = blocked_input(&mut ex, &block.refusal);
                                // Dropping the upstream call cancels it.
                                this.state.set(State::Ready { response: None });
                                return Poll::Ready(Ok(r));
                            }
                            Poll::Ready(None) => *judge = None,
                            Poll::Pending => {}
                        }
                    }
                    let res = ready!(fut.poll(cx));
                    let Some(ex) = ex.take() else {
                        return Poll::Ready(Ok(done_response()));
                    };
                    match res {
                        Ok(r) if judge.is_some() => State::Held {
                            response: Some(r),
                            ex: Some(ex),
                            judge: judge.take(),
                        },
                        res => match answered(res, ex) {
                            Ok(state) => state,
                            Err(r) => return Poll::Ready(Ok(*r)),
                        },
                    }
                }
                StateProj::Held {
                    response,
                    ex,
                    judge,
                } => {
                    let (Some(e), Some(b)) = (ex.as_mut(), judge.as_mut()) else {
                        return Poll::Ready(Ok(done_response()));
                    };
                    let verdict = ready!(b.poll(e, cx));
                    let (Some(mut ex), Some(resp)) = (ex.take(), response.take()) else {
                        return Poll::Ready(Ok(done_response()));
                    };
                    match verdict {
                        Some(block) => {
                            drop(resp);
                            return Poll::Ready(Ok(blocked_input(&mut ex, &block.refusal)));
                        }
                        None => match answered(Ok::<_, S::Error>(resp), ex) {
                            Ok(state) => state,
                            Err(r) => return Poll::Ready(Ok(*r)),
                        },
                    }
                }
                StateProj::JudgingAnswer {
                    parts,
                    upstream,
                    out,
                    all_blocked,
                    ex,
                    judge,
                } => {
                    let (Some(e), Some(b)) = (ex.as_mut(), judge.as_mut()) else {
                        return Poll::Ready(Ok(done_response()));
                    };
                    let verdict = ready!(b.poll(e, cx));
                    let (Some(mut ex), Some(parts)) = (ex.take(), parts.take()) else {
                        return Poll::Ready(Ok(done_response()));
                    };
                    let (body, blocked) = match verdict {
                        None => (std::mem::take(out), *all_blocked),
                        Some(block) => match ex
                            .timed(|ex| response::refuse(upstream, ex, block.refusal))
                        {
                            Ok(a) => (a.body, true),
                            Err(fault) => return Poll::Ready(Ok(fault_response(&mut ex, &fault))),
                        },
                    };
                    return Poll::Ready(Ok(buffered_answer(&mut ex, parts, body, blocked)));
                }
                StateProj::Holding {
                    body,
                    parts,
                    filter,
                    held,
                    judge,
                } => {
                    let (Some(b), Some(f)) = (body.as_mut(), filter.as_mut()) else {
                        return Poll::Ready(Ok(done_response()));
                    };
                    if judge.is_none() {
                        // Filter the whole stream, keeping what it releases.
                        while let Some(bytes) = ready!(poll_next(b.as_mut(), f, cx)) {
                            held.extend_from_slice(&bytes);
                        }
                        if let Some(fault) = f.take_fault() {
                            f.ex.release_record();
                            return Poll::Ready(Ok(fault_response(&mut f.ex, &fault)));
                        }
                        let text = f.collected_text();
                        queue_answer(&mut f.ex, &text);
                        *judge = JudgeBatch::start(&mut f.ex);
                    }
                    let verdict = match judge.as_mut() {
                        Some(j) => ready!(j.poll(&mut f.ex, cx)),
                        None => None,
                    };
                    let (Some(parts), Some(mut filter)) = (parts.take(), filter.take()) else {
                        return Poll::Ready(Ok(done_response()));
                    };
                    let out = match verdict {
                        None => held.split().freeze(),
                        Some(block) => {
                            filter.ex.override_outcome(Outcome::BlockedOutput);
                            filter.refusal_bytes(&block.refusal)
                        }
                    };
                    return Poll::Ready(Ok(held_answer(parts, &mut filter, out)));
                }
                StateProj::Buffering {
                    collect,
                    parts,
                    ex,
                    error,
                } => {
                    let res = ready!(collect.poll(cx));
                    let (Some(mut ex), Some(parts)) = (ex.take(), parts.take()) else {
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
                    let span = trace::output_scan(&ex.span, false);
                    if *error {
                        let out =
                            span.in_scope(|| ex.timed(|ex| response::enforce_error(&bytes, ex)));
                        return Poll::Ready(Ok(relay_error(&mut ex, parts, out)));
                    }
                    let answer = span.in_scope(|| ex.timed(|ex| response::enforce(&bytes, ex)));
                    span.record("deliberate.action", ex.record.action.as_str());
                    drop(span);
                    match answer {
                        Err(fault) => return Poll::Ready(Ok(fault_response(&mut ex, &fault))),
                        Ok(answer) => match JudgeBatch::start(&mut ex) {
                            // Judged before release.
                            Some(judge) => State::JudgingAnswer {
                                parts: Some(parts),
                                upstream: bytes,
                                out: answer.body,
                                all_blocked: answer.all_blocked,
                                ex: Some(ex),
                                judge: Some(judge),
                            },
                            None => {
                                let r = buffered_answer(
                                    &mut ex,
                                    parts,
                                    answer.body,
                                    answer.all_blocked,
                                );
                                return Poll::Ready(Ok(r));
                            }
                        },
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
                    // A checkpointed stream sends its head at once: what it releases waits
                    // for the judge in the body.
                    if !f.is_checkpoint() {
                        ready!(poll_start(b.as_mut(), f, cx));
                    }
                    if let Some(fault) = f.take_fault() {
                        return Poll::Ready(Ok(fault_response(&mut f.ex, &fault)));
                    }
                    let (Some(body), Some(parts), Some(filter)) =
                        (body.take(), parts.take(), filter.take())
                    else {
                        return Poll::Ready(Ok(done_response()));
                    };
                    return Poll::Ready(Ok(stream_head(parts, body, filter)));
                }
            };
            this.state.set(next);
        }
    }
}

/// An answer the layer sends instead of moving to the next state (boxed: responses are
/// large next to the states).
type Early<ResB> = Box<Response<ResponseBody<ResB>>>;

/// What follows the upstream's answer (the old `Calling` step): a fault or an upstream error
/// head answered at once (`Err`), or the state that reads the body.
// The `Err` side is the response itself, returned at once by the caller: boxing it would
// only add an allocation.
#[allow(clippy::type_complexity, clippy::result_large_err)]
fn answered<S, ReqB, ResB, E>(
    res: Result<Response<ResB>, E>,
    mut ex: Box<Exchange>,
) -> Result<State<S, ReqB, ResB>, Early<ResB>>
where
    S: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>>,
    ReqB: Body,
    ReqB::Error: Into<BoxError>,
    ResB: Body,
    ResB::Error: Into<BoxError>,
    E: Into<BoxError>,
{
    let resp = match res {
        Ok(r) => r,
        Err(e) => {
            let e: BoxError = e.into();
            let fault = Fault::from_error(&*e);
            return Err(Box::new(fault_response(&mut ex, &fault)));
        }
    };
    let (parts, body) = resp.into_parts();
    ex.upstream_answered(parts.status.as_u16());
    if let Some(enc) = parts.headers.get(CONTENT_ENCODING)
        && !enc.as_bytes().eq_ignore_ascii_case(b"identity")
    {
        // The header's value is the upstream's: named only when it is a plain coding token.
        let named = enc
            .to_str()
            .ok()
            .filter(|v| {
                v.len() <= 32
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_, ".contains(&b))
            })
            .unwrap_or("an unknown coding");
        let fault = Fault::Protocol(format!(
            "upstream sent a compressed body ({named}) the gateway cannot scan"
        ));
        // An error body the gateway cannot read may quote text it never scanned: the client
        // gets the status with a body of the gateway's own.
        return Err(Box::new(if parts.status.is_success() {
            fault_response(&mut ex, &fault)
        } else {
            upstream_error(&mut ex, parts, &fault)
        }));
    }
    let limit = ex.shared.opts.max_response_bytes;
    if !parts.status.is_success() {
        // Upstream errors are passed on with their status, `Retry-After` and the rest of the
        // head; their body is scanned (it may quote text).
        Ok(State::Buffering {
            collect: Limited::new(body, limit).collect(),
            parts: Some(parts),
            ex: Some(ex),
            error: true,
        })
    } else if is_event_stream(&parts.headers) {
        let mode = stream_judging(&ex);
        let mut filter = Box::new(StreamFilter::new(*ex));
        match mode {
            Some(StreamJudgeMode::Hold) => {
                filter.collect(false);
                // The record waits for the verdict.
                filter.ex.hold_record();
                return Ok(State::Holding {
                    body: Some(Box::pin(body)),
                    parts: Some(parts),
                    filter: Some(filter),
                    held: BytesMut::new(),
                    judge: None,
                });
            }
            Some(StreamJudgeMode::Monitor) => filter.collect(true),
            Some(StreamJudgeMode::Checkpoint) => filter.checkpoint(),
            None if judges_escalations(&filter.ex) => filter.escalations(),
            None => {}
        }
        Ok(State::Starting {
            body: Some(Box::pin(body)),
            parts: Some(parts),
            filter: Some(filter),
        })
    } else {
        Ok(State::Buffering {
            collect: Limited::new(body, limit).collect(),
            parts: Some(parts),
            ex: Some(ex),
            error: false,
        })
    }
}

/// Whether a response head announces server-sent events.
fn is_event_stream(headers: &http::HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/event-stream")
        })
}

/// The input scan in its trace span (a no-op span when tracing is off), timed.
fn input_scan(ex: &mut Exchange, body: Bytes) -> Result<Input, crate::wire::WireError> {
    let span = trace::input_scan(&ex.span);
    let input = span.in_scope(|| ex.timed(|ex| request::enforce(body, ex)));
    if !span.is_disabled() {
        let action = match &input {
            Err(_) | Ok(Input::OverBudget { .. }) => "rejected",
            Ok(Input::Block(_)) => "block",
            Ok(Input::Forward(_)) => ex.record.action.as_str(),
        };
        span.record("deliberate.action", action);
    }
    input
}

/// What the input scan came to: a refusal (`Err`), or the upstream call (with the input judge).
fn scanned<S, ReqB, ResB>(
    res: Result<Input, crate::wire::WireError>,
    mut ex: Box<Exchange>,
    mut parts: http::request::Parts,
    mut inner: S,
) -> Result<State<S, ReqB, ResB>, Early<ResB>>
where
    S: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>>,
    ReqB: Body<Data = Bytes>,
    ReqB::Error: Into<BoxError>,
    ResB: Body<Data = Bytes>,
    ResB::Error: Into<BoxError>,
{
    match res {
        Err(wire) => Err(Box::new(bad_request(&mut ex, &wire.info()))),
        Ok(Input::OverBudget { spent }) => Err(Box::new(over_budget(&mut ex, spent))),
        Ok(Input::Block((pi, f))) => {
            ex.act(crate::policy::Action::Block);
            let text = ex
                .set
                .policies()
                .get(pi)
                .map(|p| p.refusal_for(p.rule(&f.rule)))
                .unwrap_or_default();
            Err(Box::new(blocked_input(&mut ex, &text)))
        }
        Ok(Input::Forward(bytes)) => {
            request::forward_head(&mut parts.headers, bytes.len());
            // Judged texts go to the judge while the upstream works.
            let judge = JudgeBatch::start(&mut ex);
            ex.upstream_called();
            let fut = inner.call(Request::from_parts(parts, RequestBody::full(bytes)));
            Ok(State::Calling {
                fut,
                ex: Some(ex),
                judge,
            })
        }
    }
}
