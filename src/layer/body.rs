//! Request and response bodies of the [`PolicyService`](super::PolicyService).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;

use super::error::BoxError;
use super::stream::{StreamFilter, poll_next};

pin_project! {
    /// The request body the inner service gets: the rewritten request of an enforced route, or
    /// the client's body, untouched, on any other route.
    pub struct RequestBody<B> {
        #[pin]
        kind: RequestKind<B>,
    }
}

pin_project! {
    #[project = RequestKindProj]
    enum RequestKind<B> {
        Full { #[pin] data: Full<Bytes> },
        Passed { #[pin] inner: B },
    }
}

impl<B> RequestBody<B> {
    /// A body of `data`.
    pub fn full(data: Bytes) -> Self {
        RequestBody {
            kind: RequestKind::Full {
                data: Full::new(data),
            },
        }
    }

    /// The client's body as it came.
    pub fn passed(inner: B) -> Self {
        RequestBody {
            kind: RequestKind::Passed { inner },
        }
    }
}

impl<B> std::fmt::Debug for RequestBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestBody")
    }
}

impl<B> Body for RequestBody<B>
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
        match self.project().kind.project() {
            RequestKindProj::Full { data } => data.poll_frame(cx).map_err(|never| match never {}),
            RequestKindProj::Passed { inner } => inner.poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            RequestKind::Full { data } => data.is_end_stream(),
            RequestKind::Passed { inner } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            RequestKind::Full { data } => data.size_hint(),
            RequestKind::Passed { inner } => inner.size_hint(),
        }
    }
}

pin_project! {
    /// The response body the client gets: the inner body untouched (routes not enforced,
    /// upstream errors), a body the layer made (refusals, errors, scanned buffered
    /// completions), or a filtered event stream.
    pub struct ResponseBody<B> {
        #[pin]
        kind: ResponseKind<B>,
    }
}

pin_project! {
    #[project = ResponseKindProj]
    enum ResponseKind<B> {
        Passed { #[pin] inner: B },
        Full { #[pin] data: Full<Bytes> },
        Stream { inner: Pin<Box<B>>, filter: Box<StreamFilter>, prefix: Option<Bytes> },
    }
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResponseBody")
    }
}

impl<B> ResponseBody<B> {
    /// The inner body, untouched.
    pub fn passed(inner: B) -> Self {
        ResponseBody {
            kind: ResponseKind::Passed { inner },
        }
    }

    /// A body of `data`.
    pub fn full(data: Bytes) -> Self {
        ResponseBody {
            kind: ResponseKind::Full {
                data: Full::new(data),
            },
        }
    }

    pub(crate) fn stream(inner: Pin<Box<B>>, filter: Box<StreamFilter>, prefix: Bytes) -> Self {
        ResponseBody {
            kind: ResponseKind::Stream {
                inner,
                filter,
                prefix: (!prefix.is_empty()).then_some(prefix),
            },
        }
    }
}

impl<B> Body for ResponseBody<B>
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
        match self.project().kind.project() {
            ResponseKindProj::Passed { inner } => inner.poll_frame(cx).map_err(Into::into),
            ResponseKindProj::Full { data } => data.poll_frame(cx).map_err(|never| match never {}),
            ResponseKindProj::Stream {
                inner,
                filter,
                prefix,
            } => {
                if let Some(p) = prefix.take() {
                    return Poll::Ready(Some(Ok(Frame::data(p))));
                }
                poll_next(inner.as_mut(), filter, cx).map(|o| o.map(|b| Ok(Frame::data(b))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            ResponseKind::Passed { inner } => inner.is_end_stream(),
            ResponseKind::Full { data } => data.is_end_stream(),
            ResponseKind::Stream { filter, prefix, .. } => prefix.is_none() && filter.is_ended(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            ResponseKind::Passed { inner } => inner.size_hint(),
            ResponseKind::Full { data } => data.size_hint(),
            ResponseKind::Stream { .. } => SizeHint::default(),
        }
    }
}
